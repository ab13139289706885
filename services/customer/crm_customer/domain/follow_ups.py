"""Follow-up records (跟进记录) and what logging one does to its customer. Pure functions."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from crm_customer.domain.model import Customer
from crm_shared.errors import InvalidArgument

# Clients' clocks drift: a follow-up "now" on a device may be a little ahead of the server.
FUTURE_TOLERANCE = timedelta(minutes=5)


class FollowUpType(enum.StrEnum):
    CALL = "call"
    VISIT = "visit"
    EMAIL = "email"
    MESSAGE = "message"
    MEETING = "meeting"
    NOTE = "note"


@dataclass(frozen=True)
class FollowUpInput:
    type: FollowUpType | None
    content: str
    follow_up_time: datetime | None = None
    next_follow_up_time: datetime | None = None
    related_opportunity: str = ""
    related_ticket: str = ""


@dataclass(frozen=True)
class FollowUp:
    id: str
    customer_id: str
    type: FollowUpType
    content: str
    follow_up_time: datetime
    author: str
    create_time: datetime
    next_follow_up_time: datetime | None = None
    related_opportunity: str = ""
    related_ticket: str = ""

    @property
    def name(self) -> str:
        return f"customers/{self.customer_id}/followUps/{self.id}"


def new_follow_up(
    data: FollowUpInput, *, follow_up_id: str, customer_id: str, author: str, now: datetime
) -> FollowUp:
    if data.type is None:
        raise InvalidArgument.for_field("follow_up.type", "is required")
    if not data.content.strip():
        raise InvalidArgument.for_field("follow_up.content", "is required")
    at = data.follow_up_time or now
    if at > now + FUTURE_TOLERANCE:
        raise InvalidArgument.for_field("follow_up.follow_up_time", "may not be in the future")
    if data.next_follow_up_time is not None and data.next_follow_up_time <= at:
        raise InvalidArgument.for_field("follow_up.next_follow_up_time", "must be after follow_up_time")
    return FollowUp(
        id=follow_up_id,
        customer_id=customer_id,
        type=data.type,
        content=data.content.strip(),
        follow_up_time=min(at, now),
        author=author,
        create_time=now,
        next_follow_up_time=data.next_follow_up_time,
        related_opportunity=data.related_opportunity,
        related_ticket=data.related_ticket,
    )


def record_on_customer(
    customer: Customer, follow_up: FollowUp, *, now: datetime
) -> tuple[Customer, list[str]]:
    """The customer after `follow_up`: last follow-up moves forward only; a next time replaces the old one."""
    changes: dict = {}
    if customer.last_follow_up_time is None or follow_up.follow_up_time > customer.last_follow_up_time:
        changes["last_follow_up_time"] = follow_up.follow_up_time
    if (
        follow_up.next_follow_up_time is not None
        and follow_up.next_follow_up_time != customer.next_follow_up_time
    ):
        changes["next_follow_up_time"] = follow_up.next_follow_up_time
    if not changes:
        return customer, []
    return replace(customer, **changes, update_time=now, version=customer.version + 1), sorted(changes)


def latest_activity(customer: Customer) -> datetime:
    """The last thing that happened with a customer (follow-up, deal), for the inactivity rule."""
    moments = [m for m in (customer.last_follow_up_time, customer.last_deal_time) if m is not None]
    return max(moments) if moments else customer.create_time
