"""The customer area: CRM_CUSTOMER events into the customer read model and the timeline.

Out-of-order: snapshots carry update_time (older ones are ignored), ownership changes carry
change_time (an older change never overwrites a newer owner), counters are bumped once per event
(the consumer's inbox dedupes redeliveries) and "last ..." times only move forward.
"""

from __future__ import annotations

from datetime import UTC, datetime

from crm.customer.v1 import (
    behavior_events_pb2,
    customer_pb2,
    data_events_pb2,
    events_pb2,
    follow_up_service_pb2,
    pool_events_pb2,
    pool_service_pb2,
    privacy_events_pb2,
)
from crm_reporting.adapters.customer_repository import CustomerRepository
from crm_reporting.service import timeline
from crm_shared.events.envelope import occurred_at

SOURCE = "customer"


def enum_label(enum_type, value: int, prefix: str) -> str:
    """CUSTOMER_TIER_A -> "a"; unspecified/unknown -> ""."""
    try:
        name = enum_type.Name(value)
    except ValueError:
        return ""
    label = name.removeprefix(prefix).lower()
    return "" if label == "unspecified" else label


def _ts(message, field_name: str) -> datetime | None:
    if not message.HasField(field_name):
        return None
    return getattr(message, field_name).ToDatetime(tzinfo=UTC)


def _money(value) -> tuple[str, int]:
    return (value.currency_code, int(value.amount_minor)) if value is not None else ("", 0)


def snapshot_profile(snapshot: events_pb2.CustomerSnapshot) -> dict:
    return {
        "kind": enum_label(customer_pb2.CustomerKind, snapshot.kind, "CUSTOMER_KIND_"),
        # Persons come with an empty display_name already; never keep one for a person.
        "display_name": "" if snapshot.kind == customer_pb2.CUSTOMER_KIND_PERSON else snapshot.display_name,
        "industry": snapshot.industry,
        "source": snapshot.source,
        "tier": enum_label(customer_pb2.CustomerTier, snapshot.tier, "CUSTOMER_TIER_").upper(),
        "lifecycle_stage": enum_label(
            customer_pb2.LifecycleStage, snapshot.lifecycle_stage, "LIFECYCLE_STAGE_"
        ),
        "tags": sorted(snapshot.tags),
        "owner": snapshot.owner,
        "team": snapshot.team,
        "create_time": _ts(snapshot, "create_time"),
    }


async def _snapshot(uow, envelope, snapshot) -> None:
    repo = CustomerRepository(uow.session)
    when = _ts(snapshot, "update_time") or occurred_at(envelope)
    await repo.apply_snapshot(snapshot.name, snapshot_profile(snapshot), when)
    await repo.bump(snapshot.name, event_time=occurred_at(envelope))


async def customer_created(uow, envelope, payload: events_pb2.CustomerCreated) -> None:
    await _snapshot(uow, envelope, payload.customer)
    await timeline.record(
        uow,
        key=f"{envelope.id}:customer_created",
        customer=payload.customer.name,
        time=occurred_at(envelope),
        kind="customer_created",
        resource=payload.customer.name,
        summary=f"Created ({payload.customer.source or 'no source'})",
        actor=envelope.actor.subject,
    )


async def customer_updated(uow, envelope, payload: events_pb2.CustomerUpdated) -> None:
    await _snapshot(uow, envelope, payload.customer)


async def customer_deleted(uow, envelope, payload: events_pb2.CustomerDeleted) -> None:
    repo = CustomerRepository(uow.session)
    await repo.mark_deleted(payload.customer)
    await repo.bump(payload.customer, event_time=occurred_at(envelope))


async def contact_created(uow, envelope, payload: events_pb2.ContactCreated) -> None:
    repo = CustomerRepository(uow.session)
    await repo.contact_created(payload.contact.name, payload.contact.customer, payload.contact.is_primary)
    await repo.bump(payload.contact.customer, event_time=occurred_at(envelope))


async def contact_deleted(uow, envelope, payload: events_pb2.ContactDeleted) -> None:
    repo = CustomerRepository(uow.session)
    await repo.contact_deleted(payload.contact, payload.customer)
    await repo.bump(payload.customer, event_time=occurred_at(envelope))


async def ownership_changed(uow, envelope, payload: pool_events_pb2.OwnershipChanged) -> None:
    repo = CustomerRepository(uow.session)
    when = _ts(payload, "change_time") or occurred_at(envelope)
    await repo.change_owner(payload.customer, payload.to_owner, payload.to_team, when)
    await repo.bump(payload.customer, event_time=occurred_at(envelope))
    reason = enum_label(pool_service_pb2.OwnershipChangeReason, payload.reason, "OWNERSHIP_CHANGE_REASON_")
    await timeline.record(
        uow,
        key=f"{envelope.id}:ownership_changed",
        customer=payload.customer,
        time=when,
        kind="ownership_changed",
        resource=payload.ownership_change or payload.customer,
        summary=f"Owner {payload.from_owner or '-'} -> {payload.to_owner or '-'} ({reason or 'change'})",
        actor=envelope.actor.subject,
    )


async def follow_up_logged(uow, envelope, payload: pool_events_pb2.FollowUpLogged) -> None:
    repo = CustomerRepository(uow.session)
    when = _ts(payload, "follow_up_time") or occurred_at(envelope)
    kind = enum_label(follow_up_service_pb2.FollowUpType, payload.type, "FOLLOW_UP_TYPE_")
    await repo.follow_up_logged(
        payload.follow_up, payload.customer, kind, payload.author, when, _ts(payload, "next_follow_up_time")
    )
    _, next_time = await repo.latest_follow_up(payload.customer)
    await repo.bump(payload.customer, last_follow_up_time=when, event_time=occurred_at(envelope))
    await repo.update(payload.customer, {"next_follow_up_time": next_time})
    await timeline.record(
        uow,
        key=f"{envelope.id}:follow_up",
        customer=payload.customer,
        time=when,
        kind="follow_up",
        resource=payload.follow_up,
        summary=f"Follow-up ({kind or 'other'})",
        actor=payload.author or envelope.actor.subject,
    )


async def purchase_made(uow, envelope, payload: behavior_events_pb2.PurchaseMade) -> None:
    repo = CustomerRepository(uow.session)
    when = _ts(payload, "occur_time") or occurred_at(envelope)
    await repo.bump(
        payload.customer,
        counters={"purchases": 1},
        last_purchase_time=when,
        last_activity_time=when,
        event_time=occurred_at(envelope),
    )
    currency, amount = _money(payload.value)
    await timeline.record(
        uow,
        key=f"{envelope.id}:purchase",
        customer=payload.customer,
        time=when,
        kind="purchase",
        resource=payload.customer,
        summary=f"Purchase of {payload.items_count} item(s)",
        currency=currency,
        amount_minor=amount,
    )


async def cart_abandoned(uow, envelope, payload: behavior_events_pb2.CartAbandoned) -> None:
    repo = CustomerRepository(uow.session)
    when = _ts(payload, "occur_time") or occurred_at(envelope)
    await repo.bump(
        payload.customer,
        counters={"abandoned_carts": 1},
        last_activity_time=when,
        event_time=occurred_at(envelope),
    )
    currency, amount = _money(payload.cart_value)
    await timeline.record(
        uow,
        key=f"{envelope.id}:cart_abandoned",
        customer=payload.customer,
        time=when,
        kind="cart_abandoned",
        resource=payload.customer,
        summary=f"Cart of {payload.items_count} item(s) abandoned",
        currency=currency,
        amount_minor=amount,
    )


async def customer_merged(uow, envelope, payload: data_events_pb2.CustomerMerged) -> None:
    repo = CustomerRepository(uow.session)
    losers = list(payload.losers)
    await repo.merge(payload.survivor, losers)
    await timeline.move_customer(uow.session, losers, payload.survivor)
    await repo.bump(payload.survivor, event_time=occurred_at(envelope))
    await timeline.record(
        uow,
        key=f"{envelope.id}:customer_merged",
        customer=payload.survivor,
        time=occurred_at(envelope),
        kind="customer_merged",
        resource=payload.survivor,
        summary=f"Merged {len(losers)} duplicate(s)",
        actor=envelope.actor.subject,
    )


async def customer_erased(uow, envelope, payload: privacy_events_pb2.CustomerErased) -> None:
    """Nothing personal is projected (no names of persons, no contact points, no notes, timeline
    summaries without free text), so an erasure leaves the non-personal facts in place."""
    await CustomerRepository(uow.session).bump(payload.customer, event_time=occurred_at(envelope))


def register(registry, app) -> None:
    registry.on(SOURCE, events_pb2.CustomerCreated, customer_created)
    registry.on(SOURCE, events_pb2.CustomerUpdated, customer_updated)
    registry.on(SOURCE, events_pb2.CustomerDeleted, customer_deleted)
    registry.on(SOURCE, events_pb2.ContactCreated, contact_created)
    registry.on(SOURCE, events_pb2.ContactDeleted, contact_deleted)
    registry.on(SOURCE, pool_events_pb2.OwnershipChanged, ownership_changed)
    registry.on(SOURCE, pool_events_pb2.FollowUpLogged, follow_up_logged)
    registry.on(SOURCE, behavior_events_pb2.PurchaseMade, purchase_made)
    registry.on(SOURCE, behavior_events_pb2.CartAbandoned, cart_abandoned)
    registry.on(SOURCE, data_events_pb2.CustomerMerged, customer_merged)
    registry.on(SOURCE, privacy_events_pb2.CustomerErased, customer_erased)
