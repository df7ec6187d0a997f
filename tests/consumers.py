"""Two consumers with the same routes, one sync and one async, covering every protocol row."""

import asyncio
import collections
import threading
import time
from types import MappingProxyType
from urllib.parse import parse_qs

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions

from django_channels_router import (
    AsyncSocketRouterConsumer,
    SocketError,
    SocketRouterConsumer,
    StatusCodes,
    broadcast,
    broadcast_sync,
)
from django_channels_router.access import is_authenticated, is_staff
from django_channels_router.workers import worker_pool
from tests.drf import StrictArticleSerializer

POINT_SCHEMA = {
    "type": "object",
    "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["x", "y"],
    "additionalProperties": False,
}

ROUTES = [
    {"route": "echo"},
    {"route": "withStatus", "hydrate": lambda headers, payload: {**payload, "hydrated": True},
     "dehydrate": lambda payload: {"dehydrated": payload}},
    {"route": "fail"},
    {"route": "failHydrate", "hydrate": lambda headers, payload: 1 / 0, "handler": "on_echo"},
    {"route": "failDehydrate", "dehydrate": lambda payload: payload["missing"], "handler": "on_echo"},
    {"route": "badResult"},
    {"route": "notImplemented"},
    {"route": "secret", "access": is_authenticated, "handler": "on_echo"},
    {"route": "staffOnly", "access": is_staff, "handler": "on_echo"},
    {"route": "raise"},
    {"route": "slow"},
    {"route": "threads", "hydrate": lambda headers, payload: threading.get_ident(),
     "dehydrate": lambda payload: [*payload, threading.get_ident()]},
    {"route": "articles.list", "handler": lambda payload, headers: {"payload": "explicit callable"}},
    {"route": "proxyHeaders", "handler": lambda payload, headers: {"headers": MappingProxyType({"a": 1})}},
    {"route": "static"},
    {"route": "notCallable"},
    {"route": "slowSync", "handler": "on_slow_sync"},
    {"route": "join"},
    {"route": "leave"},
    {"route": "announce"},
    {"route": "pushMe"},
    # Declared request payloads: checked before hydrate (a serializer's validated_data reaches the handler).
    {"route": "draftArticle", "request": StrictArticleSerializer, "handler": "on_validated"},
    {"route": "draftWithHydrate", "request": StrictArticleSerializer, "handler": "on_validated",
     "hydrate": lambda headers, payload: {"hydrated": payload}},
    {"route": "point", "handler": "on_validated", "request": POINT_SCHEMA},
    {"route": "closeWith"},
    {"route": "timed"},
    {"route": "flood"},
    {"route": "slowWrite"},
    {"route": "big"},
    {"route": "pushBig"},
    {"route": "hold"},
    {"route": "poolQueued"},
]

class BrokenAPIException(exceptions.APIException):
    def __init__(self):  # forgets to call super(): no .detail
        pass


class UnprintableError(Exception):
    def __str__(self):
        raise RuntimeError("cannot print me")


def circular_list():
    value = []
    value.append(value)  # json.dumps refuses it on every Python (a deep list does not: 3.13 encodes 5,000 levels)
    return value


def deep_list(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


RAISABLE = {
    "validation": lambda: exceptions.ValidationError({"title": ["This field is required."]}),
    "not_found": lambda: exceptions.NotFound(),
    "throttled": lambda: exceptions.Throttled(wait=3),
    "not_authenticated": lambda: exceptions.NotAuthenticated(),
    "http404": lambda: Http404("secret path"),
    "http404_bare": lambda: Http404(),
    "django_denied": lambda: PermissionDenied("secret reason"),
    "django_denied_bare": lambda: PermissionDenied(),
    "socket_error": lambda: SocketError(StatusCodes.CONFLICT, "Title already taken.", code="conflict"),
    "broken_api_exception": lambda: BrokenAPIException(),
    "unserialisable_detail": lambda: SocketError(400, circular_list()),
    "unprintable": lambda: UnprintableError(),
    "cancelled": lambda: asyncio.CancelledError(),
    "bad_socket_error_status": lambda: SocketError(1000, "x"),
    "bad_socket_error_headers": lambda: SocketError(409, "x", headers=["not", "an", "object"]),
}

BAD_RESULTS = {
    "list": lambda: [200],
    "none": lambda: None,
    "status_too_high": lambda: {"status": 700},
    "status_str": lambda: {"status": "200"},
    "status_bool": lambda: {"status": True},
    "headers_list": lambda: {"headers": ["x"]},
    "unknown_key": lambda: {"stauts": 201},
    "not_serialisable": lambda: {"payload": object()},
    "nan": lambda: {"payload": float("nan")},
    "too_deep": lambda: {"payload": deep_list(100_000)},
}


class ProtocolHandlers:
    """Sync handlers; the async consumer overrides a few with coroutines and runs the rest in threads."""

    lock = threading.Lock()
    sync_running = most_sync_running = 0

    max_message_bytes = 4096
    max_running_requests = 4
    max_waiting_requests = 8

    def on_echo(self, payload, headers):
        return {"payload": {"payload": payload, "headers": headers}, "headers": {"echo": True}}

    def on_with_status(self, payload, headers):
        return {"status": payload["status"], "payload": payload}

    def on_fail(self, payload, headers):
        raise ValueError("secret exception text")

    def on_bad_result(self, payload, headers):
        return BAD_RESULTS[payload]()

    def on_raise(self, payload, headers):
        raise RAISABLE[payload]()

    def on_slow(self, payload, headers):
        time.sleep(payload)
        return {"payload": payload}

    @staticmethod
    def on_static(headers, payload):
        return {"payload": {"headers": headers, "payload": payload}}

    on_not_callable = "not a function"

    def on_slow_sync(self, payload, headers):
        cls = type(self)
        with cls.lock:
            cls.sync_running += 1
            cls.most_sync_running = max(cls.most_sync_running, cls.sync_running)
        time.sleep(payload)
        with cls.lock:
            cls.sync_running -= 1
        return {"payload": payload}

    def on_join(self, payload, headers):
        self.join(payload)
        return {"payload": sorted(self.joined_groups)}

    def on_leave(self, payload, headers):
        self.leave(payload)
        return {"payload": sorted(self.joined_groups)}

    def on_announce(self, payload, headers):
        broadcast_sync(payload["group"], "announcement", payload["text"], {"from": "sync"})
        return {"status": 202}

    def on_push_me(self, payload, headers):
        self.push("note", payload)
        return {"status": 204}

    def on_big(self, payload, headers):
        """A reply of ``payload`` characters (the refused-frame and client message-size tests)."""
        return {"payload": "x" * payload}

    def on_push_big(self, payload, headers):
        """A push of ``payload`` characters to this connection."""
        self.push("big", "x" * payload)
        return {"status": 204}

    def on_timed(self, payload, headers):
        """Sleep ``payload`` seconds; the monotonic start and end (one clock for every process)."""
        started = time.monotonic()
        time.sleep(payload)
        return {"payload": [started, time.monotonic()]}

    def on_flood(self, payload, headers):
        """Broadcast ``count`` pushes of ``size`` characters to ``group``, numbered, a few ms apart
        (the slow-reader tests)."""
        for n in range(payload["count"]):
            broadcast_sync(payload["group"], "flood", {"n": n, "fill": "x" * payload["size"]})
            time.sleep(0.003)
        return {"status": 204}

    def on_slow_write(self, payload, headers):
        """Take ``seconds``, then save an article titled ``title`` (the restart tests)."""
        from demo.models import Article

        time.sleep(payload["seconds"])
        return {"status": 201, "payload": Article.objects.create(title=payload["title"]).pk}

    def on_hold(self, payload, headers):
        """Take ``seconds``, holding the rest of the payload meanwhile (the memory bound tests)."""
        time.sleep(payload["seconds"])
        return {"status": 204}

    def on_pool_queued(self, payload, headers):
        """How many calls wait in the process's worker pool."""
        return {"payload": worker_pool().queued()}

    def on_close_with(self, payload, headers):
        """Close this connection with the code asked for (the clients' close-code tests)."""
        self.close(code=payload)
        return {"status": 204}

    def on_validated(self, payload, headers):
        return {"payload": payload}

    def on_threads(self, payload, headers):
        return {"payload": [payload, threading.get_ident()]}


class SyncProtocolSocket(ProtocolHandlers, SocketRouterConsumer):
    routes = ROUTES


class AsyncProtocolSocket(ProtocolHandlers, AsyncSocketRouterConsumer):
    routes = ROUTES
    running = 0
    most_running = 0

    async def on_echo(self, payload, headers):
        return super().on_echo(payload, headers)

    async def on_join(self, payload, headers):
        await self.join(payload)
        return {"payload": sorted(self.joined_groups)}

    async def on_leave(self, payload, headers):
        await self.leave(payload)
        return {"payload": sorted(self.joined_groups)}

    async def on_announce(self, payload, headers):
        await broadcast(payload["group"], "announcement", payload["text"], {"from": "async"})
        return {"status": 202}

    async def on_push_me(self, payload, headers):
        await self.push("note", payload)
        return {"status": 204}

    async def on_push_big(self, payload, headers):
        await self.push("big", "x" * payload)
        return {"status": 204}

    async def on_close_with(self, payload, headers):
        await self.close(code=payload)
        return {"status": 204}

    async def on_hold(self, payload, headers):
        await asyncio.sleep(payload["seconds"])
        return {"status": 204}

    async def on_pool_queued(self, payload, headers):  # on the event loop: answered however busy the pool
        return {"payload": worker_pool().queued()}

    async def on_slow(self, payload, headers):
        cls = type(self)
        cls.running += 1
        cls.most_running = max(cls.most_running, cls.running)
        try:
            await asyncio.sleep(payload)
        finally:
            cls.running -= 1
        return {"payload": payload}


class SerialSyncSocket(SyncProtocolSocket):
    """The opt-out: sync steps on the one thread Django and Channels share."""

    thread_sensitive = True


class PrivateSocket(SyncProtocolSocket):
    """Only logged-in users may connect at all."""

    login_required = True


class StaffOnlyAsyncSocket(AsyncProtocolSocket):
    async def check_connect(self):
        return bool(getattr(self.user, "is_staff", False))


class DefaultLimits:
    """The protocol's default limits (1 MiB frames, 16 running, 256 waiting), for the tests of
    hostile frames and of fairness between connections."""

    max_message_bytes = max_running_requests = max_waiting_requests = None


class DefaultLimitsSocket(DefaultLimits, SyncProtocolSocket):
    pass


class AsyncDefaultLimitsSocket(DefaultLimits, AsyncProtocolSocket):
    pass


class ImpatientSyncSocket(SyncProtocolSocket):
    """Closes a client that reads nothing for a second (the slow-client tests)."""

    slow_client_timeout = 1


class ImpatientAsyncSocket(AsyncProtocolSocket):
    slow_client_timeout = 1


class TimedSocket(AsyncProtocolSocket):
    request_timeout = 0.3


def query(scope):
    """The handshake's query string as a dict of single values."""
    return {key: values[-1] for key, values in parse_qs(scope["query_string"].decode()).items()}


async def close_at_once(scope, receive, send):
    """``ws/closing/?code=C&after=S``: accept, wait S seconds (default 0), close with C. A server
    that accepts and closes is what the clients' backoff must not reset on (test-only)."""
    args = query(scope)
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await asyncio.sleep(float(args.get("after", 0)))
    await send({"type": "websocket.close", "code": int(args["code"])})


class BusyFirst:
    """``ws/busy/?key=K&times=N&retry_after=S``: the first N handshakes of each key are answered as a
    draining server answers them, "come back soon": HTTP 503 with ``Retry-After: S`` where the
    server supports the WebSocket denial response (uvicorn), else accepted and closed at once with
    4013 (daphne); later ones reach the async protocol consumer (test-only)."""

    handshakes: collections.Counter = collections.Counter()

    def __init__(self):
        self.consumer = AsyncProtocolSocket.as_asgi()

    async def __call__(self, scope, receive, send):
        args = query(scope)
        self.handshakes[args["key"]] += 1
        if self.handshakes[args["key"]] > int(args.get("times", 1)):
            return await self.consumer(scope, receive, send)
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 503,
                        "headers": [(b"retry-after", args.get("retry_after", "1").encode())]})
            await send({"type": "websocket.http.response.body", "body": b"draining"})
        else:
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 4013})
class TimedDefaultLimitsSocket(DefaultLimits, AsyncProtocolSocket):
    request_timeout = 0.2
