"""ExportCustomers: streamed, in the caller's scope, masked per role, audited."""

from __future__ import annotations

import grpc
import pytest
from customer_data_helpers import audit_rows, company, create, expect_error, query, unique

from crm.customer.v1 import customer_data_service_pb2 as data_rpc
from crm.customer.v1 import customer_data_service_pb2_grpc as data_grpc
from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as rpc

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def data_stub(channel):
    return data_grpc.CustomerDataServiceStub(channel)


async def _export(data_stub, metadata, filter_text: str = "", order_by: str = "") -> list[pb.Customer]:
    call = data_stub.ExportCustomers(
        data_rpc.ExportCustomersRequest(filter=filter_text, order_by=order_by), metadata=metadata
    )
    return [customer async for customer in call]


async def test_export_scope_masking_paging_and_audit(stub, data_stub, as_user, database_url):
    tag = unique()
    bob, carol = as_user("sales_rep", "bob"), as_user("sales_rep", "carol")
    for n in range(3):
        await create(
            stub,
            bob,
            company(
                f"Bob {tag} {n}",
                industry=tag,
                email_addresses=[pb.EmailAddress(address=f"bob{n}-{tag}@x.example")],
                phone_numbers=[pb.PhoneNumber(number=f"138001380{n:02d}")],
                tax_id=f"T{tag}{n}",
            ),
        )
    await create(stub, carol, company(f"Carol {tag}", industry=tag))

    # A rep exports only their own customers, unmasked.
    mine = await _export(data_stub, bob, f'industry = "{tag}"', "display_name")
    assert [c.display_name for c in mine] == [f"Bob {tag} {n}" for n in range(3)]
    assert mine[0].email_addresses[0].address == f"bob0-{tag}@x.example"

    # A support agent sees everyone, with phones and emails masked and the tax id hidden.
    agent = await _export(data_stub, as_user("support_agent", "sue"), f'industry = "{tag}"', "display_name")
    assert [c.display_name for c in agent] == [*(f"Bob {tag} {n}" for n in range(3)), f"Carol {tag}"]
    assert agent[0].email_addresses[0].address == "b***@x.example"
    assert agent[0].phone_numbers[0].number == "+86*******8000"
    assert agent[0].tax_id == ""

    # Bad filters are the caller's error, like ListCustomers'.
    await expect_error(_export(data_stub, bob, "colour = 1"), grpc.StatusCode.INVALID_ARGUMENT)
    await expect_error(_export(data_stub, as_user("analyst", "ann")), grpc.StatusCode.PERMISSION_DENIED)

    # More than one internal page (500) streams in order without duplicates.
    admin = as_user("admin", "root")
    everything = await _export(data_stub, admin)
    assert len({c.name for c in everything}) == len(everything) >= 4

    # Audited: who exported how many, with which filter (email/phone values redacted).
    await _export(data_stub, bob, f'email = "bob0-{tag}@x.example"')
    records = await query(database_url, audit_rows("exported"))
    by_actor = [(r.actor, r.fields) for r in records if r.actor == "bob"]
    assert ("bob", ["complete=true", "count=3", f'filter=industry = "{tag}"']) in by_actor
    assert ("bob", ["complete=true", "count=1", 'filter=email = "***"']) in by_actor


async def test_export_pages_through_more_than_one_internal_page(stub, data_stub, as_user):
    from customer_data_helpers import header, rows, run_import

    admin = as_user("admin", "root")
    tag = unique()
    import uuid

    await run_import(
        data_stub,
        admin,
        [
            header(str(uuid.uuid4())),
            rows(*[(n, {"display_name": f"Bulk {n:04d}", "source": tag}) for n in range(1, 1101)]),
        ],
    )
    exported = await _export(data_stub, admin, f'source = "{tag}"', "display_name")
    assert [c.display_name for c in exported] == [f"Bulk {n:04d}" for n in range(1, 1101)]
    assert (
        await stub.ListCustomers(rpc.ListCustomersRequest(filter=f'source = "{tag}"'), metadata=admin)
    ).customers
