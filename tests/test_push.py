"""Server push: groups, broadcasts from anywhere, pushes to one connection."""

import asyncio
import contextlib
import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.test import override_settings

from django_channels_router import BroadcastError, broadcast, broadcast_sync
from tests.conftest import CONSUMERS, InProcessClient, free_port, request

ENVELOPE_KEYS = {"uuid", "route", "status", "headers", "payload"}


async def member(kind, group="news"):
    client = InProcessClient(CONSUMERS[kind])
    await client.open()
    assert (await request(client, "join", group))["payload"] == [group]
    return client


async def nothing_more(client, wait=0.2):
    assert await client.comm.receive_nothing(timeout=wait)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_broadcast_reaches_every_member_once_as_a_push(kind):
    first, second = await member(kind), await member(kind)
    outsider = InProcessClient(CONSUMERS[kind])
    await outsider.open()
    await broadcast("news", "headline", {"title": "Hi"}, {"topic": "t"})
    pushes = [await first.recv(), await second.recv()]
    for push in pushes:
        assert set(push) == ENVELOPE_KEYS
        assert (push["route"], push["status"], push["headers"], push["payload"]) == ("headline", 200, {"topic": "t"}, {"title": "Hi"})
        uuid.UUID(push["uuid"])  # a fresh server-made id, so the client hands it to onMessageReceived
    # one frame for every member (encoded once, shared in the process): new to each, made per broadcast
    assert pushes[0]["uuid"] == pushes[1]["uuid"]
    await broadcast("news", "headline", {"title": "Again"})
    assert (await first.recv())["uuid"] != pushes[0]["uuid"]
    await second.recv()
    await nothing_more(first)
    await nothing_more(outsider)
    for client in (first, second, outsider):
        await client.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_leave_and_disconnect_leave_the_group(kind):
    client = await member(kind)
    assert (await request(client, "leave", "news"))["payload"] == []
    await broadcast("news", "headline", 1)
    await nothing_more(client)
    await request(client, "join", "news")
    await client.close()
    assert not get_channel_layer().groups.get("news")  # the in-memory layer's own bookkeeping


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_broadcast_from_a_handler_and_from_sync_code(kind):
    client = await member(kind)
    reply = await request(client, "announce", {"group": "news", "text": "from a route"})
    assert reply["status"] == 202
    push = await client.recv()
    assert (push["route"], push["payload"], push["headers"]) == ("announcement", "from a route", {"from": kind})
    await sync_to_async(broadcast_sync)("news", "headline", "from sync code")
    assert (await client.recv())["payload"] == "from sync code"
    await client.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_push_to_one_connection(kind):
    client = InProcessClient(CONSUMERS[kind])
    await client.open()
    await client.send_text(json.dumps({"uuid": "p", "route": "pushMe", "payload": [1, 2]}))
    push, reply = await client.recv(), await client.recv()
    assert (push["route"], push["payload"], push["status"]) == ("note", [1, 2], 200) and push["uuid"] != "p"
    assert (reply["uuid"], reply["status"]) == ("p", 204)
    await client.close()


@pytest.mark.parametrize("group, message", [("has space", "Invalid group name"), ("x" * 100, "Invalid group name"),
                                            ("émoji", "Invalid group name"), (5, "Invalid group name")])
async def test_invalid_group_names_are_clear_errors(group, message):
    with pytest.raises(ValueError, match=message):
        await broadcast(group, "headline")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_joining_an_invalid_group_is_a_500_and_the_connection_stays(kind):
    client = InProcessClient(CONSUMERS[kind])
    await client.open()
    assert (await request(client, "join", "bad group!"))["status"] == 500
    assert (await request(client, "join", "fine"))["payload"] == ["fine"]
    await client.close()


@pytest.mark.parametrize("route", ["PONG", "PING", "bad route", ""])
async def test_pushes_never_use_a_reserved_or_invalid_route(route):
    with pytest.raises(ValueError, match="Cannot push route"):
        await broadcast("news", route)


async def test_a_payload_json_cannot_hold_fails_at_the_sender():
    with pytest.raises(TypeError):
        await broadcast("news", "headline", object())
    with pytest.raises(ValueError):
        await broadcast("news", "headline", float("nan"))


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                               "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]}}})
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_without_redis_requests_are_served_and_broadcast_raises(kind, caplog):
    client = InProcessClient(CONSUMERS[kind])
    await client.open()
    assert (await request(client, "echo", "still served"))["payload"]["payload"] == "still served"
    with pytest.raises(BroadcastError, match="Could not broadcast 'headline' to group 'news'"):
        await broadcast("news", "headline", 1)
    assert (await request(client, "echo", "and again", uuid="2"))["status"] == 200
    await client.close()
    assert "Channel layer unavailable" in caplog.text


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_disconnect_completes_when_leaving_a_group_fails(kind, monkeypatch, caplog):
    client = await member(kind)
    layer = get_channel_layer()

    async def unreachable(group, channel):
        raise ConnectionError("the layer went away")

    monkeypatch.setattr(layer, "group_discard", unreachable)
    await client.close()  # raises if the consumer did not stop cleanly
    assert "Could not leave group 'news'" in caplog.text


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own on a free port, to stop and start again."""
    import shutil
    import subprocess
    import time

    from tests.conftest import reachable

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()

    def start():
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                 "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not reachable(port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        return proc

    servers = [start()]
    yield port, servers, start
    for proc in servers:
        proc.terminate()
        proc.wait(timeout=10)


async def test_groups_are_joined_again_after_redis_restarts(private_redis, caplog):
    port, servers, start = private_redis
    layers = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                          "CONFIG": {"hosts": [f"redis://127.0.0.1:{port}/0"]}}}
    with override_settings(CHANNEL_LAYERS=layers):
        client = await member("async")
        await broadcast("news", "headline", "before")
        assert (await client.recv())["payload"] == "before"

        servers[0].terminate()  # Redis restarts and forgets every group
        await asyncio.to_thread(servers[0].wait, 10)
        assert (await request(client, "echo", "served meanwhile"))["status"] == 200
        await asyncio.sleep(1)
        servers.append(start())

        # The consumer notices, backs off and joins its groups again; broadcast until it hears.
        for attempt in range(40):
            with contextlib.suppress(BroadcastError):  # the pool may still hold a dead connection
                await broadcast("news", "headline", f"after {attempt}")
            if not await client.comm.receive_nothing(timeout=0.5):
                break
        assert (await client.recv())["payload"].startswith("after")
        await client.close()
    assert "Channel layer unavailable" in caplog.text


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_connection_stays_in_its_groups_past_the_layers_group_expiry(kind):
    # The layer forgets a member group_expiry after it joined (a day by default); the consumer
    # joins again before then, so a long-lived connection keeps getting the group's pushes.
    layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"group_expiry": 1}}}
    with override_settings(CHANNEL_LAYERS=layers):
        client = await member(kind)
        await asyncio.sleep(1.6)
        await broadcast("news", "headline", "a second and more later")
        assert (await client.recv())["payload"] == "a second and more later"
        await client.close()


NO_REDIS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                        "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]}}}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["sync", "async", "model"])
async def test_joining_while_the_layer_is_down_is_503_and_the_connection_stays(kind):
    from django_channels_router.testing import RouterCommunicator
    from tests.drf import ArticleRouter

    with override_settings(CHANNEL_LAYERS=NO_REDIS):
        if kind == "model":
            comm = RouterCommunicator(ArticleRouter.as_asgi(), "/ws/")
            assert (await comm.connect())[0]
            reply = await comm.request("subscribe")
        else:
            comm = RouterCommunicator(CONSUMERS[kind].as_asgi(), "/ws/")
            assert (await comm.connect())[0]
            reply = await comm.request("join", "news")
        assert (reply["status"], reply["payload"]["code"]) == (503, "channel_layer_unavailable")
        assert (await comm.request("PING"))["route"] == "PONG"
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_first_subscribe_after_a_redis_restart_is_served(private_redis):
    from django_channels_router.testing import RouterCommunicator
    from tests.drf import ArticleRouter

    port, servers, start = private_redis
    layers = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                          "CONFIG": {"hosts": [f"redis://127.0.0.1:{port}/0"]}}}
    with override_settings(CHANNEL_LAYERS=layers):
        await broadcast("warm", "up", 1)  # the layer's pool holds a connection now
        servers[0].terminate()
        await asyncio.to_thread(servers[0].wait, 10)
        servers.append(start())  # this process has not seen the outage: its pooled connection is dead
        comm = RouterCommunicator(ArticleRouter.as_asgi(), "/ws/")
        assert (await comm.connect())[0]
        reply = await comm.request("subscribe")
        assert reply["status"] == 201, reply
        await comm.disconnect()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_closed_connection_ends_when_the_layer_turns_its_cancellation_into_an_error(kind):
    # The consumer retries a failing layer receive; a cancellation dressed as an error must still
    # end it, or the connection's task lives for good and the server cannot shut down.
    from django_channels_router.testing import RouterCommunicator
    from tests.layers import CancelTurnsIntoErrorLayer

    CancelTurnsIntoErrorLayer.converted = 0
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "tests.layers.CancelTurnsIntoErrorLayer"}}):
        comm = RouterCommunicator(CONSUMERS[kind].as_asgi(), "/ws/")
        assert (await comm.connect())[0]
        assert (await comm.request("join", "news"))["status"] == 200
        await comm.send_input({"type": "websocket.disconnect", "code": 1000})
        try:
            done, _ = await asyncio.wait({comm.future}, timeout=3)  # waits without cancelling it
            assert comm.future in done, "the consumer outlived its connection"
        finally:
            await comm.wait()  # cancels it, if still running
    assert CancelTurnsIntoErrorLayer.converted == 1
