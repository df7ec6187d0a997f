"""Frames a server refuses to send, through real daphne and uvicorn: a connection is never left
open without being served.

daphne sends no message over its ``--websocket-max-message-size`` (1 MiB by default) and no close
code outside 1000 and 3000-4999; uvicorn sends both. A reply daphne refuses becomes a 500
``reply_too_large``; a subscription's push becomes a ``resync``; any other push closes the
connection with 4011; a refused close code goes out as its 4xxx twin, also when a middleware hides
daphne from the router by wrapping ``send`` in a closure. A client that reads is never closed as
slow; one that reads nothing is, after ``SLOW_CLIENT_TIMEOUT``.
"""

import asyncio
import json
import shutil
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import SERVER_ENV, SERVERS, free_port, server_process

LARGE = 1_100_000  # over daphne's default 1 MiB per message
APPLICATIONS = {
    "daphne": ("daphne", "tests.asgi:application"),
    "daphne-hidden": ("daphne", "tests.asgi:hidden_send_application"),  # a middleware hides daphne's send
    "uvicorn": ("uvicorn", "tests.asgi:application"),
}
OPTIONS = {"max_size": None, "ping_interval": None, "compression": None}


@pytest.fixture(scope="module", params=list(APPLICATIONS))
def served(request, migrated, tmp_path_factory):
    """(setup name, ws:// URL, log path) of a server of its own on a copy of the database."""
    server, application = APPLICATIONS[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    database, port, log = folder / "db.sqlite3", free_port(), folder / "server.log"
    shutil.copy(migrated, database)
    env = {**SERVER_ENV, "DATABASE_URL": f"sqlite:///{database}"}
    with server_process(SERVERS[server](port, application), port, log, env=env):
        yield request.param, f"ws://127.0.0.1:{port}", log


def refuses_large(setup):
    return setup.startswith("daphne")


async def call(ws, route, payload=None):
    request_id = uuid.uuid4().hex
    await ws.send(json.dumps({"uuid": request_id, "route": route, "payload": payload}))
    while (message := json.loads(await asyncio.wait_for(ws.recv(), 30)))["uuid"] != request_id:
        pass  # a push
    return message


async def closed_with(ws):
    """Read on until the connection closes: the messages it got, and the close code."""
    messages = []
    try:
        while True:
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
    except ConnectionClosed as exc:
        return messages, exc.rcvd.code if exc.rcvd else 1006


async def serves_on(ws):
    await ws.send(json.dumps({"uuid": "hb", "route": "PING"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["route"] == "PONG"
    assert (await call(ws, "echo", {"still": "served"}))["payload"]["payload"] == {"still": "served"}


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_reply_larger_than_the_server_sends_is_answered_and_the_connection_serves_on(served, kind):
    setup, url, _ = served
    async with connect(f"{url}/ws/{kind}/", **OPTIONS) as ws:
        reply = await call(ws, "big", LARGE)
        if refuses_large(setup):
            assert (reply["status"], reply["payload"]["code"], reply["route"]) == (500, "reply_too_large", "big")
            assert "1048576" in reply["payload"]["detail"] and "websocket-max-message-size" in reply["payload"]["detail"]
        else:
            assert (reply["status"], len(reply["payload"])) == (200, LARGE)
        await serves_on(ws)


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("how", ["push", "broadcast"])
async def test_a_push_larger_than_the_server_sends_closes_the_connection_with_1011(served, kind, how):
    setup, url, log = served
    async with connect(f"{url}/ws/{kind}/", **OPTIONS) as ws:
        if how == "push":
            await ws.send(json.dumps({"uuid": "p", "route": "pushBig", "payload": LARGE}))
        else:
            group = f"large-{uuid.uuid4().hex[:8]}"
            assert (await call(ws, "join", group))["status"] == 200
            await ws.send(json.dumps({"uuid": "p", "route": "flood", "payload": {"group": group, "count": 1,
                                                                               "size": LARGE}}))
        if refuses_large(setup):
            _, code = await closed_with(ws)
            assert code == 4011  # not left open and unserved
            assert "closing the connection with 1011" in log.read_text()
        else:
            got = {(m := json.loads(await asyncio.wait_for(ws.recv(), 30)))["uuid"] == "p": m for _ in range(2)}
            pushed = got[False]  # and the request's own reply, got[True]
            assert got[True]["status"] == 204
            assert len(pushed["payload"] if how == "push" else pushed["payload"]["fill"]) == LARGE
            await serves_on(ws)


async def test_a_subscription_push_larger_than_the_server_sends_becomes_a_resync(served):
    setup, url, _ = served
    async with connect(f"{url}/ws/articles/large/", **OPTIONS) as ws:
        subscribed = await call(ws, "subscribe")
        assert subscribed["status"] == 201
        assert (await call(ws, "writeLarge", LARGE))["status"] == 204
        push = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert push["headers"]["subscription"] == subscribed["payload"]["subscription"]
        assert push["headers"]["seq"] == 1  # in the place of the push it stands for: no gap
        if refuses_large(setup):
            assert (push["route"], push["payload"]["reason"]) == ("resync", "a push was too large to send")
        else:
            assert (push["route"], len(push["payload"]["body"])) == ("created", LARGE)
        await ws.send(json.dumps({"uuid": "hb", "route": "PING"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["route"] == "PONG"


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("code", [1011, 1013])
async def test_a_close_code_daphne_refuses_goes_out_as_its_twin(served, kind, code):
    setup, url, _ = served
    async with connect(f"{url}/ws/{kind}/", **OPTIONS) as ws:
        await ws.send(json.dumps({"uuid": "c", "route": "closeWith", "payload": code}))
        _, received = await closed_with(ws)
    assert received == (code + 3000 if setup.startswith("daphne") else code)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_client_that_reads_slowly_is_never_closed_as_slow(served, kind):
    """10 MiB of pushes in a burst to a client that takes 20 ms over each: far more than the old
    4 MiB bound waits for it, but it makes progress all along, so it gets every push."""
    _, url, _ = served
    group = f"burst-{uuid.uuid4().hex[:8]}"
    async with connect(f"{url}/ws/{kind}/", max_queue=1, **OPTIONS) as reader, \
            connect(f"{url}/ws/{kind}/", **OPTIONS) as sender:
        assert (await call(reader, "join", group))["status"] == 200
        await sender.send(json.dumps({"uuid": "f", "route": "flood", "payload": {"group": group, "count": 40,
                                                                               "size": 256 * 1024}}))
        numbers = []
        for _ in range(40):
            numbers.append(json.loads(await asyncio.wait_for(reader.recv(), 30))["payload"]["n"])
            await asyncio.sleep(0.02)  # the client's own work on each message
        assert numbers == list(range(40))
        await serves_on(reader)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_client_that_reads_nothing_is_closed_after_the_slow_client_timeout(served, kind):
    """10 MiB waits for a client that stopped reading: under the 16 MiB cap, but it makes no
    progress, so after SLOW_CLIENT_TIMEOUT (1 s on this consumer) the connection is closed."""
    setup, url, log = served
    if setup == "daphne-hidden":
        pytest.skip("through a closure the router cannot see daphne's buffer, which takes everything")
    group = f"stall-{uuid.uuid4().hex[:8]}"
    close_code = 1013 + 3000 * setup.startswith("daphne")
    consumer = f"Impatient{kind.capitalize()}Socket"
    async with connect(f"{url}/ws/impatient/{kind}/", max_queue=1, **OPTIONS) as stalled, \
            connect(f"{url}/ws/{kind}/", **OPTIONS) as sender:
        assert (await call(stalled, "join", group))["status"] == 200
        started = asyncio.get_running_loop().time()
        flood = await call(sender, "flood", {"group": group, "count": 40, "size": 256 * 1024})
        assert flood["status"] == 204
        while f"Closing {consumer}" not in log.read_text():
            assert asyncio.get_running_loop().time() - started < 20, "the stalled client was never closed"
            await asyncio.sleep(0.05)
        _, code = await closed_with(stalled)
    assert f"Closing {consumer} of user AnonymousUser with {close_code}: the client read nothing for" in log.read_text()
    # The client reads the megabytes its buffers held before the close frame; daphne drops a
    # connection whose client has not answered its close within 1 s (autobahn), which a loaded
    # machine can take: then the client sees 1006 after the close the log names.
    assert code == close_code or (setup == "daphne" and code == 1006), code
