"""Model-change subscriptions: pushes when objects a subscriber may see are created, changed
or deleted, whichever process made the change.

The sender side (any process: a consumer, a view, ``manage.py shell``, a task worker) turns
``post_save``/``post_delete`` into one channel-layer message per model after the transaction
commits, naming the objects that changed. Each subscribed connection then works out, as its
own user, what that means to it: ``created``, ``updated`` or ``deleted``, or nothing.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from functools import partial
from importlib import import_module
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.apps import apps
from django.conf import settings
from django.contrib import auth
from django.core import checks
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connections, router, transaction
from django.db.backends.signals import connection_created
from django.db.models import Model
from django.db.models.signals import post_delete, post_save
from django.http import Http404, QueryDict
from rest_framework import exceptions

from django_channels_router import SocketError, SocketResult, StatusCodes, run_in_worker
from django_channels_router.conf import limit
from django_channels_router.errors import reply_for_exception
from django_channels_router.push import group_send, group_send_from_sync, push_frame
from django_channels_router.workers import WorkerSends

from .decorators import socket_route
from .generics import acting_as, anonymous_user
from .request import HANDSHAKE_REQUEST, build_request

__all__ = ["SubscribeModelMixin", "notify_change", "model_group"]

logger = logging.getLogger("drf_bridge")

CHANGE_TYPE = "drf_bridge.change"
#: Change events carry ``sender`` (this process) and ``number`` (1, 2, 3... per model), so that a
#: subscriber sees when one of a sender's events never arrived (a channel over its capacity).
SENDER = uuid.uuid4().hex
_numbers: dict[str, Any] = {}
_numbers_lock = threading.Lock()
#: Seconds an event may come late (sends from several threads can overtake each other) before
#: its absence counts as a lost push; and the most a gap may span before resync is immediate.
GAP_WAIT = 2.0
MAX_GAP = 1000
#: Seconds after a model's last change event at which its sender repeats that event's number
#: (see ``_Marks``), so that the lost tail of a burst is a gap too.
MARK_AFTER = (0.5, 5.0)
RESYNC = "resync"
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
            number = _next_number(label)
            message = {"type": CHANGE_TYPE, "model": label, "pks": sorted(pks), "event": uuid.uuid4().hex,
                       "sender": SENDER, "number": number}
            group_send_from_sync(layer, model_group(label), message, partial(_not_sent, label, len(pks)),
                                 partial(_sent, label, number))


def _next_number(label: str) -> int:
    with _numbers_lock:
        counter = _numbers.setdefault(label, itertools.count(1))
        return next(counter)


def _not_sent(label: str, count: int, exc: BaseException) -> None:
    """The write is committed: report, never fail the writer."""
    logger.error("Could not notify subscribers of %d change(s) to %s", count, label, exc_info=exc)


def _sent(label: str, number: int, loop: asyncio.AbstractEventLoop) -> None:
    _marks.after(label, number, loop)


@dataclass
class _Mark:
    """A model's last event so far: when it went, its number, the loop that sent it, and how
    many of its markers went since."""

    at: float
    number: int
    loop: asyncio.AbstractEventLoop | None
    sent: int = 0


class _Marks:
    """The tail of a burst. A channel over its capacity drops change events without a word, and
    a receiver sees that one was lost by the number of one that follows: the last events of a
    burst would go unnoticed until the model's next change. So once a model's events stop, its
    sender sends the number of the last one again, in an event without objects (a marker),
    ``MARK_AFTER`` seconds later, twice (the second for receivers still behind at the first);
    a receiver that never saw that number resyncs.

    A marker goes from the event loop that sent the events (where the in-memory layer's
    channels are), or, when that loop has ended (sync code's ``async_to_sync``), from a thread
    of its own through a loop of its own."""

    def __init__(self) -> None:
        self.wake = threading.Condition()
        self.pending: dict[str, _Mark] = {}
        self.thread: threading.Thread | None = None

    def after(self, label: str, number: int, loop: asyncio.AbstractEventLoop | None) -> None:
        """An event of ``label`` numbered ``number`` was sent (or failed to go) on ``loop``."""
        with self.wake:
            before = self.pending.get(label)
            self.pending[label] = _Mark(time.monotonic(), max(number, before.number if before else 0), loop)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="drf_bridge-marks", daemon=True)
                self.thread.start()
            self.wake.notify()

    def _run(self) -> None:
        while True:
            for label, mark in self._due():
                _send_mark(label, mark)

    def _due(self) -> list[tuple[str, _Mark]]:
        """Waits for the markers due, and takes them."""
        with self.wake:
            while True:
                now = time.monotonic()
                due = [(label, mark) for label, mark in self.pending.items() if mark.at + MARK_AFTER[mark.sent] <= now]
                for label, mark in due:
                    mark.sent += 1
                    if mark.sent == len(MARK_AFTER):
                        del self.pending[label]
                if due:
                    return due
                soonest = min((m.at + MARK_AFTER[m.sent] for m in self.pending.values()), default=None)
                self.wake.wait(None if soonest is None else soonest - now)

    def at_exit(self) -> None:
        """A process that ends (a management command, a script) sends its markers first, once,
        when the first is due."""
        with self.wake:
            pending, self.pending = self.pending, {}
        if pending and not isinstance(get_channel_layer(), InMemoryChannelLayer):
            time.sleep(max(0.0, max(m.at for m in pending.values()) + MARK_AFTER[0] - time.monotonic()))
            for label, mark in pending.items():
                _send_mark(label, mark)


def _send_mark(label: str, mark: _Mark) -> None:
    layer, group = get_channel_layer(), model_group(label)
    message = {"type": CHANGE_TYPE, "model": label, "pks": [], "event": uuid.uuid4().hex, "sender": SENDER,
               "number": mark.number}
    on_error = partial(_mark_not_sent, label)
    if mark.loop is not None and mark.loop.is_running():
        WorkerSends.of(mark.loop).add(partial(group_send, layer, group, message), on_error)
    elif not isinstance(layer, InMemoryChannelLayer):  # whose channels ended with their loop
        try:
            asyncio.run(group_send(layer, group, message))
        except Exception as exc:
            on_error(exc)


def _mark_not_sent(label: str, exc: BaseException) -> None:
    logger.warning("Could not tell subscribers of %s the number of its last change event", label, exc_info=exc)


_marks = _Marks()
atexit.register(lambda: _marks.at_exit())


def _after_fork() -> None:
    """A forked process (a prefork task worker, gunicorn's ``--preload``) is a sender of its own:
    two processes numbering one sender's events would hide each other's losses."""
    global SENDER, _numbers_lock, _marks
    SENDER = uuid.uuid4().hex
    _numbers.clear()
    _numbers_lock = threading.Lock()
    _marks = _Marks()


os.register_at_fork(after_in_child=_after_fork)


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
    #: Pushes sent so far: the next one's ``headers.seq`` is this plus one.
    sent: int = 0


@dataclass
class Evaluation:
    """What one change looks like to one view: ``{pk: data}`` for the changed objects it may see
    (None where object permissions refuse one), or ``ended``, the error reply of a subscriber
    whose credentials no longer authenticate."""

    seen: dict[str, Any] = field(default_factory=dict)
    ended: dict[str, Any] | None = None


class _View:
    """One evaluation, computed once while the others who need it wait."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Evaluation | None = None


class _Views:
    """What one change looks like to one view of the model (see ``get_subscription_key``),
    shared by every subscriber of this process with that view: one query per change, not one
    per subscriber. Kept only for recent changes."""

    def __init__(self, size: int = 256) -> None:
        self.lock = threading.Lock()
        self.views: OrderedDict[Hashable, _View] = OrderedDict()
        self.size = size

    def get(self, key: Hashable, compute: Any) -> Evaluation:
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
#: The push that ends a subscription: its payload is ``{"detail", "code"}`` saying why.
ENDED = "unsubscribed"
#: Scope keys the default subscription key accounts for. Middleware that adds others (a tenant,
#: a token's claims) may have put there what a queryset reads, so then nothing is shared.
SCOPE_KEYS = frozenset({"type", "asgi", "http_version", "scheme", "server", "client", "path", "raw_path",
                        "root_path", "query_string", "headers", "subprotocols", "extensions", "state", "cookies",
                        "session", "user", "url_route", "path_remaining", HANDSHAKE_REQUEST})


class SubscribeModelMixin:
    """``subscribe`` and ``unsubscribe``: pushes ``created``, ``updated`` and ``deleted`` for the
    objects this connection may ``get`` (with an id) or ``list`` (without; the payload holds the
    same query parameters as ``list``). Each push carries ``headers.subscription``, the uuid of
    the ``subscribe`` request, ``headers.model``, and ``headers.seq``: 1, 2, 3... per subscription.
    When pushes were lost (a change event that never arrived, a change that could not be worked
    out, a channel layer outage), the subscription gets a ``resync`` push: the client re-reads
    with ``list``/``get``.
    """

    @classmethod
    def describe_pushes(cls, components: Any) -> dict[str, tuple[Any, Any]]:
        from .schema import push_schemas

        return {**super().describe_pushes(components), **push_schemas(cls, components)}  # type: ignore[misc]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscriptions: dict[str | int, Subscription] = {}
        self._subscriptions_lock = asyncio.Lock()
        self._changes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._change_worker: asyncio.Task[None] | None = None
        self._handshake_key: Hashable = None
        #: The last change event number seen per (sender, model), and the numbers still missing.
        self._last_numbers: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._missing: dict[tuple[str, str], set[int]] = {}
        self._background: set[asyncio.Task[None]] = set()

    #: Per-class bounds; ``None`` takes ``settings.CHANNELS_ROUTER`` or the default.
    max_subscriptions: int | None = None
    max_subscribed_objects: int | None = None

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
            if subscription.id in self.subscriptions:
                raise SocketError(409, f"Subscription {subscription.id!r} exists on this connection: "
                                  "a subscribe needs a uuid of its own.", "subscription_exists")
            most = limit("MAX_SUBSCRIPTIONS", self.max_subscriptions)
            if len(self.subscriptions) >= most:
                raise SocketError(429, f"This connection has {most} subscriptions, the most it may have; "
                                  "unsubscribe from one first.", "too_many_subscriptions")
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
        """Stop one subscription (``{"subscription": uuid}``), or all of them (no payload, or no
        ``subscription`` key); 204. Once the reply is sent, no push of the subscription follows."""
        if payload is not None and not isinstance(payload, dict):
            raise SocketError(400, 'The payload must be {"subscription": <uuid>}, or null for all.', "invalid")
        everything = payload is None or "subscription" not in payload
        wanted = None if payload is None else payload.get("subscription")
        if not everything and (type(wanted) not in (str, int)):
            raise SocketError(400, "subscription must be the uuid (a string or an integer) of a subscribe request.",
                              "invalid")
        async with self._subscriptions_lock:
            if everything:
                removed = list(self.subscriptions.values())
                self.subscriptions.clear()
            elif wanted in self.subscriptions:
                removed = [self.subscriptions.pop(wanted)]
            else:
                raise SocketError(404, f"No subscription {wanted!r} on this connection.", "not_found")
            await self._leave_unused_groups(removed)
        return {"status": StatusCodes.NO_CONTENT}

    async def _leave_unused_groups(self, removed: Iterable[Subscription]) -> None:
        still = {s.label for s in self.subscriptions.values()}
        for label in {s.label for s in removed} - still:
            await self.leave(model_group(label))  # type: ignore[attr-defined]

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
        """The objects the subscription sees now (ids only), at most what the connection may
        still follow (``MAX_SUBSCRIBED_OBJECTS``): past that, 413 ``subscription_too_large``."""
        with self.acting_for(subscription):
            if subscription.pk is not None:
                return {subscription.pk}
            room = self.subscribed_objects_room()
            queryset = self.filter_queryset(self.get_queryset())  # type: ignore[attr-defined]
            pks = {str(pk) for pk in queryset.values_list("pk", flat=True)[:room + 1]}
            if len(pks) > room:
                raise self.too_large()
            return pks

    def subscribed_objects_room(self) -> int:
        """How many more objects this connection's list subscriptions may remember."""
        most = limit("MAX_SUBSCRIBED_OBJECTS", self.max_subscribed_objects)
        return max(0, most - sum(len(s.known) for s in self.subscriptions.values() if s.pk is None))

    def too_large(self) -> SocketError:
        most = limit("MAX_SUBSCRIBED_OBJECTS", self.max_subscribed_objects)
        return SocketError(413, f"A connection's list subscriptions may follow {most} objects in all; narrow the "
                           "list with its query parameters, or subscribe to single objects.",
                           "subscription_too_large")

    def get_subscription_key(self, subscription: Subscription) -> Hashable:
        """Subscriptions with the same key see a change the same way and share its evaluation.

        The default key holds everything of the subscribing request a queryset, a permission or
        a serializer can read: the user, the credentials, the message's headers and query, and
        the whole handshake (its headers, cookies included, the client's address, the host, the
        path, the session's key and contents), less the handshake's nonce and the client's port.
        Where the scope holds more than Channels and Django put there, nothing is shared.
        Return a coarser key when pushes depend on less (a public feed: ``return None``).
        """
        return (getattr(subscription.user, "pk", None), str(subscription.auth),
                json.dumps(subscription.headers, sort_keys=True, default=str), subscription.query.urlencode(),
                self.handshake_key())

    def handshake_key(self) -> Hashable:
        """The connection's part of the default subscription key (off the event loop: it may
        load the session). What cannot change is read once; the scope's keys, its user and the
        session's contents are read each time, as a login on the socket changes them."""
        scope = self.scope  # type: ignore[attr-defined]
        if scope.keys() - SCOPE_KEYS:
            return ("connection", self.channel_name)  # type: ignore[attr-defined]
        if self._handshake_key is None:
            self._handshake_key = (
                tuple(sorted((k, v) for k, v in scope.get("headers", ()) if k.lower() != b"sec-websocket-key")),
                (scope.get("client") or (None,))[0], tuple(scope.get("server") or ()), scope.get("scheme"),
                scope.get("root_path"), scope.get("path"), scope.get("query_string"),
                json.dumps((scope.get("url_route") or {}).get("kwargs", {}), sort_keys=True, default=str),
            )
        session = scope.get("session")
        return (self._handshake_key, getattr(scope.get("user"), "pk", None),
                None if session is None else (session.session_key, json.dumps(
                    dict(session.items()), sort_keys=True, default=str)))

    async def drf_bridge_change(self, event: dict[str, Any]) -> None:
        """A change to a model this connection subscribes to: queued, so that working it out
        never holds up this connection's requests (or its PINGs)."""
        self._note_number(event)
        if event.get("pks"):  # a sender's marker has none: only its number counts
            self._changes.put_nowait(event)

    def _note_number(self, event: dict[str, Any]) -> None:
        """Gap detection: a sender's events are numbered per model, and its marker repeats the
        last number once the events stop. A number that skips ahead leaves the ones between
        missing; still missing ``GAP_WAIT`` seconds later, they were lost."""
        sender, number, label = event.get("sender"), event.get("number"), event.get("model")
        if not isinstance(sender, str) or type(number) is not int or not isinstance(label, str):
            return  # from an older sender: nothing to compare
        key = (sender, label)
        last = self._last_numbers.pop(key, None)
        self._last_numbers[key] = number if last is None else max(last, number)
        while len(self._last_numbers) > 256:  # senders come and go with the processes: keep the recent
            self._missing.pop(self._last_numbers.popitem(last=False)[0], None)
        missing = self._missing.setdefault(key, set())
        if last is None or number <= last:
            missing.discard(number)  # the first seen, or a late one
        elif number - last > MAX_GAP:
            self._start(self._resync(label, "change events were lost"))
        elif number > last + 1:
            gap = set(range(last + 1, number))
            missing |= gap
            asyncio.get_running_loop().call_later(GAP_WAIT, self._check_gap, key, gap)

    def _check_gap(self, key: tuple[str, str], gap: set[int]) -> None:
        missing = self._missing.get(key, set())
        if missing & gap:
            missing -= gap
            self._start(self._resync(key[1], "change events were lost"))

    def _start(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def layer_recovered(self) -> None:
        labels = {subscription.label for subscription in self.subscriptions.values()}
        for label in sorted(labels):
            await self._resync(label, "the channel layer was unavailable")

    def push_not_sent(self, route: str, headers: Any, error: Exception) -> str | None:
        """A subscription's push the server refused to send (too large for daphne) becomes a
        ``resync`` with the same ``seq``: the client re-reads instead of missing a change."""
        key = headers.get("subscription") if isinstance(headers, dict) else None
        subscription = self.subscriptions.get(key) if isinstance(key, (str, int)) else None
        if subscription is None or route == RESYNC:
            return super().push_not_sent(route, headers, error)  # type: ignore[misc,no-any-return]
        logger.warning("Subscription %r to %s: the server refused to send a %r push (%s); sent resync",
                       subscription.id, subscription.label, route, error)
        return push_frame(RESYNC, {"reason": "a push was too large to send"}, headers)

    async def _resync(self, label: str, reason: str) -> None:
        """Tell each subscription to ``label`` to re-read."""
        async with self._subscriptions_lock:
            await self._send_resyncs([s for s in self.subscriptions.values() if s.label == label], reason)

    async def _send_resyncs(self, subscriptions: list[Subscription], reason: str) -> None:
        """Under the lock: tell each of ``subscriptions`` still open to re-read; what it has seen
        is read anew too. Never raises: it is what is left to say when something failed."""
        for subscription in subscriptions:
            if self.subscriptions.get(subscription.id) is not subscription:
                continue  # ended meanwhile: nothing more is pushed to it
            try:
                subscription.known = await run_in_worker(self.visible_pks, subscription)
            except Exception:
                logger.exception("Could not read subscription %r anew for a resync", subscription.id)
            logger.warning("Subscription %r to %s: %s; sent resync", subscription.id, subscription.label, reason)
            try:
                headers = self._numbered({"subscription": subscription.id, "model": subscription.label})
                await self.push(RESYNC, {"reason": reason}, headers)  # type: ignore[attr-defined]
            except Exception:
                logger.exception("Could not send resync to subscription %r", subscription.id)

    def _numbered(self, headers: dict[str, Any]) -> dict[str, Any]:
        """``headers`` with the subscription's next ``seq``."""
        subscription = self.subscriptions.get(headers["subscription"])
        if subscription is None:
            return headers
        subscription.sent += 1
        return {**headers, "seq": subscription.sent}

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
                        headers = self._numbered(headers)
                        if route == ENDED:  # gone first: a push that fails to go does not keep it
                            self._ended(self.subscriptions.pop(headers["subscription"], None))
                        await self.push(route, payload, headers)  # type: ignore[attr-defined]
                    await self._leave_unused_groups(subscriptions)
                except Exception:  # a failing change must not end the connection's pushes, nor go unsaid
                    logger.exception("Could not push change %s of %s", event.get("event"), event.get("model"))
                    await self._send_resyncs(subscriptions, "a change could not be pushed")

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self._change_worker is not None:
            self._change_worker.cancel()
        self._missing.clear()  # gap checks still scheduled find nothing to resync
        for task in list(self._background):
            task.cancel()
        await super().websocket_disconnect(message)  # type: ignore[misc]

    def _ended(self, subscription: Subscription | None) -> None:
        if subscription is not None:
            logger.info("Subscription %r to %s ended by the server", subscription.id, subscription.label)

    def subscription_pushes(self, subscriptions: list[Subscription], event: dict[str, Any]) -> list[Push]:
        """What ``event`` means to each subscription, worked out as its own user: ``created``,
        ``updated``, ``deleted``, or :data:`ENDED` when the subscription may not go on."""
        pushes: list[Push] = []
        model = apps.get_model(event["model"])
        for subscription in subscriptions:
            pks = [pk for pk in event["pks"] if subscription.pk is None or pk == subscription.pk]
            if not pks:
                continue
            key = (event["event"], type(self), self.get_subscription_key(subscription), subscription.pk)
            view = views.get(key, lambda s=subscription, p=pks: self.view_of(s, p))  # type: ignore[misc]
            headers = {"subscription": subscription.id, "model": subscription.label}
            if view.ended is not None:
                pushes.append((ENDED, view.ended, headers))
                continue
            seen, room = view.seen, self.subscribed_objects_room()
            for pk in pks:
                if seen.get(pk) is not None:
                    if pk not in subscription.known and subscription.pk is None and room <= 0:
                        pushes.append((ENDED, ending(self.too_large()), headers))
                        break
                    room -= pk not in subscription.known and subscription.pk is None
                    pushes.append(("updated" if pk in subscription.known else "created", seen[pk], headers))
                    subscription.known.add(pk)
                elif pk in subscription.known:  # gone, out of the queryset, or no longer allowed
                    pushes.append(("deleted", {"id": model._meta.pk.to_python(pk)}, headers))
                    subscription.known.discard(pk)
        return pushes

    def view_of(self, subscription: Subscription, pks: list[str]) -> Evaluation:
        """The changed objects in the subscriber's queryset now, as :class:`Evaluation`, after
        authenticating the subscribing request anew. Nothing is seen when ``has_permission``
        refuses."""
        with self.acting_for(subscription) as request:
            try:
                self.authenticate_again(subscription, request)
            except REFUSALS as exc:
                return Evaluation(ended=ending(exc))
            try:
                self.check_permissions(request)  # type: ignore[attr-defined]
            except REFUSALS:
                return Evaluation()
            seen: dict[str, Any] = {}
            for obj in self.filter_queryset(self.get_queryset()).filter(pk__in=pks):  # type: ignore[attr-defined]
                try:
                    self.check_object_permissions(request, obj)  # type: ignore[attr-defined]
                    seen[str(obj.pk)] = self.get_serializer(obj).data  # type: ignore[attr-defined]
                except REFUSALS:
                    seen[str(obj.pk)] = None
            return Evaluation(seen)

    def authenticate_again(self, subscription: Subscription, request: Any) -> None:
        """Authenticate a push's request as a new request with the subscription's credentials
        would be, so that a deleted token, a closed session, or a user who may no longer log in
        ends the subscription (an exception: 401) instead of receiving pushes as before."""
        self.perform_authentication(request)  # type: ignore[attr-defined]  # the message's credentials
        if request._authenticator is None:  # none: the connection's user, as its session has it now
            request.settle_user(self.connection_user_now())
        before, now = subscription.user, request.user
        if getattr(before, "is_authenticated", False) and (
                not getattr(now, "is_authenticated", False) or now.pk != before.pk):
            raise exceptions.NotAuthenticated("The credentials of this subscription are no longer valid.")

    def connection_user_now(self) -> Any:
        """The connection's user read again: from its session (as ``AuthMiddlewareStack`` reads
        it, with the session's auth hash checked), else from the database by primary key."""
        user = self.scope.get("user")  # type: ignore[attr-defined]
        if not getattr(user, "is_authenticated", False):
            return user or anonymous_user()
        session = self.scope.get("session")  # type: ignore[attr-defined]
        if session is not None and session.session_key:
            fresh = import_module(settings.SESSION_ENGINE).SessionStore(session.session_key)
            return auth.get_user(_SessionHolder(fresh))
        again = user.__class__._default_manager.filter(pk=user.pk).first()  # __class__: lazy users too
        return again if again is not None and getattr(again, "is_active", True) else anonymous_user()

    def acting_for(self, subscription: Subscription) -> Any:
        """A context in which ``self.request`` is the subscribing request, as it was."""
        request = build_request(self.scope, "GET", subscription.headers, {}, subscription.query,  # type: ignore[attr-defined]
                                self.route_table["subscribe"])  # type: ignore[attr-defined]
        request.settle_user(subscription.user, subscription.auth)
        return acting_as(request)


def ending(exc: Exception) -> dict[str, Any]:
    """The payload of an :data:`ENDED` push: the status, detail and code of the refusal."""
    status, body, _ = reply_for_exception(exc, "subscribe")
    detail = body.get("detail", body) if isinstance(body, dict) else body
    code = body.get("code") if isinstance(body, dict) and "code" in body else getattr(detail, "code", "error")
    return {"status": status, "detail": str(detail), "code": str(code)}


@dataclass
class _SessionHolder:
    """What ``django.contrib.auth.get_user`` reads of a request."""

    session: Any


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
