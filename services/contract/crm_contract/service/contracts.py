"""Use cases for contracts: standard methods, Sign, Terminate and Renew.

Writes take a unit of work (rows, outbox events, audit records and durable
timers commit together); reads take a session. The caller's data scope goes
into every query, so a contract outside it is simply NOT_FOUND.

Signing schedules two durable timers keyed by the contract id: RENEWAL_DUE_TIMER
(renewal_notice_days before end_date, or at once when already inside that window)
and EXPIRY_TIMER (the day after end_date, 00:00 UTC); service/renewals.py handles them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from crm.contract.v1 import events_pb2
from crm_contract.adapters import installment_queries
from crm_contract.adapters.contract_filters import (
    CONTRACT_FILTERS,
    DEFAULT_ORDER,
    ORDERABLE,
    sort_keys,
    sort_values,
)
from crm_contract.adapters.contract_repository import ContractRepository
from crm_contract.domain import contracts as rules
from crm_contract.domain.contracts import Contract, ContractInput, LineItem
from crm_contract.service.contract_snapshots import snapshot, timestamp
from crm_shared import timers
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import Page, parse_list_request
from crm_shared.errors import FailedPrecondition, NotFound, Violations
from crm_shared.ids import new_id
from crm_shared.principal import Principal

CONTRACTS = "contracts"
RENEWAL_DUE_TIMER = "contract.renewal_due"
EXPIRY_TIMER = "contract.expire"

SUBJECT_CREATED = "crm.contract.contract.created"
SUBJECT_UPDATED = "crm.contract.contract.updated"
SUBJECT_DELETED = "crm.contract.contract.deleted"
SUBJECT_SIGNED = "crm.contract.contract.signed"
SUBJECT_TERMINATED = "crm.contract.contract.terminated"
SUBJECT_RENEWED = "crm.contract.contract.renewed"

ORIGIN_API = "api"
ORIGIN_OPPORTUNITY_WON = "opportunity_won"
ORIGIN_RENEWAL = "renewal"

OUTPUT_ONLY_FIELDS = frozenset(
    {
        "name",
        "number",
        "customer",  # fixed at create
        "opportunity",
        "signed_date",
        "status",
        "approval",
        "renewal_of",
        "renewed_by",
        "balance",
        "termination_reason",
        "create_time",
        "update_time",
        "etag",
    }
)


def contract_not_found(contract_id: str) -> NotFound:
    # The same answer whether the contract does not exist or is outside the caller's scope.
    name = f"contracts/{contract_id}"
    return NotFound(f"{name} not found", reason="CONTRACT_NOT_FOUND", metadata={"resource": name})


async def visible_contract(
    session: AsyncSession, deps, principal: Principal, contract_id: str, action: str, *, lock: bool = False
) -> Contract:
    """The contract if `action` on it is within the caller's scope, else NOT_FOUND."""
    grant = deps.policy.grant(principal, CONTRACTS, action)
    contract = await ContractRepository(session).get(contract_id, grant, lock=lock)
    if contract is None:
        raise contract_not_found(contract_id)
    return contract


# --- creating ---------------------------------------------------------------------------------------


async def create_draft(
    uow,
    *,
    customer: str,
    opportunity: str,
    title: str,
    currency: str,
    amount: int | None,
    owner: str,
    team: str,
    origin: str,
    won_opportunity: str | None = None,
    contract_type: str = rules.DEFAULT_CONTRACT_TYPE,
    start_date: date | None = None,
    end_date: date | None = None,
    renewal_of: str = "",
    line_items: Sequence[LineItem] = (),
    payment_terms: str = "",
    customer_signer: str = "",
    company_signer: str = "",
    renewal_notice_days: int = rules.DEFAULT_RENEWAL_NOTICE_DAYS,
    attachments: Sequence[str] = (),
    notes: str = "",
) -> Contract:
    """A numbered DRAFT contract, inserted with its ContractCreated event and audit row.

    Used by CreateContract, RenewContract and the OpportunityWon consumer (which passes
    won_opportunity: its UNIQUE column makes a second draft for one opportunity impossible).
    """
    data = ContractInput(
        customer=customer,
        opportunity=opportunity,
        title=title,
        contract_type=contract_type,
        currency=currency,
        amount=amount,
        line_items=list(line_items),
        start_date=start_date,
        end_date=end_date,
        payment_terms=payment_terms,
        customer_signer=customer_signer,
        company_signer=company_signer,
        owner=owner,
        team=team,
        renewal_notice_days=renewal_notice_days,
        attachments=list(attachments),
        notes=notes,
    )
    violations = Violations()
    contract = rules.new_contract(
        data,
        contract_id=new_id(),
        number="",
        now=uow.now,
        violations=violations,
        won_opportunity=won_opportunity,
        renewal_of=renewal_of,
    )
    repo = ContractRepository(uow.session)
    contract.number = await repo.next_number()
    await repo.add(contract)
    uow.emit(
        SUBJECT_CREATED,
        events_pb2.ContractCreated(contract=snapshot(contract), origin=origin),
        resource=contract.name,
    )
    # The origin is on the event; a renewal or won opportunity shows in renewal_of / won_opportunity.
    audited = ["customer", "amount", "owner", "team"]
    audited += [name for name in ("renewal_of", "won_opportunity") if getattr(contract, name)]
    uow.audit("created", contract.name, audited)
    return contract


async def create_contract(uow, deps, principal: Principal, data: ContractInput) -> Contract:
    grant = deps.policy.grant(principal, CONTRACTS, "create")
    owner = data.owner.strip() or principal.subject
    team = data.team.strip() or grant.team
    rules.check_ownership(grant, owner=owner, team=team)
    return await create_draft(
        uow,
        customer=data.customer,
        opportunity=data.opportunity,
        title=data.title,
        currency=data.currency,
        amount=data.amount,
        owner=owner,
        team=team,
        origin=ORIGIN_API,
        contract_type=data.contract_type or rules.DEFAULT_CONTRACT_TYPE,
        start_date=data.start_date,
        end_date=data.end_date,
        line_items=data.line_items,
        payment_terms=data.payment_terms,
        customer_signer=data.customer_signer,
        company_signer=data.company_signer,
        # proto3 cannot tell 0 from unset: a new contract gets the default notice period.
        renewal_notice_days=data.renewal_notice_days or rules.DEFAULT_RENEWAL_NOTICE_DAYS,
        attachments=data.attachments,
        notes=data.notes,
    )


# --- reading ----------------------------------------------------------------------------------------


async def get_contract(session: AsyncSession, deps, principal: Principal, contract_id: str) -> Contract:
    return await visible_contract(session, deps, principal, contract_id, "read")


async def list_contracts(
    session: AsyncSession,
    deps,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
    order_by: str,
) -> Page:
    grant = deps.policy.grant(principal, CONTRACTS, "read")
    # A token is bound to its query and caller: not replayable with another filter or by someone else.
    req = parse_list_request(
        deps.page_tokens,
        collection=CONTRACTS,
        caller=principal.subject,
        page_size=page_size,
        page_token=page_token,
        filter_text=filter_text,
        filters=CONTRACT_FILTERS,
        order_by=order_by,
        orderable=ORDERABLE,
        default_order=DEFAULT_ORDER,
    )
    rows = await ContractRepository(session).list(
        grant, where=req.where, sort=sort_keys(req.order.fields), after=req.after, limit=req.limit + 1
    )
    return req.page(rows, deps.page_tokens, key=lambda c: sort_values(c, req.order.fields))


# --- changing a draft -------------------------------------------------------------------------------


async def update_contract(
    uow, deps, principal: Principal, contract_id: str, data: ContractInput, mask: Sequence[str], etag: str
) -> Contract:
    fields = resolve_update_mask(mask, writable=rules.UPDATABLE_FIELDS, output_only=OUTPUT_ONLY_FIELDS)
    grant = deps.policy.grant(principal, CONTRACTS, "update")
    repo = ContractRepository(uow.session)
    current = await repo.get(contract_id, grant, lock=True)
    if current is None:
        raise contract_not_found(contract_id)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    updated, changed = rules.update_contract(
        current, data, fields, now=uow.now, grant=grant, violations=Violations()
    )
    if updated is current:
        return current
    if "amount" in changed:
        await _check_payment_plan(uow.session, updated)
    await repo.save(updated, current.row_version)
    if {"customer", "owner", "team"} & set(changed):
        # Installments and invoices carry copies of these for data scope inside SQL.
        await installment_queries.copy_contract_scope(
            uow.session, updated.id, customer=updated.customer, owner=updated.owner, team=updated.team
        )
    status_changed = updated.status is not current.status
    changed_fields = [*changed, "status"] if status_changed else changed
    uow.emit(
        SUBJECT_UPDATED,
        events_pb2.ContractUpdated(contract=snapshot(updated), changed_fields=changed_fields),
        resource=updated.name,
    )
    uow.audit("updated", updated.name, changed_fields)
    return updated


async def _check_payment_plan(session: AsyncSession, contract: Contract) -> None:
    """A contract's amount must keep matching its payment plan's installments, when it has one."""
    planned = await installment_queries.plan_total(session, contract.id)
    if planned is not None and planned != contract.amount:
        raise FailedPrecondition(
            f"{contract.name} has a payment plan of {planned} {contract.currency}; "
            f"set a plan for {contract.amount} first or keep the amount",
            reason="PAYMENT_PLAN_MISMATCH",
            metadata={"resource": contract.name, "plan_total": str(planned), "amount": str(contract.amount)},
        )


async def delete_contract(uow, deps, principal: Principal, contract_id: str, etag: str) -> None:
    contract = await visible_contract(uow.session, deps, principal, contract_id, "delete", lock=True)
    check_etag(etag, contract.id, contract.row_version, resource=contract.name)
    rules.check_deletable(contract)
    repo = ContractRepository(uow.session)
    await repo.remove(contract.id)
    if contract.renewal_of:
        await _unlink_renewal(uow, repo, contract)
    uow.emit(
        SUBJECT_DELETED,
        events_pb2.ContractDeleted(
            contract=contract.name, customer=contract.customer, owner=contract.owner, team=contract.team
        ),
        resource=contract.name,
    )
    uow.audit("deleted", contract.name, [])


async def _unlink_renewal(uow, repo: ContractRepository, renewal: Contract) -> None:
    """A deleted renewal draft frees its predecessor to be renewed again."""
    renewed = await repo.get(renewal.renewal_of, lock=True)
    if renewed is None or renewed.renewed_by != renewal.id:
        return
    unlinked = rules.renewal_dropped(renewed, uow.now)
    await repo.save(unlinked, renewed.row_version)
    uow.audit("renewal_dropped", unlinked.name, ["renewed_by"])


# --- sign, terminate, renew -------------------------------------------------------------------------


async def sign_contract(
    uow,
    deps,
    principal: Principal,
    contract_id: str,
    *,
    etag: str,
    signed_date: date | None,
    customer_signer: str,
    company_signer: str,
) -> Contract:
    current = await visible_contract(uow.session, deps, principal, contract_id, "sign", lock=True)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    signed = rules.sign(
        current,
        uow.now,
        signed_date=signed_date,
        customer_signer=customer_signer,
        company_signer=company_signer,
    )
    await ContractRepository(uow.session).save(signed, current.row_version)
    await schedule_end_timers(uow, signed)
    uow.emit(
        SUBJECT_SIGNED,
        events_pb2.ContractSigned(
            contract=signed.name,
            customer=signed.customer,
            sign_time=timestamp(uow.now),
            snapshot=snapshot(signed),
        ),
        resource=signed.name,
    )
    uow.audit("signed", signed.name, ["status", "signed_date", "customer_signer", "company_signer"])
    return signed


async def schedule_end_timers(uow, contract: Contract) -> None:
    """The renewal reminder (at once when already inside the notice window) and the expiry."""
    renewal_due, expiry = rules.renewal_due_at(contract), rules.expires_at(contract)
    if renewal_due is not None:
        await timers.schedule(uow, RENEWAL_DUE_TIMER, contract.id, max(renewal_due, uow.now))
    if expiry is not None:
        await timers.schedule(uow, EXPIRY_TIMER, contract.id, expiry)


async def terminate_contract(
    uow, deps, principal: Principal, contract_id: str, *, etag: str, reason: str
) -> Contract:
    current = await visible_contract(uow.session, deps, principal, contract_id, "terminate", lock=True)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    terminated = rules.terminate(current, uow.now, reason=reason)
    await ContractRepository(uow.session).save(terminated, current.row_version)
    await timers.cancel(uow, RENEWAL_DUE_TIMER, terminated.id)
    await timers.cancel(uow, EXPIRY_TIMER, terminated.id)
    uow.emit(
        SUBJECT_TERMINATED,
        events_pb2.ContractTerminated(
            contract=snapshot(terminated),
            reason=terminated.termination_reason,
            terminate_time=timestamp(uow.now),
        ),
        resource=terminated.name,
    )
    uow.audit("terminated", terminated.name, ["status", "termination_reason"])
    return terminated


async def renew_contract(
    uow,
    deps,
    principal: Principal,
    contract_id: str,
    *,
    start_date: date | None,
    end_date: date | None,
    amount: int | None,
    amount_currency: str = "",
) -> Contract:
    """An ACTIVE or EXPIRED contract -> its one renewal: a new DRAFT linked both ways."""
    current = await visible_contract(uow.session, deps, principal, contract_id, "renew", lock=True)
    rules.check_renewable(current)
    terms = rules.renewal_terms(
        current, start_date=start_date, end_date=end_date, amount=amount, currency=amount_currency
    )
    # Line items describe the old amount; they carry over only when the amount does.
    keep_items = terms.amount == current.amount
    renewal = await create_draft(
        uow,
        customer=current.customer,
        opportunity=current.opportunity,
        title=current.title,
        currency=current.currency,
        amount=terms.amount,
        owner=current.owner,
        team=current.team,
        origin=ORIGIN_RENEWAL,
        contract_type=current.contract_type,
        start_date=terms.start_date,
        end_date=terms.end_date,
        renewal_of=current.id,
        line_items=current.line_items if keep_items else (),
        payment_terms=current.payment_terms,
        customer_signer=current.customer_signer,
        company_signer=current.company_signer,
        renewal_notice_days=current.renewal_notice_days,
        attachments=current.attachments,
    )
    renewed = rules.mark_renewed(current, uow.now, renewal_id=renewal.id)
    await ContractRepository(uow.session).save(renewed, current.row_version)
    uow.emit(
        SUBJECT_RENEWED,
        events_pb2.ContractRenewed(contract=renewed.name, renewal=snapshot(renewal)),
        resource=renewed.name,
    )
    uow.audit("renewed", renewed.name, ["renewed_by"])
    return renewal
