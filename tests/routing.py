from django.urls import path

from tests.consumers import (
    AsyncDefaultLimitsSocket,
    AsyncProtocolSocket,
    BusyFirst,
    DefaultLimitsSocket,
    ImpatientAsyncSocket,
    ImpatientSyncSocket,
    PrivateSocket,
    SerialSyncSocket,
    StaffOnlyAsyncSocket,
    SyncProtocolSocket,
    TimedDefaultLimitsSocket,
    close_at_once,
)
from tests.drf import ArticleRouter, LargeArticleRouter
from tests.idempotent import IdempotentArticleRouter
from tests.security import HeadersRouter, TenantArticleRouter

websocket_urlpatterns = [
    path("ws/sync/", SyncProtocolSocket.as_asgi()),
    path("ws/sync/serial/", SerialSyncSocket.as_asgi()),
    path("ws/async/", AsyncProtocolSocket.as_asgi()),
    path("ws/private/", PrivateSocket.as_asgi()),
    path("ws/staff/", StaffOnlyAsyncSocket.as_asgi()),
    path("ws/limits/sync/", DefaultLimitsSocket.as_asgi()),
    path("ws/limits/async/", AsyncDefaultLimitsSocket.as_asgi()),
    path("ws/limits/timed/", TimedDefaultLimitsSocket.as_asgi()),
    path("ws/headers/", HeadersRouter.as_asgi()),
    path("ws/articles/", ArticleRouter.as_asgi()),
    path("ws/articles/large/", LargeArticleRouter.as_asgi()),
    path("ws/articles/idempotent/", IdempotentArticleRouter.as_asgi()),
    path("ws/impatient/sync/", ImpatientSyncSocket.as_asgi()),
    path("ws/impatient/async/", ImpatientAsyncSocket.as_asgi()),
    path("ws/tenant/<str:source>/", TenantArticleRouter.as_asgi()),
    path("ws/closing/", close_at_once),
    path("ws/busy/", BusyFirst()),
]
