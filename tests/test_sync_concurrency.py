"""The sync consumer through real servers: connections run side by side on the worker pool,
while each connection's requests are still answered one at a time, in order."""

import asyncio
import itertools
import json

import pytest
from websockets.asyncio.client import connect

CONNECTIONS = 4  # fewer than the pool's threads (WORKER_THREADS is at least 5), so all can run at once
SECONDS = 0.4


@pytest.fixture(params=["daphne", "uvicorn"])
def server(request):
    return request.getfixturevalue(f"{request.param}_server")


async def two_timed_requests(url):
    """Send two requests at once on one connection; their replies in arrival order."""
    async with connect(url) as ws:
        for n in (1, 2):
            await ws.send(json.dumps({"uuid": n, "route": "timed", "payload": SECONDS}))
        return [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in (1, 2)]


async def served(url):
    return await asyncio.gather(*(two_timed_requests(url) for _ in range(CONNECTIONS)))


async def test_connections_run_side_by_side_and_each_answers_in_order(server):
    connections = await served(f"{server}/ws/sync/")
    for first, second in connections:
        assert [first["uuid"], second["uuid"]] == [1, 2]  # in order
        assert second["payload"][0] >= first["payload"][1]  # the second started after the first ended
    firsts = [first["payload"] for first, _ in connections]
    assert max(start for start, _ in firsts) < min(end for _, end in firsts)  # all ran at the same time


async def test_thread_sensitive_runs_every_connection_on_the_one_shared_thread(server):
    connections = await served(f"{server}/ws/sync/serial/")
    spans = sorted(reply["payload"] for replies in connections for reply in replies)
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))  # never two at once
