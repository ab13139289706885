"""The caller's data scope for one report: the policy grant narrowed by the query's team/owner.

Every report applies it inside its SQL (never by filtering results afterwards):

    scope = report_scope(deps, principal, "sales_reports", request.query)
    stmt = stmt.where(scope.predicate(opportunities.c.owner, opportunities.c.team))
    if scope.start is not None: ...

`team` / `owner` in the query narrow the grant and never widen it: asking for a team or an
owner outside the grant is PERMISSION_DENIED (reason REPORT_SCOPE_DENIED) rather than an
empty report, so a rep cannot mistake "not allowed" for "no numbers".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from crm_shared.access.policy import Scope, ScopeGrant
from crm_shared.access.sql import scope_predicate
from crm_shared.errors import InvalidArgument, PermissionDenied

REPORT_SCOPE_DENIED = "REPORT_SCOPE_DENIED"


@dataclass(frozen=True)
class ReportScope:
    grant: ScopeGrant
    start: datetime | None
    end: datetime | None
    # The query's narrowing ("" = none).
    team: str
    owner: str

    @property
    def subject(self) -> str:
        """The caller (JWT subject)."""
        return self.grant.subject

    @property
    def scope(self) -> Scope:
        return self.grant.scope

    def predicate(self, owner_col: sa.ColumnElement, team_col: sa.ColumnElement) -> sa.ColumnElement[bool]:
        """Rows of the caller's scope, narrowed by the query's team and owner."""
        clauses = [scope_predicate(self.grant, owner=owner_col, team=team_col)]
        if self.team:
            clauses.append(team_col == self.team)
        if self.owner:
            clauses.append(owner_col == self.owner)
        return sa.and_(*clauses)

    def permits(self, *, owner: str, team: str) -> bool:
        """The same rule as `predicate`, for one record in memory."""
        if not self.grant.permits(owner=owner, team=team):
            return False
        if self.team and team != self.team:
            return False
        return not (self.owner and owner != self.owner)

    def in_period(self, when: datetime | None) -> bool:
        """[start, end); open ends match everything."""
        if when is None:
            return self.start is None and self.end is None
        when = _aware(when)
        if self.start is not None and when < self.start:
            return False
        return not (self.end is not None and when >= self.end)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _timestamp(message, field_name: str) -> datetime | None:
    if message is None or not message.HasField(field_name):
        return None
    return getattr(message, field_name).ToDatetime(tzinfo=UTC)


def period_bounds(query_pb) -> tuple[datetime | None, datetime | None]:
    """(start, end) of `query.period`, aware UTC datetimes or None for open ends."""
    if query_pb is None or not query_pb.HasField("period"):
        return None, None
    start = _timestamp(query_pb.period, "start_time")
    end = _timestamp(query_pb.period, "end_time")
    if start is not None and end is not None and end < start:
        raise InvalidArgument.for_field("query.period.end_time", "must not be before start_time")
    return start, end


def report_scope(deps, principal, resource: str, query_pb) -> ReportScope:
    """The caller's grant on `resource` ("read") narrowed by the query (a ReportQuery or None).

    `deps` is anything with a `.policy` (the ReportingApp).
    """
    grant = deps.policy.grant(principal, resource, "read")
    team = query_pb.team if query_pb is not None else ""
    owner = query_pb.owner if query_pb is not None else ""
    if team and grant.scope is not Scope.ALL and team != grant.team:
        raise PermissionDenied(
            f"team {team!r} is outside your {resource} scope",
            reason=REPORT_SCOPE_DENIED,
            metadata={"resource": resource, "team": team},
        )
    if owner and grant.scope is Scope.OWN and owner != grant.subject:
        raise PermissionDenied(
            f"owner {owner!r} is outside your {resource} scope",
            reason=REPORT_SCOPE_DENIED,
            metadata={"resource": resource, "owner": owner},
        )
    start, end = period_bounds(query_pb)
    return ReportScope(grant=grant, start=start, end=end, team=team, owner=owner)
