"""What ListCustomers can filter and sort on, as SQL over the customers table."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence

import sqlalchemy as sa

from crm_customer.adapters.published import (
    KIND_FILTER_VALUES,
    STAGE_FILTER_VALUES,
    STATUS_FILTER_VALUES,
    TIER_FILTER_VALUES,
)
from crm_customer.adapters.repository import CustomerRepository
from crm_customer.adapters.tables import customer_identifiers, customer_tags, customers
from crm_customer.domain.custom_fields import CustomFieldDefinition, FieldType, normalize_value
from crm_shared.aip.filtering import FilterField, FilterSchema, invalid_filter
from crm_shared.aip.paging import SortKey
from crm_shared.pii.normalize import NormalizationError, normalize_email, normalize_phone

ORDERABLE = ("create_time", "update_time", "display_name")
DEFAULT_ORDER = "create_time desc"


def sort_keys(fields: tuple[tuple[str, bool], ...]) -> list[SortKey]:
    """The requested order plus the id as the final tie-breaker (keyset pagination needs a unique key)."""
    keys = [SortKey(customers.c[name], descending) for name, descending in fields]
    last_descending = fields[-1][1] if fields else False
    return [*keys, SortKey(customers.c.id, last_descending)]


def _has_tag(op: str, tag: str) -> sa.ColumnElement[bool]:
    return sa.exists().where(customer_tags.c.customer_id == customers.c.id, customer_tags.c.tag == tag)


def _identifier(kind: str, repo: CustomerRepository):
    def to_sql(op: str, value: str) -> sa.ColumnElement[bool]:
        match = sa.exists().where(
            customer_identifiers.c.customer_id == customers.c.id,
            customer_identifiers.c.kind == kind,
            customer_identifiers.c.digest == repo.identifier_digest(kind, value),
        )
        return match if op == "=" else sa.not_(match)

    return to_sql


def customer_filter_schema(
    repo: CustomerRepository,
    phone_region: str,
    custom_fields: Sequence[CustomFieldDefinition] = (),
) -> FilterSchema:
    def email(value: str, quoted: bool) -> str:
        try:
            return normalize_email(value)
        except NormalizationError as exc:
            raise invalid_filter(f"email: {exc}") from None

    def phone(value: str, quoted: bool) -> str:
        try:
            return normalize_phone(value, phone_region)
        except NormalizationError as exc:
            raise invalid_filter(f"phone: {exc}") from None

    c = customers.c
    schema = FilterSchema(
        {
            "display_name": FilterField.string(c.display_name, operators="= != < <= > >="),
            "industry": FilterField.string(c.industry),
            "source": FilterField.string(c.source),
            "owner": FilterField.string(c.owner),
            "team": FilterField.string(c.team),
            "kind": FilterField.enum(c.kind, KIND_FILTER_VALUES),
            "tier": FilterField.enum(c.tier, TIER_FILTER_VALUES),
            "lifecycle_stage": FilterField.enum(c.lifecycle_stage, STAGE_FILTER_VALUES),
            "status": FilterField.enum(c.status, STATUS_FILTER_VALUES),
            "locked": FilterField.boolean(c.locked),
            "last_follow_up_time": FilterField.timestamp(c.last_follow_up_time),
            "next_follow_up_time": FilterField.timestamp(c.next_follow_up_time),
            "reclaim_time": FilterField.timestamp(c.reclaim_time),
            "create_time": FilterField.timestamp(c.create_time),
            "update_time": FilterField.timestamp(c.update_time),
            "tags": FilterField.custom(":", _has_tag),
            "email": FilterField.custom("= !=", _identifier("email", repo), email),
            "phone": FilterField.custom("= !=", _identifier("phone", repo), phone),
        }
    )
    return FilterSchema(WithCustomFields(custom_fields, schema.fields)) if custom_fields else schema


# --- custom fields: `custom_fields.<key> <op> <value>`, resolved against the definitions ---------

CUSTOM_FIELD_PREFIX = "custom_fields."


def _custom_field_filter(definition: CustomFieldDefinition) -> FilterField:
    value = customers.c.custom_fields[definition.key]  # JSON path; compiles on SQLite and PostgreSQL
    name = CUSTOM_FIELD_PREFIX + definition.key

    def checked(text: str, quoted: bool):
        try:
            return normalize_value(definition, text)
        except ValueError as exc:
            raise invalid_filter(f"{name}: {exc}") from None

    if definition.type is FieldType.NUMBER:
        return FilterField.number(value.as_float())
    if definition.type is FieldType.BOOL:
        return FilterField.boolean(value.as_boolean())
    if definition.type is FieldType.DATE:
        return FilterField.custom(
            "= != < <= > >=", lambda op, v: FilterField.string(value.as_string()).to_sql(op, v), checked
        )
    if definition.type is FieldType.MULTI_ENUM:
        # `custom_fields.colours:"red"`: the stored JSON array holds the JSON string "red". Both
        # databases render the array as text with the same escaping SQLAlchemy wrote it with.
        def has(op: str, member: str) -> sa.ColumnElement[bool]:
            needle = json.dumps(member).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return sa.cast(value, sa.Text).like(f"%{needle}%", escape="\\")

        return FilterField.custom(":", has, lambda text, quoted: checked([text], quoted)[0])
    if definition.type is FieldType.ENUM:
        return FilterField.custom(
            "= !=", lambda op, v: FilterField.string(value.as_string()).to_sql(op, v), checked
        )
    return FilterField.string(value.as_string())


class WithCustomFields(Mapping[str, FilterField]):
    """The fixed filter fields plus `custom_fields.<key>` for every filterable definition."""

    def __init__(self, definitions: Sequence[CustomFieldDefinition], fields: Mapping[str, FilterField]):
        self._fields = dict(fields)
        self._definitions = {d.key: d for d in definitions}

    def __getitem__(self, name: str) -> FilterField:
        if name in self._fields:
            return self._fields[name]
        if not name.startswith(CUSTOM_FIELD_PREFIX):
            raise KeyError(name)
        key = name.removeprefix(CUSTOM_FIELD_PREFIX)
        definition = self._definitions.get(key)
        if definition is None or not definition.filterable:
            filterable = sorted(CUSTOM_FIELD_PREFIX + k for k, d in self._definitions.items() if d.filterable)
            raise invalid_filter(
                f"{name!r} is not a filterable custom field; filterable: {', '.join(filterable) or 'none'}"
            )
        return _custom_field_filter(definition)

    def __iter__(self) -> Iterator[str]:
        yield from self._fields
        yield from (CUSTOM_FIELD_PREFIX + k for k, d in self._definitions.items() if d.filterable)

    def __len__(self) -> int:
        return len(self._fields) + sum(1 for d in self._definitions.values() if d.filterable)
