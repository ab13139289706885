"""FindDuplicates and MergeCustomers through a real gRPC channel, on SQLite and PostgreSQL, real NATS."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy as sa
from customer_data_helpers import company, create, execute, expect_error, query, unique

from crm.customer.v1 import customer_data_service_pb2 as data_rpc
from crm.customer.v1 import customer_data_service_pb2_grpc as data_grpc
from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as rpc
from crm.customer.v1 import data_events_pb2
from crm_customer.adapters.tables import metadata
from crm_shared.testing.events import wait_for_envelopes

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def data_stub(channel):
    return data_grpc.CustomerDataServiceStub(channel)


async def test_exact_and_fuzzy_duplicates_with_scores(stub, data_stub, as_user):
    admin = as_user("admin", "root")
    tag = unique()
    acme = await create(
        stub,
        admin,
        company(
            f"Acme Trading {tag} Ltd",
            email_addresses=[pb.EmailAddress(address=f"sales-{tag}@acme.example")],
            phone_numbers=[pb.PhoneNumber(number="139 1111 2222")],
            tax_id=f"91-{tag}",
        ),
    )
    twin = await create(stub, admin, company(f"ACME trading {tag} Co."))
    await create(stub, admin, company(f"Globex {tag}"))

    # A probe (a row about to be imported): every exact kind scores 100, the name match too.
    probe = data_rpc.FindDuplicatesRequest(
        probe=pb.Customer(
            display_name=f"Acme Trading {tag}",
            email_addresses=[pb.EmailAddress(address=f"SALES-{tag}@Acme.example")],
            phone_numbers=[pb.PhoneNumber(number="+86 139-1111-2222")],
            tax_id=f"91{tag.upper()}",
        )
    )
    found = (await data_stub.FindDuplicates(probe, metadata=admin)).duplicates[0].candidates
    by_name = {c.customer: c for c in found}
    assert by_name[acme.name].score == 100
    assert set(by_name[acme.name].match_kinds) == {
        data_rpc.MATCH_KIND_EXACT_EMAIL,
        data_rpc.MATCH_KIND_EXACT_PHONE,
        data_rpc.MATCH_KIND_EXACT_TAX_ID,
        data_rpc.MATCH_KIND_FUZZY_NAME,
    }
    assert list(by_name[twin.name].match_kinds) == [data_rpc.MATCH_KIND_FUZZY_NAME]
    assert 85 <= by_name[twin.name].score <= 100
    assert all(f"Globex {tag}" != c.display_name for c in found)

    # Duplicates of a stored customer: the fuzzy twin, not itself.
    of_acme = await data_stub.FindDuplicates(
        data_rpc.FindDuplicatesRequest(customer=acme.name), metadata=admin
    )
    assert [c.customer for c in of_acme.duplicates[0].candidates] == [twin.name]

    # A scan over pages finds the pair from both sides.
    seen: set[tuple[str, str]] = set()
    token = ""
    while True:
        page = await data_stub.FindDuplicates(
            data_rpc.FindDuplicatesRequest(scan=data_rpc.ScanPage(page_size=2, page_token=token)),
            metadata=admin,
        )
        seen |= {(s.customer, c.customer) for s in page.duplicates for c in s.candidates}
        token = page.next_page_token
        if not token:
            break
    assert {(acme.name, twin.name), (twin.name, acme.name)} <= seen


async def test_duplicates_respect_scope_and_policy(stub, data_stub, as_user):
    tag = unique()
    await create(stub, as_user("sales_rep", "carol"), company(f"Initech {tag}"))
    mine = await create(stub, as_user("sales_rep", "bob"), company(f"Initech {tag} Inc"))
    bob = as_user("sales_rep", "bob")
    found = await data_stub.FindDuplicates(data_rpc.FindDuplicatesRequest(customer=mine.name), metadata=bob)
    assert list(found.duplicates[0].candidates) == []  # carol's customer is outside bob's scope
    await expect_error(
        data_stub.FindDuplicates(
            data_rpc.FindDuplicatesRequest(customer=mine.name), metadata=as_user("analyst")
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def _contact(stub, admin, parent: str, name: str, phone: str, primary: bool = False) -> pb.Contact:
    return await stub.CreateContact(
        rpc.CreateContactRequest(
            parent=parent,
            contact=pb.Contact(
                display_name=name, phone_numbers=[pb.PhoneNumber(number=phone)], is_primary=primary
            ),
        ),
        metadata=admin,
    )


async def test_merge_preview_then_merge_moves_everything_and_is_idempotent(  # noqa: PLR0915
    stub, data_stub, as_user, nats_server, database_url
):
    admin = as_user("admin", "root")
    tag = unique()
    survivor = await create(
        stub,
        admin,
        company(
            f"Umbrella {tag}",
            tags=["vip"],
            email_addresses=[pb.EmailAddress(address=f"a-{tag}@umbrella.example")],
            collaborators=["dave"],
        ),
    )
    loser = await create(
        stub,
        admin,
        company(
            f"Umbrella Corp {tag}",
            industry="pharma",
            tags=["vip", "b2b"],
            email_addresses=[pb.EmailAddress(address=f"b-{tag}@umbrella.example")],
            phone_numbers=[pb.PhoneNumber(number="137 0000 1111")],
            tax_id=f"TAX{tag}",
            collaborators=["erin"],
        ),
    )
    await _contact(stub, admin, survivor.name, "Sam Survivor", "136 0000 0001", primary=True)
    moved_contact = await _contact(stub, admin, loser.name, "Lou Loser", "136 0000 0002", primary=True)

    # A child table someone else adds later (customer_id column, unique (customer_id, note)): found
    # from the schema and re-pointed; the loser's row colliding with the survivor's is dropped.
    notes = sa.Table(
        f"test_notes_{tag}",
        metadata,
        sa.Column("customer_id", sa.String(36), primary_key=True),
        sa.Column("note", sa.String(64), primary_key=True),
    )
    try:
        await execute(
            database_url,
            notes.create,
            sa.insert(notes).values(customer_id=survivor.name.split("/")[1], note="shared"),
        )
        await execute(
            database_url,
            sa.insert(notes).values(
                [{"customer_id": loser.name.split("/")[1], "note": n} for n in ("shared", "only-loser")]
            ),
        )
        request = data_rpc.MergeCustomersRequest(
            survivor=survivor.name,
            losers=[loser.name],
            field_sources={"display_name": loser.name},
            etags={survivor.name: survivor.etag, loser.name: loser.etag},
        )
        preview = await data_stub.MergeCustomers(
            data_rpc.MergeCustomersRequest(**_fields(request), validate_only=True), metadata=admin
        )
        assert preview.validate_only and preview.survivor.display_name == f"Umbrella Corp {tag}"
        assert preview.moved.contacts == 1 and preview.moved.other[notes.name] == 1
        # The preview changed nothing.
        assert (
            await stub.GetCustomer(rpc.GetCustomerRequest(name=survivor.name), metadata=admin)
        ) == survivor
        still = await stub.GetCustomer(rpc.GetCustomerRequest(name=loser.name), metadata=admin)
        assert still.status == pb.CUSTOMER_STATUS_OWNED and still.etag == loser.etag

        request.request_id = _uuid()
        merged = await data_stub.MergeCustomers(request, metadata=admin)
        result = merged.survivor
        assert result.name == survivor.name
        assert result.display_name == f"Umbrella Corp {tag}"  # chosen from the loser
        assert result.industry == "pharma"  # survivor had none: filled from the loser
        assert {e.address for e in result.email_addresses} == {
            f"a-{tag}@umbrella.example",
            f"b-{tag}@umbrella.example",
        }
        assert [p.number for p in result.phone_numbers] == ["+8613700001111"]
        assert result.tax_id == f"TAX{tag.upper()}"
        assert sorted(result.tags) == ["b2b", "vip"]
        assert sorted(result.collaborators) == ["dave", "erin"]
        assert merged.moved.contacts == 1 and merged.moved.tags == 1 and merged.moved.collaborators == 1
        assert merged.moved.other[notes.name] == 1 and merged.moved.dropped[notes.name] == 1
        assert not merged.already_merged

        # Contacts moved and readable (re-encrypted under the survivor's key); one primary left.
        listed = await stub.ListContacts(rpc.ListContactsRequest(parent=survivor.name), metadata=admin)
        by_name = {c.display_name: c for c in listed.contacts}
        assert by_name["Lou Loser"].phone_numbers[0].number == "+8613600000002"
        assert by_name["Lou Loser"].name.endswith(moved_contact.name.split("/")[-1])
        assert [c.display_name for c in listed.contacts if c.is_primary] == ["Sam Survivor"]
        assert sorted(
            r.note
            for r in await query(
                database_url,
                sa.select(notes.c.note).where(notes.c.customer_id == survivor.name.split("/")[1]),
            )
        ) == ["only-loser", "shared"]

        # The loser is a tombstone pointing at the survivor, without personal data, and not listed.
        tombstone = await stub.GetCustomer(rpc.GetCustomerRequest(name=loser.name), metadata=admin)
        assert tombstone.status == pb.CUSTOMER_STATUS_MERGED and tombstone.merged_into == survivor.name
        assert not tombstone.email_addresses and not tombstone.phone_numbers and not tombstone.tax_id
        page = await stub.ListCustomers(
            rpc.ListCustomersRequest(filter=f'display_name = "Umbrella Corp {tag}"'), metadata=admin
        )
        assert [c.name for c in page.customers] == [survivor.name]
        # The loser's identifiers now find the survivor.
        page = await stub.ListCustomers(
            rpc.ListCustomersRequest(filter=f'email = "b-{tag}@umbrella.example"'), metadata=admin
        )
        assert [c.name for c in page.customers] == [survivor.name]

        # Idempotent: the same request_id replays; a fresh request says it is already merged.
        replay = await data_stub.MergeCustomers(request, metadata=admin)
        assert replay.moved == merged.moved and replay.survivor.etag == result.etag
        again = await data_stub.MergeCustomers(
            data_rpc.MergeCustomersRequest(survivor=survivor.name, losers=[loser.name]), metadata=admin
        )
        assert again.already_merged and again.survivor.etag == result.etag and again.moved.contacts == 0
        # The tombstone cannot be edited; the error says where the customer went.
        from google.protobuf import field_mask_pb2

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.UpdateCustomer(
                rpc.UpdateCustomerRequest(
                    customer=pb.Customer(name=loser.name, industry="x"),
                    update_mask=field_mask_pb2.FieldMask(paths=["industry"]),
                ),
                metadata=admin,
            )
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert survivor.name in caught.value.details()
    finally:
        metadata.remove(notes)

    from crm_shared.testing.fixtures_nats import connect_nats

    nc = await connect_nats(nats_server.url)
    try:
        envelopes = await wait_for_envelopes(
            nc.jetstream(), "CRM_CUSTOMER", subject="crm.customer.customer.merged", resource=survivor.name
        )
    finally:
        await nc.close()
    assert len(envelopes) == 1  # the preview and the repeats published nothing
    event = data_events_pb2.CustomerMerged()
    envelopes[0].payload.Unpack(event)
    assert list(event.losers) == [loser.name] and event.moved_contacts == 1
    assert b"umbrella.example" not in envelopes[0].SerializeToString()


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())


def _fields(message) -> dict:
    return {f.name: v for f, v in message.ListFields()}


async def test_merge_permissions_scope_and_preconditions(stub, data_stub, as_user):
    tag = unique()
    east = as_user("sales_manager", "mia", team="east")
    mine = await create(stub, east, company(f"Hooli {tag}"))
    dup = await create(stub, east, company(f"Hooli {tag} Inc"))
    other_team = await create(
        stub, as_user("sales_manager", "max", team="west"), company(f"Hooli West {tag}")
    )
    # A rep may not merge at all; a manager not with another team's customer (NOT_FOUND: no leak).
    await expect_error(
        data_stub.MergeCustomers(
            data_rpc.MergeCustomersRequest(survivor=mine.name, losers=[dup.name]),
            metadata=as_user("sales_rep"),
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await expect_error(
        data_stub.MergeCustomers(
            data_rpc.MergeCustomersRequest(survivor=mine.name, losers=[other_team.name]), metadata=east
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    bad_choice = await expect_error(
        data_stub.MergeCustomers(
            data_rpc.MergeCustomersRequest(
                survivor=mine.name, losers=[dup.name], field_sources={"etag": dup.name}
            ),
            metadata=east,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(bad_choice.field_violations) == {'field_sources["etag"]'}
    stale = await expect_error(
        data_stub.MergeCustomers(
            data_rpc.MergeCustomersRequest(
                survivor=mine.name, losers=[dup.name], etags={dup.name: "W/stale"}
            ),
            metadata=east,
        ),
        grpc.StatusCode.ABORTED,
    )
    assert stale.reason == "STALE_ETAG"
    await data_stub.MergeCustomers(
        data_rpc.MergeCustomersRequest(survivor=mine.name, losers=[dup.name]), metadata=east
    )
    # Merging into a tombstone is refused, naming where it went.
    refused = await expect_error(
        data_stub.MergeCustomers(
            data_rpc.MergeCustomersRequest(survivor=dup.name, losers=[mine.name]), metadata=east
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert refused.reason == "SURVIVOR_MERGED"


async def test_tables_with_a_merge_handler_combine_rows_instead_of_dropping(
    stub, data_stub, as_user, database_url
):
    from crm_customer.adapters.child_tables import register_merge_handler, unregister_merge_handler

    admin = as_user("admin", "root")
    tag = unique()
    survivor = await create(stub, admin, company(f"Totals {tag}"))
    loser = await create(stub, admin, company(f"Totals {tag} Ltd"))
    survivor_id, loser_id = survivor.name.split("/")[1], loser.name.split("/")[1]
    totals = sa.Table(
        f"test_totals_{tag}",
        metadata,
        sa.Column("customer_id", sa.String(36), primary_key=True),
        sa.Column("amount", sa.Integer, nullable=False),
    )

    async def add_up(session, from_id: str, into_id: str) -> tuple[int, int]:
        extra = (
            await session.execute(sa.select(totals.c.amount).where(totals.c.customer_id == from_id))
        ).scalar_one_or_none()
        if extra is None:
            return 0, 0
        await session.execute(
            sa.update(totals).where(totals.c.customer_id == into_id).values(amount=totals.c.amount + extra)
        )
        await session.execute(sa.delete(totals).where(totals.c.customer_id == from_id))
        return 1, 0

    register_merge_handler(totals.name, add_up)
    try:
        await execute(
            database_url,
            totals.create,
            sa.insert(totals).values(
                [{"customer_id": survivor_id, "amount": 5}, {"customer_id": loser_id, "amount": 7}]
            ),
        )
        merged = await data_stub.MergeCustomers(
            data_rpc.MergeCustomersRequest(survivor=survivor.name, losers=[loser.name]), metadata=admin
        )
        assert merged.moved.other[totals.name] == 1 and totals.name not in merged.moved.dropped
        assert [tuple(r) for r in await query(database_url, sa.select(totals))] == [(survivor_id, 12)]
    finally:
        unregister_merge_handler(totals.name)
        metadata.remove(totals)
