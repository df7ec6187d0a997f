#!/usr/bin/env bash
# Run the demo from a fresh clone: sets up .venv, migrates SQLite, adds sample articles and
# serves testproject on http://127.0.0.1:${PORT:-8000}/ (daphne, in-memory channel layer).
# Set DATABASE_URL (PostgreSQL) or REDIS_URL (channels-redis) to use those instead.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd testproject
../.venv/bin/python manage.py migrate --no-input
../.venv/bin/python manage.py seed_articles
exec ../.venv/bin/python manage.py runserver "127.0.0.1:${PORT:-8000}"
