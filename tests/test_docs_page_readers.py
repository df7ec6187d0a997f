"""The docs page for readers (django_channels_router.contract.page): field tables with ``$ref``s
resolved, descriptions from docstrings, statuses per route and per socket, and examples a server
accepts. The page in a browser is tests/test_docs_page.py."""

import json
import re
import sys

import pytest
from channels.routing import URLRouter
from django.test import Client, override_settings
from django.urls import path
from rest_framework import serializers

from demo.models import Article
from django_channels_router import SocketRouterConsumer
from django_channels_router.contract import page as docs_page
from django_channels_router.contract.page import build_page_model, page_model, render_description


class Tag(serializers.Serializer):
    name = serializers.CharField(max_length=20, help_text="A tag's name.")


class Everything(serializers.Serializer):
    title = serializers.CharField(max_length=50, help_text="What readers see first.", label="Headline")
    count = serializers.IntegerField(min_value=1, max_value=10)
    ratio = serializers.FloatField(required=False)
    price = serializers.DecimalField(max_digits=5, decimal_places=2)
    email = serializers.EmailField()
    url = serializers.URLField()
    uid = serializers.UUIDField()
    day = serializers.DateField()
    at = serializers.DateTimeField()
    slug = serializers.SlugField()
    flag = serializers.BooleanField()
    color = serializers.ChoiceField(choices=[("red", "Red"), ("blue", "Blue")])
    maybe = serializers.CharField(allow_null=True, required=False)
    secret = serializers.CharField(write_only=True)
    made = serializers.DateTimeField(read_only=True)
    main_tag = Tag()
    tags = Tag(many=True)


class Catalogue(SocketRouterConsumer):
    """A catalogue of things.

    Send ``save`` with a thing.
    """

    routes = [{"route": "save", "request": Everything, "response": Everything}, {"route": "ping"}]

    def on_save(self, payload, headers):
        """Save a thing; the reply holds it as saved.

        The ``title`` is *required*:

        * at most 50 characters
        """
        return {"payload": payload}

    def on_ping(self, payload, headers):
        return {"payload": None}


application = URLRouter([path("ws/catalogue/", Catalogue.as_asgi())])
ASGI = "tests.test_docs_page_readers.application"


@pytest.fixture
def catalogue():
    with override_settings(ASGI_APPLICATION=ASGI):
        yield build_page_model()


def route_of(model, socket, name):
    [found] = [r for s in model["sockets"] if s["id"] == socket for r in s["routes"] if r["name"] == name]
    return found


def table(view):
    """The rows of a field table as ``name: type [flags] (required)``."""
    return {row.name: (row.type, row.format, tuple(row.flags), row.required) for row in view["rows"]}


def test_a_serializer_s_fields_are_a_table_with_their_types_flags_constraints_and_help(catalogue):
    save = route_of(catalogue, "ws-catalogue", "save")
    request, reply = table(save["payload"]), table(save["reply"])
    assert save["payload"]["top"].type == "EverythingRequest"
    assert request["title"] == ("string", "", (), True)
    assert request["price"] == ("string", "decimal", (), True)
    assert request["at"] == ("string", "date-time", (), True)
    assert request["maybe"] == ("string", "", ("nullable",), False)
    assert request["secret"] == ("string", "", ("write-only",), True)
    assert request["color"][0] == "string"
    assert request["tags"][0] == "array of TagRequest"
    assert "made" not in request and reply["made"] == ("string", "date-time", ("read-only",), True)
    rows = {row.name: row for row in save["payload"]["rows"]}
    assert (rows["title"].title, rows["title"].description) == ("Headline", "What readers see first.")
    assert rows["title"].constraints == ["at least 1 character", "at most 50 characters"]
    assert rows["count"].constraints == ["≥ 1", "≤ 10"]
    assert rows["color"].enum == ['"red" (Red)', '"blue" (Blue)'] and rows["color"].description == ""
    assert [(child.name, child.description) for child in rows["main_tag"].children] == [("name", "A tag's name.")]
    assert [child.name for child in rows["tags"].children] == ["name"]  # an array's items, expandable


def test_the_example_of_a_serializer_is_valid_for_it(catalogue):
    save = route_of(catalogue, "ws-catalogue", "save")
    payload = save["example"]["payload"]
    serializer = Everything(data=payload)
    assert serializer.is_valid(), (payload, serializer.errors)
    assert "made" not in payload and payload["tags"] == []


def test_a_route_without_a_schema_says_so_and_its_example_is_null(catalogue):
    ping = route_of(catalogue, "ws-catalogue", "ping")
    assert ping["payload"]["top"].type == "any" and ping["payload"]["rows"] == []
    assert "declares no schema" in ping["payload"]["top"].description
    assert ping["example"] == {"headers": {}, "payload": None}


def test_descriptions_are_rendered_from_rest_and_the_summary_is_the_whole_first_paragraph(catalogue):
    save = route_of(catalogue, "ws-catalogue", "save")
    assert save["summary"] == "Save a thing; the reply holds it as saved."
    assert save["description"] == ('<p>The <span class="docutils literal">title</span> is <em>required</em>:</p>\n'
                                   '<ul class="simple">\n<li><p>at most 50 characters</p></li>\n</ul>\n')
    [socket] = catalogue["sockets"]
    assert socket["summary"] == "A catalogue of things."
    assert 'Send <span class="docutils literal">save</span> with a thing.' in socket["description"]


def test_without_docutils_a_description_is_plain_text_with_code(monkeypatch):
    monkeypatch.setitem(sys.modules, "docutils.core", None)
    assert render_description("A ``<b>`` tag.\n\nTwo *words*.") == "<p>A <code>&lt;b&gt;</code> tag.</p><p>Two *words*.</p>"


def test_rest_cannot_bring_raw_html_or_files():
    html = render_description("<script>x</script>\n\n.. raw:: html\n\n   <b>raw</b>\n\n.. include:: /etc/passwd\n")
    assert "<script>" not in html and "<b>" not in html and "root:" not in html


# -- the DRF bridge's routes (the suite's tests.asgi application) -------------------------------

@pytest.fixture(scope="module")
def suite():
    return build_page_model("tests.asgi.application")


def test_the_bridge_s_routes_are_described_for_their_callers_not_by_their_implementation(suite):
    routes = {route["name"]: route for socket in suite["sockets"] if socket["id"] == "ws-articles"
              for route in socket["routes"]}
    assert routes["get"]["summary"] == "One article, by its <code>id</code> (in the headers, or in the payload)."
    assert routes["unsubscribe"]["summary"].endswith("No push of it follows the reply.")
    for route in routes.values():
        text = route["summary"] + route["description"]
        assert not re.search(r"\binstance\b|\bserializer\b|queryset|validated and saved here", text), route["name"]
    assert routes["shout"]["summary"] == ""  # a custom route without a docstring: nothing made up


def test_statuses_are_those_of_the_route_and_those_of_every_route_are_said_once_per_socket(suite):
    [socket] = [s for s in suite["sockets"] if s["id"] == "ws-articles"]
    routes = {route["name"]: route for route in socket["routes"]}
    assert [status for status, _ in socket["common_errors"]] == [429, 500, 503]
    # get: a missing id or a malformed if-none-match is a 400; create takes an idempotency-key (409, 422).
    assert [status for status, _ in routes["get"]["errors"]] == [400, 401, 403, 404]
    assert [status for status, _ in routes["create"]["errors"]] == [400, 401, 403, 409, 422]
    assert [status for status, _ in routes["list"]["errors"]] == [400, 401, 403, 404]  # a filter's, a page past the last
    assert (routes["get"]["reply_status"], routes["create"]["reply_status"], routes["delete"]["reply_status"]) == (
        200, 201, 204)


@pytest.mark.django_db
def test_the_v1_2_headers_have_their_tables_and_get_s_304_is_listed_with_its_replies(suite):
    [socket] = [s for s in suite["sockets"] if s["id"] == "ws-articles"]
    routes = {route["name"]: route for route in socket["routes"]}
    names = {name: {kind: set(table(route[kind])) if route[kind] else set() for kind in ("headers", "reply_headers")}
             for name, route in routes.items()}
    assert names["get"] == {"headers": {"id", "if-none-match"}, "reply_headers": {"etag"}}
    assert names["patch"] == {"headers": {"id", "if-match", "idempotency-key"},
                              "reply_headers": {"etag", "idempotent-replay", "idempotent-stored"}}
    assert names["subscribe"] == {"headers": {"id", "resume-from"}, "reply_headers": {"position", "resumed"}}
    assert [status for status, _ in routes["get"]["other_replies"]] == [304]
    assert all(not route["other_replies"] for name, route in routes.items() if name != "get")
    assert routes["get"]["messages"] == ["get.request", "get.reply", "get.notModified", "get.error"]
    assert 412 in {status for status, _ in routes["patch"]["errors"]}
    pushes = {push["name"]: set(table(push["headers"])) for push in socket["pushes"]}
    assert all({"subscription", "seq", "position"} <= headers for headers in pushes.values()), pushes
    with override_settings(ROOT_URLCONF="tests.docs_urls", CHANNELS_ROUTER={"DOCS_ACCESS": "public"}):
        text = Client().get("/socket-docs/").content.decode()
    get = re.search(r'<section class="route" id="ws-articles--route-get".*?</section>', text, re.S)[0]
    assert '<p class="other-reply"><span class="status status-ok">304</span> not modified' in get
    assert 'data-messages="get.request get.reply get.notModified get.error"' in get


@pytest.mark.django_db
def test_examples_name_an_object_that_exists_filter_only_lists_and_never_send_a_status(suite):
    [socket] = [s for s in suite["sockets"] if s["id"] == "ws-articles"]
    routes = {route["name"]: route for route in socket["routes"]}
    assert docs_page.lookup_values(suite["sockets"]) == {}  # no article: the console asks for an id
    article = Article.objects.create(title="There")
    found = docs_page.lookup_values(suite["sockets"])
    assert found[routes["get"]["anchor"]] == article.pk and found[routes["delete"]["anchor"]] == article.pk
    assert routes["subscribe"]["anchor"] not in found  # subscribes to the list by default
    assert routes["get"]["example"] == {"headers": {}, "payload": {}}  # the id is added from the lookup
    assert routes["list"]["example"]["payload"] == {} and routes["subscribe"]["example"]["payload"] == {}
    assert set(routes["patch"]["example"]["payload"]) == {"title", "body"}


@pytest.mark.django_db
def test_the_page_shows_an_existing_id_or_a_placeholder_and_no_status():
    with override_settings(ROOT_URLCONF="tests.docs_urls", CHANNELS_ROUTER={"DOCS_ACCESS": "public"}):
        text = Client().get("/socket-docs/").content.decode()
        article = Article.objects.create(title="There")
        found = Client().get("/socket-docs/").content.decode()
    example = re.search(r'<pre class="example" data-socket="ws-articles" data-route="get">(.*?)</pre>', text, re.S)[1]
    assert json.loads(example.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">"))["headers"] == {"id": "<id>"}
    example = re.search(r'<pre class="example" data-socket="ws-articles" data-route="get">(.*?)</pre>', found, re.S)[1]
    assert json.loads(example.replace("&quot;", '"'))["headers"] == {"id": article.pk}
    assert '&quot;status&quot;' not in "".join(re.findall(r'<pre class="example".*?</pre>', found, re.S))
    console = json.loads(re.search(r'<script id="console-data" type="application/json">(.*?)</script>', found, re.S)[1])
    [articles] = [s for s in console["sockets"] if s["id"] == "ws-articles"]
    get = next(r for r in articles["routes"] if r["name"] == "get")
    assert (get["lookup"], get["id"], get["model"]) == ("id", article.pk, "article")


def test_the_page_s_model_is_built_once_per_process_and_again_for_another_application():
    with override_settings(ASGI_APPLICATION=ASGI):
        first = page_model()
        assert page_model() is first
    with override_settings(ASGI_APPLICATION="tests.asgi.application"):
        assert page_model() is not first

