"""Restarts without lost writes: on SIGTERM or SIGINT, every connection of the process finishes
the requests it runs, sends their replies, and is closed with 1012 (service restart; 4012 on
daphne, which refuses 1012); then the server's own handler runs, as it would have at once.

Servers close their WebSockets the moment they are told to stop (uvicorn with 1012, daphne
with no close frame at all), so replies of requests still running are lost, and a client that
sends a write again cannot know whether it was applied. The router's handler goes in front of
the server's: requests that arrive meanwhile are answered 503 ``server_restarting`` without
being run, so once the connection closes with the restart code, a request without a reply was
never run and may be sent again.

One stop often signals a worker more than once: a signal to the process group (systemd's
``KillMode=control-group``, supervisord's ``stopasgroup``, ``kill -TERM -<pgid>``, Ctrl-C) reaches
the worker directly and again through its master (uvicorn ``--workers``, gunicorn), which
forwards it. So a repeat within ``SAME_STOP_SECONDS`` of the first signal is the same stop; a
repeat after that is an operator's request to stop at once, as is SIGKILL.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any

from .conf import timeout

logger = logging.getLogger("django_channels_router")

#: The connections open in this process: each is told to restart on SIGTERM or SIGINT.
connections: weakref.WeakSet[Any] = weakref.WeakSet()
#: A repeat of the stop signal within this many seconds of the first is the same stop (a
#: master forwarding the group's signal to its workers); a later one stops at once.
SAME_STOP_SECONDS = 2.0
#: A connection whose client takes none of its replies for this many seconds during the drain
#: cannot get them before the process stops: it is closed at once with 1013 (4013 on daphne).
STALLED_SECONDS = 2.0
#: What a handshake refused while the process stops says: come back in this many seconds.
RETRY_AFTER = 1
_installed = False
#: Set on the first stop signal: the process is stopping, and answers new handshakes "come back
#: soon" (HTTP 503 with Retry-After, or 1013/4013) until the server stops listening.
stopping = False

Handler = Callable[[int, FrameType | None], Any]


def watch(consumer: Any) -> None:
    """Count ``consumer``'s connection as open; the first one installs the signal handlers."""
    connections.add(consumer)
    global _installed
    if not _installed:
        _installed = True
        install(asyncio.get_running_loop())


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Put the router's handler in front of the server's, for SIGTERM and SIGINT.

    Only where the server handles SIGTERM itself (a Python function, as daphne's Twisted and
    uvicorn install): where SIGTERM still ends the process at once (a test runner, a script),
    there is no graceful stop to add to, and nothing is changed. SIGINT is taken where it has a
    Python handler too (not where it is ignored, as in a background job).
    """
    drain_for = timeout(None, "SHUTDOWN_TIMEOUT")
    if drain_for is None or threading.current_thread() is not threading.main_thread():
        return
    servers: dict[int, Handler] = {signum: handler for signum in (signal.SIGTERM, signal.SIGINT)
                                   if callable(handler := signal.getsignal(signum))}
    if signal.SIGTERM not in servers:
        return
    stop = Stop(loop, drain_for, servers)
    for signum in servers:
        signal.signal(signum, stop.signalled)


class Stop:
    """The process's one stop: drains the connections on the first signal, then hands over to the
    server's handler; a repeat after ``SAME_STOP_SECONDS`` cuts the drain short."""

    def __init__(self, loop: asyncio.AbstractEventLoop, drain_for: float, servers: dict[int, Handler]) -> None:
        self.loop, self.drain_for, self.servers = loop, drain_for, servers
        self.first: tuple[int, FrameType | None] | None = None
        self.first_at = 0.0
        self.drain: asyncio.Task[None] | None = None
        self.handed_over = False

    def signalled(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: it only takes note; the work (and logging) is done on the loop."""
        global stopping
        now = time.monotonic()
        if self.first is None:
            stopping, self.first, self.first_at = True, (signum, frame), now
            self.loop.call_soon_threadsafe(self._start)
        elif now - self.first_at < SAME_STOP_SECONDS:
            self.loop.call_soon_threadsafe(logger.info, "%s again: the same stop.", signal.Signals(signum).name)
        elif self.handed_over:
            self.servers[signum](signum, frame)  # the server is stopping: a repeat is its business
        else:
            self.loop.call_soon_threadsafe(self._force, signum)

    def _start(self) -> None:
        self.drain = asyncio.ensure_future(self._drain())

    def _force(self, signum: int) -> None:
        logger.warning("%s again after %s s: stopping at once; connections close with 1013 (4013 on daphne), "
                       "their running requests lose their replies.", signal.Signals(signum).name, SAME_STOP_SECONDS)
        if self.drain is not None:
            self.drain.cancel()

    async def _drain(self) -> None:
        """Restart every open connection (within the drain time), then call the server's handler."""
        assert self.first is not None
        signum, frame = self.first
        restarting = [asyncio.ensure_future(c.restart(self.drain_for)) for c in list(connections)]
        logger.warning("%s: %d connections finish their requests (up to %s s), then close with the restart code. "
                       "Send it again %s s or more after the first to stop at once.", signal.Signals(signum).name,
                       len(restarting), self.drain_for, SAME_STOP_SECONDS)
        try:
            if restarting:
                _, late = await asyncio.wait(restarting, timeout=self.drain_for + 1)
                if late:
                    logger.warning("%d connections did not close within SHUTDOWN_TIMEOUT; the server closes them.",
                                   len(late))
        except asyncio.CancelledError:  # forced: each connection closes at once, ahead of the server
            for task in restarting:
                task.cancel()
            if restarting:
                await asyncio.wait(restarting, timeout=1)
        finally:
            self.handed_over = True
            self.servers[signum](signum, frame)
