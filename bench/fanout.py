"""One model change fanned out to N subscribers of one process (in-memory channel layer).

    .venv/bin/python bench/fanout.py [--subscribers 500]

Prints the time from the commit until every subscriber has its push, and how many SQL
queries that delivery cost: subscribers that see the model the same way (same user, same
query) share one evaluation, so the count stays flat as N grows.
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ["BENCH_DATABASE"] = str(Path(tempfile.mkdtemp()) / "fanout.sqlite3")

import django  # noqa: E402

django.setup()

from asgiref.sync import sync_to_async  # noqa: E402
from django.contrib.auth.models import AnonymousUser  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.backends import utils  # noqa: E402

from demo.consumers import ArticleSocket  # noqa: E402
from demo.models import Article  # noqa: E402
from django_channels_router.testing import RouterCommunicator  # noqa: E402

queries = 0
_execute = utils.CursorWrapper.execute


def counting_execute(self, sql, params=None):
    global queries
    queries += 1
    return _execute(self, sql, params)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=500)
    args = parser.parse_args()
    await sync_to_async(call_command)("migrate", verbosity=0)
    article = await Article.objects.acreate(title="Fan-out")
    subscribers = []
    for _ in range(args.subscribers):
        comm = RouterCommunicator(ArticleSocket.as_asgi(), "/ws/model/articles/", user=AnonymousUser())
        await comm.connect()
        assert (await comm.request("subscribe"))["status"] == 201
        subscribers.append(comm)

    global queries
    utils.CursorWrapper.execute = counting_execute
    article.title = "Changed"
    started = time.perf_counter()
    await sync_to_async(article.save)()  # one UPDATE; the push goes out on commit
    pushes = await asyncio.gather(*(comm.receive_message(timeout=60) for comm in subscribers))
    elapsed = time.perf_counter() - started
    utils.CursorWrapper.execute = _execute
    assert all(p["route"] == "updated" and p["payload"]["title"] == "Changed" for p in pushes)
    print(f"one change to {args.subscribers} subscribers: all pushed in {elapsed * 1000:.0f} ms "
          f"({elapsed / args.subscribers * 1e6:.0f} us per subscriber), {queries} SQL queries "
          f"(1 for the UPDATE, the rest for delivery)")
    for comm in subscribers:
        await comm.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
