"""What "nothing lost, nothing applied twice" costs: a keyed write against an unkeyed one, the
history record of a change, and resuming a subscription after N changes against re-reading.

    .venv/bin/python bench/delivery.py [--requests 500] [--rounds 5] [--changes 1000]

In-process (Channels' communicator), SQLite in WAL mode in a temporary file, or PostgreSQL with
``BENCH_DATABASE_URL``. Writes: wall time and CPU per ``create`` of a subscribed model, each
awaited before the next, medians of rounds that take turns. Resume: a subscription's position,
then ``--changes`` objects changed in one transaction, then ``subscribe`` with ``resume-from``:
the time until the last replayed push, next to a fresh ``subscribe`` + ``list`` of as many objects.
Asserts only correctness: one row per key, every changed object replayed once.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ["BENCH_DATABASE"] = str(Path(tempfile.mkdtemp()) / "delivery.sqlite3")

import django  # noqa: E402

django.setup()

from asgiref.sync import sync_to_async  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.db.models import F  # noqa: E402
from django.test import override_settings  # noqa: E402
from rest_framework import permissions, serializers  # noqa: E402

from demo.models import Article  # noqa: E402
from django_channels_router.models import IdempotencyKey  # noqa: E402
from django_channels_router.testing import RouterCommunicator  # noqa: E402
from drf_bridge import ModelSocketRouter  # noqa: E402
from drf_bridge.models import ChangeRecord  # noqa: E402


class ArticleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Article
        fields = ["id", "title", "body"]


class Articles(ModelSocketRouter):
    queryset = Article.objects.all()
    serializer_class = ArticleSerializer
    permission_classes = [permissions.AllowAny]
    authentication_classes = []
    pagination_class = None


WARM_UP = 20


async def per_create(keyed, requests, history=True):
    """Wall and CPU microseconds per create."""
    settings = {} if history else {"CHANGE_HISTORY_SECONDS": 0}
    with override_settings(CHANNELS_ROUTER=settings):
        comm = RouterCommunicator(Articles.as_asgi(), "/ws/")
        await comm.connect()
        for i in range(-WARM_UP, requests):
            if i == 0:
                wall, cpu = time.perf_counter(), time.process_time()
            headers = {"idempotency-key": f"k{time.time_ns()}-{i}"} if keyed else {}
            reply = await comm.request("create", {"title": "bench"}, headers)
            assert reply["status"] == 201, reply
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await comm.disconnect()
    return wall / requests * 1e6, cpu / requests * 1e6


async def resume(changes):
    """Seconds from a resume to its last push, and from a fresh subscribe to its list."""
    # The creates before are history: the position is read after them, and the replay is only the
    # changes that follow (not those of the margin before the position).
    await ChangeRecord.objects.exclude(model="").aupdate(at=F("at") - timedelta(hours=1))
    comm = RouterCommunicator(Articles.as_asgi(), "/ws/")
    await comm.connect()
    position = (await comm.request("subscribe"))["headers"]["position"]
    await comm.disconnect()

    @sync_to_async
    def change_all():
        with transaction.atomic():
            for article in Article.objects.order_by("-id")[:changes]:
                article.title = f"changed {time.time_ns()}"
                article.save()

    await change_all()
    comm = RouterCommunicator(Articles.as_asgi(), "/ws/")
    await comm.connect()
    started = time.perf_counter()
    reply = await comm.request("subscribe", None, {"resume-from": position}, timeout=60)
    assert reply["headers"]["resumed"] is True, reply
    seen = set()
    while len(seen) < changes:
        push = await comm.receive_message(timeout=60)
        seen.add(push["payload"]["id"])
    resumed = time.perf_counter() - started
    await comm.disconnect()

    comm = RouterCommunicator(Articles.as_asgi(), "/ws/")
    await comm.connect()
    started = time.perf_counter()
    await comm.request("subscribe")
    listed = await comm.request("list", None, {}, timeout=60)
    reread = time.perf_counter() - started
    assert len(listed["payload"]) >= changes
    await comm.disconnect()
    return resumed, reread


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--changes", type=int, default=1000)
    args = parser.parse_args()
    await sync_to_async(call_command)("migrate", verbosity=0)
    rows = {"create, no key, no history": (False, False), "create, no key": (False, True),
            "create with idempotency-key": (True, True)}
    results = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, (keyed, history) in rows.items():
            results[name].append(await per_create(keyed, args.requests, history))
    assert await IdempotencyKey.objects.acount() == args.rounds * (WARM_UP + args.requests)  # one row per key
    print(f"database: {django.db.connection.vendor}; {args.requests} creates per round, {args.rounds} rounds")
    for name, values in results.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        print(f"{name:30} {wall:7.0f} us wall {cpu:7.0f} us CPU per request")
    timings = [await resume(args.changes) for _ in range(max(1, args.rounds // 2))]
    print(f"resume after {args.changes} changes: {statistics.median(t[0] for t in timings) * 1000:7.0f} ms "
          f"to the last replayed push; subscribe + list of {await Article.objects.acount()} objects: "
          f"{statistics.median(t[1] for t in timings) * 1000:7.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
