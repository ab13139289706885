"""Customers and contacts in the database: encryption in, decryption out, scope in every query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.adapters.tables import contacts, customer_identifiers, customer_tags, customers
from crm_customer.domain.model import (
    Address,
    Contact,
    ContactPoint,
    Customer,
    CustomerKind,
    LifecycleStage,
    Tier,
)
from crm_shared.access import ScopeGrant
from crm_shared.access.sql import scope_predicate
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted
from crm_shared.pii.codec import PersonalDataCodec


def _points(items: list[list[str]] | None) -> list[ContactPoint]:
    return [ContactPoint(value, label) for value, label in (items or [])]


def _raw_points(points: list[ContactPoint]) -> list[list[str]]:
    return [[p.value, p.label] for p in points]


class CustomerRepository:
    def __init__(self, session: AsyncSession, codec: PersonalDataCodec) -> None:
        self.session = session
        self.codec = codec

    # --- mapping -------------------------------------------------------------------------------

    def _row_values(self, customer: Customer) -> dict[str, Any]:
        seal = self.codec.seal
        address = customer.address
        return {
            "id": customer.id,
            "kind": customer.kind.value,
            "display_name": customer.display_name,
            "industry": customer.industry,
            "source": customer.source,
            "tier": customer.tier.value if customer.tier else None,
            "lifecycle_stage": customer.lifecycle_stage.value,
            "tags": list(customer.tags),
            "owner": customer.owner,
            "team": customer.team,
            "website": customer.website,
            "custom_fields": customer.custom_fields,
            "phones_enc": seal(
                _raw_points(customer.phones), table="customers", column="phones", row_id=customer.id
            ),
            "emails_enc": seal(
                _raw_points(customer.emails), table="customers", column="emails", row_id=customer.id
            ),
            "tax_id_enc": seal(customer.tax_id, table="customers", column="tax_id", row_id=customer.id),
            "address_enc": seal(
                None if address is None else address.__dict__,
                table="customers",
                column="address",
                row_id=customer.id,
            ),
            "create_time": customer.create_time,
            "update_time": customer.update_time,
            "version": customer.version,
        }

    def _to_customer(self, row: sa.Row) -> Customer:
        open_ = self.codec.open
        address = open_(row.address_enc, table="customers", column="address", row_id=row.id)
        return Customer(
            id=row.id,
            kind=CustomerKind(row.kind),
            display_name=row.display_name,
            owner=row.owner,
            team=row.team,
            create_time=row.create_time,
            update_time=row.update_time,
            industry=row.industry,
            source=row.source,
            tier=Tier(row.tier) if row.tier else None,
            lifecycle_stage=LifecycleStage(row.lifecycle_stage),
            tags=list(row.tags or []),
            phones=_points(open_(row.phones_enc, table="customers", column="phones", row_id=row.id)),
            emails=_points(open_(row.emails_enc, table="customers", column="emails", row_id=row.id)),
            address=Address(**address) if address else None,
            website=row.website,
            tax_id=open_(row.tax_id_enc, table="customers", column="tax_id", row_id=row.id, default=""),
            custom_fields=dict(row.custom_fields or {}),
            version=row.version,
        )

    # --- queries -------------------------------------------------------------------------------

    def visible(self, grant: ScopeGrant) -> sa.ColumnElement[bool]:
        return scope_predicate(grant, owner=customers.c.owner, team=customers.c.team)

    async def get(self, customer_id: str, grant: ScopeGrant | None = None) -> Customer | None:
        query = sa.select(customers).where(customers.c.id == customer_id)
        if grant is not None:
            query = query.where(self.visible(grant))
        row = (await self.session.execute(query)).first()
        return None if row is None else self._to_customer(row)

    async def list(
        self,
        grant: ScopeGrant,
        *,
        where: sa.ColumnElement[bool] | None,
        sort: Sequence[SortKey],
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[Customer]:
        query = sa.select(customers).where(self.visible(grant))
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return [self._to_customer(row) for row in (await self.session.execute(query)).all()]

    async def find_conflict(
        self, identifiers: set[tuple[str, str]], *, exclude_id: str = ""
    ) -> tuple[str, str] | None:
        """(identifier kind, customer id) of another customer sharing a natural key, if any."""
        if not identifiers:
            return None
        digests = [(kind, self.codec.digest(kind, value)) for kind, value in identifiers]
        query = (
            sa.select(customer_identifiers.c.kind, customer_identifiers.c.customer_id)
            .where(sa.tuple_(customer_identifiers.c.kind, customer_identifiers.c.digest).in_(digests))
            .where(customer_identifiers.c.customer_id != exclude_id)
            .limit(1)
        )
        row = (await self.session.execute(query)).first()
        return None if row is None else (row.kind, row.customer_id)

    def identifier_digest(self, kind: str, value: str) -> str:
        return self.codec.digest(kind, value)

    # --- writes --------------------------------------------------------------------------------

    async def add(self, customer: Customer) -> None:
        await self.session.execute(sa.insert(customers).values(self._row_values(customer)))
        await self._write_children(customer)

    async def save(self, customer: Customer, *, expected_version: int) -> None:
        """Optimistic concurrency: the row must still be at expected_version, else ABORTED."""
        values = self._row_values(customer)
        del values["id"], values["create_time"]
        result = await self.session.execute(
            sa.update(customers)
            .where(customers.c.id == customer.id, customers.c.version == expected_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{customer.name} was changed concurrently; read it again and retry",
                reason="CONCURRENT_UPDATE",
            )
        await self.session.execute(
            sa.delete(customer_identifiers).where(customer_identifiers.c.customer_id == customer.id)
        )
        await self.session.execute(sa.delete(customer_tags).where(customer_tags.c.customer_id == customer.id))
        await self._write_children(customer)

    async def _write_children(self, customer: Customer) -> None:
        identifiers = [
            {"kind": kind, "digest": self.codec.digest(kind, value), "customer_id": customer.id}
            for kind, value in sorted(customer.identifiers())
        ]
        if identifiers:
            await self.session.execute(sa.insert(customer_identifiers), identifiers)
        if customer.tags:
            await self.session.execute(
                sa.insert(customer_tags), [{"customer_id": customer.id, "tag": tag} for tag in customer.tags]
            )

    async def remove(self, customer_id: str) -> None:
        # Children first: SQLite only cascades with foreign_keys=ON, and explicit is clearer anyway.
        for table in (contacts, customer_identifiers, customer_tags):
            await self.session.execute(sa.delete(table).where(table.c.customer_id == customer_id))
        await self.session.execute(sa.delete(customers).where(customers.c.id == customer_id))


class ContactRepository:
    def __init__(self, session: AsyncSession, codec: PersonalDataCodec) -> None:
        self.session = session
        self.codec = codec

    def _row_values(self, contact: Contact) -> dict[str, Any]:
        seal = self.codec.seal
        return {
            "id": contact.id,
            "customer_id": contact.customer_id,
            "display_name": contact.display_name,
            "title": contact.title,
            "is_primary": contact.is_primary,
            "notes": contact.notes,
            "phones_enc": seal(
                _raw_points(contact.phones), table="contacts", column="phones", row_id=contact.id
            ),
            "emails_enc": seal(
                _raw_points(contact.emails), table="contacts", column="emails", row_id=contact.id
            ),
            "create_time": contact.create_time,
            "update_time": contact.update_time,
            "version": contact.version,
        }

    def _to_contact(self, row: sa.Row) -> Contact:
        open_ = self.codec.open
        return Contact(
            id=row.id,
            customer_id=row.customer_id,
            display_name=row.display_name,
            create_time=row.create_time,
            update_time=row.update_time,
            title=row.title,
            phones=_points(open_(row.phones_enc, table="contacts", column="phones", row_id=row.id)),
            emails=_points(open_(row.emails_enc, table="contacts", column="emails", row_id=row.id)),
            is_primary=row.is_primary,
            notes=row.notes,
            version=row.version,
        )

    async def get(self, customer_id: str, contact_id: str) -> Contact | None:
        row = (
            await self.session.execute(
                sa.select(contacts).where(contacts.c.id == contact_id, contacts.c.customer_id == customer_id)
            )
        ).first()
        return None if row is None else self._to_contact(row)

    async def list(self, customer_id: str, *, after: Sequence[Any] | None, limit: int) -> list[Contact]:
        sort = [SortKey(contacts.c.create_time), SortKey(contacts.c.id)]
        query = sa.select(contacts).where(contacts.c.customer_id == customer_id)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return [self._to_contact(row) for row in (await self.session.execute(query)).all()]

    async def clear_primary(self, customer_id: str, *, except_id: str) -> list[str]:
        """Unset is_primary on the customer's other contacts; returns the ids that changed."""
        rows = (
            (
                await self.session.execute(
                    sa.select(contacts.c.id).where(
                        contacts.c.customer_id == customer_id,
                        contacts.c.is_primary.is_(True),
                        contacts.c.id != except_id,
                    )
                )
            )
            .scalars()
            .all()
        )
        if rows:
            await self.session.execute(
                sa.update(contacts)
                .where(contacts.c.id.in_(rows))
                .values(is_primary=False, version=contacts.c.version + 1)
            )
        return list(rows)

    async def add(self, contact: Contact) -> None:
        await self.session.execute(sa.insert(contacts).values(self._row_values(contact)))

    async def save(self, contact: Contact, *, expected_version: int) -> None:
        values = self._row_values(contact)
        del values["id"], values["create_time"], values["customer_id"]
        result = await self.session.execute(
            sa.update(contacts)
            .where(contacts.c.id == contact.id, contacts.c.version == expected_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{contact.name} was changed concurrently; read it again and retry",
                reason="CONCURRENT_UPDATE",
            )

    async def remove(self, contact_id: str) -> None:
        await self.session.execute(sa.delete(contacts).where(contacts.c.id == contact_id))
