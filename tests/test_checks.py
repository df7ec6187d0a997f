"""Every system check of both packages fires on a representative mistake and says how to fix it."""

import gc
import os
import re
import subprocess
import sys

import pytest
from django.core import checks
from django.test import modify_settings, override_settings

from tests.conftest import ROOT, SERVER_ENV

PACKAGES = ("django_channels_router", "drf_bridge")
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# socket_timeout 5: not longer than channels-redis' 5 s blocking receive (no connection is made).
SHORT_TIMEOUT = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                             "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:6379/0", "socket_timeout": 5}]}}}

# One bad configuration per group of checks: settings to override, settings to modify.
MISTAKES = [
    ({"CHANNELS_ROUTER": {"MAX_MESSAGE_BYTES": 0}}, {}),
    ({"ASGI_APPLICATION": "no_such_project.asgi.application"}, {}),
    ({"CHANNEL_LAYERS": SHORT_TIMEOUT}, {}),
    ({"CHANNEL_LAYERS": {}}, {}),
    ({"CHANNEL_LAYERS": IN_MEMORY}, {}),  # W002: a deployment check
    ({}, {"INSTALLED_APPS": {"remove": ["drf_bridge"]}}),
    ({}, {"INSTALLED_APPS": {"remove": ["django_channels_router"]}}),  # E011: routes that take idempotency-key
    ({}, {}),  # the broken classes below
]


def declared_ids():
    """Every check id the packages' code constructs (``id="drf_bridge.W001"``)."""
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found |= set(re.findall(r'\bid="((?:channels_router|drf_bridge)\.[EWIC]\d{3})"', path.read_text()))
    return found


@pytest.mark.django_db
def test_every_check_fires_on_a_mistake_and_has_a_hint():
    from django_channels_router import SocketRouterConsumer
    from tests.drf import ArticleRouter

    class Broken(SocketRouterConsumer):
        routes = [{"route": "noHandler"}, {"route": "badHydrate", "hydrate": 42, "handler": "ok"},
                  {"route": "bad name", "handler": "ok"}, {"route": "badRequest", "request": 42, "handler": "ok"}]

        def ok(self, payload, headers):
            return {}

    class SkipsInitial(ArticleRouter):
        def initial(self, request):
            pass

    fired = {}
    try:
        for overrides, modifications in MISTAKES:
            with override_settings(SILENCED_SYSTEM_CHECKS=[], **overrides), modify_settings(**modifications):
                for message in checks.run_checks(include_deployment_checks=True):
                    if message.id.split(".")[0] in {"channels_router", "drf_bridge"}:
                        fired.setdefault(message.id, message)
    finally:
        del Broken, SkipsInitial
        gc.collect()  # later checks in this process must not find the classes
    assert declared_ids() and set(fired) == declared_ids()
    assert not {id: message.msg for id, message in fired.items() if not (message.hint or "").strip()}


def test_with_only_the_bridge_installed_the_routers_checks_run_too(tmp_path):
    """The bridge alone in INSTALLED_APPS loads the router's checks: a route without a handler is
    reported (in a process of its own: here the router's app has loaded them already)."""
    (tmp_path / "bridge_only.py").write_text(
        "from tests.settings import *\n"
        "INSTALLED_APPS = [app for app in INSTALLED_APPS if app != 'django_channels_router']\n"
        "SILENCED_SYSTEM_CHECKS = []\n")
    env = {**SERVER_ENV, "PYTHONPATH": f"{tmp_path}{os.pathsep}{SERVER_ENV['PYTHONPATH']}",
           "DJANGO_SETTINGS_MODULE": "bridge_only", "DATABASE_URL": "sqlite://:memory:"}
    done = subprocess.run([sys.executable, "-m", "django", "check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert "channels_router.E001" in done.stderr, done.stderr[-2000:]
