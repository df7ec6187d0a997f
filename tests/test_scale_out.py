"""Broadcasts across server processes through the real Redis server (channels-redis)."""

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest
from websockets.asyncio.client import connect

from tests.conftest import ROOT, daphne, reachable

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


class Client:
    """A real WebSocket client that keeps the pushes that arrive while it waits for a reply."""

    def __init__(self, ws):
        self.ws, self.unmatched = ws, []

    async def call(self, route, payload=None):
        request_id = str(uuid.uuid4())
        await self.ws.send(json.dumps({"uuid": request_id, "route": route, "headers": {}, "payload": payload}))
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if message["uuid"] == request_id:
                return message
            self.unmatched.append(message)

    async def pushes(self, wait=1.0):
        """Every push received so far and within ``wait`` more seconds."""
        found, self.unmatched = self.unmatched, []
        try:
            while True:
                found.append(json.loads(await asyncio.wait_for(self.ws.recv(), wait)))
        except TimeoutError:
            return found


async def test_a_broadcast_reaches_clients_of_every_process_exactly_once(two_servers, redis_env):
    first, second = two_servers
    async with connect(f"{first}/ws/async/") as ws_first, connect(f"{second}/ws/sync/") as ws_second:
        on_first, on_second = Client(ws_first), Client(ws_second)
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
