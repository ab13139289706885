"""MergeCustomers: one survivor absorbs its duplicates, in one transaction.

Losers become tombstones (status MERGED, merged_into = survivor, personal data
crypto-shredded by deleting their data key) so a Get on one says where it went.
Contacts move and are re-encrypted under the survivor's data key; tags and
collaborators become the survivor's; every other child table (discovered from
the schema) is re-pointed. Repeating a merge whose losers are already merged
into the survivor changes nothing and says so (already_merged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from crm.customer.v1 import data_events_pb2 as data_events_pb
from crm.customer.v1 import events_pb2 as events_pb
from crm_customer.adapters import published
from crm_customer.adapters.behavior_repository import BehaviorRepository
from crm_customer.adapters.child_tables import ChildMoves, move_children
from crm_customer.adapters.repository import CustomerRepository
from crm_customer.adapters.tables import (
    contacts,
    customer_collaborators,
    customer_identifiers,
    customer_keys,
    customer_tags,
    customers,
)
from crm_customer.domain import merge as merge_rules
from crm_customer.domain.model import Customer
from crm_customer.domain.rules import check_ownership
from crm_customer.service.customers import CustomerDeps, not_found
from crm_shared.aip.etag import check_etag
from crm_shared.errors import Aborted
from crm_shared.principal import Principal

RESOURCE = "customer_merges"
SUBJECT_CUSTOMER_MERGED = "crm.customer.customer.merged"


@dataclass
class MergeOutcome:
    survivor: Customer
    losers: list[str]
    changed_fields: list[str] = field(default_factory=list)
    contacts: int = 0
    tags: int = 0
    collaborators: int = 0
    children: ChildMoves = field(default_factory=ChildMoves)
    already_merged: bool = False


async def merge_customers(
    uow,
    deps: CustomerDeps,
    principal: Principal,
    survivor_id: str,
    loser_ids: Sequence[str],
    *,
    field_sources: dict[str, str],
    etags: dict[str, str],
) -> MergeOutcome:
    """field_sources: API field -> customer id; etags: customer id -> etag. The caller commits (or,
    for a preview, rolls back: the preview runs exactly the same statements)."""
    grant = deps.policy.grant(principal, RESOURCE, "create")
    repo = CustomerRepository(uow.session, deps.codec)
    involved: dict[str, Customer] = {}
    for customer_id in (survivor_id, *loser_ids):
        customer = await repo.get(customer_id, grant)
        if customer is None:
            raise not_found(f"customers/{customer_id}")
        if customer_id in etags:
            check_etag(etags[customer_id], customer.id, customer.version, resource=customer.name)
        involved[customer_id] = customer
    survivor = involved[survivor_id]
    losers = [involved[i] for i in loser_ids]
    pending = merge_rules.check_mergeable(survivor, losers)
    outcome = MergeOutcome(survivor=survivor, losers=[c.name for c in losers])
    if not pending:
        outcome.already_merged = True
        return outcome

    plan = merge_rules.plan_merge(survivor, pending, field_sources, now=uow.now)
    merged = plan.survivor
    if merged.owner != survivor.owner or merged.team != survivor.team:
        check_ownership(grant, owner=merged.owner, team=merged.team)

    survivor_cipher = await repo.cipher_for(survivor.id)
    survivor_has_primary = await _has_primary(uow.session, survivor.id)
    for loser, dead in zip(pending, plan.tombstones, strict=True):
        moved, had_primary = await _move_contacts(
            uow.session, repo, loser.id, survivor.id, survivor_cipher, demote_primary=survivor_has_primary
        )
        survivor_has_primary = survivor_has_primary or had_primary
        outcome.contacts += moved
        outcome.tags += len(set(loser.tags) - set(survivor.tags))
        outcome.collaborators += len(set(loser.collaborators) - set(survivor.collaborators))
        await move_children(uow.session, loser.id, survivor.id, outcome.children)
        await BehaviorRepository(uow.session, deps.codec).move_events(loser.id, survivor.id)
        await _write_tombstone(uow.session, dead, expected_version=loser.version)
    # The survivor's identifiers, tags and collaborators are rewritten from the merged state, so
    # every kept identifier of a loser now points at the survivor.
    await repo.save(merged, expected_version=survivor.version)

    outcome.survivor = merged
    outcome.changed_fields = plan.changed_fields
    uow.emit(
        SUBJECT_CUSTOMER_MERGED,
        data_events_pb.CustomerMerged(
            survivor=merged.name,
            losers=[c.name for c in pending],
            changed_fields=plan.changed_fields,
            moved_contacts=outcome.contacts,
            moved_tags=outcome.tags,
            moved_collaborators=outcome.collaborators,
            moved_other=outcome.children.moved,
        ),
        resource=merged.name,
    )
    if plan.changed_fields:
        uow.emit(
            published.SUBJECT_CUSTOMER_UPDATED,
            events_pb.CustomerUpdated(
                customer=published.customer_snapshot(merged), changed_fields=plan.changed_fields
            ),
            resource=merged.name,
        )
    uow.audit("merged", merged.name, plan.changed_fields)
    for dead in plan.tombstones:
        uow.audit("merged", dead.name, ["status", "merged_into"])
    return outcome


async def _has_primary(session, customer_id: str) -> bool:
    query = sa.select(sa.func.count()).where(contacts.c.customer_id == customer_id, contacts.c.is_primary)
    return bool((await session.execute(query)).scalar_one())


async def _move_contacts(
    session,
    repo: CustomerRepository,
    loser_id: str,
    survivor_id: str,
    survivor_cipher,
    *,
    demote_primary: bool,
) -> tuple[int, bool]:
    """Re-encrypt the loser's contacts under the survivor's data key and re-parent them."""
    rows = (await session.execute(sa.select(contacts).where(contacts.c.customer_id == loser_id))).all()
    if not rows:
        return 0, False
    loser_cipher = await repo.cipher_for(loser_id)
    had_primary = False
    for row in rows:
        sealed = {}
        for column in ("phones", "emails"):
            value = loser_cipher.open(
                row._mapping[f"{column}_enc"], table="contacts", column=column, row_id=row.id
            )
            sealed[f"{column}_enc"] = survivor_cipher.seal(
                value, table="contacts", column=column, row_id=row.id
            )
        had_primary = had_primary or row.is_primary
        await session.execute(
            sa.update(contacts)
            .where(contacts.c.id == row.id)
            .values(
                customer_id=survivor_id,
                is_primary=row.is_primary and not demote_primary,
                version=contacts.c.version + 1,
                **sealed,
            )
        )
    return len(rows), had_primary


async def _write_tombstone(session, dead: Customer, *, expected_version: int) -> None:
    result = await session.execute(
        sa.update(customers)
        .where(customers.c.id == dead.id, customers.c.version == expected_version)
        .values(
            status=dead.status.value,
            merged_into=dead.merged_into,
            display_name=dead.display_name,
            website=dead.website,
            tags=[],
            custom_fields={},
            collaborators=[],
            phones_enc=None,
            emails_enc=None,
            tax_id_enc=None,
            address_enc=None,
            update_time=dead.update_time,
            version=dead.version,
        )
    )
    if result.rowcount != 1:
        raise Aborted(f"{dead.name} was changed concurrently; retry the merge", reason="CONCURRENT_UPDATE")
    for table in (customer_identifiers, customer_tags, customer_collaborators, customer_keys):
        # Deleting the data key crypto-shreds the loser's personal fields everywhere (backups too).
        await session.execute(sa.delete(table).where(table.c.customer_id == dead.id))
