"""ASGI application the end-to-end tests serve with a real server (daphne) on 127.0.0.1."""

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

http = get_asgi_application()

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
