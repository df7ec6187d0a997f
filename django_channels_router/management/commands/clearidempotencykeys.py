"""``manage.py clearidempotencykeys``: delete the records of idempotency keys older than
``IDEMPOTENCY_TTL``, as ``clearsessions`` deletes expired sessions."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS

from django_channels_router.idempotency import PRUNE_BATCH, prune_expired


class Command(BaseCommand):
    help = ("Delete the records of idempotency keys older than CHANNELS_ROUTER['IDEMPOTENCY_TTL'] seconds, "
            "in batches; servers also delete them as they go.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="The database alias (default: default).")
        parser.add_argument("--batch-size", type=int, default=PRUNE_BATCH,
                            help=f"Records deleted per statement (default: {PRUNE_BATCH}).")

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = 0
        while batch := prune_expired(options["database"], options["batch_size"]):
            deleted += batch
        self.stdout.write(f"Deleted {deleted} expired idempotency key{'' if deleted == 1 else 's'}.")
