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
