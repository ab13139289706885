"""Pools, their members, ownership history, and the conditional updates that move ownership."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.adapters.pool_tables import ownership_changes, pool_members, pools
from crm_customer.adapters.tables import customers
from crm_customer.domain.model import Customer, CustomerStatus, Tier
from crm_customer.domain.pools import OwnershipReason, Pool, PoolRules, ReclaimRule
from crm_shared.access import Scope, ScopeGrant
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order

_DEFAULT_TIER = "default"


def rules_to_json(rules: PoolRules) -> dict[str, Any]:
    return {
        "reclaim": {
            (tier.value if tier else _DEFAULT_TIER): {
                "follow_up_days": r.follow_up_days,
                "deal_days": r.deal_days,
            }
            for tier, r in rules.reclaim.items()
        },
        "exempt_with_deal": rules.exempt_with_deal,
        "warn_days_before": rules.warn_days_before,
        "max_customers_per_user": rules.max_customers_per_user,
        "max_claims_per_day": rules.max_claims_per_day,
        "reclaim_cooldown_days": rules.reclaim_cooldown_days,
    }


def rules_from_json(data: dict[str, Any]) -> PoolRules:
    return PoolRules(
        reclaim={
            (None if tier == _DEFAULT_TIER else Tier(tier)): ReclaimRule(
                int(r.get("follow_up_days", 0)), int(r.get("deal_days", 0))
            )
            for tier, r in (data.get("reclaim") or {}).items()
        },
        exempt_with_deal=bool(data.get("exempt_with_deal", False)),
        warn_days_before=int(data.get("warn_days_before", 0)),
        max_customers_per_user=int(data.get("max_customers_per_user", 0)),
        max_claims_per_day=int(data.get("max_claims_per_day", 0)),
        reclaim_cooldown_days=int(data.get("reclaim_cooldown_days", 0)),
    )


def _is_member(user: str, team: str) -> sa.ColumnElement[bool]:
    m = pool_members.c
    who = sa.and_(m.member_kind == "user", m.member == user)
    if team:
        who = sa.or_(who, sa.and_(m.member_kind == "team", m.member == team))
    return sa.exists().where(m.pool_id == pools.c.id, who)


class PoolRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def visible(self, grant: ScopeGrant) -> sa.ColumnElement[bool]:
        """Admins: every pool; managers: their team's pools and pools they belong to; others: membership."""
        if grant.scope is Scope.ALL:
            return sa.true()
        member = _is_member(grant.subject, grant.team)
        if grant.scope is Scope.TEAM and grant.team:
            return sa.or_(pools.c.team == grant.team, member)
        if grant.scope in (Scope.TEAM, Scope.OWN):
            return member
        return sa.false()

    def manageable(self, grant: ScopeGrant) -> sa.ColumnElement[bool]:
        """Pools the caller may change (or assign from): all, or their team's."""
        if grant.scope is Scope.ALL:
            return sa.true()
        if grant.scope is Scope.TEAM and grant.team:
            return pools.c.team == grant.team
        return sa.false()

    async def _members(self, pool_ids: Sequence[str]) -> dict[str, tuple[list[str], list[str]]]:
        found: dict[str, tuple[list[str], list[str]]] = {pid: ([], []) for pid in pool_ids}
        if not pool_ids:
            return found
        m = pool_members.c
        rows = await self.session.execute(
            sa.select(m.pool_id, m.member_kind, m.member)
            .where(m.pool_id.in_(list(pool_ids)))
            .order_by(m.pool_id, m.member_kind, m.member)
        )
        for row in rows:
            users, teams = found[row.pool_id]
            (users if row.member_kind == "user" else teams).append(row.member)
        return found

    def _to_pool(self, row: Any, members: tuple[list[str], list[str]]) -> Pool:
        return Pool(
            id=row.id,
            display_name=row.display_name,
            team=row.team,
            create_time=row.create_time,
            update_time=row.update_time,
            member_users=members[0],
            member_teams=members[1],
            rules=rules_from_json(row.rules or {}),
            version=row.version,
        )

    async def get(self, pool_id: str, where: sa.ColumnElement[bool] | None = None) -> Pool | None:
        query = sa.select(pools).where(pools.c.id == pool_id)
        if where is not None:
            query = query.where(where)
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        return self._to_pool(row, (await self._members([row.id]))[row.id])

    async def list(
        self, where: sa.ColumnElement[bool], *, after: Sequence[Any] | None, limit: int
    ) -> list[Pool]:
        sort = [SortKey(pools.c.create_time), SortKey(pools.c.id)]
        query = sa.select(pools).where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        rows = (await self.session.execute(query.order_by(*keyset_order(sort)).limit(limit))).all()
        members = await self._members([r.id for r in rows])
        return [self._to_pool(r, members[r.id]) for r in rows]

    async def add(self, pool: Pool) -> None:
        await self.session.execute(
            sa.insert(pools).values(
                id=pool.id,
                display_name=pool.display_name,
                team=pool.team,
                rules=rules_to_json(pool.rules),
                create_time=pool.create_time,
                update_time=pool.update_time,
                version=pool.version,
            )
        )
        await self._write_members(pool)

    async def save(self, pool: Pool, *, expected_version: int) -> bool:
        result = await self.session.execute(
            sa.update(pools)
            .where(pools.c.id == pool.id, pools.c.version == expected_version)
            .values(
                display_name=pool.display_name,
                rules=rules_to_json(pool.rules),
                update_time=pool.update_time,
                version=pool.version,
            )
        )
        if result.rowcount != 1:
            return False
        await self.session.execute(sa.delete(pool_members).where(pool_members.c.pool_id == pool.id))
        await self._write_members(pool)
        return True

    async def _write_members(self, pool: Pool) -> None:
        rows = [{"pool_id": pool.id, "member_kind": "user", "member": u} for u in pool.member_users] + [
            {"pool_id": pool.id, "member_kind": "team", "member": t} for t in pool.member_teams
        ]
        if rows:
            await self.session.execute(sa.insert(pool_members), rows)

    async def remove(self, pool_id: str) -> None:
        await self.session.execute(sa.delete(pool_members).where(pool_members.c.pool_id == pool_id))
        await self.session.execute(sa.delete(pools).where(pools.c.id == pool_id))

    async def customers_waiting(self, pool_id: str) -> int:
        c = customers.c
        return (
            await self.session.execute(
                sa.select(sa.func.count())
                .select_from(customers)
                .where(c.status == CustomerStatus.IN_POOL.value, c.pool_id == pool_id)
            )
        ).scalar_one()


@dataclass(frozen=True)
class OwnershipChangeRecord:
    id: str
    customer_id: str
    reason: OwnershipReason
    detail_code: str
    from_owner: str
    to_owner: str
    from_team: str
    to_team: str
    pool_id: str
    actor: str
    change_time: datetime

    @property
    def name(self) -> str:
        return f"customers/{self.customer_id}/ownershipChanges/{self.id}"


class OwnershipRepository:
    """Ownership history, claim counters, and the compare-and-set update that moves a customer."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def move(self, before: Customer, after: Customer) -> bool:
        """Write `after`'s ownership columns iff the row is still exactly `before` (status and version).

        One UPDATE … WHERE status = … AND version = …: of two racing moves exactly one matches
        (PostgreSQL re-checks the WHERE after the first commits; SQLite has one writer).
        """
        c = customers.c
        result = await self.session.execute(
            sa.update(customers)
            .where(
                c.id == before.id,
                c.version == before.version,
                c.status == before.status.value,
            )
            .values(
                status=after.status.value,
                owner=after.owner,
                team=after.team,
                pool_id=after.pool_id,
                former_owner=after.former_owner,
                assign_time=after.assign_time,
                reclaim_time=after.reclaim_time,
                locked=after.locked,
                lifecycle_stage=after.lifecycle_stage.value,
                last_follow_up_time=after.last_follow_up_time,
                next_follow_up_time=after.next_follow_up_time,
                last_deal_time=after.last_deal_time,
                update_time=after.update_time,
                version=after.version,
            )
        )
        return result.rowcount == 1

    async def set_reclaim_time(self, customer_id: str, reclaim_time: datetime | None) -> None:
        """Derived display value: does not bump the version (no user-visible change of intent)."""
        await self.session.execute(
            sa.update(customers).where(customers.c.id == customer_id).values(reclaim_time=reclaim_time)
        )

    async def record(self, change: OwnershipChangeRecord) -> None:
        await self.session.execute(
            sa.insert(ownership_changes).values(
                id=change.id,
                customer_id=change.customer_id,
                reason=change.reason.value,
                detail_code=change.detail_code,
                from_owner=change.from_owner,
                to_owner=change.to_owner,
                from_team=change.from_team,
                to_team=change.to_team,
                pool_id=change.pool_id,
                actor=change.actor,
                change_time=change.change_time,
            )
        )

    async def history(
        self, customer_id: str, *, after: Sequence[Any] | None, limit: int
    ) -> list[OwnershipChangeRecord]:
        o = ownership_changes.c
        sort = [SortKey(o.change_time, descending=True), SortKey(o.id, descending=True)]
        query = sa.select(ownership_changes).where(o.customer_id == customer_id)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        rows = (await self.session.execute(query.order_by(*keyset_order(sort)).limit(limit))).all()
        return [
            OwnershipChangeRecord(
                id=r.id,
                customer_id=r.customer_id,
                reason=OwnershipReason(r.reason),
                detail_code=r.detail_code,
                from_owner=r.from_owner,
                to_owner=r.to_owner,
                from_team=r.from_team,
                to_team=r.to_team,
                pool_id=r.pool_id,
                actor=r.actor,
                change_time=r.change_time,
            )
            for r in rows
        ]

    async def claims_since(self, user: str, pool_id: str, since: datetime) -> int:
        o = ownership_changes.c
        return (
            await self.session.execute(
                sa.select(sa.func.count())
                .select_from(ownership_changes)
                .where(
                    o.to_owner == user,
                    o.reason == OwnershipReason.CLAIMED.value,
                    o.pool_id == pool_id,
                    o.change_time > since,
                )
            )
        ).scalar_one()

    async def last_lost_at(self, user: str, customer_id: str) -> datetime | None:
        o = ownership_changes.c
        return (
            await self.session.execute(
                sa.select(sa.func.max(o.change_time)).where(
                    o.from_owner == user,
                    o.customer_id == customer_id,
                    o.reason.in_([OwnershipReason.RELEASED.value, OwnershipReason.RECLAIMED.value]),
                )
            )
        ).scalar_one_or_none()

    async def customers_held(self, user: str) -> int:
        c = customers.c
        return (
            await self.session.execute(
                sa.select(sa.func.count())
                .select_from(customers)
                .where(c.owner == user, c.status == CustomerStatus.OWNED.value)
            )
        ).scalar_one()

    async def pool_customer_ids(self, pool_id: str, *, after: Sequence[Any] | None, limit: int) -> list[str]:
        """Customers waiting in a pool, longest-waiting first (by update_time, then id)."""
        c = customers.c
        sort = [SortKey(c.update_time), SortKey(c.id)]
        query = sa.select(c.id).where(c.status == CustomerStatus.IN_POOL.value, c.pool_id == pool_id)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        return list((await self.session.execute(query.order_by(*keyset_order(sort)).limit(limit))).scalars())
