"""Server push: messages the server sends without a request, to one connection or to groups.

A push uses the reply envelope with a fresh server-made ``uuid`` (docs/reference/protocol.md,
"Server push"), so the client hands it to ``onMessageReceived``. A broadcast is encoded once, by the
sender, and travels the channel layer to every member of the group, in this process or any
other (with channels-redis); the members of one process share one copy of its frame.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from weakref import WeakKeyDictionary

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder

from .errors import SocketError
from .layers import PerLoop, call_limit, on_this_loop
from .protocol import RESERVED_ROUTES, ROUTE_NAME, encode_frame, new_uuid
from .status import StatusCodes
from .workers import send_soon

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
    try:
        layer.require_valid_group_name(group)
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
_slots: PerLoop[asyncio.Semaphore] = WeakKeyDictionary()


def call_slots(layer: Any) -> asyncio.Semaphore:
    """What bounds the router's calls to ``layer`` in flight on this event loop (see
    :func:`~django_channels_router.layers.call_limit`): a burst waits for a connection of the
    pool instead of failing with ``Too many connections``."""
    return on_this_loop(_slots, layer, lambda layer: asyncio.Semaphore(call_limit(layer)))


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


def group_send_from_sync(layer: Any, group: str, message: dict[str, Any], on_error: Callable[[BaseException], None],
                         then: Callable[[asyncio.AbstractEventLoop], None] | None = None) -> None:
    """:func:`group_send` from sync code that must not fail on the layer's account.

    In an async consumer's worker thread the send is started by the consumer's event loop
    (:func:`~django_channels_router.workers.send_soon`), not waited for; elsewhere (a view, a shell, a task) it is
    waited for. A failure is passed to ``on_error`` either way; ``then``, if given, is called
    on the event loop that made the send once it is over, sent or not.
    """
    async def send() -> None:
        try:
            await group_send(layer, group, message)
        finally:
            if then is not None:
                then(asyncio.get_running_loop())

    send_soon(send, on_error)


def broadcast_sync(group: str, route: str, payload: Any = None, headers: Mapping[str, Any] | None = None, *,
                   layer: str = "default", timeout: float = 5.0) -> None:
    """:func:`broadcast` for sync code: Django views, management commands, task workers."""
    async_to_sync(broadcast)(group, route, payload, headers, layer=layer, timeout=timeout)
