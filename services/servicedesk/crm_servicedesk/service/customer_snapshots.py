"""The customer snapshot of a ticket: taken at creation, retried by a durable timer when it failed.

At creation the customer service is asked *before* the unit of work opens (no transaction or
SQLite writer lock is held across the network call), with the caller's token and a short
deadline. Down, slow or refusing (a customer_portal token may not read customers): the ticket is
created anyway with state PENDING and SNAPSHOT_RETRY_TIMER asks again with the servicedesk's
service identity after 1 min, 2, 4… (capped). When the snapshot arrives the ticket is saved,
TicketUpdated names "customer_snapshot", and the SLA is matched again (the tier may change it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from crm_servicedesk.adapters.customer_client import CustomerServiceClient, ServiceTokenFile
from crm_servicedesk.adapters.ticket_repository import TicketRepository
from crm_servicedesk.domain import tickets as rules
from crm_servicedesk.domain.tickets import CustomerFacts, SnapshotState, Ticket
from crm_servicedesk.service import sla
from crm_servicedesk.service.ticket_events import emit_ticket_updated, policy_of
from crm_shared import timers
from crm_shared.errors import Unavailable

log = logging.getLogger(__name__)

SNAPSHOT_RETRY_TIMER = "servicedesk.snapshot.retry"
FIRST_RETRY = timedelta(minutes=1)


@dataclass(frozen=True)
class SnapshotOutcome:
    """What the customer service said: FETCHED with facts, NOT_FOUND, PENDING (ask later) or NONE."""

    state: SnapshotState
    facts: CustomerFacts | None = None


def retry_delay(attempt: int, cap_seconds: float) -> timedelta:
    """1 min, 2, 4, 8… for attempt 0, 1, 2, 3…, never more than the cap."""
    return min(FIRST_RETRY * (2 ** min(attempt, 30)), timedelta(seconds=cap_seconds))


class CustomerSnapshots:
    """Takes snapshots through the customer service (one channel per servicedesk process)."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.client = CustomerServiceClient(
            settings.customer_target, timeout=settings.customer_snapshot_timeout_seconds
        )
        self.service_token = ServiceTokenFile(settings.service_token_file)

    async def take(self, customer: str, *, token: str | None = None) -> SnapshotOutcome:
        """Ask now (as the current caller, or as `token`); PENDING when the answer must wait."""
        if not customer:
            return SnapshotOutcome(SnapshotState.NONE)
        try:
            facts = await self.client.fetch(customer, token=token)
        except Unavailable as error:
            log.info("customer snapshot of %s deferred: %s", customer, error)
            return SnapshotOutcome(SnapshotState.PENDING)
        if facts is None:
            return SnapshotOutcome(SnapshotState.NOT_FOUND)
        return SnapshotOutcome(SnapshotState.FETCHED, facts)

    async def close(self) -> None:
        await self.client.close()


def with_outcome(ticket: Ticket, outcome: SnapshotOutcome, now) -> Ticket:
    """The ticket with the snapshot applied (unchanged while still PENDING or without a customer)."""
    if outcome.state is SnapshotState.FETCHED and outcome.facts is not None:
        return rules.snapshot_fetched(ticket, outcome.facts, now)
    if outcome.state is SnapshotState.NOT_FOUND:
        return rules.snapshot_not_found(ticket, now)
    return ticket


async def schedule_retry(uow, ticket_id: str, *, attempt: int, delay: timedelta) -> None:
    await timers.schedule(uow, SNAPSHOT_RETRY_TIMER, ticket_id, uow.now + delay, {"attempt": attempt})


async def retry_snapshot(uow, snapshots: CustomerSnapshots, ticket_id: str, attempt: int) -> None:
    """The retry timer: ask with the service identity; apply the answer or schedule the next try."""
    cap = snapshots.settings.snapshot_retry_max_seconds
    repo = TicketRepository(uow.session)
    ticket = await repo.get(ticket_id, lock=True)
    if ticket is None or ticket.snapshot_state is not SnapshotState.PENDING or not ticket.customer:
        return
    token = snapshots.service_token.read()
    if token is None:
        log.warning(
            "no service identity token (service_token_file=%r): snapshot of %s stays pending",
            snapshots.settings.service_token_file,
            ticket.name,
        )
        await schedule_retry(uow, ticket_id, attempt=attempt + 1, delay=retry_delay(attempt + 1, cap))
        return
    outcome = await snapshots.take(ticket.customer, token=token)
    if outcome.state is SnapshotState.PENDING:
        await schedule_retry(uow, ticket_id, attempt=attempt + 1, delay=retry_delay(attempt + 1, cap))
        return
    await apply_snapshot(uow, ticket, outcome)


async def apply_snapshot(uow, ticket: Ticket, outcome: SnapshotOutcome) -> Ticket:
    """Save a late snapshot (the ticket as read in this unit of work), announce it, re-match the SLA."""
    updated = with_outcome(ticket, outcome, uow.now)
    if updated is ticket:
        return ticket
    await TicketRepository(uow.session).save(updated, ticket.row_version)
    change = await sla.recompute(uow, updated, event="snapshot")
    emit_ticket_updated(uow, updated, ["customer_snapshot"], sla_policy=policy_of(change))
    return updated
