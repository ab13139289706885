"""What ListCustomers can filter and sort on, as SQL over the customers table."""

from __future__ import annotations

import sqlalchemy as sa

from crm_customer.adapters.published import (
    KIND_FILTER_VALUES,
    STAGE_FILTER_VALUES,
    STATUS_FILTER_VALUES,
    TIER_FILTER_VALUES,
)
from crm_customer.adapters.repository import CustomerRepository
from crm_customer.adapters.tables import customer_identifiers, customer_tags, customers
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


def customer_filter_schema(repo: CustomerRepository, phone_region: str) -> FilterSchema:
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
    return FilterSchema(
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
