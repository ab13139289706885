"""The audit trail and masking by role, through real gRPC on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2
from sqlalchemy.ext.asyncio import create_async_engine

from crm.customer.v1 import audit_service_pb2 as audit
from crm.customer.v1 import audit_service_pb2_grpc as audit_grpc
from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as rpc
from crm_shared.grpc.status import error_details

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def audit_stub(channel):
    return audit_grpc.AuditServiceStub(channel)


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


async def audit_rows(url: str, resource: str) -> list[dict]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT * FROM audit_log WHERE resource = :r ORDER BY occurred_at, id"),
                {"r": resource},
            )
            return [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()


async def test_create_update_delete_each_leave_one_record_with_names_not_values(
    stub, audit_stub, as_user, customer_service
):
    manager = as_user("sales_manager", "mia", "east")
    email, phone, tax = f"audit-{uuid.uuid4().hex[:8]}@example.com", "+86 139 7777 1234", "91310000AUDIT42X"
    created = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(
            customer=pb.Customer(
                display_name="Audit Co",
                industry="logistics",
                email_addresses=[pb.EmailAddress(address=email)],
                phone_numbers=[pb.PhoneNumber(number=phone)],
                tax_id=tax,
            )
        ),
        metadata=manager,
    )
    updated = await stub.UpdateCustomer(
        rpc.UpdateCustomerRequest(
            customer=pb.Customer(
                name=created.name, industry="shipping", tax_id="91310000AUDIT43Y", etag=created.etag
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["industry", "tax_id"]),
        ),
        metadata=manager,
    )
    await stub.DeleteCustomer(
        rpc.DeleteCustomerRequest(name=created.name, etag=updated.etag), metadata=manager
    )

    rows = await audit_rows(customer_service.infrastructure.settings.database_url, created.name)
    assert [(r["action"], r["actor"], r["actor_team"]) for r in rows] == [
        ("created", "mia", "east"),
        ("updated", "mia", "east"),
        ("deleted", "mia", "east"),
    ]
    fields = [r["fields"] if isinstance(r["fields"], list) else json.loads(r["fields"]) for r in rows]
    assert {"display_name", "email_addresses", "phone_numbers", "tax_id", "industry"} <= set(fields[0])
    assert fields[1] == ["industry", "tax_id"] and fields[2] == []
    everything = json.dumps(rows, default=str)
    for value in (email, "13977771234", tax, "91310000AUDIT43Y", "Audit Co", "logistics", "shipping"):
        assert value not in everything, f"{value!r} in the audit trail"

    # ListAuditEvents: admins only, newest first, filterable, paged.
    admin = as_user("admin", "root")
    listed = await audit_stub.ListAuditEvents(
        audit.ListAuditEventsRequest(filter=f'resource = "{created.name}"'), metadata=admin
    )
    assert [e.action for e in listed.audit_events] == ["deleted", "updated", "created"]
    assert list(listed.audit_events[1].fields) == ["industry", "tax_id"]
    assert listed.audit_events[0].name.startswith("auditEvents/") and listed.audit_events[0].HasField(
        "occur_time"
    )
    one = await audit_stub.ListAuditEvents(
        audit.ListAuditEventsRequest(filter=f'resource = "{created.name}"', page_size=2), metadata=admin
    )
    rest = await audit_stub.ListAuditEvents(
        audit.ListAuditEventsRequest(
            filter=f'resource = "{created.name}"', page_size=2, page_token=one.next_page_token
        ),
        metadata=admin,
    )
    assert [e.action for e in [*one.audit_events, *rest.audit_events]] == ["deleted", "updated", "created"]
    assert rest.next_page_token == ""
    by_actor = await audit_stub.ListAuditEvents(
        audit.ListAuditEventsRequest(
            filter='actor = "mia" AND action = "updated" AND occur_time > "2000-01-01T00:00:00Z"'
        ),
        metadata=admin,
    )
    assert [e.resource for e in by_actor.audit_events] == [created.name]
    bad = await expect_error(
        audit_stub.ListAuditEvents(audit.ListAuditEventsRequest(filter="colour = red"), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "unknown field 'colour'" in bad.field_violations["filter"]
    for role in ("sales_manager", "support_agent", "analyst"):
        await expect_error(
            audit_stub.ListAuditEvents(audit.ListAuditEventsRequest(), metadata=as_user(role, "x")),
            grpc.StatusCode.PERMISSION_DENIED,
        )


# role -> (phones and emails shown as, tax id shown, address shown)
MASKING = {
    "admin": ("plain", True),
    "sales_manager": ("plain", True),
    "sales_rep": ("plain", True),
    "support_agent": ("masked", False),
    "marketing": ("masked", False),
}


@pytest.mark.parametrize("role", [*MASKING, "analyst"])
async def test_masking_by_role(stub, as_user, role):
    owner = as_user("sales_rep", "rep-m", "east")  # the rep owns it, so each role is in scope
    email = f"mask-{uuid.uuid4().hex[:8]}@example.com"
    created = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(
            customer=pb.Customer(
                display_name="Mask Co",
                email_addresses=[pb.EmailAddress(address=email)],
                phone_numbers=[pb.PhoneNumber(number="+86 138 1234 5678")],
                tax_id=f"9131{uuid.uuid4().hex[:12].upper()}",
                address=pb.PostalAddress(region_code="CN", address_line="9 Hidden St"),
            )
        ),
        metadata=owner,
    )
    contact = await stub.CreateContact(
        rpc.CreateContactRequest(
            parent=created.name,
            contact=pb.Contact(
                display_name="Ma Liu",
                email_addresses=[pb.EmailAddress(address="ma.liu@example.com")],
                phone_numbers=[pb.PhoneNumber(number="+86 137 1234 5678")],
            ),
        ),
        metadata=owner,
    )
    caller = as_user(role, "rep-m" if role == "sales_rep" else f"{role}-1", "east")
    if role == "analyst":  # aggregates only: no customer records, hence no personal data, at all
        await expect_error(
            stub.GetCustomer(rpc.GetCustomerRequest(name=created.name), metadata=caller),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        await expect_error(
            stub.ListCustomers(rpc.ListCustomersRequest(), metadata=caller), grpc.StatusCode.PERMISSION_DENIED
        )
        await expect_error(
            stub.GetContact(rpc.GetContactRequest(name=contact.name), metadata=caller),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        return
    shown, sees_tax = MASKING[role]
    seen = await stub.GetCustomer(rpc.GetCustomerRequest(name=created.name), metadata=caller)
    listed = await stub.ListCustomers(rpc.ListCustomersRequest(filter=f'email = "{email}"'), metadata=caller)
    seen_contact = await stub.GetContact(rpc.GetContactRequest(name=contact.name), metadata=caller)
    assert [c.name for c in listed.customers] == [created.name]
    for view in (seen, listed.customers[0]):
        if shown == "plain":
            assert (view.email_addresses[0].address, view.phone_numbers[0].number) == (
                email,
                "+8613812345678",
            )
        else:
            assert view.email_addresses[0].address == "m***@example.com"
            assert view.phone_numbers[0].number == "+86*******5678"
        assert (view.tax_id == created.tax_id) is sees_tax
        assert view.HasField("address") is sees_tax
        assert view.display_name == "Mask Co"
    if shown == "plain":
        assert seen_contact.email_addresses[0].address == "ma.liu@example.com"
    else:
        assert seen_contact.email_addresses[0].address == "m***@example.com"
        assert seen_contact.phone_numbers[0].number == "+86*******5678"
