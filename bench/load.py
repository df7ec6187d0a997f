"""Load through a real server on 127.0.0.1: C connections x M requests, all at once.

    .venv/bin/python bench/load.py [--server daphne|uvicorn] [--connections 200] [--requests 50]

Checks that every uuid is answered exactly once and that the server logged no error, then
prints the time taken and the throughput. Bounded: it stops after the run, or after 120 s.
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.asyncio.client import connect  # noqa: E402

from bench.server import Article, call_command, free_port, start, stop, sync_to_async  # noqa: E402  (sets Django up)


async def one_connection(url, n, requests):
    async with connect(url, max_size=None) as ws:
        sent = {f"c{n}-r{i}" for i in range(requests)}
        for uuid in sent:
            await ws.send(json.dumps({"uuid": uuid, "route": "echo", "headers": {}, "payload": uuid}))
        replies = [json.loads(await ws.recv()) for _ in sent]
    answered = [r["uuid"] for r in replies]
    assert sorted(answered) == sorted(sent), "lost or duplicated replies"
    assert all(r["status"] == 200 for r in replies)
    return len(replies)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    await sync_to_async(call_command)("migrate", verbosity=0)
    await Article.objects.acreate(title="warm")
    port = free_port()
    proc = start(args.server, port, log=True)
    try:
        url = f"ws://127.0.0.1:{port}/ws/router/"
        started = time.perf_counter()
        counts = await asyncio.wait_for(asyncio.gather(
            *(one_connection(url, n, args.requests) for n in range(args.connections))), 120)
        elapsed = time.perf_counter() - started
    finally:
        stop(proc)
    log = proc.log_path.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-2000:]
    total = sum(counts)
    print(f"{args.server}: {args.connections} connections x {args.requests} requests = {total} replies, each "
          f"uuid once, no server error logged; {elapsed:.2f} s, {total / elapsed:.0f} req/s")


if __name__ == "__main__":
    asyncio.run(main())
