"""ASGI application the end-to-end tests serve with a real server (daphne) on 127.0.0.1."""

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.core.asgi import get_asgi_application
from django.test import override_settings

http = get_asgi_application()

from django_channels_router import security  # noqa: E402
from tests.routing import websocket_urlpatterns  # noqa: E402  (needs the app registry)

application = ProtocolTypeRouter({"http": http, "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns))})


def _hide_send(app):
    """The application behind a middleware that wraps ``send`` in a closure, as many do: the
    router cannot find the server through it."""

    async def wrapped(scope, receive, send):
        async def send_through(message):
            await send(message)

        return await app(scope, receive, send_through)

    return wrapped


hidden_send_application = _hide_send(application)



def _validated(validator):
    """The application behind ``validator``, the standard Channels way, built with
    ``ALLOWED_HOSTS = ["127.0.0.1"]`` (a project's, not the suite's ``*``)."""
    with override_settings(ALLOWED_HOSTS=["127.0.0.1"]):
        return ProtocolTypeRouter({"http": http, "websocket": validator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))})


#: Channels' own validator, as a new project has it.
validated_application = _validated(AllowedHostsOriginValidator)
#: The router's drop-in, which logs the handshakes it refuses.
logged_validated_application = _validated(security.AllowedHostsOriginValidator)
