"""The history of changes that subscriptions resume from, shared by every process in the database.

Every change to a subscribed model writes a :class:`~drf_bridge.models.ChangeRecord` in the
transaction of the change (so a committed change always has its record, even when its process
is killed before it tells anyone). A subscription's pushes carry a *position*: the time at which
the server read what it pushed, signed with ``SECRET_KEY``. A ``subscribe`` with ``resume-from``
replays every object with a record written since that time, less ``CHANGE_HISTORY_MARGIN``.

Why a time with a margin, not "records after id N": ids are handed out when a row is inserted,
but a transaction commits later, so a record with a lower id can become visible after one with a
higher id was read (a late commit), and "after N" would miss it forever. A record is written
before its change commits and a subscriber reads after, so every change that a position does not
cover was written less than a margin before it, as long as a transaction takes less than the
margin from its write to its commit (with the delivery of its change event and the skew of the
servers' clocks). Re-sending an object that did not change is harmless (its ``etag`` is the
same); missing one that did is not, so the margin errs on the side of resending.

In the database rather than Redis: the record commits or rolls back with the change itself, which
no second store can promise, and it needs nothing the project does not run already.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import signing
from django.db import router, transaction
from django.db.models import Max, Model, Q
from django.utils import timezone

from django_channels_router.conf import limit

__all__ = ["RESUME_FROM", "POSITION", "RESUMED", "InvalidPosition", "position_now", "read_position", "record",
           "changed_since", "prune"]

logger = logging.getLogger("drf_bridge")

#: The request header of a ``subscribe`` that continues an earlier subscription.
RESUME_FROM = "resume-from"
#: The header of a subscription's reply and pushes: the point in the history they reflect.
POSITION = "position"
#: The reply header that says whether the changes since ``resume-from`` follow (else a ``resync``).
RESUMED = "resumed"
SALT = "drf_bridge.position"
_FORMAT = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{1,100}")
#: Every PRUNE_EVERY records a process writes, it deletes one batch of what the history no longer keeps.
PRUNE_EVERY = 200
PRUNE_BATCH = 1000
_written = itertools.count(1)
_pruning = threading.Lock()


class InvalidPosition(ValueError):
    """``resume-from`` is not a position at all (400), as opposed to one this server cannot resume."""


def enabled() -> bool:
    """Whether changes are recorded: the bridge's app (which holds the table) is installed and
    ``CHANGE_HISTORY_SECONDS`` is not 0."""
    return apps.is_installed("drf_bridge") and limit("CHANGE_HISTORY_SECONDS", None) > 0


def position_now() -> str | None:
    """The position of what is read from now on (microseconds since the epoch, signed), or None
    when the history is off."""
    if not enabled():
        return None
    return signing.Signer(salt=SALT).sign(str(int(timezone.now().timestamp() * 1_000_000)))


def read_position(value: Any) -> datetime | None:
    """The time a ``resume-from`` value marks; None when it is well-formed but not one this server
    gave (another ``SECRET_KEY``, a tampered value, a time ahead of the clock). Raises
    :class:`InvalidPosition` when it is not a position at all."""
    if not isinstance(value, str) or not _FORMAT.fullmatch(value):
        raise InvalidPosition(f"{RESUME_FROM} must be the {POSITION} header of a subscription's reply or push.")
    try:
        micros = int(signing.Signer(salt=SALT).unsign(value))  # SECRET_KEY_FALLBACKS too
    except signing.BadSignature:
        return None
    at = datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
    if not settings.USE_TZ:
        at = timezone.make_naive(at)
    if at > timezone.now() + margin():
        return None
    return at


def margin() -> timedelta:
    return timedelta(seconds=limit("CHANGE_HISTORY_MARGIN", None))


def record(changes: dict[str, dict[str, bool]], using: str) -> dict[str, list[int]]:
    """Write the records of ``{label: {pk: created}}`` on database ``using``, in the current
    transaction (the change's own); their ids by label, where the database returns them (the
    change event carries them: see :class:`Sweeper`). Every ``PRUNE_EVERY`` records, prune one
    batch once the transaction commits."""
    if not enabled():
        return {}
    from .models import ChangeRecord

    now = timezone.now()
    rows = [ChangeRecord(model=label, pk_value=pk, created=created, at=now)
            for label, pks in changes.items() for pk, created in pks.items()]
    if not rows:
        return {}
    ChangeRecord.objects.using(using).bulk_create(rows)
    if any(next(_written) % PRUNE_EVERY == 0 for _ in rows):
        transaction.on_commit(lambda: _prune_quietly(using), using=using)
    ids: dict[str, list[int]] = {}
    for row in rows:
        if row.id is not None:
            ids.setdefault(row.model, []).append(row.id)
    return ids


def changed_since(model: type[Model], label: str, since: datetime, pk: str | None,
                  most: int) -> tuple[set[str], set[str]] | None:
    """The objects of ``label`` (or only ``pk``) with a record since ``since`` less the margin:
    ``(changed, created)`` primary keys, where ``created`` are those created then; more than
    ``most`` in ``changed`` means at least that many (reading them all would cost more than a
    re-read). None when the history no longer reaches back that far."""
    from .models import ChangeRecord

    start = since - margin()
    history = ChangeRecord.objects.using(router.db_for_write(model))
    rows = history.filter(model=label, at__gte=start)
    if pk is not None:
        rows = rows.filter(pk_value=pk)
    changed: set[str] = set()
    created: set[str] = set()
    for value, was_created in rows.values_list("pk_value", "created").distinct()[:2 * most + 2]:
        changed.add(value)
        if was_created:
            created.add(value)
    # The horizon after the records: pruning that commits between the two reads makes this say
    # "not resumable" (a re-read too many), never "resumable" with records missing.
    horizon = history.filter(model="").values_list("at", flat=True).first()
    if horizon is not None and horizon >= start:
        return None
    return changed, created


def prune(using: str | None = None, batch: int = PRUNE_BATCH) -> int:
    """Delete at most ``batch`` records the history no longer keeps (older than
    ``CHANGE_HISTORY_SECONDS``, or beyond the newest ``CHANGE_HISTORY_ROWS``), oldest first, and
    move the horizon past them in the same transaction; how many were deleted."""
    from .models import ChangeRecord

    using = using or router.db_for_write(ChangeRecord)
    history = ChangeRecord.objects.using(using)
    changes = history.exclude(model="")
    cutoff = timezone.now() - timedelta(seconds=limit("CHANGE_HISTORY_SECONDS", None))
    kept = limit("CHANGE_HISTORY_ROWS", None)
    beyond = changes.order_by("-id").values_list("id", flat=True)[kept:kept + 1]
    doomed = changes.filter(Q(at__lt=cutoff) | Q(id__lte=beyond[0]) if beyond else Q(at__lt=cutoff))
    with transaction.atomic(using=using):
        ids = list(doomed.order_by("id").values_list("id", flat=True)[:batch])
        if not ids:
            return 0
        newest = history.filter(id__in=ids).aggregate(newest=Max("at"))["newest"]
        marker, made = history.get_or_create(model="", defaults={"pk_value": "", "at": newest})
        if not made and marker.at < newest:
            history.filter(id=marker.id).update(at=newest)
        return history.filter(id__in=ids).delete()[0]


def _prune_quietly(using: str) -> None:
    """One batch, by one thread of the process at a time; a failure is logged, never the writer's."""
    if not _pruning.acquire(blocking=False):
        return
    try:
        prune(using)
    except Exception:
        logger.exception("Could not prune the history of changes")
    finally:
        _pruning.release()

