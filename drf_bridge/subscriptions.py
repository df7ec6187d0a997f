"""Model-change subscriptions: pushes when objects a subscriber may see are created, changed
or deleted, whichever process made the change.

The sender side (any process: a consumer, a view, ``manage.py shell``, a task worker) turns
``post_save``/``post_delete`` into one channel-layer message per model after the transaction
commits. Each subscribed connection then decides, as its own user, what that change means
to it: ``created``, ``updated`` or ``deleted``, or nothing.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import PermissionDenied
from django.db import connections, router, transaction
from django.db.models import Model
from django.http import Http404, QueryDict
from rest_framework import exceptions

from django_channels_router import SocketError, SocketResult, StatusCodes, run_in_worker

from .decorators import socket_route
from .request import build_request

__all__ = ["SubscribeModelMixin", "notify_change", "model_group"]

logger = logging.getLogger("drf_bridge")

CHANGE_TYPE = "drf_bridge.change"
#: Models some router lets clients subscribe to, by label; changes to others cost nothing.
subscribed_models: set[str] = set()
_discovered = False


def model_group(model: type[Model]) -> str:
    """The channel-layer group that hears about changes to ``model``."""
    return f"drf_bridge.{model._meta.label_lower}"


def notify_change(model: type[Model], pks: Iterable[Any], kind: str = "updated", using: str | None = None) -> None:
    """Tell subscribers that these objects changed: for writes that send no signals, such as
    ``QuerySet.update()`` or ``bulk_create()``. Sent after the current transaction commits::

        Article.objects.filter(draft=True).update(draft=False)
        notify_change(Article, ids)
    """
    if kind not in ("created", "updated", "deleted"):
        raise ValueError(f"kind must be 'created', 'updated' or 'deleted', not {kind!r}")
    using = using or router.db_for_write(model)
    connection = connections[using]
    pending: _Changes | None = getattr(connection, "drf_bridge_changes", None)
    fresh = pending is None or not pending.pending_on(connection)
    batch = _Changes() if fresh or pending is None else pending
    for pk in pks:
        batch.add(model, pk, kind)
    if fresh:
        if connection.in_atomic_block:
            connection.drf_bridge_changes = batch  # later saves in this transaction join it
        transaction.on_commit(batch.send, using=using)  # at once outside a transaction


class _Changes:
    """The changes of one transaction, merged per object, sent once it commits."""

    def __init__(self) -> None:
        self.kinds: dict[tuple[type[Model], str], str] = {}

    def pending_on(self, connection: Any) -> bool:
        return connection.in_atomic_block and any(func == self.send for _, func, *_ in connection.run_on_commit)

    def add(self, model: type[Model], pk: Any, kind: str) -> None:
        key = (model, str(pk))
        merged = _MERGE.get((self.kinds.get(key), kind), kind)
        if merged is None:
            self.kinds.pop(key, None)
        else:
            self.kinds[key] = merged

    def send(self) -> None:
        by_model: dict[type[Model], list[list[str]]] = {}
        for (model, pk), kind in self.kinds.items():
            by_model.setdefault(model, []).append([pk, kind])
        layer = get_channel_layer()
        for model, changes in by_model.items():
            try:
                async_to_sync(layer.group_send)(model_group(model), {
                    "type": CHANGE_TYPE, "model": model._meta.label_lower, "changes": changes,
                    "event": uuid.uuid4().hex})
            except Exception:  # the write is committed: report, never fail the writer
                logger.exception("Could not notify subscribers of %d change(s) to %s", len(changes), model._meta.label)


#: (earlier kind, later kind) -> the kind subscribers hear; None: nothing to tell.
_MERGE: dict[tuple[str | None, str], str | None] = {
    ("created", "updated"): "created",
    ("created", "deleted"): None,
    ("deleted", "created"): "updated",
}


def _on_save(sender: type[Model], instance: Model, created: bool = False, raw: bool = False,
             using: str | None = None, **kwargs: Any) -> None:
    if not raw and _is_subscribed(sender):
        notify_change(sender, [instance.pk], "created" if created else "updated", using)


def _on_delete(sender: type[Model], instance: Model, using: str | None = None, **kwargs: Any) -> None:
    if _is_subscribed(sender):
        notify_change(sender, [instance.pk], "deleted", using)


def _is_subscribed(model: type[Model]) -> bool:
    """Whether some router serves subscriptions to ``model``. A process that never imported
    the routers (a shell, a task worker) imports the project's ASGI application once to know."""
    global _discovered
    if not _discovered:
        _discovered = True
        path = getattr(settings, "ASGI_APPLICATION", None)
        if path:
            try:
                import_module(path.rpartition(".")[0])
            except Exception:
                logger.exception("Could not import ASGI_APPLICATION %r to find subscribable models", path)
    return model._meta.label_lower in subscribed_models


# -- the subscriber's side ----------------------------------------------------------------------

@dataclass
class Subscription:
    """One ``subscribe`` request: what it watches, as whom, and which objects it has seen."""

    id: str | int
    model: str
    query: QueryDict
    user: Any
    auth: Any
    pk: str | None = None
    known: set[str] = field(default_factory=set)


class _Evaluations:
    """What one change looks like to a (router, user, query), shared by every subscriber of
    this process with the same view of it: one query per change, not one per subscriber."""

    def __init__(self, size: int = 4096) -> None:
        self.lock = threading.Lock()
        self.results: OrderedDict[tuple[Any, ...], tuple[bool, Any]] = OrderedDict()
        self.size = size

    def get(self, key: tuple[Any, ...], compute: Any) -> tuple[bool, Any]:
        with self.lock:
            if key in self.results:
                return self.results[key]
        result = compute()
        with self.lock:
            self.results[key] = result
            while len(self.results) > self.size:
                self.results.popitem(last=False)
        return result


evaluations = _Evaluations()


Push = tuple[str, Any, dict[str, Any]]


class SubscribeModelMixin:
    """``subscribe`` and ``unsubscribe``: pushes ``created``, ``updated`` and ``deleted`` for the
    objects this connection may ``get`` (with an id) or ``list`` (without; the payload holds the
    same query parameters as ``list``). Each push carries ``headers.subscription``, the uuid of
    the ``subscribe`` request, and ``headers.model``.
    """

    subscriptions: dict[str | int, Subscription]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = cls.subscribed_model()
        if model is not None:
            subscribed_models.add(model._meta.label_lower)

    @classmethod
    def subscribed_model(cls) -> type[Model] | None:
        queryset = getattr(cls, "queryset", None)
        if queryset is not None:
            return queryset.model
        serializer = getattr(cls, "serializer_class", None)
        return getattr(getattr(serializer, "Meta", None), "model", None)

    @socket_route("subscribe", method="GET", hydrate="hydrate_subscription", dehydrate=None)
    async def on_subscribe(self, subscription: Subscription, headers: dict[str, Any]) -> SocketResult:
        """Start pushing changes; 201 with ``{"subscription": <this request's uuid>}``."""
        if not hasattr(self, "subscriptions"):
            self.subscriptions = {}
        self.subscriptions[subscription.id] = subscription
        await self.join(self.change_group())  # type: ignore[attr-defined]
        payload = {"subscription": subscription.id, "model": subscription.model}
        return {"status": StatusCodes.CREATED, "payload": payload}

    @socket_route("unsubscribe", method="GET", dehydrate=None)
    async def on_unsubscribe(self, payload: Any, headers: dict[str, Any]) -> SocketResult:
        """Stop one subscription (``{"subscription": uuid}``), or all of them (no payload); 204."""
        subscriptions = getattr(self, "subscriptions", {})
        wanted = payload.get("subscription") if isinstance(payload, dict) else None
        if wanted is None:
            subscriptions.clear()
        elif subscriptions.pop(wanted, None) is None:
            raise SocketError(404, f"No subscription {wanted!r} on this connection.", "not_found")
        if not subscriptions:
            await self.leave(self.change_group())  # type: ignore[attr-defined]
        return {"status": StatusCodes.NO_CONTENT}

    def change_group(self) -> str:
        return model_group(self.get_queryset().model)  # type: ignore[attr-defined]

    def hydrate_subscription(self, headers: dict[str, Any], payload: Any) -> Subscription:
        """Check the subscriber may ``get`` the object (with an id) or ``list`` the queryset, and
        note what it sees now, so a change can tell ``created`` from ``updated``."""
        request = self.request  # type: ignore[attr-defined]
        key = self.lookup_url_kwarg  # type: ignore[attr-defined]
        has_id = headers.get(key) is not None or (isinstance(payload, dict) and payload.get(key) is not None)
        subscription = Subscription(self.request_uuid, self.get_queryset().model._meta.label_lower,  # type: ignore[attr-defined]
                                    request.query_params.copy(), request.user, request.auth)
        if has_id:
            subscription.query = QueryDict()
            subscription.pk = str(self.hydrate_object(headers, payload).pk)  # type: ignore[attr-defined]
            subscription.known = {subscription.pk}
        else:
            queryset = self.filter_queryset(self.get_queryset())  # type: ignore[attr-defined]
            subscription.known = {str(pk) for pk in queryset.values_list("pk", flat=True)}
        return subscription

    async def drf_bridge_change(self, event: dict[str, Any]) -> None:
        """A change to a model this connection subscribes to: push what it means to each subscription."""
        subscriptions = [s for s in getattr(self, "subscriptions", {}).values() if s.model == event["model"]]
        if not subscriptions:
            return
        pushes = await run_in_worker(self.subscription_pushes, subscriptions, event)
        for route, payload, headers in pushes:
            await self.push(route, payload, headers)  # type: ignore[attr-defined]

    def subscription_pushes(self, subscriptions: list[Subscription], event: dict[str, Any]) -> list[Push]:
        """What ``event`` means to each subscription, worked out as its own user."""
        pushes: list[Push] = []
        for subscription in subscriptions:
            for pk, _kind in event["changes"]:
                if subscription.pk is not None and pk != subscription.pk:
                    continue
                visible, data = self.evaluate(subscription, pk, event["event"])
                route = None
                if visible:
                    route = "updated" if pk in subscription.known else "created"
                    subscription.known.add(pk)
                elif pk in subscription.known:
                    route, data = "deleted", {"id": self.get_queryset().model._meta.pk.to_python(pk)}  # type: ignore[attr-defined]
                    subscription.known.discard(pk)
                if route is not None:
                    pushes.append((route, data, {"subscription": subscription.id, "model": subscription.model}))
        return pushes

    def evaluate(self, subscription: Subscription, pk: str, event: str) -> tuple[bool, Any]:
        """Whether the subscriber may ``get`` object ``pk`` now, and its serialised data."""
        user_key = getattr(subscription.user, "pk", None)
        key = (event, type(self), user_key, subscription.query.urlencode(), pk)
        return evaluations.get(key, lambda: self._evaluate(subscription, pk))

    def _evaluate(self, subscription: Subscription, pk: str) -> tuple[bool, Any]:
        from .generics import _current_request

        request = build_request(self.scope, "GET", {}, {}, subscription.query, self.route_table["subscribe"])  # type: ignore[attr-defined]
        request.user, request.auth = subscription.user, subscription.auth
        token = _current_request.set(request)
        try:
            obj = self.filter_queryset(self.get_queryset()).filter(pk=pk).first()  # type: ignore[attr-defined]
            if obj is None:
                return False, None
            try:
                self.check_object_permissions(request, obj)  # type: ignore[attr-defined]
            except (SocketError, exceptions.APIException, PermissionDenied, Http404):
                return False, None
            return True, self.get_serializer(obj).data  # type: ignore[attr-defined]
        finally:
            _current_request.reset(token)


def connect_signals() -> None:
    """Connected by the app's ``ready()``, so every process notifies, consumers or not."""
    from django.db.models.signals import post_delete, post_save

    post_save.connect(_on_save, dispatch_uid="drf_bridge.subscriptions.save", weak=False)
    post_delete.connect(_on_delete, dispatch_uid="drf_bridge.subscriptions.delete", weak=False)


@checks.register()
def check_subscriptions(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Subscriptions hear of changes through the app's signal receivers and the channel layer."""
    if not subscribed_models:
        return []
    if not apps.is_installed("drf_bridge"):
        return [checks.Error("Model subscriptions are served, but 'drf_bridge' is not in INSTALLED_APPS, "
                             "so no change is ever pushed.", hint="Add 'drf_bridge' to INSTALLED_APPS.",
                             id="drf_bridge.E001")]
    backend = getattr(settings, "CHANNEL_LAYERS", {}).get("default", {}).get("BACKEND", "")
    if backend.endswith("InMemoryChannelLayer"):
        return [checks.Warning("Model subscriptions run on the in-memory channel layer: changes made by other "
                               "processes (other servers, manage.py shell, task workers) are not pushed.",
                               hint="Use channels_redis.core.RedisChannelLayer in production.", id="drf_bridge.W001")]
    return []
