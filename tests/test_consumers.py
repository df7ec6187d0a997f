"""Behaviour specific to each consumer: concurrency, ordering, threads, access, logging."""

import asyncio
import json
import logging
import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test import override_settings

from django_channels_router import AsyncSocketRouterConsumer, SocketError, SocketRouterConsumer
from django_channels_router.testing import RouterCommunicator
from tests.conftest import InProcessClient, request
from tests.consumers import AsyncProtocolSocket, SyncProtocolSocket


async def connected(consumer, user=None):
    comm = RouterCommunicator(consumer.as_asgi(), "/ws/", user=user)
    assert (await comm.connect())[0]
    return comm


async def test_async_requests_of_one_connection_run_concurrently():
    AsyncProtocolSocket.most_running = 0
    comm = await connected(AsyncProtocolSocket)  # max_running_requests = 4
    uuids = [await comm.send_request("slow", 0.05) for _ in range(4)]
    replies = [await comm.receive_message() for _ in uuids]
    assert sorted(r["uuid"] for r in replies) == sorted(uuids)
    assert AsyncProtocolSocket.most_running == 4
    await comm.disconnect()


async def test_async_running_requests_are_bounded_and_the_rest_wait():
    AsyncProtocolSocket.most_running = 0
    comm = await connected(AsyncProtocolSocket)  # 4 running + 8 waiting
    uuids = [await comm.send_request("slow", 0.02) for _ in range(12)]
    replies = [await comm.receive_message() for _ in uuids]
    assert sorted(r["uuid"] for r in replies) == sorted(uuids) and {r["status"] for r in replies} == {200}
    assert AsyncProtocolSocket.most_running == 4
    await comm.disconnect()


async def test_async_ping_overtakes_slow_requests():
    comm = await connected(AsyncProtocolSocket)
    slow = [await comm.send_request("slow", 0.3) for _ in range(12)]
    ping = await comm.send_request("PING")
    assert (await comm.receive_message())["uuid"] == ping  # before any of the 0.3 s requests
    replies = [await comm.receive_message() for _ in slow]
    assert sorted(r["uuid"] for r in replies) == sorted(slow)
    await comm.disconnect()


async def test_async_ping_overtakes_slow_sync_handlers_which_run_side_by_side():
    AsyncProtocolSocket.most_sync_running = 0
    comm = await connected(AsyncProtocolSocket)
    slow = [await comm.send_request("slowSync", 0.3) for _ in range(3)]
    ping = await comm.send_request("PING")
    assert (await comm.receive_message())["uuid"] == ping
    replies = [await comm.receive_message() for _ in slow]
    assert sorted(r["uuid"] for r in replies) == sorted(slow)
    assert AsyncProtocolSocket.most_sync_running == 3
    await comm.disconnect()


async def test_sync_consumer_answers_in_arrival_order():
    comm = await connected(SyncProtocolSocket)
    uuids = [await comm.send_request(route, payload) for route, payload in
             [("slow", 0.05), ("echo", 1), ("slow", 0.01), ("PING", None), ("echo", 2)]]
    assert [(await comm.receive_message())["uuid"] for _ in uuids] == uuids
    await comm.disconnect()


async def test_disconnect_cancels_unfinished_requests(caplog):
    comm = await connected(AsyncProtocolSocket)
    AsyncProtocolSocket.running = 0
    for _ in range(3):
        await comm.send_request("slow", 5)
    await asyncio.sleep(0.05)
    assert AsyncProtocolSocket.running == 3
    await comm.disconnect()
    await asyncio.sleep(0.05)
    assert AsyncProtocolSocket.running == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_async_consumer_runs_a_sync_route_in_one_thread_off_the_event_loop():
    comm = await connected(AsyncProtocolSocket)
    hydrate_thread, handler_thread, dehydrate_thread = (await comm.request("threads"))["payload"]
    assert hydrate_thread == handler_thread == dehydrate_thread != threading.get_ident()
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("base", [SocketRouterConsumer, AsyncSocketRouterConsumer])
async def test_sync_and_async_callables_work_in_both_consumers(base):
    async def async_hydrate(headers, payload):
        await asyncio.sleep(0)
        return payload

    class Mixed(base):
        routes = [
            {"route": "orm", "hydrate": lambda headers, payload: User.objects.get(username=payload),
             "dehydrate": lambda user: {"username": user.username, "staff": user.is_staff}},
            {"route": "asyncHydrate", "hydrate": async_hydrate, "handler": "on_echo"},
        ]

        def on_orm(self, payload, headers):
            return {"payload": payload}

        async def on_echo(self, payload, headers):
            return {"payload": payload}

    await User.objects.acreate(username="ada", is_staff=True)
    comm = await connected(Mixed)
    assert (await comm.request("orm", "ada"))["payload"] == {"username": "ada", "staff": True}
    assert (await comm.request("asyncHydrate", [1, 2]))["payload"] == [1, 2]
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor == "sqlite", reason="Django never closes in-memory SQLite test databases")
async def test_async_routes_close_their_database_connections_like_a_request():
    used = []

    class Orm(AsyncSocketRouterConsumer):
        routes = [{"route": "count"}]

        def on_count(self, payload, headers):
            used.append(db_connection := connections["default"])
            return {"payload": User.objects.count() + (db_connection.connection is not None)}

    comm = await connected(Orm)
    assert (await comm.request("count"))["payload"] == 1  # the connection was open while serving
    await comm.disconnect()
    assert used[0].connection is None  # and closed after (CONN_MAX_AGE = 0)


@pytest.mark.parametrize("consumer", [SyncProtocolSocket, AsyncProtocolSocket])
async def test_access_check_answers_403_to_a_user_it_refuses(consumer):
    client = InProcessClient(consumer, user=User(username="bob", is_staff=False))
    await client.open()
    assert (await request(client, "secret", "x"))["status"] == 200
    reply = await request(client, "staffOnly", "x")
    assert reply["status"] == 403 and reply["payload"]["code"] == "permission_denied"
    await client.close()
    staff = InProcessClient(consumer, user=User(username="eve", is_staff=True))
    await staff.open()
    assert (await request(staff, "staffOnly", "x"))["status"] == 200
    await staff.close()


@pytest.mark.parametrize("base", [SocketRouterConsumer, AsyncSocketRouterConsumer])
async def test_consumer_wide_check_access_runs_before_the_route_rule(base):
    calls = []

    class Guarded(base):
        routes = [{"route": "open"}, {"route": "closed", "handler": "on_open"},
                  {"route": "ruled", "handler": "on_open", "access": "rule"}]

        def check_access(self, route, headers, payload):
            calls.append((route.name, headers, payload))
            return route.name != "closed"

        def rule(self, user, headers, payload):
            calls.append(("rule", headers, payload))
            return True

        def on_open(self, payload, headers):
            return {"payload": "ok"}

    comm = await connected(Guarded)
    assert (await comm.request("open", 1, {"h": 1}))["payload"] == "ok"
    assert (await comm.request("closed", 2))["status"] == 401
    assert (await comm.request("ruled", 3))["payload"] == "ok"
    assert calls == [("open", {"h": 1}, 1), ("closed", {}, 2), ("ruled", {}, 3), ("rule", {}, 3)]
    await comm.disconnect()


@pytest.mark.parametrize("base", [SocketRouterConsumer, AsyncSocketRouterConsumer])
async def test_prepare_request_runs_first_then_check_access_then_access_then_validation(base):
    calls = []

    class Ordered(base):
        routes = [{"route": "go", "access": "rule", "request": {"type": "integer"}}]

        def prepare_request(self, route, headers, payload):
            calls.append("prepare")
            if payload == 0:
                raise SocketError(429, "Slow down.", "throttled")

        async def check_access(self, route, headers, payload):
            calls.append("check_access")
            return payload != 1

        def rule(self, user, headers, payload):
            calls.append("access")
            return payload != 2

        def on_go(self, payload, headers):
            calls.append("handler")
            return {"payload": payload}

    comm = await connected(Ordered)
    replies = [await comm.request("go", payload) for payload in (0, 1, 2, "x", 3)]
    assert [reply["status"] for reply in replies] == [429, 401, 401, 400, 200]
    assert calls == ["prepare"] + ["prepare", "check_access"] + ["prepare", "check_access", "access"] * 2 + [
        "prepare", "check_access", "access", "handler"]
    await comm.disconnect()


@pytest.mark.parametrize("consumer", [SyncProtocolSocket, AsyncProtocolSocket])
async def test_500_is_logged_with_traceback_and_detailed_only_in_debug(consumer, caplog):
    comm = await connected(consumer)
    reply = await comm.request("fail")
    assert reply["payload"] == {"detail": "A server error occurred.", "code": "handler_error"}
    error = [r for r in caplog.records if r.levelno == logging.ERROR][-1]
    assert error.name == "django_channels_router" and "fail" in error.getMessage()
    assert error.exc_info and "secret exception text" in str(error.exc_info[1])
    with override_settings(DEBUG=True):
        reply = await comm.request("fail")
    assert reply["payload"]["detail"] == "ValueError: secret exception text"
    await comm.disconnect()


@pytest.mark.parametrize("consumer", [SyncProtocolSocket, AsyncProtocolSocket])
async def test_each_request_is_logged_at_debug(consumer, caplog):
    comm = await connected(consumer)
    with caplog.at_level(logging.DEBUG, logger="django_channels_router"):
        await comm.request("echo", uuid="logged")
    line = [r.getMessage() for r in caplog.records if "logged" in r.getMessage()]
    assert len(line) == 1 and "route=echo" in line[0] and "status=200" in line[0] and "duration=" in line[0]
    await comm.disconnect()


async def test_communicator_keeps_messages_that_answer_no_request():
    comm = await connected(AsyncProtocolSocket)
    slow = await comm.send_request("slow", 0.05)
    reply = await comm.request("echo", "fast")
    assert reply["payload"]["payload"] == "fast"
    assert (await comm.receive_message())["uuid"] == slow
    # receive_nothing() counts a kept message: one that came while request() waited is not nothing
    fast = await comm.send_request("echo", "fast")
    assert (await comm.request("slow", 0.05))["status"] == 200
    assert await comm.receive_nothing() is False
    assert (await comm.receive_message())["uuid"] == fast
    assert await comm.receive_nothing() is True
    await comm.disconnect()


def test_reply_frames_are_compact_strict_json():
    from django_channels_router.protocol import encode_frame

    frame = encode_frame("u", "r", 200, None, {"é": 1})
    assert frame == '{"uuid":"u","route":"r","status":200,"headers":null,"payload":{"\\u00e9":1}}'
    assert json.loads(frame)["payload"] == {"é": 1}


@pytest.mark.parametrize("base", [SocketRouterConsumer, AsyncSocketRouterConsumer])
async def test_per_connection_rate_limit_answers_429_throttled(base):
    class Limited(base):
        routes = [{"route": "echo"}]
        rate_limit = "3/min"

        def on_echo(self, payload, headers):
            return {"payload": payload}

    comm = await connected(Limited)
    statuses = []
    for n in range(5):
        statuses.append((await comm.request("echo", n))["status"])
        assert (await comm.request("PING"))["route"] == "PONG"  # heartbeats are never counted
    assert statuses == [200, 200, 200, 429, 429]
    throttled = await comm.request("echo", "again")
    assert throttled["payload"]["code"] == "throttled" and int(throttled["headers"]["Retry-After"]) in range(1, 21)
    await comm.disconnect()
    other = await connected(Limited)  # the limit is per connection
    assert (await other.request("echo", 1))["status"] == 200
    await other.disconnect()


def test_token_bucket_refills_at_the_configured_rate():
    from django_channels_router.conf import TokenBucket

    now = [0.0]
    bucket = TokenBucket(2, 10, lambda: now[0])
    assert [bucket.take(), bucket.take()] == [0, 0]
    assert bucket.take() == pytest.approx(5.0)
    now[0] = 5.0
    assert bucket.take() == 0 and bucket.take() == pytest.approx(5.0)


@pytest.mark.parametrize("value", ["100", "0/s", "x/min", 5])
def test_bad_rate_limits_are_reported(value):
    from django.core.exceptions import ImproperlyConfigured

    from django_channels_router.checks import check_settings

    with override_settings(CHANNELS_ROUTER={"RATE_LIMIT": value}):
        assert [e.id for e in check_settings()] == ["channels_router.E006"]
        with pytest.raises(ImproperlyConfigured, match="RATE_LIMIT"):
            SocketRouterConsumer()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL to cut a live connection")
@pytest.mark.parametrize("base", [SocketRouterConsumer, AsyncSocketRouterConsumer])
async def test_a_lost_database_connection_is_503_and_the_next_request_reconnects(base, caplog):
    import psycopg

    class Orm(base):
        routes = [{"route": "count"}]

        def on_count(self, payload, headers):
            if payload == "cut":  # the database drops this connection, as on a failover or restart
                terminate(connections["default"])
            return {"payload": User.objects.count()}

    def terminate(db):
        with db.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        settings = db.settings_dict
        with psycopg.connect(host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"],
                             dbname="postgres", autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    comm = await connected(Orm)
    reply = await comm.request("count", "cut")
    assert (reply["status"], reply["payload"]) == (503, {"detail": "The database is unavailable; retry later.",
                                                         "code": "database_unavailable"})
    assert "Database unavailable" in caplog.text
    assert (await comm.request("count", "again"))["status"] == 200  # a fresh connection serves the next one
    await comm.disconnect()
