"""Agenda read model <-> crm.reporting.v1 messages."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import money_pb2
from crm.reporting.v1 import agenda_service_pb2 as rpc
from crm_reporting.domain.agenda import Item


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def item_to_pb(item: Item, *, user: str) -> rpc.AgendaItem:
    message = rpc.AgendaItem(
        id=item.id,
        kind=item.kind,
        resource=item.resource,
        title=item.title,
        overdue=item.overdue,
        customer=item.customer,
        user=item.user or user,
    )
    if item.due_time is not None:
        message.due_time.CopyFrom(_timestamp(item.due_time))
    message.create_time.CopyFrom(_timestamp(item.create_time))
    if item.currency:
        message.amount.CopyFrom(money_pb2.Money(currency_code=item.currency, amount_minor=item.amount_minor))
    return message


def until_of(request: rpc.GetAgendaRequest) -> datetime | None:
    return request.until.ToDatetime(tzinfo=UTC) if request.HasField("until") else None


def agenda_to_pb(view) -> rpc.Agenda:
    agenda = rpc.Agenda(user=view.user, items=[item_to_pb(i, user=view.user) for i in view.items])
    if view.as_of is not None:
        agenda.as_of.CopyFrom(_timestamp(view.as_of))
    return agenda
