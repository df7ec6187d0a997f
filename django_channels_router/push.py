"""Server push: messages the server sends without a request, to one connection or to groups.

A push uses the reply envelope with a fresh server-made ``uuid`` (PROTOCOL.md, "Server
push"), so the client hands it to ``onMessageReceived``. A broadcast is encoded once, by the
sender, and travels the channel layer to every member of the group, in this process or any
other (with channels-redis); the members of one process share one copy of its frame.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder

from .errors import SocketError
from .layers import call_limit
from .protocol import RESERVED_ROUTES, ROUTE_NAME, encode_frame, new_uuid
from .status import StatusCodes

__all__ = ["BroadcastError", "broadcast", "broadcast_sync", "group_send", "group_send_from_sync"]

logger = logging.getLogger("django_channels_router")

#: The channel-layer message type consumers handle (method ``router_push``).
PUSH_TYPE = "router.push"


class BroadcastError(Exception):
    """The channel layer could not take a broadcast (Redis unreachable, for instance)."""


def push_frame(route: str, payload: Any, headers: Mapping[str, Any] | None,
               encoder: type[json.JSONEncoder] = DjangoJSONEncoder, uuid: str | None = None) -> str:
    """A push's frame, with a fresh uuid unless given: a broadcast is encoded once, by its
    sender, and every member gets the same frame (its uuid is new to every one of them).

    Raises ``ValueError`` for a route no reply may carry and ``TypeError``/``ValueError`` for a
    payload JSON cannot hold, where the push is made rather than in every receiver.
    """
    if not isinstance(route, str) or not ROUTE_NAME.fullmatch(route) or route in RESERVED_ROUTES:
        raise ValueError(f"Cannot push route {route!r}: use a valid route name other than PING and PONG.")
    if headers is not None and not isinstance(headers, Mapping):
        raise TypeError(f"Push headers must be a mapping or None, got {type(headers).__name__}.")
    return encode_frame(uuid or new_uuid(), route, StatusCodes.OK, headers, payload, encoder)


def require_group_name(layer: Any, group: str) -> None:
    """Channels' own rule for group names, with the name in the message."""
    # require_valid_group_name is channels >= 4.2.1; older releases have only valid_group_name.
    check = getattr(layer, "require_valid_group_name", None) or layer.valid_group_name
    try:
        check(group)
    except TypeError as exc:
        raise ValueError(f"Invalid group name {group!r}: {exc}") from None


def channel_layer(alias: str = "default") -> Any:
    layer = get_channel_layer(alias)
    if layer is None:
        raise ImproperlyConfigured(f"Pushes need a channel layer: settings.CHANNEL_LAYERS has no {alias!r}.")
    return layer


async def broadcast(group: str, route: str, payload: Any = None, headers: Mapping[str, Any] | None = None, *,
                    layer: str = "default", timeout: float = 5.0) -> None:
    """Push ``route`` with ``payload`` to every connection in ``group``, in any process.

    Callable from async code anywhere (a consumer, an async view, a task). Raises
    ``ValueError`` for a bad group or route name, ``TypeError`` for a payload JSON cannot
    hold, and :class:`BroadcastError` when the channel layer fails or takes longer than
    ``timeout`` seconds, so a broadcast never hangs its caller.
    """
    channel = channel_layer(layer)
    require_group_name(channel, group)
    uuid = new_uuid()
    message = {"type": PUSH_TYPE, "uuid": uuid, "route": route, "frame": push_frame(route, payload, headers, uuid=uuid)}
    try:
        await group_send(channel, group, message, timeout)
    except Exception as exc:  # the layer's own: redis errors, a full channel, a time-out
        reason = str(exc) or type(exc).__name__
        raise BroadcastError(f"Could not broadcast {route!r} to group {group!r}: {reason}") from exc


#: One semaphore per channel layer and event loop (channels-redis' pools are per loop too).
_slots: WeakKeyDictionary[Any, WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]] = WeakKeyDictionary()


def call_slots(layer: Any) -> asyncio.Semaphore:
    """What bounds the router's calls to ``layer`` in flight on this event loop (see
    :func:`~django_channels_router.layers.call_limit`): a burst waits for a connection of the
    pool instead of failing with ``Too many connections``."""
    loop = asyncio.get_running_loop()
    per_loop = _slots.setdefault(layer, WeakKeyDictionary())
    slots = per_loop.get(loop)
    if slots is None:
        slots = per_loop[loop] = asyncio.Semaphore(call_limit(layer))
    return slots


async def layer_call(layer: Any, method: str, *args: Any, timeout: float = 5.0) -> Any:
    """``await layer.<method>(*args)`` within ``timeout`` (its wait for a turn included, see
    :func:`call_slots`), tried twice: the first use of a pooled connection after a Redis restart
    fails once before the pool reconnects."""
    async with asyncio.timeout(timeout), call_slots(layer):
        try:
            return await getattr(layer, method)(*args)
        except Exception as exc:  # redis' ConnectionError is not the built-in one
            logger.info("Retrying %s%r after %s", method, args[:1], exc or type(exc).__name__)
            return await getattr(layer, method)(*args)


async def group_send(layer: Any, group: str, message: dict[str, Any], timeout: float = 5.0) -> None:
    """``layer.group_send``, as :func:`layer_call` makes it."""
    await layer_call(layer, "group_send", group, message, timeout=timeout)


async def group_add(layer: Any, group: str, channel: str) -> None:
    """``layer.group_add``, as :func:`layer_call` makes it; a layer that still fails is a 503
    ``channel_layer_unavailable`` for the request that wanted the group."""
    try:
        await layer_call(layer, "group_add", group, channel)
    except Exception as exc:
        logger.warning("Could not join group %r: the channel layer is unavailable (%s)", group,
                       exc or type(exc).__name__)
        raise SocketError(StatusCodes.SERVICE_UNAVAILABLE, "The channel layer is unavailable; retry later.",
                          "channel_layer_unavailable") from exc


class WorkerSends:
    """Sends that other threads ask an event loop to start: the async consumers' worker threads
    (see :func:`group_send_from_sync`), whose sends start when their worker call returns, and
    within ``FLUSH_EVERY`` seconds while it runs. The reply never waits on the channel layer,
    the worker never waits on the loop, and a long call's sends are not held back.

    One per loop, with one timer, armed only while sends wait: its cost does not grow with the
    number of worker calls waiting (a timer per call cost a change fanned out to thousands of
    subscribers tens of thousands of timer callbacks a second)."""

    FLUSH_EVERY = 0.05
    _running: set[asyncio.Future[None]] = set()  # the loop keeps only weak references to tasks
    _of_loop: WeakKeyDictionary[asyncio.AbstractEventLoop, WorkerSends] = WeakKeyDictionary()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> WorkerSends:
        """The sends of ``loop``."""
        sends = cls._of_loop.get(loop)
        if sends is None:
            sends = cls._of_loop.setdefault(loop, cls(loop))
        return sends

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: deque[tuple[Callable[[], Awaitable[None]], Callable[[BaseException], None]]] = deque()
        self._armed = False  # a flush is on its way (set from any thread, cleared on the loop)
        self._timer: asyncio.TimerHandle | None = None  # touched on the loop only

    def add(self, send: Callable[[], Awaitable[None]], on_error: Callable[[BaseException], None]) -> None:
        """From any thread (a deque's append and popleft are thread-safe): ``send()`` is started
        on the loop within ``FLUSH_EVERY`` seconds, or sooner by :meth:`flush`."""
        self.waiting.append((send, on_error))
        if not self._armed:
            self._armed = True
            try:
                self.loop.call_soon_threadsafe(self._arm)
            except RuntimeError as exc:  # the loop is closed: the process is going away
                while self.waiting:
                    self.waiting.popleft()[1](exc)

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(self.FLUSH_EVERY, self.flush)

    def flush(self) -> None:
        """On the loop: start every waiting send (when a worker call returns, and on the timer)."""
        self._armed = False  # before the deque is emptied: a send added from now on arms again
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self.waiting:
            send, on_error = self.waiting.popleft()
            task: asyncio.Future[None] = asyncio.ensure_future(send(), loop=self.loop)
            self._running.add(task)
            task.add_done_callback(partial(self._done, on_error))

    @classmethod
    def _done(cls, on_error: Callable[[BaseException], None], task: asyncio.Task[None]) -> None:
        cls._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            on_error(task.exception())  # type: ignore[arg-type]


#: The sends of the event loop whose worker call this code runs in, if it runs in one.
worker_sends: ContextVar[WorkerSends | None] = ContextVar("django_channels_router_sends", default=None)


def group_send_from_sync(layer: Any, group: str, message: dict[str, Any], on_error: Callable[[BaseException], None],
                         then: Callable[[asyncio.AbstractEventLoop], None] | None = None) -> None:
    """:func:`group_send` from sync code that must not fail on the layer's account.

    In an async consumer's worker thread the send is started by the consumer's event loop
    (:class:`WorkerSends`), not waited for; elsewhere (a view, a shell, a task) it is
    waited for. A failure is passed to ``on_error`` either way; ``then``, if given, is called
    on the event loop that made the send once it is over, sent or not.
    """
    async def send() -> None:
        try:
            await group_send(layer, group, message)
        finally:
            if then is not None:
                then(asyncio.get_running_loop())

    sends = worker_sends.get()
    if sends is not None and sends.loop.is_running():
        sends.add(send, on_error)
        return
    try:
        async_to_sync(send)()
    except Exception as exc:
        on_error(exc)


def broadcast_sync(group: str, route: str, payload: Any = None, headers: Mapping[str, Any] | None = None, *,
                   layer: str = "default", timeout: float = 5.0) -> None:
    """:func:`broadcast` for sync code: Django views, management commands, task workers."""
    async_to_sync(broadcast)(group, route, payload, headers, layer=layer, timeout=timeout)
