"""Pushes whose gaps are never silent: ``headers.seq`` per subscription, and ``resync`` when the
server knows it lost pushes (a change event that never came, a channel layer outage)."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import AnonymousUser
from django.db import OperationalError
from django.test import override_settings
from websockets.asyncio.client import connect

from demo.models import Article
from django_channels_router import AsyncSocketRouterConsumer
from django_channels_router.testing import RouterCommunicator
from drf_bridge import changes, notify_change
from drf_bridge.subscriptions import model_group
from tests.conftest import ROOT, SERVERS, CallingClient, daphne, free_port, reachable, server_process
from tests.drf import ArticleRouter
from tests.factories import ArticleFactory
from tests.test_push import private_redis  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)
db = database_sync_to_async
GROUP = model_group("demo.article")


def change(sender, number, pks=()):
    """A change event as another process sends it (pks that match nothing push nothing)."""
    return {"type": "drf_bridge.change", "model": "demo.article", "pks": list(pks), "event": uuid.uuid4().hex,
            "sender": sender, "number": number}


async def subscribed(router=ArticleRouter):
    comm = RouterCommunicator(router.as_asgi(), "/ws/", user=AnonymousUser())
    assert (await comm.connect())[0]
    reply = await comm.request("subscribe")
    assert reply["status"] == 201
    return comm, reply["uuid"]


async def resynced_then_numbered_on(comm, subscription, reason):
    """The next push is ``subscription``'s first, a resync for ``reason``; what the subscription
    has seen is read anew, so the next change is numbered on from there (2)."""
    push = await comm.receive_message(timeout=5)
    push["headers"].pop("position")  # a resync has one too: what it re-read (tests/test_resume.py)
    assert (push["route"], push["headers"], push["payload"]) == (
        "resync", {"subscription": subscription, "model": "demo.article", "seq": 1}, {"reason": reason})
    article = await db(ArticleFactory)(title="after the resync")
    push = await comm.receive_message()
    assert (push["route"], push["headers"]["seq"], push["payload"]["id"]) == ("created", 2, article.pk)


async def test_every_push_of_a_subscription_is_numbered_from_one():
    comm, subscription = await subscribed()
    other, other_subscription = await subscribed()
    clients = ((comm, subscription), (other, other_subscription))
    article = await db(ArticleFactory)(title="one")
    seen = [[await client.receive_message()] for client, _ in clients]
    article.title = "two"  # each change once the last one was pushed: pushes read the current state
    await db(article.save)()
    for client_seen, (client, _) in zip(seen, clients, strict=True):
        client_seen.append(await client.receive_message())
    await db(article.delete)()
    for client_seen, (client, sub) in zip(seen, clients, strict=True):
        client_seen.append(await client.receive_message())
        assert [(p["route"], p["headers"]["seq"], p["headers"]["subscription"]) for p in client_seen] == [
            ("created", 1, sub), ("updated", 2, sub), ("deleted", 3, sub)]
        await client.disconnect()


async def test_an_event_that_never_arrives_is_a_resync_and_a_late_one_is_not(monkeypatch):
    monkeypatch.setattr(changes, "GAP_WAIT", 0.3)
    comm, subscription = await subscribed()
    layer = get_channel_layer()
    for number in (1, 2, 4, 3):  # 3 comes late, within GAP_WAIT: nothing was lost
        await layer.group_send(GROUP, change("other-process", number))
    assert await comm.receive_nothing(timeout=0.6)

    await layer.group_send(GROUP, change("other-process", 7))  # 5 and 6 never come
    await resynced_then_numbered_on(comm, subscription, "change events were lost")
    await comm.disconnect()


async def test_after_a_channel_layer_outage_every_subscription_is_told_to_resync(private_redis):  # noqa: F811
    port, servers, start = private_redis
    layers = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                          "CONFIG": {"hosts": [f"redis://127.0.0.1:{port}/0"]}}}
    with override_settings(CHANNEL_LAYERS=layers):
        comm, subscription = await subscribed()
        servers[0].terminate()  # Redis goes away, and with it every group
        await asyncio.to_thread(servers[0].wait, 10)
        await asyncio.sleep(1)
        servers.append(start())
        push = await comm.receive_message(timeout=40)  # the consumer backs off, then rejoins
        assert (push["route"], push["headers"]["subscription"], push["headers"]["seq"]) == ("resync", subscription, 1)
        assert push["payload"] == {"reason": "the channel layer was unavailable"}
        article = await db(ArticleFactory)(title="after the outage")  # and pushes flow again
        push = await comm.receive_message(timeout=10)
        assert (push["route"], push["payload"]["id"], push["headers"]["seq"]) == ("created", article.pk, 2)
        await comm.disconnect()


@pytest.mark.skipif(not reachable(6379), reason="Redis is not reachable on 127.0.0.1:6379")
async def test_a_lost_event_between_two_processes_over_redis_is_a_resync(tmp_path):
    # A daphne process on channels-redis serves the subscriber; this process sends the change
    # events through the same Redis, one of which is lost on the way (its number never comes).
    from channels_redis.core import RedisChannelLayer

    prefix = f"dcr-test-{uuid.uuid4().hex[:8]}"
    env = {"REDIS_URL": "redis://127.0.0.1:6379/0", "CHANNELS_REDIS_PREFIX": prefix,
           "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": f"sqlite:///{tmp_path / 'server.sqlite3'}"}
    subprocess.run([sys.executable, "-m", "django", "migrate", "--no-input"], cwd=ROOT, check=True, timeout=120,
                   capture_output=True, env={**os.environ, **env, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'testproject'}"})
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:6379/0"], prefix=prefix)
    with daphne("tests.asgi:application", tmp_path, **env) as server:
        async with connect(f"{server}/ws/articles/") as ws:
            client = CallingClient(ws)
            reply = await client.call("subscribe")
            assert reply["status"] == 201
            for number in (1, 3):
                await layer.group_send(GROUP, change("worker-process", number))
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))  # GAP_WAIT (2 s) later
            message["headers"].pop("position")
            assert (message["route"], message["headers"]) == (
                "resync", {"subscription": reply["uuid"], "model": "demo.article", "seq": 1})
    await layer.flush()


class FlakyArticleRouter(ArticleRouter):
    """Articles on a database that fails now and then (SQLite's "database is locked", a
    PostgreSQL failover): the next ``failures`` reads of the queryset raise."""

    failures = 0

    def filter_queryset(self, queryset):
        if type(self).failures:
            type(self).failures -= 1
            raise OperationalError("database is locked")
        return super().filter_queryset(queryset)


async def test_a_change_that_cannot_be_worked_out_is_a_resync():
    comm, subscription = await subscribed(FlakyArticleRouter)
    FlakyArticleRouter.failures = 1
    try:
        await db(ArticleFactory)(title="lost to a locked database")
        await resynced_then_numbered_on(comm, subscription, "a change could not be pushed")
    finally:
        FlakyArticleRouter.failures = 0
    await comm.disconnect()


class ArticleImporter(AsyncSocketRouterConsumer):
    """Imports articles in bulk, and tells subscribers of each one (``bulk_create`` sends no signals)."""

    routes = [{"route": "import"}]

    def on_import(self, payload, headers):
        for article in Article.objects.bulk_create([Article(title=f"imported {i}") for i in range(payload)]):
            notify_change(Article, [article.pk])
        return {"status": 201}


#: Gap detection alone: with the history of changes, the changes of lost events are found there
#: too and pushed (drf_bridge.sweeper, tests/test_resume.py), before or after the resync.
NO_HISTORY = override_settings(CHANNELS_ROUTER={"CHANGE_HISTORY_SECONDS": 0})


async def all_or_resync(receive, count, seconds):
    """The pushes received until ``count`` of them or a ``resync`` came, or ``seconds`` passed:
    a client must end with every push or be told it lost some."""
    deadline, pushes = time.monotonic() + seconds, []
    with contextlib.suppress(TimeoutError):
        while len(pushes) < count and not any(p["route"] == "resync" for p in pushes):
            pushes.append(await receive(max(0.01, deadline - time.monotonic())))
    assert [p["headers"]["seq"] for p in pushes] == list(range(1, len(pushes) + 1))
    assert len(pushes) == count or pushes and pushes[-1]["route"] == "resync", (
        f"{len(pushes)} of {count} pushes within {seconds} s, and no resync")
    return pushes


async def test_the_lost_tail_of_a_burst_is_a_resync_within_seconds():
    # 400 change events at once: the subscriber's channel (capacity 100) drops the tail, and no
    # later event is coming to show the gap.
    comm, subscription = await subscribed()
    importer = RouterCommunicator(ArticleImporter.as_asgi(), "/ws/")
    assert (await importer.connect())[0]
    with NO_HISTORY:
        assert (await importer.request("import", 400))["status"] == 201
    pushes = await all_or_resync(comm.receive_message, 400, 6)
    assert {p["route"] for p in pushes[:-1]} == {"created"}
    await importer.disconnect()
    await comm.disconnect()


@pytest.mark.skipif(not reachable(6379), reason="Redis is not reachable on 127.0.0.1:6379")
async def test_the_lost_tail_of_a_burst_over_redis_is_a_resync_within_seconds(tmp_path):
    # A daphne process on channels-redis serves the subscriber; this process writes 400 articles
    # one transaction each from sync code (as a sync view does) while the server stalls, for
    # less than the layer's receive timeout: Redis keeps `capacity` events of its channel, 100,
    # and drops the rest.
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the server process reads the test database: PostgreSQL only")
    database = connection.settings_dict
    prefix = f"dcr-test-{uuid.uuid4().hex[:8]}"
    layers = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                          "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"], "prefix": prefix}}}
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:6379/0", "CHANNELS_REDIS_PREFIX": prefix,
           "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'testproject'}",
           "DATABASE_URL": f"postgresql://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"}

    def burst():
        try:
            for i in range(400):
                Article.objects.create(title=f"written by a worker {i}")
        finally:
            connection.close()

    port = free_port()
    with override_settings(CHANNEL_LAYERS=layers), \
            server_process(SERVERS["daphne"](port, "tests.asgi:application"), port, tmp_path / "daphne.log",
                           env=env) as server:
        async with connect(f"ws://127.0.0.1:{port}/ws/articles/") as ws:
            assert (await CallingClient(ws).call("subscribe"))["status"] == 201
            server.send_signal(signal.SIGSTOP)
            try:
                with NO_HISTORY:
                    await db(burst)()
            finally:
                server.send_signal(signal.SIGCONT)

            async def receive(timeout):
                return json.loads(await asyncio.wait_for(ws.recv(), timeout))

            pushes = await all_or_resync(receive, 400, 12)
            assert {p["route"] for p in pushes[:-1]} == {"created"}
            assert pushes[-1]["payload"] == {"reason": "change events were lost"}
        await get_channel_layer().flush()


def _sender_and_number():
    return changes.SENDER, changes._next_number("demo.article")


def test_a_forked_process_numbers_its_events_as_a_sender_of_its_own():
    # A prefork task worker or gunicorn --preload: two children numbering events as one sender
    # would take each other's numbers for late ones, and hide their losses.
    import multiprocessing

    changes._next_number("demo.article")
    with multiprocessing.get_context("fork").Pool(1) as pool:
        sender, number = pool.apply(_sender_and_number)
    assert sender != changes.SENDER and number == 1
