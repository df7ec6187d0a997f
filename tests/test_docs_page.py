"""The socket docs page (django_channels_router.urls) and the demo page in a real headless Chromium.

The demo runs as scripts/demo.sh runs it (manage.py runserver: daphne, static files), on SQLite
and the in-memory layer, and served by daphne and uvicorn alone (no static files). The page sends a strict Content-Security-Policy of its own, so an inline
script or style, an eval, or a request to anywhere else would show as a console error.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings as django_settings
from django.contrib.admin.sites import AdminSite
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import path

from django_channels_router.contract.views import content_security_policy
from tests import docs_urls
from tests.conftest import ROOT, SERVERS, free_port, reachable, server_process

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DEMO = ROOT / "testproject"
STATIC = ROOT / "django_channels_router" / "static"


def manage(env, *command):
    return subprocess.run([sys.executable, "manage.py", *command], cwd=DEMO, env=env, check=True,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo on 127.0.0.1 with an admin user: ``(http base URL, port)``."""
    tmp = tmp_path_factory.mktemp("docs-demo")
    env = demo_env(tmp, DJANGO_SUPERUSER_PASSWORD="docs-pass-123")
    manage(env, "seed_articles")
    manage(env, "createsuperuser", "--no-input", "--username", "admin", "--email", "admin@example.com")
    with runserver(env, tmp / "server.log") as port:
        yield f"http://127.0.0.1:{port}", port


def demo_env(tmp, **settings):
    """The environment of a demo on SQLite in ``tmp`` and the in-memory layer, migrated."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp / 'demo.sqlite3'}", "DJANGO_SETTINGS_MODULE": "testproject.settings",
           "ROUTER_LOG_LEVEL": "ERROR", "PYTHONPATH": os.pathsep.join([str(ROOT), str(DEMO)])}
    for name in ("REDIS_URL", "DJANGO_STATIC_URL"):
        env.pop(name, None)
    env.update(settings)
    manage(env, "migrate", "--no-input")
    return env


@contextmanager
def runserver(env, log_path):
    """``manage.py runserver`` of the demo on a free port of 127.0.0.1, until the block ends."""
    port = free_port()
    with open(log_path, "w+") as log:
        server = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                                  cwd=DEMO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while not reachable(port):
                assert server.poll() is None and time.monotonic() < deadline, log.read()
                time.sleep(0.1)
            yield port
        finally:
            server.terminate()
            server.wait(timeout=10)


@pytest.fixture
async def page():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            page.console_errors = []
            page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
            page.on("pageerror", lambda error: page.console_errors.append(str(error)))
            yield page
        finally:
            await browser.close()


async def open_docs(page, base):
    response = await page.goto(f"{base}/socket-docs/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    await page.wait_for_selector("body[data-ready=true]")


async def send(page, socket, route, payload, headers=None):
    await page.select_option("#console-socket", socket)
    await page.select_option("#console-route", route)
    await page.fill("#console-headers", json.dumps(headers or {}))
    await page.fill("#console-payload", json.dumps(payload))
    await page.click("#console-send")


async def logged(page, kind, route, count=1):
    """The console's log entries of ``kind`` (reply, push) for ``route``, once there are ``count``."""
    selector = f"#console-log li[data-kind={kind}][data-route='{route}']"
    try:
        await page.locator(selector).nth(count - 1).wait_for(timeout=10_000)  # (no eval: the CSP forbids it)
    except Exception as exc:
        log = await page.locator("#console-log").inner_text()
        error = await page.locator("#console-error").inner_text()
        raise AssertionError(f"no {kind} of {route}: console errors {page.console_errors}, error {error!r}, log {log}") from exc
    return [json.loads(text) for text in await page.locator(f"{selector} pre").all_inner_texts()]


async def test_the_page_loads_without_a_console_error_and_lists_every_demo_route(page, demo):
    base, _ = demo
    await open_docs(page, base)
    listed = set(await page.locator("section.route").evaluate_all("rows => rows.map(r => r.dataset.route)"))
    assert {"sayHello", "getArticle", "slowEcho", "get", "list", "create", "update", "patch", "delete",
            "subscribe", "unsubscribe"} <= listed
    assert await page.locator("#socket-ws-model-articles li.push h4 code").all_text_contents() == [
        "created", "deleted", "resync", "unsubscribed", "updated"]
    example = json.loads(await page.locator("pre.example[data-socket=ws-model-articles][data-route=create]").text_content())
    assert set(example["payload"]) == {"title", "body"}  # from the serializer's request variant: no read-only id
    assert "status" not in example
    assert page.console_errors == []


async def login(page, base):
    """Log in as the demo's admin through the admin's page: the console's sockets carry the session."""
    await page.goto(f"{base}/admin/login/?next=/socket-docs/")
    await page.fill("#id_username", "admin")
    await page.fill("#id_password", "docs-pass-123")
    await page.click("input[type=submit]")
    await page.wait_for_selector("body[data-ready=true]")
    page.console_errors.clear()  # the admin's pages ask for a /favicon.ico the demo does not have


ARTIFACTS = ROOT / "test-artifacts"


async def test_every_payload_has_a_field_table_and_a_model_route_lists_its_serializer_s_fields(page, demo):
    base, _ = demo
    await page.set_viewport_size({"width": 1440, "height": 1000})
    await open_docs(page, base)
    await page.keyboard.press("Tab")  # keyboard: the first stop skips to the console
    assert await page.evaluate("document.activeElement.className") == "skip"
    for route in await page.locator("section.route").all():
        name = await route.get_attribute("data-route")
        for payload in await route.locator(".message .payload").all():
            kind = await payload.locator(".payload-type .type-name").text_content()  # (off-screen cards are not laid out)
            tables = await payload.locator("table.fields").count()
            # An object with fields, an array of them, a choice of shapes: a table; a plain value: its type.
            assert tables == 1 or kind in ("any", "null", "object", "string", "integer"), (name, kind)
    create = page.locator("#ws-model-articles--route-create")
    await create.scroll_into_view_if_needed()
    reply = create.locator(".message.reply > .payload:last-of-type > table.fields > tbody > tr")  # (not the headers)
    for _ in range(50):  # a card is laid out once on screen (content-visibility: auto), a frame later
        rows = [" ".join(text.split()) for text in await reply.all_inner_texts()]
        if all(rows):
            break
        await page.wait_for_timeout(50)
    assert rows == ["id required integer read-only", "title required string at most 200 characters",
                    "body string", "created_at required string date-time read-only"]
    request = create.locator(".message.request > .payload:last-of-type > table.fields > tbody > tr")
    assert [" ".join(text.split()) for text in await request.all_inner_texts()] == [
        "title required string at least 1 character; at most 200 characters", "body string"]
    assert await create.locator(".message.reply h4 .status").first.inner_text() == "201"
    assert await create.locator(".statuses li").all_inner_texts() == [
        "400 invalid payload: the payload holds the errors by field", "401 not authenticated", "403 permission denied",
        "409 conflict, or a request with the same idempotency-key still running",
        "422 idempotency-key used for another request"]
    socket_wide = " ".join((await page.locator("#socket-ws-model-articles .socket-wide").inner_text()).split())
    assert socket_wide.startswith("Any route of this socket may also answer 429")
    summary = await page.locator("#ws-model-articles--route-unsubscribe .summary").text_content()
    assert summary.endswith("No push of it follows the reply.")
    await create.locator("details.raw summary").click()  # the raw JSON Schema, from asyncapi.json
    raw = create.locator("details.raw pre")
    await raw.nth(2).wait_for()
    request_schema = json.loads(await raw.first.text_content())
    assert request_schema["properties"]["payload"] == {"$ref": "#/components/schemas/ArticleRequest"}
    await create.locator("button.try").focus()
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "console-payload"
    assert json.loads(await page.locator("#console-payload").input_value()) == {"title": "string", "body": "string"}
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "docs-page.png"
    await create.scroll_into_view_if_needed()
    await page.click("#console-clear")
    await page.screenshot(path=str(shot))
    print(f"\nscreenshot of the docs page: {shot}")
    assert page.console_errors == []


async def test_every_generated_example_is_sent_without_a_400(page, demo):
    """As a logged-in user (so writes get past permissions to validation), each route's example
    from Try it, sent as it is: no 400 but where the route declares no payload schema (nothing to
    make an example from). Deletes go last, so the detail routes before them find their object."""
    base, _ = demo
    await login(page, base)
    await open_docs(page, base)
    routes = [(await r.get_attribute("data-socket"), await r.get_attribute("data-route"),
               await r.locator(".message.request > .payload:last-of-type > .payload-type > .type-name").text_content())
              for r in await page.locator("section.route").all()]
    routes.sort(key=lambda r: (r[1] == "delete", r[1] == "unsubscribe"))
    answered = {}
    for socket, route, payload_type in routes:
        await page.click("#console-clear")
        await page.click(f"button.try[data-socket={socket}][data-route={route}]")
        assert await page.locator("#console-lookup").input_value() != "" or await page.locator("#console-lookup-label").is_hidden()
        await page.click("#console-send")
        [reply] = await logged(page, "reply", route)
        answered[socket, route] = reply["status"]
        if payload_type != "any":
            assert reply["status"] != 400, (socket, route, reply)
    assert answered["ws-model-articles", "create"] == 201
    assert answered["ws-articles", "create"] == 201
    assert answered["ws-model-articles", "get"] == 200
    assert answered["ws-model-articles", "patch"] == 200
    assert answered["ws-model-articles", "delete"] == 204
    assert answered["ws-model-articles", "subscribe"] == 201
    print(f"\n{len(answered)} examples sent: " + ", ".join(f"{s}/{r} {status}" for (s, r), status in answered.items()))
    assert page.console_errors == []


async def test_the_console_tells_replies_from_pushes_wraps_them_and_names_the_handshake_user(page, demo):
    base, _ = demo
    await page.set_viewport_size({"width": 1440, "height": 1000})
    await login(page, base)
    await open_docs(page, base)
    await page.select_option("#console-socket", "ws-model-articles")
    assert await page.locator("#console-user").inner_text() == "admin"
    await send(page, "ws-model-articles", "subscribe", None)
    await logged(page, "reply", "subscribe")
    await send(page, "ws-model-articles", "create", {"title": "x" * 200, "body": "word " * 300})
    await logged(page, "push", "created")
    await logged(page, "reply", "create")
    kinds = await page.locator("#console-log li .kind").all_inner_texts()
    assert [kind.lower() for kind in kinds[:2]] == ["push", "reply"] or [k.lower() for k in kinds[:2]] == ["reply", "push"]
    panel = await page.locator("#console").bounding_box()
    for entry in await page.locator("#console-log li pre").all():
        box = await entry.bounding_box()
        assert box["x"] + box["width"] <= panel["x"] + panel["width"] + 1  # wrapped, not past the edge
        assert await entry.evaluate("e => e.scrollWidth <= e.clientWidth")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "docs-console.png"
    await page.screenshot(path=str(shot))
    print(f"\nscreenshot of the console: {shot}")
    assert page.console_errors == []


async def test_the_console_sends_say_hello_and_shows_its_reply(page, demo):
    base, _ = demo
    await open_docs(page, base)
    await send(page, "ws-app", "sayHello", {"name": "Ada"})
    [reply] = await logged(page, "reply", "sayHello")
    assert (reply["status"], reply["payload"]) == (200, "Hello, Ada!")
    assert page.console_errors == []


async def test_the_console_shows_a_subscription_push(page, demo):
    base, _ = demo
    await login(page, base)  # the socket connects with the session's user
    await open_docs(page, base)
    await send(page, "ws-model-articles", "subscribe", None)
    [subscribed] = await logged(page, "reply", "subscribe")
    assert subscribed["status"] == 201
    await send(page, "ws-model-articles", "create", {"title": "From the console", "body": ""})
    [created] = await logged(page, "reply", "create")
    [push] = await logged(page, "push", "created")
    assert created["status"] == 201
    assert (push["payload"]["title"], push["headers"]["subscription"]) == ("From the console", subscribed["uuid"])
    assert page.console_errors == []


# -- its Content-Security-Policy, wherever STATIC_URL points ---------------------------------------

#: A CSP 3 source expression: a keyword, a scheme-source or a host-source (``://host`` is none).
CSP_SOURCE = re.compile(r"'self'|[a-z][a-z0-9+.-]*:|([a-z][a-z0-9+.-]*://)?(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*(:(\d+|\*))?(/\S*)?",
                        re.IGNORECASE)


@pytest.mark.django_db
@pytest.mark.parametrize("static_url, source", [
    ("/static/", None),
    ("static/", None),
    ("https://cdn.example.com/static/", "https://cdn.example.com"),
    ("//cdn.example.com/static/", "cdn.example.com"),  # the page's scheme, as the URL means
    ("//cdn.example.com:8443/static/", "cdn.example.com:8443"),
])
def test_the_csp_lets_the_page_load_its_assets_from_static_url(static_url, source):
    with override_settings(STATIC_URL=static_url, CHANNELS_ROUTER={"DOCS_ACCESS": "public"},
                           ROOT_URLCONF="tests.docs_urls"):
        policy = Client().get("/socket-docs/")["Content-Security-Policy"]
        assert policy == content_security_policy()
    directives = dict(directive.strip().split(" ", 1) for directive in policy.split(";"))
    for name in ("script-src", "style-src", "img-src"):
        sources = directives[name].split()
        assert sources == ["'self'", *([source] if source else [])]
        assert all(CSP_SOURCE.fullmatch(each) for each in sources), sources


class CdnHandler(SimpleHTTPRequestHandler):
    """A CDN's answer: the file, with CORS (the page's script is a module)."""

    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_message(self, *args):
        pass


@contextmanager
def cdn(directory):
    """An HTTP server of ``directory`` on 127.0.0.1 in a thread: its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(CdnHandler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


async def test_the_page_runs_with_its_assets_on_a_protocol_relative_static_url(page, tmp_path):
    # The page on 127.0.0.1, its static files on another host (localhost): STATIC_URL //localhost:<port>/.
    with cdn(STATIC) as cdn_port:
        env = demo_env(tmp_path, DJANGO_STATIC_URL=f"//localhost:{cdn_port}/")
        with runserver(env, tmp_path / "server.log") as port:
            response = await page.goto(f"http://127.0.0.1:{port}/socket-docs/")
            assert f"script-src 'self' localhost:{cdn_port};" in response.headers["content-security-policy"]
            await page.wait_for_selector("body[data-ready=true]", timeout=10_000)
            await send(page, "ws-app", "sayHello", {"name": "Ada"})
            [reply] = await logged(page, "reply", "sayHello")
    assert reply["payload"] == "Hello, Ada!"
    assert page.console_errors == []


# -- who may see it: DOCS_ACCESS ----------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("access, anonymous, user, staff", [
    (None, 302, 200, 200),  # the default, "authenticated"
    ("authenticated", 302, 200, 200),
    ("staff", 302, 403, 200),
    ("public", 200, 200, 200),
    ("tests.test_docs_page.nobody", 302, 403, 403),
])
def test_docs_access_decides_who_sees_the_page_and_the_schema(access, anonymous, user, staff):
    settings = {} if access is None else {"DOCS_ACCESS": access}
    people = {"anonymous": None, "user": User.objects.create_user("u", password="p"),
              "staff": User.objects.create_user("s", password="p", is_staff=True)}
    with override_settings(CHANNELS_ROUTER=settings, ROOT_URLCONF=WithLoginPage):
        for who, expected in zip(people, (anonymous, user, staff), strict=True):
            client = Client()
            if people[who] is not None:
                client.force_login(people[who])
            for url in ("/socket-docs/", "/socket-docs/asyncapi.json", "/socket-docs/asyncapi.yaml"):
                response = client.get(url)
                assert response.status_code == expected, (who, url)
                if expected == 302:
                    assert response["Location"].startswith("/accounts/login/?next=/socket-docs/")
            if expected == 200:
                assert client.get("/socket-docs/asyncapi.json").json()["asyncapi"] == "3.0.0"


def nobody(request):
    return False


# URLconfs (a class with urlpatterns serves as one): the docs with the project's own login page, with the admin.
class WithLoginPage:
    urlpatterns = [path("accounts/login/", lambda request: HttpResponse("log in")), *docs_urls.urlpatterns]


class WithAdmin:
    urlpatterns = [path("admin/", AdminSite().urls), *docs_urls.urlpatterns]


WITH_ADMIN_APP = [*django_settings.INSTALLED_APPS, "django.contrib.admin", "django.contrib.messages"]


@pytest.mark.django_db
def test_an_anonymous_visitor_goes_to_the_admin_login_when_login_url_does_not_resolve():
    with override_settings(INSTALLED_APPS=WITH_ADMIN_APP, ROOT_URLCONF=WithAdmin):  # LOGIN_URL: /accounts/login/
        client = Client()
        response = client.get("/socket-docs/")
        assert (response.status_code, response["Location"]) == (302, "/admin/login/?next=/socket-docs/")
        assert client.get(response["Location"]).status_code == 200  # a page, not Django's 404
        with override_settings(LOGIN_URL="/sso/login/"):  # any LOGIN_URL that leads nowhere
            assert client.get("/socket-docs/asyncapi.json")["Location"] == "/admin/login/?next=/socket-docs/asyncapi.json"
        with override_settings(LOGIN_URL="https://sso.example.com/login"):  # another host: taken as it is
            assert client.get("/socket-docs/")["Location"].startswith("https://sso.example.com/login?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("installed_apps, urlconf", [
    (django_settings.INSTALLED_APPS, "tests.docs_urls"),  # no admin
    (WITH_ADMIN_APP, "tests.docs_urls"),  # the admin installed but not routed
])
@pytest.mark.parametrize("login_url", ["/accounts/login/", "login"])  # a path, a URL name: neither routed
def test_without_a_login_page_an_anonymous_visitor_is_told_which_setting_opens_the_docs(installed_apps, urlconf, login_url):
    with override_settings(INSTALLED_APPS=installed_apps, ROOT_URLCONF=urlconf, LOGIN_URL=login_url):
        for url in ("/socket-docs/", "/socket-docs/asyncapi.yaml"):
            response = Client().get(url)
            assert response.status_code == 403, url
            text = re.sub(r"<[^>]+>", "", response.content.decode())
            assert f"LOGIN_URL ({login_url}) does\nnot resolve" in text
            assert 'set CHANNELS_ROUTER = {"DOCS_ACCESS": "public"} in development' in text


def test_an_unknown_docs_access_is_a_system_check_error():
    from django_channels_router.checks import check_settings

    with override_settings(CHANNELS_ROUTER={"DOCS_ACCESS": "everyone"}):
        [error] = check_settings()
    assert error.id == "channels_router.E006" and "DOCS_ACCESS must be one of public, authenticated, staff" in error.msg


async def test_the_demo_page_runs_on_the_shipped_client_module(page, demo):
    base, _ = demo
    await page.goto(f"{base}/")
    for state in ("app", "async", "articles", "model"):
        await page.locator(f"#state-{state}[data-state=open]").wait_for(timeout=10_000)
    await page.fill("#name", "Ada")
    await page.click("#hello-sync")
    await page.locator("#log li", has_text="app sayHello").wait_for(timeout=10_000)
    assert "Hello, Ada!" in await page.locator("#log li", has_text="app sayHello").first.inner_text()
    await page.locator("#live-status", has_text="Live:").wait_for(timeout=10_000)  # subscribe, then list
    await page.click("#garbage")
    await page.locator("#log li", has_text="reply with uuid null").wait_for(timeout=10_000)
    assert page.console_errors == []


# -- its files, however the project is served -----------------------------------------------------

@contextmanager
def asgi_server(server, env, log_path):
    """The demo's ASGI application served by daphne or uvicorn, as a project is without runserver
    (neither serves STATIC_URL): its http:// base URL."""
    port = free_port()
    with server_process(SERVERS[server](port, "testproject.asgi:application"), port, log_path, cwd=DEMO, env=env):
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
async def test_in_development_the_page_has_its_styles_and_console_under_daphne_and_uvicorn(page, tmp_path, server):
    with asgi_server(server, demo_env(tmp_path), tmp_path / "server.log") as base:
        response = await page.goto(f"{base}/socket-docs/")
        assert "script-src 'self';" in response.headers["content-security-policy"]
        await page.wait_for_selector("body[data-ready=true]", timeout=10_000)  # docs.js ran
        assert await page.locator("#console").evaluate("e => getComputedStyle(e).position") == "sticky"  # docs.css
        await send(page, "ws-app", "sayHello", {"name": "Ada"})
        [reply] = await logged(page, "reply", "sayHello")
        await page.wait_for_timeout(3_500)  # past the delay after which a page whose script did not start says so
        assert not await page.locator("#assets-missing").is_visible()
    assert reply["payload"] == "Hello, Ada!"
    assert page.console_errors == []


@pytest.mark.parametrize("static_files", ["not served", "served"])
async def test_with_debug_off_the_page_loads_from_static_url_or_says_what_is_missing(page, tmp_path, static_files):
    # DEBUG off: the page asks STATIC_URL for its files, which Django does not serve; a static server
    # (here a CDN of the package's static folder, as collectstatic's copy behind WhiteNoise would be) does.
    with cdn(STATIC) as cdn_port:
        static_url = {"DJANGO_STATIC_URL": f"//localhost:{cdn_port}/"} if static_files == "served" else {}
        env = demo_env(tmp_path, DJANGO_DEBUG="0", DJANGO_SUPERUSER_PASSWORD="docs-pass-123", **static_url)
        manage(env, "createsuperuser", "--no-input", "--username", "admin", "--email", "admin@example.com")
        with asgi_server("daphne", env, tmp_path / "server.log") as base:
            await page.goto(f"{base}/admin/login/?next=/socket-docs/")  # DOCS_ACCESS: staff while DEBUG is off
            await page.fill("#id_username", "admin")
            await page.fill("#id_password", "docs-pass-123")
            await page.click("input[type=submit]")
            await page.wait_for_url(f"{base}/socket-docs/")
            notice = page.locator("#assets-missing")
            if static_files == "served":
                await page.wait_for_selector("body[data-ready=true]", timeout=10_000)
                assert not await notice.is_visible()
                return
            await notice.wait_for(state="visible", timeout=10_000)
            text = " ".join((await notice.inner_text()).split())
    assert "did not load (/static/django_channels_router/docs.css, /static/django_channels_router/docs.js)" in text
    assert "STATIC_URL (/static/), which Django does not serve while DEBUG is off: run manage.py collectstatic" in text
    assert page.locator("#console-state").get_by_text("closed")  # no script: the console never started


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="tests.docs_urls")
def test_the_page_s_own_files_are_served_while_debug_is_on_and_only_they():
    client = Client()
    with override_settings(DEBUG=True):
        script = client.get("/socket-docs/assets/docs.js")
        assert (script.status_code, script["Content-Type"]) == (200, "text/javascript; charset=utf-8")
        assert script.content == (STATIC / "django_channels_router" / "docs.js").read_bytes()
        assert script["Cache-Control"] == "no-cache"
        assert client.get("/socket-docs/assets/docs.js", headers={"If-None-Match": script["ETag"]}).status_code == 304
        assert client.get("/socket-docs/assets/docs.css")["Content-Type"] == "text/css; charset=utf-8"
        assert client.get("/socket-docs/assets/favicon.svg")["Content-Type"] == "image/svg+xml"
        for other in ("router-socket.js", "router-socket.d.ts", "..%2Fdocs.js", "docs.html"):
            assert client.get(f"/socket-docs/assets/{other}").status_code == 404, other
    assert client.get("/socket-docs/assets/docs.js").status_code == 404  # DEBUG off: STATIC_URL's job
