"""Protobuf <-> domain for contracts."""

from __future__ import annotations

from datetime import date

from google.type import date_pb2

from crm.contract.v1 import contract_service_pb2 as pb
from crm_contract.domain.contracts import Contract, ContractInput, LineItem
from crm_contract.service.contract_snapshots import STATUS_TO_PB, contract_ref, date_pb, money, timestamp
from crm_shared.aip.etag import etag_for
from crm_shared.errors import InvalidArgument


def date_from_pb(message: date_pb2.Date, *, field: str) -> date | None:
    """A calendar date; an all-zero Date means "not given"."""
    if message.year == 0 and message.month == 0 and message.day == 0:
        return None
    try:
        return date(message.year, message.month, message.day)
    except ValueError:
        raise InvalidArgument.for_field(field, "is not a valid calendar date (year, month and day)") from None


def optional_date(owner, name: str, *, field: str) -> date | None:
    return date_from_pb(getattr(owner, name), field=field) if owner.HasField(name) else None


def line_item(message: pb.LineItem) -> LineItem:
    return LineItem(
        description=message.description.strip(),
        product=message.product,
        quantity=message.quantity,
        unit_price=message.unit_price_minor,
    )


def contract_input(message: pb.Contract) -> ContractInput:
    items = [line_item(item) for item in message.line_items]
    # With line items the amount is derived: a caller may send only its currency (amount_minor 0).
    given = message.HasField("amount") and not (items and message.amount.amount_minor == 0)
    return ContractInput(
        customer=message.customer,
        opportunity=message.opportunity,
        title=message.title,
        contract_type=message.contract_type,
        currency=message.amount.currency_code,
        amount=message.amount.amount_minor if given else None,
        line_items=items,
        start_date=optional_date(message, "start_date", field="contract.start_date"),
        end_date=optional_date(message, "end_date", field="contract.end_date"),
        payment_terms=message.payment_terms,
        customer_signer=message.customer_signer,
        company_signer=message.company_signer,
        owner=message.owner,
        team=message.team,
        renewal_notice_days=message.renewal_notice_days,  # 0 on create = the default
        attachments=list(message.attachments),
        notes=message.notes,
    )


def line_item_to_pb(item: LineItem) -> pb.LineItem:
    return pb.LineItem(
        description=item.description,
        product=item.product,
        quantity=item.quantity,
        unit_price_minor=item.unit_price,
        amount_minor=item.amount,
    )


def balance_to_pb(contract: Contract) -> pb.ContractBalance:
    currency = contract.currency
    return pb.ContractBalance(
        received=money(currency, contract.received),
        outstanding=money(currency, contract.outstanding),
        overdue=money(currency, contract.overdue),
        credit=money(currency, contract.credit),
        pending_approval=money(currency, contract.pending_approval),
    )


def contract_to_pb(contract: Contract) -> pb.Contract:
    return pb.Contract(
        name=contract.name,
        number=contract.number,
        customer=contract.customer,
        opportunity=contract.opportunity,
        title=contract.title,
        contract_type=contract.contract_type,
        amount=money(contract.currency, contract.amount),
        line_items=[line_item_to_pb(item) for item in contract.line_items],
        signed_date=date_pb(contract.signed_date),
        start_date=date_pb(contract.start_date),
        end_date=date_pb(contract.end_date),
        payment_terms=contract.payment_terms,
        customer_signer=contract.customer_signer,
        company_signer=contract.company_signer,
        owner=contract.owner,
        team=contract.team,
        status=STATUS_TO_PB[contract.status],
        approval=f"approvals/{contract.approval_id}" if contract.approval_id else "",
        renewal_of=contract_ref(contract.renewal_of),
        renewed_by=contract_ref(contract.renewed_by),
        renewal_notice_days=contract.renewal_notice_days,
        balance=balance_to_pb(contract),
        termination_reason=contract.termination_reason,
        attachments=list(contract.attachments),
        notes=contract.notes,
        create_time=timestamp(contract.create_time),
        update_time=timestamp(contract.update_time),
        etag=etag_for(contract.id, contract.row_version),
    )


def contract_id(name: str, *, field: str = "name") -> str:
    """The id in "contracts/{id}" (the request validator has checked the pattern when it is set)."""
    if not name.startswith("contracts/"):
        raise InvalidArgument.for_field(field, "is required: contracts/{contract}")
    return name.removeprefix("contracts/")
