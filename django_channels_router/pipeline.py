"""The one dispatch pipeline, shared by the sync and the async consumer.

:func:`respond` is written once, as a generator: it *yields* each user callable it needs
(access check, hydrate, handler, dehydrate) together with its arguments, and receives the
result back. :func:`run_sync` and :func:`run_async` are the only code that knows how to
call them, so both consumers follow exactly the same steps and error mapping.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync, iscoroutinefunction
from channels.db import database_sync_to_async

from .errors import SocketError, invalid_result, not_authenticated, permission_denied, reply_for_exception
from .protocol import encode_frame, error_frame
from .routes import Callback, RouteInfo
from .status import is_success

if TYPE_CHECKING:
    from .consumers import RouterMixin

logger = logging.getLogger("django_channels_router")

Step = tuple[Callable[..., Any], tuple[Any, ...]]
Steps = Generator[Step, Any, str]
RESULT_KEYS = frozenset({"status", "payload", "headers"})


def respond(consumer: RouterMixin, uuid: Any, route: RouteInfo, headers: dict[str, Any], payload: Any) -> Steps:
    """Serve one parsed request: access -> hydrate -> handler -> dehydrate -> reply frame."""
    started = time.perf_counter()
    try:
        if route.access is not None:
            if not (yield _resolve(consumer, route, route.access), (consumer.user, headers, payload)):
                raise _refusal(consumer.user)
        if consumer.check_access is not None:
            if not (yield consumer.check_access, (route, headers, payload)):
                raise _refusal(consumer.user)
        if route.hydrate is not None:
            payload = yield _resolve(consumer, route, route.hydrate), (
                (payload, headers) if route.hydrate_payload_first else (headers, payload))
        result = yield _resolve(consumer, route, route.handler), (
            (headers, payload) if route.handler_headers_first else (payload, headers))
        status, reply_headers, reply_payload = _normalise(result)
        if route.dehydrate is not None and is_success(status):
            reply_payload = yield _resolve(consumer, route, route.dehydrate), (reply_payload,)
        try:
            frame = encode_frame(uuid, route.name, status, reply_headers, reply_payload, consumer.json_encoder)
        except (TypeError, ValueError) as exc:
            raise invalid_result(f"payload or headers are not JSON-serialisable ({exc})") from None
    except Exception as exc:
        status, body, reply_headers = reply_for_exception(exc, route.name)
        try:
            frame = encode_frame(uuid, route.name, status, reply_headers, body, consumer.json_encoder)
        except (TypeError, ValueError):  # e.g. a custom APIException detail JSON cannot hold
            logger.error("Error reply for route %r is not JSON-serialisable", route.name, exc_info=exc)
            status = 500
            frame = error_frame(uuid, route.name, status, "handler_error", "A server error occurred.")
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("route=%s uuid=%s status=%s duration=%.1fms", route.name, uuid, status,
                     (time.perf_counter() - started) * 1000)
    return frame


def _resolve(consumer: RouterMixin, route: RouteInfo, callback: Callback) -> Callable[..., Any]:
    if not isinstance(callback, str):
        return callback
    method = getattr(consumer, callback, None)
    if method is None:
        raise SocketError(501, f"Route {route.name!r} is not implemented.", "not_implemented")
    return method


def _refusal(user: Any) -> SocketError:
    return permission_denied() if getattr(user, "is_authenticated", False) else not_authenticated()


def _normalise(result: Any) -> tuple[int, Mapping[str, Any] | None, Any]:
    if not isinstance(result, Mapping):
        raise invalid_result(f"expected a mapping, got {type(result).__name__}")
    unknown = result.keys() - RESULT_KEYS
    if unknown:
        raise invalid_result(f"unexpected keys {sorted(map(str, unknown))}")
    status = result.get("status", 200)
    if type(status) is bool or not isinstance(status, int) or not 100 <= status <= 599:
        raise invalid_result(f"status must be an int from 100 to 599, got {status!r}")
    headers = result.get("headers")
    if headers is not None and not isinstance(headers, Mapping):
        raise invalid_result(f"headers must be a mapping or None, got {type(headers).__name__}")
    return int(status), headers, result.get("payload")


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _call_sync(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    result = fn(*args)
    return async_to_sync(_await)(result) if inspect.isawaitable(result) else result


def run_sync(steps: Steps) -> str:
    """Drive the pipeline in the calling thread; async callables run via ``async_to_sync``."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            fn, args = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value
        try:
            value, error = _call_sync(fn, args), None
        except Exception as exc:
            value, error = None, exc


async def run_async(steps: Steps, sync_only: bool) -> str:
    """Drive the pipeline on the event loop.

    Sync callables (ORM loaders, most often) run through ``database_sync_to_async``; when
    every step of a route is sync, the whole request takes a single thread hop.
    """
    if sync_only:
        return await database_sync_to_async(run_sync)(steps)
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            fn, args = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value
        try:
            if iscoroutinefunction(fn):
                value = await fn(*args)
            else:
                value = await database_sync_to_async(_call_sync)(fn, args)
            error = None
        except Exception as exc:
            value, error = None, exc
