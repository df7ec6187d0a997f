from django.urls import path

from tests.consumers import AsyncProtocolSocket, PrivateSocket, StaffOnlyAsyncSocket, SyncProtocolSocket

websocket_urlpatterns = [
    path("ws/sync/", SyncProtocolSocket.as_asgi()),
    path("ws/async/", AsyncProtocolSocket.as_asgi()),
    path("ws/private/", PrivateSocket.as_asgi()),
    path("ws/staff/", StaffOnlyAsyncSocket.as_asgi()),
]
