"""Data scope as a SQL predicate: applied inside queries, never by filtering results afterwards."""

from __future__ import annotations

import sqlalchemy as sa

from crm_shared.access.policy import Scope, ScopeGrant


def scope_predicate(
    grant: ScopeGrant,
    *,
    owner: sa.ColumnElement,
    team: sa.ColumnElement,
    shared_with: sa.ColumnElement[bool] | None = None,
) -> sa.ColumnElement[bool]:
    """`shared_with`: the records shared with the caller as a collaborator ("own" includes them)."""
    if grant.scope is Scope.ALL:
        return sa.true()
    if grant.scope is Scope.TEAM:
        # A caller without a team sees no team's records rather than every record with an empty team.
        return team == grant.team if grant.team else sa.false()
    if grant.scope is Scope.OWN:
        return owner == grant.subject if shared_with is None else sa.or_(owner == grant.subject, shared_with)
    return sa.false()
