"""The same comparison as compare.py, through a real server on 127.0.0.1 and a real client.

    .venv/bin/python bench/server.py [--server daphne|uvicorn] [--requests 2000]

Starts the server (its own process, stopped at the end), sends each request over one
WebSocket and awaits its reply before the next, and reads the server process's CPU time
from /proc, so the figures are server CPU per request and requests per second.
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ["BENCH_DATABASE"] = str(Path(tempfile.mkdtemp()) / "server.sqlite3")

import django  # noqa: E402

django.setup()

from asgiref.sync import sync_to_async  # noqa: E402
from django.core.management import call_command  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from bench.subjects import cases  # noqa: E402
from demo.models import Article  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def start(server, port, log=False):
    command = {"daphne": ["daphne", "-b", "127.0.0.1", "-p", str(port), "bench.asgi:application"],
               "uvicorn": ["uvicorn", "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level",
                           "warning", "bench.asgi:application"]}[server]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "testproject")])}
    log_path = Path(tempfile.mkdtemp()) / f"{server}.log"
    output = open(log_path, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", *command], cwd=ROOT, env=env,
                            stdout=output, stderr=subprocess.STDOUT)
    proc.log_path = log_path
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"{server} did not start") from None
            time.sleep(0.1)


async def measure(url, pid, messages, requests):
    async with connect(url, max_size=None) as ws:
        for message in messages[:50]:
            await ws.send(json.dumps(message))
            await ws.recv()
        cpu, wall = cpu_seconds(pid), time.perf_counter()
        for i in range(requests):
            await ws.send(json.dumps(messages[i % len(messages)]))
            reply = json.loads(await ws.recv())
        cpu, wall = cpu_seconds(pid) - cpu, time.perf_counter() - wall
    assert reply.get("status", reply.get("response_status")) in (200, 201), reply
    return cpu / requests * 1e6, requests / wall


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    await sync_to_async(call_command)("migrate", verbosity=0)
    article = await Article.objects.acreate(title="Benchmark", body="x" * 200)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = start(args.server, port)
    base = f"ws://127.0.0.1:{port}/ws"
    try:
        rows = [(call, subject, *await measure(f"{base}/{path}/", proc.pid, messages, args.requests))
                for call, subject, path, messages in cases(article.pk)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"server: {args.server} on 127.0.0.1, {args.requests} sequential requests each")
    print(f"{'call':7} {'subject':42} {'server CPU us/req':>17} {'req/s':>8}")
    for call, subject, cpu, rate in rows:
        print(f"{call:7} {subject:42} {cpu:17.0f} {rate:8.0f}")


if __name__ == "__main__":
    asyncio.run(main())
