"""Use cases for invoices, and `settle_invoices`, which the payment transactions call.

An ISSUED invoice becomes PAID in the same transaction as the payment that completes
it (every linked installment paid, or its linked confirmed payments cover its amount);
a void of such a payment takes it back to ISSUED.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.contract.v1 import events_pb2
from crm_contract.adapters.invoice_repository import INVOICE_FILTERS, InvoiceRepository
from crm_contract.adapters.payment_repository import PaymentRepository
from crm_contract.domain import invoices as rules
from crm_contract.domain.contracts import Contract
from crm_contract.domain.invoices import Invoice, InvoiceStatus, LinkedInstallment, LinkedPayment
from crm_contract.domain.payments import PaymentStatus, utc_day
from crm_contract.service.payment_events import (
    SUBJECT_INVOICE_ISSUED,
    SUBJECT_INVOICE_PAID,
    SUBJECT_INVOICE_VOIDED,
    invoice_snapshot,
)
from crm_contract.service.payment_plans import Page, visible_contract
from crm_shared.aip.etag import check_etag
from crm_shared.aip.paging import clamp_page_size, query_fingerprint
from crm_shared.errors import AlreadyExists, InvalidArgument, NotFound, Violations
from crm_shared.ids import new_id
from crm_shared.principal import Principal

INVOICES = "invoices"


@dataclass(frozen=True)
class InvoiceInput:
    contract_id: str
    number: str = ""
    amount: int | None = None
    currency: str = ""
    issued_date: date | None = None
    installment_names: Sequence[str] = ()
    payment_names: Sequence[str] = ()
    note: str = ""


def invoice_not_found(invoice_id: str) -> NotFound:
    name = f"invoices/{invoice_id}"
    return NotFound(f"{name} not found", reason="INVOICE_NOT_FOUND", metadata={"resource": name})


async def _linked_installments(session, contract: Contract, names: Sequence[str], violations: Violations):
    by_number = {i.number: i for i in await PaymentRepository(session).installments_of(contract.id)}
    prefix = f"{contract.name}/installments/"
    linked = []
    for index, name in enumerate(names):
        number = name.removeprefix(prefix)
        installment = by_number.get(int(number)) if name.startswith(prefix) and number.isdigit() else None
        if installment is None:
            violations.add(
                f"invoice.installments[{index}]", f"{name!r} is not an installment of {contract.name}"
            )
        else:
            linked.append(installment)
    return linked


async def _linked_payments(session, contract: Contract, names: Sequence[str], violations: Violations):
    repo = PaymentRepository(session)
    linked = []
    for index, name in enumerate(names):
        payment = (
            await repo.get_payment(name.removeprefix("payments/")) if name.startswith("payments/") else None
        )
        if payment is None or payment.contract_id != contract.id:
            violations.add(f"invoice.payments[{index}]", f"{name!r} is not a payment of {contract.name}")
        else:
            linked.append(payment)
    return linked


async def create_invoice(uow, deps, principal: Principal, data: InvoiceInput) -> Invoice:
    grant = deps.policy.grant(principal, INVOICES, "create")
    if not data.contract_id:
        raise InvalidArgument.for_field("invoice.contract", "is required")
    # Locked: the "invoices never exceed the contract amount" check must not race another create.
    contract = await visible_contract(uow.session, grant, data.contract_id, lock=True)
    violations = Violations()
    installments = await _linked_installments(uow.session, contract, data.installment_names, violations)
    payments = await _linked_payments(uow.session, contract, data.payment_names, violations)
    violations.raise_if_any("the invoice is invalid")
    repo = InvoiceRepository(uow.session)
    amount = rules.invoice_amount(
        data.amount,
        given_currency=data.currency,
        currency=contract.currency,
        installments=[LinkedInstallment(i.id, i.amount, i.is_paid) for i in installments],
        already_invoiced=await repo.invoiced_total(contract.id),
        contract_amount=contract.amount,
    )
    number = data.number.strip()
    if number and await repo.number_taken(number):
        raise _number_taken(number)
    invoice = Invoice(
        id=new_id(),
        number=number or await repo.next_number(),
        contract_id=contract.id,
        customer=contract.customer,
        owner=contract.owner,
        team=contract.team,
        currency=contract.currency,
        amount=amount,
        status=InvoiceStatus.DRAFT,
        create_time=uow.now,
        update_time=uow.now,
        issued_date=data.issued_date,
        installment_ids=[i.id for i in installments],
        payment_ids=[p.id for p in payments],
        note=data.note,
    )
    try:
        async with uow.session.begin_nested():
            await repo.add(invoice)
    except IntegrityError:
        raise _number_taken(invoice.number) from None
    uow.audit("created", invoice.name, ["contract", "number", "amount", "installments", "payments"])
    return invoice


def _number_taken(number: str) -> AlreadyExists:
    return AlreadyExists(
        f"an invoice numbered {number!r} already exists",
        reason="INVOICE_NUMBER_TAKEN",
        metadata={"number": number},
    )


async def _visible_invoice(session, deps, principal: Principal, invoice_id: str, action: str) -> Invoice:
    grant = deps.policy.grant(principal, INVOICES, action)
    invoice = await InvoiceRepository(session).get(invoice_id, grant)
    if invoice is None:
        raise invoice_not_found(invoice_id)
    return invoice


async def get_invoice(session: AsyncSession, deps, principal: Principal, invoice_id: str) -> Invoice:
    return await _visible_invoice(session, deps, principal, invoice_id, "read")


async def list_invoices(
    session: AsyncSession, deps, principal: Principal, *, page_size: int, page_token: str, filter_text: str
) -> Page:
    grant = deps.policy.grant(principal, INVOICES, "read")
    limit = clamp_page_size(page_size)
    where = INVOICE_FILTERS.compile(filter_text)
    query = query_fingerprint("invoices", filter_text.strip(), principal.subject)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    rows = await InvoiceRepository(session).list(grant, where=where, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    token = deps.page_tokens.encode([page[-1].create_time, page[-1].id], query=query) if more else ""
    return Page(page, token)


async def issue_invoice(
    uow, deps, principal: Principal, invoice_id: str, etag: str, issued_date: date | None
) -> Invoice:
    current = await _visible_invoice(uow.session, deps, principal, invoice_id, "update")
    grant = deps.policy.grant(principal, INVOICES, "update")
    contract = await visible_contract(uow.session, grant, current.contract_id, lock=True)
    current = await InvoiceRepository(uow.session).get(invoice_id) or current
    check_etag(etag, current.id, current.row_version, resource=current.name)
    issued = rules.issue(
        current, issued_date=issued_date or current.issued_date or utc_day(uow.now), now=uow.now
    )
    await InvoiceRepository(uow.session).save(issued, expected_row_version=current.row_version)
    uow.emit(
        SUBJECT_INVOICE_ISSUED,
        events_pb2.InvoiceIssued(invoice=invoice_snapshot(issued)),
        resource=issued.name,
    )
    uow.audit("issued", issued.name, ["status", "issued_date"])
    # Already covered (its installments were paid before it was issued): PAID at once.
    settled = await settle_invoices(uow, contract)
    return next((i for i in settled if i.id == issued.id), issued)


async def void_invoice(uow, deps, principal: Principal, invoice_id: str, etag: str, reason: str) -> Invoice:
    current = await _visible_invoice(uow.session, deps, principal, invoice_id, "update")
    check_etag(etag, current.id, current.row_version, resource=current.name)
    voided = rules.void(current, reason=reason, now=uow.now)
    await InvoiceRepository(uow.session).save(voided, expected_row_version=current.row_version)
    uow.emit(
        SUBJECT_INVOICE_VOIDED,
        events_pb2.InvoiceVoided(invoice=invoice_snapshot(voided), reason=reason),
        resource=voided.name,
    )
    uow.audit("voided", voided.name, ["status", "void_reason"])
    return voided


async def settle_invoices(uow, contract: Contract) -> list[Invoice]:
    """ISSUED -> PAID for invoices now covered, PAID -> ISSUED for ones a void uncovered.

    Runs inside the payment's transaction, under the contract's row lock. Returns the changed ones.
    """
    repo = InvoiceRepository(uow.session)
    payments_repo = PaymentRepository(uow.session)
    changed: list[Invoice] = []
    for invoice in await repo.of_contract(contract.id, [InvoiceStatus.ISSUED, InvoiceStatus.PAID]):
        found = await payments_repo.installments_by_id(invoice.installment_ids)
        installments = [LinkedInstallment(i.id, i.amount, i.is_paid) for i in found.values()]
        payments = []
        for payment_id in invoice.payment_ids:
            payment = await payments_repo.get_payment(payment_id)
            if payment is not None:
                applied = payment.amount if payment.status is PaymentStatus.CONFIRMED else 0
                payments.append(LinkedPayment(payment.id, applied))
        covered = rules.is_covered(invoice, installments, payments)
        if covered and invoice.status is InvoiceStatus.ISSUED:
            paid = rules.mark_paid(invoice, now=uow.now)
            await repo.save(paid, expected_row_version=invoice.row_version)
            uow.emit(
                SUBJECT_INVOICE_PAID,
                events_pb2.InvoicePaid(invoice=invoice_snapshot(paid)),
                resource=paid.name,
            )
            uow.audit("paid", paid.name, ["status"])
            changed.append(paid)
        elif not covered and invoice.status is InvoiceStatus.PAID:
            reopened = rules.reopen(invoice, now=uow.now)
            await repo.save(reopened, expected_row_version=invoice.row_version)
            uow.audit("reopened", reopened.name, ["status"])
            changed.append(reopened)
    return changed
