"""One mixin per route, as in ``rest_framework.mixins``.

Each handler receives what its route's hydrate produced and may be overridden in the seed's
style, ``def on_get(self, payload, headers)``; returning a model instance, a queryset or a
serializer as ``payload`` gets it serialised.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework.serializers import BaseSerializer

from django_channels_router import SocketResult, StatusCodes

from .decorators import socket_route

__all__ = ["GetModelMixin", "ListModelMixin", "CreateModelMixin", "UpdateModelMixin", "DeleteModelMixin"]


class GetModelMixin:
    """``get``: one object by id (DRF's retrieve)."""

    handler_errors: ClassVar[dict[str, set[int]]] = {"on_get": {404}}

    @socket_route("get", detail=True, method="GET", description=(
        "One {model}, by its ``{lookup}`` (in the headers, or in the payload)."))
    def on_get(self, instance: Any, headers: dict[str, Any]) -> SocketResult:
        """``instance`` is the object named by the id, already permission-checked. The reply
        carries ``headers.etag``; 304 when ``if-none-match`` holds it (see ``object_reply``)."""
        return self.object_reply(instance, headers)  # type: ignore[attr-defined, no-any-return]


class ListModelMixin:
    """``list``: the filtered, paginated queryset; the payload holds the query parameters."""

    #: 400: query parameters a filter refuses; 404: a page past the last.
    handler_errors: ClassVar[dict[str, set[int]]] = {"on_list": {400, 404}}

    @socket_route("list", method="GET", hydrate="hydrate_list", dehydrate="dehydrate_list", description=(
        "The {models} you may see. The payload holds query parameters (search, ordering, page...), "
        "as a GET request's query string would; without any, all of them."))
    def on_list(self, objects: Any, headers: dict[str, Any]) -> SocketResult:
        """``objects`` is the queryset after ``filter_queryset``, or the page when paginated."""
        return {"payload": objects}

    def hydrate_list(self, headers: dict[str, Any], payload: Any) -> Any:
        queryset = self.filter_queryset(self.get_queryset())  # type: ignore[attr-defined]
        page = self.paginate_queryset(queryset)  # type: ignore[attr-defined]
        return queryset if page is None else page

    def dehydrate_list(self, objects: Any) -> Any:
        data = self.dehydrate(objects)  # type: ignore[attr-defined]
        return self.get_paginated_response(data) if self.request.paginated else data  # type: ignore[attr-defined]


class CreateModelMixin:
    """``create``: validate the payload and save it (DRF's create); 201."""

    handler_errors: ClassVar[dict[str, set[int]]] = {"on_create": {400}}  # the serializer's validation

    @socket_route("create", method="POST", hydrate="hydrate_create", description=(
        "Create one {model} from the payload; the reply holds it as saved (201). "
        "An invalid payload is answered 400 with the errors by field."))
    def on_create(self, serializer: BaseSerializer[Any], headers: dict[str, Any]) -> SocketResult:
        """``serializer`` holds the validated data (handlers of writes run in a transaction)."""
        self.perform_create(serializer)
        return self.object_reply(serializer, headers, StatusCodes.CREATED)  # type: ignore[attr-defined, no-any-return]

    def hydrate_create(self, headers: dict[str, Any], payload: Any) -> BaseSerializer[Any]:
        serializer = self.get_serializer(data=self.request.data)  # type: ignore[attr-defined]
        serializer.is_valid(raise_exception=True)
        return serializer

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.save()


class UpdateModelMixin:
    """``update`` (all fields, PUT) and ``patch`` (some fields, PATCH) of one object by id."""

    handler_errors: ClassVar[dict[str, set[int]]] = {"on_update": {400, 404}, "on_patch": {400, 404}}

    @socket_route("update", detail=True, method="PUT", description=(
        "Replace one {model}, by its ``{lookup}`` (in the headers, or in the payload): the payload holds "
        "every writable field. The reply holds the {model} as saved."))
    def on_update(self, instance: Any, headers: dict[str, Any]) -> SocketResult:
        """``instance`` is the object to change; the payload is validated and saved here."""
        return self.update_instance(instance, partial=False, headers=headers)

    @socket_route("patch", detail=True, method="PATCH", description=(
        "Change some fields of one {model}, by its ``{lookup}`` (in the headers, or in the payload): the "
        "payload holds only those fields. The reply holds the {model} as saved."))
    def on_patch(self, instance: Any, headers: dict[str, Any]) -> SocketResult:
        return self.update_instance(instance, partial=True, headers=headers)

    def update_instance(self, instance: Any, partial: bool, headers: dict[str, Any] | None = None) -> SocketResult:
        serializer = self.get_serializer(instance, data=self.request.data, partial=partial)  # type: ignore[attr-defined]
        serializer.is_valid(raise_exception=True)
        self.perform_update(serializer)
        if getattr(instance, "_prefetched_objects_cache", None):
            instance._prefetched_objects_cache = {}  # as DRF: serialise what was saved, not the prefetch
        return self.object_reply(serializer, headers or {})  # type: ignore[attr-defined, no-any-return]

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        serializer.save()


class DeleteModelMixin:
    """``delete``: one object by id (DRF's destroy); 204 with a null payload."""

    handler_errors: ClassVar[dict[str, set[int]]] = {"on_delete": {404}}

    @socket_route("delete", detail=True, method="DELETE", dehydrate=None, description=(
        "Delete one {model}, by its ``{lookup}`` (in the headers, or in the payload); 204, no payload."))
    def on_delete(self, instance: Any, headers: dict[str, Any]) -> SocketResult:
        self.perform_destroy(instance)
        return {"status": StatusCodes.NO_CONTENT}

    def perform_destroy(self, instance: Any) -> None:
        instance.delete()
