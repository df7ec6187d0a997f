"""The reference pages list what the code has: every settings key, system check id and error code.

Each list is derived from the code, so a key, check or code added without its documentation
fails here, and so does a documented one the code no longer has.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from django_channels_router import RouterMixin, SocketError, StatusCodes
from django_channels_router.conf import DEFAULTS
from drf_bridge import SubscribeModelMixin

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT
SOURCES = sorted([*ROOT.glob("django_channels_router/**/*.py"), *ROOT.glob("drf_bridge/**/*.py")])

#: Calls that answer an error, and the position of their ``code`` argument.
CODE_ARGUMENT = {"SocketError": 2, "FrameError": 1, "error_frame": 3}
#: ... and of their ``status`` argument.
STATUS_ARGUMENT = {"SocketError": 0, "FrameError": 0, "error_frame": 2}


def page(name: str) -> str:
    return (REFERENCE / name).read_text(encoding="utf-8")


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row of ``text``."""
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|") and not line.startswith("|---")]


# -- settings -----------------------------------------------------------------------------------

def settings_rows() -> dict[str, list[str]]:
    """The rows of the settings table, by key: ``| [`KEY`](#anchor) | attribute | type | default |``."""
    rows = {}
    for cells in table_rows(page("docs/reference/settings.md")):
        found = re.fullmatch(r"\[`([A-Z_]+)`\]\(#[a-z-]+\)", cells[0])
        if found:
            rows[found[1]] = cells
    return rows


def test_every_setting_has_a_row_and_a_section():
    rows = settings_rows()
    sections = set(re.findall(r"^### ([A-Z_]+)$", page("docs/reference/settings.md"), re.MULTILINE))
    assert sorted(set(DEFAULTS) - set(rows)) == [], "docs/reference/settings.md's table lacks these keys"
    assert sorted(set(DEFAULTS) - sections) == [], "docs/reference/settings.md has no section for these keys"
    assert sorted((set(rows) | sections) - set(DEFAULTS)) == [], "docs/reference/settings.md documents keys the code does not read"


def test_settings_rows_state_the_class_attribute_and_the_default():
    for key, (_, attribute, _, default) in settings_rows().items():
        name = key.lower()
        if hasattr(RouterMixin, name) or hasattr(SubscribeModelMixin, name):
            assert f"`{name}`" in attribute, f"{key}: the class attribute {name} is not named"
        else:
            assert attribute == "none", f"{key}: no class attribute {name} exists, the row says {attribute!r}"
        value = DEFAULTS[key]
        if key == "WORKER_THREADS":  # depends on the machine
            assert "min(32, CPUs + 4)" in default
        elif isinstance(value, str):
            assert f'`"{value}"`' in default, f"{key}: the default is {value!r}, the row says {default!r}"
        else:
            assert f"`{value}`" in default, f"{key}: the default is {value!r}, the row says {default!r}"


# -- system checks ------------------------------------------------------------------------------

def check_ids() -> set[str]:
    """Every check id the packages name (system checks, and the ids of the errors raised when a
    consumer class is made)."""
    pattern = re.compile(r"\b(?:channels_router|drf_bridge)\.[EW]\d{3}\b")
    return {found for path in SOURCES for found in pattern.findall(path.read_text(encoding="utf-8"))}


def test_every_check_has_a_row_and_a_section():
    ids = check_ids()
    assert len(ids) >= 10, f"the check ids are no longer found in the code: {sorted(ids)}"
    text = page("docs/reference/checks.md")
    rows = {found[1] for cells in table_rows(text) if (found := re.fullmatch(r"\[`([\w.]+)`\]\(#[a-z0-9-]+\)", cells[0]))}
    sections = set(re.findall(r"^### ([\w.]+)$", text, re.MULTILINE))
    assert sorted(ids - rows) == [], "docs/reference/checks.md's summary lacks these checks"
    assert sorted(ids - sections) == [], "docs/reference/checks.md has no section for these checks"
    assert sorted((rows | sections) - ids) == [], "docs/reference/checks.md documents checks the code does not have"


def test_check_links_lead_to_their_sections():
    text = page("docs/reference/checks.md")
    for cells in table_rows(text):
        found = re.fullmatch(r"\[`([\w.]+)`\]\(#([a-z0-9-]+)\)", cells[0])
        if found:
            check, anchor = found.groups()
            assert anchor == check.lower().replace("_", "-").replace(".", "-")
            assert f"({anchor})=\n### {check}\n" in text, f"{check}: no target ({anchor})= above its section"


# -- error codes --------------------------------------------------------------------------------

def _name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _status(node: ast.expr | None) -> int | None:
    """A status argument written as a number or as ``StatusCodes.NAME``."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Attribute) and _name(node.value) == "StatusCodes":
        return int(StatusCodes[node.attr])
    return None


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    for given in call.keywords:
        if given.arg == keyword:
            return given.value
    return call.args[position] if len(call.args) > position else None


def error_codes() -> dict[str, set[int | None]]:
    """Every error ``code`` the packages answer with, and the statuses it comes with (None where
    the code does not say): the ``code`` of each ``SocketError``, ``FrameError`` and
    ``error_frame`` call (a subclass of ``SocketError`` passes it to ``super().__init__``), each
    ``{"code": ...}`` literal (with the status beside it in a ``(status, body, headers)``
    answer), and ``SocketError``'s default code."""
    codes: dict[str, set[int | None]] = {}

    def add(code: ast.expr | None, status: int | None) -> None:
        if isinstance(code, ast.Constant) and isinstance(code.value, str):
            codes.setdefault(code.value, set()).add(status)

    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and "SocketError" in {_name(base) for base in node.bases}:
                for call in ast.walk(node):
                    if isinstance(call, ast.Call) and _name(call.func) == "__init__":
                        add(_argument(call, 2, "code"), _status(_argument(call, 0, "status")))
            elif isinstance(node, ast.Call) and (name := _name(node.func)) in CODE_ARGUMENT:
                add(_argument(node, CODE_ARGUMENT[name], "code"), _status(_argument(node, STATUS_ARGUMENT[name], "status")))
            elif isinstance(node, ast.Tuple) and len(node.elts) == 3 and isinstance(node.elts[1], ast.Dict):
                body = node.elts[1]
                for key, value in zip(body.keys, body.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "code":
                        add(value, _status(node.elts[0]))
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "code":
                        add(value, None)
    codes.setdefault(inspect.signature(SocketError).parameters["code"].default, set()).add(None)
    return codes


def documented_codes() -> dict[str, set[str]]:
    """The protocol page's error tables: ``| `code` | status | when |``, by code."""
    rows: dict[str, set[str]] = {}
    for cells in table_rows(page("docs/reference/protocol.md")):
        found = re.fullmatch(r"`([a-z_]+)`", cells[0])
        if found and len(cells) == 3 and re.fullmatch(r"\d{3}|any", cells[1]):
            rows.setdefault(found[1], set()).add(cells[1])
    return rows


def test_every_error_code_has_a_row():
    codes = error_codes()
    assert len(codes) >= 25, f"the error codes are no longer found in the code: {sorted(codes)}"
    rows = documented_codes()
    assert sorted(set(codes) - set(rows)) == [], "docs/reference/protocol.md's error tables lack these codes"
    assert sorted(set(rows) - set(codes)) == [], "docs/reference/protocol.md documents codes the code does not answer"


def test_error_rows_give_the_status_the_code_answers():
    codes = error_codes()
    for code, statuses in documented_codes().items():
        known = {str(status) for status in codes.get(code, ()) if status is not None}
        for status in statuses:
            assert status == "any" and not known or status in known, (
                f"{code}: docs/reference/protocol.md says {status}, the code answers {sorted(known) or 'any status'}")
