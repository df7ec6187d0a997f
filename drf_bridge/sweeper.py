"""Changes whose event never came, found in the history of changes.

A process killed between a change's commit and the send of its change event (SIGKILL, out of
memory, a crashed host) takes the event with it: the change is committed, its record is in the
history (:mod:`.history`), but the subscribers of the other processes would never hear of it, and
no later event shows a gap (the numbers of that sender end with it). So each change event names
its records, and every ``SWEEP_EVERY`` seconds a process that has subscribers reads the ids of the
records written lately and hands the changes it never heard of to its subscribers, as if their
event had come: one query per subscribed model and sweep, on the process, not per subscriber.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary, WeakSet

from django.apps import apps
from django.db import connections, router
from django.utils import timezone

from django_channels_router import run_in_worker

from . import history

__all__ = ["Sweeper", "sweeper"]

logger = logging.getLogger("drf_bridge")

#: Seconds between two sweeps, and how old a record is before the absence of its event counts.
SWEEP_EVERY = 3.0
SWEEP_GRACE = 2.0


class Sweeper:
    """The sweeps of one event loop (one server process): the records heard of, by model, and the
    consumers that subscribe to each model."""

    def __init__(self) -> None:
        #: model label -> record id -> when it was heard of (or swept), on the monotonic clock.
        self.heard: dict[str, dict[int, float]] = {}
        #: model label -> (sender, number) of the change events heard of -> when.
        self.events: dict[str, dict[tuple[str, int], float]] = {}
        #: (model label, sender) whose change events name their records.
        self.recorders: set[tuple[str, str]] = set()
        #: model label -> (since when it is watched, the consumers that watch it).
        self.watchers: dict[str, tuple[datetime, WeakSet[Any]]] = {}
        self.task: asyncio.Task[None] | None = None

    def heard_of(self, event: dict[str, Any]) -> None:
        """A change event reached a consumer of this process: its records and its number."""
        label, records = event.get("model"), event.get("records")
        sender, number = event.get("sender"), event.get("number")
        if label not in self.watchers:
            return
        now = time.monotonic()
        if isinstance(records, list):
            heard = self.heard.setdefault(label, {})
            for record in records:
                heard[record] = now
        if isinstance(sender, str) and type(number) is int and event.get("pks"):
            self.events.setdefault(label, {})[(sender, number)] = now
            if records:
                self.recorders.add((label, sender))

    def will_push(self, label: str, sender: str, numbers: range) -> bool:
        """Whether the changes of a sender's events that a consumer missed are the sweep's to push:
        none of them reached this process (a sender that died, a layer that lost them), and the
        sender's events name their records, so these will be found unheard. When one did reach it,
        only that consumer missed it: it resyncs."""
        if label not in self.watchers or (label, sender) not in self.recorders or not sweepable(label):
            return False
        heard = self.events.get(label, {})
        return not any((sender, number) in heard for number in numbers)

    def watch(self, consumer: Any, label: str) -> None:
        """``consumer`` is about to subscribe to ``label``: sweep for it from now on (what was
        written before, its subscriber reads with ``list`` or ``get``, or a resume replays)."""
        entry = self.watchers.get(label)
        if entry is None or not any(watcher.watches(label) for watcher in entry[1]):
            # Watched anew: events that came while no connection here subscribed were not heard.
            entry = self.watchers[label] = (timezone.now(), WeakSet())
            self.heard.pop(label, None)
            self.events.pop(label, None)
        entry[1].add(consumer)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while self.watchers:
            await asyncio.sleep(SWEEP_EVERY)
            for label in list(self.watchers):
                try:
                    await self.sweep(label)
                except Exception:
                    logger.exception("Could not sweep the history of changes of %s", label)

    async def sweep(self, label: str) -> None:
        """Hand the changes of ``label`` that were never heard of to the consumers that watch it."""
        since, consumers = self.watchers[label]
        watching = [consumer for consumer in consumers if consumer.watches(label)]
        if not watching:
            del self.watchers[label]
            self.heard.pop(label, None)
            self.events.pop(label, None)
            self.recorders = {(known, sender) for known, sender in self.recorders if known != label}
            return
        heard = self.heard.setdefault(label, {})
        keep = time.monotonic() - history.margin().total_seconds() - 2 * SWEEP_EVERY - SWEEP_GRACE
        _forget_before(heard, keep)
        _forget_before(self.events.setdefault(label, {}), keep)
        unheard = await run_in_worker(_unheard, label, since, set(heard))
        if not unheard:
            return
        now = time.monotonic()
        heard.update(dict.fromkeys(unheard, now))
        logger.warning("%d change(s) of %s in the history reached no connection of this process as an event "
                       "(its sender may have died, or the channel layer lost it): pushed now", len(unheard), label)
        event = {"model": label, "pks": sorted(set(unheard.values())), "event": uuid.uuid4().hex}
        for consumer in watching:
            consumer.changes_found(dict(event))


def _unheard(label: str, since: datetime, heard: set[int]) -> dict[int, str]:
    """The records of ``label`` written between the margin and the grace before now (and not
    before ``since``) that are not in ``heard``: ``{record id: object pk}``."""
    from .models import ChangeRecord

    if not sweepable(label):
        return {}
    database = router.db_for_write(apps.get_model(label))
    now = timezone.now()
    start = max(since, now - history.margin() - timedelta(seconds=SWEEP_EVERY))
    rows = ChangeRecord.objects.using(database).filter(model=label, at__gte=start,
                                                        at__lt=now - timedelta(seconds=SWEEP_GRACE))
    return {record: pk for record, pk in rows.values_list("id", "pk_value") if record not in heard}


def _forget_before(heard: dict[Any, float], keep: float) -> None:
    for key in [key for key, at in heard.items() if at < keep]:
        del heard[key]


def sweepable(label: str) -> bool:
    """Whether changes of ``label`` are recorded on a database that gives the ids of the records
    it inserts (PostgreSQL, SQLite 3.35+), which their events then carry. Asks the database
    nothing (safe on the event loop)."""
    connection = connections[router.db_for_write(apps.get_model(label))]
    return history.enabled() and connection.vendor in ("postgresql", "sqlite") and bool(
        connection.features.can_return_rows_from_bulk_insert)


_sweepers: WeakKeyDictionary[asyncio.AbstractEventLoop, Sweeper] = WeakKeyDictionary()


def sweeper() -> Sweeper:
    """The running event loop's sweeper."""
    loop = asyncio.get_running_loop()
    found = _sweepers.get(loop)
    if found is None:
        found = _sweepers[loop] = Sweeper()
    return found
