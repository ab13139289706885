"""Leads and assignment rules in the database: encryption in, decryption out, scope in every query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sales.adapters.lead_tables import lead_assignment_rules, lead_identifiers, lead_keys, leads
from crm_sales.domain.leads import (
    OPEN_STATUSES,
    AssignmentRule,
    Evidence,
    Lead,
    LeadStatus,
    SourceChannel,
)
from crm_shared.access import ScopeGrant
from crm_shared.access.sql import scope_predicate
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted
from crm_shared.pii.codec import PersonalDataCodec


class LeadRepository:
    def __init__(self, session: AsyncSession, codec: PersonalDataCodec) -> None:
        self.session = session
        self.codec = codec

    # --- mapping -------------------------------------------------------------------------------

    def _row_values(self, lead: Lead, cipher) -> dict[str, Any]:
        return {
            "id": lead.id,
            "display_name": lead.display_name,
            "company": lead.company,
            "title": lead.title,
            "phones_enc": cipher.seal(list(lead.phones), table="leads", column="phones", row_id=lead.id),
            "emails_enc": cipher.seal(list(lead.emails), table="leads", column="emails", row_id=lead.id),
            "source_channel": lead.source_channel.value if lead.source_channel else "",
            "source_platform": lead.source_platform,
            "external_account_id": lead.external_account_id,
            "campaign_id": lead.campaign_id,
            "evidence": [[e.uri, e.description] for e in lead.evidence],
            "status": lead.status.value,
            "disqualify_reason": lead.disqualify_reason,
            "owner": lead.owner,
            "team": lead.team,
            "score": lead.score,
            "next_follow_up_time": lead.next_follow_up_time,
            "converted_customer": lead.converted_customer,
            "converted_contact": lead.converted_contact,
            "converted_opportunity": lead.converted_opportunity,
            "convert_time": lead.convert_time,
            "create_time": lead.create_time,
            "update_time": lead.update_time,
            "version": lead.version,
        }

    def _to_lead(self, row: sa.Row) -> Lead:
        open_ = self.codec.cipher(row.wrapped_key, row.id).open
        return Lead(
            id=row.id,
            display_name=row.display_name,
            status=LeadStatus(row.status),
            owner=row.owner,
            team=row.team,
            create_time=row.create_time,
            update_time=row.update_time,
            company=row.company,
            title=row.title,
            phones=list(open_(row.phones_enc, table="leads", column="phones", row_id=row.id) or []),
            emails=list(open_(row.emails_enc, table="leads", column="emails", row_id=row.id) or []),
            source_channel=SourceChannel(row.source_channel) if row.source_channel else None,
            source_platform=row.source_platform,
            external_account_id=row.external_account_id,
            campaign_id=row.campaign_id,
            evidence=[Evidence(uri, description) for uri, description in (row.evidence or [])],
            disqualify_reason=row.disqualify_reason,
            score=row.score,
            next_follow_up_time=row.next_follow_up_time,
            converted_customer=row.converted_customer,
            converted_contact=row.converted_contact,
            converted_opportunity=row.converted_opportunity,
            convert_time=row.convert_time,
            version=row.version,
        )

    # --- queries -------------------------------------------------------------------------------

    @staticmethod
    def visible(grant: ScopeGrant) -> sa.ColumnElement[bool]:
        return scope_predicate(grant, owner=leads.c.owner, team=leads.c.team)

    @staticmethod
    def _select() -> sa.Select:
        return sa.select(leads, lead_keys.c.wrapped_key).outerjoin(
            lead_keys, lead_keys.c.lead_id == leads.c.id
        )

    async def get(self, lead_id: str, grant: ScopeGrant | None = None) -> Lead | None:
        query = self._select().where(leads.c.id == lead_id)
        if grant is not None:
            query = query.where(self.visible(grant))
        row = (await self.session.execute(query)).first()
        return None if row is None else self._to_lead(row)

    async def list(
        self,
        grant: ScopeGrant,
        *,
        where: sa.ColumnElement[bool] | None,
        sort: Sequence[SortKey],
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[Lead]:
        query = self._select().where(self.visible(grant))
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return [self._to_lead(row) for row in (await self.session.execute(query)).all()]

    async def unassigned(self, channels: Sequence[SourceChannel], limit: int) -> list[Lead]:
        """Unowned NEW or RECYCLED leads (optionally only from `channels`), oldest first."""
        query = self._select().where(
            leads.c.owner == "", leads.c.status.in_([LeadStatus.NEW.value, LeadStatus.RECYCLED.value])
        )
        if channels:
            query = query.where(leads.c.source_channel.in_([c.value for c in channels]))
        query = query.order_by(leads.c.create_time, leads.c.id).limit(limit)
        return [self._to_lead(row) for row in (await self.session.execute(query)).all()]

    def digest(self, kind: str, value: str) -> str:
        return self.codec.digest(kind, value)

    async def find_open_duplicate(
        self, identifiers: set[tuple[str, str]], *, exclude_id: str = ""
    ) -> tuple[str, str] | None:
        """(identifier kind, lead id) of an open lead sharing an email or phone, if any.

        Deliberately unscoped: a rep must learn that a colleague already works this person.
        """
        if not identifiers:
            return None
        digests = [(kind, self.codec.digest(kind, value)) for kind, value in identifiers]
        query = (
            sa.select(lead_identifiers.c.kind, lead_identifiers.c.lead_id)
            .join(leads, leads.c.id == lead_identifiers.c.lead_id)
            .where(sa.tuple_(lead_identifiers.c.kind, lead_identifiers.c.digest).in_(digests))
            .where(leads.c.status.in_([s.value for s in OPEN_STATUSES]))
            .where(lead_identifiers.c.lead_id != exclude_id)
            .order_by(leads.c.create_time)
            .limit(1)
        )
        row = (await self.session.execute(query)).first()
        return None if row is None else (row.kind, row.lead_id)

    # --- writes --------------------------------------------------------------------------------

    async def add(self, lead: Lead) -> None:
        cipher, wrapped = self.codec.new_data_key(lead.id)
        await self.session.execute(
            sa.insert(lead_keys).values(lead_id=lead.id, wrapped_key=wrapped, create_time=lead.create_time)
        )
        await self.session.execute(sa.insert(leads).values(self._row_values(lead, cipher)))
        await self._write_identifiers(lead)

    async def _cipher(self, lead_id: str):
        wrapped = (
            await self.session.execute(
                sa.select(lead_keys.c.wrapped_key).where(lead_keys.c.lead_id == lead_id)
            )
        ).scalar_one_or_none()
        return self.codec.cipher(wrapped, lead_id)

    async def save(self, lead: Lead, *, expected_version: int, identifiers_changed: bool = False) -> None:
        """Optimistic concurrency: the row must still be at expected_version, else ABORTED."""
        values = self._row_values(lead, await self._cipher(lead.id))
        del values["id"], values["create_time"]
        result = await self.session.execute(
            sa.update(leads).where(leads.c.id == lead.id, leads.c.version == expected_version).values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{lead.name} was changed concurrently; read it again and retry", reason="CONCURRENT_UPDATE"
            )
        if identifiers_changed:
            await self.session.execute(
                sa.delete(lead_identifiers).where(lead_identifiers.c.lead_id == lead.id)
            )
            await self._write_identifiers(lead)

    async def _write_identifiers(self, lead: Lead) -> None:
        rows = [
            {"lead_id": lead.id, "kind": kind, "digest": self.codec.digest(kind, value)}
            for kind, value in sorted(lead.identifiers())
        ]
        if rows:
            await self.session.execute(sa.insert(lead_identifiers), rows)

    async def remove(self, lead_id: str) -> None:
        # Deleting the data key crypto-shreds any copy of the personal fields (replicas, backups).
        for table in (lead_identifiers, lead_keys):
            await self.session.execute(sa.delete(table).where(table.c.lead_id == lead_id))
        await self.session.execute(sa.delete(leads).where(leads.c.id == lead_id))


class RuleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def _to_rule(row: sa.Row) -> AssignmentRule:
        return AssignmentRule(
            id=row.id,
            display_name=row.display_name,
            team=row.team,
            members=list(row.members or []),
            source_channels=[SourceChannel(c) for c in (row.source_channels or [])],
            next_index=row.next_index,
            create_time=row.create_time,
            update_time=row.update_time,
            version=row.version,
        )

    @staticmethod
    def visible(grant: ScopeGrant) -> sa.ColumnElement[bool]:
        # Rules belong to a team; "own" makes no sense for them and is treated like team.
        return scope_predicate(grant, owner=sa.literal(""), team=lead_assignment_rules.c.team)

    async def get(self, rule_id: str, grant: ScopeGrant | None = None, *, for_update: bool = False):
        query = sa.select(lead_assignment_rules).where(lead_assignment_rules.c.id == rule_id)
        if grant is not None:
            query = query.where(self.visible(grant))
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return None if row is None else self._to_rule(row)

    async def list(
        self, grant: ScopeGrant, *, after: Sequence[Any] | None, limit: int
    ) -> list[AssignmentRule]:
        sort = [SortKey(lead_assignment_rules.c.create_time), SortKey(lead_assignment_rules.c.id)]
        query = sa.select(lead_assignment_rules).where(self.visible(grant))
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return [self._to_rule(row) for row in (await self.session.execute(query)).all()]

    async def first_matching(self, channel: SourceChannel | None, *, for_update: bool = True):
        """The oldest rule whose channel filter takes `channel` (locked: its rotation advances)."""
        query = sa.select(lead_assignment_rules).order_by(
            lead_assignment_rules.c.create_time, lead_assignment_rules.c.id
        )
        for row in (await self.session.execute(query)).all():
            rule = self._to_rule(row)
            if rule.matches(channel):
                return await self.get(rule.id, for_update=for_update) if for_update else rule
        return None

    async def add(self, rule: AssignmentRule) -> None:
        await self.session.execute(
            sa.insert(lead_assignment_rules).values(
                id=rule.id,
                display_name=rule.display_name,
                team=rule.team,
                members=list(rule.members),
                source_channels=[c.value for c in rule.source_channels],
                next_index=rule.next_index,
                create_time=rule.create_time,
                update_time=rule.update_time,
                version=rule.version,
            )
        )

    async def save(self, rule: AssignmentRule, *, expected_version: int) -> None:
        result = await self.session.execute(
            sa.update(lead_assignment_rules)
            .where(lead_assignment_rules.c.id == rule.id, lead_assignment_rules.c.version == expected_version)
            .values(
                display_name=rule.display_name,
                team=rule.team,
                members=list(rule.members),
                source_channels=[c.value for c in rule.source_channels],
                next_index=rule.next_index,
                update_time=rule.update_time,
                version=rule.version,
            )
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{rule.name} was changed concurrently; read it again and retry", reason="CONCURRENT_UPDATE"
            )

    async def advance(self, rule: AssignmentRule, next_index: int, *, now) -> None:
        await self.session.execute(
            sa.update(lead_assignment_rules)
            .where(lead_assignment_rules.c.id == rule.id)
            .values(next_index=next_index, update_time=now, version=lead_assignment_rules.c.version + 1)
        )

    async def remove(self, rule_id: str) -> None:
        await self.session.execute(
            sa.delete(lead_assignment_rules).where(lead_assignment_rules.c.id == rule_id)
        )
