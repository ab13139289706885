"""Database, migrations, unit of work and request_id idempotency on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa
from events_support import Payload, add_note, count, create_schema, notes, tables

from crm.customer.v1 import customer_pb2, customer_service_pb2
from crm_shared.clock import ManualClock
from crm_shared.db.engine import Database
from crm_shared.db.idempotency import idempotent
from crm_shared.db.migrations import apply_migrations, current_revision
from crm_shared.db.uow import UnitOfWork, UnitOfWorkClosed, UnitOfWorkFactory
from crm_shared.errors import InvalidArgument
from crm_shared.events.envelope import parse_envelope, unpack_payload
from crm_shared.ids import new_id
from crm_shared.principal import Principal, reset_principal, reset_request_id, set_principal, set_request_id

MIGRATIONS = Path(__file__).parent / "migrations_sample"
SUBJECT = "crm.tdb.customer.deleted"


@pytest_asyncio.fixture(loop_scope="session")
async def db(database_url: str):
    database = await Database.connect(database_url)
    await create_schema(database)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def uow_factory(db: Database, clock: ManualClock) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(db, tables, service="tdb", clock=clock)


@pytest.fixture
def alice():
    token = set_principal(Principal("alice", frozenset({"sales"}), team="east"))
    rid = set_request_id("req-1")
    yield
    reset_request_id(rid)
    reset_principal(token)


async def test_sqlite_connections_get_wal_and_foreign_keys(tmp_path: Path) -> None:
    db = await Database.connect(f"sqlite+aiosqlite:///{tmp_path}/nested/dir/x.db", pool_size=2)
    try:
        async with db.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 1  # NORMAL
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() >= 5000
        assert db.dialect == "sqlite"
        assert isinstance(db.write_lock, asyncio.Lock)
    finally:
        await db.dispose()


async def test_migrations_apply_once_even_when_run_concurrently(database_url: str) -> None:
    await asyncio.gather(*(apply_migrations(database_url, MIGRATIONS) for _ in range(3)))
    await apply_migrations(database_url, MIGRATIONS)  # at head: nothing to do
    assert await current_revision(database_url) == "0001"
    db = await Database.connect(database_url)
    try:
        async with db.engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert {"outbox", "inbox", "dead_letters", "idempotency_keys", "audit_log", "widgets"} <= names
    finally:
        await db.dispose()


async def test_commit_writes_rows_events_and_audit_together(
    db: Database, uow_factory: UnitOfWorkFactory, clock: ManualClock, alice: None
) -> None:
    woken: list[int] = []
    uow_factory.on_commit = lambda: woken.append(1)
    async with uow_factory() as uow:
        event_id = await add_note(uow, "n1", SUBJECT)
        uow.audit("created", "notes/n1", ["text", "id", "text"])
        await uow.commit()
    assert woken == [1]
    async with db.read_session() as s:
        outbox = (await s.execute(sa.select(tables.outbox))).mappings().one()
        audit = (await s.execute(sa.select(tables.audit_log))).mappings().one()
    assert await count(db, notes) == 1
    assert outbox["event_id"] == event_id and outbox["sent_at"] is None
    assert outbox["created_at"] == clock.now()
    envelope = parse_envelope(outbox["envelope"])
    assert envelope.id == event_id
    assert envelope.type == "crm.customer.v1.CustomerDeleted"
    assert envelope.source == "tdb" and envelope.subject == "notes/n1"
    assert envelope.actor.subject == "alice" and envelope.actor.team == "east"
    assert envelope.request_id == "req-1"
    assert envelope.occurred_at.ToDatetime().replace(tzinfo=clock.now().tzinfo) == clock.now()
    assert unpack_payload(envelope, Payload).customer == "customers/n1"
    assert audit["actor"] == "alice" and audit["fields"] == ["id", "text"] and audit["request_id"] == "req-1"


async def test_exception_or_no_commit_rolls_everything_back(
    db: Database, uow_factory: UnitOfWorkFactory
) -> None:
    woken: list[int] = []
    uow_factory.on_commit = lambda: woken.append(1)
    with pytest.raises(RuntimeError):
        async with uow_factory() as uow:
            await add_note(uow, "n1", SUBJECT)
            uow.audit("created", "notes/n1", ["text"])
            await uow.flush()  # even rows already sent to the database go
            raise RuntimeError("use case failed")
    async with uow_factory() as uow:
        await add_note(uow, "n2", SUBJECT)  # left without commit
    for table in (notes, tables.outbox, tables.audit_log):
        assert await count(db, table) == 0
    assert woken == []


async def test_background_work_is_attributed_to_the_service(
    db: Database, uow_factory: UnitOfWorkFactory
) -> None:
    async with uow_factory() as uow:
        await add_note(uow, "n1", SUBJECT)
        await uow.commit()
        with pytest.raises(UnitOfWorkClosed):
            uow.emit(SUBJECT, Payload(), resource="notes/n1")
    async with db.read_session() as s:
        data = (await s.execute(sa.select(tables.outbox.c.envelope))).scalar_one()
    assert parse_envelope(data).actor.subject == "service:tdb"


def _create_request(name: str, request_id: str) -> customer_service_pb2.CreateCustomerRequest:
    return customer_service_pb2.CreateCustomerRequest(
        customer=customer_pb2.Customer(display_name=name), request_id=request_id
    )


class CreateNote:
    """A use case that counts its runs, so 'ran once' is observable."""

    def __init__(self, delay: float = 0.0) -> None:
        self.runs = 0
        self.delay = delay

    def __call__(self, request: customer_service_pb2.CreateCustomerRequest):
        async def run(uow: UnitOfWork) -> customer_pb2.Customer:
            self.runs += 1
            note_id = new_id()
            await add_note(uow, note_id, SUBJECT)
            if self.delay:
                await asyncio.sleep(self.delay)  # hold the transaction open: duplicates must wait
            return customer_pb2.Customer(
                name=f"customers/{note_id}", display_name=request.customer.display_name
            )

        return run


async def _create(factory: UnitOfWorkFactory, use_case: CreateNote, request) -> customer_pb2.Customer:
    return await idempotent(
        factory,
        method="CreateCustomer",
        request_id=request.request_id,
        request=request,
        response_type=customer_pb2.Customer,
        run=use_case(request),
    )


async def test_same_request_id_returns_first_response_without_running_again(
    db: Database, uow_factory: UnitOfWorkFactory, alice: None
) -> None:
    use_case = CreateNote()
    rid = new_id()
    first = await _create(uow_factory, use_case, _create_request("Acme", rid))
    again = await _create(uow_factory, use_case, _create_request("Acme", rid))
    assert again == first and use_case.runs == 1
    assert await count(db, notes) == 1 and await count(db, tables.outbox) == 1
    # Without a request_id every call runs.
    await _create(uow_factory, use_case, _create_request("Acme", ""))
    await _create(uow_factory, use_case, _create_request("Acme", ""))
    assert use_case.runs == 3


async def test_same_request_id_with_other_body_or_caller_is_invalid_argument(
    db: Database, uow_factory: UnitOfWorkFactory, alice: None
) -> None:
    use_case = CreateNote()
    rid = new_id()
    await _create(uow_factory, use_case, _create_request("Acme", rid))
    with pytest.raises(InvalidArgument) as caught:
        await _create(uow_factory, use_case, _create_request("Other Co", rid))
    assert caught.value.reason == "REQUEST_ID_REUSED"
    assert [v.field for v in caught.value.field_violations] == ["request_id"]
    bob = set_principal(Principal("bob", team="east"))
    try:
        with pytest.raises(InvalidArgument):
            await _create(uow_factory, use_case, _create_request("Acme", rid))
    finally:
        reset_principal(bob)
    assert use_case.runs == 1 and await count(db, notes) == 1


async def test_failed_run_stores_nothing_and_a_retry_runs(
    db: Database, uow_factory: UnitOfWorkFactory
) -> None:
    rid = new_id()
    request = _create_request("Acme", rid)

    async def failing(uow: UnitOfWork) -> customer_pb2.Customer:
        await add_note(uow, "n-fail", SUBJECT)
        raise InvalidArgument.for_field("customer.display_name", "bad")

    with pytest.raises(InvalidArgument):
        await idempotent(
            uow_factory,
            method="CreateCustomer",
            request_id=rid,
            request=request,
            response_type=customer_pb2.Customer,
            run=failing,
        )
    assert await count(db, tables.idempotency_keys) == 0
    use_case = CreateNote()
    await _create(uow_factory, use_case, request)
    assert use_case.runs == 1 and await count(db, notes) == 1


async def test_concurrent_duplicates_create_one_row(
    db: Database, uow_factory: UnitOfWorkFactory, alice: None
) -> None:
    use_case = CreateNote(delay=0.1)
    request = _create_request("Acme", new_id())
    responses = await asyncio.gather(*(_create(uow_factory, use_case, request) for _ in range(5)))
    assert all(r == responses[0] for r in responses)
    assert use_case.runs == 1
    assert await count(db, notes) == 1
    assert await count(db, tables.idempotency_keys) == 1
    assert await count(db, tables.outbox) == 1
