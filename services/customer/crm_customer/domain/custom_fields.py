"""Custom fields: definitions and the validation every write of custom_fields goes through.

`validate_custom_fields` is pure: given the definitions of a resource type and
the values a caller sent, it returns the normalized values and every problem,
each naming its field (`customer.custom_fields.budget`), so one INVALID_ARGUMENT
lists all of them. CreateCustomer, UpdateCustomer and ImportCustomers call it.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from crm_shared.errors import FieldViolation, Violations

MAX_TEXT_LENGTH = 1000
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ResourceType(enum.StrEnum):
    CUSTOMERS = "customers"
    CONTACTS = "contacts"


class FieldType(enum.StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    BOOL = "bool"
    ENUM = "enum"
    MULTI_ENUM = "multi_enum"


# Types whose values order meaningfully in filters (number by value, ISO dates as text).
ORDERED_TYPES = frozenset({FieldType.NUMBER, FieldType.DATE})
ENUM_TYPES = frozenset({FieldType.ENUM, FieldType.MULTI_ENUM})
# Fields an UpdateCustomFieldDefinition may change; the rest are fixed at creation.
DEFINITION_WRITABLE_FIELDS = frozenset({"display_name", "allowed_values", "required", "filterable"})
DEFINITION_OUTPUT_ONLY_FIELDS = frozenset(
    {"name", "create_time", "update_time", "etag", "key", "resource_type", "type", "unique"}
)


@dataclass
class CustomFieldDefinition:
    id: str
    resource_type: ResourceType
    key: str
    type: FieldType
    create_time: datetime
    update_time: datetime
    display_name: str = ""
    allowed_values: list[str] = field(default_factory=list)
    required: bool = False
    unique: bool = False
    filterable: bool = False
    version: int = 1

    @property
    def name(self) -> str:
        return f"customFields/{self.id}"


@dataclass(frozen=True)
class DefinitionInput:
    resource_type: ResourceType | None = None
    key: str = ""
    display_name: str = ""
    type: FieldType | None = None
    allowed_values: list[str] = field(default_factory=list)
    required: bool = False
    unique: bool = False
    filterable: bool = False


def _clean_values(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v.strip()))


def _check_definition_shape(
    kind: FieldType, allowed: list[str], unique: bool, path: str, violations: Violations
) -> None:
    if kind in ENUM_TYPES and not allowed:
        violations.add(f"{path}.allowed_values", f"is required for a {kind.value} field")
    if kind not in ENUM_TYPES and allowed:
        violations.add(f"{path}.allowed_values", "only enum and multi_enum fields have allowed values")
    if unique and kind in (FieldType.BOOL, FieldType.MULTI_ENUM):
        violations.add(f"{path}.unique", f"a {kind.value} field cannot be unique")


def new_definition(
    data: DefinitionInput, *, definition_id: str, now: datetime, path: str = "custom_field_definition"
) -> CustomFieldDefinition:
    violations = Violations()
    if data.resource_type is None:
        violations.add(f"{path}.resource_type", "is required")
    key = data.key.strip()
    if not key:
        violations.add(f"{path}.key", "is required")
    elif not KEY_PATTERN.match(key):
        violations.add(f"{path}.key", "must be snake_case: a-z, digits and _, starting with a letter")
    if data.type is None:
        violations.add(f"{path}.type", "is required")
    allowed = _clean_values(data.allowed_values)
    if data.type is not None:
        _check_definition_shape(data.type, allowed, data.unique, path, violations)
    violations.raise_if_any("the custom field definition has invalid fields")
    assert data.resource_type is not None and data.type is not None
    return CustomFieldDefinition(
        id=definition_id,
        resource_type=data.resource_type,
        key=key,
        type=data.type,
        create_time=now,
        update_time=now,
        display_name=data.display_name.strip() or key,
        allowed_values=allowed,
        required=data.required,
        unique=data.unique,
        filterable=data.filterable,
    )


def update_definition(
    current: CustomFieldDefinition,
    data: DefinitionInput,
    fields: frozenset[str],
    *,
    now: datetime,
    path: str = "custom_field_definition",
) -> tuple[CustomFieldDefinition, list[str]]:
    changes: dict[str, Any] = {}
    if "display_name" in fields:
        changes["display_name"] = data.display_name.strip() or current.key
    if "allowed_values" in fields:
        changes["allowed_values"] = _clean_values(data.allowed_values)
    for name in ("required", "filterable"):
        if name in fields:
            changes[name] = getattr(data, name)
    violations = Violations()
    _check_definition_shape(
        current.type, changes.get("allowed_values", current.allowed_values), current.unique, path, violations
    )
    violations.raise_if_any("the custom field definition has invalid fields")
    changed = [name for name, value in changes.items() if getattr(current, name) != value]
    if not changed:
        return current, []
    updated = CustomFieldDefinition(
        **{**current.__dict__, **changes, "update_time": now, "version": current.version + 1}
    )
    return updated, changed


# --- values ------------------------------------------------------------------------------------


def _absent(value: Any) -> bool:
    return value is None or value in ("", [])


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        if value.is_integer() and abs(value) < 2**53:
            return int(value)  # JSON/Struct numbers are doubles; keep whole numbers whole
    return value


def _date(value: Any) -> str:
    if not isinstance(value, str) or not _DATE_PATTERN.match(value.strip()):
        raise ValueError('must be a date like "2026-01-31"')
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise ValueError(f"{value.strip()!r} is not a calendar date") from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    text = value.strip()
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(f"must be at most {MAX_TEXT_LENGTH} characters")
    return text


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _one_of(value: Any, allowed: list[str]) -> str:
    if not isinstance(value, str) or value.strip() not in allowed:
        raise ValueError(f"must be one of: {', '.join(allowed)}")
    return value.strip()


def _many_of(value: Any, allowed: list[str]) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"must be a list of values from: {', '.join(allowed)}")
    chosen = [_one_of(item, allowed) for item in value]
    return list(dict.fromkeys(chosen))


def normalize_value(definition: CustomFieldDefinition, value: Any) -> Any:
    """The stored form of a value, or ValueError saying what is wrong with it."""
    kind = definition.type
    if kind is FieldType.NUMBER:
        return _number(value)
    if kind is FieldType.DATE:
        return _date(value)
    if kind is FieldType.BOOL:
        return _bool(value)
    if kind is FieldType.ENUM:
        return _one_of(value, definition.allowed_values)
    if kind is FieldType.MULTI_ENUM:
        return _many_of(value, definition.allowed_values)
    return _text(value)


def validate_custom_fields(
    definitions: Iterable[CustomFieldDefinition],
    values: Mapping[str, Any],
    *,
    path: str = "customer.custom_fields",
    check_required: bool = True,
) -> tuple[dict[str, Any], list[FieldViolation]]:
    """Normalized values (absent ones dropped) and one violation per bad field.

    Unknown keys are rejected; `check_required` (creates, and updates that replace
    custom_fields) demands a value for every required definition.
    """
    by_key = {d.key: d for d in definitions}
    normalized: dict[str, Any] = {}
    violations: list[FieldViolation] = []
    for key, value in values.items():
        definition = by_key.get(key)
        if definition is None:
            known = ", ".join(sorted(by_key)) or "none are defined"
            violations.append(FieldViolation(f"{path}.{key}", f"is not a defined custom field ({known})"))
            continue
        if _absent(value):
            continue
        try:
            cleaned = normalize_value(definition, value)
        except ValueError as exc:
            violations.append(FieldViolation(f"{path}.{key}", str(exc)))
            continue
        if not _absent(cleaned):
            normalized[key] = cleaned
    if check_required:
        for key, definition in sorted(by_key.items()):
            if (
                definition.required
                and key not in normalized
                and not any(v.field == f"{path}.{key}" for v in violations)
            ):
                violations.append(FieldViolation(f"{path}.{key}", "is required"))
    return normalized, violations


def unique_token(value: Any) -> str:
    """Canonical text of a normalized value, for the uniqueness index (1 and 1.0 are the same)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
