"""Worker threads: where sync hydrates, handlers and dehydrates run, and how their sends reach the loop.

- :class:`WorkerPool` and :func:`worker_pool`: the threads, shared fairly between connections;
- :func:`run_in_worker` and :func:`call_sync`: the only ways the router calls sync code from the
  event loop, and any code from a worker thread;
- :class:`WorkerSends` and :func:`send_soon`: channel-layer sends a worker thread asks its event
  loop to start, so that a worker never waits on the channel layer.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Executor, Future
from contextvars import ContextVar
from queue import SimpleQueue
from typing import Any
from weakref import WeakKeyDictionary

from asgiref.sync import async_to_sync, sync_to_async
from django.db import close_old_connections

from .conf import limit

__all__ = ["WorkerPool", "WorkerSends", "call_sync", "run_in_worker", "send_soon", "worker_owner", "worker_pool"]

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

    Calls are grouped by :data:`worker_owner`. A connection with no call running takes any
    free thread; one thread is kept for such connections, and those that already run calls
    hold at most :meth:`share` threads each, a share that leaves room for one more connection
    and shrinks as more have work. So the first call of a connection that comes while others
    flood the pool with slow calls starts at once, and as threads free up, the waiting
    connections take turns (round robin), not the order calls came. A waiting call that is
    cancelled (``REQUEST_TIMEOUT``, a closed connection) leaves the queue at once, with its
    arguments: what waits is only what is still awaited, at most a call per running request.
    Calls made outside a connection (owner None) take any free thread.
    """

    def __init__(self, max_workers: int, name: str = "channels-router") -> None:
        self.max_workers, self.name = max_workers, name
        self._idle: list[SimpleQueue[Job | None]] = []  # a stack: the last thread to go idle is on top
        self._waiting: dict[Hashable, OrderedDict[Future[Any], Job]] = {}  # per owner, owners in turn order
        self._running: dict[Hashable, int] = {}
        self._calls: dict[Hashable, int] = {}  # running and waiting, per owner (None is nobody's)
        self._busy = self._threads = 0
        self._lock = threading.Lock()

    def share(self) -> int:
        """How many threads a connection may hold: all but the kept one, split between the
        connections that have calls running or waiting and one more (rounded up); at least one."""
        return max(1, -(-(self.max_workers - 1) // (len(self._calls) + 1)))

    def queued(self) -> int:
        """How many calls wait for a thread."""
        with self._lock:
            return sum(map(len, self._waiting.values()))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if kwargs:
            args, fn = (), functools.partial(fn, *args, **kwargs)
        owner = worker_owner.get()
        future: Future[Any] = Future()
        job: Job = (owner, future, fn, args)
        with self._lock:
            if owner is not None:
                self._calls[owner] = self._calls.get(owner, 0) + 1
            inbox: SimpleQueue[Job | None] | None = None
            if self._may_start(owner):
                if self._idle:
                    inbox = self._idle.pop()
                else:
                    inbox = SimpleQueue()
                    try:
                        threading.Thread(target=self._work, args=(inbox,), name=f"{self.name}-{self._threads + 1}",
                                         daemon=True).start()
                    except BaseException:  # the caller gets it; nothing of this call stays
                        self._forget_call(owner)
                        raise
                    self._threads += 1
                self._start(owner)
            else:
                self._waiting.setdefault(owner, OrderedDict())[future] = job
        if inbox is None:
            future.add_done_callback(functools.partial(self._cancelled, owner))
        else:
            inbox.put(job)
        return future

    def _may_start(self, owner: Hashable) -> bool:
        """Under the lock: whether a call of ``owner`` may take a thread now."""
        if self._busy >= self.max_workers:
            return False
        running = self._running.get(owner, 0)
        return owner is None or not running or (running < self.share() and self._busy < self.max_workers - 1)

    def _start(self, owner: Hashable) -> None:
        self._running[owner] = self._running.get(owner, 0) + 1
        self._busy += 1

    def _forget_call(self, owner: Hashable) -> None:
        if owner is not None:
            left = self._calls[owner] = self._calls[owner] - 1
            if not left:
                del self._calls[owner]

    def _cancelled(self, owner: Hashable, future: Future[Any]) -> None:
        """A waiting call's future is done: if it was cancelled before a thread took it, it
        leaves the queue now, with its arguments."""
        with self._lock:
            jobs = self._waiting.get(owner)
            if jobs is not None and jobs.pop(future, None) is not None:
                if not jobs:
                    del self._waiting[owner]
                self._forget_call(owner)

    def _next_job(self) -> Job | None:
        """The next waiting call, under the lock: the first owner in turn that may start goes,
        and moves to the back of the turn."""
        for owner in list(self._waiting):
            if self._may_start(owner):
                jobs = self._waiting.pop(owner)
                _, job = jobs.popitem(last=False)
                if jobs:
                    self._waiting[owner] = jobs
                self._start(owner)
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
                self._busy -= 1
                self._forget_call(owner)
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


async def run_in_worker(fn: Callable[..., Any], *args: Any, thread_sensitive: bool = False) -> Any:
    """Await sync ``fn(*args)`` in a worker thread, with Django's per-request connection handling."""
    sends = WorkerSends.of(asyncio.get_running_loop())
    token = worker_sends.set(sends)
    try:
        return await _hop(thread_sensitive)(fn, *args)
    finally:
        worker_sends.reset(token)
        sends.flush()  # what the call asked to send goes now, not at the next tick


def with_fresh_connections(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn`` in a worker thread the way Django serves a request: stale database
    connections are closed before and after. (Done here, inside the call, because the
    thread's connections are only visible from within the call's context.)"""
    close_old_connections()
    try:
        return fn(*args)
    finally:
        close_old_connections()


@functools.cache
def _hop(thread_sensitive: bool) -> Callable[..., Awaitable[Any]]:
    """Made once: a ``SyncToAsync`` costs more to build than the rest of a request's bookkeeping.
    Thread-sensitive calls go to the thread Django and Channels share; others to the worker pool."""
    if thread_sensitive:
        return sync_to_async(with_fresh_connections, thread_sensitive=True)
    # asgiref annotates ``executor`` as a ThreadPoolExecutor; it only hands it to run_in_executor().
    return sync_to_async(with_fresh_connections, thread_sensitive=False,
                         executor=worker_pool())  # type: ignore[call-overload]


async def _await(awaitable: Any) -> Any:
    return await awaitable


def call_sync(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Call ``fn`` from sync code, whether it is sync or async."""
    result = fn(*args)
    return async_to_sync(_await)(result) if inspect.isawaitable(result) else result


class WorkerSends:
    """Sends that other threads ask an event loop to start: the async consumers' worker threads
    (see :func:`send_soon`), whose sends start when their worker call returns, and
    within ``FLUSH_EVERY`` seconds while it runs. The reply never waits on the channel layer,
    the worker never waits on the loop, and a long call's sends are not held back.

    One per loop, with one timer, armed only while sends wait: its cost does not grow with the
    number of worker calls waiting (a timer per call cost a change fanned out to thousands of
    subscribers tens of thousands of timer callbacks a second)."""

    FLUSH_EVERY = 0.05
    _running: set[asyncio.Future[None]] = set()  # the loop keeps only weak references to tasks
    _of_loop: WeakKeyDictionary[asyncio.AbstractEventLoop, WorkerSends] = WeakKeyDictionary()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> WorkerSends:
        """The sends of ``loop``."""
        sends = cls._of_loop.get(loop)
        if sends is None:
            sends = cls._of_loop.setdefault(loop, cls(loop))
        return sends

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: deque[tuple[Callable[[], Awaitable[None]], Callable[[BaseException], None]]] = deque()
        self._armed = False  # a flush is on its way (set from any thread, cleared on the loop)
        self._timer: asyncio.TimerHandle | None = None  # touched on the loop only

    def add(self, send: Callable[[], Awaitable[None]], on_error: Callable[[BaseException], None]) -> None:
        """From any thread (a deque's append and popleft are thread-safe): ``send()`` is started
        on the loop within ``FLUSH_EVERY`` seconds, or sooner by :meth:`flush`."""
        self.waiting.append((send, on_error))
        if not self._armed:
            self._armed = True
            try:
                self.loop.call_soon_threadsafe(self._arm)
            except RuntimeError as exc:  # the loop is closed: the process is going away
                while self.waiting:
                    self.waiting.popleft()[1](exc)

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(self.FLUSH_EVERY, self.flush)

    def flush(self) -> None:
        """On the loop: start every waiting send (when a worker call returns, and on the timer)."""
        self._armed = False  # before the deque is emptied: a send added from now on arms again
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self.waiting:
            send, on_error = self.waiting.popleft()
            task: asyncio.Future[None] = asyncio.ensure_future(send(), loop=self.loop)
            self._running.add(task)
            task.add_done_callback(functools.partial(self._done, on_error))

    @classmethod
    def _done(cls, on_error: Callable[[BaseException], None], task: asyncio.Task[None]) -> None:
        cls._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            on_error(task.exception())  # type: ignore[arg-type]


#: The sends of the event loop whose worker call this code runs in, if it runs in one.
worker_sends: ContextVar[WorkerSends | None] = ContextVar("django_channels_router_sends", default=None)


def send_soon(send: Callable[[], Awaitable[None]], on_error: Callable[[BaseException], None]) -> None:
    """Run ``send()`` from sync code that must not wait on it when it can help it.

    In an async consumer's worker thread it is started by the consumer's event loop
    (:class:`WorkerSends`), not waited for; elsewhere (a view, a shell, a task) it is
    waited for. A failure is passed to ``on_error`` either way.
    """
    sends = worker_sends.get()
    if sends is not None and sends.loop.is_running():
        sends.add(send, on_error)
        return
    try:
        async_to_sync(send)()
    except Exception as exc:
        on_error(exc)
