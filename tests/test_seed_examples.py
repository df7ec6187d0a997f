"""The original README's examples, pasted as a user would, behave as that README says.

The third example is pseudo-code there; here it has quoted keys and ``self`` added, and
nothing else changed: not even its ``(headers, payload)`` parameter order.
"""

import pytest
from django.core.checks import Error
from django.urls import re_path
from rest_framework import serializers

from demo.models import Article
from demo.serializers import ArticleSerializer
from django_channels_router import AsyncSocketRouterConsumer, SocketRouterConsumer, StatusCodes
from django_channels_router.checks import check_routes
from django_channels_router.testing import RouterCommunicator

pytestmark = pytest.mark.django_db(transaction=True)


def load_article_by_id(article_id):
    return Article.objects.filter(id=article_id).first()


# --- "Example Consumer", verbatim but for the helper its hydrate calls -----------------------
class AppSocket(SocketRouterConsumer):
    @SocketRouterConsumer.routes.setter
    def routes(self, _):
        self._routes = [
            {"route": "sayHello"},
            {"route": "getArticle",
             "hydrate": lambda headers, p: load_article_by_id(p["id"]),
             "dehydrate": lambda art: {"id": art.id, "title": art.title}
             },
        ]

    def on_say_hello(self, payload, headers):
        name = (payload or {}).get("name", "World")
        return {"status": StatusCodes.OK, "payload": f"Hello, {name}!"}


# --- "Async Example", verbatim ---------------------------------------------------------------
class AppSocketAsync(AsyncSocketRouterConsumer):
    @AsyncSocketRouterConsumer.routes.setter
    def routes(self, _):
        self._routes = [{"route": "sayHello"}]

    async def on_say_hello(self, payload, headers):
        return {"status": 200, "payload": {"msg": "Hello async!"}}


# --- "Serializing and Deserializing of messages", keys quoted and self added -----------------
def load_article(headers, payload) -> Article | None:
    try:
        article_id = headers.get('id')
        if not article_id:
            return None
        return Article.objects.get(id=article_id)  # assume id is of type string like uuid
    except Article.DoesNotExist:
        return None


def deserialize(headers, payload) -> Article | None:
    try:
        serializer = ArticleSerializer(data=payload)
        serializer.is_valid(raise_exception=True)
        return serializer.save()
    except serializers.ValidationError:
        return None


def serialize(article: Article) -> str:
    serializer = ArticleSerializer(article)
    return serializer.data


class ArticleConsumer(SocketRouterConsumer):
    routes = [
        {"route": "get", "hydrate": load_article, "dehydrate": serialize},
        {"route": "create", "hydrate": deserialize, "dehydrate": serialize}
    ]

    def on_get(self, headers, payload):
        return {
            "payload": payload,
            # article gets fetched from DB in background using the `load_article` function
            # dehydrate will automatically serilize the article by running `serialize` function
            "status": StatusCodes.OK if payload else StatusCodes.NOT_FOUND
        }

    def on_create(self, headers, payload):
        if not payload:  # deserialize function has returned None
            return {
                "payload": "Unable to create article",
                "status": StatusCodes.BAD_REQUEST
            }

        return {
            "payload": payload,
            "status": StatusCodes.CREATED
        }


async def open_socket(consumer):
    comm = RouterCommunicator(consumer.as_asgi(), "/ws/app/")
    assert (await comm.connect())[0]
    return comm


async def test_routing_snippet_serves_the_bare_consumer():
    websocket_urlpatterns = [
        re_path(r"ws/app/$", SocketRouterConsumer.as_asgi()),
    ]
    comm = RouterCommunicator(websocket_urlpatterns[0].callback, "/ws/app/")
    await comm.connect()
    assert (await comm.request("PING"))["route"] == "PONG"
    assert (await comm.request("sayHello"))["status"] == 404
    await comm.disconnect()


async def test_example_consumer_says_hello():
    comm = await open_socket(AppSocket)
    assert (await comm.request("sayHello", {"name": "Ada"}))["payload"] == "Hello, Ada!"
    assert (await comm.request("sayHello"))["payload"] == "Hello, World!"
    await comm.disconnect()


async def test_example_consumer_get_article_has_no_handler_until_one_is_written():
    """The README declares getArticle but defines no on_get_article: 501, and the check says so."""
    comm = await open_socket(AppSocket)
    reply = await comm.request("getArticle", {"id": 1})
    assert (reply["status"], reply["payload"]["code"]) == (501, "not_implemented")
    await comm.disconnect()
    assert any(isinstance(e, Error) and e.id == "channels_router.E001" and "getArticle" in e.msg
               for e in check_routes() if e.obj is AppSocket)


async def test_example_consumer_get_article_hydrates_and_dehydrates():
    class WithHandler(AppSocket):
        def on_get_article(self, payload, headers):
            return {"payload": payload}

    article = await Article.objects.acreate(title="Hydrated")
    comm = await open_socket(WithHandler)
    assert (await comm.request("getArticle", {"id": article.id}))["payload"] == {"id": article.id, "title": "Hydrated"}
    await comm.disconnect()


async def test_async_example():
    comm = await open_socket(AppSocketAsync)
    reply = await comm.request("sayHello")
    assert (reply["status"], reply["payload"]) == (200, {"msg": "Hello async!"})
    await comm.disconnect()


async def test_article_consumer_get_and_create():
    article = await Article.objects.acreate(title="First", body="Body")
    comm = await open_socket(ArticleConsumer)

    found = await comm.request("get", None, {"id": str(article.id)})
    assert found["status"] == 200
    assert {k: found["payload"][k] for k in ("id", "title", "body")} == {"id": article.id, "title": "First", "body": "Body"}

    missing = await comm.request("get", None, {"id": "999999"})
    assert (missing["status"], missing["payload"]) == (404, None)

    created = await comm.request("create", {"title": "Second"})
    assert created["status"] == 201 and created["payload"]["title"] == "Second"
    assert await Article.objects.filter(title="Second").aexists()

    invalid = await comm.request("create", {"body": "no title"})
    assert (invalid["status"], invalid["payload"]) == (400, "Unable to create article")
    await comm.disconnect()
