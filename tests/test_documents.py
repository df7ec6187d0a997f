"""The project's documents cite only documents that are in the project."""

import re

from tests.conftest import ROOT

FOLDERS = {"django_channels_router": {".py", ".md", ".js", ".ts"}, "drf_bridge": {".py", ".md", ".js", ".ts"},
           "tests": {".py", ".md", ".js", ".ts"}, "bench": {".py", ".md", ".js", ".ts"},
           "testproject": {".py", ".md", ".js", ".ts"}, "docs": {".py", ".md"}}


def texts():
    found = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    for folder, suffixes in FOLDERS.items():
        found += [path for path in (ROOT / folder).rglob("*") if path.suffix in suffixes
                  and not {"node_modules", "_build"} & set(path.relative_to(ROOT).parts)]
    return found


def test_documents_cite_only_documents_of_the_project():
    # A user reads the cited file: the protocol is in the project's own documents, not in a file kept elsewhere.
    cited = {(name, text.relative_to(ROOT).as_posix()) for text in texts()
             for name in re.findall(r"(?<![\w./-])[\w./-]+\.md\b", text.read_text(errors="replace"))}
    missing = {(name, where) for name, where in cited
               if not (ROOT / name).exists() and not (ROOT / where).parent.joinpath(name).exists()}
    assert not missing, sorted(missing)


def test_the_documents_are_read():
    # The test above reads the docs' pages and configuration too.
    names = {path.relative_to(ROOT).as_posix() for path in texts()}
    assert {"docs/conf.py", "docs/index.md", "docs/tutorial/01-project.md"} <= names
