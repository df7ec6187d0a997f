"""What the docs page shows of the AsyncAPI document, for a reader on the other end of the socket.

Each payload as a field table (``$ref``s resolved, nested objects one level per ``<details>``),
the route's description rendered from its docstring, the statuses of each route apart from those
every route of its socket can give, and an example request a server accepts.

The part that depends on code only (the document and everything derived from it) is built once
per process by :func:`page_model` and cached; an autoreloader (``runserver``, ``uvicorn
--reload``) restarts the process when code changes, which empties the cache, and a change of
``ASGI_APPLICATION`` (``override_settings``) does too. What depends on the database, the id of an
object the detail routes' examples can name, is read on each page load (:func:`lookup_values`).
"""

from __future__ import annotations

import datetime
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from .asyncapi import STATUS_TEXT, project_document, split_description, websocket_consumers

__all__ = ["Field", "example", "fields_of", "lookup_values", "page_model", "render_description", "sockets"]

#: Statuses a route may give for reasons that are not its own (rate limits, failures, timeouts):
#: those every route of a socket gives are said once, for the socket.
SOCKET_WIDE = (429, 500, 503, 504)
#: Keywords shown as constraints, in this order: (keyword, how it reads).
CONSTRAINTS = (
    ("minLength", "at least {} character{s}"), ("maxLength", "at most {} character{s}"),
    ("minimum", "≥ {}"), ("exclusiveMinimum", "> {}"), ("maximum", "≤ {}"), ("exclusiveMaximum", "< {}"),
    ("multipleOf", "a multiple of {}"), ("minItems", "at least {} item{s}"), ("maxItems", "at most {} item{s}"),
    ("minProperties", "at least {} key{s}"), ("maxProperties", "at most {} key{s}"),
)
#: A value of each string format a server accepts (JSON Schema's and drf-spectacular's formats).
FORMAT_EXAMPLES = {
    "date": "2026-01-31", "time": "12:00:00", "duration": "P1D", "email": "user@example.com",
    "uri": "https://example.com/", "url": "https://example.com/", "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "ipv4": "192.0.2.1", "ipv6": "2001:db8::1", "hostname": "example.com", "decimal": "1.00", "binary": "",
    "byte": "", "password": "", "slug": "example",
}


# -- field tables ---------------------------------------------------------------------------

@dataclass
class Field:
    """One row of a field table: a property, or the payload itself when it is not an object."""

    name: str
    type: str = "any"
    required: bool = False
    flags: list[str] = field(default_factory=list)
    format: str = ""
    enum: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    title: str = ""
    description: str = ""
    #: The fields of an object (or of an array's items), shown in a nested table.
    children: list[Field] = field(default_factory=list)
    #: True when the object's fields are those of an enclosing one (a recursive serializer).
    recursive: bool = False


class Resolver:
    """``$ref``s of one document (``#/components/schemas/Article``...)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def target(self, ref: str) -> Any:
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, Mapping) else None
        return node if isinstance(node, Mapping) else {}

    def resolve(self, schema: Any, seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], str, tuple[str, ...]]:
        """The schema behind its ``$ref``s (keys beside a ``$ref`` win), the last component's name,
        and the refs followed so far (a ref met again is a cycle)."""
        schema = dict(schema) if isinstance(schema, Mapping) else {}
        name = ""
        while "$ref" in schema and len(seen) < 64:
            ref = str(schema.pop("$ref"))
            if ref in seen:
                return {**schema, "x-recursive": True}, ref.rpartition("/")[2], seen
            seen = (*seen, ref)
            name = ref.rpartition("/")[2]
            schema = {**self.target(ref), **schema}
        return schema, name, seen


def fields_of(schema: Any, resolver: Resolver, name: str = "payload") -> dict[str, Any]:
    """What the page says of a payload: ``top``, the :class:`Field` of the value itself (its type,
    nullable...), and ``rows``, the table: the properties of an object, the fields of an array's
    items, the options of a ``oneOf``; none for a plain value."""
    top = _field(name, schema, resolver, (), required=True)
    return {"top": top, "rows": top.children}


def _field(name: str, schema: Any, resolver: Resolver, seen: tuple[str, ...], required: bool) -> Field:
    schema, ref_name, seen = resolver.resolve(schema, seen)
    row = Field(name, required=required, title=str(schema.get("title", "")),
                description=str(schema.get("description", "")))
    if schema.get("x-recursive"):
        row.type, row.recursive = ref_name or "object", True
        return row
    flags = [flag for key, flag in (("readOnly", "read-only"), ("writeOnly", "write-only"),
                                     ("deprecated", "deprecated")) if schema.get(key)]
    options = schema.get("oneOf") or schema.get("anyOf")
    if isinstance(options, list) and options:
        resolved = [resolver.resolve(option, seen) for option in options]
        non_null = [(option, resolved_option) for option, resolved_option in zip(options, resolved, strict=True)
                    if not _is_null(resolved_option[0])]
        nullable = len(non_null) < len(options)
        enums = [r[0]["enum"] for _, r in non_null if isinstance(r[0].get("enum"), list)]
        if non_null and len(enums) == len(non_null):  # drf-spectacular's XEnum + BlankEnum
            merged = {**non_null[0][1][0], "enum": [value for enum in enums for value in enum]}
            inner = _field(name, merged, resolver, seen, required)
            inner.type = non_null[0][1][1] or inner.type
        elif len(non_null) == 1:
            inner = _field(name, non_null[0][0], resolver, seen, required)
        else:
            choices = [_field(f"option {n}", option, resolver, seen, True) for n, (option, _) in enumerate(non_null, 1)]
            if any(choice.children or choice.type.startswith("array") for choice in choices):
                inner = Field(name, type="one of", required=required, children=choices)
            else:  # plain values (a uuid: a string or an integer): one row, each type's constraints
                inner = Field(name, type=" or ".join(_unique([choice.type for choice in choices])), required=required,
                              enum=[value for choice in choices for value in choice.enum],
                              constraints=[f"{choice.type}: {'; '.join(choice.constraints)}" for choice in choices
                                           if choice.constraints])
        inner.title = row.title or inner.title
        inner.description = row.description or inner.description
        inner.flags = _unique([*flags, *inner.flags, *(["nullable"] if nullable else [])])
        return inner
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if "null" in types and len(types) > 1:
        types.remove("null")
        flags.append("nullable")
    row.flags = flags
    if "const" in schema:
        row.type = _json_type(schema["const"])
        row.enum = [_literal(schema["const"])]
        return row
    if isinstance(schema.get("enum"), list):
        values = [value for value in schema["enum"] if value is not None]
        if len(values) < len(schema["enum"]):
            row.flags.append("nullable")
        labels = _choice_labels(row)
        row.enum = [_literal(value) + (f" ({labels[str(value)]})" if labels.get(str(value), str(value)) != str(value)
                                       else "") for value in values]
        types = types or _unique([_json_type(value) for value in values])
    row.format = str(schema.get("format", ""))
    row.constraints = [text.format(schema[key], s="" if schema[key] == 1 else "s")
                       for key, text in CONSTRAINTS if key in schema]
    if schema.get("pattern"):
        row.constraints.append(f"matches {schema['pattern']}")
    if schema.get("uniqueItems"):
        row.constraints.append("unique items")
    if "default" in schema:
        row.constraints.append(f"default {_literal(schema['default'])}")
    if types == ["array"] or (not types and "items" in schema):
        items = _field("items", schema.get("items", {}), resolver, seen, True)
        row.type = f"array of {items.type}"
        row.children, row.recursive = items.children, items.recursive
        if items.enum:
            row.constraints.append("items one of " + ", ".join(items.enum))
        return row
    if types == ["object"] or (not types and "properties" in schema):
        required_names = set(schema.get("required", []))
        row.type = ref_name or "object"
        row.children = [_field(key, value, resolver, seen, key in required_names)
                        for key, value in (schema.get("properties") or {}).items()]
        extra = schema.get("additionalProperties")
        if extra not in (None, False) or not schema.get("properties"):
            row.constraints.append("any keys" if not schema.get("properties") else "other keys allowed")
        return row
    row.type = " or ".join(types) if types else (ref_name or "any")
    return row


#: drf-spectacular's list of a ChoiceField's choices in its description: "* `red` - Red".
CHOICE_LINE = re.compile(r"^\* `(.*)` - (.*)$")


def _choice_labels(row: Field) -> dict[str, str]:
    """The choices' labels from the description, which keeps the rest (the help text)."""
    lines = row.description.splitlines()
    labels = {m[1]: m[2] for m in map(CHOICE_LINE.match, lines) if m}
    if labels:
        row.description = "\n".join(line for line in lines if not CHOICE_LINE.match(line)).strip()
    return labels


def _is_null(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "null" or schema.get("enum") == [None] or ("const" in schema and
                                                                             schema["const"] is None)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), "any")


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# -- examples ---------------------------------------------------------------------------

def example(schema: Any, resolver: Resolver, *, optional: bool = True, seen: tuple[str, ...] = ()) -> Any:
    """A value of ``schema`` that a server accepts: for requests, so read-only properties are
    left out; ``optional=False`` leaves out properties that are not required (a GET route's
    query parameters: a filter with a made-up value would only narrow the answer)."""
    schema, _, seen = resolver.resolve(schema, seen)
    if schema.get("x-recursive") or len(seen) > 16:
        return None
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    for key in ("examples", "enum"):
        values = [value for value in schema.get(key) or [] if value is not None]
        if values:
            return values[0]
    if "example" in schema:
        return schema["example"]
    options = schema.get("oneOf") or schema.get("anyOf")
    if isinstance(options, list) and options:
        chosen = next((option for option in options if not _is_null(resolver.resolve(option, seen)[0])), options[0])
        return example(chosen, resolver, optional=optional, seen=seen)
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    kind = next((t for t in types if t != "null"), types[0] if types else None)
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else None
    if kind == "object":
        required = set(schema.get("required", []))
        value = {}
        for name, child in (schema.get("properties") or {}).items():
            resolved = resolver.resolve(child, seen)[0]
            if resolved.get("readOnly") or (not optional and name not in required):
                continue
            value[name] = example(child, resolver, optional=optional, seen=seen)
        return value
    if kind == "array":
        count = int(schema.get("minItems", 0))
        return [example(schema.get("items", {}), resolver, optional=optional, seen=seen) for _ in range(count)]
    if kind == "string":
        return _string_example(schema)
    if kind in ("integer", "number"):
        return _number_example(schema, kind)
    if kind == "boolean":
        return True
    return None


def _string_example(schema: Mapping[str, Any]) -> str:
    fmt = str(schema.get("format", ""))
    if fmt == "date-time":
        return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    text = FORMAT_EXAMPLES.get(fmt, "string")
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    if len(text) < low:
        text += "x" * (low - len(text))
    if isinstance(high, int) and len(text) > high:
        text = text[:high]
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        for candidate in (text, "1", "a", "A1", "example", ""):
            try:
                if re.search(pattern, candidate):
                    return candidate
            except re.error:
                break
    return text


def _number_example(schema: Mapping[str, Any], kind: str) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = 1
    if isinstance(low, (int, float)):
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    if isinstance(high, (int, float)) and value > high:
        value = high - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
    return int(value) if kind == "integer" else value


# -- descriptions -----------------------------------------------------------------------

def render_description(text: str) -> SafeString:
    """A docstring as HTML: reST through docutils when it is installed, as Django's admindocs
    renders docstrings (raw HTML and file inclusion off, single backticks as code); otherwise
    plain text, in paragraphs, with ``double backticks`` as code."""
    if not text.strip():
        return mark_safe("")
    try:
        from docutils.core import publish_parts
        from docutils.writers.html5_polyglot import Writer
    except ImportError:
        return _plain(text)
    source = f".. default-role:: literal\n\n{text}\n\n.. default-role::\n"
    overrides = {"doctitle_xform": False, "initial_header_level": 3, "report_level": 5, "halt_level": 5,
                 "raw_enabled": False, "file_insertion_enabled": False, "warning_stream": False,
                 "input_encoding": "unicode", "output_encoding": "unicode", "embed_stylesheet": False}
    try:
        parts = publish_parts(source, writer=Writer(), settings_overrides=overrides)
    except Exception:  # a docstring docutils cannot read: shown as text
        return _plain(text)
    return mark_safe(parts["fragment"])  # docutils escapes the text; raw and include directives are off


def _plain(text: str) -> SafeString:
    paragraphs = [part for part in re.split(r"\n\s*\n", text.strip()) if part.strip()]
    return mark_safe("".join(format_html("<p>{}</p>", inline(part)) for part in paragraphs))


def inline(text: str) -> SafeString:
    """One paragraph as HTML: escaped, ``code`` as ``<code>``, line breaks as spaces."""
    pieces = re.split(r"``(.+?)``", " ".join(text.split()))
    return mark_safe("".join(format_html("<code>{}</code>", piece) if odd else escape(piece)
                             for odd, piece in ((n % 2 == 1, piece) for n, piece in enumerate(pieces))))


# -- the page's model --------------------------------------------------------------------

_cache: dict[tuple[str, str], dict[str, Any]] = {}
_cache_lock = threading.Lock()


def _clear_cache(*, setting: str, **kwargs: Any) -> None:
    if setting in ("ASGI_APPLICATION", "SETTINGS_MODULE", "CHANNELS_ROUTER", "INSTALLED_APPS"):
        _cache.clear()


setting_changed.connect(_clear_cache)


def page_model() -> dict[str, Any]:
    """``{"document": ..., "sockets": [...]}``, built once per process (see the module's doc)."""
    key = (str(getattr(settings, "ASGI_APPLICATION", "")), str(settings.SETTINGS_MODULE))
    model = _cache.get(key)
    if model is None:
        with _cache_lock:
            model = _cache.get(key)
            if model is None:
                model = _cache[key] = build_page_model()
    return model


def build_page_model(asgi: str | None = None) -> dict[str, Any]:
    document = project_document(asgi)
    path = asgi or str(settings.ASGI_APPLICATION)
    module_name, _, attribute = path.rpartition(".")
    application = getattr(import_module(module_name), attribute)  # project_document loaded it
    classes = [cls for _, _, cls in websocket_consumers(application)]
    return {"document": document, "sockets": sockets(document, classes, set(_consumers_behind_auth(application)))}


def sockets(document: Mapping[str, Any], classes: list[type[Any]], with_auth: set[type[Any]] | None = None
            ) -> list[dict[str, Any]]:
    """What the page lists of each channel of ``document``, whose consumer classes are ``classes``
    (in the document's order): its routes, pushes and statuses."""
    resolver = Resolver(document)
    return [_socket(document, resolver, channel_id, channel, cls, cls in (with_auth or set()))
            for (channel_id, channel), cls in zip(document["channels"].items(), classes, strict=True)]


def _socket(document: Mapping[str, Any], resolver: Resolver, channel_id: str, channel: Mapping[str, Any],
            cls: type[Any], auth: bool) -> dict[str, Any]:
    routes, pushes = [], []
    for operation in document["operations"].values():
        if operation["channel"]["$ref"] != f"#/channels/{channel_id}":
            continue
        key = operation["messages"][0]["$ref"].rpartition("/")[2]
        if operation["action"] == "send":
            envelope = channel["messages"][key]["payload"]
            pushes.append({"name": operation["title"], "anchor": _anchor(channel_id, "push", operation["title"]),
                           "headers": _headers_fields(envelope, resolver),
                           "payload": fields_of(envelope["properties"]["payload"], resolver),
                           "headers_schema": envelope["properties"]["headers"]})
        elif key != "PING":
            routes.append(_route(channel, resolver, channel_id, operation, key, cls))
    common = set(SOCKET_WIDE)
    for route in routes:
        common &= route["error_statuses"]
    for route in routes:
        route["errors"] = [(status, _status_text(status)) for status in sorted(route["error_statuses"] - common)]
    push_headers = None  # the same headers on every push (a subscription's): one table for all
    if len(pushes) > 1 and all(push["headers_schema"] == pushes[0]["headers_schema"] for push in pushes):
        push_headers = pushes[0]["headers"]
        for push in pushes:
            push["headers"] = None
    summary, rest = split_description(channel.get("description", ""))
    return {"id": channel_id, "push_headers": push_headers, "address": channel["address"],
            "title": channel.get("title", ""),
            "summary": inline(summary) if summary else "", "description": render_description(rest),
            "parameters": list(channel.get("parameters", {})), "routes": routes, "pushes": pushes,
            "common_errors": [(status, _status_text(status)) for status in sorted(common)], "auth": auth}


def _route(channel: Mapping[str, Any], resolver: Resolver, channel_id: str, operation: Mapping[str, Any],
           key: str, cls: type[Any]) -> dict[str, Any]:
    name = operation["title"]
    info = cls.route_table.get(name)
    options = info.options if info is not None else {}
    request = channel["messages"][key]["payload"]
    reply = channel["messages"][f"{name}.reply"]["payload"]
    error = channel["messages"][f"{name}.error"]["payload"]
    status = error["properties"]["status"]
    errors = set(status.get("enum") or (cls.route_errors(info) if info is not None and
                                        hasattr(cls, "route_errors") else {500}))
    success = reply["properties"]["status"]
    replies = [ref["$ref"].rpartition("/")[2] for ref in operation["reply"]["messages"]]
    others = [channel["messages"][other]["payload"]["properties"]["status"]
              for other in replies[1:-1]]  # between the success and the error: get's 304
    bridge = hasattr(cls, "lookup_url_kwarg") and hasattr(cls, "get_queryset")
    lookup = str(cls.lookup_url_kwarg) if bridge and options.get("detail") else None
    query = bridge and options.get("method") == "GET"  # the payload holds query parameters
    headers = example(request["properties"]["headers"], resolver, optional=False)
    headers = headers if isinstance(headers, dict) else {}
    headers.pop(lookup or "", None)
    payload_schema = request["properties"]["payload"]
    payload = example(payload_schema, resolver, optional=not query)
    if query and payload is None:
        payload = {}
    summary, rest = split_description(operation.get("description", ""))
    validation = any("ValidationErrors" in json.dumps(part) for part in error["properties"]["payload"].get("anyOf", []))
    return {
        "name": name, "anchor": _anchor(channel_id, "route", name),
        "summary": inline(summary) if summary else "", "description": render_description(rest),
        "method": options.get("method", "") if bridge else "", "detail": bool(options.get("detail")),
        "headers": _headers_fields(request, resolver),
        "payload": fields_of(payload_schema, resolver),
        "reply_status": success.get("const") or "2xx",
        "other_replies": [(other["const"], _status_text(other["const"])) for other in others],
        "reply_headers": _headers_fields(reply, resolver),
        "messages": [key, *replies],
        "reply": fields_of(reply["properties"]["payload"], resolver),
        "error_statuses": errors, "exhaustive": "enum" in status, "validation_errors": validation,
        "lookup": lookup, "model": _model_name(cls) if lookup else "",
        "example": {"headers": headers, "payload": payload},
        "router": cls,
    }


def _headers_fields(envelope: Mapping[str, Any], resolver: Resolver) -> dict[str, Any] | None:
    """The headers' fields when the schema names any (else a table would say only "object")."""
    schema = resolver.resolve(envelope["properties"]["headers"])[0]
    return fields_of(schema, resolver, "headers") if schema.get("properties") else None


def _status_text(status: int) -> str:
    return STATUS_TEXT.get(status, "error")


def _model_name(cls: type[Any]) -> str:
    queryset = getattr(cls, "queryset", None)
    model = getattr(queryset, "model", None)
    return str(model._meta.verbose_name) if model is not None else "object"


def _anchor(channel_id: str, kind: str, name: str) -> str:
    return f"{channel_id}--{kind}-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def _consumers_behind_auth(application: Any) -> Iterator[type[Any]]:
    """Consumer classes whose route passes through Channels' ``AuthMiddleware`` (so the socket's
    user is the session's): the same walk as :func:`websocket_consumers`."""
    try:
        from channels.auth import AuthMiddleware
    except ImportError:
        return
    mapping = getattr(application, "application_mapping", None)
    stack: list[tuple[Any, bool]] = [(mapping.get("websocket") if mapping is not None else application, False)]
    while stack:
        app, auth = stack.pop()
        for _ in range(100):
            if app is None:
                break
            auth = auth or isinstance(app, AuthMiddleware)
            consumer = getattr(app, "consumer_class", None)
            if consumer is not None:
                if auth and isinstance(consumer, type):
                    yield consumer
                break
            routes = getattr(app, "routes", None)
            if isinstance(routes, (list, tuple)):
                stack.extend((getattr(route, "callback", None), auth) for route in routes)
                break
            app = getattr(app, "inner", None) or getattr(app, "application", None)


def lookup_values(sockets: list[dict[str, Any]]) -> dict[str, Any]:
    """``{route anchor: id}`` for detail routes: the id of the first object of the router's
    ``queryset`` (its class attribute), read now; routers that build their queryset per request,
    and empty tables, get none (the console then asks for one)."""
    found: dict[type[Any], Any] = {}
    values: dict[str, Any] = {}
    for socket in sockets:
        for route in socket["routes"]:
            cls = route["router"]
            if not route["lookup"]:
                continue
            if cls not in found:
                found[cls] = _first_id(cls)
            if found[cls] is not None:
                values[route["anchor"]] = found[cls]
    return values


def _first_id(cls: type[Any]) -> Any:
    queryset = getattr(cls, "queryset", None)
    if queryset is None or not hasattr(queryset, "values_list"):
        return None
    field_name = getattr(cls, "lookup_field", "pk")
    try:
        value = queryset.all().values_list(field_name, flat=True).first()
    except Exception:  # a lookup field that is not a column (FieldError), a database that is down...
        return None
    return value if isinstance(value, (int, str)) else (str(value) if value is not None else None)
