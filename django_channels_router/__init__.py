"""Named routes, request/response with status codes, and hydrate/dehydrate for Channels consumers."""

from .consumers import AsyncSocketRouterConsumer, RouterMixin, SocketRouterConsumer
from .errors import SocketError
from .protocol import Envelope, SocketResult
from .routes import RouteInfo
from .status import StatusCodes

__all__ = [
    "AsyncSocketRouterConsumer",
    "Envelope",
    "RouteInfo",
    "RouterMixin",
    "SocketError",
    "SocketResult",
    "SocketRouterConsumer",
    "StatusCodes",
]
