"""Privacy requests: export everything about a customer, erase it by crypto-shredding, rotate keys.

Erasure destroys the customer's data key: every ciphertext sealed with it (the
customer's and its contacts' phones, emails, tax id, address — in the live
database, replicas and backups alike) becomes unreadable, whatever key ring one
holds. The encrypted columns and blind indexes are cleared as well, so the same
email can identify a new customer, and the customer stays as an ERASED record
with its non-personal fields so statistics keep adding up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from crm.customer.v1 import privacy_events_pb2 as privacy_events_pb
from crm_customer.adapters.audit_repository import AuditRecord, AuditRepository
from crm_customer.adapters.personal_data import PersonalDataRepository
from crm_customer.adapters.repository import ContactRepository, CustomerRepository
from crm_customer.domain.model import Contact, Customer, CustomerKind, CustomerStatus
from crm_customer.service.customers import CustomerDeps, not_found
from crm_shared.errors import FailedPrecondition
from crm_shared.pii.codec import PersonalDataCodec
from crm_shared.pii.crypto import DecryptionError
from crm_shared.principal import Principal

RESOURCE = "personal_data"
SUBJECT_CUSTOMER_ERASED = "crm.customer.customer.erased"
ERASED_FIELDS = ["address", "contacts", "custom_fields", "email_addresses", "phone_numbers", "tax_id"]
DEFAULT_ROTATION_BATCH = 500
MAX_ROTATION_BATCH = 5000


@dataclass(frozen=True)
class PersonalDataExport:
    customer: Customer
    contacts: list[Contact]
    audit: list[AuditRecord]
    related: dict[str, list[dict[str, Any]]]


async def export_personal_data(
    uow, deps: CustomerDeps, principal: Principal, customer_id: str
) -> PersonalDataExport:
    deps.policy.grant(principal, RESOURCE, "export")
    session = uow.session
    customers = CustomerRepository(session, deps.codec)
    customer = await customers.get(customer_id)
    if customer is None:
        raise not_found(f"customers/{customer_id}")
    contact_repo = ContactRepository(session, deps.codec)
    contacts: list[Contact] = []
    while True:
        after = [contacts[-1].create_time, contacts[-1].id] if contacts else None
        batch = await contact_repo.list(customer_id, after=after, limit=500)
        contacts += batch
        if len(batch) < 500:
            break
    audit = await AuditRepository(session).about(customer.name)
    cipher = await customers.cipher_for(customer_id)
    related = await PersonalDataRepository(session).related_records(customer_id, cipher)
    uow.audit("exported", customer.name, ["contacts", "profile", *sorted(related)])
    return PersonalDataExport(customer, contacts, audit, related)


async def erase_personal_data(uow, deps: CustomerDeps, principal: Principal, customer_id: str) -> Customer:
    deps.policy.grant(principal, RESOURCE, "erase")
    session = uow.session
    customers = CustomerRepository(session, deps.codec)
    current = await customers.get(customer_id)
    if current is None:
        raise not_found(f"customers/{customer_id}")
    if current.status is CustomerStatus.ERASED:
        return current  # shredding twice changes nothing
    sqlite = session.get_bind().dialect.name == "sqlite"
    if sqlite:  # overwrite the freed bytes instead of leaving them in free pages
        await session.execute(sa.text("PRAGMA secure_delete = ON"))
    try:
        await PersonalDataRepository(session).shred(
            customer_id, now=uow.now, person=current.kind is CustomerKind.PERSON
        )
    finally:
        if sqlite:
            await session.execute(sa.text("PRAGMA secure_delete = OFF"))
    uow.emit(
        SUBJECT_CUSTOMER_ERASED,
        privacy_events_pb.CustomerErased(customer=current.name),
        resource=current.name,
    )
    uow.audit("erased", current.name, ERASED_FIELDS)
    erased = await customers.get(customer_id)
    assert erased is not None
    return erased


# --- key rotation --------------------------------------------------------------------------------


@dataclass
class RotationProgress:
    active_key_id: str
    total: int = 0
    rewrapped: int = 0
    already_current: int = 0
    remaining: int = 0
    batches: int = 0
    resume_after: str = ""  # last customer id handled when stopped early; "" when finished
    finished: bool = False


async def rotate_personal_data_keys(
    uow_factory,
    codec: PersonalDataCodec,
    policy,
    principal: Principal | None,
    *,
    batch_size: int = 0,
    max_batches: int = 0,
    resume_after: str = "",
    on_batch: Callable[[RotationProgress], None] | None = None,
) -> RotationProgress:
    """Re-wrap data keys under the active key, one transaction per batch, in customer id order.

    `principal` None means an operator running the CLI against the database directly.
    """
    if principal is not None:
        policy.grant(principal, RESOURCE, "rotate_keys")
    size = min(batch_size or DEFAULT_ROTATION_BATCH, MAX_ROTATION_BATCH)
    progress = RotationProgress(active_key_id=codec.key_ring.active_kid, resume_after=resume_after)
    async with uow_factory.read_session() as session:
        progress.total = await PersonalDataRepository(session).count_keys()
    cursor = resume_after
    while True:
        async with uow_factory() as uow:
            repo = PersonalDataRepository(uow.session)
            rows = await repo.key_batch(after=cursor, limit=size)
            rewrapped = 0
            for row in rows:
                try:
                    new = codec.rewrap(bytes(row.wrapped_key), row.customer_id)
                except DecryptionError:
                    kid = codec.key_ring.key_id_of(bytes(row.wrapped_key))
                    raise FailedPrecondition(
                        f"the data key of customers/{row.customer_id} is wrapped under key {kid!r}, "
                        "which is not in the key ring; put it back in the ring and resume",
                        reason="KEY_NOT_IN_RING",
                        metadata={"key_id": kid, "resume_after": cursor},
                    ) from None
                if new is None:
                    progress.already_current += 1
                else:
                    await repo.replace_key(row.customer_id, bytes(row.wrapped_key), new)
                    rewrapped += 1
            if rows:
                uow.audit("keys_rotated", f"personalDataKeys/{codec.key_ring.active_kid}", [])
            await uow.commit()
        progress.rewrapped += rewrapped
        progress.batches += 1
        if rows:
            cursor = rows[-1].customer_id
        if len(rows) < size:
            progress.finished, progress.resume_after, progress.remaining = True, "", 0
            if on_batch:
                on_batch(progress)
            return progress
        progress.resume_after = cursor
        if on_batch or (max_batches and progress.batches >= max_batches):
            async with uow_factory.read_session() as session:
                progress.remaining = await PersonalDataRepository(session).count_keys(after=cursor)
        if on_batch:
            on_batch(progress)
        if max_batches and progress.batches >= max_batches:
            return progress
