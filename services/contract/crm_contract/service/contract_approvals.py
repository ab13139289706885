"""Submit, approve, reject and withdraw a contract: the contract's status moves with its approval.

Each runs in one unit of work: the contract row (locked), the approval and its
history, the contract's events, the approval's events and the audit rows commit
together. The approval engine (crm_contract.service.approvals) decides who may
act; this module moves the contract and tells the world.
"""

from __future__ import annotations

from dataclasses import replace

from crm.contract.v1 import events_pb2
from crm_contract.adapters.contract_repository import ContractRepository
from crm_contract.domain import contracts as rules
from crm_contract.domain.approvals import ApprovalState, TargetType
from crm_contract.domain.contracts import Contract, ContractStatus
from crm_contract.service import approvals as engine
from crm_contract.service.contract_snapshots import snapshot
from crm_contract.service.contracts import CONTRACTS, contract_not_found, visible_contract
from crm_shared.access import ScopeGrant
from crm_shared.aip.etag import check_etag
from crm_shared.principal import Principal

SUBJECT_SUBMITTED = "crm.contract.contract.submitted"
SUBJECT_APPROVED = "crm.contract.contract.approved"
SUBJECT_REJECTED = "crm.contract.contract.rejected"
SUBJECT_WITHDRAWN = "crm.contract.contract.withdrawn"


def _approval_ref(approval_id: str) -> str:
    return f"approvals/{approval_id}" if approval_id else ""


def _emit_approved(uow, contract: Contract, approval_id: str) -> None:
    uow.emit(
        SUBJECT_APPROVED,
        events_pb2.ContractApproved(contract=snapshot(contract), approval=_approval_ref(approval_id)),
        resource=contract.name,
    )


async def submit_contract(
    uow, deps, principal: Principal, contract_id: str, *, etag: str, comment: str
) -> Contract:
    """DRAFT|REJECTED -> PENDING_APPROVAL with a new approval, or -> APPROVED when no workflow matches."""
    current = await visible_contract(uow.session, deps, principal, contract_id, "submit", lock=True)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    pending = rules.submit(current, uow.now)  # checks status and completeness before routing
    approval = await engine.open_approval(
        uow,
        target_type=TargetType.CONTRACT.value,
        target=current.name,
        owner=current.owner,
        team=current.team,
        currency=current.currency,
        amount=current.amount,
        contract_type=current.contract_type,
        submitter=principal.subject,
        comment=comment,
    )
    if approval is None:
        result = rules.approve(pending, uow.now)
        _emit_approved(uow, result, "")
        uow.audit("approved", result.name, ["status"])
    else:
        result = replace(pending, approval_id=approval.id)
        uow.emit(
            SUBJECT_SUBMITTED,
            events_pb2.ContractSubmitted(contract=snapshot(result), approval=approval.name),
            resource=result.name,
        )
        uow.audit("submitted", result.name, ["status", "approval"])
    await ContractRepository(uow.session).save(result, current.row_version)
    return result


async def _contract_to_decide(uow, deps, principal: Principal, contract_id: str) -> tuple[Contract, bool]:
    """The locked contract and whether the caller may read it.

    Loaded without the caller's scope, since an approver (a manager of another team, a named
    user) may act on a contract they cannot otherwise read; the engine then answers NOT_FOUND
    to anyone who is neither.
    """
    deps.policy.grant(principal, CONTRACTS, "approve")
    contract = await ContractRepository(uow.session).get(contract_id, lock=True)
    if contract is None:
        raise contract_not_found(contract_id)
    read = ScopeGrant(deps.policy.scope(principal, CONTRACTS, "read"), principal.subject, principal.team)
    can_read = read.permits(owner=contract.owner, team=contract.team)
    if contract.status is not ContractStatus.PENDING_APPROVAL:
        if not can_read:
            raise contract_not_found(contract_id)
        rules.require_status(contract, "approve")  # FAILED_PRECONDITION naming the status it needs
    return contract, can_read


async def approve_contract(uow, deps, principal: Principal, contract_id: str, *, comment: str) -> Contract:
    """The current step's approver approves; after the last step the contract is APPROVED."""
    current, can_read = await _contract_to_decide(uow, deps, principal, contract_id)
    approval = await engine.decide(
        uow, deps, principal, target=current.name, approve=True, comment=comment, can_read_target=can_read
    )
    if approval.state is not ApprovalState.APPROVED:
        return current  # more steps to go: the contract stays PENDING_APPROVAL
    approved = rules.approve(current, uow.now)
    await ContractRepository(uow.session).save(approved, current.row_version)
    _emit_approved(uow, approved, approval.id)
    uow.audit("approved", approved.name, ["status"])
    return approved


async def reject_contract(uow, deps, principal: Principal, contract_id: str, *, comment: str) -> Contract:
    """The current step's approver rejects (with a reason): PENDING_APPROVAL -> REJECTED."""
    current, can_read = await _contract_to_decide(uow, deps, principal, contract_id)
    approval = await engine.decide(
        uow, deps, principal, target=current.name, approve=False, comment=comment, can_read_target=can_read
    )
    rejected = rules.reject(current, uow.now)
    await ContractRepository(uow.session).save(rejected, current.row_version)
    uow.emit(
        SUBJECT_REJECTED,
        events_pb2.ContractRejected(
            contract=snapshot(rejected),
            approval=approval.name,
            rejected_by=principal.subject,
            comment=comment,
        ),
        resource=rejected.name,
    )
    uow.audit("rejected", rejected.name, ["status"])
    return rejected


async def withdraw_contract(uow, deps, principal: Principal, contract_id: str, *, comment: str) -> Contract:
    """The owner or submitter takes a pending contract back: PENDING_APPROVAL -> DRAFT."""
    current = await visible_contract(uow.session, deps, principal, contract_id, "withdraw", lock=True)
    rules.require_status(current, "withdraw")
    approval = await engine.withdraw(uow, principal, target=current.name, comment=comment)
    withdrawn = rules.withdraw(current, uow.now)
    await ContractRepository(uow.session).save(withdrawn, current.row_version)
    uow.emit(
        SUBJECT_WITHDRAWN,
        events_pb2.ContractWithdrawn(contract=snapshot(withdrawn), approval=approval.name),
        resource=withdrawn.name,
    )
    uow.audit("withdrawn", withdrawn.name, ["status"])
    return withdrawn
