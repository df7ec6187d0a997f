"""Routes as data: each consumer class gets a route table, built once when the class is made.

Dispatch, the system checks and the DRF bridge all read the same table.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import ImproperlyConfigured

from .protocol import RESERVED_ROUTES, handler_name_for
from .validation import is_serializer_class, request_validator

__all__ = ["RouteInfo", "Callback", "build_route_table", "declared_routes"]

#: A hydrate, dehydrate, handler or access check: a callable, or the name of a consumer method.
Callback = str | Callable[..., Any]

ROUTE_KEYS = ("route", "handler", "hydrate", "dehydrate", "access")


@dataclass(frozen=True)
class RouteInfo:
    """One declared route.

    ``handler``, ``hydrate``, ``dehydrate`` and ``access`` are either callables or names of
    methods on the consumer (resolved per connection). A DRF serializer class declared as the
    ``dehydrate`` becomes a function that serialises the handler's object with it. ``options``
    keeps any other keys of the declaration (``request`` and ``response`` among them), for the
    schema and for extensions such as the DRF bridge. ``validate`` checks the payload against
    ``request``.
    """

    name: str
    handler: Callback
    hydrate: Callback | None = None
    dehydrate: Callback | None = None
    access: Callback | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    validate: Callable[[Any, Any, Any], Any] | None = None
    #: True when every callable of the route is synchronous: the async consumer then runs
    #: the whole request in one thread hop instead of one hop per step.
    sync_only: bool = False
    #: Handlers get ``(payload, headers)`` and hydrates ``(headers, payload)``, unless they name
    #: their first two parameters ``headers, payload`` (handler) or ``payload, headers``
    #: (hydrate): then they get them by those names. Worked out once, when the class is made.
    handler_headers_first: bool = False
    hydrate_payload_first: bool = False

    def hydrate_args(self, headers: Any, payload: Any) -> tuple[Any, Any]:
        """The hydrate's two arguments, in the order it takes them."""
        return (payload, headers) if self.hydrate_payload_first else (headers, payload)

    def handler_args(self, headers: Any, payload: Any) -> tuple[Any, Any]:
        """The handler's two arguments, in the order it takes them. The order is a swap or
        nothing, so ``handler_args(*args)`` of a handler's own ``args`` gives ``(headers, payload)``."""
        return (headers, payload) if self.handler_headers_first else (payload, headers)


def declared_routes(cls: type, base: property) -> list[Any] | None:
    """The raw route declarations of a consumer class, in either form the tutorial shows.

    ``routes = [...]`` as a class attribute, or the property-setter form
    ``@SocketRouterConsumer.routes.setter def routes(self, _): self._routes = [...]``,
    whose setter is run once on a bare instance to read what it assigns. ``base`` is the
    router's own ``routes`` property, which declares nothing.
    """
    for klass in cls.__mro__:
        declared = klass.__dict__.get("routes")
        if declared is None or declared is base:
            continue
        if isinstance(declared, (list, tuple)):
            return list(declared)
        if isinstance(declared, property):
            probe: Any = object.__new__(cls)
            if declared.fset is not None and declared.fset is not base.fset:
                declared.fset(probe, None)
                return list(probe.__dict__.get("_routes") or [])
            if declared.fget is not None and declared.fget is not base.fget:
                return list(declared.fget(probe) or [])
        if isinstance(declared, (classmethod, staticmethod)):
            return list(cls.routes() or [])  # type: ignore[attr-defined]
        raise ImproperlyConfigured(f"{cls.__qualname__}.routes must be a list of route declarations.")
    legacy = getattr(cls, "_routes", None)
    return list(legacy) if isinstance(legacy, (list, tuple)) else None


def build_route_table(cls: type, entries: Iterable[Any]) -> dict[str, RouteInfo]:
    """Turn declarations into ``{route name: RouteInfo}``.

    Mistakes that make the table ambiguous (a non-mapping entry, a missing name, a reserved
    or duplicate route) raise at class creation; the rest are reported by ``manage.py check``.
    """
    table: dict[str, RouteInfo] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("route"), str):
            raise ImproperlyConfigured(
                f"{cls.__qualname__}: each route must be a mapping with a 'route' name, got {entry!r}."
            )
        name = entry["route"]
        if name in RESERVED_ROUTES:
            raise ImproperlyConfigured(
                f"{cls.__qualname__}: route {name!r} is reserved for the heartbeat (channels_router.E005).")
        if name in table:
            raise ImproperlyConfigured(f"{cls.__qualname__}: route {name!r} is declared twice (channels_router.E002).")
        route = RouteInfo(
            name=name,
            handler=entry.get("handler") or handler_name_for(name),
            hydrate=entry.get("hydrate"),
            dehydrate=_serializing(entry.get("dehydrate")),
            access=entry.get("access"),
            options={key: value for key, value in entry.items() if key not in ROUTE_KEYS},
            validate=request_validator(entry.get("request")),
        )
        table[name] = _with_derived_flags(cls, route)
    return table


def _serializing(dehydrate: Any) -> Any:
    """A serializer class given as a dehydrate serialises the handler's object with it:
    ``ArticleSerializer(value).data``. The function keeps the class as ``serializer_class``, the
    reply's type in ``manage.py socketschema``."""
    if not is_serializer_class(dehydrate):
        return dehydrate

    def serialize(value: Any) -> Any:
        return dehydrate(value).data

    serialize.serializer_class = dehydrate  # type: ignore[attr-defined]
    serialize.__qualname__ = f"{dehydrate.__qualname__}(...).data"
    return serialize


def resolve_on_class(cls: type, callback: Callback | None) -> Any:
    """What a callback refers to on the class (``None`` when a named method is missing)."""
    return getattr(cls, callback, None) if isinstance(callback, str) else callback


def _with_derived_flags(cls: type, route: RouteInfo) -> RouteInfo:
    steps = [route.handler, route.hydrate, route.dehydrate, route.access]
    steps += [hook for hook in ("prepare_request", "check_access") if getattr(cls, hook, None) is not None]
    resolved = [resolve_on_class(cls, step) for step in steps if step is not None]
    return replace(
        route,
        sync_only=all(callable(fn) and not iscoroutinefunction(fn) for fn in resolved),
        handler_headers_first=_first_parameters(cls, route.handler) == ["headers", "payload"],
        hydrate_payload_first=_first_parameters(cls, route.hydrate) == ["payload", "headers"],
    )


def _first_parameters(cls: type, callback: Callback | None) -> list[str]:
    """The names of the first two parameters a callback is called with (``self`` excluded)."""
    fn = resolve_on_class(cls, callback)
    try:
        names = [p.name for p in inspect.signature(fn).parameters.values()]
    except (TypeError, ValueError):  # not callable, or a builtin without a signature
        return []
    if isinstance(callback, str) and inspect.isfunction(inspect.getattr_static(cls, callback, None)):
        names = names[1:]  # a plain method: skip self (not a staticmethod or a classmethod)
    return names[:2]


def subclasses(base: type) -> list[type]:
    """Every subclass of ``base``, at any depth, in a stable order (module, then name), so that
    checks report the same way on every run."""
    found: set[type] = set()
    waiting = [base]
    sub: type
    while waiting:
        for sub in waiting.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                waiting.append(sub)
    return sorted(found, key=lambda cls: (cls.__module__, cls.__qualname__))
