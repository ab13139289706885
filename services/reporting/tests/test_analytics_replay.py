"""Customer analytics as a function of the events (no NATS: the registry's handlers applied directly,
like the live consumers and the rebuild do, one unit of work per event):

* the same events in different cross-stream interleavings, under different wall clocks, give
  identical customer_scores rows once the (debounced) population pass has run;
* a payment costs O(1) score writes: N payments write O(N) score rows (plus one pass), not
  O(N x customers), and CustomerScored is emitted only for real changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from contract_history import Deal, at, envelope_of
from test_customer_projection import customer_name, snapshot, ts

from crm.customer.v1 import events_pb2 as customer_events
from crm.customer.v1 import follow_up_service_pb2, pool_events_pb2
from crm_reporting.adapters.analytics_tables import customer_scores
from crm_reporting.config import ReportingSettings
from crm_reporting.consumers import source_handlers
from crm_reporting.projection_registry import build_registry
from crm_reporting.service import analytics
from crm_reporting.service.rebuild import MIGRATIONS, rebuild_app
from crm_shared import timers
from crm_shared.clock import ManualClock
from crm_shared.db.engine import Database
from crm_shared.db.migrations import apply_migrations
from crm_shared.events.envelope import build_envelope, occurred_at, unpack_payload
from crm_shared.ids import new_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
D0 = T0.date()


def customer_envelope(payload, resource: str, when: datetime):
    return build_envelope(
        event_id=new_id(),
        payload=payload,
        source="customer",
        subject=resource,
        occurred_at=when,
        actor_subject="alice",
    )


def created(name: str, *, create_time: datetime, when: datetime):
    snap = snapshot(name, updated=create_time)
    snap.create_time.CopyFrom(ts(create_time))
    return customer_envelope(customer_events.CustomerCreated(customer=snap), name, when)


def follow_up(name: str, n: int, when: datetime):
    payload = pool_events_pb2.FollowUpLogged(
        follow_up=f"{name}/followUps/{n}",
        customer=name,
        type=follow_up_service_pb2.FOLLOW_UP_TYPE_CALL,
        author="rita",
        follow_up_time=ts(when),
    )
    return customer_envelope(payload, name, when)


class Replica:
    """A fresh SQLite reporting database fed through the registry like a consumer would."""

    def __init__(self, app, db: Database) -> None:
        self.app, self.db = app, db
        registry = build_registry(app)
        self.handlers = {source: source_handlers(registry, source) for source in ("customer", "contract")}

    @classmethod
    async def open(cls, path, clock) -> Replica:
        url = f"sqlite+aiosqlite:///{path}"
        await apply_migrations(url, MIGRATIONS)
        db = await Database.connect(url)
        return cls(rebuild_app(ReportingSettings(database_url=url), db, None, clock), db)

    async def apply(self, source: str, envelope) -> None:
        payload_type, handler = self.handlers[source][envelope.type]
        async with self.app.uow_factory() as uow:
            await handler(uow, envelope, unpack_payload(envelope, payload_type))
            await uow.commit()

    async def scores(self) -> list[tuple]:
        async with self.db.read_session() as session:
            rows = (await session.execute(sa.select(customer_scores).order_by("customer"))).all()
        return [tuple(r) for r in rows]

    async def outbox_scored(self) -> int:
        outbox = self.app.uow_factory.tables.outbox
        async with self.db.read_session() as session:
            return (
                await session.execute(
                    sa.select(sa.func.count()).where(outbox.c.subject == analytics.SUBJECT_SCORED)
                )
            ).scalar_one()


def history() -> tuple[list, list, dict[str, datetime]]:
    """(customer stream, contract stream, customer -> newest event time touching it).

    old: created 200 days before T0, pays twice (one voided) -> "hibernating" only if scored
    against the wrong moment; fresh: created at T0, pays once; quiet: never pays ("new" when scored
    as of its own events); late: its payment comes before its CustomerCreated in event time.
    """
    old, fresh, quiet, late = (customer_name() for _ in range(4))
    customer = [
        created(old, create_time=T0 - timedelta(days=200), when=T0 - timedelta(days=200)),
        created(quiet, create_time=T0 - timedelta(days=10), when=T0 - timedelta(days=10)),
        created(fresh, create_time=T0, when=T0),
        follow_up(old, 1, T0 + timedelta(days=4)),
        created(late, create_time=T0 + timedelta(days=6), when=T0 + timedelta(days=6)),
        follow_up(quiet, 1, T0 + timedelta(days=8)),
    ]
    deals = [
        Deal(old, "rita", "east", 9_000)
        .signed(at(D0 - timedelta(days=30)))
        .set_plan(
            at(D0 - timedelta(days=29)), [(D0 - timedelta(days=5), 4_000), (D0 + timedelta(days=20), 5_000)]
        ),
        Deal(fresh, "rita", "east", 3_000).signed(at(D0)),
        Deal(late, "rob", "west", 500).signed(at(D0 + timedelta(days=1))),
    ]
    deals[0].pay(at(D0 + timedelta(days=1)), D0 + timedelta(days=1), [(1, 4_000)])
    deals[0].pay(
        at(D0 + timedelta(days=2)), D0 + timedelta(days=2), [(2, 1_000)], voided_at=at(D0 + timedelta(days=7))
    )
    deals[1].pay(at(D0 + timedelta(days=3)), D0 + timedelta(days=3), [(None, 3_000)])
    deals[2].pay(at(D0 + timedelta(days=2)), D0 + timedelta(days=2), [(None, 500)])
    contract = sorted((envelope_of(e) for d in deals for e in d.events), key=occurred_at)
    newest: dict[str, datetime] = {}
    for envelope in customer:
        newest[envelope.subject] = max(
            newest.get(envelope.subject, T0 - timedelta(days=999)), occurred_at(envelope)
        )
    for deal in deals:
        for event in deal.events:
            if "payments/" in event.resource:
                newest[deal.customer] = max(newest[deal.customer], event.when)
    return customer, contract, newest


def by_time(customer: list, contract: list) -> list[tuple[str, object]]:
    merged = [("customer", e) for e in customer] + [("contract", e) for e in contract]
    return sorted(merged, key=lambda item: occurred_at(item[1]))


def streams_apart(first: list, first_source: str, second: list, second_source: str) -> list:
    return [(first_source, e) for e in first] + [(second_source, e) for e in second]


def zipped(customer: list, contract: list) -> list:
    """Alternate the streams regardless of event time (each stream in its own order)."""
    out, a, b = [], list(customer), list(contract)
    while a or b:
        if b:
            out.append(("contract", b.pop(0)))
        if a:
            out.append(("customer", a.pop(0)))
    return out


async def test_interleavings_of_the_streams_give_identical_scores(tmp_path):
    customer, contract, newest = history()
    orders = {
        "by event time (rebuild)": by_time(customer, contract),
        "customer stream first": streams_apart(customer, "customer", contract, "contract"),
        "contract stream first": streams_apart(contract, "contract", customer, "customer"),
        "alternating": zipped(customer, contract),
    }
    results = {}
    for i, (label, order) in enumerate(orders.items()):
        # A different wall clock for every replica: the scores must not depend on it.
        replica = await Replica.open(tmp_path / f"r{i}.db", ManualClock(T0 + timedelta(days=40 * i)))
        try:
            for source, envelope in order:
                await replica.apply(source, envelope)
            async with replica.app.uow_factory() as uow:  # the debounced pass is pending
                assert await timers.pending(uow, analytics.RERANK_TIMER, analytics.RERANK_KEY) is not None
            await analytics.final_rerank(replica.app)
            results[label] = await replica.scores()
            assert await analytics.final_rerank(replica.app) == 0  # idempotent
        finally:
            await replica.db.dispose()
    reference = results["by event time (rebuild)"]
    assert len(reference) == 4
    for label, rows in results.items():
        assert rows == reference, label
    by_customer = {row[0]: row for row in reference}
    columns = [c.name for c in customer_scores.columns]
    for name, row in by_customer.items():
        values = dict(zip(columns, row, strict=True))
        compute_time = values["compute_time"].replace(tzinfo=values["compute_time"].tzinfo or UTC)
        assert compute_time == newest[name], "compute_time = the customer's newest event time"
    segments = sorted(dict(zip(columns, row, strict=True))["rfm_segment"] for row in reference)
    assert "new" in segments  # quiet: no purchases, created 18 days before its last event


async def test_payments_cost_constant_score_writes(tmp_path):
    """N payments over M customers: O(N + M) customer_scores writes (old: one per customer per payment)."""
    replica = await Replica.open(tmp_path / "cost.db", ManualClock(T0))
    m, n = 30, 60
    names = [customer_name() for _ in range(m)]
    writes = 0

    def count(conn, cursor, statement, params, context, executemany):
        nonlocal writes
        text = statement.lstrip().upper()
        if "CUSTOMER_SCORES" in text.split("(")[0] and text.startswith(("INSERT", "UPDATE")):
            writes += 1

    sa.event.listen(replica.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        for name in names:
            await replica.apply("customer", created(name, create_time=T0, when=T0))
        writes_after_customers = writes
        deals = [Deal(name, "rita", "east", 10**6) for name in names]
        events = []
        for k in range(n):
            deal = deals[k % m]
            day = D0 + timedelta(days=1 + k)
            deal.pay(at(day), day, [(None, 1_000 * (k + 1))])
        for deal in deals:
            events.extend(e for e in deal.events if "payments/" in e.resource)
        for envelope in sorted((envelope_of(e) for e in events), key=occurred_at):
            await replica.apply("contract", envelope)
        payment_writes = writes - writes_after_customers
        # One score upsert per PaymentConfirmed (PaymentRecorded does not score): N, never N x M.
        assert payment_writes <= n, payment_writes
        before_pass = writes
        changed = await analytics.final_rerank(replica.app)
        assert writes - before_pass == changed <= m
        assert await analytics.final_rerank(replica.app) == 0
        # CustomerScored: at most one per score write (only changes are published).
        assert await replica.outbox_scored() <= m + n + changed
        classes = {row[0]: row[3] for row in await replica.scores()}
        assert set(classes.values()) == {1, 2, 3}  # the pass ranked the buyers
    finally:
        await replica.db.dispose()


async def test_population_ranks_are_time_free():
    from crm_reporting.domain import analytics as rules

    t = datetime(2026, 1, 1, tzinfo=UTC)
    facts = {
        f"c{i}": rules.PurchaseFacts(i + 1, t + timedelta(days=i), {"EUR": 100 * (i + 1)}) for i in range(7)
    }
    facts["none"] = rules.PurchaseFacts(0, None, {})
    abc, rfm = rules.population_ranks(facts)
    assert "none" not in abc and "none" not in rfm
    assert rfm["c6"].recency == 5 and rfm["c0"].recency == 1
    assert rules.non_buyer_rfm(t, t + timedelta(days=90), 90).segment == "new"
    assert rules.non_buyer_rfm(t, t + timedelta(days=91), 90).segment == "hibernating"
    assert rules.non_buyer_rfm(None, t, 90).segment == "hibernating"
