"""Fixtures: one ``client`` that talks to both consumers, in-process and through a real daphne."""

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from django_channels_router.testing import RouterCommunicator
from tests.consumers import AsyncProtocolSocket, SyncProtocolSocket

ROOT = Path(__file__).resolve().parent.parent
CONSUMERS = {"sync": SyncProtocolSocket, "async": AsyncProtocolSocket}


class InProcessClient:
    """Channels' communicator around the consumer, in this process."""

    def __init__(self, consumer, user=None):
        self.comm = RouterCommunicator(consumer.as_asgi(), "/ws/", user=user)

    async def open(self):
        connected, _ = await self.comm.connect()
        assert connected

    async def send_text(self, text):
        # send_to() refuses an empty frame; a real client can send one.
        await self.comm.input_queue.put({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data):
        await self.comm.send_to(bytes_data=data)

    async def recv(self, timeout=5):
        return json.loads(await self.comm.receive_from(timeout))

    async def close(self):
        await self.comm.disconnect()


class ServerClient:
    """A real WebSocket client (``websockets``) against daphne on 127.0.0.1."""

    def __init__(self, url):
        self.url = url

    async def open(self):
        self.ws = await connect(self.url, max_size=None)

    async def send_text(self, text):
        await self.ws.send(text)

    async def send_bytes(self, data):
        await self.ws.send(data)

    async def recv(self, timeout=5):
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def close(self):
        await self.ws.close()


class CallingClient:
    """A real WebSocket client that keeps the pushes that arrive while it waits for a reply."""

    def __init__(self, ws):
        self.ws, self.unmatched = ws, []

    async def call(self, route, payload=None, headers=None):
        request_id = str(uuid.uuid4())
        await self.ws.send(json.dumps({"uuid": request_id, "route": route, "headers": headers or {},
                                       "payload": payload}))
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if message["uuid"] == request_id:
                return message
            self.unmatched.append(message)

    async def pushes(self, wait=1.0):
        """Every push received so far and within ``wait`` more seconds."""
        found, self.unmatched = self.unmatched, []
        try:
            while True:
                found.append(json.loads(await asyncio.wait_for(self.ws.recv(), wait)))
        except TimeoutError:
            return found


async def request(client, route, payload=None, headers=None, uuid="req-1", **extra):
    """Send the envelope the real frontend client sends and return the reply."""
    await client.send_text(json.dumps({"uuid": uuid, "route": route, "headers": headers or {},
                                       "payload": payload, "status": 200, **extra}))
    return await client.recv()


#: The npm package: package.json, its lock and (once ``js_packages()`` ran) node_modules.
JS = ROOT / "clients" / "js"


def js_packages():
    """``npm ci`` in clients/js unless ws and tsc are there already; under one lock, so that
    pytest-xdist's workers do not install into the same folder at once. Its node_modules."""
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / "django-channels-router-npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (JS / "node_modules" / "ws").is_dir() or not (JS / "node_modules" / "typescript").is_dir():
            done = subprocess.run([shutil.which("npm") or "npm", "ci", "--no-audit", "--no-fund"], cwd=JS,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return JS / "node_modules"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(port, host="127.0.0.1"):
    """Whether a server listens on host:port (PostgreSQL, Redis)."""
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


SERVERS = {
    "daphne": lambda port, application: ["daphne", "-b", "127.0.0.1", "-p", str(port), application],
    "uvicorn": lambda port, application: ["uvicorn", "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                                          application],
}


#: The environment of a server process a test starts: this checkout's packages and test settings.
SERVER_ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'testproject'}",
              "DJANGO_SETTINGS_MODULE": "tests.settings"}


@pytest.fixture(scope="session")
def migrated(tmp_path_factory):
    """An SQLite database file with every table, for servers a test starts (copy it for each)."""
    path = tmp_path_factory.mktemp("migrated") / "migrated.sqlite3"
    subprocess.run([sys.executable, "-m", "django", "migrate", "--no-input"], cwd=ROOT, check=True, timeout=120,
                   capture_output=True, env={**SERVER_ENV, "DATABASE_URL": f"sqlite:///{path}"})
    return path


@pytest.fixture
def database(migrated, tmp_path):
    """A copy of the migrated database for the servers of one test."""
    path = tmp_path / "db.sqlite3"
    shutil.copy(migrated, path)
    return path


@contextlib.contextmanager
def server_process(args, port, log_path, cwd=ROOT, env=None, group=False, python=sys.executable, module=True):
    """Run ``python -m <args>`` until it listens on 127.0.0.1:``port``; yields the process, stopped after.

    ``group``: the server leads a process group of its own (its id is the process's), as under a
    service manager, and the whole group is stopped after (a master's workers too).
    ``python``: the interpreter; ``module=False`` runs ``python <args>`` (a script: ``manage.py ...``).
    """
    with open(log_path, "a+") as log:
        proc = subprocess.Popen([python, *(["-m"] if module else []), *args], cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=group)
        try:
            deadline = time.monotonic() + 30
            while not reachable(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"{args[0]} did not start: {log.read()[-4000:]}")
                time.sleep(0.05)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if group:
                with contextlib.suppress(ProcessLookupError):  # workers the master left behind
                    os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def daphne(application, log_dir, server="daphne", **env):
    """Serve ``application`` with a daphne (or uvicorn) process on 127.0.0.1; yields its ws:// base URL."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'testproject'}", **env}
    with server_process(SERVERS[server](port, application), port, Path(log_dir) / "daphne.log", env=env):
        yield f"ws://127.0.0.1:{port}"


def session_server(server, tmp_path_factory, migrated):
    """tests.asgi served by ``server`` for the whole session, on its own copy of the migrated
    database (routes that read and write models work, whatever DATABASE_URL the tests use)."""
    folder = tmp_path_factory.mktemp(server)
    shutil.copy(migrated, folder / "db.sqlite3")
    return daphne("tests.asgi:application", folder, server=server, DJANGO_SETTINGS_MODULE="tests.settings",
                  DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}")


@pytest.fixture(scope="session")
def daphne_server(tmp_path_factory, migrated):
    with session_server("daphne", tmp_path_factory, migrated) as url:
        yield url


@pytest.fixture(scope="session")
def uvicorn_server(tmp_path_factory, migrated):
    with session_server("uvicorn", tmp_path_factory, migrated) as url:
        yield url


def shared_database_url():
    """The URL of the PostgreSQL database this test runs on, for server processes that share it
    (committed rows only); skips the test on another database."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the server processes share the test's database on PostgreSQL")
    settings = connection.settings_dict
    return f"postgresql://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"


@pytest.fixture
def servers_on_test_database(tmp_path, django_db_setup):
    """A daphne and a uvicorn process on this test's PostgreSQL database; yields their ws:// base URLs."""
    url = shared_database_url()
    for folder in ("d", "u"):
        (tmp_path / folder).mkdir()
    with (daphne("tests.asgi:application", tmp_path / "d", DJANGO_SETTINGS_MODULE="tests.settings",
                 DATABASE_URL=url) as first,
          daphne("tests.asgi:application", tmp_path / "u", server="uvicorn", DJANGO_SETTINGS_MODULE="tests.settings",
                 DATABASE_URL=url) as second):
        yield first, second


@pytest.fixture(params=["sync", "async"])
def kind(request):
    return request.param


@pytest.fixture(params=["in-process", "daphne", "uvicorn"])
async def client(request, kind):
    """A connected client for ``kind``'s consumer, over each transport."""
    if request.param != "in-process":
        c = ServerClient(f"{request.getfixturevalue(request.param + '_server')}/ws/{kind}/")
    else:
        c = InProcessClient(CONSUMERS[kind])
    await c.open()
    yield c
    await c.close()


@pytest.fixture(autouse=True)
def _database(db):
    """Channels closes stale database connections on every message, so every consumer test touches the database."""


def pytest_report_header(config):
    from django.conf import settings

    database = settings.DATABASES["default"]
    where = database["ENGINE"].rsplit(".", 1)[-1] + (f" on {database.get('HOST')}:{database.get('PORT')}" if database.get("HOST") else "")
    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
    return [f"database: {where}", f"channel layer: {layer}"]


@pytest.fixture(scope="session", autouse=True)
def _close_worker_thread_connections(django_db_setup):
    """Async tests run ORM code in asgiref's worker thread; close its connection before the
    test database is dropped."""
    yield
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    asyncio.run(sync_to_async(connections.close_all)())
