"""Route declarations, naming, the route table, system checks and settings."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_channels_router import AsyncSocketRouterConsumer, RouteInfo, SocketRouterConsumer
from django_channels_router.checks import check_routes
from django_channels_router.protocol import handler_name_for
from django_channels_router.testing import RouterCommunicator

BASES = [SocketRouterConsumer, AsyncSocketRouterConsumer]


@pytest.mark.parametrize("route, handler", [
    ("sayHello", "on_say_hello"),
    ("getHTTPStatus", "on_get_httpstatus"),
    ("articles.list", "on_articles_list"),
    ("chat:send-message", "on_chat_send_message"),
    ("get2Items", "on_get2items"),
    ("ping", "on_ping"),
    ("A", "on_a"),
])
def test_route_names_map_to_handler_names(route, handler):
    assert handler_name_for(route) == handler


@pytest.mark.parametrize("base", BASES)
def test_seed_setter_form_builds_the_route_table(base):
    class AppSocket(base):
        @base.routes.setter
        def routes(self, _):
            self._routes = [{"route": "sayHello"}, {"route": "getArticle", "hydrate": len, "dehydrate": str}]

    assert list(AppSocket.route_table) == ["sayHello", "getArticle"]
    assert AppSocket.route_table["getArticle"] == RouteInfo(
        name="getArticle", handler="on_get_article", hydrate=len, dehydrate=str, sync_only=False)


@pytest.mark.parametrize("base", BASES)
def test_class_attribute_form_and_inheritance(base):
    class Parent(base):
        routes = [{"route": "a"}]

    class Child(Parent):
        routes = Parent.routes + [{"route": "b", "handler": "on_a", "method": "POST"}]

    class Same(Parent):
        pass

    assert list(Parent.route_table) == ["a"] and list(Same.route_table) == ["a"]
    assert list(Child.route_table) == ["a", "b"]
    assert Child.route_table["b"].handler == "on_a" and Child.route_table["b"].options == {"method": "POST"}


def test_routes_property_reads_back_the_table():
    class AppSocket(SocketRouterConsumer):
        @SocketRouterConsumer.routes.setter
        def routes(self, _):
            self._routes = [{"route": "sayHello"}]

    assert [route.name for route in AppSocket().routes] == ["sayHello"]


@pytest.mark.parametrize("routes, message", [
    ([{"route": "PING"}], "reserved"),
    ([{"route": "PONG"}], "reserved"),
    ([{"route": "a"}, {"route": "a"}], "declared twice"),
    (["sayHello"], "mapping with a 'route'"),
    ([{"hydrate": len}], "mapping with a 'route'"),
])
@pytest.mark.parametrize("base", BASES)
def test_ambiguous_declarations_fail_at_class_creation(base, routes, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        type("Broken", (base,), {"routes": routes})


def test_sync_only_flag_marks_routes_that_need_one_thread_hop():
    async def coroutine(headers, payload):
        return payload

    class Mixed(AsyncSocketRouterConsumer):
        routes = [{"route": "allSync", "hydrate": len}, {"route": "asyncHydrate", "hydrate": coroutine, "handler": "on_all_sync"}]

        def on_all_sync(self, payload, headers):
            return {}

    assert Mixed.route_table["allSync"].sync_only
    assert not Mixed.route_table["asyncHydrate"].sync_only


def test_system_checks_report_each_broken_route():
    class BrokenChecks(SocketRouterConsumer):
        routes = [
            {"route": "noHandler"},
            {"route": "badHydrate", "hydrate": 42, "handler": "ok"},
            {"route": "badDehydrate", "dehydrate": "missing_method", "handler": "ok"},
            {"route": "bad name", "handler": "ok"},
            {"route": "fine", "handler": "ok", "access": "ok"},
        ]

        def ok(self, payload, headers):
            return {}

    found = sorted((e.id, e.msg.split("'")[1]) for e in check_routes() if e.obj is BrokenChecks)
    assert found == [("channels_router.E001", "noHandler"), ("channels_router.E003", "badDehydrate"),
                     ("channels_router.E003", "badHydrate"), ("channels_router.E004", "bad name")]


def test_project_consumers_pass_the_checks():
    from tests import consumers

    protocol_sockets = [cls for cls in vars(consumers).values()
                        if isinstance(cls, type) and issubclass(cls, consumers.ProtocolHandlers)
                        and getattr(cls, "route_table", None)]
    reported = {(e.obj, e.id, e.msg.split("'")[1]) for e in check_routes() if e.obj.__module__ in ("tests.consumers", "demo.consumers")}
    # The protocol test consumers declare two routes without a usable handler on purpose (the 501 tests).
    assert reported == {(cls, "channels_router.E001", route) for cls in protocol_sockets
                        for route in ("notImplemented", "notCallable")}


@pytest.mark.parametrize("base", BASES)
async def test_settings_limit_applies_when_the_class_sets_none(base):
    class Small(base):
        routes = [{"route": "echo"}]

        def on_echo(self, payload, headers):
            return {"payload": payload}

    with override_settings(CHANNELS_ROUTER={"MAX_MESSAGE_BYTES": 100}):
        comm = RouterCommunicator(Small.as_asgi(), "/ws/")
        await comm.connect()
        assert (await comm.request("echo", "x" * 10))["status"] == 200
        await comm.send_request("echo", "x" * 100)
        assert (await comm.receive_message())["status"] == 413  # echoes uuid null: the frame is not parsed
        await comm.disconnect()


async def test_default_frame_limit_is_one_mebibyte():
    class Default(AsyncSocketRouterConsumer):
        routes = [{"route": "echo"}]

        async def on_echo(self, payload, headers):
            return {"payload": len(payload)}

    comm = RouterCommunicator(Default.as_asgi(), "/ws/")
    await comm.connect()
    fits = 1_048_576 - len('{"uuid":"a","route":"echo","headers":{},"payload":"","status":200}')
    await comm.send_to(text_data='{"uuid":"a","route":"echo","headers":{},"payload":"' + "x" * fits + '","status":200}')
    assert (await comm.receive_json_from())["payload"] == fits
    await comm.send_to(text_data='{"uuid":"b","route":"echo","headers":{},"payload":"' + "x" * (fits + 1) + '","status":200}')
    assert (await comm.receive_json_from())["status"] == 413
    await comm.disconnect()


@pytest.mark.parametrize("setting, message", [
    ({"MAX_MESSAGE_BYTES": 0}, "at least 1"),
    ({"MAX_RUNNING_REQUESTS": "16"}, "at least 1"),
    ({"MAX_WAITING_REQUESTS": -1}, "at least 0"),
    ({"MAX_MESAGE_BYTES": 10}, "Unknown CHANNELS_ROUTER"),
])
def test_bad_settings_are_reported_clearly(setting, message):
    with override_settings(CHANNELS_ROUTER=setting), pytest.raises(ImproperlyConfigured, match=message):
        SocketRouterConsumer()


def test_checks_warn_when_the_asgi_application_cannot_be_imported():
    with override_settings(ASGI_APPLICATION="no_such_project.asgi.application"):
        warnings = [e for e in check_routes() if e.id == "channels_router.W001"]
    assert len(warnings) == 1 and "no_such_project.asgi.application" in warnings[0].msg
    assert not [e for e in check_routes() if e.id == "channels_router.W001"]


def test_settings_mistakes_are_reported_by_the_checks():
    from django_channels_router.checks import check_settings

    assert check_settings() == []
    with override_settings(CHANNELS_ROUTER={"MAX_MESAGE_BYTES": 10, "MAX_RUNNING_REQUESTS": 0}):
        errors = check_settings()
    assert [e.id for e in errors] == ["channels_router.E006"] and "MAX_MESAGE_BYTES" in errors[0].msg
    with override_settings(CHANNELS_ROUTER={"MAX_RUNNING_REQUESTS": 0}):
        assert "MAX_RUNNING_REQUESTS" in check_settings()[0].msg


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("base", BASES)
async def test_a_serializer_class_as_the_dehydrate_serialises_the_handlers_object(base):
    from channels.db import database_sync_to_async

    from demo.models import Article
    from demo.serializers import ArticleSerializer

    class Serialising(base):
        routes = [{"route": "get", "dehydrate": ArticleSerializer}]

        def on_get(self, payload, headers):
            return {"payload": Article.objects.get(pk=payload["id"])}

    assert Serialising.route_table["get"].dehydrate.serializer_class is ArticleSerializer
    assert Serialising.route_table["get"].sync_only  # a sync function, so one thread hop on the async consumer
    article = await database_sync_to_async(Article.objects.create)(title="Typed", body="b")
    comm = RouterCommunicator(Serialising.as_asgi(), "/ws/")
    assert (await comm.connect())[0]
    reply = await comm.request("get", {"id": article.pk})
    assert (reply["status"], reply["payload"]) == (200, await database_sync_to_async(
        lambda: ArticleSerializer(article).data)())
    await comm.disconnect()
