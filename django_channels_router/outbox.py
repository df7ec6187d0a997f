"""Each connection's outgoing frames, bounded in bytes.

A client that stops reading would otherwise make the server hold everything sent to it: daphne
buffers without limit (daphne issue #170), and uvicorn makes ``send`` wait, which stalls the
consumer while its channel-layer messages pile up. The outbox takes every frame the consumer
sends, hands them to the server one at a time as fast as the server takes them, and past
``MAX_PENDING_SEND_BYTES`` drops what is waiting and closes the connection with 1013 (try again
later; 4013 on daphne, which refuses 1013).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

logger = logging.getLogger("django_channels_router")

Send = Callable[[dict[str, Any]], Awaitable[None]]


def start(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task that runs at once, up to its first wait (Python 3.12+): a frame the server takes
    straight away costs no trip through the event loop."""
    if sys.version_info >= (3, 12):
        return asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)
    return asyncio.ensure_future(coro)


def daphne_protocol(send: Send) -> Any:
    """Daphne's protocol object for this connection, or None on another server.

    Daphne's ``send`` is ``partial(server.handle_reply, protocol)``; Channels' session middleware
    (in ``AuthMiddlewareStack``) wraps it in a method that calls ``real_send``, and decorators
    leave ``__wrapped__``. A middleware that hides it in a closure hides daphne too.
    """
    for _ in range(16):
        if isinstance(send, partial):
            owner = getattr(send.func, "__self__", None)
            if type(owner).__module__.startswith("daphne.") and send.args:
                return send.args[0]
            send = send.func
        elif hasattr(getattr(send, "__self__", None), "real_send"):
            send = send.__self__.real_send  # type: ignore[attr-defined]
        elif hasattr(send, "__wrapped__"):
            send = send.__wrapped__
        else:
            return None
    return None


class _TwistedFlow:
    """A Twisted push producer on daphne's transport: daphne writes whatever it is given into
    Twisted's buffer and never makes ``send`` wait, but Twisted tells its producer when that
    buffer is full (``pauseProducing``) and when it has drained (``resumeProducing``). The
    producer it had (the HTTP channel the connection was upgraded from) is told the same."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous
        self.writable = asyncio.Event()
        self.writable.set()

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's names)
        self.writable.clear()
        if self.previous is not None:
            self.previous.pauseProducing()

    def resumeProducing(self) -> None:  # noqa: N802
        self.writable.set()
        if self.previous is not None:
            self.previous.resumeProducing()

    def stopProducing(self) -> None:  # noqa: N802 (connection lost: daphne drops what follows)
        self.writable.set()
        if self.previous is not None:
            self.previous.stopProducing()


def server_flow(daphne: Any) -> asyncio.Event | None:
    """An event set while daphne's transport can take more (daphne's ``send`` does not wait by
    itself); None where the server's ``send`` waits (uvicorn and other asyncio servers)."""
    transport = getattr(daphne, "transport", None)
    if transport is None:
        return None
    from twisted.internet.interfaces import IPushProducer
    from zope.interface import directlyProvides

    try:
        flow = _TwistedFlow(getattr(transport, "producer", None))
        directlyProvides(flow, IPushProducer)
        if flow.previous is not None:
            transport.unregisterProducer()
        transport.registerProducer(flow, True)
    except Exception as exc:  # a transport unlike Twisted's TCP one: daphne then buffers as it does
        logger.warning("Cannot watch daphne's send buffer (%s); a client that stops reading is not bounded.", exc)
        return None
    return flow.writable


class Outbox:
    """The frames waiting to go out on one connection; ``send`` is the consumer's ASGI send."""

    def __init__(self, send: Send, limit: int, on_overflow: Callable[[int, int], None]) -> None:
        self.server_send = send
        #: Daphne's protocol object, or None on another server.
        self.daphne = daphne_protocol(send)
        self.limit = limit
        self.on_overflow = on_overflow
        self.frames: deque[tuple[dict[str, Any], int]] = deque()
        #: Bytes of the frames given to ``send`` that the server has not taken yet.
        self.pending_bytes = 0
        #: Set once a close was sent, or the connection overflowed or broke: later frames are dropped.
        self.closing = False
        self.writer: asyncio.Task[None] | None = None
        self.flow: asyncio.Event | None = None
        self.flow_checked = False

    async def send(self, message: dict[str, Any]) -> None:
        """Queue ``message`` and return: the server gets it when it has taken those before."""
        if self.closing:
            return
        size = len(message.get("text") or message.get("bytes") or "")
        if self.frames and self.pending_bytes + size > self.limit:  # one frame of any size may wait
            self.overflow()
            return
        self.closing = message["type"] == "websocket.close"
        self.frames.append((message, size))
        self.pending_bytes += size
        if self.writer is None:
            self._start(self._write())

    def close_code(self, code: int) -> int:
        """``code`` (1012, 1013), or its 4xxx twin on daphne, which sends only 1000 and 3000-4999
        (PROTOCOL.md, "Closing")."""
        return code + 3000 if self.daphne is not None else code

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = start(coro)
        self.writer = None if task.done() else task  # an eager task may have finished already

    async def _write(self) -> None:
        try:
            while self.frames:
                message, size = self.frames[0]
                if message["type"] == "websocket.send" and not self.flow_checked:
                    self.flow, self.flow_checked = server_flow(self.daphne), True  # after the handshake
                if self.flow is not None:
                    await self.flow.wait()
                await self.server_send(message)
                self.frames.popleft()
                self.pending_bytes -= size
        except Exception as exc:  # the connection broke (uvicorn raises ClientDisconnected): drop the rest
            logger.debug("Dropped %d unsent frames: %r", len(self.frames), exc)
            self.discard()
        finally:
            self._done()

    def _done(self) -> None:
        if self.writer is asyncio.current_task():
            self.writer = None

    def overflow(self) -> None:
        """Drop what waits and close the connection with 1013 (4013 on daphne)."""
        waiting = self.pending_bytes
        self.close_now(1013)
        self.on_overflow(waiting, self.close_code(1013))

    def close_now(self, code: int) -> None:
        """Drop what waits and close with ``code`` (1012, 1013: its twin on daphne) at once, for a
        client that cannot be given what it has not read."""
        self.discard()
        self._start(self._close_now(self.close_code(code)))

    async def _close_now(self, code: int) -> None:
        """Send the close without waiting for the server's buffer to drain (daphne takes it at
        once; uvicorn when the client reads again, or drops the connection on its ping timeout)."""
        try:
            await self.server_send({"type": "websocket.close", "code": code})
        except Exception as exc:
            logger.debug("Could not send the close frame: %r", exc)
        finally:
            self._done()

    async def flushed(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds) until the server has taken every frame."""
        if self.writer is not None:
            await asyncio.wait([self.writer], timeout=timeout)

    def discard(self) -> None:
        """Forget every waiting frame and send nothing more (the connection is closed or gone)."""
        self.closing = True
        if self.writer is not None and self.writer is not asyncio.current_task():
            self.writer.cancel()
            self.writer = None
        self.frames.clear()
        self.pending_bytes = 0
