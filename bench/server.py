"""The comparison of compare.py through a real server on 127.0.0.1 and real clients.

    .venv/bin/python bench/server.py [--server daphne|uvicorn] [--requests 2000] [--rounds 3]
                                     [--connections 1]

Starts the server (its own process, stopped at the end) and sends every row's requests over
``--connections`` WebSockets (or keep-alive HTTP connections for DRF), each connection
awaiting a reply before its next request. One connection measures latency; several keep the
server busy, so requests per second is the throughput it sustains. The server's CPU time is
read from /proc, so the figures are server CPU per request, whatever the client costs.
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

import httpx  # noqa: E402
from asgiref.sync import sync_to_async  # noqa: E402
from django.core.management import call_command  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from bench.subjects import CALLS, OK, WARM_UP, calls_argument, http_cases, socket_cases, summary  # noqa: E402
from demo.models import Article  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """CPU time of the process and its children (gunicorn's worker)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return (int(fields[11]) + int(fields[12])) / TICKS + sum(map(cpu_seconds, children))  # utime + stime


def start(server, port, log=False):
    """Start ``server`` on 127.0.0.1:``port``: daphne or uvicorn (ASGI, every subject) or gunicorn (WSGI, DRF)."""
    command = {"daphne": ["daphne", "-b", "127.0.0.1", "-p", str(port), "bench.asgi:application"],
               "uvicorn": ["uvicorn", "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level",
                           "warning", "bench.asgi:application"],
               "gunicorn": ["gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1", "-k", "gthread", "--threads", "8",
                            "bench.wsgi:application"]}[server]
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


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def timed(pid, work, connections, count):
    """Run ``work(connection number)`` on every connection at once: server CPU per request, req/s."""
    cpu, wall = cpu_seconds(pid), time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(work(n) for n in range(connections))), 300)
    cpu, wall = cpu_seconds(pid) - cpu, time.perf_counter() - wall
    return cpu / count * 1e6, count / wall


async def measure_socket(url, pid, messages, connections):
    async def talk(ws, batch):
        for message in batch:
            await ws.send(json.dumps(message))
            reply = json.loads(await ws.recv())
            assert reply.get("status", reply.get("response_status")) in OK, reply

    sockets = [await connect(url, max_size=None) for _ in range(connections)]
    try:
        await talk(sockets[0], messages[:WARM_UP])
        rest = messages[WARM_UP:]
        return await timed(pid, lambda n: talk(sockets[n], rest[n::connections]), connections, len(rest))
    finally:
        for ws in sockets:
            await ws.close()


async def measure_http(base, pid, requests, connections):
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, limits=limits) as client:
        async def talk(batch):
            for method, path, body in batch:
                response = await client.request(method.upper(), path, json=body)
                assert response.status_code in OK, response.text

        await talk(requests[:WARM_UP])
        rest = requests[WARM_UP:]
        return await timed(pid, lambda n: talk(rest[n::connections]), connections, len(rest))


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--calls", type=calls_argument, default=CALLS, help="e.g. get,create (default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=1)
    args = parser.parse_args()
    await sync_to_async(call_command)("migrate", verbosity=0)
    article = await Article.objects.acreate(title="Benchmark", body="x" * 200)
    port, http_port = free_port(), free_port()
    proc, http = start(args.server, port), start("gunicorn", http_port)
    count = WARM_UP + args.requests
    rows = []
    try:
        for _ in range(args.rounds):
            for call, subject, path, messages in await sync_to_async(socket_cases)(article.pk, count, args.calls):
                url = f"ws://127.0.0.1:{port}/ws/{path}/"
                rows.append((call, subject, *await measure_socket(url, proc.pid, messages, args.connections)))
            for call, subject, requests in await sync_to_async(http_cases)(article.pk, count, args.calls):
                rows.append((call, f"{subject} (gunicorn)", *await measure_http(
                    f"http://127.0.0.1:{http_port}", http.pid, requests, args.connections)))
    finally:
        stop(proc)
        stop(http)
    print(f"{args.server} on 127.0.0.1, {args.requests} requests per row over {args.connections} connection(s), "
          f"median of {args.rounds} rounds; CPU is the server's")
    print(summary(rows))


if __name__ == "__main__":
    asyncio.run(main())
