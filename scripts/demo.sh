#!/usr/bin/env bash
# Run the demo from a fresh clone: sets up .venv with what the demo needs (the "demo" extra: no test
# tools), migrates SQLite, adds sample articles and serves testproject on http://127.0.0.1:${PORT:-8000}/
# (daphne, in-memory channel layer). Set DATABASE_URL (PostgreSQL) or REDIS_URL (channels-redis) to
# use those instead: their drivers are installed then.
set -euo pipefail
extras=demo
if [ -n "${REDIS_URL:-}" ]; then extras+=,redis; fi
case "${DATABASE_URL:-}" in postgres*) extras+=,postgres ;; esac
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" "$extras"
cd testproject
../.venv/bin/python manage.py migrate --no-input
../.venv/bin/python manage.py seed_articles
exec ../.venv/bin/python manage.py runserver "127.0.0.1:${PORT:-8000}"
