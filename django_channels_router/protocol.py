"""The wire protocol, v1: what a request frame may hold and how every reply is written.

A reply is always ``{"uuid", "route", "status", "headers", "payload"}``; JSON is strict both
ways (no ``NaN``/``Infinity``), because the browser client's ``JSON.parse`` rejects them.
"""

from __future__ import annotations

import json
import math
import re
import uuid as uuid_lib
from array import array
from collections.abc import Mapping
from itertools import accumulate
from typing import Any, NamedTuple, TypedDict

from .status import StatusCodes

__all__ = [
    "PING",
    "PONG",
    "RESERVED_ROUTES",
    "ROUTE_NAME",
    "Envelope",
    "SocketResult",
    "Frame",
    "FrameError",
    "decode_frame",
    "encode_frame",
    "error_frame",
    "handler_name_for",
    "new_uuid",
]

PING = "PING"
PONG = "PONG"
RESERVED_ROUTES = frozenset({PING, PONG})
MAX_UUID_LENGTH = 128
#: The largest integer a JavaScript number holds exactly: integer uuids stay within ±this (the schema says so too).
MAX_SAFE_INTEGER = 2**53 - 1
#: Arrays and objects nested deeper than this are refused (400 malformed_json), the same on
#: every consumer, before they can exhaust the parser's recursion.
MAX_NESTING = 128
ROUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,127}")
#: What Python holds for one parsed JSON value beyond its characters, about: an empty dict is 64
#: bytes, a short string 50, a float 24, each plus its 8-byte slot in the list or dict holding it.
VALUE_BYTES = 80

#: Brackets as signed bytes: +1 opens, -1 closes (see _nesting).
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b'[]{}"'))
#: For counting values: structure kept, whitespace dropped, any other byte (of a scalar) an "x".
_VALUE_MARKS = bytes(c if c in b'[]{},"' else ord("x") for c in range(256))
_WHITESPACE = b" \t\n\r"
_TOO_DEEP = b"\x01" * (MAX_NESTING + 1)
_LEAF = b"\x01\xff"
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z])(?=[A-Z])")
_SEPARATORS = str.maketrans(".:-", "___")


class SocketResult(TypedDict, total=False):
    """What a handler returns; every key is optional."""

    status: int
    payload: Any
    headers: Mapping[str, Any] | None


class Envelope(TypedDict):
    """A reply or push as it goes on the wire."""

    uuid: str | int | None
    route: str | None
    status: int
    headers: Mapping[str, Any] | None
    payload: Any


class Frame(NamedTuple):
    """A request frame that passed the protocol's checks."""

    uuid: str | int
    route: str
    headers: dict[str, Any]
    payload: Any
    #: What the parsed frame holds in memory, estimated from its text: its length plus
    #: ``VALUE_BYTES`` per JSON value (at most 24 times its length, for ``[{},{},...]``).
    weight: int


class FrameError(Exception):
    """A frame the router answers with an error before any route runs."""

    def __init__(self, status: int, code: str, detail: str, uuid: Any = None, route: str | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.uuid, self.route = status, code, detail, uuid, route

    def frame(self) -> str:
        return error_frame(self.uuid, self.route, self.status, self.code, self.detail)


def handler_name_for(route: str) -> str:
    """``sayHello`` -> ``on_say_hello``; ``getHTTPStatus`` -> ``on_get_httpstatus``; ``a.b`` -> ``on_a_b``."""
    return "on_" + _CAMEL_BOUNDARY.sub("_", route).lower().translate(_SEPARATORS)


def new_uuid() -> str:
    """A fresh id for messages the server sends on its own (pushes)."""
    return str(uuid_lib.uuid4())


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: valid JSON syntax, but no JSON value can hold it back
        raise ValueError(f"{text} is out of range")
    return value


def _outside_strings(text: str, table: bytes | None, drop: bytes, string: bytes = b"") -> bytes:
    """``text`` as bytes, translated by ``table`` less the bytes in ``drop`` (which must keep
    quotes), with every JSON string replaced by ``string``.

    Every step is a pass of C code over the bytes, so the time is linear whatever the client
    sends (a regular expression over strings backtracks on unterminated ones), and most passes
    shrink what the next one reads. For valid JSON the result is exact: once escaped backslashes
    and quotes are gone, quotes alternate between opening and closing strings, and dropping two
    adjacent quotes keeps that so. For invalid JSON it may be off, which costs nothing:
    ``json.loads`` refuses such a frame anyway.
    """
    data = text.encode("utf-8", "surrogatepass")
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    data = data.translate(table, drop)
    if b'"' in data:
        data = string.join(data.replace(b'""', string).split(b'"')[::2])
    return data


def _nesting(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (brackets inside strings ignored), or
    ``MAX_NESTING + 1`` as soon as it is known to be deeper than allowed; linear (see
    :func:`_outside_strings`)."""
    steps = _outside_strings(text, None, _NOT_BRACKETS).translate(_BRACKET_STEPS)
    if _TOO_DEEP in steps:
        return MAX_NESTING + 1
    # Dropping every "[]" (or "{}") lowers the deepest point by exactly one in balanced brackets.
    leaves = 0
    while leaves < 4 and len(shorter := steps.replace(_LEAF, b"")) < len(steps):
        steps, leaves = shorter, leaves + 1
    return leaves + max(accumulate(array("b", steps)), default=0)


def _values(text: str) -> int:
    """How many JSON values ``text`` holds: the top one, and every array element and object
    member, whatever its type; linear (see :func:`_outside_strings`). A non-empty array or
    object of n values has n - 1 commas; an empty one is "[]" or "{}" once whitespace is gone
    (a value in it would leave an "x")."""
    marks = _outside_strings(text, _VALUE_MARKS, _WHITESPACE, b"x")
    opened = marks.count(b"[") + marks.count(b"{") - marks.count(b"[]") - marks.count(b"{}")
    return 1 + marks.count(b",") + opened


def _valid_uuid(value: Any) -> bool:
    if isinstance(value, str):
        return 0 < len(value) <= MAX_UUID_LENGTH
    return type(value) is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER


def decode_frame(text: str | None, data: bytes | None, max_bytes: int, max_values: int) -> Frame:
    """Check one incoming frame and return it parsed.

    Raises :class:`FrameError` for every frame the protocol rejects; the size, nesting and
    number of values are checked before parsing, so a frame refused for them costs no JSON
    work, and one that passes holds at most ``max_values`` Python objects.
    """
    if text is None:
        raise FrameError(StatusCodes.UNSUPPORTED_MEDIA_TYPE, "unsupported_frame",
                         "Binary frames are not supported; send JSON text.")
    # A character is at most 4 bytes of UTF-8, so the encode is needed only near the limit.
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes):
        raise FrameError(StatusCodes.PAYLOAD_TOO_LARGE, "message_too_large",
                         f"Messages are limited to {max_bytes} bytes.")
    brackets = text.count("[") + text.count("{")
    if brackets > MAX_NESTING and _nesting(text) > MAX_NESTING:
        raise FrameError(StatusCodes.BAD_REQUEST, "malformed_json",
                         f"The message nests arrays and objects more than {MAX_NESTING} deep.")
    values = 1 + brackets + text.count(",")  # at least as many as it holds: exact only if needed
    if values > max_values and (values := _values(text)) > max_values:
        raise FrameError(StatusCodes.PAYLOAD_TOO_LARGE, "too_many_values",
                         f"Messages are limited to {max_values} JSON values (array items and object members).")
    try:
        message = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        raise FrameError(StatusCodes.BAD_REQUEST, "malformed_json", "The message is not valid JSON.") from None
    if not isinstance(message, dict):
        raise FrameError(StatusCodes.BAD_REQUEST, "invalid_envelope", "The message must be a JSON object.")
    uuid, route = message.get("uuid"), message.get("route")
    uuid_ok = _valid_uuid(uuid)
    route_ok = isinstance(route, str) and ROUTE_NAME.fullmatch(route) is not None
    if not (uuid_ok and route_ok):
        problem = "uuid must be a string of 1 to 128 characters or a safe integer" if not uuid_ok else (
            "route must be 1 to 128 characters of A-Z a-z 0-9 _ . : - starting with a letter"
        )
        raise FrameError(StatusCodes.BAD_REQUEST, "invalid_envelope", f"Invalid envelope: {problem}.",
                         uuid if uuid_ok else None, route if route_ok else None)
    headers = message.get("headers")
    if headers is None:
        headers = {}
    elif not isinstance(headers, dict) and route != PING:
        raise FrameError(StatusCodes.BAD_REQUEST, "invalid_envelope",
                         "Invalid envelope: headers must be an object or null.", uuid, route)
    return Frame(uuid, route, headers, message.get("payload"),  # type: ignore[arg-type]  # both checked above
                 len(text) + VALUE_BYTES * values)


def encode_frame(uuid: Any, route: str | None, status: int, headers: Mapping[str, Any] | None, payload: Any,
                 encoder: type[json.JSONEncoder] | None = None) -> str:
    """Serialise one envelope; raises ``TypeError``/``ValueError`` for values JSON cannot hold."""
    return json.dumps(
        {"uuid": uuid, "route": route, "status": int(status), "headers": headers, "payload": payload},
        cls=encoder, allow_nan=False, separators=(",", ":"),
    )


def error_frame(uuid: Any, route: str | None, status: int, code: str, detail: str,
                headers: Mapping[str, Any] | None = None) -> str:
    """An error reply. Route ``PONG`` is never echoed: the client would take it for a heartbeat."""
    return encode_frame(uuid, None if route == PONG else route, status, headers, {"detail": detail, "code": code})
