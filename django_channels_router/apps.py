from django.apps import AppConfig


class ChannelsRouterConfig(AppConfig):
    """Adding the app to ``INSTALLED_APPS`` turns on the route system checks, and holds the table of
    idempotency keys (``manage.py migrate`` creates it) that routes taking ``idempotency-key`` need."""

    name = "django_channels_router"
    verbose_name = "Channels router"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
