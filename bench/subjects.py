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
