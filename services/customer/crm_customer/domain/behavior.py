"""Behaviour events in the domain's terms: the event types and what one ingested event is.

No I/O here. Type codes are stored as small integers and never renumbered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# Stored code -> name (also the summary column suffix). Codes equal the proto enum numbers.
EVENT_TYPES: dict[int, str] = {
    1: "page_view",
    2: "product_view",
    3: "cart_add",
    4: "cart_abandoned",
    5: "purchase",
    6: "email_open",
    7: "email_click",
}
CART_ABANDONED = 4
PURCHASE = 5

# An event may claim to have happened a little in the future (clock skew), not more.
MAX_CLOCK_SKEW = timedelta(hours=1)


@dataclass(frozen=True)
class Money:
    currency_code: str
    amount_minor: int


@dataclass
class IncomingEvent:
    """One event from the stream, validated and normalized, before it is matched."""

    index: int  # position in the stream, for error reports
    source: str
    event_id: str
    type: int
    occur_time: datetime
    # Exactly one of these says who did it; email/phone are already normalized.
    customer_id: str = ""
    contact_id: str = ""
    email: str = ""
    phone: str = ""
    properties: dict | None = None  # compact, short keys; None when empty
    value: Money | None = None
    items_count: int = 0
    campaign_id: str = ""
    order_id: str = ""


@dataclass(frozen=True)
class EventIssue:
    index: int
    event_id: str
    reason: str
    field: str = ""
    rejected: bool = False


def in_the_future(occur_time: datetime, now: datetime) -> bool:
    return occur_time > now + MAX_CLOCK_SKEW
