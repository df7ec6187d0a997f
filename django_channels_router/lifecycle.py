"""A connection's life: the handshake it is let in by, its outbox while it is served, and its end,
by the client, by a client too slow to read, or by a restart that lets its requests finish."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar

from . import groups, shutdown
from .conf import Limits
from .outbox import Outbox
from .workers import worker_owner

__all__ = ["ConnectionLifecycle"]

logger = logging.getLogger("django_channels_router")
#: Refused handshakes, with their reason: the client sees only the HTTP status.
security_logger = logging.getLogger("django_channels_router.security")


class ConnectionLifecycle:
    """Open, serve and close one connection; on a restart, drain it first (see :mod:`.shutdown`)."""

    #: Refuse the handshake (HTTP 403) to connections without an authenticated user.
    login_required: ClassVar[bool] = False
    #: Set when the server is stopping: requests that arrive are answered 503, not run.
    restarting = False

    scope: dict[str, Any]
    channel_layer: Any
    limits: Limits
    joined_groups: set[str]

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

    @property
    def user(self) -> Any:
        """The connection's user (from ``AuthMiddlewareStack``), or ``None`` without one."""
        return self.scope.get("user")

    def check_connect(self) -> bool:
        """Whether to accept this connection (sync or async; override for your own policy).

        A refused connection is refused at the handshake, before it opens (HTTP 403), which
        every ASGI server supports and after which the browser client stops reconnecting.
        """
        return not self.login_required or bool(getattr(self.user, "is_authenticated", False))

    def _refuse(self) -> None:
        """Log why the handshake is refused (the client is told only HTTP 403)."""
        if not ConnectionLifecycle.check_connect(self):
            why = "login_required and the user is not authenticated"
        else:
            why = f"{type(self).__name__}.check_connect() returned False"
        security_logger.warning("Refused the WebSocket handshake to %s (HTTP 403): %s (user %s).",
                                self.scope.get("path", "?")[:200], why, self.user or "(none)")

    def _checks_connect_inline(self) -> bool:
        """Whether ``check_connect`` runs no user code (the default reads two attributes), so
        that a handshake needs no worker thread and never waits for one."""
        return type(self).check_connect is ConnectionLifecycle.check_connect

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
            self._leaving = asyncio.ensure_future(groups.leave_all(self))
