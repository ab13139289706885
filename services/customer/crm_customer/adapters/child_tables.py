"""Re-pointing every child row of a merged customer, in tables this module has never heard of.

Any table in the service's `metadata` with a `customer_id` column is a child
(follow-ups, behaviour events, ownership history, ... added by other modules);
all adapter modules are imported first so their tables are registered. Rows
move with one UPDATE per table; where a unique key includes customer_id (e.g.
tags: (customer_id, tag)) the loser's rows that would collide with the
survivor's are dropped first. A table whose rows must be combined rather than dropped
(per-customer totals, summaries) registers its own handler with `register_merge_handler`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

import crm_customer.adapters as adapters_package
from crm_customer.adapters.tables import metadata

# Tables the merge use case handles itself (encryption, identifiers, mirrors of the survivor's
# columns) and history that must keep pointing at the customer it was about.
HANDLED_ELSEWHERE = frozenset(
    {
        "customers",
        "customer_keys",
        "customer_identifiers",
        "customer_tags",
        "customer_collaborators",
        "contacts",
        "import_job_rows",
        # Behaviour: events move and both customers' summaries/totals are rebuilt from them
        # (BehaviorRepository.move_events), instead of dropping the loser's summary row.
        "behavior_events",
        "behavior_summaries",
        "behavior_purchase_totals",
    }
)


# (session, loser id, survivor id) -> (rows moved, rows dropped); runs in the merge's transaction.
MergeHandler = Callable[[AsyncSession, str, str], Awaitable[tuple[int, int]]]
_handlers: dict[str, MergeHandler] = {}


def register_merge_handler(table_name: str, handler: MergeHandler) -> None:
    """Replace the generic re-pointing for one table (e.g. add the loser's totals to the survivor's)."""
    _handlers[table_name] = handler


def unregister_merge_handler(table_name: str) -> None:
    _handlers.pop(table_name, None)


@dataclass
class ChildMoves:
    moved: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)


def _load_all_adapters() -> None:
    for module in pkgutil.iter_modules(adapters_package.__path__):
        importlib.import_module(f"{adapters_package.__name__}.{module.name}")


def child_tables() -> list[sa.Table]:
    _load_all_adapters()
    return [
        table
        for table in metadata.sorted_tables
        if "customer_id" in table.c and table.name not in HANDLED_ELSEWHERE
    ]


def unique_keys(table: sa.Table) -> list[list[str]]:
    """Column sets that are unique and include customer_id (primary key, constraints, unique indexes)."""
    keys: list[list[str]] = []
    candidates = [list(table.primary_key.columns)]
    candidates += [list(c.columns) for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
    candidates += [list(i.columns) for i in table.indexes if i.unique]
    for columns in candidates:
        names = [c.name for c in columns]
        if "customer_id" in names and names not in keys:
            keys.append(names)
    return keys


async def move_children(session: AsyncSession, loser_id: str, survivor_id: str, into: ChildMoves) -> None:
    for table in child_tables():
        handler = _handlers.get(table.name)
        if handler is not None:
            moved, dropped = await handler(session, loser_id, survivor_id)
            _count(into, table.name, moved, dropped)
            continue
        dropped = 0
        for key in unique_keys(table):
            other = [name for name in key if name != "customer_id"]
            twin = table.alias("survivor_row")
            collides = sa.exists().where(
                twin.c.customer_id == survivor_id, *(twin.c[name] == table.c[name] for name in other)
            )
            result = await session.execute(sa.delete(table).where(table.c.customer_id == loser_id, collides))
            dropped += result.rowcount or 0
        result = await session.execute(
            sa.update(table).where(table.c.customer_id == loser_id).values(customer_id=survivor_id)
        )
        _count(into, table.name, result.rowcount or 0, dropped)


def _count(into: ChildMoves, table_name: str, moved: int, dropped: int) -> None:
    if moved:
        into.moved[table_name] = into.moved.get(table_name, 0) + moved
    if dropped:
        into.dropped[table_name] = into.dropped.get(table_name, 0) + dropped
