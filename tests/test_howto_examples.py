"""The project files of the how-to and explanation pages, run as a user runs them.

Sybil only compiles a page's file blocks (``# myproject/tokenauth.py``); here they are written into
fresh projects (tests/projects.py), served by a real daphne or uvicorn on 127.0.0.1, and run:

* docs/howto/clients.md: its asgi.py with the token middleware, its consumers and its scripts. A
  valid token opens the socket, a missing, wrong or inactive user's one is refused at the
  handshake; the session cookie still works behind the middleware; ``make_session.py`` run in
  ``manage.py shell`` makes the session ``as_user.py`` logs in with; every script prints what the
  page says.
* docs/howto/testing.md: its ``pytest.ini`` and tests pass under pytest, in the project.
* docs/explanation/delivery.md: ``client_subscriptions.py`` follows a list as the page says, while
  another client writes through the served project; ``publish_all()`` (tasks.py) reaches the
  subscribers.
* docs/explanation/security.md: ``PublicArticles`` (one sharing key for all) and
  ``TenantArticles`` (the tenant in the key and the queryset) push what the page says.
* docs/howto/deploy.md: its static files settings and asgi.py lines: daphne serves the package's
  static files, ``collectstatic`` collects them.

A page shows what it is about, not a whole project: the rest (settings, an ``Article`` model, its
serializer, the routing and the consumers a page's scripts talk to) is below, as a reader has it
from the quickstart and the tutorial.
"""

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from django_channels_router.client import RouterClient
from tests.conftest import ROOT, SERVERS, free_port, server_process
from tests.projects import SETTINGS, blocks, files, make_project, run, user_env

# The documentation's own project, checked on the releases the README's test command installs.
pytestmark = pytest.mark.documentation

CLIENTS = ROOT / "docs/howto/clients.md"
TESTING = ROOT / "docs/howto/testing.md"
DELIVERY = ROOT / "docs/explanation/delivery.md"
SECURITY = ROOT / "docs/explanation/security.md"
DEPLOY = ROOT / "docs/howto/deploy.md"

PROJECT = {
    SETTINGS: """
INSTALLED_APPS += ["channels", "rest_framework", "rest_framework.authtoken", "django_channels_router", "drf_bridge",
                   "myapp"]
ASGI_APPLICATION = "myproject.asgi.application"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
ALLOWED_HOSTS = ["127.0.0.1"]
""",
    "myapp/models.py": """
from django.db import models


class Article(models.Model):
    title = models.CharField(max_length=200)
    published = models.BooleanField(default=False)
    tenant = models.CharField(max_length=50, blank=True)
""",
    "myapp/serializers.py": """
from rest_framework import serializers

from myapp.models import Article


class ArticleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Article
        fields = ["id", "title"]
""",
    "myapp/routing.py": """
from django.urls import path

from myapp import consumers

ROUTES = {"ws/app/": "AppSocket", "ws/account/": "AccountSocket", "ws/model/articles/": "ArticleSocket"}
websocket_urlpatterns = [path(route, getattr(consumers, name).as_asgi())
                         for route, name in ROUTES.items() if hasattr(consumers, name)]
""",
}

APP_SOCKET = """
from django_channels_router import SocketRouterConsumer


class AppSocket(SocketRouterConsumer):
    routes = [{"route": "sayHello"}]

    def on_say_hello(self, payload, headers):
        return {"payload": f"Hello, {(payload or {}).get('name', 'World')}!"}
"""

ARTICLE_SOCKET = """
from drf_bridge import ModelSocketRouter
from myapp.models import Article
from myapp.serializers import ArticleSerializer


class ArticleSocket(ModelSocketRouter):
    queryset = Article.objects.all()
    serializer_class = ArticleSerializer
"""

# A script's function, called on the test's server: ``python -c RUN_SCRIPT script.py main ws://...``.
# run_path runs the file as a module, not as __main__, so its own asyncio.run(main()) does not run.
RUN_SCRIPT = """
import asyncio, runpy, sys
script = runpy.run_path(sys.argv[1])
asyncio.run(script[sys.argv[2]](sys.argv[3]))
"""

USERS = """
import json
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from myapp.models import Article
reporter = User.objects.create_user("reporter")
retired = User.objects.create_user("retired", is_active=False)
Article.objects.create(title="Hello, socket")
tokens = {"token": Token.objects.create(user=reporter).key, "inactive": Token.objects.create(user=retired).key}
print(json.dumps(tokens))
"""


def console(document, script):
    """The lines of a page's ``console`` block whose command ends in ``script``."""
    for lang, _, code in blocks(document):
        lines = code.strip().splitlines()
        if lang == "console" and lines[0].endswith(script):
            return lines
    raise AssertionError(f"{document.name} has no console block running {script}")


def printed(document, script):
    """What the page says the command ending in ``script`` prints."""
    return "\n".join(line for line in console(document, script) if not line.startswith("$ "))


def printed_command(document, script):
    """The command the page runs ``script`` with."""
    return console(document, script)[0]


def deploy_block(path, containing):
    """docs/howto/deploy.md's block for ``path`` that contains ``containing``."""
    found = [code for _, label, code in blocks(DEPLOY) if label == path and containing in code]
    assert len(found) == 1, f"docs/howto/deploy.md has {len(found)} {path} blocks with {containing}"
    return found[0]


def project_files(*documents, consumers=""):
    """The documents' file blocks and the rest of the project; ``consumers`` added to myapp/consumers.py."""
    sources = {**files(*documents), **PROJECT}
    sources["myapp/consumers.py"] = sources.get("myapp/consumers.py", "") + "\n\n" + consumers
    return sources


@contextlib.contextmanager
def served(project, server):
    """The project's asgi application under ``server`` on 127.0.0.1; yields ``(ws base URL, log path)``."""
    port, log = free_port(), project.parent / f"{server}.log"
    with server_process(SERVERS[server](port, "myproject.asgi:application"), port, log, cwd=project,
                        env=user_env(project)):
        yield f"ws://127.0.0.1:{port}", log


@pytest.fixture(scope="module")
def clients_project(tmp_path_factory):
    """docs/howto/clients.md's asgi.py, token middleware, consumers, scripts; ``(path, {"token", "inactive"})``."""
    sources = project_files(CLIENTS, consumers=APP_SOCKET)
    assert {"myproject/asgi.py", "myproject/tokenauth.py", "scripts/with_token.py"} <= sources.keys()
    # docs/howto/deploy.md's static files: its settings, and its asgi.py lines before the application.
    asgi = [code for _, path, code in blocks(CLIENTS) if path == "myproject/asgi.py"]
    sources["myproject/asgi.py"] = "\n\n".join([asgi[0], deploy_block("myproject/asgi.py", "ASGIStaticFilesHandler"),
                                                *asgi[1:]])
    sources[SETTINGS] += "\n\n" + deploy_block(SETTINGS, "STATIC_ROOT")
    project = make_project(tmp_path_factory.mktemp("clients") / "site", sources)
    return project, json.loads(run(project, "manage.py", "shell", "-v", "0", "-c", USERS))


@pytest.fixture(scope="module")
def clients_server(clients_project):
    project, tokens = clients_project
    with served(project, "daphne") as (url, log):
        yield project, tokens, url, log


async def handshake(url, **headers):
    """The HTTP status answering a handshake with the site's Origin and ``headers``: 101 if it opened."""
    try:
        async with connect(url, origin=url.replace("ws://", "http://").split("/ws/")[0], additional_headers=headers):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_the_token_middleware_lets_a_valid_token_in_and_no_other(clients_project, server):
    project, tokens = clients_project
    with served(project, server) as (url, log):
        account = f"{url}/ws/account/"
        statuses = {case: asyncio.run(handshake(account, **headers)) for case, headers in {
            "valid": {"Authorization": f"Token {tokens['token']}"},
            "lower case kind": {"Authorization": f"token {tokens['token']}"},
            "missing": {},
            "wrong": {"Authorization": "Token not-a-token"},
            "inactive user": {"Authorization": f"Token {tokens['inactive']}"},
            "other scheme": {"Authorization": f"Bearer {tokens['token']}"},
        }.items()}
        assert statuses == {"valid": 101, "lower case kind": 101, "missing": 403, "wrong": 403, "inactive user": 403,
                            "other scheme": 403}
        output = run(project, "-c", RUN_SCRIPT, "scripts/with_token.py", "main", account,
                     env={"API_TOKEN": tokens["token"]})
    assert output.strip() == printed(CLIENTS, "scripts/with_token.py") == "200 {'username': 'reporter'}"
    refusal = ("Refused the WebSocket handshake to /ws/account/ (HTTP 403): login_required and the user is not "
               "authenticated (user AnonymousUser).")
    assert log.read_text().count(refusal) == 4


def test_the_session_cookie_still_logs_in_behind_the_token_middleware(clients_server):
    project, _, url, _ = clients_server
    # The page's command: SESSION_ID=$(python manage.py shell ... < scripts/make_session.py) python scripts/as_user.py
    command = re.search(r"\$\(python (?P<args>[^<]+) < (?P<input>[\w/.]+)\)",
                        printed_command(CLIENTS, "scripts/as_user.py"))
    session = run(project, *command["args"].split(), stdin=(project / command["input"]).read_text()).strip()
    assert len(session) == 32, session
    output = run(project, "-c", RUN_SCRIPT, "scripts/as_user.py", "main", f"{url}/ws/account/",
                 env={"SESSION_ID": session})
    assert output.strip() == printed(CLIENTS, "scripts/as_user.py") == "200 {'username': 'reporter'}"
    assert asyncio.run(handshake(f"{url}/ws/account/", Cookie="sessionid=not-a-session")) == 403


def test_a_token_in_every_message(clients_server):
    project, tokens, url, _ = clients_server
    articles = f"{url}/ws/model/articles/"
    output = run(project, "-c", RUN_SCRIPT, "scripts/articles.py", "main", articles, env={"API_TOKEN": tokens["token"]})
    assert output.strip() == "200 ['Hello, socket']"

    async def refusals():
        async with RouterClient(articles, request_timeout=10) as client:
            missing = await client.request("list")
            wrong = await client.request("list", headers={"Authorization": "Token not-a-token"})
        return [(reply["status"], reply["payload"]) for reply in (missing, wrong)]

    assert asyncio.run(refusals()) == [
        (401, {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}),
        (401, {"detail": "Invalid token."})]


def test_hello_script(clients_server):
    project, _, url, _ = clients_server
    output = run(project, "-c", RUN_SCRIPT, "scripts/hello.py", "main", f"{url}/ws/app/")
    assert output.strip() == "200 Hello, Ada!"


@pytest.fixture(scope="module")
def testing_project(tmp_path_factory):
    """The pytest.ini and tests of docs/howto/testing.md, the consumers and client of
    docs/explanation/security.md and docs/explanation/delivery.md, the asgi.py of docs/howto/clients.md."""
    sources = {**project_files(TESTING, DELIVERY, SECURITY, consumers=APP_SOCKET + ARTICLE_SOCKET),
               **{path: code for path, code in files(CLIENTS).items() if path.startswith("myproject/")}}
    assert {"pytest.ini", "myapp/test_consumers.py", "myapp/test_subscriptions.py", "client_subscriptions.py",
            "myapp/tasks.py"} <= sources.keys()
    assert "class PublicArticles" in sources["myapp/consumers.py"]
    return make_project(tmp_path_factory.mktemp("testing") / "site", sources)


def test_the_testing_page_tests_pass_under_pytest(testing_project):
    output = run(testing_project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "myapp")
    assert "2 passed" in output, output


async def test_the_subscription_follower(testing_project):
    expected = next(code.strip().splitlines() for lang, _, code in blocks(DELIVERY)
                    if lang == "text" and code.startswith("list ["))
    with served(testing_project, "uvicorn") as (url, _):
        articles = f"{url}/ws/model/articles/"
        async with RouterClient(articles, request_timeout=10) as writer:
            draft = (await writer.request("create", {"title": "Draft"}))["payload"]["id"]
            follower = await asyncio.create_subprocess_exec(
                sys.executable, "-u", "-c", RUN_SCRIPT, "client_subscriptions.py", "follow", articles,
                cwd=testing_project, env=user_env(testing_project), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                lines = []

                async def line():
                    lines.append((await asyncio.wait_for(follower.stdout.readline(), 15)).decode().rstrip("\n"))

                await line()
                news = await writer.request("create", {"title": "News"})
                await line()
                assert (await writer.request("patch", {"title": "Final news"}, {"id": news["payload"]["id"]}))[
                    "status"] == 200
                await line()
                assert (await writer.request("delete", headers={"id": draft}))["status"] == 204
                await line()
            finally:
                follower.terminate()
                await follower.wait()
    assert lines == expected == ["list ['Draft']", "created ['Draft', 'News']", "updated ['Draft', 'Final news']",
                                 "deleted ['Final news']"]


# The consumers of docs/explanation/security.md and publish_all() of docs/explanation/delivery.md,
# in a process of the project (one process: the in-memory layer). A middleware of the kind the page
# speaks of puts the tenant in the scope.
SHARING_KEYS = """
import asyncio, json
from asgiref.sync import sync_to_async
from django_channels_router.testing import RouterCommunicator
from myapp.consumers import PublicArticles, TenantArticles
from myapp.models import Article
from myapp.tasks import publish_all


def with_tenant(tenant):
    consumer = TenantArticles.as_asgi()

    async def application(scope, receive, send):
        return await consumer({**scope, "tenant": tenant}, receive, send)
    return application


async def subscribed(application):
    communicator = RouterCommunicator(application, "/ws/")
    assert (await communicator.connect())[0]
    assert (await communicator.request("subscribe"))["status"] == 201
    return communicator


async def pushes(communicator):
    found = []
    while not await communicator.receive_nothing(timeout=0.5):
        push = await communicator.receive_message()
        found.append((push["route"], push["payload"].get("title")))
    return found


async def main():
    report = {}
    await sync_to_async(Article.objects.all().delete)()  # what other tests left
    public = [await subscribed(PublicArticles.as_asgi()) for _ in range(2)]
    await sync_to_async(Article.objects.create)(title="Unpublished")
    drafts = await sync_to_async(Article.objects.bulk_create)([Article(title="One"), Article(title="Two")])
    report["before"] = [await pushes(communicator) for communicator in public]
    await sync_to_async(publish_all)()
    report["published"] = [sorted(await pushes(communicator)) for communicator in public]
    tenants = {tenant: await subscribed(with_tenant(tenant)) for tenant in ("a", "b")}
    await sync_to_async(Article.objects.create)(title="For a", tenant="a")
    report["tenants"] = {tenant: await pushes(communicator) for tenant, communicator in tenants.items()}
    for tenant, communicator in tenants.items():
        reply = await communicator.request("list")
        report["tenants"][tenant].append(("list", [article["title"] for article in reply["payload"]]))
    for communicator in [*public, *tenants.values()]:
        await communicator.disconnect()
    print(json.dumps(report))


asyncio.run(main())
"""


def test_sharing_keys_and_notify_change(testing_project):
    report = json.loads(run(testing_project, "manage.py", "shell", "-v", "0", "-c", SHARING_KEYS))
    assert report == {
        "before": [[], []],  # not published: no push; bulk_create: no signal, no push
        "published": [[["created", "One"], ["created", "Two"], ["created", "Unpublished"]]] * 2,
        "tenants": {"a": [["created", "For a"], ["list", ["For a"]]], "b": [["list", []]]},
    }


def test_static_files_as_deploy_md_serves_them(clients_server):
    project, _, url, _ = clients_server
    origin = url.replace("ws://", "http://")
    with urllib.request.urlopen(f"{origin}/static/django_channels_router/docs.js", timeout=10) as response:
        assert response.status == 200
        assert response.read() == (ROOT / "django_channels_router/static/django_channels_router/docs.js").read_bytes()
    run(project, "manage.py", "collectstatic", "--noinput", "-v", "0")
    assert (project / "staticfiles" / "django_channels_router" / "docs.js").is_file()
