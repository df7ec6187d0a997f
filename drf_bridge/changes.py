"""The change-event protocol between processes, both halves.

Sending (any process: a consumer, a view, ``manage.py shell``, a task worker): ``post_save`` and
``post_delete`` become one channel-layer message per model after the transaction commits, naming
the objects that changed. Each message carries ``sender`` (this process) and ``number`` (1, 2,
3... per model), and once a model's events stop its sender repeats the last number (a marker).

Receiving: :class:`GapTracker` reads those numbers and says which events never arrived, so that
a subscriber can resync instead of missing a change.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from importlib import import_module
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, router, transaction
from django.db.backends.signals import connection_created
from django.db.models import Model
from django.db.models.signals import post_delete, post_save

from django_channels_router.push import group_send, group_send_from_sync
from django_channels_router.workers import WorkerSends

from . import history

__all__ = ["CHANGE_TYPE", "Gap", "GapTracker", "connect_signals", "discover_subscribed_models", "model_group",
           "notify_change", "register_model"]

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


# -- the sender's side ------------------------------------------------------------------------------

def notify_change(model: type[Model], pks: Iterable[Any], using: str | None = None, created: bool = False) -> None:
    """Tell subscribers these objects changed, for writes that send no signals
    (``QuerySet.update()``, ``bulk_create()``; ``created=True`` for new objects). The change is
    recorded in the history that subscriptions resume from at once, in the current transaction,
    and sent once that transaction commits::

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
    if pending is not None and not pending.waits_on(connection):
        pending = None
    # One record per object and transaction: what a replay reads is the object as it is then.
    records = history.record({label: {key: created for key in keys if pending is None
                                      or key not in pending.pks.get(label, ())} for label in labels}, using)
    if pending is not None:
        pending.add(labels, keys, records)
        return
    changes = _Changes()
    changes.add(labels, keys, records)
    if connection.in_atomic_block:
        connection.drf_bridge_changes = changes  # later saves in this transaction join it
    transaction.on_commit(changes.send, using=using)  # at once outside a transaction


class _Changes:
    """The objects one transaction changed, per model, sent once when it commits. Receivers
    read each object's current state, so several saves of one object are one push."""

    def __init__(self) -> None:
        self.pks: dict[str, set[str]] = {}
        self.records: dict[str, list[int]] = {}

    def waits_on(self, connection: Any) -> bool:
        return connection.in_atomic_block and any(func == self.send for _, func, *_ in connection.run_on_commit)

    def add(self, labels: set[str], pks: list[str], records: dict[str, list[int]]) -> None:
        for label in labels:
            self.pks.setdefault(label, set()).update(pks)
            self.records.setdefault(label, []).extend(records.get(label, ()))

    def send(self) -> None:
        layer = get_channel_layer()
        for label, pks in self.pks.items():
            number = _next_number(label)
            message = {"type": CHANGE_TYPE, "model": label, "pks": sorted(pks), "event": uuid.uuid4().hex,
                       "sender": SENDER, "number": number, "records": self.records.get(label, [])}
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


def _on_save(sender: type[Model], instance: Model, created: bool = False, raw: bool = False,
             using: str | None = None, **kwargs: Any) -> None:
    if not raw:
        discover_subscribed_models()
        notify_change(sender, [instance.pk], using, created=created)


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


# -- the receiver's side ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Gap:
    """Numbers of one sender's change events for one model that were skipped. ``lost`` when
    wider than ``MAX_GAP`` (no point in waiting); else they may still come (sends from several
    threads overtake each other): ask :meth:`GapTracker.lost` again ``GAP_WAIT`` seconds later."""

    sender: str
    label: str
    numbers: range
    lost: bool = False


class GapTracker:
    """The receiving half of gap detection, for one subscriber: the last event number seen per
    (sender, model), and the numbers still missing. A number that skips ahead leaves the ones
    between missing; a late one fills its place. No clock, no loop: the caller waits."""

    def __init__(self, senders: int = 256) -> None:
        #: Senders come and go with the processes: the ``senders`` most recent are kept.
        self.senders = senders
        self._last: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._missing: dict[tuple[str, str], set[int]] = {}

    def note(self, sender: str, label: str, number: int) -> Gap | None:
        """Event ``number`` of ``sender`` for ``label`` arrived (or its marker did): the numbers
        it skipped, if any."""
        key = (sender, label)
        last = self._last.pop(key, None)
        self._last[key] = number if last is None else max(last, number)
        while len(self._last) > self.senders:
            self._missing.pop(self._last.popitem(last=False)[0], None)
        missing = self._missing.setdefault(key, set())
        if last is None or number <= last:
            missing.discard(number)  # the first seen, or a late one
            return None
        if number - last > MAX_GAP:
            return Gap(sender, label, range(last + 1, number), lost=True)
        if number == last + 1:
            return None
        gap = Gap(sender, label, range(last + 1, number))
        missing.update(gap.numbers)
        return gap

    def lost(self, gap: Gap) -> bool:
        """Whether some of ``gap`` is still missing, and so lost; each gap is lost only once."""
        missing = self._missing.get((gap.sender, gap.label), set())
        if missing.isdisjoint(gap.numbers):
            return False
        missing.difference_update(gap.numbers)
        return True

    def clear(self) -> None:
        """Forget every number: gaps asked about later are not lost (the subscriber has gone)."""
        self._last.clear()
        self._missing.clear()
