"""Service desk metrics and agenda rules (pure): hand-computed values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_reporting.domain import agenda as ag
from crm_reporting.domain import service_metrics as sm

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def ticket(
    name,
    *,
    assignee="ann",
    team="t1",
    status=sm.STATUS_OPEN,
    created=T0,
    responded=None,
    resolved=None,
    frbs=None,
    policy="slaPolicies/p",
    fr_breached=False,
    res_breached=False,
):
    return sm.TicketFact(
        ticket=name,
        assignee=assignee,
        team=team,
        status=status,
        sla_policy=policy,
        create_time=created,
        first_response_time=responded,
        resolve_time=resolved,
        first_response_business_seconds=frbs,
        first_response_breached=fr_breached,
        resolution_breached=res_breached,
    )


def test_stats_hand_computed():
    h = timedelta(hours=1)
    tickets = [
        ticket("a", status=sm.STATUS_RESOLVED, responded=T0 + h, resolved=T0 + 4 * h, frbs=600),
        ticket(
            "b", status=sm.STATUS_CLOSED, responded=T0 + h, resolved=T0 + 2 * h, frbs=1800, fr_breached=True
        ),
        ticket("c", status=sm.STATUS_OPEN, responded=T0 + h, frbs=300),
        ticket("d", status=sm.STATUS_NEW, res_breached=True, policy=""),
        # Created before the period: only its resolution counts.
        ticket("e", status=sm.STATUS_RESOLVED, created=T0 - 10 * h, resolved=T0 + h, frbs=99999),
    ]
    breaches = [sm.BreachFact("ann", "t1", T0 + h), sm.BreachFact("ann", "t1", T0 - 2 * h)]
    answers = [
        sm.CsatFact("ann", "t1", 5, True, T0 + h),
        sm.CsatFact("ann", "t1", 3, False, T0 + h),
        sm.CsatFact("ann", "t1", 4, True, T0 + h),
    ]
    s = sm.compute_stats(tickets, breaches, answers, start=T0, end=T0 + 100 * h)
    assert s.tickets_created == 4
    assert s.tickets_resolved == 3
    assert s.backlog == 2
    # a, b, c have a policy and a first response; b breached: 2/3.
    assert s.first_response_sla_met_bp == 6667
    # a, b resolved under a policy, neither breached; d has no policy.
    assert s.resolution_sla_met_bp == 10000
    assert s.sla_breaches == 1
    assert s.average_first_response_seconds == (600 + 1800 + 300) / 3
    assert s.median_first_response_seconds == 600
    assert s.average_resolution_seconds == (4 * 3600 + 2 * 3600 + 11 * 3600) / 3
    assert s.csat_responses == 3
    assert s.csat_average == 4.0
    assert s.csat_satisfied_bp == 6667
    assert s.first_contact_resolution_bp == 6667


def test_grouped_by_agent_and_team():
    tickets = [ticket("a", assignee="ann", team="t1"), ticket("b", assignee="bob", team="t1")]
    rows = sm.grouped_stats(tickets, [], [], by_team=False, start=None, end=None)
    assert [(k, s.tickets_created) for k, s in rows] == [("ann", 1), ("bob", 1)]
    rows = sm.grouped_stats(tickets, [], [], by_team=True, start=None, end=None)
    assert [(k, s.backlog) for k, s in rows] == [("t1", 2)]


@settings(max_examples=100)
@given(part=st.integers(0, 10_000), extra=st.integers(0, 10_000))
def test_share_bp_is_bounded_and_exact_at_ends(part, extra):
    whole = part + extra
    bp = sm.share_bp(part, whole)
    assert 0 <= bp <= 10_000
    if whole:
        assert abs(bp - part * 10_000 / whole) <= 0.5
    if part == whole and whole:
        assert bp == 10_000


def test_agenda_order_overdue_first_then_due_time():
    now = T0

    def item(i, kind, due):
        return ag.Item(i, kind, "u", "r", "t", "", due, "", 0, now)

    items = [
        item("late", ag.TASK_DUE, now + timedelta(days=2)),
        item("soon", ag.TASK_DUE, now + timedelta(hours=1)),
        item("past", ag.TASK_DUE, now - timedelta(hours=1)),
        item("overdue-kind", ag.RECEIVABLE_OVERDUE, now + timedelta(days=1)),
    ]
    assert [i.id for i in ag.ordered(items, now)] == ["past", "overdue-kind", "soon", "late"]
    until = ag.default_until(now)
    assert until == datetime(2026, 3, 9, tzinfo=UTC)
    assert not ag.visible(item("x", ag.TASK_DUE, now + timedelta(days=30)), now=now, until=until)
    assert ag.visible(item("y", ag.RECEIVABLE_OVERDUE, now + timedelta(days=30)), now=now, until=until)


def test_approver_spec_and_awaits():
    role = ag.approver_spec(kind=1, role="finance", user="", team="east")
    assert ag.awaits(role, owner="rita", subject="fay", roles=frozenset({"finance"}), team="west")
    assert not ag.awaits(role, owner="fay", subject="fay", roles=frozenset({"finance"}), team="west")
    user = ag.approver_spec(kind=2, role="", user="ulf", team="east")
    assert ag.awaits(user, owner="rita", subject="ulf", roles=frozenset(), team="")
    manager = ag.approver_spec(kind=3, role="", user="", team="east")
    assert ag.awaits(manager, owner="rita", subject="mia", roles=frozenset({"sales_manager"}), team="east")
    assert not ag.awaits(
        manager, owner="rita", subject="max", roles=frozenset({"sales_manager"}), team="west"
    )
    assert ag.approver_spec(kind=3, role="", user="", team="") == ag.ApproverSpec()
