"""The benchmark subjects behind one ASGI application, for bench/server.py."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from bench.subjects import SUBJECTS  # noqa: E402

application = ProtocolTypeRouter({
    "http": http,
    "websocket": URLRouter([path(f"ws/{name}/", consumer.as_asgi()) for name, consumer in SUBJECTS.items()]),
})
