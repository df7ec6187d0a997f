"""Settings for the benchmarks: SQLite in a temporary file, in-memory channel layer."""

import os

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
# Persistent connections (as in production), the same for every subject.
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("BENCH_DATABASE", ":memory:"),
                         "CONN_MAX_AGE": 600}}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 10_000}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
ROOT_URLCONF = "bench.urls"
ALLOWED_HOSTS = ["testserver"]
