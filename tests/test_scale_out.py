"""Broadcasts across server processes through the real Redis server (channels-redis)."""

import os
import secrets
import subprocess
import sys
import uuid

import pytest
from websockets.asyncio.client import connect

from tests.conftest import ROOT, CallingClient, daphne, reachable

pytestmark = [pytest.mark.skipif(not reachable(6379), reason="Redis is not reachable on 127.0.0.1:6379"),
              pytest.mark.timeout(120)]


@pytest.fixture
def redis_env():
    """One Redis key prefix per test, so runs never see each other's groups."""
    return {"REDIS_URL": "redis://127.0.0.1:6379/0", "CHANNELS_REDIS_PREFIX": f"dcr-test-{uuid.uuid4().hex[:8]}",
            "DJANGO_SETTINGS_MODULE": "tests.settings"}


@pytest.fixture
def two_servers(redis_env, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with daphne("tests.asgi:application", tmp_path / "a", **redis_env) as first, \
            daphne("tests.asgi:application", tmp_path / "b", **redis_env) as second:
        yield first, second


async def test_a_broadcast_reaches_clients_of_every_process_exactly_once(two_servers, redis_env):
    first, second = two_servers
    async with connect(f"{first}/ws/async/") as ws_first, connect(f"{second}/ws/sync/") as ws_second:
        on_first, on_second = CallingClient(ws_first), CallingClient(ws_second)
        assert (await on_first.call("join", "news"))["payload"] == ["news"]
        assert (await on_second.call("join", "news"))["payload"] == ["news"]

        # From a third process that serves nothing: a task worker, a management command.
        script = "import django; django.setup(); from django_channels_router import broadcast_sync; " \
                 "broadcast_sync('news', 'headline', {'from': 'worker'})"
        subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60,
                       env={**os.environ, **redis_env, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'testproject'}"})
        for client in (on_first, on_second):
            assert [(m["route"], m["payload"]) for m in await client.pushes()] == [("headline", {"from": "worker"})]

        # From a route served by one of the processes.
        assert (await on_first.call("announce", {"group": "news", "text": "hello"}))["status"] == 202
        assert [m["payload"] for m in await on_second.pushes()] == ["hello"]
        assert [m["payload"] for m in await on_first.pushes()] == ["hello"]

        # Leaving really leaves the group in Redis.
        await on_second.call("leave", "news")
        await on_first.call("announce", {"group": "news", "text": "again"})
        assert [m["payload"] for m in await on_first.pushes()] == ["again"]
        assert await on_second.pushes(wait=0.5) == []


@pytest.fixture
def demo_on_postgres_and_redis(tmp_path):
    """The demo project on a fresh PostgreSQL database, served by two daphne processes."""
    if not reachable(5432):
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    from tests.test_demo import drop_postgres_database, manage, postgres_database

    name = postgres_database()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "testproject.settings", "ROUTER_LOG_LEVEL": "ERROR",
           "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
           "REDIS_URL": f"redis://127.0.0.1:6379/{secrets.randbelow(15) + 1}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "testproject")])}
    try:
        manage(env, "migrate", "--no-input")
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with daphne("testproject.asgi:application", tmp_path / "a", **env) as first, \
                daphne("testproject.asgi:application", tmp_path / "b", **env) as second:
            yield env, first, second
    finally:
        drop_postgres_database(name)


async def test_model_changes_from_any_process_reach_every_subscriber_once(demo_on_postgres_and_redis):
    from tests.test_demo import manage

    env, first, second = demo_on_postgres_and_redis
    origin = first.replace("ws://", "http://")
    async with connect(f"{first}/ws/model/articles/", origin=origin) as ws_first, \
            connect(f"{second}/ws/model/articles/", origin=origin) as ws_second, \
            connect(f"{first}/ws/articles/", origin=origin) as writer_ws:
        on_first, on_second, writer = CallingClient(ws_first), CallingClient(ws_second), CallingClient(writer_ws)
        subscriptions = [(await client.call("subscribe"))["payload"]["subscription"] for client in (on_first, on_second)]

        # A change made through one server process (the seed example's create route)...
        created = await writer.call("create", {"title": "Through a server"})
        assert created["status"] == 201
        for client, subscription in zip((on_first, on_second), subscriptions, strict=True):
            pushes = await client.pushes()
            assert [(p["route"], p["payload"]["title"], p["headers"]["subscription"]) for p in pushes] == [
                ("created", "Through a server", subscription)]

        # ...and changes made by a process that serves nothing (a shell, a task worker).
        script = ("from django.db import transaction\nfrom demo.models import Article\n"
                  "with transaction.atomic():\n"
                  "    a = Article.objects.create(title='From a worker'); a.title = 'Renamed by a worker'; a.save()\n"
                  "Article.objects.filter(title='Through a server').delete()\n")
        manage(env, "shell", "-c", script)
        for client in (on_first, on_second):
            pushes = await client.pushes(wait=1.5)
            # Two saves in one transaction are one push, with the final state.
            assert sorted((p["route"], p["payload"].get("title")) for p in pushes) == [
                ("created", "Renamed by a worker"), ("deleted", None)]
            assert [p["payload"] for p in pushes if p["route"] == "deleted"] == [{"id": created["payload"]["id"]}]
