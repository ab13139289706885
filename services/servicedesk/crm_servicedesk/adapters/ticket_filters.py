"""ListTickets' filter fields and sort keys (AIP-160 subset, AIP-132 order_by)."""

from __future__ import annotations

import sqlalchemy as sa

from crm_servicedesk.adapters.sla_tables import ticket_sla_clocks
from crm_servicedesk.adapters.ticket_tables import tickets
from crm_servicedesk.domain.tickets import Ticket, TicketChannel, TicketPriority, TicketStatus, TicketType
from crm_shared.aip.filtering import FilterField, FilterSchema, invalid_filter
from crm_shared.aip.paging import SortKey

ORDERABLE = ("create_time", "update_time", "priority")
DEFAULT_ORDER = "create_time desc"


def _enum_values(prefix: str, enum_type) -> dict[str, str]:
    return {f"{prefix}_{member.name}": member.value for member in enum_type}


def _resource(prefix: str, column: sa.ColumnElement) -> FilterField:
    """A reference stored as its resource name, accepted with or without the collection prefix."""

    def convert(value: str, quoted: bool) -> str:
        return value if value.startswith(prefix) else f"{prefix}{value}"

    return FilterField.custom("= !=", lambda op, v: column == v if op == "=" else column != v, convert)


def _has_tag(op: str, value: str) -> sa.ColumnElement[bool]:
    # Tags are a JSON array of lower-case strings: the quoted tag occurs in its text form.
    return sa.cast(tickets.c.tags, sa.Text).like(f'%"{value.strip().lower()}"%')


def _sla_breached(op: str, value: bool) -> sa.ColumnElement[bool]:
    breached = sa.exists().where(
        ticket_sla_clocks.c.ticket_id == tickets.c.id, ticket_sla_clocks.c.breached_time.is_not(None)
    )
    return breached if (op == "=") == value else sa.not_(breached)


def _boolean(value: str, quoted: bool) -> bool:
    if value not in ("true", "false"):
        raise invalid_filter(f"{value!r} is not a boolean; use true or false")
    return value == "true"


TICKET_FILTERS = FilterSchema(
    {
        "status": FilterField.enum(tickets.c.status, _enum_values("TICKET_STATUS", TicketStatus)),
        "priority": FilterField.enum(tickets.c.priority, _enum_values("TICKET_PRIORITY", TicketPriority)),
        "type": FilterField.enum(tickets.c.type, _enum_values("TICKET_TYPE", TicketType)),
        "channel": FilterField.enum(tickets.c.channel, _enum_values("TICKET_CHANNEL", TicketChannel)),
        "assignee": FilterField.string(tickets.c.assignee),
        "team": FilterField.string(tickets.c.team),
        "customer": _resource("customers/", tickets.c.customer),
        "number": FilterField.string(tickets.c.number),
        "tags": FilterField.custom(":", _has_tag),
        "sla_breached": FilterField.custom("= !=", _sla_breached, _boolean),
        "create_time": FilterField.timestamp(tickets.c.create_time),
        "update_time": FilterField.timestamp(tickets.c.update_time),
    }
)

_SORT_COLUMNS: dict[str, sa.ColumnElement] = {
    "create_time": tickets.c.create_time,
    "update_time": tickets.c.update_time,
    "priority": tickets.c.priority_rank,
}


def sort_keys(fields: tuple[tuple[str, bool], ...]) -> list[SortKey]:
    keys = [SortKey(_SORT_COLUMNS[name], descending) for name, descending in fields]
    return [*keys, SortKey(tickets.c.id, fields[-1][1] if fields else False)]


def sort_values(ticket: Ticket, fields: tuple[tuple[str, bool], ...]) -> list:
    """The keyset of one ticket in the order `sort_keys` describes (for the next page token)."""
    values: list = []
    for name, _descending in fields:
        values.append(ticket.priority.rank + 1 if name == "priority" else getattr(ticket, name))
    return [*values, ticket.id]
