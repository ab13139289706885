"""Merging duplicate customers: the survivor's new state and the losers' tombstones (no I/O).

Default rule for a field nobody chose: the survivor's value, or the first loser's
when the survivor has none; phones, emails, tags, collaborators and custom fields
are unions (the survivor's first), so no identifier is lost unless the caller
chooses one customer's list. A choice names the customer whose value to keep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from crm_customer.domain.model import ContactPoint, Customer, CustomerKind, CustomerStatus
from crm_customer.domain.rules import CUSTOMER_WRITABLE_FIELDS
from crm_shared.errors import FailedPrecondition, InvalidArgument, Violations

# API field name -> entity attribute.
_ATTRIBUTE = {"phone_numbers": "phones", "email_addresses": "emails"}
_UNION_FIELDS = frozenset({"phone_numbers", "email_addresses", "tags", "collaborators", "custom_fields"})
TOMBSTONE_PERSON_NAME = "Merged customer"


@dataclass(frozen=True)
class MergePlan:
    survivor: Customer  # the merged state
    changed_fields: list[str]  # API field names whose value changed on the survivor
    tombstones: list[Customer]


def _empty(value: Any) -> bool:
    return value in (None, "", [], {}) or (hasattr(value, "is_empty") and value.is_empty())


def _union_points(lists: Sequence[list[ContactPoint]]) -> list[ContactPoint]:
    seen: dict[str, ContactPoint] = {}
    for points in lists:
        for point in points:
            seen.setdefault(point.value, point)
    return list(seen.values())


def _union_strings(lists: Sequence[list[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for items in lists:
        for item in items:
            seen.setdefault(item, None)
    return list(seen)


def check_mergeable(survivor: Customer, losers: Sequence[Customer]) -> list[Customer]:
    """The losers still to merge; [] when every loser is already merged into the survivor."""
    if survivor.status is CustomerStatus.MERGED:
        raise FailedPrecondition(
            f"{survivor.name} was itself merged into customers/{survivor.merged_into}; merge into that one",
            reason="SURVIVOR_MERGED",
            metadata={"merged_into": f"customers/{survivor.merged_into}"},
        )
    if survivor.status is CustomerStatus.ERASED:
        raise FailedPrecondition(f"{survivor.name} was erased", reason="CUSTOMER_ERASED")
    pending = []
    for loser in losers:
        if loser.id == survivor.id:
            raise InvalidArgument.for_field("losers", "must not contain the survivor")
        if loser.status is CustomerStatus.MERGED:
            if loser.merged_into == survivor.id:
                continue
            raise FailedPrecondition(
                f"{loser.name} was already merged into customers/{loser.merged_into}",
                reason="ALREADY_MERGED_ELSEWHERE",
                metadata={"merged_into": f"customers/{loser.merged_into}"},
            )
        if loser.status is CustomerStatus.ERASED:
            raise FailedPrecondition(f"{loser.name} was erased", reason="CUSTOMER_ERASED")
        pending.append(loser)
    return pending


def plan_merge(
    survivor: Customer, losers: Sequence[Customer], field_sources: dict[str, str], *, now: datetime
) -> MergePlan:
    """`field_sources`: API field name -> id of the customer whose value to keep."""
    by_id = {c.id: c for c in (survivor, *losers)}
    violations = Violations()
    for field_name, source_id in field_sources.items():
        if field_name not in CUSTOMER_WRITABLE_FIELDS:
            violations.add(f'field_sources["{field_name}"]', "is not a writable customer field")
        elif source_id not in by_id:
            violations.add(f'field_sources["{field_name}"]', "must name the survivor or one of the losers")
    violations.raise_if_any("invalid field choices")

    everyone = [survivor, *losers]
    changes: dict[str, Any] = {}
    for field_name in sorted(CUSTOMER_WRITABLE_FIELDS):
        attribute = _ATTRIBUTE.get(field_name, field_name)
        if field_name in field_sources:
            value = getattr(by_id[field_sources[field_name]], attribute)
        elif field_name in _UNION_FIELDS:
            values = [getattr(c, attribute) for c in everyone]
            if field_name in ("phone_numbers", "email_addresses"):
                value = _union_points(values)
            elif field_name == "custom_fields":
                value = {}
                for fields in reversed(values):  # the survivor's keys win
                    value.update(fields)
            else:
                value = _union_strings(values)
        else:
            value = getattr(survivor, attribute)
            if _empty(value):
                value = next(
                    (getattr(c, attribute) for c in losers if not _empty(getattr(c, attribute))), value
                )
        changes[attribute] = value
    owner = changes["owner"]
    changes["collaborators"] = [c for c in changes["collaborators"] if c != owner]
    # Activity: the most recent of any merged customer.
    for attribute in ("last_follow_up_time", "last_deal_time"):
        moments = [getattr(c, attribute) for c in everyone if getattr(c, attribute) is not None]
        changes[attribute] = max(moments) if moments else None

    changed = [
        name
        for name in sorted(CUSTOMER_WRITABLE_FIELDS)
        if getattr(survivor, _ATTRIBUTE.get(name, name)) != changes[_ATTRIBUTE.get(name, name)]
    ]
    merged = replace(survivor, **changes, update_time=now, version=survivor.version + 1)
    return MergePlan(merged, changed, [tombstone(loser, survivor.id, now=now) for loser in losers])


def tombstone(loser: Customer, survivor_id: str, *, now: datetime) -> Customer:
    """What is left of a loser: a pointer to the survivor, no personal data."""
    return replace(
        loser,
        status=CustomerStatus.MERGED,
        merged_into=survivor_id,
        display_name=loser.display_name if loser.kind is CustomerKind.COMPANY else TOMBSTONE_PERSON_NAME,
        phones=[],
        emails=[],
        tax_id="",
        address=None,
        tags=[],
        custom_fields={},
        collaborators=[],
        website=loser.website if loser.kind is CustomerKind.COMPANY else "",
        update_time=now,
        version=loser.version + 1,
    )
