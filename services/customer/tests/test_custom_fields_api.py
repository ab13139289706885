"""Custom fields through real gRPC, on SQLite and PostgreSQL: definitions managed by admins,
validated on every customer write, unique across customers, usable in ListCustomers filters."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2

from crm.customer.v1 import custom_field_service_pb2 as cf
from crm.customer.v1 import custom_field_service_pb2_grpc as cf_grpc
from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as rpc
from crm_shared.grpc.status import error_details

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def fields_stub(channel):
    return cf_grpc.CustomFieldServiceStub(channel)


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


def struct(**values) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def customer(name: str, **custom) -> pb.Customer:
    return pb.Customer(display_name=name, kind=pb.CUSTOMER_KIND_COMPANY, custom_fields=struct(**custom))


async def define(
    fields_stub, admin, key: str, kind, request_id: str = "", **extra
) -> cf.CustomFieldDefinition:
    return await fields_stub.CreateCustomFieldDefinition(
        cf.CreateCustomFieldDefinitionRequest(
            custom_field_definition=cf.CustomFieldDefinition(
                resource_type=cf.CUSTOM_FIELD_RESOURCE_TYPE_CUSTOMERS, key=key, type=kind, **extra
            ),
            request_id=request_id,
        ),
        metadata=admin,
    )


async def define_all(fields_stub, admin):
    await define(fields_stub, admin, "budget", cf.CUSTOM_FIELD_TYPE_NUMBER, required=True, filterable=True)
    await define(fields_stub, admin, "signed_on", cf.CUSTOM_FIELD_TYPE_DATE, filterable=True)
    await define(fields_stub, admin, "vip", cf.CUSTOM_FIELD_TYPE_BOOL, filterable=True)
    await define(
        fields_stub,
        admin,
        "segment",
        cf.CUSTOM_FIELD_TYPE_ENUM,
        allowed_values=["smb", "enterprise"],
        filterable=True,
    )
    await define(
        fields_stub,
        admin,
        "channels",
        cf.CUSTOM_FIELD_TYPE_MULTI_ENUM,
        allowed_values=["email", "phone", "wechat"],
        filterable=True,
    )
    await define(fields_stub, admin, "motto", cf.CUSTOM_FIELD_TYPE_TEXT)  # not filterable
    await define(fields_stub, admin, "vat_code", cf.CUSTOM_FIELD_TYPE_TEXT, unique=True)


async def test_admins_manage_definitions_and_everyone_reads_them(fields_stub, as_user):
    admin, rep = as_user("admin", "root"), as_user("sales_rep", "rep-a")
    request_id = str(uuid.uuid4())
    created = await define(
        fields_stub,
        admin,
        "segment",
        cf.CUSTOM_FIELD_TYPE_ENUM,
        allowed_values=["smb", "enterprise"],
        display_name="Segment",
        request_id=request_id,
    )
    retried = await define(
        fields_stub,
        admin,
        "segment",
        cf.CUSTOM_FIELD_TYPE_ENUM,
        allowed_values=["smb", "enterprise"],
        display_name="Segment",
        request_id=request_id,
    )
    assert retried == created
    assert created.name.startswith("customFields/") and created.etag
    assert (created.key, created.type, list(created.allowed_values)) == (
        "segment",
        cf.CUSTOM_FIELD_TYPE_ENUM,
        ["smb", "enterprise"],
    )
    # Reps read definitions (forms need them) but may not change them.
    assert (
        await fields_stub.GetCustomFieldDefinition(
            cf.GetCustomFieldDefinitionRequest(name=created.name), metadata=rep
        )
        == created
    )
    denied = await expect_error(
        fields_stub.CreateCustomFieldDefinition(
            cf.CreateCustomFieldDefinitionRequest(
                custom_field_definition=cf.CustomFieldDefinition(
                    resource_type=cf.CUSTOM_FIELD_RESOURCE_TYPE_CUSTOMERS,
                    key="x",
                    type=cf.CUSTOM_FIELD_TYPE_TEXT,
                )
            ),
            metadata=rep,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert denied.reason == "ACTION_NOT_ALLOWED"
    await expect_error(
        fields_stub.DeleteCustomFieldDefinition(
            cf.DeleteCustomFieldDefinitionRequest(name=created.name), metadata=rep
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )

    duplicate = await expect_error(
        define(fields_stub, admin, "segment", cf.CUSTOM_FIELD_TYPE_TEXT), grpc.StatusCode.ALREADY_EXISTS
    )
    assert duplicate.metadata["existing"] == created.name
    bad = await expect_error(
        define(fields_stub, admin, "Bad Key!", cf.CUSTOM_FIELD_TYPE_ENUM), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "custom_field_definition.key" in bad.field_violations

    update = cf.UpdateCustomFieldDefinitionRequest(
        custom_field_definition=cf.CustomFieldDefinition(
            name=created.name,
            allowed_values=["smb", "enterprise", "public"],
            required=True,
            etag=created.etag,
        ),
        update_mask=field_mask_pb2.FieldMask(paths=["allowed_values", "required"]),
    )
    updated = await fields_stub.UpdateCustomFieldDefinition(update, metadata=admin)
    assert list(updated.allowed_values) == ["smb", "enterprise", "public"] and updated.required
    stale = await expect_error(
        fields_stub.UpdateCustomFieldDefinition(update, metadata=admin), grpc.StatusCode.ABORTED
    )
    assert stale.reason == "STALE_ETAG"
    immutable = await expect_error(
        fields_stub.UpdateCustomFieldDefinition(
            cf.UpdateCustomFieldDefinitionRequest(
                custom_field_definition=cf.CustomFieldDefinition(
                    name=created.name, type=cf.CUSTOM_FIELD_TYPE_TEXT
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["type"]),
            ),
            metadata=admin,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "update_mask.paths[0]" in immutable.field_violations

    await define(fields_stub, admin, "budget", cf.CUSTOM_FIELD_TYPE_NUMBER)
    first = await fields_stub.ListCustomFieldDefinitions(
        cf.ListCustomFieldDefinitionsRequest(page_size=1), metadata=rep
    )
    second = await fields_stub.ListCustomFieldDefinitions(
        cf.ListCustomFieldDefinitionsRequest(page_size=1, page_token=first.next_page_token), metadata=rep
    )
    assert [d.key for d in [*first.custom_field_definitions, *second.custom_field_definitions]] == [
        "budget",
        "segment",
    ]
    assert second.next_page_token == ""

    await fields_stub.DeleteCustomFieldDefinition(
        cf.DeleteCustomFieldDefinitionRequest(name=created.name, etag=updated.etag), metadata=admin
    )
    await expect_error(
        fields_stub.GetCustomFieldDefinition(
            cf.GetCustomFieldDefinitionRequest(name=created.name), metadata=admin
        ),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_every_write_is_validated_naming_the_field(stub, fields_stub, as_user):
    admin = as_user("admin", "root")
    await define_all(fields_stub, admin)

    bad = await expect_error(
        stub.CreateCustomer(
            rpc.CreateCustomerRequest(
                customer=pb.Customer(
                    display_name="",  # the domain rules' own violation is reported alongside
                    custom_fields=struct(
                        budget="lots",
                        signed_on="2026-02-30",
                        vip="yes",
                        segment="huge",
                        channels=["fax"],
                        colour="red",
                    ),
                )
            ),
            metadata=admin,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(bad.field_violations) == {
        "customer.display_name",
        "customer.custom_fields.budget",
        "customer.custom_fields.signed_on",
        "customer.custom_fields.vip",
        "customer.custom_fields.segment",
        "customer.custom_fields.channels",
        "customer.custom_fields.colour",
    }
    assert "must be a number" in bad.field_violations["customer.custom_fields.budget"]

    missing = await expect_error(
        stub.CreateCustomer(
            rpc.CreateCustomerRequest(customer=customer("No budget", vip=True)), metadata=admin
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert missing.field_violations == {"customer.custom_fields.budget": "is required"}

    made = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(
            customer=customer("Good", budget=5000, signed_on="2026-03-01", channels=["email"])
        ),
        metadata=admin,
    )
    assert dict(made.custom_fields) == {"budget": 5000, "signed_on": "2026-03-01", "channels": ["email"]}

    # Updates are validated too; replacing custom_fields must keep the required ones.
    def update(**values):
        return stub.UpdateCustomer(
            rpc.UpdateCustomerRequest(
                customer=pb.Customer(name=made.name, custom_fields=struct(**values)),
                update_mask=field_mask_pb2.FieldMask(paths=["custom_fields"]),
            ),
            metadata=admin,
        )

    wrong = await expect_error(update(budget=1, segment="huge"), grpc.StatusCode.INVALID_ARGUMENT)
    assert set(wrong.field_violations) == {"customer.custom_fields.segment"}
    dropped = await expect_error(update(vip=True), grpc.StatusCode.INVALID_ARGUMENT)
    assert dropped.field_violations == {"customer.custom_fields.budget": "is required"}
    changed = await update(budget=7000, vip=False)
    assert dict(changed.custom_fields) == {"budget": 7000, "vip": False}


async def test_unique_values_are_unique_across_customers(stub, fields_stub, as_user):
    admin = as_user("admin", "root")
    await define_all(fields_stub, admin)
    first = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(customer=customer("First", budget=1, vat_code="VAT-1")), metadata=admin
    )
    clash = await expect_error(
        stub.CreateCustomer(
            rpc.CreateCustomerRequest(customer=customer("Second", budget=1, vat_code="VAT-1")), metadata=admin
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert clash.reason == "DUPLICATE_CUSTOM_FIELD_VALUE"
    assert clash.metadata == {"existing": first.name, "field": "customer.custom_fields.vat_code"}

    second = await stub.CreateCustomer(
        rpc.CreateCustomerRequest(customer=customer("Second", budget=1, vat_code="VAT-2")), metadata=admin
    )
    await expect_error(
        stub.UpdateCustomer(
            rpc.UpdateCustomerRequest(
                customer=pb.Customer(name=second.name, custom_fields=struct(budget=1, vat_code="VAT-1")),
                update_mask=field_mask_pb2.FieldMask(paths=["custom_fields"]),
            ),
            metadata=admin,
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    # The first customer lets go of VAT-1 (it changes its value), so the second may take it.
    await stub.UpdateCustomer(
        rpc.UpdateCustomerRequest(
            customer=pb.Customer(name=first.name, custom_fields=struct(budget=1, vat_code="VAT-9")),
            update_mask=field_mask_pb2.FieldMask(paths=["custom_fields"]),
        ),
        metadata=admin,
    )
    taken = await stub.UpdateCustomer(
        rpc.UpdateCustomerRequest(
            customer=pb.Customer(name=second.name, custom_fields=struct(budget=1, vat_code="VAT-1")),
            update_mask=field_mask_pb2.FieldMask(paths=["custom_fields"]),
        ),
        metadata=admin,
    )
    assert taken.custom_fields["vat_code"] == "VAT-1"
    # Deleting a customer frees its values.
    await stub.DeleteCustomer(rpc.DeleteCustomerRequest(name=first.name), metadata=admin)
    await stub.CreateCustomer(
        rpc.CreateCustomerRequest(customer=customer("Third", budget=1, vat_code="VAT-9")), metadata=admin
    )


async def test_list_filters_on_custom_fields(stub, fields_stub, as_user):
    admin = as_user("admin", "root")
    await define_all(fields_stub, admin)
    team = f"cf-{uuid.uuid4().hex[:6]}"
    rows = {
        "Alpha": dict(
            budget=500, signed_on="2026-01-15", vip=True, segment="smb", channels=["email", "wechat"]
        ),
        "Beta": dict(
            budget=20000, signed_on="2026-07-01", vip=False, segment="enterprise", channels=["phone"]
        ),
        "Gamma": dict(budget=12000.5, segment="enterprise", channels=["email"]),
    }
    for name, values in rows.items():
        message = customer(name, **values)
        message.team = team
        await stub.CreateCustomer(rpc.CreateCustomerRequest(customer=message), metadata=admin)

    async def names(expression: str) -> list[str]:
        page = await stub.ListCustomers(
            rpc.ListCustomersRequest(filter=f'team = "{team}" AND ({expression})', order_by="display_name"),
            metadata=admin,
        )
        return [c.display_name for c in page.customers]

    assert await names("custom_fields.budget >= 10000") == ["Beta", "Gamma"]
    assert await names("custom_fields.budget < 12000.5") == ["Alpha"]
    assert await names('custom_fields.segment = "enterprise"') == ["Beta", "Gamma"]
    assert await names('custom_fields.signed_on < "2026-06-01"') == ["Alpha"]
    assert await names("custom_fields.vip = true") == ["Alpha"]
    assert await names('custom_fields.channels:"email"') == ["Alpha", "Gamma"]
    assert await names('custom_fields.segment = "smb" OR custom_fields.budget > 15000') == ["Alpha", "Beta"]

    for expression, says in [
        ('custom_fields.motto = "x"', "not a filterable custom field"),
        ("custom_fields.nope = 1", "not a filterable custom field"),
        ('custom_fields.segment = "huge"', "must be one of"),
        ("custom_fields.budget = many", "not a number"),
        ('custom_fields.segment > "a"', "operator '>' is not supported"),
    ]:
        details = await expect_error(
            stub.ListCustomers(rpc.ListCustomersRequest(filter=expression), metadata=admin),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert says in details.field_violations["filter"], (expression, details.field_violations)
