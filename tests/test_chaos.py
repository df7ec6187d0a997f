"""Chaos: nothing lost, nothing applied twice, while servers are killed and connections cut.

Two server processes (uvicorn and daphne) on the test's PostgreSQL database and channels-redis.
Two clients, each through a TCP proxy of its own to one server (one connection in three to the
other): router-socket.js in node
(clients/js/test/chaos-client.mjs, following the list with the live-list recipe) and
RouterClient in this process. Each does keyed creates, updates and deletes, a few in flight at
once, while holding a list subscription whose pushes it applies to a copy of the list. Meanwhile
the test kills the servers with SIGKILL and restarts them on their ports after a short outage (far
shorter than ``CHANGE_HISTORY_SECONDS``), and cuts the clients' connections in the proxies.

At the end every request was answered exactly once, every acknowledged write is in the database
once (rows, keys and history records agree), each client's copy equals the database, and no
subscription had to re-read (every resubscribe resumed). The figures are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Count

from demo.models import Article
from demo.serializers import ArticleSerializer
from django_channels_router.client import Reconnect, RouterClient
from django_channels_router.models import IdempotencyKey
from drf_bridge.models import ChangeRecord
from tests.conftest import JS, ROOT, SERVER_ENV, SERVERS, free_port, js_packages, reachable

NODE, NPM = shutil.which("node"), shutil.which("npm")
ROUTE = "/ws/articles/idempotent/"  # IdempotentArticleRouter: keyed writes, subscribe, list; header auth
USERS = {"python": 1001, "node": 1002}  # one identity per client, so that its keys survive a reconnect
KILLS_PER_SERVER = 3  # six kills in all, both kinds
IN_FLIGHT = 8  # writes at once, per client
SETTLE = 20.0  # seconds the copies may take to catch up once the writes are done (the sweeper's: ~5)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(150), pytest.mark.chaos]
db = database_sync_to_async


def skip_reason() -> str | None:
    if connection.vendor != "postgresql":
        return "the chaos test runs the servers on the test's PostgreSQL database"
    if not reachable(6379):
        return "Redis is not reachable on 127.0.0.1:6379"
    if not NODE or not NPM:
        return "node and npm are needed for the JavaScript half of the chaos test"
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True).stdout
    if int(version.lstrip("v").split(".")[0] or 0) < 20:
        return "the chaos test's JavaScript client needs Node >= 20"
    return None


def die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies, so nothing outlives it."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Server:
    """One server process on a fixed port, killed with SIGKILL and started again on it."""

    def __init__(self, kind: str, env: dict[str, str], log: Path) -> None:
        self.kind, self.env, self.log, self.port = kind, env, log, free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self) -> None:
        with open(self.log, "a") as log:
            log.write(f"--- start {self.starts + 1}\n")
            log.flush()
            self.proc = subprocess.Popen([sys.executable, "-m", *SERVERS[self.kind](self.port, "tests.asgi:application")],
                                         cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=die_with_parent)
        self.starts += 1
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} did not start: {self.log.read_text()[-4000:]}")
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class Proxy:
    """A TCP proxy on 127.0.0.1 to its client's server: the test cuts the connections through it.
    One connection in three goes to the other server instead, so that a request sent again may
    meet its first send still running on another process, and a subscription resume there."""

    def __init__(self, upstream: int, other: int) -> None:
        self.upstream, self.other = upstream, other
        self.links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.cuts = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            port = self.other if random.random() < 1 / 3 else self.upstream
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:  # the server is down: the client's handshake fails, and it tries again
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self.links.add(link)
        pipes = [asyncio.create_task(pipe(reader, up_writer)), asyncio.create_task(pipe(up_reader, writer))]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the test's loop ends: the link goes with it, quietly
            pass
        finally:
            self.links.discard(link)
            for task in pipes:
                task.cancel()
            for end in link:
                end.transport.abort()

    def cut(self) -> int:
        """Drop every connection through the proxy at once (a reset on both sides)."""
        links = list(self.links)
        for link in links:
            for end in link:
                end.transport.abort()
        self.cuts += len(links)
        return len(links)

    def close(self) -> None:
        self.cut()
        self.server.close()


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


class CountingClient(RouterClient):
    """RouterClient counting the frames it sends per ``idempotency-key`` (a re-send: the same key)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sends: Counter[str] = Counter()
        self.in_progress = 0  # 409 request_in_progress answers, asked again by the client


    async def _exchange(self, ws: Any, request_id: str, frame: str, deadline: float) -> dict[str, Any]:
        key = json.loads(frame)["headers"].get("idempotency-key")
        if key is not None:
            self.sends[key] += 1
        reply = await super()._exchange(ws, request_id, frame, deadline)
        self.in_progress += reply.get("status") == 409
        return reply


def new_figures() -> dict[str, Any]:
    return {"requests": 0, "resolved": 0, "rejected": 0, "errors": [], "non2xx": [], "replayed": 0, "creates": 0,
            "updates": 0, "deletes": 0, "resumes": 0, "notResumed": 0, "resyncs": 0, "relists": 0, "reconnects": 0}


class PythonClient:
    """The Python half: RouterClient writing and following the list, as the node script does."""

    def __init__(self, url: str, user: int, prefix: str) -> None:
        # A fault every second or two: reconnect soon, and let a request outlive several of them.
        self.client = CountingClient(url, headers={"Authorization": f"User {user}"}, request_timeout=60,
                                     max_retries=50, reconnect=Reconnect(initial=0.1, maximum=1.0))
        self.prefix, self.made, self.stopping = prefix, 0, False
        self.items: dict[int, dict[str, Any]] = {}
        self.expected: dict[int, str | None] = {}
        self.figures = new_figures()

    async def start(self) -> None:
        await self.client.connect()
        subscription = await self.client.subscribe("subscribe")
        await self.relist(first=True)
        self.follower = asyncio.create_task(self.follow(subscription))
        self.writers = [asyncio.create_task(self.writer()) for _ in range(IN_FLIGHT)]

    async def stop(self) -> dict[str, Any]:
        self.stopping = True
        await asyncio.gather(*self.writers)
        self.figures["reconnects"], self.figures["inProgress"] = self.client.reconnects, self.client.in_progress
        return {**self.figures, "resends": sum(n - 1 for n in self.client.sends.values()), "expected": self.expected}

    async def close(self) -> None:
        follower = getattr(self, "follower", None)
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        await self.client.close()

    async def relist(self, first: bool = False) -> None:
        reply = await self.client.request("list")
        assert reply["status"] == 200, reply
        self.items = {item["id"]: item for item in reply["payload"]}
        self.figures["relists"] += not first

    async def follow(self, subscription: Any) -> None:
        """Apply the pushes in order; re-read on ``resync``, a subscription not resumed, or a gap in ``seq``."""
        last = 0
        async for push in subscription:
            route, headers = push["route"], push["headers"]
            if route == "resubscribed":
                last = 0  # the pushes of the new subscribe count from 1
                self.figures["resumes" if push["resumed"] else "notResumed"] += 1
                if not push["resumed"]:
                    await self.relist()
                continue
            gap = headers.get("seq") != last + 1
            last = headers.get("seq", last)
            if route == "resync" or gap:
                self.figures["resyncs"] += route == "resync"
                await self.relist()
            elif route in ("created", "updated"):
                self.items[push["payload"]["id"]] = push["payload"]
            elif route == "deleted":
                self.items.pop(push["payload"]["id"], None)

    async def call(self, route: str, payload: Any = None, headers: dict[str, Any] | None = None) -> Any:
        """One request (with a fresh key, the client's default), counting how it ended: exactly once."""
        self.figures["requests"] += 1
        try:
            reply = await self.client.request(route, payload, headers)
        except Exception as exc:
            self.figures["rejected"] += 1
            self.figures["errors"].append(f"{route}: {exc!r}")
            return None
        self.figures["resolved"] += 1
        self.figures["replayed"] += bool((reply["headers"] or {}).get("idempotent-replay"))
        if reply["status"] >= 300:
            self.figures["non2xx"].append(f"{route} {reply['status']} {reply['payload']}")
        return reply

    async def writer(self) -> None:
        async def pause() -> None:
            await asyncio.sleep(random.uniform(0.03, 0.15))

        while not self.stopping:
            self.made += 1
            title = f"{self.prefix}-{self.made}"
            created = await self.call("create", {"title": title})
            if created is None or created["status"] != 201:
                continue
            self.figures["creates"] += 1
            pk = created["payload"]["id"]
            self.expected[pk] = title
            for n in range(1, random.randint(1, 4) + 1):
                if self.stopping:
                    break
                await pause()
                reply = await self.call("update", {"title": f"{title} v{n}"}, {"id": pk})
                if reply is not None and reply["status"] == 200:
                    self.figures["updates"] += 1
                    self.expected[pk] = f"{title} v{n}"
            if random.random() < 0.2:
                await pause()
                reply = await self.call("delete", None, {"id": pk})
                if reply is not None and reply["status"] == 204:
                    self.figures["deletes"] += 1
                    self.expected[pk] = None
            await pause()


class NodeClient:
    """The node half (chaos-client.mjs), spoken to in JSON lines on its stdin and stdout."""

    async def start(self, url: str, user: int, prefix: str, log: Path) -> None:
        self.log = log
        assert NODE is not None
        with open(log, "w") as stderr:
            self.proc = await asyncio.create_subprocess_exec(
                NODE, str(JS / "test" / "chaos-client.mjs"), url, str(user), prefix, str(IN_FLIGHT), cwd=JS,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, preexec_fn=die_with_parent)
        assert await self.read(30) == {"ready": True}

    async def read(self, timeout: float) -> Any:
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            line = b""
        assert line, f"the node client said nothing more: {self.log.read_text()[-4000:]}"
        return json.loads(line)

    async def ask(self, command: str, timeout: float = 10) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())
        await self.proc.stdin.drain()
        return await self.read(timeout)

    async def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"exit\n")
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@pytest.fixture
def ready():
    """Skipped, saying why, without PostgreSQL, Redis or node; else the node client's packages."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    js_packages()


@db
def make_users() -> None:
    for name, pk in USERS.items():
        User.objects.create(pk=pk, username=f"chaos-{name}")


@db
def database_now() -> dict[str, Any]:
    articles = {item["id"]: dict(item) for item in ArticleSerializer(Article.objects.all(), many=True).data}
    return {
        "articles": articles,
        "keys": dict(IdempotencyKey.objects.values_list("identity").annotate(Count("id"))),
        "records": ChangeRecord.objects.filter(model=Article._meta.label_lower).count(),
        "repeated titles": list(Article.objects.values("title").annotate(n=Count("id")).filter(n__gt=1)),
    }


async def chaos(servers: list[Server], proxies: list[Proxy], figures: dict[str, Any]) -> None:
    """Kill each server KILLS_PER_SERVER times at random moments, restarting it on its port after a
    random outage, while connections through the proxies are cut at random; until the kills are done."""
    async def kill_and_restart(server: Server) -> None:
        for _ in range(KILLS_PER_SERVER):
            await asyncio.sleep(random.uniform(2.5, 5.5))
            server.kill()
            figures["kills"] += 1
            figures[f"kills {server.kind}"] += 1
            outage = random.uniform(0.2, 2.0)
            figures["outage seconds"] += outage
            await asyncio.sleep(outage)
            await server.start()

    async def cut_at_random() -> None:
        while True:
            await asyncio.sleep(random.uniform(0.3, 1.2))
            figures["cuts"] += random.choice(proxies).cut()

    cutter = asyncio.create_task(cut_at_random())
    try:
        await asyncio.gather(*(kill_and_restart(server) for server in servers))
    finally:
        cutter.cancel()


async def test_nothing_lost_nothing_twice_while_servers_die_and_connections_drop(ready, tmp_path, capsys):
    started = time.monotonic()
    await make_users()
    settings = connection.settings_dict
    env = {**SERVER_ENV, "DJANGO_SETTINGS_MODULE": "tests.settings", "REDIS_URL": "redis://127.0.0.1:6379/0",
           "CHANNELS_REDIS_PREFIX": f"dcr-chaos-{uuid.uuid4().hex[:8]}",
           "DATABASE_URL": f"postgresql://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"}
    servers = [Server(kind, env, tmp_path / f"{kind}.log") for kind in ("uvicorn", "daphne")]
    proxies = [Proxy(server.port, other.port) for server, other in zip(servers, servers[::-1], strict=True)]
    python_port, node_port = [await proxy.start() for proxy in proxies]
    run = uuid.uuid4().hex[:6]
    python_client = PythonClient(f"ws://127.0.0.1:{python_port}{ROUTE}", USERS["python"], f"py-{run}")
    node_client = NodeClient()
    figures: dict[str, Any] = Counter()
    try:
        await asyncio.gather(*(server.start() for server in servers))
        await asyncio.gather(python_client.start(), node_client.start(
            f"ws://127.0.0.1:{node_port}{ROUTE}", USERS["node"], f"js-{run}", tmp_path / "node.log"))

        chaos_started = time.monotonic()
        await chaos(servers, proxies, figures)
        figures["chaos seconds"] = time.monotonic() - chaos_started
        await asyncio.sleep(3.0)  # a last few writes on servers left alone
        results = dict(zip(("python", "node"), await asyncio.gather(
            python_client.stop(), node_client.ask("stop", timeout=90)), strict=True))
        results["node"] = results["node"]["done"]
        writes_done = time.monotonic()

        # The copies catch up (pushes of the last writes, changes found by the sweeper): bounded.
        deadline = time.monotonic() + SETTLE
        while True:
            state = await database_now()
            copies = {"python": dict(python_client.items),
                      "node": {item["id"]: item for item in (await node_client.ask("dump"))["items"]}}
            if all(copy == state["articles"] for copy in copies.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        settled = time.monotonic() - writes_done
    finally:
        with contextlib.suppress(Exception):
            await python_client.close()
        with contextlib.suppress(Exception):
            await node_client.close()
        for proxy in proxies:
            with contextlib.suppress(Exception):
                proxy.close()
        for server in servers:
            server.stop()

    seconds = time.monotonic() - started
    # Changes a server found in the history without having heard their event (drf_bridge.sweeper):
    # their sender died, or no connection of that server was subscribed when the event went.
    logs = [line for server in servers for line in server.log.read_text().splitlines()]
    found = sum(int(line.split(" change(s) of ")[0].rsplit(maxsplit=1)[-1]) for line in logs
                if "came with no change event" in line)
    # Why a server told a subscription to re-read (drf_bridge.subscriptions logs each resync).
    resyncs_sent = Counter(line.split(": ", 1)[-1] for line in logs if line.endswith("sent resync"))
    with capsys.disabled():
        print(f"\nchaos: {figures['kills']} kills (uvicorn {figures['kills uvicorn']}, daphne {figures['kills daphne']}; "
              f"{figures['outage seconds']:.1f} s of outages before the restarts) in {figures['chaos seconds']:.1f} s, "
              f"{figures['cuts']} connections cut, "
              f"{found} changes pushed by the sweepers, {len(state['articles'])} articles at the end, "
              f"copies settled in {settled:.1f} s, {seconds:.1f} s in all; "
              f"resyncs the servers sent: {sum(resyncs_sent.values())} {dict(resyncs_sent) or ''}")
        for name, result in results.items():
            print(f"chaos {name}: {result['requests']} requests ({result['creates']} creates, {result['updates']} "
                  f"updates, {result['deletes']} deletes), resolved {result['resolved']}, rejected {result['rejected']}, "
                  f"re-sends {result['resends']} (409 in progress {result['inProgress']}), kept replies {result['replayed']}, reconnects {result['reconnects']}, "
                  f"resumes {result['resumes']}, not resumed {result['notResumed']}, resyncs {result['resyncs']}, "
                  f"re-reads {result['relists']}")

    assert figures["kills"] >= 5 and figures["kills uvicorn"] and figures["kills daphne"]
    acknowledged = 0
    for name, result in results.items():
        # Every request answered exactly once: no rejection, every reply a success.
        assert result["rejected"] == 0 and not result["errors"], (name, result["errors"][:5])
        assert result["resolved"] == result["requests"], name
        assert not result["non2xx"], (name, result["non2xx"][:5])
        writes = result["creates"] + result["updates"] + result["deletes"]
        assert writes >= 100, (name, "too few writes to say much")
        acknowledged += writes
        # Rows = distinct keys = writes acknowledged, for this client's identity.
        assert state["keys"].get(f"user:{USERS[name]}", 0) == writes, name
        prefix = f"py-{run}-" if name == "python" else f"js-{run}-"
        rows = {pk: item["title"] for pk, item in state["articles"].items() if item["title"].startswith(prefix)}
        expected = {int(pk): title for pk, title in result["expected"].items() if title is not None}
        assert rows == expected, name  # each acknowledged write applied, in order, none lost
        assert len(rows) == result["creates"] - result["deletes"], name
        # No subscription had to re-read: every resubscribe resumed.
        assert result["resyncs"] == result["notResumed"] == result["relists"] == 0, (name, dict(resyncs_sent))
    # No write applied twice: one history record per acknowledged write, no title twice.
    assert state["records"] == acknowledged
    assert state["repeated titles"] == []
    for name, copy in copies.items():
        assert copy == state["articles"], f"{name}'s copy differs from the database"

