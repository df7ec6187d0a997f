"""The router on channels-redis through real servers: an idle receive is not an outage, bursts
wait for a Redis connection instead of failing, and memberships Redis loses come back with a
``resync``."""

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
from channels.layers import get_channel_layer
from django.core import checks
from django.test import override_settings
from websockets.asyncio.client import connect

from django_channels_router import groups
from tests.conftest import ROOT, CallingClient, daphne, reachable
from tests.test_push import member, private_redis  # noqa: F401  (a fixture)

SHARED_REDIS = "redis://127.0.0.1:6379/0"
needs_redis = pytest.mark.skipif(not reachable(6379), reason="Redis is not reachable on 127.0.0.1:6379")
pytestmark = pytest.mark.timeout(120)


def server_env(redis_url, database):
    return {"REDIS_URL": redis_url, "CHANNELS_REDIS_PREFIX": f"dcr-test-{uuid.uuid4().hex[:8]}",
            "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": f"sqlite:///{database}"}


def log_of(directory):
    return (Path(directory) / "daphne.log").read_text()


def create_article(env, title):
    """A change made by another process (a shell, a task worker): its event reaches subscribers."""
    script = f"from demo.models import Article; Article.objects.create(title={title!r})"
    subprocess.run([sys.executable, "-m", "django", "shell", "-c", script], cwd=ROOT, check=True, timeout=60,
                   capture_output=True, env={**os.environ, **env,
                                             "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'testproject'}"})


@needs_redis
async def test_an_idle_subscription_gets_no_resync_and_no_outage_is_logged(database, tmp_path):
    # redis-py 8 gives up on a socket read after 5 s by default, exactly as long as channels-redis'
    # receive blocks in Redis: with the host configured as README.md says, idling is not an outage.
    env = server_env(SHARED_REDIS, database)
    with daphne("tests.asgi:application", tmp_path, **env) as server:
        async with connect(f"{server}/ws/articles/") as ws:
            client = CallingClient(ws)
            reply = await client.call("subscribe")
            assert reply["status"] == 201
            assert await client.pushes(wait=12) == []  # two blocking receives and more
            await asyncio.to_thread(create_article, env, "after the idle time")
            pushes = await client.pushes(wait=5)
            assert [(p["route"], p["headers"]["seq"]) for p in pushes] == [("created", 1)]
        log = log_of(tmp_path)
    assert "Channel layer unavailable" not in log and "resync" not in log, log[-3000:]


@pytest.mark.parametrize("timeout, flagged", [(None, False), (10, False), (5, True), (6, True)])
def test_the_system_check_flags_a_redis_socket_timeout_an_idle_receive_reaches(timeout, flagged):
    host = {"address": SHARED_REDIS, "socket_timeout": timeout}
    layers = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [host]}}}
    with override_settings(CHANNEL_LAYERS=layers):
        found = [m for m in checks.run_checks() if m.id == "channels_router.E010"]
    assert bool(found) is flagged, found
    if flagged:
        assert "CHANNEL_LAYERS['default']" in found[0].msg and "socket_timeout" in found[0].hint


async def joined(url, group):
    ws = await connect(url, open_timeout=30)
    client = CallingClient(ws)
    reply = await client.call("join", group)
    return ws, client, reply["status"]


@needs_redis
@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
async def test_a_burst_of_joins_and_disconnects_waits_for_redis_connections(server, tmp_path, database):
    # 300 connections (three times redis-py's pool of 100) join one group at once, hear one
    # broadcast, and close at once: every join succeeds and every member leaves Redis.
    env = server_env(SHARED_REDIS, database)
    key = f"{env['CHANNELS_REDIS_PREFIX']}:group:burst"
    store = redis.Redis.from_url(SHARED_REDIS)
    with daphne("tests.asgi:application", tmp_path, server=server, **env) as url:
        opened = []
        for start in range(0, 300, 100):  # opened 100 at a time, the joins all at once
            opened += await asyncio.gather(*(connect(f"{url}/ws/{('sync', 'async')[i % 2]}/", open_timeout=30)
                                             for i in range(start, start + 100)))
        clients = [CallingClient(ws) for ws in opened]
        replies = await asyncio.gather(*(client.call("join", "burst") for client in clients))
        assert Counter(reply["status"] for reply in replies) == {200: 300}
        assert store.zcard(key) == 300

        await clients[0].call("announce", {"group": "burst", "text": "to all"})
        heard = await asyncio.gather(*(client.pushes(wait=3) for client in clients))
        assert Counter(len(pushes) for pushes in heard) == {1: 300}

        await asyncio.gather(*(ws.close() for ws in opened))
        deadline = time.monotonic() + 10
        while store.zcard(key) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert store.zcard(key) == 0
        log = log_of(tmp_path)
    store.delete(key)
    assert "Too many connections" not in log and "Traceback" not in log, log[-3000:]


async def test_a_leave_the_layer_fails_is_tried_again(caplog, monkeypatch):
    # The layer refuses the first two leaves (Redis unreachable, say): the member is not left in
    # the group until it expires (a day), the leave goes through on a later try.
    monkeypatch.setattr(groups, "CHECK_EVERY", 0.2)
    layers = {"default": {"BACKEND": "tests.layers.FlakyDiscardLayer"}}
    with override_settings(CHANNEL_LAYERS=layers):
        client = await member("async")
        layer = get_channel_layer()
        await client.close()
        assert "Could not leave group 'news'" in caplog.text
        assert layer.groups.get("news")  # still a member, for now
        for _ in range(100):
            if not layer.groups.get("news"):
                break
            await asyncio.sleep(0.1)
        assert not layer.groups.get("news")
        assert layer.discards == 3


async def watch_for_resync(ws, subscription):
    while True:
        message = json.loads(await ws.recv())
        if message["route"] == "resync":
            assert message["headers"]["subscription"] == subscription
            return message


async def test_memberships_redis_loses_are_joined_again_with_a_resync(private_redis, database, tmp_path):  # noqa: F811
    # FLUSHALL (as eviction or a failover to a replica that missed the writes) loses every group
    # membership while every connection stays open: within seconds, subscriptions get resync and
    # pushes flow again, to subscriptions and to plain group members.
    port, _, _ = private_redis
    env = server_env(f"redis://127.0.0.1:{port}/0", database)
    store = redis.Redis(port=port)
    with daphne("tests.asgi:application", tmp_path, **env) as server:
        async with connect(f"{server}/ws/articles/") as subscriber, connect(f"{server}/ws/async/") as plain:
            reply = await CallingClient(subscriber).call("subscribe")
            assert reply["status"] == 201
            member_client = CallingClient(plain)
            assert (await member_client.call("join", "news"))["status"] == 200

            store.flushall()
            started = time.monotonic()
            resync = await asyncio.wait_for(watch_for_resync(subscriber, reply["uuid"]), 10)
            assert time.monotonic() - started < 8
            assert resync["headers"]["seq"] == 1

            await asyncio.to_thread(create_article, env, "after the flush")
            push = json.loads(await asyncio.wait_for(subscriber.recv(), 10))
            assert (push["route"], push["headers"]["seq"]) == ("created", 2)
            await member_client.call("announce", {"group": "news", "text": "heard again"})
            assert [p["payload"] for p in await member_client.pushes(wait=3)] == ["heard again"]
        log = log_of(tmp_path)
    assert "lost 2 group memberships" in log, log[-3000:]
