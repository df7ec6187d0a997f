"""Routers for the security tests served through real servers (tests/test_security.py)."""

from django.db.models import Q
from rest_framework import authentication, permissions, serializers

from demo.models import Article
from drf_bridge import ModelSocketRouter, socket_route

#: Every header a message may not set, and how each shows in ``request.META``.
GUARDED_HEADERS = ["Host", "Cookie", "Origin", "Forwarded", "X-Real-IP", "X-Client-IP", "True-Client-IP",
                   "CF-Connecting-IP", "Remote-User", "X-Remote-User", "X-Auth-User", "X-Authenticated-User",
                   "X-Auth-Request-User", "X-Auth-Request-Email", "Content-Length", "Content-Type", "Connection",
                   "Upgrade", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-User",
                   "Sec-WebSocket-Key"]


class ProxyRemoteUser(authentication.RemoteUserAuthentication):
    """The user a trusted proxy names in ``X-Remote-User`` (DRF's own class, Django's backend)."""

    header = "HTTP_X_REMOTE_USER"


class HeadersRouter(ModelSocketRouter):
    queryset = Article.objects.all()
    serializer_class = serializers.Serializer
    authentication_classes = [ProxyRemoteUser]
    permission_classes = [permissions.AllowAny]

    @socket_route("whoami", method="GET")
    def whoami(self, payload, headers):
        meta = {key: value for key, value in self.request.META.items() if isinstance(value, str)}
        return {"payload": {"user": self.request.user.username or None, "meta": meta}}


def tenant_of(request):
    """Where the tenant comes from is the URL's ``source``: the handshake's host, a cookie, the
    session or a handshake header. Message headers and query are in the sharing key already."""
    source = request.kwargs["source"]
    if source == "host":
        return request.get_host().split(":")[0]
    if source == "cookie":
        return request.COOKIES.get("tenant", "")
    if source == "session":
        return request.session.get("tenant", "")
    return request.META.get("HTTP_X_TENANT", "")


class TenantArticleSerializer(serializers.ModelSerializer):
    viewer = serializers.SerializerMethodField()

    class Meta:
        model = Article
        fields = ["id", "title", "viewer"]

    def get_viewer(self, article):
        return tenant_of(self.context["request"])


class TenantArticleRouter(ModelSocketRouter):
    """Articles titled ``<tenant>:...`` belong to that tenant; ``public:...`` ones to everyone."""

    serializer_class = TenantArticleSerializer
    permission_classes = [permissions.AllowAny]

    def get_queryset(self):
        tenant = tenant_of(self.request)
        return Article.objects.filter(Q(title__startswith=f"{tenant}:") | Q(title__startswith="public:"))
