"""Projects made of a document's blocks, the way a user makes them.

``django-admin startproject myproject .``, ``manage.py startapp myapp``, then every block of the
document whose first line names a file (``# myapp/consumers.py``) written to that file: blocks naming
the same file are joined in order, and ``# myproject/settings.py`` is added to the generated settings
(every other file is replaced). Commands run in a subprocess with the environment a user has: none of
the suite's settings, PYTHONPATH the project (then this checkout, wherever else the package is; or
only the project, with ``checkout=False``, for a Python that has the package installed).
Used for the README, the quickstart and every step of the tutorial.
"""

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT

FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w+)[^\n]*\n(?P<body>.*?)^(?P=indent)``` *$", re.M | re.S)
LABEL = re.compile(r"# (?P<path>[\w./-]+\.(?:py|ini|toml|cfg|txt))(?:\W|$)")
SETTINGS = "myproject/settings.py"


def blocks(*documents: Path):
    """``(lang, path or None, code)`` for every code block of the documents, in order."""
    found = []
    for document in documents:
        for match in FENCE.finditer(document.read_text()):
            code = textwrap.dedent(match["body"])
            label = LABEL.match(code)
            found.append((match["lang"], label["path"] if label else None, code))
    return found


def files(*documents: Path) -> dict[str, str]:
    """``{path: code}`` of the documents' file blocks, blocks naming the same file joined in order."""
    joined: dict[str, list[str]] = {}
    for _, path, code in blocks(*documents):
        if path:
            joined.setdefault(path, []).append(code)
    return {path: "\n\n".join(codes) for path, codes in joined.items()}


def is_sketch(code: str) -> bool:
    """A block that elides code with ``...`` (``class ArticleSocket(ModelSocketRouter): ...``)."""
    return any(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and node.value.value is Ellipsis
               for node in ast.walk(ast.parse(code)))


def user_env(project: Path, checkout: bool = True) -> dict[str, str]:
    """The environment of a user in the project: none of this suite's settings. ``checkout``: this
    checkout is on PYTHONPATH after the project (``False``: the package must be installed)."""
    env = {key: value for key, value in os.environ.items()
           if key not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "PYTHONPATH"}
           and not key.startswith("PYTEST_")}
    return {**env, "PYTHONPATH": f"{project}{os.pathsep}{ROOT}" if checkout else str(project)}


def run(project: Path, *args: str, check: bool = True, python: str = sys.executable, checkout: bool = True,
        env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    """``python *args`` in the project; its output (stdout then stderr). Fails the test on an error if ``check``.
    ``env``: variables the user sets on the command line (``API_TOKEN=...``); ``stdin``: what ``<`` feeds it."""
    result = subprocess.run([python, *args], cwd=project, env={**user_env(project, checkout), **(env or {})},
                            input=stdin, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    if check:
        assert result.returncode == 0, f"{' '.join(args)} failed:\n{output[-4000:]}"
    return output


def start_project(where: Path, python: str = sys.executable, checkout: bool = True) -> Path:
    """``django-admin startproject myproject .`` and ``manage.py startapp myapp`` in ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    run(where, "-m", "django", "startproject", "myproject", ".", python=python, checkout=checkout)
    run(where, "manage.py", "startapp", "myapp", python=python, checkout=checkout)
    return where


def add_sources(where: Path, sources: dict[str, str]) -> Path:
    """Write ``sources`` into the project ``where``: ``myproject/settings.py`` is added to, the rest replaced."""
    for path, code in sources.items():
        target = where / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if path == SETTINGS:
            code = target.read_text() + "\n\n" + code
        target.write_text(code + "\n")
    return where


def make_project(where: Path, sources: dict[str, str], python: str = sys.executable, checkout: bool = True) -> Path:
    """A fresh ``startproject``/``startapp`` in ``where`` with ``sources`` written in; migrated.
    ``python`` runs every command, with this checkout on PYTHONPATH if ``checkout``."""
    add_sources(start_project(where, python, checkout), sources)
    if (where / "myapp" / "models.py").read_text().count("class "):
        run(where, "manage.py", "makemigrations", "myapp", python=python, checkout=checkout)
    run(where, "manage.py", "migrate", python=python, checkout=checkout)
    return where
