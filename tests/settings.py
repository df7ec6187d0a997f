"""Settings for the test suite.

Database: DATABASE_URL if set, else PostgreSQL's ``test`` database on 127.0.0.1:5432 when it is
reachable, else SQLite in memory. Channel layer: channels-redis on REDIS_URL if set, else the
in-memory layer (the tests that need Redis, across processes, use 127.0.0.1:6379 themselves).
"""

import json
import os
import socket

import dj_database_url


def _reachable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "rest_framework.authtoken",
    "channels",
    "django_channels_router",
    "drf_bridge",
    "demo",
    "tests",
]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware",
              "django.contrib.auth.middleware.AuthenticationMiddleware"]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
STATIC_URL = "static/"
ROOT_URLCONF = "tests.urls"
ASGI_APPLICATION = "tests.asgi.application"
# The suite runs on PostgreSQL when one is reachable on 127.0.0.1 (as users deploy), else on
# SQLite; DATABASE_URL chooses explicitly (DATABASE_URL=sqlite://:memory: forces SQLite).
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
elif _reachable(5432):
    DATABASES = {"default": dj_database_url.parse("postgresql://postgres@127.0.0.1:5432/test")}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", "tests.backends.OwnerObjectPermissionBackend",
                           "django.contrib.auth.backends.RemoteUserBackend"]  # for DRF's RemoteUserAuthentication
CHANNEL_LAYERS = {
    "default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                # socket_timeout above channels-redis' 5 s blocking receive, as README.md says.
                "CONFIG": {"hosts": [{"address": os.environ["REDIS_URL"], "socket_timeout": 10}],
                           "prefix": os.environ.get("CHANNELS_REDIS_PREFIX", "asgi")}}
    if os.environ.get("REDIS_URL") else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django_channels_router": {"level": "DEBUG"}},
}
# tests.consumers declares a route without a handler on purpose (to test the 501 reply).
SILENCED_SYSTEM_CHECKS = ["channels_router.E001"]
# A server process a test starts may get limits of its own (JSON), e.g. the memory bound tests.
CHANNELS_ROUTER = json.loads(os.environ.get("TESTS_CHANNELS_ROUTER", "{}"))
