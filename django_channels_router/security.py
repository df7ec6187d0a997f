"""Channels' origin validators, made to say why they refuse a handshake.

Channels' ``OriginValidator`` answers HTTP 403 before any consumer runs and logs nothing, so a
client that sends no ``Origin`` (or a foreign one) is refused with no word anywhere. These are
drop-in replacements that decide exactly as Channels' do and log each refusal at WARNING on the
``django_channels_router.security`` logger, with the path and the ``Origin``::

    from django_channels_router.security import AllowedHostsOriginValidator

The router's own refusals (``login_required``, ``check_connect()``) log on the same logger.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from channels.security import websocket

from .lifecycle import security_logger

__all__ = ["AllowedHostsOriginValidator", "OriginValidator"]


class OriginValidator(websocket.OriginValidator):
    """Channels' ``OriginValidator`` that logs the handshakes it refuses."""

    def __init__(self, application: Any, allowed_origins: list[str], name: str = "OriginValidator") -> None:
        super().__init__(application, allowed_origins)
        self.name = name

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            origin = dict(scope.get("headers", [])).get(b"origin")  # the last one, as Channels reads it
            if not self.valid_origin(urlparse(origin.decode("latin1")) if origin is not None else None):
                said = "no Origin header" if origin is None else f"Origin {origin.decode('latin1')[:200]!r}"
                security_logger.warning(
                    "Refused the WebSocket handshake to %s (HTTP 403): %s refused %s; allowed: %s.",
                    scope.get("path", "?")[:200], self.name, said, self.allowed_origins)
        return await super().__call__(scope, receive, send)


def AllowedHostsOriginValidator(application: Any) -> OriginValidator:  # noqa: N802 (Channels' name)
    """Channels' ``AllowedHostsOriginValidator`` (``ALLOWED_HOSTS``; in DEBUG with none, the
    local hosts) that logs the handshakes it refuses."""
    allowed = websocket.AllowedHostsOriginValidator(application).allowed_origins
    return OriginValidator(application, allowed, "AllowedHostsOriginValidator (ALLOWED_HOSTS)")
