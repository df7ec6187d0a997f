"""manage.py socketschema: a valid AsyncAPI 3.0.0 document that says what the routes really send."""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from django_channels_router.consumers import SocketRouterConsumer
from django_channels_router.contract.asyncapi import build_document, websocket_consumers
from django_channels_router.testing import RouterCommunicator
from tests.conftest import ROOT

ASYNCAPI_SCHEMA = json.loads((Path(__file__).parent / "asyncapi" / "asyncapi-3.0.0.schema.json").read_text())
DEMO = ROOT / "testproject"
COMMITTED = DEMO / "asyncapi.yaml"


def socketschema(*args, cwd=DEMO):
    """The command as a user runs it, in the demo project (its own settings, SQLite), on the code
    of this checkout (PYTHONPATH first, ahead of wherever the package is installed from)."""
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "sqlite:///:memory:", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "manage.py", "socketschema", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def assert_valid_asyncapi(document):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft7Validator(ASYNCAPI_SCHEMA).iter_errors(document)]
    assert not errors, errors[:5]


@pytest.fixture(scope="module")
def demo_document():
    run = socketschema("--format", "json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_the_demo_document_is_valid_asyncapi_3_and_documents_every_route_of_every_socket(demo_document):
    assert_valid_asyncapi(demo_document)
    assert demo_document["asyncapi"] == "3.0.0"
    from testproject.asgi import application

    expected = {(address, route) for address, _, cls in websocket_consumers(application) for route in cls.route_table}
    documented = {(channel["address"], op["title"]) for op in demo_document["operations"].values()
                  if op["action"] == "receive" and op["title"] != "PING"
                  for channel in [demo_document["channels"][op["channel"]["$ref"].rpartition("/")[2]]]}
    assert documented == expected
    assert {"/ws/app/", "/ws/app-async/", "/ws/articles/", "/ws/model/articles/"} <= {a for a, _ in expected}


def test_yaml_is_the_same_document(demo_document):
    run = socketschema()
    assert run.returncode == 0, run.stderr
    assert yaml.safe_load(run.stdout) == demo_document


def test_the_tests_sockets_are_documented_with_url_parameters_and_a_valid_document():
    from tests.asgi import application

    document = build_document(application)
    assert_valid_asyncapi(document)
    tenant = next(c for c in document["channels"].values() if c["address"] == "/ws/tenant/{source}/")
    assert list(tenant["parameters"]) == ["source"]
    assert document == build_document(application)  # the same code gives the same document


def test_check_passes_on_a_fresh_file_and_fails_with_a_diff_on_a_stale_one(tmp_path):
    fresh = tmp_path / "asyncapi.yaml"
    assert socketschema("--file", str(fresh)).returncode == 0
    run = socketschema("--check", str(fresh))
    assert (run.returncode, run.stdout.strip()) == (0, f"{fresh} is up to date.")

    fresh.write_text(fresh.read_text().replace("sayHello", "sayHi"))
    run = socketschema("--check", str(fresh))
    assert run.returncode == 1
    assert "-" in run.stderr and "+" in run.stderr and "sayHello" in run.stderr
    assert "is out of date" in run.stderr
    run = socketschema("--check", str(tmp_path / "missing.yaml"))
    assert run.returncode == 1 and "Cannot read" in run.stderr


@pytest.mark.parametrize("name, parse", [("asyncapi.json", json.loads), ("asyncapi.yml", yaml.safe_load),
                                         ("asyncapi.yaml", yaml.safe_load)])
def test_file_and_check_take_the_format_from_the_extension_and_file_creates_its_folders(tmp_path, demo_document,
                                                                                      name, parse):
    target = tmp_path / "contract" / "v1" / name  # folders that do not exist yet
    run = socketschema("--file", str(target))
    assert run.returncode == 0, run.stderr
    assert parse(target.read_text()) == demo_document
    run = socketschema("--check", str(target))
    assert (run.returncode, run.stdout.strip()) == (0, f"{target} is up to date."), run.stderr
    other = "yaml" if name.endswith(".json") else "json"
    run = socketschema("--format", other, "--check", str(target))  # --format, when given, decides
    assert run.returncode == 1 and f"run manage.py socketschema --format {other} --file {target}" in run.stderr


def test_a_file_that_cannot_be_written_is_reported_not_a_crash(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    run = socketschema("--file", str(tmp_path / "taken" / "asyncapi.yaml"))
    assert run.returncode == 1 and f"Cannot write {tmp_path / 'taken' / 'asyncapi.yaml'}" in run.stderr
    assert "Traceback" not in run.stderr


def anchors(text):
    """The YAML anchors and aliases (``&id001``, ``*id001``) in ``text``."""
    return [event for event in yaml.parse(text) if getattr(event, "anchor", None) is not None]


def test_yaml_writes_every_reference_out_without_anchors_or_aliases():
    run = socketschema()
    assert run.returncode == 0, run.stderr
    assert anchors(run.stdout) == []
    assert anchors(COMMITTED.read_text()) == []


def test_the_committed_demo_schema_is_up_to_date():
    run = socketschema("--check", str(COMMITTED))
    assert run.returncode == 0, run.stderr + "\n(run: cd testproject && ../.venv/bin/python manage.py socketschema --file asyncapi.yaml)"


def test_an_asgi_application_that_cannot_be_imported_is_reported_not_a_crash():
    run = socketschema("--asgi", "no_such_module.application")
    assert run.returncode == 1
    assert "Could not load the ASGI application 'no_such_module.application': ModuleNotFoundError" in run.stderr
    assert "Traceback" not in run.stderr


# -- the document says what the routes really send ------------------------------------------

def message_validator(document, channel, key):
    """A validator of one documented message's payload, resolving $refs inside the document."""
    schema = {**document, "$ref": f"#/channels/{channel}/messages/{key}/payload"}
    return jsonschema.Draft202012Validator(schema)


class Documented:
    """Checks every reply and push of a connection against the document, and counts them."""

    def __init__(self, document, channel):
        self.document, self.channel, self.seen = document, channel, set()

    def check(self, message, kind=None):
        kind = kind or {True: "reply", False: "error"}[200 <= message["status"] < 300]
        key = f"{message['route']}.{'notModified' if message['status'] == 304 else kind}"
        errors = [f"{list(e.absolute_path)}: {e.message}"
                  for e in message_validator(self.document, self.channel, key).iter_errors(message)]
        assert not errors, (key, message, errors)
        self.seen.add(key)


@pytest.mark.django_db(transaction=True)
async def test_every_documented_model_route_replies_and_pushes_what_the_document_says():
    from tests.drf import ArticleRouter, PagedArticleRouter

    document = build_document(_application({"/ws/articles/": ArticleRouter, "/ws/paged/": PagedArticleRouter}))
    articles, paged = Documented(document, "ws-articles"), Documented(document, "ws-paged")

    comm = RouterCommunicator(ArticleRouter.as_asgi(), "/ws/articles/")
    assert (await comm.connect())[0]

    async def call(route, payload=None, headers=None, doc=articles):
        reply = await comm.request(route, payload, headers)
        doc.check(reply)
        return reply

    async def pushed():
        message = await comm.receive_message()
        articles.check(message, "push")
        return message["route"]

    # Each write's push is awaited before the next write, so no change is read while one is written.
    assert (await call("subscribe"))["status"] == 201
    created = await call("create", {"title": "First", "body": "b"})
    assert (created["status"], await pushed()) == (201, "created")
    pk = created["payload"]["id"]
    assert (await call("create", {"title": ""}))["status"] == 400
    assert (await call("get", None, {"id": pk}))["status"] == 200
    assert (await call("get", None, {"id": 10**9}))["status"] == 404
    assert (await call("list"))["status"] == 200
    assert ((await call("update", {"title": "Second", "body": ""}, {"id": pk}))["status"], await pushed()) == (200, "updated")
    assert ((await call("patch", {"title": "Third"}, {"id": pk}))["status"], await pushed()) == (200, "updated")
    # v1.2: a 304, a stale if-match's 412 (with the current tag), a keyed write and its replay
    tag = (await call("get", None, {"id": pk}))["headers"]["etag"]
    assert (await call("get", None, {"id": pk, "if-none-match": tag}))["status"] == 304
    stale = await call("patch", {"title": "Fourth"}, {"id": pk, "if-match": '"stale"'})
    assert (stale["status"], stale["headers"]) == (412, {"etag": tag})
    keyed = await call("patch", {"title": "Fourth"}, {"id": pk, "idempotency-key": "fourth"})
    assert (keyed["status"], await pushed()) == (200, "updated")
    assert (await call("patch", {"title": "Fourth"}, {"id": pk, "idempotency-key": "fourth"}))["headers"] == {
        **keyed["headers"], "idempotent-replay": True}
    assert ((await call("delete", None, {"id": pk}))["status"], await pushed()) == (204, "deleted")
    assert (await call("unsubscribe"))["status"] == 204
    await comm.disconnect()

    comm = RouterCommunicator(PagedArticleRouter.as_asgi(), "/ws/paged/")
    assert (await comm.connect())[0]
    reply = await call("list", {"search": "x", "ordering": "-title", "page": 1}, doc=paged)
    assert set(reply["payload"]) == {"count", "next", "previous", "results"}
    assert (await call("list", {"page": 99}, doc=paged))["status"] == 404
    await comm.disconnect()

    routes = {"subscribe", "create", "get", "list", "update", "patch", "delete", "unsubscribe"}
    assert {key.partition(".")[0] for key in articles.seen} == routes | {"created", "updated", "deleted"}
    assert {"get.notModified", "patch.error"} <= articles.seen


def headers_of(document, channel, key):
    """The header names a message's schema describes."""
    return set(document["channels"][channel]["messages"][key]["payload"]["properties"]["headers"].get("properties", {}))


def test_the_v1_2_headers_are_described_where_each_route_takes_or_sends_them():
    """idempotency-key on writes, if-none-match and 304 on get, if-match and 412's etag on writes to
    one object, etag on replies of one object, resume-from, position and resumed on subscribe, and
    position on every push of a subscription (docs/reference/protocol.md)."""
    from tests.drf import ArticleRouter

    class Plain(SocketRouterConsumer):
        idempotent_routes = ["keyed"]
        routes = [{"route": name, "handler": _echo} for name in ("keyed", "plain")]

    document = build_document(_application({"/ws/articles/": ArticleRouter, "/ws/plain/": Plain}))
    assert_valid_asyncapi(document)
    request = {route: headers_of(document, "ws-articles", f"{route}.request") for route in ArticleRouter.route_table}
    assert request == {
        "get": {"id", "if-none-match"}, "list": set(), "count": set(),
        "create": {"idempotency-key"}, "update": {"id", "if-match", "idempotency-key"},
        "patch": {"id", "if-match", "idempotency-key"}, "delete": {"id", "if-match", "idempotency-key"},
        "shout": {"id", "if-match", "idempotency-key"},  # a custom write to one object
        "subscribe": {"id", "resume-from"}, "unsubscribe": set()}
    reply = {route: headers_of(document, "ws-articles", f"{route}.reply") for route in ArticleRouter.route_table}
    keyed = {"idempotent-replay", "idempotent-stored"}
    assert reply == {"get": {"etag"}, "list": set(), "count": set(), "create": {"etag"} | keyed,
                     "update": {"etag"} | keyed, "patch": {"etag"} | keyed, "delete": keyed, "shout": keyed,
                     "subscribe": {"position", "resumed"}, "unsubscribe": set()}
    assert headers_of(document, "ws-articles", "patch.error") == {"etag", "idempotent-replay"}
    assert headers_of(document, "ws-articles", "create.error") == {"idempotent-replay"}

    messages = document["channels"]["ws-articles"]["messages"]
    not_modified = messages["get.notModified"]["payload"]["properties"]
    assert (not_modified["status"]["const"], not_modified["payload"], set(not_modified["headers"]["properties"])) == (
        304, {"type": "null"}, {"etag"})
    replies = document["operations"]["ws-articles.get.request"]["reply"]["messages"]
    assert [ref["$ref"].rpartition("/")[2] for ref in replies] == ["get.reply", "get.notModified", "get.error"]
    assert not any(key.endswith(".notModified") for key in messages if key != "get.notModified")
    assert messages["get.request"]["payload"]["properties"]["headers"]["properties"]["if-none-match"]["type"] == "string"
    assert messages["subscribe.reply"]["payload"]["properties"]["headers"]["properties"]["resumed"]["type"] == "boolean"
    key = messages["create.request"]["payload"]["properties"]["headers"]["properties"]["idempotency-key"]
    assert (key["minLength"], key["maxLength"], key["pattern"]) == (1, 255, "^[!-~]+$")

    pushes = {push: headers_of(document, "ws-articles", f"{push}.push")
              for push in ("created", "updated", "deleted", "resync", "unsubscribed")}
    assert all("position" in names for names in pushes.values()), pushes
    assert {push for push, names in pushes.items() if "etag" in names} == {"created", "updated"}
    position = messages["created.push"]["payload"]["properties"]["headers"]["properties"]["position"]
    assert (position["type"], position["maxLength"]) == ("string", 200)

    # A plain consumer: idempotency-key where the route opts in, nothing else of v1.2.
    assert headers_of(document, "ws-plain", "keyed.request") == {"idempotency-key"}
    assert headers_of(document, "ws-plain", "keyed.reply") == keyed
    assert headers_of(document, "ws-plain", "plain.request") == headers_of(document, "ws-plain", "plain.reply") == set()


def _application(sockets):
    from channels.routing import URLRouter
    from django.urls import path

    return URLRouter([path(address.lstrip("/"), cls.as_asgi()) for address, cls in sockets.items()])


# -- every route keeps its own keys -------------------------------------------------------------

def _echo(self, payload, headers):
    return payload


class LookalikeSocket(SocketRouterConsumer):
    """Routes whose names differ only in punctuation, and a push named as a route's prefix."""

    pushes = {"x": {"const": "push x"}}
    routes = [{"route": name, "handler": _echo, "request": {"const": name}}
              for name in ("a:b", "a_b", "a.b", "x", "x.push", "x.request")]


def test_routes_whose_names_differ_only_in_punctuation_keep_their_own_messages_operations_docs_and_types():
    from django_channels_router.contract.page import sockets
    from django_channels_router.contract.typescript import render_typescript

    document = build_document(_application({"/ws/lookalike/": LookalikeSocket}))
    assert_valid_asyncapi(document)
    routes = [route for route in LookalikeSocket.route_table]
    messages = document["channels"]["ws-lookalike"]["messages"]
    for name in routes:  # each key holds its own route's schema
        assert messages[f"{name}.request"]["payload"]["properties"]["payload"] == {"const": name}
        assert messages[f"{name}.reply"]["payload"]["properties"]["route"] == {"const": name}
    assert messages["x.push"]["payload"]["properties"]["payload"] == {"const": "push x"}
    titles = sorted((op["action"], op["title"]) for op in document["operations"].values() if op["title"] != "PING")
    assert titles == sorted([("receive", name) for name in routes] + [("send", "x")])

    [socket] = sockets(document, [LookalikeSocket])  # the docs page
    assert sorted(route["name"] for route in socket["routes"]) == sorted(routes)
    assert all(route["example"]["payload"] == route["name"] for route in socket["routes"])  # its own schema
    assert [push["name"] for push in socket["pushes"]] == ["x"]

    typescript = render_typescript(document)
    assert all(f"{json.dumps(name)}: (payload" in typescript for name in routes)
    assert 'route: "x"; status: 200' in typescript


# -- replies: response=, a serializer as the dehydrate, the model router's rule -------------------

COUNT = {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}}


def _typed_sockets():
    from demo.serializers import ArticleSerializer
    from drf_bridge import ModelSocketRouter, socket_route
    from tests.drf import ArticleRouter

    class Plain(SocketRouterConsumer):
        routes = [{"route": "one", "handler": _echo, "response": ArticleSerializer},
                  {"route": "many", "handler": _echo, "response": ArticleSerializer(many=True)},
                  {"route": "schema", "handler": _echo, "response": COUNT},
                  {"route": "dehydrated", "handler": _echo, "dehydrate": ArticleSerializer},
                  {"route": "declaredWins", "handler": _echo, "dehydrate": ArticleSerializer, "response": COUNT},
                  {"route": "function", "handler": _echo, "dehydrate": str}]

    class Model(ModelSocketRouter):
        queryset = ArticleRouter.queryset
        serializer_class = ArticleSerializer

        @socket_route(detail=True)
        def publish(self, article, headers):
            return {"payload": article}

        @socket_route(detail=True, response=COUNT)
        def declared(self, article, headers):
            return {"payload": {"count": 1}}

        @socket_route()
        def latest(self, payload, headers):  # not a detail route: it may return anything
            return {"payload": self.get_queryset().last()}

        @socket_route(detail=True, dehydrate=None)
        def raw(self, article, headers):
            return {"payload": article.title}

    class OwnDehydrate(Model):
        def dehydrate(self, value):
            return {"wrapped": super().dehydrate(value)}

    return {"/ws/plain/": Plain, "/ws/model/": Model, "/ws/own/": OwnDehydrate}


def reply_payloads(document, channel):
    messages = document["channels"][channel]["messages"]
    return {key.removesuffix(".reply"): message["payload"]["properties"]["payload"]
            for key, message in messages.items() if key.endswith(".reply")}


def test_replies_are_documented_from_response_a_serializer_dehydrate_and_the_model_routers_rule():
    from django_channels_router.contract.asyncapi import ANY_JSON

    document = build_document(_application(_typed_sockets()))
    assert_valid_asyncapi(document)
    article = {"$ref": "#/components/schemas/Article"}
    assert {key: value for key, value in reply_payloads(document, "ws-plain").items()} == {
        "one": article, "many": {"type": "array", "items": article}, "schema": COUNT, "dehydrated": article,
        "declaredWins": COUNT, "function": ANY_JSON}
    model = reply_payloads(document, "ws-model")
    assert (model["publish"], model["declared"], model["latest"], model["raw"]) == (article, COUNT, ANY_JSON, ANY_JSON)
    assert model["get"] == article  # the standard routes are as before
    own = reply_payloads(document, "ws-own")  # a router whose dehydrate() is its own: no rule applies
    assert (own["publish"], own["declared"]) == (ANY_JSON, COUNT)


def test_a_misdeclared_response_stops_the_document_with_the_route_and_what_was_given():
    from django.core.exceptions import ImproperlyConfigured

    class Misdeclared(SocketRouterConsumer):
        routes = [{"route": "a", "handler": _echo, "response": "Article"}]

    with pytest.raises(ImproperlyConfigured) as raised:
        build_document(_application({"/ws/bad/": Misdeclared}))
    assert str(raised.value) == (
        f"{__name__}.{Misdeclared.__qualname__}, route 'a': 'response' is unusable: expected a DRF serializer class, a "
        "serializer instance such as ArticleSerializer(many=True) or a JSON Schema dict, got str 'Article' "
        "(channels_router.E007).")


@pytest.mark.django_db(transaction=True)
async def test_a_custom_routes_reply_is_what_the_document_says():
    from tests.drf import ArticleRouter

    class Typed(ArticleRouter):
        routes = [{"route": "one", "handler": "on_one", "dehydrate": ArticleRouter.serializer_class}]

        def on_one(self, payload, headers):
            return {"payload": self.get_queryset().get(pk=payload["id"])}

    document = build_document(_application({"/ws/typed/": Typed}))
    typed = Documented(document, "ws-typed")
    assert reply_payloads(document, "ws-typed")["shout"] == {"$ref": "#/components/schemas/StrictArticle"}
    comm = RouterCommunicator(Typed.as_asgi(), "/ws/typed/")
    assert (await comm.connect())[0]
    created = await comm.request("create", {"title": "quiet", "body": ""})
    for route, payload in (("shout", None), ("one", {"id": created["payload"]["id"]})):
        reply = await comm.request(route, payload, {"id": created["payload"]["id"]})
        assert reply["status"] == 200, reply
        typed.check(reply, "reply")
    assert typed.seen == {"shout.reply", "one.reply"}
    await comm.disconnect()
