"""The threads that run sync hydrates, handlers and dehydrates for the async consumers."""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from queue import SimpleQueue
from typing import Any

from .conf import limit

__all__ = ["WorkerPool", "worker_pool"]

Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class WorkerPool(Executor):
    """A thread pool that gives each call to the thread that went idle last.

    ``ThreadPoolExecutor`` wakes whichever idle thread its queue picks, so consecutive requests
    run on different threads, each with its own database connection and cold CPU caches; here
    one warm thread serves requests that do not overlap, and more threads start only when
    requests do overlap, up to ``max_workers``. Calls beyond that wait in order.
    """

    def __init__(self, max_workers: int, name: str = "channels-router") -> None:
        self.max_workers, self.name = max_workers, name
        self._idle: list[SimpleQueue[Job]] = []  # a stack: the last thread to go idle is on top
        self._waiting: deque[Job] = deque()
        self._threads = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if kwargs:
            args, fn = (), functools.partial(fn, *args, **kwargs)
        job: Job = (Future(), fn, args)
        with self._lock:
            if self._idle:
                inbox = self._idle.pop()
            elif self._threads < self.max_workers:
                inbox = SimpleQueue()
                threading.Thread(target=self._work, args=(inbox,), name=f"{self.name}-{self._threads + 1}",
                                 daemon=True).start()  # raises for the caller if no thread can start
                self._threads += 1
            else:
                self._waiting.append(job)
                return job[0]
        inbox.put(job)
        return job[0]

    def _work(self, inbox: SimpleQueue[Job]) -> None:
        job: Job | None = inbox.get()
        while job is not None:
            future, fn, args = job
            outcome: tuple[Any, BaseException | None] | None = None
            if future.set_running_or_notify_cancel():
                try:
                    outcome = fn(*args), None
                except BaseException as exc:  # the caller gets it, as from ThreadPoolExecutor
                    outcome = None, exc
            # Back on the idle stack before the caller hears of the result, so the caller's next
            # call finds this thread on top (a new call simply waits in this thread's inbox).
            with self._lock:
                job = self._waiting.popleft() if self._waiting else None
                if job is None:
                    self._idle.append(inbox)
            if outcome is not None:
                _settle(future, *outcome)
            del future, fn, args, outcome  # an idle thread keeps nothing of its last call alive
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
