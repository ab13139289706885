"""Customer events the sales service applies: merged, erased, deleted (crm_sales.consumers).

- CustomerMerged: every sales reference to a loser moves to the survivor, in the consumer's one
  transaction: opportunities (customer and contact), quotes, orders, and leads converted into a
  loser (converted customer and contact). The customer service keeps a moved contact's id and
  only re-parents it (crm_customer.service.merge._move_contacts), so
  "customers/{loser}/contacts/{k}" becomes "customers/{survivor}/contacts/{k}". Rows are
  selected by the loser's name, so applying the same merge again finds nothing and changes
  nothing (on top of the consumer's inbox). Nothing is emitted: the customer service already
  published the merge, and the rows carry no personal data anyway.
- CustomerErased: the sales service's personal data about that person is in the leads converted
  into the customer. Their data key is deleted (crypto-shredding phones and emails wherever a
  copy of the ciphertext lives), the ciphertext columns and blind indexes are cleared, and the
  free-text fields that describe the person (name, company, title, social account, evidence,
  disqualify reason) are blanked. Opportunities, quotes and orders are business records: their
  amounts, stages and the opaque customer/contact ids stay, so forecasts and revenue add up.
- CustomerDeleted: nothing is changed. A deleted customer is not an erasure request (that is
  CustomerErased); the opaque id in opportunities, quotes, orders and leads is history, not
  personal data, and a lookup of it answers NOT_FOUND. Each referencing record gets a
  "customer_deleted" audit row so an operator can find them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa

from crm_sales.adapters.lead_tables import lead_identifiers, lead_keys, leads
from crm_sales.adapters.opportunity_tables import opportunities
from crm_sales.adapters.quote_tables import orders, quotes

log = logging.getLogger(__name__)

ERASED_LEAD_FIELDS = [
    "company",
    "disqualify_reason",
    "display_name",
    "email_addresses",
    "evidence",
    "external_account_id",
    "phone_numbers",
    "title",
]


class InvalidCustomerEvent(ValueError):
    """A payload that can never be applied (not transient): the consumer dead-letters it."""


def customer_id(name: str) -> str:
    prefix, _, rest = name.partition("/")
    if prefix != "customers" or not rest or "/" in rest:
        raise InvalidCustomerEvent(f"not a customer name: {name!r}")
    return rest


def _moved_contact(contact: str, loser: str, survivor: str) -> str:
    prefix = f"{loser}/contacts/"
    return f"{survivor}/contacts/{contact.removeprefix(prefix)}" if contact.startswith(prefix) else contact


async def customer_merged(uow, survivor: str, losers: Sequence[str]) -> dict[str, int]:
    """Re-point every reference from each loser to the survivor; returns table -> rows moved."""
    survivor_id = customer_id(survivor)
    loser_names = list(dict.fromkeys(losers))
    if not loser_names:
        raise InvalidCustomerEvent("a merge without losers")
    loser_ids = [customer_id(name) for name in loser_names]
    if survivor_id in loser_ids:
        raise InvalidCustomerEvent(f"{survivor} is both survivor and loser")
    session, now = uow.session, uow.now
    moved = {"opportunities": 0, "quotes": 0, "orders": 0, "leads": 0}
    for loser, loser_id in zip(loser_names, loser_ids, strict=True):
        rows = (
            await session.execute(
                sa.select(opportunities.c.id, opportunities.c.contact).where(
                    opportunities.c.customer_id == loser_id
                )
            )
        ).all()
        for row in rows:
            await session.execute(
                sa.update(opportunities)
                .where(opportunities.c.id == row.id)
                .values(
                    customer_id=survivor_id,
                    contact=_moved_contact(row.contact, loser, survivor),
                    update_time=now,
                    version=opportunities.c.version + 1,
                )
            )
            uow.audit("customer_merged", f"opportunities/{row.id}", ["contact", "customer"])
        moved["opportunities"] += len(rows)
        for table, collection in ((quotes, "quotes"), (orders, "orders")):
            ids = (
                (await session.execute(sa.select(table.c.id).where(table.c.customer == loser)))
                .scalars()
                .all()
            )
            if ids:
                await session.execute(
                    sa.update(table)
                    .where(table.c.id.in_(ids))
                    .values(customer=survivor, update_time=now, row_version=table.c.row_version + 1)
                )
            for row_id in ids:
                uow.audit("customer_merged", f"{collection}/{row_id}", ["customer"])
            moved[collection] += len(ids)
        rows = (
            await session.execute(
                sa.select(leads.c.id, leads.c.converted_contact).where(leads.c.converted_customer == loser)
            )
        ).all()
        for row in rows:
            await session.execute(
                sa.update(leads)
                .where(leads.c.id == row.id)
                .values(
                    converted_customer=survivor,
                    converted_contact=_moved_contact(row.converted_contact, loser, survivor),
                    update_time=now,
                    version=leads.c.version + 1,
                )
            )
            uow.audit("customer_merged", f"leads/{row.id}", ["converted_contact", "converted_customer"])
        moved["leads"] += len(rows)
    log.info("merge of %s into %s applied: %s", loser_names, survivor, moved)
    return moved


async def customer_erased(uow, customer: str) -> list[str]:
    """Shred the personal data of the leads converted into the customer; returns their names."""
    customer_id(customer)
    session = uow.session
    lead_ids = (
        (await session.execute(sa.select(leads.c.id).where(leads.c.converted_customer == customer)))
        .scalars()
        .all()
    )
    if not lead_ids:
        return []
    sqlite = session.get_bind().dialect.name == "sqlite"
    if sqlite:  # overwrite the freed bytes instead of leaving them in free pages
        await session.execute(sa.text("PRAGMA secure_delete = ON"))
    try:
        await session.execute(sa.delete(lead_keys).where(lead_keys.c.lead_id.in_(lead_ids)))
        await session.execute(sa.delete(lead_identifiers).where(lead_identifiers.c.lead_id.in_(lead_ids)))
        await session.execute(
            sa.update(leads)
            .where(leads.c.id.in_(lead_ids))
            .values(
                display_name="",
                company="",
                title="",
                phones_enc=None,
                emails_enc=None,
                external_account_id="",
                evidence=[],
                disqualify_reason="",
                update_time=uow.now,
                version=leads.c.version + 1,
            )
        )
    finally:
        if sqlite:
            await session.execute(sa.text("PRAGMA secure_delete = OFF"))
    names = [f"leads/{lead_id}" for lead_id in lead_ids]
    for name in names:
        uow.audit("erased", name, ERASED_LEAD_FIELDS)
    return names


async def customer_deleted(uow, customer: str) -> int:
    """Audit every sales record that still names the deleted customer; returns how many."""
    the_id = customer_id(customer)
    session = uow.session
    found: list[str] = []
    for query, collection in (
        (sa.select(opportunities.c.id).where(opportunities.c.customer_id == the_id), "opportunities"),
        (sa.select(quotes.c.id).where(quotes.c.customer == customer), "quotes"),
        (sa.select(orders.c.id).where(orders.c.customer == customer), "orders"),
        (sa.select(leads.c.id).where(leads.c.converted_customer == customer), "leads"),
    ):
        found += [f"{collection}/{row_id}" for row_id in (await session.execute(query)).scalars().all()]
    for name in found:
        uow.audit("customer_deleted", name, ["customer"])
    return len(found)
