"""Entities of the customer domain."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class CustomerKind(enum.StrEnum):
    COMPANY = "company"
    PERSON = "person"


class Tier(enum.StrEnum):
    A = "A"  # key account
    B = "B"  # normal
    C = "C"  # low value


class LifecycleStage(enum.StrEnum):
    PROSPECT = "prospect"
    ACTIVE = "active"
    LOYAL = "loyal"
    AT_RISK = "at_risk"
    CHURNED = "churned"


class CustomerStatus(enum.StrEnum):
    OWNED = "owned"
    IN_POOL = "in_pool"
    MERGED = "merged"  # a tombstone pointing at the survivor of a merge
    ERASED = "erased"  # personal data crypto-shredded on request


@dataclass(frozen=True)
class ContactPoint:
    """A normalized phone (E.164) or email (lower-case) with an optional label."""

    value: str
    label: str = ""


@dataclass(frozen=True)
class Address:
    region_code: str = ""
    administrative_area: str = ""
    locality: str = ""
    address_line: str = ""
    postal_code: str = ""

    def is_empty(self) -> bool:
        return not any(
            (self.region_code, self.administrative_area, self.locality, self.address_line, self.postal_code)
        )


@dataclass
class Customer:
    id: str
    kind: CustomerKind
    display_name: str
    owner: str
    team: str
    create_time: datetime
    update_time: datetime
    industry: str = ""
    source: str = ""
    tier: Tier | None = None
    lifecycle_stage: LifecycleStage = LifecycleStage.PROSPECT
    tags: list[str] = field(default_factory=list)
    phones: list[ContactPoint] = field(default_factory=list)
    emails: list[ContactPoint] = field(default_factory=list)
    address: Address | None = None
    website: str = ""
    tax_id: str = ""
    custom_fields: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    # Ownership and the public pool (公海).
    status: CustomerStatus = CustomerStatus.OWNED
    locked: bool = False
    pool_id: str = ""
    former_owner: str = ""
    assign_time: datetime | None = None
    reclaim_time: datetime | None = None
    # Activity that drives reclaim deadlines and lifecycle rules.
    last_follow_up_time: datetime | None = None
    next_follow_up_time: datetime | None = None
    last_deal_time: datetime | None = None
    health_score: int = 0
    collaborators: list[str] = field(default_factory=list)
    merged_into: str = ""  # survivor's id, on a merge tombstone

    @property
    def name(self) -> str:
        return f"customers/{self.id}"

    def identifiers(self) -> set[tuple[str, str]]:
        """Natural keys that identify this customer uniquely: (kind, normalized value)."""
        keys = {("email", e.value) for e in self.emails} | {("phone", p.value) for p in self.phones}
        if self.tax_id:
            keys.add(("tax_id", self.tax_id))
        return keys


@dataclass
class Contact:
    id: str
    customer_id: str
    display_name: str
    create_time: datetime
    update_time: datetime
    title: str = ""
    phones: list[ContactPoint] = field(default_factory=list)
    emails: list[ContactPoint] = field(default_factory=list)
    is_primary: bool = False
    notes: str = ""
    version: int = 1

    @property
    def name(self) -> str:
        return f"customers/{self.customer_id}/contacts/{self.id}"
