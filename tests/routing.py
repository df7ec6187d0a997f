from django.urls import path

from tests.consumers import AsyncProtocolSocket, SyncProtocolSocket

websocket_urlpatterns = [
    path("ws/sync/", SyncProtocolSocket.as_asgi()),
    path("ws/async/", AsyncProtocolSocket.as_asgi()),
]
