"""The two consumers: thin adapters that feed frames to the shared pipeline.

``RouterMixin`` holds the route table, the limits and the pipeline's seams, and is made of one
part per concern, as Channels layers its consumers: :class:`~.admission.FrameAdmission` (which
frames run), :class:`~.groups.GroupMembership` (groups and the channel layer),
:class:`~.outbox.FrameSending` (replies and pushes) and :class:`~.lifecycle.ConnectionLifecycle`
(handshake, restart, close).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar
from uuid import uuid4

from asgiref.sync import async_to_sync, iscoroutinefunction
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer, JsonWebsocketConsumer
from django.core import checks
from django.core.serializers.json import DjangoJSONEncoder
from django.db import router as db_router

from . import groups, shutdown
from .admission import FrameAdmission, ParsedRequest
from .conf import Limits, rate, timeout
from .groups import GroupMembership
from .idempotency import app_missing
from .lifecycle import ConnectionLifecycle
from .outbox import FrameSending
from .pipeline import Steps, current_uuid, resolve, respond, run_async, run_sync
from .protocol import error_frame
from .push import push_frame
from .routes import RouteInfo, build_route_table, declared_routes, resolve_on_class
from .status import StatusCodes
from .workers import call_sync, run_in_worker

__all__ = ["RouterMixin", "SocketRouterConsumer", "AsyncSocketRouterConsumer"]

logger = logging.getLogger("django_channels_router")


class RouterMixin(FrameAdmission, GroupMembership, FrameSending, ConnectionLifecycle):
    """What both consumers share: the route table, the limits and the seams of the pipeline; each
    other concern is a part of its own (frame admission, group membership, sending, the
    connection's lifecycle)."""

    #: ``{route name: RouteInfo}``, built from the ``routes`` declaration when the class is created.
    route_table: ClassVar[dict[str, RouteInfo]] = {}
    #: Encoder for replies; Django's handles dates, decimals, UUIDs and lazy strings.
    json_encoder: ClassVar[type[json.JSONEncoder]] = DjangoJSONEncoder
    #: Per-class limits; ``None`` takes ``settings.CHANNELS_ROUTER`` or the protocol's default.
    #: The largest frame a client may send, in bytes; larger ones are answered 413 ``message_too_large``.
    max_message_bytes: int | None = None
    #: JSON values a frame may hold, counted before parsing; more are answered 413 ``too_many_values``.
    max_message_values: int | None = None
    #: Async consumers: requests of one connection running at once; the others wait their turn.
    max_running_requests: int | None = None
    #: Async consumers: requests of one connection that may wait for a turn; past them, 429 ``too_many_requests``.
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
    #: Optional consumer-wide access rule, run for every route before the route's own ``access``:
    #: ``def check_access(self, route: RouteInfo, headers: dict, payload) -> bool`` (sync or async).
    #: Returning False answers 401 to an anonymous user and 403 to anyone else.
    check_access: ClassVar[Callable[..., Any] | None] = None
    #: Optional first step of every request, before ``check_access``, for extensions that build
    #: their own request object: ``def prepare_request(self, route, headers, payload) -> None``
    #: (sync or async; it refuses by raising). The DRF bridge builds its DRF request here and runs
    #: DRF's ``initial()`` (authentication, permissions, throttles).
    prepare_request: ClassVar[Callable[..., Any] | None] = None
    #: Sync hydrates, handlers and dehydrates run on the router's worker pool, so slow ones of
    #: different connections run side by side. Set True to run them on the single thread Django
    #: and Channels share, for code that is not thread-safe (then they run one at a time).
    thread_sensitive: ClassVar[bool] = False

    #: Routes that run once per ``idempotency-key``: a list of route names, or ``"__all__"``. A
    #: route's own ``"idempotent"`` option wins. Model routers accept keys on every route but GET ones.
    idempotent_routes: ClassVar[Collection[str] | str] = ()

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
    def route_errors(cls, route: RouteInfo) -> set[int]:
        """The error statuses this class can answer ``route`` with (the schema lists them); an
        override adds those of its own steps to ``super()``'s."""
        errors = {500, 503}  # a handler that fails; server_restarting and server_busy (parse_frame)
        if route.validate is not None:
            errors.add(400)  # the declared "request" (pipeline)
        if route.access is not None or cls.check_access is not None:
            errors |= {401, 403}  # the access rules (pipeline)
        if not callable(resolve_on_class(cls, route.handler)):
            errors.add(501)  # not_implemented (pipeline.resolve)
        if rate(cls.rate_limit):
            errors.add(429)  # throttled (parse_frame)
        if cls.route_is_idempotent(route):
            errors |= {400, 409, 422}  # a bad idempotency-key, one in progress, one reused (idempotency)
        return errors

    @classmethod
    def route_is_idempotent(cls, route: RouteInfo) -> bool:
        """Whether a request to ``route`` with an ``idempotency-key`` runs once per identity and key:
        the route's ``"idempotent"`` option, else whether ``idempotent_routes`` names it."""
        declared = route.options.get("idempotent")
        if declared is not None:
            return bool(declared)
        return cls.idempotent_routes == "__all__" or route.name in cls.idempotent_routes

    def idempotency_identity(self) -> str:
        """Who an ``idempotency-key`` belongs to: the user, else the connection's session, else the
        connection itself (then a key protects only within this connection)."""
        user = self.user
        if getattr(user, "is_authenticated", False):
            return f"user:{user.pk}"
        session_key = getattr(self.scope.get("session"), "session_key", None)
        if session_key:
            return f"session:{session_key}"
        if "_connection_identity" not in self.__dict__:
            self._connection_identity = uuid4().hex
        return f"connection:{self._connection_identity}"

    def idempotency_database(self, route: RouteInfo) -> str:
        """The database alias of the records of ``route``'s keys: the one its writes go to, so that
        both commit together (the model routers' model's; here, where the router sends the record)."""
        from .models import IdempotencyKey

        return db_router.db_for_write(IdempotencyKey)

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
    def request_uuid(self) -> str | int:
        """The uuid of the request being served (pushes that belong to it carry it)."""
        return current_uuid.get()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.limits = Limits.for_consumer(self)  # before the parts' own set-up, which reads it
        super().__init__(*args, **kwargs)

    def _respond(self, request: ParsedRequest) -> Steps:
        return respond(self, request.uuid, request.route, request.headers, request.payload)


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
            self._refuse()
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
        self._loop.call_soon_threadsafe(self._broadcast, event)

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
            self._refuse()
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

    @classmethod
    def route_errors(cls, route: RouteInfo) -> set[int]:
        """Also 429 too_many_requests (``_refusal``), and 504 with a request timeout (``_serve``)."""
        return super().route_errors(route) | {429} | ({504} if timeout(cls.request_timeout) else set())

    def _refusal(self, uuid: str | int, route: str, weight: int) -> str | None:
        if len(self._pending) >= self.limits.running + self.limits.waiting:
            return error_frame(uuid, route, StatusCodes.TOO_MANY_REQUESTS, "too_many_requests",
                               "Too many requests are waiting on this connection; retry later.")
        return super()._refusal(uuid, route, weight)

    async def _serve(self, request: ParsedRequest) -> None:
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
        self._broadcast(event)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Cancel the connection's unfinished requests (nobody is left to read their replies)
        and leave its groups."""
        for task in list(self._pending):
            task.cancel()
        for group in list(self.joined_groups):
            await self.leave(group)
        await super().websocket_disconnect(message)


@checks.register()
def check_idempotency_app(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``channels_router.E011``. Registered here, not with the app's checks: it reports that the app
    is missing from ``INSTALLED_APPS``."""
    return app_missing(RouterMixin)
