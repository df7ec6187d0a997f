"""The bridge's one model: the history of changes that subscriptions resume from (see :mod:`.history`)."""

from __future__ import annotations

from django.db import models

__all__ = ["ChangeRecord"]


class ChangeRecord(models.Model):
    """One object of a subscribed model that changed, written in the transaction of the change.

    Written in the same transaction as the change itself, so that a committed change always has
    its record, whichever process made it and whatever happens to that process after the commit.
    The row whose ``model`` is empty is no change: its ``at`` is the newest time pruning deleted,
    so that a position older than that is known not to be resumable.
    """

    #: The concrete model, as ``"<app_label>.<model>"``.
    model = models.CharField(max_length=200)
    #: The object's primary key, as a string.
    pk_value = models.CharField(max_length=255)
    #: Whether the change created the object.
    created = models.BooleanField(default=False)
    #: When the change was written, on the clock of the process that wrote it.
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["model", "at"], name="drf_bridge_change_model_at")]
        verbose_name = "change record"

    def __str__(self) -> str:
        return f"{self.model} {self.pk_value} {self.at.isoformat()}"
