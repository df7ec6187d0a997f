"""Named routes, request/response with status codes, and hydrate/dehydrate for Channels consumers."""

__version__ = "2.0.0.dev0"  # the one place the version is set: pyproject.toml reads it from here

from .consumers import AsyncSocketRouterConsumer, RouterMixin, SocketRouterConsumer
from .errors import SocketError
from .protocol import Envelope, SocketResult
from .push import BroadcastError, broadcast, broadcast_sync
from .routes import RouteInfo
from .status import StatusCodes
from .workers import run_in_worker

__all__ = [
    "__version__",
    "AsyncSocketRouterConsumer",
    "BroadcastError",
    "Envelope",
    "RouteInfo",
    "RouterMixin",
    "SocketError",
    "SocketResult",
    "SocketRouterConsumer",
    "StatusCodes",
    "broadcast",
    "broadcast_sync",
    "run_in_worker",
]
