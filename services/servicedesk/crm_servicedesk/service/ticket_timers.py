"""Customer snapshot retries and auto-close of resolved tickets (durable timers)."""

from __future__ import annotations

from crm_servicedesk.service import tickets
from crm_servicedesk.service.customer_snapshots import SNAPSHOT_RETRY_TIMER, retry_snapshot


def timer_handlers(app) -> dict:
    """kind -> async handler(uow, timer); one customer-service channel for every retry."""
    snapshots = app.snapshots

    async def snapshot_retry(uow, timer) -> None:
        await retry_snapshot(uow, snapshots, timer.key, int(timer.payload.get("attempt", 0)))

    async def auto_close(uow, timer) -> None:
        await tickets.auto_close(uow, timer.key)

    return {SNAPSHOT_RETRY_TIMER: snapshot_retry, tickets.AUTO_CLOSE_TIMER: auto_close}
