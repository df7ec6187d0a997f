"""DRF pieces shared by the bridge tests: serializers, model routers, and the HTTP reference views."""

from channels.db import database_sync_to_async
from rest_framework import filters, pagination, permissions, serializers, throttling, viewsets

from demo.models import Article
from demo.serializers import ArticleSerializer
from django_channels_router.access import is_staff
from drf_bridge import GenericSocketRouter, GetModelMixin, ModelSocketRouter, ReadOnlyModelSocketRouter, socket_route
from tests.models import Note


class NoteSerializer(serializers.ModelSerializer):
    owner = serializers.HiddenField(default=serializers.CurrentUserDefault())
    owner_name = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = Note
        fields = ["id", "title", "body", "shared", "owner", "owner_name"]


class StrictArticleSerializer(ArticleSerializer):
    def validate_title(self, value):
        if value.lower() == "forbidden":
            raise serializers.ValidationError("This title is not allowed.")
        return value


class ArticleRouter(ModelSocketRouter):
    queryset = Article.objects.all()
    serializer_class = StrictArticleSerializer
    permission_classes = [permissions.AllowAny]

    @socket_route(detail=True, method="POST")
    def shout(self, article, headers):
        article.title = article.title.upper()
        article.save()
        return {"payload": article}

    @socket_route("count", method="GET")
    def count_articles(self, payload, headers):
        return {"payload": {"count": self.get_queryset().count()}}


class LargeArticleRouter(ArticleRouter):
    """Subscriptions whose pushes can be larger than a server sends (the refused-frame tests)."""

    @socket_route("writeLarge", method="POST")
    def write_large(self, payload, headers):
        Article.objects.create(title="large", body="x" * payload)
        return {"status": 204}


class ArticleViewSet(viewsets.ModelViewSet):
    """The same endpoint over HTTP: the reference for status codes and error bodies."""

    queryset = Article.objects.all()
    serializer_class = StrictArticleSerializer
    permission_classes = [permissions.AllowAny]
    authentication_classes = []


class NoteRouter(ModelSocketRouter):
    """Each user sees and changes only their own notes, plus shared ones read-only."""

    serializer_class = NoteSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self):
        return Note.objects.filter(owner=self.request.user)


class IsOwnerOrReadOnly(permissions.BasePermission):
    message = "Only the owner may change this note."

    def has_object_permission(self, request, view, obj):
        return request.method in permissions.SAFE_METHODS or obj.owner == request.user


class SharedNoteRouter(ModelSocketRouter):
    """All notes visible; object permission decides who may change one."""

    queryset = Note.objects.all()
    serializer_class = NoteSerializer
    permission_classes = [permissions.IsAuthenticated, IsOwnerOrReadOnly]


class PagedArticleRouter(ReadOnlyModelSocketRouter):
    queryset = Article.objects.all()
    serializer_class = ArticleSerializer
    permission_classes = [permissions.AllowAny]
    pagination_class = type("TwoPerPage", (pagination.PageNumberPagination,), {"page_size": 2})
    filter_backends = [filters.SearchFilter, filters.OrderingFilter]
    search_fields = ["title"]
    ordering_fields = ["id", "title"]


class BurstThrottle(throttling.AnonRateThrottle):
    rate = "2/min"
    scope = "socket-test"


class ThrottledRouter(ReadOnlyModelSocketRouter):
    queryset = Article.objects.all()
    serializer_class = ArticleSerializer
    permission_classes = [permissions.AllowAny]
    throttle_classes = [BurstThrottle]


class AdminOnlyBase(GenericSocketRouter):
    permission_classes = [permissions.IsAdminUser]


class AdminOnlyGet(GetModelMixin, AdminOnlyBase):
    """A mixin added on top keeps the base's permission_classes."""

    queryset = Article.objects.all()
    serializer_class = ArticleSerializer


class UserBurstThrottle(throttling.UserRateThrottle):
    rate = "6/min"
    scope = "socket-user-test"


class ActiveArticleRouter(ModelSocketRouter):
    """The README's ``AdminSocket`` access checks on a model router, under DRF permissions and
    throttles: ``check_access`` and the route's ``access`` run after DRF's checks."""

    queryset = Article.objects.all()
    serializer_class = ArticleSerializer
    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [UserBurstThrottle]
    routes = [{"route": "stats", "method": "GET", "access": is_staff}]
    seen: list = []  # what check_access saw, in order

    def check_access(self, route, headers, payload):
        self.seen.append((route.name, self.request.method, self.request.user.username))
        return getattr(self.user, "is_active", False)

    def on_stats(self, payload, headers):
        return {"payload": {"articles": self.get_queryset().count()}}


class AsyncActiveArticleRouter(ActiveArticleRouter):
    """The same, with an async ``check_access`` (sync and async steps then run one by one)."""

    async def check_access(self, route, headers, payload):
        return ActiveArticleRouter.check_access(self, route, headers, payload)


class TitleSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=20)


class RetitleRouter(ArticleRouter):
    """Detail routes that declare a ``request``: the object is looked up before the payload is
    validated, in each way a detail route can be served."""

    @socket_route(detail=True, method="POST", request=TitleSerializer)
    def retitle(self, article, headers):  # a sync write: hydrate and handler in one transaction
        return self.retitled(article)

    @socket_route(detail=True, method="GET", request=TitleSerializer)
    def peek(self, article, headers):  # a read: hydrate is a step of its own
        return {"payload": {"id": article.pk, "asked": self.request.query_params["title"]}}

    @socket_route(detail=True, method="POST", request=TitleSerializer)
    async def retitle_async(self, article, headers):  # an async handler: no transaction
        return await database_sync_to_async(self.retitled)(article)

    @socket_route(detail=True, method="POST", request=TitleSerializer, hydrate="load_async")
    def retitle_loaded(self, article, headers):  # an async hydrate of its own
        return self.retitled(article)

    async def load_async(self, headers, payload):
        return await database_sync_to_async(self.hydrate_object)(headers, payload)

    def retitled(self, article):
        article.title = self.request.data["title"]
        article.save()
        return {"payload": article}
