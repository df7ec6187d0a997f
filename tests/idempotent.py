"""Consumers for the idempotent-write tests (tests/test_idempotency.py), served in process and by
the real servers (tests/routing.py)."""

import time

from django.contrib.auth.models import User
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication

from demo.models import Article
from django_channels_router import AsyncSocketRouterConsumer, SocketRouterConsumer
from drf_bridge import socket_route
from tests.drf import ArticleRouter


class UserHeaderAuthentication(BaseAuthentication):
    """``Authorization: User <pk>`` is that user (for tests: no password, no database row)."""

    def authenticate(self, request):
        scheme, _, pk = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        return (User(pk=int(pk), username=f"user{pk}"), None) if scheme == "User" else None


class IdempotentArticleRouter(ArticleRouter):
    authentication_classes = [UserHeaderAuthentication]

    def get_etag(self, instance, data):
        """No etag, so these tests see the headers idempotency adds alone (test_conditional tests the
        etag; test_idempotency's etag test, the two together)."""
        return None

    @socket_route("slowCreate", method="POST")
    def slow_create(self, payload, headers):
        article = Article.objects.create(title=payload["title"])
        time.sleep(payload.get("sleep", 0))
        return {"status": 201, "payload": article}

    @socket_route("seesItsRecord", method="POST")
    def sees_its_record(self, payload, headers):
        """The key's record is already in the handler's transaction (and on no other connection)."""
        from django.db import transaction

        from django_channels_router.models import IdempotencyKey

        Article.objects.create(title=payload["title"])
        return {"payload": {"atomic": transaction.get_connection().in_atomic_block,
                            "record": IdempotencyKey.objects.filter(key=headers["idempotency-key"]).exists()}}

    @socket_route("failAfterWrite", method="POST")
    def fail_after_write(self, payload, headers):
        Article.objects.create(title=payload["title"])
        raise RuntimeError("after the write")

    @socket_route("refuseAfterWrite", method="POST")
    def refuse_after_write(self, payload, headers):
        Article.objects.create(title=payload["title"])
        raise serializers.ValidationError({"title": ["refused after the write"]})

    @socket_route("largeReply", method="POST", dehydrate=None)
    def large_reply(self, payload, headers):
        Article.objects.create(title="large")
        return {"payload": "x" * payload}

    @socket_route("unkeyed", method="POST", idempotent=False)
    def unkeyed(self, payload, headers):
        return {"payload": {"articles": Article.objects.count()}}


def create_article(payload, headers):
    article = Article.objects.create(title=payload["title"])
    return {"status": 201, "payload": {"id": article.pk, "title": article.title}}


class PlainIdempotentSocket(SocketRouterConsumer):
    """A plain consumer: ``create`` opts in with its route option, ``note`` by ``idempotent_routes``."""

    idempotent_routes = ["note"]
    routes = [{"route": "create", "handler": create_article, "idempotent": True},
              {"route": "note"}, {"route": "plain"}]

    def on_note(self, payload, headers):
        return {"payload": {"articles": Article.objects.count()}}

    def on_plain(self, payload, headers):
        return {"payload": {"articles": Article.objects.count()}}


async def create_article_async(payload, headers):
    """An async handler's ORM calls (``database_sync_to_async``) run in the thread, and so in the
    transaction, of the key's record."""
    from channels.db import database_sync_to_async
    from django.db import transaction

    def create():
        assert transaction.get_connection().in_atomic_block
        return Article.objects.create(title=payload["title"])

    article = await database_sync_to_async(create)()
    if payload.get("fail"):
        raise RuntimeError("after the write")
    return {"status": 201, "payload": {"id": article.pk, "title": article.title}}


class AsyncPlainIdempotentSocket(AsyncSocketRouterConsumer):
    idempotent_routes = "__all__"
    routes = [{"route": "create", "handler": create_article_async}]
