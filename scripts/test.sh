#!/usr/bin/env bash
# Run the test suite from a fresh clone: sets up .venv with the "dev" extra, then runs pytest (arguments pass through).
# Tests that need PostgreSQL or Redis use them when reachable on 127.0.0.1 and are skipped otherwise.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" dev
exec .venv/bin/python -m pytest "$@"
