"""The audit trail for admins: ListAuditEvents."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.adapters.audit_repository import AUDIT_FILTER, AuditRecord, AuditRepository
from crm_shared.access import AccessPolicy
from crm_shared.aip.paging import PageTokenCodec, clamp_page_size, query_fingerprint
from crm_shared.principal import Principal

RESOURCE = "audit_events"


@dataclass(frozen=True)
class AuditPage:
    records: list[AuditRecord]
    next_page_token: str


async def list_audit_events(
    session: AsyncSession,
    policy: AccessPolicy,
    page_tokens: PageTokenCodec,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
) -> AuditPage:
    policy.grant(principal, RESOURCE, "read")
    limit = clamp_page_size(page_size)
    where = AUDIT_FILTER.compile(filter_text)
    query = query_fingerprint("auditEvents", filter_text.strip(), principal.subject)
    after = page_tokens.decode(page_token, query=query) if page_token else None
    rows = await AuditRepository(session).list(where=where, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    token = ""
    if more:
        last = page[-1]
        token = page_tokens.encode([last.occurred_at, last.id], query=query)
    return AuditPage(page, token)
