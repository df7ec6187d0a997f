"""Time slow requests on the async and the sync consumer: N at once on one connection, and one
each on N connections at once.

    .venv/bin/python bench/concurrency.py [--requests 10] [--seconds 0.1]

On one connection the async consumer runs them concurrently (about one delay in all) and the
sync consumer answers them one after another (about N delays). On N connections both run them
side by side on the worker pool (WORKER_THREADS at a time; about one delay while N fits).
Prints one line per consumer and case.
"""

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from django_channels_router import AsyncSocketRouterConsumer, SocketRouterConsumer  # noqa: E402
from django_channels_router.testing import RouterCommunicator  # noqa: E402


class AsyncSlow(AsyncSocketRouterConsumer):
    routes = [{"route": "slow"}]

    async def on_slow(self, payload, headers):
        await asyncio.sleep(payload)
        return {"payload": payload}


class SyncSlow(SocketRouterConsumer):
    routes = [{"route": "slow"}]

    def on_slow(self, payload, headers):
        time.sleep(payload)
        return {"payload": payload}


async def measure(consumer, requests, seconds):
    comm = RouterCommunicator(consumer.as_asgi(), "/ws/")
    await comm.connect()
    started = time.perf_counter()
    uuids = {await comm.send_request("slow", seconds) for _ in range(requests)}
    answered = {(await comm.receive_message(timeout=requests * seconds + 5))["uuid"] for _ in range(requests)}
    elapsed = time.perf_counter() - started
    await comm.disconnect()
    assert answered == uuids, "every request must be answered exactly once"
    return elapsed


async def measure_connections(consumer, connections, seconds):
    comms = [RouterCommunicator(consumer.as_asgi(), "/ws/") for _ in range(connections)]
    for comm in comms:
        await comm.connect()
    started = time.perf_counter()
    replies = await asyncio.gather(*(comm.request("slow", seconds) for comm in comms))
    elapsed = time.perf_counter() - started
    for comm in comms:
        await comm.disconnect()
    assert all(reply["status"] == 200 for reply in replies), "every request must succeed"
    return elapsed


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=0.1)
    args = parser.parse_args()
    from django_channels_router.conf import setting

    for consumer in (AsyncSlow, SyncSlow):
        elapsed = await measure(consumer, args.requests, args.seconds)
        print(f"{consumer.__name__:10} {args.requests} x {args.seconds:.3f} s handlers on one connection: "
              f"{elapsed:.3f} s ({elapsed / args.seconds:.1f} delays)")
    for consumer in (AsyncSlow, SyncSlow):
        elapsed = await measure_connections(consumer, args.requests, args.seconds)
        print(f"{consumer.__name__:10} {args.requests} connections x one {args.seconds:.3f} s handler each: "
              f"{elapsed:.3f} s ({elapsed / args.seconds:.1f} delays; "
              f"WORKER_THREADS={setting('WORKER_THREADS', None)})")


if __name__ == "__main__":
    asyncio.run(main())
