"""Serializer fields built once per class: the same data, errors and per-request context as DRF."""

from unittest import mock

import django
import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser, User
from django.db import models
from rest_framework import permissions, serializers
from rest_framework.test import APIRequestFactory

from demo.models import Article
from django_channels_router.testing import RouterCommunicator
from drf_bridge import ModelSocketRouter
from drf_bridge.fields import _read_when_built, use_prebuilt_fields
from tests.factories import NoteFactory, UserFactory
from tests.models import Note

pytestmark = pytest.mark.django_db(transaction=True)


class OwnerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Note.owner.field.related_model
        fields = ["id", "username"]


class RichNoteSerializer(serializers.ModelSerializer):
    """Field kinds that bind, hold children, read the context or carry validators."""

    owner = OwnerSerializer(read_only=True)
    owner_id = serializers.PrimaryKeyRelatedField(source="owner", queryset=Note.owner.field.related_model.objects.all(),
                                                  write_only=True)
    shout = serializers.SerializerMethodField()
    tags = serializers.ListField(child=serializers.CharField(max_length=5), required=False, write_only=True)
    scores = serializers.DictField(child=serializers.IntegerField(min_value=0), required=False, write_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Note
        fields = ["id", "title", "body", "shared", "owner", "owner_id", "shout", "tags", "scores", "url"]
        extra_kwargs = {"title": {"error_messages": {"blank": "A note needs a title."}}}

    def get_shout(self, note):
        return note.title.upper()

    def get_url(self, note):
        return self.context["request"].build_absolute_uri(f"/notes/{note.pk}/")


def context(host="testserver"):
    return {"request": APIRequestFactory().get("/", HTTP_HOST=host)}


INPUTS = [
    {"title": "Fine", "owner_id": None, "tags": ["a", "b"], "scores": {"x": 1}},
    {"title": "", "owner_id": 0, "tags": ["far too long"], "scores": {"x": -1}},
    {"shared": "maybe", "tags": "not a list"},
    {"title": "x" * 101},
]


@pytest.mark.parametrize("data", INPUTS)
def test_prebuilt_fields_validate_and_serialise_as_drf_does(data):
    note = NoteFactory()
    data = {**data, "owner_id": note.owner_id} if data.get("owner_id") is None and "owner_id" in data else data
    plain = RichNoteSerializer(data=data, context=context())
    prebuilt = use_prebuilt_fields(RichNoteSerializer(data=data, context=context()))
    assert plain.is_valid() == prebuilt.is_valid()
    assert plain.errors == prebuilt.errors
    assert plain.validated_data == prebuilt.validated_data
    assert RichNoteSerializer(note, context=context()).data == \
        use_prebuilt_fields(RichNoteSerializer(note, context=context())).data
    assert use_prebuilt_fields(RichNoteSerializer([note], many=True, context=context())).data == \
        RichNoteSerializer([note], many=True, context=context()).data


def test_every_serializer_gets_its_own_bound_fields_and_its_own_context():
    note = NoteFactory()
    first = use_prebuilt_fields(RichNoteSerializer(note, context=context("one.example")))
    second = use_prebuilt_fields(RichNoteSerializer(note, context=context("two.example")))
    for name in first.fields:
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name].parent is first and second.fields[name].parent is second
    assert first.fields["tags"].child.root is first and second.fields["tags"].child.root is second
    assert first.data["url"].startswith("http://one.example/") and second.data["url"].startswith("http://two.example/")

    # What one serializer does to its fields reaches no other.
    first.fields["title"].validators.append(lambda value: None)
    first.fields["title"].error_messages["blank"] = "changed"
    first.fields["body"].required = True
    third = use_prebuilt_fields(RichNoteSerializer(data={"title": ""}, context=context()))
    assert not third.is_valid()
    assert third.errors == {"title": ["A note needs a title."], "owner_id": ["This field is required."]}
    assert len(third.fields["title"].validators) == len(RichNoteSerializer().fields["title"].validators)


def test_fields_are_built_once_per_serializer_class():
    class Counted(serializers.ModelSerializer):
        class Meta:
            model = Article
            fields = ["id", "title"]

    with mock.patch.object(serializers.ModelSerializer, "get_fields", autospec=True,
                           side_effect=serializers.ModelSerializer.get_fields) as get_fields:
        for title in ("a", "b", "c"):
            assert use_prebuilt_fields(Counted(Article(title=title))).data == {"id": None, "title": title}
    assert get_fields.call_count == 1


class StaffOnlyBodySerializer(serializers.ModelSerializer):
    """Fields that depend on the request: built per serializer, as DRF does."""

    class Meta:
        model = Article
        fields = ["id", "title", "body"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is None or not request.user.is_staff:
            del fields["body"]
        return fields


class PickFieldsSerializer(serializers.ModelSerializer):
    """DRF's documented dynamic-fields pattern: ``__init__`` drops fields from ``self.fields``."""

    class Meta:
        model = Article
        fields = ["id", "title", "body"]

    def __init__(self, *args, **kwargs):
        keep = kwargs.pop("keep", None)
        super().__init__(*args, **kwargs)
        for name in set(self.fields) - set(keep or self.fields):
            self.fields.pop(name)


def test_serializers_whose_fields_depend_on_the_request_are_built_per_serializer():
    article = Article(pk=1, title="T", body="B")
    staff, reader = UserFactory(is_staff=True), UserFactory()

    def fields_for(user):
        request = APIRequestFactory().get("/")
        request.user = user
        return set(use_prebuilt_fields(StaffOnlyBodySerializer(article, context={"request": request})).data)

    assert fields_for(staff) == {"id", "title", "body"}
    assert fields_for(reader) == {"id", "title"}
    assert set(use_prebuilt_fields(PickFieldsSerializer(article, keep=["title"])).data) == {"title"}
    assert set(use_prebuilt_fields(PickFieldsSerializer(article)).data) == {"id", "title", "body"}


def test_a_model_router_serves_request_dependent_fields_per_message():
    class Router(ModelSocketRouter):
        queryset = Article.objects.all()
        serializer_class = StaffOnlyBodySerializer
        permission_classes = [permissions.AllowAny]

    article = Article.objects.create(title="T", body="B")

    async def get(user):
        comm = RouterCommunicator(Router.as_asgi(), "/ws/", user=user)
        assert (await comm.connect())[0]
        reply = await comm.request("get", None, {"id": article.pk})
        await comm.disconnect()
        return reply["payload"]

    assert set(async_to_sync(get)(UserFactory(is_staff=True))) == {"id", "title", "body"}
    assert set(async_to_sync(get)(AnonymousUser())) == {"id", "title"}


class OptionsSerializer(serializers.ModelSerializer):
    options = serializers.JSONField(default={}, write_only=True)
    tags = serializers.ListField(child=serializers.CharField(), default=[], write_only=True)

    class Meta:
        model = Article
        fields = ["id", "title", "options", "tags"]


def test_a_default_one_request_changes_never_reaches_the_next():
    first = use_prebuilt_fields(OptionsSerializer(data={"title": "a"}))
    assert first.is_valid()
    first.validated_data["options"]["admin"] = True
    first.validated_data["tags"].append("x")
    second = use_prebuilt_fields(OptionsSerializer(data={"title": "b"}))
    assert second.is_valid()
    assert (second.validated_data["options"], second.validated_data["tags"]) == ({}, [])


def test_a_related_fields_queryset_is_fresh_for_every_serializer():
    first, second = (use_prebuilt_fields(RichNoteSerializer(context=context())) for _ in range(2))
    assert first.fields["owner_id"].queryset is not second.fields["owner_id"].queryset
    list(first.fields["owner_id"].queryset)  # a result cache of one serializer's queryset ...
    assert second.fields["owner_id"].queryset._result_cache is None  # ... is not another's


@pytest.mark.parametrize("model_field, read_each_time", [
    (models.ForeignKey(User, on_delete=models.CASCADE, limit_choices_to=lambda: {"is_staff": True}), True),
    (models.ForeignKey(User, on_delete=models.CASCADE, limit_choices_to={"is_staff": True}), False),
    (models.FilePathField(path="/tmp"), True),
    (models.CharField(max_length=5, choices=lambda: [("a", "A")]), django.VERSION >= (5, 0)),
    (models.CharField(max_length=5, choices=[("a", "A")]), False),
])
def test_model_fields_drf_reads_anew_each_time_keep_fields_from_being_prebuilt(model_field, read_each_time):
    assert _read_when_built(model_field) is read_each_time
