"""Service desk metrics (pure): what the service report counts, from projected ticket facts.

Cohorts (all bounded by the report period [start, end), open ends match everything):
- created: tickets whose create_time is in the period;
- resolved, mean resolution: tickets whose resolve_time is in the period (wall-clock seconds);
- backlog: tickets open now (new, open, pending) — not bounded by the period;
- SLA met shares: tickets created in the period under an SLA policy whose target was decided
  (first response given or breached; resolved or breached): met = not breached;
- breaches: breach records whose breach_time is in the period;
- first response mean/median: business seconds of tickets created in the period that got one;
- CSAT: answers whose answer_time is in the period; satisfied = score 4 or 5;
  first-contact resolution = share of those answers flagged first_contact_resolution.
Shares are basis points rounded half up; no responses → 0.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

# crm.servicedesk.v1.TicketStatus
STATUS_NEW, STATUS_OPEN, STATUS_PENDING, STATUS_RESOLVED, STATUS_CLOSED = 1, 2, 3, 4, 5
OPEN_STATUSES = frozenset({STATUS_NEW, STATUS_OPEN, STATUS_PENDING})
DONE_STATUSES = frozenset({STATUS_RESOLVED, STATUS_CLOSED})
# crm.servicedesk.v1.SlaMetric
METRIC_FIRST_RESPONSE, METRIC_NEXT_RESPONSE, METRIC_RESOLUTION = 1, 2, 3


@dataclass(frozen=True)
class TicketFact:
    ticket: str
    assignee: str
    team: str
    status: int
    sla_policy: str
    create_time: datetime | None
    first_response_time: datetime | None
    resolve_time: datetime | None
    first_response_business_seconds: float | None
    first_response_breached: bool
    resolution_breached: bool


@dataclass(frozen=True)
class BreachFact:
    assignee: str
    team: str
    breach_time: datetime


@dataclass(frozen=True)
class CsatFact:
    assignee: str
    team: str
    score: int
    first_contact_resolution: bool
    answer_time: datetime


@dataclass(frozen=True)
class ServiceStats:
    tickets_created: int = 0
    tickets_resolved: int = 0
    backlog: int = 0
    first_response_sla_met_bp: int = 0
    resolution_sla_met_bp: int = 0
    sla_breaches: int = 0
    average_first_response_seconds: float = 0.0
    median_first_response_seconds: float = 0.0
    average_resolution_seconds: float = 0.0
    csat_responses: int = 0
    csat_average: float = 0.0
    csat_satisfied_bp: int = 0
    first_contact_resolution_bp: int = 0


def share_bp(part: int, whole: int) -> int:
    """part/whole in basis points, rounded half up; 0 when whole is 0."""
    if whole <= 0:
        return 0
    return (part * 20000 + whole) // (2 * whole)


def in_period(when: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    if when is None:
        return False
    if start is not None and when < start:
        return False
    return not (end is not None and when >= end)


def compute_stats(
    tickets: Iterable[TicketFact],
    breaches: Iterable[BreachFact],
    answers: Iterable[CsatFact],
    *,
    start: datetime | None,
    end: datetime | None,
) -> ServiceStats:
    created = resolved = backlog = 0
    fr_decided = fr_met = res_decided = res_met = 0
    first_responses: list[float] = []
    resolutions: list[float] = []
    for t in tickets:
        if t.status in OPEN_STATUSES:
            backlog += 1
        if t.resolve_time is not None and t.status in DONE_STATUSES and in_period(t.resolve_time, start, end):
            resolved += 1
            if t.create_time is not None:
                resolutions.append((t.resolve_time - t.create_time).total_seconds())
        if not in_period(t.create_time, start, end):
            continue
        created += 1
        if t.first_response_business_seconds is not None:
            first_responses.append(float(t.first_response_business_seconds))
        if t.sla_policy:
            if t.first_response_time is not None or t.first_response_breached:
                fr_decided += 1
                fr_met += 0 if t.first_response_breached else 1
            if t.resolve_time is not None or t.resolution_breached:
                res_decided += 1
                res_met += 0 if t.resolution_breached else 1
    breach_count = sum(1 for b in breaches if in_period(b.breach_time, start, end))
    scores = [a for a in answers if in_period(a.answer_time, start, end)]
    return ServiceStats(
        tickets_created=created,
        tickets_resolved=resolved,
        backlog=backlog,
        first_response_sla_met_bp=share_bp(fr_met, fr_decided),
        resolution_sla_met_bp=share_bp(res_met, res_decided),
        sla_breaches=breach_count,
        average_first_response_seconds=statistics.fmean(first_responses) if first_responses else 0.0,
        median_first_response_seconds=float(statistics.median(first_responses)) if first_responses else 0.0,
        average_resolution_seconds=statistics.fmean(resolutions) if resolutions else 0.0,
        csat_responses=len(scores),
        csat_average=statistics.fmean(a.score for a in scores) if scores else 0.0,
        csat_satisfied_bp=share_bp(sum(1 for a in scores if a.score >= 4), len(scores)),
        first_contact_resolution_bp=share_bp(
            sum(1 for a in scores if a.first_contact_resolution), len(scores)
        ),
    )


def group_key(assignee: str, team: str, *, by_team: bool) -> str:
    return team if by_team else assignee


def grouped_stats(
    tickets: list[TicketFact],
    breaches: list[BreachFact],
    answers: list[CsatFact],
    *,
    by_team: bool,
    start: datetime | None,
    end: datetime | None,
) -> list[tuple[str, ServiceStats]]:
    """One row per agent (or team) that has any fact, sorted by key."""
    keys = sorted(
        {group_key(t.assignee, t.team, by_team=by_team) for t in tickets}
        | {group_key(b.assignee, b.team, by_team=by_team) for b in breaches}
        | {group_key(a.assignee, a.team, by_team=by_team) for a in answers}
    )
    rows = []
    for key in keys:
        stats = compute_stats(
            [t for t in tickets if group_key(t.assignee, t.team, by_team=by_team) == key],
            [b for b in breaches if group_key(b.assignee, b.team, by_team=by_team) == key],
            [a for a in answers if group_key(a.assignee, a.team, by_team=by_team) == key],
            start=start,
            end=end,
        )
        if stats != ServiceStats():
            rows.append((key, stats))
    return rows
