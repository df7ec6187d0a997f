"""No connection takes more than its share: of the worker pool when others wait, and of time
when a request never finishes (REQUEST_TIMEOUT)."""

import asyncio
import json
import threading
import time
from collections import defaultdict

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from websockets.asyncio.client import connect

from django_channels_router.conf import timeout
from django_channels_router.testing import RouterCommunicator
from django_channels_router.workers import WorkerPool, worker_owner
from tests.consumers import TimedSocket

pytestmark = pytest.mark.timeout(60)


def submit_as(pool, owner, fn, *args):
    token = worker_owner.set(owner)
    try:
        return pool.submit(fn, *args)
    finally:
        worker_owner.reset(token)


def test_one_connection_never_holds_every_thread_and_waiting_connections_take_turns():
    pool, order, gates = WorkerPool(3), [], defaultdict(threading.Event)

    def job(name):
        order.append(name)
        gates[name].wait(5)
        return name

    def started(count):
        deadline = time.monotonic() + 5
        while len(order) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)  # and no more than that
        return order

    def finish(name, then_started):
        gates[name].set()
        return started(then_started)[-1]

    hog = [submit_as(pool, "a", job, f"a{n}") for n in range(6)]
    assert sorted(started(2)) == ["a0", "a1"]  # two of three threads: the third is kept for someone else
    other = submit_as(pool, "b", job, "b0")
    assert started(3)[2] == "b0"  # at once, though six of a's calls came first
    later = [submit_as(pool, "b", job, "b1"), submit_as(pool, "c", job, "c0")]
    assert len(started(3)) == 3
    # As threads free up, the waiting connections take turns: c does not wait behind all of a.
    assert [finish("a0", 4), finish("a1", 5), finish("b0", 6)] == ["a2", "b1", "c0"]
    for name in gates.copy():
        gates[name].set()
    for n in range(3, 6):
        gates[f"a{n}"].set()
    assert [f.result(5) for f in [*hog, other, *later]] == [*(f"a{n}" for n in range(6)), "b0", "b1", "c0"]


@pytest.mark.parametrize("server", ["daphne_server", "uvicorn_server"])
async def test_slow_requests_of_one_connection_never_hold_up_another(request, server):
    url = f"{request.getfixturevalue(server)}/ws/limits/async/"
    async with connect(url) as hog, connect(url) as other:
        for n in range(16):  # as many as a connection may run, each holding a pool thread for 1.5 s
            await hog.send(json.dumps({"uuid": n, "route": "slowSync", "payload": 1.5}))
        await asyncio.sleep(0.3)
        sent = time.monotonic()
        await other.send(json.dumps({"uuid": "quick", "route": "slowSync", "payload": 0}))
        quick = json.loads(await asyncio.wait_for(other.recv(), 30))
        waited = time.monotonic() - sent
        assert quick["uuid"] == "quick" and quick["status"] == 200
        # Served before any slow one finished (1.2 s from now); it waited behind ten of them before.
        assert waited < 1.0, f"waited {waited:.2f} s"
        replies = [json.loads(await asyncio.wait_for(hog.recv(), 30)) for _ in range(16)]
        assert sorted(r["uuid"] for r in replies) == list(range(16))


async def connected(consumer):
    comm = RouterCommunicator(consumer.as_asgi(), "/ws/", user=AnonymousUser())
    assert (await comm.connect())[0]
    return comm


@pytest.mark.parametrize("route", ["slow", "slowSync"])
async def test_a_request_past_its_timeout_is_504_and_frees_its_place(route):
    comm = await connected(TimedSocket)
    # As many as may run and wait (4 + 8): before, requests that never finished kept them all.
    uuids = [await comm.send_request(route, 1) for _ in range(12)]
    replies = [await comm.receive_message(timeout=3) for _ in uuids]
    assert sorted(r["uuid"] for r in replies) == sorted(uuids)
    assert {(r["status"], r["payload"]["code"]) for r in replies} == {(504, "request_timeout")}
    assert (await comm.request("echo", "next"))["status"] == 200  # served, not 429
    await comm.disconnect()


@pytest.mark.parametrize("value", [0, -1, "5", True, float("inf")])
def test_request_timeout_must_be_a_positive_number(value):
    with override_settings(CHANNELS_ROUTER={"REQUEST_TIMEOUT": value}), pytest.raises(ImproperlyConfigured):
        timeout(None)
