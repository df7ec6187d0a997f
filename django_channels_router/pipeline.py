"""The one dispatch pipeline, shared by the sync and the async consumer.

:func:`respond` is written once, as a generator: it *yields* each user callable it needs
(access check, hydrate, handler, dehydrate) together with its arguments, and receives the
result back. :func:`run_sync` and :func:`run_async` are the only code that knows how to
call them, so both consumers follow exactly the same steps and error mapping.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Generator, Mapping
from contextvars import ContextVar
from typing import Any, Protocol

from asgiref.sync import iscoroutinefunction

from .errors import InvalidResult, SocketError, access_refused, reply_for_exception
from .idempotency import idempotent_request, run_once
from .protocol import encode_frame, error_frame
from .routes import Callback, RouteInfo
from .status import is_success
from .workers import call_sync, run_in_worker

logger = logging.getLogger("django_channels_router")

Step = tuple[Callable[..., Any], tuple[Any, ...]]
Steps = Generator[Step, Any, str]
RESULT_KEYS = frozenset({"status", "payload", "headers"})


class RouterHost(Protocol):
    """The seams :func:`respond` calls on the consumer serving a request: ``RouterMixin`` has
    them, and extensions (the DRF bridge) override them. Route callbacks named by a string are
    looked up on it as well (:func:`resolve`)."""

    @property
    def prepare_request(self) -> Callable[..., Any] | None: ...

    @property
    def check_access(self) -> Callable[..., Any] | None: ...

    @property
    def user(self) -> Any: ...

    @property
    def json_encoder(self) -> type[json.JSONEncoder]: ...

    def get_validate(self, route: RouteInfo) -> Callable[..., Any] | None: ...

    def get_hydrate(self, route: RouteInfo) -> Callable[..., Any] | None: ...

    def get_handler(self, route: RouteInfo) -> Callable[..., Any]: ...

    @classmethod
    def route_is_idempotent(cls, route: RouteInfo) -> bool: ...

    def idempotency_identity(self) -> str: ...

    def idempotency_database(self, route: RouteInfo) -> str: ...


#: The uuid of the request being served, for code that needs it (``RouterMixin.request_uuid``).
current_uuid: ContextVar[str | int] = ContextVar("django_channels_router_uuid")


def respond(consumer: RouterHost, uuid: Any, route: RouteInfo, headers: dict[str, Any], payload: Any) -> Steps:
    """Serve one parsed request: prepare -> access -> validate -> hydrate -> handler -> dehydrate -> reply frame.

    A request with an ``idempotency-key`` to a route that accepts one runs hydrate, handler and
    dehydrate as one step, in a transaction with the key's record (:mod:`.idempotency`).
    """
    started = time.perf_counter()
    current_uuid.set(uuid)
    try:
        if consumer.prepare_request is not None:
            yield consumer.prepare_request, (route, headers, payload)
        if consumer.check_access is not None:
            if not (yield consumer.check_access, (route, headers, payload)):
                raise access_refused(consumer.user)
        if route.access is not None:
            if not (yield resolve(consumer, route, route.access), (consumer.user, headers, payload)):
                raise access_refused(consumer.user)
        once = idempotent_request(consumer, route, headers, payload)  # the raw payload: before validate
        hydrate = consumer.get_hydrate(route)
        validate = consumer.get_validate(route)
        if validate is not None:  # the declared "request": 400 before hydrate when it does not match
            validated = yield validate, (consumer, headers, payload)
            # The declared hydrate, not get_hydrate()'s: one the handler runs (the DRF bridge's
            # writes) gets the payload too.
            if route.hydrate is None:
                payload = validated  # a serializer's validated_data; a route's own hydrate gets the payload
        if once is not None:  # hydrate, handler and dehydrate in one transaction with the key's record
            status, frame = yield run_once, (once, consumer, uuid, route,
                                             _producer(consumer, route, headers, payload, hydrate))
        else:
            if hydrate is not None:
                payload = yield hydrate, route.hydrate_args(headers, payload)
            result = yield consumer.get_handler(route), route.handler_args(headers, payload)
            status, reply_headers, reply_payload = _normalise(result)
            if route.dehydrate is not None and is_success(status):
                reply_payload = yield resolve(consumer, route, route.dehydrate), (reply_payload,)
            try:
                frame = encode_frame(uuid, route.name, status, reply_headers, reply_payload, consumer.json_encoder)
            except (TypeError, ValueError, RecursionError) as exc:
                raise InvalidResult(f"payload or headers are not JSON-serialisable ({exc})") from None
    except Exception as exc:
        status, frame = _error_reply(consumer, uuid, route, exc)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("route=%s uuid=%r status=%s duration=%.1fms", route.name, uuid, status,
                     (time.perf_counter() - started) * 1000)
    return frame


def _producer(consumer: RouterHost, route: RouteInfo, headers: dict[str, Any], payload: Any,
              hydrate: Callable[..., Any] | None) -> Callable[[], tuple[int, dict[str, Any] | None, Any]]:
    """The steps :func:`respond` yields after validate, as one sync call (for :func:`run_once`)."""

    def produce() -> tuple[int, dict[str, Any] | None, Any]:
        value = payload if hydrate is None else call_sync(hydrate, route.hydrate_args(headers, payload))
        status, reply_headers, reply_payload = _normalise(
            call_sync(consumer.get_handler(route), route.handler_args(headers, value)))
        if route.dehydrate is not None and is_success(status):
            reply_payload = call_sync(resolve(consumer, route, route.dehydrate), (reply_payload,))
        return status, reply_headers, reply_payload

    return produce


def _error_reply(consumer: RouterHost, uuid: Any, route: RouteInfo, exc: Exception) -> tuple[int, str]:
    """The reply for a failed request; never raises, so every request gets exactly one reply."""
    try:
        status, body, headers = reply_for_exception(exc, route.name, uuid)
        return status, encode_frame(uuid, route.name, status, headers, body, consumer.json_encoder)
    except Exception:  # an exception that breaks when read, or an error body JSON cannot hold
        logger.exception("Could not build the error reply for route %r (uuid %r)", route.name, uuid)
        return 500, error_frame(uuid, route.name, 500, "handler_error", "A server error occurred.")


def resolve(consumer: object, route: RouteInfo, callback: Callback) -> Callable[..., Any]:
    """The callable a route's callback names on ``consumer``; 501 when there is none."""
    if not isinstance(callback, str):
        return callback
    method = getattr(consumer, callback, None)
    if not callable(method):
        raise SocketError(501, f"Route {route.name!r} is not implemented.", "not_implemented")
    return method


def _normalise(result: Any) -> tuple[int, dict[str, Any] | None, Any]:
    if not isinstance(result, Mapping):
        raise InvalidResult(f"expected a mapping, got {type(result).__name__}")
    unknown = result.keys() - RESULT_KEYS
    if unknown:
        raise InvalidResult(f"unexpected keys {sorted(map(str, unknown))}")
    status = result.get("status", 200)
    if type(status) is bool or not isinstance(status, int) or not 100 <= status <= 599:
        raise InvalidResult(f"status must be an int from 100 to 599, got {status!r}")
    headers = result.get("headers")
    if headers is not None and not isinstance(headers, Mapping):
        raise InvalidResult(f"headers must be a mapping or None, got {type(headers).__name__}")
    return int(status), None if headers is None else dict(headers), result.get("payload")


def _handler_failure(exc: BaseException) -> Exception:
    """What to throw into the pipeline for an exception a user callable raised.

    A ``CancelledError`` raised *by* a handler (not by cancelling our own task) is an error
    like any other; ``KeyboardInterrupt`` and ``SystemExit`` are not ours to catch.
    """
    if isinstance(exc, Exception):
        return exc
    if isinstance(exc, asyncio.CancelledError):
        error = RuntimeError(f"the handler raised {type(exc).__name__}")
        error.__cause__ = exc
        return error
    raise exc


def _resume(steps: Steps, value: Any, error: Exception | None) -> Step | str:
    """Hand the last step's result (or exception) to the pipeline: the next step, or the reply."""
    try:
        return steps.send(value) if error is None else steps.throw(error)
    except StopIteration as done:
        return done.value


def run_sync(steps: Steps) -> str:
    """Drive the pipeline in the calling thread; async callables run via ``async_to_sync``."""
    value: Any = None
    error: Exception | None = None
    while not isinstance(step := _resume(steps, value, error), str):
        fn, args = step
        try:
            value, error = call_sync(fn, args), None
        except BaseException as exc:
            value, error = None, _handler_failure(exc)
    return step


async def run_async(steps: Steps, sync_only: bool, thread_sensitive: bool) -> str:
    """Drive the pipeline on the event loop.

    Sync callables (ORM loaders, most often) run in a worker thread with Django's connection
    handling; when every step of a route is sync, the whole request takes a single thread hop.
    """
    if sync_only:
        return await run_in_worker(run_sync, steps, thread_sensitive=thread_sensitive)
    value: Any = None
    error: Exception | None = None
    while not isinstance(step := _resume(steps, value, error), str):
        fn, args = step
        try:
            if iscoroutinefunction(fn):
                value = await fn(*args)
            else:
                value = await run_in_worker(call_sync, fn, args, thread_sensitive=thread_sensitive)
            error = None
        except asyncio.CancelledError as exc:
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]  # we are being cancelled
                raise
            value, error = None, _handler_failure(exc)
        except Exception as exc:
            value, error = None, exc
    return step
