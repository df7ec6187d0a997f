"""manage.py socketschema --format typescript: the demo's types compile with tsc --strict over the
shipped router-socket.d.ts, imported from the npm package by name, and a call with a wrong payload
does not."""

import json
import re
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from django_channels_router.contract.asyncapi import build_document
from django_channels_router.contract.typescript import render_typescript
from django_channels_router.protocol import RESERVED_ROUTES, ROUTE_NAME
from tests.conftest import JS, ROOT, js_packages

STATIC = ROOT / "django_channels_router" / "static" / "django_channels_router"
TSC = JS / "node_modules" / ".bin" / "tsc"

USAGE = """\
import { RouterSocket } from "django-channels-router";
import { wsArticles, wsModelArticles, type WsModelArticlesPush } from "./sockets.js";

const articles = wsModelArticles(new RouterSocket("ws://127.0.0.1:8000/ws/model/articles/"));
const plain = wsArticles(new RouterSocket("ws://127.0.0.1:8000/ws/articles/"));

export async function titles(): Promise<string[]> {
  const one = await articles.get(null, { id: 7 });
  const first: string = one.status === 200 ? one.payload.title : one.status === 304 ? "unchanged" : one.payload.detail;
  const created = await articles.create({ title: "New", body: "" });
  if (created.status === 201) created.payload.id.toFixed();
  // The request options reach RouterSocket.request(): a key of the caller's, or none.
  await articles.create({ title: "Keyed", body: "" }, undefined, { idempotencyKey: "order-7", maxRetries: 2 });
  await articles.get(null, { id: 7 }, { idempotencyKey: null });
  const page = await articles.list({ search: "x" });
  return page.status === 200 ? [first, ...page.payload.map((a) => a.title)] : [first];
}

// Custom and plain routes: their replies are typed from response= or a serializer as the dehydrate.
export async function custom(): Promise<string[]> {
  const copy = await articles.duplicate(null, { id: 7 });
  const counted = await articles.count({ search: "x" });
  const listed = await plain.list();
  const one = await plain.get(null, { id: 7 });
  return [
    copy.status === 201 ? copy.payload.title : "",
    counted.status === 200 ? counted.payload.count.toFixed() : "",
    ...(listed.status === 200 ? listed.payload.map((a) => a.title) : []),
    one.status === 200 ? one.payload.created_at : "",
  ];
}

// v1.2 headers: a conditional get (304: no payload), a keyed write, and a header of the project's.
export async function unchanged(tag: string): Promise<boolean> {
  const one = await articles.get(null, { id: 7, "if-none-match": tag, authorization: "Token x" });
  const nothing: null = one.status === 304 ? one.payload : null;
  await articles.patch({ title: "New" }, { id: 7, "if-match": tag, "idempotency-key": "patch-1" });
  return one.status === 304 && nothing === null;
}

export function onPush(push: WsModelArticlesPush): number | unknown {
  return push.route === "deleted" ? push.payload.id : push.payload;
}
"""

MISTAKES = {
    "a misspelt payload field": 'articles.create({ titel: "New" });',
    "a payload field of the wrong type": "articles.create({ title: 7 });",
    "a route the socket does not have": "articles.publish(null);",
    "a request option of the wrong type": 'articles.create({ title: "New", body: "" }, undefined, { idempotencyKey: 7 });',
    "the reply read as another type": 'articles.get(null, { id: 1 }).then((r) => { if (r.status === 200) { const n: number = r.payload.title; } });',
    "a custom route's reply read as another type":
        'articles.duplicate(null, { id: 1 }).then((r) => { if (r.status === 201) { const n: number = r.payload.title; } });',
    "a response= schema's field that is not there": 'articles.count().then((r) => { if (r.status === 200) r.payload.total; });',
    "a plain route's reply read as one object": 'plain.list().then((r) => { if (r.status === 200) r.payload.title; });',
    "a 304 read as the object": 'articles.get(null, { id: 1 }).then((r) => { if (r.status === 304) r.payload.title; });',
    "an if-match that is not a string": 'articles.delete(null, { id: 1, "if-match": 7 });',
    "an error read as a success": 'articles.duplicate(null, { id: 1 }).then((r) => { if (r.status === 404) r.payload.title; });',
}


def install_client(folder):
    """The npm package as ``npm pack`` makes it, in ``folder/node_modules``: clients/js's
    package.json (its ``exports``) and the static folder's files, which its prepack script copies."""
    package = folder / "node_modules" / "django-channels-router"
    package.mkdir(parents=True, exist_ok=True)
    shutil.copy(JS / "package.json", package / "package.json")
    for name in ("router-socket.js", "router-socket.d.ts"):
        shutil.copy(STATIC / name, package / name)
    (folder / "package.json").write_text('{"type": "module"}')


def socketschema(*args):
    return subprocess.run([sys.executable, "manage.py", "socketschema", *args], cwd=ROOT / "testproject",
                          env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "sqlite:///:memory:", "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)


def tsc(tmp_path, source):
    (tmp_path / "usage.ts").write_text(source)
    return subprocess.run([str(TSC), "--strict", "--noEmit", "--target", "es2022", "--module", "nodenext",
                           "--moduleResolution", "nodenext", "--skipLibCheck", "false", "usage.ts"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def typescript_project(tmp_path_factory):
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed")
    js_packages()
    tmp = tmp_path_factory.mktemp("typescript")
    run = socketschema("--format", "typescript", "--file", str(tmp / "sockets.ts"))
    assert run.returncode == 0, run.stderr
    install_client(tmp)
    return tmp


def test_the_demos_generated_types_compile_with_tsc_strict(typescript_project):
    run = tsc(typescript_project, USAGE)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_call_that_breaks_the_contract_does_not_compile(typescript_project, mistake):
    run = tsc(typescript_project, USAGE + "\n" + MISTAKES[mistake] + "\n")
    assert run.returncode != 0, mistake
    assert "usage.ts(" in run.stdout and "sockets.ts(" not in run.stdout, run.stdout


def reply_types(source):
    """``{reply type name: (success payload type, success status type)}`` of a generated module."""
    return {m["name"]: (m["payload"], m["status"]) for m in re.finditer(
        r"^export type (?P<name>\w+Reply) = Reply<(?P<payload>.*?), (?P<status>[\w |]+)> \| Reply<", source, re.M)}


def test_the_demos_replies_are_typed_wherever_the_server_declares_a_serializer_or_a_schema(typescript_project):
    replies = reply_types((typescript_project / "sockets.ts").read_text())
    assert len(replies) == 17, replies  # every route of the demo: 2 + 2 + 3 + 10
    # Only slowEcho declares nothing: it echoes whatever it is sent.
    assert [name for name, (payload, _) in replies.items() if "unknown" in payload] == ["WsAppAsyncSlowEchoReply"]
    assert replies["WsModelArticlesDuplicateReply"] == ("Article", "Status200To299")  # the model router's rule
    assert replies["WsModelArticlesCountReply"][0] == '{ "count": number }'  # response= a JSON Schema
    assert replies["WsArticlesGetReply"][0] == "Article"  # a serializer class as the dehydrate
    assert replies["WsArticlesListReply"][0] == "Array<Article>"  # response=ArticleSerializer(many=True)
    assert replies["WsAppGetArticleReply"][0] == '{ "id": number; "title": string }'
    assert replies["WsAppSayHelloReply"][0] == "string"


def test_the_how_to_pages_example_compiles_against_the_demos_types(typescript_project):
    [example] = re.findall(r"^```ts\n(.*?)^```", (ROOT / "docs/howto/typescript.md").read_text(), re.S | re.M)
    run = tsc(typescript_project, example)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_module_imports_the_client_from_the_npm_package_unless_js_module_says_otherwise():
    default = socketschema("--format", "typescript")
    assert default.returncode == 0, default.stderr
    imports = [line for line in default.stdout.splitlines() if line.startswith("import")]
    assert imports == ['import type { Reply, RequestOptions, RouterSocket } from "django-channels-router";']
    vendored = socketschema("--format", "typescript", "--js-module", "./vendor/router-socket.js")
    assert vendored.returncode == 0, vendored.stderr
    assert vendored.stdout == default.stdout.replace('"django-channels-router"', '"./vendor/router-socket.js"')


def test_file_and_check_take_typescript_from_a_ts_extension_into_a_new_folder(tmp_path):
    target = tmp_path / "src" / "sockets.ts"  # as the README says, into a folder that does not exist yet
    run = socketschema("--file", str(target))
    assert run.returncode == 0, run.stderr
    assert target.read_text() == socketschema("--format", "typescript").stdout
    run = socketschema("--check", str(target))
    assert (run.returncode, run.stdout.strip()) == (0, f"{target} is up to date."), run.stderr


# -- any legal project: random URL patterns, route and push names, serializer names -------------

WORDS = ["get", "Item", "item", "x", "push", "Push", "reply", "Reply", "request", "delete", "a", "b", "1", "z9"]
SEPARATORS = ["", "", "_", ".", ":", "-"]
SERIALIZER_WORDS = ["Reply", "RouterSocket", "RequestOptions", "Promise", "Array", "string", "delete", "WsA", "Ws", "APush", "Push",
                    "Payload", "Item", "Ω", "é", "_", "1"]
PATH_PARTS = ["ws/", "1/", "a*/", "x.y/", "é/", "-/", "_/", "~/", "*/", "<int:pk>/", "<slug:s>/"]
REGEX_PARTS = ["ws/", "1", "a*/", r"\*/", "/*", r"\d+/", "(?P<pk>[0-9]+)/", "[a-z]+/", "(?:x|y)/", "é/", r"\.", "\n"]


def joined(words):
    return st.lists(st.sampled_from(words), min_size=1, max_size=3).flatmap(
        lambda parts: st.lists(st.sampled_from(SEPARATORS), min_size=len(parts) - 1, max_size=len(parts) - 1)
        .map(lambda seps: parts[0] + "".join(sep + part for sep, part in zip(seps, parts[1:], strict=True))))


route_names = joined(WORDS).filter(lambda name: ROUTE_NAME.fullmatch(name) and name not in RESERVED_ROUTES)
serializer_names = st.lists(st.sampled_from(SERIALIZER_WORDS), min_size=1, max_size=2).map("".join).flatmap(
    lambda name: st.sampled_from([name, name + "Serializer"])).filter(str.isidentifier)


def legal_path(parts):
    return "".join(dict.fromkeys(parts))  # (a URL parameter may appear once)


addresses = st.one_of(
    st.lists(st.sampled_from(PATH_PARTS), min_size=1, max_size=4).map(lambda parts: ("path", legal_path(parts))),
    st.tuples(st.booleans(), st.lists(st.sampled_from(REGEX_PARTS), min_size=1, max_size=4), st.booleans()).map(
        lambda t: ("re_path", ("^" if t[0] else "") + legal_path(t[1]) + ("$" if t[2] else ""))),
)


@st.composite
def projects(draw):
    """``{"serializers": [names], "sockets": [(kind, pattern, {route: (request, response)}, {push: payload})]}``,
    serializers named by index into ``serializers`` (or None)."""
    serializers = draw(st.lists(serializer_names, max_size=4, unique=True))
    # i: the serializer class i; ~i: for a response or a push, the instance serializers[i](many=True)
    declaration = st.none() | (st.integers(0, len(serializers) - 1).flatmap(lambda i: st.sampled_from([i, ~i]))
                               if serializers else st.none())
    sockets = draw(st.lists(st.tuples(
        addresses,
        st.dictionaries(route_names, st.tuples(declaration, declaration), max_size=4),
        st.dictionaries(route_names, declaration, max_size=2)), min_size=1, max_size=3))
    return {"serializers": serializers,
            "sockets": [(kind, pattern, routes, pushes) for (kind, pattern), routes, pushes in sockets]}


def application(project):
    """The project as Django code would declare it: serializer classes, consumers, a URLRouter."""
    from channels.routing import URLRouter
    from django.urls import path, re_path
    from rest_framework import serializers

    from django_channels_router.consumers import SocketRouterConsumer

    classes = [type(name, (serializers.Serializer,), {"title": serializers.CharField(), "__module__": __name__})
               for name in project["serializers"]]

    def declared(index, response=False):
        if index is None:
            return None
        return classes[~index](many=True) if index < 0 and response else classes[index if index >= 0 else ~index]

    def handler(self, payload, headers):
        return payload

    urls = []
    for n, (kind, pattern, routes, pushes) in enumerate(project["sockets"]):
        consumer = type(f"Socket{n}", (SocketRouterConsumer,), {
            "__module__": __name__, "pushes": {name: declared(spec, True) for name, spec in pushes.items()},
            "routes": [{"route": name, "handler": handler, "request": declared(request),
                        "response": declared(response, True)}
                       for name, (request, response) in routes.items()]})
        urls.append((path if kind == "path" else re_path)(pattern, consumer.as_asgi()))
    return URLRouter(urls)


CORNERS = [
    {"serializers": [], "sockets": [("re_path", r"^ws/a*/b/$", {"get": (None, None)}, {})]},  # */ in a comment
    {"serializers": [], "sockets": [("path", "1ws/<int:pk>/", {"get": (None, None)}, {})]},
    {"serializers": [], "sockets": [("path", "ws/", {"getItem": (None, None), "get_item": (None, None)}, {})]},
    {"serializers": ["ReplySerializer", "RouterSocketSerializer", "PromiseSerializer", "ArraySerializer",
                     "RequestOptionsSerializer"],
     "sockets": [("path", "ws/", {"get": (1, 0), "list": (None, ~3)}, {"said": 2, "many": ~1, "opts": 4})]},
    {"serializers": [], "sockets": [("path", "ws/", {"a:b": (None, None), "a_b": (None, None), "x.push": (None, None)},
                                     {"x": None})]},
    {"serializers": [], "sockets": [("path", "delete/", {"new": (None, None)}, {}), ("path", "ws/", {}, {}),
                                    ("path", "ws/a/", {"push": (None, None)}, {}), ("path", "ws-a/", {}, {"push": None})]},
]


def test_the_typescript_of_any_legal_project_compiles_with_tsc_strict(typescript_project, tmp_path):
    """Random projects and the corners above, one tsc run over all of their files (tsc takes
    seconds to start). ``typescript_project`` installs tsc."""
    generated = []

    def generate(project):
        source = render_typescript(build_document(application(project)))
        for _, _, routes, pushes in project["sockets"]:  # every route and push has its own types
            assert all(f"{json.dumps(route)}: (payload" in source for route in routes), source
            assert all(f"route: {json.dumps(push)}; status: 200" in source for push in pushes), source
        generated.append((project, source))

    test = given(projects())(generate)
    for corner in CORNERS:
        test = example(corner)(test)
    settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))(test)()
    install_client(tmp_path)
    for n, (_, source) in enumerate(generated):
        (tmp_path / f"p{n}.ts").write_text(source)
    run = subprocess.run([str(TSC), "--strict", "--noEmit", "--target", "es2022", "--module", "nodenext",
                          "--moduleResolution", "nodenext", *(f"p{n}.ts" for n in range(len(generated)))],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    failing = sorted({int(line.partition(".ts(")[0][1:]) for line in run.stdout.splitlines() if line.startswith("p")})
    if failing:
        project, source = generated[failing[0]]
        errors = [line for line in run.stdout.splitlines() if line.startswith(f"p{failing[0]}.ts(")]
        pytest.fail(f"{len(failing)} of {len(generated)} projects do not compile; the first: {project!r}\n"
                    + "\n".join(errors[:10]) + "\n\n" + source)
    assert run.returncode == 0, run.stdout + run.stderr
