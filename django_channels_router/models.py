"""The router's one model: the record of an ``idempotency-key`` (see :mod:`.idempotency`)."""

from __future__ import annotations

from django.db import models

__all__ = ["IdempotencyKey"]


class IdempotencyKey(models.Model):
    """A write that ran with an ``idempotency-key``, and the reply it got.

    The row is inserted in the write's own transaction, before the handler runs, and completed
    with the reply before that transaction commits: other connections see the finished record or
    nothing. The reply is kept as text, not in a ``JSONField``, so that a replay sends the same
    JSON, in the same key order (PostgreSQL's ``jsonb`` would reorder it).
    """

    #: Who sent it: ``user:<pk>``, ``session:<session key>`` or ``connection:<id>``.
    identity = models.CharField(max_length=200)
    key = models.CharField(max_length=255)
    route = models.CharField(max_length=128)
    #: SHA-256 of the route, the payload and the headers that are not transport ones.
    fingerprint = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(default=0)
    #: ``{"headers": ..., "payload": ...}`` as JSON text; without the payload when it was too large.
    reply = models.TextField(default="")
    reply_kept = models.BooleanField(default=True)
    created = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["identity", "key"], name="channels_router_idempotency_key")]
        indexes = [models.Index(fields=["identity", "created"], name="channels_router_idem_identity")]
        verbose_name = "idempotency key"

    def __str__(self) -> str:
        return f"{self.identity} {self.key}"
