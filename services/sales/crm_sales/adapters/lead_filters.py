"""What ListLeads can filter and sort on, as SQL over the leads table."""

from __future__ import annotations

import sqlalchemy as sa

from crm_sales.adapters.lead_published import CHANNEL_FILTER_VALUES, STATUS_FILTER_VALUES
from crm_sales.adapters.lead_repository import LeadRepository
from crm_sales.adapters.lead_tables import lead_identifiers, leads
from crm_shared.aip.filtering import FilterField, FilterSchema, invalid_filter
from crm_shared.aip.paging import SortKey
from crm_shared.pii.normalize import NormalizationError, normalize_email, normalize_phone

ORDERABLE = ("create_time", "update_time", "display_name", "score")
DEFAULT_ORDER = "create_time desc"


def sort_keys(fields: tuple[tuple[str, bool], ...]) -> list[SortKey]:
    keys = [SortKey(leads.c[name], descending) for name, descending in fields]
    last_descending = fields[-1][1] if fields else False
    return [*keys, SortKey(leads.c.id, last_descending)]


def _identifier(kind: str, repo: LeadRepository):
    def to_sql(op: str, value: str) -> sa.ColumnElement[bool]:
        match = sa.exists().where(
            lead_identifiers.c.lead_id == leads.c.id,
            lead_identifiers.c.kind == kind,
            lead_identifiers.c.digest == repo.digest(kind, value),
        )
        return match if op == "=" else sa.not_(match)

    return to_sql


def _campaign(value: str, quoted: bool) -> str:
    prefix, _, campaign_id = value.partition("/")
    if prefix != "campaigns" or not campaign_id:
        raise invalid_filter(f"campaign: {value!r} must look like campaigns/{{campaign}}")
    return campaign_id


def lead_filter_schema(repo: LeadRepository, phone_region: str) -> FilterSchema:
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

    c = leads.c
    return FilterSchema(
        {
            "display_name": FilterField.string(c.display_name, operators="= != < <= > >="),
            "owner": FilterField.string(c.owner),
            "team": FilterField.string(c.team),
            "source_platform": FilterField.string(c.source_platform),
            "status": FilterField.enum(c.status, STATUS_FILTER_VALUES),
            "source_channel": FilterField.enum(c.source_channel, CHANNEL_FILTER_VALUES),
            "campaign": FilterField.custom(
                "= !=", lambda op, v: c.campaign_id == v if op == "=" else c.campaign_id != v, _campaign
            ),
            "score": FilterField.number(c.score),
            "create_time": FilterField.timestamp(c.create_time),
            "update_time": FilterField.timestamp(c.update_time),
            "next_follow_up_time": FilterField.timestamp(c.next_follow_up_time),
            "email": FilterField.custom("= !=", _identifier("email", repo), email),
            "phone": FilterField.custom("= !=", _identifier("phone", repo), phone),
        }
    )
