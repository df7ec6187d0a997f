"""Settings for the benchmarks: SQLite in a temporary file (or BENCH_DATABASE_URL), in-memory channel layer
(or channels-redis on BENCH_REDIS_URL)."""

import os

import dj_database_url

SECRET_KEY = "bench-only"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "channels",
    "django_channels_router",
    "drf_bridge",
    "demo",
]
# Persistent connections (as in production), the same for every subject. SQLite in WAL mode
# with synchronous=NORMAL, as it is run in production, so a commit costs no disk flush whose
# time varies from one write to the next; BENCH_DATABASE_URL=postgresql://... measures on PostgreSQL.
if os.environ.get("BENCH_DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["BENCH_DATABASE_URL"], conn_max_age=600)}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                             "NAME": os.environ.get("BENCH_DATABASE", ":memory:"), "CONN_MAX_AGE": 600,
                             "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}}}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 10_000}}}
if os.environ.get("BENCH_REDIS_URL"):  # several processes (fanout.py --server): channels-redis, as deployed
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {
        "hosts": [os.environ["BENCH_REDIS_URL"]], "prefix": os.environ.get("BENCH_REDIS_PREFIX", "bench")}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
ROOT_URLCONF = "bench.urls"
ALLOWED_HOSTS = ["testserver", "127.0.0.1"]
if os.environ.get("BENCH_WORKER_THREADS"):
    CHANNELS_ROUTER = {"WORKER_THREADS": int(os.environ["BENCH_WORKER_THREADS"])}
