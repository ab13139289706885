"""The SLA events (SlaWarning, SlaBreached, TicketEscalated) and the enum mappings they use."""

from __future__ import annotations

from datetime import datetime

from crm.servicedesk.v1 import common_pb2, events_pb2
from crm_servicedesk.domain.sla import EscalationKind, SlaMetric
from crm_servicedesk.domain.tickets import Ticket
from crm_servicedesk.service.ticket_events import snapshot, timestamp

SUBJECT_WARNING = "crm.servicedesk.sla.warning"
SUBJECT_BREACHED = "crm.servicedesk.sla.breached"
SUBJECT_ESCALATED = "crm.servicedesk.ticket.escalated"

METRIC_TO_PB = {m: common_pb2.SlaMetric.Value(f"SLA_METRIC_{m.name}") for m in SlaMetric}
METRIC_FROM_PB = {value: metric for metric, value in METRIC_TO_PB.items()}
KIND_TO_PB = {k: common_pb2.EscalationKind.Value(f"ESCALATION_KIND_{k.name}") for k in EscalationKind}
KIND_FROM_PB = {value: kind for kind, value in KIND_TO_PB.items()}


def emit_warning(uow, ticket: Ticket, *, policy: str, metric: SlaMetric, due_time: datetime) -> None:
    uow.emit(
        SUBJECT_WARNING,
        events_pb2.SlaWarning(
            ticket=snapshot(ticket, sla_policy=policy),
            metric=METRIC_TO_PB[metric],
            due_time=timestamp(due_time),
        ),
        resource=ticket.name,
    )
    uow.audit("sla_warning", ticket.name, [metric.value])


def emit_breached(
    uow, ticket: Ticket, *, policy: str, metric: SlaMetric, due_time: datetime, breach_time: datetime
) -> None:
    uow.emit(
        SUBJECT_BREACHED,
        events_pb2.SlaBreached(
            ticket=snapshot(ticket, sla_policy=policy),
            metric=METRIC_TO_PB[metric],
            due_time=timestamp(due_time),
            breach_time=timestamp(breach_time),
        ),
        resource=ticket.name,
    )
    uow.audit("sla_breached", ticket.name, [metric.value])


def emit_escalated(
    uow, ticket: Ticket, *, policy: str, metric: SlaMetric, actions: list[EscalationKind], notify: list[str]
) -> None:
    uow.emit(
        SUBJECT_ESCALATED,
        events_pb2.TicketEscalated(
            ticket=snapshot(ticket, sla_policy=policy),
            metric=METRIC_TO_PB[metric],
            actions=[KIND_TO_PB[kind] for kind in actions],
            notify=notify,
        ),
        resource=ticket.name,
    )
    uow.audit("escalated", ticket.name, [kind.value for kind in actions])
