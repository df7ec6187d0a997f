"""Conditional requests on model routers: ``headers.etag`` on replies and pushes of one object,
``if-none-match`` on ``get`` (304), ``if-match`` on writes (412, checked inside the write's
transaction with the row locked)."""

import json
import os
import time

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from rest_framework import permissions, serializers
from websockets.asyncio.client import connect

from demo.models import Article
from django_channels_router.testing import RouterCommunicator
from drf_bridge import ModelSocketRouter, conditional, socket_route
from tests.conftest import ROOT, SERVERS, CallingClient, free_port, server_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]
db = database_sync_to_async
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")


class TitleSerializer(serializers.ModelSerializer):
    """Leaves ``body`` out: a change to it changes nothing a client is sent."""

    class Meta:
        model = Article
        fields = ["id", "title"]


class TitleRouter(ModelSocketRouter):
    queryset = Article.objects.all()
    serializer_class = TitleSerializer
    permission_classes = [permissions.AllowAny]

    @socket_route(detail=True, method="POST")
    def shout(self, article, headers):
        article.title = article.title.upper()
        article.save()
        return self.object_reply(article, headers)


class SlowTitleSerializer(TitleSerializer):
    """Validation takes long enough that two writes of one row overlap."""

    def validate_title(self, value):
        time.sleep(0.5)
        return value


class SlowTitleRouter(TitleRouter):
    serializer_class = SlowTitleSerializer


class VersionRouter(TitleRouter):
    """``get_etag()`` from a column, as a version column would be read."""

    def get_etag(self, instance, data):
        return f"v{len(instance.body)}"


async def connected(router=TitleRouter):
    comm = RouterCommunicator(router.as_asgi(), "/ws/", user=AnonymousUser())
    assert (await comm.connect())[0]
    return comm


async def title(pk):
    return (await db(Article.objects.get)(pk=pk)).title


async def test_replies_and_pushes_of_one_object_carry_the_same_etag_for_the_same_representation():
    comm = await connected()
    created = await comm.request("create", {"title": "First"})
    assert created["status"] == 201
    pk, tag = created["payload"]["id"], created["headers"]["etag"]
    assert tag.startswith('"') and tag.endswith('"') and len(tag) == 34
    got = await comm.request("get", None, {"id": pk})
    assert (got["status"], got["headers"]) == (200, {"etag": tag})

    assert (await comm.request("subscribe", None, {"id": pk}))["status"] == 201
    updated = await comm.request("update", {"title": "Second"}, {"id": pk})
    push = await comm.receive_message()
    assert (push["route"], push["payload"]) == ("updated", updated["payload"])
    assert push["headers"]["etag"] == updated["headers"]["etag"] != tag
    assert (push["headers"]["subscription"], push["headers"]["seq"]) == (push["headers"]["subscription"], 1)

    patched = await comm.request("patch", {"title": "First"}, {"id": pk})  # the first representation again
    assert patched["headers"]["etag"] == tag
    assert (await comm.receive_message())["headers"]["etag"] == tag
    await comm.disconnect()


async def test_a_list_subscription_tags_created_and_updated_pushes_not_deleted_ones():
    comm = await connected()
    assert (await comm.request("subscribe"))["status"] == 201
    article = await db(Article.objects.create)(title="Listed")
    created = await comm.receive_message()
    got = await comm.request("get", None, {"id": article.pk})
    assert created["route"] == "created" and created["headers"]["etag"] == got["headers"]["etag"]
    await db(article.delete)()
    deleted = await comm.receive_message()
    assert deleted["route"] == "deleted" and "etag" not in deleted["headers"]
    await comm.disconnect()


async def test_the_etag_changes_with_the_representation_only():
    article = await db(Article.objects.create)(title="Same", body="one")
    comm = await connected()
    tag = (await comm.request("get", None, {"id": article.pk}))["headers"]["etag"]
    await db(Article.objects.filter(pk=article.pk).update)(body="two")  # not serialised
    assert (await comm.request("get", None, {"id": article.pk}))["headers"]["etag"] == tag
    await db(Article.objects.filter(pk=article.pk).update)(title="Other")
    assert (await comm.request("get", None, {"id": article.pk}))["headers"]["etag"] != tag
    await comm.disconnect()


async def test_if_none_match_with_the_current_tag_answers_304_without_payload():
    article = await db(Article.objects.create)(title="Cached")
    comm = await connected()
    tag = (await comm.request("get", None, {"id": article.pk}))["headers"]["etag"]
    for sent in [tag, f'"other", {tag}', f"W/{tag}", "*", f' {tag} ,']:
        reply = await comm.request("get", None, {"id": article.pk, "if-none-match": sent})
        assert (reply["status"], reply["headers"], reply["payload"]) == (304, {"etag": tag}, None), sent
    reply = await comm.request("get", None, {"id": article.pk, "If-None-Match": tag})  # any case, as in HTTP
    assert reply["status"] == 304
    reply = await comm.request("get", None, {"id": article.pk, "if-none-match": '"stale"'})
    assert (reply["status"], reply["headers"], reply["payload"]["title"]) == (200, {"etag": tag}, "Cached")
    assert (await comm.request("get", None, {"id": 999999, "if-none-match": "*"}))["status"] == 404
    await comm.disconnect()


@pytest.mark.parametrize(("route", "payload"), [("update", {"title": "Written"}), ("patch", {"title": "Written"}),
                                                ("delete", None), ("shout", None)])
async def test_a_stale_if_match_is_412_and_nothing_is_written(route, payload):
    article = await db(Article.objects.create)(title="Kept")
    comm = await connected()
    tag = (await comm.request("get", None, {"id": article.pk}))["headers"]["etag"]
    await db(Article.objects.filter(pk=article.pk).update)(title="Changed elsewhere")
    reply = await comm.request(route, payload, {"id": article.pk, "if-match": tag})
    assert (reply["status"], reply["payload"]["code"]) == (412, "precondition_failed"), reply
    assert reply["headers"]["etag"] not in (tag, None)
    assert await title(article.pk) == "Changed elsewhere"

    current = (await comm.request("get", None, {"id": article.pk}))["headers"]["etag"]
    reply = await comm.request(route, payload, {"id": article.pk, "if-match": f'"nope", {current}'})
    assert reply["status"] in (200, 204), reply
    if route in ("update", "patch", "shout"):
        assert reply["headers"]["etag"] != current
        assert reply["headers"]["etag"] == (await comm.request("get", None, {"id": article.pk}))["headers"]["etag"]
    await comm.disconnect()


async def test_if_match_star_passes_for_an_existing_object_and_a_weak_tag_never_matches():
    article = await db(Article.objects.create)(title="Star")
    comm = await connected()
    tag = (await comm.request("get", None, {"id": article.pk}))["headers"]["etag"]
    assert (await comm.request("patch", {"title": "A"}, {"id": article.pk, "if-match": "*"}))["status"] == 200
    tag = (await comm.request("get", None, {"id": article.pk}))["headers"]["etag"]
    reply = await comm.request("patch", {"title": "B"}, {"id": article.pk, "if-match": f"W/{tag}"})
    assert reply["status"] == 412 and await title(article.pk) == "A"
    await comm.disconnect()


async def test_get_etag_is_the_seam_for_a_version_column():
    article = await db(Article.objects.create)(title="Versioned", body="abc")
    comm = await connected(VersionRouter)
    assert (await comm.request("get", None, {"id": article.pk}))["headers"]["etag"] == '"v3"'
    assert (await comm.request("get", None, {"id": article.pk, "if-none-match": '"v3"'}))["status"] == 304
    reply = await comm.request("patch", {"title": "x"}, {"id": article.pk, "if-match": '"v2"'})
    assert reply["status"] == 412
    await comm.disconnect()


@pytest.mark.parametrize("value", [123, None, ["\"a\""], {"a": 1}, "x" * 1025, "abc", '"a" "b"', '"a', "W/abc",
                                   '"a"b', "", " , ", '"a", *', "\"caf\u00e9\u0001\""])
@pytest.mark.parametrize(("route", "name"), [("get", "if-none-match"), ("patch", "if-match"), ("delete", "if-match")])
async def test_a_malformed_precondition_is_400_and_nothing_is_written(value, route, name):
    article = await db(Article.objects.create)(title="Untouched")
    comm = await connected()
    reply = await comm.request(route, {"title": "Written"} if route == "patch" else None,
                               {"id": article.pk, name: value})
    assert (reply["status"], reply["payload"]["code"]) == (400, "invalid"), reply
    assert name in reply["payload"]["detail"]
    assert await title(article.pk) == "Untouched"
    await comm.disconnect()


async def test_the_same_header_twice_in_two_cases_is_400():
    article = await db(Article.objects.create)(title="Twice")
    comm = await connected()
    reply = await comm.request("delete", None, {"id": article.pk, "if-match": "*", "If-Match": '"x"'})
    assert (reply["status"], reply["payload"]["code"]) == (400, "invalid")
    await comm.disconnect()


def test_reading_a_precondition_takes_linear_time():
    for hostile in ['"a",' * 256, " ," * 512, '"' + "a" * 1022 + '"', "W/" * 512, '"a" ' + " " * 1019 + "x"]:
        started = time.perf_counter()
        for _ in range(100):
            try:
                conditional.precondition({"if-match": hostile[:1024]}, "if-match")
            except Exception:
                pass
        assert time.perf_counter() - started < 0.5, hostile[:20]
    assert conditional.precondition({"if-match": '"a",' * 256}, "if-match") == ['"a"'] * 256


def test_get_etag_results_are_quoted_and_checked():
    assert conditional.quote_etag("v3") == '"v3"'
    assert conditional.quote_etag('W/"v3"') == 'W/"v3"'
    with pytest.raises(ValueError):
        conditional.quote_etag('a"b')
    with pytest.raises(TypeError):
        conditional.quote_etag(3)


# -- the check is inside the write's transaction, with the row locked --------------------------

async def race(pk, tag):
    """Two connections send an update with the same ``if-match`` at once; their statuses."""
    first, second = await connected(SlowTitleRouter), await connected(SlowTitleRouter)
    headers = {"id": pk, "if-match": tag}
    sent = [await first.send_request("update", {"title": "from first"}, headers),
            await second.send_request("update", {"title": "from second"}, headers)]
    replies = [json.loads(await comm.receive_from(30)) for comm in (first, second)]
    assert [reply["uuid"] for reply in replies] == sent
    await first.disconnect()
    await second.disconnect()
    return sorted(reply["status"] for reply in replies), replies


@postgresql_only
async def test_two_concurrent_updates_with_the_same_if_match_one_succeeds_the_other_is_412():
    article = await db(Article.objects.create)(title="Raced")
    comm = await connected()
    tag = (await comm.request("get", None, {"id": article.pk}))["headers"]["etag"]
    await comm.disconnect()
    started = time.perf_counter()
    statuses, replies = await race(article.pk, tag)
    assert statuses == [200, 412], replies
    winner = next(reply for reply in replies if reply["status"] == 200)
    assert await title(article.pk) == winner["payload"]["title"]
    loser = next(reply for reply in replies if reply["status"] == 412)
    assert loser["headers"]["etag"] == winner["headers"]["etag"]
    assert time.perf_counter() - started >= 0.5  # the second waited for the first's lock, then failed fast


@postgresql_only
async def test_without_the_row_lock_the_same_race_applies_both_writes(monkeypatch):
    """The race above is real: when the row is not locked, both checks pass on the old row."""
    monkeypatch.setattr(type(connection.features), "has_select_for_update", False)
    article = await db(Article.objects.create)(title="Raced")
    comm = await connected()
    tag = (await comm.request("get", None, {"id": article.pk}))["headers"]["etag"]
    await comm.disconnect()
    statuses, _ = await race(article.pk, tag)
    assert statuses == [200, 200]


# -- end to end, through real servers ---------------------------------------------------------

@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
async def test_conditional_requests_through_a_real_server(server, tmp_path, request):
    if connection.vendor == "postgresql":  # the test's own database
        settings = connection.settings_dict
        url = f"postgresql://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"
    else:
        url = f"sqlite:///{request.getfixturevalue('database')}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'testproject'}", "DATABASE_URL": url}
    port = free_port()
    with server_process(SERVERS[server](port, "tests.asgi:application"), port, tmp_path / "server.log", env=env):
        async with connect(f"ws://127.0.0.1:{port}/ws/articles/") as writer_ws, \
                connect(f"ws://127.0.0.1:{port}/ws/articles/") as watcher_ws:
            writer, watcher = CallingClient(writer_ws), CallingClient(watcher_ws)
            created = await writer.call("create", {"title": "Over the wire"})
            pk, tag = created["payload"]["id"], created["headers"]["etag"]
            assert (await watcher.call("subscribe", None, {"id": pk}))["status"] == 201
            assert (await writer.call("get", None, {"id": pk, "if-none-match": tag}))["status"] == 304
            updated = await writer.call("patch", {"title": "Changed"}, {"id": pk, "if-match": tag})
            assert updated["status"] == 200 and updated["headers"]["etag"] != tag
            stale = await writer.call("patch", {"title": "Lost"}, {"id": pk, "if-match": tag})
            assert (stale["status"], stale["payload"]["code"]) == (412, "precondition_failed")
            assert (await writer.call("delete", None, {"id": pk, "if-match": tag}))["status"] == 412
            bad = await writer.call("delete", None, {"id": pk, "if-match": "x" * 2000})
            assert bad["status"] == 400
            push = (await watcher.pushes(wait=2))[0]
            assert (push["route"], push["headers"]["etag"]) == ("updated", updated["headers"]["etag"])
            got = await writer.call("get", None, {"id": pk})
            assert (got["payload"]["title"], got["headers"]["etag"]) == ("Changed", updated["headers"]["etag"])
            assert (await writer.call("delete", None, {"id": pk, "if-match": got["headers"]["etag"]}))["status"] == 204
