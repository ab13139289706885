"""Reads and writes of the customer read model; every write is safe under redelivery and reordering."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from crm_reporting.adapters.customer_tables import report_contacts, report_customers, report_follow_ups
from crm_reporting.adapters.projection_tables import dialect_insert

_COUNTERS = ("purchases", "abandoned_carts")
_LATEST = (
    "last_follow_up_time",
    "next_follow_up_time",
    "last_purchase_time",
    "last_activity_time",
    "event_time",
)


@dataclass(frozen=True)
class CustomerRow:
    customer: str
    kind: str
    display_name: str
    industry: str
    source: str
    tier: str
    lifecycle_stage: str
    tags: list[str]
    owner: str
    team: str
    create_time: datetime | None
    update_time: datetime | None
    owner_time: datetime | None
    deleted: bool
    merged_into: str
    last_follow_up_time: datetime | None
    next_follow_up_time: datetime | None
    purchases: int
    abandoned_carts: int
    last_purchase_time: datetime | None
    last_activity_time: datetime | None
    event_time: datetime | None
    contacts: int = 0


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


class CustomerRepository:
    def __init__(self, session) -> None:
        self.session = session

    async def ensure(self, customer: str) -> None:
        """A row for the customer (empty profile) if there is none yet."""
        await self.session.execute(
            dialect_insert(self.session, report_customers)
            .values(customer=customer, tags=[])
            .on_conflict_do_nothing(index_elements=["customer"])
        )

    async def get(self, customer: str, *, for_update: bool = False) -> CustomerRow | None:
        stmt = sa.select(report_customers).where(report_customers.c.customer == customer)
        if for_update and self.session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).first()
        if row is None:
            return None
        values = dict(row._mapping)
        values["tags"] = list(values["tags"] or [])
        values["contacts"] = await self.contact_count(customer)
        return CustomerRow(**values)

    async def update(self, customer: str, values: dict[str, Any]) -> None:
        if values:
            await self.session.execute(
                sa.update(report_customers).where(report_customers.c.customer == customer).values(**values)
            )

    async def apply_snapshot(
        self, customer: str, profile: dict[str, Any], update_time: datetime | None
    ) -> bool:
        """Apply a snapshot unless a newer one was applied; owner/team only if newer than owner_time."""
        await self.ensure(customer)
        row = await self.get(customer, for_update=True)
        assert row is not None
        if row.update_time is not None and update_time is not None and update_time < row.update_time:
            return False
        values = {k: v for k, v in profile.items() if k not in ("owner", "team")}
        values["update_time"] = update_time
        if row.owner_time is None or update_time is None or update_time >= row.owner_time:
            values["owner"] = profile.get("owner", row.owner)
            values["team"] = profile.get("team", row.team)
            values["owner_time"] = update_time
        await self.update(customer, values)
        return True

    async def change_owner(self, customer: str, owner: str, team: str, change_time: datetime | None) -> None:
        await self.ensure(customer)
        row = await self.get(customer, for_update=True)
        assert row is not None
        if row.owner_time is not None and change_time is not None and change_time < row.owner_time:
            return
        await self.update(customer, {"owner": owner, "team": team, "owner_time": change_time})

    async def bump(
        self, customer: str, *, counters: dict[str, int] | None = None, **latest: datetime | None
    ) -> None:
        """Add to counters and move the "latest" time columns forward (never back)."""
        await self.ensure(customer)
        t = report_customers.c
        values: dict[str, Any] = {}
        for name, delta in (counters or {}).items():
            values[name] = t[name] + delta
        for name, when in latest.items():
            if when is None:
                continue
            column = t[name]
            values[name] = sa.case((sa.or_(column.is_(None), column < when), when), else_=column)
        await self.update(customer, values)

    async def mark_deleted(self, customer: str) -> None:
        await self.ensure(customer)
        await self.update(customer, {"deleted": True})

    # --- contacts ---------------------------------------------------------------------------------

    async def contact_created(self, contact: str, customer: str, is_primary: bool) -> None:
        # A tombstone (deleted first, then created) stays deleted.
        await self.session.execute(
            dialect_insert(self.session, report_contacts)
            .values(contact=contact, customer=customer, is_primary=is_primary, deleted=False)
            .on_conflict_do_nothing(index_elements=["contact"])
        )

    async def contact_deleted(self, contact: str, customer: str) -> None:
        insert = dialect_insert(self.session, report_contacts)
        await self.session.execute(
            insert.values(
                contact=contact, customer=customer, is_primary=False, deleted=True
            ).on_conflict_do_update(index_elements=["contact"], set_={"deleted": True})
        )

    async def contact_count(self, customer: str) -> int:
        return int(
            (
                await self.session.execute(
                    sa.select(sa.func.count())
                    .select_from(report_contacts)
                    .where(report_contacts.c.customer == customer, report_contacts.c.deleted.is_(False))
                )
            ).scalar_one()
        )

    # --- follow-ups -------------------------------------------------------------------------------

    async def follow_up_logged(
        self,
        follow_up: str,
        customer: str,
        type_: str,
        author: str,
        follow_up_time: datetime | None,
        next_follow_up_time: datetime | None,
    ) -> None:
        await self.session.execute(
            dialect_insert(self.session, report_follow_ups)
            .values(
                follow_up=follow_up,
                customer=customer,
                type=type_,
                author=author,
                follow_up_time=follow_up_time,
                next_follow_up_time=next_follow_up_time,
            )
            .on_conflict_do_nothing(index_elements=["follow_up"])
        )

    async def latest_follow_up(self, customer: str) -> tuple[datetime | None, datetime | None]:
        """(follow_up_time, next_follow_up_time) of the customer's most recent follow-up."""
        row = (
            await self.session.execute(
                sa.select(report_follow_ups.c.follow_up_time, report_follow_ups.c.next_follow_up_time)
                .where(report_follow_ups.c.customer == customer)
                .order_by(report_follow_ups.c.follow_up_time.desc(), report_follow_ups.c.follow_up.desc())
                .limit(1)
            )
        ).first()
        return (row[0], row[1]) if row else (None, None)

    # --- merge / erase ----------------------------------------------------------------------------

    async def merge(self, survivor: str, losers: list[str]) -> None:
        """Move the losers' contacts, follow-ups and behaviour counts to the survivor."""
        losers = [loser for loser in losers if loser and loser != survivor]
        if not losers:
            return
        await self.ensure(survivor)
        survivor_row = await self.get(survivor, for_update=True)
        assert survivor_row is not None
        counters = {name: 0 for name in _COUNTERS}
        latest: dict[str, datetime | None] = {name: None for name in _LATEST}
        for loser in losers:
            row = await self.get(loser, for_update=True)
            if row is None or row.merged_into:
                continue
            for name in _COUNTERS:
                counters[name] += getattr(row, name)
            for name in _LATEST:
                latest[name] = _later(latest[name], getattr(row, name))
            await self.update(
                loser,
                {"merged_into": survivor, "deleted": True, "purchases": 0, "abandoned_carts": 0},
            )
        await self.session.execute(
            sa.update(report_contacts).where(report_contacts.c.customer.in_(losers)).values(customer=survivor)
        )
        await self.session.execute(
            sa.update(report_follow_ups)
            .where(report_follow_ups.c.customer.in_(losers))
            .values(customer=survivor)
        )
        await self.bump(survivor, counters={k: v for k, v in counters.items() if v}, **latest)
