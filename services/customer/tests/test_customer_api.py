"""CustomerService through a real gRPC channel, on SQLite and PostgreSQL, with real NATS.

What a caller notices: codes, ErrorInfo reasons, field violations, data scope,
masking, etags, idempotent retries — and the events that reach the stream.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as rpc
from crm.customer.v1 import events_pb2
from crm_shared.grpc.status import error_details
from crm_shared.testing.events import wait_for_envelopes

pytestmark = pytest.mark.asyncio(loop_scope="session")


def acme(**overrides) -> pb.Customer:
    fields = dict(
        display_name="Acme Trading",
        kind=pb.CUSTOMER_KIND_COMPANY,
        industry="manufacturing",
        tier=pb.CUSTOMER_TIER_B,
        tags=["b2b"],
        phone_numbers=[pb.PhoneNumber(number="138 0013 8000", label="mobile")],
        email_addresses=[pb.EmailAddress(address=f"buyer-{uuid.uuid4().hex[:8]}@Acme.example")],
    )
    fields.update(overrides)
    return pb.Customer(**fields)


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


async def test_create_get_update_delete_round_trip_with_events(stub, as_user, nats_server):
    admin = as_user("admin", "root")
    created = await stub.CreateCustomer(rpc.CreateCustomerRequest(customer=acme()), metadata=admin)
    assert created.name.startswith("customers/")
    assert created.phone_numbers[0].number == "+8613800138000"  # normalized to E.164
    assert created.email_addresses[0].address.endswith("@acme.example")  # lower-cased
    assert created.owner == "root" and created.etag

    fetched = await stub.GetCustomer(rpc.GetCustomerRequest(name=created.name), metadata=admin)
    assert fetched == created

    changed = pb.Customer(
        name=created.name, display_name="Acme Trading Ltd", tier=pb.CUSTOMER_TIER_A, etag=created.etag
    )
    updated = await stub.UpdateCustomer(
        rpc.UpdateCustomerRequest(
            customer=changed, update_mask=field_mask_pb2.FieldMask(paths=["display_name", "tier"])
        ),
        metadata=admin,
    )
    assert (updated.display_name, updated.tier, updated.industry) == (
        "Acme Trading Ltd",
        pb.CUSTOMER_TIER_A,
        "manufacturing",
    )
    assert updated.etag != created.etag

    # The old etag is stale now: a lost update is refused.
    stale = await expect_error(
        stub.UpdateCustomer(
            rpc.UpdateCustomerRequest(
                customer=pb.Customer(name=created.name, industry="x", etag=created.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["industry"]),
            ),
            metadata=admin,
        ),
        grpc.StatusCode.ABORTED,
    )
    assert stale.reason == "STALE_ETAG"

    await stub.DeleteCustomer(rpc.DeleteCustomerRequest(name=created.name, etag=updated.etag), metadata=admin)
    await expect_error(
        stub.GetCustomer(rpc.GetCustomerRequest(name=created.name), metadata=admin), grpc.StatusCode.NOT_FOUND
    )

    from crm_shared.testing.fixtures_nats import connect_nats

    nc = await connect_nats(nats_server.url)
    try:
        envelopes = await wait_for_envelopes(nc.jetstream(), "CRM_CUSTOMER", resource=created.name, count=3)
    finally:
        await nc.close()
    assert [e.type for e in envelopes] == [
        "crm.customer.v1.CustomerCreated",
        "crm.customer.v1.CustomerUpdated",
        "crm.customer.v1.CustomerDeleted",
    ]
    update_event = events_pb2.CustomerUpdated()
    envelopes[1].payload.Unpack(update_event)
    assert list(update_event.changed_fields) == ["display_name", "tier"]
    assert envelopes[0].actor.subject == "root" and envelopes[0].source == "customer"
    # No personal data leaves the service in events.
    for envelope in envelopes:
        assert b"13800138000" not in envelope.SerializeToString()
        assert b"acme.example" not in envelope.SerializeToString()


async def test_invalid_input_names_every_bad_field(stub, as_user):
    bad_shape = await expect_error(
        stub.CreateCustomer(
            rpc.CreateCustomerRequest(
                customer=acme(email_addresses=[pb.EmailAddress(address="not-an-email")], website="nope"),
                request_id="not-a-uuid",
            ),
            metadata=as_user(),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert {"customer.email_addresses[0].address", "customer.website", "request_id"} <= set(
        bad_shape.field_violations
    )

    bad_meaning = await expect_error(
        stub.CreateCustomer(
            rpc.CreateCustomerRequest(
                customer=acme(display_name="", phone_numbers=[pb.PhoneNumber(number="12345")])
            ),
            metadata=as_user(),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(bad_meaning.field_violations) == {"customer.display_name", "customer.phone_numbers[0].number"}

    missing = await expect_error(
        stub.CreateCustomer(rpc.CreateCustomerRequest(), metadata=as_user()), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "customer" in missing.field_violations

    bad_mask = await expect_error(
        stub.UpdateCustomer(
            rpc.UpdateCustomerRequest(
                customer=pb.Customer(name=f"customers/{uuid.uuid4()}"),
                update_mask=field_mask_pb2.FieldMask(paths=["create_time"]),
            ),
            metadata=as_user(),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "update_mask.paths[0]" in bad_mask.field_violations

    bad_name = await expect_error(
        stub.GetCustomer(rpc.GetCustomerRequest(name="accounts/1"), metadata=as_user()),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "name" in bad_name.field_violations


async def test_duplicate_email_or_phone_names_the_existing_customer(stub, as_user):
    first = await stub.CreateCustomer(rpc.CreateCustomerRequest(customer=acme()), metadata=as_user())
    same_email = acme(
        display_name="Acme again",
        phone_numbers=[],
        email_addresses=[pb.EmailAddress(address=first.email_addresses[0].address.upper())],
    )
    details = await expect_error(
        stub.CreateCustomer(rpc.CreateCustomerRequest(customer=same_email), metadata=as_user()),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert details.reason == "DUPLICATE_CUSTOMER"
    assert details.metadata["existing"] == first.name
    assert details.domain == "customer"

    same_phone = acme(display_name="Other", phone_numbers=[pb.PhoneNumber(number="+86 138-0013-8000")])
    details = await expect_error(
        stub.CreateCustomer(rpc.CreateCustomerRequest(customer=same_phone), metadata=as_user()),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert details.metadata["existing"] == first.name


async def test_request_id_makes_create_retry_safe(stub, as_user):
    request = rpc.CreateCustomerRequest(customer=acme(phone_numbers=[]), request_id=str(uuid.uuid4()))
    first = await stub.CreateCustomer(request, metadata=as_user())
    retry = await stub.CreateCustomer(request, metadata=as_user())
    assert retry == first

    listed = await stub.ListCustomers(
        rpc.ListCustomersRequest(filter=f'email = "{first.email_addresses[0].address}"'), metadata=as_user()
    )
    assert [c.name for c in listed.customers] == [first.name]

    reused = rpc.CreateCustomerRequest(
        customer=acme(display_name="Something else", phone_numbers=[]), request_id=request.request_id
    )
    details = await expect_error(
        stub.CreateCustomer(reused, metadata=as_user()), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert details.reason == "REQUEST_ID_REUSED"


async def test_sales_reps_see_only_their_own_customers(stub, as_user):
    team = f"team-{uuid.uuid4().hex[:6]}"
    rep_a, rep_b = as_user("sales_rep", "rep-a", team), as_user("sales_rep", "rep-b", team)
    manager, other_manager = (
        as_user("sales_manager", "boss", team),
        as_user("sales_manager", "boss2", "elsewhere"),
    )
    mine = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(customer=acme(phone_numbers=[])), metadata=rep_a
    )
    assert (mine.owner, mine.team) == ("rep-a", team)

    details = await expect_error(
        stub.GetCustomer(rpc.GetCustomerRequest(name=mine.name), metadata=rep_b), grpc.StatusCode.NOT_FOUND
    )
    assert details.reason == "CUSTOMER_NOT_FOUND"
    assert (
        await stub.ListCustomers(rpc.ListCustomersRequest(filter=f'team = "{team}"'), metadata=rep_b)
    ).customers == []
    await expect_error(
        stub.UpdateCustomer(
            rpc.UpdateCustomerRequest(
                customer=pb.Customer(name=mine.name, industry="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["industry"]),
            ),
            metadata=rep_b,
        ),
        grpc.StatusCode.NOT_FOUND,
    )

    team_view = await stub.ListCustomers(
        rpc.ListCustomersRequest(filter=f'team = "{team}"'), metadata=manager
    )
    assert [c.name for c in team_view.customers] == [mine.name]
    await expect_error(
        stub.GetCustomer(rpc.GetCustomerRequest(name=mine.name), metadata=other_manager),
        grpc.StatusCode.NOT_FOUND,
    )

    # A rep may not create customers owned by someone else.
    denied = await expect_error(
        stub.CreateCustomer(
            rpc.CreateCustomerRequest(customer=acme(phone_numbers=[], owner="rep-b")), metadata=rep_a
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert denied.reason == "OWNER_OUTSIDE_SCOPE"


async def test_support_reads_masked_profiles_and_cannot_write(stub, as_user):
    created = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(customer=acme(tax_id="91310000MA1FL4XX2")), metadata=as_user()
    )
    seen = await stub.GetCustomer(
        rpc.GetCustomerRequest(name=created.name), metadata=as_user("support_agent", "sam")
    )
    assert seen.phone_numbers[0].number == "+86*******8000"
    assert seen.email_addresses[0].address.startswith(created.email_addresses[0].address[0] + "***@")
    assert seen.tax_id == ""
    assert seen.display_name == created.display_name

    denied = await expect_error(
        stub.CreateCustomer(
            rpc.CreateCustomerRequest(customer=acme()), metadata=as_user("support_agent", "sam")
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert denied.reason == "ACTION_NOT_ALLOWED"
    await expect_error(
        stub.ListCustomers(rpc.ListCustomersRequest(), metadata=as_user("analyst", "ann")),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_list_pages_through_a_filter_in_order(stub, as_user):
    team = f"paging-{uuid.uuid4().hex[:6]}"
    names = [f"Customer {i:02d}" for i in range(23)]
    for name in names:
        await stub.CreateCustomer(
            rpc.CreateCustomerRequest(
                customer=acme(
                    display_name=name,
                    phone_numbers=[],
                    team=team,
                    tier=pb.CUSTOMER_TIER_A if name.endswith(("0", "5")) else pb.CUSTOMER_TIER_C,
                )
            ),
            metadata=as_user(),
        )
    seen, token, pages = [], "", 0
    while True:
        page = await stub.ListCustomers(
            rpc.ListCustomersRequest(
                filter=f'team = "{team}"', order_by="display_name", page_size=10, page_token=token
            ),
            metadata=as_user(),
        )
        pages += 1
        seen += [c.display_name for c in page.customers]
        token = page.next_page_token
        if not token:
            break
    assert (seen, pages) == (names, 3)

    tier_a = await stub.ListCustomers(
        rpc.ListCustomersRequest(
            filter=f'team = "{team}" AND tier = CUSTOMER_TIER_A', order_by="display_name desc"
        ),
        metadata=as_user(),
    )
    assert [c.display_name for c in tier_a.customers] == [
        "Customer 20",
        "Customer 15",
        "Customer 10",
        "Customer 05",
        "Customer 00",
    ]

    first = await stub.ListCustomers(
        rpc.ListCustomersRequest(filter=f'team = "{team}"', page_size=5), metadata=as_user()
    )
    other_query = await expect_error(
        stub.ListCustomers(
            rpc.ListCustomersRequest(filter='tags:"b2b"', page_size=5, page_token=first.next_page_token),
            metadata=as_user(),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "page_token" in other_query.field_violations
    unknown = await expect_error(
        stub.ListCustomers(rpc.ListCustomersRequest(filter="colour = red"), metadata=as_user()),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "unknown field 'colour'" in unknown.field_violations["filter"]


async def test_contacts_belong_to_a_visible_customer_and_one_is_primary(stub, as_user):
    owner = as_user("sales_rep", "rep-c", "east")
    customer = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(customer=acme(phone_numbers=[])), metadata=owner
    )
    first = await stub.CreateContact(
        rpc.CreateContactRequest(
            parent=customer.name,
            contact=pb.Contact(
                display_name="Li Lei",
                is_primary=True,
                email_addresses=[pb.EmailAddress(address="Li.Lei@Acme.example")],
            ),
        ),
        metadata=owner,
    )
    second = await stub.CreateContact(
        rpc.CreateContactRequest(
            parent=customer.name, contact=pb.Contact(display_name="Han Meimei", is_primary=True)
        ),
        metadata=owner,
    )
    assert first.name.startswith(customer.name + "/contacts/")
    listed = await stub.ListContacts(rpc.ListContactsRequest(parent=customer.name), metadata=owner)
    assert [(c.display_name, c.is_primary) for c in listed.contacts] == [
        ("Li Lei", False),
        ("Han Meimei", True),
    ]
    assert listed.contacts[0].email_addresses[0].address == "li.lei@acme.example"

    updated = await stub.UpdateContact(
        rpc.UpdateContactRequest(
            contact=pb.Contact(name=second.name, title="CEO", etag=second.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        ),
        metadata=owner,
    )
    assert updated.title == "CEO"
    await expect_error(
        stub.ListContacts(
            rpc.ListContactsRequest(parent=customer.name), metadata=as_user("sales_rep", "rep-d", "east")
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    await stub.DeleteContact(rpc.DeleteContactRequest(name=first.name), metadata=owner)
    await expect_error(
        stub.GetContact(rpc.GetContactRequest(name=first.name), metadata=owner), grpc.StatusCode.NOT_FOUND
    )


async def test_no_token_is_unauthenticated(stub):
    details = await expect_error(
        stub.ListCustomers(rpc.ListCustomersRequest()), grpc.StatusCode.UNAUTHENTICATED
    )
    assert details.reason == "TOKEN_MISSING"


async def test_a_collaborator_sees_a_shared_customer_like_its_owner(stub, as_user):
    owner, friend = as_user("sales_rep", "rep-e", "east"), as_user("sales_rep", "rep-f", "east")
    created = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(customer=acme(phone_numbers=[])), metadata=owner
    )
    await expect_error(
        stub.GetCustomer(rpc.GetCustomerRequest(name=created.name), metadata=friend),
        grpc.StatusCode.NOT_FOUND,
    )
    shared = await stub.UpdateCustomer(
        rpc.UpdateCustomerRequest(
            customer=pb.Customer(name=created.name, collaborators=["rep-f"]),
            update_mask=field_mask_pb2.FieldMask(paths=["collaborators"]),
        ),
        metadata=owner,
    )
    assert list(shared.collaborators) == ["rep-f"]
    seen = await stub.GetCustomer(rpc.GetCustomerRequest(name=created.name), metadata=friend)
    assert seen.owner == "rep-e" and seen.status == pb.CUSTOMER_STATUS_OWNED
    listed = await stub.ListCustomers(rpc.ListCustomersRequest(filter='owner = "rep-e"'), metadata=friend)
    assert created.name in [c.name for c in listed.customers]
    await expect_error(
        stub.UpdateCustomer(
            rpc.UpdateCustomerRequest(
                customer=pb.Customer(name=created.name, status=pb.CUSTOMER_STATUS_IN_POOL),
                update_mask=field_mask_pb2.FieldMask(paths=["status"]),
            ),
            metadata=owner,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_no_plaintext_personal_data_reaches_the_database(stub, as_user, customer_service):
    """Emails, phones, tax ids and addresses are only stored encrypted (and blind-indexed)."""
    import sqlalchemy as sa

    from crm_customer.adapters.tables import metadata

    secret_email, secret_tax = f"secret-{uuid.uuid4().hex[:10]}@hidden.example", "91310000SECRET77X"
    created = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(
            customer=acme(
                email_addresses=[pb.EmailAddress(address=secret_email)],
                phone_numbers=[pb.PhoneNumber(number="+86 139 1234 5678")],
                tax_id=secret_tax,
                address=pb.PostalAddress(region_code="CN", address_line="88 Secret Road"),
            )
        ),
        metadata=as_user(),
    )
    await stub.CreateContact(
        rpc.CreateContactRequest(
            parent=created.name,
            contact=pb.Contact(
                display_name="Wang", email_addresses=[pb.EmailAddress(address="wang." + secret_email)]
            ),
        ),
        metadata=as_user(),
    )
    needles = [secret_email, "8613912345678", "13912345678", secret_tax, "Secret Road"]
    url = customer_service.infrastructure.settings.database_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        files = [Path(path), Path(path + "-wal")]
        dump = b"".join(f.read_bytes() for f in files if f.exists()).decode("latin-1")
    else:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(url)
        async with engine.connect() as conn:
            rows = []
            for table in metadata.sorted_tables:
                rows += (
                    (await conn.execute(sa.text(f"SELECT row_to_json(t)::text FROM {table.name} t")))
                    .scalars()
                    .all()
                )
        await engine.dispose()
        dump = "\n".join(rows)
    assert created.name.split("/")[1] in dump  # we are looking at the right data
    for needle in needles:
        assert needle not in dump, f"{needle!r} stored in plaintext"
