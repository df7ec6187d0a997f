"""README.md's example, pasted into a fresh project, works as written.

``startproject``/``startapp``, README.md's file blocks, the quickstart's ``myproject/asgi.py`` (which
the README points to), ``makemigrations``, ``migrate``; served by daphne, the README's script prints
what the README says it prints. Every relative link of the README leads to a file of the project.
"""

import re

import pytest

from tests.conftest import ROOT, SERVERS, free_port, server_process
from tests.projects import SETTINGS, files, make_project, run, user_env

# The documentation's own project, checked on the releases the README's test command installs.
pytestmark = pytest.mark.documentation

README = ROOT / "README.md"
QUICKSTART = ROOT / "docs/quickstart.md"
REQUIRED = {SETTINGS, "myapp/models.py", "myapp/consumers.py", "myapp/routing.py", "articles_client.py"}


def test_readme_example_answers_as_written(tmp_path):
    sources = files(README)
    assert REQUIRED <= sources.keys(), f"README.md has no block for {sorted(REQUIRED - sources.keys())}"
    port = free_port()
    sources = {path: text.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for path, text in sources.items()}
    project = make_project(tmp_path / "site", {"myproject/asgi.py": files(QUICKSTART)["myproject/asgi.py"], **sources})
    checked = run(project, "manage.py", "check")
    assert checked.strip() == "System check identified no issues (0 silenced).", checked
    with server_process(SERVERS["daphne"](port, "myproject.asgi:application"), port, tmp_path / "daphne.log",
                        cwd=project, env=user_env(project)):
        printed = run(project, "articles_client.py")
    (expected,) = re.findall(r"^<!-- output: articles_client.py -->\n```text\n(.*?)^```", README.read_text(), re.M | re.S)
    assert printed == expected


def test_readme_links_lead_to_files_of_the_project():
    links = re.findall(r"\]\((?!https?:)([^)#]+)(?:#[^)]*)?\)", README.read_text())
    assert links, "README.md links into docs/"
    assert [link for link in links if not (ROOT / link).is_file()] == []
