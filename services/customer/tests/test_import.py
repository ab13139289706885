"""ImportCustomers / GetImportJob / RevertImportJob through a real gRPC channel (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from customer_data_helpers import (
    company,
    create,
    define_custom_fields,
    expect_error,
    header,
    results_by_row,
    rows,
    run_import,
    unique,
)
from google.protobuf import field_mask_pb2

from crm.customer.v1 import customer_data_service_pb2 as data_rpc
from crm.customer.v1 import customer_data_service_pb2_grpc as data_grpc
from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as rpc
from crm.customer.v1 import data_events_pb2
from crm_shared.testing.events import wait_for_envelopes

pytestmark = pytest.mark.asyncio(loop_scope="session")
REJECTED = data_rpc.IMPORT_ROW_OUTCOME_REJECTED
CREATED = data_rpc.IMPORT_ROW_OUTCOME_CREATED


@pytest.fixture
def data_stub(channel):
    return data_grpc.CustomerDataServiceStub(channel)


async def _all_customers(stub, metadata, filter_text: str) -> list[pb.Customer]:
    found, token = [], ""
    while True:
        page = await stub.ListCustomers(
            rpc.ListCustomersRequest(filter=filter_text, page_size=100, page_token=token), metadata=metadata
        )
        found += page.customers
        token = page.next_page_token
        if not token:
            return found


async def test_mixed_rows_each_rejected_row_has_a_reason(stub, data_stub, as_user, nats_server, channel):
    admin = as_user("admin", "root")
    # Imported custom fields follow the same definitions as CreateCustomer.
    await define_custom_fields(channel, admin, {"founded": "date", "staff": "number", "active": "bool"})
    tag = unique()
    existing = await create(
        stub,
        admin,
        company(f"Existing {tag}", email_addresses=[pb.EmailAddress(address=f"old-{tag}@x.example")]),
    )
    job_id = str(uuid.uuid4())
    good = {
        "display_name": f"  Good   Row {tag} ",
        "kind": "Company",
        "tier": "a",
        "lifecycle_stage": "Active",
        "email_addresses": f" Buyer-{tag}@Good.Example ",
        "phone_numbers": "138 0013 8000 ; +1 650-253-0000",
        "tags": "x; y",
        "custom_fields.founded:date": "2020/01/31",
        "custom_fields.staff:number": "1,200",
        "custom_fields.active:bool": "yes",
        "address.region_code": "cn",
        "address.locality": "Shanghai",
    }
    responses = await run_import(
        data_stub,
        admin,
        [
            header(job_id),
            rows(
                (1, good),
                (2, {"display_name": "Bad email", "email_addresses": "not-an-email"}),
                (3, {"email_addresses": f"noname-{tag}@x.example"}),
                (4, {"display_name": "Dup", "email_addresses": f"OLD-{tag}@x.example"}),
                (5, {"display_name": "Colour", "colour": "red"}),
            ),
            rows(
                (6, {"display_name": "Bad date", "custom_fields.founded:date": "31st of Jan"}),
                (7, {"display_name": "Same as row 1", "email_addresses": f"buyer-{tag}@good.example"}),
                (8, {"display_name": "Bad phone", "phone_numbers": "12"}),
                (9, {"display_name": "Bad tier", "tier": "Z"}),
            ),
        ],
    )
    results = results_by_row(responses)
    assert sorted(results) == list(range(1, 10))
    assert results[1].outcome == CREATED
    assert all(results[n].outcome == REJECTED and results[n].reason for n in range(2, 10))
    assert list(results[2].fields) == ["email_addresses"]
    assert "display_name: is required" in results[3].reason
    assert results[4].reason == f"duplicate of {existing.name}" and results[4].customer == existing.name
    assert results[5].reason == "colour: unknown target field"
    assert list(results[6].fields) == ["custom_fields"] and "not a date" in results[6].reason
    assert results[7].reason == f"duplicate of {results[1].customer}"
    assert list(results[8].fields) == ["phone_numbers"]
    assert list(results[9].fields) == ["tier"]

    final = responses[-1].job
    assert final.state == data_rpc.IMPORT_JOB_STATE_COMPLETED
    assert (final.processed_rows, final.created_rows, final.rejected_rows) == (9, 1, 8)
    job = await data_stub.GetImportJob(
        data_rpc.GetImportJobRequest(name=f"importJobs/{job_id}"), metadata=admin
    )
    assert (job.processed_rows, job.created_rows, job.rejected_rows, job.state) == (
        9,
        1,
        8,
        data_rpc.IMPORT_JOB_STATE_COMPLETED,
    )

    # Cleaned exactly like CreateCustomer would.
    created = await stub.GetCustomer(rpc.GetCustomerRequest(name=results[1].customer), metadata=admin)
    assert created.display_name == f"Good Row {tag}"
    assert created.tier == pb.CUSTOMER_TIER_A and created.lifecycle_stage == pb.LIFECYCLE_STAGE_ACTIVE
    assert [e.address for e in created.email_addresses] == [f"buyer-{tag}@good.example"]
    assert [p.number for p in created.phone_numbers] == ["+8613800138000", "+16502530000"]
    assert list(created.tags) == ["x", "y"] and created.owner == "root"
    assert dict(created.custom_fields) == {"founded": "2020-01-31", "staff": 1200, "active": True}
    assert created.address.region_code == "CN" and created.address.locality == "Shanghai"

    from crm_shared.testing.fixtures_nats import connect_nats

    nc = await connect_nats(nats_server.url)
    try:
        [envelope] = await wait_for_envelopes(
            nc.jetstream(), "CRM_CUSTOMER", subject="crm.customer.import.completed", resource=job.name
        )
    finally:
        await nc.close()
    event = data_events_pb2.ImportJobCompleted()
    envelope.payload.Unpack(event)
    assert (event.created_rows, event.rejected_rows) == (1, 8)


async def test_interrupted_import_resumes_without_duplicates(stub, data_stub, as_user):
    admin = as_user("admin", "root")
    tag = unique()
    job_id = str(uuid.uuid4())
    all_rows = [
        (
            n,
            {
                "display_name": f"Resume {tag} {n}",
                "email_addresses": f"r{n}-{tag}@resume.example",
                "source": tag,
            },
        )
        for n in range(1, 31)
    ]
    all_rows[4] = (5, {"display_name": "", "email_addresses": "broken"})  # one bad row, reported once

    stalled = asyncio.Event()

    async def first_attempt():
        yield header(job_id, batch_size=10)
        for item in all_rows[:25]:
            yield rows(item)
        await stalled.wait()  # the client dies here, with rows 21-25 sent but their batch incomplete

    call = data_stub.ImportCustomers(first_attempt(), metadata=admin)
    first_results = {}
    async for response in call:
        first_results.update({r.row_number: r for r in response.results})
        if response.job.processed_rows >= 20:
            break
    call.cancel()
    assert sorted(first_results) == list(range(1, 21))
    assert first_results[5].outcome == REJECTED

    interrupted = await data_stub.GetImportJob(
        data_rpc.GetImportJobRequest(name=f"importJobs/{job_id}"), metadata=admin
    )
    assert interrupted.state == data_rpc.IMPORT_JOB_STATE_RUNNING
    assert (interrupted.processed_rows, interrupted.created_rows) == (20, 19)

    # Resume: the client streams the whole file again with the same job id.
    responses = await run_import(data_stub, admin, [header(job_id, batch_size=10), rows(*all_rows)])
    results = results_by_row(responses)
    assert {results[n].outcome for n in range(1, 21)} == {data_rpc.IMPORT_ROW_OUTCOME_ALREADY_APPLIED}
    assert results[1].customer == first_results[1].customer
    assert {results[n].outcome for n in range(21, 31)} == {CREATED}
    final = responses[-1].job
    assert final.state == data_rpc.IMPORT_JOB_STATE_COMPLETED
    assert (final.processed_rows, final.created_rows, final.rejected_rows, final.skipped_rows) == (
        30,
        29,
        1,
        20,
    )
    customers = await _all_customers(stub, admin, f'source = "{tag}"')
    assert len(customers) == 29 and len({c.display_name for c in customers}) == 29

    # A row changed after it was applied is refused, not applied twice.
    changed = await run_import(
        data_stub,
        admin,
        [header(job_id), rows((1, {"display_name": "Other", "email_addresses": "o@x.example"}))],
    )
    assert "already applied with different values" in results_by_row(changed)[1].reason
    # A job id is tied to its mode.
    await expect_error(
        run_import(data_stub, admin, [header(job_id, mode=data_rpc.IMPORT_MODE_UPSERT)]),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_upsert_and_update_only_modes(stub, data_stub, as_user):
    admin = as_user("admin", "root")
    tag = unique()
    existing = await create(
        stub,
        admin,
        company(
            f"Upsert {tag}", industry="old", email_addresses=[pb.EmailAddress(address=f"u-{tag}@x.example")]
        ),
    )
    responses = await run_import(
        data_stub,
        admin,
        [
            header(str(uuid.uuid4()), mode=data_rpc.IMPORT_MODE_UPSERT),
            rows(
                (1, {"email_addresses": f"U-{tag}@x.example", "industry": "new", "display_name": ""}),
                (2, {"display_name": f"Fresh {tag}", "email_addresses": f"fresh-{tag}@x.example"}),
                (3, {"email_addresses": f"u-{tag}@x.example", "industry": "new"}),
            ),
        ],
    )
    results = results_by_row(responses)
    assert results[1].outcome == data_rpc.IMPORT_ROW_OUTCOME_UPDATED and results[1].customer == existing.name
    assert results[2].outcome == CREATED
    assert results[3].outcome == data_rpc.IMPORT_ROW_OUTCOME_UNCHANGED
    updated = await stub.GetCustomer(rpc.GetCustomerRequest(name=existing.name), metadata=admin)
    assert updated.industry == "new" and updated.display_name == f"Upsert {tag}"  # empty cells change nothing

    responses = await run_import(
        data_stub,
        admin,
        [
            header(str(uuid.uuid4()), mode=data_rpc.IMPORT_MODE_UPDATE_ONLY),
            rows(
                (1, {"email_addresses": f"u-{tag}@x.example", "tier": "B"}),
                (2, {"display_name": "Nobody", "email_addresses": f"nobody-{tag}@x.example"}),
                (3, {"display_name": "No key"}),
            ),
        ],
    )
    results = results_by_row(responses)
    assert results[1].outcome == data_rpc.IMPORT_ROW_OUTCOME_UPDATED
    assert results[2].outcome == REJECTED and "no customer with this email" in results[2].reason
    assert results[3].outcome == REJECTED and "no email, phone or tax id" in results[3].reason


async def test_sales_rep_imports_become_theirs_and_scope_holds(stub, data_stub, as_user):
    tag = unique()
    carols = await create(
        stub,
        as_user("sales_rep", "carol"),
        company(f"Carol's {tag}", email_addresses=[pb.EmailAddress(address=f"c-{tag}@x.example")]),
    )
    bob = as_user("sales_rep", "bob")
    responses = await run_import(
        data_stub,
        bob,
        [
            header(str(uuid.uuid4()), mode=data_rpc.IMPORT_MODE_UPSERT),
            rows(
                (1, {"display_name": f"Bob's {tag}"}),
                (2, {"display_name": "For someone else", "owner": "carol"}),
                (3, {"email_addresses": f"c-{tag}@x.example", "industry": "hijack"}),
            ),
        ],
    )
    results = results_by_row(responses)
    mine = await stub.GetCustomer(rpc.GetCustomerRequest(name=results[1].customer), metadata=bob)
    assert mine.owner == "bob"
    assert results[2].outcome == REJECTED and "only own customers yourself" in results[2].reason
    assert results[3].outcome == REJECTED and "outside your data scope" in results[3].reason
    untouched = await stub.GetCustomer(rpc.GetCustomerRequest(name=carols.name), metadata=as_user("admin"))
    assert untouched.industry == ""


async def test_dry_run_writes_nothing(stub, data_stub, as_user):
    admin = as_user("admin", "root")
    tag = unique()
    job_id = str(uuid.uuid4())
    responses = await run_import(
        data_stub,
        admin,
        [
            header(job_id, dry_run=True),
            rows((1, {"display_name": f"Dry {tag}", "source": tag}), (2, {"tier": "Q"})),
        ],
    )
    results = results_by_row(responses)
    assert results[1].outcome == CREATED and results[2].outcome == REJECTED
    assert responses[-1].job.dry_run and responses[-1].job.created_rows == 1
    assert await _all_customers(stub, admin, f'source = "{tag}"') == []
    await expect_error(
        data_stub.GetImportJob(data_rpc.GetImportJobRequest(name=f"importJobs/{job_id}"), metadata=admin),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_revert_deletes_untouched_customers_the_job_created(stub, data_stub, as_user):
    admin = as_user("admin", "root")
    tag = unique()
    job_id = str(uuid.uuid4())
    responses = await run_import(
        data_stub,
        admin,
        [
            header(job_id),
            rows(*[(n, {"display_name": f"Revert {tag} {n}", "source": tag}) for n in (1, 2, 3)]),
        ],
    )
    created = [r.customer for r in results_by_row(responses).values()]
    touched = await stub.GetCustomer(rpc.GetCustomerRequest(name=created[0]), metadata=admin)
    await stub.UpdateCustomer(
        rpc.UpdateCustomerRequest(
            customer=pb.Customer(name=touched.name, industry="edited", etag=touched.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["industry"]),
        ),
        metadata=admin,
    )
    name = f"importJobs/{job_id}"
    await expect_error(
        data_stub.RevertImportJob(data_rpc.RevertImportJobRequest(name=name), metadata=as_user("sales_rep")),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    reverted = await data_stub.RevertImportJob(data_rpc.RevertImportJobRequest(name=name), metadata=admin)
    assert reverted.deleted == 2 and list(reverted.kept) == [touched.name]
    assert reverted.job.state == data_rpc.IMPORT_JOB_STATE_REVERTED and reverted.job.reverted_rows == 2
    assert [c.name for c in await _all_customers(stub, admin, f'source = "{tag}"')] == [touched.name]
    for gone in created[1:]:
        await expect_error(
            stub.GetCustomer(rpc.GetCustomerRequest(name=gone), metadata=admin), grpc.StatusCode.NOT_FOUND
        )
    again = await data_stub.RevertImportJob(data_rpc.RevertImportJobRequest(name=name), metadata=admin)
    assert again.deleted == 0 and again.job.reverted_rows == 2
    await expect_error(run_import(data_stub, admin, [header(job_id)]), grpc.StatusCode.FAILED_PRECONDITION)


async def test_upsert_updates_a_customer_that_has_collaborators(stub, data_stub, as_user):
    admin = as_user("admin", "root")
    tag = unique()
    shared = await create(
        stub,
        admin,
        company(
            f"Shared {tag}",
            collaborators=["dave"],
            email_addresses=[pb.EmailAddress(address=f"s-{tag}@x.example")],
        ),
    )
    responses = await run_import(
        data_stub,
        admin,
        [
            header(str(uuid.uuid4()), mode=data_rpc.IMPORT_MODE_UPSERT),
            rows((1, {"email_addresses": f"s-{tag}@x.example", "industry": "logistics"})),
        ],
    )
    assert results_by_row(responses)[1].outcome == data_rpc.IMPORT_ROW_OUTCOME_UPDATED
    updated = await stub.GetCustomer(rpc.GetCustomerRequest(name=shared.name), metadata=admin)
    assert updated.industry == "logistics" and list(updated.collaborators) == ["dave"]
