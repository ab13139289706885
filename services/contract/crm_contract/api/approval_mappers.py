"""Protobuf <-> domain for approval workflows and approvals."""

from __future__ import annotations

from crm.contract.v1 import approval_service_pb2 as pb
from crm.contract.v1 import common_pb2
from crm_contract.domain.approvals import (
    Approval,
    ApprovalAction,
    ApprovalState,
    ApproverKind,
    Condition,
    Decision,
    Step,
    TargetType,
    Workflow,
    WorkflowInput,
)
from crm_contract.service.contract_snapshots import money, timestamp
from crm_shared.aip.etag import etag_for

TARGET_TO_PB = {t: common_pb2.ApprovalTarget.Value(f"APPROVAL_TARGET_{t.name}") for t in TargetType}
TARGET_FROM_PB = {v: k for k, v in TARGET_TO_PB.items()}
KIND_TO_PB = {k: common_pb2.ApproverKind.Value(f"APPROVER_KIND_{k.name}") for k in ApproverKind}
KIND_FROM_PB = {v: k for k, v in KIND_TO_PB.items()}
STATE_TO_PB = {s: common_pb2.ApprovalState.Value(f"APPROVAL_STATE_{s.name}") for s in ApprovalState}
ACTION_TO_PB = {a: common_pb2.ApprovalAction.Value(f"APPROVAL_ACTION_{a.name}") for a in ApprovalAction}


def step_from_pb(message: pb.ApprovalStep) -> Step:
    # Validation has refused an unspecified kind; only the field that matters for the kind is kept.
    kind = KIND_FROM_PB[message.kind]
    return Step(
        kind=kind,
        role=message.role.strip() if kind is ApproverKind.ROLE else "",
        user=message.user.strip() if kind is ApproverKind.USER else "",
        display_name=message.display_name,
    )


def step_to_pb(step: Step) -> pb.ApprovalStep:
    return pb.ApprovalStep(
        kind=KIND_TO_PB[step.kind], role=step.role, user=step.user, display_name=step.display_name
    )


def workflow_input(message: pb.ApprovalWorkflow) -> WorkflowInput:
    cond = message.condition
    has_min, has_max = cond.HasField("min_amount"), cond.HasField("max_amount")
    return WorkflowInput(
        display_name=message.display_name.strip(),
        target=TARGET_FROM_PB.get(message.target),
        priority=message.priority,
        condition=Condition(
            min_amount=cond.min_amount.amount_minor if has_min else None,
            max_amount=cond.max_amount.amount_minor if has_max else None,
            contract_types=tuple(dict.fromkeys(cond.contract_types)),
        ),
        min_currency=cond.min_amount.currency_code if has_min else "",
        max_currency=cond.max_amount.currency_code if has_max else "",
        steps=tuple(step_from_pb(s) for s in message.steps),
        active=message.active,
    )


def workflow_to_pb(w: Workflow) -> pb.ApprovalWorkflow:
    cond = w.condition
    condition = pb.ApprovalCondition(contract_types=list(cond.contract_types))
    if cond.min_amount is not None:
        condition.min_amount.CopyFrom(money(cond.currency, cond.min_amount))
    if cond.max_amount is not None:
        condition.max_amount.CopyFrom(money(cond.currency, cond.max_amount))
    return pb.ApprovalWorkflow(
        name=w.name,
        display_name=w.display_name,
        target=TARGET_TO_PB[w.target],
        priority=w.priority,
        condition=condition,
        steps=[step_to_pb(s) for s in w.steps],
        active=w.active,
        create_time=timestamp(w.create_time),
        update_time=timestamp(w.update_time),
        etag=etag_for(w.id, w.row_version),
    )


def decision_to_pb(d: Decision) -> pb.ApprovalDecision:
    return pb.ApprovalDecision(
        step=d.step, action=ACTION_TO_PB[d.action], actor=d.actor, comment=d.comment, time=timestamp(d.time)
    )


def approval_to_pb(a: Approval) -> pb.Approval:
    return pb.Approval(
        name=a.name,
        target=a.target,
        target_type=TARGET_TO_PB[a.target_type],
        workflow=f"approvalWorkflows/{a.workflow_id}",
        state=STATE_TO_PB[a.state],
        steps=[step_to_pb(s) for s in a.steps],
        current_step=a.current_step,
        history=[decision_to_pb(d) for d in a.history],
        submitter=a.submitter,
        owner=a.owner,
        team=a.team,
        amount=money(a.currency, a.amount),
        create_time=timestamp(a.create_time),
        update_time=timestamp(a.update_time),
    )
