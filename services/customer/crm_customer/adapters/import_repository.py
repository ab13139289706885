"""Set-based reads and writes for bulk import: a few statements per batch, not a few per row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from crm_customer.adapters.import_tables import import_job_rows, import_jobs
from crm_customer.adapters.repository import CustomerRepository
from crm_customer.adapters.tables import (
    customer_collaborators,
    customer_identifiers,
    customer_keys,
    customer_tags,
    customers,
)
from crm_customer.domain.model import Customer
from crm_shared.access import ScopeGrant


class ImportRepository(CustomerRepository):
    async def owners_of(self, digests: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """(kind, digest) -> customer id, for every digest some customer holds: one query."""
        wanted = list(set(digests))
        found: dict[tuple[str, str], str] = {}
        for start in range(0, len(wanted), 500):
            rows = await self.session.execute(
                sa.select(
                    customer_identifiers.c.kind,
                    customer_identifiers.c.digest,
                    customer_identifiers.c.customer_id,
                ).where(
                    sa.tuple_(customer_identifiers.c.kind, customer_identifiers.c.digest).in_(
                        wanted[start : start + 500]
                    )
                )
            )
            found.update({(r.kind, r.digest): r.customer_id for r in rows})
        return found

    async def get_many(self, ids: Sequence[str], grant: ScopeGrant) -> dict[str, Customer]:
        if not ids:
            return {}
        rows = await self.session.execute(
            self._select().where(customers.c.id.in_(list(ids)), self.visible(grant))
        )
        return {row.id: self._to_customer(row) for row in rows}

    async def add_many(self, batch: Sequence[Customer]) -> None:
        if not batch:
            return
        keys, rows, identifiers, tags, collaborators = [], [], [], [], []
        for customer in batch:
            cipher, wrapped = self.codec.new_data_key(customer.id)
            keys.append(
                {"customer_id": customer.id, "wrapped_key": wrapped, "create_time": customer.create_time}
            )
            rows.append(self._row_values(customer, cipher))
            identifiers += [
                {"kind": kind, "digest": self.codec.digest(kind, value), "customer_id": customer.id}
                for kind, value in sorted(customer.identifiers())
            ]
            tags += [{"customer_id": customer.id, "tag": tag} for tag in customer.tags]
            collaborators += [{"customer_id": customer.id, "user_id": u} for u in customer.collaborators]
        await self.session.execute(sa.insert(customer_keys), keys)
        await self.session.execute(sa.insert(customers), rows)
        for table, values in (
            (customer_identifiers, identifiers),
            (customer_tags, tags),
            (customer_collaborators, collaborators),
        ):
            if values:
                await self.session.execute(sa.insert(table), values)


class ImportJobRepository:
    def __init__(self, session) -> None:
        self.session = session

    async def get(self, job_id: str) -> sa.Row | None:
        return (await self.session.execute(sa.select(import_jobs).where(import_jobs.c.id == job_id))).first()

    async def insert(self, **values) -> None:
        await self.session.execute(sa.insert(import_jobs).values(**values))

    async def update(self, job_id: str, **values) -> None:
        await self.session.execute(sa.update(import_jobs).where(import_jobs.c.id == job_id).values(**values))

    async def add_counts(self, job_id: str, deltas: dict[str, int], now) -> None:
        values = {name: import_jobs.c[name] + delta for name, delta in deltas.items() if delta}
        await self.update(job_id, update_time=now, **values)

    async def ledger(self, job_id: str, row_numbers: Sequence[int]) -> dict[int, sa.Row]:
        if not row_numbers:
            return {}
        rows = await self.session.execute(
            sa.select(import_job_rows).where(
                import_job_rows.c.job_id == job_id, import_job_rows.c.row_number.in_(list(row_numbers))
            )
        )
        return {row.row_number: row for row in rows}

    async def record(self, job_id: str, entries: list[dict], replace: Sequence[int]) -> None:
        if replace:
            await self.session.execute(
                sa.delete(import_job_rows).where(
                    import_job_rows.c.job_id == job_id, import_job_rows.c.row_number.in_(list(replace))
                )
            )
        if entries:
            await self.session.execute(sa.insert(import_job_rows), [{"job_id": job_id, **e} for e in entries])

    async def created_rows(self, job_id: str) -> list[sa.Row]:
        rows = await self.session.execute(
            sa.select(import_job_rows.c.row_number, import_job_rows.c.customer_id).where(
                import_job_rows.c.job_id == job_id, import_job_rows.c.outcome == "created"
            )
        )
        return list(rows)

    async def mark_reverted(self, job_id: str, row_numbers: Sequence[int]) -> None:
        if row_numbers:
            await self.session.execute(
                sa.update(import_job_rows)
                .where(
                    import_job_rows.c.job_id == job_id, import_job_rows.c.row_number.in_(list(row_numbers))
                )
                .values(outcome="reverted")
            )
