"""Ready-made model routers, as DRF's ``ModelViewSet`` and ``ReadOnlyModelViewSet``."""

from __future__ import annotations

from .generics import GenericSocketRouter
from .mixins import CreateModelMixin, DeleteModelMixin, GetModelMixin, ListModelMixin, UpdateModelMixin

__all__ = ["ModelSocketRouter", "ReadOnlyModelSocketRouter"]


class ReadOnlyModelSocketRouter(GetModelMixin, ListModelMixin, GenericSocketRouter):
    """Routes ``get`` and ``list``."""


class ModelSocketRouter(GetModelMixin, ListModelMixin, CreateModelMixin, UpdateModelMixin, DeleteModelMixin,
                        GenericSocketRouter):
    """Routes ``get``, ``list``, ``create``, ``update``, ``patch`` and ``delete``::

        class ArticleSocket(ModelSocketRouter):
            queryset = Article.objects.all()
            serializer_class = ArticleSerializer
            permission_classes = [IsAuthenticatedOrReadOnly]
    """
