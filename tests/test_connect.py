"""Connect-time policy: refused connections are refused at the handshake (HTTP 403), on
daphne and on uvicorn, so the browser client gives up instead of reconnecting forever."""

import asyncio

import pytest
from django.contrib.auth.models import AnonymousUser, User
from rest_framework import permissions
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from django_channels_router.testing import RouterCommunicator
from tests.conftest import daphne
from tests.consumers import AsyncProtocolSocket, PrivateSocket, StaffOnlyAsyncSocket
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


@pytest.mark.django_db(transaction=True)
async def test_a_check_connect_that_runs_no_user_code_needs_no_worker_thread():
    import asyncio
    import threading

    from django_channels_router.workers import worker_owner, worker_pool

    pool, release = worker_pool(), threading.Event()
    blocked = []
    for n in range(pool.max_workers):  # every thread busy, each for a connection of its own
        token = worker_owner.set(f"busy-{n}")
        blocked.append(pool.submit(release.wait, 10))
        worker_owner.reset(token)
    try:
        members = type("Members", (ArticleRouter,), {"connect_permission_classes": [permissions.IsAuthenticated]})
        private = type("PrivateAsync", (AsyncProtocolSocket,), {"login_required": True})
        for consumer in (private, ArticleRouter):  # the core's check, and the bridge's without permission classes
            comm = RouterCommunicator(consumer.as_asgi(), "/ws/", user=User(username="ada"))
            assert (await comm.connect(timeout=0.5))[0] is True, consumer
            await comm.disconnect()
        # Permission classes are user code: they wait for a thread, and get one as it frees up.
        comm = RouterCommunicator(members.as_asgi(), "/ws/", user=User(username="ada"))
        connecting = asyncio.ensure_future(comm.connect(timeout=5))
        await asyncio.sleep(0.3)
        assert not connecting.done()
        release.set()
        assert (await connecting)[0] is True
        await comm.disconnect()
    finally:
        release.set()
        for future in blocked:
            future.result(5)


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_refused_handshake_is_logged_with_its_reason(kind, tmp_path):
    """The client sees only HTTP 403; the server's log says which check refused and why:
    ``django_channels_router.security.AllowedHostsOriginValidator`` (the Origin) and the
    router's own ``login_required``."""
    with daphne("tests.asgi:logged_validated_application", tmp_path, server=kind,
                DJANGO_SETTINGS_MODULE="tests.settings") as url:
        for path, origin in [("/ws/async/", None), ("/ws/async/", "http://evil.example"),
                             ("/ws/private/", "http://127.0.0.1")]:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"{url}{path}", origin=origin):
                    pass
            assert refused.value.response.status_code == 403
        async with connect(f"{url}/ws/async/", origin="http://127.0.0.1"):  # let in: nothing logged
            pass
        log = tmp_path / "daphne.log"
        for _ in range(100):
            if log.read_text().count("Refused the WebSocket handshake") >= 3:
                break
            await asyncio.sleep(0.05)
    validator = "AllowedHostsOriginValidator (ALLOWED_HOSTS) refused"
    lines = [line for line in log.read_text().splitlines() if "Refused the WebSocket handshake" in line]
    assert [line[line.index("Refused"):] for line in lines] == [
        f"Refused the WebSocket handshake to /ws/async/ (HTTP 403): {validator} no Origin header; allowed: ['127.0.0.1'].",
        f"Refused the WebSocket handshake to /ws/async/ (HTTP 403): {validator} Origin 'http://evil.example'; "
        "allowed: ['127.0.0.1'].",
        "Refused the WebSocket handshake to /ws/private/ (HTTP 403): login_required and the user is not "
        "authenticated (user AnonymousUser).",
    ]
