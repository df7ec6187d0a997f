"""Idempotent writes: a request with ``idempotency-key`` runs once per identity and key, across
connections and server processes, with its record committed in the write's transaction."""

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from websockets.asyncio.client import connect

from demo.models import Article
from django_channels_router.consumers import check_idempotency_app
from django_channels_router.idempotency import prune_expired
from django_channels_router.models import IdempotencyKey
from django_channels_router.testing import RouterCommunicator
from tests.conftest import CallingClient, daphne
from tests.drf import ArticleRouter
from tests.idempotent import AsyncPlainIdempotentSocket, IdempotentArticleRouter, PlainIdempotentSocket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]
db = database_sync_to_async
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql",
                                     reason="SQLite runs one write at a time: a duplicate waits instead of a 409")
USER = {"Authorization": "User 7"}


def key(name, **headers):
    return {"idempotency-key": name, **USER, **headers}


async def connected(consumer=IdempotentArticleRouter):
    comm = RouterCommunicator(consumer.as_asgi(), "/ws/")
    assert (await comm.connect())[0]
    return comm


@db
def rows(model=Article, **lookup):
    return model.objects.filter(**lookup).count()


async def test_a_retry_on_another_connection_gets_the_kept_reply_and_writes_once():
    first, second = await connected(), await connected()
    reply = await first.request("create", {"title": "once"}, key("k-1"))
    assert reply["status"] == 201 and reply["headers"] is None
    # A fresh token is a transport header: it does not make another request.
    again = await second.request("create", {"title": "once"}, key("k-1", Authorization="User 7"))
    assert again["status"] == 201 and again["payload"] == reply["payload"]
    assert again["headers"] == {"idempotent-replay": True}
    assert await rows(title="once") == 1 and await rows(IdempotencyKey) == 1
    # Another user's key of the same name is another key.
    other = await second.request("create", {"title": "once"}, key("k-1", Authorization="User 8"))
    assert other["status"] == 201 and other["headers"] is None and await rows(title="once") == 2
    await first.disconnect()
    await second.disconnect()


async def test_a_replay_carries_the_kept_reply_s_headers_its_etag_among_them():
    # An anonymous connection without a session: its keys are its own, so the retry is on it.
    comm = await connected(ArticleRouter)
    reply = await comm.request("create", {"title": "tagged"}, {"idempotency-key": "tagged"})
    assert reply["status"] == 201 and reply["headers"]["etag"].startswith('"')
    again = await comm.request("create", {"title": "tagged"}, {"idempotency-key": "tagged"})
    assert again["headers"] == {**reply["headers"], "idempotent-replay": True}
    assert again["payload"] == reply["payload"] and await rows(title="tagged") == 1
    await comm.disconnect()


async def test_every_write_route_of_a_model_router_takes_a_key_and_get_routes_ignore_it():
    comm = await connected()
    article = (await comm.request("create", {"title": "a"}, key("c")))["payload"]
    for route, payload in [("patch", {"title": "b"}), ("update", {"title": "c"}), ("shout", None), ("delete", None)]:
        headers = key(f"{route}-1", id=article["id"])
        first = await comm.request(route, payload, headers)
        retry = await comm.request(route, payload, headers)
        assert retry["status"] == first["status"] < 300 and retry["payload"] == first["payload"], route
        assert retry["headers"] == {"idempotent-replay": True}, route
    # The delete's retry got its 204, not a 404: the object's lookup is inside the kept request.
    got = await comm.request("count", None, key("read"))
    assert got["headers"] is None and await rows(IdempotencyKey, key="read") == 0
    # A route may say it takes no key.
    assert (await comm.request("unkeyed", None, key("u")))["headers"] is None
    assert (await comm.request("unkeyed", None, key("u")))["headers"] is None
    await comm.disconnect()


async def test_the_same_key_for_another_payload_or_route_is_422():
    comm = await connected()
    assert (await comm.request("create", {"title": "x"}, key("k")))["status"] == 201
    for route, payload, headers in [("create", {"title": "y"}, key("k")), ("slowCreate", {"title": "x"}, key("k")),
                                    ("create", {"title": "x"}, key("k", page=2))]:
        reply = await comm.request(route, payload, headers)
        assert reply["status"] == 422 and reply["payload"]["code"] == "idempotency_key_reused", (route, headers)
    assert await rows(title="x") == 1 and await rows(title="y") == 0
    await comm.disconnect()


@pytest.mark.parametrize("bad", ["", "with space", "é", "x" * 256, 12, None, ["k"]])
async def test_a_bad_key_is_400_and_nothing_runs(bad):
    comm = await connected()
    reply = await comm.request("create", {"title": "bad"}, {"idempotency-key": bad, **USER})
    if bad is None:  # no key: an ordinary request
        assert reply["status"] == 201
    else:
        assert reply["status"] == 400 and reply["payload"]["code"] == "invalid"
        assert await rows(title="bad") == 0
    assert await rows(IdempotencyKey) == 0
    await comm.disconnect()


async def test_the_longest_key_and_a_header_name_in_any_case_are_accepted():
    comm = await connected()
    longest = "".join(chr(33 + i % 94) for i in range(255))
    assert (await comm.request("create", {"title": "l"}, key(longest)))["status"] == 201
    replay = await comm.request("create", {"title": "l"}, {"Idempotency-Key": longest, **USER})
    assert replay["headers"] == {"idempotent-replay": True} and await rows(title="l") == 1
    await comm.disconnect()


async def test_the_record_is_written_in_the_transaction_of_the_write():
    comm = await connected()
    reply = await comm.request("seesItsRecord", {"title": "t"}, key("in-tx"))
    assert reply["payload"] == {"atomic": True, "record": True}
    await comm.disconnect()


async def test_a_5xx_is_not_kept_and_its_write_rolls_back_with_the_record():
    comm = await connected()
    for _ in range(2):  # the retry runs again: nothing was kept
        reply = await comm.request("failAfterWrite", {"title": "f"}, key("boom"))
        assert reply["status"] == 500 and "idempotent-replay" not in (reply["headers"] or {})
        assert await rows(title="f") == 0 and await rows(IdempotencyKey) == 0
    await comm.disconnect()


async def test_a_4xx_is_kept_and_the_writes_before_it_roll_back():
    comm = await connected()
    first = await comm.request("refuseAfterWrite", {"title": "r"}, key("no"))
    retry = await comm.request("refuseAfterWrite", {"title": "r"}, key("no"))
    assert first["status"] == retry["status"] == 400 and retry["payload"] == first["payload"]
    assert retry["headers"] == {"idempotent-replay": True}
    assert await rows(title="r") == 0 and await rows(IdempotencyKey) == 1
    # A validation error of the serializer is kept as well.
    assert (await comm.request("create", {"title": ""}, key("empty")))["status"] == 400
    assert (await comm.request("create", {"title": ""}, key("empty")))["headers"] == {"idempotent-replay": True}
    await comm.disconnect()


@postgresql_only
async def test_a_duplicate_while_the_first_runs_is_409_then_gets_the_kept_reply():
    first, second = await connected(), await connected()
    slow = asyncio.create_task(first.request("slowCreate", {"title": "s", "sleep": 1.5}, key("slow"), timeout=10))
    await asyncio.sleep(0.5)
    busy = await second.request("slowCreate", {"title": "s", "sleep": 1.5}, key("slow"))
    assert busy["status"] == 409 and busy["payload"]["code"] == "request_in_progress"
    assert busy["headers"] == {"Retry-After": "1"}
    done = await slow
    assert done["status"] == 201
    retry = await second.request("slowCreate", {"title": "s", "sleep": 1.5}, key("slow"))
    assert retry["headers"] == {"idempotent-replay": True} and retry["payload"] == done["payload"]
    assert await rows(title="s") == 1
    await first.disconnect()
    await second.disconnect()


async def test_a_reply_too_large_to_keep_says_so_and_its_retry_gets_the_status_alone():
    comm = await connected()
    with override_settings(CHANNELS_ROUTER={"IDEMPOTENCY_MAX_REPLY_BYTES": 1000}):
        small = await comm.request("largeReply", 10, key("small"))
        large = await comm.request("largeReply", 5000, key("large"))
        retry = await comm.request("largeReply", 5000, key("large"))
    assert small["headers"] is None
    assert large["status"] == 200 and large["headers"] == {"idempotent-stored": False} and len(large["payload"]) == 5000
    assert retry["status"] == 200 and retry["payload"] is None
    assert retry["headers"] == {"idempotent-stored": False, "idempotent-replay": True}
    assert await rows(title="large") == 2  # the small one and the large one; the retry wrote nothing
    await comm.disconnect()


async def test_each_identity_keeps_its_newest_keys_up_to_the_bound():
    comm = await connected()
    with override_settings(CHANNELS_ROUTER={"IDEMPOTENCY_MAX_KEYS": 3}):
        for n in range(5):
            assert (await comm.request("create", {"title": f"b{n}"}, key(f"b{n}")))["status"] == 201
        assert (await comm.request("create", {"title": "other"}, key("b0", Authorization="User 8")))["status"] == 201
        kept = await db(lambda: sorted(IdempotencyKey.objects.filter(identity="user:7").values_list("key", flat=True)))()
        assert kept == ["b2", "b3", "b4"]
        assert await rows(IdempotencyKey, identity="user:8") == 1
        # Past the bound, the oldest key no longer protects: its request runs again.
        assert (await comm.request("create", {"title": "b0"}, key("b0")))["headers"] is None
    await comm.disconnect()


@db
def age_records(seconds):
    IdempotencyKey.objects.update(created=timezone.now() - timedelta(seconds=seconds))


async def test_expired_records_are_pruned_in_batches_and_their_keys_run_again():
    comm = await connected()
    for n in range(5):
        await comm.request("create", {"title": f"e{n}"}, key(f"e{n}"))
    await age_records(120)
    with override_settings(CHANNELS_ROUTER={"IDEMPOTENCY_TTL": 60}):
        # An expired key not yet pruned is free again.
        assert (await comm.request("create", {"title": "e0"}, key("e0")))["headers"] is None
        assert await db(prune_expired)(batch=3) == 3
        assert await rows(IdempotencyKey) == 2  # one batch: the fresh e0 and one expired record
        await db(call_command)("clearidempotencykeys", "--batch-size", "1", stdout=open("/dev/null", "w"))
        assert await db(lambda: list(IdempotencyKey.objects.values_list("key", flat=True)))() == ["e0"]
    await comm.disconnect()


@pytest.mark.parametrize("consumer", [PlainIdempotentSocket, AsyncPlainIdempotentSocket])
async def test_plain_routes_opt_in_with_the_route_option_or_idempotent_routes(consumer):
    comm = await connected(consumer)
    first = await comm.request("create", {"title": "p"}, {"idempotency-key": "p"})
    retry = await comm.request("create", {"title": "p"}, {"idempotency-key": "p"})
    assert first["status"] == 201 and retry["payload"] == first["payload"]
    assert retry["headers"] == {"idempotent-replay": True} and await rows(title="p") == 1
    if consumer is PlainIdempotentSocket:
        assert (await comm.request("note", None, {"idempotency-key": "n"}))["headers"] is None
        assert (await comm.request("note", None, {"idempotency-key": "n"}))["headers"] == {"idempotent-replay": True}
        assert (await comm.request("plain", None, {"idempotency-key": "q"}))["headers"] is None
        assert (await comm.request("plain", None, {"idempotency-key": "q"}))["headers"] is None
    if consumer is AsyncPlainIdempotentSocket:  # an async handler's write rolls back with the record too
        failed = await comm.request("create", {"title": "p", "fail": True}, {"idempotency-key": "f"})
        assert failed["status"] == 500 and await rows(title="p") == 1 and await rows(IdempotencyKey, key="f") == 0
    # Anonymous, without a session: the key protects within the connection only.
    other = await connected(consumer)
    assert (await other.request("create", {"title": "p"}, {"idempotency-key": "p"}))["headers"] is None
    assert await rows(title="p") == 2
    await comm.disconnect()
    await other.disconnect()


def test_the_system_check_asks_for_the_app_when_a_consumer_takes_keys(monkeypatch):
    from django.apps import apps

    assert check_idempotency_app() == []
    monkeypatch.setattr(apps, "is_installed", lambda name: name != "django_channels_router")
    errors = {error.obj: error for error in check_idempotency_app()}
    assert errors[IdempotentArticleRouter].id == "channels_router.E011"
    assert "'create'" in errors[IdempotentArticleRouter].msg and "'get'" not in errors[IdempotentArticleRouter].msg
    assert PlainIdempotentSocket in errors


def test_the_schema_lists_the_statuses_of_keyed_routes():
    table = IdempotentArticleRouter.route_table
    assert {400, 409, 422} <= IdempotentArticleRouter.route_errors(table["create"])
    assert 422 not in IdempotentArticleRouter.route_errors(table["get"])
    assert 422 not in PlainIdempotentSocket.route_errors(PlainIdempotentSocket.route_table["plain"])


# -- through real servers ------------------------------------------------------------------------

@pytest.fixture
def servers(servers_on_test_database):
    """daphne and uvicorn processes on this test's PostgreSQL database (committed rows are shared)."""
    return tuple(f"{base}/ws/articles/idempotent/" for base in servers_on_test_database)


async def test_through_two_server_processes_a_retry_gets_the_kept_reply(servers):
    async with connect(servers[0]) as a, connect(servers[1]) as b:
        first, second = CallingClient(a), CallingClient(b)
        reply = await first.call("create", {"title": "served"}, key("srv-1"))
        assert reply["status"] == 201
        again = await second.call("create", {"title": "served"}, key("srv-1"))
        assert again["headers"] == {"idempotent-replay": True} and again["payload"] == reply["payload"]
        reused = await second.call("create", {"title": "other"}, key("srv-1"))
        assert reused["status"] == 422 and reused["payload"]["code"] == "idempotency_key_reused"
        failed = [await client.call("failAfterWrite", {"title": "f"}, key("srv-f")) for client in (first, second)]
        assert [reply["status"] for reply in failed] == [500, 500]
        bad = await first.call("create", {"title": "bad"}, key("two words"))
        assert bad["status"] == 400 and bad["payload"]["code"] == "invalid"
    assert await rows(title="served") == 1 and await rows(title="f") == 0 and await rows(title="bad") == 0
    assert await rows(IdempotencyKey) == 1


async def test_through_two_server_processes_concurrent_duplicates_run_once(servers):
    payload = {"title": "raced", "sleep": 1.5}
    async with connect(servers[0]) as a, connect(servers[1]) as b:
        first, second = CallingClient(a), CallingClient(b)
        running = asyncio.create_task(first.call("slowCreate", payload, key("race")))
        await asyncio.sleep(0.5)
        busy = await second.call("slowCreate", payload, key("race"))
        assert busy["status"] == 409 and busy["payload"]["code"] == "request_in_progress"
        done = await running
        retry = await second.call("slowCreate", payload, key("race"))
        assert done["status"] == retry["status"] == 201 and retry["payload"] == done["payload"]
        assert retry["headers"] == {"idempotent-replay": True}
    assert await rows(title="raced") == 1 and await rows(IdempotencyKey, key="race") == 1
    # Both sent at once: one runs, the other is refused or replayed, never run.
    async with connect(servers[0]) as a, connect(servers[1]) as b:
        replies = await asyncio.gather(CallingClient(a).call("slowCreate", {**payload, "title": "both"}, key("both")),
                                       CallingClient(b).call("slowCreate", {**payload, "title": "both"}, key("both")))
    assert sorted(reply["status"] for reply in replies) in ([201, 409], [201, 201])
    assert await rows(title="both") == 1


def test_the_identity_is_the_user_else_the_session_else_the_connection():
    from types import SimpleNamespace

    from django.contrib.auth.models import AnonymousUser, User

    socket = PlainIdempotentSocket()
    socket.scope = {"user": User(pk=3), "session": SimpleNamespace(session_key="s3")}
    assert socket.idempotency_identity() == "user:3"
    socket.scope["user"] = AnonymousUser()
    assert socket.idempotency_identity() == "session:s3"
    socket.scope["session"] = SimpleNamespace(session_key=None)  # no session cookie
    connection_identity = socket.idempotency_identity()
    assert connection_identity.startswith("connection:") and socket.idempotency_identity() == connection_identity
    other = PlainIdempotentSocket()
    other.scope = {}
    assert other.idempotency_identity() != connection_identity


async def test_on_sqlite_a_duplicate_from_another_process_waits_for_the_first_then_gets_its_reply(database, tmp_path):
    """SQLite runs one write transaction at a time: the duplicate's insert of the record waits for
    the first request's commit (within SQLite's 5 s timeout), then finds its record."""
    import sqlite3

    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": f"sqlite:///{database}"}
    for folder in ("d", "u"):
        (tmp_path / folder).mkdir()
    with (daphne("tests.asgi:application", tmp_path / "d", **env) as first_url,
          daphne("tests.asgi:application", tmp_path / "u", server="uvicorn", **env) as second_url):
        payload = {"title": "waited", "sleep": 1.5}
        async with (connect(f"{first_url}/ws/articles/idempotent/") as a,
                    connect(f"{second_url}/ws/articles/idempotent/") as b):
            running = asyncio.create_task(CallingClient(a).call("slowCreate", payload, key("wait")))
            await asyncio.sleep(0.5)
            waited = await CallingClient(b).call("slowCreate", payload, key("wait"))
            done = await running
    assert done["status"] == waited["status"] == 201 and waited["payload"] == done["payload"]
    assert waited["headers"] == {"idempotent-replay": True}
    with sqlite3.connect(database) as db_file:
        assert db_file.execute("SELECT count(*) FROM demo_article WHERE title = 'waited'").fetchone() == (1,)
        assert db_file.execute("SELECT count(*) FROM django_channels_router_idempotencykey").fetchone() == (1,)
