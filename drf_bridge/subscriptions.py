"""Model-change subscriptions: pushes when objects a subscriber may see are created, changed
or deleted, whichever process made the change.

The sender side (any process: a consumer, a view, ``manage.py shell``, a task worker) turns
``post_save``/``post_delete`` into one channel-layer message per model after the transaction
commits, naming the objects that changed. Each subscribed connection then works out, as its
own user, what that means to it: ``created``, ``updated`` or ``deleted``, or nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from functools import partial
from importlib import import_module
from typing import Any

from channels.layers import get_channel_layer
from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connections, router, transaction
from django.db.backends.signals import connection_created
from django.db.models import Model
from django.db.models.signals import post_delete, post_save
from django.http import Http404, QueryDict
from rest_framework import exceptions

from django_channels_router import SocketError, SocketResult, StatusCodes, run_in_worker
from django_channels_router.push import group_send_from_sync

from .decorators import socket_route
from .generics import acting_as
from .request import build_request

__all__ = ["SubscribeModelMixin", "notify_change", "model_group"]

logger = logging.getLogger("drf_bridge")

CHANGE_TYPE = "drf_bridge.change"
#: Labels of the (concrete) models some router lets clients subscribe to.
subscribed_models: set[str] = set()


def model_group(label: str) -> str:
    """The channel-layer group that hears about changes to the model labelled ``label``."""
    return f"drf_bridge.{label}"


def _labels(model: type[Model]) -> set[str]:
    """The subscribed models a save of ``model`` changes: itself (through proxies) and the
    parents of multi-table inheritance."""
    concrete = model._meta.concrete_model
    models = [concrete, *concrete._meta.get_parent_list()]
    return {m._meta.label_lower for m in models} & subscribed_models


# -- the sender's side ----------------------------------------------------------------------------

def notify_change(model: type[Model], pks: Iterable[Any], using: str | None = None) -> None:
    """Tell subscribers these objects changed, for writes that send no signals
    (``QuerySet.update()``, ``bulk_create()``). Sent once the current transaction commits::

        Article.objects.filter(draft=True).update(draft=False)
        notify_change(Article, ids)
    """
    labels = _labels(model)
    if not labels:
        return
    try:
        keys = [str(model._meta.pk.to_python(pk)) for pk in pks]
    except ValidationError as exc:
        raise ValueError(f"Not primary keys of {model._meta.label}: {exc}") from None
    if not keys:
        return
    using = using or router.db_for_write(model)
    connection = connections[using]
    pending: _Changes | None = getattr(connection, "drf_bridge_changes", None)
    if pending is not None and pending.waits_on(connection):
        pending.add(labels, keys)
        return
    changes = _Changes()
    changes.add(labels, keys)
    if connection.in_atomic_block:
        connection.drf_bridge_changes = changes  # later saves in this transaction join it
    transaction.on_commit(changes.send, using=using)  # at once outside a transaction


class _Changes:
    """The objects one transaction changed, per model, sent once when it commits. Receivers
    read each object's current state, so several saves of one object are one push."""

    def __init__(self) -> None:
        self.pks: dict[str, set[str]] = {}

    def waits_on(self, connection: Any) -> bool:
        return connection.in_atomic_block and any(func == self.send for _, func, *_ in connection.run_on_commit)

    def add(self, labels: set[str], pks: list[str]) -> None:
        for label in labels:
            self.pks.setdefault(label, set()).update(pks)

    def send(self) -> None:
        layer = get_channel_layer()
        for label, pks in self.pks.items():
            message = {"type": CHANGE_TYPE, "model": label, "pks": sorted(pks), "event": uuid.uuid4().hex}
            group_send_from_sync(layer, model_group(label), message, partial(_not_sent, label, len(pks)))


def _not_sent(label: str, count: int, exc: BaseException) -> None:
    """The write is committed: report, never fail the writer."""
    logger.error("Could not notify subscribers of %d change(s) to %s", count, label, exc_info=exc)


def _on_save(sender: type[Model], instance: Model, raw: bool = False, using: str | None = None,
             **kwargs: Any) -> None:
    if not raw:
        discover_subscribed_models()
        notify_change(sender, [instance.pk], using)


def _on_delete(sender: type[Model], instance: Model, using: str | None = None, **kwargs: Any) -> None:
    notify_change(sender, [instance.pk], using)


def register_model(model: type[Model]) -> None:
    """Push changes to ``model``: deletes of it, its proxies and children send signals from now on
    (only these: a ``post_delete`` receiver costs every other model Django's fast delete)."""
    label = model._meta.concrete_model._meta.label_lower
    if label in subscribed_models:
        return
    subscribed_models.add(label)
    for candidate in apps.get_models():
        if label in _labels(candidate):
            post_delete.connect(_on_delete, sender=candidate, weak=False,
                                dispatch_uid=f"drf_bridge.delete.{candidate._meta.label_lower}")


_discovery = threading.Lock()
_discovered = False


def discover_subscribed_models(**kwargs: Any) -> None:
    """A process that never imported the routers (a shell, a task worker) imports the
    project's ASGI application once, so it knows which models to report."""
    global _discovered
    if _discovered:
        return
    with _discovery:
        if _discovered:
            return
        path = getattr(settings, "ASGI_APPLICATION", None)
        if path:
            try:
                import_module(path.rpartition(".")[0])
            except Exception:
                logger.exception("Could not import ASGI_APPLICATION %r to find subscribable models", path)
        _discovered = True


def connect_signals() -> None:
    """Connected by the app's ``ready()``, so that every process reports changes."""
    post_save.connect(_on_save, weak=False, dispatch_uid="drf_bridge.save")
    connection_created.connect(discover_subscribed_models, weak=False, dispatch_uid="drf_bridge.discover")


# -- the subscriber's side ----------------------------------------------------------------------

@dataclass
class Subscription:
    """One ``subscribe`` request: what it watches, as whom, and which objects it has seen."""

    id: str | int
    label: str
    headers: dict[str, Any]
    query: QueryDict
    user: Any
    auth: Any
    pk: str | None = None
    known: set[str] = field(default_factory=set)


class _View:
    """One evaluation, computed once while the others who need it wait."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: dict[str, Any] | None = None


class _Views:
    """What one change looks like to one view of the model (see ``get_subscription_key``),
    shared by every subscriber of this process with that view: one query per change, not one
    per subscriber. Kept only for recent changes."""

    def __init__(self, size: int = 256) -> None:
        self.lock = threading.Lock()
        self.views: OrderedDict[Hashable, _View] = OrderedDict()
        self.size = size

    def get(self, key: Hashable, compute: Any) -> dict[str, Any]:
        with self.lock:
            view = self.views.get(key)
            first = view is None
            if view is None:
                view = self.views[key] = _View()
                while len(self.views) > self.size:
                    self.views.popitem(last=False)
        if first:
            try:
                view.result = compute()
            finally:
                view.done.set()
        view.done.wait()
        if view.result is None:  # the first evaluation failed (and was logged there)
            raise RuntimeError("the evaluation of this change failed")
        return view.result


views = _Views()
Push = tuple[str, Any, dict[str, Any]]
REFUSALS = (SocketError, exceptions.APIException, PermissionDenied, Http404)


class SubscribeModelMixin:
    """``subscribe`` and ``unsubscribe``: pushes ``created``, ``updated`` and ``deleted`` for the
    objects this connection may ``get`` (with an id) or ``list`` (without; the payload holds the
    same query parameters as ``list``). Each push carries ``headers.subscription``, the uuid of
    the ``subscribe`` request, and ``headers.model``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscriptions: dict[str | int, Subscription] = {}
        self._subscriptions_lock = asyncio.Lock()
        self._changes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._change_worker: asyncio.Task[None] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = cls.subscribed_model()
        if model is not None:
            register_model(model)

    @classmethod
    def subscribed_model(cls) -> type[Model] | None:
        queryset = getattr(cls, "queryset", None)
        if queryset is not None:
            return queryset.model
        serializer = getattr(cls, "serializer_class", None)
        return getattr(getattr(serializer, "Meta", None), "model", None)

    @socket_route("subscribe", method="GET", hydrate="hydrate_subscription", dehydrate=None)
    async def on_subscribe(self, subscription: Subscription, headers: dict[str, Any]) -> SocketResult:
        """Start pushing changes; 201 with ``{"subscription": <this request's uuid>}``.

        The group is joined before the objects seen now are read, so no change falls between.
        """
        group = model_group(subscription.label)
        async with self._subscriptions_lock:
            await self.join(group)  # type: ignore[attr-defined]
            try:
                subscription.known = await run_in_worker(self.visible_pks, subscription)
            except BaseException:
                if not any(s.label == subscription.label for s in self.subscriptions.values()):
                    await self.leave(group)  # type: ignore[attr-defined]
                raise
            self.subscriptions[subscription.id] = subscription
        if self._change_worker is None:
            self._change_worker = asyncio.create_task(self._deliver_changes())
        payload = {"subscription": subscription.id, "model": subscription.label}
        return {"status": StatusCodes.CREATED, "payload": payload}

    @socket_route("unsubscribe", method="GET", dehydrate=None)
    async def on_unsubscribe(self, payload: Any, headers: dict[str, Any]) -> SocketResult:
        """Stop one subscription (``{"subscription": uuid}``), or all of them (no payload); 204.
        Once the reply is sent, no push of the subscription follows."""
        wanted = payload.get("subscription") if isinstance(payload, dict) else None
        async with self._subscriptions_lock:
            if wanted is None:
                removed = list(self.subscriptions.values())
                self.subscriptions.clear()
            elif wanted in self.subscriptions:
                removed = [self.subscriptions.pop(wanted)]
            else:
                raise SocketError(404, f"No subscription {wanted!r} on this connection.", "not_found")
            still = {s.label for s in self.subscriptions.values()}
            for label in {s.label for s in removed} - still:
                await self.leave(model_group(label))  # type: ignore[attr-defined]
        return {"status": StatusCodes.NO_CONTENT}

    def hydrate_subscription(self, headers: dict[str, Any], payload: Any) -> Subscription:
        """Check the subscriber may ``get`` the object (with an id) or ``list``, and note as whom."""
        request = self.request  # type: ignore[attr-defined]
        key = self.lookup_url_kwarg  # type: ignore[attr-defined]
        model = self.get_queryset().model  # type: ignore[attr-defined]
        subscription = Subscription(self.request_uuid, model._meta.concrete_model._meta.label_lower,  # type: ignore[attr-defined]
                                    dict(headers), request.query_params.copy(), request.user, request.auth)
        if headers.get(key) is not None or (isinstance(payload, dict) and payload.get(key) is not None):
            subscription.pk = str(self.hydrate_object(headers, payload).pk)  # type: ignore[attr-defined]
            subscription.query = QueryDict()
        return subscription

    def visible_pks(self, subscription: Subscription) -> set[str]:
        """The objects the subscription sees now (ids only)."""
        with self.acting_for(subscription):
            if subscription.pk is not None:
                return {subscription.pk}
            queryset = self.filter_queryset(self.get_queryset())  # type: ignore[attr-defined]
            return {str(pk) for pk in queryset.values_list("pk", flat=True)}

    def get_subscription_key(self, subscription: Subscription) -> Hashable:
        """Subscriptions with the same key see a change the same way and share its evaluation.

        The default key holds everything a queryset or a permission usually reads: the user,
        the credentials, the connection's URL kwargs, the headers and the query parameters.
        Return a coarser key when pushes depend on less (a public feed: ``return None``).
        """
        url_kwargs = (self.scope.get("url_route") or {}).get("kwargs", {})  # type: ignore[attr-defined]
        return (getattr(subscription.user, "pk", None), str(subscription.auth),
                json.dumps(url_kwargs, sort_keys=True, default=str),
                json.dumps(subscription.headers, sort_keys=True, default=str), subscription.query.urlencode())

    async def drf_bridge_change(self, event: dict[str, Any]) -> None:
        """A change to a model this connection subscribes to: queued, so that working it out
        never holds up this connection's requests (or its PINGs)."""
        self._changes.put_nowait(event)

    async def _deliver_changes(self) -> None:
        while True:
            event = await self._changes.get()
            async with self._subscriptions_lock:
                subscriptions = [s for s in self.subscriptions.values() if s.label == event["model"]]
                if not subscriptions:
                    continue
                try:
                    pushes = await run_in_worker(self.subscription_pushes, subscriptions, event)
                    for route, payload, headers in pushes:
                        await self.push(route, payload, headers)  # type: ignore[attr-defined]
                except Exception:  # a failing change must not end the connection's pushes
                    logger.exception("Could not push change %s of %s", event.get("event"), event.get("model"))

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self._change_worker is not None:
            self._change_worker.cancel()
        await super().websocket_disconnect(message)  # type: ignore[misc]

    def subscription_pushes(self, subscriptions: list[Subscription], event: dict[str, Any]) -> list[Push]:
        """What ``event`` means to each subscription, worked out as its own user."""
        pushes: list[Push] = []
        model = apps.get_model(event["model"])
        for subscription in subscriptions:
            pks = [pk for pk in event["pks"] if subscription.pk is None or pk == subscription.pk]
            if not pks:
                continue
            key = (event["event"], type(self), self.get_subscription_key(subscription), subscription.pk)
            seen = views.get(key, lambda s=subscription, p=pks: self.view_of(s, p))  # type: ignore[misc]
            headers = {"subscription": subscription.id, "model": subscription.label}
            for pk in pks:
                if seen.get(pk) is not None:
                    pushes.append(("updated" if pk in subscription.known else "created", seen[pk], headers))
                    subscription.known.add(pk)
                elif pk in subscription.known:  # gone, out of the queryset, or no longer allowed
                    pushes.append(("deleted", {"id": model._meta.pk.to_python(pk)}, headers))
                    subscription.known.discard(pk)
        return pushes

    def view_of(self, subscription: Subscription, pks: list[str]) -> dict[str, Any]:
        """``{pk: data}`` for the changed objects in the subscriber's queryset now; data is
        None where object permissions refuse the object. Empty when ``has_permission`` refuses."""
        with self.acting_for(subscription) as request:
            try:
                self.check_permissions(request)  # type: ignore[attr-defined]
            except REFUSALS:
                return {}
            seen: dict[str, Any] = {}
            for obj in self.filter_queryset(self.get_queryset()).filter(pk__in=pks):  # type: ignore[attr-defined]
                try:
                    self.check_object_permissions(request, obj)  # type: ignore[attr-defined]
                    seen[str(obj.pk)] = self.get_serializer(obj).data  # type: ignore[attr-defined]
                except REFUSALS:
                    seen[str(obj.pk)] = None
            return seen

    def acting_for(self, subscription: Subscription) -> Any:
        """A context in which ``self.request`` is the subscribing request, as it was."""
        request = build_request(self.scope, "GET", subscription.headers, {}, subscription.query,  # type: ignore[attr-defined]
                                self.route_table["subscribe"])  # type: ignore[attr-defined]
        request.settle_user(subscription.user, subscription.auth)
        return acting_as(request)


@checks.register()
def check_subscriptions(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Subscriptions hear of changes through the app's signal receivers and the channel layer."""
    discover_subscribed_models()
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
