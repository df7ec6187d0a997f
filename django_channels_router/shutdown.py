"""Restarts without lost writes: on SIGTERM, every connection of the process finishes the
requests it runs, sends their replies, and is closed with 1012 (service restart; 4012 on daphne,
which refuses 1012); then the server's own SIGTERM handler runs, as it would have at once.

Servers close their WebSockets the moment they are told to stop (uvicorn with 1012, daphne
with no close frame at all), so replies of requests still running are lost, and a client that
sends a write again cannot know whether it was applied. The router's handler goes in front of
the server's: requests that arrive meanwhile are answered 503 ``server_restarting`` without
being run, so once the connection closes with the restart code, a request without a reply was
never run and may be sent again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import weakref
from collections.abc import Callable
from typing import Any

from .conf import timeout

logger = logging.getLogger("django_channels_router")

#: The connections open in this process: each is told to restart on SIGTERM.
connections: weakref.WeakSet[Any] = weakref.WeakSet()
_installed = False
#: Set on SIGTERM: the process is stopping and refuses new connections at the handshake (as a
#: server that no longer listens would), until the server closes its listening socket.
stopping = False


def watch(consumer: Any) -> None:
    """Count ``consumer``'s connection as open; the first one installs the SIGTERM handler."""
    connections.add(consumer)
    global _installed
    if not _installed:
        _installed = True
        install(asyncio.get_running_loop())


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Put the router's SIGTERM handler in front of the server's.

    Only where the server has a handler of its own (a Python function, as daphne's Twisted and
    uvicorn install): where SIGTERM still ends the process at once (a test runner, a script),
    there is no graceful stop to add to, and nothing is changed.
    """
    drain_for = timeout(None, "SHUTDOWN_TIMEOUT")
    if drain_for is None or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        global stopping
        stopping = True
        signal.signal(signal.SIGTERM, previous)  # a second SIGTERM stops the server at once
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(restart_all(drain_for, previous, signum, frame)))

    signal.signal(signal.SIGTERM, on_sigterm)


async def restart_all(drain_for: float, then: Callable[[int, Any], Any], signum: int, frame: Any) -> None:
    """Restart every open connection (within ``drain_for`` seconds), then call the server's handler."""
    restarting = list(connections)
    logger.warning("SIGTERM: %d connections finish their requests (up to %s s), then close with the restart code.",
                   len(restarting), drain_for)
    try:
        if restarting:
            _, late = await asyncio.wait([asyncio.ensure_future(c.restart(drain_for)) for c in restarting],
                                         timeout=drain_for + 1)
            if late:
                logger.warning("%d connections did not close within SHUTDOWN_TIMEOUT; the server closes them.",
                               len(late))
    finally:
        then(signum, frame)
