"""Prometheus counters of SLA warnings and breaches, counted when the transaction that records one commits.

A breach (or warning) is counted once: the timer handler only reaches it while the clock is
not yet breached, so a redelivered timer adds nothing; and the increment waits for COMMIT, so
a handler or commit that fails (the timer is retried later) does not count a breach that
never happened. Labels: the SLA metric (first_response, next_response, resolution) and the
ticket's priority at that moment, both small fixed sets.

Created on first use, not at import, like crm_shared.observability.metrics.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter
from sqlalchemy import event

from crm_servicedesk.domain.sla import SlaMetric
from crm_servicedesk.domain.tickets import Ticket


@dataclass(frozen=True)
class SlaCounters:
    breaches: Counter
    warnings: Counter


@functools.cache
def sla_counters(registry: CollectorRegistry = REGISTRY) -> SlaCounters:
    labels = ["metric", "priority"]
    return SlaCounters(
        breaches=Counter(
            "crm_sla_breaches", "SLA targets breached (once per clock cycle)", labels, registry=registry
        ),
        warnings=Counter(
            "crm_sla_warnings", "SLA warnings raised (once per clock cycle)", labels, registry=registry
        ),
    )


def _count_on_commit(uow, counter: Counter, ticket: Ticket, metric: SlaMetric) -> None:
    child = counter.labels(metric.value, ticket.priority.value)
    # A listener on this unit of work's own session: it goes away with the session.
    event.listen(uow.session.sync_session, "after_commit", lambda _session: child.inc(), once=True)


def count_breach_on_commit(uow, ticket: Ticket, metric: SlaMetric) -> None:
    _count_on_commit(uow, sla_counters().breaches, ticket, metric)


def count_warning_on_commit(uow, ticket: Ticket, metric: SlaMetric) -> None:
    _count_on_commit(uow, sla_counters().warnings, ticket, metric)
