from django.apps import AppConfig


class DrfBridgeConfig(AppConfig):
    """Installed, the bridge pushes model changes made by any process of the project (a view,
    a shell, a task worker), not only by the consumers."""

    name = "drf_bridge"
    verbose_name = "DRF bridge for django-channels-router"

    def ready(self) -> None:
        from django.core import checks

        import django_channels_router.checks  # noqa: F401  (the router's checks, with the bridge alone installed too)

        from .changes import connect_signals
        from .checks import check_request_steps, check_subscriptions, check_subscriptions_deploy

        connect_signals()
        checks.register(check_request_steps)
        checks.register(check_subscriptions)
        checks.register(check_subscriptions_deploy, deploy=True)
