"""Use cases for custom field definitions, and the check every customer write runs.

Definitions are read inside the writing transaction (a small indexed table)
rather than from a per-process cache: with several replicas a cache would let
one replica accept values another has just made invalid, and the read costs
one short query per write.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.adapters.custom_field_repository import CustomFieldRepository, UniqueValueIndex
from crm_customer.domain import custom_fields as domain
from crm_customer.domain.custom_fields import CustomFieldDefinition, DefinitionInput, ResourceType
from crm_customer.domain.model import Customer
from crm_customer.domain.rules import CustomerInput
from crm_shared.access import AccessPolicy
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import PageTokenCodec, clamp_page_size, query_fingerprint
from crm_shared.errors import Aborted, AlreadyExists, FieldViolation, InvalidArgument, NotFound
from crm_shared.ids import new_id
from crm_shared.pii.codec import PersonalDataCodec
from crm_shared.principal import Principal

RESOURCE = "custom_fields"


def not_found(name: str) -> NotFound:
    return NotFound(f"{name} not found", reason="CUSTOM_FIELD_NOT_FOUND", metadata={"resource": name})


# --- definitions -----------------------------------------------------------------------------------


async def create_definition(
    uow, policy: AccessPolicy, principal: Principal, data: DefinitionInput
) -> CustomFieldDefinition:
    policy.grant(principal, RESOURCE, "create")
    definition = domain.new_definition(data, definition_id=new_id(), now=uow.now)
    repo = CustomFieldRepository(uow.session)
    existing = await repo.find_key(definition.resource_type, definition.key)
    if existing is not None:
        raise _duplicate_key(existing)
    try:
        await repo.add(definition)
    except IntegrityError:
        raise Aborted(
            "a custom field with the same key was created at the same moment; retry",
            reason="CONCURRENT_DUPLICATE",
        ) from None
    uow.audit("created", definition.name, sorted(_set_fields(definition)))
    return definition


def _duplicate_key(existing: CustomFieldDefinition) -> AlreadyExists:
    return AlreadyExists(
        f"{existing.resource_type.value} already have a custom field {existing.key!r}: {existing.name}",
        reason="DUPLICATE_CUSTOM_FIELD",
        metadata={"existing": existing.name, "field": "custom_field_definition.key"},
    )


def _set_fields(definition: CustomFieldDefinition) -> set[str]:
    present = {"resource_type", "key", "display_name", "type"}
    present |= {
        name for name in ("allowed_values", "required", "unique", "filterable") if getattr(definition, name)
    }
    return present


async def get_definition(
    session: AsyncSession, policy: AccessPolicy, principal: Principal, definition_id: str
) -> CustomFieldDefinition:
    policy.grant(principal, RESOURCE, "read")
    definition = await CustomFieldRepository(session).get(definition_id)
    if definition is None:
        raise not_found(f"customFields/{definition_id}")
    return definition


@dataclass(frozen=True)
class DefinitionPage:
    definitions: list[CustomFieldDefinition]
    next_page_token: str


async def list_definitions(
    session: AsyncSession,
    policy: AccessPolicy,
    page_tokens: PageTokenCodec,
    principal: Principal,
    *,
    resource_type: ResourceType | None,
    page_size: int,
    page_token: str,
) -> DefinitionPage:
    policy.grant(principal, RESOURCE, "read")
    limit = clamp_page_size(page_size)
    query = query_fingerprint("customFields", resource_type.value if resource_type else "", principal.subject)
    after = page_tokens.decode(page_token, query=query) if page_token else None
    rows = await CustomFieldRepository(session).list(resource_type, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    token = ""
    if more:
        last = page[-1]
        token = page_tokens.encode([last.resource_type.value, last.key], query=query)
    return DefinitionPage(page, token)


async def update_definition(
    uow,
    policy: AccessPolicy,
    principal: Principal,
    definition_id: str,
    data: DefinitionInput,
    mask_paths: Sequence[str],
    etag: str,
) -> CustomFieldDefinition:
    fields = resolve_update_mask(
        mask_paths,
        writable=domain.DEFINITION_WRITABLE_FIELDS,
        output_only=domain.DEFINITION_OUTPUT_ONLY_FIELDS,
    )
    policy.grant(principal, RESOURCE, "update")
    repo = CustomFieldRepository(uow.session)
    current = await repo.get(definition_id)
    if current is None:
        raise not_found(f"customFields/{definition_id}")
    check_etag(etag, current.id, current.version, resource=current.name)
    updated, changed = domain.update_definition(current, data, fields, now=uow.now)
    if not changed:
        return current
    await repo.save(updated, expected_version=current.version)
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_definition(
    uow, policy: AccessPolicy, principal: Principal, definition_id: str, etag: str
) -> None:
    policy.grant(principal, RESOURCE, "delete")
    repo = CustomFieldRepository(uow.session)
    current = await repo.get(definition_id)
    if current is None:
        raise not_found(f"customFields/{definition_id}")
    check_etag(etag, current.id, current.version, resource=current.name)
    await repo.remove(definition_id)
    uow.audit("deleted", current.name, [])


# --- the check on customer writes ---------------------------------------------------------------


async def customer_definitions(session: AsyncSession) -> list[CustomFieldDefinition]:
    return await CustomFieldRepository(session).for_resource(ResourceType.CUSTOMERS)


@dataclass
class CustomFieldCheck:
    """Custom fields of one customer write: normalized input, violations, uniqueness."""

    definitions: list[CustomFieldDefinition]
    data: CustomerInput
    violations: list[FieldViolation] = field(default_factory=list)

    @contextlib.contextmanager
    def reported_with_rules(self) -> Iterator[None]:
        """Wrap the domain rules: their violations and ours come back as one INVALID_ARGUMENT."""
        try:
            yield
        except InvalidArgument as error:
            error.field_violations.extend(self.violations)
            raise
        if self.violations:
            raise InvalidArgument("the customer has invalid fields", field_violations=self.violations)

    async def index(self, session: AsyncSession, codec: PersonalDataCodec, customer: Customer) -> None:
        """Claim the customer's unique values (call after the customer row is written)."""
        if not any(d.unique for d in self.definitions):
            return
        values = UniqueValueIndex(session, codec.digest)
        conflict = await values.conflict(self.definitions, customer.custom_fields, customer_id=customer.id)
        if conflict is not None:
            definition, holder = conflict
            existing = f"customers/{holder}"
            raise AlreadyExists(
                f"another customer already has this {definition.key}: {existing}",
                reason="DUPLICATE_CUSTOM_FIELD_VALUE",
                metadata={"existing": existing, "field": f"customer.custom_fields.{definition.key}"},
            )
        try:
            await values.replace(self.definitions, customer.custom_fields, customer_id=customer.id)
        except IntegrityError:
            raise Aborted(
                "another customer took the same unique custom field value at the same moment; retry",
                reason="CONCURRENT_DUPLICATE",
            ) from None


async def check_customer_input(
    session: AsyncSession, data: CustomerInput, *, check_required: bool = True
) -> CustomFieldCheck:
    """Validate data.custom_fields against the customer definitions (creates and replacing updates)."""
    definitions = await customer_definitions(session)
    normalized, violations = domain.validate_custom_fields(
        definitions, data.custom_fields, path="customer.custom_fields", check_required=check_required
    )
    return CustomFieldCheck(definitions, replace(data, custom_fields=normalized), violations)
