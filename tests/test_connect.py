"""Connect-time policy: refused connections are refused at the handshake (HTTP 403), on
daphne and on uvicorn, so the browser client gives up instead of reconnecting forever."""

import pytest
from django.contrib.auth.models import AnonymousUser, User
from rest_framework import permissions
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from django_channels_router.testing import RouterCommunicator
from tests.consumers import PrivateSocket, StaffOnlyAsyncSocket
from tests.drf import ArticleRouter


@pytest.mark.parametrize("server", ["daphne_server", "uvicorn_server"])
@pytest.mark.parametrize("path", ["/ws/private/", "/ws/staff/"])
async def test_a_refused_connection_is_refused_at_the_handshake(request, server, path):
    url = request.getfixturevalue(server)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{url}{path}"):
            pass
    assert refused.value.response.status_code == 403
    async with connect(f"{url}/ws/async/") as ws:  # the others are served as before
        await ws.send('{"uuid": "u", "route": "PING"}')
        assert "PONG" in await ws.recv()


@pytest.mark.parametrize("consumer, user, accepted", [
    (PrivateSocket, AnonymousUser(), False),
    (PrivateSocket, User(username="ada"), True),
    (StaffOnlyAsyncSocket, User(username="ada"), False),
    (StaffOnlyAsyncSocket, User(username="root", is_staff=True), True),
])
async def test_check_connect_decides(consumer, user, accepted):
    comm = RouterCommunicator(consumer.as_asgi(), "/ws/", user=user)
    connected, _ = await comm.connect()
    assert connected is accepted
    if connected:
        assert (await comm.request("echo", 1))["status"] == 200
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_drf_permission_classes_at_connect():
    router = type("Members", (ArticleRouter,), {"connect_permission_classes": [permissions.IsAuthenticated]})
    refused = RouterCommunicator(router.as_asgi(), "/ws/", user=AnonymousUser())
    assert (await refused.connect())[0] is False
    accepted = RouterCommunicator(router.as_asgi(), "/ws/", user=User(username="ada"))
    assert (await accepted.connect())[0] is True
    await accepted.disconnect()
