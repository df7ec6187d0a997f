from django.apps import AppConfig


class ChannelsRouterConfig(AppConfig):
    """Optional: adding the app to ``INSTALLED_APPS`` turns on the route system checks."""

    name = "django_channels_router"
    verbose_name = "Channels router"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
