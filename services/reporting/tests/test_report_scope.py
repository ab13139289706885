"""report_scope: the caller's grant narrowed by the query's team/owner, as SQL and in memory."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from crm.reporting.v1 import common_pb2
from crm_reporting.service.report_scope import REPORT_SCOPE_DENIED, report_scope
from crm_shared.access import AccessPolicy
from crm_shared.errors import InvalidArgument, PermissionDenied
from crm_shared.principal import Principal

DEPS = SimpleNamespace(policy=AccessPolicy.load())
ROWS = [
    ("rita", "east"),
    ("rob", "east"),
    ("wes", "west"),
    ("", "east"),
    ("rita", "west"),  # a record of rita's kept in another team
]


def who(role: str, subject: str = "rita", team: str = "east") -> Principal:
    return Principal(subject=subject, roles=frozenset({role}), team=team)


def query(team: str = "", owner: str = "", start=None, end=None) -> common_pb2.ReportQuery:
    q = common_pb2.ReportQuery(team=team, owner=owner)
    if start is not None:
        q.period.start_time.FromDatetime(start)
    if end is not None:
        q.period.end_time.FromDatetime(end)
    return q


def visible(scope) -> list[tuple[str, str]]:
    engine = sa.create_engine("sqlite://")
    table = sa.Table("t", sa.MetaData(), sa.Column("owner", sa.String), sa.Column("team", sa.String))
    with engine.begin() as conn:
        table.metadata.create_all(conn)
        conn.execute(table.insert(), [{"owner": o, "team": t} for o, t in ROWS])
        rows = conn.execute(
            sa.select(table.c.owner, table.c.team)
            .where(scope.predicate(table.c.owner, table.c.team))
            .order_by(table.c.owner, table.c.team)
        )
        return [tuple(r) for r in rows]


def test_rep_sees_only_own_records():
    scope = report_scope(DEPS, who("sales_rep"), "sales_reports", query())
    assert visible(scope) == [("rita", "east"), ("rita", "west")]
    assert scope.subject == "rita"


def test_manager_sees_team_and_narrows_by_owner():
    manager = who("sales_manager", "mia", "east")
    assert visible(report_scope(DEPS, manager, "sales_reports", query())) == [
        ("", "east"),
        ("rita", "east"),
        ("rob", "east"),
    ]
    assert visible(report_scope(DEPS, manager, "sales_reports", query(owner="rob"))) == [("rob", "east")]
    # Narrowing to someone of another team inside the own team finds nothing (never widens).
    assert visible(report_scope(DEPS, manager, "sales_reports", query(owner="wes"))) == []


def test_admin_narrows_by_team():
    scope = report_scope(DEPS, who("admin"), "sales_reports", query(team="west"))
    assert visible(scope) == [("rita", "west"), ("wes", "west")]
    assert scope.team == "west"


@pytest.mark.parametrize(
    ("role", "q"),
    [
        ("sales_rep", query(owner="rob")),
        ("sales_rep", query(team="west")),
        ("sales_manager", query(team="west")),
    ],
)
def test_asking_outside_the_scope_is_denied(role, q):
    with pytest.raises(PermissionDenied) as raised:
        report_scope(DEPS, who(role), "sales_reports", q)
    assert raised.value.reason == REPORT_SCOPE_DENIED


def test_no_grant_is_denied():
    with pytest.raises(PermissionDenied) as raised:
        report_scope(DEPS, who("support_agent"), "sales_reports", query())
    assert raised.value.reason == "ACTION_NOT_ALLOWED"


def test_period_bounds():
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    scope = report_scope(DEPS, who("admin"), "sales_reports", query(start=start, end=end))
    assert (scope.start, scope.end) == (start, end)
    assert scope.in_period(start) and not scope.in_period(end)
    open_scope = report_scope(DEPS, who("admin"), "sales_reports", query())
    assert open_scope.start is None and open_scope.end is None
    assert report_scope(DEPS, who("admin"), "sales_reports", None).end is None
    with pytest.raises(InvalidArgument):
        report_scope(DEPS, who("admin"), "sales_reports", query(start=end, end=start))


@settings(max_examples=100, deadline=None)
@given(
    role=st.sampled_from(["admin", "sales_manager", "sales_rep"]),
    subject=st.sampled_from(["rita", "rob", "wes"]),
    team=st.sampled_from(["east", "west"]),
    q_team=st.sampled_from(["", "east", "west"]),
    q_owner=st.sampled_from(["", "rita", "rob", "wes"]),
)
def test_predicate_equals_permits_and_never_widens(role, subject, team, q_team, q_owner):
    principal = who(role, subject, team)
    try:
        scope = report_scope(DEPS, principal, "sales_reports", query(team=q_team, owner=q_owner))
    except PermissionDenied:
        return
    rows = visible(scope)
    assert rows == sorted(r for r in ROWS if scope.permits(owner=r[0], team=r[1]))
    unnarrowed = visible(report_scope(DEPS, principal, "sales_reports", query()))
    assert set(rows) <= set(unnarrowed)
