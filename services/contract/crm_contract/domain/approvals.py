"""Approval workflows and approvals: routing, who may act, and the approval's own little state machine.

Pure rules. A workflow routes a target (a contract or a payment) to ordered steps
when its condition matches; the approval opened from it keeps a *snapshot* of
those steps, so editing a workflow never changes approvals already under way.

Separation of duties: the owner and the submitter of a target never approve it,
even when a step names them, and one person approves at most one step of an
approval (four eyes), so a two-step approval always needs two other people.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from crm_shared.errors import FailedPrecondition, PermissionDenied, Violations
from crm_shared.principal import Principal

MAX_STEPS = 10
# The role whose holders in the owner's team act on an OWNER_MANAGER step.
MANAGER_ROLE = "sales_manager"


class TargetType(enum.StrEnum):
    CONTRACT = "contract"
    PAYMENT = "payment"

    @property
    def collection(self) -> str:
        return f"{self.value}s"


class ApproverKind(enum.StrEnum):
    ROLE = "role"
    USER = "user"
    OWNER_MANAGER = "owner_manager"


class ApprovalState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class ApprovalAction(enum.StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class Step:
    kind: ApproverKind
    role: str = ""
    user: str = ""
    display_name: str = ""


@dataclass(frozen=True)
class Condition:
    """`currency` is empty only when no amount bound is set (then any currency matches)."""

    currency: str = ""
    min_amount: int | None = None  # inclusive
    max_amount: int | None = None  # exclusive; None = no upper bound
    contract_types: tuple[str, ...] = ()

    def matches(self, *, currency: str, amount: int, contract_type: str) -> bool:
        if self.currency and currency != self.currency:
            return False
        if self.min_amount is not None and amount < self.min_amount:
            return False
        if self.max_amount is not None and amount >= self.max_amount:
            return False
        return not self.contract_types or contract_type in self.contract_types


@dataclass
class Workflow:
    id: str
    target: TargetType
    create_time: datetime
    update_time: datetime
    display_name: str = ""
    priority: int = 0
    condition: Condition = Condition()
    steps: tuple[Step, ...] = ()
    active: bool = True
    row_version: int = 1

    @property
    def name(self) -> str:
        return f"approvalWorkflows/{self.id}"

    @property
    def routing_key(self) -> tuple[int, datetime, str]:
        # Ties on priority go to the older workflow; ids are time-ordered (UUIDv7) as a last resort.
        return (self.priority, self.create_time, self.id)


@dataclass(frozen=True)
class Decision:
    step: int
    action: ApprovalAction
    actor: str
    time: datetime
    comment: str = ""


@dataclass
class Approval:
    id: str
    target: str  # "contracts/{id}" or "payments/{id}"
    target_type: TargetType
    workflow_id: str
    steps: tuple[Step, ...]
    submitter: str
    owner: str
    team: str
    currency: str
    amount: int
    create_time: datetime
    update_time: datetime
    state: ApprovalState = ApprovalState.PENDING
    current_step: int = 0
    history: list[Decision] = field(default_factory=list)
    row_version: int = 1

    @property
    def name(self) -> str:
        return f"approvals/{self.id}"

    @property
    def current(self) -> Step | None:
        """The step waiting for a decision; None once the approval is closed."""
        if self.state is not ApprovalState.PENDING or self.current_step >= len(self.steps):
            return None
        return self.steps[self.current_step]

    @property
    def approvers(self) -> frozenset[str]:
        return frozenset(d.actor for d in self.history if d.action is ApprovalAction.APPROVED)


# --- workflow validation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowInput:
    display_name: str = ""
    target: TargetType | None = None
    priority: int = 0
    condition: Condition = Condition()
    min_currency: str = ""
    max_currency: str = ""
    steps: tuple[Step, ...] = ()
    active: bool = False


WORKFLOW_WRITABLE_FIELDS = ("display_name", "priority", "condition", "steps", "active")
WORKFLOW_OUTPUT_ONLY_FIELDS = ("name", "target", "create_time", "update_time", "etag")


def validate_steps(steps: Sequence[Step], *, known_roles: Collection[str], violations: Violations) -> None:
    prefix = "approval_workflow.steps"
    if not 1 <= len(steps) <= MAX_STEPS:
        violations.add(prefix, f"a workflow needs 1 to {MAX_STEPS} steps, got {len(steps)}")
    for index, step in enumerate(steps):
        where = f"{prefix}[{index}]"
        if step.kind is ApproverKind.ROLE and step.role not in known_roles:
            violations.add(f"{where}.role", f"{step.role!r} is not a role of the access policy")
        if step.kind is ApproverKind.USER and not step.user:
            violations.add(f"{where}.user", "a USER step names the user who approves")


def validate_condition(data: WorkflowInput, target: TargetType, violations: Violations) -> None:
    prefix = "approval_workflow.condition"
    cond = data.condition
    if data.min_currency and data.max_currency and data.min_currency != data.max_currency:
        violations.add(f"{prefix}.max_amount", "must be in the same currency as min_amount")
    currency = data.min_currency or data.max_currency
    if (cond.min_amount is not None or cond.max_amount is not None) and not _is_currency(currency):
        violations.add(prefix, "amount bounds need a 3-letter currency code")
    for bound, value in (("min_amount", cond.min_amount), ("max_amount", cond.max_amount)):
        if value is not None and value < 0:
            violations.add(f"{prefix}.{bound}", "must not be negative")
    if cond.min_amount is not None and cond.max_amount is not None and cond.max_amount <= cond.min_amount:
        violations.add(f"{prefix}.max_amount", "must be above min_amount (it is an exclusive upper bound)")
    if cond.contract_types and target is not TargetType.CONTRACT:
        violations.add(f"{prefix}.contract_types", "only contract workflows can be limited to contract types")


def _is_currency(code: str) -> bool:
    return len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()


def _condition_of(data: WorkflowInput) -> Condition:
    return replace(data.condition, currency=data.min_currency or data.max_currency)


def new_workflow(
    data: WorkflowInput, *, workflow_id: str, now: datetime, known_roles: Collection[str]
) -> Workflow:
    violations = Violations()
    if data.target is None:
        violations.add("approval_workflow.target", "is required (APPROVAL_TARGET_CONTRACT or _PAYMENT)")
    validate_steps(data.steps, known_roles=known_roles, violations=violations)
    validate_condition(data, data.target or TargetType.CONTRACT, violations)
    violations.raise_if_any("the approval workflow has invalid fields")
    assert data.target is not None
    return Workflow(
        id=workflow_id,
        target=data.target,
        create_time=now,
        update_time=now,
        display_name=data.display_name,
        priority=data.priority,
        condition=_condition_of(data),
        steps=tuple(data.steps),
        active=data.active,
    )


def update_workflow(
    current: Workflow,
    data: WorkflowInput,
    fields: Iterable[str],
    *,
    now: datetime,
    known_roles: Collection[str],
) -> tuple[Workflow, list[str]]:
    """The workflow with `fields` taken from `data`, and the names of the fields that changed."""
    fields = set(fields)
    violations = Violations()
    if "steps" in fields:
        validate_steps(data.steps, known_roles=known_roles, violations=violations)
    if "condition" in fields:
        validate_condition(data, current.target, violations)
    violations.raise_if_any("the approval workflow has invalid fields")
    proposed = {
        "display_name": data.display_name,
        "priority": data.priority,
        "condition": _condition_of(data),
        "steps": tuple(data.steps),
        "active": data.active,
    }
    changed = sorted(f for f in fields if proposed[f] != getattr(current, f))
    if not changed:
        return current, []
    updated = replace(
        current,
        **{f: proposed[f] for f in changed},
        update_time=now,
        row_version=current.row_version + 1,
    )
    return updated, changed


# --- routing ---------------------------------------------------------------------------------------


def choose_workflow(
    workflows: Iterable[Workflow], *, target: TargetType, currency: str, amount: int, contract_type: str = ""
) -> Workflow | None:
    """The first active workflow of `target`, by ascending priority then creation, whose condition matches."""
    candidates = sorted(
        (w for w in workflows if w.active and w.target is target), key=lambda w: w.routing_key
    )
    for workflow in candidates:
        if workflow.condition.matches(currency=currency, amount=amount, contract_type=contract_type):
            return workflow
    return None


# --- who may act -----------------------------------------------------------------------------------


def step_allows(step: Step, principal: Principal, *, target_team: str) -> bool:
    """Whether the step names this principal (before separation of duties is applied)."""
    if step.kind is ApproverKind.ROLE:
        return principal.has_role(step.role)
    if step.kind is ApproverKind.USER:
        return principal.subject == step.user
    # The owner's manager: a sales manager of the owner's team (an empty team has no manager).
    return principal.has_role(MANAGER_ROLE) and bool(target_team) and principal.team == target_team


def is_party(approval: Approval, subject: str) -> bool:
    """The owner and the submitter are parties to what is approved, never its approvers."""
    return subject in (approval.owner, approval.submitter)


def may_act_now(approval: Approval, principal: Principal) -> bool:
    """Whether the principal may decide the current step: named by it, not a party, not a second step."""
    step = approval.current
    return (
        step is not None
        and step_allows(step, principal, target_team=approval.team)
        and not is_party(approval, principal.subject)
        and principal.subject not in approval.approvers
    )


def named_by_current_step(approval: Approval, principal: Principal) -> bool:
    step = approval.current
    return step is not None and step_allows(step, principal, target_team=approval.team)


def check_may_decide(approval: Approval, principal: Principal) -> None:
    """PERMISSION_DENIED with the reason that tells the caller why they may not decide this step.

    The caller has already established that the principal may see the target.
    """
    require_pending(approval)
    if is_party(approval, principal.subject):
        raise PermissionDenied(
            f"the owner or submitter of {approval.target} cannot approve or reject it",
            reason="SELF_APPROVAL_FORBIDDEN",
            metadata={"resource": approval.target, "approval": approval.name},
        )
    if not named_by_current_step(approval, principal):
        raise PermissionDenied(
            f"step {approval.current_step + 1} of {approval.name} waits for another approver",
            reason="NOT_CURRENT_APPROVER",
            metadata={"resource": approval.target, "approval": approval.name},
        )
    if principal.subject in approval.approvers:
        raise PermissionDenied(
            f"you already approved a step of {approval.name}; another person must approve this one",
            reason="ALREADY_APPROVED_A_STEP",
            metadata={"resource": approval.target, "approval": approval.name},
        )


def require_pending(approval: Approval) -> None:
    if approval.state is not ApprovalState.PENDING:
        raise FailedPrecondition(
            f"{approval.name} is {approval.state.value}, not pending",
            reason="APPROVAL_NOT_PENDING",
            metadata={"resource": approval.target, "approval": approval.name},
        )


# --- the approval's transitions ------------------------------------------------------------------


def open_approval(
    workflow: Workflow,
    *,
    approval_id: str,
    target: str,
    owner: str,
    team: str,
    currency: str,
    amount: int,
    submitter: str,
    comment: str,
    now: datetime,
) -> Approval:
    return Approval(
        id=approval_id,
        target=target,
        target_type=workflow.target,
        workflow_id=workflow.id,
        steps=workflow.steps,
        submitter=submitter,
        owner=owner,
        team=team,
        currency=currency,
        amount=amount,
        create_time=now,
        update_time=now,
        history=[Decision(0, ApprovalAction.SUBMITTED, submitter, now, comment)],
    )


def _advance(approval: Approval, decision: Decision, **changes) -> Approval:
    return replace(
        approval,
        history=[*approval.history, decision],
        update_time=decision.time,
        row_version=approval.row_version + 1,
        **changes,
    )


def approve(approval: Approval, principal: Principal, *, comment: str, now: datetime) -> Approval:
    check_may_decide(approval, principal)
    step = approval.current_step
    decision = Decision(step, ApprovalAction.APPROVED, principal.subject, now, comment)
    last = step + 1 >= len(approval.steps)
    return _advance(
        approval,
        decision,
        current_step=step + 1,
        state=ApprovalState.APPROVED if last else ApprovalState.PENDING,
    )


def reject(approval: Approval, principal: Principal, *, comment: str, now: datetime) -> Approval:
    check_may_decide(approval, principal)
    decision = Decision(approval.current_step, ApprovalAction.REJECTED, principal.subject, now, comment)
    return _advance(approval, decision, state=ApprovalState.REJECTED)


def withdraw(approval: Approval, principal: Principal, *, comment: str, now: datetime) -> Approval:
    require_pending(approval)
    if not is_party(approval, principal.subject):
        raise PermissionDenied(
            f"only the owner or the submitter of {approval.target} can withdraw it",
            reason="WITHDRAW_NOT_ALLOWED",
            metadata={"resource": approval.target, "approval": approval.name},
        )
    decision = Decision(approval.current_step, ApprovalAction.WITHDRAWN, principal.subject, now, comment)
    return _advance(approval, decision, state=ApprovalState.WITHDRAWN)
