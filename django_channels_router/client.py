"""An asyncio client for router sockets, for services, scripts and tests against a live server::

    async with RouterClient("ws://127.0.0.1:8000/ws/app/") as client:
        reply = await client.request("sayHello", {"name": "Ada"})
        async for push in client.pushes():
            ...

It speaks the wire protocol (the documentation's protocol reference) as the browser client does: every
status is a reply (the caller decides what a 4xx means), a heartbeat that reconnects when PONGs
stop, requests with an ``idempotency-key`` that are sent again after a reconnect (so each gets
its one reply), subscriptions that are sent again and resume where they were (v1.2), and the
same reconnect policy as router-socket.js (``CLOSE_CODES`` and ``Reconnect``; the
documentation's JavaScript client reference has the table). Frames that are not JSON objects are
logged and ignored. Needs ``websockets`` (``pip install "django-channels-router[client]"``).
``RouterCommunicator`` stays the in-process test tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid as uuids
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

__all__ = ["CLOSE_CODES", "ConnectionClosedError", "GaveUpError", "QueueFullError", "Reconnect", "RequestTimeoutError",
           "RetriesExhaustedError", "RouterClient", "Subscription"]

logger = logging.getLogger(__name__)

#: What a close code makes the client do; the same table as ``CLOSE_CODES`` in router-socket.js.
#: Any other code (1000, 1001, 1006, 4000 after a heartbeat timeout, ...) reconnects with the backoff.
CLOSE_CODES: dict[int, str] = {
    1012: "restart", 4012: "restart",  # the server restarts: reconnect within restart_window
    1013: "try-later", 4013: "try-later",  # overloaded, or we read too slowly: the backoff, two steps up
    1008: "give-up", 1011: "give-up",  # policy violation, server error: reconnecting would not help
}


class RequestTimeoutError(TimeoutError):
    """No reply came within ``request_timeout`` seconds (a late one is dropped). The same name as
    router-socket.js's error, and a ``TimeoutError``."""


class ConnectionClosedError(ConnectionError):
    """The connection closed before the reply came and the request is not sent again (it has no
    idempotency key, or the client closed for good). ``will_reconnect``: whether the client comes
    back; ``attempts``: how many times the request was sent. As router-socket.js's error of that name."""

    def __init__(self, code: int | None, will_reconnect: bool, attempts: int = 1) -> None:
        super().__init__(f"The connection closed (code {code}) before the reply came"
                         f"{'; reconnecting' if will_reconnect else ''}.")
        self.code, self.will_reconnect, self.attempts = code, will_reconnect, attempts


class RetriesExhaustedError(ConnectionClosedError):
    """A keyed request was sent ``max_retries`` times again and each connection closed before its
    reply; with its key, sending it once more is still safe (the server runs it at most once)."""

    def __init__(self, route: str, attempts: int, key: str | None, code: int | None) -> None:
        ConnectionClosedError.__init__(self, code, True, attempts)
        self.args = (f"{route!r}: sent {attempts} times, and each time the connection closed (last code {code}) "
                     f"before the reply came; max_retries={attempts - 1} reached."
                     + (f" The server ran it at most once: sending it again with idempotency-key {key!r} is safe."
                        if key else ""),)
        self.key = key


class GaveUpError(ConnectionError):
    """The client stopped reconnecting: refused handshakes, or a close code that means stop
    (router-socket.js says so with its ``give-up`` event)."""


class QueueFullError(RuntimeError):
    """``queue_limit`` requests are already waiting for the connection to open; this one is refused.
    As router-socket.js's error of that name."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} requests are already waiting for the connection; request refused.")
        self.limit = limit


@dataclass(frozen=True)
class Reconnect:
    """When to reconnect, in seconds; router-socket.js's ``reconnect`` option has the same fields in ms."""

    #: The first delay; each attempt since the last healthy connection waits ``factor`` times longer, up to ``maximum``.
    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    #: Every delay is scaled by a random factor in 1 +- jitter, so clients do not come back in step.
    jitter: float = 0.2
    #: Handshakes in a row refused (an HTTP status other than 5xx and 429) before giving up.
    max_refusals: int = 5
    #: After a restart close (1012/4012) of a healthy connection: reconnect at a random moment
    #: within this, so that a thousand clients do not come back in the same millisecond.
    restart_window: float = 2.0
    #: A connection is healthy (and resets the backoff) once it got a reply or stayed open this long.
    healthy_after: float = 5.0

    def delay(self, attempt: int, how: str = "backoff", retry_after: float | None = None) -> float:
        """Seconds before reconnect number ``attempt`` (0: the first since a healthy connection).
        ``how`` is a ``CLOSE_CODES`` value or ``"backoff"``; ``retry_after`` the server's
        ``Retry-After`` (a lower bound, capped at ``maximum``)."""
        if how == "restart" and attempt == 0:
            return random.uniform(0, self.restart_window)
        steps = attempt + 2 if how == "try-later" else attempt
        try:
            base = min(self.maximum, self.initial * self.factor ** steps)
        except OverflowError:  # a server down for days
            base = self.maximum
        delay = base * (1 + random.uniform(-self.jitter, self.jitter))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.maximum) * (1 + random.uniform(0, self.jitter)))
        return delay


def handshake_answer(status: int) -> str:
    """What an HTTP status answering the handshake means: 5xx and 429 ``"try-later"`` (a draining
    or overloaded server: come back soon), any other ``"refused"`` (counted toward ``max_refusals``)."""
    return "try-later" if status >= 500 or status == 429 else "refused"


#: Why a server refuses a handshake with 403; router-socket.js says the same (a test checks it).
REFUSED_403_HINT = ("the server refused the connection: check the Origin header (Channels' origin validators "
                    "allow only the hosts in ALLOWED_HOSTS; RouterClient's origin option, the `ws` package's "
                    "origin option), the authentication of the handshake (session cookie, token) and the "
                    "consumer's login_required and check_connect(); the server logs which "
                    "(logger django_channels_router.security)")


def refusal(times: int, status: int) -> str:
    """Why the client gave up on refused handshakes: the status and, for 403, its likely causes."""
    said = f"the handshake was refused {times} times running (HTTP {status})"
    return f"{said}: {REFUSED_403_HINT}" if status == 403 else said


def url_origin(url: str) -> str:
    """The ``Origin`` a page served by the host of ``url`` sends: ws://h:p -> http://h:p, wss -> https."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc.rpartition('@')[2]}"


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (the HTTP-date form is ignored: the backoff applies)."""
    value = (value or "").strip()
    return float(value) if value.isascii() and value.isdigit() else None


class Subscription:
    """A live ``subscribe``: its pushes as an async iterator; sent again after every reconnect.

    It keeps the latest ``headers.position`` the server gave it (v1.2) and sends it again as
    ``resume-from``, so that the server pushes what changed meanwhile. After each reconnect the
    iterator yields the new subscribe's reply, with route ``resubscribed``, ``headers.seq`` 0 (the
    pushes that follow count from 1 again) and ``resumed``: true, the pushes missed follow; false,
    re-read what you show (a v1.2 server sends a ``resync`` push too; a server before v1.2 never
    resumes)."""

    def __init__(self, client: RouterClient, route: str, payload: Any, headers: Mapping[str, Any],
                 on_resubscribed: Callable[[dict[str, Any]], Any] | None) -> None:
        self.client, self.route, self.payload, self.headers = client, route, payload, dict(headers)
        self.on_resubscribed = on_resubscribed
        self.uuid: str = ""
        self.reply: dict[str, Any] = {}
        #: The latest ``headers.position`` of its reply and pushes; ``None`` from a server before v1.2.
        self.position: str | None = None
        #: How many times it was sent again after a reconnect.
        self.resubscribed = 0
        self._again = False  # the send in flight is one after a reconnect
        self._pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue(client.queue_limit)

    async def _send(self, again: bool = False) -> dict[str, Any]:
        """Send it under a new uuid; after a reconnect, from its position if it has one."""
        self.client._subscriptions.pop(self.uuid, None)
        self.uuid, self._again = new_uuid(), again
        self.client._subscriptions[self.uuid] = self  # its reply and pushes may come before the await returns
        resume = {"resume-from": self.position} if again and self.position is not None else {}
        try:
            self.reply = await self.client._call(self.route, self.payload, {**self.headers, **resume}, self.uuid)
        except BaseException:
            if not again:
                self.client._subscriptions.pop(self.uuid, None)
            raise
        return self.reply

    def _take(self, message: dict[str, Any], reply: bool) -> None:
        """A reply to its subscribe or a push, as the client reads it: the position first, then the
        marker of a resubscribe before the pushes that follow it."""
        headers = message.get("headers")
        headers = headers if isinstance(headers, dict) else {}
        if isinstance(headers.get("position"), str):
            self.position = headers["position"]
        if not reply:
            _offer(self._pushes, message)
        elif self._again:
            _offer(self._pushes, {**message, "route": "resubscribed", "resumed": headers.get("resumed") is True,
                                  "headers": {**headers, "subscription": self.uuid, "seq": 0}})

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self._pushes.get()

    async def unsubscribe(self) -> dict[str, Any]:
        """Stop it (it is not sent again after a reconnect) and send ``unsubscribe`` with
        ``{"subscription": uuid}``; the server's reply."""
        self.client._subscriptions.pop(self.uuid, None)
        return await self.client.request("unsubscribe", {"subscription": self.uuid}, idempotency_key=None)


_URL_ORIGIN: Any = object()  # RouterClient's default origin: the URL's own
_NEW_KEY: Any = object()  # request()'s default idempotency key: a fresh one


class RouterClient:
    """One router socket, kept open; see the module docstring."""

    def __init__(self, url: str, *, headers: Mapping[str, Any] | None = None, heartbeat: float = 30.0,
                 pong_timeout: float = 10.0, request_timeout: float = 30.0, queue_limit: int = 1000,
                 reconnect: Reconnect = Reconnect(), max_size: int | None = None, origin: str | None = _URL_ORIGIN,
                 idempotency_keys: bool = True, max_retries: int = 5, **connect_options: Any) -> None:
        """``headers``: merged into every request's message headers (not the handshake's).
        ``heartbeat``: seconds between PINGs; ``pong_timeout``: seconds a PING waits for its PONG
        before the connection is closed with 4000 and made again. ``request_timeout``: seconds a
        request waits, for the connection to open and for its reply, before ``RequestTimeoutError``.
        ``queue_limit``: requests that may wait for the connection to open (past it,
        ``QueueFullError``), and pushes a reader of :meth:`pushes` or of a subscription may fall
        behind (past it, it loses the oldest). ``reconnect``: when to reconnect (:class:`Reconnect`).
        ``origin``: the handshake's ``Origin`` header; by default the URL's own origin
        (``ws://host:port`` -> ``http://host:port``, wss -> https), what a page served by that
        host sends, so that Channels' ``AllowedHostsOriginValidator`` lets it in; ``None`` sends none.
        ``max_size``: the largest message accepted, in bytes; ``None`` (the default), any size, as
        the server may send one reply or push of any size (a larger one would close the connection
        with 1009). Other keywords go to ``websockets.asyncio.client.connect`` (handshake headers,
        such as a session cookie or a token: ``additional_headers``).
        ``idempotency_keys``: give every request a fresh ``idempotency-key`` header (a v1.2 server
        runs a keyed write once), so that a request whose connection closes before its reply is sent
        again after the reconnect, up to ``max_retries`` times within ``request_timeout``; ``False``,
        none (a request whose connection closes fails with ``ConnectionClosedError``, as before v1.2)."""
        self.url, self.headers = url, dict(headers or {})
        self.origin = url_origin(url) if origin is _URL_ORIGIN else origin
        self.heartbeat, self.pong_timeout, self.request_timeout = heartbeat, pong_timeout, request_timeout
        self.queue_limit, self.policy = queue_limit, reconnect
        self.idempotency_keys, self.max_retries = idempotency_keys, max_retries
        self.connect_options = {"max_size": max_size, "origin": self.origin, **connect_options}
        #: ``connecting``, ``open``, ``reconnecting`` or ``closed``.
        self.state = "closed"
        #: Connections opened, handshakes refused in a row, reconnects and PONGs, for the curious (and tests).
        self.opened = self.refusals = self.reconnects = self.pongs = 0
        self._ws: ClientConnection | None = None
        self._open = asyncio.Event()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._waiting = 0
        self._listeners: list[asyncio.Queue[dict[str, Any]]] = []
        self._subscriptions: dict[str, Subscription] = {}  # by the uuid of their latest subscribe
        self._runner: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._replied = False  # the current connection answered a request: it is healthy

    async def __aenter__(self) -> RouterClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection (and keep it open); raises ``GaveUpError`` if it never opens."""
        if self._runner is None:
            self.state = "connecting"
            self._runner = asyncio.create_task(self._run())
        await self._wait_open()

    async def close(self) -> None:
        """Close for good: pending requests fail with ``ConnectionClosedError(will_reconnect=False)``."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        self._fail_pending(None, False)
        self.state = "closed"

    async def request(self, route: str, payload: Any = None, headers: Mapping[str, Any] | None = None, *,
                      uuid: str | None = None, idempotency_key: str | None = _NEW_KEY) -> dict[str, Any]:
        """Send one request; its reply ``{uuid, route, status, headers, payload}``, whatever the status.

        ``idempotency_key``: by default a fresh one (if the client's ``idempotency_keys``), or yours
        (here or as the ``idempotency-key`` header), or ``None`` for none. A keyed request whose
        connection closes is sent again with the same key after the reconnect, and one answered 409
        ``request_in_progress`` (it still runs elsewhere) shortly after, so it gets the one reply;
        ``RetriesExhaustedError`` past ``max_retries`` re-sends, ``RequestTimeoutError`` past
        ``request_timeout`` from the call."""
        if idempotency_key is _NEW_KEY:
            idempotency_key = new_uuid() if self.idempotency_keys else None
        sent = {"idempotency-key": idempotency_key, **(headers or {})}
        key = sent["idempotency-key"]
        if key is None:
            del sent["idempotency-key"]
        return await self._call(route, payload, sent, uuid or new_uuid(), key)

    async def _call(self, route: str, payload: Any, headers: dict[str, Any], request_id: str,
                    key: str | None = None) -> dict[str, Any]:
        """Send until the one reply: again after a reconnect, if ``key`` (or it is a subscribe)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        if self._waiting >= self.queue_limit:
            raise QueueFullError(self.queue_limit)
        frame = json.dumps({"uuid": request_id, "route": route, "payload": payload, "status": 200,
                            "headers": {**self.headers, **headers}})
        resend = key is not None or request_id in self._subscriptions
        sends = busy = 0
        while True:
            ws = await self._open_before(deadline, route, sends)
            if ws is None:  # it closed again before we could send: wait for the next one, without spinning
                await asyncio.sleep(0.01)
                continue
            sends += 1
            try:
                reply = await self._exchange(ws, request_id, frame, deadline)
            except TimeoutError:
                raise RequestTimeoutError(f"{route!r}: no reply within {self.request_timeout} s"
                                          f"{f' (sent {sends} times)' if sends > 1 else ''}.") from None
            except ConnectionClosedError as lost:
                if not (resend and lost.will_reconnect):
                    lost.attempts = sends
                    raise
                if sends > self.max_retries:
                    raise RetriesExhaustedError(route, sends, key, lost.code) from None
                continue
            if key is None or not _in_progress(reply):
                return reply
            # The first request with this key still runs (on a connection that closed, or another process).
            pause = min(1.0, 0.1 * 2 ** busy)
            if loop.time() + pause >= deadline:
                raise RequestTimeoutError(f"{route!r}: no final reply within {self.request_timeout} s: the first "
                                          f"request with idempotency-key {key!r} still ran (409 request_in_progress).")
            busy += 1
            logger.debug("%r: 409 request_in_progress (idempotency-key %r): asking again in %.1f s.", route, key, pause)
            await asyncio.sleep(pause)

    async def _open_before(self, deadline: float, route: str, sends: int) -> ClientConnection | None:
        """The open connection, waiting for it until ``deadline`` (``RequestTimeoutError``)."""
        loop = asyncio.get_running_loop()
        self._waiting += 1
        try:
            await asyncio.wait_for(self._wait_open(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            again = f" again (sent {sends} times)" if sends else ""
            raise RequestTimeoutError(f"{route!r}: the connection did not open{again} within "
                                      f"{self.request_timeout} s.") from None
        finally:
            self._waiting -= 1
        return self._ws

    async def _exchange(self, ws: ClientConnection, request_id: str, frame: str, deadline: float) -> dict[str, Any]:
        """Send ``frame`` on ``ws`` and wait for its reply; ``ConnectionClosedError`` if ``ws`` closes first."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future  # before the send: the close fails it (_fail_pending)
        try:
            with contextlib.suppress(ConnectionClosed):  # the reader sees the close too, and fails the future
                await ws.send(frame)
            return await asyncio.wait_for(future, max(0.0, deadline - asyncio.get_running_loop().time()))
        finally:
            if self._pending.get(request_id) is future:
                del self._pending[request_id]
            if future.done() and not future.cancelled():
                future.exception()  # the caller has its error already: not "never retrieved"

    def pushes(self) -> AsyncIterator[dict[str, Any]]:
        """Every push from this call on (messages that answer no request), in order. A reader that
        falls ``queue_limit`` pushes behind loses the oldest, not the client's memory."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.queue_limit)
        self._listeners.append(queue)  # now, not at the first read: a push may come before it

        async def read() -> AsyncIterator[dict[str, Any]]:
            try:
                while True:
                    yield await queue.get()
            finally:
                self._listeners.remove(queue)
        return read()

    async def subscribe(self, route: str = "subscribe", payload: Any = None, headers: Mapping[str, Any] | None = None,
                        *, on_resubscribed: Callable[[dict[str, Any]], Any] | None = None) -> Subscription:
        """Subscribe; pushes whose ``headers.subscription`` is its uuid come out of the returned object.
        After a reconnect it is sent again (a new uuid) and ``on_resubscribed(reply)`` is called, so
        the caller can re-read what it may have missed."""
        subscription = Subscription(self, route, payload, headers or {}, on_resubscribed)
        await subscription._send()
        return subscription

    # -- the connection ---------------------------------------------------------------------

    async def _wait_open(self) -> None:
        while True:  # closed for good first: the open flag may still be set then
            if self._failure is not None:
                raise GaveUpError(str(self._failure)) from self._failure
            if self._runner is None or self._runner.done():
                raise ConnectionClosedError(None, False)
            if self._open.is_set():
                return
            waiter = asyncio.create_task(self._open.wait())
            done, _ = await asyncio.wait({waiter, self._runner}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()

    async def _run(self) -> None:
        try:
            await self._keep_open()
        except Exception as exc:  # a bug here must end the client, not leave callers waiting on it
            logger.exception("RouterClient stopped on an unexpected error.")
            self._give_up(f"the client failed: {exc!r}")

    async def _keep_open(self) -> None:
        """Connect, serve, and reconnect as ``CLOSE_CODES`` and ``Reconnect`` say."""
        attempt = 0  # reconnects since the last healthy connection
        while True:
            how, wait_at_least = "backoff", None
            try:
                ws = await connect(self.url, **self.connect_options)
            except InvalidStatus as exc:  # the server answered the handshake with an HTTP status
                how = handshake_answer(exc.response.status_code)
                if how == "try-later":
                    wait_at_least = retry_after(exc.response.headers.get("Retry-After"))
                else:
                    self.refusals += 1
                    if self.refusals >= self.policy.max_refusals:
                        self._give_up(refusal(self.refusals, exc.response.status_code))
                        return
            except (TimeoutError, OSError, InvalidHandshake):  # no server (yet): try again, forever
                pass
            else:
                self.refusals = 0
                code, healthy = await self._serve(ws)
                if healthy:
                    attempt = 0
                how = CLOSE_CODES.get(code, "backoff")  # type: ignore[arg-type]
                self._fail_pending(code, how != "give-up")
                if how == "give-up":
                    self._give_up(f"the server closed with code {code}")
                    return
            self.state = "reconnecting"
            await asyncio.sleep(self.policy.delay(attempt, how, wait_at_least))
            attempt += 1

    async def _serve(self, ws: ClientConnection) -> tuple[int | None, bool]:
        """Read one connection until it closes; its close code, and whether it proved healthy."""
        self._ws, self.state, self._replied = ws, "open", False
        self.opened += 1
        opened_at = asyncio.get_running_loop().time()
        heartbeat = asyncio.create_task(self._heartbeat(ws))
        resubscribe = asyncio.create_task(self._resubscribe()) if self.opened > 1 else None
        self._open.set()
        try:
            async for raw in ws:
                self._receive(raw)
        except ConnectionClosed:
            pass
        finally:
            self._open.clear()
            self._ws = None
            heartbeat.cancel()
            if resubscribe is not None:
                resubscribe.cancel()
        lasted = asyncio.get_running_loop().time() - opened_at
        return ws.close_code, self._replied or lasted >= self.policy.healthy_after

    async def _heartbeat(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            request_id = new_uuid()
            future = asyncio.get_running_loop().create_future()
            self._pending[request_id] = future
            try:
                await ws.send(json.dumps({"uuid": request_id, "route": "PING"}))
                await asyncio.wait_for(future, self.pong_timeout)
                self.pongs += 1
            except TimeoutError:
                await ws.close(4000, "heartbeat timeout")  # the reader sees the close and reconnects
                return
            except ConnectionClosed:
                return
            finally:
                self._pending.pop(request_id, None)

    async def _resubscribe(self) -> None:
        self.reconnects += 1
        for subscription in list(self._subscriptions.values()):
            if not subscription.reply:
                continue  # its first subscribe is still on its way: that request is sent again itself
            reply = await subscription._send(again=True)
            subscription.resubscribed += 1
            if subscription.on_resubscribed is not None:
                result = subscription.on_resubscribed(reply)
                if asyncio.iscoroutine(result):
                    await result

    def _receive(self, raw: str | bytes) -> None:
        """One frame: a reply, a PONG or a push. A frame that is not a JSON object is the server's
        mistake: logged and ignored, as router-socket.js does, so the connection goes on."""
        try:
            message = json.loads(raw) if isinstance(raw, str) else None  # binary frames are not the protocol
        except (ValueError, RecursionError):
            message = None
        if not isinstance(message, dict):
            logger.warning("Ignored a frame that is not a JSON object: %r", raw[:200])
            return
        request_id = message.get("uuid")
        future = self._pending.get(request_id) if isinstance(request_id, str) else None
        if future is not None:
            self._replied = True
            if request_id in self._subscriptions:
                self._subscriptions[request_id]._take(message, reply=True)
            if not future.done():
                future.set_result(message)
            return
        if message.get("route") == "PONG":  # a heartbeat's that came too late
            return
        headers = message.get("headers")
        subscription_id = headers.get("subscription") if isinstance(headers, dict) else None
        if isinstance(subscription_id, str) and subscription_id in self._subscriptions:
            self._subscriptions[subscription_id]._take(message, reply=False)
        for queue in self._listeners:
            _offer(queue, message)

    def _give_up(self, reason: str) -> None:
        self._failure = GaveUpError(reason)
        self.state = "closed"
        self._fail_pending(None, False)

    def _fail_pending(self, code: int | None, will_reconnect: bool) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionClosedError(code, will_reconnect))
        self._pending.clear()


def _in_progress(reply: dict[str, Any]) -> bool:
    """A 409 ``request_in_progress``: the first request with the key still runs; try again shortly."""
    payload = reply.get("payload")
    return reply.get("status") == 409 and isinstance(payload, dict) and payload.get("code") == "request_in_progress"


def _offer(queue: asyncio.Queue[dict[str, Any]], message: dict[str, Any]) -> None:
    """A push for a reader that keeps up; a reader that does not loses its oldest push, not memory."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(message)




def new_uuid() -> str:
    return str(uuids.uuid4())
