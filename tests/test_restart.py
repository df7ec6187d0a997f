"""Restarts without lost writes, through real daphne, uvicorn and gunicorn: on SIGTERM or SIGINT,
the writes that run finish and get their replies, writes that arrive meanwhile are refused (503)
without being run, new handshakes are told to come back soon, and every connection is closed with
1012 (4012 on daphne). So a write is in the database exactly when its client got the reply that
says so, and nothing is applied twice: also when the signal reaches the whole process group (a
master and its workers, each worker then signalled twice) or is sent twice."""

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import sqlite3
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from django_channels_router import shutdown
from django_channels_router.testing import RouterCommunicator
from tests.conftest import CONSUMERS, SERVER_ENV, SERVERS, free_port, reachable, server_process

RESTART_CODE = {"daphne": 4012, "uvicorn": 1012}
SLOW_CODE = {"daphne": 4013, "uvicorn": 1013}
CONNECTIONS = 3
APP = "tests.asgi:application"
#: Servers run as a service manager runs them: a master and two workers where they have workers.
GROUPS = {
    "daphne": SERVERS["daphne"],
    "uvicorn --workers 2": lambda port, app: [*SERVERS["uvicorn"](port, app)[:-1], "--workers", "2", app],
    "gunicorn UvicornWorker": lambda port, app: ["gunicorn", "-k", "uvicorn_worker.UvicornWorker", "-w", "2",
                                                 "-b", f"127.0.0.1:{port}", app],
}


@pytest.fixture
def serve(migrated, tmp_path):
    """Start a server process on a copy of the database: ``serve(args, group=False)`` gives
    (ws:// URL, process, database path); ``group``: in a process group of its own."""
    started = []

    def start(args, group=False):
        database, port = tmp_path / f"db{len(started)}.sqlite3", free_port()
        shutil.copy(migrated, database)
        env = {**SERVER_ENV, "DATABASE_URL": f"sqlite:///{database}"}
        running = server_process(args(port, APP), port, tmp_path / "server.log", env=env, group=group)
        proc = running.__enter__()
        started.append(running)
        return f"ws://127.0.0.1:{port}", proc, database

    yield start
    for running in started:
        running.__exit__(None, None, None)


def family(server):
    return "daphne" if server == "daphne" else "uvicorn"


async def write(ws, title, seconds):
    await ws.send(json.dumps({"uuid": title, "route": "slowWrite", "payload": {"title": title, "seconds": seconds}}))


async def until_closed(ws):
    """Every reply the connection gets until it closes, by uuid, and the close code."""
    replies = {}
    try:
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            replies[message["uuid"]] = message
    except ConnectionClosed as exc:
        return replies, exc.rcvd.code if exc.rcvd else 1006


async def handshake(url, kind):
    """How the server answers a new connection: (HTTP status, Retry-After) when it refuses the
    handshake, else (close code, None) of the connection it accepted."""
    try:
        ws = await connect(f"{url}/ws/{kind}/", open_timeout=10)
    except InvalidStatus as exc:
        return exc.response.status_code, exc.response.headers.get("Retry-After")
    except (OSError, InvalidMessage) as exc:  # no longer listening, or dropped the connection
        return type(exc).__name__, None
    return (await until_closed(ws))[1], None


async def writes_across_a_stop(url, kinds, stop):
    """Two slow writes on each connection (one of each ``kinds``), ``stop()`` while the first
    runs, one more write each during the drain; checks what a client relies on after a restart
    close and returns how a handshake during the drain was answered."""
    sockets = [await connect(f"{url}/ws/{kind}/", ping_interval=None) for kind in kinds]
    sent = []
    for n, ws in enumerate(sockets):
        for title in (f"{n}-first", f"{n}-second"):  # the sync consumer runs the second after the first
            await write(ws, title, 1.2)
            sent.append(title)
    await asyncio.sleep(0.4)  # the first writes are running
    await stop()
    await asyncio.sleep(0.2)
    during_drain = asyncio.gather(handshake(url, "sync"), handshake(url, "async"))
    for n, ws in enumerate(sockets):
        sent.append(f"{n}-late")
        try:
            await write(ws, f"{n}-late", 0)  # arrives while the server drains
        except ConnectionClosed:
            pass  # or finds the connection closed
    results = await asyncio.gather(*(until_closed(ws) for ws in sockets))
    replies = {uuid: reply for found, _ in results for uuid, reply in found.items()}
    return results, replies, sent, await during_drain


def check_restart(results, replies, sent, database, code):
    """A write is in the database exactly when its reply said so; those running at the signal
    finished; the others were never run (answered 503 or not at all); every close is ``code``."""
    saved = [title for (title,) in sqlite3.connect(database).execute("SELECT title FROM demo_article")]
    acknowledged = {uuid for uuid, reply in replies.items() if reply["status"] == 201}
    assert set(saved) == acknowledged  # in the database exactly when its reply said so
    assert len(saved) == len(set(saved))  # none twice
    assert {f"{n}-first" for n in range(len(results))} <= acknowledged  # running at the signal: finished
    for title in set(sent) - acknowledged:  # the rest were never run: answered 503, or not at all
        assert title not in replies or replies[title]["payload"]["code"] == "server_restarting", replies[title]
    assert all(f"{n}-late" not in acknowledged for n in range(len(results)))
    assert [closed for _, closed in results] == [code] * len(results)


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
async def test_sigterm_finishes_running_writes_then_closes_with_the_restart_code(serve, server, kind):
    url, proc, database = serve(SERVERS[server])

    async def stop():
        proc.send_signal(signal.SIGTERM)

    results, replies, sent, _ = await writes_across_a_stop(url, [kind] * CONNECTIONS, stop)
    assert proc.wait(timeout=30) is not None  # the server went on to stop
    check_restart(results, replies, sent, database, RESTART_CODE[server])


@pytest.mark.parametrize("signals", [[signal.SIGTERM], [signal.SIGINT], [signal.SIGTERM, signal.SIGTERM]],
                         ids=["SIGTERM", "SIGINT", "SIGTERM twice"])
@pytest.mark.parametrize("server", list(GROUPS))
async def test_a_signal_to_the_process_group_is_one_stop(serve, server, signals):
    """systemd (KillMode=control-group), supervisord's stopasgroup, ``kill -TERM -<pgid>`` and
    Ctrl-C signal every process of the group: a worker is signalled by them and again by its
    master. A repeat within the same stop does not cut the drain short."""
    url, proc, database = serve(GROUPS[server], group=True)

    async def stop():
        for n, signum in enumerate(signals):
            if n:
                await asyncio.sleep(0.02)
            os.killpg(proc.pid, signum)

    results, replies, sent, during_drain = await writes_across_a_stop(url, ["sync", "async"] * 2, stop)
    assert proc.wait(timeout=30) is not None
    check_restart(results, replies, sent, database, RESTART_CODE[family(server)])
    # a handshake during the drain is told to come back soon, not refused
    assert during_drain == [(4013, None) if server == "daphne" else (503, "1")] * 2


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
async def test_a_repeat_after_the_grace_period_stops_at_once(serve, server):
    """An operator who sends the signal again, 2 s or more after the first, stops the process without
    waiting for running requests: their connections close with 1013 (4013), which promises
    nothing about requests without a reply, not with the restart code."""
    url, proc, _ = serve(SERVERS[server])
    ws = await connect(f"{url}/ws/sync/", ping_interval=None)
    await write(ws, "slow", 8)
    await asyncio.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(2.2)
    proc.send_signal(signal.SIGTERM)
    forced = time.monotonic()
    replies, code = await until_closed(ws)
    assert time.monotonic() - forced < 2
    assert (replies, code) == ({}, SLOW_CODE[server])


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
async def test_a_client_that_stops_reading_does_not_hold_the_drain(serve, server):
    """Its replies cannot reach it before the process stops: it is closed as a slow reader
    (1013/4013, what waited is dropped) a few seconds into the drain, not after SHUTDOWN_TIMEOUT,
    and the server's own stop begins (it stops listening). uvicorn then waits for the connection
    to close, which a client that does not read never does, unless told how long to wait."""
    if server == "uvicorn":
        url, proc, _ = serve(lambda port, app: [*SERVERS["uvicorn"](port, app)[:-1], "--timeout-graceful-shutdown",
                                                "3", app])
    else:
        url, proc, _ = serve(SERVERS[server])
    port = int(url.rsplit(":", 1)[1])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    stalled = await connect(f"{url}/ws/limits/async/", sock=sock, compression=None, ping_interval=None, max_size=None)
    stalled.transport.pause_reading()  # reads nothing more
    healthy = await connect(f"{url}/ws/async/", ping_interval=None)
    blob = base64.b64encode(os.urandom(384 * 1024)).decode()  # 512 KiB, which no compression shrinks
    for n in range(8):  # 4 MiB of replies: the kernel's buffers take 2 to 3 MiB, the outbox holds the rest
        await stalled.send(json.dumps({"uuid": n, "route": "echo", "payload": blob}))
    await asyncio.sleep(1.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert (await until_closed(healthy))[1] == RESTART_CODE[server]
    while reachable(port) and time.monotonic() - started < 15:
        await asyncio.sleep(0.05)
    assert time.monotonic() - started < 6, "the drain waited for the client that stopped reading"
    proc.wait(timeout=30)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_request_that_outlives_the_drain_closes_with_1013_not_the_restart_code(kind):
    """After 1012 the client resends what got no reply, so 1012 is sent only when that is safe: a
    request still running when SHUTDOWN_TIMEOUT is up may yet be applied."""
    before = set(shutdown.connections)
    comm = RouterCommunicator(CONSUMERS[kind].as_asgi(), "/ws/")
    assert (await comm.connect())[0]
    [consumer] = set(shutdown.connections) - before
    await comm.send_request("slow", 0.6)
    await asyncio.sleep(0.1)
    await consumer.restart(0.2)
    assert await comm.receive_output(1) == {"type": "websocket.close", "code": 1013}
    await asyncio.sleep(0.5)  # the request ends in its thread (sync) before the test does
    await comm.disconnect()
