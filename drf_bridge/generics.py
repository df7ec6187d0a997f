"""``GenericSocketRouter``: DRF's ``GenericAPIView`` seams on a router consumer.

Each message gets its own DRF request (``self.request``), kept in a context variable because
one connection serves several requests at once; everything else reads like a DRF view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar

from asgiref.sync import iscoroutinefunction
from django.db import models, transaction
from django.db import router as db_router
from django.db.models import QuerySet
from django.http import QueryDict
from rest_framework import exceptions
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import SAFE_METHODS
from rest_framework.serializers import BaseSerializer
from rest_framework.settings import api_settings
from rest_framework.utils.encoders import JSONEncoder

from django_channels_router import AsyncSocketRouterConsumer, RouteInfo, SocketError, SocketResult, StatusCodes
from django_channels_router.errors import access_refused
from django_channels_router.workers import run_in_worker

from . import conditional
from .fields import use_prebuilt_fields
from .request import SocketRequest, build_request, query_params_from

__all__ = ["GenericSocketRouter"]


def anonymous_user() -> Any:
    from django.contrib.auth.models import AnonymousUser  # not at import: the app loads this module

    return AnonymousUser()

_current_request: ContextVar[SocketRequest] = ContextVar("drf_bridge_request")


@contextmanager
def acting_as(request: SocketRequest) -> Iterator[SocketRequest]:
    """Serve code outside a route (a subscription's push) as ``request``."""
    token = _current_request.set(request)
    try:
        yield request
    finally:
        _current_request.reset(token)

class GenericSocketRouter(AsyncSocketRouterConsumer):
    """The base of model routers: queryset, serializer, permissions and the DRF seams.

    Routes come from methods decorated with :func:`~drf_bridge.socket_route` (the mixins use it
    too) and from a plain ``routes`` list. Every route is authenticated, permission-checked and
    throttled first, with the HTTP method its ``socket_route`` names.
    """

    queryset: ClassVar[QuerySet[Any] | None] = None
    serializer_class: ClassVar[type[BaseSerializer[Any]] | None] = None
    lookup_field: ClassVar[str] = "pk"
    lookup_url_kwarg: ClassVar[str] = "id"
    permission_classes: ClassVar[Sequence[Any]] = api_settings.DEFAULT_PERMISSION_CLASSES
    #: Empty by default: the session was read at connect, and DRF's SessionAuthentication would
    #: demand a CSRF token a socket message cannot carry. Add e.g. TokenAuthentication to read
    #: ``headers["Authorization"]`` on every message.
    authentication_classes: ClassVar[Sequence[Any]] = ()
    throttle_classes: ClassVar[Sequence[Any]] = api_settings.DEFAULT_THROTTLE_CLASSES
    #: DRF permission classes checked once, at the handshake: a refusal refuses the connection
    #: (HTTP 403), so the browser client stops reconnecting. Empty: every connection is accepted.
    connect_permission_classes: ClassVar[Sequence[Any]] = ()
    filter_backends: ClassVar[Sequence[Any]] = api_settings.DEFAULT_FILTER_BACKENDS
    pagination_class: ClassVar[Any] = api_settings.DEFAULT_PAGINATION_CLASS
    #: DRF's encoder, so replies hold what DRF's JSON renderer would send.
    json_encoder = JSONEncoder

    #: ``{handler name: statuses}`` its own steps answer (hydrate, handler), set by the mixins
    #: beside their handlers; :meth:`route_errors` reads them along the MRO.
    handler_errors: ClassVar[dict[str, set[int]]] = {}

    @classmethod
    def route_errors(cls, route: RouteInfo) -> set[int]:
        """Also DRF's authentication, permissions and throttles (:meth:`initial`), the object's
        lookup on detail routes (400 without an id or with a malformed ``if-match`` or
        ``if-none-match``, 404; on writes, 412 for a stale ``if-match``), and what the mixins'
        handlers answer."""
        errors = super().route_errors(route) | {401, 403, 429}
        if route.options.get("detail"):
            errors |= {400, 404}
            if route.options.get("method", "POST") not in SAFE_METHODS:
                errors.add(412)
        for klass in cls.__mro__:
            errors |= vars(klass).get("handler_errors", {}).get(route.handler, set())
        return errors

    @classmethod
    def replies_with_serializer(cls, route: RouteInfo) -> bool:
        """The rule for a custom route that declares no ``response``: a detail route (it loads one
        object) whose dehydrate is the router's own, unchanged ``dehydrate()`` (the ``@socket_route``
        default, which serialises a model instance with ``get_serializer()``) replies with one object
        of the router's serializer. Any other route's reply is what it declares, else any JSON."""
        return (bool(route.options.get("detail")) and route.dehydrate == "dehydrate"
                and getattr(cls, "dehydrate", None) is GenericSocketRouter.dehydrate)

    @classmethod
    def describe_route(cls, route: RouteInfo, components: Any) -> dict[str, Any]:
        """For the schema generator: as drf-spectacular describes a ViewSet's actions (see
        ``drf_bridge.schema``)."""
        from .schema import route_schema

        return route_schema(cls, route, components)

    @classmethod
    def get_routes(cls) -> list[Mapping[str, Any]]:
        """Decorated methods (the mixins' and the user's), then plain ``routes``, which may
        replace a decorated route of the same name."""
        found: dict[str, Mapping[str, Any]] = {}
        for klass in cls.__mro__:  # a subclass's declaration of a route wins
            for attribute in vars(klass).values():
                spec = getattr(attribute, "socket_route", None)
                if spec is not None:
                    found.setdefault(spec["route"], spec)
        plain = super().get_routes()
        replaced = {entry.get("route") for entry in plain if isinstance(entry, Mapping)}
        return [spec for name, spec in found.items() if name not in replaced] + plain

    # -- the request of the message being served ------------------------------------------

    @property
    def request(self) -> SocketRequest:
        """The DRF request of the message being served (set by :meth:`prepare_request`)."""
        try:
            return _current_request.get()
        except LookupError:
            raise AttributeError("self.request exists only while a route is being served") from None

    @property
    def action(self) -> str | None:
        """The route being served, as a ViewSet's ``action`` (None outside a request)."""
        request = _current_request.get(None)
        return None if request is None or request.route is None else request.route.name

    @property
    def kwargs(self) -> dict[str, Any]:
        """The URL route's kwargs, plus the object id once a detail route has read it."""
        return self.request.kwargs

    @property
    def user(self) -> Any:
        """The user of the message being served (its credentials win), else the connection's."""
        request = _current_request.get(None)
        return self.scope.get("user") if request is None else request.user

    def prepare_request(self, route: RouteInfo, headers: dict[str, Any], payload: Any) -> None:
        """The pipeline's first step, as DRF's ``dispatch()`` begins: build the message's request
        (``self.request`` from here on), then :meth:`initial`. ``check_access`` runs after it.

        GET routes take their payload as query parameters, as HTTP GET has no body; for other
        routes it is ``request.data`` (``{}`` when absent, as for an empty HTTP body). A GET
        payload that is not query parameters is a 400 once :meth:`initial` has passed.
        """
        method = route.options.get("method", "POST")
        query, query_error = QueryDict(), None
        if method == "GET":
            try:
                query = query_params_from(payload)
            except exceptions.ParseError as exc:  # reported after authentication, as DRF would
                query_error = exc
        data = {} if payload is None or method == "GET" else payload
        request = build_request(self.scope, method, headers, data, query, route)
        _current_request.set(request)
        self.initial(request)
        if query_error is not None:
            raise query_error

    def initial(self, request: SocketRequest) -> None:
        """DRF's ``APIView.initial()``: authenticate, check permissions, check throttles.

        An override must call ``super().initial(request)``, or none of these run (system check
        ``drf_bridge.E002``).
        """
        self.perform_authentication(request)
        self.check_permissions(request)
        self.check_throttles(request)

    def check_connect(self) -> bool:
        """``login_required``, then ``connect_permission_classes`` as a GET of the socket's URL."""
        if not super().check_connect():
            return False
        if not self.connect_permission_classes:
            return True
        request = build_request(self.scope, "GET", {}, {}, QueryDict(), None)
        request.settle_user(self.scope.get("user") or anonymous_user())
        with acting_as(request):
            return all(permission().has_permission(request, self) for permission in self.connect_permission_classes)

    def _checks_connect_inline(self) -> bool:
        """Without ``connect_permission_classes`` the check runs no user code: no worker thread."""
        return type(self).check_connect is GenericSocketRouter.check_connect and not self.connect_permission_classes

    def get_handler(self, route: RouteInfo) -> Callable[..., Any]:
        """Handlers of routes that write (any method but GET) run in a transaction on the
        database the model is written to, and so does their hydrate (the object's load), so that
        a ``select_for_update()`` in ``get_queryset()`` locks the row until the write commits."""
        handler = super().get_handler(route)
        if not self.hydrates_in_transaction(route):
            return handler
        hydrate = self._hydrate_then_validate(route, super().get_hydrate(route))

        def in_transaction(*args: Any) -> Any:  # runs where the handler runs: off the event loop
            with transaction.atomic(using=db_router.db_for_write(self.get_queryset().model)):
                if hydrate is not None:
                    headers, payload = route.handler_args(*args)
                    args = route.handler_args(headers, hydrate(*route.hydrate_args(headers, payload)))
                return handler(*args)

        return in_transaction

    def get_hydrate(self, route: RouteInfo) -> Callable[..., Any] | None:
        """None for routes whose handler hydrates inside its transaction (see get_handler): there
        the route's own hydrate runs inside the handler, so to wrap it, wrap ``get_handler()``
        (or return False from ``hydrates_in_transaction()`` to hydrate before the transaction).
        On detail routes, the route's declared ``request`` is checked after the hydrate."""
        if self.hydrates_in_transaction(route):
            return None
        return self._hydrate_then_validate(route, super().get_hydrate(route))

    def get_validate(self, route: RouteInfo) -> Callable[..., Any] | None:
        """None for detail routes: their declared ``request`` is checked after the object's
        lookup (see :meth:`get_hydrate`)."""
        return None if self.looks_up_first(route) else super().get_validate(route)

    def looks_up_first(self, route: RouteInfo) -> bool:
        """Detail routes load their object before the payload is validated, as DRF's ``update()``
        does: an unknown id is a 404 (and a refused object a 403) whatever the payload."""
        return bool(route.options.get("detail")) and route.hydrate is not None

    def _hydrate_then_validate(self, route: RouteInfo, hydrate: Callable[..., Any] | None
                                 ) -> Callable[..., Any] | None:
        """``hydrate``, followed on detail routes by the check of the route's declared ``request``."""
        validate = super().get_validate(route)
        if hydrate is None or validate is None or not self.looks_up_first(route):
            return hydrate
        if iscoroutinefunction(hydrate):
            async def hydrate_async(*args: Any) -> Any:
                instance = await hydrate(*args)
                await run_in_worker(validate, self, *route.hydrate_args(*args), thread_sensitive=self.thread_sensitive)
                return instance
            return hydrate_async

        def hydrate_sync(*args: Any) -> Any:
            instance = hydrate(*args)
            validate(self, *route.hydrate_args(*args))  # hydrate_args swaps back to (headers, payload)
            return instance
        return hydrate_sync

    @classmethod
    def route_is_idempotent(cls, route: RouteInfo) -> bool:
        """Every route but GET ones accepts an ``idempotency-key``, unless it says
        ``"idempotent": False``."""
        if route.options.get("idempotent") is None and route.options.get("method", "POST") not in SAFE_METHODS:
            return True
        return super().route_is_idempotent(route)

    def idempotency_database(self, route: RouteInfo) -> str:
        """The database the model is written to, where the write's transaction runs (see get_handler)."""
        return db_router.db_for_write(self.get_queryset().model)

    def hydrates_in_transaction(self, route: RouteInfo) -> bool:
        """Writes whose handler is sync, and whose hydrate, if any, is sync too."""
        if route.options.get("method", "POST") in SAFE_METHODS:
            return False
        steps = [super().get_handler(route), super().get_hydrate(route)]
        return not any(iscoroutinefunction(step) for step in steps if step is not None)

    def perform_authentication(self, request: SocketRequest) -> None:
        """Valid credentials in the message's headers win, invalid ones are a 401, and with
        none the connection's user (from ``AuthMiddlewareStack``) stays."""
        request.authenticators = self.get_authenticators()
        for authenticator in request.authenticators:
            result = authenticator.authenticate(request)
            if result is not None:
                user, auth = result
                request.settle_user(user, auth, authenticator)
                return
        request.settle_user(self.scope.get("user") or anonymous_user())

    def get_authenticators(self) -> list[Any]:
        return [auth() for auth in self.authentication_classes]

    def get_permissions(self) -> list[Any]:
        return [permission() for permission in self.permission_classes]

    def get_throttles(self) -> list[Any]:
        return [throttle() for throttle in self.throttle_classes]

    def check_permissions(self, request: SocketRequest) -> None:
        for permission in self.get_permissions():
            if not permission.has_permission(request, self):
                self.permission_denied(request, getattr(permission, "message", None))

    def check_object_permissions(self, request: SocketRequest, obj: Any) -> None:
        for permission in self.get_permissions():
            if not permission.has_object_permission(request, self, obj):
                self.permission_denied(request, getattr(permission, "message", None))

    def permission_denied(self, request: SocketRequest, message: Any = None) -> None:
        """401 for an anonymous user (so the client knows to log in), 403 for anyone else."""
        def challenge() -> str | None:
            return request.authenticators[0].authenticate_header(request) if request.authenticators else None

        refused = access_refused(request.user, str(message or exceptions.PermissionDenied.default_detail), challenge)
        if refused.status == StatusCodes.FORBIDDEN and isinstance(message, (dict, list)):
            raise exceptions.PermissionDenied(message)  # a structured message is the body, as in DRF
        raise refused

    def check_throttles(self, request: SocketRequest) -> None:
        """DRF's throttles; a refusal is 429 ``throttled`` with DRF's message and ``Retry-After``."""
        waits = [throttle.wait() for throttle in self.get_throttles() if not throttle.allow_request(request, self)]
        if waits:
            wait = max((wait for wait in waits if wait is not None), default=None)
            throttled = exceptions.Throttled(wait)
            raise SocketError(429, str(throttled.detail), "throttled",
                              None if wait is None else {"Retry-After": str(int(wait))})

    # -- GenericAPIView's seams -----------------------------------------------------------

    def get_queryset(self) -> QuerySet[Any]:
        assert self.queryset is not None, f"{type(self).__name__} needs a queryset or a get_queryset()."
        return self.queryset.all()

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        for backend in self.filter_backends:
            queryset = backend().filter_queryset(self.request, queryset, self)
        return queryset

    def get_object(self) -> Any:
        """The object named by the request's id, with its object permissions checked."""
        queryset = self.filter_queryset(self.get_queryset())
        lookup = self.kwargs[self.lookup_url_kwarg]
        if type(lookup) not in (str, int):  # JSON true is not id 1
            raise exceptions.NotFound()
        obj = get_object_or_404(queryset, **{self.lookup_field: lookup})
        self.check_object_permissions(self.request, obj)
        return obj

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        assert self.serializer_class is not None, f"{type(self).__name__} needs a serializer_class."
        return self.serializer_class

    def get_serializer_context(self) -> dict[str, Any]:
        return {"request": self.request, "format": None, "view": self}

    def get_serializer(self, *args: Any, **kwargs: Any) -> BaseSerializer[Any]:
        """The serializer class's fields are built once, not per serializer (see ``drf_bridge.fields``)."""
        kwargs.setdefault("context", self.get_serializer_context())
        return use_prebuilt_fields(self.get_serializer_class()(*args, **kwargs))

    @property
    def paginator(self) -> Any:
        request = self.request
        if request.paginator is None and self.pagination_class is not None:
            request.paginator = self.pagination_class()
        return request.paginator

    def paginate_queryset(self, queryset: Any) -> Any:
        page = None if self.paginator is None else self.paginator.paginate_queryset(queryset, self.request, view=self)
        self.request.paginated = page is not None
        return page

    def get_paginated_response(self, data: Any) -> Any:
        return self.paginator.get_paginated_response(data).data

    # -- hydrate and dehydrate, shared by the routes --------------------------------------

    def hydrate_object(self, headers: dict[str, Any], payload: Any) -> Any:
        """Detail routes: the id from ``headers["id"]``, else ``payload["id"]`` (the key is
        ``lookup_url_kwarg``), then :meth:`get_object`."""
        key = self.lookup_url_kwarg
        lookup = headers.get(key)
        if lookup is None and isinstance(payload, Mapping):
            lookup = payload.get(key)
        if lookup is None:
            raise SocketError(400, f'This route needs the object\'s id in headers["{key}"] or payload["{key}"].',
                              "missing_id")
        self.kwargs[key] = lookup
        instance = self.get_object()
        return instance if self.request.method in SAFE_METHODS else self.check_if_match(instance, headers)

    # -- conditional requests: etag, if-match, if-none-match -------------------------------

    def get_etag(self, instance: Any, data: Any) -> str | None:
        """The entity tag of ``instance`` as ``data``, its serialised form, shows it: sent as
        ``headers.etag`` with every reply and push that carries this one object, and compared with
        a request's ``if-none-match`` and ``if-match``.

        By default a strong tag hashed from the canonical JSON of ``data`` (sorted keys, the
        router's ``json_encoder``), so it changes exactly when what the client is sent changes,
        and every subscriber and caller who is sent the same data gets the same tag. Override it
        to read a version column instead (``return str(instance.version)``: a tag without quotes
        is quoted); return None for no tag (then ``if-match`` never holds for the object).
        """
        return conditional.etag_of_data(data, self.json_encoder)

    def etag_of(self, instance: Any, data: Any) -> str | None:
        """:meth:`get_etag`, quoted as an HTTP entity tag (``"..."``)."""
        tag = self.get_etag(instance, data)
        return None if tag is None else conditional.quote_etag(tag)

    def object_reply(self, value: Any, headers: Mapping[str, Any], status: int = StatusCodes.OK) -> SocketResult:
        """The reply of a route that carries one object (``value``: a model instance, or a
        serializer that holds it): its data with ``headers.etag``. On a GET route, a request
        whose ``if-none-match`` holds the current tag (or is ``*``) gets 304 and no payload."""
        serializer = value if isinstance(value, BaseSerializer) else self.get_serializer(value)
        tag = self.etag_of(serializer.instance, serializer.data)  # .data is kept: dehydrate reuses it
        reply_headers = None if tag is None else {"etag": tag}
        if self.request.method in SAFE_METHODS:
            wanted = conditional.precondition(headers, conditional.IF_NONE_MATCH)
            if wanted is not None and not conditional.if_none_match_passes(wanted, tag):
                return {"status": StatusCodes.NOT_MODIFIED, "headers": reply_headers}
        return {"status": status, "payload": serializer, "headers": reply_headers}

    def check_if_match(self, instance: Any, headers: Mapping[str, Any]) -> Any:
        """A write to one object with ``if-match``: 412 ``precondition_failed`` unless it holds the
        object's current tag, as this caller is sent the object (the route's serializer). Returns
        the object to write.

        Inside the write's transaction (see :meth:`get_handler`) the object's row is locked first
        (``SELECT ... FOR UPDATE``, on databases that have it) and the object read again, so no
        other write can commit between this check and this write; on SQLite, writers are
        serialised by the database itself.
        """
        wanted = conditional.precondition(headers, conditional.IF_MATCH)
        if wanted is None:
            return instance
        model = type(instance)
        using = instance._state.db or db_router.db_for_write(model)
        connection = transaction.get_connection(using)
        if connection.in_atomic_block and connection.features.has_select_for_update:
            list(model._base_manager.db_manager(using).select_for_update().filter(pk=instance.pk).values_list("pk"))
            instance = self.get_object()  # read again: what a write that committed meanwhile left
        tag = self.etag_of(instance, self.get_serializer(instance).data)
        if not conditional.if_match_passes(wanted, tag):
            raise SocketError(StatusCodes.PRECONDITION_FAILED, "The object has changed since the tag in if-match "
                              "was read: read it again, then retry.", "precondition_failed",
                              None if tag is None else {"etag": tag})
        return instance

    def dehydrate(self, value: Any) -> Any:
        """Serialise what a handler returned: a serializer, a model instance, a queryset or a
        list of instances; anything else is sent as it is."""
        if isinstance(value, BaseSerializer):
            return value.data
        if isinstance(value, models.Model):
            return self.get_serializer(value).data
        if isinstance(value, QuerySet) or (isinstance(value, list) and value and isinstance(value[0], models.Model)):
            return self.get_serializer(value, many=True).data
        return value
