"""README.md's tour, pasted into a fresh project, works as written.

The project is what a user makes: ``django-admin startproject``, ``manage.py startapp``, then
README.md's blocks, each written to the file its first line names (``# myapp/consumers.py``;
blocks naming the same file are joined in order; ``# myproject/settings.py`` is added to the
generated settings). Then, each in a subprocess with the environment a user has (no
DJANGO_SETTINGS_MODULE; PYTHONPATH the project): ``manage.py check`` must find nothing wrong,
the README's asgi application is served by daphne and answers the README's requests as the
README says, the README's test passes under the README's pytest settings, and the blocks that
are not files (``broadcast_sync``, ``notify_change``...) run in a fresh Django process.
"""

import ast
import asyncio
import contextlib
import json
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import ROOT, SERVERS, CallingClient, free_port, server_process
from tests.projects import SETTINGS, blocks, files, is_sketch, make_project, run, user_env

README = ROOT / "README.md"
REQUIRED = {SETTINGS, "myproject/asgi.py", "myapp/models.py", "myapp/routing.py", "myapp/consumers.py", "pytest.ini"}

# Run README blocks that are not files, each in a fresh namespace, in a process with Django set up.
RUN_SNIPPETS = """
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
django.setup()
from myapp.models import Article
print(json.dumps({"article": Article.objects.create(title="Hello, socket").pk}))
for code in json.loads(sys.argv[1]):
    exec(compile(code, "<README block>", "exec"), {"__name__": "__readme__"})
"""

# Run README's client_example.py on its own socket URL, with the served project's host and port
# (argv[1]) and the Origin the README's AllowedHostsOriginValidator wants (argv[2], what a page
# served by that host would send).
# The script as written, on the served port: RouterClient sends the URL's own origin, which the
# README project's AllowedHostsOriginValidator lets in.
RUN_CLIENT_EXAMPLE = """
import asyncio, inspect, sys
import client_example
url = inspect.signature(client_example.main).parameters["url"].default
asyncio.run(client_example.main(url.replace("ws://127.0.0.1:8000", sys.argv[1], 1)))
"""


def readme_files():
    return files(README)


def snippets():
    """The unlabelled py blocks: ``(code, runnable)``; sketches and settings fragments are only compiled."""
    found = []
    for lang, path, code in blocks(README):
        if lang in {"py", "python"} and path is None:
            tree = ast.parse(code)  # a SyntaxError fails the test
            found.append((code, not (is_sketch(code) or is_settings(tree))))
    return found


def is_settings(tree):
    """A block of ``NAME = ...`` settings only (the Redis layer, ``CHANNELS_ROUTER``)."""
    return all(isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets)
               for node in tree.body)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A fresh project made of README.md's blocks, checked and migrated; ``(path, check output)``."""
    sources = readme_files()
    assert REQUIRED <= sources.keys(), f"README.md has no block for {sorted(REQUIRED - sources.keys())}"
    project = make_project(tmp_path_factory.mktemp("readme") / "site", sources)
    checked = run(project, "manage.py", "check")
    return project, checked


def test_manage_py_check_finds_nothing_wrong(project):
    _, output = project
    assert not re.findall(r"\b(\w+\.[EW]\d{3})\b", output), output  # the in-memory layer is fine for one process


def test_blocks_that_are_not_files_run(project):
    path, _ = project
    runnable = [code for code, run_it in snippets() if run_it]
    assert runnable, "README.md has no runnable block that is not a file"
    output = run(path, "-c", RUN_SNIPPETS, json.dumps(runnable))
    assert '"article"' in output, output


@contextlib.contextmanager
def served(project):
    """The README's asgi application under daphne on 127.0.0.1; yields ``(ws base URL, Origin)``."""
    port = free_port()
    with server_process(SERVERS["daphne"](port, "myproject.asgi:application"), port, project.parent / "daphne.log",
                        cwd=project, env=user_env(project)):
        yield f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"


async def next_push(client, route):
    while True:
        for message in client.unmatched:
            if message["route"] == route:
                client.unmatched.remove(message)
                return message
        client.unmatched.append(json.loads(await asyncio.wait_for(client.ws.recv(), 10)))


async def test_readme_requests_over_daphne(project):
    path, _ = project
    article = int(re.search(r'\{"article": (\d+)\}', run(path, "-c", RUN_SNIPPETS, "[]"))[1])
    with served(path) as (url, origin):

        def socket(route):
            return connect(f"{url}/{route}", origin=origin)

        async with socket("ws/app/") as ws:
            app = CallingClient(ws)
            await ws.send(json.dumps({"uuid": "u1", "route": "PING"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {
                "uuid": "u1", "route": "PONG", "status": 200, "headers": None, "payload": None}
            reply = await app.call("sayHello", {"name": "Ada"}, headers={"lang": "en"})
            assert (reply["status"], reply["payload"]) == (200, "Hello, Ada!")
            assert (await app.call("sayHello"))["payload"] == "Hello, World!"
            reply = await app.call("getArticle", {"id": article})
            assert (reply["status"], reply["payload"]) == (200, {"id": article, "title": "Hello, socket"})
            for bad in ("abc", 10**6, None):
                reply = await app.call("getArticle", {"id": bad})
                assert (reply["status"], reply["payload"]) == (404, {"detail": "No such article."}), bad

        async with socket("ws/hello/") as ws:
            reply = await CallingClient(ws).call("sayHello")
            assert (reply["status"], reply["payload"]) == (200, "Hello!")

        async with socket("ws/app-async/") as ws:
            reply = await CallingClient(ws).call("sayHello")
            assert (reply["status"], reply["payload"]) == (200, {"msg": "Hello async!"})

        async with socket("ws/articles/") as ws:
            articles = CallingClient(ws)
            reply = await articles.call("get", headers={"id": article})
            assert (reply["status"], reply["payload"]["title"]) == (200, "Hello, socket")
            for bad in ("abc", 10**6):
                reply = await articles.call("get", headers={"id": bad})
                assert (reply["status"], reply["payload"]) == (404, None), bad
            reply = await articles.call("create", {"title": "Second"})
            assert (reply["status"], reply["payload"]["title"]) == (201, "Second")
            reply = await articles.call("create", {})
            assert (reply["status"], reply["payload"]) == (400, {"title": ["This field is required."]})

        # The docs page and its schema: for logged-in users by default, so an anonymous one is sent to log in:
        # the project has no LOGIN_URL page (/accounts/login/), so to the admin's.
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args):
                return None

        for page in ("socket-docs/", "socket-docs/asyncapi.json"):
            with pytest.raises(urllib.error.HTTPError) as redirected:
                urllib.request.build_opener(NoRedirect).open(f"{origin}/{page}", timeout=10)
            assert redirected.value.code == 302
            assert redirected.value.headers["Location"] == f"/admin/login/?next=/{page}"

        async with socket("ws/drafts/") as ws:
            drafts = CallingClient(ws)
            reply = await drafts.call("draft", {"title": "Draft", "id": 99})
            assert (reply["status"], reply["payload"]) == (200, {"title": "Draft"})
            reply = await drafts.call("draft", {})
            assert (reply["status"], reply["payload"]) == (400, {"title": ["This field is required."]})
            reply = await drafts.call("move", {"x": "1"})
            assert (reply["status"], reply["payload"]) == (400, {
                "detail": "The payload does not match the route's schema.", "code": "invalid", "errors": [
                    {"path": "/x", "message": "'1' is not of type 'integer'"},
                    {"path": "", "message": "'y' is a required property"}]})
            assert (await drafts.call("move", {"x": 1, "y": 2}))["payload"] == {"x": 1, "y": 2}

        async with socket("ws/model/articles/") as ws:
            model = CallingClient(ws)
            reply = await model.call("get", headers={"id": article})
            assert (reply["status"], reply["payload"]["id"]) == (200, article)
            assert (await model.call("get", headers={"id": "abc"}))["status"] == 404
            assert (await model.call("get"))["payload"]["code"] == "missing_id"
            reply = await model.call("list")
            assert reply["status"] == 200 and article in [a["id"] for a in reply["payload"]]
            reply = await model.call("create", {"title": "Anonymous"})  # IsAuthenticatedOrReadOnly
            assert (reply["status"], reply["payload"]["code"]) == (401, "not_authenticated")

        async with socket("ws/chat/") as ws_a, socket("ws/chat/") as ws_b:
            a, b = CallingClient(ws_a), CallingClient(ws_b)
            assert (await a.call("join", {"room": "lobby"}))["status"] == 204
            assert (await b.call("join", {"room": "lobby"}))["status"] == 204
            assert (await a.call("say", {"room": "lobby", "text": "hi"}))["status"] == 202
            for client in (a, b):
                push = await next_push(client, "said")
                assert (push["status"], push["payload"]) == (200, {"text": "hi"})

        async with socket("ws/admin/") as ws:
            reply = await CallingClient(ws).call("stats")
            assert (reply["status"], reply["payload"]["code"]) == (401, "not_authenticated")

        with pytest.raises(InvalidStatus) as refused:  # login_required: refused at the handshake
            async with socket("ws/account/"):
                pass
        assert refused.value.response.status_code == 403


async def test_readme_python_client_example_over_daphne(project):
    # client_example.py as the README writes it: it subscribes, lists, and prints the push of an
    # article created meanwhile on another socket of the same server.
    path, _ = project
    assert "client_example.py" in readme_files()
    with served(path) as (url, origin):
        script = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RUN_CLIENT_EXAMPLE, url, cwd=path,
            env=user_env(path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            listed = (await asyncio.wait_for(script.stdout.readline(), 30)).decode()
            assert listed.startswith("200 ["), listed + (await asyncio.wait_for(script.stdout.read(), 10)).decode()
            async with connect(f"{url}/ws/articles/", origin=origin) as ws:
                reply = await CallingClient(ws).call("create", {"title": "Pushed to the script"})
            assert reply["status"] == 201, reply
            pushed = (await asyncio.wait_for(script.stdout.readline(), 10)).decode()
            assert pushed.split() == ["created", str(reply["payload"]["id"])], pushed
        finally:
            script.kill()
            await script.wait()


def test_readme_testing_example_passes(project):
    path, _ = project
    tests = [name for name in readme_files() if Path(name).name.startswith("test_")]
    assert tests, "README.md has no test file"
    expected = sum(readme_files()[name].count("def test_") for name in tests)
    output = run(path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(path / "pytest.ini"),
                 "--rootdir", str(path), *tests)
    assert f"{expected} passed" in output, output


def test_readme_project_socketschema_documents_every_route(project):
    # The README's `manage.py socketschema`, in the README's project: a valid AsyncAPI 3.0.0
    # document with every route of every socket of its routing.py.
    import jsonschema

    from tests.test_asyncapi import ASYNCAPI_SCHEMA

    path, _ = project
    output = run(path, "manage.py", "socketschema", "--format", "json", "--file", "asyncapi.json")
    assert not re.findall(r"\b(\w+\.[EW]\d{3})\b", output), output
    document = json.loads((path / "asyncapi.json").read_text())
    assert not list(jsonschema.Draft7Validator(ASYNCAPI_SCHEMA).iter_errors(document))
    routing = readme_files()["myapp/routing.py"]
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {"/" + a for a in re.findall(r're_path\(r"([^"$]+)\$"', routing)}
    assert {"ws-drafts.draft.request", "ws-model-articles.subscribe.request"} <= set(document["operations"])


def test_documents_cite_only_documents_of_the_project():
    # A user reads the cited file: the protocol is README.md's "The protocol in brief", not a file kept elsewhere.
    texts = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    for folder in ("django_channels_router", "drf_bridge", "tests", "bench", "testproject"):
        texts += [path for path in (ROOT / folder).rglob("*") if path.suffix in {".py", ".md", ".js", ".ts"}
                  and "node_modules" not in path.parts]
    cited = {(name, text.relative_to(ROOT).as_posix()) for text in texts
             for name in re.findall(r"\b[\w./-]+\.md\b", text.read_text(errors="replace"))}
    missing = {(name, where) for name, where in cited
               if not (ROOT / name).exists() and not (ROOT / where).parent.joinpath(name).exists()}
    assert not missing, sorted(missing)
