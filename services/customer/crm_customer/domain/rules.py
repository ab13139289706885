"""Rules for creating and changing customers and contacts.

Input arrives as raw values (what the caller typed); these functions normalize
it, check what the request shape cannot (required fields, parsable phones, who
may own what) and produce entities. Every problem with the input is collected,
so one INVALID_ARGUMENT lists every bad field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from crm_customer.domain.model import (
    Address,
    Contact,
    ContactPoint,
    Customer,
    CustomerKind,
    LifecycleStage,
    Tier,
)
from crm_shared.access import Scope, ScopeGrant
from crm_shared.errors import PermissionDenied, Violations
from crm_shared.pii.normalize import NormalizationError, normalize_email, normalize_phone, normalize_tax_id

CUSTOMER_WRITABLE_FIELDS = frozenset(
    {
        "kind",
        "display_name",
        "industry",
        "source",
        "tier",
        "lifecycle_stage",
        "tags",
        "owner",
        "team",
        "phone_numbers",
        "email_addresses",
        "address",
        "website",
        "tax_id",
        "custom_fields",
        "collaborators",
    }
)
# Fields only the service sets (ownership moves, activity, merges): naming one in a mask is an error.
CUSTOMER_OUTPUT_ONLY_FIELDS = frozenset(
    {
        "name",
        "create_time",
        "update_time",
        "etag",
        "status",
        "locked",
        "pool",
        "former_owner",
        "assign_time",
        "reclaim_time",
        "last_follow_up_time",
        "next_follow_up_time",
        "last_deal_time",
        "health_score",
        "merged_into",
    }
)
# UpdateCustomer may not move ownership: owner and team change only through PoolService
# (Claim / Assign / Release / Transfer), which records and publishes every move. Import and
# merge still set them through update_customer / CUSTOMER_WRITABLE_FIELDS.
OWNERSHIP_FIELDS = frozenset({"owner", "team"})
CONTACT_WRITABLE_FIELDS = frozenset(
    {"display_name", "title", "phone_numbers", "email_addresses", "is_primary", "notes"}
)


@dataclass(frozen=True)
class RawContactPoint:
    value: str
    label: str = ""


@dataclass(frozen=True)
class CustomerInput:
    """Writable customer fields as the caller sent them (None = enum left unspecified)."""

    kind: CustomerKind | None = None
    display_name: str = ""
    industry: str = ""
    source: str = ""
    tier: Tier | None = None
    lifecycle_stage: LifecycleStage | None = None
    tags: list[str] = field(default_factory=list)
    owner: str = ""
    team: str = ""
    phone_numbers: list[RawContactPoint] = field(default_factory=list)
    email_addresses: list[RawContactPoint] = field(default_factory=list)
    address: Address | None = None
    website: str = ""
    tax_id: str = ""
    custom_fields: dict[str, Any] = field(default_factory=dict)
    collaborators: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ContactInput:
    display_name: str = ""
    title: str = ""
    phone_numbers: list[RawContactPoint] = field(default_factory=list)
    email_addresses: list[RawContactPoint] = field(default_factory=list)
    is_primary: bool = False
    notes: str = ""


def _phones(
    raw: Iterable[RawContactPoint], path: str, region: str, violations: Violations
) -> list[ContactPoint]:
    result: list[ContactPoint] = []
    for i, point in enumerate(raw):
        try:
            value = normalize_phone(point.value, region)
        except NormalizationError as exc:
            violations.add(f"{path}[{i}].number", str(exc))
            continue
        if value not in {p.value for p in result}:
            result.append(ContactPoint(value, point.label.strip()))
    return result


def _emails(raw: Iterable[RawContactPoint], path: str, violations: Violations) -> list[ContactPoint]:
    result: list[ContactPoint] = []
    for i, point in enumerate(raw):
        try:
            value = normalize_email(point.value)
        except NormalizationError as exc:
            violations.add(f"{path}[{i}].address", str(exc))
            continue
        if value not in {e.value for e in result}:
            result.append(ContactPoint(value, point.label.strip()))
    return result


def _clean_tags(tags: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for tag in tags:
        cleaned = tag.strip()
        if cleaned:
            seen.setdefault(cleaned, None)
    return list(seen)


def check_ownership(grant: ScopeGrant, *, owner: str, team: str) -> None:
    """A caller may only create or move a customer into their own scope."""
    if grant.scope is Scope.OWN and owner != grant.subject:
        raise PermissionDenied(
            "you can only own customers yourself; ask a manager to assign one to someone else",
            reason="OWNER_OUTSIDE_SCOPE",
        )
    if grant.scope is Scope.TEAM and team != grant.team:
        raise PermissionDenied(
            f"you can only place customers in your team ({grant.team or 'none'})", reason="TEAM_OUTSIDE_SCOPE"
        )


def new_customer(
    data: CustomerInput, *, customer_id: str, now: datetime, grant: ScopeGrant, phone_region: str
) -> Customer:
    violations = Violations()
    display_name = data.display_name.strip()
    if not display_name:
        violations.add("customer.display_name", "is required")
    phones = _phones(data.phone_numbers, "customer.phone_numbers", phone_region, violations)
    emails = _emails(data.email_addresses, "customer.email_addresses", violations)
    violations.raise_if_any("the customer has invalid fields")
    owner = data.owner.strip() or grant.subject
    team = data.team.strip() or grant.team
    check_ownership(grant, owner=owner, team=team)
    return Customer(
        id=customer_id,
        kind=data.kind or CustomerKind.COMPANY,
        display_name=display_name,
        owner=owner,
        team=team,
        create_time=now,
        update_time=now,
        industry=data.industry.strip(),
        source=data.source.strip(),
        tier=data.tier,
        lifecycle_stage=data.lifecycle_stage or LifecycleStage.PROSPECT,
        tags=_clean_tags(data.tags),
        phones=phones,
        emails=emails,
        address=None if data.address is None or data.address.is_empty() else data.address,
        website=data.website.strip(),
        tax_id=normalize_tax_id(data.tax_id),
        custom_fields=dict(data.custom_fields),
        assign_time=now,
        collaborators=_clean_tags(c for c in data.collaborators if c.strip() != owner),
    )


def update_customer(
    current: Customer,
    data: CustomerInput,
    fields: frozenset[str],
    *,
    now: datetime,
    grant: ScopeGrant,
    phone_region: str,
) -> tuple[Customer, list[str]]:
    """Apply the named fields; returns the new state and the names of fields that really changed."""
    violations = Violations()
    changes: dict[str, Any] = {}
    if "display_name" in fields:
        if not data.display_name.strip():
            violations.add("customer.display_name", "is required")
        changes["display_name"] = data.display_name.strip()
    if "kind" in fields:
        changes["kind"] = data.kind or CustomerKind.COMPANY
    for name in ("industry", "source", "website"):
        if name in fields:
            changes[name] = getattr(data, name).strip()
    if "tier" in fields:
        changes["tier"] = data.tier
    if "lifecycle_stage" in fields:
        changes["lifecycle_stage"] = data.lifecycle_stage or LifecycleStage.PROSPECT
    if "tags" in fields:
        changes["tags"] = _clean_tags(data.tags)
    if "phone_numbers" in fields:
        changes["phones"] = _phones(data.phone_numbers, "customer.phone_numbers", phone_region, violations)
    if "email_addresses" in fields:
        changes["emails"] = _emails(data.email_addresses, "customer.email_addresses", violations)
    if "address" in fields:
        changes["address"] = None if data.address is None or data.address.is_empty() else data.address
    if "tax_id" in fields:
        changes["tax_id"] = normalize_tax_id(data.tax_id)
    if "custom_fields" in fields:
        changes["custom_fields"] = dict(data.custom_fields)
    if "collaborators" in fields:
        changes["collaborators"] = _clean_tags(data.collaborators)
    if "owner" in fields:
        changes["owner"] = data.owner.strip() or grant.subject
    if "team" in fields:
        changes["team"] = data.team.strip()
    violations.raise_if_any("the customer has invalid fields")

    changed = [name for name, value in changes.items() if getattr(current, name) != value]
    if not changed:
        return current, []
    if {"owner", "team"} & set(changed):
        if grant.scope is Scope.OWN:
            raise PermissionDenied(
                "sales reps cannot hand a customer to someone else; release it to a pool or ask a manager",
                reason="OWNER_CHANGE_NOT_ALLOWED",
            )
        check_ownership(
            grant, owner=changes.get("owner", current.owner), team=changes.get("team", current.team)
        )
    updated = replace(current, **changes, update_time=now, version=current.version + 1)
    return updated, [_API_FIELD.get(name, name) for name in changed]


# Entity attribute -> API field name, for change lists in events and the audit trail.
_API_FIELD = {"phones": "phone_numbers", "emails": "email_addresses"}


def new_contact(
    data: ContactInput, *, contact_id: str, customer_id: str, now: datetime, phone_region: str
) -> Contact:
    violations = Violations()
    display_name = data.display_name.strip()
    if not display_name:
        violations.add("contact.display_name", "is required")
    phones = _phones(data.phone_numbers, "contact.phone_numbers", phone_region, violations)
    emails = _emails(data.email_addresses, "contact.email_addresses", violations)
    violations.raise_if_any("the contact has invalid fields")
    return Contact(
        id=contact_id,
        customer_id=customer_id,
        display_name=display_name,
        create_time=now,
        update_time=now,
        title=data.title.strip(),
        phones=phones,
        emails=emails,
        is_primary=data.is_primary,
        notes=data.notes,
    )


def update_contact(
    current: Contact, data: ContactInput, fields: frozenset[str], *, now: datetime, phone_region: str
) -> tuple[Contact, list[str]]:
    violations = Violations()
    changes: dict[str, Any] = {}
    if "display_name" in fields:
        if not data.display_name.strip():
            violations.add("contact.display_name", "is required")
        changes["display_name"] = data.display_name.strip()
    if "title" in fields:
        changes["title"] = data.title.strip()
    if "notes" in fields:
        changes["notes"] = data.notes
    if "is_primary" in fields:
        changes["is_primary"] = data.is_primary
    if "phone_numbers" in fields:
        changes["phones"] = _phones(data.phone_numbers, "contact.phone_numbers", phone_region, violations)
    if "email_addresses" in fields:
        changes["emails"] = _emails(data.email_addresses, "contact.email_addresses", violations)
    violations.raise_if_any("the contact has invalid fields")
    changed = [name for name, value in changes.items() if getattr(current, name) != value]
    if not changed:
        return current, []
    updated = replace(current, **changes, update_time=now, version=current.version + 1)
    return updated, [_API_FIELD.get(name, name) for name in changed]
