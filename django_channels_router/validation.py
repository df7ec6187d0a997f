"""A route's declared ``"request"``: the payload is checked before hydrate, as a DRF view checks a body.

``"request"`` is a DRF serializer class or a JSON Schema dict. ``"response"`` only documents (the
schema and the TypeScript of ``manage.py socketschema``): a serializer class, a JSON Schema dict,
or a serializer instance such as ``ArticleSerializer(many=True)``. A serializer answers an invalid
payload 400 with ``serializer.errors``, the body DRF sends over HTTP, and hands ``validated_data``
on; a JSON Schema answers 400 with one error per path. The check is a sync step of the pipeline,
so on the async consumer it runs in a worker thread (a serializer may query the database; a large
payload takes CPU).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import islice
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .errors import SocketError

__all__ = ["declaration_problem", "request_validator"]

#: Errors one reply lists at most, and the characters of each message: a message quotes the value
#: it is about, and a client's value may be a megabyte.
MAX_ERRORS = 20
MAX_MESSAGE_CHARS = 200

Validator = Callable[[Any, Any, Any], Any]


def is_serializer_class(spec: Any) -> bool:
    try:
        from rest_framework.serializers import BaseSerializer
    except ImportError:
        return False
    return isinstance(spec, type) and issubclass(spec, BaseSerializer)


def is_serializer_instance(spec: Any) -> bool:
    """A serializer instance: ``ArticleSerializer(many=True)`` is one (a ``ListSerializer``)."""
    return not isinstance(spec, type) and is_serializer_class(type(spec))


def declaration_problem(spec: Any, key: str = "request") -> str | None:
    """Why ``spec`` cannot be a route's ``key`` (``"request"`` or ``"response"``; ``None`` when it can)."""
    if spec is None or is_serializer_class(spec) or (key == "response" and is_serializer_instance(spec)):
        return None
    if not isinstance(spec, Mapping):
        expected = ("a DRF serializer class, a serializer instance such as ArticleSerializer(many=True) or a JSON "
                    "Schema dict" if key == "response" else "a DRF serializer class or a JSON Schema dict")
        return f"expected {expected}, got {_described(spec)}"
    try:
        _json_schema_class(spec).check_schema(spec)
    except ImproperlyConfigured as exc:
        return str(exc)
    except Exception as exc:  # jsonschema.SchemaError, or a schema its meta-schema cannot even read
        return f"not a valid JSON Schema: {getattr(exc, 'message', exc)}"
    return None


def request_validator(spec: Any) -> Validator | None:
    """The pipeline step for a route's ``request``: ``(consumer, headers, payload) -> payload``."""
    if spec is None:
        return None
    problem = declaration_problem(spec)
    if problem is not None:
        def misdeclared(consumer: Any, headers: Any, payload: Any) -> Any:
            raise ImproperlyConfigured(f"The route's 'request' is unusable: {problem} (channels_router.E007).")
        return misdeclared
    if is_serializer_class(spec):
        return _serializer_validator(spec)
    return _json_schema_validator(spec)


def _serializer_validator(serializer_class: type) -> Validator:
    def validate(consumer: Any, headers: Any, payload: Any) -> Any:
        serializer = serializer_class(data=payload, context={"consumer": consumer, "headers": headers})
        serializer.is_valid(raise_exception=True)  # DRF's ValidationError: 400 with serializer.errors
        return serializer.validated_data
    return validate


def _json_schema_validator(schema: Mapping[str, Any]) -> Validator:
    cls = _json_schema_class(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)

    def validate(consumer: Any, headers: Any, payload: Any) -> Any:
        errors = list(islice(validator.iter_errors(payload), MAX_ERRORS))
        if errors:
            # In the schema's order, then the payload's: the same payload always gets the same reply.
            raise InvalidPayload([{"path": _pointer(error.absolute_path), "message": _short(error.message)}
                                  for error in errors])
        return payload
    return validate


class InvalidPayload(SocketError):
    """400 ``{"detail", "code": "invalid", "errors": [{"path", "message"}, ...]}``."""

    def __init__(self, errors: list[dict[str, str]]):
        super().__init__(400, "The payload does not match the route's schema.", "invalid")
        self.errors = errors

    @property
    def payload(self) -> dict[str, Any]:
        return {**super().payload, "errors": self.errors}


def _json_schema_class(schema: Mapping[str, Any]) -> Any:
    try:
        from jsonschema.validators import validator_for
    except ImportError:
        raise ImproperlyConfigured(
            "A JSON Schema 'request' needs jsonschema: pip install 'django-channels-router[schema]'") from None
    return validator_for(schema)  # the draft its "$schema" names; 2020-12 when it names none


def _described(value: Any) -> str:
    """What a misdeclaration is, for its error: ``str 'Article'``, ``an instance of ArticleSerializer ...``."""
    if is_serializer_instance(value):
        return f"an instance of {type(value).__name__} (give the class)"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:59] + '…'}"


def _pointer(path: Any) -> str:
    """A JSON Pointer (RFC 6901) to the value in the payload: ``""`` is the payload itself."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS - 1] + "…"
