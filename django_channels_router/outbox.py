"""Each connection's outgoing frames: bounded, watched for progress, and never lost silently.

A client that stops reading would otherwise make the server hold everything sent to it: daphne
buffers without limit (daphne issue #170), and uvicorn makes ``send`` wait, which stalls the
consumer while its channel-layer messages pile up. The outbox takes every frame the consumer
sends and hands them to the server one at a time, as fast as the server takes them. A client
is slow when frames wait and the server has taken none of them for ``SLOW_CLIENT_TIMEOUT``
seconds; past that, or past the hard cap of ``MAX_PENDING_SEND_BYTES`` waiting, the outbox drops
what waits and closes the connection with 1013 (try again later).

A frame the server refuses to send (daphne refuses messages over its
``--websocket-max-message-size``, and close codes other than 1000 and 3000-4999) never leaves
the connection open and unserved: a reply becomes an error reply, a push what its sender says
instead, a close code its 4xxx twin, and anything else closes the connection with 1011.
:class:`FrameSending` is the consumer's side: its replies and pushes, and what stands in for them.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from functools import partial
from typing import Any

from .protocol import error_frame
from .status import StatusCodes

logger = logging.getLogger("django_channels_router")

Send = Callable[[dict[str, Any]], Awaitable[None]]
#: Given why the server refused a frame, the frame to send in its place, or None to close the
#: connection with 1011.
Instead = Callable[[Exception], "str | None"]

#: Close codes of the WebSocket range that daphne refuses; each has a twin in 4000-4999.
TWINNED_CLOSE_CODES = frozenset({1011, 1012, 1013})


def start(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task that runs at once, up to its first wait (Python 3.12+): a frame the server takes
    straight away costs no trip through the event loop."""
    if sys.version_info >= (3, 12):
        return asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)
    return asyncio.ensure_future(coro)


class SharedFrame(str):
    """A frame that many connections of this process send as it is (a broadcast): one copy,
    however many outboxes hold it."""

    __slots__ = ("__weakref__",)


_shared: weakref.WeakValueDictionary[str, SharedFrame] = weakref.WeakValueDictionary()


def shared_frame(key: str, text: str) -> SharedFrame:
    """The one copy of broadcast ``key`` held in this process (each member's channel-layer
    message decodes into its own copy; this one is kept while any outbox still holds it)."""
    frame = _shared.get(key)
    if frame is None or len(frame) != len(text):
        frame = _shared[key] = SharedFrame(text)
    return frame


def daphne_protocol(send: Send) -> Any:
    """Daphne's protocol object for this connection, or None on another server.

    Daphne's ``send`` is ``partial(server.handle_reply, protocol)``; Channels' session middleware
    (in ``AuthMiddlewareStack``) wraps it in a method that calls ``real_send``, and decorators
    leave ``__wrapped__``. A middleware that hides it in a closure hides daphne: the outbox
    then cannot watch daphne's buffer, but everything else works as on any server.
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


def _size(message: dict[str, Any]) -> int:
    return len(message.get("text") or message.get("bytes") or "")


def _gone(exc: Exception) -> bool:
    """Whether ``exc`` says the connection is gone (nothing more can be sent), rather than that
    the server refused this one frame."""
    return isinstance(exc, OSError) or type(exc).__name__ in {"Disconnected", "ConnectionClosed",
                                                              "ConnectionClosedOK", "ConnectionClosedError"}


class Outbox:
    """The frames waiting to go out on one connection; ``send`` is the consumer's ASGI send."""

    def __init__(self, send: Send, limit: int, stall_timeout: float | None,
                 on_slow: Callable[[str, int], None]) -> None:
        self.server_send = send
        #: Daphne's protocol object, or None on another server (or daphne hidden by a closure).
        self.daphne = daphne_protocol(send)
        self.limit = limit
        self.stall_timeout = stall_timeout
        self.on_slow = on_slow
        self.frames: deque[tuple[dict[str, Any], int, Instead | None]] = deque()
        #: Bytes of the frames given to ``send`` that the server has not taken yet.
        self.pending_bytes = 0
        #: When the server last took a frame (or the outbox last went from empty to waiting).
        self.progressed = time.monotonic()
        #: Set once a close was sent, or the connection overflowed or broke: later frames are dropped.
        self.closing = False
        self.writer: asyncio.Task[None] | None = None
        self.watchdog: asyncio.TimerHandle | None = None
        self.flow: asyncio.Event | None = None
        self.flow_checked = False

    async def send(self, message: dict[str, Any]) -> None:
        """Channels' ``send``: queue ``message`` and return; the server gets it when it has taken
        those before. A frame the server refuses closes the connection with 1011."""
        self.put(message)

    def send_frame(self, text: str, instead: Instead | None = None) -> None:
        """Queue text frame ``text``; if the server refuses it, ``instead`` says what to send."""
        self.put({"type": "websocket.send", "text": text}, instead)

    def put(self, message: dict[str, Any], instead: Instead | None = None) -> None:
        if self.closing:
            return
        size = _size(message)
        if self.frames and self.pending_bytes + size > self.limit:  # one frame of any size may wait
            self.slow(f"{self.pending_bytes + size} bytes waited for the client to read "
                      f"(MAX_PENDING_SEND_BYTES is {self.limit})")
            return
        self.closing = message["type"] == "websocket.close"
        if not self.frames:
            self.progressed = time.monotonic()
        self.frames.append((message, size, instead))
        self.pending_bytes += size
        if self.writer is None:
            self._start(self._write())
        if self.watchdog is None and self.stall_timeout is not None and not self.closing:
            self.watchdog = asyncio.get_running_loop().call_later(self.stall_timeout, self._check_progress)

    def close_code(self, code: int) -> int:
        """``code`` (1011, 1012, 1013), or its 4xxx twin where the outbox knows the server is
        daphne, which sends only 1000 and 3000-4999 (elsewhere a refused code falls back to
        its twin when refused)."""
        return code + 3000 if self.daphne is not None and code in TWINNED_CLOSE_CODES else code

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = start(coro)
        self.writer = None if task.done() else task  # an eager task may have finished already

    async def _write(self) -> None:
        try:
            while self.frames:
                message, size, instead = self.frames[0]
                if message["type"] == "websocket.send" and not self.flow_checked:
                    self.flow, self.flow_checked = server_flow(self.daphne), True  # after the handshake
                if self.flow is not None:
                    await self.flow.wait()
                await self._deliver(message, instead)
                if self.frames and self.frames[0][0] is message:  # else discarded meanwhile
                    self.frames.popleft()
                    self.pending_bytes -= size
                self.progressed = time.monotonic()
        except Exception as exc:  # the connection broke (uvicorn raises ClientDisconnected): drop the rest
            logger.debug("Dropped %d unsent frames: %r", len(self.frames), exc)
            self.discard()
        finally:
            self._done()

    async def _deliver(self, message: dict[str, Any], instead: Instead | None) -> None:
        """Give ``message`` to the server; where the server refuses it, what stands in for it."""
        for _ in range(3):  # the frame, what stands in for it, and the twin of a refused close code
            try:
                return await self.server_send(message)
            except Exception as exc:
                if _gone(exc):
                    raise
                message, instead = self._replacement(message, instead, exc), None
        raise RuntimeError("the server refused every frame that could close the connection")

    def _replacement(self, message: dict[str, Any], instead: Instead | None, error: Exception) -> dict[str, Any]:
        if message["type"] == "websocket.close":
            code = message.get("code", 1000)
            if code not in TWINNED_CLOSE_CODES:
                raise error
            logger.debug("The server refused close code %d (%s); sending %d", code, error, code + 3000)
            return {**message, "code": code + 3000}
        if message["type"] != "websocket.send":
            raise error
        text = instead(error) if instead is not None else None
        if text is not None:
            return {"type": "websocket.send", "text": text}
        logger.error("The server refused to send a frame of %d bytes (%s); closing the connection with 1011.",
                     _size(message), error)
        self.discard()  # the frames after it cannot go either: their order would be broken
        return {"type": "websocket.close", "code": 1011}

    def _done(self) -> None:
        if self.writer is asyncio.current_task():
            self.writer = None

    def _check_progress(self) -> None:
        """Close the connection when frames waited ``stall_timeout`` seconds and the server took
        none of them: the client is not reading."""
        self.watchdog = None
        if not self.frames or self.closing or self.stall_timeout is None:
            return
        stalled = time.monotonic() - self.progressed
        if stalled >= self.stall_timeout:
            self.slow(f"the client read nothing for {stalled:.0f} s while {self.pending_bytes} bytes waited "
                      f"(SLOW_CLIENT_TIMEOUT is {self.stall_timeout})")
        else:
            self.watchdog = asyncio.get_running_loop().call_later(self.stall_timeout - stalled, self._check_progress)

    def slow(self, reason: str) -> None:
        """Drop what waits and close the connection with 1013 (4013 on daphne)."""
        self.close_now(1013)
        self.on_slow(reason, self.close_code(1013))

    def close_now(self, code: int) -> None:
        """Drop what waits and close with ``code`` (1012, 1013: its twin on daphne) at once, for a
        client that cannot be given what it has not read."""
        self.discard()
        self._start(self._close_now(self.close_code(code)))

    async def _close_now(self, code: int) -> None:
        """Send the close without waiting for the server's buffer to drain (daphne takes it at
        once; uvicorn when the client reads again, or drops the connection on its ping timeout)."""
        try:
            await self._deliver({"type": "websocket.close", "code": code}, None)
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
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        self.frames.clear()
        self.pending_bytes = 0


class FrameSending:
    """How a consumer hands its replies and pushes to its :class:`Outbox`, and what it sends in
    place of one the server refuses."""

    outbox: Outbox

    def reply_not_sent(self, uuid: str | int, route: str, size: int, error: Exception) -> str:
        """The reply sent in place of one the server refused to send (daphne sends at most
        ``--websocket-max-message-size`` bytes, 1 MiB by default, in one message)."""
        logger.error("The server refused to send the %d-byte reply of route %r (uuid %r) on %s: %s", size, route,
                     uuid, type(self).__name__, error)
        if type(error).__name__ == "PayloadExceededError":  # autobahn's, under daphne: its text names the limit
            return error_frame(uuid, route, StatusCodes.INTERNAL_SERVER_ERROR, "reply_too_large",
                               f"The reply is {size} bytes, more than the server sends in one message ({error}). "
                               f"Send less (paginate), or raise the limit (daphne --websocket-max-message-size).")
        return error_frame(uuid, route, StatusCodes.INTERNAL_SERVER_ERROR, "reply_not_sent",
                           "The server could not send the reply.")

    def push_not_sent(self, route: str, headers: Mapping[str, Any] | None, error: Exception) -> str | None:
        """The frame sent in place of a push the server refused to send (too large for daphne),
        or None to close the connection with 1011, as here: the client cannot miss a push without
        knowing. Subscriptions send ``resync`` instead."""
        logger.error("The server refused to send push %r on %s (%s); closing the connection with 1011.", route,
                     type(self).__name__, error)
        return None

    def _reply(self, uuid: str | int, route: str | None, frame: str) -> None:
        """Queue a reply frame; on the event loop."""
        instead = None if route is None else partial(self.reply_not_sent, uuid, route, len(frame))
        self.outbox.send_frame(frame, instead)

    def _push(self, route: str, headers: Mapping[str, Any] | None, frame: str) -> None:
        """Queue a push frame; on the event loop."""
        self.outbox.send_frame(frame, partial(self.push_not_sent, route, headers))

    def _broadcast(self, event: dict[str, Any]) -> None:
        """Queue a broadcast's frame, the one copy of it in this process; on the event loop."""
        self._push(event["route"], None, shared_frame(event["uuid"], event["frame"]))
