"""Restarts without lost writes, through real daphne and uvicorn: on SIGTERM, the writes that
run finish and get their replies, writes that arrive meanwhile are refused (503) without being
run, and every connection is closed with 1012 (4012 on daphne). So a write is in the database
exactly when its client got the reply that says so, and nothing is applied twice."""

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ROOT, SERVERS, free_port, server_process

RESTART_CODE = {"daphne": 4012, "uvicorn": 1012}
CONNECTIONS = 3
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'testproject'}", "DJANGO_SETTINGS_MODULE": "tests.settings"}


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """An SQLite database file with the tables, copied for every server."""
    path = tmp_path_factory.mktemp("restart") / "migrated.sqlite3"
    subprocess.run([sys.executable, "-m", "django", "migrate", "--no-input"], cwd=ROOT, check=True, timeout=120,
                   capture_output=True, env={**ENV, "DATABASE_URL": f"sqlite:///{path}"})
    return path


@pytest.fixture(params=["daphne", "uvicorn"])
def served(request, migrated, tmp_path):
    """A server process of its own on a copy of the database; (name, ws:// URL, process, database path)."""
    database, port = tmp_path / "db.sqlite3", free_port()
    shutil.copy(migrated, database)
    env = {**ENV, "DATABASE_URL": f"sqlite:///{database}"}
    with server_process(SERVERS[request.param](port, "tests.asgi:application"), port, tmp_path / "server.log",
                        env=env) as proc:
        yield request.param, f"ws://127.0.0.1:{port}", proc, database


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


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_sigterm_finishes_running_writes_then_closes_with_the_restart_code(served, kind):
    server, url, proc, database = served
    sockets = [await connect(f"{url}/ws/{kind}/", ping_interval=None) for _ in range(CONNECTIONS)]
    sent = []
    for n, ws in enumerate(sockets):
        for title in (f"{n}-first", f"{n}-second"):  # the sync consumer runs the second after the first
            await write(ws, title, 0.8)
            sent.append(title)
    await asyncio.sleep(0.3)  # the first writes are running
    proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.2)
    for n, ws in enumerate(sockets):
        sent.append(f"{n}-late")
        try:
            await write(ws, f"{n}-late", 0)  # arrives while the server drains
        except ConnectionClosed:
            pass  # or finds the connection closed
    results = await asyncio.gather(*(until_closed(ws) for ws in sockets))
    assert proc.wait(timeout=30) is not None  # the server went on to stop
    replies = {uuid: reply for found, _ in results for uuid, reply in found.items()}
    saved = {title for (title,) in sqlite3.connect(database).execute("SELECT title FROM demo_article")}
    acknowledged = {uuid for uuid, reply in replies.items() if reply["status"] == 201}
    assert saved == acknowledged  # in the database exactly when its reply said so
    assert {f"{n}-first" for n in range(CONNECTIONS)} <= acknowledged  # running at the signal: finished
    for title in set(sent) - acknowledged:  # the rest were never run: answered 503, or not at all
        assert title not in replies or replies[title]["payload"]["code"] == "server_restarting", replies[title]
    assert all(f"{n}-late" not in acknowledged for n in range(CONNECTIONS))
    assert [code for _, code in results] == [RESTART_CODE[server]] * CONNECTIONS
    assert len(saved) == len(sqlite3.connect(database).execute("SELECT title FROM demo_article").fetchall())  # none twice
