"""Use cases of follow-up records: log one (moves the customer's activity and deadlines), list them."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.adapters import pool_published
from crm_customer.adapters.follow_up_tables import follow_ups
from crm_customer.adapters.pool_repository import OwnershipRepository
from crm_customer.adapters.repository import CustomerRepository
from crm_customer.domain.follow_ups import (
    FollowUp,
    FollowUpInput,
    FollowUpType,
    new_follow_up,
    record_on_customer,
)
from crm_customer.service.customers import CustomerDeps, not_found
from crm_customer.service.deadlines import refresh_timers
from crm_shared.aip.paging import SortKey, clamp_page_size, keyset_after, keyset_order, query_fingerprint
from crm_shared.errors import Aborted
from crm_shared.ids import new_id
from crm_shared.principal import Principal

RESOURCE = "follow_ups"


@dataclass(frozen=True)
class FollowUpPage:
    follow_ups: list[FollowUp]
    next_page_token: str


def _row(follow_up: FollowUp) -> dict:
    return {
        "id": follow_up.id,
        "customer_id": follow_up.customer_id,
        "type": follow_up.type.value,
        "content": follow_up.content,
        "follow_up_time": follow_up.follow_up_time,
        "author": follow_up.author,
        "next_follow_up_time": follow_up.next_follow_up_time,
        "related_opportunity": follow_up.related_opportunity,
        "related_ticket": follow_up.related_ticket,
        "create_time": follow_up.create_time,
    }


def _from_row(row) -> FollowUp:
    return FollowUp(
        id=row.id,
        customer_id=row.customer_id,
        type=FollowUpType(row.type),
        content=row.content,
        follow_up_time=row.follow_up_time,
        author=row.author,
        create_time=row.create_time,
        next_follow_up_time=row.next_follow_up_time,
        related_opportunity=row.related_opportunity,
        related_ticket=row.related_ticket,
    )


async def create_follow_up(
    uow, deps: CustomerDeps, principal: Principal, customer_id: str, data: FollowUpInput
) -> FollowUp:
    grant = deps.policy.grant(principal, RESOURCE, "create")
    customer = await CustomerRepository(uow.session, deps.codec).get(customer_id, grant)
    if customer is None:
        raise not_found(f"customers/{customer_id}")
    follow_up = new_follow_up(
        data, follow_up_id=new_id(), customer_id=customer_id, author=principal.subject, now=uow.now
    )
    await uow.session.execute(sa.insert(follow_ups).values(_row(follow_up)))
    updated, changed = record_on_customer(customer, follow_up, now=uow.now)
    if changed:
        if not await OwnershipRepository(uow.session).move(customer, updated):
            raise Aborted(f"{customer.name} was changed concurrently; retry", reason="CONCURRENT_UPDATE")
        # A follow-up moves the pool's reclaim deadline, the reminder and the inactivity clock.
        await refresh_timers(uow, updated)
    uow.emit(
        pool_published.SUBJECT_FOLLOW_UP_LOGGED,
        pool_published.follow_up_logged(follow_up),
        resource=follow_up.name,
    )
    uow.audit("created", follow_up.name, ["type", "content", "follow_up_time", "next_follow_up_time"])
    return follow_up


async def get_follow_up(
    session: AsyncSession, deps: CustomerDeps, principal: Principal, customer_id: str, follow_up_id: str
) -> FollowUp:
    grant = deps.policy.grant(principal, RESOURCE, "read")
    name = f"customers/{customer_id}/followUps/{follow_up_id}"
    if await CustomerRepository(session, deps.codec).get(customer_id, grant) is None:
        raise not_found(name)
    row = (
        await session.execute(
            sa.select(follow_ups).where(
                follow_ups.c.id == follow_up_id, follow_ups.c.customer_id == customer_id
            )
        )
    ).first()
    if row is None:
        raise not_found(name)
    return _from_row(row)


async def list_follow_ups(
    session: AsyncSession,
    deps: CustomerDeps,
    principal: Principal,
    customer_id: str,
    *,
    page_size: int,
    page_token: str,
) -> FollowUpPage:
    grant = deps.policy.grant(principal, RESOURCE, "read")
    if await CustomerRepository(session, deps.codec).get(customer_id, grant) is None:
        raise not_found(f"customers/{customer_id}")
    limit = clamp_page_size(page_size)
    query = query_fingerprint("follow-ups", customer_id, principal.subject)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    f = follow_ups.c
    sort = [SortKey(f.follow_up_time, descending=True), SortKey(f.id, descending=True)]
    select = sa.select(follow_ups).where(f.customer_id == customer_id)
    if after is not None:
        select = select.where(keyset_after(sort, after))
    rows = (await session.execute(select.order_by(*keyset_order(sort)).limit(limit + 1))).all()
    page = [_from_row(r) for r in rows[:limit]]
    token = ""
    if len(rows) > limit:
        token = deps.page_tokens.encode([page[-1].follow_up_time, page[-1].id], query=query)
    return FollowUpPage(page, token)
