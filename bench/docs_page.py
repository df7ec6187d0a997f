"""The socket docs page of a project with 100 routes: how long it takes to build, to serve and to
show in Chromium.

    .venv/bin/python bench/docs_page.py [--routers 12] [--rounds 20]

12 model routers (8 routes each, their serializers all different) and 4 plain routes: 100 routes.
Prints the first build of the page's model (the AsyncAPI document, field tables, examples: once
per process), a served page once it is cached (the median of rounds, through Django's test
client: the template and the detail routes' id lookups), the HTML's size, and, when Playwright
and Chromium are installed, the time from navigation to the console's script having started
(``body[data-ready]``), median of 5. Figures only: nothing is asserted but that the page works.
"""

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ["BENCH_DATABASE"] = str(Path(tempfile.mkdtemp()) / "docs_page.sqlite3")

import django  # noqa: E402

django.setup()

from channels.routing import URLRouter  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import include, path  # noqa: E402
from rest_framework import serializers  # noqa: E402

from demo.models import Article  # noqa: E402
from django_channels_router import SocketRouterConsumer  # noqa: E402
from django_channels_router.contract.page import page_model  # noqa: E402
from drf_bridge import ModelSocketRouter  # noqa: E402

STATIC = ROOT / "django_channels_router" / "static" / "django_channels_router"


def make_application(routers: int):
    patterns = []
    for n in range(routers):
        meta = type("Meta", (), {"model": Article, "fields": ["id", "title", "body", "created_at", "extra"],
                                 "read_only_fields": ["id", "created_at"]})
        serializer = type(f"Thing{n}Serializer", (serializers.ModelSerializer,), {
            "Meta": meta, "__module__": __name__,
            "extra": serializers.ChoiceField(choices=["a", "b"], required=False, help_text=f"Choice {n}.")})
        router = type(f"Thing{n}Socket", (ModelSocketRouter,), {
            "queryset": Article.objects.all(), "serializer_class": serializer, "__module__": __name__,
            "__doc__": f"Things of kind {n}, with ``get``, ``list`` and the rest."})
        patterns.append(path(f"ws/things/{n}/", router.as_asgi()))

    class Plain(SocketRouterConsumer):
        """Four plain routes."""

        routes = [{"route": f"plain{n}", "request": {"type": "object", "properties": {"n": {"type": "integer"}}}}
                  for n in range(100 - 8 * routers)]

    for route in Plain.route_table.values():
        setattr(Plain, route.handler, lambda self, payload, headers: {"payload": payload})
    patterns.append(path("ws/plain/", Plain.as_asgi()))
    return URLRouter(patterns)


TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]


class Urls:
    urlpatterns = [path("socket-docs/", include("django_channels_router.urls"))]


def http_server(html: bytes) -> ThreadingHTTPServer:
    """The page and its three files from memory, on 127.0.0.1, as a server would send them."""
    types = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            name = self.path.rpartition("/")[2]
            body, kind = ((STATIC / name).read_bytes(), types[name.rpartition(".")[2]]) if name in types_of_files \
                else (html, "text/html; charset=utf-8")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    types_of_files = {"docs.js", "docs.css", "favicon.svg"}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def in_chromium(html: bytes, rounds: int = 5) -> list[float] | None:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        return None
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return None
    server = http_server(html)
    times = []
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = await browser.new_page()
            for _ in range(rounds):
                start = time.perf_counter()
                await page.goto(f"http://127.0.0.1:{server.server_address[1]}/socket-docs/")
                await page.wait_for_selector("body[data-ready=true]")
                times.append(time.perf_counter() - start)
            await browser.close()
    finally:
        server.shutdown()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routers", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    for n in range(20):
        Article.objects.create(title=f"Article {n}", body="text")
    global application
    application = make_application(args.routers)
    with override_settings(ASGI_APPLICATION="__main__.application", ROOT_URLCONF=Urls, DEBUG=True,
                           CHANNELS_ROUTER={"DOCS_ACCESS": "public"}, STATIC_URL="/static/", TEMPLATES=TEMPLATES):
        start = time.perf_counter()
        model = page_model()
        built = time.perf_counter() - start
        routes = sum(len(socket["routes"]) for socket in model["sockets"])
        client = Client()
        first = client.get("/socket-docs/")
        assert first.status_code == 200, first.status_code
        served = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            response = client.get("/socket-docs/")
            served.append(time.perf_counter() - start)
        browser = asyncio.run(in_chromium(response.content))
    print(f"routes: {routes} on {len(model['sockets'])} sockets")
    print(f"first build of the page's model (once per process): {built * 1000:.0f} ms")
    print(f"page served from the cache: median {statistics.median(served) * 1000:.0f} ms, "
          f"max {max(served) * 1000:.0f} ms over {args.rounds} rounds; HTML {len(response.content) / 1024:.0f} KiB")
    if browser is None:
        print("Chromium: not measured (Playwright or chromium missing)")
    else:
        print(f"Chromium, navigation to the console ready: median {statistics.median(browser) * 1000:.0f} ms "
              f"over {len(browser)} loads")


application = None

if __name__ == "__main__":
    main()
