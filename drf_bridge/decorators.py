"""``@socket_route``: declare a route on a model router, like DRF's ``@action``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["socket_route"]

F = TypeVar("F", bound=Callable[..., Any])

def socket_route(route: str | None = None, *, detail: bool = False, method: str = "POST",
                 hydrate: str | Callable[..., Any] | None = None,
                 dehydrate: str | Callable[..., Any] | None = "dehydrate",
                 request: Any = None, response: Any = None, description: str | None = None,
                 idempotent: bool | None = None) -> Callable[[F], F]:
    """Make the decorated method the handler of a route, checked like the router's other routes.

    ``route`` defaults to the method's name without an ``on_`` prefix. ``detail=True`` routes
    load the object named by the request's id (404 when missing, object permissions checked)
    and pass it as the handler's first argument. ``method`` is the HTTP method permissions
    see: it defaults to POST, so a route is treated as a write unless you say ``"GET"``. The
    handler's payload is serialised with the router's serializer when it is a model instance,
    a queryset or a serializer, and sent as it is otherwise. ``request`` and ``response`` are the
    route's declarations, as in a plain ``routes`` entry: the payload is checked against
    ``request`` (a DRF serializer class or a JSON Schema dict), and ``response`` (the same, or a
    serializer instance such as ``ArticleSerializer(many=True)``) only documents the reply. Both
    are in ``manage.py socketschema`` and its TypeScript. Without a ``response``, a detail route
    whose ``dehydrate`` is the router's own, unchanged one is documented as replying one object of
    the router's serializer, as ``publish`` below does; declare ``response`` for any other reply.
    ``description`` is what the schema and the docs page say of the route, for the people who call
    it, instead of the handler's docstring (which may then speak to the server's developers);
    ``{model}``, ``{models}`` and ``{lookup}`` in it become the model's verbose names and the
    router's ``lookup_url_kwarg``. ``idempotent=False`` makes a write route ignore
    ``idempotency-key`` (every route but GET ones takes it: see the idempotency how-to)::

        @socket_route(detail=True, method="POST")
        def publish(self, article, headers):
            article.published = True
            article.save()
            return {"payload": article}
    """

    def decorate(func: F) -> F:
        name = route or func.__name__.removeprefix("on_")
        func.socket_route = {  # type: ignore[attr-defined]
            "route": name,
            "handler": func.__name__,
            "hydrate": hydrate if hydrate is not None else ("hydrate_object" if detail else None),
            "dehydrate": dehydrate,
            "method": method.upper(),
            "detail": detail,
            **({"request": request} if request is not None else {}),
            **({"response": response} if response is not None else {}),
            **({"description": description} if description is not None else {}),
            **({"idempotent": idempotent} if idempotent is not None else {}),
        }
        return func

    return decorate
