"""Limits, from the consumer class first, then ``settings.CHANNELS_ROUTER``, then defaults."""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    "MAX_MESSAGE_BYTES": 1_048_576,
    # JSON values (array items, object members) in one message, counted before it is parsed.
    "MAX_MESSAGE_VALUES": 100_000,
    "MAX_RUNNING_REQUESTS": 16,
    "MAX_WAITING_REQUESTS": 256,
    # Bytes the parsed requests not yet answered may hold, estimated (protocol.Frame.weight):
    # those of one connection, and those of every connection of the process together.
    "MAX_CONNECTION_REQUEST_BYTES": 16 * 1_048_576,
    "MAX_PROCESS_REQUEST_BYTES": 256 * 1_048_576,
    "RATE_LIMIT": None,
    "REQUEST_TIMEOUT": None,
    # Seconds running requests get to finish on SIGTERM before their connections close (1012).
    "SHUTDOWN_TIMEOUT": 10,
    # A hard cap on what may wait for one client, above what a reading client ever has waiting;
    # a client that reads nothing for SLOW_CLIENT_TIMEOUT seconds is closed well before it.
    "MAX_PENDING_SEND_BYTES": 16_777_216,
    "SLOW_CLIENT_TIMEOUT": 10,
    "MAX_SUBSCRIPTIONS": 64,
    "MAX_SUBSCRIBED_OBJECTS": 10_000,
    "WORKER_THREADS": min(32, (os.cpu_count() or 1) + 4),  # as ThreadPoolExecutor's default
    # Idempotent writes (django_channels_router.idempotency): seconds a key's record is kept, the
    # records kept per identity (the oldest go first), and the largest reply kept (a frame, in bytes).
    "IDEMPOTENCY_TTL": 86_400,
    "IDEMPOTENCY_MAX_KEYS": 1000,
    "IDEMPOTENCY_MAX_REPLY_BYTES": 65_536,
    # The history of changes that subscriptions resume from (drf_bridge.history): seconds it keeps
    # (0: none, and subscriptions carry no position), the most records it keeps, and the seconds a
    # resume reaches back before its position (longer than a write transaction, event delivery and
    # the skew of the servers' clocks together).
    "CHANGE_HISTORY_SECONDS": 600,
    "CHANGE_HISTORY_ROWS": 100_000,
    "CHANGE_HISTORY_MARGIN": 30,
    # Who may see the socket docs page and schema (django_channels_router.urls).
    "DOCS_ACCESS": "authenticated",
}
DOCS_ACCESS = ("public", "authenticated", "staff")
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RATE = re.compile(r"(\d+)/(\d*)([smhd])[a-z]*")


def setting(name: str, override: Any) -> Any:
    """The value of ``name`` (a key of :data:`DEFAULTS`); a class's ``override`` wins when set."""
    configured = getattr(settings, "CHANNELS_ROUTER", {})
    unknown = set(configured) - set(DEFAULTS)
    if unknown:
        raise ImproperlyConfigured(f"Unknown CHANNELS_ROUTER settings {sorted(unknown)}; known: {sorted(DEFAULTS)}.")
    return override if override is not None else configured.get(name, DEFAULTS[name])


def limit(name: str, override: int | None) -> int:
    value = setting(name, override)
    lowest = 0 if name in ("MAX_WAITING_REQUESTS", "CHANGE_HISTORY_SECONDS") else 1
    if type(value) is not int or value < lowest:
        raise ImproperlyConfigured(f"{name} must be an integer of at least {lowest}, got {value!r}.")
    return value


def rate(override: str | None) -> tuple[int, float] | None:
    """``RATE_LIMIT`` as ``(requests, seconds)``: ``"100/min"``, ``"5/s"``, ``"1000/10m"``, or None."""
    value = setting("RATE_LIMIT", override)
    if value is None:
        return None
    match = RATE.fullmatch(value) if isinstance(value, str) else None
    if match is None or int(match[1]) < 1:
        raise ImproperlyConfigured(f"RATE_LIMIT must look like '100/min' or '5/s', got {value!r}.")
    return int(match[1]), int(match[2] or 1) * PERIODS[match[3]]


def timeout(override: float | None, name: str = "REQUEST_TIMEOUT") -> float | None:
    """``REQUEST_TIMEOUT`` (seconds a request of an async consumer may take), ``SHUTDOWN_TIMEOUT``
    (seconds running requests get on SIGTERM) or ``SLOW_CLIENT_TIMEOUT`` (seconds a client may read
    nothing while frames wait for it), or None (no limit)."""
    value = setting(name, override)
    if value is not None and (type(value) not in (int, float) or not 0 < value < math.inf):
        raise ImproperlyConfigured(f"{name} must be a positive number of seconds or None, got {value!r}.")
    return value


def docs_access(override: Any = None) -> Callable[[Any], bool]:
    """``DOCS_ACCESS`` as a test of a request: "public", "authenticated", "staff", a function
    ``(request) -> bool`` or the dotted path of one."""
    value = setting("DOCS_ACCESS", override)
    if isinstance(value, str) and value not in DOCS_ACCESS and "." in value:
        from django.utils.module_loading import import_string

        try:
            value = import_string(value)
        except ImportError as exc:
            raise ImproperlyConfigured(f"DOCS_ACCESS {value!r} cannot be imported: {exc}") from None
    if callable(value):
        return value
    if value not in DOCS_ACCESS:
        raise ImproperlyConfigured(f"DOCS_ACCESS must be one of {', '.join(DOCS_ACCESS)}, or a function of the "
                                   f"request, got {value!r}.")
    return {
        "public": lambda request: True,
        "authenticated": lambda request: bool(getattr(getattr(request, "user", None), "is_authenticated", False)),
        "staff": lambda request: bool(getattr(getattr(request, "user", None), "is_staff", False)),
    }[value]


PARSERS: dict[str, Callable[[Any], Any]] = {"RATE_LIMIT": rate, "REQUEST_TIMEOUT": timeout, "DOCS_ACCESS": docs_access,
                                            "SHUTDOWN_TIMEOUT": lambda _: timeout(None, "SHUTDOWN_TIMEOUT"),
                                            "SLOW_CLIENT_TIMEOUT": lambda _: timeout(None, "SLOW_CLIENT_TIMEOUT")}


def check_all() -> list[str]:
    """Every problem in ``settings.CHANNELS_ROUTER``, for the system checks."""
    problems = set()
    for name in DEFAULTS:
        try:
            PARSERS[name](None) if name in PARSERS else limit(name, None)
        except ImproperlyConfigured as exc:
            problems.add(str(exc))
    return sorted(problems)


@dataclass(frozen=True)
class Limits:
    """The limits in force for one connection."""

    message_bytes: int
    message_values: int
    running: int
    waiting: int
    rate: tuple[int, float] | None
    timeout: float | None
    pending_send_bytes: int
    slow_client_timeout: float | None
    connection_request_bytes: int
    process_request_bytes: int

    @classmethod
    def for_consumer(cls, consumer: Any) -> Limits:
        return cls(
            message_bytes=limit("MAX_MESSAGE_BYTES", consumer.max_message_bytes),
            message_values=limit("MAX_MESSAGE_VALUES", consumer.max_message_values),
            running=limit("MAX_RUNNING_REQUESTS", consumer.max_running_requests),
            waiting=limit("MAX_WAITING_REQUESTS", consumer.max_waiting_requests),
            rate=rate(consumer.rate_limit),
            timeout=timeout(consumer.request_timeout),
            pending_send_bytes=limit("MAX_PENDING_SEND_BYTES", consumer.max_pending_send_bytes),
            slow_client_timeout=timeout(consumer.slow_client_timeout, "SLOW_CLIENT_TIMEOUT"),
            connection_request_bytes=limit("MAX_CONNECTION_REQUEST_BYTES", consumer.max_connection_request_bytes),
            process_request_bytes=limit("MAX_PROCESS_REQUEST_BYTES", None),
        )


class TokenBucket:
    """A per-connection rate limit: ``requests`` per ``seconds``, with bursts up to ``requests``."""

    def __init__(self, requests: int, seconds: float, clock: Any) -> None:
        self.capacity, self.per_second, self.clock = requests, requests / seconds, clock
        self.tokens, self.updated = float(requests), clock()

    def take(self) -> float:
        """0 when a request may go now, else how many seconds until one may."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_second


class HeldBytes:
    """What parsed requests not yet answered hold, in bytes (``Frame.weight``), against a limit:
    one per connection, and :data:`process_requests` for all of them together.

    A request is admitted when it fits, or when nothing is held, so that one message of any
    size ``MAX_MESSAGE_BYTES`` allows is always served in its turn. Thread-safe: sync consumers
    parse in worker threads.
    """

    def __init__(self) -> None:
        self.held = 0
        self._lock = threading.Lock()

    def take(self, weight: int, limit: int) -> bool:
        """Hold ``weight`` more bytes if that stays within ``limit``; whether it did."""
        with self._lock:
            if self.held and self.held + weight > limit:
                return False
            self.held += weight
            return True

    def give(self, weight: int) -> None:
        """Release what :meth:`take` held, once the request is answered."""
        with self._lock:
            self.held -= weight


#: The requests of every connection of this process.
process_requests = HeldBytes()
