"""Model-change subscriptions: pushes when objects a subscriber may see are created, changed
or deleted, whichever process made the change.

Any process reports its changes (:mod:`drf_bridge.changes`); each subscribed connection then
works out, as its own user, what a change means to it: ``created``, ``updated`` or
``deleted``, or nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from django.apps import apps
from django.conf import settings
from django.contrib import auth
from django.core import checks
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, QueryDict
from rest_framework import exceptions
from rest_framework.serializers import BaseSerializer

from django_channels_router import AsyncSocketRouterConsumer, SocketError, SocketResult, StatusCodes, run_in_worker
from django_channels_router.conf import limit
from django_channels_router.errors import reply_for_exception
from django_channels_router.push import push_frame

from . import changes, history
from .changes import Gap, GapTracker, model_group, notify_change, register_model
from .checks import check_subscriptions
from .decorators import socket_route
from .evaluations import Evaluation, evaluations
from .generics import acting_as, anonymous_user
from .history import POSITION, RESUME_FROM, RESUMED, InvalidPosition
from .request import HANDSHAKE_REQUEST, SocketRequest, build_request
from .sweeper import sweeper

__all__ = ["SubscribeModelMixin", "notify_change", "model_group"]

logger = logging.getLogger("drf_bridge")


@dataclass
class ModelSubscription:
    """One ``subscribe`` request: what it watches, as whom, and which objects it has seen."""

    #: The ``uuid`` of the ``subscribe`` request; its pushes carry it as ``headers.subscription``.
    id: str | int
    #: The model, as ``"<app_label>.<model>"`` (``headers.model`` of its pushes).
    label: str
    #: The ``subscribe`` request's message headers.
    headers: dict[str, Any]
    #: Its query parameters (a list subscription's filters; empty for one object).
    query: QueryDict
    #: Who subscribed: the DRF request's ``user`` and ``auth``.
    user: Any
    auth: Any
    #: The primary key of the one object it follows (as a string), or None for a list subscription.
    pk: str | None = None
    #: The primary keys (as strings) of the objects a list subscription has seen.
    known: set[str] = field(default_factory=set)
    #: Pushes sent so far: the next one's ``headers.seq`` is this plus one.
    sent: int = 0


Push = tuple[str, Any, dict[str, Any]]
REFUSALS = (SocketError, exceptions.APIException, PermissionDenied, Http404)
#: The push that ends a subscription: its payload is ``{"detail", "code"}`` saying why.
ENDED = "unsubscribed"
#: The push that tells a subscription pushes were lost: the client re-reads.
RESYNC = "resync"
#: Scope keys the default subscription key accounts for. Middleware that adds others (a tenant,
#: a token's claims) may have put there what a queryset reads, so then nothing is shared.
SCOPE_KEYS = frozenset({"type", "asgi", "http_version", "scheme", "server", "client", "path", "raw_path",
                        "root_path", "query_string", "headers", "subprotocols", "extensions", "state", "cookies",
                        "session", "user", "url_route", "path_remaining", HANDSHAKE_REQUEST})


class SubscriptionHost(Protocol):
    """What :class:`SubscribeModelMixin` needs of its router beyond an async router consumer (the
    connection, groups, pushes): the request being served and DRF's queryset, permission and
    serializer steps, as :class:`~drf_bridge.GenericSocketRouter` has them."""

    lookup_url_kwarg: ClassVar[str]

    @property
    def request(self) -> SocketRequest: ...

    def get_queryset(self) -> QuerySet[Any]: ...

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]: ...

    def hydrate_object(self, headers: dict[str, Any], payload: Any) -> Any: ...

    def perform_authentication(self, request: SocketRequest) -> None: ...

    def check_permissions(self, request: SocketRequest) -> None: ...

    def check_object_permissions(self, request: SocketRequest, obj: Any) -> None: ...

    def get_serializer(self, *args: Any, **kwargs: Any) -> BaseSerializer[Any]: ...

    def etag_of(self, instance: Any, data: Any) -> str | None: ...


if TYPE_CHECKING:
    class _Host(SubscriptionHost, AsyncSocketRouterConsumer):
        """For the type checker: the mixin extends an async router consumer that has the rest."""
else:
    _Host = object


class SubscribeModelMixin(_Host):
    """``subscribe`` and ``unsubscribe``: pushes ``created``, ``updated`` and ``deleted`` for the
    objects this connection may ``get`` (with an id) or ``list`` (without; the payload holds the
    same query parameters as ``list``). Each push carries ``headers.subscription``, the uuid of
    the ``subscribe`` request, ``headers.model``, and ``headers.seq``: 1, 2, 3... per subscription;
    ``created`` and ``updated`` also carry ``headers.etag``, the object's tag as ``get`` gives it.
    The reply and every push carry ``headers.position``; a ``subscribe`` with ``resume-from: <position>``
    continues from there after a reconnect (see ``drf_bridge.history``).
    When pushes were lost (a change event that never arrived, a change that could not be worked
    out, a channel layer outage), the subscription gets a ``resync`` push: the client re-reads
    with ``list``/``get``.
    """

    #: 400: a subscribe's query parameters or an unsubscribe's payload; 409: a uuid in use;
    #: 413: more objects than ``max_subscribed_objects``.
    handler_errors: ClassVar[dict[str, set[int]]] = {"on_subscribe": {400, 409, 413}, "on_unsubscribe": {400}}

    @classmethod
    def describe_pushes(cls, components: Any) -> dict[str, tuple[Any, Any]]:
        """For the schema generator: ``created``, ``updated``, ``deleted``, ``unsubscribed``, ``resync``."""
        from .schema import push_schemas

        return push_schemas(cls, components)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscriptions: dict[str | int, ModelSubscription] = {}
        self._subscriptions_lock = asyncio.Lock()
        self._changes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._change_worker: asyncio.Task[None] | None = None
        self._handshake_key: Hashable = None
        self._gaps = GapTracker()
        self._background: set[asyncio.Task[None]] = set()

    #: Per-class bounds; ``None`` takes ``settings.CHANNELS_ROUTER`` or the default.
    #: Subscriptions one connection may hold; past them, 429 ``too_many_subscriptions``.
    max_subscriptions: int | None = None
    #: Object ids the list subscriptions of one connection may remember in all; past them, 413
    #: ``subscription_too_large``.
    max_subscribed_objects: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = cls.subscribed_model()
        if model is not None:
            register_model(model)
            checks.register(check_subscriptions)  # without drf_bridge installed, no ready() registers it

    @classmethod
    def subscribed_model(cls) -> type[Model] | None:
        queryset = getattr(cls, "queryset", None)
        if queryset is not None:
            return queryset.model
        serializer = getattr(cls, "serializer_class", None)
        return getattr(getattr(serializer, "Meta", None), "model", None)

    @socket_route("subscribe", method="GET", hydrate="hydrate_subscription", dehydrate=None, description=(
        "Be told when {models} you may see are created, updated or deleted: one {model}, with its "
        "``{lookup}`` in the headers, or those ``list`` gives for the same query parameters in the payload. "
        "201; every push of the subscription has this request's uuid in ``headers.subscription``."))
    async def on_subscribe(self, subscription: ModelSubscription, headers: dict[str, Any]) -> SocketResult:
        """Start pushing changes; 201 with ``{"subscription": <this request's uuid>}``.

        The group is joined before the objects seen now are read, so no change falls between.
        With ``resume-from``, the objects changed since that position follow the reply (``resumed:
        true``), or a ``resync`` does (``resumed: false``).
        """
        asked = RESUME_FROM in headers
        since = self.resume_point(headers[RESUME_FROM]) if asked else None
        position = history.position_now()  # before the reads
        group = model_group(subscription.label)
        async with self._subscriptions_lock:
            if subscription.id in self.subscriptions:
                raise SocketError(409, f"Subscription {subscription.id!r} exists on this connection: "
                                  "a subscribe needs a uuid of its own.", "subscription_exists")
            most = limit("MAX_SUBSCRIPTIONS", self.max_subscriptions)
            if len(self.subscriptions) >= most:
                raise SocketError(429, f"This connection has {most} subscriptions, the most it may have; "
                                  "unsubscribe from one first.", "too_many_subscriptions")
            await self.join(group)
            try:
                subscription.known = await run_in_worker(self.visible_pks, subscription)
                replay, not_resumed = await self._replay(subscription, since) if asked else (None, "")
            except BaseException:
                if not any(s.label == subscription.label for s in self.subscriptions.values()):
                    await self.leave(group)
                raise
            if history.enabled():
                sweeper().watch(self, subscription.label)
            self.subscriptions[subscription.id] = subscription
            if replay:  # worked out in turn with the live changes, each reading the objects as they are then
                self._changes.put_nowait(replay)
        if self._change_worker is None:
            self._change_worker = asyncio.create_task(self._deliver_changes())
        reply_headers: dict[str, Any] = {} if position is None else {POSITION: position}
        if asked:
            reply_headers[RESUMED] = replay is not None
            if replay is None:
                self._start(self._resync_subscription(subscription, not_resumed))
        payload = {"subscription": subscription.id, "model": subscription.label}
        return {"status": StatusCodes.CREATED, "headers": reply_headers, "payload": payload}

    async def _replay(self, subscription: ModelSubscription,
                      since: datetime | None) -> tuple[dict[str, Any] | None, str]:
        """The change event that replays what changed since ``since`` to ``subscription`` alone,
        or None and why not (the client is then told to re-read)."""
        if since is None:
            return None, "resume-from is not a position this server gave"
        if not history.enabled():
            return None, "this server keeps no history of changes"
        most = limit("MAX_SUBSCRIBED_OBJECTS", self.max_subscribed_objects)
        found = await run_in_worker(history.changed_since, self.get_queryset().model, subscription.label, since,
                                    subscription.pk, most)
        if found is None:
            return None, "resume-from is older than the history of changes reaches back"
        changed, created = found
        if len(changed) > most:
            return None, "more objects changed since resume-from than a subscription may follow"
        return {"model": subscription.label, "pks": sorted(changed), "event": uuid.uuid4().hex,
                "replay": subscription.id, "created": created}, ""

    def resume_point(self, value: Any) -> Any:
        """The time a ``resume-from`` header marks (None: not resumable); 400 when malformed."""
        try:
            return history.read_position(value)
        except InvalidPosition as exc:
            raise SocketError(400, str(exc), "invalid") from None

    @socket_route("unsubscribe", method="GET", dehydrate=None, description=(
        "Stop one subscription (the payload ``{\"subscription\": <uuid of its subscribe>}``) or all of "
        "them (a null payload); 204. No push of it follows the reply."))
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

    async def _leave_unused_groups(self, removed: Iterable[ModelSubscription]) -> None:
        still = {s.label for s in self.subscriptions.values()}
        for label in {s.label for s in removed} - still:
            await self.leave(model_group(label))

    def hydrate_subscription(self, headers: dict[str, Any], payload: Any) -> ModelSubscription:
        """Check the subscriber may ``get`` the object (with an id) or ``list``, and note as whom."""
        request = self.request
        key = self.lookup_url_kwarg
        model = self.get_queryset().model
        subscription = ModelSubscription(self.request_uuid, model._meta.concrete_model._meta.label_lower,
                                         {name: value for name, value in headers.items() if name != RESUME_FROM},
                                         request.query_params.copy(), request.user, request.auth)
        if headers.get(key) is not None or (isinstance(payload, dict) and payload.get(key) is not None):
            subscription.pk = str(self.hydrate_object(headers, payload).pk)
            subscription.query = QueryDict()
        return subscription

    def visible_pks(self, subscription: ModelSubscription) -> set[str]:
        """The objects the subscription sees now (ids only), at most what the connection may
        still follow (``MAX_SUBSCRIBED_OBJECTS``): past that, 413 ``subscription_too_large``."""
        with self.acting_for(subscription):
            if subscription.pk is not None:
                return {subscription.pk}
            room = self.subscribed_objects_room()
            queryset = self.filter_queryset(self.get_queryset())
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

    def get_subscription_key(self, subscription: ModelSubscription) -> Hashable:
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
        scope = self.scope
        if scope.keys() - SCOPE_KEYS:
            return ("connection", self.channel_name)
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
        sweeper().heard_of(event)
        if event.get("pks"):  # a sender's marker has none: only its number counts
            self._changes.put_nowait(event)

    def watches(self, label: str) -> bool:
        """Whether a subscription of this connection is to the model labelled ``label``."""
        return any(subscription.label == label for subscription in self.subscriptions.values())

    def changes_found(self, event: dict[str, Any]) -> None:
        """Changes whose event never came, found in the history (``drf_bridge.sweeper``)."""
        self._changes.put_nowait(event)

    def _note_number(self, event: dict[str, Any]) -> None:
        """Gap detection (see :class:`GapTracker`): change events lost on the way are a resync,
        at once or, when they may still come late, ``GAP_WAIT`` seconds later."""
        sender, number, label = event.get("sender"), event.get("number"), event.get("model")
        if not isinstance(sender, str) or type(number) is not int or not isinstance(label, str):
            return  # from an older sender: nothing to compare
        gap = self._gaps.note(sender, label, number)
        if gap is None:
            return
        if gap.lost:
            self._start(self._resync(label, "change events were lost"))
        else:
            asyncio.get_running_loop().call_later(changes.GAP_WAIT, self._check_gap, gap)  # read now: tests shorten it

    def _check_gap(self, gap: Gap) -> None:
        if self._gaps.lost(gap) and not sweeper().will_push(gap.label, gap.sender, gap.numbers):
            self._start(self._resync(gap.label, "change events were lost"))

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
            return super().push_not_sent(route, headers, error)
        logger.warning("Subscription %r to %s: the server refused to send a %r push (%s); sent resync",
                       subscription.id, subscription.label, route, error)
        return push_frame(RESYNC, {"reason": "a push was too large to send"}, headers)

    async def _resync_subscription(self, subscription: ModelSubscription, reason: str) -> None:
        async with self._subscriptions_lock:
            await self._send_resyncs([subscription], reason)

    async def _resync(self, label: str, reason: str) -> None:
        """Tell each subscription to ``label`` to re-read."""
        async with self._subscriptions_lock:
            await self._send_resyncs([s for s in self.subscriptions.values() if s.label == label], reason)

    async def _send_resyncs(self, subscriptions: list[ModelSubscription], reason: str) -> None:
        """Under the lock: tell each of ``subscriptions`` still open to re-read; what it has seen
        is read anew too. Never raises: it is what is left to say when something failed."""
        for subscription in subscriptions:
            if self.subscriptions.get(subscription.id) is not subscription:
                continue  # ended meanwhile: nothing more is pushed to it
            position = history.position_now()
            try:
                subscription.known = await run_in_worker(self.visible_pks, subscription)
            except Exception:
                logger.exception("Could not read subscription %r anew for a resync", subscription.id)
            logger.warning("Subscription %r to %s: %s; sent resync", subscription.id, subscription.label, reason)
            try:
                headers = self._numbered(self._push_headers(subscription, position))
                await self.push(RESYNC, {"reason": reason}, headers)
            except Exception:
                logger.exception("Could not send resync to subscription %r", subscription.id)

    def _push_headers(self, subscription: ModelSubscription, position: str | None) -> dict[str, Any]:
        """A push's ``subscription`` and ``model``, and the ``position`` of what it read (none when
        unknown or the history is off: the client keeps the one before, which replays more, never less)."""
        headers: dict[str, Any] = {"subscription": subscription.id, "model": subscription.label}
        if position is not None:
            headers[POSITION] = position
        return headers

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
                        await self.push(route, payload, headers)
                    await self._leave_unused_groups(subscriptions)
                except Exception:  # a failing change must not end the connection's pushes, nor go unsaid
                    logger.exception("Could not push change %s of %s", event.get("event"), event.get("model"))
                    await self._send_resyncs(subscriptions, "a change could not be pushed")

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self._change_worker is not None:
            self._change_worker.cancel()
        self._gaps.clear()  # gap checks still scheduled find nothing to resync
        for task in list(self._background):
            task.cancel()
        await super().websocket_disconnect(message)

    def _ended(self, subscription: ModelSubscription | None) -> None:
        if subscription is not None:
            logger.info("Subscription %r to %s ended by the server", subscription.id, subscription.label)

    def subscription_pushes(self, subscriptions: list[ModelSubscription], event: dict[str, Any]) -> list[Push]:
        """What ``event`` means to each subscription, worked out as its own user: ``created``,
        ``updated``, ``deleted``, or :data:`ENDED` when the subscription may not go on.

        A replay (``event["replay"]``, for the one subscription it resumes) says ``created`` for the
        objects created since the position and ``deleted`` for every changed object not seen now:
        the client may hold it, whatever this connection knew."""
        pushes: list[Push] = []
        model = apps.get_model(event["model"])
        replay = event.get("replay")
        for subscription in subscriptions:
            if replay is not None and subscription.id != replay:
                continue
            pks = [pk for pk in event["pks"] if subscription.pk is None or pk == subscription.pk]
            if not pks:
                continue
            key = (event["event"], type(self), self.get_subscription_key(subscription), subscription.pk)
            evaluation = evaluations.get(key, partial(self.evaluate, subscription, pks))
            headers = self._push_headers(subscription, evaluation.position)
            if evaluation.ended is not None:
                pushes.append((ENDED, evaluation.ended, headers))
                continue
            seen, room = evaluation.seen, self.subscribed_objects_room()
            for pk in pks:
                if seen.get(pk) is not None:
                    if pk not in subscription.known and subscription.pk is None and room <= 0:
                        pushes.append((ENDED, ending(self.too_large()), headers))
                        break
                    room -= pk not in subscription.known and subscription.pk is None
                    tag = evaluation.etags.get(pk)
                    new = pk in event["created"] if replay is not None else pk not in subscription.known
                    pushes.append(("created" if new else "updated", seen[pk],
                                   headers if tag is None else {**headers, "etag": tag}))
                    subscription.known.add(pk)
                elif pk in subscription.known or replay is not None:  # gone, out of the queryset, or no longer allowed
                    pushes.append(("deleted", {"id": model._meta.pk.to_python(pk)}, headers))
                    subscription.known.discard(pk)
        return pushes

    def evaluate(self, subscription: ModelSubscription, pks: list[str]) -> Evaluation:
        """The changed objects in the subscriber's queryset now, as :class:`Evaluation`, after
        authenticating the subscribing request anew. Nothing is seen when ``has_permission``
        refuses."""
        position = history.position_now()  # before the reads: it covers no change made after
        with self.acting_for(subscription) as request:
            try:
                self.authenticate_again(subscription, request)
            except REFUSALS as exc:
                return Evaluation(ended=ending(exc), position=position)
            try:
                self.check_permissions(request)
            except REFUSALS:
                return Evaluation(position=position)
            seen: dict[str, Any] = {}
            etags: dict[str, str | None] = {}
            for obj in self.filter_queryset(self.get_queryset()).filter(pk__in=pks):
                try:
                    self.check_object_permissions(request, obj)
                    seen[str(obj.pk)] = data = self.get_serializer(obj).data
                    etags[str(obj.pk)] = self.etag_of(obj, data)
                except REFUSALS:
                    seen[str(obj.pk)] = None
            return Evaluation(seen, etags=etags, position=position)

    def authenticate_again(self, subscription: ModelSubscription, request: Any) -> None:
        """Authenticate a push's request as a new request with the subscription's credentials
        would be, so that a deleted token, a closed session, or a user who may no longer log in
        ends the subscription (an exception: 401) instead of receiving pushes as before."""
        self.perform_authentication(request)  # the message's credentials
        if request._authenticator is None:  # none: the connection's user, as its session has it now
            request.settle_user(self.connection_user_now())
        before, now = subscription.user, request.user
        if getattr(before, "is_authenticated", False) and (
                not getattr(now, "is_authenticated", False) or now.pk != before.pk):
            raise exceptions.NotAuthenticated("The credentials of this subscription are no longer valid.")

    def connection_user_now(self) -> Any:
        """The connection's user read again: from its session (as ``AuthMiddlewareStack`` reads
        it, with the session's auth hash checked), else from the database by primary key."""
        user: Any = self.scope.get("user")
        if not getattr(user, "is_authenticated", False):
            return user or anonymous_user()
        session = self.scope.get("session")
        if session is not None and session.session_key:
            fresh = import_module(settings.SESSION_ENGINE).SessionStore(session.session_key)
            return auth.get_user(_SessionHolder(fresh))
        again = user.__class__._default_manager.filter(pk=user.pk).first()  # __class__: lazy users too
        return again if again is not None and getattr(again, "is_active", True) else anonymous_user()

    def acting_for(self, subscription: ModelSubscription) -> Any:
        """A context in which ``self.request`` is the subscribing request, as it was."""
        request = build_request(self.scope, "GET", subscription.headers, {}, subscription.query,
                                self.route_table["subscribe"])
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
