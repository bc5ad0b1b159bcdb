"""User-task forms from camunda:formData: one definition, three uses (DESIGN.md §3).

The FormField tuple parsed from the BPMN is the single source for server-side
validation (a marshmallow schema), the HTML form and the JSON Schema the API shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import marshmallow
from marshmallow import fields as mf
from marshmallow import validate as mv

FIELD_TYPES = ("string", "long", "boolean", "date", "enum")
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class FormField:
    """One camunda:formField of a user task."""

    id: str
    label: str
    type: str
    required: bool = False
    readonly: bool = False
    enum: tuple[tuple[str, str], ...] = ()
    default: str | None = None
    min: float | None = None
    max: float | None = None
    minlength: int | None = None
    maxlength: int | None = None
    properties: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)

    def __hash__(self) -> int:
        """Hash with the properties included (a MappingProxy is not hashable itself)."""
        return hash(
            (
                self.id,
                self.label,
                self.type,
                self.required,
                self.readonly,
                self.enum,
                self.default,
                self.min,
                self.max,
                self.minlength,
                self.maxlength,
                tuple(sorted(self.properties.items())),
            )
        )


class _IsoDate(mf.Field):  # type: ignore[type-arg]
    """A 'YYYY-MM-DD' date that loads back to the same ISO text (task data stays JSON)."""

    default_error_messages = {  # noqa: RUF012 - marshmallow's own convention
        "invalid": "Not a valid date; use YYYY-MM-DD.",
    }

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        if isinstance(value, date):
            return value.isoformat()[:10]
        if not isinstance(value, str) or len(value) != 10:
            raise self.make_error("invalid")
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise self.make_error("invalid") from None

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


def _marshmallow_field(spec: FormField) -> mf.Field:  # type: ignore[type-arg]
    validators: list[Any] = []
    kwargs: dict[str, Any] = {
        "required": spec.required,
        "allow_none": not spec.required,
        "metadata": {"label": spec.label},
    }
    if spec.type == "long":
        if spec.min is not None or spec.max is not None:
            validators.append(mv.Range(min=spec.min, max=spec.max))
        return mf.Integer(strict=False, validate=validators, **kwargs)
    if spec.type == "boolean":
        return mf.Boolean(**kwargs)
    if spec.type == "date":
        return _IsoDate(**kwargs)
    if spec.type == "enum":
        choices = [value for value, _label in spec.enum]
        return mf.String(
            validate=[mv.OneOf(choices, labels=[lb for _v, lb in spec.enum])], **kwargs
        )
    # 'string' and anything unknown: free text with the length constraints.
    if spec.minlength is not None or spec.maxlength is not None:
        validators.append(mv.Length(min=spec.minlength, max=spec.maxlength))
    if spec.required:
        validators.append(mv.Length(min=1, error="Field may not be empty."))
    return mf.String(validate=validators, **kwargs)


@lru_cache(maxsize=1024)
def _schema_for(fields: tuple[FormField, ...]) -> type[marshmallow.Schema]:
    attrs: dict[str, Any] = {spec.id: _marshmallow_field(spec) for spec in fields}

    class Meta:
        unknown = marshmallow.RAISE

    attrs["Meta"] = Meta
    return marshmallow.Schema.from_dict(attrs, name="UserTaskForm")


def form_schema(fields: Sequence[FormField]) -> type[marshmallow.Schema]:
    """A marshmallow Schema class validating a submitted form (cached per fields tuple)."""
    return _schema_for(tuple(fields))


def json_schema(fields: Sequence[FormField]) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a user-task form, titles taken from the labels."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for spec in fields:
        prop: dict[str, Any] = {"title": spec.label}
        if spec.type == "long":
            prop["type"] = "integer"
            if spec.min is not None:
                prop["minimum"] = spec.min
            if spec.max is not None:
                prop["maximum"] = spec.max
        elif spec.type == "boolean":
            prop["type"] = "boolean"
        elif spec.type == "date":
            prop["type"] = "string"
            prop["format"] = "date"
        elif spec.type == "enum":
            prop["type"] = "string"
            prop["enum"] = [value for value, _label in spec.enum]
            prop["oneOf"] = [{"const": value, "title": label} for value, label in spec.enum]
        else:
            prop["type"] = "string"
            if spec.minlength is not None:
                prop["minLength"] = spec.minlength
            if spec.maxlength is not None:
                prop["maxLength"] = spec.maxlength
        if not spec.required:
            prop["type"] = [prop["type"], "null"]
            if "enum" in prop:
                prop["enum"].append(None)
                prop["oneOf"].append({"const": None, "title": ""})
        if spec.default is not None:
            prop["default"] = _typed_default(spec)
        if spec.readonly:
            prop["readOnly"] = True
        properties[spec.id] = prop
        if spec.required:
            required.append(spec.id)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _typed_default(spec: FormField) -> Any:
    if spec.default is None:
        return None
    if spec.type == "long":
        try:
            return int(spec.default)
        except ValueError:
            return spec.default
    if spec.type == "boolean":
        return spec.default.strip().lower() == "true"
    return spec.default
