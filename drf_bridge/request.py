"""A DRF ``Request`` for one socket message, so DRF's own classes work on it unchanged.

Authentication, permission, throttle, filter and pagination classes read ``request.user``,
``request.method``, ``request.META``, ``request.query_params`` and ``request.data``: here
they come from the connection's scope and the message's headers and payload.
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, QueryDict
from django.utils.datastructures import MultiValueDict
from rest_framework.exceptions import ParseError
from rest_framework.request import Request

__all__ = ["SocketRequest", "build_request", "query_params_from"]

class SocketRequest(Request):
    """A DRF ``Request`` whose ``data`` is the message's payload as sent (nothing to parse).

    ``route`` is the route being served, ``kwargs`` holds the URL route's kwargs and the object
    id, and ``paginator``/``paginated`` this request's pagination (a connection serves many
    requests at once, so none of this can live on the consumer).
    """

    def __init__(self, http_request: HttpRequest, data: Any, route: Any, kwargs: dict[str, Any]) -> None:
        super().__init__(http_request)
        # Request.data reads these; setting them skips the body parsing a socket has no use for.
        self._data = self._full_data = data
        self._files = MultiValueDict()
        self.route = route
        self.kwargs = kwargs
        self.paginator: Any = None
        self.paginated = False
        self.version = self.versioning_scheme = None

    def settle_user(self, user: Any, auth: Any = None, authenticator: Any = None) -> None:
        """Fix who this request is, so DRF never authenticates it again on its own."""
        self._authenticator = authenticator
        self.user, self.auth = user, auth


#: Headers that only the connection's handshake may carry: proxies set them (and strip a
#: client's), and a message passes no proxy, so a message may not set or replace them.
HANDSHAKE_ONLY_HEADERS = frozenset({
    "host", "cookie", "origin", "forwarded", "x-real-ip", "x-client-ip", "true-client-ip", "cf-connecting-ip",
    "remote-user", "x-remote-user", "x-auth-user", "x-authenticated-user", "x-auth-request-user",
    "x-auth-request-email", "content-length", "content-type", "connection", "upgrade",
})


#: An HTTP header name: RFC 9110 token characters (ASCII only), less "_" (see build_request).
HEADER_NAME = re.compile(r"[-!#$%&'*+.^`|~0-9A-Za-z]+")


def build_request(scope: dict[str, Any], method: str, headers: Mapping[str, Any], data: Any,
                  query: QueryDict, route: Any) -> SocketRequest:
    """The request a DRF view would get for this message, over HTTP ``method``.

    Django's own ``ASGIRequest`` reads the connection's scope once per connection; each message
    gets a copy of it. The message's headers are added to the handshake's as HTTP headers
    (``headers["Authorization"]`` becomes ``META["HTTP_AUTHORIZATION"]``), except that they never
    replace one the handshake has nor set one of :data:`HANDSHAKE_ONLY_HEADERS`, ``X-Forwarded-*``
    or the one ``settings.SECURE_PROXY_SSL_HEADER`` names. Only names made of RFC 9110 token
    characters become headers (ASCII, so that no Unicode case mapping turns ``X-Remote-U\u017fer``
    into ``X-Remote-User`` after the check); names with underscores are dropped too, as Django
    drops them, so ``X_Forwarded_For`` cannot pose as ``X-Forwarded-For``. Dropped names stay in
    the handler's ``headers``. The query string is ``query``.
    """
    http = copy.copy(_handshake_request(scope))
    meta = http.META = dict(http.META)
    for name, value in headers.items():
        if isinstance(name, str) and HEADER_NAME.fullmatch(name) and not _handshake_only(
                key := f"HTTP_{name.upper().replace('-', '_')}"):
            meta.setdefault(key, _header_value(value).decode("latin1"))
    meta["REQUEST_METHOD"] = http.method = method
    meta["QUERY_STRING"] = query.urlencode()
    http.GET = query
    http.COOKIES = dict(scope.get("cookies", {}))
    current = {key: scope[key] for key in ("user", "session") if key in scope}  # as they are now
    http.scope = {**http.scope, **current}
    for key, value in current.items():
        if value is not None:
            setattr(http, key, value)
    kwargs = dict((scope.get("url_route") or {}).get("kwargs", {}))
    return SocketRequest(http, data, route, kwargs)


#: Where a connection's scope keeps the request its handshake makes (see :func:`build_request`).
HANDSHAKE_REQUEST = "drf_bridge.handshake_request"


def _handshake_request(scope: dict[str, Any]) -> ASGIRequest:
    """The handshake as a Django request, made once per connection and kept in its scope."""
    request = scope.get(HANDSHAKE_REQUEST)
    if request is None:
        request = scope[HANDSHAKE_REQUEST] = ASGIRequest({
            **scope, "type": "http", "method": "GET", "query_string": b"",
            "scheme": "https" if scope.get("scheme") == "wss" else "http",
        }, io.BytesIO())
    return request


#: :data:`HANDSHAKE_ONLY_HEADERS` as the ``META`` keys they become.
_HANDSHAKE_ONLY_META = frozenset(f"HTTP_{name.upper().replace('-', '_')}" for name in HANDSHAKE_ONLY_HEADERS)


def _handshake_only(key: str) -> bool:
    """Whether the ``META`` key ``key`` is one only the handshake may set: a proxy's header,
    ``X-Forwarded-*``, ``Sec-WebSocket-*``, or the one ``SECURE_PROXY_SSL_HEADER`` names."""
    return (key in _HANDSHAKE_ONLY_META or key.startswith(("HTTP_X_FORWARDED_", "HTTP_SEC_WEBSOCKET_"))
            or key == (settings.SECURE_PROXY_SSL_HEADER or (None,))[0])


def _header_value(value: Any) -> bytes:
    return (value if isinstance(value, str) else json.dumps(value)).encode()


def query_params_from(payload: Any) -> QueryDict:
    """Query parameters from a ``list`` payload: ``{"search": "x", "page": 2, "tag": ["a", "b"]}``
    becomes ``?search=x&page=2&tag=a&tag=b``. Booleans become ``true``/``false``; ``None`` is left out.
    Like Django for a query string, at most ``settings.DATA_UPLOAD_MAX_NUMBER_FIELDS`` values.
    """
    query = QueryDict(mutable=True)
    if payload is None:
        return query
    if not isinstance(payload, Mapping):
        raise ParseError("The payload of this route must be an object of query parameters.")
    most = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    count = 0
    for key, value in payload.items():
        values = value if isinstance(value, list) else [value]
        count += len(values)
        if most is not None and count > most:
            raise ParseError(f"The number of query parameters exceeded {most} "
                             "(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS).")
        query.setlist(str(key), [_param(key, item) for item in values if item is not None])
    return query


def _param(key: Any, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ParseError(f"Query parameter {key!r} must be a string, number, boolean or a list of them.")
