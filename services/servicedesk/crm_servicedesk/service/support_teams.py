"""Use cases for support teams: the queues, their agents and the automatic assignment strategy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession

from crm_servicedesk.adapters.support_team_repository import SupportTeamRepository
from crm_servicedesk.adapters.ticket_repository import TicketRepository
from crm_servicedesk.domain.assignment import AssignmentStrategy, SupportTeam, TeamMember, check_members
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import Page, parse_list_request
from crm_shared.errors import AlreadyExists, FailedPrecondition, NotFound, Violations
from crm_shared.principal import Principal

SUPPORT_TEAMS = "support_teams"
UPDATABLE_FIELDS = ("display_name", "members", "strategy")
OUTPUT_ONLY_FIELDS = ("name", "create_time", "update_time", "etag")
MAX_DISPLAY_NAME = 200


@dataclass(frozen=True)
class TeamInput:
    display_name: str = ""
    members: list[TeamMember] | None = None
    strategy: AssignmentStrategy | None = None


@dataclass(frozen=True)
class TeamView:
    """A team with each member's open tickets (what the API shows)."""

    team: SupportTeam
    open_tickets: dict[str, int]


def team_not_found(team_id: str) -> NotFound:
    name = f"supportTeams/{team_id}"
    return NotFound(f"{name} not found", reason="SUPPORT_TEAM_NOT_FOUND", metadata={"resource": name})


async def _view(session: AsyncSession, team: SupportTeam) -> TeamView:
    counts = await TicketRepository(session).open_counts([m.agent for m in team.members])
    return TeamView(team, counts)


def _checked(data: TeamInput, *, violations: Violations) -> tuple[str, list[TeamMember]]:
    display_name = data.display_name.strip()
    if len(display_name) > MAX_DISPLAY_NAME:
        violations.add("support_team.display_name", f"at most {MAX_DISPLAY_NAME} characters")
    members = check_members(data.members or [], path="support_team", violations=violations)
    violations.raise_if_any("the support team has invalid fields")
    return display_name, members


async def get_team(session: AsyncSession, deps, principal: Principal, team_id: str) -> TeamView:
    deps.policy.grant(principal, SUPPORT_TEAMS, "read")
    team = await SupportTeamRepository(session).get(team_id)
    if team is None:
        raise team_not_found(team_id)
    return await _view(session, team)


async def list_teams(
    session: AsyncSession, deps, principal: Principal, *, page_size: int, page_token: str
) -> Page:
    deps.policy.grant(principal, SUPPORT_TEAMS, "read")
    request = parse_list_request(
        deps.page_tokens,
        collection=SUPPORT_TEAMS,
        caller=principal.subject,
        page_size=page_size,
        page_token=page_token,
        order_by="name",
        orderable=("name",),
        default_order="name",
    )
    teams = await SupportTeamRepository(session).list(after=request.after, limit=request.limit + 1)
    page = request.page(teams, deps.page_tokens, key=lambda t: [t.id])
    return Page([await _view(session, team) for team in page.items], page.next_page_token)


async def create_team(uow, deps, principal: Principal, team_id: str, data: TeamInput) -> TeamView:
    deps.policy.grant(principal, SUPPORT_TEAMS, "create")
    display_name, members = _checked(data, violations=Violations())
    repo = SupportTeamRepository(uow.session)
    if await repo.get(team_id) is not None:
        raise AlreadyExists(
            f"supportTeams/{team_id} already exists",
            reason="SUPPORT_TEAM_EXISTS",
            metadata={"resource": f"supportTeams/{team_id}"},
        )
    team = SupportTeam(
        id=team_id,
        display_name=display_name,
        members=members,
        strategy=data.strategy or AssignmentStrategy.MANUAL,
        create_time=uow.now,
        update_time=uow.now,
    )
    await repo.add(team)
    uow.audit("created", team.name, ["display_name", "members", "strategy"])
    return await _view(uow.session, team)


async def update_team(
    uow, deps, principal: Principal, team_id: str, data: TeamInput, mask: Sequence[str], etag: str
) -> TeamView:
    fields = resolve_update_mask(mask, writable=UPDATABLE_FIELDS, output_only=OUTPUT_ONLY_FIELDS)
    deps.policy.grant(principal, SUPPORT_TEAMS, "update")
    repo = SupportTeamRepository(uow.session)
    current = await repo.get(team_id, lock=True)
    if current is None:
        raise team_not_found(team_id)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    display_name, members = _checked(data, violations=Violations())
    changes: dict[str, object] = {}
    if "display_name" in fields:
        changes["display_name"] = display_name
    if "members" in fields:
        changes["members"] = members
    if "strategy" in fields:
        changes["strategy"] = data.strategy or AssignmentStrategy.MANUAL
    changed = [name for name, value in changes.items() if getattr(current, name) != value]
    if not changed:
        return await _view(uow.session, current)
    updated = replace(
        current,
        **{name: changes[name] for name in changed},
        update_time=uow.now,
        row_version=current.row_version + 1,
    )
    await repo.save(updated, current.row_version)
    uow.audit("updated", updated.name, changed)
    return await _view(uow.session, updated)


async def delete_team(uow, deps, principal: Principal, team_id: str, etag: str) -> None:
    deps.policy.grant(principal, SUPPORT_TEAMS, "delete")
    repo = SupportTeamRepository(uow.session)
    current = await repo.get(team_id, lock=True)
    if current is None:
        raise team_not_found(team_id)
    check_etag(etag, current.id, current.row_version, resource=current.name)
    open_tickets = await TicketRepository(uow.session).count_open_in_team(team_id)
    if open_tickets:
        raise FailedPrecondition(
            f"{current.name} still has {open_tickets} open tickets; move or resolve them first",
            reason="SUPPORT_TEAM_HAS_OPEN_TICKETS",
            metadata={"resource": current.name, "open_tickets": str(open_tickets)},
        )
    await repo.remove(team_id)
    uow.audit("deleted", current.name, [])
