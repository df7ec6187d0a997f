"""Side by side, in one process and one run: the router against a hand-written Channels
consumer, djangochannelsrestframework, and DRF over HTTP, for the same messages.

    .venv/bin/pip install djangochannelsrestframework   # benchmark-only dependency
    .venv/bin/python bench/compare.py [--requests 2000]

Each request is sent and its reply awaited before the next (in-process, through Channels'
communicator, so every subject pays the same transport). Figures are server CPU time per
request (process time) and requests per second; compare the ratios, not the absolute values.
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

from bench.subjects import SUBJECTS, HandWrittenEcho, PeerArticles, RouterArticles, RouterEcho, cases  # noqa: E402
from demo.models import Article  # noqa: E402


async def socket(consumer):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    comm.scope["user"] = AnonymousUser()
    assert (await comm.connect())[0]
    return comm


async def measure(consumer, messages, requests):
    """Server CPU per request and throughput for ``requests`` request/reply round trips."""
    comm = await socket(consumer)
    for message in messages[:50]:  # warm up
        await comm.send_json_to(message)
        await comm.receive_json_from(10)
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(requests):
        await comm.send_json_to(messages[i % len(messages)])
        reply = await comm.receive_json_from(10)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await comm.disconnect()
    assert reply.get("status", reply.get("response_status")) in (200, 201), reply
    return cpu / requests * 1e6, requests / wall


def measure_http(method, path, body, requests):
    client = APIClient()
    call = getattr(client, method)
    for _ in range(50):
        call(path, body, format="json")
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(requests):
        response = call(path, body, format="json")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert response.status_code in (200, 201), response.content
    return cpu / requests * 1e6, requests / wall


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
    n = parser.parse_args().requests
    await sync_to_async(call_command)("migrate", verbosity=0)
    article = await Article.objects.acreate(title="Benchmark", body="x" * 200)

    rows = [(call, subject, *await measure(SUBJECTS[key], messages, n))
            for call, subject, key, messages in cases(article.pk)]
    rows += [("get", "DRF over HTTP (in-process test client)",
              *await sync_to_async(measure_http)("get", f"/articles/{article.pk}/", None, n)),
             ("create", "DRF over HTTP (in-process test client)",
              *await sync_to_async(measure_http)("post", "/articles/", {"title": "t"}, n))]

    print(f"{'call':7} {'subject':42} {'CPU us/req':>10} {'req/s':>8}")
    for call, subject, cpu, rate in rows:
        print(f"{call:7} {subject:42} {cpu:10.0f} {rate:8.0f}")
    by = {(call, subject.split(" ")[0]): (cpu, rate) for call, subject, cpu, rate in rows}
    print()
    print(f"router / hand-written, CPU per echo: {by[('echo', 'router')][0] / by[('echo', 'hand-written')][0]:.2f}x")
    if PeerArticles is not None:
        for call in ("get", "create"):
            print(f"router / djangochannelsrestframework, {call} throughput: "
                  f"{by[(call, 'router')][1] / by[(call, 'djangochannelsrestframework')][1]:.2f}x")
    for consumer in (HandWrittenEcho, RouterEcho, RouterArticles):
        print(f"idle memory per connection, {consumer.__name__}: {await idle_memory(consumer) / 1024:.1f} KiB")


if __name__ == "__main__":
    asyncio.run(main())
