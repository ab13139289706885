"""Import rows: raw string maps keyed by target field -> CustomerInput (cleaning, no I/O).

Cleaning: every value trimmed (empty cells are ignored, never used to blank a
field); enum values accepted in any case and as API names ("company",
"CUSTOMER_KIND_COMPANY"); lists split on ";" or "|"; custom fields typed by a
suffix (`custom_fields.founded:date`, `:number`, `:bool`). Phones, emails and tax
ids are normalized later by the same rules as CreateCustomer (domain/rules.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from crm_customer.domain.model import Address, CustomerKind, LifecycleStage, Tier
from crm_customer.domain.rules import CustomerInput, RawContactPoint
from crm_shared.errors import FieldViolation, InvalidArgument
from crm_shared.pii.normalize import NormalizationError, normalize_email, normalize_phone, normalize_tax_id

SCALAR_FIELDS = ("display_name", "industry", "source", "owner", "team", "website", "tax_id")
LIST_FIELDS = ("tags", "collaborators", "phone_numbers", "email_addresses")
ADDRESS_PARTS = ("region_code", "administrative_area", "locality", "address_line", "postal_code")
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%d.%m.%Y", "%d/%m/%Y", "%Y%m%d", "%Y年%m月%d日")
_LIST_SEPARATOR = re.compile(r"[;|\n]")
_KIND_WORDS = {
    "company": CustomerKind.COMPANY,
    "person": CustomerKind.PERSON,
    "企业": CustomerKind.COMPANY,
    "公司": CustomerKind.COMPANY,
    "个人": CustomerKind.PERSON,
    "individual": CustomerKind.PERSON,
}
_TRUE = {"true", "yes", "y", "1", "是", "t"}
_FALSE = {"false", "no", "n", "0", "否", "f"}


@dataclass(frozen=True)
class ParsedRow:
    data: CustomerInput
    fields: frozenset[str]  # writable API fields the row sets


def row_checksum(values: dict[str, str]) -> str:
    """Stable over key order: what a resumed stream must send again for a row to count as the same."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _enum(raw: str, prefix: str, enum_type, extra: dict[str, Any] | None = None):
    word = raw.strip().lower().replace("-", "_").replace(" ", "_")
    word = word.removeprefix(prefix.lower())
    if extra and word in extra:
        return extra[word]
    for member in enum_type:
        if word in (member.value.lower(), member.name.lower()):
            return member
    raise ValueError(f"unknown value {raw!r}")


def parse_number(raw: str) -> int | float:
    text = raw.strip().replace(",", "").replace("_", "").replace(" ", "")
    value = float(text)  # ValueError for junk
    if not math.isfinite(value):
        raise ValueError(f"not a number: {raw!r}")
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def parse_date(raw: str) -> str:
    text = raw.strip()
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text).date().isoformat()
    except ValueError:
        pass
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError(f"not a date: {raw!r} (use YYYY-MM-DD)") from None


def parse_bool(raw: str) -> bool:
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"not a yes/no value: {raw!r}")


def _split(raw: str) -> list[str]:
    return [part.strip() for part in _LIST_SEPARATOR.split(raw) if part.strip()]


def parse_row(values: dict[str, str]) -> ParsedRow:
    """Clean one row; raises InvalidArgument naming every bad target field."""
    problems: list[FieldViolation] = []
    kwargs: dict[str, Any] = {}
    address: dict[str, str] = {}
    custom: dict[str, Any] = {}
    fields: set[str] = set()
    for column, raw in values.items():
        key = column
        value = raw.strip()
        if not value:
            continue
        try:
            if key in SCALAR_FIELDS:
                kwargs[key] = " ".join(value.split()) if key == "display_name" else value
            elif key == "kind":
                kwargs[key] = _enum(value, "customer_kind_", CustomerKind, _KIND_WORDS)
            elif key == "tier":
                kwargs[key] = _enum(value, "customer_tier_", Tier)
            elif key == "lifecycle_stage":
                kwargs[key] = _enum(value, "lifecycle_stage_", LifecycleStage)
            elif key in ("tags", "collaborators"):
                kwargs[key] = _split(value)
            elif key in ("phone_numbers", "email_addresses"):
                kwargs[key] = [RawContactPoint(part) for part in _split(value)]
            elif key.startswith("address."):
                part = key.removeprefix("address.")
                if part not in ADDRESS_PARTS:
                    raise ValueError("unknown address part")
                address[part] = value.upper() if part == "region_code" else value
                key = "address"
            elif key.startswith("custom_fields."):
                name, _, kind = key.removeprefix("custom_fields.").partition(":")
                if not name:
                    raise ValueError("custom field name missing")
                parser = {
                    "": str,
                    "text": str,
                    "number": parse_number,
                    "date": parse_date,
                    "bool": parse_bool,
                }
                if kind not in parser:
                    raise ValueError(f"unknown custom field type {kind!r} (number, date, bool, text)")
                custom[name] = parser[kind](value)
                key = "custom_fields"
            else:
                raise ValueError("unknown target field")
        except ValueError as exc:
            problems.append(FieldViolation(key, str(exc)))
            continue
        fields.add(key)
    if problems:
        raise InvalidArgument(
            "; ".join(f"{p.field}: {p.description}" for p in problems), field_violations=problems
        )
    if address:
        kwargs["address"] = Address(**address)
    if custom:
        kwargs["custom_fields"] = custom
    return ParsedRow(CustomerInput(**kwargs), frozenset(fields))


def row_identifiers(data: CustomerInput, phone_region: str) -> set[tuple[str, str]]:
    """The natural keys a row carries (values that do not normalize are left to the rules to report)."""
    keys: set[tuple[str, str]] = set()
    for point in data.email_addresses:
        with contextlib.suppress(NormalizationError):
            keys.add(("email", normalize_email(point.value)))
    for point in data.phone_numbers:
        with contextlib.suppress(NormalizationError):
            keys.add(("phone", normalize_phone(point.value, phone_region)))
    if data.tax_id and normalize_tax_id(data.tax_id):
        keys.add(("tax_id", normalize_tax_id(data.tax_id)))
    return keys
