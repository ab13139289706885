"""Use cases for customers: one function per command or query.

Writes take a unit of work (rows, outbox events and audit records commit
together); reads take a session. The caller's data scope comes from the access
policy and goes into every query, so a customer outside it is simply not found.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.customer.v1 import events_pb2 as events_pb
from crm_customer.adapters import published
from crm_customer.adapters.filters import DEFAULT_ORDER, ORDERABLE, customer_filter_schema, sort_keys
from crm_customer.adapters.repository import CustomerRepository
from crm_customer.domain import rules
from crm_customer.domain.model import Customer, CustomerStatus
from crm_customer.domain.rules import CustomerInput
from crm_customer.service import custom_fields
from crm_shared.access import AccessPolicy
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import PageTokenCodec, clamp_page_size, parse_order_by, query_fingerprint
from crm_shared.errors import Aborted, AlreadyExists, FailedPrecondition, NotFound
from crm_shared.ids import new_id
from crm_shared.pii.codec import PersonalDataCodec
from crm_shared.principal import Principal

RESOURCE = "customers"


@dataclass(frozen=True)
class CustomerDeps:
    policy: AccessPolicy
    codec: PersonalDataCodec
    page_tokens: PageTokenCodec
    phone_region: str = "CN"


@dataclass(frozen=True)
class CustomerPage:
    customers: list[Customer]
    next_page_token: str


def not_found(name: str) -> NotFound:
    # The same answer whether the customer does not exist or is outside the caller's scope.
    return NotFound(f"{name} not found", reason="CUSTOMER_NOT_FOUND", metadata={"resource": name})


def _duplicate(kind: str, existing_id: str) -> AlreadyExists:
    existing = f"customers/{existing_id}"
    field_name = {"email": "email_addresses", "phone": "phone_numbers", "tax_id": "tax_id"}[kind]
    return AlreadyExists(
        f"a customer with the same {kind.replace('_', ' ')} already exists: {existing}",
        reason="DUPLICATE_CUSTOMER",
        metadata={"existing": existing, "field": field_name},
    )


async def create_customer(uow, deps: CustomerDeps, principal: Principal, data: CustomerInput) -> Customer:
    grant = deps.policy.grant(principal, RESOURCE, "create")
    extra = await custom_fields.check_customer_input(uow.session, data)
    with extra.reported_with_rules():
        customer = rules.new_customer(
            extra.data, customer_id=new_id(), now=uow.now, grant=grant, phone_region=deps.phone_region
        )
    repo = CustomerRepository(uow.session, deps.codec)
    conflict = await repo.find_conflict(customer.identifiers())
    if conflict:
        raise _duplicate(*conflict)
    try:
        await repo.add(customer)
    except IntegrityError:
        # Lost a race with a concurrent create of the same email/phone/tax id (PostgreSQL; SQLite has
        # one writer). The transaction is unusable now; a retry will name the winner in ALREADY_EXISTS.
        raise Aborted(
            "a customer with the same email, phone or tax id was created at the same moment; retry",
            reason="CONCURRENT_DUPLICATE",
        ) from None
    await extra.index(uow.session, deps.codec, customer)
    uow.emit(
        published.SUBJECT_CUSTOMER_CREATED,
        events_pb.CustomerCreated(customer=published.customer_snapshot(customer)),
        resource=customer.name,
    )
    uow.audit("created", customer.name, sorted(_set_fields(customer)))
    return customer


def _set_fields(customer: Customer) -> set[str]:
    present = {
        "kind",
        "display_name",
        "owner",
        "team",
        "lifecycle_stage",
        *(name for name in ("industry", "source", "website", "tax_id") if getattr(customer, name)),
    }
    if customer.tier:
        present.add("tier")
    if customer.tags:
        present.add("tags")
    if customer.phones:
        present.add("phone_numbers")
    if customer.emails:
        present.add("email_addresses")
    if customer.address:
        present.add("address")
    if customer.custom_fields:
        present.add("custom_fields")
    return present


async def get_customer(
    session: AsyncSession, deps: CustomerDeps, principal: Principal, customer_id: str
) -> Customer:
    grant = deps.policy.grant(principal, RESOURCE, "read")
    customer = await CustomerRepository(session, deps.codec).get(customer_id, grant)
    if customer is None:
        raise not_found(f"customers/{customer_id}")
    return customer


async def list_customers(
    session: AsyncSession,
    deps: CustomerDeps,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
    order_by: str,
) -> CustomerPage:
    grant = deps.policy.grant(principal, RESOURCE, "read")
    limit = clamp_page_size(page_size)
    order = parse_order_by(order_by, allowed=ORDERABLE, default=DEFAULT_ORDER)
    repo = CustomerRepository(session, deps.codec)
    definitions = await custom_fields.customer_definitions(session) if "custom_fields." in filter_text else []
    where = customer_filter_schema(repo, deps.phone_region, definitions).compile(filter_text)
    # A token is bound to its query and caller: not replayable with another filter or by someone else.
    query = query_fingerprint(filter_text.strip(), order.canonical, principal.subject)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    sort = sort_keys(order.fields)
    rows = await repo.list(grant, where=where, sort=sort, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    next_token = ""
    if more:
        last = page[-1]
        next_token = deps.page_tokens.encode(
            [getattr(last, name) for name, _ in order.fields] + [last.id], query=query
        )
    return CustomerPage(page, next_token)


async def update_customer(
    uow,
    deps: CustomerDeps,
    principal: Principal,
    customer_id: str,
    data: CustomerInput,
    mask_paths: Sequence[str],
    etag: str,
) -> Customer:
    fields = resolve_update_mask(
        mask_paths,
        writable=rules.CUSTOMER_WRITABLE_FIELDS - rules.OWNERSHIP_FIELDS,
        output_only=rules.CUSTOMER_OUTPUT_ONLY_FIELDS | rules.OWNERSHIP_FIELDS,
    )
    grant = deps.policy.grant(principal, RESOURCE, "update")
    repo = CustomerRepository(uow.session, deps.codec)
    current = await repo.get(customer_id, grant)
    if current is None:
        raise not_found(f"customers/{customer_id}")
    check_etag(etag, current.id, current.version, resource=current.name)
    if current.status is CustomerStatus.ERASED:
        raise FailedPrecondition(
            f"{current.name} was erased on request; it cannot hold personal data again",
            reason="CUSTOMER_ERASED",
        )
    if current.status is CustomerStatus.MERGED:
        survivor = f"customers/{current.merged_into}"
        raise FailedPrecondition(
            f"{current.name} was merged into {survivor}; update that customer instead",
            reason="CUSTOMER_MERGED",
            metadata={"merged_into": survivor},
        )
    extra = None
    if "custom_fields" in fields:  # custom_fields is replaced as a whole: required ones must stay
        extra = await custom_fields.check_customer_input(uow.session, data)
        data = extra.data
    with extra.reported_with_rules() if extra else contextlib.nullcontext():
        updated, changed = rules.update_customer(
            current, data, fields, now=uow.now, grant=grant, phone_region=deps.phone_region
        )
    if "tier" in fields:
        # A person chose the tier: reporting's ABC class no longer overrides it (service/scores.py).
        await repo.pin_tier(updated.id)
    if not changed:
        return current
    if {"phone_numbers", "email_addresses", "tax_id"} & set(changed):
        conflict = await repo.find_conflict(updated.identifiers(), exclude_id=updated.id)
        if conflict:
            raise _duplicate(*conflict)
    await repo.save(updated, expected_version=current.version)
    if extra is not None and "custom_fields" in changed:
        await extra.index(uow.session, deps.codec, updated)
    if "tier" in changed and updated.pool_id:
        # Pool reclaim rules differ per tier: the deadline moves with it.
        from crm_customer.service.deadlines import refresh_timers

        updated = await refresh_timers(uow, updated)
    uow.emit(
        published.SUBJECT_CUSTOMER_UPDATED,
        events_pb.CustomerUpdated(customer=published.customer_snapshot(updated), changed_fields=changed),
        resource=updated.name,
    )
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_customer(uow, deps: CustomerDeps, principal: Principal, customer_id: str, etag: str) -> None:
    grant = deps.policy.grant(principal, RESOURCE, "delete")
    repo = CustomerRepository(uow.session, deps.codec)
    current = await repo.get(customer_id, grant)
    if current is None:
        raise not_found(f"customers/{customer_id}")
    check_etag(etag, current.id, current.version, resource=current.name)
    await repo.remove(customer_id)
    uow.emit(
        published.SUBJECT_CUSTOMER_DELETED,
        events_pb.CustomerDeleted(customer=current.name, owner=current.owner, team=current.team),
        resource=current.name,
    )
    uow.audit("deleted", current.name, [])
