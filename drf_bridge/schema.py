"""How a model router's routes are documented: as drf-spectacular documents a ViewSet.

The serializer's request and response variants (read-only fields only in replies, write-only
ones only in requests), partial for ``patch``; ``list`` and ``subscribe`` take the query parameters
of the ``filter_backends`` and the paginator, and ``list`` replies in the paginator's shape.
Subscriptions add their pushes. The headers of PROTOCOL v1.2: ``if-none-match`` and the 304 on
``get``, ``if-match`` (and the current ``etag`` on its 412) on writes to one object, ``etag`` on
replies of one object, ``resume-from``/``position``/``resumed`` on ``subscribe`` and ``position``
on every push of a subscription. The statuses are the router's ``route_errors()``. A custom route
(``@socket_route``) says what it declares; a detail one without a ``response`` replies with the
router's serializer when its dehydrate is the router's default (``GenericSocketRouter.replies_with_serializer``).

The routers' ``describe_route``/``describe_pushes`` class methods call this module for the schema
generator (``django_channels_router.contract``), which passes its ``components``: it returns
plain JSON Schema and ``RouteSchema`` fields, as DRF's paginators and filter backends describe
themselves, and imports none of the generator.
"""

from __future__ import annotations

from typing import Any, Protocol

from rest_framework.permissions import SAFE_METHODS

from django_channels_router import RouteInfo
from django_channels_router.routes import resolve_on_class


class Components(Protocol):
    """What this module uses of the generator's ``Components``."""

    UUID: dict[str, Any]

    def serializer(self, serializer: Any, direction: str) -> Any: ...


STANDARD = {
    # route: (success status, request, response)
    "get": (200, None, "response"),
    "list": (200, "query", "list"),
    "create": (201, "request", "response"),
    "update": (200, "request", "response"),
    "patch": (200, "partial", "response"),
    "delete": (204, "null", "null"),
    "subscribe": (201, "query", "subscribed"),
    "unsubscribe": (204, "unsubscribe", "null"),
}
#: Headers of the conditional requests and resumable subscriptions (PROTOCOL v1.2).
ETAG = {"type": "string", "description": "The object's entity tag, as get gives it."}
IF_NONE_MATCH = {"type": "string", "maxLength": 1024, "description": (
    "A tag get gave (or several, comma-separated, or *): the reply is 304 with a null payload while it holds.")}
IF_MATCH = {"type": "string", "maxLength": 1024, "description": (
    "The tag the client last read: 412 precondition_failed and nothing written unless it is still current.")}
POSITION = {"type": "string", "maxLength": 200, "description": (
    "Where the subscription is in the server's history of changes: keep the latest one and send it as "
    "resume-from to continue after a reconnect.")}
RESUME_FROM = {**POSITION, "description": (
    "The last position received for this subscription (same route, payload and other headers): the server "
    "continues it, or replies resumed: false and pushes resync.")}
RESUMED = {"type": "boolean", "description": (
    "Only on a subscribe with resume-from. true: the changes since the position follow as pushes, then live "
    "ones. false: the history does not reach back; a resync push follows (re-read with list/get).")}
#: Reply headers of the routes that carry one object (their 304 too), and of subscribe.
OBJECT_REPLY = {"type": ["object", "null"], "properties": {"etag": ETAG}, "additionalProperties": True}
SUBSCRIBED = {"type": ["object", "null"], "properties": {"position": POSITION, "resumed": RESUMED},
              "additionalProperties": True}


def route_schema(router: Any, route: RouteInfo, components: Components) -> dict[str, Any]:
    """What the document says of one route of ``router`` (a ``GenericSocketRouter``), beyond its
    declarations and statuses: ``RouteSchema`` fields."""
    if route.name in STANDARD and route.handler == f"on_{route.name}":
        status, request_kind, response_kind = STANDARD[route.name]
        serializer = _serializer_class(router)
        standard = {
            "request": _payload(request_kind, router, serializer, components, "request"),
            "response": _payload(response_kind, router, serializer, components, "response"),
            "headers": _request_headers(router, route),
            "status": status, "errors_exhaustive": True, "validation_errors": request_kind in ("request", "partial"),
            **_conditional(route), **_description(router, route)}
        if route.name in ("get", "create", "update", "patch"):
            standard["reply_headers"] = OBJECT_REPLY
        if route.name == "subscribe":
            standard["reply_headers"] = SUBSCRIBED
        return standard
    # A custom route (@socket_route): what it declares; its handler may reply with anything else.
    custom: dict[str, Any] = {
        "headers": _request_headers(router, route), "validation_errors": True,
        **_conditional(route), **_description(router, route)}
    serializer = _serializer_class(router)
    if route.options.get("response") is None and router.replies_with_serializer(route) and serializer is not None:
        custom["response"] = components.serializer(serializer, "response")
    return custom


def _request_headers(router: Any, route: RouteInfo) -> dict[str, Any]:
    """The lookup on detail routes and subscribe, the conditional headers, and subscribe's resume-from."""
    if not route.options.get("detail") and route.name != "subscribe":
        return {"type": ["object", "null"]}
    headers = _detail_headers(router)
    extra: dict[str, Any] = {}
    if route.name == "subscribe" and route.handler == "on_subscribe":
        extra["resume-from"] = RESUME_FROM
    elif route.options.get("detail") and route.options.get("method", "POST") not in SAFE_METHODS:
        extra["if-match"] = IF_MATCH
    elif route.name == "get" and route.handler == "on_get":
        extra["if-none-match"] = IF_NONE_MATCH
    if not extra:
        return headers
    return {**headers, "properties": {**headers["properties"], **extra}, "additionalProperties": True}


def _conditional(route: RouteInfo) -> dict[str, Any]:
    """``RouteSchema`` fields of the conditional requests: get's 304, and a write's 412 with the current tag."""
    if route.name == "get" and route.handler == "on_get":
        return {"not_modified": True}
    if route.options.get("detail") and route.options.get("method", "POST") not in SAFE_METHODS:
        return {"error_headers": {"type": ["object", "null"], "additionalProperties": True, "properties": {"etag": {
            **ETAG, "description": "On 412: the object's current tag."}}}}
    return {}


def _description(router: Any, route: RouteInfo) -> dict[str, Any]:
    """``{"description": ...}`` from ``@socket_route(description=...)``, for the people who call the
    route, unless the handler is a subclass's override with a docstring of its own (that wins, as
    it describes the override); ``{}`` otherwise (the handler's docstring stays)."""
    text = route.options.get("description")
    if not isinstance(text, str):
        return {}
    handler = resolve_on_class(router, route.handler)
    if getattr(handler, "socket_route", None) is None and (getattr(handler, "__doc__", None) or "").strip():
        return {}
    model = _model(router)
    names = {"{model}": str(model._meta.verbose_name) if model is not None else "object",
             "{models}": str(model._meta.verbose_name_plural) if model is not None else "objects",
             "{lookup}": str(router.lookup_url_kwarg)}
    for placeholder, value in names.items():
        text = text.replace(placeholder, value)
    return {"description": text}


def _model(router: Any) -> Any:
    queryset = getattr(router, "queryset", None)
    if queryset is not None:
        return queryset.model
    return getattr(getattr(_serializer_class(router), "Meta", None), "model", None)


def push_schemas(router: Any, components: Components) -> dict[str, tuple[Any, Any]]:
    """A subscribing router's pushes: created/updated (the object), deleted (its id), unsubscribed,
    resync."""
    serializer = _serializer_class(router)
    model = getattr(getattr(serializer, "Meta", None), "model", None)
    properties = {
        "subscription": {**components.UUID, "description": "The uuid of the subscribe request."},
        "model": {"const": model._meta.label_lower} if model is not None else {"type": "string"},
        "seq": {"type": "integer", "minimum": 1,
                "description": "1, 2, 3... per subscription: a gap means lost pushes."},
        "position": POSITION}
    headers = {"type": "object", "required": ["subscription", "model", "seq"], "properties": properties}
    item = components.serializer(serializer, "response") if serializer is not None else {"type": "object"}
    ended = {"type": "object", "required": ["status", "detail", "code"], "properties": {
        "status": {"type": "integer"}, "detail": {"type": "string"}, "code": {"type": "string"}},
        "description": "The subscription ended (its credentials stopped passing, or it grew too large)."}
    resync = {"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string"}},
              "description": "Pushes of this subscription were lost: re-read with list/get."}
    tagged = {**headers, "properties": {**properties, "etag": ETAG}}
    return {"created": (item, tagged), "updated": (item, tagged),
            "deleted": ({"type": "object", "required": ["id"], "properties": {"id": {}}}, headers),
            "unsubscribed": (ended, headers), "resync": (resync, headers)}


def _payload(kind: str | None, router: Any, serializer: Any, components: Components, direction: str) -> Any:
    if kind in (None, "null"):
        return {"type": "null"} if kind == "null" else {
            "type": ["object", "null"], "description": f"Not needed; it may hold the {router.lookup_url_kwarg!r} "
                                                       "instead of the headers."}
    if kind == "query":
        return _query_parameters(router)
    if kind == "unsubscribe":
        return {"oneOf": [{"type": "null"}, {"type": "object", "properties": {"subscription": components.UUID}}],
                "description": "One subscription by the uuid of its subscribe, or all of them (null)."}
    if kind == "subscribed":
        return {"type": "object", "required": ["subscription", "model"],
                "properties": {"subscription": components.UUID, "model": {"type": "string"}}}
    if serializer is None:
        return {"type": "object"}
    if kind == "partial":
        return components.serializer(serializer(partial=True), "request")
    if kind == "list":
        items = {"type": "array", "items": components.serializer(serializer, "response")}
        paginator = router.pagination_class() if router.pagination_class else None
        return json_schema(paginator.get_paginated_response_schema(items)) if paginator is not None else items
    return components.serializer(serializer, direction)


def _query_parameters(router: Any) -> dict[str, Any]:
    """The payload of ``list``: the query parameters DRF's filter backends and paginator document."""
    view = router.__new__(router)  # backends read class attributes (search_fields...) off the view
    parameters: list[dict[str, Any]] = []
    for backend in router.filter_backends:
        parameters += backend().get_schema_operation_parameters(view)
    if router.pagination_class:
        parameters += router.pagination_class().get_schema_operation_parameters(view)
    properties = {p["name"]: {**p.get("schema", {}), **({"description": str(p["description"])} if p.get("description")
                                                          else {})} for p in parameters}
    return {"type": ["object", "null"], "properties": json_schema(dict(sorted(properties.items()))),
            "description": "Query parameters, as a GET request's query string would carry them."}


def json_schema(schema: Any) -> Any:
    """DRF's paginators and filters write OpenAPI 3.0 (``nullable: true``); JSON Schema says
    ``type: [X, "null"]``, as drf-spectacular's 3.1 mode does for serializers."""
    if isinstance(schema, list):
        return [json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: json_schema(value) for key, value in schema.items() if key != "nullable"}
    if schema.get("nullable") is True:
        kind = converted.get("type")
        if isinstance(kind, str):
            converted["type"] = [kind, "null"]
        else:
            converted = {"anyOf": [converted, {"type": "null"}]}
    return converted


def _detail_headers(router: Any) -> dict[str, Any]:
    key = router.lookup_url_kwarg
    return {"type": "object", "properties": {key: {"type": ["string", "integer"]}},
            "description": f"The object's {key!r} (or give it in the payload)."}


def _serializer_class(router: Any) -> Any:
    try:
        return router.__new__(router).get_serializer_class()
    except Exception:  # get_serializer_class() that reads the request being served
        return getattr(router, "serializer_class", None)
