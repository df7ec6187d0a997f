"""Two consumers with the same routes, one sync and one async, covering every protocol row."""

import asyncio
import threading
import time

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions

from django_channels_router import AsyncSocketRouterConsumer, SocketError, SocketRouterConsumer, StatusCodes
from django_channels_router.access import is_authenticated, is_staff

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
]

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
}


class ProtocolHandlers:
    """Sync handlers; the async consumer overrides a few with coroutines and runs the rest in threads."""

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

    async def on_slow(self, payload, headers):
        cls = type(self)
        cls.running += 1
        cls.most_running = max(cls.most_running, cls.running)
        try:
            await asyncio.sleep(payload)
        finally:
            cls.running -= 1
        return {"payload": payload}
