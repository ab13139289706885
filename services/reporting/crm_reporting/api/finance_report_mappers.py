"""Finance report results -> crm.reporting.v1 messages (and request dates -> datetime.date)."""

from __future__ import annotations

from datetime import date

from google.type import date_pb2

from crm.common.v1 import money_pb2
from crm.reporting.v1 import finance_report_service_pb2 as pb
from crm_reporting.domain.finance import AgingBucket
from crm_reporting.service.finance_reports import AgingLine, CollectionLine, OverdueLine, ReceivablesResult
from crm_shared.errors import InvalidArgument

GROUPING = {
    pb.RECEIVABLES_GROUPING_UNSPECIFIED: "owner",
    pb.RECEIVABLES_GROUPING_OWNER: "owner",
    pb.RECEIVABLES_GROUPING_TEAM: "team",
    pb.RECEIVABLES_GROUPING_CUSTOMER: "customer",
}


def money(currency: str, amount: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount_minor=amount)


def date_pb(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def date_from_pb(value: date_pb2.Date, *, field: str) -> date:
    try:
        return date(value.year, value.month, value.day)
    except ValueError as exc:
        raise InvalidArgument.for_field(field, "is not a valid calendar date") from exc


def aging_row(line: AgingLine) -> pb.AgingRow:
    c = line.currency
    return pb.AgingRow(
        key=line.key,
        currency_code=c,
        current=money(c, line.buckets[AgingBucket.CURRENT]),
        days_1_30=money(c, line.buckets[AgingBucket.DAYS_1_30]),
        days_31_60=money(c, line.buckets[AgingBucket.DAYS_31_60]),
        days_61_90=money(c, line.buckets[AgingBucket.DAYS_61_90]),
        days_over_90=money(c, line.buckets[AgingBucket.DAYS_OVER_90]),
        total=money(c, line.total),
    )


def collection_row(line: CollectionLine) -> pb.CollectionRow:
    return pb.CollectionRow(
        currency_code=line.currency,
        due=money(line.currency, line.due),
        collected=money(line.currency, line.collected),
        collection_rate_bp=line.rate_bp,
    )


def overdue_item(item: OverdueLine) -> pb.OverdueItem:
    return pb.OverdueItem(
        installment=item.installment,
        contract=item.contract,
        customer=item.customer,
        owner=item.owner,
        due_date=date_pb(item.due_date),
        outstanding=money(item.currency, item.outstanding),
        days_overdue=item.days_overdue,
    )


def receivables_report(result: ReceivablesResult) -> pb.ReceivablesReport:
    return pb.ReceivablesReport(
        aging=[aging_row(line) for line in result.aging],
        collection=[collection_row(line) for line in result.collection],
        overdue=[overdue_item(item) for item in result.overdue],
        as_of=date_pb(result.as_of),
    )
