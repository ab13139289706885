"""Custom field definitions and the uniqueness index of their values, in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.adapters.custom_field_tables import custom_field_definitions, custom_field_values_unique
from crm_customer.domain.custom_fields import CustomFieldDefinition, FieldType, ResourceType, unique_token
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted

_SORT = [SortKey(custom_field_definitions.c.resource_type), SortKey(custom_field_definitions.c.key)]


def _to_definition(row: sa.Row) -> CustomFieldDefinition:
    return CustomFieldDefinition(
        id=row.id,
        resource_type=ResourceType(row.resource_type),
        key=row.key,
        type=FieldType(row.type),
        create_time=row.create_time,
        update_time=row.update_time,
        display_name=row.display_name,
        allowed_values=list(row.allowed_values or []),
        required=row.required,
        unique=row.unique,
        filterable=row.filterable,
        version=row.version,
    )


def _values(definition: CustomFieldDefinition) -> dict[str, Any]:
    return {
        "id": definition.id,
        "resource_type": definition.resource_type.value,
        "key": definition.key,
        "display_name": definition.display_name,
        "type": definition.type.value,
        "allowed_values": list(definition.allowed_values),
        "required": definition.required,
        "unique": definition.unique,
        "filterable": definition.filterable,
        "create_time": definition.create_time,
        "update_time": definition.update_time,
        "version": definition.version,
    }


class CustomFieldRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def for_resource(self, resource_type: ResourceType) -> list[CustomFieldDefinition]:
        rows = await self.session.execute(
            sa.select(custom_field_definitions)
            .where(custom_field_definitions.c.resource_type == resource_type.value)
            .order_by(custom_field_definitions.c.key)
        )
        return [_to_definition(row) for row in rows]

    async def get(self, definition_id: str) -> CustomFieldDefinition | None:
        row = (
            await self.session.execute(
                sa.select(custom_field_definitions).where(custom_field_definitions.c.id == definition_id)
            )
        ).first()
        return None if row is None else _to_definition(row)

    async def find_key(self, resource_type: ResourceType, key: str) -> CustomFieldDefinition | None:
        row = (
            await self.session.execute(
                sa.select(custom_field_definitions).where(
                    custom_field_definitions.c.resource_type == resource_type.value,
                    custom_field_definitions.c.key == key,
                )
            )
        ).first()
        return None if row is None else _to_definition(row)

    async def list(
        self, resource_type: ResourceType | None, *, after: Sequence[Any] | None, limit: int
    ) -> list[CustomFieldDefinition]:
        query = sa.select(custom_field_definitions)
        if resource_type is not None:
            query = query.where(custom_field_definitions.c.resource_type == resource_type.value)
        if after is not None:
            query = query.where(keyset_after(_SORT, after))
        rows = await self.session.execute(query.order_by(*keyset_order(_SORT)).limit(limit))
        return [_to_definition(row) for row in rows]

    async def add(self, definition: CustomFieldDefinition) -> None:
        await self.session.execute(sa.insert(custom_field_definitions).values(_values(definition)))

    async def save(self, definition: CustomFieldDefinition, *, expected_version: int) -> None:
        values = _values(definition)
        del values["id"], values["create_time"]
        result = await self.session.execute(
            sa.update(custom_field_definitions)
            .where(
                custom_field_definitions.c.id == definition.id,
                custom_field_definitions.c.version == expected_version,
            )
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(f"{definition.name} was changed concurrently; retry", reason="CONCURRENT_UPDATE")

    async def remove(self, definition_id: str) -> None:
        await self.session.execute(
            sa.delete(custom_field_values_unique).where(
                custom_field_values_unique.c.definition_id == definition_id
            )
        )
        await self.session.execute(
            sa.delete(custom_field_definitions).where(custom_field_definitions.c.id == definition_id)
        )


class UniqueValueIndex:
    """custom_field_values_unique: (definition, digest of the value) -> the customer holding it."""

    def __init__(self, session: AsyncSession, digest) -> None:
        self.session = session
        self._digest = digest  # (kind, text) -> hex HMAC (the blind index)

    def _entries(
        self, definitions: Sequence[CustomFieldDefinition], values: dict[str, Any]
    ) -> list[tuple[CustomFieldDefinition, str]]:
        return [
            (d, self._digest(f"custom_field:{d.id}", unique_token(values[d.key])))
            for d in definitions
            if d.unique and d.key in values
        ]

    async def conflict(
        self, definitions: Sequence[CustomFieldDefinition], values: dict[str, Any], *, customer_id: str
    ) -> tuple[CustomFieldDefinition, str] | None:
        """(definition, other customer id) of the first value another customer already holds."""
        for definition, digest in self._entries(definitions, values):
            holder = (
                await self.session.execute(
                    sa.select(custom_field_values_unique.c.customer_id).where(
                        custom_field_values_unique.c.definition_id == definition.id,
                        custom_field_values_unique.c.value_digest == digest,
                        custom_field_values_unique.c.customer_id != customer_id,
                    )
                )
            ).scalar_one_or_none()
            if holder is not None:
                return definition, holder
        return None

    async def replace(
        self, definitions: Sequence[CustomFieldDefinition], values: dict[str, Any], *, customer_id: str
    ) -> None:
        await self.clear(customer_id)
        rows = [
            {"definition_id": d.id, "value_digest": digest, "customer_id": customer_id}
            for d, digest in self._entries(definitions, values)
        ]
        if rows:
            await self.session.execute(sa.insert(custom_field_values_unique), rows)

    async def clear(self, customer_id: str) -> None:
        await self.session.execute(
            sa.delete(custom_field_values_unique).where(
                custom_field_values_unique.c.customer_id == customer_id
            )
        )
