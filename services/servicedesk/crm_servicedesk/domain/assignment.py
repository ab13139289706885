"""Support teams and the pure choice of an assignee (manual, round-robin, least-loaded).

The turn is the member after the one who got the latest automatic assignment (in the team's
member order, wrapping around); unavailable members are skipped. Least-loaded picks the
available member with the fewest open tickets and breaks ties by that same turn, so equal
loads still rotate instead of always landing on the first member.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from crm_shared.errors import FailedPrecondition, Violations

MAX_MEMBERS = 500


class AssignmentStrategy(enum.StrEnum):
    MANUAL = "manual"
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"

    @property
    def automatic(self) -> bool:
        return self is not AssignmentStrategy.MANUAL


@dataclass(frozen=True)
class TeamMember:
    agent: str
    available: bool = True


@dataclass(kw_only=True)
class SupportTeam:
    id: str
    create_time: datetime
    update_time: datetime
    display_name: str = ""
    members: list[TeamMember] = field(default_factory=list)
    strategy: AssignmentStrategy = AssignmentStrategy.MANUAL
    last_assignee: str = ""
    row_version: int = 1

    @property
    def name(self) -> str:
        return f"supportTeams/{self.id}"

    def is_member(self, agent: str) -> bool:
        return any(member.agent == agent for member in self.members)


def check_members(members: Sequence[TeamMember], *, path: str, violations: Violations) -> list[TeamMember]:
    """Agents named once each, at most MAX_MEMBERS."""
    seen: set[str] = set()
    for index, member in enumerate(members):
        if not member.agent.strip():
            violations.add(f"{path}.members[{index}].agent", "is required")
        elif member.agent in seen:
            violations.add(f"{path}.members[{index}].agent", f"{member.agent} is listed twice")
        seen.add(member.agent)
    if len(members) > MAX_MEMBERS:
        violations.add(f"{path}.members", f"at most {MAX_MEMBERS} members")
    return list(members)


def in_turn(members: Sequence[TeamMember], last_assignee: str) -> list[str]:
    """Available agents in turn order: starting right after `last_assignee`, wrapping around."""
    agents = [member.agent for member in members]
    start = agents.index(last_assignee) + 1 if last_assignee in agents else 0
    rotated = list(members[start:]) + list(members[:start])
    return [member.agent for member in rotated if member.available]


def choose_round_robin(members: Sequence[TeamMember], last_assignee: str) -> str | None:
    """The next available member in turn; None when nobody is available."""
    candidates = in_turn(members, last_assignee)
    return candidates[0] if candidates else None


def choose_least_loaded(
    members: Sequence[TeamMember], last_assignee: str, open_tickets: Mapping[str, int]
) -> str | None:
    """The available member with the fewest open tickets; ties go to the one whose turn is next."""
    candidates = in_turn(members, last_assignee)
    if not candidates:
        return None
    return min(enumerate(candidates), key=lambda pair: (open_tickets.get(pair[1], 0), pair[0]))[1]


def choose(
    team: SupportTeam, strategy: AssignmentStrategy, open_tickets: Mapping[str, int] | None = None
) -> str | None:
    """The agent an automatic strategy picks in `team` (None: nobody available)."""
    if strategy is AssignmentStrategy.ROUND_ROBIN:
        return choose_round_robin(team.members, team.last_assignee)
    if strategy is AssignmentStrategy.LEAST_LOADED:
        return choose_least_loaded(team.members, team.last_assignee, open_tickets or {})
    raise ValueError(f"{strategy} is not an automatic strategy")


def check_manual_assignee(team: SupportTeam | None, assignee: str) -> None:
    """A named assignee must belong to the team when the team lists members."""
    if team is not None and team.members and not team.is_member(assignee):
        raise FailedPrecondition(
            f"{assignee} is not a member of {team.name}",
            reason="ASSIGNEE_NOT_IN_TEAM",
            metadata={"team": team.name, "assignee": assignee},
        )
