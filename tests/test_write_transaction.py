"""A write route loads its object inside the write's transaction, so ``select_for_update()`` in
``get_queryset()`` serialises concurrent read-modify-writes of one row."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.db import connection, transaction

from demo.models import Article
from django_channels_router.testing import RouterCommunicator
from drf_bridge import socket_route
from tests.drf import ArticleRouter

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]
db = database_sync_to_async


class LockingCounter(ArticleRouter):
    """The recipe the README gives: lock the row for writes, read it plainly otherwise."""

    def get_queryset(self):
        queryset = Article.objects.all()
        return queryset if self.request.method == "GET" else queryset.select_for_update()

    @socket_route(detail=True, method="POST")
    def increment(self, article, headers):
        assert transaction.get_connection().in_atomic_block  # loaded and saved in one transaction
        article.title = str(int(article.title) + 1)
        article.save()
        return {"payload": article}


async def test_a_locking_queryset_works_on_every_write_route():
    article = await db(Article.objects.create)(title="0")
    comm = RouterCommunicator(LockingCounter.as_asgi(), "/ws/")
    assert (await comm.connect())[0]
    assert (await comm.request("increment", None, {"id": article.pk}))["payload"]["title"] == "1"
    assert (await comm.request("patch", {"title": "7"}, {"id": article.pk}))["status"] == 200
    assert (await comm.request("get", None, {"id": article.pk}))["payload"]["title"] == "7"
    assert (await comm.request("delete", None, {"id": article.pk}))["status"] == 204
    await comm.disconnect()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL (the suite is on SQLite)")
async def test_concurrent_increments_through_a_locking_queryset_lose_none():
    article = await db(Article.objects.create)(title="0")

    async def client():
        comm = RouterCommunicator(LockingCounter.as_asgi(), "/ws/")
        assert (await comm.connect())[0]
        for _ in range(10):
            assert (await comm.request("increment", None, {"id": article.pk}, timeout=30))["status"] == 200
        await comm.disconnect()

    await asyncio.gather(*(client() for _ in range(20)))
    await db(article.refresh_from_db)()
    assert article.title == "200"
