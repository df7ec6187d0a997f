"""docs/quickstart.md, followed the way a new user follows it.

A fresh virtualenv in the test's temporary folder; the quickstart's ``pip install`` line in it, with
this checkout (a copy of its package files) for the package; ``startproject``/``startapp`` with the
quickstart's file blocks pasted in, in order; ``manage.py check``; the quickstart's ``manage.py
runserver`` (daphne's, from ``INSTALLED_APPS``), behind its ``AllowedHostsOriginValidator``. Then the
quickstart's browser-console lines run in headless Chromium on a page of that server, and its
Python script with the virtualenv's Python: each must print exactly what the quickstart says it
prints (the ```text block after ``<!-- output: browser -->`` and ``<!-- output: hello_client.py -->``).
Nothing of this checkout is on PYTHONPATH: the package comes from the virtualenv.

Without a network (and nothing in uv's cache) the packages cannot be installed: skipped, with the
installer's error. Without Chromium, only the browser test is skipped. uv (the ``dev`` extra) makes
the virtualenv; ``python -m venv`` and pip when it is missing.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests import test_docs_page
from tests.conftest import ROOT, free_port, server_process
from tests.projects import SETTINGS, blocks, files, make_project, run, user_env

# A cold uv cache downloads the packages. The virtualenv installs the newest releases whatever the session has.
pytestmark = [pytest.mark.timeout(600), pytest.mark.independent_of_versions]

QUICKSTART = ROOT / "docs/quickstart.md"
PROJECT_NAME = "django-channels-router"
#: The quickstart's commands after ``pip install``, which this test runs (make_project, then the server).
COMMANDS = [["django-admin", "startproject", "myproject", "."], ["python", "manage.py", "startapp", "myapp"],
            ["python", "manage.py", "migrate"], ["python", "manage.py", "runserver"]]
REQUIRED = {SETTINGS, "myproject/asgi.py", "myapp/consumers.py", "myapp/routing.py", "hello_client.py"}
#: What the package is built from: the files pyproject.toml's build reads.
PACKAGE_FILES = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "django_channels_router", "drf_bridge")
#: What an installer says when it cannot reach the index (uv, then pip).
NO_NETWORK = re.compile(r"Failed to fetch|error sending request|dns error|Network is unreachable|"
                        r"NewConnectionError|Failed to establish a new connection|"
                        r"Temporary failure in name resolution|Max retries exceeded", re.I)

#: The Chromium page of the docs page's tests (skipped when Chromium is missing).
page = test_docs_page.page


def shell_commands():
    """The words of every command of the quickstart's bash/console blocks, in order."""
    return [shlex.split(line.strip().removeprefix("$ "), comments=True)
            for lang, _, code in blocks(QUICKSTART) if lang in {"bash", "console", "shell"}
            for line in code.splitlines() if line.strip()]


def requirements(package: Path) -> list[str]:
    """The quickstart's ``pip install`` arguments, the project's name (with its extras) made ``package``."""
    arguments = [word for command in shell_commands() if command[:2] == ["pip", "install"] for word in command[2:]]
    ours = [word for word in arguments if re.fullmatch(rf"{PROJECT_NAME}(\[[\w,-]+\])?", word)]
    assert len(ours) == 1, f"the quickstart installs {PROJECT_NAME} once: {arguments}"
    return [f"{word} @ {package.as_uri()}" if word in ours else word for word in arguments]


def output(name: str) -> str:
    """The ```text block the quickstart marks ``<!-- output: name -->``: what the user sees."""
    found = re.findall(rf"^<!-- output: {re.escape(name)} -->\n```text\n(.*?)^```", QUICKSTART.read_text(), re.M | re.S)
    assert len(found) == 1, f"docs/quickstart.md has no single block marked <!-- output: {name} -->"
    return found[0]


def only_block(lang: str) -> str:
    """The quickstart's one block of ``lang``."""
    (found,) = [code for block_lang, _, code in blocks(QUICKSTART) if block_lang == lang]
    return found


def copy_package(where: Path) -> Path:
    """This checkout's package files in ``where`` (a build there leaves no build/ in the checkout)."""
    where.mkdir()
    for name in PACKAGE_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, where / name, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
        else:
            shutil.copy(ROOT / name, where / name)
    return where


def fresh_virtualenv(where: Path, packages: list[str]) -> str:
    """A new virtualenv with ``packages`` installed; its Python. Skips the test without a network."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    python = where / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if uv:
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(where)], check=True, timeout=120)
        install = [uv, "pip", "install", "--quiet", "--python", str(python), *packages]
    else:
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
        install = [str(python), "-m", "pip", "install", "--quiet", *packages]
    result = subprocess.run(install, capture_output=True, text=True, timeout=540)
    error = (result.stdout + result.stderr)[-2000:]
    no_network = result.returncode and NO_NETWORK.search(error)
    if no_network and uv:  # what uv has in its cache may do
        offline = subprocess.run([*install, "--offline"], capture_output=True, text=True, timeout=540)
        if not offline.returncode:
            return str(python)
    if no_network:
        pytest.skip(f"cannot install the quickstart's packages (no network?): {' '.join(install)}\n{error}")
    if result.returncode:
        pytest.fail(f"{' '.join(install)} failed:\n{error}")
    return str(python)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """The quickstart's project in a fresh virtualenv, served by its own ``runserver`` command."""
    assert [command for command in shell_commands() if command[:2] != ["pip", "install"]] == COMMANDS
    tmp = tmp_path_factory.mktemp("quickstart")
    python = fresh_virtualenv(tmp / "venv", requirements(copy_package(tmp / "package")))
    sources = files(QUICKSTART)
    assert REQUIRED <= sources.keys(), f"docs/quickstart.md has no block for {sorted(REQUIRED - sources.keys())}"
    port = free_port()  # the project's scripts talk to 127.0.0.1:8000: to this port instead
    sources = {path: text.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for path, text in sources.items()}
    project = make_project(tmp / "site", sources, python=python, checkout=False)
    checked = run(project, "manage.py", "check", python=python, checkout=False)
    imported = run(project, "-c", "import django_channels_router; print(django_channels_router.__file__)",
                   python=python, checkout=False)
    with server_process([*COMMANDS[-1][1:], f"127.0.0.1:{port}"], port, tmp / "runserver.log", cwd=project,
                        env=user_env(project, checkout=False), group=True, python=python, module=False):
        yield SimpleNamespace(project=project, python=python, port=port, checked=checked, imported=imported)


def test_the_package_comes_from_the_virtualenv_and_manage_py_check_finds_nothing(quickstart):
    assert Path(quickstart.imported.strip()).is_relative_to(Path(quickstart.python).parent.parent)
    assert quickstart.checked.strip() == "System check identified no issues (0 silenced)."


async def test_the_browser_console_lines_print_the_reply_the_quickstart_shows(page, quickstart):
    response = await page.goto(f"http://127.0.0.1:{quickstart.port}/")
    assert response.status == 200 and "The install worked" in await page.title()  # Django's welcome page
    async with page.expect_console_message(lambda message: message.type == "log", timeout=10_000) as message:
        await page.evaluate(only_block("js"))  # as pasted into the console
    assert (await message.value).text + "\n" == output("browser")


def test_the_python_script_prints_what_the_quickstart_shows(quickstart):
    printed = run(quickstart.project, "hello_client.py", python=quickstart.python, checkout=False)
    assert printed == output("hello_client.py")  # and nothing else: no warning, no log line


async def test_what_the_quickstart_says_of_origins_pings_and_unknown_routes(quickstart):
    url = f"ws://127.0.0.1:{quickstart.port}/ws/hello/"
    for origin in (None, "http://www.example.com"):  # a script without one; a page of another site
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, origin=origin):
                pass
        assert refused.value.response.status_code == 403, origin
    async with connect(url, origin=f"http://127.0.0.1:{quickstart.port}") as ws:
        await ws.send(json.dumps({"uuid": "2", "route": "PING"}))
        assert json.loads(await ws.recv()) == {"uuid": "2", "route": "PONG", "status": 200, "headers": None,
                                               "payload": None}
        await ws.send(json.dumps({"uuid": "3", "route": "sayGoodbye", "headers": {}, "payload": None}))
        reply = json.loads(await ws.recv())
        assert (reply["uuid"], reply["status"], reply["payload"]["code"]) == ("3", 404, "route_not_found")
    # RouterClient(origin=None) sends no Origin: refused, and the client says why.
    refused = run(quickstart.project, "-c", f"""
import asyncio
from django_channels_router.client import GaveUpError, Reconnect, RouterClient

async def main():
    try:
        async with RouterClient({url!r}, origin=None, reconnect=Reconnect(initial=0.01, max_refusals=1)):
            pass
    except GaveUpError as error:
        print(error)

asyncio.run(main())
""", python=quickstart.python, checkout=False)
    assert "(HTTP 403)" in refused and "Origin" in refused, refused
