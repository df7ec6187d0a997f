"""Every Python block of the documentation runs in the test suite (Sybil).

* A block whose first line names a file (``# myapp/consumers.py``) is part of a project: it is
  compiled here, and the projects of the quickstart and the tutorial are built from these blocks and
  served by a real server (tests/test_quickstart.py, tests/test_tutorial.py).
* Every other ``python`` block runs here, in page order with one namespace per page, with Django set
  up on the test suite's settings and a test database. ``<!-- skip: next "why" -->`` skips a block
  that another test runs (say which).
"""

import re

import pytest
from sybil import Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.myst import CodeBlockParser, SkipParser

FILE_LABEL = re.compile(r"#\s*(?P<path>[\w./-]+\.py)\s*(?:\n|$)")


def compile_only(example):
    compile(example.parsed, f"{example.path}:{example.line}", "exec")


class PythonBlocks(CodeBlockParser):
    """``python`` blocks: project files are compiled, the rest are run."""

    language = "python"

    def __init__(self):
        super().__init__(language="python")
        self.run = PythonEvaluator()

    def evaluate(self, example):
        if FILE_LABEL.match(example.parsed):
            return compile_only(example)
        return self.run(example)


@pytest.fixture
def docs_database(db):
    """A test database for the blocks that use models."""


pytest_collect_file = Sybil(
    parsers=[PythonBlocks(), SkipParser()],
    patterns=["*.md"],
    excludes=["README.md"],
    fixtures=["docs_database"],
).pytest()
