"""Model subscriptions: pushes of created/updated/deleted objects a subscriber may see."""

import asyncio
import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from rest_framework import permissions

from demo.models import Article
from django_channels_router.testing import RouterCommunicator
from drf_bridge import ModelSocketRouter, notify_change, socket_route
from tests.drf import ArticleRouter, NoteRouter, NoteSerializer, PagedArticleRouter
from tests.factories import ArticleFactory, NoteFactory, UserFactory
from tests.models import Note

pytestmark = pytest.mark.django_db(transaction=True)
db = database_sync_to_async


async def subscriber(router=ArticleRouter, user=None):
    comm = RouterCommunicator(router.as_asgi(), "/ws/", user=user or AnonymousUser())
    assert (await comm.connect())[0]
    return comm


async def subscribe(comm, payload=None, headers=None):
    reply = await comm.request("subscribe", payload, headers)
    assert reply["status"] == 201, reply
    assert reply["payload"]["subscription"] == reply["uuid"]
    return reply["uuid"]


async def nothing_pushed(comm):
    assert await comm.receive_nothing(timeout=0.2)


async def test_object_subscription_pushes_updates_and_the_delete():
    article = await db(ArticleFactory)(title="Watched")
    other = await db(ArticleFactory)(title="Other")
    comm = await subscriber()
    subscription = await subscribe(comm, None, {"id": article.pk})

    article.title = "Changed"
    await db(article.save)()
    push = await comm.receive_message()
    etag = push["headers"].pop("etag")  # the object's tag, as get gives it (tests/test_conditional.py)
    push["headers"].pop("position")  # where a resume continues (tests/test_resume.py)
    assert (push["route"], push["status"], push["headers"]) == ("updated", 200, {"subscription": subscription, "model": "demo.article", "seq": 1})
    assert etag == (await comm.request("get", None, {"id": article.pk}))["headers"]["etag"]
    assert (push["payload"]["id"], push["payload"]["title"]) == (article.pk, "Changed")

    other.title = "Unwatched"
    await db(other.save)()
    await nothing_pushed(comm)

    pk = article.pk
    await db(article.delete)()
    push = await comm.receive_message()
    assert (push["route"], push["payload"]) == ("deleted", {"id": pk})
    await comm.disconnect()


async def test_list_subscription_follows_the_filtered_queryset():
    await db(ArticleFactory)(title="apple tart")
    comm = await subscriber(PagedArticleRouter)  # read-only, with SearchFilter
    subscription = await subscribe(comm, {"search": "apple"})

    pie = await db(ArticleFactory)(title="apple pie")
    push = await comm.receive_message()
    assert (push["route"], push["payload"]["title"], push["headers"]["subscription"]) == ("created", "apple pie", subscription)

    await db(ArticleFactory)(title="banana")
    await nothing_pushed(comm)

    pie.title = "apple crumble"
    await db(pie.save)()
    assert (await comm.receive_message())["route"] == "updated"

    pie.title = "plum crumble"  # leaves the subscriber's queryset
    await db(pie.save)()
    push = await comm.receive_message()
    assert (push["route"], push["payload"]) == ("deleted", {"id": pie.pk})
    pie.title = "plum crumble!"  # no longer the subscriber's business
    await db(pie.save)()
    await nothing_pushed(comm)
    await comm.disconnect()


async def test_pushes_follow_commits_once_with_the_final_state():
    article = await db(ArticleFactory)(title="v1")
    comm = await subscriber()
    await subscribe(comm, None, {"id": article.pk})

    def several_saves():
        with transaction.atomic():
            for title in ("v2", "v3", "v4"):
                article.title = title
                article.save()

    await db(several_saves)()
    push = await comm.receive_message()
    assert push["payload"]["title"] == "v4"
    await nothing_pushed(comm)

    def rolled_back():
        with transaction.atomic():
            article.title = "never"
            article.save()
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        await db(rolled_back)()
    await nothing_pushed(comm)

    def created_and_deleted():
        with transaction.atomic():
            ArticleFactory(title="fleeting").delete()

    list_comm = await subscriber()
    await subscribe(list_comm)
    await db(created_and_deleted)()
    await nothing_pushed(list_comm)
    await comm.disconnect()
    await list_comm.disconnect()


async def test_subscribers_only_hear_of_objects_they_may_get():
    alice, bob = await db(UserFactory)(), await db(UserFactory)()
    alices = await subscriber(NoteRouter, alice)
    await subscribe(alices)
    await db(NoteFactory)(owner=bob, title="Bob's")
    await nothing_pushed(alices)
    await db(NoteFactory)(owner=alice, title="Alice's")
    assert (await alices.receive_message())["payload"]["title"] == "Alice's"
    await alices.disconnect()


class IsOwnerOrShared(permissions.BasePermission):
    def has_object_permission(self, request, view, obj):
        return obj.shared or obj.owner == request.user


class SharedNotes(ModelSocketRouter):
    queryset = Note.objects.all()
    serializer_class = NoteSerializer
    permission_classes = [permissions.IsAuthenticated, IsOwnerOrShared]


async def test_object_permissions_decide_each_push_and_a_revoked_object_is_deleted():
    owner, reader = await db(UserFactory)(), await db(UserFactory)()
    note = await db(NoteFactory)(owner=owner, shared=True, title="Shared")
    readers = await subscriber(SharedNotes, reader)
    await subscribe(readers)
    note.title = "Still shared"
    await db(note.save)()
    assert (await readers.receive_message())["route"] == "updated"
    note.shared = False
    await db(note.save)()
    assert (await readers.receive_message())["payload"] == {"id": note.pk}
    secret = await db(NoteFactory)(owner=owner, shared=False, title="Secret")
    await nothing_pushed(readers)
    assert (await readers.request("subscribe", None, {"id": secret.pk}))["status"] == 403
    await readers.disconnect()


async def test_subscribe_is_checked_like_get_and_list():
    article = await db(ArticleFactory)()
    guarded = type("Guarded", (ArticleRouter,), {"permission_classes": [permissions.IsAuthenticated]})
    comm = await subscriber(guarded)
    assert (await comm.request("subscribe"))["status"] == 401
    assert (await comm.request("subscribe", None, {"id": article.pk}))["status"] == 401
    await comm.disconnect()
    comm = await subscriber()
    assert (await comm.request("subscribe", None, {"id": 10**6}))["status"] == 404
    assert (await comm.request("subscribe", "not a query"))["status"] == 400
    await comm.disconnect()


async def test_unsubscribe_one_or_all_and_the_group_is_left():
    article = await db(ArticleFactory)(title="a")
    comm = await subscriber()
    first = await subscribe(comm, None, {"id": article.pk})
    await subscribe(comm)
    assert (await comm.request("unsubscribe", {"subscription": first}))["status"] == 204
    article.title = "b"
    await db(article.save)()
    push = await comm.receive_message()
    assert push["headers"]["subscription"] != first
    await nothing_pushed(comm)
    assert (await comm.request("unsubscribe", {"subscription": "unknown"}))["status"] == 404
    assert (await comm.request("unsubscribe"))["status"] == 204
    assert not get_channel_layer().groups.get("drf_bridge.demo.article")
    article.title = "c"
    await db(article.save)()
    await nothing_pushed(comm)
    await comm.disconnect()


async def test_notify_change_by_hand_for_writes_without_signals():
    articles = [await db(ArticleFactory)(title=f"draft {n}") for n in range(2)]
    comm = await subscriber()
    await subscribe(comm)

    def bulk_update():
        Article.objects.filter(title__startswith="draft").update(body="published")
        notify_change(Article, [a.pk for a in articles])

    await db(bulk_update)()
    pushes = [await comm.receive_message(), await comm.receive_message()]
    assert sorted(p["payload"]["id"] for p in pushes) == sorted(a.pk for a in articles)
    assert {p["payload"]["body"] for p in pushes} == {"published"}
    with pytest.raises(ValueError, match="Not primary keys"):
        notify_change(Article, ["not a key"])
    await comm.disconnect()


def test_a_write_succeeds_and_logs_when_the_channel_layer_is_down(caplog):
    from django.test import override_settings

    from tests.conftest import free_port

    dead = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                        "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]}}}
    with override_settings(CHANNEL_LAYERS=dead):
        article = ArticleFactory(title="Saved anyway")
    assert Article.objects.filter(pk=article.pk).exists()
    assert "Could not notify subscribers of 1 change(s) to demo.article" in caplog.text


async def test_a_write_reply_never_waits_for_the_channel_layer():
    from django.test import override_settings

    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "tests.layers.SlowGroupSendLayer"}}):
        watcher, writer = await subscriber(), await subscriber()
        await subscribe(watcher)
        reply = await writer.request("create", {"title": "Fast reply"})
        assert reply["status"] == 201
        await nothing_pushed(watcher)  # the push is still on its way through the (slow) layer
        push = await watcher.receive_message(timeout=3)
        assert (push["route"], push["payload"]["title"]) == ("created", "Fast reply")
        await watcher.disconnect()
        await writer.disconnect()


class LongRouter(ArticleRouter):
    @socket_route("saveThenWork", method="GET")  # GET: no transaction, so the save commits at once
    def save_then_work(self, payload, headers):
        Article.objects.create(title="Early")
        time.sleep(0.6)
        return {"payload": "done"}

    @socket_route("workThenSave", method="GET")
    def work_then_save(self, payload, headers):
        time.sleep(0.3)
        Article.objects.create(title="Late")
        return {"payload": "done"}


async def test_a_long_handler_pushes_its_committed_changes_before_it_returns():
    watcher, worker = await subscriber(), await subscriber(LongRouter)
    await subscribe(watcher)
    await worker.send_request("saveThenWork", uuid="long")
    push = await watcher.receive_message(timeout=0.4)
    assert (push["route"], push["payload"]["title"]) == ("created", "Early")
    assert (await worker.receive_json_from(timeout=3))["payload"] == "done"
    await watcher.disconnect()
    await worker.disconnect()


async def test_a_change_committed_after_the_client_left_is_still_pushed():
    watcher, leaver = await subscriber(), await subscriber(LongRouter)
    await subscribe(watcher)
    await leaver.send_request("workThenSave")
    await asyncio.sleep(0.1)
    await leaver.disconnect()  # cancels the request; its handler goes on in its thread and commits
    push = await watcher.receive_message(timeout=3)
    assert (push["route"], push["payload"]["title"]) == ("created", "Late")
    await watcher.disconnect()


async def test_a_write_through_a_router_succeeds_and_logs_when_the_channel_layer_fails(caplog):
    from django.test import override_settings

    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "tests.layers.FailingGroupSendLayer"}}):
        writer = await subscriber()
        reply = await writer.request("create", {"title": "Saved anyway"})
        await writer.disconnect()
    assert reply["status"] == 201
    assert await db(Article.objects.filter(title="Saved anyway").exists)()
    for _ in range(100):
        if "Could not notify subscribers of 1 change(s) to demo.article" in caplog.text:
            break
        await asyncio.sleep(0.02)
    assert "Could not notify subscribers of 1 change(s) to demo.article" in caplog.text
    assert "the channel layer is down" in caplog.text


IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
REDIS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"]}}}


@pytest.mark.parametrize("layers", [IN_MEMORY, REDIS])
def test_checks_accept_subscriptions_on_a_channel_layer(layers):
    # The in-memory layer is what the README's development setup uses: one process hears its own changes.
    from django.core import checks
    from django.test import override_settings

    with override_settings(CHANNEL_LAYERS=layers):
        assert not [m.id for m in checks.run_checks() if m.id.startswith("drf_bridge.W")]


async def test_checks_warn_without_a_channel_layer_where_subscribe_fails():
    from django.core import checks
    from django.test import override_settings

    with override_settings(CHANNEL_LAYERS={}):
        found = [m for m in checks.run_checks() if m.id == "drf_bridge.W001"]
        assert len(found) == 1 and "CHANNEL_LAYERS" in found[0].hint
        comm = RouterCommunicator(ArticleRouter.as_asgi(), "/ws/")  # what W001 warns of
        assert (await comm.connect())[0]
        assert (await comm.request("subscribe"))["status"] != 201
        await comm.disconnect()


def test_deploy_checks_warn_of_the_in_memory_layer_only():
    from django.core import checks
    from django.test import override_settings

    for layers, expected in ((IN_MEMORY, ["drf_bridge.W002"]), (REDIS, [])):
        with override_settings(CHANNEL_LAYERS=layers):
            found = [m for m in checks.run_checks(include_deployment_checks=True) if m.id.startswith("drf_bridge.W")]
        assert [m.id for m in found] == expected
        assert all("RedisChannelLayer" in m.hint for m in found)


def test_checks_need_the_app_for_subscriptions():
    from django.core.checks import registry
    from django.test import modify_settings

    from drf_bridge.checks import check_subscriptions

    assert check_subscriptions in registry.registry.get_checks()  # by the app's ready()
    with modify_settings(INSTALLED_APPS={"remove": ["drf_bridge"]}):
        assert [e.id for e in check_subscriptions()] == ["drf_bridge.E001"]


# -- isolation, failures and ordering -------------------------------------------------------------

class OwnerNotes(ModelSocketRouter):
    """Notes of the owner named in the URL: the queryset reads the connection's URL kwargs."""

    serializer_class = NoteSerializer
    permission_classes = [permissions.AllowAny]

    def get_queryset(self):
        return Note.objects.filter(owner_id=self.kwargs["owner"])


async def test_connections_with_different_querysets_never_share_an_evaluation():
    alice, bob = await db(UserFactory)(), await db(UserFactory)()
    comms = {}
    for owner in (alice, bob):
        for n in range(3):
            comm = RouterCommunicator(OwnerNotes.as_asgi(), f"/ws/{owner.pk}/", user=AnonymousUser())
            comm.scope["url_route"] = {"kwargs": {"owner": owner.pk}}
            await comm.connect()
            await subscribe(comm)
            comms[(owner.username, n)] = comm
    await db(NoteFactory)(owner=alice, title="alice only")
    for (name, _), comm in comms.items():
        if name == alice.username:
            assert (await comm.receive_message())["payload"]["title"] == "alice only"
        else:
            await nothing_pushed(comm)
        await comm.disconnect()


async def test_a_per_user_queryset_delete_is_pushed_and_the_connection_lives():
    alice = await db(UserFactory)()
    note = await db(NoteFactory)(owner=alice)
    comm = await subscriber(NoteRouter, alice)
    await subscribe(comm)
    pk = note.pk
    await db(note.delete)()
    assert (await comm.receive_message())["payload"] == {"id": pk}
    assert (await comm.request("list"))["status"] == 200
    await comm.disconnect()


async def test_losing_the_view_permission_stops_the_data():
    class Switch(permissions.BasePermission):
        open = True

        def has_permission(self, request, view):
            return Switch.open

    router = type("Switched", (ArticleRouter,), {"permission_classes": [Switch]})
    comm = await subscriber(router)
    await subscribe(comm)
    Switch.open = False
    try:
        await db(ArticleFactory)(title="not for you")
        await nothing_pushed(comm)
    finally:
        Switch.open = True
    await comm.disconnect()


async def test_a_rolled_back_savepoint_loses_no_push():
    comm = await subscriber()
    await subscribe(comm)

    def create_then_roll_back_a_delete():
        with transaction.atomic():
            article = ArticleFactory(title="survivor")
            try:
                with transaction.atomic():
                    Article.objects.filter(pk=article.pk).delete()
                    raise RuntimeError("roll the delete back")
            except RuntimeError:
                pass

    await db(create_then_roll_back_a_delete)()
    push = await comm.receive_message()
    assert (push["route"], push["payload"]["title"]) == ("created", "survivor")
    await comm.disconnect()


async def test_a_change_during_the_snapshot_is_not_lost():
    class Racing(ArticleRouter):
        def visible_pks(self, subscription):
            seen = super().visible_pks(subscription)
            ArticleFactory(title="committed in the gap")  # after the snapshot, before the reply
            return seen

    comm = await subscriber(Racing)
    await subscribe(comm)
    assert (await comm.receive_message())["payload"]["title"] == "committed in the gap"
    await comm.disconnect()


async def test_a_failed_subscribe_leaves_nothing_behind():
    class Failing(ArticleRouter):
        def visible_pks(self, subscription):
            raise RuntimeError("the database went away")

    comm = await subscriber(Failing)
    assert (await comm.request("subscribe"))["status"] == 500
    await db(ArticleFactory)()
    await nothing_pushed(comm)
    assert not get_channel_layer().groups.get("drf_bridge.demo.article")
    await comm.disconnect()


async def test_subscribe_and_unsubscribe_never_run_the_orm_on_the_event_loop():
    class GroupProbe(permissions.BasePermission):
        def has_permission(self, request, view):  # checked for every route, unsubscribe included
            return request.user.groups.first() is None

    class GroupAware(ArticleRouter):
        permission_classes = [GroupProbe]

    comm = await subscriber(GroupAware, await db(UserFactory)())
    assert (await comm.request("subscribe"))["status"] == 201
    assert (await comm.request("unsubscribe"))["status"] == 204
    await comm.disconnect()


async def test_saves_through_a_proxy_model_are_pushed():
    from tests.models import ArticleProxy

    comm = await subscriber()
    await subscribe(comm)
    await db(ArticleProxy.objects.create)(title="via proxy")
    assert (await comm.receive_message())["payload"]["title"] == "via proxy"
    await comm.disconnect()


async def test_a_slow_push_never_holds_up_ping_and_none_follows_unsubscribe():
    import time

    from rest_framework import serializers

    class SlowSerializer(serializers.ModelSerializer):
        class Meta:
            model = Article
            fields = ["id", "title"]

        def to_representation(self, instance):
            time.sleep(0.5)
            return super().to_representation(instance)

    router = type("Slow", (ArticleRouter,), {"serializer_class": SlowSerializer})
    comm = await subscriber(router)
    subscription = await subscribe(comm)
    await db(ArticleFactory)(title="slow")
    await comm.send_request("PING", uuid="ping")
    first = await comm.receive_message()
    assert first["uuid"] == "ping"
    reply = await comm.request("unsubscribe", {"subscription": subscription})
    assert reply["status"] == 204
    assert [m["route"] for m in comm._received] == ["created"]  # delivered before the 204 (request() kept it)
    assert (await comm.receive_message())["payload"]["title"] == "slow"
    await nothing_pushed(comm)
    await comm.disconnect()
