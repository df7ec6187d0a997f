"""Security through real servers (daphne and uvicorn): a message's headers never pose as the
handshake's, and subscription pushes are never shared between requests that differ."""

import json
import os
import subprocess
import sys
import uuid

import pytest
from websockets.asyncio.client import connect

from tests.conftest import ROOT, CallingClient, daphne
from tests.security import GUARDED_HEADERS

pytestmark = pytest.mark.timeout(120)

SEED = """
import json
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
User.objects.create_user("alice")
keys = {}
for tenant in ("a", "b"):
    session = SessionStore()
    session["tenant"] = tenant
    session.create()
    keys[tenant] = session.session_key
print(json.dumps(keys))
"""


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server(request, tmp_path_factory):
    """tests.asgi on a real server with its own SQLite database: alice, and one session per tenant."""
    folder = tmp_path_factory.mktemp(request.param)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "testproject")])}
    env.pop("REDIS_URL", None)
    django = [sys.executable, "-m", "django"]
    subprocess.run([*django, "migrate", "--no-input"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)
    seeded = subprocess.run([*django, "shell", "-c", SEED], env=env, cwd=ROOT, check=True, capture_output=True,
                            text=True, timeout=60)
    with daphne("tests.asgi:application", folder, server=request.param,
                **{k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}) as url:
        yield url, json.loads(seeded.stdout.strip().splitlines()[-1])


async def pushed(client):
    """(route, title, viewer) of each push the client has had, waiting for more until none comes."""
    return [(p["route"], p["payload"]["title"], p["payload"]["viewer"]) for p in await client.pushes()]


def spellings(name):
    """``name`` as a client could spell it to slip past a check on the lowercased name:
    other cases, ``_`` for ``-``, Unicode letters whose upper or lower case is ASCII, spaces."""
    lower = name.lower()
    found = {name, lower, name.upper(), lower.replace("-", "_"), name.upper().replace("-", "_"), f" {name}",
             f"{name} ", f"{name}\t", f"{name}\x00"}
    for ascii_letter, lookalike in {"s": "\u017f", "i": "\u0131", "k": "\u212a", "K": "\u212a"}.items():
        if ascii_letter in name or ascii_letter in lower:
            found.add(lower.replace(ascii_letter, lookalike))
            found.add(name.upper().replace(ascii_letter.upper(), lookalike))
    return sorted(found)


async def whoami(url, headers, handshake=()):
    async with connect(f"{url}/ws/headers/", additional_headers=list(handshake)) as ws:
        reply = await CallingClient(ws).call("whoami", None, headers)
    assert reply["status"] == 200, reply
    return reply["payload"]


async def test_the_proxy_header_authenticates_when_the_handshake_carries_it(server):
    url, _ = server
    assert (await whoami(url, {}, [("X-Remote-User", "alice")]))["user"] == "alice"
    assert (await whoami(url, {}))["user"] is None


@pytest.mark.parametrize("spelling", spellings("X-Remote-User"))
async def test_no_spelling_of_a_message_header_impersonates(server, spelling):
    url, _ = server
    seen = await whoami(url, {spelling: "alice"})
    assert seen["user"] is None
    assert "alice" not in seen["meta"].values()


@pytest.mark.parametrize("name", GUARDED_HEADERS)
async def test_no_spelling_of_a_message_header_sets_what_only_the_handshake_may(server, name):
    url, _ = server
    sent = {spelling: f"forged-{n}" for n, spelling in enumerate(spellings(name))}
    meta = (await whoami(url, sent))["meta"]
    assert not [key for key, value in meta.items() if value.startswith("forged-")], meta


async def test_ordinary_message_headers_still_reach_the_request(server):
    url, _ = server
    meta = (await whoami(url, {"X-Request-Id": "abc", "Accept-Language": "fr", "x_dropped": "1"}))["meta"]
    assert (meta.get("HTTP_X_REQUEST_ID"), meta.get("HTTP_ACCEPT_LANGUAGE")) == ("abc", "fr")
    assert "1" not in meta.values()


def tenants(source, port, sessions):
    """(url host, handshake headers, tenant name) of tenant a and tenant b, for ``source``."""
    if source == "host":
        return [("127.0.0.1", [], "127.0.0.1"), ("localhost", [], "localhost")]
    headers = {"cookie": lambda t: [("Cookie", f"tenant={t}")],
               "session": lambda t: [("Cookie", f"sessionid={sessions[t]}")],
               "header": lambda t: [("X-Tenant", t)]}[source]
    return [("127.0.0.1", headers(t), t) for t in ("a", "b")]


@pytest.mark.parametrize("source", ["host", "cookie", "session", "header"])
async def test_pushes_are_worked_out_for_each_request_as_it_is(server, source):
    """Two subscribers identical in all but the tenant the handshake names: each is pushed only
    what its own request may see, serialised for its own request."""
    url, sessions = server
    port = url.rsplit(":", 1)[1]
    (host_a, headers_a, tenant_a), (host_b, headers_b, tenant_b) = tenants(source, port, sessions)
    path = f"/ws/tenant/{source}/"
    async with connect(f"ws://{host_a}:{port}{path}", additional_headers=headers_a) as ws_a, \
            connect(f"ws://{host_b}:{port}{path}", additional_headers=headers_b) as ws_b, \
            connect(f"ws://{host_a}:{port}{path}", additional_headers=headers_a) as ws_writer:
        a, b, writer = CallingClient(ws_a), CallingClient(ws_b), CallingClient(ws_writer)
        assert (await a.call("subscribe"))["status"] == 201
        assert (await b.call("subscribe"))["status"] == 201
        mark = uuid.uuid4().hex[:6]
        for title in (f"{tenant_a}:secret-{mark}", f"public:{mark}"):
            assert (await writer.call("create", {"title": title}))["status"] == 201
        assert sorted(await pushed(a)) == sorted([("created", f"public:{mark}", tenant_a),
                                                    ("created", f"{tenant_a}:secret-{mark}", tenant_a)])
        assert await pushed(b) == [("created", f"public:{mark}", tenant_b)]
