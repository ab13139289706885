"""Approval routing and who may act, as pure rules (no database, no gRPC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_contract.domain import approvals as rules
from crm_contract.domain.approvals import (
    ApprovalAction,
    ApprovalState,
    ApproverKind,
    Condition,
    Step,
    TargetType,
    Workflow,
    WorkflowInput,
)
from crm_shared.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from crm_shared.principal import Principal

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ROLES = {"admin", "finance", "sales_manager", "sales_rep"}

MANAGER = Step(ApproverKind.OWNER_MANAGER, display_name="Manager")
FINANCE = Step(ApproverKind.ROLE, role="finance", display_name="Finance")


def workflow(n: int, *, priority=0, lo=None, hi=None, currency="EUR", types=(), active=True, target=None):
    return Workflow(
        id=f"wf-{n:04d}",
        target=target or TargetType.CONTRACT,
        create_time=T0 + timedelta(seconds=n),
        update_time=T0,
        priority=priority,
        condition=Condition(
            currency=currency if (lo is not None or hi is not None) else "",
            min_amount=lo,
            max_amount=hi,
            contract_types=tuple(types),
        ),
        steps=(MANAGER,),
        active=active,
    )


def person(subject: str, role: str, team: str = "east") -> Principal:
    return Principal(subject=subject, roles=frozenset({role}), team=team)


def pending(steps=(MANAGER, FINANCE), *, owner="rita", submitter="rita", team="east") -> rules.Approval:
    wf = Workflow(id="wf", target=TargetType.CONTRACT, create_time=T0, update_time=T0, steps=tuple(steps))
    return rules.open_approval(
        wf,
        approval_id="ap",
        target="contracts/c1",
        owner=owner,
        team=team,
        currency="EUR",
        amount=1_000_000,
        submitter=submitter,
        comment="please",
        now=T0,
    )


# --- routing ---------------------------------------------------------------------------------------


def test_amount_bounds_are_inclusive_below_and_exclusive_above_in_one_currency():
    cond = Condition(currency="EUR", min_amount=100_000, max_amount=500_000)
    assert not cond.matches(currency="EUR", amount=99_999, contract_type="standard")
    assert cond.matches(currency="EUR", amount=100_000, contract_type="standard")
    assert cond.matches(currency="EUR", amount=499_999, contract_type="standard")
    assert not cond.matches(currency="EUR", amount=500_000, contract_type="standard")
    assert not cond.matches(currency="USD", amount=200_000, contract_type="standard")


def test_contract_types_limit_a_workflow_only_when_listed():
    assert Condition(contract_types=("framework",)).matches(
        currency="EUR", amount=1, contract_type="framework"
    )
    assert not Condition(contract_types=("framework",)).matches(
        currency="EUR", amount=1, contract_type="standard"
    )
    assert Condition().matches(currency="JPY", amount=0, contract_type="anything")


def test_no_matching_workflow_means_no_approval_and_inactive_or_payment_workflows_are_ignored():
    flows = [
        workflow(1, lo=0, hi=100, active=True),
        workflow(2, lo=0, active=False),
        workflow(3, lo=0, target=TargetType.PAYMENT),
    ]
    assert rules.choose_workflow(flows, target=TargetType.CONTRACT, currency="EUR", amount=500) is None
    chosen = rules.choose_workflow(flows, target=TargetType.PAYMENT, currency="EUR", amount=500)
    assert chosen is not None and chosen.id == "wf-0003"


bounds = st.one_of(st.none(), st.integers(min_value=0, max_value=2_000))
flow_specs = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3),  # priority: small range, so ties on priority happen
        bounds,
        bounds,
        st.sampled_from(["EUR", "USD"]),
        st.sampled_from([(), ("standard",), ("framework",)]),
        st.booleans(),
    ),
    max_size=8,
)


@settings(max_examples=100, deadline=None)
@given(
    specs=flow_specs,
    amount=st.integers(min_value=0, max_value=2_500),
    currency=st.sampled_from(["EUR", "USD"]),
    contract_type=st.sampled_from(["standard", "framework"]),
    order=st.randoms(use_true_random=False),
)
def test_the_chosen_workflow_is_always_the_first_match_by_priority_then_creation(
    specs, amount, currency, contract_type, order
):
    flows = [
        workflow(n, priority=p, lo=lo, hi=hi, currency=cur, types=types, active=active)
        for n, (p, lo, hi, cur, types, active) in enumerate(specs)
    ]
    shuffled = list(flows)
    order.shuffle(shuffled)  # storage order must not matter
    chosen = rules.choose_workflow(
        shuffled, target=TargetType.CONTRACT, currency=currency, amount=amount, contract_type=contract_type
    )

    def matches(w: Workflow) -> bool:
        c = w.condition
        return (
            w.active
            and (not c.currency or c.currency == currency)
            and (c.min_amount is None or amount >= c.min_amount)
            and (c.max_amount is None or amount < c.max_amount)
            and (not c.contract_types or contract_type in c.contract_types)
        )

    matching = [w for w in flows if matches(w)]
    if not matching:
        assert chosen is None
        return
    assert chosen is not None and matches(chosen)
    # Nothing that matches comes before it: no lower priority, and no older one at the same priority.
    for other in matching:
        assert (chosen.priority, chosen.create_time) <= (other.priority, other.create_time)


# --- who may act -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "principal", "allowed"),
    [
        (MANAGER, person("mia", "sales_manager", "east"), True),
        (MANAGER, person("max", "sales_manager", "west"), False),  # another team's manager
        (MANAGER, person("fiona", "finance", "east"), False),  # the right team, not a manager
        (MANAGER, person("nomad", "sales_manager", ""), False),
        (FINANCE, person("fiona", "finance", ""), True),
        (FINANCE, person("mia", "sales_manager", "east"), False),
        (Step(ApproverKind.USER, user="uma"), person("uma", "sales_rep"), True),
        (Step(ApproverKind.USER, user="uma"), person("ulf", "admin"), False),  # not even an admin
    ],
)
def test_eligibility_matrix(step, principal, allowed):
    assert rules.step_allows(step, principal, target_team="east") is allowed


def test_a_team_less_target_has_no_owner_manager():
    assert not rules.step_allows(MANAGER, person("mia", "sales_manager", ""), target_team="")


def test_owner_and_submitter_never_approve_even_when_a_step_names_them():
    owned = pending(steps=(Step(ApproverKind.USER, user="rita"),))
    with pytest.raises(PermissionDenied) as caught:
        rules.approve(owned, person("rita", "sales_rep"), comment="", now=T0)
    assert caught.value.reason == "SELF_APPROVAL_FORBIDDEN"

    submitted_by_manager = pending(owner="rita", submitter="mia")
    with pytest.raises(PermissionDenied) as caught:
        rules.approve(submitted_by_manager, person("mia", "sales_manager"), comment="", now=T0)
    assert caught.value.reason == "SELF_APPROVAL_FORBIDDEN"


def test_only_the_current_step_decides_and_one_person_approves_one_step():
    approval = pending(steps=(FINANCE, FINANCE))
    with pytest.raises(PermissionDenied) as caught:
        rules.approve(approval, person("mia", "sales_manager"), comment="", now=T0)
    assert caught.value.reason == "NOT_CURRENT_APPROVER"

    after_first = rules.approve(approval, person("fiona", "finance", ""), comment="ok", now=T0)
    assert after_first.state is ApprovalState.PENDING and after_first.current_step == 1
    with pytest.raises(PermissionDenied) as caught:
        rules.approve(after_first, person("fiona", "finance", ""), comment="again", now=T0)
    assert caught.value.reason == "ALREADY_APPROVED_A_STEP"

    done = rules.approve(after_first, person("fred", "finance", ""), comment="", now=T0)
    assert done.state is ApprovalState.APPROVED and done.current_step == 2 and done.current is None
    assert [(d.step, d.action, d.actor) for d in done.history] == [
        (0, ApprovalAction.SUBMITTED, "rita"),
        (0, ApprovalAction.APPROVED, "fiona"),
        (1, ApprovalAction.APPROVED, "fred"),
    ]
    with pytest.raises(FailedPrecondition):
        rules.reject(done, person("fay", "finance", ""), comment="late", now=T0)


def test_reject_closes_at_the_current_step_and_withdraw_is_for_the_owner_or_submitter():
    rejected = rules.reject(pending(), person("mia", "sales_manager"), comment="too cheap", now=T0)
    assert rejected.state is ApprovalState.REJECTED and rejected.current_step == 0
    assert rejected.history[-1].comment == "too cheap"

    with pytest.raises(PermissionDenied) as caught:
        rules.withdraw(pending(), person("mia", "sales_manager"), comment="", now=T0)
    assert caught.value.reason == "WITHDRAW_NOT_ALLOWED"
    withdrawn = rules.withdraw(pending(), person("rita", "sales_rep"), comment="oops", now=T0)
    assert withdrawn.state is ApprovalState.WITHDRAWN
    assert not rules.may_act_now(withdrawn, person("mia", "sales_manager"))


# --- workflow validation ---------------------------------------------------------------------------


def test_a_workflow_needs_a_target_steps_and_consistent_bounds():
    bad = WorkflowInput(
        target=None,
        steps=(Step(ApproverKind.ROLE, role="wizard"), Step(ApproverKind.USER)),
        condition=Condition(min_amount=500, max_amount=100),
        min_currency="EUR",
        max_currency="USD",
    )
    with pytest.raises(InvalidArgument) as caught:
        rules.new_workflow(bad, workflow_id="w", now=T0, known_roles=ROLES)
    fields = {v.field for v in caught.value.field_violations}
    assert fields == {
        "approval_workflow.target",
        "approval_workflow.steps[0].role",
        "approval_workflow.steps[1].user",
        "approval_workflow.condition.max_amount",
    }
    with pytest.raises(InvalidArgument) as caught:
        rules.new_workflow(
            WorkflowInput(target=TargetType.PAYMENT), workflow_id="w", now=T0, known_roles=ROLES
        )
    assert [v.field for v in caught.value.field_violations] == ["approval_workflow.steps"]

    ok = rules.new_workflow(
        WorkflowInput(
            target=TargetType.CONTRACT,
            steps=(MANAGER,),
            condition=Condition(min_amount=100),
            min_currency="EUR",
        ),
        workflow_id="w",
        now=T0,
        known_roles=ROLES,
    )
    assert ok.condition.currency == "EUR" and ok.condition.max_amount is None
