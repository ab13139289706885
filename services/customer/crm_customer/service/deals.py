"""Deals observed from sales and contract events: activity, last deal time, lifecycle, deadlines.

- an opportunity created counts as a follow-up activity (the rep is working the customer):
  last_follow_up_time moves forward, so the no-follow-up clock restarts;
- an opportunity won or a contract signed is a deal: last_deal_time moves forward and the
  lifecycle stage follows domain.lifecycle.after_deal_won (prospect / at_risk / churned → active).
Times only move forward, so an old event delivered late cannot undo a newer one. Each change
is published as CustomerUpdated with changed_fields, and the customer's timers are recomputed.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from crm.customer.v1 import events_pb2 as events_pb
from crm_customer.adapters import published
from crm_customer.adapters.pool_repository import OwnershipRepository
from crm_customer.adapters.repository import CustomerRepository
from crm_customer.domain import lifecycle
from crm_customer.domain.model import Customer, CustomerStatus
from crm_customer.service.customers import CustomerDeps
from crm_customer.service.deadlines import refresh_timers
from crm_shared.events.errors import TransientError

log = logging.getLogger(__name__)


def _customer_id(name: str) -> str | None:
    prefix, _, customer_id = name.partition("/")
    return customer_id if prefix == "customers" and customer_id and "/" not in customer_id else None


async def _apply(uow, deps: CustomerDeps, customer_name: str, change) -> Customer | None:
    customer_id = _customer_id(customer_name)
    customer = await CustomerRepository(uow.session, deps.codec).get(customer_id) if customer_id else None
    if customer is None or customer.status in (CustomerStatus.MERGED, CustomerStatus.ERASED):
        log.info("deal event for %s ignored: no such live customer", customer_name)
        return None
    updated, changed = change(customer)
    if not changed:
        return customer
    updated = replace(updated, update_time=uow.now, version=customer.version + 1)
    if not await OwnershipRepository(uow.session).move(customer, updated):
        # Someone changed the customer meanwhile: the consumer retries with backoff.
        raise TransientError(f"{customer.name} changed concurrently")
    updated = await refresh_timers(uow, updated)
    uow.emit(
        published.SUBJECT_CUSTOMER_UPDATED,
        events_pb.CustomerUpdated(customer=published.customer_snapshot(updated), changed_fields=changed),
        resource=updated.name,
    )
    uow.audit("updated", updated.name, changed)
    return updated


async def opportunity_created(uow, deps: CustomerDeps, customer_name: str, at: datetime) -> Customer | None:
    def change(customer: Customer):
        if customer.last_follow_up_time is not None and customer.last_follow_up_time >= at:
            return customer, []
        return replace(customer, last_follow_up_time=at), ["last_follow_up_time"]

    return await _apply(uow, deps, customer_name, change)


async def deal_won(uow, deps: CustomerDeps, customer_name: str, at: datetime) -> Customer | None:
    def change(customer: Customer):
        changed = []
        updated = customer
        if customer.last_deal_time is None or at > customer.last_deal_time:
            updated = replace(updated, last_deal_time=at)
            changed.append("last_deal_time")
        stage = lifecycle.after_deal_won(customer.lifecycle_stage)
        if stage != customer.lifecycle_stage:
            updated = replace(updated, lifecycle_stage=stage)
            changed.append("lifecycle_stage")
        return updated, sorted(changed)

    return await _apply(uow, deps, customer_name, change)
