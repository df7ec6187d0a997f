"""The browser client ``router-socket.js`` under Node's test runner, against daphne and uvicorn.

``clients/js/test/*.test.mjs`` (the npm package's tests) run with ``node --test``; this module
installs their packages (``npm ci`` when ``clients/js/node_modules`` is missing), hands them the
session servers' URLs and the command that starts a server of their own (for the restart test),
and checks ``router-socket.d.ts`` with ``tsc --strict``. Skipped without Node >= 20 and npm.
The packed npm package itself: tests/test_npm_package.py.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import JS, ROOT, SERVER_ENV, daphne, js_packages

TESTS = JS / "test"
NODE, NPM = shutil.which("node"), shutil.which("npm")


def node_major():
    if not NODE:
        return None
    found = re.match(r"v(\d+)", subprocess.run([NODE, "--version"], capture_output=True, text=True).stdout)
    return int(found.group(1)) if found else None


pytestmark = [
    pytest.mark.skipif(not NODE or not NPM, reason="node and npm are needed for the JavaScript client tests"),
    pytest.mark.skipif(NODE is not None and (node_major() or 0) < 20, reason="the JavaScript client tests need Node >= 20"),
]


def run(args, timeout, cwd=JS, **kwargs):
    try:
        return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(map(str, args))} took longer than {timeout} s:\n{exc.stdout or ''}\n{exc.stderr or ''}")


@pytest.fixture(scope="module")
def node_modules():
    return js_packages()


def server_argv(port="{port}"):
    """How ``ownServer()`` in helpers.mjs starts a daphne or uvicorn; it stops by itself after 150 s."""
    app = "tests.asgi:application"
    servers = {
        "daphne": [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", port, app],
        "uvicorn": [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", port, "--no-access-log", app],
    }
    timeout = shutil.which("timeout")  # forwards SIGTERM to the server, and ends it if nobody does
    return {name: [timeout, "-s", "TERM", "-k", "10", "150", *argv] if timeout else argv for name, argv in servers.items()}


#: Logs a user in: prints the key of a new session of user "ada" (a browser's ``sessionid`` cookie).
LOG_IN = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
user = User.objects.create_user("ada", password="ada-pass-123")
session = SessionStore()
session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                HASH_SESSION_KEY: user.get_session_auth_hash()})
session.create()
print(session.session_key)  # the last line: shell may print a line of its own before
"""


def test_node_suite(node_modules, daphne_server, uvicorn_server, database, migrated, tmp_path):
    # tests.asgi:validated_application: Channels' AllowedHostsOriginValidator, ALLOWED_HOSTS = ["127.0.0.1"],
    # on a migrated SQLite database that holds a logged-in session (node-ws.test.mjs sends its cookie).
    for folder in ("d", "u"):
        (tmp_path / folder).mkdir()
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": f"sqlite:///{database}"}
    session = subprocess.run([sys.executable, "-m", "django", "shell", "-c", LOG_IN], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, env={**SERVER_ENV, **env})
    assert session.returncode == 0, session.stderr
    with daphne("tests.asgi:validated_application", tmp_path / "d", **env) as d, \
            daphne("tests.asgi:validated_application", tmp_path / "u", server="uvicorn", **env) as u:
        run_node_suite(daphne_server, uvicorn_server, {"daphne": d, "uvicorn": u}, session.stdout.split()[-1], migrated)


def run_node_suite(daphne_server, uvicorn_server, validated, session_key, migrated):
    env = {
        **os.environ,
        "JS_DAPHNE_URL": daphne_server,
        "JS_UVICORN_URL": uvicorn_server,
        "JS_VALIDATED_URLS": json.dumps(validated),
        "JS_SESSION_KEY": session_key,
        "JS_SERVER_ARGV": json.dumps(server_argv()),
        "JS_DATABASE": str(migrated),  # each ownServer() serves a copy of it (SQLite)
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'testproject'}",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    files = sorted(path.name for path in TESTS.glob("*.test.mjs"))
    assert files
    done = run([NODE, "--test", "--test-concurrency=8", "--test-timeout=60000", *files], timeout=240, cwd=TESTS, env=env)
    output = f"{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, f"node --test failed (exit {done.returncode}):\n{output[-20000:]}"
    summary = dict(re.findall(r"^# (tests|pass|fail|duration_ms) (\S+)$", done.stdout, re.M))
    assert summary.get("fail") == "0" and int(summary.get("pass", 0)) > 0, output[-20000:]
    print(output)  # shown by pytest -rA or -s


def test_type_declarations_compile(node_modules):
    """``router-socket.d.ts`` types ``clients/js/test/types-check.ts`` under ``tsc --strict``."""
    tsc = node_modules / "typescript" / "bin" / "tsc"
    done = run([NODE, str(tsc), "--strict", "--noEmit", "-p", "tsconfig.json"], timeout=120, cwd=TESTS)
    assert done.returncode == 0, f"tsc failed:\n{done.stdout}\n{done.stderr}"


def test_both_clients_have_one_reconnect_policy():
    """router-socket.js and the Python RouterClient: the same close-code table, the same
    default reconnect policy (ms there, seconds here) and the same words for a refused handshake."""
    from dataclasses import asdict

    from django_channels_router.client import CLOSE_CODES, Reconnect, refusal

    module = ROOT / "django_channels_router" / "static" / "django_channels_router" / "router-socket.js"
    script = (f"const m = await import({json.dumps(module.as_uri())});"
              "class Idle { constructor() { this.readyState = 0; } close() {} };"
              "const socket = new m.RouterSocket('ws://127.0.0.1:9/', { WebSocket: Idle });"
              "console.log(JSON.stringify({ codes: m.CLOSE_CODES, policy: socket.reconnect,"
              " refusals: [m.refusal(3, 403), m.refusal(5, 401)] })); socket.close();")
    done = run([NODE, "--input-type=module", "-e", script], timeout=60)
    assert done.returncode == 0, done.stderr
    js = json.loads(done.stdout)
    assert {int(code): how for code, how in js["codes"].items()} == CLOSE_CODES
    seconds = {"initial": "initialMs", "maximum": "maxMs", "restart_window": "restartWindowMs", "healthy_after": "healthyAfterMs"}
    same = {"factor": "factor", "jitter": "jitter", "max_refusals": "maxRefusals"}
    python = asdict(Reconnect())
    assert set(python) == set(seconds) | set(same) and set(js["policy"]) == set(seconds.values()) | set(same.values())
    assert {name: python[name] * 1000 for name in seconds} == {name: js["policy"][key] for name, key in seconds.items()}
    assert {name: python[name] for name in same} == {name: js["policy"][key] for name, key in same.items()}
    assert js["refusals"] == [refusal(3, 403), refusal(5, 401)]  # the same words for a refused handshake
