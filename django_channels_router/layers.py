"""What the router reads of a channel layer's Redis connections (channels-redis), opening none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

T = TypeVar("T")
#: What :func:`on_this_loop` keeps: per channel layer, per event loop, one object.
PerLoop = WeakKeyDictionary[Any, WeakKeyDictionary[asyncio.AbstractEventLoop, T]]

#: Layer calls in flight at once per event loop, for a layer whose connection pools are unknown.
DEFAULT_CALLS = 50
#: How much longer than channels-redis' blocking receive a socket read must be allowed to wait:
#: Redis answers an empty BZPOPMIN at its timeout, and the answer needs time to arrive.
RECEIVE_MARGIN = 1.0


def redis_pools(layer: Any) -> list[Any]:
    """The connection pools channels-redis makes for each of ``layer``'s hosts (none for other
    layers). Made here only to read their settings: nothing connects until a command is sent."""
    if not (hasattr(layer, "create_pool") and isinstance(getattr(layer, "hosts", None), list)):
        return []
    return [layer.create_pool(index) for index in range(len(layer.hosts))]


def call_limit(layer: Any) -> int:
    """How many of the router's calls to ``layer`` may be in flight at once on one event loop.

    channels-redis keeps one connection pool per host and event loop (100 connections unless
    ``max_connections`` says otherwise), and redis-py 8's asyncio pool raises
    ``MaxConnectionsError`` at once when it is full. The router takes at most half of the
    smallest pool, leaving the rest to Channels' own receive and to the project's code.
    """
    sizes = [pool.max_connections for pool in redis_pools(layer)]
    return max(1, min(sizes) // 2) if sizes else DEFAULT_CALLS


def receive_timeout_problem(layer: Any) -> str | None:
    """Why ``layer``'s idle receive fails, if it does: channels-redis blocks in Redis for
    ``brpop_timeout`` seconds (5) per receive, and redis-py 8 gives up on a socket read after
    ``socket_timeout`` seconds (5 by default; no limit before 8). An idle receive then times out,
    its connection is dropped, and a message Redis pops in that instant is lost."""
    blocking = getattr(layer, "brpop_timeout", None)
    if not isinstance(blocking, int | float):
        return None
    for pool in redis_pools(layer):
        timeout = pool.make_connection().socket_timeout
        if timeout is not None and timeout <= blocking + RECEIVE_MARGIN:
            return (f"its Redis connections give up on a read after {timeout} s (socket_timeout), while its "
                    f"receive blocks in Redis for {blocking} s, so every idle receive fails")
    return None


def on_this_loop(store: PerLoop[T], layer: Any, make: Callable[[Any], T]) -> T:
    """``store``'s object for ``layer`` on the running event loop, made by ``make(layer)`` the first
    time: channels-redis keeps its connection pools per event loop, and so does what the router
    keeps beside them (a semaphore over the pool, the group watcher)."""
    per_loop = store.setdefault(layer, WeakKeyDictionary())
    loop = asyncio.get_running_loop()
    found = per_loop.get(loop)
    if found is None:
        found = per_loop[loop] = make(layer)
    return found
