"""Frames built to cost the server CPU: every check a frame goes through is linear in its size,
so each is answered promptly and nobody else's heartbeat waits (README.md, "The protocol in brief")."""

import asyncio
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from django_channels_router.conf import DEFAULTS
from django_channels_router.protocol import MAX_NESTING, FrameError, _nesting, _values, decode_frame

LIMIT = 1_048_576  # the default frame limit the hostile sockets keep
VALUES = DEFAULTS["MAX_MESSAGE_VALUES"]

pytestmark = pytest.mark.timeout(180)


def fill(head, unit, tail="", size=LIMIT - 64):
    """``head`` + ``unit`` repeated to about ``size`` bytes + ``tail``."""
    return head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail


#: name -> (frame, expected status, expected code). Each is near the 1 MiB limit.
HOSTILE = {
    "unterminated string of escaped quotes": (fill("[" * 129 + '"', '\\"'), 400, "malformed_json"),
    "unterminated string of backslashes": (fill("[" * 129 + '"', "\\"), 400, "malformed_json"),
    "quotes and brackets": (fill("[" * 129, '"[\\"{'), 400, "malformed_json"),
    "deep brackets": (fill("", "["), 400, "malformed_json"),
    "deep then wide": (fill("[" * 129, "[],", "]" * 129), 400, "malformed_json"),
    "brackets in a string": (fill('{"uuid":"s","route":"nope","payload":"', "[{", '"}'), 404, "route_not_found"),
    "huge integer": (fill('{"uuid":"i","route":"echo","payload":', "9", "}"), 400, "malformed_json"),
    "huge exponent": (fill('{"uuid":"e","route":"echo","payload":1e', "9", "}"), 400, "malformed_json"),
    "long fraction": (fill('{"uuid":"f","route":"nope","payload":0.', "1", "}"), 404, "route_not_found"),
    "many tiny strings": (fill("[" * 129, '"",'), 400, "malformed_json"),
    "run of backslashes in a string": (fill('{"uuid":"b","route":"nope","payload":"', "\\\\", '"}'), 404,
                                       "route_not_found"),
    # ~24 MiB of Python objects once parsed: refused before parsing.
    "many empty objects": (fill('{"uuid":"o","route":"echo","payload":[', "{},", "{}]}"), 413, "too_many_values"),
    "commas in a string": (fill('{"uuid":"c","route":"nope","payload":"', ",", '"}'), 404, "route_not_found"),
    "commas and escapes in a string": (
        fill('{"uuid":"q","route":"nope","payload":"', '\\",[{', '"}'), 404, "route_not_found"),
}


def depth(value):
    return 1 + max(map(depth, value.values() if isinstance(value, dict) else value), default=0) \
        if isinstance(value, (list, dict)) else 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:', max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\a', max_size=6),
                                                                      children, max_size=3),
    max_leaves=40,
)


@given(json_values)
def test_nesting_is_exact_for_valid_json(value):
    assert _nesting(json.dumps(value)) == depth(value)


def count(value):
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return 1 + sum(map(count, children))


@given(json_values)
def test_values_are_counted_exactly_for_valid_json(value):
    assert _values(json.dumps(value)) == count(value)
    assert _values(json.dumps(value, indent=1)) == count(value)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet='[]{}"\\a, ', min_size=1, max_size=64), st.integers(256, 4096))
def test_checking_a_frame_takes_linear_time_whatever_it_holds(unit, repeat):
    """The quadratic check took 3.2 s on 32 KB; linear checks take about a millisecond, so a
    bound a hundred times that still tells the two apart on a loaded machine."""
    text = "[" * (MAX_NESTING + 1) + unit * repeat
    started = time.process_time()
    try:
        decode_frame(text, None, LIMIT, VALUES)
    except FrameError:
        pass
    assert time.process_time() - started < 0.25 * len(text) / 262_144 + 0.05


@pytest.mark.parametrize("name", HOSTILE)
def test_each_hostile_frame_gets_its_error(name):
    frame, status, code = HOSTILE[name]
    assert len(frame.encode()) <= LIMIT
    try:
        decode_frame(frame, None, LIMIT, VALUES)
    except FrameError as exc:
        assert (exc.status, exc.code) == (status, code)
    else:
        assert status not in (400, 413)  # parsed: the consumer answers it (404 for an unknown route)


async def heartbeat(url, stop, gaps):
    """PING every 20 ms and note how long each PONG took."""
    async with connect(url) as ws:
        n = 0
        while not stop.is_set():
            n += 1
            sent = time.monotonic()
            await ws.send(json.dumps({"uuid": n, "route": "PING"}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert reply["route"] == "PONG"
            gaps.append(time.monotonic() - sent)
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("server", ["daphne_server", "uvicorn_server"])
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_hostile_frames_are_answered_promptly_while_others_keep_their_heartbeat(request, server, kind):
    base = request.getfixturevalue(server)
    stop, gaps = asyncio.Event(), []
    beating = asyncio.create_task(heartbeat(f"{base}/ws/limits/async/", stop, gaps))
    try:
        async with connect(f"{base}/ws/limits/{kind}/", max_size=None) as ws:
            for name, (frame, status, code) in [*HOSTILE.items()] * 3:
                sent = time.monotonic()
                await ws.send(frame)
                reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert (reply["status"], reply["payload"]["code"]) == (status, code), name
                assert time.monotonic() - sent < 2, name  # was minutes for the escaped quotes
            await ws.send(json.dumps({"uuid": "after", "route": "echo", "payload": 1}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["status"] == 200
    finally:
        stop.set()
        await beating
    assert len(gaps) >= 3 and max(gaps) < 1.0, f"slowest PONG {max(gaps):.3f} s"
