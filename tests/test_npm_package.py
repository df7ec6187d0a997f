"""The JavaScript client as the npm package ``django-channels-router`` (``clients/js``).

One source: ``django_channels_router/static/django_channels_router/router-socket.js`` (and its
``.d.ts``), which Django serves to the docs page and the demo. ``npm pack`` runs the package's
``prepack`` script, which copies them (and the LICENSE) into ``clients/js``; these tests pack it,
check that the tarball carries the static files byte for byte and the Python package's version,
and install the tarball into a fresh TypeScript project (``tsc --strict``, ``moduleResolution``
``bundler`` and ``nodenext``) and a fresh Vite app, whose build talks to a real server in headless
Chromium. The apps' own packages (``clients/js/test/apps/*``, with their lock files) are installed
once into the user's cache (``~/.cache/django-channels-router-tests/npm/<app>-<hash of the
lock>``), so reruns are fast. Skipped, saying why, without Node >= 20 and npm, when the npm
registry cannot be reached for a first install, or without Chromium and Playwright.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import django_channels_router
from tests.conftest import ROOT, daphne, free_port

# node, npm, tsc and Vite do the work here, the same whatever Django, Channels and DRF are installed.
pytestmark = pytest.mark.independent_of_versions

CLIENT = ROOT / "clients" / "js"
APPS = CLIENT / "test" / "apps"
STATIC = ROOT / "django_channels_router" / "static" / "django_channels_router"
SHIPPED = ("router-socket.js", "router-socket.d.ts")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "django-channels-router-tests" / "npm"
NODE, NPM = shutil.which("node"), shutil.which("npm")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# What npm says when it cannot reach the registry.
OFFLINE = re.compile(r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network|proxy", re.I)


def npm_version(version: str) -> str:
    """The npm (semver) version of a Python (PEP 440) version: ``X.Y.Z`` stays, ``X.Y.Z.devN``
    becomes ``X.Y.Z-dev.N``, ``X.Y.ZrcN`` becomes ``X.Y.Z-rc.N``. Other forms have no mapping yet."""
    found = re.fullmatch(r"(\d+\.\d+\.\d+)(?:\.(dev)(\d+)|(rc)(\d+))?", version)
    if not found:
        raise ValueError(f"no npm version for {version!r}: use X.Y.Z, X.Y.Z.devN or X.Y.ZrcN, or extend npm_version()")
    release, dev, dev_number, rc, rc_number = found.groups()
    return release + (f"-dev.{dev_number}" if dev else f"-rc.{rc_number}" if rc else "")


def package_json() -> dict:
    return json.loads((CLIENT / "package.json").read_text())


@pytest.mark.parametrize(("python", "npm"), [("2.0.0", "2.0.0"), ("2.0.0.dev0", "2.0.0-dev.0"),
                                             ("2.1.0.dev12", "2.1.0-dev.12"), ("2.0.0rc1", "2.0.0-rc.1")])
def test_version_mapping(python, npm):
    assert npm_version(python) == npm
    with pytest.raises(ValueError):
        npm_version("2.0.0a1")


def test_the_npm_version_is_the_python_version():
    version = django_channels_router.__version__
    assert package_json()["version"] == npm_version(version), (
        f"clients/js/package.json must say {npm_version(version)!r} for the Python package's {version!r}")


def test_package_json_declares_an_esm_package_with_its_types():
    package = package_json()
    assert package["name"] == "django-channels-router" and package["type"] == "module"
    assert list(package["exports"]["."]) == ["types", "default"]  # `types` first, or TypeScript misses it
    assert package["exports"]["."] == {"types": "./router-socket.d.ts", "default": "./router-socket.js"}
    assert package["types"] == "./router-socket.d.ts" and package["main"] == "./router-socket.js"
    assert sorted(package["files"]) == sorted(SHIPPED)
    assert package["sideEffects"] is False and package["engines"] == {"node": ">=20"}
    assert package["license"] == "MIT" and package["homepage"].startswith("https://")
    assert "repository" not in package, "the project has no public repository URL to give"
    assert package["scripts"]["prepack"] == "node scripts/prepack.mjs"
    assert not package.get("dependencies"), "the client has no dependencies"


def test_the_repository_holds_one_copy_of_the_client():
    """Only the static folder's file is committed; the package's copies are made by ``npm pack``."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout (an unpacked sdist): nothing to compare with")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in SHIPPED:
        assert [path for path in tracked if path.endswith(f"/{name}".encode())] == [
            f"django_channels_router/static/django_channels_router/{name}".encode()]


def _needs_node():
    if not NODE or not NPM:
        pytest.skip("node and npm are needed to pack and install the npm package")
    major = re.match(r"v(\d+)", subprocess.run([NODE, "--version"], capture_output=True, text=True).stdout)
    if not major or int(major.group(1)) < 20:
        pytest.skip("the npm package tests need Node >= 20")


def run(args, cwd, timeout=120, **kwargs):
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(map(str, args))} took longer than {timeout} s:\n{exc.stdout or ''}\n{exc.stderr or ''}")
    return done


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    """``npm pack`` of clients/js (its prepack copies the static files in): the .tgz's path."""
    _needs_node()
    out = tmp_path_factory.mktemp("npm-pack")
    done = run([NPM, "pack", "--json", "--pack-destination", str(out)], cwd=CLIENT)
    assert done.returncode == 0, f"npm pack failed:\n{done.stdout}\n{done.stderr}"
    [packed] = json.loads(done.stdout[done.stdout.index("["):])
    return out / packed["filename"]


def test_the_tarball_carries_the_static_files_byte_for_byte(tarball):
    with tarfile.open(tarball) as archive:
        files = {member.name.removeprefix("package/"): archive.extractfile(member).read()
                 for member in archive.getmembers() if member.isfile()}
    assert sorted(files) == sorted(["LICENSE", "README.md", "package.json", *SHIPPED])
    for name in SHIPPED:
        assert files[name] == (STATIC / name).read_bytes(), f"the packed {name} is not the static folder's"
    assert files["LICENSE"] == (ROOT / "LICENSE").read_bytes()
    assert json.loads(files["package.json"])["version"] == npm_version(django_channels_router.__version__)


@contextlib.contextmanager
def app(name, tarball):
    """``clients/js/test/apps/<name>`` with its packages installed (``npm ci``, cached by the lock)
    and the tarball installed over them; yields its folder. A lock file serializes its users."""
    source = APPS / name
    manifest = [(source / file).read_bytes() for file in ("package.json", "package-lock.json")]
    key = hashlib.sha256(b"\0".join([*manifest, NODE.encode()])).hexdigest()[:16]
    home = CACHE / f"{name}-{key}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / ".installed").exists():
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir()
            for file in ("package.json", "package-lock.json"):
                shutil.copy(source / file, home / file)
            done = run([NPM, "ci", "--no-audit", "--no-fund"], cwd=home, timeout=300)
            if done.returncode != 0 and OFFLINE.search(done.stderr):
                shutil.rmtree(home, ignore_errors=True)
                pytest.skip(f"the npm registry is unreachable (npm ci of {name}): {done.stderr.strip()[-300:]}")
            assert done.returncode == 0, f"npm ci of {name} failed:\n{done.stdout}\n{done.stderr}"
            (home / ".installed").touch()
        for path in source.rglob("*"):  # the app's own files, fresh every time
            if path.is_file() and path.name not in {"package.json", "package-lock.json"} and "node_modules" not in path.parts:
                (home / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, home / path.relative_to(source))
        done = run([NPM, "install", "--no-save", "--offline", "--no-audit", "--no-fund", str(tarball)], cwd=home)
        assert done.returncode == 0, f"npm install of the tarball failed:\n{done.stdout}\n{done.stderr}"
        installed = home / "node_modules" / "django-channels-router"
        assert (installed / "router-socket.js").read_bytes() == (STATIC / "router-socket.js").read_bytes()
        yield home


@pytest.fixture(scope="module")
def typescript_app(tarball):
    """The TypeScript app, with the demo's generated types, which import the client from the
    package by default."""
    with app("typescript", tarball) as home:
        done = run([sys.executable, "manage.py", "socketschema", "--format", "typescript",
                    "--file", str(home / "src" / "sockets.ts")], cwd=ROOT / "testproject",
                   env={"PATH": os.environ["PATH"], "DATABASE_URL": "sqlite:///:memory:", "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr
        yield home


@pytest.mark.parametrize("resolution", ["bundler", "nodenext"])
def test_a_fresh_typescript_project_type_checks_against_the_package(typescript_app, resolution):
    """src/browser.ts (bundler, with the ``dom`` lib) and src/node.ts (nodenext, with ``ws`` and
    ``@types/node`` but no ``dom`` lib: the declarations need no DOM types), each with
    src/generated.ts (the demo's generated types over the package), under ``tsc --strict``; each
    has ``@ts-expect-error`` lines, so untyped (``any``) declarations would fail too."""
    tsc = typescript_app / "node_modules" / "typescript" / "bin" / "tsc"
    done = run([NODE, str(tsc), "-p", f"tsconfig.{resolution}.json"], cwd=typescript_app)
    assert done.returncode == 0, f"tsc ({resolution}) failed:\n{done.stdout}\n{done.stderr}"
    config = json.loads((typescript_app / f"tsconfig.{resolution}.json").read_text())["compilerOptions"]
    assert config["strict"] is True and config["moduleResolution"] == resolution
    assert ("dom" in config["lib"]) is (resolution == "bundler"), config["lib"]


@contextlib.contextmanager
def static_server(folder):
    """A static file server for ``folder`` on 127.0.0.1; yields its http:// base URL."""
    handler = partial(type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *args: None}), directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_fresh_vite_app_builds_and_its_bundle_talks_to_a_real_server(tarball, tmp_path):
    """``vite build`` of test/apps/vite (main.js imports the package); the built page, served on
    127.0.0.1, connects in headless Chromium to tests.asgi:validated_application under daphne
    (Channels' AllowedHostsOriginValidator lets the page's origin in) and shows the echo reply."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
    dist = tmp_path / "dist"
    with app("vite", tarball) as home:
        vite = home / "node_modules" / "vite" / "bin" / "vite.js"
        done = run([NODE, str(vite), "build", "--outDir", str(dist), "--emptyOutDir"], cwd=home)
        assert done.returncode == 0, f"vite build failed:\n{done.stdout}\n{done.stderr}"
    bundles = list((dist / "assets").glob("*.js"))
    assert len(bundles) == 1 and "No WebSocket: pass one as options.WebSocket" in bundles[0].read_text()
    (tmp_path / "server").mkdir()
    with daphne("tests.asgi:validated_application", tmp_path / "server", DJANGO_SETTINGS_MODULE="tests.settings") as ws, \
            static_server(dist) as base:
        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = await browser.new_page()
                errors = []
                page.on("console", lambda message: message.type == "error" and errors.append(message.text))
                page.on("pageerror", lambda error: errors.append(str(error)))
                await page.goto(f"{base}/?socket={ws}/ws/async/")
                await page.wait_for_selector("body[data-done]", timeout=20_000)
                text = await page.locator("#reply").inner_text()
                assert await page.get_attribute("body", "data-done") == "true", text
            finally:
                await browser.close()
    reply = json.loads(text)
    assert reply["status"] == 200 and reply["route"] == "echo", reply
    assert reply["payload"]["payload"] == {"from": "vite"}
    assert not errors, errors
