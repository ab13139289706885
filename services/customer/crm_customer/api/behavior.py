"""crm.customer.v1.BehaviorService over gRPC (thin: parse, call a use case, map the result).

IngestBehaviorEvents reads the client stream through the validation interceptor (each
message is checked as it is read) and hands events to the use case a batch at a time;
the next batch is parsed while the previous one is being written.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC

from crm.common.v1 import money_pb2
from crm.customer.v1 import behavior_events_pb2 as pb
from crm.customer.v1 import behavior_service_pb2 as rpc
from crm.customer.v1 import behavior_service_pb2_grpc as rpc_grpc
from crm_customer.adapters.published import timestamp
from crm_customer.api import mappers
from crm_customer.app import CustomerApp
from crm_customer.domain.behavior import EVENT_TYPES, IncomingEvent, Money
from crm_customer.service import behavior
from crm_shared.errors import FieldViolation, InvalidArgument, ResourceExhausted
from crm_shared.principal import current_principal

SERVICE = "crm.customer.v1.BehaviorService"
_SUMMARY_SUFFIX = "/behaviorSummary"


def _properties(event: IncomingEvent, message: pb.BehaviorEvent) -> None:
    """Only the properties given, under short keys: most events carry one or two."""
    if not message.HasField("properties"):
        return
    p = message.properties
    packed: dict = {}
    if p.url:
        packed["u"] = p.url
    if p.product_sku:
        packed["s"] = p.product_sku
    if p.HasField("value"):
        event.value = Money(p.value.currency_code, p.value.amount_minor)
        packed["v"] = [p.value.currency_code, p.value.amount_minor]
    if p.items_count:
        event.items_count = p.items_count
        packed["n"] = p.items_count
    if p.campaign_id:
        event.campaign_id = p.campaign_id
        packed["c"] = p.campaign_id
    if p.order_id:
        event.order_id = p.order_id
        packed["o"] = p.order_id
    if p.referrer:
        packed["r"] = p.referrer
    if p.attributes:
        packed["a"] = dict(p.attributes)
    event.properties = packed or None


def incoming_event(message: pb.BehaviorEvent, index: int) -> IncomingEvent:
    event = IncomingEvent(
        index=index,
        source=message.source,
        event_id=message.event_id,
        type=message.type,
        occur_time=message.occur_time.ToDatetime(tzinfo=UTC),
    )
    subject = message.WhichOneof("subject")
    if subject == "customer":
        event.customer_id = message.customer[len("customers/") :]
    elif subject == "contact":
        event.contact_id = message.contact.rsplit("/", 1)[1]
    elif subject == "email":
        event.email = message.email
    else:
        event.phone = message.phone
    _properties(event, message)
    return event


def _at_index(error: InvalidArgument, index: int, accepted: int) -> InvalidArgument:
    """The validator names fields within one message; the caller needs to know which message."""
    violations = [
        FieldViolation(f"events[{index}].{v.field}" if v.field else f"events[{index}]", v.description)
        for v in error.field_violations
    ]
    first = violations[0] if violations else FieldViolation(f"events[{index}]", error.message)
    return InvalidArgument(
        f"invalid event at index {index}: {first.field}: {first.description}; the events before it "
        f"were processed ({accepted} accepted), re-sending them is safe",
        reason=error.reason,
        metadata={"index": str(index), "accepted": str(accepted)},
        field_violations=violations,
    )


def _unpack_money(currency: str, amount: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount_minor=amount)


def event_to_pb(row) -> pb.BehaviorEvent:
    customer = f"customers/{row.customer_id}"
    message = pb.BehaviorEvent(
        name=f"{customer}/behaviorEvents/{row.seq}",
        event_id=row.event_id,
        source=row.source,
        type=row.type,
        occur_time=timestamp(row.occur_time),
    )
    if row.contact_id:
        message.contact = f"{customer}/contacts/{row.contact_id}"
    else:
        message.customer = customer
    packed = row.properties or {}
    if packed:
        p = message.properties
        p.url = packed.get("u", "")
        p.product_sku = packed.get("s", "")
        if "v" in packed:
            p.value.CopyFrom(_unpack_money(*packed["v"]))
        p.items_count = packed.get("n", 0)
        p.campaign_id = packed.get("c", "")
        p.order_id = packed.get("o", "")
        p.referrer = packed.get("r", "")
        p.attributes.update(packed.get("a", {}))
    return message


def summary_to_pb(summary) -> pb.BehaviorSummary:
    message = pb.BehaviorSummary(
        name=f"customers/{summary.customer_id}{_SUMMARY_SUFFIX}",
        total_events=summary.total_events,
        purchase_count=summary.counts.get(5, 0),
        cart_abandoned_count=summary.counts.get(4, 0),
        purchase_totals=[_unpack_money(c, a) for c, a in summary.purchase_totals],
    )
    if summary.last_activity_time is not None:
        message.last_activity_time.CopyFrom(timestamp(summary.last_activity_time))
    for code in EVENT_TYPES:
        count = summary.counts.get(code, 0)
        if count:
            stats = message.type_stats.add(type=code, count=count)
            last = summary.last_times.get(code)
            if last is not None:
                stats.last_time.CopyFrom(timestamp(last))
    return message


async def _finish(
    ingestion: behavior.Ingestion, writing: asyncio.Task | None, batch: list[IncomingEvent]
) -> None:
    """Wait for the batch in flight, then write the last one; returns the (now empty) in-flight slot."""
    if writing is not None:
        await writing
    await ingestion.write(batch)


class BehaviorServicer(rpc_grpc.BehaviorServiceServicer):
    def __init__(self, app: CustomerApp) -> None:
        self._app = app

    async def IngestBehaviorEvents(
        self, request_iterator: AsyncIterator[pb.BehaviorEvent], context
    ) -> rpc.IngestBehaviorEventsResponse:
        app = self._app
        ingestion = behavior.Ingestion(app.uow_factory, app.deps, current_principal(), now=app.clock.now())
        batch: list[IncomingEvent] = []
        writing: asyncio.Task | None = None
        index = 0
        messages = request_iterator.__aiter__()
        try:
            while True:
                try:
                    message = await messages.__anext__()
                except StopAsyncIteration:
                    break
                except InvalidArgument as error:
                    # Everything before the bad event is written, so the caller can resume from it.
                    writing = await _finish(ingestion, writing, batch)
                    raise _at_index(error, index, ingestion.result.accepted) from None
                try:
                    event = ingestion.prepare(incoming_event(message, index))
                except ResourceExhausted as error:  # the per-stream limit: the same, then say so
                    writing = await _finish(ingestion, writing, batch)
                    error.metadata["accepted"] = str(ingestion.result.accepted)
                    raise
                index += 1
                if event is not None:
                    batch.append(event)
                if len(batch) >= behavior.BATCH_SIZE:
                    if writing is not None:
                        await writing
                    # One batch in flight: it commits while the next one is read and parsed.
                    writing = asyncio.create_task(ingestion.write(batch))
                    batch = []
            writing = await _finish(ingestion, writing, batch)
        finally:
            if writing is not None:
                # Ending early (limit reached, caller gone): let the batch in flight commit or fail alone.
                with contextlib.suppress(Exception):
                    await writing
        result = ingestion.result
        return rpc.IngestBehaviorEventsResponse(
            accepted=result.accepted,
            duplicates=result.duplicates,
            unmatched=result.unmatched,
            rejected=result.rejected,
            issues=[
                rpc.BehaviorEventIssue(
                    index=i.index, event_id=i.event_id, reason=i.reason, field=i.field, rejected=i.rejected
                )
                for i in sorted(result.issues, key=lambda i: i.index)
            ],
        )

    async def GetBehaviorSummary(self, request: rpc.GetBehaviorSummaryRequest, context) -> pb.BehaviorSummary:
        customer_id = mappers.customer_id_from(request.name.removesuffix(_SUMMARY_SUFFIX))
        async with self._app.db.read_session() as session:
            summary = await behavior.get_summary(session, self._app.deps, current_principal(), customer_id)
        return summary_to_pb(summary)

    async def ListBehaviorEvents(
        self, request: rpc.ListBehaviorEventsRequest, context
    ) -> rpc.ListBehaviorEventsResponse:
        customer_id = mappers.customer_id_from(request.parent, field="parent")
        async with self._app.db.read_session() as session:
            page = await behavior.list_events(
                session,
                self._app.deps,
                current_principal(),
                customer_id,
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
            )
        return rpc.ListBehaviorEventsResponse(
            behavior_events=[event_to_pb(row) for row in page.rows], next_page_token=page.next_page_token
        )
