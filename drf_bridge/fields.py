"""A serializer's fields, built once per serializer class instead of once per serializer.

DRF's ``ModelSerializer`` introspects the model and instantiates every field each time a
serializer is made: for one row that is most of what serialising it costs. When every method
that builds a serializer's fields is DRF's own, the fields depend on the class alone (its
``Meta`` and declared fields), never on the request, so the bridge builds them once and gives
each serializer copies. A serializer that overrides any of these methods (to drop fields for
some users, say), or that reads ``self.fields`` in its ``__init__``, is built as DRF builds it,
and so is one whose model has a field DRF reads anew each time (a callable ``limit_choices_to``
or ``choices``, a ``FilePathField``).
"""

from __future__ import annotations

import copy
import threading
import weakref
from typing import Any

from django.db import models
from rest_framework.fields import DictField, Field, ListField, empty
from rest_framework.relations import ManyRelatedField
from rest_framework.serializers import BaseSerializer, ListSerializer, Serializer
from rest_framework.utils.serializer_helpers import BindingDict

__all__ = ["use_prebuilt_fields"]

#: The methods whose results make up ``Serializer.fields``.
FIELD_BUILDERS = (
    "fields", "get_fields", "get_field_names", "get_default_field_names", "get_extra_kwargs",
    "get_uniqueness_extra_kwargs", "include_extra_kwargs", "build_field", "build_standard_field",
    "build_relational_field", "build_nested_field", "build_property_field", "build_url_field",
    "build_unknown_field",
)
#: DRF fields that hold other fields bound to themselves: copied deeply, as DRF copies declared fields.
COMPOSITE_FIELDS = (BaseSerializer, ListField, DictField, ManyRelatedField)
#: Values a field's copy may share with the prototype; any other ``default`` or ``initial`` is
#: deep-copied (a ``default={}`` that one request changes must not reach the next).
IMMUTABLE = (str, bytes, int, float, bool, tuple, frozenset, type(None))

try:  # Django 5.0+: model field choices may be a callable, read each time a form field is made
    from django.utils.choices import CallableChoiceIterator
except ImportError:  # pragma: no cover  (Django 4.2)
    CallableChoiceIterator = ()

_prototypes: weakref.WeakKeyDictionary[type, dict[str, Field] | None] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def use_prebuilt_fields(serializer: BaseSerializer[Any]) -> BaseSerializer[Any]:
    """Give ``serializer`` (or a ``many=True`` serializer's child) copies of its class's fields."""
    target = serializer.child if isinstance(serializer, ListSerializer) else serializer
    if isinstance(target, Serializer) and "fields" not in vars(target):
        prototype = _prototype(type(target))
        if prototype is not None:
            fields = BindingDict(target)
            for name, field in prototype.items():
                fields[name] = _copy(field)
            target.fields = fields  # type: ignore[misc]  # fills DRF's cached_property
    return serializer


def _prototype(cls: type) -> dict[str, Field] | None:
    """The unbound fields of ``cls``, built once; ``None`` when they may depend on the instance."""
    try:
        return _prototypes[cls]
    except KeyError:
        pass
    prototype = None
    if _fields_depend_on_class_only(cls):
        try:
            prototype = cls().get_fields()
        except Exception:  # a serializer that needs arguments, or a bad Meta: DRF's own path reports it
            prototype = None
    with _lock:
        return _prototypes.setdefault(cls, prototype)


def _fields_depend_on_class_only(cls: type) -> bool:
    for name in FIELD_BUILDERS:
        owner = next((klass for klass in cls.__mro__ if name in vars(klass)), None)
        if owner is not None and not owner.__module__.startswith("rest_framework."):
            return False
    model = getattr(getattr(cls, "Meta", None), "model", None)
    return model is None or not any(map(_read_when_built, model._meta.get_fields()))


def _read_when_built(model_field: Any) -> bool:
    """Model fields whose serializer field reads something that may change: a callable
    ``limit_choices_to`` or ``choices``, a ``FilePathField``'s directory."""
    limit = getattr(model_field, "limit_choices_to", None) or getattr(
        getattr(model_field, "remote_field", None), "limit_choices_to", None)
    return (callable(limit) or isinstance(model_field, models.FilePathField)
            or isinstance(getattr(model_field, "choices", None), CallableChoiceIterator))


def _copy(field: Field) -> Field:
    """A copy of an unbound field that binding and per-serializer changes cannot reach through."""
    if isinstance(field, COMPOSITE_FIELDS) or not type(field).__module__.startswith("rest_framework."):
        return copy.deepcopy(field)
    clone = object.__new__(type(field))
    state = clone.__dict__
    state.update(field.__dict__)
    for mutable in ("_validators", "error_messages", "style"):  # lists and dicts users may change
        if mutable in state:
            state[mutable] = copy.copy(state[mutable])
    for value_name in ("default", "initial"):
        value = state.get(value_name, empty)
        if value is not empty and not isinstance(value, IMMUTABLE):
            state[value_name] = copy.deepcopy(value)
    if isinstance(state.get("queryset"), models.QuerySet):  # a related field's: no shared result cache
        state["queryset"] = state["queryset"].all()
    return clone
