"""manage.py socketschema --format typescript: the demo's types compile with tsc --strict over the
shipped router-socket.d.ts, and a call with a wrong payload does not."""

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

JS = ROOT / "tests" / "js"
STATIC = ROOT / "django_channels_router" / "static" / "django_channels_router"
TSC = JS / "node_modules" / ".bin" / "tsc"

USAGE = """\
import { RouterSocket } from "./router-socket.js";
import { wsModelArticles, type WsModelArticlesPush } from "./sockets.js";

const articles = wsModelArticles(new RouterSocket("ws://127.0.0.1:8000/ws/model/articles/"));

export async function titles(): Promise<string[]> {
  const one = await articles.get(null, { id: 7 });
  const first: string = one.status === 200 ? one.payload.title : one.payload.detail;
  const created = await articles.create({ title: "New", body: "" });
  if (created.status === 201) created.payload.id.toFixed();
  const page = await articles.list({ search: "x" });
  return page.status === 200 ? [first, ...page.payload.map((a) => a.title)] : [first];
}

export function onPush(push: WsModelArticlesPush): number | unknown {
  return push.route === "deleted" ? push.payload.id : push.payload;
}
"""

MISTAKES = {
    "a misspelt payload field": 'articles.create({ titel: "New" });',
    "a payload field of the wrong type": "articles.create({ title: 7 });",
    "a route the socket does not have": "articles.publish(null);",
    "the reply read as another type": 'articles.get(null, { id: 1 }).then((r) => { if (r.status === 200) { const n: number = r.payload.title; } });',
}


def tsc(tmp_path, source):
    (tmp_path / "usage.ts").write_text(source)
    return subprocess.run([str(TSC), "--strict", "--noEmit", "--target", "es2022", "--module", "nodenext",
                           "--moduleResolution", "nodenext", "--skipLibCheck", "false", "usage.ts"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def typescript_project(tmp_path_factory):
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed")
    if not TSC.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True, timeout=300)
    tmp = tmp_path_factory.mktemp("typescript")
    run = subprocess.run([sys.executable, "manage.py", "socketschema", "--format", "typescript",
                          "--file", str(tmp / "sockets.ts")], cwd=ROOT / "testproject",
                         env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "sqlite:///:memory:"},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    shutil.copy(STATIC / "router-socket.d.ts", tmp / "router-socket.d.ts")
    (tmp / "package.json").write_text('{"type": "module"}')
    return tmp


def test_the_demos_generated_types_compile_with_tsc_strict(typescript_project):
    run = tsc(typescript_project, USAGE)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_call_that_breaks_the_contract_does_not_compile(typescript_project, mistake):
    run = tsc(typescript_project, USAGE + "\n" + MISTAKES[mistake] + "\n")
    assert run.returncode != 0, mistake
    assert "usage.ts(" in run.stdout and "sockets.ts(" not in run.stdout, run.stdout
