"""LeadService through a real in-process server on SQLite and PostgreSQL with real NATS:
CRUD, filters and keyset paging, duplicate detection, the status state machine, data scope,
capture, input errors with field paths, and the events on the stream."""

from __future__ import annotations

import uuid

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2
from sqlalchemy.ext.asyncio import create_async_engine

from crm.sales.v1 import common_pb2, events_pb2
from crm.sales.v1 import lead_service_pb2 as pb
from crm.sales.v1 import lead_service_pb2_grpc as rpc_grpc
from crm_shared.grpc.status import error_details
from crm_shared.testing.events import wait_for_envelopes

pytestmark = pytest.mark.asyncio(loop_scope="session")

WEB = common_pb2.LEAD_SOURCE_CHANNEL_WEB_FORM
ADS = common_pb2.LEAD_SOURCE_CHANNEL_ADS


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, (details.code, details.message)
    return details


@pytest.fixture
def stub(channel):
    return rpc_grpc.LeadServiceStub(channel)


def new_lead(n: int = 0, **fields) -> pb.Lead:
    values = dict(
        display_name=f"Lead {n:03d}",
        company=f"Company {n}",
        email_addresses=[f"person{n}-{uuid.uuid4().hex[:8]}@example.com"],
        source_channel=WEB,
    )
    values.update(fields)
    return pb.Lead(**values)


async def test_crud_with_etag_and_events(stub, as_user, database_url, nats_server):
    admin = as_user("admin", "alice", "east")
    created = await stub.CreateLead(
        pb.CreateLeadRequest(
            lead=new_lead(
                1,
                phone_numbers=["138 0013 8000"],
                campaign="campaigns/spring-fair",
                owner="bob",
                evidence=[pb.LeadEvidence(uri="https://files.example/card.jpg", description="business card")],
                score=40,
            )
        ),
        metadata=admin,
    )
    assert created.name.startswith("leads/")
    assert created.status == pb.LEAD_STATUS_ASSIGNED and created.owner == "bob" and created.team == "east"
    assert created.phone_numbers == ["+8613800138000"]
    fetched = await stub.GetLead(pb.GetLeadRequest(name=created.name), metadata=admin)
    assert fetched == created

    patch = pb.Lead(name=created.name, score=80, title="CTO", etag=created.etag)
    updated = await stub.UpdateLead(
        pb.UpdateLeadRequest(lead=patch, update_mask=field_mask_pb2.FieldMask(paths=["score", "title"])),
        metadata=admin,
    )
    assert (updated.score, updated.title) == (80, "CTO") and updated.etag != created.etag
    stale = await expect_error(
        stub.UpdateLead(
            pb.UpdateLeadRequest(lead=patch, update_mask=field_mask_pb2.FieldMask(paths=["score"])),
            metadata=admin,
        ),
        grpc.StatusCode.ABORTED,
    )
    assert stale.reason == "STALE_ETAG"
    # Owner and status move only through the custom methods.
    owner_in_mask = await expect_error(
        stub.UpdateLead(
            pb.UpdateLeadRequest(
                lead=pb.Lead(name=created.name, owner="eve"),
                update_mask=field_mask_pb2.FieldMask(paths=["owner"]),
            ),
            metadata=admin,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "update_mask.paths[0]" in owner_in_mask.field_violations

    # Personal data is not readable in the database: ciphertext plus blind indexes only.
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.text("SELECT emails_enc, phones_enc FROM leads WHERE id = :id"),
                    {"id": created.name.split("/")[1]},
                )
            ).one()
    finally:
        await engine.dispose()
    assert created.email_addresses[0].encode() not in bytes(row.emails_enc)
    assert b"8613800138000" not in bytes(row.phones_enc)

    disqualified = await stub.DisqualifyLead(
        pb.DisqualifyLeadRequest(name=created.name, reason="no budget"), metadata=admin
    )
    assert (
        disqualified.status == pb.LEAD_STATUS_DISQUALIFIED and disqualified.disqualify_reason == "no budget"
    )
    await stub.DeleteLead(pb.DeleteLeadRequest(name=created.name, etag=disqualified.etag), metadata=admin)
    await expect_error(
        stub.GetLead(pb.GetLeadRequest(name=created.name), metadata=admin), grpc.StatusCode.NOT_FOUND
    )

    from crm_shared.testing.fixtures_nats import connect_nats

    nc = await connect_nats(nats_server.url)
    try:
        envelopes = await wait_for_envelopes(nc.jetstream(), "CRM_SALES", resource=created.name, count=3)
    finally:
        await nc.close()
    assert [e.type for e in envelopes] == [
        "crm.sales.v1.LeadCreated",
        "crm.sales.v1.LeadAssigned",
        "crm.sales.v1.LeadDisqualified",
    ]
    event = events_pb2.LeadDisqualified()
    envelopes[2].payload.Unpack(event)
    assert (event.reason, event.lead.campaign, event.lead.owner) == (
        "no budget",
        "campaigns/spring-fair",
        "bob",
    )
    # Events carry no personal data.
    assert created.email_addresses[0].encode() not in b"".join(e.SerializeToString() for e in envelopes)


async def test_list_filters_order_and_keyset_paging(stub, as_user):
    admin = as_user("admin", "alice", "east")
    team = f"team-{uuid.uuid4().hex[:6]}"
    names = []
    for n in range(7):
        lead = await stub.CreateLead(
            pb.CreateLeadRequest(
                lead=new_lead(
                    n,
                    team=team,
                    owner="bob" if n % 2 else "",
                    source_channel=ADS if n < 3 else WEB,
                    campaign="campaigns/c1" if n == 0 else "",
                    score=n * 10,
                )
            ),
            metadata=admin,
        )
        names.append(lead.name)

    async def all_pages(filter_text: str, order_by: str = "", page_size: int = 3) -> list[pb.Lead]:
        found, token = [], ""
        while True:
            page = await stub.ListLeads(
                pb.ListLeadsRequest(
                    filter=filter_text, order_by=order_by, page_size=page_size, page_token=token
                ),
                metadata=admin,
            )
            found += page.leads
            token = page.next_page_token
            if not token:
                return found

    everything = await all_pages(f'team = "{team}"', "score")
    assert [lead.name for lead in everything] == names
    newest_first = await all_pages(f'team = "{team}"')
    assert [lead.name for lead in newest_first] == names[::-1]
    ads = await all_pages(f'team = "{team}" AND source_channel = LEAD_SOURCE_CHANNEL_ADS')
    assert {lead.name for lead in ads} == set(names[:3])
    assigned = await all_pages(f'team = "{team}" AND status = LEAD_STATUS_ASSIGNED AND owner = "bob"')
    assert {lead.name for lead in assigned} == {names[1], names[3], names[5]}
    unassigned = await all_pages(f'team = "{team}" AND status = LEAD_STATUS_NEW')
    assert {lead.name for lead in unassigned} == {names[0], names[2], names[4], names[6]}
    by_campaign = await all_pages(f'team = "{team}" AND campaign = "campaigns/c1"')
    assert [lead.name for lead in by_campaign] == [names[0]]
    recent = await all_pages(f'team = "{team}" AND create_time > "2000-01-01T00:00:00Z" AND score >= 50')
    assert {lead.name for lead in recent} == {names[5], names[6]}

    bad = await expect_error(
        stub.ListLeads(pb.ListLeadsRequest(filter="colour = red"), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "filter" in bad.field_violations
    bad_order = await expect_error(
        stub.ListLeads(pb.ListLeadsRequest(order_by="owner"), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "order_by" in bad_order.field_violations


async def test_duplicates_are_detected_by_email_or_phone_among_open_leads(stub, as_user):
    admin = as_user("admin", "alice", "east")
    email = f"dup-{uuid.uuid4().hex[:8]}@Example.com"
    first = await stub.CreateLead(
        pb.CreateLeadRequest(lead=new_lead(1, email_addresses=[email])), metadata=admin
    )
    # Same email in another case: normalized, so a duplicate.
    dup = await expect_error(
        stub.CreateLead(
            pb.CreateLeadRequest(lead=new_lead(2, email_addresses=[email.upper()])), metadata=admin
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert dup.reason == "DUPLICATE_LEAD"
    assert dup.metadata == {"existing": first.name, "field": "email_addresses"}
    # A rep learns about a colleague's lead too (the existing name, not its content).
    rep_dup = await expect_error(
        stub.CreateLead(
            pb.CreateLeadRequest(lead=new_lead(3, email_addresses=[email])),
            metadata=as_user("sales_rep", "zoe"),
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert rep_dup.metadata["existing"] == first.name
    # Explicitly allowed duplicates are created.
    second = await stub.CreateLead(
        pb.CreateLeadRequest(lead=new_lead(4, email_addresses=[email]), allow_duplicate=True), metadata=admin
    )
    assert second.name != first.name
    # A capture of the same person creates nothing and names the existing open lead.
    captured = await stub.CaptureLead(
        pb.CaptureLeadRequest(display_name="Form Person", email_address=email),
        metadata=as_user("lead_capture", "form"),
    )
    assert captured.duplicate and captured.lead == first.name
    # Closed leads do not count: after disqualifying both, the email is free again.
    for lead in (first, second):
        await stub.DisqualifyLead(
            pb.DisqualifyLeadRequest(name=lead.name, reason="duplicate"), metadata=admin
        )
    third = await stub.CreateLead(
        pb.CreateLeadRequest(lead=new_lead(5, email_addresses=[email])), metadata=admin
    )
    assert third.name not in (first.name, second.name)


async def test_state_machine_refuses_illegal_transitions(stub, as_user):
    admin = as_user("admin", "alice", "east")
    lead = await stub.CreateLead(pb.CreateLeadRequest(lead=new_lead(1)), metadata=admin)
    assert lead.status == pb.LEAD_STATUS_NEW and lead.owner == ""
    # NEW cannot be recycled.
    illegal = await expect_error(
        stub.RecycleLead(pb.RecycleLeadRequest(name=lead.name), metadata=admin),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert illegal.reason == "ILLEGAL_LEAD_TRANSITION" and illegal.metadata["status"] == "NEW"
    assigned = await stub.AssignLead(pb.AssignLeadRequest(name=lead.name, owner="bob"), metadata=admin)
    assert (assigned.status, assigned.owner, assigned.team) == (pb.LEAD_STATUS_ASSIGNED, "bob", "east")
    working = await stub.StartWorkingLead(pb.StartWorkingLeadRequest(name=lead.name), metadata=admin)
    assert working.status == pb.LEAD_STATUS_WORKING
    again = await expect_error(
        stub.StartWorkingLead(pb.StartWorkingLeadRequest(name=lead.name), metadata=admin),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert again.metadata["status"] == "WORKING"
    recycled = await stub.RecycleLead(
        pb.RecycleLeadRequest(name=lead.name, etag=working.etag), metadata=admin
    )
    assert recycled.status == pb.LEAD_STATUS_RECYCLED
    # A stale etag on a custom method is ABORTED.
    await expect_error(
        stub.StartWorkingLead(pb.StartWorkingLeadRequest(name=lead.name, etag=working.etag), metadata=admin),
        grpc.StatusCode.ABORTED,
    )
    # Disqualify needs a reason (validation), then the lead is closed for good.
    no_reason = await expect_error(
        stub.DisqualifyLead(pb.DisqualifyLeadRequest(name=lead.name), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "reason" in no_reason.field_violations
    await stub.DisqualifyLead(pb.DisqualifyLeadRequest(name=lead.name, reason="spam"), metadata=admin)
    for call in (
        stub.StartWorkingLead(pb.StartWorkingLeadRequest(name=lead.name), metadata=admin),
        stub.AssignLead(pb.AssignLeadRequest(name=lead.name, owner="bob"), metadata=admin),
        stub.ConvertLead(pb.ConvertLeadRequest(name=lead.name), metadata=admin),
        stub.UpdateLead(
            pb.UpdateLeadRequest(
                lead=pb.Lead(name=lead.name, score=1), update_mask=field_mask_pb2.FieldMask(paths=["score"])
            ),
            metadata=admin,
        ),
    ):
        closed = await expect_error(call, grpc.StatusCode.FAILED_PRECONDITION)
        assert closed.reason in ("ILLEGAL_LEAD_TRANSITION", "LEAD_CLOSED")


async def test_data_scope_rep_own_manager_team(stub, as_user):
    admin = as_user("admin", "alice", "east")
    bob = as_user("sales_rep", "bob", "east")
    carol = as_user("sales_rep", "carol", "east")
    east_manager = as_user("sales_manager", "mia", "east")
    west_manager = as_user("sales_manager", "wes", "west")
    bobs = await stub.CreateLead(pb.CreateLeadRequest(lead=new_lead(1)), metadata=bob)
    assert (bobs.owner, bobs.team, bobs.status) == ("bob", "east", pb.LEAD_STATUS_ASSIGNED)
    west = await stub.CreateLead(
        pb.CreateLeadRequest(lead=new_lead(2, team="west", owner="will")), metadata=admin
    )

    assert (await stub.GetLead(pb.GetLeadRequest(name=bobs.name), metadata=east_manager)).name == bobs.name
    for who, name in (
        (carol, bobs.name),
        (west_manager, bobs.name),
        (east_manager, west.name),
        (bob, west.name),
    ):
        hidden = await expect_error(
            stub.GetLead(pb.GetLeadRequest(name=name), metadata=who), grpc.StatusCode.NOT_FOUND
        )
        assert hidden.reason == "LEAD_NOT_FOUND"
    carol_list = await stub.ListLeads(pb.ListLeadsRequest(page_size=500), metadata=carol)
    assert all(lead.owner == "carol" for lead in carol_list.leads)
    manager_list = await stub.ListLeads(pb.ListLeadsRequest(page_size=500), metadata=east_manager)
    assert bobs.name in {lead.name for lead in manager_list.leads}
    assert all(lead.team == "east" for lead in manager_list.leads)

    # A rep cannot create leads for others nor assign; a manager assigns within the team only.
    await expect_error(
        stub.CreateLead(pb.CreateLeadRequest(lead=new_lead(3, owner="carol")), metadata=bob),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await expect_error(
        stub.AssignLead(pb.AssignLeadRequest(name=bobs.name, owner="carol"), metadata=bob),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    moved = await stub.AssignLead(pb.AssignLeadRequest(name=bobs.name, owner="carol"), metadata=east_manager)
    assert moved.owner == "carol"
    await expect_error(
        stub.GetLead(pb.GetLeadRequest(name=bobs.name), metadata=bob), grpc.StatusCode.NOT_FOUND
    )
    outside = await expect_error(
        stub.AssignLead(
            pb.AssignLeadRequest(name=bobs.name, owner="will", team="west"), metadata=east_manager
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert outside.reason == "TEAM_OUTSIDE_SCOPE"

    # Marketing reads and creates every lead; lead_capture may only capture.
    marketing = as_user("marketing", "max", "mkt")
    assert (await stub.GetLead(pb.GetLeadRequest(name=west.name), metadata=marketing)).name == west.name
    capture = as_user("lead_capture", "web-form", "")
    await expect_error(
        stub.GetLead(pb.GetLeadRequest(name=west.name), metadata=capture), grpc.StatusCode.PERMISSION_DENIED
    )
    await expect_error(
        stub.CreateLead(pb.CreateLeadRequest(lead=new_lead(4)), metadata=capture),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_every_input_error_is_invalid_argument_with_field_paths(stub, as_user):
    admin = as_user("admin", "alice", "east")
    cases = [
        (pb.CreateLeadRequest(lead=pb.Lead()), {"lead.display_name"}),
        (
            pb.CreateLeadRequest(
                lead=pb.Lead(display_name="x", email_addresses=["nope"], phone_numbers=["12"], score=101)
            ),
            {"lead.score"},  # protovalidate answers first (shape), before the domain rules
        ),
        (
            pb.CreateLeadRequest(
                lead=pb.Lead(display_name="x", email_addresses=["nope"], phone_numbers=["12"])
            ),
            {"lead.email_addresses[0]", "lead.phone_numbers[0]"},
        ),
        (
            pb.CreateLeadRequest(
                lead=pb.Lead(display_name="x", source_channel=common_pb2.LEAD_SOURCE_CHANNEL_THIRD_PARTY)
            ),
            {"lead.source_platform"},
        ),
        (pb.CreateLeadRequest(lead=pb.Lead(display_name="x", campaign="spring")), {"lead.campaign"}),
        (pb.CreateLeadRequest(lead=pb.Lead(display_name="x"), request_id="not-a-uuid"), {"request_id"}),
        (pb.CaptureLeadRequest(display_name="x"), {"email_address", "phone_number"}),
        (pb.CaptureLeadRequest(display_name="x", email_address="bad"), {"email_address"}),
        (pb.CaptureLeadRequest(email_address="a@b.example"), {"display_name"}),
        (pb.GetLeadRequest(name="customers/1"), {"name"}),
        (pb.DisqualifyLeadRequest(name=f"leads/{uuid.uuid4()}"), {"reason"}),
        (pb.AssignLeadRequest(name=f"leads/{uuid.uuid4()}"), {"owner"}),
        (
            pb.CreateLeadAssignmentRuleRequest(rule=pb.LeadAssignmentRule(display_name="r")),
            {"rule.team", "rule.members"},
        ),
        (pb.ListLeadsRequest(page_size=-1), {"page_size"}),
        (pb.ListLeadsRequest(page_token="garbage"), {"page_token"}),
    ]
    methods = {
        pb.CreateLeadRequest: stub.CreateLead,
        pb.CaptureLeadRequest: stub.CaptureLead,
        pb.GetLeadRequest: stub.GetLead,
        pb.DisqualifyLeadRequest: stub.DisqualifyLead,
        pb.AssignLeadRequest: stub.AssignLead,
        pb.CreateLeadAssignmentRuleRequest: stub.CreateLeadAssignmentRule,
        pb.ListLeadsRequest: stub.ListLeads,
    }
    for request, fields in cases:
        details = await expect_error(
            methods[type(request)](request, metadata=admin), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert fields <= set(details.field_violations), (request, details.field_violations)


async def test_capture_is_idempotent_and_auto_assigned_by_rule(stub, as_user):
    admin = as_user("admin", "alice", "east")
    capture = as_user("lead_capture", "web-form", "")
    team = f"fair-{uuid.uuid4().hex[:6]}"
    rule = await stub.CreateLeadAssignmentRule(
        pb.CreateLeadAssignmentRuleRequest(
            rule=pb.LeadAssignmentRule(
                team=team, members=["ann", "ben"], source_channels=[common_pb2.LEAD_SOURCE_CHANNEL_TRADE_SHOW]
            )
        ),
        metadata=admin,
    )
    assert rule.next_member == "ann"
    submission = pb.CaptureLeadRequest(
        display_name="Visitor",
        email_address=f"v-{uuid.uuid4().hex[:8]}@example.com",
        source_channel=common_pb2.LEAD_SOURCE_CHANNEL_TRADE_SHOW,
        campaign="campaigns/fair-2026",
        message="wants a demo",
        request_id=str(uuid.uuid4()),
    )
    first = await stub.CaptureLead(submission, metadata=capture)
    replay = await stub.CaptureLead(submission, metadata=capture)
    assert replay == first and not first.duplicate
    lead = await stub.GetLead(pb.GetLeadRequest(name=first.lead), metadata=admin)
    assert (lead.status, lead.owner, lead.team) == (pb.LEAD_STATUS_ASSIGNED, "ann", team)
    assert (
        lead.source_channel == common_pb2.LEAD_SOURCE_CHANNEL_TRADE_SHOW
        and lead.campaign == "campaigns/fair-2026"
    )
    assert lead.evidence[0].description == "wants a demo"
    # A web-form capture does not match the trade-show rule: it stays unassigned.
    other = await stub.CaptureLead(
        pb.CaptureLeadRequest(display_name="Web", phone_number="139 0013 9000"),
        metadata=capture,
    )
    web_lead = await stub.GetLead(pb.GetLeadRequest(name=other.lead), metadata=admin)
    assert (web_lead.status, web_lead.owner, web_lead.source_channel) == (pb.LEAD_STATUS_NEW, "", WEB)
    assert web_lead.phone_numbers == ["+8613900139000"]
