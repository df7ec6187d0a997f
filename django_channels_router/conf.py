"""Limits, from the consumer class first, then ``settings.CHANNELS_ROUTER``, then defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS = {
    "MAX_MESSAGE_BYTES": 1_048_576,
    "MAX_RUNNING_REQUESTS": 16,
    "MAX_WAITING_REQUESTS": 256,
}


def limit(name: str, override: int | None) -> int:
    """The value of limit ``name`` (a key of :data:`DEFAULTS`); ``override`` wins when set."""
    configured = getattr(settings, "CHANNELS_ROUTER", {})
    unknown = set(configured) - set(DEFAULTS)
    if unknown:
        raise ImproperlyConfigured(f"Unknown CHANNELS_ROUTER settings {sorted(unknown)}; known: {sorted(DEFAULTS)}.")
    value = override if override is not None else configured.get(name, DEFAULTS[name])
    lowest = 0 if name == "MAX_WAITING_REQUESTS" else 1
    if type(value) is not int or value < lowest:
        raise ImproperlyConfigured(f"{name} must be an integer of at least {lowest}, got {value!r}.")
    return value


@dataclass(frozen=True)
class Limits:
    """The limits in force for one connection."""

    message_bytes: int
    running: int
    waiting: int

    @classmethod
    def for_consumer(cls, consumer: Any) -> Limits:
        return cls(
            message_bytes=limit("MAX_MESSAGE_BYTES", consumer.max_message_bytes),
            running=limit("MAX_RUNNING_REQUESTS", consumer.max_running_requests),
            waiting=limit("MAX_WAITING_REQUESTS", consumer.max_waiting_requests),
        )
