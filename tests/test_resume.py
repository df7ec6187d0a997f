"""Subscriptions that resume: ``position`` on the reply and every push, ``subscribe`` with
``resume-from`` replays what changed since, from the history of changes in the database."""

import asyncio
import json
import subprocess
import sys
import threading
import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction
from django.db.models import F
from django.test import override_settings
from websockets.asyncio.client import connect

from demo.models import Article
from django_channels_router.testing import RouterCommunicator
from drf_bridge.history import prune
from drf_bridge.models import ChangeRecord
from tests.conftest import ROOT, SERVER_ENV, CallingClient, daphne, reachable, shared_database_url
from tests.drf import ArticleRouter, NoteRouter, NoteSerializer
from tests.factories import ArticleFactory, NoteFactory, UserFactory
from tests.models import Note

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]
db = database_sync_to_async


async def connected(router=ArticleRouter, user=None):
    comm = RouterCommunicator(router.as_asgi(), "/ws/", user=user or AnonymousUser())
    assert (await comm.connect())[0]
    return comm


async def pushes_until_quiet(comm, quiet=0.5):
    """Every push that comes before ``quiet`` seconds pass without one."""
    received = []
    while not await comm.receive_nothing(timeout=quiet):
        received.append(await comm.receive_message())
    return received


def apply(copy, pushes):
    """What a client does with a subscription's pushes: its copy of the list, by id."""
    for push in pushes:
        if push["route"] in ("created", "updated"):
            copy[push["payload"]["id"]] = push["payload"]
        elif push["route"] == "deleted":
            copy.pop(push["payload"]["id"], None)
    return copy


@db
def long_ago():
    """The history so far, as if written an hour ago: a replay calls those objects ``updated``."""
    ChangeRecord.objects.exclude(model="").update(at=F("at") - timedelta(hours=1))


@db
def articles_now():
    return {article.pk: article.title for article in Article.objects.all()}


async def test_the_reply_and_every_push_carry_a_position_and_a_resume_replays_what_changed_since():
    kept, changed, doomed = [await db(ArticleFactory)(title=t) for t in ("kept", "changed", "doomed")]
    doomed_pk = doomed.pk
    await long_ago()
    comm = await connected()
    reply = await comm.request("subscribe")
    assert reply["status"] == 201 and isinstance(reply["headers"]["position"], str)
    assert len(reply["headers"]["position"]) <= 200 and "resumed" not in reply["headers"]
    copy = {a.pk: {"id": a.pk, "title": a.title} for a in (kept, changed, doomed)}  # as a list would give
    await db(ArticleFactory)(title="seen live")
    live = await pushes_until_quiet(comm)
    assert [p["route"] for p in live] == ["created"] and isinstance(live[0]["headers"]["position"], str)
    apply(copy, live)
    position = live[-1]["headers"]["position"]
    await comm.disconnect()

    # While the client is away: one created, one changed, one deleted.
    new = await db(ArticleFactory)(title="made while away")
    changed.title = "changed while away"
    await db(changed.save)()
    await db(doomed.delete)()

    comm = await connected()
    reply = await comm.request("subscribe", None, {"resume-from": position})
    assert reply["status"] == 201 and reply["headers"]["resumed"] is True
    replay = await pushes_until_quiet(comm)
    routes = {(p["route"], p["payload"]["id"]) for p in replay}
    assert {("created", new.pk), ("updated", changed.pk), ("deleted", doomed_pk)} <= routes
    assert [p["headers"]["seq"] for p in replay] == list(range(1, len(replay) + 1))
    assert all(p["headers"]["subscription"] == reply["uuid"] and p["headers"]["position"] for p in replay)
    assert {pk: item["title"] for pk, item in apply(copy, replay).items()} == await articles_now()

    # Then live, numbered on.
    after = await db(ArticleFactory)(title="live again")
    push = await comm.receive_message()
    assert (push["route"], push["payload"]["id"], push["headers"]["seq"]) == ("created", after.pk, len(replay) + 1)
    await comm.disconnect()


async def test_the_replay_comes_after_the_reply_and_reads_the_objects_as_they_are_now():
    article = await db(ArticleFactory)(title="first")
    await long_ago()
    comm = await connected()
    position = (await comm.request("subscribe"))["headers"]["position"]
    await comm.disconnect()
    for title in ("second", "third"):
        article.title = title
        await db(article.save)()
    comm = await connected()
    await comm.send_request("subscribe", None, {"resume-from": position}, uuid="again")
    frames = [await comm.receive_message() for _ in range(2)]
    assert [(f["route"], f["headers"].get("subscription")) for f in frames] == [("subscribe", None), ("updated", "again")]
    assert frames[0]["uuid"] == "again"
    assert frames[1]["payload"]["title"] == "third"  # one push per object, as it is now
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="SQLite runs one write transaction at a time, so no commit can come late")
async def test_a_change_that_commits_after_a_later_one_was_pushed_is_replayed():
    """The trap of "everything after id N": a transaction writes its record (a lower id), a later
    change commits and is pushed (its position is after that record), and only then does the first
    transaction commit. A resume from the later push's position must still bring the first."""
    comm = await connected()
    await comm.request("subscribe")
    written, release = threading.Event(), threading.Event()

    def late_writer():
        with transaction.atomic():
            late = Article.objects.create(title="committed late")
            written.set()
            release.wait(10)
        connection.close()
        return late

    late_task = asyncio.get_running_loop().run_in_executor(None, late_writer)
    await asyncio.get_running_loop().run_in_executor(None, written.wait, 10)
    early = await db(ArticleFactory)(title="committed first")
    push = await comm.receive_message()
    assert push["payload"]["id"] == early.pk
    await comm.disconnect()
    release.set()
    late = await late_task
    assert late.pk < early.pk  # the id order is not the commit order

    comm = await connected()
    reply = await comm.request("subscribe", None, {"resume-from": push["headers"]["position"]})
    assert reply["headers"]["resumed"] is True
    assert ("created", late.pk) in {(p["route"], p["payload"]["id"]) for p in await pushes_until_quiet(comm)}
    await comm.disconnect()


async def test_a_resume_sees_as_the_subscriber_may_now():
    """Replayed through the subscriber's queryset, permissions and serializer as they are now: a
    note given to another user is ``deleted`` for the one who had it, and never shown to anyone else."""
    owner, other = await db(UserFactory)(), await db(UserFactory)()
    given, mine = await db(NoteFactory)(owner=owner, title="given away"), await db(NoteFactory)(owner=owner)
    await long_ago()
    comm = await connected(NoteRouter, owner)
    position = (await comm.request("subscribe"))["headers"]["position"]
    await comm.disconnect()

    given.owner = other
    await db(given.save)()
    mine.title = "still mine"
    await db(mine.save)()

    comm = await connected(NoteRouter, owner)
    assert (await comm.request("subscribe", None, {"resume-from": position}))["headers"]["resumed"] is True
    replay = {(p["route"], p["payload"]["id"]): p["payload"] for p in await pushes_until_quiet(comm)}
    assert set(replay) == {("deleted", given.pk), ("updated", mine.pk)}
    assert replay[("updated", mine.pk)] == await db(lambda: NoteSerializer(Note.objects.get(pk=mine.pk)).data)()
    await comm.disconnect()

    # The other user gets the note now theirs, and for the one changed that they may not see, its
    # id alone (they might have held it: docs/explanation/security.md).
    comm = await connected(NoteRouter, other)
    assert (await comm.request("subscribe", None, {"resume-from": position}))["headers"]["resumed"] is True
    replay = {(p["route"], p["payload"]["id"]): p["payload"] for p in await pushes_until_quiet(comm)}
    assert set(replay) == {("updated", given.pk), ("deleted", mine.pk)}
    assert replay[("updated", given.pk)]["title"] == "given away" and replay[("deleted", mine.pk)] == {"id": mine.pk}
    await comm.disconnect()


async def test_an_object_subscription_replays_its_own_object_only():
    watched, other = await db(ArticleFactory)(title="watched"), await db(ArticleFactory)(title="other")
    await long_ago()
    comm = await connected()
    position = (await comm.request("subscribe", {"id": watched.pk}))["headers"]["position"]
    await comm.disconnect()
    for article in (watched, other):
        article.title = "changed"
        await db(article.save)()
    comm = await connected()
    reply = await comm.request("subscribe", {"id": watched.pk}, {"resume-from": position})
    assert reply["headers"]["resumed"] is True
    assert [(p["route"], p["payload"]["id"]) for p in await pushes_until_quiet(comm)] == [("updated", watched.pk)]
    await comm.disconnect()


async def resync_after(comm, position, reason, positioned=True):
    reply = await comm.request("subscribe", None, {"resume-from": position})
    assert reply["status"] == 201 and reply["headers"]["resumed"] is False
    pushes = await pushes_until_quiet(comm)
    assert [(p["route"], p["payload"]) for p in pushes] == [("resync", {"reason": reason})]
    assert pushes[0]["headers"]["seq"] == 1 and ("position" in pushes[0]["headers"]) is positioned
    return reply


async def test_a_history_pruned_past_the_position_is_a_resync():
    comm = await connected()
    position = (await comm.request("subscribe"))["headers"]["position"]
    await comm.disconnect()
    for i in range(6):
        await db(ArticleFactory)(title=f"burst {i}")
    with override_settings(CHANNELS_ROUTER={"CHANGE_HISTORY_ROWS": 2}):
        assert await db(prune)(batch=3) == 3  # one bounded batch at a time, oldest first
        assert await db(prune)() == 1
        assert await db(prune)() == 0
    assert await db(ChangeRecord.objects.exclude(model="").count)() == 2
    comm = await connected()
    await resync_after(comm, position, "resume-from is older than the history of changes reaches back")
    await comm.disconnect()


async def test_records_older_than_the_history_keeps_are_pruned():
    await db(ArticleFactory)()
    await asyncio.sleep(1.1)
    recent = await db(ArticleFactory)()
    with override_settings(CHANNELS_ROUTER={"CHANGE_HISTORY_SECONDS": 1}):
        assert await db(prune)() == 1
    assert await db(lambda: list(ChangeRecord.objects.exclude(model="").values_list("pk_value", flat=True)))() == [
        str(recent.pk)]


async def test_a_position_of_another_server_is_a_resync_and_a_malformed_one_is_refused():
    comm = await connected()
    with override_settings(SECRET_KEY="another project's key"):
        foreign = (await comm.request("subscribe", None, None, uuid="foreign"))["headers"]["position"]
    await resync_after(comm, foreign, "resume-from is not a position this server gave")
    for bad in ("yesterday", 42, None, "1:" + "a" * 300):
        reply = await comm.request("subscribe", None, {"resume-from": bad})
        assert (reply["status"], reply["payload"]["code"]) == (400, "invalid"), bad
    await comm.disconnect()


async def test_the_history_is_written_with_the_change_and_rolls_back_with_it():
    @db
    def write():
        with transaction.atomic():
            kept = Article.objects.create(title="kept")
            kept.title = "kept, changed"
            kept.save()
        try:
            with transaction.atomic():
                Article.objects.create(title="rolled back")
                raise RuntimeError
        except RuntimeError:
            pass
        return kept

    comm = await connected()  # a router class that subscribes to Article exists: its changes are recorded
    kept = await write()
    records = await db(lambda: list(ChangeRecord.objects.exclude(model="").values_list("model", "pk_value", "created")))()
    assert records == [("demo.article", str(kept.pk), True)]  # one per object and transaction
    await comm.disconnect()


async def test_with_the_history_off_nothing_is_recorded_and_nothing_resumes():
    comm = await connected()
    position = (await comm.request("subscribe"))["headers"]["position"]
    with override_settings(CHANNELS_ROUTER={"CHANGE_HISTORY_SECONDS": 0}):
        reply = await comm.request("subscribe")
        assert "position" not in reply["headers"]
        await db(ArticleFactory)()
        assert all("position" not in push["headers"] for push in await pushes_until_quiet(comm))
        assert await db(ChangeRecord.objects.count)() == 0
        await resync_after(comm, position, "this server keeps no history of changes", positioned=False)
    await comm.disconnect()


# -- through real servers ------------------------------------------------------------------------

@pytest.fixture
def servers(servers_on_test_database):
    return tuple(f"{base}/ws/articles/" for base in servers_on_test_database)


async def test_a_subscription_resumes_on_another_server_process(servers):
    async with connect(servers[0]) as ws:
        position = (await CallingClient(ws).call("subscribe"))["headers"]["position"]
    async with connect(servers[1]) as ws:  # the change, and the resume, on the other process
        client = CallingClient(ws)
        created = await client.call("create", {"title": "while away"})
        reply = await client.call("subscribe", None, {"resume-from": position})
        assert reply["headers"]["resumed"] is True
        pushes = await client.pushes()
    assert [(p["route"], p["payload"]["id"]) for p in pushes] == [("created", created["payload"]["id"])]


#: A process that changes an article and dies once the change is committed, before it sends the
#: change event: as a server killed with SIGKILL (or by the OOM killer) right after a commit.
DIES_AFTER_COMMIT = """
import os, django
django.setup()
from django.db import transaction
from demo.models import Article
with transaction.atomic():
    transaction.on_commit(lambda: os._exit(0))  # runs before the change event's own on_commit
    print(Article.objects.create(title="its sender died").pk, flush=True)
"""


async def pushes_after_a_writer_dies(script, tmp_path, wait):
    """Subscribe on a daphne (channels-redis, the test's PostgreSQL database), run ``script`` in a
    process of its own that writes and dies, then collect the pushes: the first within 10 s, the
    rest until ``wait`` seconds pass without one. Returns the script's output and the pushes."""
    if not reachable(6379):
        pytest.skip("Redis is not reachable on 127.0.0.1:6379: the two processes share a channels-redis layer")
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "REDIS_URL": "redis://127.0.0.1:6379/0",
           "CHANNELS_REDIS_PREFIX": f"dcr-test-{uuid.uuid4().hex[:8]}", "DATABASE_URL": shared_database_url()}
    with daphne("tests.asgi:application", tmp_path, **env) as server:
        async with connect(f"{server}/ws/articles/") as ws:
            client = CallingClient(ws)
            assert (await client.call("subscribe"))["status"] == 201
            done = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script], cwd=ROOT,
                                           env={**SERVER_ENV, **env}, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout, [json.loads(await asyncio.wait_for(ws.recv(), 10)), *await client.pushes(wait=wait)]


async def test_a_change_whose_sender_died_before_sending_its_event_is_pushed(tmp_path, django_db_setup):
    """The history has the record of a committed change whose event died with its process; the
    server that holds the subscription finds it there within seconds (drf_bridge.sweeper)."""
    output, pushes = await pushes_after_a_writer_dies(DIES_AFTER_COMMIT, tmp_path, wait=1)
    assert await db(Article.objects.filter(pk=int(output)).exists)()  # committed, though no event went
    assert [(p["route"], p["payload"]["id"]) for p in pushes] == [("created", int(output))]


#: A sender killed after its event numbered n+1 went but before event n did (two writes that
#: committed at once on two threads, the later one's send first): the change of event n is
#: committed and in the history, its event never goes, and the numbers show the gap.
NUMBERED_NEVER_SENT = """
import os, django
django.setup()
from demo.models import Article
from drf_bridge import changes
Article.objects.create(title="one")
send = changes._Changes.send
changes._Changes.send = lambda self: [changes._next_number(label) for label in self.pks]  # numbered, never sent
Article.objects.create(title="two")
changes._Changes.send = send
Article.objects.create(title="three")
os._exit(0)  # as SIGKILL: no markers
"""


async def test_a_gap_left_by_a_dead_sender_is_pushed_from_the_history_without_a_resync(tmp_path, django_db_setup):
    """Gap detection sees event n missing; as no consumer of the process heard of it, the sweep
    pushes its change from the history, and the subscription needs no re-read."""
    _, pushes = await pushes_after_a_writer_dies(NUMBERED_NEVER_SENT, tmp_path, wait=8)  # a resync: GAP_WAIT
    assert [p["route"] for p in pushes] == ["created"] * 3
    assert {p["payload"]["title"] for p in pushes} == {"one", "two", "three"}
