"""The demo project (testproject/) served by daphne, as `scripts/demo.sh` runs it.

Run on its embedded defaults (SQLite, in-memory layer) and, when they are reachable on
127.0.0.1, on PostgreSQL and channels-redis, the way DATABASE_URL and REDIS_URL switch it.
"""

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import ROOT, daphne, reachable

pytestmark = pytest.mark.timeout(90)


def postgres_database():
    """A fresh PostgreSQL database on 127.0.0.1 for one demo run; dropped afterwards."""
    import psycopg

    name = f"dcr_demo_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_postgres_database(name):
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite+memory", "postgresql+redis"])
def demo_env(request, tmp_path):
    if request.param == "sqlite+memory":
        yield {"DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
        return
    if not reachable(5432):
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    if not reachable(6379):
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    name = postgres_database()
    yield {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}", "REDIS_URL": "redis://127.0.0.1:6379/0"}
    drop_postgres_database(name)


@pytest.fixture
def demo_server(demo_env, tmp_path):
    env = {**os.environ, **demo_env, "DJANGO_SETTINGS_MODULE": "testproject.settings", "ROUTER_LOG_LEVEL": "ERROR"}
    for command in (["migrate", "--no-input"], ["seed_articles"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT / "testproject", env=env,
                       check=True, capture_output=True, timeout=60)
    with daphne("testproject.asgi:application", tmp_path, **env) as url:
        yield url
    log = (tmp_path / "daphne.log").read_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


async def call(ws, route, payload=None, headers=None):
    request_id = str(uuid.uuid4())
    await ws.send(json.dumps({"uuid": request_id, "route": route, "headers": headers or {}, "payload": payload, "status": 200}))
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if reply["uuid"] == request_id:
            return reply


def socket_to(url, path, origin):
    return connect(f"{url}{path}", origin=origin)


async def test_demo_serves_the_seed_examples(demo_server):
    origin = demo_server.replace("ws://", "http://")
    async with socket_to(demo_server, "/ws/app/", origin) as app:
        assert (await call(app, "sayHello", {"name": "Ada"}))["payload"] == "Hello, Ada!"
        assert (await call(app, "PING"))["route"] == "PONG"
        first = await call(app, "getArticle", {"id": 1})
        assert first["status"] == 200 and set(first["payload"]) == {"id", "title"}
        assert (await call(app, "getArticle", {"id": 10**6}))["status"] == 404

    async with socket_to(demo_server, "/ws/articles/", origin) as articles:
        created = await call(articles, "create", {"title": "From the test"})
        assert created["status"] == 201 and created["payload"]["title"] == "From the test"
        invalid = await call(articles, "create", {})
        assert (invalid["status"], invalid["payload"]) == (400, {"title": ["This field is required."]})
        fetched = await call(articles, "get", None, {"id": created["payload"]["id"]})
        assert fetched["payload"]["title"] == "From the test"
        listed = await call(articles, "list")
        assert "From the test" in [a["title"] for a in listed["payload"]] and len(listed["payload"]) >= 4

    async with socket_to(demo_server, "/ws/app-async/", origin) as app_async:
        # Sent longest first: run concurrently, they finish (and are answered) shortest first.
        for n in range(10):
            await app_async.send(json.dumps({"uuid": n, "route": "slowEcho", "payload": {"seconds": (10 - n) / 10}}))
        replies = [json.loads(await asyncio.wait_for(app_async.recv(), 10)) for _ in range(10)]
        assert [r["uuid"] for r in replies] == list(reversed(range(10)))


async def test_demo_refuses_sockets_from_other_sites_at_the_handshake(demo_server):
    with pytest.raises(InvalidStatus) as refused:
        async with socket_to(demo_server, "/ws/app/", "https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
