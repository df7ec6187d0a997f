"""Side by side, in one process and one run: the router against a hand-written Channels
consumer, djangochannelsrestframework, and DRF over HTTP, for the same requests.

    .venv/bin/pip install djangochannelsrestframework   # benchmark-only dependency
    .venv/bin/python bench/compare.py [--requests 2000] [--rounds 5]

Each request is sent and its reply awaited before the next (in-process, through Channels'
communicator, so every WebSocket subject pays the same transport; DRF through its test
client). The rows take turns, ``--rounds`` times, and the medians are printed: server CPU time
per request (process time) and requests per second. Compare the ratios, not the absolute values.
"""

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ["BENCH_DATABASE"] = str(Path(tempfile.mkdtemp()) / "compare.sqlite3")

import django  # noqa: E402

django.setup()

from asgiref.sync import sync_to_async  # noqa: E402
from channels.testing import WebsocketCommunicator  # noqa: E402
from django.contrib.auth.models import AnonymousUser  # noqa: E402
from django.core.management import call_command  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from bench.subjects import (  # noqa: E402
    CALLS,
    OK,
    SUBJECTS,
    WARM_UP,
    HandWrittenEcho,
    RouterArticles,
    RouterEcho,
    calls_argument,
    http_cases,
    socket_cases,
    summary,
)
from demo.models import Article  # noqa: E402


async def socket(consumer):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    comm.scope["user"] = AnonymousUser()
    assert (await comm.connect())[0]
    return comm


async def measure(consumer, messages):
    """Server CPU per request and throughput, one request/reply round trip after the other."""
    comm = await socket(consumer)
    for message in messages[:WARM_UP]:
        await comm.send_json_to(message)
        await comm.receive_json_from(10)
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    for message in messages[WARM_UP:]:
        await comm.send_json_to(message)
        reply = await comm.receive_json_from(10)
        assert reply.get("status", reply.get("response_status")) in OK, reply
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await comm.disconnect()
    count = len(messages) - WARM_UP
    return cpu / count * 1e6, count / wall


def measure_http(requests):
    client = APIClient()

    def send(method, path, body):
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code in OK, response.content

    for request in requests[:WARM_UP]:
        send(*request)
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    for request in requests[WARM_UP:]:
        send(*request)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    count = len(requests) - WARM_UP
    return cpu / count * 1e6, count / wall


async def idle_memory(consumer, connections=300):
    """Bytes allocated per open, idle connection (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    comms = [await socket(consumer) for _ in range(connections)]
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    for comm in comms:
        await comm.disconnect()
    return grown / connections


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--calls", type=calls_argument, default=CALLS, help="e.g. get,create (default: all)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    await sync_to_async(call_command)("migrate", verbosity=0)
    article = await Article.objects.acreate(title="Benchmark", body="x" * 200)
    count = WARM_UP + args.requests

    rows = []
    for _ in range(args.rounds):
        for call, subject, key, messages in await sync_to_async(socket_cases)(article.pk, count, args.calls):
            rows.append((call, subject, *await measure(SUBJECTS[key], messages)))
        for call, subject, requests in await sync_to_async(http_cases)(article.pk, count, args.calls):
            rows.append((call, subject, *await sync_to_async(measure_http)(requests)))

    print(f"in-process, {args.requests} sequential requests per row, median of {args.rounds} rounds")
    print(summary(rows))
    for consumer in (HandWrittenEcho, RouterEcho, RouterArticles):
        print(f"idle memory per connection, {consumer.__name__}: {await idle_memory(consumer) / 1024:.1f} KiB")


if __name__ == "__main__":
    asyncio.run(main())
