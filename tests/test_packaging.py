"""What an installed package promises: its version in one place, and a clear error without DRF."""

import os
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from importlib.metadata import version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import django_channels_router
import drf_bridge
from tests.conftest import ROOT


def test_both_packages_report_the_installed_version():
    assert django_channels_router.__version__ == drf_bridge.__version__ == version("django-channels-router")


def test_drf_bridge_without_django_rest_framework_says_which_extra_to_install():
    # sys.modules[name] = None makes Python's import system refuse the module, as if not installed.
    code = "import sys; sys.modules['rest_framework'] = None; import drf_bridge"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last == "ImportError: drf_bridge needs Django REST framework: pip install 'django-channels-router[drf]'"


# -- the demo's extra: what scripts/demo.sh installs --------------------------------------------------

#: What the tests and the release need, which the demo must not install (the dev extra's ~500 MB).
TOOLS = {"pytest", "playwright", "nox", "uv", "twine", "build", "ruff", "mypy", "sphinx", "hypothesis", "sybil",
         "factory-boy", "uvicorn", "gunicorn", "furo", "myst-parser", "websockets"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def distributions(*extras):
    """Every distribution ``pip install ".[extras]"`` installs (normalized names): the package's own
    requirements from this checkout's pyproject.toml, their dependencies from the installed metadata
    (a distribution not installed here counts without its own dependencies)."""
    seen: dict[str, set[str]] = {}  # a distribution and the extras of it walked so far
    todo = [Requirement(f"django-channels-router[{','.join(extras)}]")]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name == "django-channels-router":
            options = PYPROJECT["project"]["optional-dependencies"]
            todo += [Requirement(each) for each in PYPROJECT["project"]["dependencies"]]
            todo += [Requirement(each) for extra in requirement.extras for each in options[extra]]
            continue
        if name in seen and requirement.extras <= seen[name]:
            continue
        seen.setdefault(name, set()).update(requirement.extras)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:  # not installed here (the dev tools in a nox session): a leaf
            continue
        for line in requires:
            dependency = Requirement(line)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": extra})
                                                for extra in ["", *sorted(requirement.extras)]):
                todo.append(dependency)
    return set(seen)


def test_the_demo_extra_installs_no_test_or_release_tool():
    demo = distributions("demo")
    assert {"django", "channels", "djangorestframework", "drf-spectacular", "daphne", "dj-database-url"} <= demo
    assert not demo & TOOLS, demo & TOOLS
    assert len(demo) < len(distributions("dev")) / 2


def test_the_dev_extra_installs_everything_the_demo_may_use():
    # scripts/setup.sh takes a venv with "dev" as good enough for the demo, whatever its database and layer.
    assert distributions("demo", "redis", "postgres") <= distributions("dev")


def test_the_demo_project_runs_on_what_the_demo_extra_installs():
    """testproject's settings, URLs, ASGI application, consumers and docs page (its schema comes from
    drf-spectacular), in a fresh interpreter where every installed distribution outside the demo extra
    is refused as if absent: an import of a test tool would fail here, not in a user's demo."""
    providers = metadata.packages_distributions()
    demo = distributions("demo")
    refused = sorted(module for module, names in providers.items()
                     if not {canonicalize_name(name) for name in names} & (demo | {"django-channels-router"}))
    assert {"pytest", "playwright", "uvicorn", "websockets"} <= set(refused)
    code = """if True:
        import os, sys

        class Refuse:
            refused = set(os.environ["REFUSED"].split())
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in self.refused:
                    raise ModuleNotFoundError(f"No module named {name!r} (not in the demo extra)", name=name)

        sys.meta_path.insert(0, Refuse())
        import django
        django.setup()
        import daphne.server, demo.consumers, testproject.asgi, testproject.urls
        from django.test import Client, override_settings
        with override_settings(CHANNELS_ROUTER={"DOCS_ACCESS": "public"}):
            for url in ("/", "/socket-docs/", "/socket-docs/asyncapi.yaml"):
                assert Client().get(url).status_code == 200, url
    """
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "testproject.settings", "DATABASE_URL": "sqlite://:memory:",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "testproject")]), "REFUSED": " ".join(refused)}
    env.pop("REDIS_URL", None)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_setup_installs_the_extras_asked_for_and_never_fewer_than_before(tmp_path):
    """scripts/setup.sh's stamp, with a .venv whose python only records the pip commands it gets."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/bin/sh\ncase "$*" in *-e*) echo "$*" | sed "s/.* -e //" >> "$(dirname "$0")/../../log" ;; esac\n')
    python.chmod(0o755)

    def setup(extras):
        subprocess.run(["bash", "-c", f"source scripts/setup.sh {extras}"], cwd=tmp_path, check=True, timeout=30)
        log = tmp_path / "log"
        installs = log.read_text().split() if log.exists() else []
        log.unlink(missing_ok=True)
        return installs

    assert setup("demo") == [".[demo]"]
    assert setup("demo") == []  # installed: nothing to do
    assert setup("demo,redis") == [".[demo,redis]"]
    assert setup("dev") == [".[demo,dev,redis]"]  # the tests after the demo: the rest, keeping the demo's
    assert setup("demo,postgres") == []  # the demo after the tests: dev has it all, nothing smaller
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'changed'\n")
    assert setup("demo") == [".[demo,dev,redis]"]  # a new pyproject.toml: everything installed before, again
