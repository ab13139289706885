"""Projections end to end on both databases: the live consumers project a history from every
stream, ListProjections shows them, `python -m crm_reporting rebuild` replays the streams into a
second database with identical read-model tables, refuses a non-empty database without --force,
and re-publishing every event (same event ids, new Nats-Msg-Id) changes nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from contract_history import Deal, at
from contract_history import publish as publish_contract
from nats.js.errors import NotFoundError
from reporting_testkit import reporting_settings
from test_customer_projection import T0, create_customer, customer_name, publish, ts

from crm.common.v1 import money_pb2
from crm.customer.v1 import behavior_events_pb2, data_events_pb2, follow_up_service_pb2, pool_events_pb2
from crm.reporting.v1 import projection_service_pb2 as pb
from crm.reporting.v1 import projection_service_pb2_grpc as pb_grpc
from crm_reporting.bootstrap import build
from crm_reporting.consumers import ProjectionConsumer, consumer_name
from crm_reporting.projection_registry import SOURCES
from crm_reporting.service.analytics import final_rerank
from crm_reporting.service.rebuild import read_model_tables
from crm_shared.db.engine import Database
from crm_shared.events.streams import ensure_stream, stream_for_service
from crm_shared.runtime import start_service
from crm_shared.testing.fixtures_db import temporary_database_url
from crm_shared.testing.fixtures_nats import NatsServer, connect_nats

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_SECONDS = 60.0


async def caught_up(js) -> bool:
    for source in SOURCES:
        stream = stream_for_service(source).name
        info = await js.consumer_info(stream, consumer_name(source))
        last = (await js.stream_info(stream)).state.last_seq
        if info.num_pending or info.num_ack_pending or (info.ack_floor.stream_seq or 0) < last:
            return False
    return True


async def wait_caught_up(js) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while not await caught_up(js):
        assert asyncio.get_running_loop().time() < deadline, "the consumers did not catch up"
        await asyncio.sleep(0.1)


async def snapshot_tables(url: str) -> dict[str, list[tuple]]:
    """Every read-model table's rows, sorted (the comparison key of the rebuild)."""
    db = await Database.connect(url)
    try:
        out = {}
        async with db.engine.connect() as conn:
            for name in await read_model_tables(db):
                rows = (await conn.execute(sa.text(f'SELECT * FROM "{name}"'))).all()
                out[name] = sorted((tuple(r) for r in rows), key=repr)
        return out
    finally:
        await db.dispose()


async def unsent_outbox(url: str) -> int:
    db = await Database.connect(url)
    try:
        async with db.engine.connect() as conn:
            return (
                await conn.execute(sa.text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
            ).scalar_one()
    finally:
        await db.dispose()


def differences(left: list[tuple], right: list[tuple]) -> list:
    """The differing cells of rows paired by position (a readable assertion message)."""
    if len(left) != len(right):
        return [f"{len(left)} rows != {len(right)} rows"]
    return [
        (i, c, a, b)
        for i, (l_row, r_row) in enumerate(zip(left, right, strict=True))
        for c, (a, b) in enumerate(zip(l_row, r_row, strict=True))
        if a != b
    ][:10]


async def history(js) -> None:
    """Published in event-time order, each phase applied before the next (as time passes)."""
    acme, other = customer_name(), customer_name()
    for customer, owner in ((acme, "rita"), (other, "rob")):
        await create_customer(js, customer, owner=owner)
    await wait_caught_up(js)
    today = datetime.now(UTC).date()
    deal = (
        Deal(acme, "rita", "east", 200_000)
        .signed(at(today - timedelta(days=40)))
        .set_plan(at(today - timedelta(days=39)), [(today - timedelta(days=30), 100_000), (today, 100_000)])
    )
    deal.pay(at(today - timedelta(days=20)), today - timedelta(days=20), [(1, 100_000)])
    deal.pay(
        at(today - timedelta(days=2)),
        today - timedelta(days=2),
        [(2, 10_000)],
        voided_at=at(today - timedelta(days=1)),
    )
    await publish_contract(js, deal.events)
    await wait_caught_up(js)
    for day in (1, 2):
        await publish(
            js,
            "customer",
            "crm.customer.follow_up.logged",
            pool_events_pb2.FollowUpLogged(
                follow_up=f"{acme}/followUps/{day}",
                customer=acme,
                type=follow_up_service_pb2.FOLLOW_UP_TYPE_CALL,
                author="rita",
                follow_up_time=ts(T0 + timedelta(days=day)),
            ),
            acme,
        )
    await publish(
        js,
        "customer",
        "crm.customer.behavior.purchase",
        behavior_events_pb2.PurchaseMade(
            customer=other,
            value=money_pb2.Money(currency_code="EUR", amount_minor=5_000),
            occur_time=ts(T0 + timedelta(days=3)),
        ),
        other,
    )
    await publish(
        js,
        "customer",
        "crm.customer.customer.merged",
        data_events_pb2.CustomerMerged(survivor=acme, losers=[other]),
        acme,
    )


async def republish_everything(js) -> int:
    """Every message of every source stream again: same envelope (event id), new Nats-Msg-Id."""
    count = 0
    for source in SOURCES:
        stream = stream_for_service(source).name
        info = await js.stream_info(stream)
        for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except NotFoundError:
                continue
            await js.publish(
                msg.subject, msg.data, headers={"Nats-Msg-Id": f"again-{stream}-{seq}-{os.getpid()}"}
            )
            count += 1
    return count


def run_rebuild(url: str, nats_url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "crm_reporting",
            "rebuild",
            "--database-url",
            url,
            "--nats-url",
            nats_url,
            *extra,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def own_nats(tmp_path):
    """A JetStream server of this test alone: its streams hold exactly the test's history."""
    server = NatsServer(tmp_path / "nats")
    server.start_sync()
    try:
        yield server
    finally:
        server.stop_sync()


async def test_rebuild_reproduces_the_live_tables_and_replays_change_nothing(
    database_url, own_nats, jwt_keys, tmp_path, token_factory
):
    nats_server = own_nats
    import grpc

    running = await start_service(reporting_settings(database_url, nats_server.url, jwt_keys), build)
    js = running.infrastructure.js
    try:
        await history(js)
        await wait_caught_up(js)
        # The live service re-ranks ABC/RFM on a debounced timer after payments; the rebuild runs
        # that pass once at its end: compare with a live database whose pending pass has run.
        app = next(w for w in running.parts.workers if isinstance(w, ProjectionConsumer)).app
        await final_rerank(app)
        live = await snapshot_tables(database_url)
        assert live["report_customers"] and live["timeline"], "the history was projected"

        token = token_factory(subject="root", roles=("admin",), team="hq")
        async with grpc.aio.insecure_channel(running.address) as channel:
            status = await pb_grpc.ProjectionServiceStub(channel).ListProjections(
                pb.ListProjectionsRequest(), metadata=(("authorization", f"Bearer {token}"),)
            )
        by_name = {p.name: p for p in status.projections}
        assert set(by_name) == {f"reporting-{s}" for s in SOURCES}
        customer = by_name["reporting-customer"]
        assert customer.stream == "CRM_CUSTOMER" and customer.applied_events >= 6
        assert customer.pending == 0 and customer.last_sequence >= 6
        assert customer.last_applied_time.ToDatetime() >= customer.last_event_time.ToDatetime()
        assert by_name["reporting-contract"].applied_events >= len(SOURCES)

        kind = "sqlite" if database_url.startswith("sqlite") else "postgres"
        async with temporary_database_url(kind, tmp_path) as rebuilt_url:
            done = run_rebuild(rebuilt_url, nats_server.url)
            assert done.returncode == 0, done.stderr[-3000:]
            assert "CRM_CUSTOMER: 100.0%" in done.stdout and "rebuild done" in done.stdout
            rebuilt = await snapshot_tables(rebuilt_url)
            assert set(rebuilt) == set(live)
            for table in live:
                assert rebuilt[table] == live[table], (
                    f"table {table} differs: {differences(live[table], rebuilt[table])}"
                )

            assert await unsent_outbox(rebuilt_url) == 0  # replayed scores are not published again
            refused = run_rebuild(rebuilt_url, nats_server.url)
            assert refused.returncode == 2 and "--force" in refused.stderr
            forced = run_rebuild(rebuilt_url, nats_server.url, "--force")
            assert forced.returncode == 0, forced.stderr[-3000:]
            assert await snapshot_tables(rebuilt_url) == live

        # Every event a second time: nothing changes.
        assert await republish_everything(js) > 0
        await wait_caught_up(js)
        assert await snapshot_tables(database_url) == live
        workers = [w for w in running.parts.workers if isinstance(w, ProjectionConsumer)]
        assert len(workers) == len(SOURCES)
    finally:
        await running.stop(1)


async def test_rebuild_reports_a_poison_event_and_applies_the_rest(own_nats, tmp_path, monkeypatch):
    """A handler failing for one event: that event is reported (like a dead letter), its batch
    neighbours are applied one by one, the rebuild finishes."""
    from crm.customer.v1 import events_pb2
    from crm_reporting.service import areas
    from crm_reporting.service.rebuild import rebuild

    poison = customer_name()

    async def explode(uow, envelope, payload):
        if payload.customer.name == poison:
            raise RuntimeError("cannot apply this one")

    def register_poison(registry, app):
        registry.on("customer", events_pb2.CustomerCreated, explode)

    monkeypatch.setattr(areas, "REGISTRARS", [*areas.REGISTRARS, register_poison])
    nc = await connect_nats(own_nats.url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, stream_for_service("customer"))
        good = [customer_name() for _ in range(4)]
        for customer in [good[0], good[1], poison, good[2], good[3]]:
            await create_customer(js, customer)
        url = f"sqlite+aiosqlite:///{tmp_path / 'poison.db'}"
        lines: list[str] = []
        result = await rebuild(url, js, progress=lines.append)
        assert result.failed == 1 and result.streams[0].failed[0][0] == 3
        assert result.streams[0].applied == 4
        rows = await snapshot_tables(url)
        assert sorted(r[0] for r in rows["report_customers"]) == sorted(good)
        assert any("1 failed" in line for line in lines)
    finally:
        await nc.close()
