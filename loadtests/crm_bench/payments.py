"""Payments suite: RecordPayment throughput against the real contract service (SQLite).

Setup (not measured): many ACTIVE contracts made through the API (Create, Submit with no
workflow = approved, Sign), each with a 12-installment plan. Each RecordPayment locks its
contract row, allocates oldest-due first, writes installments, the payment, its allocations,
the contract's balance and two outbox events in one transaction.

RecordPayment, many contracts     spread over the contracts, N in flight
RecordPayment, one contract       every call on the same contract (serialized by its row lock)
RecordPayment, 1 in flight        the latency of one payment transaction alone
GetContract                       a plain read of the same contracts, for scale
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc

from crm_bench.load import LoadResult, run_load
from crm_bench.suite import BenchEnv, machine_line

KEY = "payments"
TITLE = "Contract: payment recording throughput (RecordPayment vs GetContract, SQLite)"

MAX_CONCURRENCY = 16
CONTRACTS = 200
INSTALLMENTS = 12
CONTRACT_AMOUNT = 12_000_000_00  # large, so the measured payments never exhaust a contract
PAYMENT = 1_00


def _date(value):
    from google.type import date_pb2

    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


async def _active_contracts(channel, metadata, run: str) -> list[str]:
    from crm.common.v1.money_pb2 import Money
    from crm.contract.v1 import contract_service_pb2 as cpb
    from crm.contract.v1 import contract_service_pb2_grpc as cgrpc
    from crm.contract.v1 import payment_service_pb2 as ppb
    from crm.contract.v1 import payment_service_pb2_grpc as pgrpc

    contracts, payments = cgrpc.ContractServiceStub(channel), pgrpc.PaymentServiceStub(channel)
    today = datetime.now(UTC).date()
    names: list[str] = [""] * CONTRACTS
    queue = iter(range(CONTRACTS))
    share = CONTRACT_AMOUNT // INSTALLMENTS

    async def worker() -> None:
        for i in queue:
            created = await contracts.CreateContract(
                cpb.CreateContractRequest(
                    contract=cpb.Contract(
                        customer=f"customers/{uuid.uuid4()}",
                        title=f"Bench {run} {i}",
                        amount=Money(currency_code="EUR", amount_minor=CONTRACT_AMOUNT),
                        start_date=_date(today),
                        end_date=_date(today + timedelta(days=365)),
                    )
                ),
                metadata=metadata,
            )
            await contracts.SubmitContract(cpb.SubmitContractRequest(name=created.name), metadata=metadata)
            await contracts.SignContract(cpb.SignContractRequest(name=created.name), metadata=metadata)
            await payments.SetPaymentPlan(
                ppb.SetPaymentPlanRequest(
                    name=f"{created.name}/paymentPlan",
                    installments=[
                        ppb.Installment(
                            due_date=_date(today + timedelta(days=30 * (n + 1))),
                            amount=Money(currency_code="EUR", amount_minor=share),
                        )
                        for n in range(INSTALLMENTS)
                    ],
                ),
                metadata=metadata,
            )
            names[i] = created.name

    await asyncio.gather(*(worker() for _ in range(8)))
    return names


async def measure(env: BenchEnv) -> str:
    from crm.common.v1.money_pb2 import Money
    from crm.contract.v1 import contract_service_pb2 as cpb
    from crm.contract.v1 import contract_service_pb2_grpc as cgrpc
    from crm.contract.v1 import payment_service_pb2 as ppb
    from crm.contract.v1 import payment_service_pb2_grpc as pgrpc

    metadata = env.metadata
    concurrency = min(env.concurrency, MAX_CONCURRENCY)
    run = uuid.uuid4().hex[:8]
    today = _date(datetime.now(UTC).date())
    results: list[LoadResult] = []
    async with grpc.aio.insecure_channel(env.direct["contract"]) as channel:
        contracts_stub, payments = cgrpc.ContractServiceStub(channel), pgrpc.PaymentServiceStub(channel)
        names = await _active_contracts(channel, metadata, run)

        succeeded = 0

        async def pay(name: str) -> None:
            nonlocal succeeded
            await payments.RecordPayment(
                ppb.RecordPaymentRequest(
                    payment=ppb.Payment(
                        contract=name,
                        amount=Money(currency_code="EUR", amount_minor=PAYMENT),
                        received_date=today,
                        method=1,
                        reference="bench",
                    )
                ),
                metadata=metadata,
            )
            succeeded += 1

        results.append(
            await run_load(
                "RecordPayment, 1 in flight",
                lambda i: pay(names[i % len(names)]),
                concurrency=1,
                seconds=env.seconds,
            )
        )
        results.append(
            await run_load(
                "RecordPayment, many contracts",
                lambda i: pay(names[i % len(names)]),
                concurrency=concurrency,
                seconds=env.seconds,
            )
        )
        results.append(
            await run_load(
                "RecordPayment, one contract",
                lambda i: pay(names[0]),
                concurrency=concurrency,
                seconds=env.seconds,
            )
        )
        results.append(
            await run_load(
                "GetContract",
                lambda i: contracts_stub.GetContract(
                    cpb.GetContractRequest(name=names[i % len(names)]), metadata=metadata
                ),
                concurrency=concurrency,
                seconds=env.seconds,
            )
        )
        # Every payment counted once: the balances add up to what was recorded.
        received = 0
        for name in names:
            got = await contracts_stub.GetContract(cpb.GetContractRequest(name=name), metadata=metadata)
            received += got.balance.received.amount_minor
    for result in results:
        print(
            f"  {result.scenario:32s} {result.rps:8.0f} req/s  p50 {result.p50:6.1f} ms"
            f"  p99 {result.p99:6.1f} ms  ({result.calls} calls, {result.errors} errors)",
            flush=True,
        )
    print(f"  balances count {received // PAYMENT} payments; {succeeded} succeeded", flush=True)
    return render(
        results,
        seconds=env.seconds,
        concurrency=concurrency,
        counted=received // PAYMENT,
        succeeded=succeeded,
    )


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def render(
    results: list[LoadResult], *, seconds: float, concurrency: int, counted: int, succeeded: int
) -> str:
    by = {r.scenario: r for r in results}
    many, one, read = (
        by["RecordPayment, many contracts"],
        by["RecordPayment, one contract"],
        by["GetContract"],
    )
    lines = [
        machine_line(
            f"{concurrency} calls in flight (1 for the first row), {seconds:.0f} s per scenario after 1 s "
            f"warm-up; the contract service on SQLite (one writer), {CONTRACTS} active contracts with "
            f"{INSTALLMENTS}-installment plans. Each payment locks its contract, allocates oldest-due "
            "first and commits installments, payment, allocations, balance and two outbox events together. "
            f"Afterwards the contracts' balances count {counted} payments for {succeeded} that succeeded "
            f"(warm-up included): {'each counted exactly once' if counted == succeeded else 'MISMATCH'}."
        ),
        "",
        "| scenario | req/s | p50 ms | p99 ms | calls | errors |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {r.scenario} | {r.rps:.0f} | {r.p50:.1f} | {r.p99:.1f} | {r.calls} | {r.errors} |"
            for r in results
        ),
        "",
        "| ratio | throughput | p50 latency | p99 latency |",
        "|---|---:|---:|---:|",
        f"| RecordPayment (many contracts) / GetContract | {_ratio(many.rps, read.rps)} "
        f"| {_ratio(many.p50, read.p50)} | {_ratio(many.p99, read.p99)} |",
        f"| RecordPayment: one contract / many contracts | {_ratio(one.rps, many.rps)} "
        f"| {_ratio(one.p50, many.p50)} | {_ratio(one.p99, many.p99)} |",
    ]
    return "\n".join(lines)
