"""request_id idempotency for creates and non-idempotent custom methods (AIP-155).

The key (method, request_id) is claimed first, with INSERT .. ON CONFLICT DO
NOTHING, in the same transaction that runs the use case and stores its
response. A concurrent duplicate therefore waits on the winner's row lock
(PostgreSQL) or the write lock (SQLite), finds the committed key and returns
the winner's response without running the use case; if the winner rolled back,
the duplicate claims the key and runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from google.protobuf.message import Message
from sqlalchemy.dialects import postgresql, sqlite

from crm_shared.db.uow import UnitOfWork, UnitOfWorkFactory
from crm_shared.errors import FieldViolation, InvalidArgument

R = TypeVar("R", bound=Message)
T = TypeVar("T")

REQUEST_ID_REUSED = "REQUEST_ID_REUSED"


def request_fingerprint(request: Message) -> str:
    """sha256 of the deterministic serialization of the request without its request_id."""
    copy = type(request)()
    copy.CopyFrom(request)
    if "request_id" in copy.DESCRIPTOR.fields_by_name:
        copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def _reused(method: str) -> InvalidArgument:
    return InvalidArgument(
        f"request_id was already used for a different {method} request",
        reason=REQUEST_ID_REUSED,
        field_violations=[
            FieldViolation("request_id", "already used with a different request; use a new request_id")
        ],
    )


async def idempotent(
    uow_factory: UnitOfWorkFactory,
    *,
    method: str,
    request_id: str,
    request: Message,
    response_type: type[R],
    run: Callable[[UnitOfWork], Awaitable[R]],
) -> R:
    """Run `run` in a unit of work and commit, at most once per (method, request_id).

    A retry with the same request (and caller) gets the first response back;
    the same request_id with a different request or caller is INVALID_ARGUMENT.
    """
    if not request_id:
        async with uow_factory() as uow:
            response = await run(uow)
            await uow.commit()
            return response

    table = uow_factory.tables.idempotency_keys
    fingerprint = request_fingerprint(request)
    insert = postgresql.insert if uow_factory.db.dialect == "postgresql" else sqlite.insert
    async with uow_factory() as uow:
        claim = (
            insert(table)
            .values(
                method=method,
                request_id=request_id,
                principal=uow.actor_subject,
                fingerprint=fingerprint,
                response=b"",
                created_at=uow.now,
            )
            .on_conflict_do_nothing(index_elements=["method", "request_id"])
            .returning(table.c.method)
        )
        claimed = (await uow.session.execute(claim)).first() is not None
        if not claimed:
            stored = (
                await uow.session.execute(
                    sa.select(table.c.principal, table.c.fingerprint, table.c.response).where(
                        table.c.method == method, table.c.request_id == request_id
                    )
                )
            ).one()
            if stored.fingerprint != fingerprint or stored.principal != uow.actor_subject:
                raise _reused(method)
            return response_type.FromString(stored.response)

        response = await run(uow)
        await uow.session.execute(
            table.update()
            .where(table.c.method == method, table.c.request_id == request_id)
            .values(response=response.SerializeToString(deterministic=True))
        )
        await uow.commit()
        return response


async def in_unit_of_work(uow_factory: UnitOfWorkFactory, run: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """Run a write use case in its own unit of work and commit it (rows, outbox events, audit)."""
    async with uow_factory() as uow:
        result = await run(uow)
        await uow.commit()
    return result


async def create_once(
    uow_factory: UnitOfWorkFactory,
    *,
    method: str,
    request: Message,
    request_id: str,
    run: Callable[[UnitOfWork], Awaitable[Any]],
    response_type: type[Message],
    reread: Callable[[str], Awaitable[Any]],
) -> Any:
    """request_id idempotency for methods that return a resource holding personal data.

    The stored response is only `response_type(name=...)` of the resource `run` returned, so
    the idempotency table never holds personal data (ADR 0003). The first call returns the
    entity `run` produced; a replay returns `reread(name)` — the resource as it is now, in
    the caller's scope.
    """
    produced: dict[str, Any] = {}

    async def first_run(uow: UnitOfWork) -> Message:
        produced["entity"] = entity = await run(uow)
        return response_type(name=entity.name)

    stored = await idempotent(
        uow_factory,
        method=method,
        request_id=request_id,
        request=request,
        response_type=response_type,
        run=first_run,
    )
    return produced["entity"] if "entity" in produced else await reread(stored.name)
