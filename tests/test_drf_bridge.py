"""drf_bridge: model routes from DRF serializers, querysets, permissions and authentication."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.test import override_settings
from rest_framework import permissions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from demo.models import Article
from django_channels_router.testing import RouterCommunicator
from drf_bridge import ModelSocketRouter, socket_route
from tests.drf import (
    ActiveArticleRouter,
    AdminOnlyGet,
    ArticleRouter,
    AsyncActiveArticleRouter,
    NoteRouter,
    NoteSerializer,
    PagedArticleRouter,
    RetitleRouter,
    SharedNoteRouter,
    ThrottledRouter,
)
from tests.factories import ArticleFactory, NoteFactory, UserFactory
from tests.models import Note

pytestmark = pytest.mark.django_db(transaction=True)
db = database_sync_to_async


async def connect(router, user=None, scope_user=True):
    comm = RouterCommunicator(router.as_asgi(), "/ws/", user=user)
    if user is None and scope_user:
        comm.scope["user"] = AnonymousUser()
    assert (await comm.connect())[0]
    return comm


async def one_request(router, route, payload=None, headers=None, user=None):
    comm = await connect(router, user)
    reply = await comm.request(route, payload, headers)
    await comm.disconnect()
    return reply


def router_with(*permission_classes, **attributes):
    return type("Router", (ModelSocketRouter,), {
        "queryset": Article.objects.all(), "serializer_class": ArticleRouter.serializer_class,
        "permission_classes": list(permission_classes), **attributes})


# -- the six routes -------------------------------------------------------------------------

async def test_get_by_id_in_headers_or_payload():
    article = await db(ArticleFactory)(title="Hello")
    comm = await connect(ArticleRouter)
    by_header = await comm.request("get", None, {"id": article.pk})
    by_payload = await comm.request("get", {"id": str(article.pk)})
    assert by_header["status"] == by_payload["status"] == 200
    assert by_header["payload"] == by_payload["payload"]
    assert by_header["payload"]["title"] == "Hello" and by_header["payload"]["id"] == article.pk
    await comm.disconnect()


@pytest.mark.parametrize("route", ["get", "update", "patch", "delete", "shout"])
async def test_detail_routes_need_an_id(route):
    reply = await one_request(ArticleRouter, route, {"title": "x"})
    assert reply["status"] == 400 and reply["payload"]["code"] == "missing_id"
    assert 'headers["id"]' in reply["payload"]["detail"]


@pytest.mark.parametrize("lookup", [999_999, "999999", "abc", "1.5", "-1", True, [1], {"a": 1}, ""])
def test_unknown_or_malformed_id_is_404_as_over_http(lookup):
    ArticleFactory()
    reply = async_to_sync(one_request)(ArticleRouter, "get", None, {"id": lookup})
    assert reply["status"] == 404
    if isinstance(lookup, (str, int)) and lookup not in ("", "1.5"):  # ids DRF's URLs accept: the same body
        assert reply["payload"] == http_reply("GET", f"/articles/{lookup}/", ...)[1]
    else:
        assert reply["payload"] == {"detail": "Not found."}


async def test_list_create_update_patch_delete():
    comm = await connect(ArticleRouter)
    created = await comm.request("create", {"title": "First", "body": "b"})
    assert created["status"] == 201 and created["payload"]["title"] == "First"
    pk = created["payload"]["id"]

    updated = await comm.request("update", {"title": "Second"}, {"id": pk})
    assert updated["status"] == 200 and (updated["payload"]["title"], updated["payload"]["body"]) == ("Second", "b")

    patched = await comm.request("patch", {"body": "patched"}, {"id": pk})
    assert (patched["payload"]["title"], patched["payload"]["body"]) == ("Second", "patched")

    listed = await comm.request("list")
    assert [a["id"] for a in listed["payload"]] == [pk]

    deleted = await comm.request("delete", None, {"id": pk})
    assert (deleted["status"], deleted["payload"]) == (204, None)
    assert not await Article.objects.filter(pk=pk).aexists()
    assert (await comm.request("get", None, {"id": pk}))["status"] == 404
    await comm.disconnect()


async def test_read_only_router_has_only_get_list_and_subscriptions():
    assert list(PagedArticleRouter.route_table) == ["get", "list", "subscribe", "unsubscribe"]
    reply = await one_request(PagedArticleRouter, "create", {"title": "x"})
    assert (reply["status"], reply["payload"]["code"]) == (404, "route_not_found")


async def test_custom_routes_with_socket_route():
    article = await db(ArticleFactory)(title="quiet")
    comm = await connect(ArticleRouter)
    shouted = await comm.request("shout", None, {"id": article.pk})
    assert (shouted["status"], shouted["payload"]["title"]) == (200, "QUIET")
    assert (await comm.request("count"))["payload"] == {"count": 1}
    await comm.disconnect()


async def test_seed_style_handler_override_gets_the_instance():
    class Custom(ArticleRouter):
        def on_get(self, article, headers):
            return {"payload": {"upper": article.title.upper(), "lang": headers.get("lang")}}

    article = await db(ArticleFactory)(title="abc")
    reply = await one_request(Custom, "get", None, {"id": article.pk, "lang": "en"})
    assert reply["payload"] == {"upper": "ABC", "lang": "en"}


async def test_a_failing_write_is_rolled_back():
    class Failing(ArticleRouter):
        def perform_create(self, serializer):
            serializer.save()
            raise RuntimeError("after the insert")

    reply = await one_request(Failing, "create", {"title": "Never"})
    assert (reply["status"], reply["payload"]["code"]) == (500, "handler_error")
    assert not await Article.objects.filter(title="Never").aexists()


# -- the same 400 bodies as DRF over HTTP ---------------------------------------------------

def http_reply(method, path, body):
    client = APIClient()
    if body is ...:
        response = client.generic(method, path, "", content_type="application/json")
    else:
        response = client.generic(method, path, json.dumps(body), content_type="application/json")
    return response.status_code, response.json() if response.content else None


@pytest.mark.parametrize("body", [..., {}, {"title": ""}, {"title": None}, {"title": "x" * 201}, {"title": ["a"]},
                                  {"title": "forbidden"}, [], [{"title": "x"}], "text", 42, True])
def test_create_errors_equal_drf_over_http(body):
    status, data = http_reply("POST", "/articles/", body)
    reply = async_to_sync(one_request)(ArticleRouter, "create", None if body is ... else body)
    assert status == 400 and (reply["status"], reply["payload"]) == (status, data)
    assert Article.objects.count() == 0


@pytest.mark.parametrize("method, route, body", [
    ("PUT", "update", ...), ("PUT", "update", {}), ("PUT", "update", {"title": ""}), ("PUT", "update", [1]),
    ("PATCH", "patch", []), ("PATCH", "patch", {"title": ""}), ("PATCH", "patch", "text"), ("PATCH", "patch", {"title": "forbidden"}),
])
def test_update_errors_equal_drf_over_http(method, route, body):
    article = ArticleFactory(title="Keep")
    status, data = http_reply(method, f"/articles/{article.pk}/", body)
    payload = None if body is ... else body
    reply = async_to_sync(one_request)(ArticleRouter, route, payload, {"id": article.pk})
    assert status == 400 and (reply["status"], reply["payload"]) == (status, data)
    article.refresh_from_db()
    assert article.title == "Keep"


def test_not_found_body_equals_drf_over_http():
    status, data = http_reply("GET", "/articles/12345/", ...)
    reply = async_to_sync(one_request)(ArticleRouter, "get", None, {"id": 12345})
    assert (reply["status"], reply["payload"]) == (status, data) == (404, {"detail": "No Article matches the given query."})


# -- permissions: DRF's classes, unchanged --------------------------------------------------

@pytest.fixture
def article():
    return ArticleFactory(title="Existing")


def user_with(*codenames, **fields):
    return UserFactory(perms=list(codenames), **fields)


CALLS = {
    "get": (None, True), "list": (None, False), "create": ({"title": "New"}, False),
    "update": ({"title": "Put"}, True), "patch": ({"title": "Patched"}, True), "delete": (None, True),
}


def statuses(router, user, article):
    """The status of each of the six routes for this user."""
    async def run():
        comm = await connect(router, user)
        found = {}
        for route, (payload, detail) in CALLS.items():
            found[route] = (await comm.request(route, payload, {"id": article.pk} if detail else None))["status"]
        await comm.disconnect()
        return found
    return async_to_sync(run)()


def test_is_authenticated(article):
    assert set(statuses(router_with(permissions.IsAuthenticated), None, article).values()) == {401}
    assert statuses(router_with(permissions.IsAuthenticated), user_with(), article) == {
        "get": 200, "list": 200, "create": 201, "update": 200, "patch": 200, "delete": 204}


def test_is_admin_user(article):
    assert set(statuses(router_with(permissions.IsAdminUser), user_with(), article).values()) == {403}
    assert statuses(router_with(permissions.IsAdminUser), user_with(is_staff=True), article)["delete"] == 204


def test_is_authenticated_or_read_only(article):
    assert statuses(router_with(permissions.IsAuthenticatedOrReadOnly), None, article) == {
        "get": 200, "list": 200, "create": 401, "update": 401, "patch": 401, "delete": 401}


def test_anonymous_write_with_invalid_data_is_401_not_400():
    reply = async_to_sync(one_request)(router_with(permissions.IsAuthenticatedOrReadOnly), "create", {"title": ""})
    assert (reply["status"], reply["payload"]["code"]) == (401, "not_authenticated")


def test_a_scope_without_any_user_is_anonymous(article):
    async def run():
        comm = RouterCommunicator(router_with(permissions.IsAuthenticated).as_asgi(), "/ws/")
        await comm.connect()
        assert "user" not in comm.scope
        reply = await comm.request("get", None, {"id": article.pk})
        await comm.disconnect()
        return reply
    assert async_to_sync(run)()["status"] == 401


@pytest.mark.parametrize("codename, allowed", [
    ("add_article", {"create"}),
    ("change_article", {"update", "patch"}),
    ("delete_article", {"delete"}),
])
def test_django_model_permissions_ask_the_right_permission(article, codename, allowed):
    found = statuses(router_with(permissions.DjangoModelPermissions), user_with(codename), article)
    writes = {"create", "update", "patch", "delete"}
    assert {route for route in writes if found[route] in (200, 201, 204)} == allowed
    assert {found[route] for route in writes - allowed} == {403}
    assert found["get"] == found["list"] == 200


def test_django_object_permissions_ask_the_object():
    owner = user_with("change_note", "delete_note")
    other = user_with("change_note", "delete_note")
    note = NoteFactory(owner=owner, title="Mine")
    router = type("Notes", (ModelSocketRouter,), {
        "queryset": Note.objects.all(), "serializer_class": NoteSerializer,
        "permission_classes": [permissions.DjangoObjectPermissions]})

    async def run(user, route, payload=None):
        return await one_request(router, route, payload, {"id": note.pk}, user=user)

    assert async_to_sync(run)(other, "patch", {"title": "Theirs"})["status"] == 403
    assert async_to_sync(run)(other, "delete")["status"] == 403
    assert async_to_sync(run)(owner, "patch", {"title": "Still mine"})["status"] == 200
    note.refresh_from_db()
    assert note.title == "Still mine"


def test_has_object_permission_is_checked_on_every_object_route():
    owner, other = user_with(), user_with()
    note = NoteFactory(owner=owner)

    async def run(user, route, payload=None):
        return await one_request(SharedNoteRouter, route, payload, {"id": note.pk}, user=user)

    assert async_to_sync(run)(other, "get")["status"] == 200
    refused = async_to_sync(run)(other, "update", {"title": "x"})
    assert (refused["status"], refused["payload"]) == (403, {"detail": "Only the owner may change this note.", "code": "permission_denied"})
    assert async_to_sync(run)(other, "delete")["status"] == 403
    assert async_to_sync(run)(owner, "delete")["status"] == 204


class ReadOnly(permissions.BasePermission):
    def has_permission(self, request, view):
        return request.method in permissions.SAFE_METHODS


def test_composed_permissions():
    staff_or_reader = router_with(permissions.IsAdminUser | (permissions.IsAuthenticated & ReadOnly))
    article = ArticleFactory()
    anonymous = statuses(staff_or_reader, None, article)
    reader = statuses(staff_or_reader, user_with(), article)
    staff = statuses(staff_or_reader, user_with(is_staff=True), article)
    assert set(anonymous.values()) == {401}
    assert (reader["get"], reader["list"], reader["create"], reader["delete"]) == (200, 200, 403, 403)
    assert (staff["get"], staff["create"], staff["delete"]) == (200, 201, 204)


def test_a_mixin_keeps_the_base_permission_classes(article):
    assert AdminOnlyGet.permission_classes == [permissions.IsAdminUser]
    reply = async_to_sync(one_request)(AdminOnlyGet, "get", None, {"id": article.pk}, user_with())
    assert reply["status"] == 403


# -- per-user querysets, serializer context ---------------------------------------------------

def test_get_queryset_sees_the_request_user_and_current_user_default_fills_owner():
    alice, bob = user_with(), user_with()
    bobs = NoteFactory(owner=bob)

    async def run():
        comm = await connect(NoteRouter, alice)
        created = await comm.request("create", {"title": "Alice's"})
        listed = await comm.request("list")
        others = await comm.request("get", None, {"id": bobs.pk})
        await comm.disconnect()
        return created, listed, others

    created, listed, others = async_to_sync(run)()
    assert created["status"] == 201 and created["payload"]["owner_name"] == alice.username
    assert [n["title"] for n in listed["payload"]] == ["Alice's"]
    assert others["status"] == 404
    assert Note.objects.get(title="Alice's").owner == alice


# -- authentication from message headers ----------------------------------------------------

def test_token_authentication_reads_the_authorization_header():
    router = router_with(permissions.IsAuthenticated, authentication_classes=[TokenAuthentication])
    holder, scope_user = user_with(), user_with()
    token = Token.objects.create(user=holder)
    article = ArticleFactory()

    async def run(headers, user=None):
        return await one_request(router, "get", None, {"id": article.pk, **headers}, user=user)

    assert async_to_sync(run)({"Authorization": f"Token {token.key}"})["status"] == 200
    invalid = async_to_sync(run)({"Authorization": "Token wrong"}, scope_user)
    assert (invalid["status"], invalid["payload"]) == (401, {"detail": "Invalid token."})
    assert async_to_sync(run)({}, scope_user)["status"] == 200
    assert async_to_sync(run)({})["status"] == 401


def test_valid_credentials_win_over_the_scope_user():
    class WhoAmI(ArticleRouter):
        authentication_classes = [TokenAuthentication]

        def count_articles(self, payload, headers):
            return {"payload": self.request.user.username}

    holder, scope_user = user_with(), user_with()
    token = Token.objects.create(user=holder)
    reply = async_to_sync(one_request)(WhoAmI, "count", None, {"Authorization": f"Token {token.key}"}, scope_user)
    assert reply["payload"] == holder.username


# -- list: filters, ordering, pagination, query parameters ---------------------------------

def test_list_with_search_ordering_and_pagination():
    for title in ["apple", "banana", "apricot", "cherry", "avocado"]:
        ArticleFactory(title=title)

    async def run(payload):
        return (await one_request(PagedArticleRouter, "list", payload))["payload"]

    first = async_to_sync(run)({"search": "a", "ordering": "title"})
    assert first["count"] == 4 and [a["title"] for a in first["results"]] == ["apple", "apricot"]
    assert first["previous"] is None and "page=2" in first["next"]
    second = async_to_sync(run)({"search": "a", "ordering": "title", "page": 2})
    assert [a["title"] for a in second["results"]] == ["avocado", "banana"]
    assert (async_to_sync(one_request)(PagedArticleRouter, "list", {"page": 99}))["status"] == 404


@pytest.mark.parametrize("payload", ["text", [1], {"search": {"nested": 1}}])
def test_list_rejects_payloads_that_are_not_query_parameters(payload):
    reply = async_to_sync(one_request)(PagedArticleRouter, "list", payload)
    assert reply["status"] == 400 and reply["payload"]["detail"]


def test_query_parameters_from_the_payload():
    from drf_bridge.request import query_params_from

    query = query_params_from({"a": "x", "n": 2, "f": 1.5, "yes": True, "no": False, "tags": ["p", 3], "skip": None})
    assert query.urlencode() == "a=x&n=2&f=1.5&yes=true&no=false&tags=p&tags=3&skip="[: -len("&skip=")]


@pytest.mark.parametrize("payload", [{"tag": list(range(1001))}, {f"k{n}": n for n in range(1001)}])
def test_list_takes_as_many_query_parameters_as_django_would(payload):
    reply = async_to_sync(one_request)(PagedArticleRouter, "list", payload)
    assert reply["status"] == 400 and "DATA_UPLOAD_MAX_NUMBER_FIELDS" in reply["payload"]["detail"]
    assert async_to_sync(one_request)(PagedArticleRouter, "list", {"tag": list(range(1000))})["status"] == 200


# -- throttles -------------------------------------------------------------------------------

def test_drf_throttles_answer_429_with_retry_after():
    from django.core.cache import cache

    cache.clear()
    article = ArticleFactory()

    async def run():
        comm = await connect(ThrottledRouter)
        replies = [await comm.request("get", None, {"id": article.pk}) for _ in range(3)]
        await comm.disconnect()
        return replies

    replies = async_to_sync(run)()
    assert [r["status"] for r in replies] == [200, 200, 429]
    assert replies[2]["headers"]["Retry-After"].isdigit()
    assert replies[2]["payload"]["detail"].startswith("Request was throttled.")


# -- the request a message makes ------------------------------------------------------------

async def request_with(router, route, payload=None, headers=None, scope=None, user=None):
    comm = RouterCommunicator(router.as_asgi(), "/ws/", user=user)
    comm.scope.setdefault("user", AnonymousUser())
    comm.scope.update(scope or {})
    await comm.connect()
    reply = await comm.request(route, payload, headers)
    await comm.disconnect()
    return reply


class Inspect(ArticleRouter):
    """Routes that report what the DRF request looked like."""

    authentication_classes = [TokenAuthentication]
    routes = [
        {"route": "meta", "method": "GET", "handler": "on_meta"},
        {"route": "whoami", "method": "GET", "access": lambda user, headers, payload: user.is_authenticated},
        {"route": "get", "method": "GET", "handler": "on_meta"},  # a plain entry replaces the mixin's route
    ]

    def on_meta(self, payload, headers):
        META = self.request.META
        return {"payload": {key: META.get(key) for key in (
            "HTTP_HOST", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_COOKIE", "HTTP_X_AUTH_USER",
            "HTTP_AUTHORIZATION", "HTTP_X_API_KEY", "REMOTE_ADDR", "QUERY_STRING")} | {"version": self.request.version, "kwargs": self.kwargs, "data": self.request.data}}

    def on_whoami(self, payload, headers):
        return {"payload": [self.request.user.username, self.user.username, str(self.request.successful_authenticator)]}


def test_message_headers_never_replace_the_handshake_or_set_proxy_headers():
    scope = {"headers": [(b"host", b"app.example"), (b"x-forwarded-for", b"203.0.113.7"), (b"cookie", b"sessionid=s")],
             "client": ("10.0.0.1", 5000), "query_string": b"token=secret"}
    spoof = {"Host": "evil.example", "X-Forwarded-For": "1.2.3.4", "Cookie": "sessionid=other", "X-Auth-User": "admin",
             "X-Api-Key": "k", "x-forwarded-proto": "https"}
    meta = async_to_sync(request_with)(Inspect, "meta", None, spoof, scope)["payload"]
    assert meta["HTTP_HOST"] == "app.example" and meta["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"
    assert meta["HTTP_COOKIE"] == "sessionid=s" and meta["HTTP_X_AUTH_USER"] is None
    assert meta["HTTP_X_FORWARDED_PROTO"] is None  # a proxy header the handshake did not have
    assert meta["HTTP_X_API_KEY"] == "k" and meta["REMOTE_ADDR"] == "10.0.0.1"
    assert meta["QUERY_STRING"] == ""  # the handshake's query string (tokens!) is not the request's


def test_each_message_has_its_own_headers_method_and_query():
    async def run():
        comm = RouterCommunicator(Inspect.as_asgi(), "/ws/", user=AnonymousUser())
        comm.scope["headers"] = [(b"host", b"app.example")]
        await comm.connect()
        first = await comm.request("meta", {"q": "1"}, {"X-Api-Key": "first", "X_Auth_User": "admin"})
        second = await comm.request("meta")
        await comm.disconnect()
        return first["payload"], second["payload"]

    first, second = async_to_sync(run)()
    assert (first["HTTP_X_API_KEY"], first["QUERY_STRING"]) == ("first", "q=1")
    assert first["HTTP_X_AUTH_USER"] is None  # underscores in a name are dropped, as Django drops them
    assert (second["HTTP_X_API_KEY"], second["QUERY_STRING"], second["HTTP_HOST"]) == (None, "", "app.example")


def test_get_payload_is_the_query_and_data_is_empty_and_url_kwargs_are_kept():
    meta = async_to_sync(request_with)(Inspect, "meta", {"search": "a", "n": 2}, None, {"url_route": {"kwargs": {"project": 7}}})["payload"]
    assert meta["QUERY_STRING"] == "search=a&n=2" and meta["data"] == {}
    assert meta["kwargs"] == {"project": 7} and meta["version"] is None


def test_a_plain_route_replaces_a_mixin_route_of_the_same_name():
    assert Inspect.route_table["get"].handler == "on_meta"
    assert "version" in async_to_sync(request_with)(Inspect, "get")["payload"]


def test_message_credentials_are_the_user_for_access_rules_and_self_user():
    holder, scope_user = user_with(), user_with()
    token = Token.objects.create(user=holder)
    by_token = async_to_sync(request_with)(Inspect, "whoami", None, {"Authorization": f"Token {token.key}"})
    assert by_token["status"] == 200 and by_token["payload"][:2] == [holder.username, holder.username]
    by_scope = async_to_sync(request_with)(Inspect, "whoami", None, None, user=scope_user)
    assert by_scope["payload"] == [scope_user.username, scope_user.username, "None"]
    assert async_to_sync(request_with)(Inspect, "whoami")["status"] == 401
    guarded = router_with(permissions.IsAuthenticated, authentication_classes=[TokenAuthentication])
    anonymous = async_to_sync(request_with)(guarded, "list")
    assert (anonymous["status"], anonymous["headers"]) == (401, {"WWW-Authenticate": "Token"})


def test_anonymous_list_with_a_bad_payload_is_401_before_400():
    reply = async_to_sync(one_request)(router_with(permissions.IsAuthenticated), "list", "text")
    assert reply["status"] == 401


@pytest.mark.parametrize("headers, payload", [({"id": None}, None), ({}, {"id": None})])
def test_a_null_id_is_a_missing_id(headers, payload):
    reply = async_to_sync(one_request)(ArticleRouter, "get", payload, headers)
    assert (reply["status"], reply["payload"]["code"]) == (400, "missing_id")


def test_a_structured_permission_message_is_the_body():
    class Structured(permissions.BasePermission):
        message = {"detail": "nope", "reason": "closed"}

        def has_permission(self, request, view):
            return False

    reply = async_to_sync(one_request)(router_with(Structured), "list", None, None, user_with())
    assert (reply["status"], reply["payload"]) == (403, {"detail": "nope", "reason": "closed"})


def test_pagination_links_carry_the_list_query_and_can_be_off():
    for title in ["apple", "apricot", "avocado"]:
        ArticleFactory(title=title)
    reply = async_to_sync(request_with)(PagedArticleRouter, "list", {"search": "a", "ordering": "-title"}, None,
                                        {"query_string": b"token=secret", "headers": [(b"host", b"app.example")]})
    assert reply["payload"]["next"] == "http://app.example/ws/?ordering=-title&page=2&search=a"
    from rest_framework.pagination import LimitOffsetPagination

    optional = type("Optional", (PagedArticleRouter,), {"pagination_class": LimitOffsetPagination})
    unpaged = async_to_sync(one_request)(optional, "list")
    assert unpaged["status"] == 200 and len(unpaged["payload"]) == 3
    paged = async_to_sync(one_request)(optional, "list", {"limit": 1})
    assert paged["payload"]["count"] == 3 and len(paged["payload"]["results"]) == 1


def test_custom_get_routes_get_query_parameters():
    class Recent(PagedArticleRouter):
        @socket_route("recent", method="GET")
        def recent(self, payload, headers):
            return {"payload": self.filter_queryset(self.get_queryset())}

    for title in ["apple", "banana"]:
        ArticleFactory(title=title)
    reply = async_to_sync(one_request)(Recent, "recent", {"search": "an"})
    assert [a["title"] for a in reply["payload"]] == ["banana"]


def test_every_write_route_runs_in_a_transaction():
    class Failing(ArticleRouter):
        @socket_route(detail=True, method="POST")
        def rename(self, article, headers):
            article.title = "renamed"
            article.save()
            raise RuntimeError("after the write")

        def on_update(self, article, headers):
            article.title = "updated"
            article.save()
            raise RuntimeError("after the write")

        def perform_destroy(self, instance):
            instance.delete()
            raise RuntimeError("after the delete")

    article = ArticleFactory(title="keep")
    for route in ("rename", "update", "delete"):
        assert async_to_sync(one_request)(Failing, route, {"title": "x"}, {"id": article.pk})["status"] == 500
    article.refresh_from_db()
    assert article.title == "keep"


def test_delete_without_payload_sees_empty_data():
    class Reasoned(ArticleRouter):
        def perform_destroy(self, instance):
            assert self.request.data == {}
            instance.delete()

    article = ArticleFactory()
    assert async_to_sync(one_request)(Reasoned, "delete", None, {"id": article.pk})["status"] == 204


def test_replies_are_encoded_like_drf_json():
    from decimal import Decimal

    class Encoded(ArticleRouter):
        @socket_route("values", method="GET")
        def values(self, payload, headers):
            return {"payload": {"price": Decimal("1.50"), "tags": {"x"}}}

    assert async_to_sync(one_request)(Encoded, "values")["payload"] == {"price": 1.5, "tags": ["x"]}


@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_SCHEME", "https"))
def test_a_message_header_never_sets_the_proxy_ssl_header():
    from tests.security import HeadersRouter

    reply = async_to_sync(one_request)(HeadersRouter, "whoami", None, {"X-Scheme": "https", "X-Other": "kept"})
    assert "HTTP_X_SCHEME" not in reply["payload"]["meta"]
    assert reply["payload"]["meta"]["HTTP_X_OTHER"] == "kept"


# -- check_access on a model router: after DRF's checks, which it never replaces ------------

@pytest.mark.parametrize("router", [ActiveArticleRouter, AsyncActiveArticleRouter])
def test_check_access_on_a_model_router_runs_after_drf_permissions_and_throttles(router):
    from django.core.cache import cache

    cache.clear()
    router.seen.clear()
    article = ArticleFactory(title="Seen")
    active, inactive, staff = user_with(), user_with(is_active=False), user_with(is_staff=True)

    async def run(user, *calls):
        comm = await connect(router, user)
        replies = [await comm.request(route, payload, headers) for route, payload, headers in calls]
        await comm.disconnect()
        return [reply["status"] for reply in replies], replies

    get = ("get", None, {"id": article.pk})
    # Anonymous: DRF's IsAuthenticated answers before check_access is asked.
    assert async_to_sync(run)(None, get, ("list", None, None), ("create", {"title": "x"}, None))[0] == [401] * 3
    assert router.seen == []
    # An inactive user passes IsAuthenticated; check_access refuses: 403, and nothing is written.
    assert async_to_sync(run)(inactive, get, ("update", {"title": "No"}, {"id": article.pk}))[0] == [403, 403]
    # An active user: the standard routes work, check_access sees the DRF request, the route's
    # `access` still refuses a non-staff user, and DRF's throttle (6/min) still counts.
    statuses, replies = async_to_sync(run)(active, get, ("list", None, None), ("patch", {"title": "Yes"}, {"id": article.pk}),
                                           ("stats", None, None), get, get, get)
    assert statuses == [200, 200, 200, 403, 200, 200, 429]
    assert replies[0]["payload"]["title"] == "Seen" and replies[2]["payload"]["title"] == "Yes"
    assert replies[-1]["headers"]["Retry-After"].isdigit()
    assert async_to_sync(run)(staff, ("stats", None, None))[1][0]["payload"] == {"articles": 1}
    assert router.seen == [("get", "GET", inactive.username), ("update", "PUT", inactive.username)] + [
        (route, method, active.username) for route, method in
        [("get", "GET"), ("list", "GET"), ("patch", "PATCH"), ("stats", "GET"), ("get", "GET"), ("get", "GET")]
    ] + [("stats", "GET", staff.username)]


def test_a_router_whose_initial_skips_super_fails_the_system_check():
    import gc

    from django.core import checks

    class Skips(ArticleRouter):
        def initial(self, request):
            request.extra = True

    class Extends(ArticleRouter):
        def initial(self, request):
            request.extra = True
            super().initial(request)

    class Wrapped(ArticleRouter):
        def prepare_request(self, route, headers, payload):
            return [super().prepare_request(route, headers, payload) for _ in range(1)][0]

    class Replaces(ArticleRouter):
        async def prepare_request(self, route, headers, payload):
            pass

    found = [(message.id, message.obj) for message in checks.run_checks()
             if message.obj in (Skips, Extends, Wrapped, Replaces)]
    assert sorted(found, key=lambda found: found[1].__name__) == [
        ("drf_bridge.E002", Replaces), ("drf_bridge.E002", Skips)]
    messages = {message.obj: message for message in checks.run_checks() if message.id == "drf_bridge.E002"}
    assert "Skips.initial() does not call super().initial()" in messages[Skips].msg
    assert "super().initial(" in messages[Skips].hint
    # Later system checks in this process must not find these classes.
    del Skips, Extends, Wrapped, Replaces, messages, found
    gc.collect()


# -- detail routes with a declared request: the object first, as DRF's update ----------------

DETAIL_WITH_REQUEST = ["retitle", "peek", "retitle_async", "retitle_loaded"]


@pytest.mark.parametrize("route", DETAIL_WITH_REQUEST)
def test_a_detail_route_with_a_request_takes_the_id_from_the_payload(route):
    article = ArticleFactory(title="Old")
    by_payload = async_to_sync(one_request)(RetitleRouter, route, {"id": article.pk, "title": "New"})
    by_header = async_to_sync(one_request)(RetitleRouter, route, {"title": "Newer"}, {"id": article.pk})
    assert (by_payload["status"], by_header["status"]) == (200, 200), (by_payload, by_header)
    if route != "peek":
        assert (by_payload["payload"]["title"], by_header["payload"]["title"]) == ("New", "Newer")
    invalid = async_to_sync(one_request)(RetitleRouter, route, {"id": article.pk, "title": "x" * 21})
    assert (invalid["status"], invalid["payload"]) == (400, {"title": ["Ensure this field has no more than 20 characters."]})
    missing = async_to_sync(one_request)(RetitleRouter, route, {"title": "New"})
    assert (missing["status"], missing["payload"]["code"]) == (400, "missing_id")


@pytest.mark.parametrize("route", DETAIL_WITH_REQUEST)
def test_a_detail_route_looks_up_before_it_validates_as_drf_does(route):
    assert http_reply("PUT", "/articles/12345/", {"title": ""}) == (404, {"detail": "No Article matches the given query."})
    reply = async_to_sync(one_request)(RetitleRouter, route, {"id": 12345, "title": ""})
    assert (reply["status"], reply["payload"]) == (404, {"detail": "No Article matches the given query."})


def test_a_detail_route_checks_object_permissions_before_it_validates():
    class RetitleNote(SharedNoteRouter):
        @socket_route(detail=True, method="POST", request=RetitleRouter.route_table["retitle"].options["request"])
        def retitle(self, note, headers):
            return {"payload": note}

    owner, other = user_with(), user_with()
    note = NoteFactory(owner=owner)
    refused = async_to_sync(one_request)(RetitleNote, "retitle", {"title": ""}, {"id": note.pk}, user=other)
    assert (refused["status"], refused["payload"]["code"]) == (403, "permission_denied")
    invalid = async_to_sync(one_request)(RetitleNote, "retitle", {"title": ""}, {"id": note.pk}, user=owner)
    assert invalid["status"] == 400


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_routes_own_hydrate_gets_the_checked_payload_on_writes_as_on_reads(method):
    class OwnHydrate(ArticleRouter):
        @socket_route("echo", method=method, request=RetitleRouter.route_table["retitle"].options["request"],
                      hydrate="keep", dehydrate=None)
        def echo(self, kept, headers):
            return {"payload": kept}

        def keep(self, headers, payload):
            return payload

    reply = async_to_sync(one_request)(OwnHydrate, "echo", {"title": "t", "extra": 1})
    assert (reply["status"], reply["payload"]) == (200, {"title": "t", "extra": 1})
