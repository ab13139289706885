"""CsatService over real gRPC on SQLite and PostgreSQL, with real JWTs and NATS.

Tickets go through the TicketService like a user's would: resolving opens the survey with the
resolving agent and team and the first-contact flag; reopening closes an unanswered survey and
keeps an answered one; a survey takes one answer (CsatSubmitted once); the caller sees a survey
exactly when it may see the ticket; ListCsatSurveys pages answered surveys newest first.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from crm.servicedesk.v1 import common_pb2, csat_service_pb2, events_pb2
from crm.servicedesk.v1 import csat_service_pb2_grpc as csat_grpc
from crm.servicedesk.v1 import support_team_service_pb2 as team_pb
from crm.servicedesk.v1 import support_team_service_pb2_grpc as team_grpc
from crm.servicedesk.v1 import ticket_service_pb2 as ticket_pb
from crm.servicedesk.v1 import ticket_service_pb2_grpc as ticket_grpc
from crm_shared.events.streams import stream_name
from crm_shared.grpc.status import error_details
from crm_shared.testing.events import wait_for_envelopes
from crm_shared.testing.fixtures_nats import connect_nats

pytestmark = pytest.mark.asyncio(loop_scope="session")

OPEN = csat_service_pb2.CSAT_SURVEY_STATE_OPEN
NOT_OPEN = csat_service_pb2.CSAT_SURVEY_STATE_NOT_OPEN
ANSWERED = csat_service_pb2.CSAT_SURVEY_STATE_ANSWERED


class Desk:
    """One support team of the test (unique per test, so tests never see each other's tickets)."""

    def __init__(self, channel, as_user) -> None:
        self.team = f"t{uuid.uuid4().hex[:8]}"
        self.tickets = ticket_grpc.TicketServiceStub(channel)
        self.csat = csat_grpc.CsatServiceStub(channel)
        self.teams = team_grpc.SupportTeamServiceStub(channel)
        self.manager = as_user("support_manager", "mia", self.team)
        self.agent = as_user("support_agent", "sam", self.team)
        self.portal_subject = f"portal-{self.team}"
        self.portal = as_user("customer_portal", self.portal_subject, "")

    async def setup(self) -> Desk:
        await self.teams.CreateSupportTeam(
            team_pb.CreateSupportTeamRequest(
                support_team_id=self.team,
                support_team=team_pb.SupportTeam(
                    display_name="CSAT test team",
                    strategy=common_pb2.ASSIGNMENT_STRATEGY_MANUAL,
                    members=[team_pb.TeamMember(agent="sam", available=True)],
                ),
            ),
            metadata=self.manager,
        )
        return self

    async def ticket(self, *, by=None) -> str:
        created = await self.tickets.CreateTicket(
            ticket_pb.CreateTicketRequest(
                ticket=ticket_pb.Ticket(subject="The printer is on fire", team=self.team)
            ),
            metadata=by or self.portal,
        )
        await self.tickets.AssignTicket(
            ticket_pb.AssignTicketRequest(name=created.name, assignee="sam"), metadata=self.manager
        )
        return created.name

    async def reply(self, name: str, body: str = "Try turning it off and on again") -> None:
        await self.tickets.AddTicketComment(
            ticket_pb.AddTicketCommentRequest(parent=name, comment=ticket_pb.TicketComment(body=body)),
            metadata=self.agent,
        )

    async def resolve(self, name: str) -> None:
        await self.tickets.ResolveTicket(ticket_pb.ResolveTicketRequest(name=name), metadata=self.agent)

    async def reopen(self, name: str) -> None:
        await self.tickets.ReopenTicket(
            ticket_pb.ReopenTicketRequest(name=name, reason="still burning"), metadata=self.portal
        )

    async def survey(self, name: str, metadata=None) -> csat_service_pb2.CsatSurvey:
        return await self.csat.GetCsatSurvey(
            csat_service_pb2.GetCsatSurveyRequest(name=f"{name}/csatSurvey"), metadata=metadata or self.portal
        )

    async def submit(self, name: str, score: int, *, comment: str = "", request_id: str = "", metadata=None):
        return await self.csat.SubmitCsatResponse(
            csat_service_pb2.SubmitCsatResponseRequest(
                name=f"{name}/csatSurvey", score=score, comment=comment, request_id=request_id
            ),
            metadata=metadata or self.portal,
        )


@pytest.fixture
async def desk(channel, as_user):
    return await Desk(channel, as_user).setup()


async def refused(call):
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    return error_details(failure.value)


async def submitted_events(nats_server, ticket: str, count: int):
    nc = await connect_nats(nats_server.url)
    try:
        envelopes = await wait_for_envelopes(
            nc.jetstream(),
            stream_name("servicedesk"),
            subject="crm.servicedesk.csat.submitted",
            resource=ticket,
            count=count,
            within=3.0 if count == 0 else 10.0,
        )
    finally:
        await nc.close()
    events = []
    for envelope in envelopes:
        event = events_pb2.CsatSubmitted()
        envelope.payload.Unpack(event)
        events.append(event)
    return events


async def ticket_events(nats_server, ticket: str, count: int):
    """Every event about the ticket, once at least `count` are published (bounded wait)."""
    nc = await connect_nats(nats_server.url)
    try:
        return await wait_for_envelopes(
            nc.jetstream(), stream_name("servicedesk"), resource=ticket, count=count, within=10.0
        )
    finally:
        await nc.close()


async def test_resolution_opens_the_survey_and_the_customer_answers_it_once(desk, nats_server):
    name = await desk.ticket()
    before = await desk.survey(name)
    assert (before.state, before.score, before.HasField("open_time")) == (NOT_OPEN, 0, False)
    not_open = await refused(desk.submit(name, 4))
    assert (not_open.code, not_open.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CSAT_NOT_OPEN")

    await desk.reply(name)
    await desk.resolve(name)
    survey = await desk.survey(name, desk.agent)
    assert survey.name == f"{name}/csatSurvey" and survey.ticket == name
    assert (survey.state, survey.assignee, survey.team) == (OPEN, "sam", desk.team)
    # The customer's side sees its survey without the support side's working data.
    portal_view = await desk.survey(name)
    assert (portal_view.state, portal_view.assignee, portal_view.team) == (OPEN, "", "")
    assert survey.first_contact_resolution is True and survey.HasField("open_time")

    request_id = str(uuid.uuid4())
    answered = await desk.submit(name, 5, comment="Fire is out, thanks", request_id=request_id)
    assert (answered.state, answered.score, answered.comment) == (ANSWERED, 5, "Fire is out, thanks")
    assert answered.answer_time.ToDatetime() >= survey.open_time.ToDatetime()
    # A retry of the same request (same request_id) is the same answer, not a second one.
    retried = await desk.submit(name, 5, comment="Fire is out, thanks", request_id=request_id)
    assert (retried.state, retried.score, retried.answer_time) == (ANSWERED, 5, answered.answer_time)
    twice = await refused(desk.submit(name, 1, comment="changed my mind"))
    assert (twice.code, twice.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CSAT_ALREADY_ANSWERED")

    [event] = await submitted_events(nats_server, name, 1)
    assert (event.ticket, event.score, event.first_contact_resolution) == (name, 5, True)
    assert (event.assignee, event.team) == ("sam", desk.team)

    # Reopening keeps the answer; so does resolving again.
    published_before = len(await ticket_events(nats_server, name, 1))
    await desk.reopen(name)
    await desk.resolve(name)
    kept = await desk.survey(name, desk.agent)
    assert (kept.state, kept.score, kept.comment) == (ANSWERED, 5, "Fire is out, thanks")
    # The relay publishes in commit order: once the reopen and the resolution are out, a second
    # CsatSubmitted from them would be too.
    assert len(await ticket_events(nats_server, name, published_before + 2)) >= published_before + 2
    assert len(await submitted_events(nats_server, name, 1)) == 1


async def test_reopen_closes_an_unanswered_survey_and_the_next_resolution_is_not_first_contact(desk):
    name = await desk.ticket()
    await desk.reply(name)
    await desk.reply(name, "Did that help?")
    await desk.resolve(name)
    assert (await desk.survey(name)).first_contact_resolution is False  # two public replies

    other = await desk.ticket()
    await desk.resolve(other)
    first = await desk.survey(other)
    assert (first.state, first.first_contact_resolution) == (OPEN, True)  # resolved without a reply
    await desk.reopen(other)
    assert (await desk.survey(other)).state == NOT_OPEN
    closed = await refused(desk.submit(other, 3))
    assert closed.reason == "CSAT_NOT_OPEN"
    await desk.resolve(other)
    again = await desk.survey(other)
    assert (again.state, again.first_contact_resolution) == (OPEN, False)  # reopened once
    assert again.open_time.ToDatetime() >= first.open_time.ToDatetime()
    assert (await desk.submit(other, 3, metadata=desk.agent)).state == ANSWERED  # a phone answer


async def test_a_survey_is_visible_exactly_where_its_ticket_is(desk, as_user):
    name = await desk.ticket()
    await desk.resolve(name)
    other_portal = as_user("customer_portal", f"someone-else-{desk.team}", "")
    other_team_agent = as_user("support_agent", "otto", f"{desk.team}-other")
    for caller in (other_portal, other_team_agent):
        hidden = await refused(desk.survey(name, caller))
        assert hidden.code == grpc.StatusCode.NOT_FOUND, hidden
        refused_submit = await refused(desk.submit(name, 1, metadata=caller))
        assert refused_submit.code == grpc.StatusCode.NOT_FOUND, refused_submit
    assert (await desk.survey(name)).state == OPEN  # nobody answered it meanwhile
    missing = await refused(desk.survey(f"tickets/{uuid.uuid4()}"))
    assert missing.code == grpc.StatusCode.NOT_FOUND


async def test_list_pages_answered_surveys_newest_first_within_scope(desk, as_user):
    names = []
    for score in (2, 5, 4):
        name = await desk.ticket()
        await desk.resolve(name)
        await desk.submit(name, score)
        names.append(name)
    unanswered = await desk.ticket()
    await desk.resolve(unanswered)

    seen, token = [], ""
    while True:
        page = await desk.csat.ListCsatSurveys(
            csat_service_pb2.ListCsatSurveysRequest(
                page_size=2, page_token=token, filter=f'team = "{desk.team}"'
            ),
            metadata=desk.manager,
        )
        seen.extend((s.ticket, s.score) for s in page.csat_surveys)
        token = page.next_page_token
        if not token:
            break
    assert seen == [(names[2], 4), (names[1], 5), (names[0], 2)]

    high = await desk.csat.ListCsatSurveys(
        csat_service_pb2.ListCsatSurveysRequest(filter=f'team = "{desk.team}" AND score >= 4'),
        metadata=desk.agent,
    )
    assert [s.score for s in high.csat_surveys] == [4, 5]
    # Another team's agent sees none of them; the portal sees the ones it asked for.
    outsider = as_user("support_agent", "otto", f"{desk.team}-other")
    assert not (
        await desk.csat.ListCsatSurveys(csat_service_pb2.ListCsatSurveysRequest(), metadata=outsider)
    ).csat_surveys
    mine = await desk.csat.ListCsatSurveys(csat_service_pb2.ListCsatSurveysRequest(), metadata=desk.portal)
    assert {s.ticket for s in mine.csat_surveys} == set(names)

    bad = await refused(
        desk.csat.ListCsatSurveys(
            csat_service_pb2.ListCsatSurveysRequest(filter="mood = 3"), metadata=desk.manager
        )
    )
    assert (bad.code, bad.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FILTER")


async def test_racing_answers_record_exactly_one(desk, nats_server):
    name = await desk.ticket()
    await desk.resolve(name)
    outcomes = await asyncio.gather(
        desk.submit(name, 5), desk.submit(name, 1, metadata=desk.agent), return_exceptions=True
    )
    answered = [o for o in outcomes if not isinstance(o, Exception)]
    failed = [error_details(o) for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(answered) == 1 and len(failed) == 1, outcomes
    [loser] = failed
    assert (loser.code, loser.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CSAT_ALREADY_ANSWERED")
    assert (await desk.survey(name)).score == answered[0].score
    [event] = await submitted_events(nats_server, name, 1)
    assert event.score == answered[0].score
