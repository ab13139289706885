"""Leads (线索): entities, input rules, the status state machine and round-robin assignment.

Pure functions, no I/O: input arrives as raw values, problems are collected so one
INVALID_ARGUMENT names every bad field, and status changes go through `transition`,
which says why an illegal one is refused.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from crm_shared.access import Scope, ScopeGrant
from crm_shared.errors import FailedPrecondition, PermissionDenied, Violations
from crm_shared.pii.normalize import NormalizationError, normalize_email, normalize_phone


class LeadStatus(enum.StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    WORKING = "working"
    CONVERTED = "converted"
    RECYCLED = "recycled"
    DISQUALIFIED = "disqualified"


class SourceChannel(enum.StrEnum):
    WEB_FORM = "web_form"
    ADS = "ads"
    REFERRAL = "referral"
    TRADE_SHOW = "trade_show"
    SOCIAL = "social"
    THIRD_PARTY = "third_party"
    IMPORT = "import"
    OTHER = "other"


# Open leads take part in duplicate detection; closed ones (converted, disqualified) do not.
OPEN_STATUSES = frozenset({LeadStatus.NEW, LeadStatus.ASSIGNED, LeadStatus.WORKING, LeadStatus.RECYCLED})


class LeadAction(enum.StrEnum):
    ASSIGN = "assign"
    START_WORKING = "start_working"
    RECYCLE = "recycle"
    DISQUALIFY = "disqualify"
    CONVERT = "convert"


# The state machine: which action is allowed from which status, and where it leads.
_TRANSITIONS: dict[LeadAction, tuple[frozenset[LeadStatus], LeadStatus]] = {
    LeadAction.ASSIGN: (
        frozenset({LeadStatus.NEW, LeadStatus.ASSIGNED, LeadStatus.WORKING, LeadStatus.RECYCLED}),
        LeadStatus.ASSIGNED,
    ),
    LeadAction.START_WORKING: (
        frozenset({LeadStatus.NEW, LeadStatus.ASSIGNED, LeadStatus.RECYCLED}),
        LeadStatus.WORKING,
    ),
    LeadAction.RECYCLE: (frozenset({LeadStatus.ASSIGNED, LeadStatus.WORKING}), LeadStatus.RECYCLED),
    LeadAction.DISQUALIFY: (OPEN_STATUSES, LeadStatus.DISQUALIFIED),
    LeadAction.CONVERT: (
        frozenset({LeadStatus.NEW, LeadStatus.ASSIGNED, LeadStatus.WORKING}),
        LeadStatus.CONVERTED,
    ),
}


def allowed_from(action: LeadAction) -> frozenset[LeadStatus]:
    return _TRANSITIONS[action][0]


def transition(status: LeadStatus, action: LeadAction, *, lead_name: str = "the lead") -> LeadStatus:
    """The status after `action`, or FAILED_PRECONDITION saying why it is not allowed now."""
    sources, target = _TRANSITIONS[action]
    if status not in sources:
        allowed = ", ".join(sorted(s.value.upper() for s in sources))
        raise FailedPrecondition(
            f"cannot {action.value.replace('_', ' ')} {lead_name}: it is {status.value.upper()}; "
            f"allowed only from {allowed}",
            reason="ILLEGAL_LEAD_TRANSITION",
            metadata={"status": status.value.upper(), "action": action.value.upper()},
        )
    return target


@dataclass(frozen=True)
class Evidence:
    uri: str
    description: str = ""


@dataclass
class Lead:
    id: str
    display_name: str
    status: LeadStatus
    owner: str
    team: str
    create_time: datetime
    update_time: datetime
    company: str = ""
    title: str = ""
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    source_channel: SourceChannel | None = None
    source_platform: str = ""
    external_account_id: str = ""
    campaign_id: str = ""
    evidence: list[Evidence] = field(default_factory=list)
    disqualify_reason: str = ""
    score: int = 0
    next_follow_up_time: datetime | None = None
    converted_customer: str = ""
    converted_contact: str = ""
    converted_opportunity: str = ""
    convert_time: datetime | None = None
    version: int = 1

    @property
    def name(self) -> str:
        return f"leads/{self.id}"

    @property
    def campaign(self) -> str:
        return f"campaigns/{self.campaign_id}" if self.campaign_id else ""

    def identifiers(self) -> set[tuple[str, str]]:
        return {("email", e) for e in self.emails} | {("phone", p) for p in self.phones}


LEAD_WRITABLE_FIELDS = frozenset(
    {
        "display_name",
        "company",
        "title",
        "phone_numbers",
        "email_addresses",
        "source_channel",
        "source_platform",
        "external_account_id",
        "campaign",
        "evidence",
        "score",
        "next_follow_up_time",
    }
)
# Set by the service or by the custom methods (owner/team: AssignLead; status: the state machine).
LEAD_OUTPUT_ONLY_FIELDS = frozenset(
    {
        "name",
        "status",
        "disqualify_reason",
        "owner",
        "team",
        "converted_customer",
        "converted_contact",
        "converted_opportunity",
        "convert_time",
        "create_time",
        "update_time",
        "etag",
    }
)


@dataclass(frozen=True)
class LeadInput:
    """Writable lead fields as the caller sent them (None = enum left unspecified)."""

    display_name: str = ""
    company: str = ""
    title: str = ""
    phone_numbers: Sequence[str] = ()
    email_addresses: Sequence[str] = ()
    source_channel: SourceChannel | None = None
    source_platform: str = ""
    external_account_id: str = ""
    campaign_id: str = ""
    evidence: Sequence[Evidence] = ()
    owner: str = ""
    team: str = ""
    score: int = 0
    next_follow_up_time: datetime | None = None


def _phones(raw: Iterable[str], path: str, region: str, violations: Violations) -> list[str]:
    result: list[str] = []
    for i, value in enumerate(raw):
        try:
            phone = normalize_phone(value, region)
        except NormalizationError as exc:
            violations.add(f"{path}[{i}]", str(exc))
            continue
        if phone not in result:
            result.append(phone)
    return result


def _emails(raw: Iterable[str], path: str, violations: Violations) -> list[str]:
    result: list[str] = []
    for i, value in enumerate(raw):
        try:
            email = normalize_email(value)
        except NormalizationError as exc:
            violations.add(f"{path}[{i}]", str(exc))
            continue
        if email not in result:
            result.append(email)
    return result


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _check_source(data: LeadInput, path: str, violations: Violations) -> None:
    if data.source_channel is SourceChannel.THIRD_PARTY and not data.source_platform.strip():
        violations.add(_at(path, "source_platform"), "is required when the source channel is THIRD_PARTY")
    elif data.external_account_id.strip() and not data.source_platform.strip():
        violations.add(_at(path, "source_platform"), "is required with an external_account_id")


def check_placement(grant: ScopeGrant, *, owner: str, team: str) -> None:
    """A caller may only create a lead inside their own scope."""
    if grant.scope is Scope.OWN and owner != grant.subject:
        raise PermissionDenied(
            "you can only own leads yourself; ask a manager to assign one to someone else",
            reason="OWNER_OUTSIDE_SCOPE",
        )
    if grant.scope is Scope.TEAM and team != grant.team:
        raise PermissionDenied(
            f"you can only place leads in your team ({grant.team or 'none'})", reason="TEAM_OUTSIDE_SCOPE"
        )


def new_lead(
    data: LeadInput,
    *,
    lead_id: str,
    now: datetime,
    grant: ScopeGrant,
    phone_region: str,
    path: str = "lead",
) -> Lead:
    """A new lead. Reps and managers own what they create unless they name someone; callers who
    see everything (admin, marketing, capture) leave it unassigned unless they name an owner."""
    violations = Violations()
    display_name = data.display_name.strip()
    if not display_name:
        violations.add(_at(path, "display_name"), "is required")
    phones = _phones(data.phone_numbers, _at(path, "phone_numbers"), phone_region, violations)
    emails = _emails(data.email_addresses, _at(path, "email_addresses"), violations)
    if not path:  # CaptureLead sends one phone_number and one email_address
        violations.items = [
            replace(
                v,
                field=v.field.replace("phone_numbers[0]", "phone_number").replace(
                    "email_addresses[0]", "email_address"
                ),
            )
            for v in violations.items
        ]
    _check_source(data, path, violations)
    violations.raise_if_any("the lead has invalid fields")
    owner = data.owner.strip()
    if not owner and grant.scope in (Scope.OWN, Scope.TEAM):
        owner = grant.subject
    team = data.team.strip() or grant.team
    check_placement(grant, owner=owner, team=team)
    return Lead(
        id=lead_id,
        display_name=display_name,
        status=LeadStatus.ASSIGNED if owner else LeadStatus.NEW,
        owner=owner,
        team=team,
        create_time=now,
        update_time=now,
        company=data.company.strip(),
        title=data.title.strip(),
        phones=phones,
        emails=emails,
        source_channel=data.source_channel,
        source_platform=data.source_platform.strip(),
        external_account_id=data.external_account_id.strip(),
        campaign_id=data.campaign_id,
        evidence=list(data.evidence),
        score=data.score,
        next_follow_up_time=data.next_follow_up_time,
    )


def check_capture_contact(email: str, phone: str) -> None:
    if not email.strip() and not phone.strip():
        violations = Violations()
        violations.add("email_address", "an email address or a phone number is required")
        violations.add("phone_number", "an email address or a phone number is required")
        violations.raise_if_any("the captured lead cannot be reached")


def update_lead(
    current: Lead, data: LeadInput, fields: frozenset[str], *, now: datetime, phone_region: str
) -> tuple[Lead, list[str]]:
    """Apply the named fields; returns the new state and the API names of fields that changed."""
    if current.status in (LeadStatus.CONVERTED, LeadStatus.DISQUALIFIED):
        raise FailedPrecondition(
            f"{current.name} is {current.status.value.upper()} and can no longer be edited",
            reason="LEAD_CLOSED",
            metadata={"status": current.status.value.upper()},
        )
    violations = Violations()
    changes: dict[str, Any] = {}
    if "display_name" in fields:
        if not data.display_name.strip():
            violations.add("lead.display_name", "is required")
        changes["display_name"] = data.display_name.strip()
    for name in ("company", "title", "source_platform", "external_account_id"):
        if name in fields:
            changes[name] = getattr(data, name).strip()
    if "phone_numbers" in fields:
        changes["phones"] = _phones(data.phone_numbers, "lead.phone_numbers", phone_region, violations)
    if "email_addresses" in fields:
        changes["emails"] = _emails(data.email_addresses, "lead.email_addresses", violations)
    if "source_channel" in fields:
        changes["source_channel"] = data.source_channel
    if "campaign" in fields:
        changes["campaign_id"] = data.campaign_id
    if "evidence" in fields:
        changes["evidence"] = list(data.evidence)
    if "score" in fields:
        changes["score"] = data.score
    if "next_follow_up_time" in fields:
        changes["next_follow_up_time"] = data.next_follow_up_time
    merged = LeadInput(
        source_channel=changes.get("source_channel", current.source_channel),
        source_platform=changes.get("source_platform", current.source_platform),
        external_account_id=changes.get("external_account_id", current.external_account_id),
    )
    _check_source(merged, "lead", violations)
    violations.raise_if_any("the lead has invalid fields")
    changed = [name for name, value in changes.items() if getattr(current, name) != value]
    if not changed:
        return current, []
    updated = replace(current, **changes, update_time=now, version=current.version + 1)
    return updated, [_API_FIELD.get(name, name) for name in changed]


_API_FIELD = {"phones": "phone_numbers", "emails": "email_addresses", "campaign_id": "campaign"}


# --- status changes --------------------------------------------------------------------------


def assign(lead: Lead, *, owner: str, team: str, now: datetime) -> Lead:
    status = transition(lead.status, LeadAction.ASSIGN, lead_name=lead.name)
    return replace(lead, owner=owner, team=team, status=status, update_time=now, version=lead.version + 1)


def start_working(lead: Lead, *, actor: str, now: datetime) -> Lead:
    status = transition(lead.status, LeadAction.START_WORKING, lead_name=lead.name)
    return replace(lead, owner=lead.owner or actor, status=status, update_time=now, version=lead.version + 1)


def recycle(lead: Lead, *, now: datetime) -> Lead:
    status = transition(lead.status, LeadAction.RECYCLE, lead_name=lead.name)
    return replace(lead, status=status, update_time=now, version=lead.version + 1)


def disqualify(lead: Lead, *, reason: str, now: datetime) -> Lead:
    status = transition(lead.status, LeadAction.DISQUALIFY, lead_name=lead.name)
    if not reason.strip():
        raise_reason_required()
    return replace(
        lead,
        status=status,
        disqualify_reason=reason.strip(),
        update_time=now,
        version=lead.version + 1,
    )


def raise_reason_required() -> None:
    violations = Violations()
    violations.add("reason", "is required to disqualify a lead")
    violations.raise_if_any("a reason is required")


def convert(lead: Lead, *, customer: str, contact: str, opportunity: str, owner: str, now: datetime) -> Lead:
    status = transition(lead.status, LeadAction.CONVERT, lead_name=lead.name)
    return replace(
        lead,
        status=status,
        owner=lead.owner or owner,
        converted_customer=customer,
        converted_contact=contact,
        converted_opportunity=opportunity,
        convert_time=now,
        update_time=now,
        version=lead.version + 1,
    )


# --- round-robin assignment ------------------------------------------------------------------


@dataclass
class AssignmentRule:
    id: str
    display_name: str
    team: str
    members: list[str]
    source_channels: list[SourceChannel]
    next_index: int
    create_time: datetime
    update_time: datetime
    version: int = 1

    @property
    def name(self) -> str:
        return f"leadAssignmentRules/{self.id}"

    @property
    def next_member(self) -> str:
        return self.members[self.next_index % len(self.members)] if self.members else ""

    def matches(self, channel: SourceChannel | None) -> bool:
        return not self.source_channels or channel in self.source_channels


@dataclass(frozen=True)
class RuleInput:
    display_name: str = ""
    team: str = ""
    members: Sequence[str] = ()
    source_channels: Sequence[SourceChannel] = ()


def new_rule(data: RuleInput, *, rule_id: str, now: datetime, grant: ScopeGrant) -> AssignmentRule:
    violations = Violations()
    team = data.team.strip()
    members = [m.strip() for m in data.members]
    if not team:
        violations.add("rule.team", "is required")
    if not members:
        violations.add("rule.members", "name at least one member")
    for i, member in enumerate(members):
        if not member:
            violations.add(f"rule.members[{i}]", "must not be blank")
    violations.raise_if_any("the assignment rule has invalid fields")
    if grant.scope is Scope.TEAM and team != grant.team:
        raise PermissionDenied(
            f"you can only make rules for your team ({grant.team or 'none'})", reason="TEAM_OUTSIDE_SCOPE"
        )
    return AssignmentRule(
        id=rule_id,
        display_name=data.display_name.strip() or f"{team} round-robin",
        team=team,
        members=members,
        source_channels=list(dict.fromkeys(data.source_channels)),
        next_index=0,
        create_time=now,
        update_time=now,
    )


RULE_WRITABLE_FIELDS = frozenset({"display_name", "team", "members", "source_channels"})
RULE_OUTPUT_ONLY_FIELDS = frozenset({"name", "next_member", "create_time", "update_time", "etag"})


def update_rule(
    current: AssignmentRule, data: RuleInput, fields: frozenset[str], *, now: datetime, grant: ScopeGrant
) -> tuple[AssignmentRule, list[str]]:
    """Apply the named fields; the rotation keeps its next member if they are still a member."""
    violations = Violations()
    changes: dict[str, Any] = {}
    if "display_name" in fields:
        changes["display_name"] = data.display_name.strip() or current.display_name
    if "team" in fields:
        if not data.team.strip():
            violations.add("rule.team", "is required")
        changes["team"] = data.team.strip()
    if "members" in fields:
        members = [m.strip() for m in data.members]
        if not members:
            violations.add("rule.members", "name at least one member")
        for i, member in enumerate(members):
            if not member:
                violations.add(f"rule.members[{i}]", "must not be blank")
        changes["members"] = members
    if "source_channels" in fields:
        changes["source_channels"] = list(dict.fromkeys(data.source_channels))
    violations.raise_if_any("the assignment rule has invalid fields")
    changed = [name for name, value in changes.items() if getattr(current, name) != value]
    if not changed:
        return current, []
    if "team" in changed and grant.scope is Scope.TEAM and changes["team"] != grant.team:
        raise PermissionDenied(
            f"you can only move rules into your team ({grant.team or 'none'})", reason="TEAM_OUTSIDE_SCOPE"
        )
    next_index = current.next_index
    if "members" in changed:
        members = changes["members"]
        following = current.next_member
        next_index = members.index(following) if following in members else current.next_index % len(members)
    updated = replace(current, **changes, next_index=next_index, update_time=now, version=current.version + 1)
    return updated, changed


def round_robin(rule: AssignmentRule, count: int) -> tuple[list[str], int]:
    """The next `count` assignees in turn and the rule's next position afterwards."""
    size = len(rule.members)
    start = rule.next_index % size
    assignees = [rule.members[(start + i) % size] for i in range(count)]
    return assignees, (start + count) % size
