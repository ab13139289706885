"""Support teams and assignment: manual, round-robin, least-loaded, and auto-assignment on creation.

Pure choice rules (hypothesis) plus the API on SQLite and PostgreSQL: the turn is remembered in
the database, unavailable members are skipped, a manual assignee must be a member, and a team
with open tickets cannot be deleted.
"""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from crm.servicedesk.v1 import common_pb2 as cpb
from crm.servicedesk.v1 import support_team_service_pb2 as tpb
from crm.servicedesk.v1 import support_team_service_pb2_grpc as tpb_grpc
from crm.servicedesk.v1 import ticket_service_pb2 as pb
from crm.servicedesk.v1 import ticket_service_pb2_grpc as pb_grpc
from crm_servicedesk.domain.assignment import (
    TeamMember,
    choose_least_loaded,
    choose_round_robin,
    in_turn,
)
from crm_shared.grpc.status import error_details

ROUND_ROBIN = cpb.ASSIGNMENT_STRATEGY_ROUND_ROBIN
LEAST_LOADED = cpb.ASSIGNMENT_STRATEGY_LEAST_LOADED

members_strategy = st.lists(
    st.builds(TeamMember, agent=st.sampled_from("abcdefgh"), available=st.booleans()),
    max_size=8,
    unique_by=lambda m: m.agent,
)


@settings(max_examples=150)
@given(members=members_strategy, last=st.sampled_from(["", *"abcdefghz"]))
def test_round_robin_picks_the_next_available_member_after_the_last_one(members, last):
    picked = choose_round_robin(members, last)
    available = [m.agent for m in members if m.available]
    if not available:
        assert picked is None
        return
    agents = [m.agent for m in members]
    start = agents.index(last) + 1 if last in agents else 0
    expected = next(m.agent for m in (members[start:] + members[:start]) if m.available)
    assert picked == expected


@settings(max_examples=150)
@given(
    members=members_strategy,
    last=st.sampled_from(["", *"abcdefgh"]),
    loads=st.lists(st.integers(0, 3), min_size=8, max_size=8),
)
def test_least_loaded_picks_a_minimum_load_member_and_rotates_on_ties(members, last, loads):
    open_tickets = dict(zip("abcdefgh", loads, strict=True))
    picked = choose_least_loaded(members, last, open_tickets)
    available = [m.agent for m in members if m.available]
    if not available:
        assert picked is None
        return
    assert picked in available
    assert open_tickets[picked] == min(open_tickets[a] for a in available)
    tied = [a for a in available if open_tickets[a] == open_tickets[picked]]
    assert picked == next(agent for agent in in_turn(members, last) if agent in tied)


@pytest.fixture
def teams(channel):
    return tpb_grpc.SupportTeamServiceStub(channel)


@pytest.fixture
def tickets(channel):
    return pb_grpc.TicketServiceStub(channel)


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


async def make_team(teams, manager, strategy, members) -> str:
    team_id = f"team-{uuid.uuid4().hex[:10]}"
    await teams.CreateSupportTeam(
        tpb.CreateSupportTeamRequest(
            support_team_id=team_id,
            support_team=tpb.SupportTeam(
                display_name="Team",
                strategy=strategy,
                members=[tpb.TeamMember(agent=agent, available=available) for agent, available in members],
            ),
        ),
        metadata=manager,
    )
    return team_id


async def new_ticket(tickets, metadata, team: str, subject: str = "help") -> pb.Ticket:
    return await tickets.CreateTicket(
        pb.CreateTicketRequest(ticket=pb.Ticket(subject=subject, team=team)), metadata=metadata
    )


on_session_loop = pytest.mark.asyncio(loop_scope="session")


@on_session_loop
async def test_round_robin_team_assigns_new_tickets_in_turn_skipping_unavailable(teams, tickets, as_user):
    manager = as_user("support_manager", "maria", "support")
    team = await make_team(teams, manager, ROUND_ROBIN, [("ann", True), ("bob", False), ("cat", True)])
    assignees = [(await new_ticket(tickets, manager, team)).assignee for _ in range(3)]
    assert assignees == ["ann", "cat", "ann"]
    first = await new_ticket(tickets, manager, team)
    assert (first.assignee, first.status) == ("cat", cpb.TICKET_STATUS_OPEN)

    # bob is back: his turn comes after cat (the turn is kept in the database).
    current = await teams.GetSupportTeam(
        tpb.GetSupportTeamRequest(name=f"supportTeams/{team}"), metadata=manager
    )
    assert {m.agent: m.open_tickets for m in current.members} == {"ann": 2, "bob": 0, "cat": 2}
    await teams.UpdateSupportTeam(
        tpb.UpdateSupportTeamRequest(
            support_team=tpb.SupportTeam(
                name=current.name,
                etag=current.etag,
                members=[
                    tpb.TeamMember(agent="ann", available=True),
                    tpb.TeamMember(agent="bob", available=True),
                    tpb.TeamMember(agent="cat", available=True),
                ],
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["members"]),
        ),
        metadata=manager,
    )
    assert (await new_ticket(tickets, manager, team)).assignee == "ann"
    assert (await new_ticket(tickets, manager, team)).assignee == "bob"


@on_session_loop
async def test_least_loaded_and_manual_assignment(teams, tickets, as_user):
    manager = as_user("support_manager", "maria", "support")
    team = await make_team(teams, manager, cpb.ASSIGNMENT_STRATEGY_MANUAL, [("dan", True), ("eve", True)])
    queued = await new_ticket(tickets, manager, team)
    assert (queued.assignee, queued.status) == ("", cpb.TICKET_STATUS_NEW)

    outsider = await expect_error(
        tickets.AssignTicket(pb.AssignTicketRequest(name=queued.name, assignee="mallory"), metadata=manager),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert outsider.reason == "ASSIGNEE_NOT_IN_TEAM"
    manual = await tickets.AssignTicket(
        pb.AssignTicketRequest(name=queued.name, assignee="dan"), metadata=manager
    )
    assert (manual.assignee, manual.status) == ("dan", cpb.TICKET_STATUS_OPEN)

    # dan has one open ticket, eve none: least-loaded picks eve, then (tied) the next in turn.
    second = await new_ticket(tickets, manager, team)
    picked = await tickets.AssignTicket(
        pb.AssignTicketRequest(name=second.name, strategy=LEAST_LOADED), metadata=manager
    )
    assert picked.assignee == "eve"
    third = await new_ticket(tickets, manager, team)
    tied = await tickets.AssignTicket(
        pb.AssignTicketRequest(name=third.name, strategy=LEAST_LOADED), metadata=manager
    )
    assert tied.assignee == "dan"  # 1 each: the turn after eve

    # A resolved ticket no longer counts as load.
    await tickets.ResolveTicket(pb.ResolveTicketRequest(name=third.name), metadata=manager)
    await tickets.ResolveTicket(pb.ResolveTicketRequest(name=manual.name), metadata=manager)
    fourth = await new_ticket(tickets, manager, team)
    assert (
        await tickets.AssignTicket(
            pb.AssignTicketRequest(name=fourth.name, strategy=LEAST_LOADED), metadata=manager
        )
    ).assignee == "dan"

    busy = await expect_error(
        teams.DeleteSupportTeam(tpb.DeleteSupportTeamRequest(name=f"supportTeams/{team}"), metadata=manager),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert busy.reason == "SUPPORT_TEAM_HAS_OPEN_TICKETS"


@on_session_loop
async def test_support_team_crud_and_permissions(teams, as_user):
    manager = as_user("support_manager", "maria", "support")
    agent = as_user("support_agent", "sam", "support")
    team = await make_team(teams, manager, ROUND_ROBIN, [("ann", True)])
    name = f"supportTeams/{team}"
    taken = await expect_error(
        teams.CreateSupportTeam(
            tpb.CreateSupportTeamRequest(support_team_id=team, support_team=tpb.SupportTeam()),
            metadata=manager,
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert taken.reason == "SUPPORT_TEAM_EXISTS"
    twice = await expect_error(
        teams.CreateSupportTeam(
            tpb.CreateSupportTeamRequest(
                support_team_id=f"{team}-2",
                support_team=tpb.SupportTeam(members=[tpb.TeamMember(agent="x"), tpb.TeamMember(agent="x")]),
            ),
            metadata=manager,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert twice.field_violations
    await expect_error(
        teams.CreateSupportTeam(
            tpb.CreateSupportTeamRequest(support_team_id=f"{team}-3", support_team=tpb.SupportTeam()),
            metadata=agent,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    seen = await teams.GetSupportTeam(tpb.GetSupportTeamRequest(name=name), metadata=agent)
    assert seen.strategy == ROUND_ROBIN and [m.agent for m in seen.members] == ["ann"]
    listed = await teams.ListSupportTeams(tpb.ListSupportTeamsRequest(page_size=500), metadata=agent)
    assert name in [t.name for t in listed.support_teams]
    await teams.DeleteSupportTeam(tpb.DeleteSupportTeamRequest(name=name, etag=seen.etag), metadata=manager)
    await expect_error(
        teams.GetSupportTeam(tpb.GetSupportTeamRequest(name=name), metadata=agent), grpc.StatusCode.NOT_FOUND
    )
