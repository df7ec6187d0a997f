#!/usr/bin/env bash
# Create .venv (once) and install the package into it with the extras named in $1, comma-separated:
# demo.sh asks for "demo" (what testproject imports), test.sh for "dev" (the tests and their tools).
# Installs again only when pyproject.toml changed or an extra not installed yet is asked for. The stamp
# lists the extras installed, and each install takes those of earlier stamps too: a venv first used by
# the demo gets the rest for the tests, and one used by the tests is never reinstalled smaller for the
# demo ("dev" includes every extra the demo uses: tests/test_packaging.py checks it).
# Sourced by demo.sh and test.sh; set PYTHON to pick the interpreter (3.11 or newer).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
installed=$(cat "$stamp" 2>/dev/null || true)
# shellcheck disable=SC2046 # split the lists into words on purpose
wanted=$(printf '%s\n' $(cat .venv/.installed-* 2>/dev/null | tr ',' ' ') ${1:?which extras: demo or dev} \
    | tr ',' '\n' | sort -u | paste -sd, -)
if [ "$installed" != "$wanted" ] && [[ ",$installed," != *,dev,* ]]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$wanted]"
    rm -f .venv/.installed-*
    echo "$wanted" > "$stamp"
fi
