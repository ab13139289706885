"""SQL behind privacy requests: related records of a customer, crypto-shredding, key re-wrapping.

Related records are discovered, not listed: every table in the service's
`metadata` with a `customer_id` column (follow-ups, behaviour events, ownership
history, … added by other modules) is exported. Every adapter module is
imported first so its tables are registered on the metadata.
"""

from __future__ import annotations

import base64
import importlib
import pkgutil
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

import crm_customer.adapters as adapters_package
from crm_customer.adapters.custom_field_tables import custom_field_values_unique
from crm_customer.adapters.tables import contacts, customer_identifiers, customer_keys, customers, metadata
from crm_shared.pii.crypto import DecryptionError

# Exported elsewhere in the answer (customers, contacts) or key material / blind indexes, which
# are not information about the person but the means to protect or find it.
NOT_EXPORTED = frozenset(
    {"customers", "contacts", "customer_keys", "customer_identifiers", "custom_field_values_unique"}
)
ENCRYPTED_SUFFIX = "_enc"
ERASED_NAME = "[erased]"


def _load_all_adapters() -> None:
    for module in pkgutil.iter_modules(adapters_package.__path__):
        importlib.import_module(f"{adapters_package.__name__}.{module.name}")


def related_tables() -> list[sa.Table]:
    _load_all_adapters()
    return [t for t in metadata.sorted_tables if "customer_id" in t.c and t.name not in NOT_EXPORTED]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value


class PersonalDataRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _existing_tables(self) -> set[str]:
        return set(await self.session.run_sync(lambda s: sa.inspect(s.connection()).get_table_names()))

    async def related_records(self, customer_id: str, cipher) -> dict[str, list[dict[str, Any]]]:
        """Rows of every other table keyed by the customer, encrypted columns opened when possible."""
        existing = await self._existing_tables()
        found: dict[str, list[dict[str, Any]]] = {}
        for table in related_tables():
            if table.name not in existing:  # defined by code whose migration has not run here
                continue
            rows = (
                await self.session.execute(sa.select(table).where(table.c.customer_id == customer_id))
            ).all()
            if rows:
                found[table.name] = [self._row(table, row._mapping, cipher) for row in rows]
        return found

    @staticmethod
    def _row(table: sa.Table, row: Any, cipher) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for column, value in row.items():
            if column.endswith(ENCRYPTED_SUFFIX) and value is not None:
                plain_name = column.removesuffix(ENCRYPTED_SUFFIX)
                try:
                    result[plain_name] = cipher.open(
                        value, table=table.name, column=plain_name, row_id=str(row.get("id", ""))
                    )
                except DecryptionError:
                    result[column] = "<encrypted with a scheme this export does not know>"
                continue
            result[column] = _plain(value)
        return result

    async def shred(self, customer_id: str, *, now: datetime, person: bool) -> None:
        """Destroy the data key and every copy of the customer's personal data we know of."""
        session = self.session
        await session.execute(sa.delete(customer_keys).where(customer_keys.c.customer_id == customer_id))
        await session.execute(
            sa.delete(customer_identifiers).where(customer_identifiers.c.customer_id == customer_id)
        )
        await session.execute(
            sa.delete(custom_field_values_unique).where(
                custom_field_values_unique.c.customer_id == customer_id
            )
        )
        values: dict[str, Any] = {
            "phones_enc": None,
            "emails_enc": None,
            "tax_id_enc": None,
            "address_enc": None,
            # Custom fields may hold anything, including personal data: they go too.
            "custom_fields": {},
            "status": "erased",
            "update_time": now,
            "version": customers.c.version + 1,
        }
        if person:  # a person's name is personal data; a company's is not
            values["display_name"] = ERASED_NAME
        await session.execute(sa.update(customers).where(customers.c.id == customer_id).values(values))
        await session.execute(
            sa.update(contacts)
            .where(contacts.c.customer_id == customer_id)
            .values(
                phones_enc=None,
                emails_enc=None,
                display_name=ERASED_NAME,
                notes="",
                update_time=now,
                version=contacts.c.version + 1,
            )
        )

    # --- key rotation ----------------------------------------------------------------------------

    async def count_keys(self, *, after: str = "") -> int:
        query = sa.select(sa.func.count()).select_from(customer_keys)
        if after:
            query = query.where(customer_keys.c.customer_id > after)
        return (await self.session.execute(query)).scalar_one()

    async def key_batch(self, *, after: str, limit: int) -> list[sa.Row]:
        return (
            await self.session.execute(
                sa.select(customer_keys.c.customer_id, customer_keys.c.wrapped_key)
                .where(customer_keys.c.customer_id > after)
                .order_by(customer_keys.c.customer_id)
                .limit(limit)
            )
        ).all()

    async def replace_key(self, customer_id: str, old: bytes, new: bytes) -> None:
        # Guarded by the old value: a key erased or re-wrapped meanwhile is left alone.
        await self.session.execute(
            sa.update(customer_keys)
            .where(customer_keys.c.customer_id == customer_id, customer_keys.c.wrapped_key == old)
            .values(wrapped_key=new)
        )
