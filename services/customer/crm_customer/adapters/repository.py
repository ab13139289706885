"""Customers and contacts in the database: encryption in, decryption out, scope in every query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.adapters.behavior_repository import index_contact
from crm_customer.adapters.tables import (
    contacts,
    customer_collaborators,
    customer_identifiers,
    customer_keys,
    customer_tags,
    customers,
)
from crm_customer.domain.model import (
    Address,
    Contact,
    ContactPoint,
    Customer,
    CustomerKind,
    CustomerStatus,
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

    def _row_values(self, customer: Customer, cipher) -> dict[str, Any]:
        seal = cipher.seal
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
            "status": customer.status.value,
            "locked": customer.locked,
            "pool_id": customer.pool_id,
            "former_owner": customer.former_owner,
            "assign_time": customer.assign_time,
            "reclaim_time": customer.reclaim_time,
            "last_follow_up_time": customer.last_follow_up_time,
            "next_follow_up_time": customer.next_follow_up_time,
            "last_deal_time": customer.last_deal_time,
            "health_score": customer.health_score,
            "collaborators": list(customer.collaborators),
            "merged_into": customer.merged_into,
        }

    def _to_customer(self, row: sa.Row) -> Customer:
        open_ = self.codec.cipher(row.wrapped_key, row.id).open
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
            status=CustomerStatus(row.status),
            locked=row.locked,
            pool_id=row.pool_id,
            former_owner=row.former_owner,
            assign_time=row.assign_time,
            reclaim_time=row.reclaim_time,
            last_follow_up_time=row.last_follow_up_time,
            next_follow_up_time=row.next_follow_up_time,
            last_deal_time=row.last_deal_time,
            health_score=row.health_score,
            collaborators=list(row.collaborators or []),
            merged_into=row.merged_into,
        )

    # --- queries -------------------------------------------------------------------------------

    def visible(self, grant: ScopeGrant) -> sa.ColumnElement[bool]:
        """The caller's data scope; "own" includes customers shared with them as a collaborator."""
        shared_with = sa.exists().where(
            customer_collaborators.c.customer_id == customers.c.id,
            customer_collaborators.c.user_id == grant.subject,
        )
        return scope_predicate(grant, owner=customers.c.owner, team=customers.c.team, shared_with=shared_with)

    @staticmethod
    def _select() -> sa.Select:
        """Customers with their wrapped data key (absent once erased)."""
        return sa.select(customers, customer_keys.c.wrapped_key).outerjoin(
            customer_keys, customer_keys.c.customer_id == customers.c.id
        )

    async def cipher_for(self, customer_id: str):
        """The customer's data-key cipher, for sealing or opening its (and its contacts') fields."""
        wrapped = (
            await self.session.execute(
                sa.select(customer_keys.c.wrapped_key).where(customer_keys.c.customer_id == customer_id)
            )
        ).scalar_one_or_none()
        return self.codec.cipher(wrapped, customer_id)

    async def get(self, customer_id: str, grant: ScopeGrant | None = None) -> Customer | None:
        query = self._select().where(customers.c.id == customer_id)
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
        # Merge tombstones are reachable by Get (they say where the customer went), never listed.
        query = self._select().where(self.visible(grant), customers.c.status != CustomerStatus.MERGED.value)
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
        cipher, wrapped = self.codec.new_data_key(customer.id)
        await self.session.execute(
            sa.insert(customer_keys).values(
                customer_id=customer.id, wrapped_key=wrapped, create_time=customer.create_time
            )
        )
        await self.session.execute(sa.insert(customers).values(self._row_values(customer, cipher)))
        await self._write_children(customer)

    async def pin_tier(self, customer_id: str) -> None:
        """The tier was chosen by a person: scores stop setting it (crm_customer.service.scores)."""
        await self.session.execute(
            sa.update(customers).where(customers.c.id == customer_id).values(tier_by_score=False)
        )

    async def save(self, customer: Customer, *, expected_version: int) -> None:
        """Optimistic concurrency: the row must still be at expected_version, else ABORTED."""
        values = self._row_values(customer, await self.cipher_for(customer.id))
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
        await self.session.execute(
            sa.delete(customer_collaborators).where(customer_collaborators.c.customer_id == customer.id)
        )
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
        if customer.collaborators:
            await self.session.execute(
                sa.insert(customer_collaborators),
                [{"customer_id": customer.id, "user_id": user} for user in customer.collaborators],
            )

    async def remove(self, customer_id: str) -> None:
        # Children first: SQLite only cascades with foreign_keys=ON, and explicit is clearer anyway.
        # Deleting the data key crypto-shreds any copy of the personal fields (replicas, backups).
        for table in (contacts, customer_identifiers, customer_tags, customer_collaborators, customer_keys):
            await self.session.execute(sa.delete(table).where(table.c.customer_id == customer_id))
        await self.session.execute(sa.delete(customers).where(customers.c.id == customer_id))


class ContactRepository:
    def __init__(self, session: AsyncSession, codec: PersonalDataCodec) -> None:
        self.session = session
        self.codec = codec
        self._customers = CustomerRepository(session, codec)

    async def _cipher(self, customer_id: str):
        # Contacts are sealed with their customer's data key: erasing the customer shreds them too.
        return await self._customers.cipher_for(customer_id)

    def _row_values(self, contact: Contact, cipher) -> dict[str, Any]:
        seal = cipher.seal
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

    def _to_contact(self, row: sa.Row, cipher) -> Contact:
        open_ = cipher.open
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
        return None if row is None else self._to_contact(row, await self._cipher(customer_id))

    async def list(self, customer_id: str, *, after: Sequence[Any] | None, limit: int) -> list[Contact]:
        sort = [SortKey(contacts.c.create_time), SortKey(contacts.c.id)]
        query = sa.select(contacts).where(contacts.c.customer_id == customer_id)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        rows = (await self.session.execute(query)).all()
        cipher = await self._cipher(customer_id) if rows else None
        return [self._to_contact(row, cipher) for row in rows]

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
        cipher = await self._cipher(contact.customer_id)
        await self.session.execute(sa.insert(contacts).values(self._row_values(contact, cipher)))
        await index_contact(self.session, self.codec, contact)  # behaviour events match contacts by it

    async def save(self, contact: Contact, *, expected_version: int) -> None:
        values = self._row_values(contact, await self._cipher(contact.customer_id))
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
        await index_contact(self.session, self.codec, contact)

    async def remove(self, contact_id: str) -> None:
        await self.session.execute(sa.delete(contacts).where(contacts.c.id == contact_id))
