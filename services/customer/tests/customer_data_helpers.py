"""Shared by the CustomerDataService tests (merge, import, export)."""

from __future__ import annotations

import uuid

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from crm.customer.v1 import customer_data_service_pb2 as data_rpc
from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as rpc
from crm_shared.grpc.status import error_details


def unique() -> str:
    return uuid.uuid4().hex[:8]


def company(name: str, **overrides) -> pb.Customer:
    fields = dict(display_name=name, kind=pb.CUSTOMER_KIND_COMPANY)
    fields.update(overrides)
    return pb.Customer(**fields)


async def create(stub, metadata, customer: pb.Customer) -> pb.Customer:
    return await stub.CreateCustomer(rpc.CreateCustomerRequest(customer=customer), metadata=metadata)


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


def header(job_id: str, mode=data_rpc.IMPORT_MODE_CREATE_ONLY, **fields) -> data_rpc.ImportCustomersRequest:
    return data_rpc.ImportCustomersRequest(
        header=data_rpc.ImportJobHeader(job_id=job_id, mode=mode, source="test.csv", **fields)
    )


def rows(*items: tuple[int, dict[str, str]]) -> data_rpc.ImportCustomersRequest:
    return data_rpc.ImportCustomersRequest(
        rows=data_rpc.ImportRows(rows=[data_rpc.ImportRow(row_number=n, values=v) for n, v in items])
    )


async def run_import(data_stub, metadata, messages) -> list[data_rpc.ImportCustomersResponse]:
    async def requests():
        for message in messages:
            yield message

    return [response async for response in data_stub.ImportCustomers(requests(), metadata=metadata)]


def results_by_row(responses) -> dict[int, data_rpc.ImportRowResult]:
    return {r.row_number: r for response in responses for r in response.results}


async def query(database_url: str, statement) -> list:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(statement)).all())
    finally:
        await engine.dispose()


async def execute(database_url: str, *statements) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                if callable(statement):
                    await conn.run_sync(statement)
                else:
                    await conn.execute(statement)
    finally:
        await engine.dispose()


def audit_rows(action: str):
    from crm_customer.adapters.tables import platform

    audit = platform.audit_log
    return sa.select(audit.c.actor, audit.c.resource, audit.c.fields).where(audit.c.action == action)


async def define_custom_fields(channel, metadata, fields: dict[str, str]) -> None:
    """Define customer custom fields by type name ("date", "number", "bool", "text"), as an admin."""
    from crm.customer.v1 import custom_field_service_pb2 as cf
    from crm.customer.v1 import custom_field_service_pb2_grpc as cf_grpc

    stub = cf_grpc.CustomFieldServiceStub(channel)
    for key, kind in fields.items():
        await stub.CreateCustomFieldDefinition(
            cf.CreateCustomFieldDefinitionRequest(
                custom_field_definition=cf.CustomFieldDefinition(
                    resource_type=cf.CUSTOM_FIELD_RESOURCE_TYPE_CUSTOMERS,
                    key=key,
                    type=getattr(cf, f"CUSTOM_FIELD_TYPE_{kind.upper()}"),
                )
            ),
            metadata=metadata,
        )
