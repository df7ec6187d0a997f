"""The seed README's three example consumers, made real, and a DRF-style model router.

* ``AppSocket`` (sync) and ``AppSocketAsync`` declare their routes with the property-setter
  form the seed README shows; ``ArticleConsumer`` uses a plain class attribute.
* ``ArticleSocket`` is ``drf_bridge.ModelSocketRouter``: the routes get, list, create, update,
  patch and delete from a serializer, a queryset and DRF permission and filter classes, and two
  custom routes (``duplicate``, ``count``) made with ``@socket_route``.
* Every reply whose shape is known is declared (a ``response``, or a serializer as the dehydrate),
  so ``manage.py socketschema --format typescript`` types it.
* Handlers are called as ``handler(payload, headers)``, hydrate as ``hydrate(headers, payload)``
  and dehydrate as ``dehydrate(payload)``; dehydrate runs only when the status is 2xx.
"""

import asyncio

from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.permissions import IsAuthenticatedOrReadOnly

from django_channels_router import AsyncSocketRouterConsumer, SocketRouterConsumer, StatusCodes
from drf_bridge import ModelSocketRouter, socket_route

from .models import Article
from .serializers import ArticleSerializer

NOT_FOUND = {"detail": "Article not found.", "code": "not_found"}


def parse_id(value):
    """An article id sent by a client (an integer or a string of digits), else None."""
    if isinstance(value, bool):  # JSON true is not id 1
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdecimal():
        return int(value)
    return None


def get_article(article_id):
    """The article with this id, or None (also for a malformed id)."""
    article_id = parse_id(article_id)
    if article_id is None:
        return None
    return Article.objects.filter(pk=article_id).first()


#: JSON Schemas of replies, as the routes' "response" declarations.
ARTICLE_SUMMARY = {"type": "object", "required": ["id", "title"],
                   "properties": {"id": {"type": "integer"}, "title": {"type": "string"}}}
GREETING = {"type": "object", "required": ["msg"], "properties": {"msg": {"type": "string"}}}


# --- Example 1: sync consumer, routes declared with the property setter -------------------


class AppSocket(SocketRouterConsumer):
    @SocketRouterConsumer.routes.setter
    def routes(self, _):
        self._routes = [
            # "response" documents the reply (manage.py socketschema, its TypeScript).
            {"route": "sayHello", "response": {"type": "string"}},
            {
                "route": "getArticle",
                # A payload without "id" gets a 404 rather than a KeyError (a 500).
                "hydrate": lambda headers, p: get_article((p or {}).get("id")),
                "dehydrate": lambda art: {"id": art.id, "title": art.title},
                "response": ARTICLE_SUMMARY,
            },
        ]

    def on_say_hello(self, payload, headers):
        name = (payload or {}).get("name", "World")
        return {"status": StatusCodes.OK, "payload": f"Hello, {name}!"}

    def on_get_article(self, payload, headers):
        # `payload` is what hydrate returned: an Article, or None.
        if payload is None:
            # Not 2xx, so dehydrate does not run on this payload.
            return {"status": StatusCodes.NOT_FOUND, "payload": NOT_FOUND}
        return {"status": StatusCodes.OK, "payload": payload}


# --- Example 2: async consumer -------------------------------------------------------------


class AppSocketAsync(AsyncSocketRouterConsumer):
    @AsyncSocketRouterConsumer.routes.setter
    def routes(self, _):
        self._routes = [{"route": "sayHello", "response": GREETING}, {"route": "slowEcho"}]

    async def on_say_hello(self, payload, headers):
        name = (payload or {}).get("name", "World")
        return {"status": 200, "payload": {"msg": f"Hello async, {name}!"}}

    async def on_slow_echo(self, payload, headers):
        """Wait ``payload["seconds"]`` (at most 5) and send the payload back.

        Requests of one connection run concurrently on the async consumer, so ten of these
        sent at once are all answered after about one delay, not ten.
        """
        seconds = float((payload or {}).get("seconds", 0.5))
        await asyncio.sleep(max(0.0, min(seconds, 5.0)))
        return {"status": StatusCodes.OK, "payload": payload}


# --- Example 3: hydrate / dehydrate with a DRF serializer -----------------------------------


def load_article(headers, payload):
    """Hydrate for "get": the article named by ``headers["id"]``, or None."""
    return get_article(headers.get("id"))


def deserialize(headers, payload):
    """Hydrate for "create": validate the payload and save a new article.

    The ValidationError is not caught: the router answers it like DRF over HTTP, with
    status 400 and ``serializer.errors`` as payload (``{"title": ["This field is required."]}``).
    """
    serializer = ArticleSerializer(data=payload)
    serializer.is_valid(raise_exception=True)
    return serializer.save()


def serialize_many(articles):
    return ArticleSerializer(articles, many=True).data


class ArticleConsumer(SocketRouterConsumer):
    routes = [
        # A serializer class as the dehydrate: ArticleSerializer(article).data, and the reply's type.
        {"route": "get", "hydrate": load_article, "dehydrate": ArticleSerializer},
        # "request" declares the payload (checked before deserialize): the docs page shows its fields.
        {"route": "create", "request": ArticleSerializer, "hydrate": deserialize, "dehydrate": ArticleSerializer},
        # A function says nothing of its result: "response" does.
        {"route": "list", "dehydrate": serialize_many, "response": ArticleSerializer(many=True)},
    ]

    def on_get(self, payload, headers):
        if payload is None:
            return {"status": StatusCodes.NOT_FOUND, "payload": NOT_FOUND}
        return {"status": StatusCodes.OK, "payload": payload}

    def on_create(self, payload, headers):
        # Invalid data never gets here: deserialize raised, and the reply was a 400.
        return {"status": StatusCodes.CREATED, "payload": payload}

    def on_list(self, payload, headers):
        return {"status": StatusCodes.OK, "payload": Article.objects.all()}


# --- Example 4: a model router, as a DRF ModelViewSet -------------------------------------

COUNT = {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer", "minimum": 0}}}



class ArticleSocket(ModelSocketRouter):
    """The Article model over a socket, DRF-style: anyone may read, logged-in users may write.

    ``get``, ``update``, ``patch`` and ``delete`` read the id from ``headers["id"]`` (or
    ``payload["id"]``); ``list`` reads query parameters from its payload, e.g.
    ``{"search": "socket", "ordering": "-id"}``, and is not paginated. The user is the one
    ``AuthMiddlewareStack`` found in the handshake's session cookie: an anonymous write is
    answered ``401 not_authenticated``.
    """

    queryset = Article.objects.all()
    serializer_class = ArticleSerializer
    permission_classes = [IsAuthenticatedOrReadOnly]
    filter_backends = [SearchFilter, OrderingFilter]
    search_fields = ["title", "body"]
    ordering_fields = ["id", "title", "created_at"]
    pagination_class = None

    # No "response": a detail route with the router's own dehydrate is documented as replying
    # one object of the router's serializer (an Article).
    @socket_route(detail=True)
    def duplicate(self, article, headers):
        """Save a copy of the article and reply with the copy."""
        copy = Article.objects.create(title=f"Copy of {article.title}"[:200], body=article.body)
        return {"status": StatusCodes.CREATED, "payload": copy}

    @socket_route(method="GET", response=COUNT)
    def count(self, payload, headers):
        """How many articles match the query parameters (``{"search": "socket"}``)."""
        return {"status": StatusCodes.OK, "payload": {"count": self.filter_queryset(self.get_queryset()).count()}}
