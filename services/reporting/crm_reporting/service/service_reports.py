"""GetServiceReport and the SERVICE export: per agent (or team) stats within the caller's scope.

A support agent's grant is "own" (their assigned tickets), so they see only their own row.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm.reporting.v1 import export_service_pb2
from crm.reporting.v1 import service_report_service_pb2 as pb
from crm_reporting.adapters import service_queries as q
from crm_reporting.domain import service_metrics as rules
from crm_reporting.service.report_scope import report_scope
from crm_shared.errors import InvalidArgument

RESOURCE = "service_reports"

EXPORT_GROUPINGS = {
    "": pb.SERVICE_GROUPING_AGENT,
    "SERVICE_GROUPING_UNSPECIFIED": pb.SERVICE_GROUPING_AGENT,
    "SERVICE_GROUPING_AGENT": pb.SERVICE_GROUPING_AGENT,
    "SERVICE_GROUPING_TEAM": pb.SERVICE_GROUPING_TEAM,
}

EXPORT_HEADER = [
    "key",
    "tickets_created",
    "tickets_resolved",
    "backlog",
    "first_response_sla_met_bp",
    "resolution_sla_met_bp",
    "sla_breaches",
    "average_first_response_seconds",
    "median_first_response_seconds",
    "average_resolution_seconds",
    "csat_responses",
    "csat_average",
    "csat_satisfied_bp",
    "first_contact_resolution_bp",
]


@dataclass(frozen=True)
class ServiceReport:
    total: rules.ServiceStats
    rows: list[tuple[str, rules.ServiceStats]]


async def service_report(session, deps, principal, query_pb, *, group_by: int) -> ServiceReport:
    scope = report_scope(deps, principal, RESOURCE, query_pb)
    tickets = await q.ticket_facts(session, scope)
    breaches = await q.breach_facts(session, scope)
    answers = await q.csat_facts(session, scope)
    by_team = group_by == pb.SERVICE_GROUPING_TEAM
    return ServiceReport(
        total=rules.compute_stats(tickets, breaches, answers, start=scope.start, end=scope.end),
        rows=rules.grouped_stats(
            tickets, breaches, answers, by_team=by_team, start=scope.start, end=scope.end
        ),
    )


def stats_row(key: str, s: rules.ServiceStats) -> list:
    return [
        key,
        s.tickets_created,
        s.tickets_resolved,
        s.backlog,
        s.first_response_sla_met_bp,
        s.resolution_sla_met_bp,
        s.sla_breaches,
        round(s.average_first_response_seconds, 3),
        round(s.median_first_response_seconds, 3),
        round(s.average_resolution_seconds, 3),
        s.csat_responses,
        round(s.csat_average, 4),
        s.csat_satisfied_bp,
        s.first_contact_resolution_bp,
    ]


async def export_rows(
    session, deps, principal, kind: int, query_pb, group_by: str
) -> tuple[list[str], list[list]]:
    """(header, rows) of REPORT_KIND_SERVICE: one row per agent/team (ServiceGrouping value name),
    then a "TOTAL" row."""
    if kind != export_service_pb2.REPORT_KIND_SERVICE:
        raise InvalidArgument.for_field("kind", "not a service report")
    grouping = EXPORT_GROUPINGS.get(group_by)
    if grouping is None:
        raise InvalidArgument.for_field(
            "group_by", f"must be one of {', '.join(k for k in EXPORT_GROUPINGS if k)}"
        )
    report = await service_report(session, deps, principal, query_pb, group_by=grouping)
    rows = [stats_row(key, stats) for key, stats in report.rows]
    rows.append(stats_row("TOTAL", report.total))
    return EXPORT_HEADER, rows
