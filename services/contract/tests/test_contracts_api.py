"""ContractService standard methods, Sign/Terminate/Renew through a real gRPC channel,
on SQLite and PostgreSQL, with the events checked on the real NATS stream.

What a caller notices: numbering, amounts derived from line items, INVALID_ARGUMENT
naming the bad fields, data scope (NOT_FOUND outside it), etags, request_id retries,
the status machine's FAILED_PRECONDITION reasons, renewals linked both ways.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2
from google.type import date_pb2

from crm.common.v1.money_pb2 import Money
from crm.contract.v1 import common_pb2 as cpb
from crm.contract.v1 import contract_service_pb2 as pb
from crm.contract.v1 import contract_service_pb2_grpc as pb_grpc
from crm.contract.v1 import events_pb2
from crm.contract.v1 import payment_service_pb2 as ppb
from crm.contract.v1 import payment_service_pb2_grpc as ppb_grpc
from crm_contract.adapters.contract_repository import ContractRepository
from crm_contract.api.contracts import ContractServicer
from crm_contract.domain import contracts as rules
from crm_shared.grpc.status import error_details
from crm_shared.testing.events import wait_for_envelopes
from crm_shared.testing.fixtures_nats import connect_nats

pytestmark = pytest.mark.asyncio(loop_scope="session")

STREAM = "CRM_CONTRACT"


@pytest.fixture
def contracts(channel):
    return pb_grpc.ContractServiceStub(channel)


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


def customer() -> str:
    return f"customers/{uuid.uuid4()}"


def eur(amount: int) -> Money:
    return Money(currency_code="EUR", amount_minor=amount)


def day(year: int, month: int, dd: int) -> date_pb2.Date:
    return date_pb2.Date(year=year, month=month, day=dd)


def new_contract(**fields) -> pb.Contract:
    values = dict(
        customer=customer(),
        title="Support 2026",
        amount=eur(1_200_00),
        start_date=day(2026, 1, 1),
        end_date=day(2026, 12, 31),
    )
    values.update(fields)
    return pb.Contract(**values)


async def events_about(nats_server, resource: str, count: int):
    nc = await connect_nats(nats_server.url)
    try:
        return await wait_for_envelopes(nc.jetstream(), STREAM, resource=resource, count=count)
    finally:
        await nc.close()


async def approve_directly(service, name: str) -> None:
    """DRAFT -> PENDING_APPROVAL -> APPROVED through the domain rules (the approval RPCs are B's)."""
    await move_directly(service, name, rules.approve)


async def move_directly(service, name: str, decide) -> None:
    """Submit, then `decide` (rules.approve / rules.reject), straight through the domain and repository."""
    app = next(s for _, s in service.parts.servicers if isinstance(s, ContractServicer))._app
    async with app.uow_factory() as uow:
        repo = ContractRepository(uow.session)
        current = await repo.get(name.removeprefix("contracts/"))
        decided = decide(rules.submit(current, uow.now, approval_id=str(uuid.uuid4())), uow.now)
        await repo.save(decided, current.row_version)
        await uow.commit()


async def test_editing_a_rejected_contract_makes_it_a_draft_again(
    contracts, as_user, contract_service, nats_server
):
    rep = as_user("sales_rep", "bob", "east")
    created = await contracts.CreateContract(pb.CreateContractRequest(contract=new_contract()), metadata=rep)
    await move_directly(contract_service, created.name, rules.reject)
    edited = await contracts.UpdateContract(
        pb.UpdateContractRequest(
            contract=pb.Contract(name=created.name, payment_terms="50% upfront"),
            update_mask=field_mask_pb2.FieldMask(paths=["payment_terms"]),
        ),
        metadata=rep,
    )
    assert (edited.status, edited.payment_terms) == (cpb.CONTRACT_STATUS_DRAFT, "50% upfront")
    # Submitted once: kept for its approval history, never deleted.
    kept = await expect_error(
        contracts.DeleteContract(pb.DeleteContractRequest(name=created.name), metadata=rep),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert kept.reason == "CONTRACT_ALREADY_SUBMITTED"
    events = await events_about(nats_server, created.name, 2)
    update = events_pb2.ContractUpdated()
    events[-1].payload.Unpack(update)
    assert events[-1].type == "crm.contract.v1.ContractUpdated"
    assert sorted(update.changed_fields) == ["payment_terms", "status"]
    assert update.contract.status == cpb.CONTRACT_STATUS_DRAFT


async def test_create_numbers_a_draft_with_the_amount_of_its_line_items(contracts, as_user, nats_server):
    rep = as_user("sales_rep", "bob", "east")
    created = await contracts.CreateContract(
        pb.CreateContractRequest(
            contract=new_contract(
                amount=Money(currency_code="EUR"),
                line_items=[
                    pb.LineItem(description="Licences", quantity=10, unit_price_minor=99_00),
                    pb.LineItem(description="Onboarding", quantity=3, unit_price_minor=150_00),
                ],
            )
        ),
        metadata=rep,
    )
    assert created.number.startswith("C-") and len(created.number) == 8
    assert created.status == cpb.CONTRACT_STATUS_DRAFT
    assert created.amount == eur(10 * 99_00 + 3 * 150_00)
    assert [i.amount_minor for i in created.line_items] == [990_00, 450_00]
    assert (created.owner, created.team, created.contract_type) == ("bob", "east", "standard")
    assert created.renewal_notice_days == 30
    assert created.balance.received == eur(0) and created.balance.outstanding == eur(1440_00)
    again = await contracts.GetContract(pb.GetContractRequest(name=created.name), metadata=rep)
    assert again == created
    second = await contracts.CreateContract(pb.CreateContractRequest(contract=new_contract()), metadata=rep)
    assert int(second.number[2:]) == int(created.number[2:]) + 1

    events = await events_about(nats_server, created.name, 1)
    assert [e.type for e in events] == ["crm.contract.v1.ContractCreated"]
    event = events_pb2.ContractCreated()
    events[0].payload.Unpack(event)
    assert (event.origin, event.contract.number, event.contract.amount) == (
        "api",
        created.number,
        created.amount,
    )


async def test_invalid_input_names_every_bad_field(contracts, as_user):
    rep = as_user("sales_rep", "bob", "east")
    details = await expect_error(
        contracts.CreateContract(
            pb.CreateContractRequest(
                contract=pb.Contract(
                    title="No customer",
                    amount=eur(500),
                    line_items=[pb.LineItem(description="One", quantity=1, unit_price_minor=400)],
                    start_date=day(2026, 6, 1),
                    end_date=day(2026, 5, 31),
                )
            ),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(details.field_violations) == {
        "contract.customer",
        "contract.amount.amount_minor",
        "contract.end_date",
    }
    denied = await expect_error(
        contracts.CreateContract(
            pb.CreateContractRequest(contract=new_contract(owner="carol")), metadata=rep
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert denied.reason == "OWNER_OUTSIDE_SCOPE"


async def test_scope_reps_see_their_own_managers_their_team_finance_everything(contracts, as_user):
    bob, dana = as_user("sales_rep", "bob", "east"), as_user("sales_rep", "dana", "east")
    east_manager, west_manager = (
        as_user("sales_manager", "mia", "east"),
        as_user("sales_manager", "wes", "west"),
    )
    finance = as_user("finance", "fiona", "")
    mine = await contracts.CreateContract(pb.CreateContractRequest(contract=new_contract()), metadata=bob)

    hidden = await expect_error(
        contracts.GetContract(pb.GetContractRequest(name=mine.name), metadata=dana), grpc.StatusCode.NOT_FOUND
    )
    assert hidden.reason == "CONTRACT_NOT_FOUND"
    await expect_error(
        contracts.GetContract(pb.GetContractRequest(name=mine.name), metadata=west_manager),
        grpc.StatusCode.NOT_FOUND,
    )
    for reader in (bob, east_manager, finance):
        assert (
            await contracts.GetContract(pb.GetContractRequest(name=mine.name), metadata=reader)
        ).name == mine.name
    only = f'customer = "{mine.customer}"'
    assert [
        c.name
        for c in (
            await contracts.ListContracts(pb.ListContractsRequest(filter=only), metadata=dana)
        ).contracts
    ] == []
    assert [
        c.name
        for c in (
            await contracts.ListContracts(pb.ListContractsRequest(filter=only), metadata=finance)
        ).contracts
    ] == [mine.name]
    # A rep cannot edit someone else's contract either: it does not exist for them.
    await expect_error(
        contracts.UpdateContract(
            pb.UpdateContractRequest(
                contract=pb.Contract(name=mine.name, title="mine now"),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            ),
            metadata=dana,
        ),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_list_filters_orders_and_pages(contracts, as_user):
    rep = as_user("sales_rep", "erin", "north")
    the_customer = customer()
    ends = [day(2026, 3, 31), day(2026, 12, 31), day(2026, 6, 30), day(2027, 1, 31), day(2026, 9, 30)]
    names = []
    for end in ends:
        created = await contracts.CreateContract(
            pb.CreateContractRequest(contract=new_contract(customer=the_customer, end_date=end)), metadata=rep
        )
        names.append(created.name)
    seen, token = [], ""
    while True:
        page = await contracts.ListContracts(
            pb.ListContractsRequest(
                filter=f'customer = "{the_customer}"', order_by="end_date", page_size=2, page_token=token
            ),
            metadata=rep,
        )
        assert len(page.contracts) <= 2
        seen += [(c.end_date.year, c.end_date.month) for c in page.contracts]
        token = page.next_page_token
        if not token:
            break
    assert seen == [(2026, 3), (2026, 6), (2026, 9), (2026, 12), (2027, 1)]
    late = await contracts.ListContracts(
        pb.ListContractsRequest(
            filter=f'customer = "{the_customer}" AND end_date >= "2026-09-30"'
            " AND status = CONTRACT_STATUS_DRAFT",
            order_by="end_date desc",
        ),
        metadata=rep,
    )
    assert [(c.end_date.year, c.end_date.month) for c in late.contracts] == [(2027, 1), (2026, 12), (2026, 9)]
    newest_first = await contracts.ListContracts(
        pb.ListContractsRequest(filter=f'customer = "{the_customer}"'), metadata=rep
    )
    assert [c.name for c in newest_first.contracts] == names[::-1]
    bad = await expect_error(
        contracts.ListContracts(pb.ListContractsRequest(filter='end_date < "31/12/2026"'), metadata=rep),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "calendar date" in bad.message or bad.field_violations


async def test_update_edits_drafts_with_etags_and_refuses_other_statuses(
    contracts, as_user, contract_service
):
    rep = as_user("sales_rep", "bob", "east")
    created = await contracts.CreateContract(pb.CreateContractRequest(contract=new_contract()), metadata=rep)
    updated = await contracts.UpdateContract(
        pb.UpdateContractRequest(
            contract=pb.Contract(
                name=created.name, title="Support 2026 (gold)", amount=eur(1_500_00), etag=created.etag
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["title", "amount"]),
        ),
        metadata=rep,
    )
    assert (updated.title, updated.amount, updated.customer) == (
        "Support 2026 (gold)",
        eur(1_500_00),
        created.customer,
    )
    assert updated.etag != created.etag
    stale = await expect_error(
        contracts.UpdateContract(
            pb.UpdateContractRequest(
                contract=pb.Contract(name=created.name, title="lost update", etag=created.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            ),
            metadata=rep,
        ),
        grpc.StatusCode.ABORTED,
    )
    assert stale.reason == "STALE_ETAG"
    output_only = await expect_error(
        contracts.UpdateContract(
            pb.UpdateContractRequest(
                contract=pb.Contract(name=created.name),
                update_mask=field_mask_pb2.FieldMask(paths=["status"]),
            ),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert output_only.field_violations

    await approve_directly(contract_service, created.name)
    refused = await expect_error(
        contracts.UpdateContract(
            pb.UpdateContractRequest(
                contract=pb.Contract(name=created.name, title="too late"),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            ),
            metadata=rep,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert refused.reason == "CONTRACT_NOT_DRAFT_OR_REJECTED"
    assert refused.metadata["status"] == "approved"
    not_deletable = await expect_error(
        contracts.DeleteContract(pb.DeleteContractRequest(name=created.name), metadata=rep),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert not_deletable.reason == "CONTRACT_NOT_DRAFT"


async def test_delete_removes_a_never_submitted_draft(contracts, as_user, nats_server):
    rep = as_user("sales_rep", "bob", "east")
    created = await contracts.CreateContract(pb.CreateContractRequest(contract=new_contract()), metadata=rep)
    await contracts.DeleteContract(
        pb.DeleteContractRequest(name=created.name, etag=created.etag), metadata=rep
    )
    await expect_error(
        contracts.GetContract(pb.GetContractRequest(name=created.name), metadata=rep),
        grpc.StatusCode.NOT_FOUND,
    )
    events = await events_about(nats_server, created.name, 2)
    assert [e.type for e in events] == ["crm.contract.v1.ContractCreated", "crm.contract.v1.ContractDeleted"]


async def test_request_id_retry_returns_the_same_contract(contracts, as_user):
    rep = as_user("sales_rep", "bob", "east")
    request = pb.CreateContractRequest(contract=new_contract(), request_id=str(uuid.uuid4()))
    first = await contracts.CreateContract(request, metadata=rep)
    retry = await contracts.CreateContract(request, metadata=rep)
    assert (retry.name, retry.number) == (first.name, first.number)
    listed = await contracts.ListContracts(
        pb.ListContractsRequest(filter=f'customer = "{first.customer}"'), metadata=rep
    )
    assert len(listed.contracts) == 1


async def test_sign_terminate_and_renew(contracts, as_user, contract_service, nats_server):
    rep, manager = as_user("sales_rep", "bob", "east"), as_user("sales_manager", "mia", "east")
    created = await contracts.CreateContract(
        pb.CreateContractRequest(
            contract=new_contract(
                start_date=day(2026, 4, 1),
                end_date=day(2027, 3, 31),
                line_items=[pb.LineItem(description="Support", quantity=12, unit_price_minor=100_00)],
                amount=Money(currency_code="EUR"),
            )
        ),
        metadata=rep,
    )
    early = await expect_error(
        contracts.SignContract(pb.SignContractRequest(name=created.name), metadata=rep),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert (early.reason, early.metadata["status"]) == (
        "CONTRACT_NOT_APPROVED",
        "draft",
    )
    await approve_directly(contract_service, created.name)
    signed = await contracts.SignContract(
        pb.SignContractRequest(name=created.name, company_signer="mia", request_id=str(uuid.uuid4())),
        metadata=rep,
    )
    today = datetime.now(UTC).date()
    assert signed.status == cpb.CONTRACT_STATUS_ACTIVE
    assert (signed.signed_date.year, signed.signed_date.month, signed.signed_date.day) == (
        today.year,
        today.month,
        today.day,
    )
    assert signed.company_signer == "mia"

    renewal = await contracts.RenewContract(pb.RenewContractRequest(name=created.name), metadata=rep)
    assert renewal.status == cpb.CONTRACT_STATUS_DRAFT and renewal.renewal_of == created.name
    assert (renewal.start_date, renewal.end_date) == (day(2027, 4, 1), day(2028, 3, 31))
    assert renewal.amount == eur(1_200_00) and len(renewal.line_items) == 1
    assert renewal.number != created.number
    renewed = await contracts.GetContract(pb.GetContractRequest(name=created.name), metadata=rep)
    assert renewed.renewed_by == renewal.name and renewed.status == cpb.CONTRACT_STATUS_ACTIVE
    twice = await expect_error(
        contracts.RenewContract(pb.RenewContractRequest(name=created.name), metadata=rep),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert twice.reason == "CONTRACT_ALREADY_RENEWED"
    cannot = await expect_error(
        contracts.RenewContract(pb.RenewContractRequest(name=renewal.name), metadata=rep),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert cannot.reason == "CONTRACT_NOT_ACTIVE_OR_EXPIRED"

    # Terminating is a manager's call.
    await expect_error(
        contracts.TerminateContract(
            pb.TerminateContractRequest(name=created.name, reason="breach"), metadata=rep
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    terminated = await contracts.TerminateContract(
        pb.TerminateContractRequest(name=created.name, reason="customer breach", etag=renewed.etag),
        metadata=manager,
    )
    assert (terminated.status, terminated.termination_reason) == (
        cpb.CONTRACT_STATUS_TERMINATED,
        "customer breach",
    )

    old_events = await events_about(nats_server, created.name, 4)
    new_events = await events_about(nats_server, renewal.name, 1)
    assert [e.type for e in old_events] == [
        "crm.contract.v1.ContractCreated",
        "crm.contract.v1.ContractSigned",
        "crm.contract.v1.ContractRenewed",
        "crm.contract.v1.ContractTerminated",
    ]
    signed_event = events_pb2.ContractSigned()
    old_events[1].payload.Unpack(signed_event)
    assert (signed_event.contract, signed_event.customer) == (created.name, created.customer)
    assert signed_event.snapshot.status == cpb.CONTRACT_STATUS_ACTIVE and signed_event.HasField("sign_time")
    renewed_event = events_pb2.ContractRenewed()
    old_events[2].payload.Unpack(renewed_event)
    assert (renewed_event.contract, renewed_event.renewal.name) == (created.name, renewal.name)
    created_event = events_pb2.ContractCreated()
    new_events[0].payload.Unpack(created_event)
    assert (created_event.origin, created_event.contract.renewal_of) == ("renewal", created.name)

    # Every write left an audit row naming who did it.
    assert await audit_trail(contract_service, created.name) == [
        ("created", "bob"),
        ("signed", "bob"),
        ("renewed", "bob"),
        ("terminated", "mia"),
    ]


async def audit_trail(service, name: str) -> list[tuple[str, str]]:
    app = next(s for _, s in service.parts.servicers if isinstance(s, ContractServicer))._app
    audit = app.uow_factory.tables.audit_log
    async with app.db.read_session() as session:
        rows = await session.execute(
            sa.select(audit.c.action, audit.c.actor)
            .where(audit.c.resource == name)
            .order_by(audit.c.occurred_at)
        )
        return [tuple(row) for row in rows]


async def test_deleting_a_renewal_draft_lets_the_contract_be_renewed_again(
    contracts, as_user, contract_service
):
    rep = as_user("sales_rep", "bob", "east")
    created = await contracts.CreateContract(pb.CreateContractRequest(contract=new_contract()), metadata=rep)
    await approve_directly(contract_service, created.name)
    await contracts.SignContract(pb.SignContractRequest(name=created.name), metadata=rep)
    wrong_currency = await expect_error(
        contracts.RenewContract(
            pb.RenewContractRequest(name=created.name, amount=Money(currency_code="USD", amount_minor=1)),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(wrong_currency.field_violations) == {"amount.currency_code"}
    backwards = await expect_error(
        contracts.RenewContract(
            pb.RenewContractRequest(name=created.name, start_date=day(2027, 6, 1), end_date=day(2027, 5, 31)),
            metadata=rep,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(backwards.field_violations) == {"end_date"}
    first = await contracts.RenewContract(
        pb.RenewContractRequest(name=created.name, amount=eur(1_300_00), end_date=day(2027, 6, 30)),
        metadata=rep,
    )
    assert (first.amount, first.start_date, first.end_date) == (
        eur(1_300_00),
        day(2027, 1, 1),
        day(2027, 6, 30),
    )
    await contracts.DeleteContract(pb.DeleteContractRequest(name=first.name), metadata=rep)
    freed = await contracts.GetContract(pb.GetContractRequest(name=created.name), metadata=rep)
    assert freed.renewed_by == ""
    second = await contracts.RenewContract(pb.RenewContractRequest(name=created.name), metadata=rep)
    assert second.renewal_of == created.name and second.amount == created.amount


async def test_amount_change_must_keep_matching_the_payment_plan(contracts, channel, as_user):
    admin = as_user("admin", "ada", "east")
    created = await contracts.CreateContract(
        pb.CreateContractRequest(contract=new_contract(amount=eur(1_000_00))), metadata=admin
    )
    await ppb_grpc.PaymentServiceStub(channel).SetPaymentPlan(
        ppb.SetPaymentPlanRequest(
            name=f"{created.name}/paymentPlan",
            installments=[
                ppb.Installment(due_date=day(2026, 2, 28), amount=eur(400_00)),
                ppb.Installment(due_date=day(2026, 5, 31), amount=eur(600_00)),
            ],
        ),
        metadata=admin,
    )
    mismatch = await expect_error(
        contracts.UpdateContract(
            pb.UpdateContractRequest(
                contract=pb.Contract(name=created.name, amount=eur(1_100_00)),
                update_mask=field_mask_pb2.FieldMask(paths=["amount"]),
            ),
            metadata=admin,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert (mismatch.reason, mismatch.metadata["plan_total"]) == ("PAYMENT_PLAN_MISMATCH", "100000")
    # Anything else stays editable.
    retitled = await contracts.UpdateContract(
        pb.UpdateContractRequest(
            contract=pb.Contract(name=created.name, title="Renamed"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=admin,
    )
    assert (retitled.title, retitled.amount) == ("Renamed", eur(1_000_00))


async def test_racing_renewals_make_exactly_one_renewal(contracts, as_user, contract_service):
    rep = as_user("sales_rep", "bob", "east")
    created = await contracts.CreateContract(pb.CreateContractRequest(contract=new_contract()), metadata=rep)
    await approve_directly(contract_service, created.name)
    await contracts.SignContract(pb.SignContractRequest(name=created.name), metadata=rep)
    outcomes = await asyncio.gather(
        *(
            contracts.RenewContract(pb.RenewContractRequest(name=created.name), metadata=rep)
            for _ in range(3)
        ),
        return_exceptions=True,
    )
    renewals = [o for o in outcomes if isinstance(o, pb.Contract)]
    refused = [error_details(o) for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(renewals) == 1 and len(refused) == 2
    assert {(d.code, d.reason) for d in refused} <= {
        (grpc.StatusCode.FAILED_PRECONDITION, "CONTRACT_ALREADY_RENEWED"),
        (grpc.StatusCode.ABORTED, "CONCURRENT_UPDATE"),
    }
    listed = await contracts.ListContracts(
        pb.ListContractsRequest(filter=f'customer = "{created.customer}"'), metadata=rep
    )
    assert sorted(c.name for c in listed.contracts) == sorted([created.name, renewals[0].name])
