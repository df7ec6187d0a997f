"""A route's declared "request" checks the payload before hydrate, on both consumers and every transport."""

import json

import pytest
from rest_framework.test import APIClient

from django_channels_router import SocketError, SocketRouterConsumer
from django_channels_router.checks import check_routes
from django_channels_router.validation import MAX_ERRORS, MAX_MESSAGE_CHARS, request_validator
from tests.conftest import request
from tests.consumers import POINT_SCHEMA

pytestmark = pytest.mark.django_db(transaction=True)

INVALID_ARTICLES = [{}, {"title": ""}, {"title": None}, {"title": "x" * 201}, {"title": ["a"]},
                    {"title": "forbidden"}, [], [{"title": "x"}], "text", 42, True, None]


def over_http(body):
    response = APIClient().post("/articles/", json.dumps(body), content_type="application/json")
    return response.status_code, response.json()


@pytest.mark.parametrize("body", INVALID_ARTICLES)
async def test_an_invalid_payload_gets_the_400_drf_gives_over_http(client, body):
    from asgiref.sync import sync_to_async

    reply = await request(client, "draftArticle", body)
    assert (reply["status"], reply["payload"]) == await sync_to_async(over_http)(body)


async def test_the_handler_gets_the_serializers_validated_data(client):
    reply = await request(client, "draftArticle", {"title": "Hello", "id": 7, "created_at": "x", "extra": 1})
    assert (reply["status"], reply["payload"]) == (200, {"title": "Hello"})  # read-only and unknown keys dropped


async def test_a_routes_own_hydrate_gets_the_checked_payload_and_runs_only_when_it_is_valid(client):
    reply = await request(client, "draftWithHydrate", {"title": "Hello", "extra": 1})
    assert (reply["status"], reply["payload"]) == (200, {"hydrated": {"title": "Hello", "extra": 1}})
    assert (await request(client, "draftWithHydrate", {"title": ""}))["status"] == 400


async def test_a_json_schema_request_names_the_path_of_each_error(client):
    reply = await request(client, "point", {"x": "1", "tags": ["a", 2], "z": 0})
    assert reply["status"] == 400
    assert (reply["payload"]["detail"], reply["payload"]["code"]) == ("The payload does not match the route's schema.",
                                                                      "invalid")
    assert reply["payload"]["errors"] == [  # in the schema's order; "" is the payload itself (a JSON Pointer)
        {"path": "/x", "message": "'1' is not of type 'integer'"},
        {"path": "/tags/1", "message": "2 is not of type 'string'"},
        {"path": "", "message": "'y' is a required property"},
        {"path": "", "message": "Additional properties are not allowed ('z' was unexpected)"},
    ]
    assert (await request(client, "point", {"x": 1, "y": 2}))["payload"] == {"x": 1, "y": 2}


def test_a_large_invalid_payload_gets_a_bounded_reply():
    # 3,000 wrong items, each quoted at length: the reply lists MAX_ERRORS, each message cut short.
    validate = request_validator(POINT_SCHEMA)
    with pytest.raises(SocketError) as raised:
        validate(None, {}, {"x": 1, "y": 2, "tags": [[1] * 500] * 3000})
    errors = raised.value.payload["errors"]
    assert raised.value.status == 400 and len(errors) == MAX_ERRORS
    assert all(len(error["message"]) <= MAX_MESSAGE_CHARS and error["message"].endswith("…") for error in errors)
    assert [error["path"] for error in errors] == [f"/tags/{i}" for i in range(MAX_ERRORS)]


def test_a_request_that_is_neither_a_serializer_nor_a_json_schema_is_a_system_check_error():
    misdeclared = type("Misdeclared", (SocketRouterConsumer,), {
        "__module__": __name__,
        "routes": [{"route": "a", "request": {"type": "no-such-type"}, "handler": "on_a"},
                   {"route": "b", "response": "not a schema", "handler": "on_a"}],
        "on_a": lambda self, payload, headers: {}})
    found = {(error.id, error.msg.split(":")[0]) for error in check_routes() if error.obj is misdeclared}
    assert found == {("channels_router.E007", f"{__name__}.Misdeclared, route 'a'"),
                     ("channels_router.E007", f"{__name__}.Misdeclared, route 'b'")}


async def test_a_misdeclared_request_answers_500_and_never_reaches_the_handler():
    from django_channels_router.testing import RouterCommunicator

    reached = []
    consumer = type("MisdeclaredAtRuntime", (SocketRouterConsumer,), {
        "routes": [{"route": "a", "request": {"type": 3}}],
        "on_a": lambda self, payload, headers: reached.append(payload) or {}})
    comm = RouterCommunicator(consumer.as_asgi(), "/ws/")
    assert (await comm.connect())[0]
    reply = await comm.request("a", {})
    assert (reply["status"], reply["payload"]["code"], reached) == (500, "handler_error", [])
    await comm.disconnect()


async def test_a_model_routers_socket_route_checks_and_documents_its_declared_request():
    from django_channels_router.contract.asyncapi import Components, describe_route
    from django_channels_router.testing import RouterCommunicator
    from drf_bridge import ModelSocketRouter, socket_route
    from tests.drf import ArticleRouter

    class Moves(ModelSocketRouter):
        queryset = ArticleRouter.queryset
        serializer_class = ArticleRouter.serializer_class
        permission_classes = ArticleRouter.permission_classes

        @socket_route("move", request=POINT_SCHEMA, response={"type": "object"}, dehydrate=None)
        def on_move(self, payload, headers):
            return {"payload": payload}

    comm = RouterCommunicator(Moves.as_asgi(), "/ws/")
    assert (await comm.connect())[0]
    assert (await comm.request("move", {"x": 1}))["payload"]["errors"] == [
        {"path": "", "message": "'y' is a required property"}]
    assert (await comm.request("move", {"x": 1, "y": 2}))["payload"] == {"x": 1, "y": 2}
    await comm.disconnect()
    documented = describe_route(Moves, Moves.route_table["move"], Components())
    assert (documented.request, documented.response) == (POINT_SCHEMA, {"type": "object"})


def test_a_misdeclared_response_of_a_socket_route_is_a_system_check_error_that_says_what_was_given():
    from demo.serializers import ArticleSerializer
    from drf_bridge import ModelSocketRouter, socket_route
    from tests.drf import ArticleRouter

    class Responses(ModelSocketRouter):
        queryset = ArticleRouter.queryset
        serializer_class = ArticleSerializer

        @socket_route(detail=True, response="Article")
        def named(self, article, headers):
            return {"payload": article}

        @socket_route(request=ArticleSerializer(), response=ArticleSerializer(many=True))
        def instances(self, payload, headers):
            return {"payload": []}

        @socket_route(response={"type": "object", "properties": {"count": {"type": "integer"}}})
        def schema(self, payload, headers):
            return {"payload": {"count": 1}}

    found = sorted((error.msg, error.hint) for error in check_routes() if error.obj is Responses)
    label = f"{__name__}.{Responses.__qualname__}"
    assert [msg for msg, _ in found] == [
        f"{label}, route 'instances': 'request' is unusable: expected a DRF serializer class or a JSON Schema dict, "
        "got an instance of ArticleSerializer (give the class).",
        f"{label}, route 'named': 'response' is unusable: expected a DRF serializer class, a serializer instance "
        "such as ArticleSerializer(many=True) or a JSON Schema dict, got str 'Article'.",
    ]
    assert "manage.py socketschema refuses" in found[1][1]
