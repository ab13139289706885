"""ConvertLead against the REAL customer service (in-process, its own database of the same kind):
customer created once even when retried after a failure between the remote calls and the local
commit, a duplicate customer is linked not duplicated, the customer service down -> UNAVAILABLE
with the lead unchanged and a later retry succeeds, and a converted lead converts idempotently."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest
import pytest_asyncio
from google.protobuf import timestamp_pb2
from lead_stack import CustomerStack, customer_settings, sales_settings

from crm.common.v1 import money_pb2
from crm.customer.v1 import customer_pb2, customer_service_pb2
from crm.customer.v1 import customer_service_pb2_grpc as customer_grpc
from crm.sales.v1 import common_pb2, events_pb2
from crm.sales.v1 import lead_service_pb2 as pb
from crm.sales.v1 import lead_service_pb2_grpc as rpc_grpc
from crm.sales.v1 import opportunity_service_pb2 as opportunity_pb
from crm.sales.v1 import opportunity_service_pb2_grpc as opportunity_grpc
from crm_sales.bootstrap import build as build_sales
from crm_sales.service import conversion
from crm_shared.grpc.status import error_details
from crm_shared.runtime import start_service
from crm_shared.testing.events import wait_for_envelopes
from crm_shared.testing.fixtures_db import temporary_database_url

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def customer_stack(request, database_url, nats_server, jwt_keys, tmp_path):
    kind = "postgres" if database_url.startswith("postgresql") else "sqlite"
    async with temporary_database_url(kind, tmp_path / "customer") as url:
        (tmp_path / "customer").mkdir(exist_ok=True)
        stack = CustomerStack(customer_settings(url, nats_server.url, jwt_keys))
        await stack.start()
        try:
            yield stack
        finally:
            await stack.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def wired_sales(customer_stack, database_url, nats_server, jwt_keys):

    settings = sales_settings(
        database_url,
        nats_server.url,
        jwt_keys,
        customer_target=customer_stack.target,
        downstream_timeout_seconds=2.0,
    )
    running = await start_service(settings, build_sales)
    try:
        yield running
    finally:
        await running.stop(1)


@pytest_asyncio.fixture(loop_scope="session")
async def leads(wired_sales):
    async with grpc.aio.insecure_channel(wired_sales.address) as channel:
        yield rpc_grpc.LeadServiceStub(channel)


@pytest_asyncio.fixture(loop_scope="session")
async def customers(customer_stack):
    async with grpc.aio.insecure_channel(customer_stack.target) as channel:
        yield customer_grpc.CustomerServiceStub(channel)


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, (details.code, details.message)
    return details


async def make_lead(leads, metadata, **fields) -> pb.Lead:
    values = dict(
        display_name="Wang Fang",
        company="Acme Trading",
        title="Buyer",
        email_addresses=[f"wang-{uuid.uuid4().hex[:8]}@acme.example"],
        phone_numbers=[f"138{uuid.uuid4().int % 10**8:08d}"],
        campaign="campaigns/spring",
        source_channel=common_pb2.LEAD_SOURCE_CHANNEL_WEB_FORM,
    )
    values.update(fields)
    return await leads.CreateLead(pb.CreateLeadRequest(lead=pb.Lead(**values)), metadata=metadata)


async def customers_with_email(customers, admin, email: str) -> list[customer_pb2.Customer]:
    reply = await customers.ListCustomers(
        customer_service_pb2.ListCustomersRequest(filter=f'email = "{email}"'), metadata=admin
    )
    return list(reply.customers)


async def test_convert_creates_customer_and_contact_then_is_idempotent(
    leads, customers, as_user, nats_server
):
    bob = as_user("sales_rep", "bob", "east")
    admin = as_user("admin", "alice", "east")
    lead = await make_lead(leads, bob)
    await leads.StartWorkingLead(pb.StartWorkingLeadRequest(name=lead.name), metadata=bob)

    result = await leads.ConvertLead(pb.ConvertLeadRequest(name=lead.name), metadata=bob)
    assert not result.linked_existing_customer and result.opportunity == ""
    assert result.contact.startswith(result.customer + "/contacts/")
    assert result.lead.status == pb.LEAD_STATUS_CONVERTED
    assert (result.lead.converted_customer, result.lead.converted_contact) == (
        result.customer,
        result.contact,
    )
    assert result.lead.HasField("convert_time")

    # The customer really exists in the customer service, owned by the rep, with the lead's attribution.
    customer = await customers.GetCustomer(
        customer_service_pb2.GetCustomerRequest(name=result.customer), metadata=admin
    )
    assert (customer.display_name, customer.owner, customer.team) == ("Acme Trading", "bob", "east")
    assert customer.kind == customer_pb2.CUSTOMER_KIND_COMPANY
    assert customer.source == "lead:web_form:spring"
    contact = await customers.GetContact(
        customer_service_pb2.GetContactRequest(name=result.contact), metadata=admin
    )
    assert (contact.display_name, contact.title, contact.is_primary) == ("Wang Fang", "Buyer", True)
    assert [e.address for e in contact.email_addresses] == list(lead.email_addresses)

    # Converting again returns the same result and creates nothing.
    again = await leads.ConvertLead(pb.ConvertLeadRequest(name=lead.name), metadata=bob)
    assert (again.customer, again.contact) == (result.customer, result.contact)
    assert len(await customers_with_email(customers, admin, lead.email_addresses[0])) == 1

    from crm_shared.testing.fixtures_nats import connect_nats

    nc = await connect_nats(nats_server.url)
    try:
        envelopes = await wait_for_envelopes(
            nc.jetstream(), "CRM_SALES", subject="crm.sales.lead.converted", resource=lead.name
        )
    finally:
        await nc.close()
    assert len(envelopes) == 1
    event = events_pb2.LeadConverted()
    envelopes[0].payload.Unpack(event)
    assert (event.customer, event.contact, event.linked_existing_customer) == (
        result.customer,
        result.contact,
        False,
    )
    assert event.lead.campaign == "campaigns/spring"


async def test_retry_after_failure_before_local_commit_creates_the_customer_once(
    leads, customers, as_user, monkeypatch
):
    bob = as_user("sales_rep", "bob", "east")
    admin = as_user("admin", "alice", "east")
    lead = await make_lead(leads, bob)
    real_record = conversion.record_conversion
    calls = {"n": 0}

    async def crash_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated crash after the remote calls, before the local commit")
        return await real_record(*args, **kwargs)

    monkeypatch.setattr(conversion, "record_conversion", crash_once)
    failed = await expect_error(
        leads.ConvertLead(pb.ConvertLeadRequest(name=lead.name), metadata=bob), grpc.StatusCode.INTERNAL
    )
    assert "Traceback" not in failed.message
    unchanged = await leads.GetLead(pb.GetLeadRequest(name=lead.name), metadata=bob)
    assert unchanged.status == pb.LEAD_STATUS_ASSIGNED and unchanged.converted_customer == ""
    # The customer was created by the first attempt...
    created = await customers_with_email(customers, admin, lead.email_addresses[0])
    assert len(created) == 1

    result = await leads.ConvertLead(pb.ConvertLeadRequest(name=lead.name), metadata=bob)
    # ...and the retry re-found it (same request_id) instead of creating another, and the same contact.
    assert result.customer == created[0].name and not result.linked_existing_customer
    assert len(await customers_with_email(customers, admin, lead.email_addresses[0])) == 1
    contacts = await customers.ListContacts(
        customer_service_pb2.ListContactsRequest(parent=result.customer), metadata=admin
    )
    assert [c.name for c in contacts.contacts] == [result.contact]


async def test_duplicate_customer_is_linked_not_duplicated(leads, customers, as_user):
    admin = as_user("admin", "alice", "east")
    email = f"buyer-{uuid.uuid4().hex[:8]}@globex.example"
    existing = await customers.CreateCustomer(
        customer_service_pb2.CreateCustomerRequest(
            customer=customer_pb2.Customer(
                display_name="Globex", email_addresses=[customer_pb2.EmailAddress(address=email)]
            )
        ),
        metadata=admin,
    )
    lead = await make_lead(
        leads, admin, company="Globex Corp", email_addresses=[email.upper()], owner="alice"
    )
    result = await leads.ConvertLead(pb.ConvertLeadRequest(name=lead.name), metadata=admin)
    assert result.linked_existing_customer and result.customer == existing.name
    assert result.contact.startswith(existing.name + "/contacts/")
    assert [c.name for c in await customers_with_email(customers, admin, email)] == [existing.name]


async def test_customer_service_down_is_unavailable_and_retry_succeeds_later(
    leads, customers, customer_stack, as_user
):
    bob = as_user("sales_rep", "bob", "east")
    admin = as_user("admin", "alice", "east")
    lead = await make_lead(leads, bob)
    working = await leads.StartWorkingLead(pb.StartWorkingLeadRequest(name=lead.name), metadata=bob)

    await customer_stack.stop()
    down = await expect_error(
        leads.ConvertLead(pb.ConvertLeadRequest(name=lead.name), metadata=bob), grpc.StatusCode.UNAVAILABLE
    )
    assert down.reason == "CUSTOMER_SERVICE_UNAVAILABLE"
    assert "retry" in down.message
    still = await leads.GetLead(pb.GetLeadRequest(name=lead.name), metadata=bob)
    assert still.status == pb.LEAD_STATUS_WORKING and still.etag == working.etag

    await customer_stack.start()
    result = await leads.ConvertLead(pb.ConvertLeadRequest(name=lead.name), metadata=bob)
    assert result.lead.status == pb.LEAD_STATUS_CONVERTED
    assert len(await customers_with_email(customers, admin, lead.email_addresses[0])) == 1


async def test_conversion_scope_and_preconditions(leads, as_user):
    bob = as_user("sales_rep", "bob", "east")
    carol = as_user("sales_rep", "carol", "east")
    marketing = as_user("marketing", "max", "mkt")
    lead = await make_lead(leads, bob)
    # Another rep cannot see it; marketing may read leads but not convert them.
    await expect_error(
        leads.ConvertLead(pb.ConvertLeadRequest(name=lead.name), metadata=carol), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(
        leads.ConvertLead(pb.ConvertLeadRequest(name=lead.name), metadata=marketing),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    # Opportunity fields are required with create_opportunity.
    missing = await expect_error(
        leads.ConvertLead(pb.ConvertLeadRequest(name=lead.name, create_opportunity=True), metadata=bob),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "opportunity" in missing.field_violations


async def test_convert_with_an_opportunity_keeps_source_attribution(leads, customers, wired_sales, as_user):
    bob = as_user("sales_rep", "bob", "east")
    admin = as_user("admin", "alice", "east")
    lead = await make_lead(leads, bob)
    # A bad opportunity is refused before anything is created remotely.
    bad = await expect_error(
        leads.ConvertLead(
            pb.ConvertLeadRequest(
                name=lead.name, create_opportunity=True, opportunity=pb.ConvertLeadOpportunity(title="Deal")
            ),
            metadata=bob,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "opportunity.expected_close_time" in bad.field_violations
    assert await customers_with_email(customers, admin, lead.email_addresses[0]) == []

    close = timestamp_pb2.Timestamp(seconds=int(time.time()) + 30 * 86400)
    result = await leads.ConvertLead(
        pb.ConvertLeadRequest(
            name=lead.name,
            create_opportunity=True,
            opportunity=pb.ConvertLeadOpportunity(
                title="First order",
                amount=money_pb2.Money(currency_code="CNY", amount_minor=12_000_00),
                expected_close_time=close,
            ),
        ),
        metadata=bob,
    )
    assert result.opportunity.startswith("opportunities/")
    assert result.lead.converted_opportunity == result.opportunity
    async with grpc.aio.insecure_channel(wired_sales.address) as channel:
        opportunity = await opportunity_grpc.OpportunityServiceStub(channel).GetOpportunity(
            opportunity_pb.GetOpportunityRequest(name=result.opportunity), metadata=bob
        )
    assert (opportunity.customer, opportunity.contact) == (result.customer, result.contact)
    assert (opportunity.source_lead, opportunity.campaign) == (lead.name, "campaigns/spring")
    assert opportunity.owner == "bob" and opportunity.amount.amount_minor == 12_000_00
