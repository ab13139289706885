"""Use cases for behaviour events: ingest a stream in batches, read summaries and events.

Ingestion: each event is normalized (email lower-case, phone E.164) and matched to a
customer by name, by contact name, or through the blind index of its email/phone
(customers' own contact points first, then contacts'). A batch is one transaction:
the events (INSERT .. ON CONFLICT DO NOTHING on (source, event_id), so a re-sent
event is a duplicate, never counted twice), the summary counters, the outbox events
(CartAbandoned, PurchaseMade) and any lifecycle move (domain.lifecycle.after_purchase,
announced as CustomerUpdated with changed_fields=["lifecycle_stage"]) commit together.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm.common.v1 import money_pb2
from crm.customer.v1 import behavior_events_pb2 as behavior_pb
from crm.customer.v1 import events_pb2 as events_pb
from crm_customer.adapters import published
from crm_customer.adapters.behavior_repository import BehaviorRepository, PurchaseStanding, SummaryRow
from crm_customer.adapters.behavior_tables import behavior_events
from crm_customer.adapters.repository import CustomerRepository
from crm_customer.adapters.tables import customers
from crm_customer.domain import lifecycle
from crm_customer.domain.behavior import (
    CART_ABANDONED,
    EVENT_TYPES,
    PURCHASE,
    EventIssue,
    IncomingEvent,
    in_the_future,
)
from crm_customer.domain.model import CustomerStatus, LifecycleStage
from crm_customer.service.customers import CustomerDeps, not_found
from crm_shared.access import ScopeGrant
from crm_shared.aip.filtering import FilterField, FilterSchema
from crm_shared.aip.paging import clamp_page_size, query_fingerprint
from crm_shared.errors import ResourceExhausted
from crm_shared.pii.normalize import NormalizationError, normalize_email, normalize_phone
from crm_shared.principal import Principal

RESOURCE = "behavior_events"
SUBJECT_CART_ABANDONED = "crm.customer.behavior.cart_abandoned"
SUBJECT_PURCHASE = "crm.customer.behavior.purchase"

BATCH_SIZE = 500  # events per transaction
MAX_EVENTS_PER_STREAM = 1_000_000
MAX_ISSUES = 100  # unmatched/rejected events listed in the response (all are counted)

TYPE_FILTER_VALUES = {behavior_pb.BehaviorEventType.Name(code): code for code in EVENT_TYPES}


# Parsing an email or phone costs ~100 µs; the same few recur throughout a stream (one shopper,
# many events). Refusals raise and are not cached.
_normalized_email = functools.lru_cache(maxsize=20_000)(normalize_email)
_normalized_phone = functools.lru_cache(maxsize=20_000)(normalize_phone)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    unmatched: int = 0
    rejected: int = 0
    issues: list[EventIssue] = field(default_factory=list)

    def report(self, issue: EventIssue) -> None:
        if issue.rejected:
            self.rejected += 1
        else:
            self.unmatched += 1
        # Keep the MAX_ISSUES lowest indexes (batches may report out of order); issues are rare.
        self.issues.append(issue)
        if len(self.issues) > MAX_ISSUES:
            self.issues.sort(key=lambda i: i.index)
            del self.issues[MAX_ISSUES:]


@dataclass
class BatchOutcome:
    accepted: int = 0
    duplicates: int = 0
    issues: list[EventIssue] = field(default_factory=list)


class Ingestion:
    """One stream: prepares events as they arrive and writes them a batch per transaction."""

    def __init__(self, uow_factory, deps: CustomerDeps, principal: Principal, *, now: datetime) -> None:
        self._uow = uow_factory
        self._deps = deps
        self._grant = deps.policy.grant(principal, RESOURCE, "create")
        self._now = now
        self.received = 0
        self.result = IngestResult()

    def prepare(self, event: IncomingEvent) -> IncomingEvent | None:
        """Normalize one event; None (and a rejection on the result) when its content is refused."""
        self.received += 1
        if self.received > MAX_EVENTS_PER_STREAM:
            raise ResourceExhausted(
                f"at most {MAX_EVENTS_PER_STREAM} events per stream; the first {MAX_EVENTS_PER_STREAM} "
                "were processed (ErrorInfo metadata 'accepted' says how many were stored), "
                "send the rest on a new stream",
                reason="TOO_MANY_EVENTS_IN_STREAM",
                metadata={"limit": str(MAX_EVENTS_PER_STREAM)},
            )
        try:
            if event.email:
                event.email = _normalized_email(event.email)
            elif event.phone:
                event.phone = _normalized_phone(event.phone, self._deps.phone_region)
        except NormalizationError:
            kind = "email" if event.email else "phone"
            self.result.report(EventIssue(event.index, event.event_id, f"INVALID_{kind.upper()}", kind, True))
            return None
        if in_the_future(event.occur_time, self._now):
            self.result.report(
                EventIssue(event.index, event.event_id, "OCCUR_TIME_IN_FUTURE", "occur_time", True)
            )
            return None
        return event

    async def write(self, batch: list[IncomingEvent]) -> None:
        if not batch:
            return
        async with self._uow() as uow:
            outcome = await ingest_batch(uow, self._deps, self._grant, batch)
            await uow.commit()
        # Counted only once committed: a failed batch leaves the tally as it was.
        self.result.accepted += outcome.accepted
        self.result.duplicates += outcome.duplicates
        for issue in outcome.issues:
            self.result.report(issue)


def _unmatched(event: IncomingEvent) -> EventIssue:
    field_name = next(
        name for name in ("customer", "contact", "email", "phone") if getattr(event, _SUBJECT_ATTR[name])
    )
    return EventIssue(event.index, event.event_id, f"UNMATCHED_{field_name.upper()}", field_name)


_SUBJECT_ATTR = {"customer": "customer_id", "contact": "contact_id", "email": "email", "phone": "phone"}


async def _resolve_subjects(
    repo: BehaviorRepository, batch: list[IncomingEvent]
) -> tuple[list[tuple[IncomingEvent, str, str]], list[EventIssue]]:
    """Each event's candidate (customer_id, contact_id), from a few IN-list queries per batch."""
    contact_refs = await repo.contacts_by_id([e.contact_id for e in batch if e.contact_id])
    values = {"email": [e.email for e in batch if e.email], "phone": [e.phone for e in batch if e.phone]}
    # Customers' own emails/phones first; contacts' only for what they did not match.
    by_customer = {
        kind: await repo.customers_by_identifier(kind, found) if found else {}
        for kind, found in values.items()
    }
    by_contact = {}
    for kind, found in values.items():
        rest = [v for v in found if v not in by_customer[kind]]
        by_contact[kind] = await repo.contacts_by_identifier(kind, rest) if rest else {}

    resolved: list[tuple[IncomingEvent, str, str]] = []
    issues: list[EventIssue] = []
    for event in batch:
        if event.customer_id:
            resolved.append((event, event.customer_id, ""))
        elif event.contact_id:
            parent = contact_refs.get(event.contact_id)
            if parent is None:
                issues.append(_unmatched(event))
            else:
                resolved.append((event, parent, event.contact_id))
        else:
            kind, value = ("email", event.email) if event.email else ("phone", event.phone)
            customer_id = by_customer[kind].get(value)
            candidates = by_contact[kind].get(value, [])
            owners = {customer for _, customer in candidates}
            if customer_id:
                resolved.append((event, customer_id, ""))
            elif len(candidates) == 1:
                resolved.append((event, candidates[0][1], candidates[0][0]))
            elif len(owners) == 1:  # several contacts of one customer share it: the customer is certain
                resolved.append((event, owners.pop(), ""))
            elif candidates:
                issues.append(EventIssue(event.index, event.event_id, f"AMBIGUOUS_{kind.upper()}", kind))
            else:
                issues.append(_unmatched(event))
    return resolved, issues


async def _match(
    repo: BehaviorRepository, customer_repo: CustomerRepository, grant: ScopeGrant, batch: list[IncomingEvent]
) -> tuple[list[IncomingEvent], list[EventIssue]]:
    """Events whose customer exists, is in scope and not erased (a merged one leads to its survivor)."""
    resolved, issues = await _resolve_subjects(repo, batch)
    visible = customer_repo.visible(grant)
    refs = await repo.customers_by_id([customer for _, customer, _ in resolved], visible)
    survivors = [r.merged_into for r in refs.values() if r.status == CustomerStatus.MERGED and r.merged_into]
    if survivors:
        refs.update(await repo.customers_by_id([s for s in survivors if s not in refs], visible))
    matched: list[IncomingEvent] = []
    for event, customer_id, contact_id in resolved:
        ref = refs.get(customer_id)
        if ref is not None and ref.status == CustomerStatus.MERGED:
            ref = refs.get(ref.merged_into)
        if ref is None or ref.status in (CustomerStatus.MERGED, CustomerStatus.ERASED):
            issues.append(_unmatched(event))
            continue
        event.customer_id, event.contact_id = ref.id, contact_id
        matched.append(event)
    return matched, issues


def _row(event: IncomingEvent) -> dict[str, Any]:
    return {
        "source": event.source,
        "event_id": event.event_id,
        "customer_id": event.customer_id,
        "contact_id": event.contact_id or None,
        "type": event.type,
        "occur_time": event.occur_time,
        "properties": event.properties,
    }


def _summary_rows(events: list[IncomingEvent]) -> list[dict[str, Any]]:
    empty = {"total_events": 0, "last_activity_time": None}
    for name in EVENT_TYPES.values():
        empty[f"n_{name}"] = 0
        empty[f"last_{name}"] = None
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        row = rows.get(event.customer_id)
        if row is None:
            row = rows[event.customer_id] = {**empty, "customer_id": event.customer_id}
        name = EVENT_TYPES[event.type]
        row["total_events"] += 1
        row[f"n_{name}"] += 1
        moment = event.occur_time
        if row[f"last_{name}"] is None or moment > row[f"last_{name}"]:
            row[f"last_{name}"] = moment
        if row["last_activity_time"] is None or moment > row["last_activity_time"]:
            row["last_activity_time"] = moment
    return list(rows.values())


def _money(value) -> money_pb2.Money | None:
    return (
        None
        if value is None
        else money_pb2.Money(currency_code=value.currency_code, amount_minor=value.amount_minor)
    )


async def ingest_batch(
    uow, deps: CustomerDeps, grant: ScopeGrant, batch: list[IncomingEvent]
) -> BatchOutcome:
    repo = BehaviorRepository(uow.session, deps.codec)
    customer_repo = CustomerRepository(uow.session, deps.codec)
    matched, issues = await _match(repo, customer_repo, grant, batch)
    outcome = BatchOutcome(issues=issues)

    # The same event twice in one batch: the first one counts.
    unique: dict[tuple[str, str], IncomingEvent] = {}
    for event in matched:
        unique.setdefault((event.source, event.event_id), event)
    inserted_keys = await repo.insert_new([_row(e) for e in unique.values()])
    stored = [e for key, e in unique.items() if key in inserted_keys]
    outcome.accepted = len(stored)
    outcome.duplicates = len(matched) - len(stored)
    if not stored:
        return outcome

    await repo.bump_summaries(_summary_rows(stored))
    totals: dict[tuple[str, str], int] = defaultdict(int)
    purchases: dict[str, list[IncomingEvent]] = defaultdict(list)
    for event in stored:
        if event.type == PURCHASE:
            purchases[event.customer_id].append(event)
            if event.value is not None:
                totals[(event.customer_id, event.value.currency_code)] += event.value.amount_minor
    await repo.bump_purchase_totals(
        [
            {"customer_id": c, "currency_code": cur, "amount_minor": amount}
            for (c, cur), amount in totals.items()
        ]
    )
    standing = await repo.purchase_standing(list(purchases)) if purchases else {}
    running = {c: standing[c].purchases - len(events) for c, events in purchases.items() if c in standing}

    for event in stored:
        customer_name = f"customers/{event.customer_id}"
        contact_name = f"{customer_name}/contacts/{event.contact_id}" if event.contact_id else ""
        occurred = published.timestamp(event.occur_time)
        if event.type == CART_ABANDONED:
            uow.emit(
                SUBJECT_CART_ABANDONED,
                behavior_pb.CartAbandoned(
                    customer=customer_name,
                    contact=contact_name,
                    cart_value=_money(event.value),
                    items_count=event.items_count,
                    occur_time=occurred,
                    source=event.source,
                    event_id=event.event_id,
                    campaign_id=event.campaign_id,
                ),
                resource=customer_name,
            )
        elif event.type == PURCHASE:
            running[event.customer_id] += 1
            uow.emit(
                SUBJECT_PURCHASE,
                behavior_pb.PurchaseMade(
                    customer=customer_name,
                    contact=contact_name,
                    value=_money(event.value),
                    items_count=event.items_count,
                    occur_time=occurred,
                    source=event.source,
                    event_id=event.event_id,
                    order_id=event.order_id,
                    purchase_count=running[event.customer_id],
                ),
                resource=customer_name,
            )
    if standing:
        await _move_lifecycle(uow, repo, customer_repo, standing)
    return outcome


async def _move_lifecycle(
    uow, repo: BehaviorRepository, customer_repo: CustomerRepository, standing: dict[str, PurchaseStanding]
) -> None:
    """Apply lifecycle.after_purchase to every customer that purchased in this batch."""
    for customer_id in sorted(standing):
        now_at = standing[customer_id]
        stage = LifecycleStage(now_at.lifecycle_stage)
        new_stage = lifecycle.after_purchase(stage, now_at.purchases)
        if new_stage == stage:
            continue
        if not await repo.set_lifecycle_stage(
            customer_id, new_stage.value, expected_version=now_at.version, now=uow.now
        ):
            continue  # changed concurrently (PostgreSQL); the next purchase re-applies the rule
        customer = await customer_repo.get(customer_id)
        if customer is None:
            continue
        uow.emit(
            published.SUBJECT_CUSTOMER_UPDATED,
            events_pb.CustomerUpdated(
                customer=published.customer_snapshot(customer), changed_fields=["lifecycle_stage"]
            ),
            resource=customer.name,
        )
        uow.audit("updated", customer.name, ["lifecycle_stage"])


async def move_behavior(uow, deps: CustomerDeps, from_customer_id: str, to_customer_id: str) -> None:
    """For a merge (inside its unit of work): the loser's events and summary go to the survivor."""
    await BehaviorRepository(uow.session, deps.codec).move_events(from_customer_id, to_customer_id)


# --- reads -------------------------------------------------------------------------------------------


async def _visible_customer(
    session: AsyncSession, deps: CustomerDeps, principal: Principal, customer_id: str
):
    grant = deps.policy.grant(principal, RESOURCE, "read")
    visible = CustomerRepository(session, deps.codec).visible(grant)
    found = (
        await session.execute(sa.select(customers.c.id).where(customers.c.id == customer_id, visible))
    ).first()
    if found is None:
        raise not_found(f"customers/{customer_id}")


async def get_summary(
    session: AsyncSession, deps: CustomerDeps, principal: Principal, customer_id: str
) -> SummaryRow:
    await _visible_customer(session, deps, principal, customer_id)
    summary = await BehaviorRepository(session, deps.codec).summary(customer_id)
    if summary is None:  # no events yet: an empty summary, not an error
        return SummaryRow(customer_id, 0, None, dict.fromkeys(EVENT_TYPES, 0), dict.fromkeys(EVENT_TYPES), [])
    return summary


@dataclass(frozen=True)
class EventPage:
    rows: list[sa.Row]
    next_page_token: str


def _event_filter_schema() -> FilterSchema:
    c = behavior_events.c
    return FilterSchema(
        {
            "type": FilterField.enum(c.type, TYPE_FILTER_VALUES),
            "occur_time": FilterField.timestamp(c.occur_time),
            "source": FilterField.string(c.source),
        }
    )


async def list_events(
    session: AsyncSession,
    deps: CustomerDeps,
    principal: Principal,
    customer_id: str,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
) -> EventPage:
    await _visible_customer(session, deps, principal, customer_id)
    limit = clamp_page_size(page_size)
    where = _event_filter_schema().compile(filter_text)
    query = query_fingerprint("behavior_events", customer_id, filter_text.strip(), principal.subject)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    rows = await BehaviorRepository(session, deps.codec).list_events(
        customer_id, where=where, after=after, limit=limit + 1
    )
    page = rows[:limit]
    token = (
        deps.page_tokens.encode([page[-1].occur_time, page[-1].seq], query=query) if len(rows) > limit else ""
    )
    return EventPage(page, token)
