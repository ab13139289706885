"""Customer events the servicedesk applies: merged and erased (crm_servicedesk.consumers).

- CustomerMerged: the losers' tickets move to the survivor (the customer service keeps a moved
  contact's id and only re-parents it, so "customers/{loser}/contacts/{k}" becomes
  "customers/{survivor}/contacts/{k}"); each moved ticket emits TicketUpdated and its snapshot is
  fetched again (the survivor's tier may change the SLA policy). Tickets are selected by the
  loser's name, so applying the same merge again moves nothing (on top of the consumer's inbox).
- CustomerErased: the snapshot's personal attribute (the display name) is cleared and the state
  becomes NOT_FOUND, on every ticket of that customer; the ticket itself (a business record with
  an opaque customer id) stays. CSAT surveys follow both: moved to the survivor; comments erased.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from crm_servicedesk.adapters.ticket_repository import TicketRepository
from crm_servicedesk.domain import tickets as rules
from crm_servicedesk.domain.tickets import SnapshotState
from crm_servicedesk.service import csat, sla
from crm_servicedesk.service.customer_snapshots import schedule_retry
from crm_servicedesk.service.ticket_events import emit_ticket_updated, policy_of


class InvalidCustomerEvent(ValueError):
    """A payload that can never be applied (not transient): the consumer dead-letters it."""


def _check_customer_name(name: str) -> str:
    prefix, _, rest = name.partition("/")
    if prefix != "customers" or not rest or "/" in rest:
        raise InvalidCustomerEvent(f"not a customer name: {name!r}")
    return name


async def customer_merged(uow, survivor: str, losers: Sequence[str]) -> int:
    """Move every ticket of a loser to the survivor; returns how many moved."""
    survivor = _check_customer_name(survivor)
    loser_names = [_check_customer_name(name) for name in dict.fromkeys(losers)]
    if not loser_names:
        raise InvalidCustomerEvent("a merge without losers")
    if survivor in loser_names:
        raise InvalidCustomerEvent(f"{survivor} is both survivor and loser")
    repo = TicketRepository(uow.session)
    moved = 0
    for ticket_id in await repo.ids_of_customers(loser_names):
        current = await repo.get(ticket_id, lock=True)
        if current is None:
            continue
        updated = rules.with_customer_changed(rules.moved_to_customer(current, survivor, uow.now))
        await repo.save(updated, current.row_version)
        change = await sla.recompute(uow, updated, event="updated")
        emit_ticket_updated(
            uow, updated, ["customer", "contact", "customer_snapshot"], sla_policy=policy_of(change)
        )
        await schedule_retry(uow, updated.id, attempt=0, delay=timedelta(0))
        moved += 1
    for loser in loser_names:
        await csat.on_customer_merged(uow, merged=loser, survivor=survivor)
    return moved


async def customer_erased(uow, customer: str) -> int:
    """Clear the snapshot of every ticket of the erased customer; returns how many changed."""
    customer = _check_customer_name(customer)
    # CSAT comments are free text the customer wrote: they go; the scores stay.
    await csat.on_customer_erased(uow, customer)
    repo = TicketRepository(uow.session)
    changed = 0
    for ticket_id in await repo.ids_of_customers([customer]):
        current = await repo.get(ticket_id, lock=True)
        if current is None or (
            current.snapshot_state is SnapshotState.NOT_FOUND and not current.customer_name
        ):
            continue
        updated = rules.snapshot_not_found(current, uow.now)
        await repo.save(updated, current.row_version)
        # The tier went with the snapshot: another policy may apply now.
        change = await sla.recompute(uow, updated, event="snapshot")
        emit_ticket_updated(uow, updated, ["customer_snapshot"], sla_policy=policy_of(change))
        changed += 1
    return changed
