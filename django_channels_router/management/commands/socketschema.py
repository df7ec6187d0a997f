"""``manage.py socketschema``: the AsyncAPI 3.0 document of the project's sockets, or a drift check."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_channels_router.contract.asyncapi import project_document, render
from django_channels_router.contract.typescript import DEFAULT_MODULE, render_typescript

#: The format a file's extension stands for, unless --format says otherwise.
FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".ts": "typescript"}


class Command(BaseCommand):
    help = ("Write the AsyncAPI 3.0 document of every router consumer ASGI_APPLICATION routes WebSockets to, "
            "or TypeScript types from it.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=["yaml", "json", "typescript"],
                            help="Default: from the extension of --file or --check (.json, .yaml/.yml, .ts), else "
                                 "yaml. typescript: types and typed wrappers over the shipped RouterSocket.")
        parser.add_argument("--js-module", default=DEFAULT_MODULE,
                            help="With --format typescript: where the TypeScript imports RouterSocket from "
                                 f"(default: {DEFAULT_MODULE}, the npm package).")
        parser.add_argument("--file", help="Write to this file instead of standard output (its folders are created).")
        parser.add_argument("--check", metavar="PATH",
                            help="Compare with the document in PATH: exit 1 with a diff when it is out of date.")
        parser.add_argument("--asgi", help="The ASGI application, as a dotted path (default: ASGI_APPLICATION).")
        parser.add_argument("--title", default=None, help="info.title (default: the project's settings module).")
        parser.add_argument("--api-version", default="1.0.0", help="info.version of the document.")

    def handle(self, *args: Any, **options: Any) -> None:
        target = options["check"] or options["file"]
        fmt = options["format"] or (target and FORMATS.get(Path(target).suffix.lower())) or "yaml"
        try:
            document = project_document(options["asgi"], title=options["title"], version=options["api_version"])
            text = render_typescript(document, options["js_module"]) if fmt == "typescript" else render(document, fmt)
        except ImproperlyConfigured as exc:  # no application, one that fails to import, no PyYAML
            raise CommandError(str(exc)) from exc
        if options["check"]:
            self.check_file(Path(options["check"]), text, options["format"])
        elif options["file"]:
            self.write_file(Path(options["file"]), text)
        else:
            self.stdout.write(text, ending="")

    def write_file(self, path: Path, text: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:  # a parent that is a file, no permission
            raise CommandError(f"Cannot write {path}: {exc.strerror}.") from None

    def check_file(self, path: Path, text: str, fmt: str | None) -> None:
        try:
            committed = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
        if committed == text:
            self.stdout.write(f"{path} is up to date.")
            return
        diff = difflib.unified_diff(committed.splitlines(keepends=True), text.splitlines(keepends=True),
                                    f"{path} (committed)", f"{path} (from the code)", n=2)
        lines = list(diff)
        shown = "".join(lines[:60]) + (f"... {len(lines) - 60} more diff lines\n" if len(lines) > 60 else "")
        self.stderr.write(shown, ending="")
        again = f"--format {fmt} --file {path}" if fmt else f"--file {path}"
        raise CommandError(f"{path} is out of date: run manage.py socketschema {again} and commit it.")
