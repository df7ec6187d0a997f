"""The group memberships of this process: kept while their connections want them, left for sure.

A channel layer can lose a member without the connection leaving: channels-redis forgets it
after ``group_expiry`` (a day by default), and Redis loses it on FLUSHALL, on eviction under
``maxmemory`` and on failover to a replica the write had not reached. The connection would get
none of the group's pushes, without a word. So one :class:`Watcher` per channel layer and event
loop holds the memberships of the connections served there and, every ``CHECK_EVERY`` seconds:

- asks channels-redis which of them Redis still holds (one pipelined ``ZMSCORE`` per Redis host;
  Redis 6.2 or later), joins the lost ones again and calls their connections'
  ``layer_recovered()``, so that their subscriptions send ``resync``;
- joins again, on any layer, the memberships older than half the layer's ``group_expiry``;
- tries again the leaves that failed (Redis unreachable), with backoff for up to ``LEAVE_FOR``
  seconds, so that a closed connection does not stay in its groups until they expire.

Its cost is one round trip per Redis host and a few microseconds per membership per check,
whatever the number of connections; it runs while the process holds memberships.

A connection's side is :class:`GroupMembership`: the groups it joined, and its channel's
receive, kept through layer outages (its groups joined again when the layer answers).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from django.core.exceptions import ImproperlyConfigured

from .layers import PerLoop, on_this_loop, receive_timeout_problem
from .push import call_slots, group_add, layer_call, require_group_name

logger = logging.getLogger("django_channels_router")

try:
    from channels_redis.core import RedisChannelLayer
    from redis.exceptions import ResponseError
except ImportError:  # the redis extra is not installed
    RedisChannelLayer = ResponseError = None  # type: ignore[assignment,misc]

#: Seconds between two checks of the memberships (and the longest a lost one goes unnoticed).
CHECK_EVERY = 3.0
#: Seconds a failed leave is tried again for, with backoff from 1 s up to ``LEAVE_BACKOFF``.
LEAVE_FOR = 600.0
LEAVE_BACKOFF = 60.0
#: Seconds one check of the memberships may take.
CHECK_TIMEOUT = 5.0


@dataclass
class Member:
    consumer: Any
    joined: float  # time.monotonic() of the last join


@dataclass
class Leave:
    attempts: int
    due: float
    until: float


class Watcher:
    """The memberships one event loop's connections hold in one channel layer."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.members: dict[str, dict[str, Member]] = {}  # group -> channel -> member
        self.leaving: dict[tuple[str, str], Leave] = {}
        self.checks_redis = RedisChannelLayer is not None and isinstance(layer, RedisChannelLayer)
        expiry = getattr(layer, "group_expiry", None)
        self.renew_after = expiry / 2 if expiry else None
        self.every = min(CHECK_EVERY, expiry / 4) if expiry else CHECK_EVERY
        self.task: asyncio.Task[None] | None = None
        self._recovering: set[asyncio.Task[Any]] = set()

    def add(self, group: str, consumer: Any) -> None:
        self.leaving.pop((group, consumer.channel_name), None)
        self.members.setdefault(group, {})[consumer.channel_name] = Member(consumer, time.monotonic())
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    def remove(self, group: str, channel: str) -> None:
        """Stop holding a membership (its leave is the caller's business)."""
        channels = self.members.get(group, {})
        channels.pop(channel, None)
        if not channels:
            self.members.pop(group, None)
        self._stop_if_idle()

    def leave_later(self, group: str, channel: str) -> None:
        """Leave ``group`` at the next check, and again after each failure, for up to ``LEAVE_FOR`` s."""
        if (group, channel) not in self.leaving:
            now = time.monotonic()
            self.leaving[(group, channel)] = Leave(0, now, now + LEAVE_FOR)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    def _stop_if_idle(self) -> None:
        if not self.members and not self.leaving and self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
            self.task = None

    async def _run(self) -> None:
        while self.members or self.leaving:
            await asyncio.sleep(self.every)
            try:
                await self.check()
            except Exception:
                logger.exception("Could not check the group memberships of this process")
        self.task = None

    async def check(self) -> None:
        """One round: retry leaves, rejoin lost and ageing memberships, tell whom it concerns."""
        started = time.monotonic()
        await self._retry_leaves()
        lost = await self._lost() if self.checks_redis else set()
        lost = {pair for pair in lost if (member := self._member(*pair)) and member.joined < started}  # else rejoined
        now = time.monotonic()
        ageing = set() if self.renew_after is None else {
            (group, channel) for group, channels in self.members.items()
            for channel, member in channels.items() if now - member.joined >= self.renew_after}
        rejoin = [pair for pair in lost | ageing if self._member(*pair)]
        results = await asyncio.gather(*(layer_call(self.layer, "group_add", *pair) for pair in rejoin),
                                       return_exceptions=True)
        recovered: dict[int, Any] = {}
        for (group, channel), result in zip(rejoin, results, strict=True):
            member = self._member(group, channel)
            if member is None:  # left while it was joined again: leave once more
                self.leave_later(group, channel)
            elif not isinstance(result, BaseException):
                member.joined = now
                if (group, channel) in lost:
                    recovered[id(member.consumer)] = member.consumer
        if lost:
            logger.warning("The channel layer had lost %d group memberships of this process (Redis flushed, "
                           "evicted or failed over); joined again, %d connections told to resync.",
                           len(lost), len(recovered))
        for consumer in recovered.values():
            task = asyncio.ensure_future(consumer.recover_from_layer(since=started))
            self._recovering.add(task)
            task.add_done_callback(self._recovering.discard)

    def _member(self, group: str, channel: str) -> Member | None:
        return self.members.get(group, {}).get(channel)

    async def _lost(self) -> set[tuple[str, str]]:
        """The memberships channels-redis' Redis no longer holds."""
        layer, by_host = self.layer, dict[Any, list[tuple[str, list[str]]]]()
        for group, members in self.members.items():
            by_host.setdefault(layer.consistent_hash(group), []).append((group, list(members)))
        lost: set[tuple[str, str]] = set()
        for index, pairs in by_host.items():
            try:
                async with asyncio.timeout(CHECK_TIMEOUT), call_slots(layer):
                    async with layer.connection(index).pipeline(transaction=False) as pipe:
                        for group, channels in pairs:
                            pipe.zmscore(layer._group_key(group), channels)
                        answers = await pipe.execute()
            except ResponseError as exc:  # a Redis before 6.2: no ZMSCORE
                logger.warning("Cannot check group memberships on this Redis (%s); lost ones are not noticed.", exc)
                self.checks_redis = False
                return set()
            except Exception as exc:  # unreachable: the consumers' receive reports the outage
                logger.debug("Could not check group memberships: %s", exc or type(exc).__name__)
                continue
            for (group, channels), scores in zip(pairs, answers, strict=True):
                lost.update((group, channel) for channel, score in zip(channels, scores, strict=True) if score is None)
        return lost

    async def _retry_leaves(self) -> None:
        now = time.monotonic()
        due = [pair for pair, leave in self.leaving.items() if leave.due <= now]
        results = await asyncio.gather(*(layer_call(self.layer, "group_discard", *pair) for pair in due),
                                       return_exceptions=True)
        for pair, result in zip(due, results, strict=True):
            leave = self.leaving.get(pair)
            if leave is None:
                continue
            if not isinstance(result, BaseException):
                del self.leaving[pair]
            elif now >= leave.until:
                del self.leaving[pair]
                logger.warning("Gave up leaving group %r after %d attempts (%s); the layer expires the member.",
                               pair[0], leave.attempts + 1, result or type(result).__name__)
            else:
                leave.attempts += 1
                leave.due = now + min(LEAVE_BACKOFF, 2.0 ** leave.attempts)


#: One watcher per channel layer and event loop.
_watchers: PerLoop[Watcher] = WeakKeyDictionary()


def watcher(layer: Any) -> Watcher:
    """The watcher of ``layer`` on this event loop."""
    return on_this_loop(_watchers, layer, Watcher)


async def join(layer: Any, group: str, consumer: Any) -> None:
    """Join ``consumer`` to ``group`` and keep it there; 503 ``channel_layer_unavailable`` when
    the layer cannot be reached (see :func:`~django_channels_router.push.group_add`)."""
    await group_add(layer, group, consumer.channel_name)
    watcher(layer).add(group, consumer)


async def leave(layer: Any, group: str, channel: str) -> None:
    """Leave ``group``; when the layer fails, the leave is logged and tried again later."""
    found = watcher(layer)
    found.remove(group, channel)
    try:
        await layer_call(layer, "group_discard", group, channel)
    except asyncio.CancelledError:
        found.leave_later(group, channel)
        raise
    except Exception as exc:
        logger.warning("Could not leave group %r (%s); trying again.", group, exc or type(exc).__name__)
        found.leave_later(group, channel)


async def rejoin(consumer: Any) -> None:
    """Join ``consumer``'s groups again after an outage (a restarted Redis forgot them); raises
    what the layer raises."""
    found = watcher(consumer.channel_layer)
    for group in list(consumer.joined_groups):
        await layer_call(consumer.channel_layer, "group_add", group, consumer.channel_name)
        member = found._member(group, consumer.channel_name)
        if member is not None:
            member.joined = time.monotonic()


async def leave_all(consumer: Any) -> None:
    """Leave every group ``consumer`` joined at once, from the event loop, without waiting for
    the disconnect (whose ``leave()`` calls the sync consumer runs in a worker thread)."""
    for group in list(consumer.joined_groups):
        await leave(consumer.channel_layer, group, consumer.channel_name)
        consumer.joined_groups.discard(group)


def release(consumer: Any) -> None:
    """The connection is gone: stop keeping its memberships, and leave any it did not leave."""
    if not consumer.joined_groups:
        return
    found = watcher(consumer.channel_layer)
    for group in consumer.joined_groups:
        member = found._member(group, consumer.channel_name)
        if member is not None and member.consumer is consumer:
            found.remove(group, consumer.channel_name)
            found.leave_later(group, consumer.channel_name)
    consumer.joined_groups.clear()


def _reraise_cancellation(exc: Exception) -> None:
    """Raise ``CancelledError`` if this task is being cancelled and ``exc`` stands in for it.

    channels-redis's cancel handling can end in an ordinary exception (a ``KeyError`` or
    ``AssertionError`` in its cleanup); retrying on it would keep a closed connection's
    consumer alive for good, and the server could never shut down.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError() from exc


class GroupMembership:
    """A connection's place in the channel layer: the groups it joined (kept by the
    :class:`Watcher`), and its channel, listened to with patience through layer outages."""

    _layer_recovered_at = 0.0

    channel_layer: Any
    channel_name: str

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Groups joined with ``join()``; kept joined (see :mod:`.groups`), left when the connection closes.
        self.joined_groups: set[str] = set()

    def layer_for(self, group: str) -> Any:
        """The channel layer, once ``group`` is known to be a name it accepts."""
        if getattr(self, "channel_layer", None) is None:
            raise ImproperlyConfigured("Groups need a channel layer: configure settings.CHANNEL_LAYERS.")
        require_group_name(self.channel_layer, group)
        return self.channel_layer

    @property
    def channel_receive(self) -> Callable[[], Any]:
        """What Channels awaits for channel-layer messages: the layer's receive, made patient.

        Channels ends the whole connection when the layer's receive raises (Redis down). A
        router keeps answering requests instead: it logs the outage and retries with backoff.
        """
        return self._receive_from_layer

    @channel_receive.setter
    def channel_receive(self, receive: Callable[[], Any]) -> None:
        self._layer_receive = receive

    async def _receive_from_layer(self) -> Any:
        delay, failed_at = 0.5, None
        while True:
            try:
                return await self._layer_receive()
            except Exception as exc:
                _reraise_cancellation(exc)
                problem = receive_timeout_problem(self.channel_layer)
                logger.warning("Channel layer unavailable (%s); pushes to this connection resume when it is back.%s",
                               exc or type(exc).__name__, f" The layer is misconfigured: {problem} (check "
                               "channels_router.E010)." if problem else "")
                failed_at = failed_at or time.monotonic()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                if await self._rejoin_groups():
                    await self.recover_from_layer(since=failed_at)
                    failed_at = None

    async def _rejoin_groups(self) -> bool:
        """After an outage, join the groups again (a restarted Redis has forgotten them); whether
        the layer answered."""
        try:
            await rejoin(self)
        except Exception as exc:
            _reraise_cancellation(exc)  # else still down: the next receive says so and waits longer
            return False
        return True

    async def recover_from_layer(self, since: float) -> None:
        """Call :meth:`layer_recovered` for a loss noticed at ``since`` (``time.monotonic()``),
        unless a call after then covered it: the group watcher and a failed receive may both
        notice one Redis restart."""
        if self._layer_recovered_at > since:
            return
        self._layer_recovered_at = time.monotonic()
        await self.layer_recovered()

    async def layer_recovered(self) -> None:
        """Called when the channel layer answers again after an outage, during which pushes to this
        connection were lost. Subscriptions tell their clients to re-read (``resync``)."""
