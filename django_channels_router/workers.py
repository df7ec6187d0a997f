"""The threads that run sync hydrates, handlers and dehydrates for the async consumers."""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future
from contextvars import ContextVar
from queue import SimpleQueue
from typing import Any

from .conf import limit

__all__ = ["WorkerPool", "worker_pool", "worker_owner"]

Job = tuple[Hashable, Future[Any], Callable[..., Any], tuple[Any, ...]]

#: Who a call is made for: the connection (set by the consumer for all its tasks), or None.
worker_owner: ContextVar[Hashable] = ContextVar("django_channels_router_owner", default=None)


class WorkerPool(Executor):
    """A thread pool that gives each call to the thread that went idle last, and shares its
    threads fairly between connections.

    ``ThreadPoolExecutor`` wakes whichever idle thread its queue picks, so consecutive requests
    run on different threads, each with its own database connection and cold CPU caches; here
    one warm thread serves requests that do not overlap, and more threads start only when
    requests do overlap, up to ``max_workers``.

    Calls are grouped by :data:`worker_owner`. One connection never holds more than
    ``max_workers - 1`` threads, so another connection's call finds a thread at once however
    many slow calls the first one makes; calls beyond that wait, and a thread that frees up
    serves the waiting connections in turn (round robin), not in the order calls came.
    Calls made outside a connection (owner None) have no such share.
    """

    def __init__(self, max_workers: int, name: str = "channels-router") -> None:
        self.max_workers, self.name = max_workers, name
        self.share = max(1, max_workers - 1)
        self._idle: list[SimpleQueue[Job | None]] = []  # a stack: the last thread to go idle is on top
        self._waiting: dict[Hashable, deque[Job]] = {}  # per owner, in turn order
        self._running: dict[Hashable, int] = {}
        self._threads = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if kwargs:
            args, fn = (), functools.partial(fn, *args, **kwargs)
        owner = worker_owner.get()
        job: Job = (owner, Future(), fn, args)
        with self._lock:
            inbox: SimpleQueue[Job | None] | None = None
            if self._may_start(owner):
                if self._idle:
                    inbox = self._idle.pop()
                elif self._threads < self.max_workers:
                    inbox = SimpleQueue()
                    threading.Thread(target=self._work, args=(inbox,), name=f"{self.name}-{self._threads + 1}",
                                     daemon=True).start()  # raises for the caller if no thread can start
                    self._threads += 1
            if inbox is None:
                self._waiting.setdefault(owner, deque()).append(job)
                return job[1]
            self._running[owner] = self._running.get(owner, 0) + 1
        inbox.put(job)
        return job[1]

    def _may_start(self, owner: Hashable) -> bool:
        return owner is None or self._running.get(owner, 0) < self.share

    def _next_job(self) -> Job | None:
        """The next waiting call, under the lock: the first owner in turn that is within its
        share goes, and moves to the back of the turn."""
        for owner in list(self._waiting):
            if self._may_start(owner):
                jobs = self._waiting.pop(owner)
                job = jobs.popleft()
                if jobs:
                    self._waiting[owner] = jobs
                self._running[owner] = self._running.get(owner, 0) + 1
                return job
        return None

    def _work(self, inbox: SimpleQueue[Job | None]) -> None:
        job = inbox.get()
        while job is not None:
            owner, future, fn, args = job
            outcome: tuple[Any, BaseException | None] | None = None
            if future.set_running_or_notify_cancel():
                try:
                    outcome = fn(*args), None
                except BaseException as exc:  # the caller gets it, as from ThreadPoolExecutor
                    outcome = None, exc
            # Back on the idle stack before the caller hears of the result, so the caller's next
            # call finds this thread on top (a new call simply waits in this thread's inbox).
            with self._lock:
                left = self._running[owner] = self._running[owner] - 1
                if not left:
                    del self._running[owner]
                job = self._next_job()
                if job is None:
                    self._idle.append(inbox)
            if outcome is not None:
                _settle(future, *outcome)
            del future, fn, args, outcome, owner  # an idle thread keeps nothing of its last call alive
            if job is None:
                job = inbox.get()


def _settle(future: Future[Any], result: Any, error: BaseException | None) -> None:
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def worker_pool() -> WorkerPool:
    """The process's pool, sized by ``settings.CHANNELS_ROUTER["WORKER_THREADS"]`` on first use."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = WorkerPool(limit("WORKER_THREADS", None))
    return _pool
