"""A bounded load test through real servers on 127.0.0.1: many connections, many requests,
every uuid answered exactly once, and a client that stops reading stalls nobody else."""

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

CONNECTIONS = 40
REQUESTS = 25

pytestmark = pytest.mark.timeout(120)


async def one_connection(url, n):
    async with connect(url, max_size=None) as ws:
        sent = {f"c{n}-r{i}" for i in range(REQUESTS)}
        for uuid in sent:
            await ws.send(json.dumps({"uuid": uuid, "route": "echo", "headers": {}, "payload": uuid}))
        replies = [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in sent]
        assert sorted(r["uuid"] for r in replies) == sorted(sent)  # each once: no loss, no duplicate
        assert all(r["status"] == 200 and r["payload"]["payload"] == r["uuid"] for r in replies)
        return len(replies)


@pytest.mark.parametrize("server", ["daphne_server", "uvicorn_server"])
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_many_connections_each_answered_exactly_once(request, server, kind):
    url = f"{request.getfixturevalue(server)}/ws/{kind}/"
    counts = await asyncio.gather(*(one_connection(url, n) for n in range(CONNECTIONS)))
    assert sum(counts) == CONNECTIONS * REQUESTS


@pytest.mark.parametrize("server", ["daphne_server", "uvicorn_server"])
async def test_a_client_that_stops_reading_stalls_no_one_else(request, server):
    url = f"{request.getfixturevalue(server)}/ws/async/"
    async with connect(url, max_size=None, max_queue=1, close_timeout=0.5) as stuck:
        for i in range(200):  # ~600 KB of replies it never reads
            await stuck.send(json.dumps({"uuid": i, "route": "echo", "payload": "x" * 3000}))
        assert await asyncio.wait_for(one_connection(url, 999), 30) == REQUESTS
