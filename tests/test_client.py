"""django_channels_router.client.RouterClient against real daphne and uvicorn servers."""

import asyncio
import contextlib
import json
import logging
import os
import threading
import uuid

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import serve

from demo.models import Article
from django_channels_router.client import (
    ConnectionClosedError,
    GaveUpError,
    QueueFullError,
    Reconnect,
    RequestTimeoutError,
    RetriesExhaustedError,
    RouterClient,
)
from django_channels_router.models import IdempotencyKey
from tests.conftest import ROOT, SERVERS, daphne, free_port, server_process

FAST = Reconnect(initial=0.05, maximum=0.3, max_refusals=3)


@pytest.fixture(params=["daphne", "uvicorn"])
def server(request):
    return request.getfixturevalue(f"{request.param}_server")


@contextlib.contextmanager
def serving(kind, port, log_dir, **extra):
    """tests.asgi on a port of our choosing, so that a restart comes back where it was."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'testproject'}", "DJANGO_SETTINGS_MODULE": "tests.settings",
           **extra}
    with server_process(SERVERS[kind](port, "tests.asgi:application"), port, log_dir / f"{kind}-{port}.log",
                        env=env) as proc:
        yield proc


async def test_every_status_is_a_reply(server):
    async with RouterClient(f"{server}/ws/async/") as client:
        assert (await client.request("echo", "hi", idempotency_key=None))["payload"] == {"payload": "hi", "headers": {}}
        statuses = [(await client.request(route, payload))["status"] for route, payload in [
            ("noSuchRoute", None), ("raise", "validation"), ("raise", "not_found"), ("secret", None),
            ("raise", "throttled"), ("fail", None), ("notImplemented", None)]]
        assert statuses == [404, 400, 404, 401, 429, 500, 501]


async def test_two_hundred_concurrent_requests_each_get_their_own_reply_once(server):
    async with RouterClient(f"{server}/ws/limits/async/", headers={"who": "test"}) as client:  # 256 may wait
        replies = await asyncio.gather(*(client.request("echo", n) for n in range(200)))
        assert [reply["payload"]["payload"] for reply in replies] == list(range(200))
        assert all(reply["payload"]["headers"].keys() == {"who", "idempotency-key"} for reply in replies)
        assert len({reply["payload"]["headers"]["idempotency-key"] for reply in replies}) == 200  # one key each
        assert len({reply["uuid"] for reply in replies}) == 200 and not client._pending


async def test_keys_are_fresh_by_default_yours_if_given_and_none_when_turned_off(server):
    """Every request carries a fresh ``idempotency-key`` unless the request or the client says no."""
    sent = lambda reply: reply["payload"]["headers"]  # noqa: E731  (echo answers with the headers it got)
    async with RouterClient(f"{server}/ws/async/") as client:
        first, second = [sent(await client.request("echo", 1))["idempotency-key"] for _ in range(2)]
        assert first != second and len(first) >= 32
        assert sent(await client.request("echo", 1, idempotency_key="mine")) == {"idempotency-key": "mine"}
        assert sent(await client.request("echo", 1, {"idempotency-key": "in-headers"})) == {
            "idempotency-key": "in-headers"}
        assert sent(await client.request("echo", 1, idempotency_key=None)) == {}
    async with RouterClient(f"{server}/ws/async/", idempotency_keys=False) as client:
        assert sent(await client.request("echo", 1)) == {}
        assert sent(await client.request("echo", 1, idempotency_key="asked")) == {"idempotency-key": "asked"}


async def test_the_heartbeat_keeps_one_connection_open(server):
    async with RouterClient(f"{server}/ws/sync/", heartbeat=0.1, pong_timeout=2) as client:
        await asyncio.sleep(3)
        assert (client.opened, client.reconnects, client.state) == (1, 0, "open")
        assert client.pongs >= 20
        assert (await client.request("echo", 1))["status"] == 200


async def test_a_request_with_no_reply_in_time_times_out_and_its_late_reply_is_dropped(server):
    async with RouterClient(f"{server}/ws/async/", request_timeout=0.5) as client:
        with pytest.raises(TimeoutError) as timed_out:  # the builtin catches it: a RequestTimeoutError
            await client.request("slow", 1.0)
        assert isinstance(timed_out.value, RequestTimeoutError)
        await asyncio.sleep(0.8)  # the late reply arrives now and matches nothing
        assert (await client.request("echo", "after"))["payload"]["payload"] == "after"


async def test_a_refused_handshake_gives_up_after_its_tries(server):
    client = RouterClient(f"{server}/ws/private/", reconnect=FAST)  # login_required: 403 to an anonymous user
    with pytest.raises(GaveUpError, match="refused 3 times running"):
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


# What the server closes with: daphne sends only 1000 and 3000-4999, hence 4012 there (README.md, "The protocol in brief").
RESTART_CODE = {"daphne": 4012, "uvicorn": 1012}


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_restart_close_reconnects_at_once_and_a_policy_close_gives_up(kind, request):
    server = request.getfixturevalue(f"{kind}_server")
    slow = Reconnect(initial=5, maximum=5, max_refusals=3)  # a backoff would outlast the test
    async with RouterClient(f"{server}/ws/async/", reconnect=slow) as client:
        with contextlib.suppress(Exception):  # the reply may or may not beat the close
            # No key: a keyed request is sent again after the reconnect, and this one would close that too.
            await client.request("closeWith", RESTART_CODE[kind], idempotency_key=None)
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
                await client.request("closeWith", code, idempotency_key=None)
            with pytest.raises(GaveUpError, match=f"closed with code {code}"):
                await client.request("echo", 1)
            assert (client.opened, client.state) == (1, "closed")
            await client.close()



# -- the reconnect policy (CLOSE_CODES, Reconnect): the same scenarios as clients/js/test/close-codes.test.mjs

TRY_LATER_CODE = {"daphne": 4013, "uvicorn": 1013}


@pytest.fixture(params=["daphne", "uvicorn"])
def served(request):
    """``(kind, url)`` of each session server."""
    return request.param, request.getfixturevalue(f"{request.param}_server")


async def open_times(client, seconds):
    """When ``client`` opened each connection in its first ``seconds`` (its own clock, from the start)."""
    loop = asyncio.get_running_loop()
    start, times = loop.time(), []
    connecting = asyncio.create_task(client.connect())
    while loop.time() - start < seconds:
        while client.opened > len(times):
            times.append(loop.time() - start)
        await asyncio.sleep(0.005)
    await client.close()
    with contextlib.suppress(Exception):
        await connecting
    return times


async def seconds_until(check, limit=10.0):
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not check():
        assert loop.time() - start < limit, "timed out"
        await asyncio.sleep(0.01)
    return loop.time() - start


@pytest.mark.parametrize("close", ["normal", "restart"])
async def test_the_backoff_grows_against_a_server_that_accepts_then_closes(served, close):
    """Opening is not enough to reset the backoff (nor is a restart code from a connection that
    never proved healthy): 0.05, 0.1, 0.2, 0.4, 0.8 s apart, not 0.05 s (or 0) each time."""
    kind, url = served
    code = RESTART_CODE[kind] if close == "restart" else 1000
    client = RouterClient(f"{url}/ws/closing/?code={code}", reconnect=Reconnect(initial=0.05, maximum=5, jitter=0, restart_window=0.05))
    assert 3 <= len(await open_times(client, 1.7)) <= 7  # 5 or 6; without the growth, 30 or hundreds


async def test_a_connection_that_proved_healthy_resets_the_backoff(served):
    """Open for ``healthy_after``: the next reconnect waits ``initial`` again (0.3 s + 0.1 s each time,
    where a backoff that kept growing would wait 0.1, 0.4, 1.6 s)."""
    policy = Reconnect(initial=0.1, factor=4, maximum=5, jitter=0, healthy_after=0.2)
    client = RouterClient(f"{served[1]}/ws/closing/?code=1000&after=0.3", reconnect=policy)
    assert len(await open_times(client, 2.8)) >= 5  # 6 or 7; 3 without the reset


async def test_a_try_later_close_waits_two_steps_longer(served):
    kind, url = served
    policy = Reconnect(initial=0.15, maximum=5, jitter=0)
    for code, at_least, below in [(1000, 0.15, 0.6), (TRY_LATER_CODE[kind], 0.6, 2.5)]:
        first, second = (await open_times(RouterClient(f"{url}/ws/closing/?code={code}", reconnect=policy), 1.0))[:2]
        assert at_least <= second - first < below, code


async def test_after_a_restart_clients_come_back_spread_over_the_restart_window(served):
    """Twenty healthy clients told "restart" reconnect at random moments within ``restart_window``,
    not all in the same millisecond (nor after a backoff)."""
    kind, url = served
    policy = Reconnect(initial=5, maximum=5, restart_window=1.0)  # a backoff would show as 5 s

    async def reconnect_after_restart():
        async with RouterClient(f"{url}/ws/async/", reconnect=policy) as client:
            assert (await client.request("echo", 1))["status"] == 200  # healthy: it answered
            with contextlib.suppress(Exception):  # the close may beat the reply
                await client.request("closeWith", RESTART_CODE[kind], idempotency_key=None)
            return await seconds_until(lambda: client.opened == 2)

    waits = await asyncio.gather(*(reconnect_after_restart() for _ in range(20)))
    assert max(waits) < 2.0 and max(waits) - min(waits) > 0.3, waits


async def test_a_draining_server_is_waited_for_not_counted_as_refusals(served):
    """A handshake answered "come back soon" (503 with Retry-After on uvicorn, 4013 at once on
    daphne) three times, with ``max_refusals=2``: the client waits and connects; on uvicorn each
    wait honours Retry-After (3600 s, capped at ``maximum``, 0.5 s)."""
    kind, url = served
    policy = Reconnect(initial=0.01, maximum=0.5, max_refusals=2)
    client = RouterClient(f"{url}/ws/busy/?key={uuid.uuid4()}&times=3&retry_after=3600", reconnect=policy)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await client.connect()
    await seconds_until(lambda: client.opened == (4 if kind == "daphne" else 1))  # daphne accepts and closes 3
    took = loop.time() - start
    assert (await client.request("echo", "served"))["payload"]["payload"] == "served"
    assert (client.refusals, client.state) == (0, "open")
    if kind == "uvicorn":
        assert 1.4 < took < 5, took  # 3 waits of 0.5-0.6 s
    await client.close()


async def test_a_reply_larger_than_the_server_keeps_waiting_arrives_on_the_same_connection(uvicorn_server):
    """5 MiB: over websockets' 1 MiB default and over MAX_PENDING_SEND_BYTES (one frame of any size
    may wait). uvicorn only: daphne's own 1 MiB limit refuses to send it."""
    async with RouterClient(f"{uvicorn_server}/ws/sync/") as client:
        reply = await client.request("big", 5 * 2**20)
        assert (reply["status"], len(reply["payload"])) == (200, 5 * 2**20)
        assert (await client.request("echo", "after"))["payload"]["payload"] == "after"
        assert (client.opened, client.state) == (1, "open")


# -- hostile frames: what a broken or hostile server sends must not stop the client --------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# A frame, made from the uuid of the request it comes before and the uuid of a live subscription.
hostile_frames = st.one_of(
    json_values.filter(lambda value: not isinstance(value, dict)).map(lambda value: lambda request, sub: json.dumps(value)),
    st.fixed_dictionaries({}, optional={  # object envelopes with any field of any type (a text uuid: a push)
        "uuid": json_values, "route": json_values, "headers": json_values, "payload": json_values, "status": json_values,
    }).map(lambda envelope: lambda request, sub: json.dumps(envelope)),
    json_values.map(lambda value: lambda request, sub: json.dumps({"uuid": "p", "route": "x", "headers": value})),
    st.text(max_size=100).map(lambda text: lambda request, sub: text),
    st.binary(max_size=100).map(lambda data: lambda request, sub: data),
    st.sampled_from([  # the request's uuid, or the subscription's, where they do not belong
        lambda request, sub: json.dumps([{"uuid": request, "route": "echo", "status": 200, "headers": None, "payload": 0}]),
        lambda request, sub: json.dumps({"uuid": [request], "route": "echo", "status": 200}),
        lambda request, sub: json.dumps({"uuid": {"id": request}}),
        lambda request, sub: json.dumps(request),
        lambda request, sub: json.dumps({"uuid": request, "route": "echo"})[:-1],
        lambda request, sub: json.dumps({"uuid": request, "route": "echo", "status": 200}).encode(),
        lambda request, sub: json.dumps({"uuid": "p", "route": "x", "headers": {"subscription": [sub]}}),
        lambda request, sub: json.dumps({"uuid": "p", "route": "x", "headers": [{"subscription": sub}]}),
        lambda request, sub: json.dumps({"uuid": "p", "route": "PONG", "headers": {"subscription": sub}}),
        lambda request, sub: '{"uuid": NaN, "route": "x"}',
        lambda request, sub: "1e400",
        lambda request, sub: "[" * 100_000 + "]" * 100_000,
        lambda request, sub: b"\xff\xfe" + json.dumps({"uuid": request}).encode(),
    ]),
)


class HostileServer:
    """A raw WebSocket server on 127.0.0.1 that answers every request correctly, after sending
    the frames in ``before_reply`` (made from the request's uuid and ``subscription``)."""

    def __init__(self):
        self.before_reply, self.subscription = [], ""

    async def handle(self, ws):
        async for raw in ws:
            request = json.loads(raw)
            for make in self.before_reply:
                await ws.send(make(request["uuid"], self.subscription))
            await ws.send(json.dumps({"uuid": request["uuid"], "route": request["route"], "status": 200,
                                      "headers": None, "payload": request["payload"]}))


def test_hostile_frames_are_ignored_and_the_client_keeps_answering(caplog):
    hostile = HostileServer()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coroutine, timeout=10):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    received = []  # what the client handed out as pushes, to pushes() and to the subscription

    async def collect(iterator):
        async for push in iterator:
            received.append(push)

    async def start():
        server = await serve(hostile.handle, "127.0.0.1", 0)
        client = RouterClient(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/", request_timeout=3)
        await client.connect()
        subscription = await client.subscribe("subscribe")
        hostile.subscription = subscription.uuid
        collectors = [asyncio.create_task(collect(iterator)) for iterator in (client.pushes(), subscription)]
        return server, client, collectors

    server, client, collectors = run(start())

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(frames=st.lists(hostile_frames, min_size=1, max_size=4), marker=json_values)
    def answers_after(frames, marker):
        hostile.before_reply = frames
        reply = run(client.request("echo", marker))
        assert reply["payload"] == marker
        assert (client.opened, client.state) == (1, "open")
        assert all(isinstance(push, dict) for push in received)

    try:
        with caplog.at_level(logging.CRITICAL, logger="django_channels_router.client"):
            answers_after()
        hostile.before_reply = [lambda request, sub: "[1, 2]"]
        with caplog.at_level(logging.WARNING, logger="django_channels_router.client"):
            assert run(client.request("echo", "logged"))["payload"] == "logged"
        assert "Ignored a frame that is not a JSON object: '[1, 2]'" in caplog.text
    finally:
        for collector in collectors:
            loop.call_soon_threadsafe(collector.cancel)
        run(client.close())
        server.close()
        run(server.wait_closed())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


# -- the handshake's Origin: a project set up the standard Channels way lets the client in ------------

@pytest.mark.parametrize("url, origin", [
    ("ws://127.0.0.1:8000/ws/app/", "http://127.0.0.1:8000"),
    ("wss://user:secret@example.com/ws/?token=1", "https://example.com"),
    ("ws://[::1]:9/", "http://[::1]:9"),
])
def test_the_default_origin_is_the_urls_own(url, origin):
    assert RouterClient(url).origin == origin


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_allowed_hosts_origin_validator_lets_the_default_origin_in(kind, tmp_path):
    """Channels' ``AllowedHostsOriginValidator`` with ``ALLOWED_HOSTS = ["127.0.0.1"]`` refuses a
    handshake with no ``Origin`` or a foreign one (HTTP 403), and lets the client's default in."""
    with daphne("tests.asgi:validated_application", tmp_path, server=kind, DJANGO_SETTINGS_MODULE="tests.settings") as url:
        async with RouterClient(f"{url}/ws/async/", reconnect=FAST) as client:
            assert (await client.request("echo", "in"))["payload"]["payload"] == "in"
        for origin in (None, "http://evil.example"):
            client = RouterClient(f"{url}/ws/async/", reconnect=FAST, origin=origin)
            with pytest.raises(GaveUpError) as refused:
                await client.connect()
            assert str(refused.value).startswith("the handshake was refused 3 times running (HTTP 403): ")
            assert "Origin" in str(refused.value) and "ALLOWED_HOSTS" in str(refused.value), origin
            await client.close()


# -- delivery across reconnects (v1.2): a keyed request is sent again and gets its one reply ------------

USER = {"Authorization": "User 7"}  # tests.idempotent's authentication: the keys are this user's on every connection


@pytest.fixture
def test_database(django_db_setup):
    """``DATABASE_URL`` of this test's PostgreSQL database, for server processes of the test's own."""
    if connection.vendor != "postgresql":
        pytest.skip("the server processes share the test's database on PostgreSQL")
    settings = connection.settings_dict
    return f"postgresql://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"


@database_sync_to_async
def rows(model=Article, **lookup):
    return model.objects.filter(**lookup).count()


def drop(client):
    """Cut the client's connection under it, as a network failure does (no close frame: 1006)."""
    client._ws.transport.abort()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_keyed_create_in_flight_when_the_server_is_killed_resolves_once_after_the_restart(kind, tmp_path,
                                                                                                test_database):
    """SIGKILL while the create runs: its transaction (and the key's record) dies with the process;
    the client sends it again to the restarted server with the same key, and the caller gets one 201."""
    port = free_port()
    client = RouterClient(f"ws://127.0.0.1:{port}/ws/articles/idempotent/", headers=USER, reconnect=FAST)
    with serving(kind, port, tmp_path, DATABASE_URL=test_database) as first:
        await client.connect()
        creating = asyncio.create_task(client.request("slowCreate", {"title": "killed", "sleep": 1.0}))
        await asyncio.sleep(0.5)  # it runs on the server, not committed
        first.kill()
        await asyncio.to_thread(first.wait, 10)
    assert not creating.done()
    with serving(kind, port, tmp_path, DATABASE_URL=test_database):
        reply = await asyncio.wait_for(creating, 30)
        assert reply["status"] == 201 and reply["payload"]["title"] == "killed"
        assert client.opened == 2
        await client.close()
    assert await rows(title="killed") == 1 and await rows(IdempotencyKey) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_keyed_create_whose_connection_drops_gets_the_kept_reply_of_its_one_run(kind, tmp_path, test_database,
                                                                                         caplog):
    """The connection drops while the server still runs the create, which commits: the re-send has
    the same key, so it is answered 409 request_in_progress while the first runs (the client waits
    and asks again), then gets the first run's reply, replayed; one row."""
    port = free_port()
    with serving(kind, port, tmp_path, DATABASE_URL=test_database):
        async with RouterClient(f"ws://127.0.0.1:{port}/ws/articles/idempotent/", headers=USER, reconnect=FAST) as client:
            creating = asyncio.create_task(client.request("slowCreate", {"title": "dropped", "sleep": 1.5},
                                                          idempotency_key="drop-1"))
            await asyncio.sleep(0.5)
            drop(client)
            with caplog.at_level(logging.DEBUG, logger="django_channels_router.client"):
                reply = await asyncio.wait_for(creating, 30)
            assert reply["status"] == 201 and reply["payload"]["title"] == "dropped"
            assert reply["headers"] == {"idempotent-replay": True}  # the same key: the first run's reply
            assert client.opened == 2
            assert "'slowCreate': 409 request_in_progress (idempotency-key 'drop-1'): asking again" in caplog.text
    assert await rows(title="dropped") == 1 and await rows(IdempotencyKey, key="drop-1") == 1


async def test_past_max_retries_a_request_fails_saying_so_and_without_keys_it_is_not_sent_again(server):
    async def drop_whenever_sent(client, times):
        dropped = None
        for _ in range(times):
            await seconds_until(lambda dropped=dropped: client._pending and client._ws not in (None, dropped))
            dropped = client._ws
            drop(client)

    async with RouterClient(f"{server}/ws/async/", reconnect=FAST, max_retries=2) as client:
        dropping = asyncio.create_task(drop_whenever_sent(client, 3))
        with pytest.raises(RetriesExhaustedError) as exhausted:
            await client.request("slow", 5, idempotency_key="tried")
        await dropping
        assert str(exhausted.value) == (
            "'slow': sent 3 times, and each time the connection closed (last code 1006) before the reply came; "
            "max_retries=2 reached. The server ran it at most once: sending it again with idempotency-key 'tried' "
            "is safe.")
        assert isinstance(exhausted.value, ConnectionClosedError) and exhausted.value.attempts == 3
        # Without a key it is not sent again: the caller cannot know whether it ran.
        dropping = asyncio.create_task(drop_whenever_sent(client, 1))
        with pytest.raises(ConnectionClosedError) as lost:
            await client.request("slow", 5, idempotency_key=None)
        await dropping
        assert lost.value.will_reconnect and not isinstance(lost.value, RetriesExhaustedError)
        assert lost.value.attempts == 1 and isinstance(lost.value, ConnectionError)
        assert (await client.request("echo", "still"))["payload"]["payload"] == "still"


async def test_past_the_queue_limit_a_request_waiting_for_the_connection_is_refused_at_once():
    client = RouterClient(f"ws://127.0.0.1:{free_port()}/ws/async/", reconnect=FAST, queue_limit=2)  # no server
    opening = asyncio.create_task(client.connect())
    waiting = [asyncio.create_task(client.request("echo", n)) for n in range(2)]
    await seconds_until(lambda: client._waiting == 2)
    with pytest.raises(QueueFullError, match="^2 requests are already waiting for the connection") as full:
        await client.request("echo", 3)
    assert full.value.limit == 2 and isinstance(full.value, RuntimeError)
    await client.close()
    for request in [*waiting, opening]:
        with pytest.raises(ConnectionClosedError):
            await request


async def test_closing_the_client_fails_a_keyed_request_in_flight_and_sends_nothing_again(server):
    client = RouterClient(f"{server}/ws/async/", reconnect=FAST)
    await client.connect()
    reading = asyncio.create_task(client.request("slow", 2))
    await seconds_until(lambda: client._pending)
    await client.close()
    with pytest.raises(ConnectionClosedError) as lost:
        await reading
    assert not lost.value.will_reconnect and not isinstance(lost.value, RetriesExhaustedError)
    assert (client.opened, client.state) == (1, "closed")


@pytest.mark.django_db(transaction=True)
async def test_a_key_still_in_progress_past_the_deadline_fails_saying_so(tmp_path, test_database):
    """Another connection of the same user runs the create with the key for longer than this
    request may wait: the 409s are asked again until ``request_timeout``, then it says why it stops."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws/articles/idempotent/"
    payload = {"title": "long", "sleep": 2.5}
    with serving("uvicorn", port, tmp_path, DATABASE_URL=test_database):
        async with (RouterClient(url, headers=USER) as first,
                    RouterClient(url, headers=USER, request_timeout=1.0) as impatient):
            running = asyncio.create_task(first.request("slowCreate", payload, idempotency_key="long-1"))
            await asyncio.sleep(0.5)
            with pytest.raises(RequestTimeoutError, match=r"^'slowCreate': no final reply within 1.0 s: the first request "
                                                     r"with idempotency-key 'long-1' still ran \(409 request_in_progress\)"):
                await impatient.request("slowCreate", payload, idempotency_key="long-1")
            assert (await running)["status"] == 201
            replay = await impatient.request("slowCreate", payload, idempotency_key="long-1")
            assert replay["headers"] == {"idempotent-replay": True}
    assert await rows(title="long") == 1

async def test_a_read_in_flight_when_the_connection_drops_is_sent_again(server):
    async with RouterClient(f"{server}/ws/async/", reconnect=FAST) as client:
        reading = asyncio.create_task(client.request("slow", 0.5))
        await seconds_until(lambda: client._pending)
        drop(client)
        assert (await asyncio.wait_for(reading, 10))["payload"] == 0.5
        assert client.opened == 2


# -- subscriptions across reconnects: the position, resume-from and the "resubscribed" marker ----------

async def test_after_a_reconnect_the_stream_says_resubscribed_and_a_server_without_positions_gets_no_resume_from(server):
    """A server before v1.2 sends no ``headers.position``: the subscribe is sent again as it was first
    (echo shows what it carried: no ``resume-from``, and no key), and the stream says it did not resume."""
    async with RouterClient(f"{server}/ws/async/", reconnect=FAST) as client:
        subscription = await client.subscribe("echo", "follow")
        assert subscription.reply["payload"] == {"payload": "follow", "headers": {}} and subscription.position is None
        first_uuid = subscription.uuid
        drop(client)
        marker = await asyncio.wait_for(anext(subscription), 10)
        assert (marker["route"], marker["resumed"], marker["status"]) == ("resubscribed", False, 200)
        assert marker["headers"] == {"echo": True, "subscription": subscription.uuid, "seq": 0}
        assert marker["payload"] == {"payload": "follow", "headers": {}}  # what the subscribe carried again
        # counted once the resubscribe's reply is handled, which may come after its marker
        await seconds_until(lambda: subscription.resubscribed, 2.0)
        assert subscription.uuid != first_uuid and (subscription.resubscribed, subscription.position) == (1, None)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_subscription_resumes_from_its_position_and_gets_what_it_missed(kind, tmp_path, test_database):
    """wire v1.2: the subscription keeps the latest ``headers.position``, subscribes again with
    ``resume-from`` after a reconnect, and the stream says ``resumed`` before the pushes it missed."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws/articles/"
    slow_back = Reconnect(initial=1.0, maximum=1.0, jitter=0)  # a second away: time for a write meanwhile
    with serving(kind, port, tmp_path, DATABASE_URL=test_database):
        async with RouterClient(url, reconnect=slow_back) as client, RouterClient(url) as writer:
            articles = await client.subscribe("subscribe")
            assert articles.reply["status"] == 201
            if "position" not in (articles.reply["headers"] or {}):
                pytest.skip("the server sends no headers.position: resumable subscriptions (wire v1.2, position/"
                            "resume-from/resumed; issue 22 item 3) are not on main yet")
            assert articles.position == articles.reply["headers"]["position"]
            assert (await writer.request("create", {"title": "before"}))["status"] == 201
            push = await asyncio.wait_for(anext(articles), 10)
            assert push["route"] == "created" and articles.position == push["headers"]["position"]
            drop(client)
            await seconds_until(lambda: client._ws is None)
            assert (await writer.request("create", {"title": "missed"}))["status"] == 201
            marker = await asyncio.wait_for(anext(articles), 10)
            assert (marker["route"], marker["resumed"], marker["headers"]["seq"]) == ("resubscribed", True, 0)
            replayed = []  # the replay may repeat "before" (same etag): it must not miss "missed"
            while "missed" not in replayed:
                push = await asyncio.wait_for(anext(articles), 10)
                assert push["route"] in ("created", "updated") and push["headers"]["seq"] == len(replayed) + 1
                replayed.append(push["payload"]["title"])
            assert articles.position == push["headers"]["position"]


async def test_the_resubscribe_carries_the_latest_position_and_a_refused_resume_is_followed_by_its_resync():
    """The wire as a v1.2 server sees it (a scripted server, until tests.asgi speaks it): the first
    subscribe has no ``resume-from``, the one after the reconnect has the position of the latest push;
    ``resumed: false`` comes out as the marker, then the ``resync`` push as any push."""
    subscribes = []

    async def v12(ws):
        async for raw in ws:
            request = json.loads(raw)
            subscribes.append(request["headers"])
            resumed = {"resumed": False} if "resume-from" in request["headers"] else {}
            await ws.send(json.dumps({"uuid": request["uuid"], "route": "subscribe", "status": 201, "payload": None,
                                      "headers": {"position": f"p{len(subscribes)}.0", **resumed}}))
            for seq, route in enumerate(["resync"] if resumed else ["created", "updated"], start=1):
                await ws.send(json.dumps({"uuid": new_id(), "route": route, "status": 200, "payload": {"seq": seq},
                                          "headers": {"subscription": request["uuid"], "seq": seq,
                                                      "position": f"p{len(subscribes)}.{seq}"}}))

    new_id = lambda: str(uuid.uuid4())  # noqa: E731
    async with serve(v12, "127.0.0.1", 0) as scripted:
        url = f"ws://127.0.0.1:{scripted.sockets[0].getsockname()[1]}/"
        async with RouterClient(url, reconnect=FAST) as client:
            subscription = await client.subscribe("subscribe", None, {"page": 1})
            assert [push["route"] for push in [await anext(subscription), await anext(subscription)]] == [
                "created", "updated"]
            assert subscription.position == "p1.2"
            drop(client)
            marker = await asyncio.wait_for(anext(subscription), 10)
            assert (marker["route"], marker["resumed"], marker["headers"]["position"]) == ("resubscribed", False, "p2.0")
            resync = await asyncio.wait_for(anext(subscription), 10)
            assert (resync["route"], resync["headers"]["seq"], subscription.position) == ("resync", 1, "p2.1")
    assert subscribes == [{"page": 1}, {"page": 1, "resume-from": "p1.2"}]


@pytest.mark.django_db(transaction=True)
async def test_the_clients_page_follower_stays_equal_to_the_database_across_a_server_restart(tmp_path, test_database):
    """docs/howto/clients.md's ``scripts/follow.py`` as written: a write before the restart, one while the
    server is down (by another process on the database), one after; its list ends equal to the database's."""
    from tests.projects import blocks

    (code,) = [code for _, path, code in blocks(ROOT / "docs/howto/clients.md") if path == "scripts/follow.py"]
    script = {"__name__": "follow"}
    exec(compile(code, "scripts/follow.py", "exec"), script)
    shown = []
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws/articles/"

    async def written(title):
        async with RouterClient(url) as writer:
            assert (await writer.request("create", {"title": title}))["status"] == 201

    with serving("uvicorn", port, tmp_path, DATABASE_URL=test_database) as first:
        following = asyncio.create_task(script["follow"](url, show=lambda route, titles: shown.append((route, titles))))
        await asyncio.sleep(1)  # subscribed and listed
        await written("before")
        await seconds_until(lambda: shown and shown[-1][1] == ["before"])
        first.kill()
        await asyncio.to_thread(first.wait, 10)
    await database_sync_to_async(Article.objects.create)(title="while down")
    with serving("uvicorn", port, tmp_path, DATABASE_URL=test_database):
        await seconds_until(lambda: "resubscribed" in [route for route, _ in shown], 30)
        await written("after")
        expected = sorted(await database_sync_to_async(lambda: list(Article.objects.values_list("title", flat=True)))())
        assert expected == ["after", "before", "while down"]
        await seconds_until(lambda: shown[-1][1] == expected, 30)
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
