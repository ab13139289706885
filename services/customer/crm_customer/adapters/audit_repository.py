"""Reading the audit trail (crm_shared's audit_log table, written by every unit of work)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.adapters.tables import platform
from crm_shared.aip.filtering import FilterField, FilterSchema
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order

audit_log = platform.audit_log

# Newest first; the id (UUIDv7, time-ordered) breaks ties within one transaction's timestamp.
NEWEST_FIRST = [SortKey(audit_log.c.occurred_at, True), SortKey(audit_log.c.id, True)]

AUDIT_FILTER = FilterSchema(
    {
        "resource": FilterField.string(audit_log.c.resource),
        "actor": FilterField.string(audit_log.c.actor),
        "actor_team": FilterField.string(audit_log.c.actor_team),
        "action": FilterField.string(audit_log.c.action),
        "occur_time": FilterField.timestamp(audit_log.c.occurred_at),
    }
)


@dataclass(frozen=True)
class AuditRecord:
    id: str
    occurred_at: datetime
    actor: str
    actor_team: str
    action: str
    resource: str
    fields: list[str]
    request_id: str

    @property
    def name(self) -> str:
        return f"auditEvents/{self.id}"


def _record(row: sa.Row) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        occurred_at=row.occurred_at,
        actor=row.actor,
        actor_team=row.actor_team,
        action=row.action,
        resource=row.resource,
        fields=list(row.fields or []),
        request_id=row.request_id,
    )


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list(
        self, *, where: sa.ColumnElement[bool] | None, after: Sequence[Any] | None, limit: int
    ) -> list[AuditRecord]:
        query = sa.select(audit_log)
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(NEWEST_FIRST, after))
        rows = await self.session.execute(query.order_by(*keyset_order(NEWEST_FIRST)).limit(limit))
        return [_record(row) for row in rows]

    async def about(self, resource: str) -> list[AuditRecord]:
        """Records about a resource and its children (a customer and its contacts), oldest first."""
        rows = await self.session.execute(
            sa.select(audit_log)
            .where(sa.or_(audit_log.c.resource == resource, audit_log.c.resource.startswith(resource + "/")))
            .order_by(audit_log.c.occurred_at, audit_log.c.id)
        )
        return [_record(row) for row in rows]
