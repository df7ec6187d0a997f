"""The tutorial (docs/tutorial/), pasted into a fresh project step by step, works as written.

The project is what a user makes: ``django-admin startproject``, ``manage.py startapp``, then the
blocks of the tutorial's pages, each written to the file its first line names (``# myapp/consumers.py``;
blocks naming the same file are joined in order; ``# myproject/settings.py`` is added to the
generated settings), as tests/projects.py does. Then, each in a subprocess with the environment a
user has (no DJANGO_SETTINGS_MODULE; PYTHONPATH the project):

* after every step, ``manage.py check`` finds nothing wrong (routes are added as the consumers
  are written, so no step imports a consumer a later step writes);
* the finished project, served by ``manage.py runserver`` (daphne's), answers every request the
  tutorial shows as the tutorial says, and the blocks the tutorial skips for Sybil
  (``<!-- skip: next "run by tests/test_tutorial.py" -->``, they need the tutorial's own models)
  run in it, at their place in the tour;
* the tutorial's test file passes, ``socketschema`` documents every route, and the tutorial's
  Python client script runs against the served project.
"""

import asyncio
import contextlib
import html
import http.cookiejar
import json
import re
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import ROOT, CallingClient, free_port, server_process
from tests.projects import SETTINGS, add_sources, files, make_project, run, start_project, user_env

# The documentation's own project, checked on the releases the README's test command installs.
pytestmark = pytest.mark.documentation

TUTORIAL = ROOT / "docs" / "tutorial"
STEPS = sorted(TUTORIAL.glob("[0-9][0-9]-*.md"))
REQUIRED = {SETTINGS, "myproject/asgi.py", "myproject/urls.py", "myapp/models.py", "myapp/routing.py",
            "myapp/consumers.py", "pytest.ini", "client_example.py"}
SKIP = '<!-- skip: next "run by tests/test_tutorial.py" -->'
SKIPPED = re.compile(re.escape(SKIP) + r"\s*\n```python\n(?P<code>.*?)^```", re.M | re.S)
CHECK_IDS = re.compile(r"\b(\w+\.[EW]\d{3})\b")
# The superuser the tutorial makes with createsuperuser (step 6).
ADMIN = {"username": "admin", "password": "tutorial-password-1"}

# The tutorial's skipped blocks, run as in `manage.py shell`: each in a fresh namespace, Django set up.
RUN_BLOCKS = """
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
django.setup()
for code in json.loads(sys.argv[1]):
    exec(compile(code, "<tutorial block>", "exec"), {"__name__": "__tutorial__"})
"""

# The tutorial's client_example.py as written, on the served port.
RUN_CLIENT_EXAMPLE = """
import asyncio, inspect, sys
import client_example
url = inspect.signature(client_example.main).parameters["url"].default
asyncio.run(client_example.main(url.replace("ws://127.0.0.1:8000", sys.argv[1], 1)))
"""


def step(prefix: str) -> Path:
    """The page of the step whose file name starts with ``prefix`` (``"02"``)."""
    [page] = [page for page in STEPS if page.name.startswith(prefix + "-")]
    return page


def shown(prefix: str, text: str) -> str:
    """``text``, which the step's page must show as it is (a reply, a script's output)."""
    assert text in step(prefix).read_text(), f"{step(prefix).name} does not show {text!r}"
    return text


def skipped_blocks(page: Path) -> list[str]:
    return [match["code"] for match in SKIPPED.finditer(page.read_text())]


def test_the_tutorial_has_steps_and_skips_only_for_this_test():
    assert len(STEPS) >= 10 and STEPS[0].name.startswith("01-"), STEPS
    assert [page.name[:2] for page in STEPS] == [f"{n:02}" for n in range(1, len(STEPS) + 1)]
    for page in STEPS:
        text = page.read_text()
        assert text.count("<!-- skip:") == len(skipped_blocks(page)), f"{page.name}: a skip this test does not run"
    assert REQUIRED <= files(*STEPS).keys(), f"no block for {sorted(REQUIRED - files(*STEPS).keys())}"


# -- every step ends in a project that runs -----------------------------------------------------


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory):
    """``startproject``/``startapp``, made once and copied for each step."""
    return start_project(tmp_path_factory.mktemp("tutorial-skeleton") / "site")


@pytest.mark.parametrize("count", range(1, len(STEPS) + 1), ids=[page.stem for page in STEPS])
def test_manage_py_check_passes_after_each_step(skeleton, tmp_path, count):
    project = shutil.copytree(skeleton, tmp_path / "site")
    add_sources(project, files(*STEPS[:count]))
    output = run(project, "manage.py", "check")
    assert "System check identified no issues" in output and not CHECK_IDS.findall(output), output


# -- the finished project -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A fresh project made of every step of the tutorial, checked and migrated."""
    sources = files(*STEPS)
    assert REQUIRED <= sources.keys(), f"the tutorial has no block for {sorted(REQUIRED - sources.keys())}"
    return make_project(tmp_path_factory.mktemp("tutorial") / "site", sources)


def run_blocks(project: Path, prefix: str, ran: list[str]) -> None:
    """Run the skipped blocks of a step in the project, as the tutorial does in `manage.py shell`."""
    blocks = skipped_blocks(step(prefix))
    assert blocks, f"{step(prefix).name} has no block for this test to run"
    run(project, "-c", RUN_BLOCKS, json.dumps(blocks))
    ran.append(step(prefix).name)


@contextlib.contextmanager
def served(project):
    """``manage.py runserver`` (daphne's, as the tutorial serves it) on 127.0.0.1; yields ``(ws URL, http URL)``."""
    port = free_port()
    with server_process(["manage", "runserver", f"127.0.0.1:{port}", "--noreload"], port,
                        project.parent / "runserver.log", cwd=project, env=user_env(project)):
        yield f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"


async def next_push(client, route):
    while True:
        for message in client.unmatched:
            if message["route"] == route:
                client.unmatched.remove(message)
                return message
        client.unmatched.append(json.loads(await asyncio.wait_for(client.ws.recv(), 10)))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def log_in(origin: str) -> str:
    """Log in at the admin's login page, as a browser does; the session cookie's value."""
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = browser.open(f"{origin}/admin/login/", timeout=10).read().decode()
    token = html.unescape(re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1])
    form = urllib.parse.urlencode({**ADMIN, "csrfmiddlewaretoken": token, "next": "/socket-docs/"}).encode()
    docs = browser.open(f"{origin}/admin/login/", form, timeout=10)
    assert docs.url == f"{origin}/socket-docs/" and docs.status == 200, docs.url
    page = docs.read().decode()
    assert '<code>/ws/model/articles/</code>' in page and 'data-route="publish"' in page, page[:2000]
    assets = re.findall(r'<(?:link|script)[^>]* (?:href|src)="([^"]+)"', page)
    assert len(assets) == 3, assets  # its icon, style sheet and script, which load
    for asset in assets:
        assert browser.open(urllib.parse.urljoin(docs.url, asset), timeout=10).status == 200, asset
    for document in ("asyncapi.json", "asyncapi.yaml"):
        assert browser.open(f"{origin}/socket-docs/{document}", timeout=10).status == 200
    return next(cookie.value for cookie in jar if cookie.name == "sessionid")


async def tour(project: Path, url: str, origin: str) -> None:
    """Every request the tutorial shows, in its order, answered as it says."""
    ran: list[str] = []

    def socket(route, session=None):
        headers = {"Cookie": f"sessionid={session}"} if session else None
        return connect(f"{url}/{route}", origin=origin, additional_headers=headers)

    # 2. A consumer: the browser's WebSocket, then RouterSocket (served as a static file).
    async with socket("ws/app/") as ws:
        await ws.send(json.dumps({"uuid": "1", "route": "sayHello", "payload": {"name": "Ada"}}))
        assert await asyncio.wait_for(ws.recv(), 10) == shown(
            "02", '{"uuid":"1","route":"sayHello","status":200,"headers":null,"payload":"Hello, Ada!"}')
        await ws.send(json.dumps({"uuid": "2", "route": "PING"}))
        assert await asyncio.wait_for(ws.recv(), 10) == shown(
            "02", '{"uuid":"2","route":"PONG","status":200,"headers":null,"payload":null}')
        app = CallingClient(ws)
        reply = await app.call("sayHello", {"name": "Ada"}, headers={"lang": "en"})
        assert (reply["status"], reply["headers"], reply["payload"]) == (200, None, "Hello, Ada!")
        assert (await app.call("sayHello"))["payload"] == "Hello, World!"
        assert (await app.call("noSuchRoute"))["status"] == 404  # nothing a client sends closes the connection
        await ws.send("not JSON")
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["status"] == 400

        run_blocks(project, "02", ran)  # Article.objects.create(title="Hello, socket")
        reply = await app.call("getArticle", {"id": 1})
        assert (reply["status"], reply["payload"]) == (200, {"id": 1, "title": "Hello, socket"})
        for bad in ({"id": 1000000}, {"id": "abc"}, None):
            reply = await app.call("getArticle", bad)
            assert (reply["status"], reply["headers"], reply["payload"]) == (404, None, {"detail": "No such article."})
    with urllib.request.urlopen(f"{origin}/static/django_channels_router/router-socket.js", timeout=10) as script:
        assert "export class RouterSocket" in script.read().decode()
    async with socket("ws/app-async/") as ws:
        reply = await CallingClient(ws).call("sayHello")
        assert (reply["status"], reply["payload"]) == (200, {"msg": "Hello async!"})

    # 3. Hydrate and dehydrate with DRF serializers.
    async with socket("ws/articles/") as ws:
        articles = CallingClient(ws)
        reply = await articles.call("get", headers={"id": 1})
        assert reply["payload"] == {"id": 1, "title": "Hello, socket", "body": "", "published": False}
        reply = await articles.call("create", {"title": "Second"})
        assert (reply["status"], reply["payload"]) == (201, {"id": 2, "title": "Second", "body": "", "published": False})
        reply = await articles.call("create", {})
        assert (reply["status"], reply["payload"]) == (400, {"title": ["This field is required."]})
        for bad in ("abc", 10**6):
            reply = await articles.call("get", headers={"id": bad})
            assert (reply["status"], reply["payload"]) == (404, None), bad

    # 4. Declared payloads.
    async with socket("ws/drafts/") as ws:
        drafts = CallingClient(ws)
        reply = await drafts.call("draft", {"title": "Draft", "id": 99})
        assert (reply["status"], reply["payload"]) == (200, {"title": "Draft"})
        reply = await drafts.call("draft", {})
        assert (reply["status"], reply["payload"]) == (400, {"title": ["This field is required."]})
        assert (await drafts.call("move", {"x": 1, "y": 2}))["payload"] == {"x": 1, "y": 2}
        reply = await drafts.call("move", {"x": "1"})
        assert (reply["status"], reply["payload"]) == (400, {
            "detail": "The payload does not match the route's schema.", "code": "invalid", "errors": [
                {"path": "/x", "message": "'1' is not of type 'integer'"},
                {"path": "", "message": "'y' is a required property"}]})

    # 6. The docs page: an anonymous visitor is sent to the admin's login; logged in, it opens.
    for page in ("socket-docs/", "socket-docs/asyncapi.json"):
        with pytest.raises(urllib.error.HTTPError) as redirected:
            urllib.request.build_opener(NoRedirect).open(f"{origin}/{page}", timeout=10)
        assert redirected.value.code == 302
        assert redirected.value.headers["Location"] == f"/admin/login/?next=/{page}"
    assert "/admin/login/?next=/socket-docs/" in step("06").read_text()
    run(project, "manage.py", "shell", "-c",
        f"from django.contrib.auth.models import User; User.objects.create_superuser(email='', **{ADMIN!r})")
    session = await asyncio.to_thread(log_in, origin)

    # 7. Model routes with DRF, logged in; then anonymous.
    async with socket("ws/model/articles/", session) as ws:
        model = CallingClient(ws)
        reply = await model.call("list")
        assert [article["title"] for article in reply["payload"]] == ["Hello, socket", "Second"]
        reply = await model.call("publish", headers={"id": 1})
        assert (reply["status"], reply["payload"]) == (200, {"id": 1, "title": "Hello, socket", "body": "",
                                                             "published": True})
        assert (await model.call("get"))["payload"]["code"] == "missing_id"
    async with socket("ws/model/articles/") as ws:
        anonymous = CallingClient(ws)
        reply = await anonymous.call("get", headers={"id": 1})
        assert (reply["status"], reply["payload"]["title"]) == (200, "Hello, socket")
        assert (await anonymous.call("get", headers={"id": "abc"}))["status"] == 404
        assert (await anonymous.call("list"))["status"] == 200
        reply = await anonymous.call("create", {"title": "Anonymous"})  # IsAuthenticatedOrReadOnly
        assert (reply["status"], reply["payload"]) == (401, {"detail": "Authentication credentials were not provided.",
                                                             "code": "not_authenticated"})

    # 8. Server push: two tabs in a room.
    async with socket("ws/chat/") as ws_a, socket("ws/chat/") as ws_b:
        a, b = CallingClient(ws_a), CallingClient(ws_b)
        assert (await a.call("join", {"room": "lobby"}))["status"] == 204
        assert (await b.call("join", {"room": "lobby"}))["status"] == 204
        reply = await a.call("say", {"room": "lobby", "text": "hi"})
        assert (reply["status"], reply["payload"]) == (202, None)
        for client in (a, b):
            push = await next_push(client, "said")
            assert (push["status"], push["headers"], push["payload"]) == (200, None, {"text": "hi"})

    # 9. Model subscriptions: the list, then changes through any socket of the server.
    async with socket("ws/model/articles/", session) as ws, socket("ws/articles/") as ws_articles:
        model, articles = CallingClient(ws), CallingClient(ws_articles)
        reply = await model.call("subscribe")
        assert (reply["status"], reply["payload"]) == (201, {"subscription": reply["uuid"], "model": "myapp.article"})
        assert (await articles.call("create", {"title": "Third"}))["status"] == 201
        assert (await model.call("patch", {"title": "Hello again"}, headers={"id": 1}))["status"] == 200
        assert (await model.call("delete", headers={"id": 2}))["status"] == 204
        pushes = [await next_push(model, route) for route in ("created", "updated", "deleted")]
        logged = [f"{push['route']} {push['headers']['seq']} {json.dumps(push['payload'])}" for push in pushes]
        assert logged == [
            'created 1 {"id": 3, "title": "Third", "body": "", "published": false}',
            'updated 2 {"id": 1, "title": "Hello again", "body": "", "published": true}',
            'deleted 3 {"id": 2}']
        for push in pushes:
            etag = {"etag": push["headers"]["etag"]} if push["route"] != "deleted" else {}
            assert isinstance(push["headers"]["position"], str)  # where a resume continues
            assert push["headers"] == {"subscription": reply["uuid"], "model": "myapp.article",
                                       "seq": push["headers"]["seq"], "position": push["headers"]["position"], **etag}
        assert (await model.call("unsubscribe", {"subscription": reply["uuid"]}))["status"] == 204
    page = step("09").read_text()
    for line in ('created 1 {id: 3, title: "Third", body: "", published: false}',
                 'updated 2 {id: 1, title: "Hello again", body: "", published: true}', "deleted 3 {id: 2}"):
        assert line in page, line
    run_blocks(project, "09", ran)  # notify_change after QuerySet.update()

    # 10. Access checks: logged in, anonymous, and the handshake.
    async with socket("ws/admin/", session) as ws:
        admin = CallingClient(ws)
        assert (await admin.call("stats"))["payload"] == {"articles": 2}
        assert (await admin.call("profile"))["payload"] == {"username": ADMIN["username"]}
    async with socket("ws/admin/") as ws:
        reply = await CallingClient(ws).call("stats")
        assert (reply["status"], reply["payload"]["code"]) == (401, "not_authenticated")
    with pytest.raises(InvalidStatus) as refused:  # login_required: refused at the handshake
        async with socket("ws/account/"):
            pass
    assert refused.value.response.status_code == 403
    async with socket("ws/account/", session) as ws:
        assert (await CallingClient(ws).call("PING"))["route"] == "PONG"

    assert ran == [page.name for page in STEPS if skipped_blocks(page)], "a skipped block was not run"


@pytest.fixture(scope="module")
def server(project):
    with served(project) as urls:
        yield urls


@pytest.fixture(scope="module")
def toured(project, server):
    """The project after the tour of steps 2 to 10 (the state step 12 starts from)."""
    asyncio.run(tour(project, *server))
    return project


def test_tutorial_requests_over_runserver(toured):
    # The tour's assertions run in the fixture, which step 12's test needs too; here, runserver's log.
    log = (toured.parent / "runserver.log").read_text()
    for line in ("System check identified no issues (0 silenced).", "Starting ASGI/Daphne version",
                 "Refused the WebSocket handshake to /ws/account/ (HTTP 403): login_required and the user is not "
                 "authenticated (user AnonymousUser)."):
        assert line in log and line in (step("01").read_text() + step("10").read_text()), line


async def test_tutorial_python_client_over_runserver(toured, server):
    # client_example.py as the tutorial writes it: it subscribes, lists, and prints the push of an
    # article created meanwhile on another socket of the same server.
    url, origin = server
    script = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_CLIENT_EXAMPLE, url, cwd=toured,
        env=user_env(toured), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        listed = (await asyncio.wait_for(script.stdout.readline(), 30)).decode()
        assert listed == shown("12", "200 ['Hello again', 'Third']") + "\n", \
            listed + (await asyncio.wait_for(script.stdout.read(), 10)).decode()
        async with connect(f"{url}/ws/articles/", origin=origin) as ws:
            reply = await CallingClient(ws).call("create", {"title": "Pushed to the script"})
        assert (reply["status"], reply["payload"]["id"]) == (201, 4), reply
        assert 'articles.request("create", {title: "Pushed to the script"})' in step("12").read_text()
        pushed = (await asyncio.wait_for(script.stdout.readline(), 10)).decode()
        assert pushed == shown("12", "created 4") + "\n", pushed
    finally:
        script.kill()
        await script.wait()


def test_tutorial_test_file_passes(project):
    tests = [name for name in files(*STEPS) if Path(name).name.startswith("test_")]
    assert tests, "the tutorial has no test file"
    expected = sum(files(*STEPS)[name].count("def test_") for name in tests)
    output = run(project, "-m", "pytest", "-p", "no:cacheprovider")  # `pytest`, as step 11 runs it
    assert f"{expected} passed" in output and shown("11", f"{expected} passed"), output


def test_tutorial_socketschema_documents_every_route(project):
    # Step 5's commands, in the tutorial's project: a valid AsyncAPI 3.0.0 document with every
    # route of every socket of its routing.py; --check finds it up to date; TypeScript into a new folder.
    import jsonschema

    from tests.test_asyncapi import ASYNCAPI_SCHEMA

    output = run(project, "manage.py", "socketschema", "--format", "json", "--file", "asyncapi.json")
    assert not CHECK_IDS.findall(output), output
    document = json.loads((project / "asyncapi.json").read_text())
    assert not list(jsonschema.Draft7Validator(ASYNCAPI_SCHEMA).iter_errors(document))
    routing = files(*STEPS)["myapp/routing.py"]
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {"/" + a for a in re.findall(r're_path\(r"([^"$]+)\$"', routing)}
    assert {"ws-drafts.draft.request", "ws-model-articles.subscribe.request",
            "ws-model-articles.publish.request"} <= set(document["operations"])
    run(project, "manage.py", "socketschema", "--file", "asyncapi.yaml")
    assert shown("05", "asyncapi.yaml is up to date.") in run(project, "manage.py", "socketschema", "--check",
                                                               "asyncapi.yaml")
    run(project, "manage.py", "socketschema", "--file", "src/sockets.ts")
    assert "wsModelArticles" in (project / "src" / "sockets.ts").read_text()
