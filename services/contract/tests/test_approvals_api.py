"""Approval workflows and contract approvals through real gRPC, on SQLite and PostgreSQL, with real NATS.

What people notice: a contract is routed by its amount (auto-approved, the owner's manager, or the
manager then finance), only the current step's approver may decide (the owner never, another rep
does not even see it), a rejection keeps its reason and a resubmission opens a new approval with
both histories kept, withdraw, the approver's "awaiting me" list, admin-only workflow management,
and the events on the CRM_CONTRACT stream.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.type import date_pb2

from crm.common.v1.money_pb2 import Money
from crm.contract.v1 import approval_service_pb2 as apb
from crm.contract.v1 import approval_service_pb2_grpc as apb_grpc
from crm.contract.v1 import common_pb2 as common
from crm.contract.v1 import contract_service_pb2 as cpb
from crm.contract.v1 import contract_service_pb2_grpc as cpb_grpc
from crm.contract.v1 import events_pb2
from crm_shared.grpc.status import error_details
from crm_shared.testing.events import wait_for_envelopes
from crm_shared.testing.fixtures_nats import connect_nats

pytestmark = pytest.mark.asyncio(loop_scope="session")

STREAM = "CRM_CONTRACT"
PENDING = common.CONTRACT_STATUS_PENDING_APPROVAL
MANAGER_STEP = apb.ApprovalStep(kind=common.APPROVER_KIND_OWNER_MANAGER, display_name="Sales manager")
FINANCE_STEP = apb.ApprovalStep(kind=common.APPROVER_KIND_ROLE, role="finance", display_name="Finance")


def eur(amount: int) -> Money:
    return Money(currency_code="EUR", amount_minor=amount)


@pytest.fixture
def contracts(channel):
    return cpb_grpc.ContractServiceStub(channel)


@pytest.fixture
def approvals(channel):
    return apb_grpc.ApprovalServiceStub(channel)


@pytest.fixture
def people(as_user):
    """Rita and Ron sell in team east, Mia manages east, Max manages west, Fiona and Fred are finance."""
    return {
        "admin": as_user("admin", "ada", team=""),
        "rita": as_user("sales_rep", "rita", team="east"),
        "ron": as_user("sales_rep", "ron", team="east"),
        "mia": as_user("sales_manager", "mia", team="east"),
        "max": as_user("sales_manager", "max", team="west"),
        "fiona": as_user("finance", "fiona", team=""),
        "fred": as_user("finance", "fred", team=""),
    }


async def expect_error(call, code: grpc.StatusCode, reason: str | None = None):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.reason} {details.message}"
    if reason is not None:
        assert details.reason == reason, details.message
    return details


async def standard_workflows(approvals, admin) -> None:
    """Below 1,000.00 EUR nothing; up to 10,000.00 the owner's manager; above, the manager then finance."""
    for priority, condition, steps in (
        (10, apb.ApprovalCondition(min_amount=eur(100_000), max_amount=eur(1_000_000)), [MANAGER_STEP]),
        (20, apb.ApprovalCondition(min_amount=eur(1_000_000)), [MANAGER_STEP, FINANCE_STEP]),
    ):
        await approvals.CreateApprovalWorkflow(
            apb.CreateApprovalWorkflowRequest(
                approval_workflow=apb.ApprovalWorkflow(
                    display_name=f"priority {priority}",
                    target=common.APPROVAL_TARGET_CONTRACT,
                    priority=priority,
                    condition=condition,
                    steps=steps,
                    active=True,
                )
            ),
            metadata=admin,
        )


async def draft(contracts, who, amount: int, *, contract_type: str = "standard") -> cpb.Contract:
    return await contracts.CreateContract(
        cpb.CreateContractRequest(
            contract=cpb.Contract(
                customer=f"customers/{uuid.uuid4()}",
                title="Annual maintenance",
                contract_type=contract_type,
                amount=eur(amount),
                start_date=date_pb2.Date(year=2026, month=1, day=1),
                end_date=date_pb2.Date(year=2026, month=12, day=31),
            )
        ),
        metadata=who,
    )


async def submitted(contracts, who, amount: int, **kwargs) -> cpb.Contract:
    contract = await draft(contracts, who, amount, **kwargs)
    return await contracts.SubmitContract(
        cpb.SubmitContractRequest(name=contract.name, comment="please approve"), metadata=who
    )


def approve(name: str, comment: str = "", request_id: str = "") -> cpb.ApproveContractRequest:
    return cpb.ApproveContractRequest(name=name, comment=comment, request_id=request_id)


async def test_contracts_are_routed_by_amount(contracts, approvals, people, nats_server):
    await standard_workflows(approvals, people["admin"])

    small = await submitted(contracts, people["rita"], 99_999)
    assert small.status == common.CONTRACT_STATUS_APPROVED and small.approval == ""

    mid = await submitted(contracts, people["rita"], 500_000)
    assert mid.status == PENDING and mid.approval
    mid_approval = await approvals.GetApproval(
        apb.GetApprovalRequest(name=mid.approval), metadata=people["rita"]
    )
    assert [s.kind for s in mid_approval.steps] == [common.APPROVER_KIND_OWNER_MANAGER]
    done = await contracts.ApproveContract(approve(mid.name, "fine"), metadata=people["mia"])
    assert done.status == common.CONTRACT_STATUS_APPROVED

    large = await submitted(contracts, people["rita"], 1_000_000)  # the lower bound is inclusive
    request_id = str(uuid.uuid4())
    after_manager = await contracts.ApproveContract(
        approve(large.name, "ok", request_id), metadata=people["mia"]
    )
    retried = await contracts.ApproveContract(approve(large.name, "ok", request_id), metadata=people["mia"])
    assert after_manager.status == retried.status == PENDING  # the retry did not decide step 2
    after_finance = await contracts.ApproveContract(approve(large.name, "paid up"), metadata=people["fiona"])
    assert after_finance.status == common.CONTRACT_STATUS_APPROVED

    history = await approvals.GetApproval(
        apb.GetApprovalRequest(name=large.approval), metadata=people["fiona"]
    )
    assert history.state == common.APPROVAL_STATE_APPROVED and history.current_step == 2
    assert [(d.step, d.action, d.actor, d.comment) for d in history.history] == [
        (0, common.APPROVAL_ACTION_SUBMITTED, "rita", "please approve"),
        (0, common.APPROVAL_ACTION_APPROVED, "mia", "ok"),
        (1, common.APPROVAL_ACTION_APPROVED, "fiona", "paid up"),
    ]
    assert history.amount == eur(1_000_000) and history.owner == "rita" and history.team == "east"

    nc = await connect_nats(nats_server.url)
    try:
        js = nc.jetstream()
        contract_events = await wait_for_envelopes(js, STREAM, resource=large.name, count=3)
        approval_events = await wait_for_envelopes(js, STREAM, resource=large.approval, count=3)
        small_events = await wait_for_envelopes(js, STREAM, resource=small.name, count=2)
    finally:
        await nc.close()
    assert [e.type for e in contract_events] == [
        "crm.contract.v1.ContractCreated",
        "crm.contract.v1.ContractSubmitted",
        "crm.contract.v1.ContractApproved",
    ]
    assert [e.type for e in approval_events] == [
        "crm.contract.v1.ApprovalRequested",
        "crm.contract.v1.ApprovalRequested",
        "crm.contract.v1.ApprovalCompleted",
    ]
    second_step = events_pb2.ApprovalRequested()
    approval_events[1].payload.Unpack(second_step)
    assert (second_step.step, second_step.approver_kind, second_step.approver_role) == (
        1,
        common.APPROVER_KIND_ROLE,
        "finance",
    )
    completed = events_pb2.ApprovalCompleted()
    approval_events[2].payload.Unpack(completed)
    assert (completed.state, completed.actor) == (common.APPROVAL_STATE_APPROVED, "fiona")
    assert [e.type for e in small_events] == [
        "crm.contract.v1.ContractCreated",
        "crm.contract.v1.ContractApproved",
    ]


async def test_only_the_current_approver_may_decide(contracts, approvals, people):
    await standard_workflows(approvals, people["admin"])
    large = await submitted(contracts, people["rita"], 2_000_000)
    denied = grpc.StatusCode.PERMISSION_DENIED

    await expect_error(
        contracts.ApproveContract(approve(large.name), metadata=people["rita"]),
        denied,
        "SELF_APPROVAL_FORBIDDEN",
    )
    await expect_error(
        contracts.ApproveContract(approve(large.name), metadata=people["ron"]),
        grpc.StatusCode.NOT_FOUND,
        "CONTRACT_NOT_FOUND",
    )
    await expect_error(
        contracts.ApproveContract(approve(large.name), metadata=people["fiona"]),
        denied,
        "NOT_CURRENT_APPROVER",
    )
    await expect_error(  # a manager, but of another team: cannot read it and is not the approver
        contracts.ApproveContract(approve(large.name), metadata=people["max"]), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(
        contracts.RejectContract(cpb.RejectContractRequest(name=large.name), metadata=people["mia"]),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await contracts.ApproveContract(approve(large.name), metadata=people["mia"])
    await expect_error(  # step 2 is finance's
        contracts.ApproveContract(approve(large.name), metadata=people["mia"]), denied, "NOT_CURRENT_APPROVER"
    )
    still = await contracts.GetContract(cpb.GetContractRequest(name=large.name), metadata=people["rita"])
    assert still.status == PENDING

    # A draft is not waiting for anyone: acting on it is FAILED_PRECONDITION for those who can see it.
    fresh = await draft(contracts, people["rita"], 500_000)
    await expect_error(
        contracts.ApproveContract(approve(fresh.name), metadata=people["mia"]),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await expect_error(
        contracts.ApproveContract(approve(fresh.name), metadata=people["ron"]), grpc.StatusCode.NOT_FOUND
    )


async def test_two_managers_racing_on_one_step_decide_it_once(contracts, approvals, people, as_user):
    await standard_workflows(approvals, people["admin"])
    contract = await submitted(contracts, people["rita"], 500_000)
    other_manager = as_user("sales_manager", "mo", team="east")

    results = await asyncio.gather(
        contracts.ApproveContract(approve(contract.name, "mia says yes"), metadata=people["mia"]),
        contracts.RejectContract(
            cpb.RejectContractRequest(name=contract.name, comment="mo says no"), metadata=other_manager
        ),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, cpb.Contract)]
    lost = [r for r in results if not isinstance(r, cpb.Contract)]
    assert len(won) == 1 and len(lost) == 1
    assert error_details(lost[0]).code == grpc.StatusCode.FAILED_PRECONDITION
    final = await contracts.GetContract(cpb.GetContractRequest(name=contract.name), metadata=people["rita"])
    assert final.status == won[0].status
    approval = await approvals.GetApproval(
        apb.GetApprovalRequest(name=contract.approval), metadata=people["rita"]
    )
    decisions = [d for d in approval.history if d.action != common.APPROVAL_ACTION_SUBMITTED]
    assert len(decisions) == 1


async def test_a_step_naming_the_owner_still_does_not_let_them_approve(contracts, approvals, people):
    await approvals.CreateApprovalWorkflow(
        apb.CreateApprovalWorkflowRequest(
            approval_workflow=apb.ApprovalWorkflow(
                target=common.APPROVAL_TARGET_CONTRACT,
                condition=apb.ApprovalCondition(contract_types=["framework"]),
                steps=[apb.ApprovalStep(kind=common.APPROVER_KIND_USER, user="rita")],
                active=True,
            )
        ),
        metadata=people["admin"],
    )
    framework = await submitted(contracts, people["rita"], 50_000, contract_type="framework")
    assert framework.status == PENDING
    await expect_error(
        contracts.ApproveContract(approve(framework.name), metadata=people["rita"]),
        grpc.StatusCode.PERMISSION_DENIED,
        "SELF_APPROVAL_FORBIDDEN",
    )
    await expect_error(  # another user named by nobody, who cannot read it either
        contracts.ApproveContract(approve(framework.name), metadata=people["ron"]), grpc.StatusCode.NOT_FOUND
    )
    other_type = await submitted(contracts, people["rita"], 50_000, contract_type="service")
    assert other_type.status == common.CONTRACT_STATUS_APPROVED


async def test_reject_edit_and_resubmit_keeps_both_histories(contracts, approvals, people):
    await standard_workflows(approvals, people["admin"])
    contract = await submitted(contracts, people["rita"], 500_000)
    first_approval = contract.approval

    rejected = await contracts.RejectContract(
        cpb.RejectContractRequest(name=contract.name, comment="discount too deep"), metadata=people["mia"]
    )
    assert rejected.status == common.CONTRACT_STATUS_REJECTED
    await expect_error(  # nothing is pending any more
        contracts.ApproveContract(approve(contract.name), metadata=people["mia"]),
        grpc.StatusCode.FAILED_PRECONDITION,
    )

    edited = await contracts.UpdateContract(
        cpb.UpdateContractRequest(
            contract=cpb.Contract(name=contract.name, title="Annual maintenance, list price"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=people["rita"],
    )
    assert edited.status == common.CONTRACT_STATUS_DRAFT
    again = await contracts.SubmitContract(
        cpb.SubmitContractRequest(name=contract.name), metadata=people["rita"]
    )
    assert again.status == PENDING and again.approval and again.approval != first_approval

    listed = await approvals.ListApprovals(
        apb.ListApprovalsRequest(filter=f'target = "{contract.name}"'), metadata=people["rita"]
    )
    assert [a.name for a in listed.approvals] == [again.approval, first_approval]  # newest first
    newest, oldest = listed.approvals
    assert newest.state == common.APPROVAL_STATE_PENDING
    assert oldest.state == common.APPROVAL_STATE_REJECTED
    assert [(d.action, d.actor, d.comment) for d in oldest.history][-1] == (
        common.APPROVAL_ACTION_REJECTED,
        "mia",
        "discount too deep",
    )

    pending_only = await approvals.ListApprovals(
        apb.ListApprovalsRequest(filter=f'target = "{contract.name}" AND state = APPROVAL_STATE_PENDING'),
        metadata=people["mia"],
    )
    assert [a.name for a in pending_only.approvals] == [again.approval]
    # Another rep sees none of Rita's approvals, neither listed nor by name.
    hidden = await approvals.ListApprovals(
        apb.ListApprovalsRequest(filter=f'target = "{contract.name}"'), metadata=people["ron"]
    )
    assert list(hidden.approvals) == []
    await expect_error(
        approvals.GetApproval(apb.GetApprovalRequest(name=first_approval), metadata=people["ron"]),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_withdraw_and_awaiting_me(contracts, approvals, people, nats_server):
    await standard_workflows(approvals, people["admin"])
    mine = await submitted(contracts, people["rita"], 500_000)
    large = await submitted(contracts, people["ron"], 5_000_000)

    async def awaiting(who) -> list[str]:
        reply = await approvals.ListApprovals(apb.ListApprovalsRequest(awaiting_me=True), metadata=who)
        return [a.target for a in reply.approvals]

    assert await awaiting(people["mia"]) == [large.name, mine.name]
    assert await awaiting(people["fiona"]) == []  # nothing has reached finance yet
    assert await awaiting(people["max"]) == []  # another team's manager
    assert await awaiting(people["rita"]) == []
    page = await approvals.ListApprovals(
        apb.ListApprovalsRequest(awaiting_me=True, page_size=1), metadata=people["mia"]
    )
    assert [a.target for a in page.approvals] == [large.name] and page.next_page_token
    rest = await approvals.ListApprovals(
        apb.ListApprovalsRequest(awaiting_me=True, page_size=1, page_token=page.next_page_token),
        metadata=people["mia"],
    )
    assert [a.target for a in rest.approvals] == [mine.name] and not rest.next_page_token

    await contracts.ApproveContract(approve(large.name), metadata=people["mia"])
    assert await awaiting(people["fiona"]) == [large.name]
    visible_to_fiona = await approvals.GetApproval(
        apb.GetApprovalRequest(name=large.approval), metadata=people["fiona"]
    )
    assert visible_to_fiona.current_step == 1

    await expect_error(  # the manager may approve but not withdraw on the owner's behalf
        contracts.WithdrawContract(cpb.WithdrawContractRequest(name=mine.name), metadata=people["mia"]),
        grpc.StatusCode.PERMISSION_DENIED,
        "WITHDRAW_NOT_ALLOWED",
    )
    withdrawn = await contracts.WithdrawContract(
        cpb.WithdrawContractRequest(name=mine.name, comment="wrong customer"), metadata=people["rita"]
    )
    assert withdrawn.status == common.CONTRACT_STATUS_DRAFT
    assert await awaiting(people["mia"]) == []
    closed = await approvals.GetApproval(apb.GetApprovalRequest(name=mine.approval), metadata=people["rita"])
    assert closed.state == common.APPROVAL_STATE_WITHDRAWN
    await expect_error(
        contracts.WithdrawContract(cpb.WithdrawContractRequest(name=mine.name), metadata=people["rita"]),
        grpc.StatusCode.FAILED_PRECONDITION,
    )

    nc = await connect_nats(nats_server.url)
    try:
        js = nc.jetstream()
        contract_events = await wait_for_envelopes(js, STREAM, resource=mine.name, count=3)
        approval_events = await wait_for_envelopes(js, STREAM, resource=mine.approval, count=2)
    finally:
        await nc.close()
    assert [e.type for e in contract_events][-1] == "crm.contract.v1.ContractWithdrawn"
    completed = events_pb2.ApprovalCompleted()
    approval_events[-1].payload.Unpack(completed)
    assert (completed.state, completed.actor) == (common.APPROVAL_STATE_WITHDRAWN, "rita")


async def test_workflows_are_managed_by_admins_only(approvals, people):
    body = apb.ApprovalWorkflow(
        display_name="Big deals",
        target=common.APPROVAL_TARGET_CONTRACT,
        priority=5,
        condition=apb.ApprovalCondition(min_amount=eur(1_000_000)),
        steps=[MANAGER_STEP, FINANCE_STEP],
        active=True,
    )
    for who in ("fiona", "mia", "rita"):
        await expect_error(
            approvals.CreateApprovalWorkflow(
                apb.CreateApprovalWorkflowRequest(approval_workflow=body), metadata=people[who]
            ),
            grpc.StatusCode.PERMISSION_DENIED,
        )
    bad = apb.ApprovalWorkflow()
    bad.CopyFrom(body)
    del bad.steps[:]
    bad.steps.append(apb.ApprovalStep(kind=common.APPROVER_KIND_ROLE, role="wizard"))
    bad.condition.max_amount.CopyFrom(Money(currency_code="USD", amount_minor=5))
    details = await expect_error(
        approvals.CreateApprovalWorkflow(
            apb.CreateApprovalWorkflowRequest(approval_workflow=bad), metadata=people["admin"]
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(details.field_violations) == {
        "approval_workflow.steps[0].role",
        "approval_workflow.condition.max_amount",
    }

    created = await approvals.CreateApprovalWorkflow(
        apb.CreateApprovalWorkflowRequest(approval_workflow=body), metadata=people["admin"]
    )
    assert created.name.startswith("approvalWorkflows/") and created.etag
    seen_by_manager = await approvals.GetApprovalWorkflow(
        apb.GetApprovalWorkflowRequest(name=created.name), metadata=people["mia"]
    )
    assert list(seen_by_manager.steps) == [MANAGER_STEP, FINANCE_STEP]

    update = apb.UpdateApprovalWorkflowRequest(
        approval_workflow=apb.ApprovalWorkflow(name=created.name, active=False, etag=created.etag),
        update_mask=field_mask_pb2.FieldMask(paths=["active"]),
    )
    await expect_error(
        approvals.UpdateApprovalWorkflow(update, metadata=people["mia"]), grpc.StatusCode.PERMISSION_DENIED
    )
    updated = await approvals.UpdateApprovalWorkflow(update, metadata=people["admin"])
    assert not updated.active and updated.etag != created.etag
    await expect_error(
        approvals.UpdateApprovalWorkflow(update, metadata=people["admin"]),
        grpc.StatusCode.ABORTED,
        "STALE_ETAG",
    )
    target_change = apb.UpdateApprovalWorkflowRequest(
        approval_workflow=apb.ApprovalWorkflow(name=created.name, target=common.APPROVAL_TARGET_PAYMENT),
        update_mask=field_mask_pb2.FieldMask(paths=["target"]),
    )
    await expect_error(
        approvals.UpdateApprovalWorkflow(target_change, metadata=people["admin"]),
        grpc.StatusCode.INVALID_ARGUMENT,
    )

    listed = await approvals.ListApprovalWorkflows(
        apb.ListApprovalWorkflowsRequest(filter="active = false AND target = APPROVAL_TARGET_CONTRACT"),
        metadata=people["fiona"],
    )
    assert [w.name for w in listed.approval_workflows] == [created.name]

    await approvals.DeleteApprovalWorkflow(
        apb.DeleteApprovalWorkflowRequest(name=created.name, etag=updated.etag), metadata=people["admin"]
    )
    await expect_error(
        approvals.GetApprovalWorkflow(
            apb.GetApprovalWorkflowRequest(name=created.name), metadata=people["admin"]
        ),
        grpc.StatusCode.NOT_FOUND,
        "APPROVAL_WORKFLOW_NOT_FOUND",
    )
