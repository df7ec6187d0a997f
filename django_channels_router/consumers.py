"""The two consumers: thin adapters that feed frames to the shared pipeline."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

from asgiref.sync import async_to_sync, iscoroutinefunction
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer, JsonWebsocketConsumer
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder

from . import shutdown
from .conf import HeldBytes, Limits, TokenBucket, process_requests
from .outbox import Outbox
from .pipeline import (
    Steps,
    call_sync,
    current_uuid,
    resolve,
    respond,
    run_async,
    run_in_worker,
    run_sync,
)
from .protocol import PING, PONG, FrameError, decode_frame, encode_frame, error_frame
from .push import group_add, push_body, push_frame, require_group_name
from .routes import RouteInfo, build_route_table, declared_routes
from .status import StatusCodes
from .workers import worker_owner

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
    #: Bytes of replies and pushes that may wait for a client that reads slowly; past it, the
    #: connection is closed with 1013 (4013 on daphne) and what waited is dropped.
    max_pending_send_bytes: int | None = None
    #: Bytes the requests of one connection not yet answered may hold once parsed (estimated:
    #: a frame's length plus 80 bytes per JSON value); past it, 429 ``too_many_requests``.
    max_connection_request_bytes: int | None = None
    #: Refuse the handshake (HTTP 403) to connections without an authenticated user.
    login_required: ClassVar[bool] = False
    #: Optional consumer-wide access rule, run for every route before the route's own ``access``:
    #: ``def check_access(self, route: RouteInfo, headers: dict, payload) -> bool`` (sync or async).
    #: Returning False answers 401 to an anonymous user and 403 to anyone else.
    check_access: ClassVar[Callable[..., Any] | None] = None
    #: Set when the server is stopping: requests that arrive are answered 503, not run.
    restarting = False
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
        self.outbox = Outbox(send, self.limits.pending_send_bytes, self._overflowed)
        self._loop = asyncio.get_running_loop()
        self._refresh: asyncio.TimerHandle | None = None
        shutdown.watch(self)
        try:
            await super().__call__(scope, receive, self.outbox.send)  # type: ignore[misc]
        finally:
            shutdown.connections.discard(self)
            self.outbox.discard()
            if self._refresh is not None:
                self._refresh.cancel()

    def _keep_joined(self) -> None:
        """Keep the joined groups joined: the layer forgets a member after its ``group_expiry``
        (a day by default), and a connection open longer than that would stop getting the
        group's pushes without a word. Joining again before then renews the membership."""
        expiry = getattr(self.channel_layer, "group_expiry", None)
        if self._refresh is None and expiry:
            self._refresh = self._loop.call_later(expiry / 2, self._renew_groups, expiry)

    def _renew_groups(self, expiry: float) -> None:
        self._renewing = asyncio.ensure_future(self._rejoin_groups())
        self._refresh = self._loop.call_later(expiry / 2, self._renew_groups, expiry) if self.joined_groups else None

    async def restart(self, drain_for: float) -> None:
        """The server is stopping (SIGTERM): refuse new requests, let those running finish (for up
        to ``drain_for`` seconds) and send their replies, then close with 1012 (4012 on daphne)."""
        self.restarting = True
        started = time.monotonic()
        late = await self.finish_requests(drain_for)
        if late:
            logger.warning("%d requests of %s were still running after SHUTDOWN_TIMEOUT (%s s); their replies are "
                           "lost.", late, type(self).__name__, drain_for)
        await self.outbox.send({"type": "websocket.close", "code": self.outbox.close_code(1012)})
        await self.outbox.flushed(max(0.0, drain_for - (time.monotonic() - started)))

    async def finish_requests(self, timeout: float) -> int:
        """Wait for the requests being served to finish; how many still run after ``timeout``."""
        raise NotImplementedError

    def _overflowed(self, waiting: int, code: int) -> None:
        """The client stopped reading: say so, and stop taking broadcasts for it."""
        logger.warning("Closing %s of user %s with %d: %d bytes waited for the client to read "
                       "(MAX_PENDING_SEND_BYTES is %d).", type(self).__name__, self.user or "(none)", code,
                       waiting, self.limits.pending_send_bytes)
        if self.joined_groups:
            self._leaving = asyncio.ensure_future(self._leave_all())

    async def _leave_all(self) -> None:
        """Leave every joined group at once, from the event loop, without waiting for the
        disconnect (whose ``leave()`` calls the sync consumer runs in a worker thread)."""
        for group in list(self.joined_groups):
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception as exc:
                self._left_on_close(group, exc)
            self.joined_groups.discard(group)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = Limits.for_consumer(self)
        self.rate_bucket = TokenBucket(*self.limits.rate, time.monotonic) if self.limits.rate else None
        #: Groups joined with ``join()``; left when the connection closes.
        self.joined_groups: set[str] = set()
        self.held_requests = HeldBytes()

    def check_connect(self) -> bool:
        """Whether to accept this connection (sync or async; override for your own policy).

        A refused connection is refused at the handshake, before it opens (HTTP 403), which
        every ASGI server supports and after which the browser client stops reconnecting.
        """
        return not self.login_required or bool(getattr(self.user, "is_authenticated", False))

    def _checks_connect_inline(self) -> bool:
        """Whether ``check_connect`` runs no user code (the default reads two attributes), so
        that a handshake needs no worker thread and never waits for one."""
        return type(self).check_connect is RouterMixin.check_connect

    def get_handler(self, route: RouteInfo) -> Callable[..., Any]:
        """The handler that serves ``route`` on this connection; override to wrap it."""
        return resolve(self, route, route.handler)

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
        delay = 0.5
        while True:
            try:
                return await self._layer_receive()
            except Exception as exc:
                _reraise_cancellation(exc)
                logger.warning("Channel layer unavailable (%s); pushes to this connection resume when it is back.",
                               exc or type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                if await self._rejoin_groups():
                    await self.layer_recovered()

    async def _rejoin_groups(self) -> bool:
        """After an outage, join the groups again (a restarted Redis has forgotten them); whether
        the layer answered."""
        try:
            for group in list(self.joined_groups):
                await self.channel_layer.group_add(group, self.channel_name)
        except Exception as exc:
            _reraise_cancellation(exc)  # else still down: the next receive says so and waits longer
            return False
        return True

    async def layer_recovered(self) -> None:
        """Called when the channel layer answers again after an outage, during which pushes to this
        connection were lost. Subscriptions tell their clients to re-read (``resync``)."""

    def _left_on_close(self, group: str, error: Exception) -> None:
        logger.warning("Could not leave group %r on disconnect (%s); the layer expires it.", group, error)

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
        """Accept the connection, or refuse the handshake when ``check_connect()`` says no."""
        if not shutdown.stopping and call_sync(self.check_connect, ()):
            self.accept()
        else:
            self.close()

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        request = self.parse_frame(text_data, bytes_data)
        if isinstance(request, str):
            self.send(text_data=request)
            return
        try:
            frame = run_sync(self._respond(request))  # dispatch() handles the database connections
        finally:
            self._answered(request)
        self.send(text_data=frame)

    def join(self, group: str) -> None:
        """Receive the group's broadcasts on this connection until ``leave()`` or disconnect;
        503 ``channel_layer_unavailable`` when the layer cannot be reached."""
        async_to_sync(group_add)(self.layer_for(group), group, self.channel_name)
        self.joined_groups.add(group)
        self._loop.call_soon_threadsafe(self._keep_joined)

    def leave(self, group: str) -> None:
        async_to_sync(self.layer_for(group).group_discard)(group, self.channel_name)
        self.joined_groups.discard(group)

    def push(self, route: str, payload: Any = None, headers: Mapping[str, Any] | None = None) -> None:
        """Send ``route`` to this connection alone, as a push (a fresh uuid, status 200)."""
        self.send(text_data=push_frame(push_body(route, payload, headers, self.json_encoder)))

    def router_push(self, event: dict[str, Any]) -> None:
        """A broadcast to one of this connection's groups."""
        self.send(text_data=push_frame(event["body"]))

    def websocket_disconnect(self, message: dict[str, Any]) -> None:
        for group in list(self.joined_groups):
            try:
                self.leave(group)
            except Exception as exc:
                self._left_on_close(group, exc)
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
        """Accept the connection, or refuse the handshake when ``check_connect()`` says no."""
        if shutdown.stopping:
            allowed = False
        elif iscoroutinefunction(self.check_connect):
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
            await self.send(text_data=request)
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
        await self.send(text_data=frame)

    async def join(self, group: str) -> None:
        """Receive the group's broadcasts on this connection until ``leave()`` or disconnect;
        503 ``channel_layer_unavailable`` when the layer cannot be reached."""
        await group_add(self.layer_for(group), group, self.channel_name)
        self.joined_groups.add(group)
        self._keep_joined()

    async def leave(self, group: str) -> None:
        await self.layer_for(group).group_discard(group, self.channel_name)
        self.joined_groups.discard(group)

    async def push(self, route: str, payload: Any = None, headers: Mapping[str, Any] | None = None) -> None:
        """Send ``route`` to this connection alone, as a push (a fresh uuid, status 200)."""
        await self.send(text_data=push_frame(push_body(route, payload, headers, self.json_encoder)))

    async def router_push(self, event: dict[str, Any]) -> None:
        """A broadcast to one of this connection's groups."""
        await self.send(text_data=push_frame(event["body"]))

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Cancel the connection's unfinished requests (nobody is left to read their replies)
        and leave its groups."""
        for task in list(self._pending):
            task.cancel()
        for group in list(self.joined_groups):
            try:
                await self.leave(group)
            except Exception as exc:
                self._left_on_close(group, exc)
        await super().websocket_disconnect(message)
