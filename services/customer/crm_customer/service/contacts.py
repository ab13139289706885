"""Use cases for contacts, the child resource of a customer.

A contact is visible exactly when its customer is: the scope check is the
customer's owner/team, applied in the query that loads the parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from crm.customer.v1 import events_pb2 as events_pb
from crm_customer.adapters import published
from crm_customer.adapters.repository import ContactRepository, CustomerRepository
from crm_customer.domain import rules
from crm_customer.domain.model import Contact, Customer, CustomerStatus
from crm_customer.domain.rules import ContactInput
from crm_customer.service.customers import CustomerDeps, not_found
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import clamp_page_size, query_fingerprint
from crm_shared.errors import FailedPrecondition, NotFound
from crm_shared.ids import new_id
from crm_shared.principal import Principal

RESOURCE = "contacts"


@dataclass(frozen=True)
class ContactPage:
    contacts: list[Contact]
    next_page_token: str


def contact_not_found(customer_id: str, contact_id: str) -> NotFound:
    name = f"customers/{customer_id}/contacts/{contact_id}"
    return NotFound(f"{name} not found", reason="CONTACT_NOT_FOUND", metadata={"resource": name})


async def _visible_customer(
    session, deps: CustomerDeps, principal: Principal, customer_id: str, action: str
) -> Customer:
    grant = deps.policy.grant(principal, RESOURCE, action)
    customer = await CustomerRepository(session, deps.codec).get(customer_id, grant)
    if customer is None:
        raise not_found(f"customers/{customer_id}")
    if action in ("create", "update") and customer.status is CustomerStatus.ERASED:
        raise FailedPrecondition(
            f"customers/{customer_id} was erased on request; its contacts cannot hold personal data again",
            reason="CUSTOMER_ERASED",
        )
    return customer


async def _emit_demoted(uow, repo: ContactRepository, customer_id: str, demoted_ids: list[str]) -> None:
    for contact_id in demoted_ids:
        contact = await repo.get(customer_id, contact_id)
        if contact is not None:
            uow.emit(
                published.SUBJECT_CONTACT_UPDATED,
                events_pb.ContactUpdated(
                    contact=published.contact_snapshot(contact), changed_fields=["is_primary"]
                ),
                resource=contact.name,
            )


async def create_contact(
    uow, deps: CustomerDeps, principal: Principal, customer_id: str, data: ContactInput
) -> Contact:
    await _visible_customer(uow.session, deps, principal, customer_id, "create")
    contact = rules.new_contact(
        data, contact_id=new_id(), customer_id=customer_id, now=uow.now, phone_region=deps.phone_region
    )
    repo = ContactRepository(uow.session, deps.codec)
    demoted = await repo.clear_primary(customer_id, except_id=contact.id) if contact.is_primary else []
    await repo.add(contact)
    await _emit_demoted(uow, repo, customer_id, demoted)
    uow.emit(
        published.SUBJECT_CONTACT_CREATED,
        events_pb.ContactCreated(contact=published.contact_snapshot(contact)),
        resource=contact.name,
    )
    uow.audit(
        "created", contact.name, ["display_name", "title", "phone_numbers", "email_addresses", "is_primary"]
    )
    return contact


async def get_contact(
    session: AsyncSession, deps: CustomerDeps, principal: Principal, customer_id: str, contact_id: str
) -> Contact:
    await _visible_customer(session, deps, principal, customer_id, "read")
    contact = await ContactRepository(session, deps.codec).get(customer_id, contact_id)
    if contact is None:
        raise contact_not_found(customer_id, contact_id)
    return contact


async def list_contacts(
    session: AsyncSession,
    deps: CustomerDeps,
    principal: Principal,
    customer_id: str,
    *,
    page_size: int,
    page_token: str,
) -> ContactPage:
    await _visible_customer(session, deps, principal, customer_id, "read")
    limit = clamp_page_size(page_size)
    query = query_fingerprint("contacts", customer_id, principal.subject)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    rows = await ContactRepository(session, deps.codec).list(customer_id, after=after, limit=limit + 1)
    page = rows[:limit]
    token = (
        deps.page_tokens.encode([page[-1].create_time, page[-1].id], query=query) if len(rows) > limit else ""
    )
    return ContactPage(page, token)


async def update_contact(
    uow,
    deps: CustomerDeps,
    principal: Principal,
    customer_id: str,
    contact_id: str,
    data: ContactInput,
    mask_paths: Sequence[str],
    etag: str,
) -> Contact:
    fields = resolve_update_mask(mask_paths, writable=rules.CONTACT_WRITABLE_FIELDS)
    await _visible_customer(uow.session, deps, principal, customer_id, "update")
    repo = ContactRepository(uow.session, deps.codec)
    current = await repo.get(customer_id, contact_id)
    if current is None:
        raise contact_not_found(customer_id, contact_id)
    check_etag(etag, current.id, current.version, resource=current.name)
    updated, changed = rules.update_contact(
        current, data, fields, now=uow.now, phone_region=deps.phone_region
    )
    if not changed:
        return current
    demoted = await repo.clear_primary(customer_id, except_id=contact_id) if updated.is_primary else []
    await repo.save(updated, expected_version=current.version)
    await _emit_demoted(uow, repo, customer_id, demoted)
    uow.emit(
        published.SUBJECT_CONTACT_UPDATED,
        events_pb.ContactUpdated(contact=published.contact_snapshot(updated), changed_fields=changed),
        resource=updated.name,
    )
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_contact(
    uow, deps: CustomerDeps, principal: Principal, customer_id: str, contact_id: str, etag: str
) -> None:
    await _visible_customer(uow.session, deps, principal, customer_id, "delete")
    repo = ContactRepository(uow.session, deps.codec)
    current = await repo.get(customer_id, contact_id)
    if current is None:
        raise contact_not_found(customer_id, contact_id)
    check_etag(etag, current.id, current.version, resource=current.name)
    await repo.remove(contact_id)
    uow.emit(
        published.SUBJECT_CONTACT_DELETED,
        events_pb.ContactDeleted(contact=current.name, customer=f"customers/{customer_id}"),
        resource=current.name,
    )
    uow.audit("deleted", current.name, [])
