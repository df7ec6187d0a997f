"""Settings for the django-channels-router demo project.

Development defaults throughout; every value that differs in a deployment comes from the
environment: DJANGO_DEBUG, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, DATABASE_URL, REDIS_URL,
ROUTER_LOG_LEVEL, DJANGO_STATIC_URL.
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-demo-only-do-not-deploy")

# AllowedHostsOriginValidator (asgi.py) checks a WebSocket's Origin header against this list
# too, so a host missing here gets its socket handshakes refused with 403.
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"] + [
    host.strip() for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if host.strip()
]

INSTALLED_APPS = [
    # First, so that `manage.py runserver` is daphne's ASGI server (HTTP and WebSockets)
    # instead of Django's WSGI one.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "channels",
    # Optional for the router itself; installed, it adds system checks of the route tables.
    "django_channels_router",
    "drf_bridge",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "testproject.asgi.application"

if "DATABASE_URL" in os.environ:
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}

# The in-memory layer only reaches consumers of the same process; use Redis as soon as
# there is more than one server process (or for group broadcasts across workers).
if "REDIS_URL" in os.environ:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # Reads may wait longer than channels-redis' 5 s blocking receive (redis-py 8 gives up after 5 s).
            "CONFIG": {"hosts": [{"address": os.environ["REDIS_URL"], "socket_timeout": 10}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# runserver serves these from each app's static/ folder while DEBUG is on (and STATIC_URL is a
# path; a CDN's URL, e.g. //cdn.example.com/static/, is for collectstatic's output).
STATIC_URL = os.environ.get("DJANGO_STATIC_URL", "static/")
STATIC_ROOT = BASE_DIR / "staticfiles"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# /socket-docs/ (the sockets' docs and live console): anyone may see it while DEBUG is on, as this
# demo runs on 127.0.0.1; staff only otherwise. Log-ins go through the admin's page.
CHANNELS_ROUTER = {"DOCS_ACCESS": "public" if DEBUG else "staff"}
LOGIN_URL = "admin:login"

# The router logs handler exceptions (with tracebacks) as ERROR, and one line per request
# (route, uuid, status, duration) at DEBUG: the demo shows the traffic by default; ROUTER_LOG_LEVEL=ERROR quiets it.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django_channels_router": {
            "handlers": ["console"],
            "level": os.environ.get("ROUTER_LOG_LEVEL", "DEBUG").upper(),
            "propagate": False,
        },
    },
}
