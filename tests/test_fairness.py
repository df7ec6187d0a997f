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


class Calls:
    """Calls that each block until released by name, and the order they started in."""

    def __init__(self, pool):
        self.pool, self.order, self.gates, self.all = pool, [], defaultdict(threading.Event), threading.Event()

    def submit(self, owner, name):
        def job():
            self.order.append(name)
            deadline = time.monotonic() + 5
            while not (self.gates[name].is_set() or self.all.is_set()) and time.monotonic() < deadline:
                time.sleep(0.002)
            return name

        return submit_as(self.pool, owner, job)

    def started(self, count):
        """Once ``count`` calls started (and no more started within 50 ms): their names."""
        deadline = time.monotonic() + 5
        while len(self.order) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
        return list(self.order)

    def finish(self, name, then_started):
        """Release ``name``; the call that started in its place."""
        self.gates[name].set()
        return self.started(then_started)[-1]

    def release_all(self, futures):
        self.all.set()
        return [future.result(5) for future in futures]


def test_shares_shrink_as_more_connections_have_work():
    pool = WorkerPool(6)
    assert pool.share() == 5  # nobody has work
    calls, futures = Calls(pool), []
    for n, owner in enumerate("abcd", 1):
        futures.append(calls.submit(owner, f"{owner}0"))
        # five threads (one is kept), split between the owners with work and one more, rounded up
        assert pool.share() == [3, 2, 2, 1][n - 1], owner
    calls.release_all(futures)
    time.sleep(0.05)
    assert pool.share() == 5


def test_a_connection_that_comes_while_two_flood_the_pool_starts_at_once():
    pool = WorkerPool(6)
    calls = Calls(pool)
    a = [calls.submit("a", f"a{n}") for n in range(16)]
    assert sorted(calls.started(3)) == ["a0", "a1", "a2"]  # half the pool: room is left for others
    b = [calls.submit("b", f"b{n}") for n in range(16)]
    assert sorted(calls.started(5)[3:]) == ["b0", "b1"]  # b's share; the sixth thread is kept
    c = calls.submit("c", "c0")
    assert calls.started(6)[5] == "c0"  # at once, though 29 calls of a and b wait
    d = calls.submit("d", "d0")
    assert len(calls.started(6)) == 6  # no thread is free
    # The first thread to free up goes to d, which has nothing running, not to a or b.
    assert calls.finish("a0", 7) == "d0"
    # a and b hold two each, their share now that three connections have work; the last
    # thread stays kept for a connection with nothing running.
    calls.gates["c0"].set()
    assert len(calls.started(7)) == 7
    assert calls.release_all([*a, *b, c, d]) == [*(f"a{n}" for n in range(16)), *(f"b{n}" for n in range(16)),
                                                 "c0", "d0"]


def test_waiting_connections_take_turns():
    pool = WorkerPool(3)  # a share of one thread each once two connections have work
    calls = Calls(pool)
    a = [calls.submit("a", f"a{n}") for n in range(4)]
    assert calls.started(1) == ["a0"]
    b = [calls.submit("b", f"b{n}") for n in range(4)]
    c = [calls.submit("c", f"c{n}") for n in range(4)]
    first, *then = calls.started(3)
    assert (first, sorted(then)) == ("a0", ["b0", "c0"])  # b0 and c0 start at once, in either order
    # Each thread that frees up serves the next connection in turn, not the one that came first.
    assert [calls.finish(name, n) for n, name in enumerate(["a0", "b0", "c0", "a1", "b1", "c1"], 4)] == \
        ["a1", "b1", "c1", "a2", "b2", "c2"]
    calls.release_all([*a, *b, *c])


def test_a_cancelled_waiting_call_leaves_the_queue_at_once_with_its_arguments():
    import gc
    import weakref

    class Payload:
        pass

    pool = WorkerPool(1)
    calls = Calls(pool)
    running = calls.submit("a", "busy")
    assert calls.started(1) == ["busy"]
    payloads = [Payload() for _ in range(100)]
    alive = [weakref.ref(p) for p in payloads]
    waiting = [submit_as(pool, "a", id, p) for p in payloads]
    assert pool.queued() == 100
    del payloads
    for future in waiting:
        assert future.cancel()
    assert pool.queued() == 0  # before any thread frees up
    gc.collect()
    assert not any(ref() for ref in alive)
    later = submit_as(pool, "b", lambda: "served")
    calls.release_all([running])
    assert later.result(5) == "served"
    assert not any(future.running() or future.done() and not future.cancelled() for future in waiting)


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


async def flood_pool(url, connections, seconds):
    """``connections`` connections, each sending as many slow sync requests as it may run (16),
    each holding a pool thread for ``seconds``."""
    floods = [await connect(url) for _ in range(connections)]
    for n, ws in enumerate(floods):
        for i in range(16):
            await ws.send(json.dumps({"uuid": n * 100 + i, "route": "slowSync", "payload": seconds}))
        await asyncio.sleep(0.2)
    return floods


async def newcomer_timings(url):
    """A new connection's handshake time, its first reply, and the time to that reply."""
    started = time.monotonic()
    async with connect(url) as newcomer:
        handshake = time.monotonic() - started
        await newcomer.send(json.dumps({"uuid": "first", "route": "slowSync", "payload": 0}))
        reply = json.loads(await asyncio.wait_for(newcomer.recv(), 30))
        return handshake, reply, time.monotonic() - started


@pytest.mark.parametrize("server", ["daphne_server", "uvicorn_server"])
async def test_two_connections_flooding_the_pool_do_not_hold_up_a_third(request, server):
    url = f"{request.getfixturevalue(server)}/ws/limits/async/"
    floods = await flood_pool(url, connections=2, seconds=3)
    try:
        handshake, reply, first = await newcomer_timings(url)
        assert reply["status"] == 200
        # Both before any slow call ended (2.6 s from now): the handshake needs no thread, and a
        # thread was left for a connection with nothing running.
        assert handshake < 1.0 and first < 1.0, f"handshake {handshake:.2f} s, first reply {first:.2f} s"
    finally:
        for ws in floods:  # their waiting calls leave the pool with them
            await ws.close()


@pytest.mark.parametrize("server", ["daphne_server", "uvicorn_server"])
async def test_requests_past_their_timeout_do_not_pile_up_in_the_pool(request, server):
    base = request.getfixturevalue(server)
    async with connect(f"{base}/ws/limits/timed/") as flood, connect(f"{base}/ws/limits/async/") as monitor:
        queued, sent, answered = [], 0, 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            while sent - answered < 16:  # as many as may run; each is answered 504 after 0.2 s
                await flood.send(json.dumps({"uuid": sent, "route": "slowSync", "payload": 2}))
                sent += 1
            reply = json.loads(await asyncio.wait_for(flood.recv(), 10))
            assert (reply["status"], reply["payload"]["code"]) == (504, "request_timeout")
            answered += 1
            if answered % 16 == 0:
                await monitor.send(json.dumps({"uuid": answered, "route": "poolQueued"}))
                queued.append(json.loads(await asyncio.wait_for(monitor.recv(), 10))["payload"])
    assert answered > 100 and queued
    # What waits is what the connection's running requests (16 at most) still await; before,
    # every request that timed out left its call queued, a hundred more every second.
    assert max(queued) <= 16, queued


@pytest.mark.parametrize("server", ["daphne_server", "uvicorn_server"])
async def test_a_handshake_needs_no_thread_even_when_every_thread_is_busy(request, server):
    url = f"{request.getfixturevalue(server)}/ws/limits/async/"
    floods = await flood_pool(url, connections=3, seconds=2)  # 3 + 2 + 1 threads: all of a 6-thread pool
    try:
        handshake, reply, first = await newcomer_timings(url)
        # The default check_connect runs on the event loop; the first request takes the first
        # thread to free up (the first slow call ends 1.4 s from now), ahead of the floods'.
        assert handshake < 0.5, f"handshake {handshake:.2f} s"
        assert reply["status"] == 200 and first < 2.5, f"first reply {first:.2f} s"
    finally:
        for ws in floods:
            await ws.close()
