"""The demo project (testproject/) served by daphne, as `scripts/demo.sh` runs it.

Run on its embedded defaults (SQLite, in-memory layer) and, when they are reachable on
127.0.0.1, on PostgreSQL and channels-redis, the way DATABASE_URL and REDIS_URL switch it.
"""

import asyncio
import http.cookiejar
import json
import os
import re
import secrets
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from demo.management.commands.seed_articles import SAMPLES
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
def demo_process_env(demo_env):
    """The environment of the demo's processes: manage.py commands and daphne alike.

    PYTHONPATH puts this checkout first (as the daphne helper does), so the demo runs the code
    under test even where an older install of the package is on the path.
    """
    return {**os.environ, **demo_env, "DJANGO_SETTINGS_MODULE": "testproject.settings", "ROUTER_LOG_LEVEL": "ERROR",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "testproject")])}


def manage(env, *command, **extra_env):
    return subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT / "testproject", env={**env, **extra_env},
                          check=True, capture_output=True, text=True, timeout=60)


@pytest.fixture
def demo_server(demo_process_env, tmp_path):
    env = demo_process_env
    manage(env, "migrate", "--no-input")
    manage(env, "seed_articles")
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


# -- ModelSocketRouter at ws/model/articles/: session cookie -> AuthMiddlewareStack -> DRF permission


def http_get_json(opener, url):
    with opener.open(url, timeout=10) as response:
        return json.load(response)


def log_in(http_url, username, password):
    """Log in through /admin/login/ as a browser does; returns the opener holding the cookies."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{http_url}/admin/login/", timeout=10) as response:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.read().decode())[1]
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password,
                                   "next": "/admin/"}).encode()
    with opener.open(f"{http_url}/admin/login/", data=form, timeout=10) as response:
        assert response.url == f"{http_url}/admin/", "the login form was shown again: the login failed"
    return opener, {cookie.name: cookie.value for cookie in jar}


async def test_demo_model_router_reads_anonymously_and_writes_with_the_session(demo_server, demo_process_env):
    origin = demo_server.replace("ws://", "http://")
    anonymous = urllib.request.build_opener()
    assert await asyncio.to_thread(http_get_json, anonymous, f"{origin}/whoami/") == {
        "username": None, "authenticated": False}

    async with socket_to(demo_server, "/ws/model/articles/", origin) as ws:
        listed = await call(ws, "list")
        assert listed["status"] == 200 and [a["title"] for a in listed["payload"]] == [title for title, _ in SAMPLES]
        found = await call(ws, "list", {"search": "status", "ordering": "-id"})  # SearchFilter: title or body
        assert [a["title"] for a in found["payload"]] == ["Status codes"]
        newest_first = await call(ws, "list", {"ordering": "-id"})
        assert [a["id"] for a in newest_first["payload"]] == [3, 2, 1]
        first = await call(ws, "get", None, {"id": 1})
        assert first["status"] == 200 and first["payload"]["title"] == SAMPLES[0][0]
        refused = await call(ws, "create", {"title": "x"})
        assert refused["status"] == 401 and refused["payload"]["code"] == "not_authenticated"
        refused = await call(ws, "delete", None, {"id": 1})
        assert refused["status"] == 401 and refused["payload"]["code"] == "not_authenticated"
        assert len((await call(ws, "list"))["payload"]) == len(SAMPLES)  # nothing was written

    password = secrets.token_urlsafe(16)
    manage(demo_process_env, "createsuperuser", "--no-input", "--username", "writer", "--email", "writer@example.com",
           DJANGO_SUPERUSER_PASSWORD=password)
    opener, cookies = await asyncio.to_thread(log_in, origin, "writer", password)
    assert await asyncio.to_thread(http_get_json, opener, f"{origin}/whoami/") == {
        "username": "writer", "authenticated": True}

    session = {"Cookie": f"sessionid={cookies['sessionid']}"}
    async with connect(f"{demo_server}/ws/model/articles/", origin=origin, additional_headers=session) as ws:
        created = await call(ws, "create", {"title": "Written over a socket", "body": "As the writer."})
        assert created["status"] == 201 and created["payload"]["title"] == "Written over a socket"
        article = {"id": created["payload"]["id"]}
        invalid = await call(ws, "create", {})
        assert (invalid["status"], invalid["payload"]) == (400, {"title": ["This field is required."]})
        patched = await call(ws, "patch", {"title": "Patched"}, article)
        assert patched["status"] == 200
        assert (patched["payload"]["title"], patched["payload"]["body"]) == ("Patched", "As the writer.")
        incomplete = await call(ws, "update", {"body": "No title"}, article)  # PUT: required fields are required
        assert (incomplete["status"], incomplete["payload"]) == (400, {"title": ["This field is required."]})
        updated = await call(ws, "update", {"title": "Updated", "body": ""}, article)
        assert updated["status"] == 200 and (updated["payload"]["title"], updated["payload"]["body"]) == ("Updated", "")
        deleted = await call(ws, "delete", None, article)
        assert (deleted["status"], deleted["payload"]) == (204, None)
        assert (await call(ws, "get", None, article))["status"] == 404
