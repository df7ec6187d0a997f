"""The two consumers: thin adapters that feed frames to the shared pipeline."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, ClassVar, NamedTuple

from asgiref.sync import async_to_sync, iscoroutinefunction
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer, JsonWebsocketConsumer
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder

from . import groups, shutdown
from .conf import HeldBytes, Limits, TokenBucket, process_requests
from .layers import receive_timeout_problem
from .outbox import Outbox, shared_frame
from .pipeline import Steps, current_uuid, resolve, respond, run_async, run_sync
from .protocol import PING, PONG, FrameError, decode_frame, encode_frame, error_frame
from .push import push_frame, require_group_name
from .routes import RouteInfo, build_route_table, declared_routes
from .status import StatusCodes
from .workers import call_sync, run_in_worker, worker_owner

__all__ = ["RouterMixin", "SocketRouterConsumer", "AsyncSocketRouterConsumer"]

logger = logging.getLogger("django_channels_router")


def _reraise_cancellation(exc: Exception) -> None:
    """Raise ``CancelledError`` if this task is being cancelled and ``exc`` stands in for it.

    channels-redis's cancel handling can end in an ordinary exception (a ``KeyError`` or
    ``AssertionError`` in its cleanup); retrying on it would keep a closed connection's
    consumer alive for good, and the server could never shut down.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError() from exc


class Request(NamedTuple):
    uuid: str | int
    route: RouteInfo
    headers: dict[str, Any]
    payload: Any
    weight: int  # what it holds in memory, estimated (protocol.Frame.weight)


class RouterMixin:
    """What both consumers share: the route table, the limits and frame parsing."""

    #: ``{route name: RouteInfo}``, built from the ``routes`` declaration when the class is created.
    route_table: ClassVar[dict[str, RouteInfo]] = {}
    #: Encoder for replies; Django's handles dates, decimals, UUIDs and lazy strings.
    json_encoder: ClassVar[type[json.JSONEncoder]] = DjangoJSONEncoder
    #: Per-class limits; ``None`` takes ``settings.CHANNELS_ROUTER`` or the protocol's default.
    max_message_bytes: int | None = None
    max_message_values: int | None = None
    max_running_requests: int | None = None
    max_waiting_requests: int | None = None
    #: A per-connection rate limit such as ``"100/min"`` (off by default); past it, requests are
    #: answered 429 ``throttled`` with ``Retry-After``. PINGs are never counted.
    rate_limit: str | None = None
    #: Seconds a request of an async consumer may take from its arrival to its reply; past it,
    #: the answer is 504 ``request_timeout`` and the request is cancelled (off by default).
    request_timeout: float | None = None
    #: Bytes of replies and pushes that may wait for a client; past this hard cap, the connection
    #: is closed with 1013 (4013 on daphne) and what waited is dropped.
    max_pending_send_bytes: int | None = None
    #: Seconds frames may wait while the client reads none of them; then the connection is closed
    #: with 1013 (4013 on daphne): a slow client is one that makes no progress.
    slow_client_timeout: float | None = None
    #: Bytes the requests of one connection not yet answered may hold once parsed (estimated:
    #: a frame's length plus 80 bytes per JSON value); past it, 429 ``too_many_requests``.
    max_connection_request_bytes: int | None = None
    #: Refuse the handshake (HTTP 403) to connections without an authenticated user.
    login_required: ClassVar[bool] = False
    #: Optional consumer-wide access rule, run for every route before the route's own ``access``:
    #: ``def check_access(self, route: RouteInfo, headers: dict, payload) -> bool`` (sync or async).
    #: Returning False answers 401 to an anonymous user and 403 to anyone else.
    check_access: ClassVar[Callable[..., Any] | None] = None
    #: Optional first step of every request, before ``check_access``, for extensions that build
    #: their own request object: ``def prepare_request(self, route, headers, payload) -> None``
    #: (sync or async; it refuses by raising). The DRF bridge builds its DRF request here and runs
    #: DRF's ``initial()`` (authentication, permissions, throttles).
    prepare_request: ClassVar[Callable[..., Any] | None] = None
    #: Set when the server is stopping: requests that arrive are answered 503, not run.
    restarting = False
    _layer_recovered_at = 0.0
    #: Sync hydrates, handlers and dehydrates run on the router's worker pool, so slow ones of
    #: different connections run side by side. Set True to run them on the single thread Django
    #: and Channels share, for code that is not thread-safe (then they run one at a time).
    thread_sensitive: ClassVar[bool] = False

    scope: dict[str, Any]
    channel_layer: Any
    channel_name: str
    limits: Limits

    def _get_routes(self) -> list[RouteInfo]:
        return list(self.route_table.values())

    def _set_routes(self, value: Any) -> None:
        self._routes = value

    #: Declare routes as a class attribute ``routes = [{"route": "sayHello"}, ...]`` or with the
    #: setter form ``@SocketRouterConsumer.routes.setter``; reading it gives the route table.
    routes = property(_get_routes, _set_routes)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.route_table = build_route_table(cls, cls.get_routes())

    @classmethod
    def get_routes(cls) -> list[Mapping[str, Any]]:
        """The route declarations of this class; override to derive routes from elsewhere."""
        return declared_routes(cls, RouterMixin.__dict__["routes"]) or []

    @classmethod
    def describe_route(cls, route: RouteInfo, components: Any) -> Any:
        """What ``manage.py socketschema`` says of ``route`` (an ``asyncapi.RouteSchema``): its
        ``request``/``response`` declarations and the statuses this class can answer it with."""
        from .asyncapi import default_route_schema

        return default_route_schema(cls, route, components)

    @classmethod
    def describe_pushes(cls, components: Any) -> dict[str, tuple[Any, Any]]:
        """``{route: (payload schema, headers schema)}`` of the pushes this class sends, from
        ``pushes = {"said": <serializer or JSON Schema>}`` (a class attribute, for the schema)."""
        from .asyncapi import default_push_schemas

        return default_push_schemas(cls, components)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve the connection; every call it makes on the worker pool is counted as its own,
        so that the pool shares its threads fairly between connections."""
        worker_owner.set(self)
        self.outbox = Outbox(send, self.limits.pending_send_bytes, self.limits.slow_client_timeout, self._too_slow)
        self._loop = asyncio.get_running_loop()
        shutdown.watch(self)
        try:
            await super().__call__(scope, receive, self.outbox.send)  # type: ignore[misc]
        finally:
            shutdown.connections.discard(self)
            self.outbox.discard()
            groups.release(self)

    async def restart(self, drain_for: float) -> None:
        """The server is stopping: refuse new requests, let those running finish (for up to
        ``drain_for`` seconds) and send their replies, then close with 1012 (4012 on daphne).

        1012 tells the client that a request without a reply was never run, so it is sent only when
        that holds: a request still running after ``drain_for``, a client that does not take its
        replies, or a stop forced meanwhile (this task cancelled) close with 1013 (4013) instead.
        """
        self.restarting = True
        deadline = time.monotonic() + drain_for
        try:
            late = await self.finish_requests(drain_for)
            if late:
                logger.warning("%d requests of %s were still running after SHUTDOWN_TIMEOUT (%s s); their replies are "
                               "lost.", late, type(self).__name__, drain_for)
            await self.outbox.send({"type": "websocket.close", "code": self.outbox.close_code(1013 if late else 1012)})
            if not await self._replies_taken(deadline):
                logger.warning("%s of user %s does not read its replies (restart); they are dropped and the "
                               "connection is closed with 1013.", type(self).__name__, self.user or "(none)")
                self.outbox.close_now(1013)
        except asyncio.CancelledError:
            self.outbox.close_now(1013)
            raise

    async def _replies_taken(self, deadline: float) -> bool:
        """Wait while the server takes what the outbox holds, close included; False once it took
        nothing for ``STALLED_SECONDS``, or did not finish by ``deadline``: the client stopped
        reading, and what waits cannot reach it before the process stops."""
        while self.outbox.writer is not None:
            waiting = len(self.outbox.frames)
            left = deadline - time.monotonic()
            await self.outbox.flushed(max(0.0, min(shutdown.STALLED_SECONDS, left)))
            if self.outbox.writer is not None and (len(self.outbox.frames) == waiting or left <= 0):
                return False
        return True

    async def finish_requests(self, timeout: float) -> int:
        """Wait for the requests being served to finish; how many still run after ``timeout``."""
        raise NotImplementedError

    def _too_slow(self, reason: str, code: int) -> None:
        """The client stopped reading: say so, and stop taking broadcasts for it."""
        logger.warning("Closing %s of user %s with %d: %s.", type(self).__name__, self.user or "(none)", code, reason)
        if self.joined_groups:
            self._leaving = asyncio.ensure_future(self._leave_all())

    async def _leave_all(self) -> None:
        """Leave every joined group at once, from the event loop, without waiting for the
        disconnect (whose ``leave()`` calls the sync consumer runs in a worker thread)."""
        for group in list(self.joined_groups):
            await groups.leave(self.channel_layer, group, self.channel_name)
            self.joined_groups.discard(group)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = Limits.for_consumer(self)
        self.rate_bucket = TokenBucket(*self.limits.rate, time.monotonic) if self.limits.rate else None
        #: Groups joined with ``join()``; kept joined (see :mod:`.groups`), left when the connection closes.
        self.joined_groups: set[str] = set()
        self.held_requests = HeldBytes()

    def check_connect(self) -> bool:
        """Whether to accept this connection (sync or async; override for your own policy).

        A refused connection is refused at the handshake, before it opens (HTTP 403), which
        every ASGI server supports and after which the browser client stops reconnecting.
        """
        return not self.login_required or bool(getattr(self.user, "is_authenticated", False))

    def _come_back_soon(self) -> list[dict[str, Any]]:
        """The ASGI messages that answer a handshake while the process stops: "come back soon",
        which clients do not count as a refusal. HTTP 503 with ``Retry-After`` where the server can
        answer a handshake with an HTTP response (ASGI's ``websocket.http.response``, as uvicorn
        does), else accepted and closed at once with 1013 (4013 on daphne)."""
        if "websocket.http.response" in (self.scope.get("extensions") or {}):
            headers = [(b"retry-after", str(shutdown.RETRY_AFTER).encode()), (b"content-type", b"text/plain")]
            return [{"type": "websocket.http.response.start", "status": 503, "headers": headers},
                    {"type": "websocket.http.response.body", "body": b"The server is restarting; connect again."}]
        return [{"type": "websocket.accept"}, {"type": "websocket.close", "code": self.outbox.close_code(1013)}]

    def _checks_connect_inline(self) -> bool:
        """Whether ``check_connect`` runs no user code (the default reads two attributes), so
        that a handshake needs no worker thread and never waits for one."""
        return type(self).check_connect is RouterMixin.check_connect

    def get_handler(self, route: RouteInfo) -> Callable[..., Any]:
        """The handler that serves ``route`` on this connection; override to wrap it."""
        return resolve(self, route, route.handler)

    def get_validate(self, route: RouteInfo) -> Callable[..., Any] | None:
        """The check of ``route``'s declared ``request``, run before hydrate, if any; override to
        wrap it, or return None where your hydrate runs it (the DRF bridge's detail routes look
        their object up first, as DRF does)."""
        return route.validate

    def get_hydrate(self, route: RouteInfo) -> Callable[..., Any] | None:
        """The hydrate ``route`` runs before its handler, if any; override to wrap it (or to
        return None when the handler you return hydrates by itself)."""
        return None if route.hydrate is None else resolve(self, route, route.hydrate)

    @property
    def channel_receive(self) -> Callable[[], Any]:
        """What Channels awaits for channel-layer messages: the layer's receive, made patient.

        Channels ends the whole connection when the layer's receive raises (Redis down). A
        router keeps answering requests instead: it logs the outage and retries with backoff.
        """
        return self._receive_from_layer

    @channel_receive.setter
    def channel_receive(self, receive: Callable[[], Any]) -> None:
        self._layer_receive = receive

    async def _receive_from_layer(self) -> Any:
        delay, failed_at = 0.5, None
        while True:
            try:
                return await self._layer_receive()
            except Exception as exc:
                _reraise_cancellation(exc)
                problem = receive_timeout_problem(self.channel_layer)
                logger.warning("Channel layer unavailable (%s); pushes to this connection resume when it is back.%s",
                               exc or type(exc).__name__, f" The layer is misconfigured: {problem} (check "
                               "channels_router.E010)." if problem else "")
                failed_at = failed_at or time.monotonic()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                if await self._rejoin_groups():
                    await self.recover_from_layer(since=failed_at)
                    failed_at = None

    async def _rejoin_groups(self) -> bool:
        """After an outage, join the groups again (a restarted Redis has forgotten them); whether
        the layer answered."""
        try:
            await groups.rejoin(self)
        except Exception as exc:
            _reraise_cancellation(exc)  # else still down: the next receive says so and waits longer
            return False
        return True

    async def recover_from_layer(self, since: float) -> None:
        """Call :meth:`layer_recovered` for a loss noticed at ``since`` (``time.monotonic()``),
        unless a call after then covered it: the group watcher and a failed receive may both
        notice one Redis restart."""
        if self._layer_recovered_at > since:
            return
        self._layer_recovered_at = time.monotonic()
        await self.layer_recovered()

    async def layer_recovered(self) -> None:
        """Called when the channel layer answers again after an outage, during which pushes to this
        connection were lost. Subscriptions tell their clients to re-read (``resync``)."""

    def layer_for(self, group: str) -> Any:
        """The channel layer, once ``group`` is known to be a name it accepts."""
        if getattr(self, "channel_layer", None) is None:
            raise ImproperlyConfigured("Groups need a channel layer: configure settings.CHANNEL_LAYERS.")
        require_group_name(self.channel_layer, group)
        return self.channel_layer

    @property
    def request_uuid(self) -> str | int:
        """The uuid of the request being served (pushes that belong to it carry it)."""
        return current_uuid.get()

    @property
    def user(self) -> Any:
        """The connection's user (from ``AuthMiddlewareStack``), or ``None`` without one."""
        return self.scope.get("user")

    def reply_not_sent(self, uuid: str | int, route: str, size: int, error: Exception) -> str:
        """The reply sent in place of one the server refused to send (daphne sends at most
        ``--websocket-max-message-size`` bytes, 1 MiB by default, in one message)."""
        logger.error("The server refused to send the %d-byte reply of route %r (uuid %r) on %s: %s", size, route,
                     uuid, type(self).__name__, error)
        if type(error).__name__ == "PayloadExceededError":  # autobahn's, under daphne: its text names the limit
            return error_frame(uuid, route, StatusCodes.INTERNAL_SERVER_ERROR, "reply_too_large",
                               f"The reply is {size} bytes, more than the server sends in one message ({error}). "
                               f"Send less (paginate), or raise the limit (daphne --websocket-max-message-size).")
        return error_frame(uuid, route, StatusCodes.INTERNAL_SERVER_ERROR, "reply_not_sent",
                           "The server could not send the reply.")

    def push_not_sent(self, route: str, headers: Mapping[str, Any] | None, error: Exception) -> str | None:
        """The frame sent in place of a push the server refused to send (too large for daphne),
        or None to close the connection with 1011, as here: the client cannot miss a push without
        knowing. Subscriptions send ``resync`` instead."""
        logger.error("The server refused to send push %r on %s (%s); closing the connection with 1011.", route,
                     type(self).__name__, error)
        return None

    def _reply(self, uuid: str | int, route: str | None, frame: str) -> None:
        """Queue a reply frame; on the event loop."""
        instead = None if route is None else partial(self.reply_not_sent, uuid, route, len(frame))
        self.outbox.send_frame(frame, instead)

    def _push(self, route: str, headers: Mapping[str, Any] | None, frame: str) -> None:
        """Queue a push frame; on the event loop."""
        self.outbox.send_frame(frame, partial(self.push_not_sent, route, headers))

    def _broadcast_frame(self, event: dict[str, Any]) -> tuple[str, None, str]:
        """A broadcast's route and frame: one copy in this process, shared by every member."""
        return event["route"], None, shared_frame(event["uuid"], event["frame"])

    def parse_frame(self, text_data: str | None, bytes_data: bytes | None) -> Request | str:
        """A request to run, or the reply frame when none needs to run (errors, heartbeat)."""
        if self.outbox.closing:
            return ""  # the connection is closing: nothing more is run, and nothing is sent
        try:
            uuid, name, headers, payload, weight = decode_frame(text_data, bytes_data, self.limits.message_bytes,
                                                                self.limits.message_values)
        except FrameError as exc:
            return exc.frame()
        if name == PING:
            return encode_frame(uuid, PONG, StatusCodes.OK, None, None)
        if self.rate_bucket is not None and (wait := self.rate_bucket.take()):
            seconds = math.ceil(wait)
            return error_frame(uuid, name, StatusCodes.TOO_MANY_REQUESTS, "throttled",
                               f"Request was throttled. Expected available in {seconds} seconds.",
                               {"Retry-After": str(seconds)})
        route = self.route_table.get(name)
        if route is None:
            return error_frame(uuid, name, StatusCodes.NOT_FOUND, "route_not_found", f"No route named {name!r}.")
        if self.restarting:
            return error_frame(uuid, name, StatusCodes.SERVICE_UNAVAILABLE, "server_restarting",
                               "The server is restarting; this request was not run: send it again once reconnected.")
        return self._refusal(uuid, name, weight) or Request(uuid, route, headers, payload, weight)

    def _refusal(self, uuid: str | int, route: str, weight: int) -> str | None:
        """The reply refusing a request the connection cannot hold now, or None once it holds it
        (its ``weight`` counted on the connection and the process until :meth:`_answered`)."""
        limits = self.limits
        if not self.held_requests.take(weight, limits.connection_request_bytes):
            return error_frame(uuid, route, StatusCodes.TOO_MANY_REQUESTS, "too_many_requests",
                               f"The requests waiting on this connection hold more than "
                               f"{limits.connection_request_bytes} bytes; retry once they are answered.")
        if not process_requests.take(weight, limits.process_request_bytes):
            self.held_requests.give(weight)
            return error_frame(uuid, route, StatusCodes.SERVICE_UNAVAILABLE, "server_busy",
                               "The server holds too many requests; retry shortly.", {"Retry-After": "1"})
        return None

    def _respond(self, request: Request) -> Steps:
        return respond(self, request.uuid, request.route, request.headers, request.payload)

    def _answered(self, request: Request) -> None:
        self.held_requests.give(request.weight)
        process_requests.give(request.weight)


class SocketRouterConsumer(RouterMixin, JsonWebsocketConsumer):
    """Sync router consumer: requests of a connection are answered one at a time, in order.

    Channels runs every ``SyncConsumer`` of a process on one shared thread, so one connection's
    slow request would hold up every other connection's. The router runs each message on its
    worker pool instead: a connection still has one message served at a time, in order
    (Channels awaits each dispatch before it reads the next), with Django's database connection
    handling per message, while other connections run beside it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle = asyncio.Event()
        self._idle.set()

    async def dispatch(self, message: dict[str, Any]) -> None:  # type: ignore[override]
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        self._idle.clear()
        try:
            await run_in_worker(handler, message, thread_sensitive=self.thread_sensitive)
        finally:
            self._idle.set()

    async def finish_requests(self, timeout: float) -> int:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return 1
        return 0

    def connect(self) -> None:
        """Accept the connection, or refuse the handshake when ``check_connect()`` says no (while
        the process stops: "come back soon")."""
        if shutdown.stopping:
            for message in self._come_back_soon():
                self.base_send(message)
        elif call_sync(self.check_connect, ()):
            self.accept()
        else:
            self.close()

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        request = self.parse_frame(text_data, bytes_data)
        if isinstance(request, str):
            self._loop.call_soon_threadsafe(self.outbox.send_frame, request)
            return
        try:
            frame = run_sync(self._respond(request))  # dispatch() handles the database connections
        finally:
            self._answered(request)
        self._loop.call_soon_threadsafe(self._reply, request.uuid, request.route.name, frame)

    def join(self, group: str) -> None:
        """Receive the group's broadcasts on this connection until ``leave()`` or disconnect;
        503 ``channel_layer_unavailable`` when the layer cannot be reached."""
        async_to_sync(groups.join)(self.layer_for(group), group, self)
        self.joined_groups.add(group)

    def leave(self, group: str) -> None:
        """Stop receiving the group's broadcasts; a leave the layer fails is tried again later."""
        async_to_sync(groups.leave)(self.layer_for(group), group, self.channel_name)
        self.joined_groups.discard(group)

    def push(self, route: str, payload: Any = None, headers: Mapping[str, Any] | None = None) -> None:
        """Send ``route`` to this connection alone, as a push (a fresh uuid, status 200)."""
        frame = push_frame(route, payload, headers, self.json_encoder)
        self._loop.call_soon_threadsafe(self._push, route, headers, frame)

    def router_push(self, event: dict[str, Any]) -> None:
        """A broadcast to one of this connection's groups."""
        self._loop.call_soon_threadsafe(self._push, *self._broadcast_frame(event))

    def websocket_disconnect(self, message: dict[str, Any]) -> None:
        for group in list(self.joined_groups):
            self.leave(group)
        super().websocket_disconnect(message)


class AsyncSocketRouterConsumer(RouterMixin, AsyncJsonWebsocketConsumer):
    """Async router consumer: up to ``limits.running`` requests of a connection run at once,
    up to ``limits.waiting`` more wait their turn, and past that the answer is 429.
    ``PING`` is answered at once, ahead of slow requests.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = asyncio.Semaphore(self.limits.running)
        self._pending: set[asyncio.Task[None]] = set()

    async def finish_requests(self, timeout: float) -> int:
        if not self._pending:
            return 0
        _, late = await asyncio.wait(set(self._pending), timeout=timeout)
        return len(late)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch, without its database clean-up before every message: that costs a
        thread hop per message, and the router cleans up inside its own worker calls instead,
        in the thread that holds the connections."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        """Accept the connection, or refuse the handshake when ``check_connect()`` says no (while
        the process stops: "come back soon")."""
        if shutdown.stopping:
            for message in self._come_back_soon():
                await self.base_send(message)
            return
        if iscoroutinefunction(self.check_connect):
            allowed = await self.check_connect()
        elif self._checks_connect_inline():
            allowed = self.check_connect()
        else:
            allowed = await run_in_worker(self.check_connect, thread_sensitive=self.thread_sensitive)
        if allowed:
            await self.accept()
        else:
            await self.close()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        request = self.parse_frame(text_data, bytes_data)
        if isinstance(request, str):
            self.outbox.send_frame(request)
        else:
            task = asyncio.create_task(self._serve(request))
            self._pending.add(task)

            def finished(task: asyncio.Task[None]) -> None:  # however it ends, even cancelled before it ran
                self._pending.discard(task)
                self._answered(request)

            task.add_done_callback(finished)

    def _refusal(self, uuid: str | int, route: str, weight: int) -> str | None:
        if len(self._pending) >= self.limits.running + self.limits.waiting:
            return error_frame(uuid, route, StatusCodes.TOO_MANY_REQUESTS, "too_many_requests",
                               "Too many requests are waiting on this connection; retry later.")
        return super()._refusal(uuid, route, weight)

    async def _serve(self, request: Request) -> None:
        try:
            async with asyncio.timeout(self.limits.timeout), self._slots:
                frame = await run_async(self._respond(request), request.route.sync_only, self.thread_sensitive)
        except TimeoutError:
            logger.warning("Route %r (uuid %r) took longer than %s s on %s; answered 504", request.route.name,
                           request.uuid, self.limits.timeout, type(self).__name__)
            frame = error_frame(request.uuid, request.route.name, StatusCodes.GATEWAY_TIMEOUT, "request_timeout",
                                f"The request took longer than {self.limits.timeout} seconds.")
        self._reply(request.uuid, request.route.name, frame)

    async def join(self, group: str) -> None:
        """Receive the group's broadcasts on this connection until ``leave()`` or disconnect;
        503 ``channel_layer_unavailable`` when the layer cannot be reached."""
        await groups.join(self.layer_for(group), group, self)
        self.joined_groups.add(group)

    async def leave(self, group: str) -> None:
        """Stop receiving the group's broadcasts; a leave the layer fails is tried again later."""
        await groups.leave(self.layer_for(group), group, self.channel_name)
        self.joined_groups.discard(group)

    async def push(self, route: str, payload: Any = None, headers: Mapping[str, Any] | None = None) -> None:
        """Send ``route`` to this connection alone, as a push (a fresh uuid, status 200)."""
        self._push(route, headers, push_frame(route, payload, headers, self.json_encoder))

    async def router_push(self, event: dict[str, Any]) -> None:
        """A broadcast to one of this connection's groups."""
        self._push(*self._broadcast_frame(event))

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Cancel the connection's unfinished requests (nobody is left to read their replies)
        and leave its groups."""
        for task in list(self._pending):
            task.cancel()
        for group in list(self.joined_groups):
            await self.leave(group)
        await super().websocket_disconnect(message)
