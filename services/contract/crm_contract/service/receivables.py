"""ListReceivables: outstanding amounts aged into buckets, grouped, per currency, in the caller's scope."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from crm_contract.adapters.receivable_queries import RECEIVABLE_FILTERS, AgingRow, aging_rows
from crm_contract.domain.contracts import ContractStatus
from crm_contract.domain.payments import AgingBucket, utc_day
from crm_shared.aip.paging import clamp_page_size, query_fingerprint
from crm_shared.principal import Principal

RECEIVABLES = "receivables"
GROUPINGS = ("owner", "team", "customer", "contract")
RECEIVABLE_STATUSES = [
    ContractStatus.ACTIVE.value,
    ContractStatus.EXPIRED.value,
    ContractStatus.TERMINATED.value,
]
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 500


@dataclass
class AgingTotals:
    current: int = 0
    days_1_30: int = 0
    days_31_60: int = 0
    days_61_90: int = 0
    days_over_90: int = 0

    @property
    def overdue(self) -> int:
        return self.days_1_30 + self.days_31_60 + self.days_61_90 + self.days_over_90

    @property
    def total(self) -> int:
        return self.current + self.overdue

    def add(self, buckets: dict[AgingBucket, int]) -> None:
        for bucket, amount in buckets.items():
            setattr(self, bucket.value, getattr(self, bucket.value) + amount)


@dataclass
class ReceivableGroup:
    key: str
    currency: str
    totals: AgingTotals = field(default_factory=AgingTotals)
    open_installments: int = 0
    overdue_installments: int = 0

    def add(self, row: AgingRow) -> None:
        self.totals.add(row.buckets)
        self.open_installments += row.open_installments
        self.overdue_installments += row.overdue_installments


@dataclass(frozen=True)
class Receivables:
    groups: list[ReceivableGroup]
    totals: list[ReceivableGroup]
    as_of: date
    next_page_token: str


async def list_receivables(
    session: AsyncSession,
    deps,
    principal: Principal,
    *,
    group_by: str,
    as_of: date | None,
    filter_text: str,
    page_size: int,
    page_token: str,
) -> Receivables:
    grant = deps.policy.grant(principal, RECEIVABLES, "read")
    as_of = as_of or utc_day(deps.clock.now())
    limit = clamp_page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    where = RECEIVABLE_FILTERS.compile(filter_text)
    rows = await aging_rows(
        session, grant, group_by=group_by, as_of=as_of, where=where, statuses=RECEIVABLE_STATUSES
    )
    groups: dict[tuple[str, str], ReceivableGroup] = {}
    totals: dict[str, ReceivableGroup] = defaultdict(lambda: ReceivableGroup(key="", currency=""))
    for row in rows:
        groups.setdefault((row.key, row.currency), ReceivableGroup(row.key, row.currency)).add(row)
        total = totals[row.currency]
        total.currency = row.currency
        total.add(row)
    ordered = sorted(groups.values(), key=lambda g: (-g.totals.total, g.key, g.currency))
    # Groups are an aggregate, not rows: the token carries the position in this ordering.
    query = query_fingerprint(
        "receivables", group_by, as_of.isoformat(), filter_text.strip(), principal.subject
    )
    start = int(deps.page_tokens.decode(page_token, query=query)[0]) if page_token else 0
    page = ordered[start : start + limit]
    more = start + limit < len(ordered)
    token = deps.page_tokens.encode([start + limit], query=query) if more else ""
    return Receivables(page, sorted(totals.values(), key=lambda g: g.currency), as_of, token)
