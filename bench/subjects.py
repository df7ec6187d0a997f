"""The benchmark subjects: the same envelope and the same model, served four ways."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from rest_framework import permissions, viewsets

from demo.models import Article
from demo.serializers import ArticleSerializer
from django_channels_router import AsyncSocketRouterConsumer
from drf_bridge import ModelSocketRouter

try:
    from djangochannelsrestframework import mixins as dcrf_mixins
    from djangochannelsrestframework.generics import GenericAsyncAPIConsumer
except ImportError:  # the peer is a benchmark-only dependency: its rows are left out
    GenericAsyncAPIConsumer = None


class HandWrittenEcho(AsyncJsonWebsocketConsumer):
    """What a user writes by hand for the same envelope."""

    async def receive_json(self, content, **kwargs):
        await self.send_json({"uuid": content["uuid"], "route": content["route"], "status": 200,
                              "headers": None, "payload": content.get("payload")})


class RouterEcho(AsyncSocketRouterConsumer):
    routes = [{"route": "echo"}]

    async def on_echo(self, payload, headers):
        return {"payload": payload}


class RouterArticles(ModelSocketRouter):
    queryset = Article.objects.all()
    serializer_class = ArticleSerializer
    permission_classes = [permissions.AllowAny]


PeerArticles = None
if GenericAsyncAPIConsumer is not None:
    class PeerArticles(dcrf_mixins.RetrieveModelMixin, dcrf_mixins.CreateModelMixin, GenericAsyncAPIConsumer):
        queryset = Article.objects.all()
        serializer_class = ArticleSerializer
        permission_classes = [permissions.AllowAny]


class ArticleViewSet(viewsets.ModelViewSet):
    queryset = Article.objects.all()
    serializer_class = ArticleSerializer
    permission_classes = [permissions.AllowAny]
    authentication_classes = []



SUBJECTS = {"hand": HandWrittenEcho, "router": RouterEcho, "model": RouterArticles}
if PeerArticles is not None:
    SUBJECTS["peer"] = PeerArticles


def cases(article_pk):
    """``(call, subject, SUBJECTS key, messages)`` for every WebSocket row, the same in every benchmark."""
    echo = [{"uuid": f"u{i}", "route": "echo", "headers": {}, "payload": {"n": i}, "status": 200} for i in range(100)]
    get = [{"uuid": f"g{i}", "route": "get", "headers": {"id": article_pk}, "payload": None} for i in range(100)]
    create = [{"uuid": f"c{i}", "route": "create", "headers": {}, "payload": {"title": f"t{i}"}} for i in range(100)]
    rows = [("echo", "hand-written AsyncJsonWebsocketConsumer", "hand", echo),
            ("echo", "router (AsyncSocketRouterConsumer)", "router", echo),
            ("get", "router (ModelSocketRouter)", "model", get),
            ("create", "router (ModelSocketRouter)", "model", create)]
    if "peer" in SUBJECTS:
        rows += [("get", "djangochannelsrestframework", "peer",
                  [{"action": "retrieve", "request_id": i, "pk": article_pk} for i in range(100)]),
                 ("create", "djangochannelsrestframework", "peer",
                  [{"action": "create", "request_id": i, "data": {"title": f"t{i}"}} for i in range(100)])]
    return rows
