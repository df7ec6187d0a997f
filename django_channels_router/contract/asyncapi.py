"""An AsyncAPI 3.0 document of every router consumer an ASGI application routes WebSockets to.

One channel per URL pattern, one ``receive`` operation per route (its request envelope, and its
reply and error envelopes as the operation's ``reply``, with a ``notModified`` one between them
for a route that answers 304), one ``send`` operation per push. Headers schemas name the headers
a route takes and sends (``idempotency-key`` and ``idempotent-replay`` where the route runs once
per key; the bridge adds the lookup, ``if-match``, ``etag``, ``resume-from``, ``position``...). Payload
schemas come from the routes' ``"request"``/``"response"`` declarations; DRF serializers are
mapped to JSON Schema by drf-spectacular (OpenAPI 3.1 mode, so nullable fields are valid JSON
Schema) and land in ``components.schemas``.

Routers are found by their ``route_table``; the statuses of a route's error reply are what the
router's ``route_errors(route)`` says, next to the code that answers them. A router class may
describe more through optional class methods, which this module looks for (the runtime never
imports it): ``describe_route(route, components)`` returns ``RouteSchema`` fields that replace the
defaults (the DRF bridge's routes: their serializer's variants, their query parameters), and
``describe_pushes(components)`` returns ``{push: (payload schema, headers schema)}`` beside those
of the ``pushes`` attribute. ``components`` is a :class:`Components`.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ..protocol import MAX_SAFE_INTEGER
from ..routes import RouteInfo, resolve_on_class
from ..validation import declaration_problem, is_serializer_class, is_serializer_instance

__all__ = ["Components", "RouteSchema", "build_document", "describe_pushes", "describe_route", "project_document",
           "render", "websocket_consumers", "with_headers"]

ASYNCAPI_VERSION = "3.0.0"
ANY_JSON: dict[str, Any] = {"description": "Any JSON value (the route declares no schema)."}
UUID = {"$ref": "#/components/schemas/Uuid"}
#: What a status means on a route, for the error reply's description.
STATUS_TEXT = {
    400: "invalid payload", 401: "not authenticated", 403: "permission denied", 404: "not found",
    409: "conflict, or a request with the same idempotency-key still running", 413: "too large",
    422: "idempotency-key used for another request", 429: "throttled or too many requests", 500: "server error",
    501: "not implemented", 503: "database or channel layer unavailable, or the server is restarting",
    504: "request timeout", 412: "precondition failed: the if-match tag is stale",
    304: "not modified: if-none-match holds the current tag; no payload",
}
ANY_HEADERS: dict[str, Any] = {"type": ["object", "null"]}
#: The request header of a route that runs once per ``idempotency-key`` (PROTOCOL v1.2).
IDEMPOTENCY_KEY: dict[str, Any] = {
    "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$",
    "description": "New for each write the client means to make: a request sent again with it gets the kept "
                   "reply, and the write is not made twice."}
IDEMPOTENT_REPLAY: dict[str, Any] = {
    "const": True, "description": "This is the kept reply of an earlier request with the same idempotency-key."}
#: The reply headers of such a route (a kept 4xx is replayed too: the error carries the first).
IDEMPOTENT_REPLY: dict[str, Any] = {
    "idempotent-replay": IDEMPOTENT_REPLAY,
    "idempotent-stored": {"const": False, "description": "The reply was too large to keep: a request sent again "
                                                         "with the key gets its status and headers, payload null."}}
BASE_SCHEMAS: dict[str, Any] = {
    "Uuid": {"description": "Chosen by the client, echoed in the reply.", "oneOf": [
        {"type": "string", "minLength": 1, "maxLength": 128},
        {"type": "integer", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER}]},
    "ErrorBody": {"type": "object", "required": ["detail"], "properties": {
        "detail": {"type": "string"}, "code": {"type": "string"}}},
    "ValidationErrors": {"type": "object", "description": "DRF's serializer.errors: messages by field name.",
                         "additionalProperties": True},
}


@dataclass
class RouteSchema:
    """What the document says of one route."""

    request: Mapping[str, Any] = field(default_factory=lambda: dict(ANY_JSON))
    response: Mapping[str, Any] = field(default_factory=lambda: dict(ANY_JSON))
    headers: Mapping[str, Any] = field(default_factory=lambda: dict(ANY_HEADERS))
    #: The headers of a success reply, and of an error reply.
    reply_headers: Mapping[str, Any] = field(default_factory=lambda: dict(ANY_HEADERS))
    error_headers: Mapping[str, Any] = field(default_factory=lambda: dict(ANY_HEADERS))
    #: True when the route answers 304 (``if-none-match`` holds the current tag): a ``notModified`` reply.
    not_modified: bool = False
    #: The status of a success: one code, or ``None`` for "any 2xx".
    status: int | None = None
    errors: set[int] = field(default_factory=lambda: {500})
    #: True when ``errors`` are all the statuses of a failure. A plain route's handler may answer
    #: any status with any payload itself, so its error reply is described as "400-599".
    errors_exhaustive: bool = False
    #: True when a 400 may carry DRF's ``serializer.errors`` rather than ``{detail, code}``.
    validation_errors: bool = False
    description: str | None = None


class Components:
    """Schemas shared by every socket: ours, and DRF serializers as drf-spectacular maps them."""

    #: The schema of a request's uuid, for describers that name one (a subscription's).
    UUID: dict[str, Any] = UUID

    def __init__(self) -> None:
        self._auto: Any = None

    def for_declaration(self, spec: Any, direction: str) -> Mapping[str, Any]:
        """The schema of a ``"request"``/``"response"`` declaration: a serializer class, a
        serializer instance (``many=True``: an array of its child) or a JSON Schema dict."""
        if spec is None:
            return dict(ANY_JSON)
        problem = declaration_problem(spec, direction)
        if problem is not None:
            raise ImproperlyConfigured(problem)
        if is_serializer_instance(spec) and hasattr(spec, "child"):  # a ListSerializer
            return {"type": "array", "items": self.for_declaration(spec.child, direction)}
        if is_serializer_class(spec) or is_serializer_instance(spec):
            return self.serializer(spec, direction)
        return dict(spec)

    def serializer(self, serializer: Any, direction: str) -> Mapping[str, Any]:
        """A ``$ref`` to the component of ``serializer`` (a class, or an instance with ``partial``)."""
        component = self._autoschema().resolve_serializer(serializer, direction)
        return component.ref if component.name else {"type": "object"}

    def schemas(self) -> dict[str, Any]:
        found = dict(BASE_SCHEMAS)
        if self._auto is not None:
            found.update(self._auto.registry.build({}).get("schemas", {}))
        return dict(sorted(found.items()))

    def _autoschema(self) -> Any:
        if self._auto is None:
            try:
                from drf_spectacular.openapi import AutoSchema
                from drf_spectacular.plumbing import ComponentRegistry
            except ImportError:
                raise RuntimeError("Serializers in the schema need drf-spectacular: "
                                   "pip install 'django-channels-router[schema]'") from None
            from rest_framework.views import APIView

            auto = AutoSchema()
            auto.registry = ComponentRegistry()
            auto.method, auto.path, auto.path_regex, auto.path_prefix = "POST", "/", "/", ""
            view = APIView()  # what drf-spectacular reads a serializer context from: no request here
            view.request, view.format_kwarg = None, None
            auto.view = view
            self._auto = auto
        return self._auto


def spectacular_settings() -> Any:
    """drf-spectacular's settings for a socket schema, patched while the document is built."""
    try:
        from drf_spectacular.settings import patched_settings
    except ImportError:
        from contextlib import nullcontext
        return nullcontext()
    return patched_settings({"OAS_VERSION": "3.1.0", "COMPONENT_SPLIT_REQUEST": True})


def describe_route(cls: type[Any], route: RouteInfo, components: Components) -> RouteSchema:
    """A route: its declarations, the statuses ``cls.route_errors()`` gives, its handler's
    docstring, and what the class's optional ``describe_route()`` says instead."""
    handler = resolve_on_class(cls, route.handler)
    declared = {key: route.options.get(key) for key in ("request", "response")}
    if declared["response"] is None:  # a serializer class given as the dehydrate says what the reply is
        declared["response"] = getattr(route.dehydrate, "serializer_class", None)
    request, response = (_declared(components, spec, key, f"{_label(cls)}, route {route.name!r}")
                         for key, spec in declared.items())
    schema = RouteSchema(
        request=request,
        response=response,
        errors=set(cls.route_errors(route)) if hasattr(cls, "route_errors") else {500},
        validation_errors=is_serializer_class(route.options.get("request")),
        description=_doc(handler),
    )
    describe = getattr(cls, "describe_route", None)
    if describe is not None:
        schema = replace(schema, **describe(route, components))
    if getattr(cls, "route_is_idempotent", None) is not None and cls.route_is_idempotent(route):
        schema = replace(schema, headers=with_headers(schema.headers, {"idempotency-key": IDEMPOTENCY_KEY}),
                         reply_headers=with_headers(schema.reply_headers, IDEMPOTENT_REPLY),
                         error_headers=with_headers(schema.error_headers, {"idempotent-replay": IDEMPOTENT_REPLAY}))
    return schema


def with_headers(schema: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """A headers schema (an object, or null) that also names ``properties``; other keys stay allowed
    (said outright, so the TypeScript type takes them: an auth token, a header of the project's)."""
    return {**schema, "properties": {**schema.get("properties", {}), **properties}, "additionalProperties": True}


def describe_pushes(cls: type[Any], components: Components) -> dict[str, tuple[Any, Any]]:
    """``{route: (payload schema, headers schema)}`` of what ``cls.pushes`` says it pushes, and of
    what the class's optional ``describe_pushes()`` adds."""
    declared = getattr(cls, "pushes", None) or {}
    pushes = {name: (_declared(components, spec, "response", f"{_label(cls)}, push {name!r}"),
                     {"type": ["object", "null"]}) for name, spec in declared.items()}
    describe = getattr(cls, "describe_pushes", None)
    return pushes if describe is None else {**pushes, **describe(components)}


def _declared(components: Components, spec: Any, key: str, label: str) -> Mapping[str, Any]:
    try:
        return components.for_declaration(spec, key)
    except ImproperlyConfigured as exc:  # what manage.py check reports as channels_router.E007
        raise ImproperlyConfigured(f"{label}: {key!r} is unusable: {exc} (channels_router.E007).") from None


def _label(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# -- the ASGI application's WebSocket routes ------------------------------------------------

def websocket_consumers(application: Any) -> Iterator[tuple[str, list[str], type[Any]]]:
    """``(address, URL parameter names, consumer class)`` for every router consumer it routes to.

    Walks ``ProtocolTypeRouter``'s ``"websocket"`` entry, middleware (``.inner``), validators
    (``.application``) and nested ``URLRouter``s, in their order.
    """
    mapping = getattr(application, "application_mapping", None)
    if mapping is not None:
        application = mapping.get("websocket")
    yield from _walk(application, "")


def _walk(app: Any, prefix: str) -> Iterator[tuple[str, list[str], type[Any]]]:
    seen = 0
    while app is not None and seen < 100:  # middleware wraps; a cycle would be a bug, not a loop
        seen += 1
        consumer = getattr(app, "consumer_class", None)
        if consumer is not None:
            if isinstance(consumer, type) and isinstance(getattr(consumer, "route_table", None), Mapping):
                address = "/" + prefix.lstrip("/")
                yield address, re.findall(r"\{(\w+)\}", address), consumer
            return
        routes = getattr(app, "routes", None)
        if isinstance(routes, (list, tuple)):
            for route in routes:
                yield from _walk(getattr(route, "callback", None), prefix + _address_part(route.pattern))
            return
        app = getattr(app, "inner", None) or getattr(app, "application", None)


def _address_part(pattern: Any) -> str:
    """``ws/owner/<int:owner>/`` or ``^ws/owner/(?P<owner>\\d+)/$`` -> ``ws/owner/{owner}/``."""
    from django.urls.resolvers import RegexPattern

    text = str(pattern)
    if isinstance(pattern, RegexPattern):  # a re_path
        text = _named_groups_as_parameters(text.removeprefix("^").removesuffix("$").removesuffix("\\Z"))
        return re.sub(r"\\(.)", r"\1", text)
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", text)


def _named_groups_as_parameters(regex: str) -> str:
    out, i = [], 0
    while i < len(regex):
        match = re.match(r"\(\?P<(\w+)>", regex[i:])
        if match is None:
            out.append(regex[i])
            i += 1
            continue
        depth, j = 1, i + match.end()
        while j < len(regex) and depth:
            depth += {"(": 1, ")": -1}.get(regex[j], 0) if regex[j - 1] != "\\" else 0
            j += 1
        out.append("{" + match[1] + "}")
        i = j
    return "".join(out)


# -- the document ---------------------------------------------------------------------------

def build_document(application: Any, *, title: str = "WebSocket API", version: str = "1.0.0",
                   description: str | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document (a dict; dump it with sorted keys for a stable file)."""
    components = Components()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    with spectacular_settings():
        for address, parameters, cls in websocket_consumers(application):
            channel_id = _unique(_slug(address) or _slug(cls.__name__), channels)
            channels[channel_id], ops = _channel(channel_id, address, parameters, cls, components)
            operations.update(ops)
        schemas = components.schemas()
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": info,
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": _heartbeat_messages()},
    }


def _channel(channel_id: str, address: str, parameters: list[str], cls: type[Any],
             components: Components) -> tuple[dict[str, Any], dict[str, Any]]:
    """The channel and its operations. Keys are one-to-one with what they name, so no route hides
    another: a message is ``<route name>.<kind>`` (the name as it is: ``a:b`` and ``a_b`` stay two),
    the kind never contains a dot; an operation is ``<channel id>.<key of its first message>``
    (channel ids have no dot). ``PING``/``PONG`` are reserved, never route names."""
    ref = {"$ref": f"#/channels/{channel_id}"}
    messages: dict[str, Any] = {"PING": {"$ref": "#/components/messages/PING"},
                                "PONG": {"$ref": "#/components/messages/PONG"}}
    operations: dict[str, Any] = {f"{channel_id}.PING": {
        "action": "receive", "channel": ref, "title": "PING", "summary": "Heartbeat: answered PONG.",
        "messages": [_message_ref(channel_id, "PING")],
        "reply": {"channel": ref, "messages": [_message_ref(channel_id, "PONG")]}}}
    for route in sorted(cls.route_table.values(), key=lambda r: r.name):
        doc = describe_route(cls, route, components)
        request, reply, error = (f"{route.name}.{kind}" for kind in ("request", "reply", "error"))
        messages[request] = _message(f"{route.name} request", _request_envelope(route.name, doc))
        messages[reply] = _message(f"{route.name} reply", _reply_envelope(route.name, doc))
        replies = [reply]
        if doc.not_modified:
            replies.append(f"{route.name}.notModified")
            messages[replies[-1]] = _message(f"{route.name} not modified", _not_modified_envelope(route.name, doc))
        messages[error] = _message(f"{route.name} error", _error_envelope(route.name, doc))
        operation: dict[str, Any] = {
            "action": "receive", "channel": ref, "title": route.name,
            "messages": [_message_ref(channel_id, request)],
            "reply": {"channel": ref, "messages": [_message_ref(channel_id, key) for key in (*replies, error)]},
        }
        if doc.description:
            operation["summary"] = split_description(doc.description)[0]
            operation["description"] = doc.description
        operations[f"{channel_id}.{request}"] = operation
    for name, (payload, headers) in sorted(describe_pushes(cls, components).items()):
        push = f"{name}.push"
        messages[push] = _message(f"{name} push", _push_envelope(name, payload, headers))
        operations[f"{channel_id}.{push}"] = {
            "action": "send", "channel": ref, "title": name,
            "summary": "Sent by the server unprompted, with a uuid of its own.",
            "messages": [_message_ref(channel_id, push)]}
    channel: dict[str, Any] = {"address": address, "title": cls.__name__, "messages": messages}
    description = _doc(cls)
    if description:
        channel["description"] = description
    if parameters:
        channel["parameters"] = {name: {"description": f"The {name!r} part of the URL."} for name in parameters}
    return channel, operations


def _request_envelope(route: str, doc: RouteSchema) -> dict[str, Any]:
    return _object({"uuid": UUID, "route": {"const": route}, "headers": dict(doc.headers),
                    "payload": dict(doc.request), "status": {"type": "integer", "description": "Ignored."}},
                   required=["uuid", "route"])


def _reply_envelope(route: str, doc: RouteSchema) -> dict[str, Any]:
    status = {"const": doc.status} if doc.status else {"type": "integer", "minimum": 200, "maximum": 299}
    return _object({"uuid": UUID, "route": {"const": route}, "status": status,
                    "headers": dict(doc.reply_headers), "payload": dict(doc.response)})


def _not_modified_envelope(route: str, doc: RouteSchema) -> dict[str, Any]:
    return _object({"uuid": UUID, "route": {"const": route},
                    "status": {"const": 304, "description": STATUS_TEXT[304]},
                    "headers": dict(doc.reply_headers), "payload": {"type": "null"}})


def _error_envelope(route: str, doc: RouteSchema) -> dict[str, Any]:
    errors = sorted(doc.errors)
    known = "; ".join(f"{s}: {STATUS_TEXT.get(s, 'error')}" for s in errors)
    body: dict[str, Any] = {"$ref": "#/components/schemas/ErrorBody"}
    if doc.validation_errors:
        body = {"anyOf": [body, {"$ref": "#/components/schemas/ValidationErrors"}]}
    if doc.errors_exhaustive:
        status: dict[str, Any] = {"enum": errors, "description": known}
    else:
        status = {"type": "integer", "minimum": 400, "maximum": 599,
                  "description": f"From the router: {known}. The handler may answer others itself."}
        body = {"anyOf": [body, {"description": "What the handler returned with its own error status."}]}
    return _object({"uuid": UUID, "route": {"const": route}, "status": status,
                    "headers": dict(doc.error_headers), "payload": body})


def _push_envelope(route: str, payload: Any, headers: Any) -> dict[str, Any]:
    return _object({"uuid": {"type": "string", "description": "A fresh uuid the server made."},
                    "route": {"const": route}, "status": {"const": 200}, "headers": dict(headers),
                    "payload": dict(payload)})


def _heartbeat_messages() -> dict[str, Any]:
    ping = _object({"uuid": UUID, "route": {"const": "PING"}}, required=["uuid", "route"])
    pong = _object({"uuid": UUID, "route": {"const": "PONG"}, "status": {"const": 200},
                    "headers": {"type": "null"}, "payload": {"type": "null"}})
    return {"PING": _message("PING", ping), "PONG": _message("PONG", pong)}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": required or list(properties), "properties": properties}


def _message(title: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"title": title, "contentType": "application/json", "payload": payload}


def _message_ref(channel_id: str, key: str) -> dict[str, str]:
    return {"$ref": f"#/channels/{channel_id}/messages/{key}"}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", re.sub(r"\{(\w+)\}", r"\1", text)).strip("-")


def _unique(name: str, taken: Mapping[str, Any]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


def _doc(obj: Any) -> str | None:
    """``obj``'s own docstring (a class's is not inherited: a base's would describe every socket)."""
    own = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(own) if isinstance(own, str) and own.strip() else None


def project_document(asgi: str | None = None, *, title: str | None = None, version: str = "1.0.0") -> dict[str, Any]:
    """The document of ``ASGI_APPLICATION`` (or of the application at the dotted path ``asgi``)."""
    from .. import __version__

    path = asgi or getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        raise ImproperlyConfigured("Set ASGI_APPLICATION, or name the application with --asgi module.attribute.")
    module_name, _, attribute = path.rpartition(".")
    try:
        application = getattr(import_module(module_name), attribute)
    except Exception as exc:  # a consumer module that fails to import: reported, not a crash
        problem = f"{type(exc).__name__}: {exc}"
        raise ImproperlyConfigured(f"Could not load the ASGI application {path!r}: {problem}") from exc
    project = (settings.SETTINGS_MODULE or "").partition(".")[0]
    return build_document(application, title=title or (f"{project} WebSocket API" if project else "WebSocket API"),
                          version=version, description=f"Generated by django-channels-router {__version__}.")


def render(document: Mapping[str, Any], fmt: str) -> str:
    """JSON or YAML with sorted keys and fixed formatting: the same code always gives the same bytes."""
    if fmt == "json":
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    try:
        import yaml
    except ImportError:
        raise ImproperlyConfigured("YAML needs PyYAML (pip install 'django-channels-router[schema]'); "
                                   "or use JSON.") from None

    class Dumper(yaml.SafeDumper):
        """Every reference written out: no ``&id001``/``*id001``, which many YAML and AsyncAPI tools show badly."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    return str(yaml.dump(dict(document), Dumper=Dumper, sort_keys=True, allow_unicode=True,
                         default_flow_style=False, width=100))


def split_description(text: str) -> tuple[str, str]:
    """The first paragraph (the summary: whole sentences, never a line cut mid-sentence) and the rest."""
    parts = re.split(r"\n\s*\n", text.strip(), maxsplit=1)
    return " ".join(parts[0].split()), parts[1] if len(parts) > 1 else ""
