"""Subscriptions under hostile or changing conditions: credentials that stop authenticating,
bounds per connection, and payloads that are not what unsubscribe takes."""

import pytest
from channels.auth import AuthMiddlewareStack, login
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client
from rest_framework import authentication, permissions
from rest_framework.authtoken.models import Token

from django_channels_router.testing import RouterCommunicator
from drf_bridge import ModelSocketRouter, socket_route
from tests.drf import ArticleRouter, NoteSerializer, PagedArticleRouter
from tests.factories import ArticleFactory, NoteFactory, UserFactory
from tests.models import Note
from tests.test_subscriptions import nothing_pushed, subscriber

pytestmark = pytest.mark.django_db(transaction=True)
db = database_sync_to_async


AdminArticles = type("AdminArticles", (ArticleRouter,), {"permission_classes": [permissions.IsAdminUser]})
TokenArticles = type("TokenArticles", (ArticleRouter,), {
    "authentication_classes": [authentication.TokenAuthentication],
    "permission_classes": [permissions.IsAuthenticated]})
MemberArticles = type("MemberArticles", (ArticleRouter,), {"permission_classes": [permissions.IsAuthenticated]})


async def test_a_user_who_loses_staff_is_pushed_no_more_data():
    staff = await db(UserFactory)(is_staff=True)
    article = await db(ArticleFactory)(title="v1")
    comm = await subscriber(AdminArticles, staff)
    assert (await comm.request("subscribe", None, {"id": article.pk}))["status"] == 201
    await db(User.objects.filter(pk=staff.pk).update)(is_staff=False)
    article.title = "v2"
    await db(article.save)()
    push = await comm.receive_message()
    assert (push["route"], push["payload"]) == ("deleted", {"id": article.pk})  # not "updated" with v2
    await comm.disconnect()


async def test_a_deleted_token_ends_its_subscription_with_a_push_that_says_so():
    user = await db(UserFactory)()
    token = await db(Token.objects.create)(user=user)
    comm = await subscriber(TokenArticles)
    credentials = {"Authorization": f"Token {token.key}"}
    reply = await comm.request("subscribe", None, credentials)
    assert reply["status"] == 201
    await db(ArticleFactory)(title="seen")
    assert (await comm.receive_message())["payload"]["title"] == "seen"

    await db(token.delete)()
    await db(ArticleFactory)(title="not seen")
    push = await comm.receive_message()
    assert push["route"] == "unsubscribed"
    push["headers"].pop("position")
    assert push["headers"] == {"subscription": reply["uuid"], "model": "demo.article", "seq": 2}  # after "seen"
    assert push["payload"] == {"status": 401, "detail": "Invalid token.", "code": "authentication_failed"}
    await db(ArticleFactory)(title="after the end")
    await nothing_pushed(comm)
    # The subscription is gone from the connection; a new request with that token is refused.
    assert (await comm.request("unsubscribe", {"subscription": reply["uuid"]}, credentials))["status"] == 401
    await comm.disconnect()


async def session_cookie(user):
    client = Client()
    await db(client.force_login)(user)
    return client.cookies["sessionid"].value


async def test_a_closed_session_ends_its_subscriptions():
    user = await db(UserFactory)()
    key = await session_cookie(user)
    comm = RouterCommunicator(AuthMiddlewareStack(MemberArticles.as_asgi()), "/ws/",
                              headers=[(b"cookie", f"sessionid={key}".encode())])
    assert (await comm.connect())[0]
    subscription = (await comm.request("subscribe"))["uuid"]
    await db(ArticleFactory)(title="while logged in")
    assert (await comm.receive_message())["route"] == "created"

    await db(Session.objects.filter(session_key=key).delete)()  # logged out elsewhere
    await db(ArticleFactory)(title="after the logout")
    push = await comm.receive_message()
    assert (push["route"], push["headers"]["subscription"], push["payload"]["status"]) == (
        "unsubscribed", subscription, 401)
    await comm.disconnect()


async def test_a_deactivated_user_ends_their_subscriptions():
    user = await db(UserFactory)()
    comm = await subscriber(MemberArticles, user)
    await comm.request("subscribe")
    await db(User.objects.filter(pk=user.pk).update)(is_active=False)
    await db(ArticleFactory)()
    assert (await comm.receive_message())["route"] == "unsubscribed"
    await comm.disconnect()


async def test_subscriptions_per_connection_are_bounded():
    router = type("Two", (ArticleRouter,), {"max_subscriptions": 2})
    comm = await subscriber(router)
    first = (await comm.request("subscribe"))["uuid"]
    assert (await comm.request("subscribe", {"search": "x"}))["status"] == 201
    refused = await comm.request("subscribe", {"search": "y"})
    assert (refused["status"], refused["payload"]["code"]) == (429, "too_many_subscriptions")
    assert (await comm.request("unsubscribe", {"subscription": first}))["status"] == 204
    assert (await comm.request("subscribe", {"search": "y"}))["status"] == 201
    await comm.disconnect()


async def test_a_list_subscription_holds_a_bounded_number_of_ids():
    router = type("Small", (PagedArticleRouter,), {"max_subscribed_objects": 3})
    for title in ("apple", "apricot", "banana", "blueberry"):
        await db(ArticleFactory)(title=title)
    comm = await subscriber(router)
    refused = await comm.request("subscribe")  # four articles: more than the connection may follow
    assert (refused["status"], refused["payload"]["code"]) == (413, "subscription_too_large")
    narrowed = await comm.request("subscribe", {"search": "ap"})  # two of them
    assert narrowed["status"] == 201
    await db(ArticleFactory)(title="grape")  # the third: still within the bound
    assert (await comm.receive_message())["route"] == "created"
    await db(ArticleFactory)(title="papaya")  # a fourth would pass the bound: the subscription ends
    push = await comm.receive_message()
    assert (push["route"], push["payload"]["code"], push["payload"]["status"]) == (
        "unsubscribed", "subscription_too_large", 413)
    await db(ArticleFactory)(title="apple pie")
    await nothing_pushed(comm)
    await comm.disconnect()


@pytest.mark.parametrize("payload", [{"subscription": ["x"]}, {"subscription": None}, {"subscription": True},
                                     {"subscription": 1.5}, "everything", [1]])
async def test_unsubscribe_refuses_what_is_not_a_subscription_id(payload):
    comm = await subscriber()
    subscription = (await comm.request("subscribe"))["uuid"]
    reply = await comm.request("unsubscribe", payload)
    assert reply["status"] == 400, reply  # not a 500, and not "unsubscribe from everything"
    await db(ArticleFactory)(title="still subscribed")
    push = await comm.receive_message()
    assert (push["route"], push["headers"]["subscription"]) == ("created", subscription)
    await comm.disconnect()


async def test_a_subscribe_with_a_uuid_in_use_is_refused_and_the_first_stays():
    await db(ArticleFactory)(title="apple")
    comm = await subscriber(PagedArticleRouter)
    assert (await comm.request("subscribe", {"search": "apple"}, uuid="sub"))["status"] == 201
    again = await comm.request("subscribe", {"search": "pear"}, uuid="sub")
    assert (again["status"], again["payload"]["code"]) == (409, "subscription_exists")
    await db(ArticleFactory)(title="apple two")
    await db(ArticleFactory)(title="pear")
    push = await comm.receive_message()
    assert push["payload"]["title"] == "apple two"  # the first subscription's query, not the second's
    await nothing_pushed(comm)
    await comm.disconnect()


class OwnNotes(ModelSocketRouter):
    """Anyone may subscribe; each sees only their own notes. A route logs the socket in."""

    serializer_class = NoteSerializer
    permission_classes = [permissions.AllowAny]

    def get_queryset(self):
        return Note.objects.filter(owner_id=self.request.user.pk)

    @socket_route("login", method="POST")
    async def login(self, payload, headers):
        await login(self.scope, await db(User.objects.get)(pk=payload),
                    backend="django.contrib.auth.backends.ModelBackend")
        await db(self.scope["session"].save)()
        return {"status": 204}


async def anonymous_with_session():
    comm = RouterCommunicator(AuthMiddlewareStack(OwnNotes.as_asgi()), "/ws/")
    assert (await comm.connect())[0]
    return comm


async def test_a_login_on_the_socket_never_lets_another_connection_share_its_pushes():
    alice = await db(UserFactory)(username="alice")
    first, second = await anonymous_with_session(), await anonymous_with_session()
    assert (await first.request("subscribe"))["status"] == 201
    await db(NoteFactory)(owner=alice, title="before")  # first's pushes are worked out once
    await nothing_pushed(first)
    assert (await first.request("login", alice.pk))["status"] == 204
    assert (await second.request("subscribe"))["status"] == 201
    await db(NoteFactory)(owner=alice, title="alice's private note")
    assert (await first.receive_message())["payload"]["title"] == "alice's private note"
    await nothing_pushed(second)  # anonymous: it was pushed alice's note when the key was kept
    await first.disconnect()
    await second.disconnect()
