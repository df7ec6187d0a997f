"""Ready-made model routers, as DRF's ``ModelViewSet`` and ``ReadOnlyModelViewSet``."""

from __future__ import annotations

from .generics import GenericSocketRouter
from .mixins import CreateModelMixin, DeleteModelMixin, GetModelMixin, ListModelMixin, UpdateModelMixin
from .subscriptions import SubscribeModelMixin

__all__ = ["ModelSocketRouter", "ReadOnlyModelSocketRouter"]


class ReadOnlyModelSocketRouter(GetModelMixin, ListModelMixin, SubscribeModelMixin, GenericSocketRouter):
    """Routes ``get``, ``list``, ``subscribe`` and ``unsubscribe``."""


class ModelSocketRouter(GetModelMixin, ListModelMixin, CreateModelMixin, UpdateModelMixin, DeleteModelMixin,
                        SubscribeModelMixin, GenericSocketRouter):
    """Routes ``get``, ``list``, ``create``, ``update``, ``patch``, ``delete``, ``subscribe`` and
    ``unsubscribe``::

        class ArticleSocket(ModelSocketRouter):
            queryset = Article.objects.all()
            serializer_class = ArticleSerializer
            permission_classes = [IsAuthenticatedOrReadOnly]
    """
