"""Conditional requests: entity tags (``headers.etag``) and the ``if-match`` and ``if-none-match``
request headers, read as HTTP reads ``ETag``, ``If-Match`` and ``If-None-Match`` (RFC 9110).

A model router tags each reply and push that carries one object; see
:meth:`drf_bridge.GenericSocketRouter.get_etag`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from django_channels_router import SocketError

__all__ = ["ANY", "IF_MATCH", "IF_NONE_MATCH", "MAX_HEADER_LENGTH", "etag_of_data", "if_match_passes",
           "if_none_match_passes", "precondition", "quote_etag"]

IF_MATCH = "if-match"
IF_NONE_MATCH = "if-none-match"
#: The longest ``if-match`` or ``if-none-match`` value read, in characters; a longer one is a 400.
MAX_HEADER_LENGTH = 1024
#: ``*``: any current representation.
ANY = "*"

#: One entity tag (RFC 9110 ``entity-tag``: ``W/`` for a weak one, then ``"`` etagc* ``"``).
ETAG = re.compile(r'(?:W/)?"[\x21\x23-\x7e\x80-\U0010ffff]*"')
#: One element of a list of entity tags, at a position: blanks and empty elements, then the tag,
#: blanks and a comma or the end; or only blanks and commas up to the end. Each match consumes
#: what it reads and nothing is read twice, so reading a list takes linear time.
_ELEMENT = re.compile(r'[ \t,]*(?:((?:W/)?"[\x21\x23-\x7e\x80-\U0010ffff]*")[ \t]*(?:,|\Z)|\Z)')


def quote_etag(tag: str) -> str:
    """``tag`` as an entity tag: a quoted one (``"v3"``, ``W/"v3"``) as it is, anything else in
    quotes, as Django's ``quote_etag`` does. A ``"`` or a control character inside is an error."""
    if not isinstance(tag, str):
        raise TypeError(f"get_etag() must return a string or None, got {type(tag).__name__}")
    quoted = tag if ETAG.fullmatch(tag) else f'"{tag}"'
    if not ETAG.fullmatch(quoted):
        raise ValueError(f"{tag!r} cannot be an entity tag: no '\"', spaces or control characters inside")
    return quoted


def etag_of_data(data: Any, encoder: type[json.JSONEncoder]) -> str:
    """A strong tag of ``data``: a hash of its canonical JSON (sorted keys, ``encoder``), so two
    representations get the same tag exactly when they hold the same JSON."""
    text = json.dumps(data, cls=encoder, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return f'"{hashlib.blake2b(text.encode(), digest_size=16).hexdigest()}"'


def precondition(headers: Mapping[str, Any], name: str) -> list[str] | None:
    """The entity tags of the request header ``name`` (``["*"]`` for ``*``), or None without it.

    Header names are read as HTTP reads them, whatever their case. A value that is not a string,
    is longer than :data:`MAX_HEADER_LENGTH` or is not ``*`` nor a comma-separated list of quoted
    entity tags is a 400: a precondition the server cannot read must not be taken as met.
    """
    found = [key for key in headers if isinstance(key, str) and len(key) == len(name) and key.lower() == name]
    if not found:
        return None
    if len(found) > 1:
        raise _invalid(f"The {name} header was sent more than once ({', '.join(sorted(found))}).")
    value = headers[found[0]]
    if not isinstance(value, str):
        raise _invalid(f'The {name} header must be a string: "*" or entity tags such as "\\"abc\\"".')
    if len(value) > MAX_HEADER_LENGTH:
        raise _invalid(f"The {name} header is longer than {MAX_HEADER_LENGTH} characters.")
    if value.strip(" \t") == ANY:
        return [ANY]
    tags, position = [], 0
    while position < len(value):
        element = _ELEMENT.match(value, position)
        if element is None:
            raise _invalid(f'The {name} header must be "*" or a comma-separated list of quoted entity tags '
                           f'("abc", W/"abc"); it has {value[position:position + 40]!r}.')
        if element[1] is None:  # blanks and commas to the end
            break
        tags.append(element[1])
        position = element.end()
    if not tags:
        raise _invalid(f'The {name} header holds no entity tag: send "*" or quoted tags ("abc").')
    return tags


def if_match_passes(wanted: list[str], current: str | None) -> bool:
    """RFC 9110 13.1.1: ``*`` matches any current representation; a tag, by strong comparison
    (a weak tag never matches)."""
    if current is None:
        return False
    if wanted == [ANY]:
        return True
    return not current.startswith("W/") and current in wanted


def if_none_match_passes(wanted: list[str], current: str | None) -> bool:
    """RFC 9110 13.1.2: false (so: 304) when ``*`` is sent for an existing representation, or
    a tag matches by weak comparison (``W/`` ignored on both sides)."""
    if current is None:
        return True
    if wanted == [ANY]:
        return False
    weak = current.removeprefix("W/")
    return all(tag.removeprefix("W/") != weak for tag in wanted)


def _invalid(detail: str) -> SocketError:
    return SocketError(400, detail, "invalid")
