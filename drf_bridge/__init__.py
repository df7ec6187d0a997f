"""Django REST framework over django-channels-router: model routes from serializers and querysets."""

try:
    import rest_framework  # noqa: F401
except ModuleNotFoundError as exc:
    if exc.name != "rest_framework":
        raise
    raise ImportError("drf_bridge needs Django REST framework: pip install 'django-channels-router[drf]'") from exc

from django_channels_router import __version__

from .decorators import socket_route
from .generics import GenericSocketRouter
from .mixins import CreateModelMixin, DeleteModelMixin, GetModelMixin, ListModelMixin, UpdateModelMixin
from .request import SocketRequest
from .routers import ModelSocketRouter, ReadOnlyModelSocketRouter
from .subscriptions import SubscribeModelMixin, notify_change

__all__ = [
    "__version__",
    "CreateModelMixin",
    "DeleteModelMixin",
    "GenericSocketRouter",
    "GetModelMixin",
    "ListModelMixin",
    "ModelSocketRouter",
    "ReadOnlyModelSocketRouter",
    "SocketRequest",
    "SubscribeModelMixin",
    "UpdateModelMixin",
    "notify_change",
    "socket_route",
]
