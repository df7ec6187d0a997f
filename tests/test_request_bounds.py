"""What requests not yet answered may hold: the JSON values of one message (MAX_MESSAGE_VALUES),
their bytes on one connection (MAX_CONNECTION_REQUEST_BYTES) and in the whole process
(MAX_PROCESS_REQUEST_BYTES). A frame of ``[{},{},...]`` is 24 times larger once parsed, and
permessage-deflate makes it cost almost nothing on the wire, so counting requests is no bound."""

import asyncio
import json
import os

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import override_settings
from websockets.asyncio.client import connect

from django_channels_router.checks import check_settings
from django_channels_router.conf import process_requests
from django_channels_router.protocol import VALUE_BYTES
from django_channels_router.testing import RouterCommunicator
from tests.conftest import ROOT, SERVERS, free_port, server_process
from tests.consumers import AsyncProtocolSocket, SyncProtocolSocket
from tests.test_slow_readers import rss

pytestmark = pytest.mark.timeout(120)


class FewValues(AsyncProtocolSocket):
    max_message_values = 10


class SmallBudget(AsyncProtocolSocket):
    max_message_bytes = 65536
    max_connection_request_bytes = 4000


class SyncSmallBudget(SyncProtocolSocket):
    max_message_bytes = 65536
    max_connection_request_bytes = 4000


async def connected(consumer):
    comm = RouterCommunicator(consumer.as_asgi(), "/ws/", user=AnonymousUser())
    assert (await comm.connect())[0]
    return comm


async def send(comm, uuid, route, payload):
    await comm.send_to(text_data=json.dumps({"uuid": uuid, "route": route, "payload": payload}))


def hold(seconds, size):
    """A payload that keeps its request for ``seconds`` and weighs about ``size`` bytes."""
    return {"seconds": seconds, "fill": "x" * size}


async def replies(comm, count, timeout=5):
    found = [await comm.receive_message(timeout=timeout) for _ in range(count)]
    return {r["uuid"]: (r["status"], (r["payload"] or {}).get("code")) for r in found}


async def held_nothing():
    """Every request answered has given back what it held (done callbacks run a turn later)."""
    for _ in range(100):
        if process_requests.held == 0:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_message_with_more_values_than_allowed_is_413_before_it_is_parsed():
    comm = await connected(FewValues)
    # The envelope is an object of 3 members (4 values); the payload adds its own.
    await send(comm, "ok", "echo", [1, 2, 3, 4, 5, 6])
    assert (await comm.receive_message())["status"] == 200
    await send(comm, "over", "echo", [1, 2, 3, 4, 5, 6, 7])
    reply = await comm.receive_message()
    assert (reply["uuid"], reply["status"], reply["payload"]["code"]) == (None, 413, "too_many_values")
    assert "10 JSON values" in reply["payload"]["detail"]
    # Commas and brackets inside strings are not values.
    await send(comm, "text", "echo", "[1, 2, 3, {4: 5}, 6, 7, 8, 9, 10, 11]")
    assert (await comm.receive_message())["status"] == 200
    await comm.disconnect()


@pytest.mark.parametrize("consumer", [SmallBudget, SyncSmallBudget])
async def test_a_request_larger_than_the_connection_budget_is_served_when_it_holds_nothing(consumer):
    comm = await connected(consumer)
    await send(comm, "big", "hold", hold(0, 20_000))
    assert (await comm.receive_message())["status"] == 204
    await comm.disconnect()
    assert await held_nothing()


async def test_requests_past_the_connection_budget_are_429_until_some_are_answered():
    comm = await connected(SmallBudget)
    await send(comm, "first", "hold", hold(0.5, 1500))  # about 2 KB each with its values
    await send(comm, "second", "hold", hold(0.5, 1500))
    assert await replies(comm, 1) == {"second": (429, "too_many_requests")}
    assert process_requests.held > 1500
    await send(comm, "ping", "PING", None)  # never held, never refused
    assert (await comm.receive_message())["route"] == "PONG"
    assert await replies(comm, 1) == {"first": (204, None)}
    await send(comm, "third", "hold", hold(0, 1500))
    assert await replies(comm, 1) == {"third": (204, None)}
    await comm.disconnect()
    assert await held_nothing()


async def test_requests_past_the_process_budget_are_503_with_retry_after_until_some_are_answered():
    with override_settings(CHANNELS_ROUTER={"MAX_PROCESS_REQUEST_BYTES": 4000}):
        one, other = await connected(AsyncProtocolSocket), await connected(SyncProtocolSocket)
        await send(one, "one", "hold", hold(0.5, 2500))
        await asyncio.sleep(0.1)
        await send(other, "other", "hold", hold(0, 2500))
        reply = await other.receive_message()
        assert (reply["status"], reply["payload"]["code"], reply["headers"]) == (503, "server_busy", {"Retry-After": "1"})
        assert await replies(one, 1) == {"one": (204, None)}
        await send(other, "again", "hold", hold(0, 2500))
        assert await replies(other, 1) == {"again": (204, None)}
        await one.disconnect()
        await other.disconnect()
    assert await held_nothing()


async def test_requests_cancelled_by_a_disconnect_give_back_what_they_held():
    comm = await connected(AsyncProtocolSocket)
    for n in range(12):  # 4 running, 8 waiting: most are cancelled before they begin
        await send(comm, n, "hold", hold(5, 100))
    await asyncio.sleep(0.1)
    assert process_requests.held > 12 * 100
    await comm.disconnect()
    assert await held_nothing()


@pytest.mark.parametrize("name", ["MAX_MESSAGE_VALUES", "MAX_CONNECTION_REQUEST_BYTES", "MAX_PROCESS_REQUEST_BYTES"])
@pytest.mark.parametrize("value", [0, "8", None])
def test_bad_request_bounds_are_reported(name, value):
    with override_settings(CHANNELS_ROUTER={name: value}):
        errors = check_settings()
    assert [e.id for e in errors] == ["channels_router.E006"] and name in errors[0].msg


# Through a real uvicorn, which negotiates permessage-deflate: each frame below costs about 1 KB
# on the wire and about 7 MiB of Python objects once parsed.

FRAMES_PER_CONNECTION, CONNECTIONS = 12, 4
PROCESS_LIMIT = 32 * 1_048_576


def objects_frame(uuid, count):
    payload = "[" + ",".join(["{}"] * count) + "]"
    return f'{{"uuid":{uuid},"route":"hold","payload":{{"seconds":30,"fill":{payload}}}}}'


@pytest.fixture
def uvicorn_of_its_own(tmp_path):
    """A uvicorn whose memory is measured, with a process budget of 32 MiB."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'testproject'}",
           "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": "sqlite://:memory:",
           "TESTS_CHANNELS_ROUTER": json.dumps({"MAX_PROCESS_REQUEST_BYTES": PROCESS_LIMIT})}
    with server_process(SERVERS["uvicorn"](port, "tests.asgi:application"), port, tmp_path / "server.log",
                        env=env) as proc:
        yield f"ws://127.0.0.1:{port}", proc


async def test_deflated_frames_waiting_behind_a_slow_route_keep_the_server_bounded(uvicorn_of_its_own):
    url, proc = uvicorn_of_its_own
    values = 99_000  # just within MAX_MESSAGE_VALUES (100,000)
    weight = len(objects_frame(0, values)) + VALUE_BYTES * values
    sockets = [await connect(f"{url}/ws/limits/async/", max_size=None) for _ in range(CONNECTIONS)]
    try:
        assert sockets[0].protocol.extensions, "the frames must be compressed"
        before = peak = rss(proc.pid)
        for n, ws in enumerate(sockets):
            for i in range(FRAMES_PER_CONNECTION):
                await ws.send(objects_frame(n * 100 + i, values))
                peak = max(peak, rss(proc.pid))
            await ws.send(objects_frame(n * 100 + 99, 349_000))  # refused before it is parsed
        codes, admitted = set(), []
        for ws in sockets:
            refused = 0
            while True:  # the refusals come at once; the admitted requests hold for 30 s
                try:
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 3))
                except TimeoutError:
                    break
                codes.add((reply["status"], reply["payload"]["code"]))
                refused += 1
            admitted.append(FRAMES_PER_CONNECTION + 1 - refused)
            peak = max(peak, rss(proc.pid))
        assert codes == {(413, "too_many_values"), (429, "too_many_requests"), (503, "server_busy")}, codes
        assert max(admitted) <= max(1, 16 * 1_048_576 // weight), admitted  # MAX_CONNECTION_REQUEST_BYTES
        assert 1 <= sum(admitted) <= max(1, PROCESS_LIMIT // weight), admitted
    finally:
        for ws in sockets:
            await ws.close()
    # What the admitted requests hold (32 MiB at most) and one frame being parsed: far from the
    # 48 x 7 MiB they would hold unbounded.
    assert peak - before < 80 * 1_048_576, f"the server grew by {(peak - before) / 2**20:.1f} MiB"
