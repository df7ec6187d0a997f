"""``path("socket-docs/", include("django_channels_router.urls"))``: the docs page, its schema and,
while ``DEBUG`` is on, its own files (``assets/``: development needs no static files setup)."""

from django.urls import path

from .contract import views

app_name = "django_channels_router"

urlpatterns = [
    path("", views.docs, name="docs"),
    path("asyncapi.json", views.schema, {"fmt": "json"}, name="schema-json"),
    path("asyncapi.yaml", views.schema, {"fmt": "yaml"}, name="schema-yaml"),
    path("assets/<str:name>", views.asset, name="asset"),
]
