"""Time N slow requests sent at once on one connection, on the async and the sync consumer.

    .venv/bin/python bench/concurrency.py [--requests 10] [--seconds 0.1]

The async consumer runs them concurrently (about one delay in all); the sync consumer answers
them one after another (about N delays). Prints one line per consumer.
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


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=0.1)
    args = parser.parse_args()
    for consumer in (AsyncSlow, SyncSlow):
        elapsed = await measure(consumer, args.requests, args.seconds)
        print(f"{consumer.__name__:10} {args.requests} x {args.seconds:.3f} s handlers on one connection: "
              f"{elapsed:.3f} s ({elapsed / args.seconds:.1f} delays)")


if __name__ == "__main__":
    asyncio.run(main())
