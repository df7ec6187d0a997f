"""A client that stops reading, through real daphne and uvicorn: once MAX_PENDING_SEND_BYTES
wait for it (4 MiB in this server, 16 MiB by default), the server closes its connection with 1013
(4013 on daphne) and drops what waited, so its memory stays bounded, and a healthy client in the
same group gets every push of the flood.

Which code the slow client sees depends on its server. uvicorn waits for it to read its backlog
and the close frame behind it. daphne drops the connection 1 s after sending its close frame, so
a client that has not read the megabytes ahead of that frame by then sees no close frame (1006):
a reader too slow to catch up, and this test's client when the machine is loaded. The server's log says which
code it sent, and a close frame the client does get must carry it."""

import asyncio
import json
import re
import uuid
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import SERVER_ENV, SERVERS, free_port, server_process

LIMIT = 4 * 1024 * 1024  # MAX_PENDING_SEND_BYTES for this server
PUSHES, SIZE = 400, 64 * 1024  # 25 MiB of pushes to every member of the group, six times the limit
CLOSE_CODE = {"daphne": 4013, "uvicorn": 1013}


def rss(pid):
    """The resident memory of process ``pid``, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) * 1024


@pytest.fixture(params=["daphne", "uvicorn"])
def served(request, tmp_path):
    """A server process of its own (its memory is measured); (server name, ws:// URL, process, log)."""
    port, log = free_port(), tmp_path / "server.log"
    env = {**SERVER_ENV, "DATABASE_URL": "sqlite://:memory:",
           "TESTS_CHANNELS_ROUTER": json.dumps({"MAX_PENDING_SEND_BYTES": LIMIT})}
    with server_process(SERVERS[request.param](port, "tests.asgi:application"), port, log, env=env) as proc:
        yield request.param, f"ws://127.0.0.1:{port}", proc, log


async def call(ws, route, payload):
    await ws.send(json.dumps({"uuid": route, "route": route, "payload": payload}))
    return json.loads(await asyncio.wait_for(ws.recv(), 60))


async def logged(log, pattern):
    """The first line of the server's log that matches ``pattern``, once it is written."""
    while not (match := re.search(pattern, log.read_text())):
        await asyncio.sleep(0.02)
    return match[0]


async def closed_with(ws):
    """Read on until the connection closes; the close code the client got."""
    try:
        while True:
            await ws.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else 1006


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_client_that_stops_reading_is_closed_and_the_server_stays_bounded(served, kind):
    server, url, proc, log = served
    group = f"flood-{uuid.uuid4().hex[:8]}"
    consumer = f"{kind.capitalize()}ProtocolSocket"
    options = {"max_size": None, "ping_interval": None, "compression": None}  # uvicorn would deflate the flood to nothing
    async with connect(f"{url}/ws/{kind}/", **options) as healthy, \
            connect(f"{url}/ws/{kind}/", max_queue=1, **options) as slow, \
            connect(f"{url}/ws/{kind}/", **options) as sender:
        for member in (healthy, slow):
            assert (await call(member, "join", group))["status"] == 200
        # slow reads nothing more: once its client's buffers are full, the server holds the rest
        before = peak = rss(proc.pid)
        flood = asyncio.create_task(call(sender, "flood", {"group": group, "count": PUSHES, "size": SIZE}))

        async def slow_client_closed():
            line = await logged(log, rf"Closing {consumer} of user \S+ with {CLOSE_CODE[server]}: \d+ bytes waited.*")
            return line, await closed_with(slow)  # reads at once: daphne drops the connection 1 s after its close

        closing = asyncio.create_task(slow_client_closed())
        numbers = []
        while len(numbers) < PUSHES:
            push = json.loads(await asyncio.wait_for(healthy.recv(), 60))
            numbers.append(push["payload"]["n"])
            peak = max(peak, rss(proc.pid))
        assert numbers == list(range(PUSHES))  # the healthy client got every push, in order
        assert (await flood)["status"] == 204
        line, code = await asyncio.wait_for(closing, 30)
    # The server closed it with its code; the client got that code, or no close frame from daphne (above).
    assert code in ((CLOSE_CODE[server], 1006) if server == "daphne" else (CLOSE_CODE[server],)), line
    # what waited for the slow client was dropped: far from the 25 MiB it was sent
    assert peak - before < 2 * LIMIT, f"the server grew by {(peak - before) / 2**20:.1f} MiB"
