"""Channel layers that misbehave on purpose: the in-memory layer, made slow or failing at group_send."""

import asyncio

from channels.layers import InMemoryChannelLayer


class SlowGroupSendLayer(InMemoryChannelLayer):
    async def group_send(self, group, message):
        await asyncio.sleep(0.5)
        await super().group_send(group, message)


class FailingGroupSendLayer(InMemoryChannelLayer):
    async def group_send(self, group, message):
        raise ConnectionError("the channel layer is down")


class CancelTurnsIntoErrorLayer(InMemoryChannelLayer):
    """Once, turns the cancellation of a ``receive`` into a ``KeyError``, as channels-redis's
    cancel cleanup can (``del self.receive_buffer[channel]`` on a buffer already gone)."""

    converted = 0

    async def receive(self, channel):
        try:
            return await super().receive(channel)
        except asyncio.CancelledError:
            if type(self).converted:
                raise
            type(self).converted += 1
            raise KeyError(channel) from None


class FlakyDiscardLayer(InMemoryChannelLayer):
    """Fails the first two ``group_discard`` calls, as a Redis that is briefly unreachable does."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.discards = 0

    async def group_discard(self, group, channel):
        self.discards += 1
        if self.discards <= 2:
            raise ConnectionError("the channel layer is down")
        await super().group_discard(group, channel)
