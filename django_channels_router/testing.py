"""Test helpers: talk to a router consumer the way ``@djanext/observable-socket`` does."""

from __future__ import annotations

import itertools
import json
from typing import Any

from channels.testing import WebsocketCommunicator

from .protocol import Envelope

__all__ = ["RouterCommunicator"]


class RouterCommunicator(WebsocketCommunicator):
    """A ``WebsocketCommunicator`` that sends requests and waits for their replies::

        comm = RouterCommunicator(AppSocket.as_asgi(), "/ws/app/")
        await comm.connect()
        reply = await comm.request("sayHello", {"name": "Ada"})
        assert reply["payload"] == "Hello, Ada!"

    Messages that arrive while waiting and answer no pending request (pushes, replies to
    ``send_request``) are kept, in order, for :meth:`receive_message`; :meth:`receive_nothing`
    counts them.
    """

    _ids = itertools.count(1)

    def __init__(self, application: Any, path: str, headers: Any = None, subprotocols: Any = None,
                 spec_version: Any = None, *, user: Any = None) -> None:
        super().__init__(application, path, headers, subprotocols, spec_version)
        if user is not None:
            self.scope["user"] = user
        self._received: list[Envelope] = []

    async def send_request(self, route: str, payload: Any = None, headers: dict[str, Any] | None = None,
                           uuid: str | int | None = None) -> str | int:
        """Send one request without waiting; returns its uuid."""
        uuid = uuid if uuid is not None else f"test-{next(self._ids)}"
        await self.send_to(text_data=json.dumps(
            {"uuid": uuid, "route": route, "headers": headers or {}, "payload": payload, "status": 200}))
        return uuid

    async def request(self, route: str, payload: Any = None, headers: dict[str, Any] | None = None,
                      *, uuid: str | int | None = None, timeout: float = 3) -> Envelope:
        """Send a request and return its reply (``uuid``, ``route``, ``status``, ``headers``, ``payload``)."""
        uuid = await self.send_request(route, payload, headers, uuid)
        while True:
            message: Envelope = json.loads(await self.receive_from(timeout))
            if message.get("uuid") == uuid:
                return message
            self._received.append(message)

    async def receive_nothing(self, timeout: float = 0.1, interval: float = 0.01) -> bool:
        """Whether no message arrives within ``timeout``, counting those :meth:`request` kept."""
        return not self._received and await super().receive_nothing(timeout, interval)

    async def receive_message(self, timeout: float = 3) -> Envelope:
        """The next message that was not the reply to :meth:`request` (a push, for instance)."""
        if self._received:
            return self._received.pop(0)
        return json.loads(await self.receive_from(timeout))
