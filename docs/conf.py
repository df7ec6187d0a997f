"""Sphinx configuration: MyST Markdown pages, the Furo theme, the Python API from the package's docstrings.

Built in CI with ``python -m sphinx -W --keep-going -n docs docs/_build/html`` (tests/test_docs_site.py):
every warning, and every reference that does not resolve, fails the build.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# autodoc imports the package, and the bridge imports DRF, which needs Django's settings.
import django  # noqa: E402
from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "channels", "rest_framework",
                        "django_channels_router", "drf_bridge"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    )
    django.setup()

import django_channels_router  # noqa: E402

project = "django-channels-router"
author = "django-channels-router developers"
copyright = "django-channels-router developers"
release = django_channels_router.__version__
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md", "conftest.py", "**/node_modules"]

# Markdown: ::: fences for directives, definition lists, and #anchors for every heading down to ####.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 4

autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}

# -n reports every reference that does not resolve. Django, DRF, Channels and the standard library are
# not documented here (no intersphinx: the build runs offline), so references into them are expected.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(django|rest_framework|channels|asgiref|websockets|jsonschema|drf_spectacular)(\..*)?"),
    (r"py:.*", r"(typing|collections|asyncio|concurrent|enum|pathlib|logging|json|threading|types|abc)(\..*)?"),
    (r"py:.*", r"(Any|Callable|Awaitable|Iterable|Iterator|Mapping|Sequence|Self|TypeVar|Protocol|NoneType)"),
]

html_theme = "furo"
html_title = f"django-channels-router {release}"
html_static_path: list[str] = []
