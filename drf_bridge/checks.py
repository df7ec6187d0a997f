"""``manage.py check`` for the bridge: subscriptions that cannot hear of changes, and model
routers whose overrides would skip DRF's checks."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from types import CodeType
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks

from django_channels_router.routes import subclasses

from .changes import discover_subscribed_models, subscribed_models
from .generics import GenericSocketRouter

__all__ = ["check_request_steps", "check_subscriptions", "check_subscriptions_deploy"]

#: The bridge's steps that every request runs before ``check_access``: an override that does not
#: call the bridge's own runs no DRF authentication, permission or throttle check.
STEPS = ("prepare_request", "initial")


def check_request_steps(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``drf_bridge.E002`` for each router that overrides a step without calling ``super()``'s."""
    discover_subscribed_models()  # imports ASGI_APPLICATION, so that every router class exists
    errors: list[checks.CheckMessage] = []
    for cls in subclasses(GenericSocketRouter):
        for step in STEPS:
            override = vars(cls).get(step)
            if override is not None and not _calls(override, step):
                errors.append(checks.Error(
                    f"{cls.__module__}.{cls.__qualname__}.{step}() does not call super().{step}(): "
                    "DRF authentication, permissions and throttles are not checked on its routes.",
                    hint=f"Call super().{step}(...) in the override (your own checks go in check_access(), "
                         "or before or after the call); silence drf_bridge.E002 only if it runs them itself.",
                    obj=cls, id="drf_bridge.E002"))
    return errors


def check_subscriptions(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Subscriptions hear of changes through the app's signal receivers and the channel layer:
    ``drf_bridge.E001`` without the app, ``drf_bridge.W001`` without a default layer (no push at
    all). The in-memory layer is right for one process (``runserver``, one daphne): it is only
    flagged by ``check --deploy`` (``drf_bridge.W002``), as several processes need channels-redis."""
    discover_subscribed_models()
    if not subscribed_models:
        return []
    if not apps.is_installed("drf_bridge"):
        return [checks.Error("Model subscriptions are served, but 'drf_bridge' is not in INSTALLED_APPS, "
                             "so no change is ever pushed.", hint="Add 'drf_bridge' to INSTALLED_APPS.",
                             id="drf_bridge.E001")]
    if not _default_layer_backend():
        return [checks.Warning("Model subscriptions are served, but settings.CHANNEL_LAYERS has no 'default' "
                               "layer: subscribe is refused and no change is pushed.",
                               hint='For one process, CHANNEL_LAYERS = {"default": {"BACKEND": '
                                    '"channels.layers.InMemoryChannelLayer"}}; for several, '
                                    "channels_redis.core.RedisChannelLayer.", id="drf_bridge.W001")]
    return []


def check_subscriptions_deploy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``check --deploy``: in production, changes come from other processes (other servers,
    ``manage.py shell``, task workers), which the in-memory layer does not reach."""
    discover_subscribed_models()
    if subscribed_models and _default_layer_backend().endswith("InMemoryChannelLayer"):
        return [checks.Warning("Model subscriptions run on the in-memory channel layer: changes made by other "
                               "processes (other servers, manage.py shell, task workers) are not pushed.",
                               hint="Use channels_redis.core.RedisChannelLayer when more than one process "
                                    "serves or changes the models.", id="drf_bridge.W002")]
    return []


def _default_layer_backend() -> str:
    return str((getattr(settings, "CHANNEL_LAYERS", None) or {}).get("default", {}).get("BACKEND", ""))


def _calls(override: Any, name: str) -> bool:
    """Whether the function reads an attribute ``name`` (``super().name``, ``Base.name``) anywhere
    in its code. Not a function (a callable object): assumed to, as its code cannot be read."""
    function = inspect.unwrap(getattr(override, "__func__", override))
    code = getattr(function, "__code__", None)
    return code is None or any(name in names for names in _names(code))


def _names(code: CodeType) -> Iterator[tuple[str, ...]]:
    """The names the code object reads, and those of the functions and lambdas it defines."""
    yield code.co_names
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield from _names(constant)
