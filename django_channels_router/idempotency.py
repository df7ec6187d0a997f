"""Idempotent writes: a request with an ``idempotency-key`` header runs once per identity and key.

The record of a key (:class:`~django_channels_router.models.IdempotencyKey`) is written in the
write's own transaction: the row is inserted before the handler runs and completed with the reply
before the transaction commits. So a write is never committed without its record (a process
killed between the commit and the reply leaves both, and the retry gets the kept reply), and a
write that rolls back leaves no record (the retry runs it).

Concurrent duplicates, possibly on different processes, are told apart by the database, never by
the memory of a process:

- PostgreSQL: the transaction first takes ``pg_try_advisory_xact_lock()`` on a hash of the
  identity and key. It does not wait: while another transaction holds it (the first request still
  runs), the answer is 409 ``request_in_progress`` at once. The lock ends with that transaction,
  after which the record is committed (the retry gets the kept reply) or gone (the retry runs).
  The unique constraint on (identity, key) stays the guarantee; the lock only spares a duplicate
  from waiting on the first one's row (PostgreSQL makes a conflicting insert wait for the other
  transaction to end). A rare hash collision between two keys costs a spurious 409, never a
  double write.
- SQLite runs one write transaction at a time: the insert of the record, the transaction's first
  write, waits for the database lock (the ``timeout`` option, 5 seconds by default) and then
  meets the committed record, or none. Only when the lock is not granted in time is the answer
  409 ``request_in_progress``.
- Other databases (MySQL, Oracle) make the insert wait for the first transaction, as SQLite does.

Inserting a "pending" row in a transaction of its own first would show 409 everywhere, but a
process killed while the write ran would leave a pending row that answers 409 until it expires;
holding the claim inside the write's transaction leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, OperationalError, connections, transaction
from django.utils import timezone

from .conf import limit
from .errors import SocketError, is_client_error, reply_for_exception
from .protocol import encode_frame
from .routes import subclasses
from .status import StatusCodes

if TYPE_CHECKING:
    from .models import IdempotencyKey

__all__ = ["HEADER", "REPLAY_HEADER", "STORED_HEADER", "TRANSPORT_HEADERS", "Once", "idempotent_request",
           "app_missing", "prune_expired", "run_once"]

logger = logging.getLogger("django_channels_router")

#: The request header.
HEADER = "idempotency-key"
#: Reply header of a kept reply sent again.
REPLAY_HEADER = "idempotent-replay"
#: Reply header (``false``) of a reply too large to keep: a retry gets its status, without payload.
STORED_HEADER = "idempotent-stored"
#: Headers left out of the comparison of a retry with the first request (lower case): a retry may
#: carry a fresh token.
TRANSPORT_HEADERS = frozenset({HEADER, "authorization"})
KEY = re.compile(r"[\x21-\x7e]{1,255}")  # 1 to 255 visible ASCII characters
#: Every PRUNE_EVERY keyed writes, a process deletes one batch of expired records.
PRUNE_EVERY = 100
PRUNE_BATCH = 1000

Reply = tuple[int, dict[str, Any] | None, Any]


@dataclass(frozen=True)
class Once:
    """A request that runs once: its key, who sent it and what it asked."""

    key: str
    identity: str
    fingerprint: str


def idempotent_request(consumer: Any, route: Any, headers: Mapping[str, Any], payload: Any) -> Once | None:
    """The request's key when ``route`` accepts one and the request has one; 400 for a bad key."""
    if not consumer.route_is_idempotent(route):
        return None
    key = headers.get(HEADER)
    if key is None:
        key = next((value for name, value in headers.items() if name.lower() == HEADER), None)
        if key is None:
            return None
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise SocketError(StatusCodes.BAD_REQUEST,
                          f"The {HEADER} header must be a string of 1 to 255 visible ASCII characters.", "invalid")
    compared = {name: value for name, value in headers.items() if name.lower() not in TRANSPORT_HEADERS}
    text = json.dumps([route.name, compared, payload], sort_keys=True, separators=(",", ":"), default=str)
    return Once(key, consumer.idempotency_identity(), hashlib.sha256(text.encode()).hexdigest())


class _NotKept(Exception):
    """A 5xx reply a handler returned: its writes roll back with the record, and it is sent."""

    def __init__(self, status: int, frame: str) -> None:
        self.status, self.frame = status, frame


def run_once(once: Once, consumer: Any, uuid: Any, route: Any, produce: Callable[[], Reply]) -> tuple[int, str]:
    """Serve the request in one transaction with its record: the kept reply when the key was seen,
    else ``produce()`` (hydrate, handler, dehydrate), whose reply is kept unless it is a 5xx.

    Returns ``(status, frame)``; a 5xx exception propagates (nothing is kept). Runs in a worker
    thread, as the ORM code of the pipeline does.
    """
    from .models import IdempotencyKey

    database = consumer.idempotency_database(route)
    encoder = consumer.json_encoder
    try:
        with transaction.atomic(using=database):
            record = _claim(IdempotencyKey, database, once, route.name)
            if record is not None:
                return _replay(record, uuid, route.name)
            try:
                with transaction.atomic(using=database):  # a 4xx exception rolls back the handler's writes only
                    status, headers, payload = produce()
                    frame = _encode(uuid, route.name, status, headers, payload, encoder)
            except Exception as exc:
                if not is_client_error(exc):
                    raise
                status, payload, headers = reply_for_exception(exc, route.name, uuid)
                frame = _encode(uuid, route.name, status, headers, payload, encoder)
            if status >= 500:
                raise _NotKept(status, frame)
            kept = len(frame.encode()) <= limit("IDEMPOTENCY_MAX_REPLY_BYTES", None)
            if not kept:
                headers = {**(headers or {}), STORED_HEADER: False}
                frame = _encode(uuid, route.name, status, headers, payload, encoder)
            IdempotencyKey.objects.using(database).filter(identity=once.identity, key=once.key).update(
                status=status, reply_kept=kept,
                reply=frame if kept else _encode(uuid, route.name, status, headers, None, encoder))
            transaction.on_commit(lambda: _prune(IdempotencyKey, database, once.identity), using=database)
    except _NotKept as not_kept:
        return not_kept.status, not_kept.frame
    return status, frame


def _encode(uuid: Any, route: str, status: int, headers: Mapping[str, Any] | None, payload: Any,
            encoder: type[json.JSONEncoder]) -> str:
    from .errors import InvalidResult

    try:
        return encode_frame(uuid, route, status, headers, payload, encoder)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidResult(f"payload or headers are not JSON-serialisable ({exc})") from None


def _claim(model: type[IdempotencyKey], database: str, once: Once, route: str) -> IdempotencyKey | None:
    """Insert the key's record (None), or return the committed one (its reply is sent again).

    409 while another transaction holds the key, 422 when the key was used for another request.
    """
    connection = connections[database]
    if connection.vendor == "postgresql":
        digest = hashlib.blake2b(f"{once.identity}\0{once.key}".encode(), digest_size=8).digest()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [int.from_bytes(digest, "big", signed=True)])
            if not cursor.fetchone()[0]:
                raise _in_progress()
    rows = model.objects.using(database)
    now = timezone.now()

    def insert() -> bool:
        try:
            with transaction.atomic(using=database):
                rows.create(identity=once.identity, key=once.key, route=route, fingerprint=once.fingerprint,
                            created=now)
            return True
        except IntegrityError:
            return False
        except OperationalError as exc:
            if connection.vendor == "sqlite" and "locked" in str(exc):
                raise _in_progress() from None
            raise

    if insert():
        return None
    record = rows.filter(identity=once.identity, key=once.key).first()
    if record is not None and record.created <= now - timedelta(seconds=limit("IDEMPOTENCY_TTL", None)):
        record.delete()  # expired, not yet pruned: the key is free again
        record = None
    if record is None:  # expired, or pruned since the insert failed
        if insert():
            return None
        record = rows.get(identity=once.identity, key=once.key)
    if record.fingerprint != once.fingerprint:
        raise SocketError(StatusCodes.UNPROCESSABLE_ENTITY,
                          f"This {HEADER} was used for another request (another route, payload or headers); "
                          "use a new key for a new request.", "idempotency_key_reused")
    return record


def _in_progress() -> SocketError:
    return SocketError(StatusCodes.CONFLICT, f"A request with this {HEADER} is still running; try again shortly.",
                       "request_in_progress", {"Retry-After": "1"})


def _replay(record: IdempotencyKey, uuid: Any, route: str) -> tuple[int, str]:
    kept = json.loads(record.reply)
    headers = {**(kept["headers"] or {}), REPLAY_HEADER: True}
    return record.status, encode_frame(uuid, route, record.status, headers, kept["payload"])


_writes = 0
_writes_lock = threading.Lock()


def _prune(model: type[IdempotencyKey], database: str, identity: str) -> None:
    """After a keyed write commits: keep the identity's newest ``IDEMPOTENCY_MAX_KEYS`` records, and
    every :data:`PRUNE_EVERY` writes of the process, delete a batch of expired ones. Never fails
    the write: its reply is already made."""
    global _writes
    try:
        bound = limit("IDEMPOTENCY_MAX_KEYS", None)
        rows = model.objects.using(database)
        surplus = list(rows.filter(identity=identity).order_by("-created", "-id")
                       .values_list("id", flat=True)[bound:bound + PRUNE_BATCH])
        if surplus:
            rows.filter(id__in=surplus).delete()
        with _writes_lock:
            _writes += 1
            due = _writes % PRUNE_EVERY == 0
        if due:
            prune_expired(database)
    except Exception:
        logger.exception("Could not prune the idempotency keys of %s", identity)


def prune_expired(database: str | None = None, batch: int = PRUNE_BATCH) -> int:
    """Delete at most ``batch`` records older than ``IDEMPOTENCY_TTL``, oldest first; how many."""
    from django.db import router

    from .models import IdempotencyKey

    database = database or router.db_for_write(IdempotencyKey)
    cutoff = timezone.now() - timedelta(seconds=limit("IDEMPOTENCY_TTL", None))
    rows = IdempotencyKey.objects.using(database)
    expired = list(rows.filter(created__lt=cutoff).order_by("created").values_list("id", flat=True)[:batch])
    return rows.filter(id__in=expired).delete()[0] if expired else 0


def app_missing(base: type) -> list[Any]:
    """``channels_router.E011`` for each consumer (a subclass of ``base``) with routes that take an
    ``idempotency-key`` while the app that holds the records' table is not installed."""
    from importlib import import_module

    from django.apps import apps
    from django.conf import settings
    from django.core import checks

    if apps.is_installed("django_channels_router"):
        return []
    application = getattr(settings, "ASGI_APPLICATION", None)
    if application:  # the project's routing, so that every consumer class exists (as the app's own checks do)
        try:
            import_module(application.rpartition(".")[0])
        except Exception:  # reported by channels_router.W001 once the app is installed
            pass
    errors: list[Any] = []
    for cls in subclasses(base):
        if cls.__module__.startswith(("django_channels_router.", "drf_bridge.")):
            continue  # the packages' own bases
        names = [name for name, route in cls.route_table.items()  # type: ignore[attr-defined]
                 if cls.route_is_idempotent(route)]  # type: ignore[attr-defined]
        if names:
            errors.append(checks.Error(
                f"{cls.__module__}.{cls.__qualname__}: routes {', '.join(map(repr, names))} take an "
                f"{HEADER}, whose records need the 'django_channels_router' app: without it, requests with "
                "the header are answered 500.",
                hint="Add 'django_channels_router' to INSTALLED_APPS and run manage.py migrate.",
                obj=cls, id="channels_router.E011"))
    return errors
