"""What one check of the group-membership watcher costs with N memberships on channels-redis.

    .venv/bin/python bench/memberships.py [--memberships 10000] [--groups 100] [--rounds 5]

Joins N channels of this process to G groups on the Redis at 127.0.0.1:6379 (db 0, a key prefix
of its own, deleted afterwards), then times ``Watcher.check()`` (one pipelined ZMSCORE per Redis
host, every ``groups.CHECK_EVERY`` seconds in a server): wall time and this process's CPU time
per check, the median of the rounds. Then it deletes every group key (as FLUSHALL would) and
times the check that finds them lost and joins them again.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "testproject")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from channels_redis.core import RedisChannelLayer  # noqa: E402

from django_channels_router import groups  # noqa: E402


class Connection:
    """Stands for a consumer: the watcher needs its channel name and its recovery call."""

    recovered = 0

    def __init__(self, channel_name: str) -> None:
        self.channel_name = channel_name

    async def recover_from_layer(self, since: float) -> None:
        Connection.recovered += 1


async def main(memberships: int, group_count: int, rounds: int) -> None:
    every, groups.CHECK_EVERY = groups.CHECK_EVERY, 3600.0  # the checks are run by hand here
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    layer = RedisChannelLayer(hosts=[{"address": "redis://127.0.0.1:6379/0", "socket_timeout": 10}], prefix=prefix)
    watcher = groups.watcher(layer)
    names = [f"group{i}" for i in range(group_count)]
    connections = [Connection(await layer.new_channel()) for _ in range(memberships)]
    pairs = [(names[i % group_count], connection) for i, connection in enumerate(connections)]
    try:
        for start in range(0, len(pairs), 1000):
            batch = pairs[start:start + 1000]
            await asyncio.gather(*(groups.join(layer, group, connection) for group, connection in batch))
        walls, cpus = [], []
        for _ in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            await watcher.check()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        print(f"{memberships} memberships in {group_count} groups: one check {wall * 1000:.1f} ms "
              f"({cpu * 1000:.1f} ms CPU, {cpu / memberships * 1e6:.2f} us CPU per membership); every "
              f"{every:g} s in a server that is {cpu / every * 100:.2f}% of a core")
        connection = layer.connection(0)
        await connection.delete(*[layer._group_key(name) for name in names])
        wall, cpu = time.perf_counter(), time.process_time()
        await watcher.check()
        await asyncio.sleep(0)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"after the group keys were deleted: the check that joined them again {wall * 1000:.0f} ms "
              f"({cpu * 1000:.0f} ms CPU), {Connection.recovered} connections told to resync")
    finally:
        for group, connection in pairs:
            watcher.remove(group, connection.channel_name)
        await layer.connection(0).delete(*[layer._group_key(name) for name in names])
        await layer.close_pools()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memberships", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.memberships, args.groups, args.rounds))
