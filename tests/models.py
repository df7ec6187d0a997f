from django.conf import settings
from django.db import models

from demo.models import Article


class Note(models.Model):
    """An owned object, for object-permission and per-user queryset tests."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notes")
    title = models.CharField(max_length=100)
    body = models.TextField(blank=True)
    shared = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]


class ArticleProxy(Article):
    """Saves through a proxy must reach subscribers of the concrete model."""

    class Meta:
        proxy = True
