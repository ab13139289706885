"""Tickets: the entity, input rules and the one status machine every change goes through.

Pure functions: a transition takes a Ticket and returns a new one (row_version + 1), or raises
FailedPrecondition naming the statuses it needed. The SLA clocks live elsewhere (service/sla.py);
the rules here only record the moments they are measured from (first response, resolution).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime

from crm_shared.errors import FailedPrecondition, Violations

MAX_SUBJECT = 300
MAX_DESCRIPTION = 20000
MAX_TAGS = 30
MAX_TAG_LENGTH = 64


class TicketStatus(enum.StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"


class TicketPriority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        """Higher is more urgent (ordering and RAISE_PRIORITY)."""
        return PRIORITY_ORDER.index(self)

    def raised(self) -> TicketPriority:
        """One step up; URGENT stays URGENT."""
        return PRIORITY_ORDER[min(self.rank + 1, len(PRIORITY_ORDER) - 1)]


PRIORITY_ORDER = (TicketPriority.LOW, TicketPriority.NORMAL, TicketPriority.HIGH, TicketPriority.URGENT)


class TicketType(enum.StrEnum):
    INQUIRY = "inquiry"
    COMPLAINT = "complaint"
    FEEDBACK = "feedback"
    INCIDENT = "incident"
    REQUEST = "request"


class TicketChannel(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    WEB = "web"
    CHAT = "chat"
    API = "api"


class SnapshotState(enum.StrEnum):
    NONE = "none"  # no customer on the ticket
    PENDING = "pending"  # the customer service did not answer in time; a timer retries
    FETCHED = "fetched"
    NOT_FOUND = "not_found"  # the customer does not exist (or was erased)


# Statuses in which the ticket still needs work (open tickets of an agent, SLA clocks running).
ACTIVE_STATUSES = frozenset({TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING})


@dataclass(kw_only=True)
class Ticket:
    id: str
    number: str
    subject: str
    requester: str
    create_time: datetime
    update_time: datetime
    type: TicketType = TicketType.INQUIRY
    channel: TicketChannel = TicketChannel.API
    description: str = ""
    priority: TicketPriority = TicketPriority.NORMAL
    status: TicketStatus = TicketStatus.NEW
    customer: str = ""  # "customers/{id}" or ""
    contact: str = ""  # "customers/{id}/contacts/{id}" or ""
    assignee: str = ""
    team: str = ""
    tags: list[str] = field(default_factory=list)
    # The customer snapshot (non-sensitive attributes from the customer service).
    snapshot_state: SnapshotState = SnapshotState.NONE
    customer_name: str = ""
    customer_tier: str = ""
    customer_lifecycle: str = ""
    customer_owner: str = ""
    customer_team: str = ""
    snapshot_time: datetime | None = None
    first_response_time: datetime | None = None
    resolve_time: datetime | None = None
    close_time: datetime | None = None
    reopen_count: int = 0
    public_agent_replies: int = 0
    pending_reason: str = ""  # why on hold / why reopened (latest)
    resolution: str = ""
    row_version: int = 1  # optimistic concurrency (etag), bumps on every write

    @property
    def name(self) -> str:
        return f"tickets/{self.id}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True)
class TicketComment:
    id: str
    ticket_id: str
    body: str
    internal: bool
    author: str
    from_customer: bool
    create_time: datetime

    @property
    def name(self) -> str:
        return f"tickets/{self.ticket_id}/comments/{self.id}"


# --- the status machine ---------------------------------------------------------------------------

# action -> (statuses it is allowed from, status it leads to; None = the status stays)
TRANSITIONS: dict[str, tuple[frozenset[TicketStatus], TicketStatus | None]] = {
    "update": (frozenset(ACTIVE_STATUSES | {TicketStatus.RESOLVED}), None),
    "assign": (frozenset(ACTIVE_STATUSES | {TicketStatus.RESOLVED}), None),
    "comment": (frozenset(ACTIVE_STATUSES | {TicketStatus.RESOLVED}), None),
    "open": (frozenset({TicketStatus.NEW}), TicketStatus.OPEN),
    "hold": (frozenset({TicketStatus.NEW, TicketStatus.OPEN}), TicketStatus.PENDING),
    "resume": (frozenset({TicketStatus.PENDING}), TicketStatus.OPEN),
    "resolve": (frozenset(ACTIVE_STATUSES), TicketStatus.RESOLVED),
    "close": (frozenset({TicketStatus.RESOLVED}), TicketStatus.CLOSED),
    "reopen": (frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED}), TicketStatus.OPEN),
}

# The actions that move the status (what a caller can ask for; the rest keep it).
STATUS_ACTIONS = ("open", "hold", "resume", "resolve", "close", "reopen")


def allowed(ticket: Ticket, action: str) -> bool:
    return ticket.status in TRANSITIONS[action][0]


def require_status(ticket: Ticket, action: str) -> None:
    """FailedPrecondition TICKET_NOT_<ALLOWED…> when `action` is not allowed in the current status."""
    statuses, _target = TRANSITIONS[action]
    if ticket.status not in statuses:
        names = sorted(statuses, key=list(TicketStatus).index)
        raise FailedPrecondition(
            f"cannot {action} {ticket.name}: it is {ticket.status.value}; "
            f"{action} needs {' or '.join(s.value for s in names)}",
            reason=f"TICKET_NOT_{'_OR_'.join(s.name for s in names)}",
            metadata={"resource": ticket.name, "status": ticket.status.value, "action": action},
        )


def touched(ticket: Ticket, now: datetime, **changes) -> Ticket:
    """A new version of the ticket (any write bumps row_version and update_time)."""
    return replace(ticket, update_time=now, row_version=ticket.row_version + 1, **changes)


def _moved(ticket: Ticket, action: str, now: datetime, **changes) -> Ticket:
    require_status(ticket, action)
    target = TRANSITIONS[action][1] or ticket.status
    return touched(ticket, now, status=target, **changes)


def open_ticket(ticket: Ticket, now: datetime) -> Ticket:
    """NEW -> OPEN (assignment or an agent's first public reply); any other status stays."""
    return _moved(ticket, "open", now) if ticket.status is TicketStatus.NEW else ticket


def hold(ticket: Ticket, now: datetime, *, reason: str = "") -> Ticket:
    return _moved(ticket, "hold", now, pending_reason=reason.strip())


def resume(ticket: Ticket, now: datetime) -> Ticket:
    return _moved(ticket, "resume", now)


def resolve(ticket: Ticket, now: datetime, *, resolution: str = "") -> Ticket:
    return _moved(ticket, "resolve", now, resolve_time=now, resolution=resolution.strip())


def close(ticket: Ticket, now: datetime) -> Ticket:
    return _moved(ticket, "close", now, close_time=now)


def reopen(ticket: Ticket, now: datetime, *, reason: str) -> Ticket:
    """RESOLVED|CLOSED -> OPEN; the resolution is kept as history until the next resolve."""
    return _moved(
        ticket,
        "reopen",
        now,
        reopen_count=ticket.reopen_count + 1,
        pending_reason=reason.strip(),
        resolve_time=None,
        close_time=None,
    )


def assigned(ticket: Ticket, now: datetime, *, team: str, assignee: str) -> Ticket:
    """The ticket moved to `team`/`assignee`; NEW -> OPEN when someone now works on it."""
    require_status(ticket, "assign")
    moved = touched(ticket, now, team=team, assignee=assignee)
    if assignee and moved.status is TicketStatus.NEW:
        moved = replace(moved, status=TicketStatus.OPEN)
    return moved


def agent_replied(ticket: Ticket, now: datetime) -> Ticket:
    """An agent's public reply: first response recorded once, NEW -> OPEN."""
    require_status(ticket, "comment")
    status = TicketStatus.OPEN if ticket.status is TicketStatus.NEW else ticket.status
    return touched(
        ticket,
        now,
        status=status,
        first_response_time=ticket.first_response_time or now,
        public_agent_replies=ticket.public_agent_replies + 1,
    )


def customer_replied(ticket: Ticket, now: datetime) -> Ticket:
    """A customer's reply: a PENDING ticket (waiting on the customer) resumes."""
    require_status(ticket, "comment")
    status = TicketStatus.OPEN if ticket.status is TicketStatus.PENDING else ticket.status
    return touched(ticket, now, status=status)


# --- input rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketInput:
    """What a caller may set (None: not given, the default applies on create)."""

    subject: str = ""
    description: str = ""
    type: TicketType | None = None
    channel: TicketChannel | None = None
    priority: TicketPriority | None = None
    customer: str = ""
    contact: str = ""
    team: str = ""
    tags: list[str] = field(default_factory=list)


def normalized_tags(tags: list[str], *, path: str, violations: Violations) -> list[str]:
    """Trimmed, lower-case, de-duplicated in order."""
    result: list[str] = []
    for index, tag in enumerate(tags):
        value = tag.strip().lower()
        if not value or len(value) > MAX_TAG_LENGTH:
            violations.add(f"{path}.tags[{index}]", f"must be 1 to {MAX_TAG_LENGTH} characters")
        elif value not in result:
            result.append(value)
    if len(result) > MAX_TAGS:
        violations.add(f"{path}.tags", f"at most {MAX_TAGS} tags")
    return result


def check_contact(customer: str, contact: str, *, path: str, violations: Violations) -> None:
    if contact and (not customer or not contact.startswith(f"{customer}/contacts/")):
        violations.add(f"{path}.contact", "must be a contact of the ticket's customer")


def new_ticket(
    data: TicketInput,
    *,
    ticket_id: str,
    number: str,
    requester: str,
    now: datetime,
    violations: Violations,
) -> Ticket:
    """A NEW ticket; the snapshot state is NONE without a customer, PENDING until fetched."""
    path = "ticket"
    subject = data.subject.strip()
    if not subject:
        violations.add(f"{path}.subject", "is required")
    elif len(subject) > MAX_SUBJECT:
        violations.add(f"{path}.subject", f"at most {MAX_SUBJECT} characters")
    if len(data.description) > MAX_DESCRIPTION:
        violations.add(f"{path}.description", f"at most {MAX_DESCRIPTION} characters")
    check_contact(data.customer, data.contact, path=path, violations=violations)
    tags = normalized_tags(list(data.tags), path=path, violations=violations)
    violations.raise_if_any("the ticket has invalid fields")
    return Ticket(
        id=ticket_id,
        number=number,
        subject=subject,
        description=data.description,
        type=data.type or TicketType.INQUIRY,
        channel=data.channel or TicketChannel.API,
        priority=data.priority or TicketPriority.NORMAL,
        customer=data.customer,
        contact=data.contact,
        team=data.team,
        tags=tags,
        requester=requester,
        snapshot_state=SnapshotState.PENDING if data.customer else SnapshotState.NONE,
        create_time=now,
        update_time=now,
    )


# API field name -> Ticket attribute (UpdateTicket's writable fields).
UPDATABLE_FIELDS = ("subject", "description", "type", "channel", "priority", "tags", "customer", "contact")


def update_ticket(
    current: Ticket, data: TicketInput, fields: frozenset[str], *, now: datetime, violations: Violations
) -> tuple[Ticket, list[str]]:
    """Apply the named API fields; returns the new state and the fields that really changed."""
    require_status(current, "update")
    path = "ticket"
    changes: dict[str, object] = {}
    if "subject" in fields:
        subject = data.subject.strip()
        if not subject:
            violations.add(f"{path}.subject", "must not be empty")
        elif len(subject) > MAX_SUBJECT:
            violations.add(f"{path}.subject", f"at most {MAX_SUBJECT} characters")
        changes["subject"] = subject
    if "description" in fields:
        if len(data.description) > MAX_DESCRIPTION:
            violations.add(f"{path}.description", f"at most {MAX_DESCRIPTION} characters")
        changes["description"] = data.description
    if "type" in fields:
        changes["type"] = data.type or TicketType.INQUIRY
    if "channel" in fields:
        changes["channel"] = data.channel or TicketChannel.API
    if "priority" in fields:
        changes["priority"] = data.priority or TicketPriority.NORMAL
    if "tags" in fields:
        changes["tags"] = normalized_tags(list(data.tags), path=path, violations=violations)
    if "customer" in fields:
        changes["customer"] = data.customer
    if "contact" in fields or "customer" in fields:
        contact = data.contact if "contact" in fields else current.contact
        if "customer" in fields and "contact" not in fields and data.customer != current.customer:
            contact = ""  # a contact of the former customer no longer applies
        check_contact(changes.get("customer", current.customer), contact, path=path, violations=violations)
        changes["contact"] = contact
    violations.raise_if_any("the ticket has invalid fields")
    changed = [name for name, value in changes.items() if getattr(current, name) != value]
    if not changed:
        return current, []
    updated = touched(current, now, **{name: changes[name] for name in changed})
    if "customer" in changed:
        updated = with_customer_changed(updated)
    return updated, changed


def with_customer_changed(ticket: Ticket) -> Ticket:
    """The customer changed: the old snapshot no longer describes it (fetched again)."""
    return replace(
        ticket,
        snapshot_state=SnapshotState.PENDING if ticket.customer else SnapshotState.NONE,
        customer_name="",
        customer_tier="",
        customer_lifecycle="",
        customer_owner="",
        customer_team="",
        snapshot_time=None,
    )


# --- the customer snapshot ------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerFacts:
    """What the customer service told us (non-sensitive attributes only)."""

    display_name: str
    tier: str
    lifecycle_stage: str
    owner: str
    team: str


def snapshot_fetched(ticket: Ticket, facts: CustomerFacts, now: datetime) -> Ticket:
    return touched(
        ticket,
        now,
        snapshot_state=SnapshotState.FETCHED,
        customer_name=facts.display_name,
        customer_tier=facts.tier,
        customer_lifecycle=facts.lifecycle_stage,
        customer_owner=facts.owner,
        customer_team=facts.team,
        snapshot_time=now,
    )


def snapshot_not_found(ticket: Ticket, now: datetime) -> Ticket:
    """The customer does not exist or was erased: no personal attributes are kept."""
    return touched(
        ticket,
        now,
        snapshot_state=SnapshotState.NOT_FOUND,
        customer_name="",
        customer_tier="",
        customer_lifecycle="",
        customer_owner="",
        customer_team="",
        snapshot_time=now,
    )


def moved_to_customer(ticket: Ticket, survivor: str, now: datetime) -> Ticket:
    """CustomerMerged: the ticket now belongs to the surviving customer (contacts are re-homed)."""
    contact = ticket.contact
    if contact.startswith(f"{ticket.customer}/contacts/"):
        contact = survivor + contact[len(ticket.customer) :]
    return touched(ticket, now, customer=survivor, contact=contact)
