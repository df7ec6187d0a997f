"""CPU per request of SocketRouterConsumer: an echo and an ORM get, each request awaited before
the next, in-process (Channels' communicator), median of rounds.

    .venv/bin/python bench/sync_cost.py [--requests 2000] [--rounds 5]

CPU is process time (every thread's), divided by the requests. Run it on two versions of the
code to compare them; compare the ratio, not the absolute values.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ["BENCH_DATABASE"] = str(Path(tempfile.mkdtemp()) / "sync_cost.sqlite3")

import django  # noqa: E402

django.setup()

from asgiref.sync import sync_to_async  # noqa: E402
from django.core.management import call_command  # noqa: E402

from demo.models import Article  # noqa: E402
from django_channels_router import SocketRouterConsumer  # noqa: E402
from django_channels_router.testing import RouterCommunicator  # noqa: E402


class SyncEcho(SocketRouterConsumer):
    routes = [{"route": "echo"}]

    def on_echo(self, payload, headers):
        return {"payload": payload}


class SyncGet(SocketRouterConsumer):
    routes = [{"route": "get", "hydrate": lambda headers, payload: Article.objects.get(pk=payload)}]

    def on_get(self, article, headers):
        return {"payload": {"id": article.pk, "title": article.title}}


async def cpu_per_request(consumer, route, payload, requests):
    comm = RouterCommunicator(consumer.as_asgi(), "/ws/")
    await comm.connect()
    for _ in range(50):  # warm up: threads, connections, caches
        await comm.request(route, payload)
    cpu = time.process_time()
    for _ in range(requests):
        reply = await comm.request(route, payload)
        assert reply["status"] == 200, reply
    cpu = time.process_time() - cpu
    await comm.disconnect()
    return cpu / requests * 1e6


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    await sync_to_async(call_command)("migrate", verbosity=0)
    pk = (await Article.objects.acreate(title="Benchmark")).pk
    results = {"echo": [], "get": []}
    for _ in range(args.rounds):  # the two take turns, so both see the same machine
        results["echo"].append(await cpu_per_request(SyncEcho, "echo", "x", args.requests))
        results["get"].append(await cpu_per_request(SyncGet, "get", pk, args.requests))
    for name, values in results.items():
        print(f"SocketRouterConsumer {name:4}: {statistics.median(values):6.0f} us CPU per request "
              f"(median of {args.rounds} rounds of {args.requests}; spread {min(values):.0f}-{max(values):.0f})")


if __name__ == "__main__":
    asyncio.run(main())
