"""Use cases of public pools (公海): pool administration and every ownership move.

Each move is one transaction: a compare-and-set UPDATE of the customer row (status and
version must still be what was read — of two racing claims exactly one wins), an
ownership_changes row, an OwnershipChanged event in the outbox, an audit record, and the
customer's durable timers re-scheduled (service.deadlines).

Visibility: pools follow the `pools` grant (admins all, managers their team's pools and
pools they belong to, reps pools they are members of). A pool customer exists, for a
rep, only through a pool they are a member of: anything else is NOT_FOUND.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm.customer.v1 import events_pb2 as customer_events_pb
from crm.customer.v1 import pool_events_pb2 as events_pb
from crm_customer.adapters import pool_published, published
from crm_customer.adapters.pool_repository import OwnershipChangeRecord, OwnershipRepository, PoolRepository
from crm_customer.adapters.repository import CustomerRepository
from crm_customer.adapters.tables import customers as customers_table
from crm_customer.domain import pools as rules
from crm_customer.domain.model import Customer, CustomerStatus
from crm_customer.domain.pools import OwnershipReason, Pool, PoolInput
from crm_customer.service.customers import CustomerDeps, not_found
from crm_customer.service.deadlines import POOL_RULES_CHANGED, RECLAIM, WARN, cancel_all, refresh_timers
from crm_shared.access import Scope, ScopeGrant
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import clamp_page_size, query_fingerprint
from crm_shared.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from crm_shared.ids import new_id
from crm_shared.principal import Principal
from crm_shared.timers import cancel, schedule

POOLS = "pools"
POOL_CUSTOMERS = "pool_customers"
OWNERSHIP_CHANGES = "ownership_changes"


def pool_not_found(name: str) -> NotFound:
    return NotFound(f"{name} not found", reason="POOL_NOT_FOUND", metadata={"resource": name})


def _already_claimed(customer: Customer) -> FailedPrecondition:
    return FailedPrecondition(
        f"{customer.name} was just claimed or changed by someone else",
        reason="CUSTOMER_ALREADY_CLAIMED",
        metadata={"resource": customer.name},
    )


@dataclass(frozen=True)
class PoolPage:
    pools: list[Pool]
    next_page_token: str


@dataclass(frozen=True)
class CustomerPage:
    customers: list[Customer]
    next_page_token: str


@dataclass(frozen=True)
class OwnershipPage:
    changes: list[OwnershipChangeRecord]
    next_page_token: str


# --- pools ---------------------------------------------------------------------------------------


async def create_pool(uow, deps: CustomerDeps, principal: Principal, data: PoolInput) -> Pool:
    grant = deps.policy.grant(principal, POOLS, "create")
    team = data.team.strip() or principal.team
    if grant.scope is not Scope.ALL and team != grant.team:
        raise PermissionDenied(
            f"you can only create pools of your team ({grant.team or 'none'})", reason="TEAM_OUTSIDE_SCOPE"
        )
    pool = rules.new_pool(data, pool_id=new_id(), now=uow.now, team=team)
    await PoolRepository(uow.session).add(pool)
    uow.audit("created", pool.name, ["display_name", "team", "member_users", "member_teams", "rules"])
    return pool


async def get_pool(session: AsyncSession, deps: CustomerDeps, principal: Principal, pool_id: str) -> Pool:
    grant = deps.policy.grant(principal, POOLS, "read")
    repo = PoolRepository(session)
    pool = await repo.get(pool_id, repo.visible(grant))
    if pool is None:
        raise pool_not_found(f"pools/{pool_id}")
    return pool


async def list_pools(
    session: AsyncSession, deps: CustomerDeps, principal: Principal, *, page_size: int, page_token: str
) -> PoolPage:
    grant = deps.policy.grant(principal, POOLS, "read")
    limit = clamp_page_size(page_size)
    query = query_fingerprint("pools", principal.subject)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    repo = PoolRepository(session)
    found = await repo.list(repo.visible(grant), after=after, limit=limit + 1)
    page, more = found[:limit], len(found) > limit
    token = deps.page_tokens.encode([page[-1].create_time, page[-1].id], query=query) if more else ""
    return PoolPage(page, token)


async def _manageable_pool(uow, grant: ScopeGrant, pool_id: str) -> Pool:
    repo = PoolRepository(uow.session)
    pool = await repo.get(pool_id, repo.visible(grant))
    if pool is None:
        raise pool_not_found(f"pools/{pool_id}")
    if not grant.permits(owner="", team=pool.team):
        raise PermissionDenied(
            f"only {pool.team or 'admin'} managers may change {pool.name}", reason="NOT_POOL_MANAGER"
        )
    return pool


async def update_pool(
    uow,
    deps: CustomerDeps,
    principal: Principal,
    pool_id: str,
    data: PoolInput,
    mask_paths: Sequence[str],
    etag: str,
) -> Pool:
    fields = resolve_update_mask(
        mask_paths, writable=rules.POOL_WRITABLE_FIELDS, output_only=rules.POOL_OUTPUT_ONLY_FIELDS
    )
    grant = deps.policy.grant(principal, POOLS, "update")
    current = await _manageable_pool(uow, grant, pool_id)
    check_etag(etag, current.id, current.version, resource=current.name)
    updated, changed = rules.update_pool(current, data, set(fields), now=uow.now)
    if not changed:
        return current
    if not await PoolRepository(uow.session).save(updated, expected_version=current.version):
        raise Aborted(
            f"{current.name} was changed concurrently; read it again and retry", reason="CONCURRENT_UPDATE"
        )
    if "rules" in changed:
        # Re-derive every governed customer's deadline now, in batches, on the timer scheduler.
        await schedule(uow, POOL_RULES_CHANGED, pool_id, uow.now, {"after": ""})
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_pool(uow, deps: CustomerDeps, principal: Principal, pool_id: str, etag: str) -> None:
    grant = deps.policy.grant(principal, POOLS, "delete")
    pool = await _manageable_pool(uow, grant, pool_id)
    check_etag(etag, pool.id, pool.version, resource=pool.name)
    repo = PoolRepository(uow.session)
    waiting = await repo.customers_waiting(pool_id)
    if waiting:
        raise FailedPrecondition(
            f"{pool.name} still holds {waiting} customers; assign or move them first", reason="POOL_NOT_EMPTY"
        )
    # Owned customers it governed are no longer subject to reclaim.
    c = customers_table.c
    governed = (await uow.session.execute(sa.select(c.id).where(c.pool_id == pool_id))).scalars().all()
    if governed:
        await uow.session.execute(
            sa.update(customers_table).where(c.pool_id == pool_id).values(pool_id="", reclaim_time=None)
        )
        for customer_id in governed:
            await cancel(uow, RECLAIM, customer_id)
            await cancel(uow, WARN, customer_id)
    await repo.remove(pool_id)
    uow.audit("deleted", pool.name, [])


# --- ownership moves ---------------------------------------------------------------------------


async def _record_move(
    uow,
    before: Customer,
    after: Customer,
    reason: OwnershipReason,
    *,
    pool_id: str,
    detail: str = "",
) -> OwnershipChangeRecord:
    change = OwnershipChangeRecord(
        id=new_id(),
        customer_id=before.id,
        reason=reason,
        detail_code=detail,
        from_owner=before.owner,
        to_owner=after.owner,
        from_team=before.team,
        to_team=after.team,
        pool_id=pool_id,
        actor=uow.actor_subject,
        change_time=uow.now,
    )
    await OwnershipRepository(uow.session).record(change)
    uow.emit(
        pool_published.SUBJECT_OWNERSHIP[reason],
        events_pb.OwnershipChanged(
            customer=before.name,
            reason=pool_published.REASON_TO_PB[reason],
            detail_code=detail,
            from_owner=change.from_owner,
            to_owner=change.to_owner,
            from_team=change.from_team,
            to_team=change.to_team,
            pool=f"pools/{pool_id}" if pool_id else "",
            change_time=published.timestamp(uow.now),
            ownership_change=change.name,
        ),
        resource=before.name,
    )
    uow.audit(reason.value, before.name, ["owner", "team", "status", "pool"])
    return change


async def _load(uow, deps: CustomerDeps, customer_id: str) -> Customer:
    customer = await CustomerRepository(uow.session, deps.codec).get(customer_id)
    if customer is None:
        raise not_found(f"customers/{customer_id}")
    return customer


async def _move(uow, before: Customer, after: Customer, pool: Pool | None) -> Customer:
    deadline = rules.reclaim_deadline(after, pool.rules) if pool is not None else None
    after = replace(after, reclaim_time=deadline.at if deadline else None)
    if not await OwnershipRepository(uow.session).move(before, after):
        raise _already_claimed(before)
    return await refresh_timers(uow, after, pool, lookup_pool=False)


async def claim_customer(uow, deps: CustomerDeps, principal: Principal, customer_id: str) -> Customer:
    deps.policy.grant(principal, POOL_CUSTOMERS, "claim")
    customer = await _load(uow, deps, customer_id)
    pool = await PoolRepository(uow.session).get(customer.pool_id) if customer.pool_id else None
    if pool is None or not pool.is_member(principal.subject, principal.team):
        # Outside a pool the caller belongs to, the customer does not exist for them.
        raise not_found(customer.name)
    if customer.status is CustomerStatus.OWNED and customer.owner == principal.subject:
        raise FailedPrecondition(f"you already own {customer.name}", reason="CUSTOMER_ALREADY_CLAIMED")
    owned = OwnershipRepository(uow.session)
    ctx = rules.ClaimContext(
        user=principal.subject,
        team=principal.team,
        now=uow.now,
        customers_held=await owned.customers_held(principal.subject),
        claims_last_24h=await owned.claims_since(principal.subject, pool.id, uow.now - rules.CLAIM_WINDOW),
        lost_at=await owned.last_lost_at(principal.subject, customer.id),
    )
    rules.check_claim(pool, customer, ctx)
    after = rules.take_from_pool(customer, owner=principal.subject, team=principal.team, now=uow.now)
    after = await _move(uow, customer, after, pool)
    await _record_move(uow, customer, after, OwnershipReason.CLAIMED, pool_id=pool.id)
    return after


async def assign_customer(
    uow,
    deps: CustomerDeps,
    principal: Principal,
    customer_id: str,
    *,
    owner: str,
    team: str,
    pool_id: str,
) -> Customer:
    grant = deps.policy.grant(principal, POOL_CUSTOMERS, "assign")
    customer = await _load(uow, deps, customer_id)
    pools = PoolRepository(uow.session)
    current_pool = await pools.get(customer.pool_id) if customer.pool_id else None
    if customer.status is CustomerStatus.IN_POOL:
        visible = current_pool is not None and grant.permits(owner="", team=current_pool.team)
    elif customer.status is CustomerStatus.OWNED:
        visible = grant.permits(owner=customer.owner, team=customer.team)
    else:
        visible = False
    if not visible:
        raise not_found(customer.name)
    new_team = team.strip() or (
        principal.team if grant.scope is not Scope.ALL else customer.team or principal.team
    )
    if not grant.permits(owner=owner, team=new_team):
        raise PermissionDenied(
            f"you can only assign customers within your team ({grant.team or 'none'})",
            reason="TEAM_OUTSIDE_SCOPE",
        )
    target_pool = current_pool
    if pool_id and pool_id != customer.pool_id:
        target_pool = await pools.get(pool_id, pools.visible(grant))
        if target_pool is None:
            raise pool_not_found(f"pools/{pool_id}")
    if customer.status is CustomerStatus.IN_POOL:
        after = rules.take_from_pool(customer, owner=owner, team=new_team, now=uow.now)
    else:
        if customer.owner == owner and (not pool_id or pool_id == customer.pool_id):
            return customer  # already there: nothing to move
        after = rules.give_to(customer, owner=owner, team=new_team, now=uow.now)
    after = replace(after, pool_id=target_pool.id if target_pool else "")
    after = await _move(uow, customer, after, target_pool)
    await _record_move(uow, customer, after, OwnershipReason.ASSIGNED, pool_id=after.pool_id)
    return after


async def transfer_customer(
    uow, deps: CustomerDeps, principal: Principal, customer_id: str, *, owner: str, team: str
) -> Customer:
    grant = deps.policy.grant(principal, POOL_CUSTOMERS, "transfer")
    customer = await _load(uow, deps, customer_id)
    if customer.status is not CustomerStatus.OWNED or not grant.permits(
        owner=customer.owner, team=customer.team
    ):
        if customer.status is CustomerStatus.IN_POOL and grant.scope is Scope.ALL:
            raise FailedPrecondition(
                f"{customer.name} is in a pool: assign it instead", reason="CUSTOMER_IN_POOL"
            )
        raise not_found(customer.name)
    new_team = team.strip() or customer.team
    if not grant.permits(owner=owner, team=new_team):
        raise PermissionDenied(
            f"you can only transfer customers within your team ({grant.team or 'none'})",
            reason="TEAM_OUTSIDE_SCOPE",
        )
    if customer.owner == owner and customer.team == new_team:
        raise FailedPrecondition(f"{owner} already owns {customer.name}", reason="SAME_OWNER")
    after = rules.give_to(customer, owner=owner, team=new_team, now=uow.now)
    pool = await PoolRepository(uow.session).get(customer.pool_id) if customer.pool_id else None
    after = await _move(uow, customer, after, pool)
    await _record_move(uow, customer, after, OwnershipReason.TRANSFERRED, pool_id=customer.pool_id)
    return after


async def release_to_pool(
    uow,
    deps: CustomerDeps,
    principal: Principal,
    customer_id: str,
    *,
    pool_id: str,
    reason: rules.ReleaseReason,
) -> Customer:
    grant = deps.policy.grant(principal, POOL_CUSTOMERS, "release")
    customer = await _load(uow, deps, customer_id)
    if customer.status is not CustomerStatus.OWNED or not grant.permits(
        owner=customer.owner, team=customer.team
    ):
        raise not_found(customer.name)
    if customer.locked:
        raise FailedPrecondition(f"{customer.name} is locked; unlock it first", reason="CUSTOMER_LOCKED")
    pools = PoolRepository(uow.session)
    target = pool_id or customer.pool_id
    if not target:
        raise InvalidArgument.for_field("pool", "is required: the customer is not governed by a pool")
    # Its own pool is always a valid destination; another pool must be visible to the caller.
    pool = await pools.get(target, None if target == customer.pool_id else pools.visible(grant))
    if pool is None:
        raise pool_not_found(f"pools/{target}")
    after = rules.put_in_pool(customer, pool, now=uow.now)
    if not await OwnershipRepository(uow.session).move(customer, after):
        raise _already_claimed(customer)
    await cancel_all(uow, customer.id)
    await _record_move(uow, customer, after, OwnershipReason.RELEASED, pool_id=pool.id, detail=reason.value)
    return after


async def reclaim(uow, customer: Customer, pool: Pool, clause: str) -> Customer:
    """The pool takes an owned customer back (called by the reclaim timer)."""
    after = rules.put_in_pool(customer, pool, now=uow.now)
    if not await OwnershipRepository(uow.session).move(customer, after):
        raise Aborted(f"{customer.name} changed while being reclaimed", reason="CONCURRENT_UPDATE")
    await cancel_all(uow, customer.id)
    await _record_move(uow, customer, after, OwnershipReason.RECLAIMED, pool_id=pool.id, detail=clause)
    return after


async def set_locked(
    uow, deps: CustomerDeps, principal: Principal, customer_id: str, locked: bool
) -> Customer:
    grant = deps.policy.grant(principal, POOL_CUSTOMERS, "lock")
    customer = await _load(uow, deps, customer_id)
    if customer.status is not CustomerStatus.OWNED or not grant.permits(
        owner=customer.owner, team=customer.team
    ):
        raise not_found(customer.name)
    if customer.locked == locked:
        return customer
    after = replace(customer, locked=locked, update_time=uow.now, version=customer.version + 1)
    pool = await PoolRepository(uow.session).get(customer.pool_id) if customer.pool_id else None
    after = await _move(uow, customer, after, pool)
    uow.emit(
        pool_published.SUBJECT_CUSTOMER_LOCKED if locked else pool_published.SUBJECT_CUSTOMER_UNLOCKED,
        events_pb.CustomerLockChanged(customer=customer.name, locked=locked, owner=customer.owner),
        resource=customer.name,
    )
    uow.audit("locked" if locked else "unlocked", customer.name, ["locked"])
    return after


# --- listings ------------------------------------------------------------------------------------


async def list_pool_customers(
    session: AsyncSession,
    deps: CustomerDeps,
    principal: Principal,
    pool_id: str,
    *,
    page_size: int,
    page_token: str,
) -> CustomerPage:
    grant = deps.policy.grant(principal, POOL_CUSTOMERS, "read")
    pools = PoolRepository(session)
    pool = await pools.get(pool_id, pools.visible(grant))
    if pool is None:
        raise pool_not_found(f"pools/{pool_id}")
    limit = clamp_page_size(page_size)
    query = query_fingerprint("pool-customers", pool_id, principal.subject)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    ids = await OwnershipRepository(session).pool_customer_ids(pool_id, after=after, limit=limit + 1)
    page_ids, more = ids[:limit], len(ids) > limit
    repo = CustomerRepository(session, deps.codec)
    found = [c for c in [await repo.get(i) for i in page_ids] if c is not None]
    token = ""
    if more and found:
        token = deps.page_tokens.encode([found[-1].update_time, found[-1].id], query=query)
    return CustomerPage(found, token)


async def list_ownership_changes(
    session: AsyncSession,
    deps: CustomerDeps,
    principal: Principal,
    customer_id: str,
    *,
    page_size: int,
    page_token: str,
) -> OwnershipPage:
    grant = deps.policy.grant(principal, OWNERSHIP_CHANGES, "read")
    if await CustomerRepository(session, deps.codec).get(customer_id, grant) is None:
        raise not_found(f"customers/{customer_id}")
    limit = clamp_page_size(page_size)
    query = query_fingerprint("ownership-changes", customer_id, principal.subject)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    rows = await OwnershipRepository(session).history(customer_id, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    token = deps.page_tokens.encode([page[-1].change_time, page[-1].id], query=query) if more else ""
    return OwnershipPage(page, token)


def lifecycle_event(customer: Customer, changed: list[str]) -> customer_events_pb.CustomerUpdated:
    return customer_events_pb.CustomerUpdated(
        customer=published.customer_snapshot(customer), changed_fields=changed
    )
