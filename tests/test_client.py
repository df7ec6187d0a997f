"""django_channels_router.client.RouterClient against real daphne and uvicorn servers."""

import asyncio
import contextlib
import os

import pytest

from django_channels_router.client import GaveUp, Reconnect, RequestTimeout, RouterClient
from tests.conftest import ROOT, SERVERS, free_port, server_process

FAST = Reconnect(initial=0.05, maximum=0.3, max_refusals=3)


@pytest.fixture(params=["daphne", "uvicorn"])
def server(request):
    return request.getfixturevalue(f"{request.param}_server")


@contextlib.contextmanager
def serving(kind, port, log_dir):
    """tests.asgi on a port of our choosing, so that a restart comes back where it was."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'testproject'}", "DJANGO_SETTINGS_MODULE": "tests.settings"}
    with server_process(SERVERS[kind](port, "tests.asgi:application"), port, log_dir / f"{kind}-{port}.log",
                        env=env) as proc:
        yield proc


async def test_every_status_is_a_reply(server):
    async with RouterClient(f"{server}/ws/async/") as client:
        assert (await client.request("echo", "hi"))["payload"] == {"payload": "hi", "headers": {}}
        statuses = [(await client.request(route, payload))["status"] for route, payload in [
            ("noSuchRoute", None), ("raise", "validation"), ("raise", "not_found"), ("secret", None),
            ("raise", "throttled"), ("fail", None), ("notImplemented", None)]]
        assert statuses == [404, 400, 404, 401, 429, 500, 501]


async def test_two_hundred_concurrent_requests_each_get_their_own_reply_once(server):
    async with RouterClient(f"{server}/ws/limits/async/", headers={"who": "test"}) as client:  # 256 may wait
        replies = await asyncio.gather(*(client.request("echo", n) for n in range(200)))
        assert [reply["payload"] for reply in replies] == [{"payload": n, "headers": {"who": "test"}} for n in range(200)]
        assert len({reply["uuid"] for reply in replies}) == 200 and not client._pending


async def test_the_heartbeat_keeps_one_connection_open(server):
    async with RouterClient(f"{server}/ws/sync/", heartbeat=0.1, pong_timeout=2) as client:
        await asyncio.sleep(3)
        assert (client.opened, client.reconnects, client.state) == (1, 0, "open")
        assert client.pongs >= 20
        assert (await client.request("echo", 1))["status"] == 200


async def test_a_request_with_no_reply_in_time_times_out_and_its_late_reply_is_dropped(server):
    async with RouterClient(f"{server}/ws/async/", request_timeout=0.5) as client:
        with pytest.raises(RequestTimeout):
            await client.request("slow", 1.0)
        await asyncio.sleep(0.8)  # the late reply arrives now and matches nothing
        assert (await client.request("echo", "after"))["payload"]["payload"] == "after"


async def test_a_refused_handshake_gives_up_after_its_tries(server):
    client = RouterClient(f"{server}/ws/private/", reconnect=FAST)  # login_required: 403 to an anonymous user
    with pytest.raises(GaveUp, match="refused 3 times running"):
        await client.connect()
    assert (client.refusals, client.opened, client.state) == (3, 0, "closed")
    await client.close()


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_after_a_server_restart_it_reconnects_resubscribes_and_pushes_arrive_again(kind, tmp_path):
    port = free_port()
    resubscribed = []
    with serving(kind, port, tmp_path) as first:
        client = RouterClient(f"ws://127.0.0.1:{port}/ws/async/", reconnect=FAST)
        await client.connect()
        pushes = client.pushes()
        news = await client.subscribe("join", "news", on_resubscribed=resubscribed.append)
        assert news.reply["payload"] == ["news"]
        assert (await client.request("announce", {"group": "news", "text": "before"}))["status"] == 202
        assert (await asyncio.wait_for(anext(pushes), 5))["payload"] == "before"
        first.terminate()
        await asyncio.to_thread(first.wait, 10)
    with serving(kind, port, tmp_path):
        for _ in range(200):
            if resubscribed:
                break
            await asyncio.sleep(0.05)
        assert [reply["payload"] for reply in resubscribed] == [["news"]]  # joined again on the new server
        assert (client.opened, client.reconnects, news.resubscribed) == (2, 1, 1)
        assert (await client.request("announce", {"group": "news", "text": "after"}))["status"] == 202
        assert (await asyncio.wait_for(anext(pushes), 5))["payload"] == "after"
        await client.close()


# What the server closes with: daphne sends only 1000 and 3000-4999, hence 4012 there (PROTOCOL.md).
RESTART_CODE = {"daphne": 4012, "uvicorn": 1012}


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_restart_close_reconnects_at_once_and_a_policy_close_gives_up(kind, request):
    server = request.getfixturevalue(f"{kind}_server")
    slow = Reconnect(initial=5, maximum=5, max_refusals=3)  # a backoff would outlast the test
    async with RouterClient(f"{server}/ws/async/", reconnect=slow) as client:
        with contextlib.suppress(Exception):  # the reply may or may not beat the close
            await client.request("closeWith", RESTART_CODE[kind])
        for _ in range(100):
            if client.opened == 2:
                break
            await asyncio.sleep(0.02)
        assert client.opened == 2  # well within the 5 s backoff: no wait after a restart code
        assert (await client.request("echo", "back"))["payload"]["payload"] == "back"
    if kind == "uvicorn":  # 1008 (policy violation) and 1011 cannot be sent through daphne
        for code in (1008, 1011):
            client = RouterClient(f"{server}/ws/async/", reconnect=FAST)
            await client.connect()
            with contextlib.suppress(Exception):
                await client.request("closeWith", code)
            with pytest.raises(GaveUp, match=f"closed with code {code}"):
                await client.request("echo", 1)
            assert (client.opened, client.state) == (1, "closed")
            await client.close()
