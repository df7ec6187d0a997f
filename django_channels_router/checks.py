"""``manage.py check`` for every router consumer: the route table, read the way dispatch reads it."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.core import checks

from .conf import check_all
from .consumers import AsyncSocketRouterConsumer, RouterMixin, SocketRouterConsumer
from .layers import receive_timeout_problem
from .protocol import ROUTE_NAME
from .routes import resolve_on_class, subclasses
from .validation import declaration_problem

BASES = {RouterMixin, SocketRouterConsumer, AsyncSocketRouterConsumer}
DECLARATION_HINTS = {
    "request": "Give a DRF serializer class or a JSON Schema dict; requests to a route with an unusable "
               "'request' are answered 500.",
    "response": "Give a DRF serializer class, a serializer instance such as ArticleSerializer(many=True) or a "
                "JSON Schema dict; manage.py socketschema refuses to document a route with an unusable 'response'.",
}


@checks.register()
def check_routes(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = _import_asgi_application()
    for cls in subclasses(RouterMixin):
        if cls in BASES:
            continue
        for route in cls.route_table.values():  # type: ignore[attr-defined]
            label = f"{cls.__module__}.{cls.__qualname__}, route {route.name!r}"
            if not ROUTE_NAME.fullmatch(route.name):
                errors.append(checks.Error(
                    f"{label}: the protocol rejects this route name, so no client can call it.",
                    hint="Use 1 to 128 characters of A-Z a-z 0-9 _ . : - starting with a letter.",
                    obj=cls, id="channels_router.E004"))
            if not callable(resolve_on_class(cls, route.handler)):
                errors.append(checks.Error(
                    f"{label}: no handler {route.handler!r}; requests to it are answered 501.",
                    hint=f"Define {route.handler}(self, payload, headers) or name one with 'handler'.",
                    obj=cls, id="channels_router.E001"))
            for key, hint in DECLARATION_HINTS.items():
                problem = declaration_problem(route.options.get(key), key)
                if problem is not None:
                    errors.append(checks.Error(f"{label}: {key!r} is unusable: {problem}.", hint=hint,
                                               obj=cls, id="channels_router.E007"))
            for key in ("hydrate", "dehydrate", "access"):
                callback = getattr(route, key)
                if callback is not None and not callable(resolve_on_class(cls, callback)):
                    errors.append(checks.Error(
                        f"{label}: {key} {callback!r} is not callable.",
                        hint="Give a function, or the name of a method of the consumer.",
                        obj=cls, id="channels_router.E003"))
    return errors


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``settings.CHANNELS_ROUTER`` is read when a connection opens; report mistakes at start-up."""
    hint = ("Correct the key or value in settings.CHANNELS_ROUTER; the settings reference lists every key, its "
            "default and its range: https://django-channels-router.readthedocs.io/en/latest/reference/settings.html")
    return [checks.Error(problem, hint=hint, id="channels_router.E006") for problem in check_all()]


@checks.register()
def check_channel_layers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A channels-redis layer whose idle receive times out (redis-py 8's default ``socket_timeout``
    equals channels-redis' blocking receive) logs an outage and resyncs every few seconds."""
    from channels.layers import channel_layers

    errors: list[checks.CheckMessage] = []
    for alias in getattr(settings, "CHANNEL_LAYERS", {}):
        try:
            problem = receive_timeout_problem(channel_layers[alias])
        except Exception:  # a layer that cannot be made fails where it is used, with its own error
            continue
        if problem:
            errors.append(checks.Error(
                f"CHANNEL_LAYERS[{alias!r}]: {problem}: connections log \"Channel layer unavailable\" and "
                "subscriptions get resync every few seconds, and a message Redis pops as a read gives up is lost.",
                hint='Give each host a longer socket_timeout, e.g. "hosts": [{"address": "redis://...", '
                     '"socket_timeout": 10}].',
                id="channels_router.E010"))
    return errors


def _import_asgi_application() -> list[checks.CheckMessage]:
    """Import the project's ASGI routing so that every consumer class exists when checked."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return []
    module = path.rpartition(".")[0]
    try:
        import_module(module)
    except Exception as exc:
        return [checks.Warning(
            f"ASGI_APPLICATION {path!r} could not be imported ({type(exc).__name__}: {exc}), "
            "so the routes of consumers it would load were not checked.",
            hint=f"Fix the error (python -c 'import {module}' shows its traceback), or point "
                 "ASGI_APPLICATION at your project's application.",
            id="channels_router.W001")]
    return []
