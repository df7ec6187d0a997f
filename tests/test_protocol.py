"""Every row of the protocol, on both consumers, in-process and through daphne."""

import json

import pytest

from tests.conftest import request

ENVELOPE_KEYS = {"uuid", "route", "status", "headers", "payload"}


async def assert_still_open(client):
    reply = await request(client, "echo", "still here", uuid="after")
    assert (reply["uuid"], reply["status"], reply["payload"]["payload"]) == ("after", 200, "still here")


async def test_request_reply_echoes_uuid_and_route(client):
    reply = await request(client, "echo", {"name": "Ada"}, {"token": "t"}, uuid="a-1")
    assert set(reply) == ENVELOPE_KEYS
    assert reply == {"uuid": "a-1", "route": "echo", "status": 200, "headers": {"echo": True},
                     "payload": {"payload": {"name": "Ada"}, "headers": {"token": "t"}}}


@pytest.mark.parametrize("uuid", [7, 0, -(2**53 - 1), 2**53 - 1, "x" * 128])
async def test_integer_and_long_uuids_are_echoed_verbatim(client, uuid):
    reply = await request(client, "echo", uuid=uuid)
    assert reply["uuid"] == uuid and type(reply["uuid"]) is type(uuid)


@pytest.mark.parametrize("headers", [None, {}])
async def test_handler_gets_headers_as_dict_and_missing_payload_as_none(client, headers):
    await client.send_text(json.dumps({"uuid": "h", "route": "echo", "headers": headers}))
    reply = await client.recv()
    assert reply["payload"] == {"payload": None, "headers": {}}


async def test_unknown_fields_and_request_status_are_ignored(client):
    reply = await request(client, "echo", 1, status="not a number", extra={"x": 1})
    assert reply["status"] == 200 and reply["payload"]["payload"] == 1


@pytest.mark.parametrize("uuid", ["p-1", 42])
async def test_ping_is_answered_with_pong(client, uuid):
    await client.send_text(json.dumps({"uuid": uuid, "route": "PING", "headers": {}, "payload": None, "status": 200}))
    assert await client.recv() == {"uuid": uuid, "route": "PONG", "status": 200, "headers": None, "payload": None}


async def test_pong_request_is_not_found_without_echoing_its_route(client):
    reply = await request(client, "PONG", uuid="q")
    assert (reply["uuid"], reply["route"], reply["status"], reply["payload"]["code"]) == ("q", None, 404, "route_not_found")


@pytest.mark.parametrize("frame", ["not json", "{", '{"uuid": "n", "route": "echo", "payload": NaN}',
                                   '{"uuid": "n", "route": "echo", "payload": Infinity}', "", "[" * 2000 + "]" * 2000,
                                   '{"uuid": "n", "route": "echo", "payload": 1e400}', '{"uuid": "n", "route": "echo", "payload": -1E999}',
                                   '{"uuid": "n", "route": "echo", "payload": ' + "[" * 128 + "]" * 128 + "}"])
async def test_malformed_json(client, frame):
    await client.send_text(frame)
    reply = await client.recv()
    assert reply["status"] == 400 and reply["payload"]["code"] == "malformed_json"
    assert reply["uuid"] is None and reply["route"] is None and set(reply) == ENVELOPE_KEYS
    assert reply["payload"]["detail"]
    await assert_still_open(client)


@pytest.mark.parametrize("message, echoed_uuid, echoed_route", [
    ([], None, None),
    ("a string", None, None),
    (42, None, None),
    ({}, None, None),
    ({"route": "echo"}, None, "echo"),
    ({"uuid": "u"}, "u", None),
    ({"uuid": True, "route": "echo"}, None, "echo"),
    ({"uuid": 1.5, "route": "echo"}, None, "echo"),
    ({"uuid": 2**53, "route": "echo"}, None, "echo"),
    ({"uuid": "", "route": "echo"}, None, "echo"),
    ({"uuid": "x" * 129, "route": "echo"}, None, "echo"),
    ({"uuid": None, "route": "echo"}, None, "echo"),
    ({"uuid": ["u"], "route": "echo"}, None, "echo"),
    ({"uuid": "u", "route": ""}, "u", None),
    ({"uuid": "u", "route": 5}, "u", None),
    ({"uuid": "u", "route": "say hello"}, "u", None),
    ({"uuid": "u", "route": "1route"}, "u", None),
    ({"uuid": "u", "route": "r" * 129}, "u", None),
    ({"uuid": "u", "route": "echo", "headers": "Bearer x"}, "u", "echo"),
    ({"uuid": "u", "route": "echo", "headers": ["a"]}, "u", "echo"),
    ({"uuid": True, "route": "PONG"}, None, None),  # route PONG is never echoed: it would pass for a heartbeat
    ({"uuid": "u", "route": "PONG", "headers": "x"}, "u", None),
])
async def test_invalid_envelope(client, message, echoed_uuid, echoed_route):
    await client.send_text(json.dumps(message))
    reply = await client.recv()
    assert reply["status"] == 400 and reply["payload"]["code"] == "invalid_envelope"
    assert (reply["uuid"], reply["route"]) == (echoed_uuid, echoed_route)
    await assert_still_open(client)


async def test_binary_frame_is_unsupported(client):
    await client.send_bytes(b'{"uuid": "b", "route": "echo"}')
    reply = await client.recv()
    assert (reply["status"], reply["payload"]["code"], reply["uuid"], reply["route"]) == (415, "unsupported_frame", None, None)
    await assert_still_open(client)


async def test_frame_over_the_limit_is_413_without_parsing(client):
    # The test consumers allow 4096 bytes; the limit counts UTF-8 bytes, not characters.
    await client.send_text(json.dumps({"uuid": "big", "route": "echo", "payload": "é" * 2100}, ensure_ascii=False))
    reply = await client.recv()
    assert (reply["status"], reply["payload"]["code"], reply["uuid"], reply["route"]) == (413, "message_too_large", None, None)
    await assert_still_open(client)


async def test_frame_at_the_limit_is_served(client):
    head = json.dumps({"uuid": "fit", "route": "echo", "payload": ""})
    frame = head[:-2] + "x" * (4096 - len(head)) + '"}'
    assert len(frame.encode()) == 4096
    reply = await client.recv() if await client.send_text(frame) else await client.recv()
    assert reply["status"] == 200 and reply["uuid"] == "fit"


async def test_nesting_up_to_the_limit_is_served(client):
    payload = "[" * 127 + "]" * 127  # 127 inside the envelope object: 128 levels in all
    await client.send_text('{"uuid": "deep", "route": "echo", "payload": ' + payload + "}")
    reply = await client.recv()
    assert reply["status"] == 200 and reply["uuid"] == "deep"


async def test_brackets_inside_strings_do_not_count_as_nesting(client):
    reply = await request(client, "echo", "[" * 1000, uuid="brackets")
    assert reply["status"] == 200 and reply["payload"]["payload"] == "[" * 1000


async def test_unknown_route(client):
    reply = await request(client, "noSuchRoute", uuid="nf")
    assert (reply["status"], reply["payload"]["code"], reply["uuid"], reply["route"]) == (404, "route_not_found", "nf", "noSuchRoute")
    await assert_still_open(client)


@pytest.mark.parametrize("route", ["notImplemented", "notCallable"])
async def test_declared_route_without_handler_is_501(client, route):
    reply = await request(client, route)
    assert (reply["status"], reply["payload"]["code"], reply["route"]) == (501, "not_implemented", route)
    await assert_still_open(client)


async def test_access_check_refuses_anonymous_with_401(client):
    reply = await request(client, "secret", "x")
    assert reply["status"] == 401 and reply["payload"] == {
        "detail": "Authentication credentials were not provided.", "code": "not_authenticated"}
    await assert_still_open(client)


async def test_handler_exception_is_500_without_its_text(client):
    reply = await request(client, "fail")
    assert reply["status"] == 500 and reply["payload"]["code"] == "handler_error"
    assert "secret" not in json.dumps(reply) and "Traceback" not in json.dumps(reply)
    await assert_still_open(client)


@pytest.mark.parametrize("route", ["failHydrate", "failDehydrate"])
async def test_hydrate_and_dehydrate_exceptions_are_500(client, route):
    reply = await request(client, route, {"a": 1})
    assert (reply["status"], reply["payload"]["code"], reply["route"]) == (500, "handler_error", route)
    assert "ZeroDivision" not in json.dumps(reply) and "missing" not in json.dumps(reply)
    await assert_still_open(client)


@pytest.mark.parametrize("case", ["list", "none", "status_too_high", "status_str", "status_bool",
                                  "headers_list", "unknown_key", "not_serialisable", "nan", "too_deep"])
async def test_invalid_result_is_500(client, case):
    reply = await request(client, "badResult", case)
    assert (reply["status"], reply["payload"]["code"]) == (500, "invalid_result")
    await assert_still_open(client)


@pytest.mark.parametrize("case, status, payload, headers", [
    ("validation", 400, {"title": ["This field is required."]}, None),
    ("not_found", 404, {"detail": "Not found."}, None),
    ("throttled", 429, {"detail": "Request was throttled. Expected available in 3 seconds."}, {"Retry-After": "3"}),
    ("not_authenticated", 401, {"detail": "Authentication credentials were not provided."}, None),
    ("http404", 404, {"detail": "secret path"}, None),  # DRF's exception_handler keeps the message
    ("http404_bare", 404, {"detail": "Not found."}, None),
    ("django_denied", 403, {"detail": "secret reason"}, None),
    ("django_denied_bare", 403, {"detail": "You do not have permission to perform this action."}, None),
    ("socket_error", 409, {"detail": "Title already taken.", "code": "conflict"}, None),
])
async def test_drf_and_django_exceptions_answer_like_http(client, case, status, payload, headers):
    reply = await request(client, "raise", case)
    assert (reply["status"], reply["payload"], reply["headers"]) == (status, payload, headers)
    await assert_still_open(client)


@pytest.mark.parametrize("case", ["broken_api_exception", "unserialisable_detail", "unprintable", "cancelled",
                                  "bad_socket_error_status", "bad_socket_error_headers"])
async def test_broken_exceptions_still_get_exactly_one_500(client, case):
    reply = await request(client, "raise", case, uuid=case)
    assert (reply["uuid"], reply["status"], reply["payload"]["code"]) == (case, 500, "handler_error")
    await assert_still_open(client)


async def test_reply_headers_may_be_any_mapping(client):
    assert (await request(client, "proxyHeaders"))["headers"] == {"a": 1}


async def test_static_method_handlers_get_arguments_by_name(client):
    reply = await request(client, "static", "P", {"h": 1})
    assert reply["payload"] == {"headers": {"h": 1}, "payload": "P"}


@pytest.mark.parametrize("status", [200, 201, 204, 299])
async def test_hydrate_and_dehydrate_run_around_a_success(client, status):
    reply = await request(client, "withStatus", {"value": 1, "status": status})
    assert reply["status"] == status
    assert reply["payload"] == {"dehydrated": {"value": 1, "status": status, "hydrated": True}}


@pytest.mark.parametrize("status", [100, 302, 400, 404, 500, 599])
async def test_dehydrate_is_skipped_outside_2xx(client, status):
    reply = await request(client, "withStatus", {"value": 1, "status": status})
    assert reply["status"] == status and reply["payload"] == {"value": 1, "status": status, "hydrated": True}


async def test_handler_named_explicitly_by_callable(client):
    reply = await request(client, "articles.list")
    assert reply["payload"] == "explicit callable"


async def test_many_concurrent_requests_are_each_answered_once(client):
    count = 200
    for i in range(count):
        await client.send_text(json.dumps({"uuid": f"c{i}", "route": "echo", "headers": {}, "payload": i, "status": 200}))
    replies = [await client.recv() for _ in range(count)]
    assert sorted(r["uuid"] for r in replies) == sorted(f"c{i}" for i in range(count))
    assert all(r["payload"]["payload"] == int(r["uuid"][1:]) and r["status"] == 200 for r in replies)


@pytest.mark.parametrize("kind", ["async"])  # the sync consumer answers in turn: nothing waits
async def test_async_consumer_answers_429_past_the_waiting_bound(client):
    # The test consumer runs 4 requests at once and lets 8 more wait: the 13th is refused at once.
    for i in range(13):
        await client.send_text(json.dumps({"uuid": f"s{i}", "route": "slow", "headers": {}, "payload": 0.3}))
    first = await client.recv()
    assert (first["uuid"], first["route"], first["status"], first["payload"]["code"]) == ("s12", "slow", 429, "too_many_requests")
    rest = [await client.recv() for _ in range(12)]
    assert sorted(r["uuid"] for r in rest) == sorted(f"s{i}" for i in range(12)) and {r["status"] for r in rest} == {200}
    await assert_still_open(client)
