from django.conf import settings
from django.db import models


class Note(models.Model):
    """An owned object, for object-permission and per-user queryset tests."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notes")
    title = models.CharField(max_length=100)
    body = models.TextField(blank=True)
    shared = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
