"""OpportunityService through a real gRPC channel, on SQLite and PostgreSQL, with real NATS.

What a caller notices: stage defaults and overrides, stage history with the
amounts of the time, exact weighted amounts, won/lost events on the stream,
state errors, field violations, data scope, idempotent retries, filters and pages.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import money_pb2
from crm.sales.v1 import common_pb2, events_pb2
from crm.sales.v1 import opportunity_service_pb2 as pb
from crm.sales.v1 import opportunity_service_pb2_grpc as rpc_grpc
from crm_shared.grpc.status import error_details
from crm_shared.testing.events import wait_for_envelopes
from crm_shared.testing.fixtures_nats import connect_nats

pytestmark = pytest.mark.asyncio(loop_scope="session")

STAGES = "pipelines/default/stages/"


@pytest.fixture
def stub(channel):
    return rpc_grpc.OpportunityServiceStub(channel)


def ts(text: str) -> Timestamp:
    moment = Timestamp()
    moment.FromDatetime(datetime.fromisoformat(text).replace(tzinfo=UTC))
    return moment


def cny(amount_minor: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="CNY", amount_minor=amount_minor)


def deal(**overrides) -> pb.Opportunity:
    fields = dict(
        customer=f"customers/{uuid.uuid4()}",
        title="Forklifts for the Ningbo warehouse",
        amount=cny(1_000_000),
        expected_close_time=ts("2027-03-15T00:00:00"),
    )
    fields.update(overrides)
    return pb.Opportunity(**fields)


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


async def create(stub, metadata, **overrides) -> pb.Opportunity:
    return await stub.CreateOpportunity(
        pb.CreateOpportunityRequest(opportunity=deal(**overrides)), metadata=metadata
    )


async def test_default_pipeline_is_seeded_with_ordered_stages(stub, as_user):
    rep = as_user("sales_rep", "bob")
    pipelines = await stub.ListPipelines(pb.ListPipelinesRequest(), metadata=rep)
    default = pipelines.pipelines[0]
    assert default.name == "pipelines/default" and default.is_default
    assert [(s.name.removeprefix(STAGES), s.order, s.default_probability) for s in default.stages] == [
        ("qualification", 1, 10),
        ("needs-analysis", 2, 25),
        ("proposal", 3, 50),
        ("negotiation", 4, 75),
        ("closed-won", 5, 100),
        ("closed-lost", 6, 0),
    ]
    assert [s.forecast_category for s in default.stages] == [
        common_pb2.FORECAST_CATEGORY_PIPELINE,
        common_pb2.FORECAST_CATEGORY_PIPELINE,
        common_pb2.FORECAST_CATEGORY_BEST_CASE,
        common_pb2.FORECAST_CATEGORY_COMMIT,
        common_pb2.FORECAST_CATEGORY_CLOSED,
        common_pb2.FORECAST_CATEGORY_OMITTED,
    ]
    assert default.stages[4].is_won and default.stages[5].is_lost


async def test_stage_default_probability_override_and_history_with_amounts(stub, as_user):
    rep = as_user("sales_rep", "bob", team="east")
    created = await create(stub, rep, amount=cny(123_457))
    assert created.stage == STAGES + "qualification"
    assert (created.probability, created.probability_overridden) == (10, False)
    # 123457 × 10 / 100 = 12345.7 -> 12346, in minor units, same currency.
    assert created.weighted_amount == cny(12_346)
    assert created.forecast_category == common_pb2.FORECAST_CATEGORY_PIPELINE
    assert (created.owner, created.team, created.state) == ("bob", "east", pb.OPPORTUNITY_STATE_OPEN)
    assert [(h.stage, h.amount.amount_minor, h.probability, h.changed_by) for h in created.stage_history] == [
        (STAGES + "qualification", 123_457, 10, "bob")
    ]

    # An explicit probability overrides the stage default and survives other updates…
    overridden = await stub.UpdateOpportunity(
        pb.UpdateOpportunityRequest(
            opportunity=pb.Opportunity(
                name=created.name, probability=33, amount=cny(200_000), etag=created.etag
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["probability", "amount"]),
        ),
        metadata=rep,
    )
    assert (overridden.probability, overridden.probability_overridden) == (33, True)
    assert overridden.weighted_amount == cny(66_000)
    # …until the next stage change, which resets it to the new stage's default.
    moved = await stub.MoveOpportunityStage(
        pb.MoveOpportunityStageRequest(name=created.name, stage=STAGES + "proposal", etag=overridden.etag),
        metadata=rep,
    )
    assert (moved.probability, moved.probability_overridden) == (50, False)
    assert moved.forecast_category == common_pb2.FORECAST_CATEGORY_BEST_CASE
    assert moved.weighted_amount == cny(100_000)
    # A move may carry its own probability.
    moved_again = await stub.MoveOpportunityStage(
        pb.MoveOpportunityStageRequest(name=created.name, stage=STAGES + "negotiation", probability=90),
        metadata=rep,
    )
    assert (moved_again.probability, moved_again.probability_overridden) == (90, True)
    assert moved_again.forecast_category == common_pb2.FORECAST_CATEGORY_COMMIT

    fetched = await stub.GetOpportunity(pb.GetOpportunityRequest(name=created.name), metadata=rep)
    assert fetched == moved_again
    assert [
        (h.stage.removeprefix(STAGES), h.amount.amount_minor, h.probability) for h in fetched.stage_history
    ] == [
        ("qualification", 123_457, 10),
        ("proposal", 200_000, 50),
        ("negotiation", 200_000, 90),
    ]
    assert all(h.changed_by == "bob" for h in fetched.stage_history)

    # Clearing the override (probability named in the mask, left unset) returns to the stage default.
    cleared = await stub.UpdateOpportunity(
        pb.UpdateOpportunityRequest(
            opportunity=pb.Opportunity(name=created.name),
            update_mask=field_mask_pb2.FieldMask(paths=["probability"]),
        ),
        metadata=rep,
    )
    assert (cleared.probability, cleared.probability_overridden) == (75, False)
    assert cleared.weighted_amount == cny(150_000)


async def test_weighted_amount_rounds_half_to_even_in_minor_units(stub, as_user):
    admin = as_user("admin", "root")
    cases = [
        (5, 50, 2),
        (15, 50, 8),
        (25, 50, 12),
        (1, 50, 0),
        (3, 50, 2),
        (999_999, 33, 330_000),
        (999_949, 33, 329_983),
        (7, 0, 0),
    ]
    for amount, probability, expected in cases:
        created = await create(stub, admin, amount=cny(amount), probability=probability)
        assert created.weighted_amount.amount_minor == expected, (amount, probability)
    # Product lines: amount defaults to Σ quantity × unit price.
    with_lines = await stub.CreateOpportunity(
        pb.CreateOpportunityRequest(
            opportunity=deal(
                amount=None,
                product_lines=[
                    pb.ProductLine(
                        display_name="Forklift FX-3", sku="FX3", quantity=3, unit_price=cny(1_999_999)
                    ),
                    pb.ProductLine(display_name="Service plan", quantity=2, unit_price=cny(50_001)),
                ],
            )
        ),
        metadata=admin,
    )
    assert with_lines.amount == cny(3 * 1_999_999 + 2 * 50_001)
    assert [line.line_amount.amount_minor for line in with_lines.product_lines] == [5_999_997, 100_002]
    assert with_lines.weighted_amount == cny(610_000)  # 6_099_999 × 10 % = 609_999.9


async def test_win_and_lose_publish_events_and_closed_deals_refuse_changes(stub, as_user, nats_server):
    rep = as_user("sales_rep", "bob", team="east")
    won = await create(stub, rep, title="Won deal")
    won = await stub.WinOpportunity(pb.WinOpportunityRequest(name=won.name, etag=won.etag), metadata=rep)
    assert (won.state, won.stage, won.probability) == (pb.OPPORTUNITY_STATE_WON, STAGES + "closed-won", 100)
    assert won.forecast_category == common_pb2.FORECAST_CATEGORY_CLOSED and won.HasField("close_time")
    assert won.weighted_amount == won.amount

    twice = await expect_error(
        stub.WinOpportunity(pb.WinOpportunityRequest(name=won.name), metadata=rep),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert twice.reason == "OPPORTUNITY_CLOSED"
    await expect_error(
        stub.UpdateOpportunity(
            pb.UpdateOpportunityRequest(
                opportunity=pb.Opportunity(name=won.name, title="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            ),
            metadata=rep,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )

    lost = await create(stub, rep, title="Lost deal", competitor="")
    no_reason = await expect_error(
        stub.LoseOpportunity(pb.LoseOpportunityRequest(name=lost.name), metadata=rep),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert list(no_reason.field_violations) == ["lost_reason"]
    lost = await stub.LoseOpportunity(
        pb.LoseOpportunityRequest(name=lost.name, lost_reason="price", competitor="Rival Forklifts Co"),
        metadata=rep,
    )
    assert (lost.state, lost.stage, lost.probability, lost.lost_reason, lost.competitor) == (
        pb.OPPORTUNITY_STATE_LOST,
        STAGES + "closed-lost",
        0,
        "price",
        "Rival Forklifts Co",
    )
    assert lost.weighted_amount.amount_minor == 0

    # Won and lost stages are entered only through Win / Lose.
    still_open = await create(stub, rep, title="Open deal")
    closing = await expect_error(
        stub.MoveOpportunityStage(
            pb.MoveOpportunityStageRequest(name=still_open.name, stage=STAGES + "closed-won"), metadata=rep
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert closing.reason == "CLOSING_STAGE_NEEDS_WIN_OR_LOSE"

    # Reopening is for managers; it goes back to the last open stage and resets the probability.
    await expect_error(
        stub.ReopenOpportunity(pb.ReopenOpportunityRequest(name=lost.name), metadata=rep),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    manager = as_user("sales_manager", "meg", team="east")
    reopened = await stub.ReopenOpportunity(pb.ReopenOpportunityRequest(name=lost.name), metadata=manager)
    assert (reopened.state, reopened.stage, reopened.probability, reopened.lost_reason) == (
        pb.OPPORTUNITY_STATE_OPEN,
        STAGES + "qualification",
        10,
        "",
    )
    assert not reopened.HasField("close_time")
    assert [h.stage.removeprefix(STAGES) for h in reopened.stage_history] == [
        "qualification",
        "closed-lost",
        "qualification",
    ]
    assert reopened.stage_history[-1].changed_by == "meg"

    nc = await connect_nats(nats_server.url)
    try:
        js = nc.jetstream()
        won_events = await wait_for_envelopes(js, "CRM_SALES", resource=won.name, count=2)
        lost_events = await wait_for_envelopes(js, "CRM_SALES", resource=lost.name, count=3)
    finally:
        await nc.close()
    assert [e.type for e in won_events] == ["crm.sales.v1.OpportunityCreated", "crm.sales.v1.OpportunityWon"]
    assert [e.type for e in lost_events] == [
        "crm.sales.v1.OpportunityCreated",
        "crm.sales.v1.OpportunityLost",
        "crm.sales.v1.OpportunityStageChanged",
    ]
    won_event = events_pb2.OpportunityWon()
    won_events[1].payload.Unpack(won_event)
    assert won_event.opportunity.name == won.name and won_event.opportunity.probability == 100
    assert won_event.opportunity.amount == won.amount and won_event.opportunity.weighted_amount == won.amount
    assert won_event.opportunity.stage == STAGES + "closed-won" and won_event.opportunity.owner == "bob"
    assert won_events[1].actor.subject == "bob" and won_events[1].source == "sales"
    lost_event = events_pb2.OpportunityLost()
    lost_events[1].payload.Unpack(lost_event)
    assert (lost_event.lost_reason, lost_event.competitor) == ("price", "Rival Forklifts Co")
    assert lost_event.opportunity.forecast_category == common_pb2.FORECAST_CATEGORY_OMITTED
    reopen_event = events_pb2.OpportunityStageChanged()
    lost_events[2].payload.Unpack(reopen_event)
    assert (reopen_event.from_stage, reopen_event.to_stage) == (
        STAGES + "closed-lost",
        STAGES + "qualification",
    )


async def test_stage_change_update_and_delete_events(stub, as_user, nats_server):
    rep = as_user("sales_rep", "bob")
    manager = as_user("sales_manager", "meg")
    created = await create(stub, rep)
    moved = await stub.MoveOpportunityStage(
        pb.MoveOpportunityStageRequest(name=created.name, stage=STAGES + "proposal"), metadata=rep
    )
    await stub.UpdateOpportunity(
        pb.UpdateOpportunityRequest(
            opportunity=pb.Opportunity(name=created.name, amount=cny(2_000_000), competitor="Rival"),
            update_mask=field_mask_pb2.FieldMask(paths=["amount", "competitor"]),
        ),
        metadata=rep,
    )
    # Deleting is for managers; a stale etag is refused.
    await expect_error(
        stub.DeleteOpportunity(pb.DeleteOpportunityRequest(name=created.name), metadata=rep),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await expect_error(
        stub.DeleteOpportunity(
            pb.DeleteOpportunityRequest(name=created.name, etag=moved.etag), metadata=manager
        ),
        grpc.StatusCode.ABORTED,
    )
    await stub.DeleteOpportunity(pb.DeleteOpportunityRequest(name=created.name), metadata=manager)
    await expect_error(
        stub.GetOpportunity(pb.GetOpportunityRequest(name=created.name), metadata=manager),
        grpc.StatusCode.NOT_FOUND,
    )
    nc = await connect_nats(nats_server.url)
    try:
        envelopes = await wait_for_envelopes(nc.jetstream(), "CRM_SALES", resource=created.name, count=4)
    finally:
        await nc.close()
    assert [e.type for e in envelopes] == [
        "crm.sales.v1.OpportunityCreated",
        "crm.sales.v1.OpportunityStageChanged",
        "crm.sales.v1.OpportunityUpdated",
        "crm.sales.v1.OpportunityDeleted",
    ]
    updated = events_pb2.OpportunityUpdated()
    envelopes[2].payload.Unpack(updated)
    assert list(updated.changed_fields) == ["amount", "competitor"]
    assert updated.opportunity.weighted_amount.amount_minor == 1_000_000
    changed = events_pb2.OpportunityStageChanged()
    envelopes[1].payload.Unpack(changed)
    assert (changed.from_stage, changed.to_stage) == (STAGES + "qualification", STAGES + "proposal")
    assert (
        changed.opportunity.probability == 50 and changed.opportunity.weighted_amount.amount_minor == 500_000
    )


async def test_every_input_error_is_invalid_argument_naming_the_fields(stub, as_user):
    rep = as_user("sales_rep", "bob")
    # Shape errors come from the protovalidate constraints…
    shape = await expect_error(
        stub.CreateOpportunity(
            pb.CreateOpportunityRequest(
                opportunity=deal(
                    customer="acme",
                    probability=101,
                    amount=money_pb2.Money(currency_code="yuan", amount_minor=-1),
                ),
                request_id="not-a-uuid",
            ),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    fields = set(shape.field_violations)
    assert {
        "opportunity.customer",
        "opportunity.probability",
        "opportunity.amount",
        "opportunity.amount.currency_code",
        "request_id",
    } <= fields, fields
    # …and rules from the service, every missing field at once.
    missing = await expect_error(
        stub.CreateOpportunity(pb.CreateOpportunityRequest(opportunity=pb.Opportunity()), metadata=rep),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(missing.field_violations) == {
        "opportunity.customer",
        "opportunity.title",
        "opportunity.expected_close_time",
        "opportunity.amount",
    }
    unknown_stage = await expect_error(
        create(stub, rep, stage="pipelines/default/stages/nope"), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert list(unknown_stage.field_violations) == ["opportunity.stage"]
    closed_stage = await expect_error(
        create(stub, rep, stage=STAGES + "closed-won"), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert list(closed_stage.field_violations) == ["opportunity.stage"]
    bad_contact = await expect_error(
        create(stub, rep, contact=f"customers/{uuid.uuid4()}/contacts/{uuid.uuid4()}"),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert list(bad_contact.field_violations) == ["opportunity.contact"]
    bad_line = await expect_error(
        create(
            stub,
            rep,
            product_lines=[
                pb.ProductLine(display_name="x", quantity=1, unit_price=money_pb2.Money(currency_code="USD"))
            ],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert list(bad_line.field_violations) == ["opportunity.product_lines[0].unit_price.currency_code"]

    created = await create(stub, rep)
    read_only = await expect_error(
        stub.UpdateOpportunity(
            pb.UpdateOpportunityRequest(
                opportunity=pb.Opportunity(name=created.name, stage=STAGES + "proposal"),
                update_mask=field_mask_pb2.FieldMask(paths=["stage", "weighted_amount"]),
            ),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert list(read_only.field_violations) == [
        "update_mask.paths[0]",
        "update_mask.paths[1]",
    ]
    bad_move = await expect_error(
        stub.MoveOpportunityStage(
            pb.MoveOpportunityStageRequest(name=created.name, stage="pipelines/other/stages/proposal"),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert list(bad_move.field_violations) == ["stage"]
    bad_filter = await expect_error(
        stub.ListOpportunities(pb.ListOpportunitiesRequest(filter="amount >= lots"), metadata=rep),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert list(bad_filter.field_violations) == ["filter"]
    stale = await expect_error(
        stub.MoveOpportunityStage(
            pb.MoveOpportunityStageRequest(name=created.name, stage=STAGES + "proposal", etag="stale"),
            metadata=rep,
        ),
        grpc.StatusCode.ABORTED,
    )
    assert stale.reason == "STALE_ETAG"


async def test_data_scope_rep_own_manager_team_finance_won_only(stub, as_user):
    bob = as_user("sales_rep", "bob", team="east")
    carol = as_user("sales_rep", "carol", team="east")
    east_manager = as_user("sales_manager", "meg", team="east")
    west_manager = as_user("sales_manager", "wes", team="west")
    finance = as_user("finance", "fay", team="")
    analyst = as_user("analyst", "ann", team="")

    bobs = await create(stub, bob, title="Bob's deal")
    carols = await create(stub, carol, title="Carol's deal")
    won = await create(stub, bob, title="Bob's won deal")
    await stub.WinOpportunity(pb.WinOpportunityRequest(name=won.name), metadata=bob)

    # A rep sees only their own; someone else's is NOT_FOUND, never PERMISSION_DENIED.
    await expect_error(
        stub.GetOpportunity(pb.GetOpportunityRequest(name=carols.name), metadata=bob),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        stub.MoveOpportunityStage(
            pb.MoveOpportunityStageRequest(name=carols.name, stage=STAGES + "proposal"), metadata=bob
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    listed = await stub.ListOpportunities(pb.ListOpportunitiesRequest(), metadata=bob)
    assert {o.name for o in listed.opportunities} == {bobs.name, won.name}
    # A rep cannot create for someone else.
    await expect_error(create(stub, bob, owner="carol"), grpc.StatusCode.PERMISSION_DENIED)
    # …nor put their deal into another team (its manager would see it).
    other_team = await expect_error(create(stub, bob, team="west"), grpc.StatusCode.PERMISSION_DENIED)
    assert other_team.reason == "TEAM_OUTSIDE_SCOPE"

    # A manager sees and changes the whole team; another team's manager sees nothing of it.
    team = await stub.ListOpportunities(pb.ListOpportunitiesRequest(), metadata=east_manager)
    assert {o.name for o in team.opportunities} == {bobs.name, carols.name, won.name}
    await stub.MoveOpportunityStage(
        pb.MoveOpportunityStageRequest(name=carols.name, stage=STAGES + "proposal"), metadata=east_manager
    )
    await expect_error(
        stub.GetOpportunity(pb.GetOpportunityRequest(name=bobs.name), metadata=west_manager),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        stub.WinOpportunity(pb.WinOpportunityRequest(name=bobs.name), metadata=west_manager),
        grpc.StatusCode.NOT_FOUND,
    )
    assert not (
        await stub.ListOpportunities(pb.ListOpportunitiesRequest(), metadata=west_manager)
    ).opportunities

    # Finance reads won opportunities only, and changes nothing.
    seen = await stub.ListOpportunities(pb.ListOpportunitiesRequest(), metadata=finance)
    assert [o.name for o in seen.opportunities] == [won.name]
    await expect_error(
        stub.GetOpportunity(pb.GetOpportunityRequest(name=bobs.name), metadata=finance),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        stub.WinOpportunity(pb.WinOpportunityRequest(name=bobs.name), metadata=finance),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    # Analysts get no opportunities at all.
    await expect_error(
        stub.ListOpportunities(pb.ListOpportunitiesRequest(), metadata=analyst),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_request_id_makes_create_and_custom_methods_idempotent(stub, as_user):
    rep = as_user("sales_rep", "bob")
    request = pb.CreateOpportunityRequest(opportunity=deal(), request_id=str(uuid.uuid4()))
    first = await stub.CreateOpportunity(request, metadata=rep)
    again = await stub.CreateOpportunity(request, metadata=rep)
    assert again == first
    listed = await stub.ListOpportunities(pb.ListOpportunitiesRequest(), metadata=rep)
    assert len(listed.opportunities) == 1

    move = pb.MoveOpportunityStageRequest(
        name=first.name, stage=STAGES + "proposal", request_id=str(uuid.uuid4())
    )
    moved = await stub.MoveOpportunityStage(move, metadata=rep)
    retried = await stub.MoveOpportunityStage(move, metadata=rep)
    assert retried == moved and len(retried.stage_history) == 2

    reused = await expect_error(
        stub.MoveOpportunityStage(
            pb.MoveOpportunityStageRequest(
                name=first.name, stage=STAGES + "negotiation", request_id=move.request_id
            ),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert reused.reason == "REQUEST_ID_REUSED"

    win = pb.WinOpportunityRequest(name=first.name, request_id=str(uuid.uuid4()))
    won = await stub.WinOpportunity(win, metadata=rep)
    assert (await stub.WinOpportunity(win, metadata=rep)) == won  # a retry, not a second win


async def test_list_filters_orders_and_pages(stub, as_user):
    admin = as_user("admin", "root")
    customer = f"customers/{uuid.uuid4()}"
    names = []
    for amount in (300, 100, 500, 200, 400):
        names.append((await create(stub, admin, amount=cny(amount), customer=customer)).name)
    await stub.MoveOpportunityStage(
        pb.MoveOpportunityStageRequest(name=names[2], stage=STAGES + "negotiation"), metadata=admin
    )
    await create(stub, admin, amount=cny(999))  # another customer

    pages, token = [], ""
    while True:
        page = await stub.ListOpportunities(
            pb.ListOpportunitiesRequest(
                filter=f'customer = "{customer}"', order_by="amount desc", page_size=2, page_token=token
            ),
            metadata=admin,
        )
        pages.append([o.amount.amount_minor for o in page.opportunities])
        token = page.next_page_token
        if not token:
            break
    assert pages == [[500, 400], [300, 200], [100]]

    async def matching(text: str) -> list[int]:
        found = await stub.ListOpportunities(
            pb.ListOpportunitiesRequest(filter=text, order_by="amount"), metadata=admin
        )
        return [o.amount.amount_minor for o in found.opportunities]

    assert await matching(f'customer = "{customer}" AND amount >= 300') == [300, 400, 500]
    assert await matching("forecast_category = FORECAST_CATEGORY_COMMIT") == [500]
    assert await matching(f'stage = "{STAGES}negotiation"') == [500]
    assert await matching('pipeline = "pipelines/default" AND amount > 900') == [999]
    assert await matching('expected_close_time < "2027-01-01T00:00:00Z"') == []
    assert await matching("state = OPPORTUNITY_STATE_OPEN AND owner = root AND amount < 200") == [100]


async def test_custom_pipeline_stages_and_their_guards(stub, as_user):
    manager = as_user("sales_manager", "meg", team="east")
    rep = as_user("sales_rep", "bob", team="east")
    spec = pb.Pipeline(
        display_name="Key accounts",
        currency_code="USD",
        stages=[
            pb.Stage(
                display_name="Discovery",
                default_probability=20,
                forecast_category=common_pb2.FORECAST_CATEGORY_PIPELINE,
            ),
            pb.Stage(
                display_name="Commit",
                default_probability=80,
                forecast_category=common_pb2.FORECAST_CATEGORY_COMMIT,
            ),
            pb.Stage(
                display_name="Won",
                default_probability=100,
                forecast_category=common_pb2.FORECAST_CATEGORY_CLOSED,
                is_won=True,
            ),
            pb.Stage(
                display_name="Lost",
                default_probability=0,
                forecast_category=common_pb2.FORECAST_CATEGORY_OMITTED,
                is_lost=True,
            ),
        ],
    )
    await expect_error(
        stub.CreatePipeline(
            pb.CreatePipelineRequest(pipeline=spec, pipeline_id="key-accounts"), metadata=rep
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    pipeline = await stub.CreatePipeline(
        pb.CreatePipelineRequest(pipeline=spec, pipeline_id="key-accounts"), metadata=manager
    )
    assert pipeline.name == "pipelines/key-accounts"
    assert [s.name for s in pipeline.stages] == [
        "pipelines/key-accounts/stages/discovery",
        "pipelines/key-accounts/stages/commit",
        "pipelines/key-accounts/stages/won",
        "pipelines/key-accounts/stages/lost",
    ]
    no_lost = await expect_error(
        stub.CreatePipeline(
            pb.CreatePipelineRequest(pipeline=pb.Pipeline(display_name="Bad", stages=spec.stages[:3])),
            metadata=manager,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert list(no_lost.field_violations) == ["pipeline.stages"]

    # The pipeline's currency is enforced; its stage defaults apply.
    wrong_currency = await expect_error(
        create(stub, rep, pipeline=pipeline.name), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert list(wrong_currency.field_violations) == ["opportunity.amount.currency_code"]
    created = await create(
        stub, rep, pipeline=pipeline.name, amount=money_pb2.Money(currency_code="USD", amount_minor=10_000)
    )
    assert (created.stage, created.probability) == ("pipelines/key-accounts/stages/discovery", 20)
    won = await stub.WinOpportunity(pb.WinOpportunityRequest(name=created.name), metadata=rep)
    assert won.stage == "pipelines/key-accounts/stages/won"

    # A stage in use cannot be removed; a recategorized stage carries its opportunities along.
    keep_all_but_won = [
        pb.Stage(
            name=s.name,
            display_name=s.display_name,
            default_probability=s.default_probability,
            forecast_category=s.forecast_category,
            is_won=s.is_won,
            is_lost=s.is_lost,
        )
        for s in pipeline.stages
        if not s.is_won
    ]
    in_use = await expect_error(
        stub.UpdatePipeline(
            pb.UpdatePipelineRequest(
                pipeline=pb.Pipeline(name=pipeline.name, stages=keep_all_but_won),
                update_mask=field_mask_pb2.FieldMask(paths=["stages"]),
            ),
            metadata=manager,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,  # a pipeline without a won stage is invalid before it is in use
    )
    assert list(in_use.field_violations) == ["pipeline.stages"]
    without_discovery = [
        pb.Stage(
            name=s.name,
            display_name=s.display_name,
            default_probability=s.default_probability,
            forecast_category=s.forecast_category,
            is_won=s.is_won,
            is_lost=s.is_lost,
        )
        for s in pipeline.stages[1:]
    ]
    open_one = await create(
        stub, rep, pipeline=pipeline.name, amount=money_pb2.Money(currency_code="USD", amount_minor=1)
    )
    blocked = await expect_error(
        stub.UpdatePipeline(
            pb.UpdatePipelineRequest(
                pipeline=pb.Pipeline(name=pipeline.name, stages=without_discovery),
                update_mask=field_mask_pb2.FieldMask(paths=["stages"]),
            ),
            metadata=manager,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert blocked.reason == "STAGE_IN_USE"
    recategorized = list(without_discovery)
    recategorized.insert(
        0,
        pb.Stage(
            name="pipelines/key-accounts/stages/discovery",
            display_name="Discovery",
            default_probability=30,
            forecast_category=common_pb2.FORECAST_CATEGORY_BEST_CASE,
        ),
    )
    updated = await stub.UpdatePipeline(
        pb.UpdatePipelineRequest(
            pipeline=pb.Pipeline(name=pipeline.name, stages=recategorized, etag=pipeline.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["stages"]),
        ),
        metadata=manager,
    )
    assert updated.stages[0].forecast_category == common_pb2.FORECAST_CATEGORY_BEST_CASE
    again = await stub.GetOpportunity(pb.GetOpportunityRequest(name=open_one.name), metadata=rep)
    assert again.forecast_category == common_pb2.FORECAST_CATEGORY_BEST_CASE
    assert again.probability == 20  # a new default applies to later moves, not retroactively
    await expect_error(
        stub.DeletePipeline(pb.DeletePipelineRequest(name=pipeline.name), metadata=manager),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await expect_error(
        stub.DeletePipeline(pb.DeletePipelineRequest(name="pipelines/default"), metadata=manager),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_concurrent_wins_close_the_deal_once(stub, as_user, nats_server):
    rep = as_user("sales_rep", "bob")
    created = await create(stub, rep)
    outcomes = await asyncio.gather(
        *(stub.WinOpportunity(pb.WinOpportunityRequest(name=created.name), metadata=rep) for _ in range(4)),
        return_exceptions=True,
    )
    wins = [o for o in outcomes if isinstance(o, pb.Opportunity)]
    refused = [error_details(o).code for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(wins) == 1 and len(refused) == 3, outcomes
    assert set(refused) <= {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED}
    assert len(wins[0].stage_history) == 2
    nc = await connect_nats(nats_server.url)
    try:
        envelopes = await wait_for_envelopes(
            nc.jetstream(), "CRM_SALES", resource=created.name, count=3, within=2
        )
    finally:
        await nc.close()
    assert [e.type for e in envelopes] == ["crm.sales.v1.OpportunityCreated", "crm.sales.v1.OpportunityWon"]
