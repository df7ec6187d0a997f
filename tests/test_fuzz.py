"""Property tests over arbitrary frames: every frame gets exactly one protocol-shaped reply,
the connection stays open, and a rejected request writes nothing."""

import json

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import permissions

from demo.models import Article
from django_channels_router.testing import RouterCommunicator
from tests.consumers import AsyncProtocolSocket, SyncProtocolSocket
from tests.drf import ArticleRouter

ENVELOPE_KEYS = {"uuid", "route", "status", "headers", "payload"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
routes = st.sampled_from(["echo", "get", "list", "create", "update", "patch", "delete", "subscribe", "unsubscribe",
                          "fail", "badResult", "raise", "withStatus", "PING", "PONG", "notImplemented"]) | st.text(max_size=12)
envelopes = st.fixed_dictionaries(
    {},
    optional={"uuid": st.text(max_size=140) | st.integers() | json_values, "route": routes | json_values,
              "headers": st.dictionaries(st.sampled_from(["id", "Authorization", "Host", "x"]), json_values, max_size=3) | json_values,
              "payload": json_values, "status": json_values},
)
frames = st.one_of(
    envelopes.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.integers(1, 300).map(lambda depth: "[" * depth + "]" * depth),
    st.just('{"uuid": "n", "route": "echo", "payload": NaN}'),
)


def exchange(consumer, sequence):
    """Send each frame, await its reply, then check with a PING that the socket is still open
    and nothing more came: return the replies each frame got."""
    async def run():
        comm = RouterCommunicator(consumer.as_asgi(), "/ws/", user=AnonymousUser())
        assert (await comm.connect())[0]
        replies = []
        for frame in sequence:
            if isinstance(frame, bytes):
                await comm.send_to(bytes_data=frame or b"\0")
            else:
                await comm.input_queue.put({"type": "websocket.receive", "text": frame})
            got = [json.loads(await comm.receive_from(timeout=10))]  # its reply (PING would overtake it)
            await comm.send_to(text_data='{"uuid": "alive", "route": "PING"}')
            while True:  # anything before the PONG is a second reply to the same frame
                message = json.loads(await comm.receive_from(timeout=10))
                if message.get("uuid") == "alive" and message.get("route") == "PONG":
                    break
                got.append(message)
            replies.append(got)
        await comm.disconnect()
        return replies
    return async_to_sync(run)()


def assert_one_protocol_reply(frame, got):
    assert len(got) == 1, (frame, got)
    reply = got[0]
    assert set(reply) == ENVELOPE_KEYS and isinstance(reply["status"], int) and 100 <= reply["status"] <= 599
    try:
        sent = json.loads(frame) if isinstance(frame, str) else None
    except ValueError:
        sent = None
    if reply["route"] == "PONG":  # only ever the heartbeat's answer
        assert isinstance(sent, dict) and sent.get("route") == "PING" and reply["status"] == 200
    if isinstance(sent, dict) and reply["uuid"] is not None:
        assert reply["uuid"] == sent.get("uuid")


FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


@pytest.mark.parametrize("consumer", [SyncProtocolSocket, AsyncProtocolSocket])
@FUZZ
@given(sequence=st.lists(frames, min_size=1, max_size=6))
def test_every_frame_gets_exactly_one_reply_and_the_socket_stays_open(consumer, sequence):
    sequence = [f for f in sequence if not (isinstance(f, str) and '"slow' in f)]
    for frame, got in zip(sequence, exchange(consumer, sequence), strict=True):
        assert_one_protocol_reply(frame, got)


class ReadOnlyForAnonymous(ArticleRouter):
    permission_classes = [permissions.IsAuthenticatedOrReadOnly]


#: Writes that would succeed for a user allowed to write: ``(route, title)``, made into frames
#: naming an existing article once the test has one.
valid_writes = st.tuples(st.sampled_from(["create", "update", "patch", "delete"]),
                         st.text(min_size=1, max_size=20).filter(str.strip))


@pytest.mark.django_db(transaction=True)
@FUZZ
@given(sequence=st.lists(frames | valid_writes, min_size=1, max_size=6))
def test_a_model_router_writes_nothing_for_rejected_requests(sequence):
    pk = Article.objects.get_or_create(title="Kept", body="as it is")[0].pk
    writes = {n for n, frame in enumerate(sequence) if isinstance(frame, tuple)}  # (a fuzzed frame may say uuid "w")
    sequence = [frame if not isinstance(frame, tuple) else json.dumps(
        {"uuid": "w", "route": frame[0], "headers": {"id": pk}, "payload": {"title": frame[1]}}) for frame in sequence]
    before = list(Article.objects.values_list("id", "title", "body"))
    for n, (frame, got) in enumerate(zip(sequence, exchange(ReadOnlyForAnonymous, sequence), strict=True)):
        assert_one_protocol_reply(frame, got)
        if n in writes:  # a well-formed write by an anonymous user
            assert got[0]["status"] == 401, got
    assert list(Article.objects.values_list("id", "title", "body")) == before
