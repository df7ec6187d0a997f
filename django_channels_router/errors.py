"""Errors a route can raise, and the one place where an exception becomes a reply.

Every failure of the pipeline ends in :func:`reply_for_exception`, so each row of the
protocol's error table is decided here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404

from .status import StatusCodes

try:  # DRF is optional; its exceptions map to what DRF answers over HTTP.
    from rest_framework import exceptions as drf_exceptions
except ImportError:  # pragma: no cover - exercised only without DRF installed
    drf_exceptions = None  # type: ignore[assignment]

__all__ = ["SocketError", "reply_for_exception"]

logger = logging.getLogger("django_channels_router")

NOT_FOUND_DETAIL = "Not found."
PERMISSION_DENIED_DETAIL = "You do not have permission to perform this action."
NOT_AUTHENTICATED_DETAIL = "Authentication credentials were not provided."


class SocketError(Exception):
    """Answer the current request with ``status`` and ``{"detail": ..., "code": ...}``.

    Raise it from a hydrate, handler, dehydrate or access check to stop the request the
    way ``raise Http404`` stops a Django view::

        raise SocketError(StatusCodes.CONFLICT, "Title already taken.", code="conflict")
    """

    def __init__(self, status: int, detail: str, code: str = "error", headers: Mapping[str, Any] | None = None):
        if type(status) is bool or not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"SocketError status must be an int from 100 to 599, got {status!r}")
        if headers is not None and not isinstance(headers, Mapping):
            raise TypeError(f"SocketError headers must be a mapping or None, got {type(headers).__name__}")
        super().__init__(detail)
        self.status = int(status)
        self.detail = detail
        self.code = code
        self.headers = None if headers is None else dict(headers)

    @property
    def payload(self) -> dict[str, str]:
        return {"detail": self.detail, "code": self.code}


class InvalidResult(SocketError):
    """A handler broke the result contract: a programming error, logged with its reason."""

    def __init__(self, reason: str):
        detail = "The handler returned an invalid result."
        super().__init__(StatusCodes.INTERNAL_SERVER_ERROR, f"{detail} {reason}" if settings.DEBUG else detail,
                         "invalid_result")
        self.reason = reason


def access_refused(user: Any, denied: str = PERMISSION_DENIED_DETAIL,
                   challenge: Callable[[], str | None] | None = None) -> SocketError:
    """The answer to a request refused access: 401 ``not_authenticated`` for an anonymous user,
    so the client knows to log in (with ``WWW-Authenticate: challenge()`` when that gives one),
    403 ``permission_denied`` with ``denied`` for anyone else."""
    if getattr(user, "is_authenticated", False):
        return SocketError(StatusCodes.FORBIDDEN, denied, "permission_denied")
    authenticate = None if challenge is None else challenge()
    return SocketError(StatusCodes.UNAUTHORIZED, NOT_AUTHENTICATED_DETAIL, "not_authenticated",
                       {"WWW-Authenticate": authenticate} if authenticate else None)


def is_client_error(exc: Exception) -> bool:
    """Whether :func:`reply_for_exception` answers ``exc`` with a 4xx (without logging it)."""
    if isinstance(exc, SocketError):
        return exc.status < 500
    if isinstance(exc, (Http404, PermissionDenied)):
        return True
    return drf_exceptions is not None and isinstance(exc, drf_exceptions.APIException) and exc.status_code < 500


def reply_for_exception(exc: Exception, route: str | None, uuid: Any = None) -> tuple[int, Any, dict[str, Any] | None]:
    """Map an exception raised while serving ``route`` to ``(status, payload, headers)``.

    DRF exceptions and Django's ``Http404``/``PermissionDenied`` get the status and body
    DRF would send over HTTP; anything unexpected is a 500 that hides its text unless
    ``DEBUG`` is on, and is logged with its traceback.
    """
    if isinstance(exc, InvalidResult):
        logger.error("Invalid result from route %r (uuid %r): %s", route, uuid, exc.reason)
    if isinstance(exc, SocketError):
        return exc.status, exc.payload, exc.headers
    if isinstance(exc, (Http404, PermissionDenied)):
        if drf_exceptions is not None:  # as DRF's exception_handler: the message is kept
            exc = (drf_exceptions.NotFound if isinstance(exc, Http404) else drf_exceptions.PermissionDenied)(*exc.args)
        else:
            status, default = (404, NOT_FOUND_DETAIL) if isinstance(exc, Http404) else (403, PERMISSION_DENIED_DETAIL)
            return status, {"detail": str(exc.args[0]) if exc.args and exc.args[0] is not None else default}, None
    if drf_exceptions is not None and isinstance(exc, drf_exceptions.APIException):
        return _drf_reply(exc)
    if isinstance(exc, (OperationalError, InterfaceError)):  # the database is down or went away
        logger.error("Database unavailable while handling route %r (uuid %r)", route, uuid, exc_info=exc)
        return (StatusCodes.SERVICE_UNAVAILABLE,
                {"detail": "The database is unavailable; retry later.", "code": "database_unavailable"}, None)
    logger.error("Error while handling route %r (uuid %r)", route, uuid, exc_info=exc)
    detail = f"{type(exc).__name__}: {exc}" if settings.DEBUG else "A server error occurred."
    return StatusCodes.INTERNAL_SERVER_ERROR, {"detail": detail, "code": "handler_error"}, None


def _drf_reply(exc: Any) -> tuple[int, Any, dict[str, Any] | None]:
    """The same status, body and headers as ``rest_framework.views.exception_handler``."""
    headers: dict[str, Any] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    body = exc.detail if isinstance(exc.detail, (list, dict)) else {"detail": exc.detail}
    return exc.status_code, body, headers or None
