"""Data scope as a SQL predicate: applied inside queries, never by filtering results afterwards."""

from __future__ import annotations

import sqlalchemy as sa

from crm_shared.access.policy import Scope, ScopeGrant


def scope_predicate(
    grant: ScopeGrant, *, owner: sa.ColumnElement, team: sa.ColumnElement
) -> sa.ColumnElement[bool]:
    if grant.scope is Scope.ALL:
        return sa.true()
    if grant.scope is Scope.TEAM:
        # A caller without a team sees no team's records rather than every record with an empty team.
        return team == grant.team if grant.team else sa.false()
    if grant.scope is Scope.OWN:
        return owner == grant.subject
    return sa.false()
