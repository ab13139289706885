"""ExportCustomers: every customer in the caller's scope matching a ListCustomers filter.

Keyset-paged internally (one short read per page of 500, never one giant query
or a long transaction) with exactly ListCustomers' filter, order and scope;
audited ("exported", with the count and the filter, email/phone values
redacted) in its own transaction once the stream ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

from crm_customer.domain.model import Customer
from crm_customer.service import customers
from crm_customer.service.customers import CustomerDeps
from crm_shared.principal import Principal

RESOURCE = "customer_exports"
EXPORT_PAGE_SIZE = 500
_PERSONAL_VALUE = re.compile(r'\b(email|phone)(\s*!?=\s*)("[^"]*"|\S+)')


def redact_filter(filter_text: str) -> str:
    return _PERSONAL_VALUE.sub(r'\1\2"***"', filter_text.strip())


async def export_customers(
    db, uow_factory, deps: CustomerDeps, principal: Principal, *, filter_text: str, order_by: str
) -> AsyncIterator[Customer]:
    deps.policy.grant(principal, RESOURCE, "read")
    count = 0
    complete = False
    token = ""
    try:
        while True:
            async with db.read_session() as session:
                page = await customers.list_customers(
                    session,
                    deps,
                    principal,
                    page_size=EXPORT_PAGE_SIZE,
                    page_token=token,
                    filter_text=filter_text,
                    order_by=order_by,
                )
            for customer in page.customers:
                yield customer
                count += 1
            token = page.next_page_token
            if not token:
                complete = True
                return
    finally:
        record = _audit(uow_factory, filter_text, count, complete)
        # Shielded: a caller hanging up mid-stream still leaves an audit record of what it received.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(record)


async def _audit(uow_factory, filter_text: str, count: int, complete: bool) -> None:
    async with uow_factory() as uow:
        uow.audit(
            "exported",
            "customers",
            [f"count={count}", f"filter={redact_filter(filter_text)}", f"complete={str(complete).lower()}"],
        )
        await uow.commit()
