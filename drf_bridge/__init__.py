"""Django REST framework over django-channels-router: model routes from serializers and querysets."""

from .decorators import socket_route
from .generics import GenericSocketRouter
from .mixins import CreateModelMixin, DeleteModelMixin, GetModelMixin, ListModelMixin, UpdateModelMixin
from .request import SocketRequest
from .routers import ModelSocketRouter, ReadOnlyModelSocketRouter
from .subscriptions import SubscribeModelMixin, notify_change

__all__ = [
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
