"""Approval workflows (admin CRUD), the approval engine, and approval reads.

The engine is shared by contracts and payments: `open_approval` routes a target
to the first matching workflow and opens an approval with a snapshot of its
steps; `decide` approves or rejects the current step; `withdraw` closes it for
the owner or submitter. Each runs inside the caller's unit of work and emits
ApprovalRequested (a step now waits) or ApprovalCompleted (closed); the caller
moves its own target (contract or payment) and emits that target's events.

Visibility: a caller who can neither read the target nor is named by the
current step gets NOT_FOUND, exactly as if the target did not exist.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from crm.contract.v1 import common_pb2, events_pb2
from crm_contract.adapters.approval_repository import (
    APPROVAL_FILTERS,
    WORKFLOW_FILTERS,
    ApprovalRepository,
    awaiting_predicate,
    target_scope,
)
from crm_contract.domain import approvals as rules
from crm_contract.domain.approvals import Approval, ApprovalState, TargetType, Workflow, WorkflowInput
from crm_contract.service.contract_snapshots import money
from crm_shared.access import Scope, ScopeGrant
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import Page, clamp_page_size, query_fingerprint
from crm_shared.errors import FailedPrecondition, NotFound
from crm_shared.ids import new_id
from crm_shared.principal import Principal

WORKFLOWS = "approval_workflows"
APPROVALS = "approvals"
SUBJECT_APPROVAL_REQUESTED = "crm.contract.approval.requested"
SUBJECT_APPROVAL_COMPLETED = "crm.contract.approval.completed"

# Besides approvals.read, an approval of a payment is money detail: it also needs payments.read.
_EXTRA_READ_RESOURCE = {TargetType.PAYMENT: "payments"}


def workflow_not_found(name: str) -> NotFound:
    return NotFound(f"{name} not found", reason="APPROVAL_WORKFLOW_NOT_FOUND", metadata={"resource": name})


def approval_not_found(name: str) -> NotFound:
    return NotFound(f"{name} not found", reason="APPROVAL_NOT_FOUND", metadata={"resource": name})


def target_not_found(target: str) -> NotFound:
    # The same answer the target's own service gives for a missing or out-of-scope resource.
    kind = target.split("/", 1)[0].removesuffix("s").upper()
    return NotFound(f"{target} not found", reason=f"{kind}_NOT_FOUND", metadata={"resource": target})


# --- events ----------------------------------------------------------------------------------------


def target_type_pb(target: TargetType) -> int:
    return common_pb2.ApprovalTarget.Value(f"APPROVAL_TARGET_{target.name}")


def state_pb(state: ApprovalState) -> int:
    return common_pb2.ApprovalState.Value(f"APPROVAL_STATE_{state.name}")


def approver_kind_pb(kind: rules.ApproverKind) -> int:
    return common_pb2.ApproverKind.Value(f"APPROVER_KIND_{kind.name}")


def _emit_progress(uow, approval: Approval, actor: str) -> None:
    """ApprovalRequested while a step waits, ApprovalCompleted once closed."""
    step = approval.current
    if step is not None:
        uow.emit(
            SUBJECT_APPROVAL_REQUESTED,
            events_pb2.ApprovalRequested(
                approval=approval.name,
                target=approval.target,
                target_type=target_type_pb(approval.target_type),
                step=approval.current_step,
                approver_kind=approver_kind_pb(step.kind),
                approver_role=step.role,
                approver_user=step.user,
                owner=approval.owner,
                team=approval.team,
                amount=money(approval.currency, approval.amount),
            ),
            resource=approval.name,
        )
        return
    uow.emit(
        SUBJECT_APPROVAL_COMPLETED,
        events_pb2.ApprovalCompleted(
            approval=approval.name,
            target=approval.target,
            target_type=target_type_pb(approval.target_type),
            state=state_pb(approval.state),
            actor=actor,
        ),
        resource=approval.name,
    )


# --- the engine (contracts and payments call these) ------------------------------------------------


async def open_approval(
    uow,
    *,
    target_type: str,
    target: str,
    owner: str,
    team: str,
    currency: str,
    amount: int,
    contract_type: str = "",
    submitter: str,
    comment: str = "",
) -> Approval | None:
    """Route `target` ("contracts/…" or "payments/…"); None when no workflow matches (nothing needed)."""
    kind = TargetType(target_type)
    repo = ApprovalRepository(uow.session)
    workflow = rules.choose_workflow(
        await repo.active_workflows(kind),
        target=kind,
        currency=currency,
        amount=amount,
        contract_type=contract_type,
    )
    if workflow is None:
        return None
    approval = rules.open_approval(
        workflow,
        approval_id=new_id(),
        target=target,
        owner=owner,
        team=team,
        currency=currency,
        amount=amount,
        submitter=submitter,
        comment=comment,
        now=uow.now,
    )
    await repo.add(approval)
    _emit_progress(uow, approval, submitter)
    uow.audit("opened", approval.name, ["target", "workflow", "steps", "state"])
    return approval


async def decide(
    uow, deps, principal: Principal, *, target: str, approve: bool, comment: str, can_read_target: bool
) -> Approval:
    """Approve or reject the current step of `target`'s latest approval.

    Returns the approval in its new state: PENDING while steps remain, APPROVED or REJECTED.
    """
    repo = ApprovalRepository(uow.session)
    current = await repo.latest_for(target, lock=True)
    if current is None or not (can_read_target or rules.named_by_current_step(current, principal)):
        if can_read_target:
            raise FailedPrecondition(
                f"{target} has no approval to decide",
                reason="NO_PENDING_APPROVAL",
                metadata={"resource": target},
            )
        raise target_not_found(target)
    decided = (rules.approve if approve else rules.reject)(current, principal, comment=comment, now=uow.now)
    await repo.save(decided, previous=current)
    _emit_progress(uow, decided, principal.subject)
    uow.audit("approved" if approve else "rejected", decided.name, ["state", "current_step", "history"])
    return decided


async def withdraw(uow, principal: Principal, *, target: str, comment: str = "") -> Approval:
    """The owner or submitter closes the pending approval of `target` (state WITHDRAWN)."""
    repo = ApprovalRepository(uow.session)
    current = await repo.latest_for(target, lock=True)
    if current is None:
        raise FailedPrecondition(
            f"{target} has no approval to withdraw",
            reason="NO_PENDING_APPROVAL",
            metadata={"resource": target},
        )
    withdrawn = rules.withdraw(current, principal, comment=comment, now=uow.now)
    await repo.save(withdrawn, previous=current)
    _emit_progress(uow, withdrawn, principal.subject)
    uow.audit("withdrawn", withdrawn.name, ["state", "history"])
    return withdrawn


# --- workflows: admin CRUD -------------------------------------------------------------------------


def _known_roles(deps) -> frozenset[str]:
    return frozenset(deps.policy.roles)


async def get_workflow(session: AsyncSession, deps, principal: Principal, workflow_id: str) -> Workflow:
    deps.policy.grant(principal, WORKFLOWS, "read")
    workflow = await ApprovalRepository(session).get_workflow(workflow_id)
    if workflow is None:
        raise workflow_not_found(f"approvalWorkflows/{workflow_id}")
    return workflow


async def list_workflows(
    session: AsyncSession, deps, principal: Principal, *, page_size: int, page_token: str, filter_text: str
) -> Page:
    deps.policy.grant(principal, WORKFLOWS, "read")
    limit = clamp_page_size(page_size)
    where = WORKFLOW_FILTERS.compile(filter_text)
    query = query_fingerprint("approvalWorkflows", filter_text.strip(), principal.subject)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    rows = await ApprovalRepository(session).list_workflows(where=where, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    token = ""
    if more:
        last = page[-1]
        token = deps.page_tokens.encode([last.priority, last.create_time, last.id], query=query)
    return Page(page, token)


async def create_workflow(uow, deps, principal: Principal, data: WorkflowInput) -> Workflow:
    deps.policy.grant(principal, WORKFLOWS, "create")
    workflow = rules.new_workflow(data, workflow_id=new_id(), now=uow.now, known_roles=_known_roles(deps))
    await ApprovalRepository(uow.session).add_workflow(workflow)
    uow.audit(
        "created", workflow.name, ["display_name", "target", "priority", "condition", "steps", "active"]
    )
    return workflow


async def update_workflow(
    uow, deps, principal: Principal, workflow_id: str, data: WorkflowInput, mask: Sequence[str], etag: str
) -> Workflow:
    fields = resolve_update_mask(
        mask,
        writable=rules.WORKFLOW_WRITABLE_FIELDS,
        output_only=rules.WORKFLOW_OUTPUT_ONLY_FIELDS,
    )
    deps.policy.grant(principal, WORKFLOWS, "update")
    repo = ApprovalRepository(uow.session)
    current = await repo.get_workflow(workflow_id)
    if current is None:
        raise workflow_not_found(f"approvalWorkflows/{workflow_id}")
    check_etag(etag, current.id, current.row_version, resource=current.name)
    updated, changed = rules.update_workflow(
        current, data, fields, now=uow.now, known_roles=_known_roles(deps)
    )
    if changed:
        await repo.save_workflow(updated, expected_row_version=current.row_version)
        uow.audit("updated", updated.name, changed)
    return updated


async def delete_workflow(uow, deps, principal: Principal, workflow_id: str, etag: str) -> None:
    """Open approvals keep their step snapshot; only future routing changes."""
    deps.policy.grant(principal, WORKFLOWS, "delete")
    repo = ApprovalRepository(uow.session)
    current = await repo.get_workflow(workflow_id)
    if current is None:
        raise workflow_not_found(f"approvalWorkflows/{workflow_id}")
    check_etag(etag, current.id, current.row_version, resource=current.name)
    await repo.remove_workflow(workflow_id)
    uow.audit("deleted", current.name, [])


# --- approvals: reads ------------------------------------------------------------------------------


def read_grants(deps, principal: Principal) -> dict[TargetType, ScopeGrant]:
    """Per target type, the scope in which the caller may read approvals (the narrower of two for money)."""
    base = deps.policy.scope(principal, APPROVALS, "read")
    grants = {}
    for target in TargetType:
        scope = base
        if target in _EXTRA_READ_RESOURCE:
            scope = min(scope, deps.policy.scope(principal, _EXTRA_READ_RESOURCE[target], "read"))
        grants[target] = ScopeGrant(Scope(scope), principal.subject, principal.team)
    return grants


def may_see(deps, principal: Principal, approval: Approval) -> bool:
    grant = read_grants(deps, principal)[approval.target_type]
    return grant.permits(owner=approval.owner, team=approval.team) or rules.named_by_current_step(
        approval, principal
    )


async def get_approval(session: AsyncSession, deps, principal: Principal, approval_id: str) -> Approval:
    approval = await ApprovalRepository(session).get(approval_id)
    if approval is None or not may_see(deps, principal, approval):
        raise approval_not_found(f"approvals/{approval_id}")
    return approval


async def list_approvals(
    session: AsyncSession,
    deps,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
    awaiting_me: bool,
) -> Page:
    limit = clamp_page_size(page_size)
    where = APPROVAL_FILTERS.compile(filter_text)
    visible = awaiting_predicate(principal) if awaiting_me else target_scope(read_grants(deps, principal))
    query = query_fingerprint("approvals", filter_text.strip(), str(awaiting_me), principal.subject)
    after = deps.page_tokens.decode(page_token, query=query) if page_token else None
    rows = await ApprovalRepository(session).list(visible=visible, where=where, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    token = ""
    if more:
        last = page[-1]
        token = deps.page_tokens.encode([last.create_time, last.id], query=query)
    return Page(page, token)
