"""Frame admission: which incoming frames a connection runs, and the answer it gives at once to the rest.

A frame is checked against the protocol (:func:`~django_channels_router.protocol.decode_frame`);
a heartbeat is answered at once; then the connection's rate limit, the route table, a restart
in progress and the request byte budgets (per connection and per process) may each answer it
without running anything. A request admitted holds its weight on both budgets until
:meth:`FrameAdmission._answered`, so what the requests of one connection, and of the process,
hold in memory stays bounded.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar, NamedTuple

from .conf import HeldBytes, Limits, TokenBucket, process_requests
from .outbox import Outbox
from .protocol import PING, PONG, FrameError, decode_frame, encode_frame, error_frame
from .routes import RouteInfo
from .status import StatusCodes

__all__ = ["FrameAdmission", "ParsedRequest"]


class ParsedRequest(NamedTuple):
    """A request frame admitted to run: its route found, its weight held on the budgets."""

    uuid: str | int
    route: RouteInfo
    headers: dict[str, Any]
    payload: Any
    weight: int  # what it holds in memory, estimated (protocol.Frame.weight)


class FrameAdmission:
    """Parse each frame and decide whether it runs (a :class:`ParsedRequest`) or is answered now."""

    route_table: ClassVar[dict[str, RouteInfo]]
    limits: Limits
    outbox: Outbox
    restarting: bool  # the server is stopping (see ConnectionLifecycle.restart)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rate_bucket = TokenBucket(*self.limits.rate, time.monotonic) if self.limits.rate else None
        self.held_requests = HeldBytes()

    def parse_frame(self, text_data: str | None, bytes_data: bytes | None) -> ParsedRequest | str:
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
        return self._refusal(uuid, name, weight) or ParsedRequest(uuid, route, headers, payload, weight)

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

    def _answered(self, request: ParsedRequest) -> None:
        """``request`` is answered (or will never be): what it held goes back to the budgets."""
        self.held_requests.give(request.weight)
        process_requests.give(request.weight)
