"""Import suite: ImportCustomers (batched, one transaction per 500 rows) vs one CreateCustomer per row.

The same N rows (display name, email, phone, industry, tags: the same rules and the
same outbox event per customer either way) are created three ways against the
customer service directly (SQLite, one writer):

  ImportCustomers            one client stream, rows sent 100 per message, 500 per transaction
  CreateCustomer sequential  one call at a time
  CreateCustomer 16 in flight

and the rows/s ratio import : one-call-at-a-time is printed.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import grpc

from crm_bench.suite import BenchEnv, machine_line

KEY = "import"
TITLE = "Import: ImportCustomers batches vs one CreateCustomer per row"
BATCH_SIZE = 500
ROWS_PER_MESSAGE = 100


def _values(run: str, label: str, n: int) -> dict[str, str]:
    return {
        "display_name": f"Import bench {label} {n}",
        "email_addresses": f"{label}-{run}-{n}@bench.example",
        "phone_numbers": f"+86 139{(hash((run, label)) % 10_000):04d}{n:04d}",
        "industry": "retail",
        "tags": "bench;import",
    }


async def _import(channel, metadata, run: str, rows: int) -> tuple[float, int]:
    from crm.customer.v1 import customer_data_service_pb2 as rpc
    from crm.customer.v1 import customer_data_service_pb2_grpc as rpc_grpc

    def requests():
        yield rpc.ImportCustomersRequest(
            header=rpc.ImportJobHeader(
                job_id=str(uuid.uuid4()),
                mode=rpc.IMPORT_MODE_CREATE_ONLY,
                source="bench",
                batch_size=BATCH_SIZE,
            )
        )
        for start in range(1, rows + 1, ROWS_PER_MESSAGE):
            yield rpc.ImportCustomersRequest(
                rows=rpc.ImportRows(
                    rows=[
                        rpc.ImportRow(row_number=n, values=_values(run, "imp", n))
                        for n in range(start, min(start + ROWS_PER_MESSAGE, rows + 1))
                    ]
                )
            )

    stub = rpc_grpc.CustomerDataServiceStub(channel)
    started = time.perf_counter()
    job = None
    async for response in stub.ImportCustomers(requests(), metadata=metadata):
        job = response.job
    elapsed = time.perf_counter() - started
    return elapsed, job.created_rows if job else 0


def _customer(values: dict[str, str]):
    from crm.customer.v1 import customer_pb2 as pb

    return pb.Customer(
        display_name=values["display_name"],
        industry=values["industry"],
        tags=values["tags"].split(";"),
        email_addresses=[pb.EmailAddress(address=values["email_addresses"])],
        phone_numbers=[pb.PhoneNumber(number=values["phone_numbers"])],
    )


async def _create(channel, metadata, run: str, label: str, rows: int, in_flight: int) -> tuple[float, int]:
    from crm.customer.v1 import customer_service_pb2 as rpc
    from crm.customer.v1 import customer_service_pb2_grpc as rpc_grpc

    stub = rpc_grpc.CustomerServiceStub(channel)
    numbers = iter(range(1, rows + 1))
    created = 0

    async def worker() -> None:
        nonlocal created
        for n in numbers:
            await stub.CreateCustomer(
                rpc.CreateCustomerRequest(customer=_customer(_values(run, label, n))), metadata=metadata
            )
            created += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return time.perf_counter() - started, created


async def measure(env: BenchEnv) -> str:
    rows = int(os.environ.get("BENCH_IMPORT_ROWS", "5000"))
    run = uuid.uuid4().hex[:6]
    figures: list[tuple[str, float, int]] = []
    async with grpc.aio.insecure_channel(env.direct["customer"]) as channel:
        # Warm-up (connections, caches, first-statement compilation): not measured.
        await _import(channel, env.metadata, run + "w", 200)
        await _create(channel, env.metadata, run, "warm", 50, 1)
        scenarios = [
            ("ImportCustomers (batches of 500)", lambda: _import(channel, env.metadata, run, rows)),
            ("CreateCustomer, one at a time", lambda: _create(channel, env.metadata, run, "seq", rows, 1)),
            ("CreateCustomer, 16 in flight", lambda: _create(channel, env.metadata, run, "c16", rows, 16)),
        ]
        for label, scenario in scenarios:
            elapsed, created = await scenario()
            figures.append((label, elapsed, created))
            print(
                f"  {label:36s} {created:6d} rows in {elapsed:6.1f} s = {created / elapsed:8.0f} rows/s",
                flush=True,
            )
    return render(figures, rows)


def render(figures: list[tuple[str, float, int]], rows: int) -> str:
    rate = {label: created / elapsed for label, elapsed, created in figures}
    imported = rate["ImportCustomers (batches of 500)"]
    sequential = imported / rate["CreateCustomer, one at a time"]
    concurrent = imported / rate["CreateCustomer, 16 in flight"]
    lines = [
        machine_line(
            f"{rows} rows per scenario (name, email, phone, industry, two tags), straight to the customer "
            "service (no Envoy) on SQLite with one writer; every created customer writes its outbox event "
            "and audit record either way."
        ),
        "",
        "| scenario | rows | seconds | rows/s |",
        "|---|---:|---:|---:|",
        *(
            f"| {label} | {created} | {elapsed:.1f} | {created / elapsed:.0f} |"
            for label, elapsed, created in figures
        ),
        "",
        "| ratio (rows/s) | value |",
        "|---|---:|",
        f"| ImportCustomers : CreateCustomer one at a time | {sequential:.1f}x |",
        f"| ImportCustomers : CreateCustomer 16 in flight | {concurrent:.1f}x |",
    ]
    return "\n".join(lines)
