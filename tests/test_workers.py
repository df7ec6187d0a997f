"""The worker pool of the async consumers: one warm thread while requests do not overlap."""

import asyncio
import threading
import time

import pytest
from django.test import override_settings

from django_channels_router import AsyncSocketRouterConsumer
from django_channels_router.testing import RouterCommunicator
from django_channels_router.workers import WorkerPool, worker_pool


def test_calls_that_do_not_overlap_run_on_the_same_thread():
    pool = WorkerPool(4)
    threads = {pool.submit(threading.get_ident).result(timeout=5) for _ in range(20)}
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_overlapping_calls_get_threads_up_to_the_limit_and_the_rest_wait():
    pool = WorkerPool(2)
    release, started, finished = threading.Event(), [], []
    lock = threading.Lock()

    def job(n):
        with lock:
            started.append((n, threading.get_ident()))
        release.wait(5)
        with lock:
            finished.append(n)
        return n

    futures = [pool.submit(job, n) for n in range(5)]
    deadline = time.monotonic() + 5
    while len(started) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert sorted(n for n, _ in started) == [0, 1]  # two threads busy (in either order), three calls waiting
    release.set()
    assert [future.result(timeout=5) for future in futures] == [0, 1, 2, 3, 4]
    assert sorted(n for n, _ in started) == [0, 1, 2, 3, 4]
    assert len({thread for _, thread in started}) == 2


def test_waiting_calls_run_in_the_order_they_were_submitted():
    pool = WorkerPool(1)
    release, order = threading.Event(), []
    first = pool.submit(release.wait, 5)
    futures = [pool.submit(order.append, n) for n in range(10)]
    release.set()
    first.result(timeout=5)
    for future in futures:
        future.result(timeout=5)
    assert order == list(range(10))


def test_a_failing_call_raises_for_its_caller_and_the_pool_goes_on():
    pool = WorkerPool(1)
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(timeout=5)
    assert pool.submit(lambda a, b=0: a + b, 1, b=2).result(timeout=5) == 3


def test_a_thread_that_cannot_start_fails_that_call_only(monkeypatch):
    pool = WorkerPool(1)
    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", lambda self: (_ for _ in ()).throw(RuntimeError("can't start new thread")))
        with pytest.raises(RuntimeError, match="can't start"):
            pool.submit(int)
    assert pool.submit(int, "7").result(timeout=5) == 7


def test_an_idle_thread_keeps_nothing_of_its_last_call():
    import gc
    import weakref

    class Result:
        pass

    pool = WorkerPool(1)
    result = pool.submit(Result).result(timeout=5)
    alive = weakref.ref(result)
    time.sleep(0.05)  # the thread has gone idle
    del result
    gc.collect()
    assert alive() is None


class ThreadReporter(AsyncSocketRouterConsumer):
    routes = [{"route": "thread"}]

    def on_thread(self, payload, headers):
        time.sleep(payload or 0)
        return {"payload": threading.get_ident()}


@pytest.mark.django_db(transaction=True)
async def test_sequential_sync_requests_of_an_async_consumer_are_served_by_one_thread():
    pool = worker_pool()
    while pool._busy:  # calls of other tests that a timeout gave up on may still run; wait for them
        await asyncio.sleep(0.05)
    comm = RouterCommunicator(ThreadReporter.as_asgi(), "/ws/")
    assert (await comm.connect())[0]
    # The pool grows to 3 threads: a connection's share when it alone has work is half the pool
    # (WORKER_THREADS is at least 5).
    overlapping = [await comm.send_request("thread", 0.2) for _ in range(3)]
    assert len({(await comm.receive_message())["payload"] for _ in overlapping}) == 3
    threads = {(await comm.request("thread"))["payload"] for _ in range(10)}
    await comm.disconnect()
    assert len(threads) == 1 and threading.get_ident() not in threads


@pytest.mark.parametrize("value", [0, "8", None])
def test_bad_worker_thread_counts_are_reported(value):
    from django_channels_router.checks import check_settings

    with override_settings(CHANNELS_ROUTER={"WORKER_THREADS": value}):
        errors = check_settings()
    assert [e.id for e in errors] == ["channels_router.E006"] and "WORKER_THREADS" in errors[0].msg


@pytest.mark.django_db(transaction=True)
async def test_waiting_worker_calls_cost_the_event_loop_no_timers(monkeypatch):
    # 40 calls queued behind the pool's threads (a change fanned out to many subscribers): none
    # of them sends anything, so none may keep a timer of its own ticking on the loop while it
    # waits (one each, every 50 ms, made the loop's work grow with the square of the calls).
    import asyncio

    from django_channels_router import run_in_worker

    loop = asyncio.get_running_loop()
    timers = 0
    call_later = loop.call_later

    def counting(*args, **kwargs):
        nonlocal timers
        timers += 1
        return call_later(*args, **kwargs)

    monkeypatch.setattr(loop, "call_later", counting)
    await asyncio.gather(*(run_in_worker(time.sleep, 0.05) for _ in range(40)))
    assert timers < 5
