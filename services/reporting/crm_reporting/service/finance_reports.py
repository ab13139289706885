"""Finance reports from the contract area's read models: receivables aging, collection rate and
the overdue list (GetReceivablesReport), and their CSV exports.

- Aging: what is unpaid as of `as_of` on signed contracts (ACTIVE, EXPIRED, TERMINATED), per group
  (owner, team or customer) and currency, bucketed by whole UTC days past due (current, 1-30,
  31-60, 61-90, over 90). Paid = confirmed payments received by as_of. A contract without a plan
  counts its unpaid amount as current. The query's period does not narrow the aging (as_of does).
- Collection: installments due in the query's period (no end: due by as_of); collected = what was
  paid on them by the end of the period (its last day), or by as_of if earlier; rate in basis points.
- Overdue: unpaid installments due before as_of, most overdue first, up to the limit.
Data scope: the caller's grant on finance_reports narrowed by the query's team/owner, applied to
the contract's owner/team.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, timedelta

from crm.reporting.v1 import export_service_pb2
from crm_reporting.adapters import contract_queries as queries
from crm_reporting.adapters.contract_tables import report_contracts as contracts
from crm_reporting.domain.finance import Aging, AgingBucket, collection_rate_bp, day_bounds
from crm_reporting.service.report_scope import report_scope
from crm_shared.errors import InvalidArgument

RESOURCE = "finance_reports"
GROUPINGS = ("owner", "team", "customer")
DEFAULT_OVERDUE_LIMIT = 100
MAX_OVERDUE_LIMIT = 1000


@dataclass(frozen=True)
class AgingLine:
    key: str
    currency: str
    buckets: dict[AgingBucket, int]

    @property
    def total(self) -> int:
        return sum(self.buckets.values())


@dataclass(frozen=True)
class CollectionLine:
    currency: str
    due: int
    collected: int

    @property
    def rate_bp(self) -> int:
        return collection_rate_bp(self.collected, self.due)


@dataclass(frozen=True)
class OverdueLine:
    installment: str
    contract: str
    customer: str
    owner: str
    due_date: date
    currency: str
    outstanding: int
    days_overdue: int


@dataclass(frozen=True)
class ReceivablesResult:
    aging: list[AgingLine]
    collection: list[CollectionLine]
    overdue: list[OverdueLine]
    as_of: date


def _today(deps) -> date:
    return deps.clock.now().astimezone(UTC).date()


async def receivables_report(
    session,
    deps,
    principal,
    query_pb,
    *,
    as_of: date | None = None,
    group_by: str = "owner",
    overdue_limit: int | None = None,
) -> ReceivablesResult:
    if group_by not in GROUPINGS:
        raise InvalidArgument.for_field("group_by", f"must be one of {', '.join(GROUPINGS)}")
    limit = overdue_limit or DEFAULT_OVERDUE_LIMIT
    if limit < 0 or limit > MAX_OVERDUE_LIMIT:
        raise InvalidArgument.for_field("overdue_limit", f"must be between 0 and {MAX_OVERDUE_LIMIT}")
    scope = report_scope(deps, principal, RESOURCE, query_pb)
    as_of = as_of or _today(deps)
    predicate = scope.predicate(contracts.c.owner, contracts.c.team)

    positions = await queries.installment_positions(session, predicate, paid_until=as_of)
    unplanned = await queries.unplanned_positions(session, predicate, paid_until=as_of)

    # Aging.
    groups: dict[tuple[str, str], Aging] = defaultdict(Aging)
    for p in positions:
        if p.outstanding:
            groups[(getattr(p, group_by), p.currency)].add(p.due_date, p.outstanding, as_of)
    for u in unplanned:
        if u.outstanding:
            groups[(getattr(u, group_by), u.currency)].buckets[AgingBucket.CURRENT] += u.outstanding
    aging = [
        AgingLine(key=key, currency=currency, buckets=dict(a.buckets))
        for (key, currency), a in sorted(groups.items())
        if a.total
    ]

    # Collection.
    first, after_last = day_bounds(scope.start, scope.end)
    due_before = after_last if after_last is not None else as_of + timedelta(days=1)
    cutoff = min(due_before - timedelta(days=1), as_of)
    paid_then = (
        positions
        if cutoff == as_of
        else await queries.installment_positions(session, predicate, paid_until=cutoff)
    )
    due: dict[str, int] = defaultdict(int)
    collected: dict[str, int] = defaultdict(int)
    for p in paid_then:
        if (first is None or p.due_date >= first) and p.due_date < due_before:
            due[p.currency] += p.amount
            collected[p.currency] += min(p.paid, p.amount)
    collection = [CollectionLine(currency=c, due=due[c], collected=collected[c]) for c in sorted(due)]

    # Overdue list.
    late = sorted(
        (p for p in positions if p.outstanding and p.due_date < as_of),
        key=lambda p: (p.due_date, p.name),
    )
    overdue = [
        OverdueLine(
            installment=p.name,
            contract=p.contract,
            customer=p.customer,
            owner=p.owner,
            due_date=p.due_date,
            currency=p.currency,
            outstanding=p.outstanding,
            days_overdue=(as_of - p.due_date).days,
        )
        for p in late[:limit]
    ]
    return ReceivablesResult(aging=aging, collection=collection, overdue=overdue, as_of=as_of)


# --- CSV export -----------------------------------------------------------------------------------
AGING_HEADER = [
    "key",
    "currency_code",
    "current_minor",
    "days_1_30_minor",
    "days_31_60_minor",
    "days_61_90_minor",
    "days_over_90_minor",
    "total_minor",
]
OVERDUE_HEADER = [
    "installment",
    "contract",
    "customer",
    "owner",
    "due_date",
    "currency_code",
    "outstanding_minor",
    "days_overdue",
]
EXPORT_GROUPINGS = {
    "": "owner",
    "RECEIVABLES_GROUPING_UNSPECIFIED": "owner",
    "RECEIVABLES_GROUPING_OWNER": "owner",
    "RECEIVABLES_GROUPING_TEAM": "team",
    "RECEIVABLES_GROUPING_CUSTOMER": "customer",
}


async def export_rows(
    session, deps, principal, kind: int, query_pb, group_by: str
) -> tuple[list[str], list[list]]:
    """(header, rows) of REPORT_KIND_RECEIVABLES_AGING (as of today, grouped by `group_by`, a
    ReceivablesGrouping value name) or REPORT_KIND_OVERDUE_RECEIVABLES (up to 1000, most overdue first)."""
    if kind == export_service_pb2.REPORT_KIND_RECEIVABLES_AGING:
        grouping = EXPORT_GROUPINGS.get(group_by)
        if grouping is None:
            raise InvalidArgument.for_field(
                "group_by", f"must be one of {', '.join(k for k in EXPORT_GROUPINGS if k)}"
            )
        result = await receivables_report(session, deps, principal, query_pb, group_by=grouping)
        rows = [
            [
                line.key,
                line.currency,
                line.buckets[AgingBucket.CURRENT],
                line.buckets[AgingBucket.DAYS_1_30],
                line.buckets[AgingBucket.DAYS_31_60],
                line.buckets[AgingBucket.DAYS_61_90],
                line.buckets[AgingBucket.DAYS_OVER_90],
                line.total,
            ]
            for line in result.aging
        ]
        return AGING_HEADER, rows
    if kind == export_service_pb2.REPORT_KIND_OVERDUE_RECEIVABLES:
        result = await receivables_report(session, deps, principal, query_pb, overdue_limit=MAX_OVERDUE_LIMIT)
        rows = [
            [
                item.installment,
                item.contract,
                item.customer,
                item.owner,
                item.due_date.isoformat(),
                item.currency,
                item.outstanding,
                item.days_overdue,
            ]
            for item in result.overdue
        ]
        return OVERDUE_HEADER, rows
    raise InvalidArgument.for_field("kind", "is not a finance report")
