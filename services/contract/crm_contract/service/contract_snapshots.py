"""A contract as the events carry it (ContractSnapshot), plus the small protobuf values it is made of."""

from __future__ import annotations

from datetime import UTC, date, datetime

from google.protobuf import timestamp_pb2
from google.type import date_pb2

from crm.common.v1 import money_pb2
from crm.contract.v1 import common_pb2, events_pb2
from crm_contract.domain.contracts import Contract, ContractStatus

STATUS_TO_PB = {s: common_pb2.ContractStatus.Value(f"CONTRACT_STATUS_{s.name}") for s in ContractStatus}


def money(currency: str, amount: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount_minor=amount)


def date_pb(day: date | None) -> date_pb2.Date | None:
    """A google.type.Date, or None (leave the field unset) for no date."""
    return None if day is None else date_pb2.Date(year=day.year, month=day.month, day=day.day)


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment.astimezone(UTC))
    return ts


def contract_ref(contract_id: str) -> str:
    """The resource name of a stored contract id ("" stays "")."""
    return f"contracts/{contract_id}" if contract_id else ""


def snapshot(contract: Contract) -> events_pb2.ContractSnapshot:
    return events_pb2.ContractSnapshot(
        name=contract.name,
        number=contract.number,
        customer=contract.customer,
        opportunity=contract.opportunity,
        title=contract.title,
        contract_type=contract.contract_type,
        amount=money(contract.currency, contract.amount),
        status=STATUS_TO_PB[contract.status],
        owner=contract.owner,
        team=contract.team,
        start_date=date_pb(contract.start_date),
        end_date=date_pb(contract.end_date),
        signed_date=date_pb(contract.signed_date),
        renewal_of=contract_ref(contract.renewal_of),
    )
