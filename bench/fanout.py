"""One model change fanned out to N subscribers of one server process.

    .venv/bin/python bench/fanout.py [--subscribers 500,2000] [--who anonymous,users]
                                     [--server daphne|uvicorn|in-process]

For each N and each kind of subscriber, prints the time from the commit until every
subscriber has its push and the server's CPU per subscriber. ``anonymous``: every subscriber
sees the model the same way, so they share one evaluation. ``users``: each subscriber sees it
its own way (a query string of its own, which the subscription key holds, as it holds a
user), so each costs an evaluation.

With ``--server`` (the default, daphne) the server is a real process on 127.0.0.1 on
channels-redis (``BENCH_REDIS_URL``, default redis://127.0.0.1:6379/0, under a key prefix of
its own), the clients are WebSockets in this process, and the change is committed by this
process, as a task worker would. Its CPU is read from /proc from the commit until one second
after the last push (so the sender's trailing "last number" marker counts too).
``in-process`` runs the consumers in this process on the in-memory layer (RouterCommunicator)
and counts the SQL queries and the timers set on the event loop; its cost is dominated by the
in-memory layer's scan of every channel on each receive, which a deployment does not have.
Bounded: a row gives up after 120 s.
"""

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
IN_PROCESS = "--server=in-process" in sys.argv or "in-process" in sys.argv
if not IN_PROCESS:
    os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ["BENCH_REDIS_PREFIX"] = f"bench-fanout-{uuid.uuid4().hex[:8]}"

from asgiref.sync import sync_to_async  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from bench.server import call_command, cpu_seconds, free_port, start, stop  # noqa: E402  (sets Django up)
from demo.models import Article  # noqa: E402

TIMEOUT = 120


def report(who, n, elapsed, cpu, extra=""):
    print(f"{who:9} {n:5}  commit to last push {elapsed * 1000:6.0f} ms  CPU {cpu / n * 1e6:5.0f} us per "
          f"subscriber{extra}", flush=True)


async def subscribed(url):
    ws = await connect(url, max_size=None, open_timeout=60)
    await ws.send(json.dumps({"uuid": "s", "route": "subscribe", "headers": {}, "payload": None}))
    reply = json.loads(await ws.recv())
    assert reply["status"] == 201, reply
    return ws


async def server_row(base, pid, article, who, n):
    urls = [f"{base}?u={i}" if who == "users" else base for i in range(n)]
    sockets = []
    for at in range(0, n, 25):  # 25 at a time: channels-redis' pool has 100 connections
        sockets += await asyncio.gather(*(subscribed(url) for url in urls[at:at + 25]))
    try:
        article.title = f"Changed for {n} {who}"
        cpu, started = cpu_seconds(pid), time.perf_counter()
        await sync_to_async(article.save)()  # one UPDATE; the change goes out on commit
        pushes = await asyncio.wait_for(asyncio.gather(*(ws.recv() for ws in sockets)), TIMEOUT)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(1)
        cpu = cpu_seconds(pid) - cpu
        expected = ("updated", article.title)
        wrong = [p for p in map(json.loads, pushes) if (p["route"], p["payload"].get("title")) != expected]
        assert not wrong, f"{len(wrong)} unexpected pushes, such as {wrong[0]}"
        report(who, n, elapsed, cpu)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


async def in_process_row(article, who, n):
    from django.contrib.auth.models import AnonymousUser
    from django.db.backends import utils

    from bench.subjects import RouterArticles
    from django_channels_router.testing import RouterCommunicator

    queries = 0
    execute = utils.CursorWrapper.execute

    def counting_execute(self, sql, params=None):
        nonlocal queries
        queries += 1
        return execute(self, sql, params)

    comms = []
    for i in range(n):
        path = f"/ws/model/?u={i}" if who == "users" else "/ws/model/"
        comm = RouterCommunicator(RouterArticles.as_asgi(), path, user=AnonymousUser())
        await comm.connect()
        assert (await comm.request("subscribe"))["status"] == 201
        comms.append(comm)
    loop, timers = asyncio.get_running_loop(), 0
    call_later = loop.call_later

    def counting_call_later(*args, **kwargs):
        nonlocal timers
        timers += 1
        return call_later(*args, **kwargs)

    utils.CursorWrapper.execute, loop.call_later = counting_execute, counting_call_later
    try:
        article.title = f"Changed for {n} {who}"
        cpu, started = time.process_time(), time.perf_counter()
        await sync_to_async(article.save)()
        pushes = await asyncio.wait_for(asyncio.gather(*(c.receive_message(timeout=TIMEOUT) for c in comms)), TIMEOUT)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        utils.CursorWrapper.execute, loop.call_later = execute, call_later
    assert all(p["route"] == "updated" and p["payload"]["title"] == article.title for p in pushes)
    report(who, n, elapsed, cpu, f"  {queries} SQL queries (1 for the UPDATE), {timers} timers set on the loop")
    for comm in comms:
        await comm.disconnect()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="500,2000", help="comma-separated counts")
    parser.add_argument("--who", default="anonymous,users", help="anonymous, users, or both")
    parser.add_argument("--server", choices=["daphne", "uvicorn", "in-process"], default="daphne")
    args = parser.parse_args()
    await sync_to_async(call_command)("migrate", verbosity=0)
    article = await Article.objects.acreate(title="Fan-out")
    rows = [(who, int(n)) for who in args.who.split(",") for n in args.subscribers.split(",")]
    print(f"Python {sys.version.split()[0]}, one change to N subscribers, {args.server}")
    if args.server == "in-process":
        for who, n in rows:
            await in_process_row(article, who, n)
        return
    port = free_port()
    proc = start(args.server, port, log=True)
    try:
        for who, n in rows:
            await server_row(f"ws://127.0.0.1:{port}/ws/model/", proc.pid, article, who, n)
    finally:
        stop(proc)
        from channels.layers import get_channel_layer

        await get_channel_layer().flush()  # this run's keys, under its own prefix
    log = proc.log_path.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-2000:]


if __name__ == "__main__":
    asyncio.run(main())
