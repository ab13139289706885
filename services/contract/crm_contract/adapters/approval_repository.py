"""Approval workflows and approvals in the database; data scope and "awaiting me" inside the SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contract.adapters.approval_tables import approval_decisions, approval_workflows, approvals
from crm_contract.domain.approvals import (
    MANAGER_ROLE,
    Approval,
    ApprovalAction,
    ApprovalState,
    ApproverKind,
    Condition,
    Decision,
    Step,
    TargetType,
    Workflow,
)
from crm_shared.access import ScopeGrant
from crm_shared.access.sql import scope_predicate
from crm_shared.aip.filtering import FilterField, FilterSchema
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted
from crm_shared.principal import Principal

TARGET_FILTER_VALUES = {f"APPROVAL_TARGET_{t.name}": t.value for t in TargetType}
STATE_FILTER_VALUES = {f"APPROVAL_STATE_{s.name}": s.value for s in ApprovalState}

WORKFLOW_FILTERS = FilterSchema(
    {
        "target": FilterField.enum(approval_workflows.c.target, TARGET_FILTER_VALUES),
        "active": FilterField.boolean(approval_workflows.c.active),
    }
)

APPROVAL_FILTERS = FilterSchema(
    {
        "target": FilterField.string(approvals.c.target),
        "target_type": FilterField.enum(approvals.c.target_type, TARGET_FILTER_VALUES),
        "state": FilterField.enum(approvals.c.state, STATE_FILTER_VALUES),
        "owner": FilterField.string(approvals.c.owner),
        "team": FilterField.string(approvals.c.team),
        "create_time": FilterField.timestamp(approvals.c.create_time),
    }
)

# Workflows page in routing order; approvals newest first.
WORKFLOW_SORT = [
    SortKey(approval_workflows.c.priority, False),
    SortKey(approval_workflows.c.create_time, False),
    SortKey(approval_workflows.c.id, False),
]
APPROVAL_SORT = [SortKey(approvals.c.create_time, True), SortKey(approvals.c.id, True)]


# --- rows <-> domain -------------------------------------------------------------------------------


def step_to_json(step: Step) -> dict[str, str]:
    return {"kind": step.kind.value, "role": step.role, "user": step.user, "display_name": step.display_name}


def step_from_json(data: dict[str, Any]) -> Step:
    return Step(
        ApproverKind(data["kind"]), data.get("role", ""), data.get("user", ""), data.get("display_name", "")
    )


def workflow_values(w: Workflow) -> dict[str, Any]:
    return {
        "id": w.id,
        "display_name": w.display_name,
        "target": w.target.value,
        "priority": w.priority,
        "currency": w.condition.currency,
        "min_amount": w.condition.min_amount,
        "max_amount": w.condition.max_amount,
        "contract_types": list(w.condition.contract_types),
        "steps": [step_to_json(s) for s in w.steps],
        "active": w.active,
        "create_time": w.create_time,
        "update_time": w.update_time,
        "row_version": w.row_version,
    }


def workflow_from_row(row: Any) -> Workflow:
    return Workflow(
        id=row["id"],
        target=TargetType(row["target"]),
        create_time=row["create_time"],
        update_time=row["update_time"],
        display_name=row["display_name"],
        priority=row["priority"],
        condition=Condition(
            currency=row["currency"],
            min_amount=row["min_amount"],
            max_amount=row["max_amount"],
            contract_types=tuple(row["contract_types"] or ()),
        ),
        steps=tuple(step_from_json(s) for s in row["steps"] or ()),
        active=row["active"],
        row_version=row["row_version"],
    )


def approval_values(a: Approval) -> dict[str, Any]:
    step = a.current
    return {
        "id": a.id,
        "target": a.target,
        "target_type": a.target_type.value,
        "workflow_id": a.workflow_id,
        "state": a.state.value,
        "steps": [step_to_json(s) for s in a.steps],
        "current_step": a.current_step,
        # The step waiting now, denormalized for the "awaiting me" query; empty once closed.
        "step_kind": step.kind.value if step else "",
        "step_role": step.role if step else "",
        "step_user": step.user if step else "",
        "submitter": a.submitter,
        "owner": a.owner,
        "team": a.team,
        "currency": a.currency,
        "amount": a.amount,
        "create_time": a.create_time,
        "update_time": a.update_time,
        "row_version": a.row_version,
    }


def approval_from_row(row: Any, history: list[Decision]) -> Approval:
    return Approval(
        id=row["id"],
        target=row["target"],
        target_type=TargetType(row["target_type"]),
        workflow_id=row["workflow_id"],
        steps=tuple(step_from_json(s) for s in row["steps"] or ()),
        submitter=row["submitter"],
        owner=row["owner"],
        team=row["team"],
        currency=row["currency"],
        amount=row["amount"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        state=ApprovalState(row["state"]),
        current_step=row["current_step"],
        history=history,
        row_version=row["row_version"],
    )


def decision_from_row(row: Any) -> Decision:
    return Decision(
        step=row["step"],
        action=ApprovalAction(row["action"]),
        actor=row["actor"],
        time=row["occurred_at"],
        comment=row["comment"],
    )


# --- predicates ------------------------------------------------------------------------------------


def awaiting_predicate(principal: Principal) -> sa.ColumnElement[bool]:
    """Pending approvals whose current step this principal may decide now (SQL twin of may_act_now)."""
    named = [
        sa.and_(
            approvals.c.step_kind == ApproverKind.ROLE.value,
            approvals.c.step_role.in_(sorted(principal.roles)),
        ),
        sa.and_(approvals.c.step_kind == ApproverKind.USER.value, approvals.c.step_user == principal.subject),
    ]
    if principal.has_role(MANAGER_ROLE) and principal.team:
        named.append(
            sa.and_(
                approvals.c.step_kind == ApproverKind.OWNER_MANAGER.value, approvals.c.team == principal.team
            )
        )
    already_approved = (
        sa.select(approval_decisions.c.approval_id)
        .where(
            approval_decisions.c.approval_id == approvals.c.id,
            approval_decisions.c.actor == principal.subject,
            approval_decisions.c.action == ApprovalAction.APPROVED.value,
        )
        .exists()
    )
    return sa.and_(
        approvals.c.state == ApprovalState.PENDING.value,
        sa.or_(*named),
        approvals.c.owner != principal.subject,
        approvals.c.submitter != principal.subject,
        ~already_approved,
    )


def target_scope(grants: dict[TargetType, ScopeGrant]) -> sa.ColumnElement[bool]:
    """Approvals whose target the caller may read, each target type with its own grant."""
    return sa.or_(
        *(
            sa.and_(
                approvals.c.target_type == target.value,
                scope_predicate(grant, owner=approvals.c.owner, team=approvals.c.team),
            )
            for target, grant in grants.items()
        )
    )


class ApprovalRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _for_update(self, query):
        if self.session.get_bind().dialect.name == "postgresql":
            # Serializes racing decisions on one approval: the second waits, then sees the first.
            return query.with_for_update()
        return query

    # --- workflows -------------------------------------------------------------------------------

    async def get_workflow(self, workflow_id: str) -> Workflow | None:
        row = (
            (
                await self.session.execute(
                    sa.select(approval_workflows).where(approval_workflows.c.id == workflow_id)
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else workflow_from_row(row)

    async def active_workflows(self, target: TargetType) -> list[Workflow]:
        query = (
            sa.select(approval_workflows)
            .where(approval_workflows.c.target == target.value, approval_workflows.c.active.is_(True))
            .order_by(*keyset_order(WORKFLOW_SORT))
        )
        return [workflow_from_row(row) for row in (await self.session.execute(query)).mappings().all()]

    async def list_workflows(self, *, where, after: Sequence[Any] | None, limit: int) -> list[Workflow]:
        query = sa.select(approval_workflows)
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(WORKFLOW_SORT, after))
        query = query.order_by(*keyset_order(WORKFLOW_SORT)).limit(limit)
        return [workflow_from_row(row) for row in (await self.session.execute(query)).mappings().all()]

    async def add_workflow(self, workflow: Workflow) -> None:
        await self.session.execute(sa.insert(approval_workflows).values(workflow_values(workflow)))

    async def save_workflow(self, workflow: Workflow, *, expected_row_version: int) -> None:
        values = workflow_values(workflow)
        del values["id"], values["create_time"], values["target"]
        result = await self.session.execute(
            sa.update(approval_workflows)
            .where(
                approval_workflows.c.id == workflow.id,
                approval_workflows.c.row_version == expected_row_version,
            )
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{workflow.name} was changed concurrently; read it again and retry",
                reason="CONCURRENT_UPDATE",
            )

    async def remove_workflow(self, workflow_id: str) -> None:
        await self.session.execute(
            sa.delete(approval_workflows).where(approval_workflows.c.id == workflow_id)
        )

    # --- approvals -------------------------------------------------------------------------------

    async def _histories(self, approval_ids: Sequence[str]) -> dict[str, list[Decision]]:
        histories: dict[str, list[Decision]] = {i: [] for i in approval_ids}
        if not approval_ids:
            return histories
        rows = (
            await self.session.execute(
                sa.select(approval_decisions)
                .where(approval_decisions.c.approval_id.in_(list(approval_ids)))
                .order_by(approval_decisions.c.approval_id, approval_decisions.c.seq)
            )
        ).mappings()
        for row in rows:
            histories[row["approval_id"]].append(decision_from_row(row))
        return histories

    async def _load(self, query) -> list[Approval]:
        rows = (await self.session.execute(query)).mappings().all()
        histories = await self._histories([row["id"] for row in rows])
        return [approval_from_row(row, histories[row["id"]]) for row in rows]

    async def get(self, approval_id: str) -> Approval | None:
        found = await self._load(sa.select(approvals).where(approvals.c.id == approval_id))
        return found[0] if found else None

    async def latest_for(self, target: str, *, lock: bool = False) -> Approval | None:
        """The newest approval of a target (the one a decision or withdrawal is about)."""
        query = (
            sa.select(approvals)
            .where(approvals.c.target == target)
            .order_by(*keyset_order(APPROVAL_SORT))
            .limit(1)
        )
        found = await self._load(self._for_update(query) if lock else query)
        return found[0] if found else None

    async def list(
        self, *, visible: sa.ColumnElement[bool], where, after: Sequence[Any] | None, limit: int
    ) -> list[Approval]:
        query = sa.select(approvals).where(visible)
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(APPROVAL_SORT, after))
        return await self._load(query.order_by(*keyset_order(APPROVAL_SORT)).limit(limit))

    async def add(self, approval: Approval) -> None:
        await self.session.execute(sa.insert(approvals).values(approval_values(approval)))
        await self._append_history(approval, already=0)

    async def save(self, approval: Approval, *, previous: Approval) -> None:
        """Writes the new state and appends the decisions made since `previous` (history is append-only)."""
        values = approval_values(approval)
        del values["id"], values["create_time"], values["target"], values["target_type"]
        result = await self.session.execute(
            sa.update(approvals)
            .where(approvals.c.id == approval.id, approvals.c.row_version == previous.row_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{approval.name} was decided concurrently; read it again and retry",
                reason="CONCURRENT_UPDATE",
            )
        await self._append_history(approval, already=len(previous.history))

    async def _append_history(self, approval: Approval, *, already: int) -> None:
        new = approval.history[already:]
        if not new:
            return
        await self.session.execute(
            sa.insert(approval_decisions),
            [
                {
                    "approval_id": approval.id,
                    "seq": already + offset,
                    "step": d.step,
                    "action": d.action.value,
                    "actor": d.actor,
                    "comment": d.comment,
                    "occurred_at": d.time,
                }
                for offset, d in enumerate(new)
            ],
        )
