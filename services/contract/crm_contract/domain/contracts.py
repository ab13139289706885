"""Contracts: the entity, input rules and the one status machine every change goes through.

Pure functions: a transition takes a Contract and returns a new one, or raises
FailedPrecondition naming the status it needed. The balance fields (received,
credit, pending_approval, overdue) are maintained only by the payment code; the
rules here never touch them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

from crm_shared.access import Scope, ScopeGrant
from crm_shared.errors import FailedPrecondition, PermissionDenied, Violations

MAX_AMOUNT = 10**15
MAX_LINE_ITEMS = 200
DEFAULT_CONTRACT_TYPE = "standard"
DEFAULT_RENEWAL_NOTICE_DAYS = 30


class ContractStatus(enum.StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    ACTIVE = "active"
    EXPIRED = "expired"
    TERMINATED = "terminated"


TERMINAL_STATUSES = frozenset({ContractStatus.EXPIRED, ContractStatus.TERMINATED})


@dataclass(frozen=True)
class LineItem:
    description: str
    quantity: int
    unit_price: int  # minor units of the contract's currency
    product: str = ""

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_price


@dataclass(kw_only=True)
class Contract:
    id: str
    number: str
    customer: str
    currency: str
    owner: str
    team: str
    create_time: datetime
    update_time: datetime
    opportunity: str = ""
    title: str = ""
    contract_type: str = DEFAULT_CONTRACT_TYPE
    amount: int = 0
    line_items: list[LineItem] = field(default_factory=list)
    signed_date: date | None = None
    start_date: date | None = None
    end_date: date | None = None
    payment_terms: str = ""
    customer_signer: str = ""
    company_signer: str = ""
    status: ContractStatus = ContractStatus.DRAFT
    approval_id: str = ""  # the latest approval, once submitted
    renewal_of: str = ""  # contract id this one renews
    renewed_by: str = ""  # contract id of its renewal
    renewal_notice_days: int = DEFAULT_RENEWAL_NOTICE_DAYS
    termination_reason: str = ""
    attachments: list[str] = field(default_factory=list)
    notes: str = ""
    won_opportunity: str | None = None  # set only on drafts made from a won opportunity
    # The balance, in minor units: maintained only by the payment code.
    received: int = 0
    credit: int = 0
    pending_approval: int = 0
    overdue: int = 0
    row_version: int = 1  # optimistic concurrency (etag), bumps on every write

    @property
    def name(self) -> str:
        return f"contracts/{self.id}"

    @property
    def outstanding(self) -> int:
        return self.amount - self.received


# --- the status machine ---------------------------------------------------------------------------

# action -> (statuses it is allowed from, status it leads to; None = the status stays)
TRANSITIONS: dict[str, tuple[frozenset[ContractStatus], ContractStatus | None]] = {
    "update": (frozenset({ContractStatus.DRAFT, ContractStatus.REJECTED}), ContractStatus.DRAFT),
    "delete": (frozenset({ContractStatus.DRAFT}), None),
    "submit": (
        frozenset({ContractStatus.DRAFT, ContractStatus.REJECTED}),
        ContractStatus.PENDING_APPROVAL,
    ),
    "approve": (frozenset({ContractStatus.PENDING_APPROVAL}), ContractStatus.APPROVED),
    "reject": (frozenset({ContractStatus.PENDING_APPROVAL}), ContractStatus.REJECTED),
    "withdraw": (frozenset({ContractStatus.PENDING_APPROVAL}), ContractStatus.DRAFT),
    "sign": (frozenset({ContractStatus.APPROVED}), ContractStatus.ACTIVE),
    "terminate": (frozenset({ContractStatus.ACTIVE}), ContractStatus.TERMINATED),
    "expire": (frozenset({ContractStatus.ACTIVE}), ContractStatus.EXPIRED),
    "renew": (frozenset({ContractStatus.ACTIVE, ContractStatus.EXPIRED}), None),
}


def require_status(contract: Contract, action: str) -> None:
    """FailedPrecondition CONTRACT_NOT_<ALLOWED…> when `action` is not allowed in the current status."""
    allowed, _target = TRANSITIONS[action]
    if contract.status not in allowed:
        names = sorted(allowed, key=list(ContractStatus).index)
        raise FailedPrecondition(
            f"cannot {action} {contract.name}: it is {contract.status.value}; "
            f"{action} needs {' or '.join(s.value for s in names)}",
            reason=f"CONTRACT_NOT_{'_OR_'.join(s.name for s in names)}",
            metadata={"resource": contract.name, "status": contract.status.value, "action": action},
        )


def _moved(contract: Contract, action: str, now: datetime, **changes) -> Contract:
    require_status(contract, action)
    target = TRANSITIONS[action][1] or contract.status
    return replace(contract, status=target, update_time=now, row_version=contract.row_version + 1, **changes)


def submit(contract: Contract, now: datetime, *, approval_id: str | None = None) -> Contract:
    """DRAFT|REJECTED -> PENDING_APPROVAL; needs start/end dates and a positive amount."""
    require_status(contract, "submit")
    missing = [
        what
        for what, ok in (
            ("start_date", contract.start_date is not None),
            ("end_date", contract.end_date is not None),
            ("a positive amount", contract.amount > 0),
        )
        if not ok
    ]
    if missing:
        raise FailedPrecondition(
            f"{contract.name} is not ready to submit: it needs {', '.join(missing)}",
            reason="CONTRACT_INCOMPLETE",
            metadata={"resource": contract.name, "missing": ",".join(missing)},
        )
    changes = {} if approval_id is None else {"approval_id": approval_id}
    return _moved(contract, "submit", now, **changes)


def approve(contract: Contract, now: datetime) -> Contract:
    return _moved(contract, "approve", now)


def reject(contract: Contract, now: datetime) -> Contract:
    return _moved(contract, "reject", now)


def withdraw(contract: Contract, now: datetime) -> Contract:
    return _moved(contract, "withdraw", now)


def sign(
    contract: Contract,
    now: datetime,
    *,
    signed_date: date | None = None,
    customer_signer: str = "",
    company_signer: str = "",
) -> Contract:
    """APPROVED -> ACTIVE; the signed date defaults to today (UTC), signers override when given."""
    return _moved(
        contract,
        "sign",
        now,
        signed_date=signed_date or now.astimezone(UTC).date(),
        customer_signer=customer_signer or contract.customer_signer,
        company_signer=company_signer or contract.company_signer,
    )


def terminate(contract: Contract, now: datetime, *, reason: str) -> Contract:
    return _moved(contract, "terminate", now, termination_reason=reason.strip())


def expire(contract: Contract, now: datetime) -> Contract:
    return _moved(contract, "expire", now)


def check_deletable(contract: Contract) -> None:
    require_status(contract, "delete")
    if contract.approval_id:
        raise FailedPrecondition(
            f"{contract.name} was submitted for approval and is kept for its history",
            reason="CONTRACT_ALREADY_SUBMITTED",
            metadata={"resource": contract.name, "approval": f"approvals/{contract.approval_id}"},
        )


def check_renewable(contract: Contract) -> None:
    """ACTIVE or EXPIRED, and not renewed yet: one renewal per contract."""
    require_status(contract, "renew")
    if contract.renewed_by:
        raise FailedPrecondition(
            f"{contract.name} was already renewed by contracts/{contract.renewed_by}",
            reason="CONTRACT_ALREADY_RENEWED",
            metadata={"resource": contract.name, "renewed_by": f"contracts/{contract.renewed_by}"},
        )


def renewal_dropped(contract: Contract, now: datetime) -> Contract:
    """Its renewal draft was deleted: the contract may be renewed again (status unchanged)."""
    return replace(contract, renewed_by="", update_time=now, row_version=contract.row_version + 1)


def mark_renewed(contract: Contract, now: datetime, *, renewal_id: str) -> Contract:
    """Links an ACTIVE or EXPIRED contract to its one renewal (status unchanged)."""
    check_renewable(contract)
    return _moved(contract, "renew", now, renewed_by=renewal_id)


# --- input rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContractInput:
    """What a caller may set; amount None = not given (then the sum of line_items)."""

    customer: str = ""
    opportunity: str = ""
    title: str = ""
    contract_type: str = ""
    currency: str = ""
    amount: int | None = None
    line_items: list[LineItem] = field(default_factory=list)
    start_date: date | None = None
    end_date: date | None = None
    payment_terms: str = ""
    customer_signer: str = ""
    company_signer: str = ""
    owner: str = ""
    team: str = ""
    renewal_notice_days: int = DEFAULT_RENEWAL_NOTICE_DAYS
    attachments: list[str] = field(default_factory=list)
    notes: str = ""


def contract_amount(
    amount: int | None, line_items: Sequence[LineItem], *, path: str, violations: Violations
) -> int:
    """The contract's amount: the line items' sum when there are any (a different amount is invalid)."""
    if len(line_items) > MAX_LINE_ITEMS:
        violations.add(f"{path}.line_items", f"at most {MAX_LINE_ITEMS} line items")
    for index, item in enumerate(line_items):
        if not item.description.strip():
            violations.add(f"{path}.line_items[{index}].description", "is required")
        if item.quantity < 1:
            violations.add(f"{path}.line_items[{index}].quantity", "must be at least 1")
        if item.unit_price < 0:
            violations.add(f"{path}.line_items[{index}].unit_price_minor", "must not be negative")
    total = sum(item.amount for item in line_items)
    if line_items and amount is not None and amount != total:
        violations.add(
            f"{path}.amount.amount_minor", f"must equal the sum of the line items ({total}) or be omitted"
        )
    value = total if line_items else (amount or 0)
    if value < 0:
        violations.add(f"{path}.amount.amount_minor", "must not be negative")
    if value > MAX_AMOUNT:
        violations.add(f"{path}.amount.amount_minor", f"must be at most {MAX_AMOUNT}")
    return value


def check_dates(start: date | None, end: date | None, *, path: str, violations: Violations) -> None:
    if start is not None and end is not None and end < start:
        violations.add(f"{path}.end_date" if path else "end_date", "must not be before start_date")


def check_ownership(grant: ScopeGrant, *, owner: str, team: str) -> None:
    """A caller may only create or move a contract into their own scope."""
    if grant.scope is Scope.OWN and owner != grant.subject:
        raise PermissionDenied(
            "you can only own contracts yourself; ask a manager to assign one to someone else",
            reason="OWNER_OUTSIDE_SCOPE",
        )
    if grant.scope is Scope.TEAM and team != grant.team:
        raise PermissionDenied(
            f"you can only place contracts in your team ({grant.team or 'none'})", reason="TEAM_OUTSIDE_SCOPE"
        )


def new_contract(
    data: ContractInput,
    *,
    contract_id: str,
    number: str,
    now: datetime,
    violations: Violations,
    won_opportunity: str | None = None,
    renewal_of: str = "",
) -> Contract:
    """A DRAFT contract; the caller has defaulted owner/team and checked ownership."""
    path = "contract"
    if not data.customer:
        violations.add(f"{path}.customer", "is required")
    if len(data.currency) != 3 or not data.currency.isalpha() or not data.currency.isupper():
        violations.add(f"{path}.amount.currency_code", "is required: a 3-letter ISO 4217 code")
    if not data.line_items and data.amount is None:
        violations.add(f"{path}.amount", "is required (or give line_items)")
    amount = contract_amount(data.amount, data.line_items, path=path, violations=violations)
    check_dates(data.start_date, data.end_date, path=path, violations=violations)
    if not 0 <= data.renewal_notice_days <= 365:
        violations.add(f"{path}.renewal_notice_days", "must be between 0 and 365")
    violations.raise_if_any("the contract has invalid fields")
    return Contract(
        id=contract_id,
        number=number,
        customer=data.customer,
        opportunity=data.opportunity,
        title=data.title.strip(),
        contract_type=data.contract_type or DEFAULT_CONTRACT_TYPE,
        currency=data.currency,
        amount=amount,
        line_items=list(data.line_items),
        start_date=data.start_date,
        end_date=data.end_date,
        payment_terms=data.payment_terms,
        customer_signer=data.customer_signer,
        company_signer=data.company_signer,
        owner=data.owner,
        team=data.team,
        renewal_notice_days=data.renewal_notice_days,
        attachments=list(data.attachments),
        notes=data.notes,
        won_opportunity=won_opportunity,
        renewal_of=renewal_of,
        create_time=now,
        update_time=now,
    )


# API field name -> Contract attribute.
UPDATABLE_FIELDS = {
    "title": "title",
    "contract_type": "contract_type",
    "amount": "amount",
    "line_items": "line_items",
    "start_date": "start_date",
    "end_date": "end_date",
    "payment_terms": "payment_terms",
    "customer_signer": "customer_signer",
    "company_signer": "company_signer",
    "renewal_notice_days": "renewal_notice_days",
    "attachments": "attachments",
    "notes": "notes",
    "owner": "owner",
    "team": "team",
}


def update_contract(
    current: Contract,
    data: ContractInput,
    fields: frozenset[str],
    *,
    now: datetime,
    grant: ScopeGrant,
    violations: Violations,
) -> tuple[Contract, list[str]]:
    """Apply the named API fields to a DRAFT or REJECTED contract (a REJECTED one becomes DRAFT).

    Returns the new state and the API fields that changed. Changing the line items re-derives
    the amount; changing only the amount of a contract with line items must match their sum.
    """
    require_status(current, "update")
    path = "contract"
    changes: dict[str, object] = {}
    for api_name in ("title", "payment_terms", "customer_signer", "company_signer", "notes"):
        if api_name in fields:
            value = getattr(data, api_name)
            changes[api_name] = value.strip() if api_name == "title" else value
    if "contract_type" in fields:
        changes["contract_type"] = data.contract_type or DEFAULT_CONTRACT_TYPE
    if "attachments" in fields:
        changes["attachments"] = list(data.attachments)
    if "renewal_notice_days" in fields:
        if not 0 <= data.renewal_notice_days <= 365:
            violations.add(f"{path}.renewal_notice_days", "must be between 0 and 365")
        changes["renewal_notice_days"] = data.renewal_notice_days
    if "start_date" in fields:
        changes["start_date"] = data.start_date
    if "end_date" in fields:
        changes["end_date"] = data.end_date
    if "line_items" in fields or "amount" in fields:
        items = list(data.line_items) if "line_items" in fields else list(current.line_items)
        # Dropping every line item keeps the amount unless a new one is given.
        amount = data.amount if "amount" in fields else (None if items else current.amount)
        if "amount" in fields and data.currency and data.currency != current.currency:
            violations.add(
                f"{path}.amount.currency_code", f"must be the contract's currency {current.currency}"
            )
        if "amount" in fields and not items and amount is None:
            violations.add(f"{path}.amount", "is required")
        changes["line_items"] = items
        changes["amount"] = contract_amount(amount, items, path=path, violations=violations)
    if "owner" in fields:
        changes["owner"] = data.owner.strip() or current.owner
    if "team" in fields:
        changes["team"] = data.team.strip() or current.team
    check_dates(
        changes.get("start_date", current.start_date),
        changes.get("end_date", current.end_date),
        path=path,
        violations=violations,
    )
    violations.raise_if_any("the contract has invalid fields")
    changed = [name for name, value in changes.items() if getattr(current, name) != value]
    if {"owner", "team"} & set(changed):
        if grant.scope is Scope.OWN:
            raise PermissionDenied(
                "sales reps cannot hand a contract to someone else", reason="OWNER_CHANGE_NOT_ALLOWED"
            )
        check_ownership(
            grant, owner=changes.get("owner", current.owner), team=changes.get("team", current.team)
        )
    if not changed and current.status is ContractStatus.DRAFT:
        return current, []
    updated = _moved(current, "update", now, **{name: changes[name] for name in changed})
    return updated, changed


# --- renewal and expiry moments -------------------------------------------------------------------


def start_of_day(day: date) -> datetime:
    """00:00 UTC of a calendar date."""
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


def renewal_due_at(contract: Contract) -> datetime | None:
    """When ContractRenewalDue is published: renewal_notice_days before end_date, 00:00 UTC."""
    if contract.end_date is None:
        return None
    return start_of_day(contract.end_date - timedelta(days=contract.renewal_notice_days))


def expires_at(contract: Contract) -> datetime | None:
    """The day after end_date, 00:00 UTC (end_date is the last day in force)."""
    if contract.end_date is None:
        return None
    return start_of_day(contract.end_date + timedelta(days=1))


def days_left(contract: Contract, now: datetime) -> int:
    """Whole UTC days from today until end_date (0 on the last day)."""
    if contract.end_date is None:
        return 0
    return max(0, (contract.end_date - now.astimezone(UTC).date()).days)


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    following = date(year + (month == 12), month % 12 + 1, 1)
    return date(year, month, min(day.day, (following - timedelta(days=1)).day))


def same_term_end(old_start: date, old_end: date, new_start: date) -> date:
    """The last day of a term starting at new_start as long as old_start..old_end in calendar terms.

    Whole months carry over as months (a year stays a year across a leap day), the rest as days.
    """
    after = old_end + timedelta(days=1)
    months = (after.year - old_start.year) * 12 + after.month - old_start.month
    if add_months(old_start, months) > after:
        months -= 1
    extra_days = (after - add_months(old_start, months)).days
    return add_months(new_start, months) + timedelta(days=extra_days - 1)


@dataclass(frozen=True)
class RenewalTerms:
    start_date: date
    end_date: date
    amount: int


def renewal_terms(
    contract: Contract,
    *,
    start_date: date | None,
    end_date: date | None,
    amount: int | None,
    currency: str = "",
) -> RenewalTerms:
    """Defaults: the day after the old end_date, the old contract's length, the old amount."""
    violations = Violations()
    if currency and currency != contract.currency:
        violations.add("amount.currency_code", f"must be the contract's currency {contract.currency}")
    if contract.end_date is None or contract.start_date is None:
        raise FailedPrecondition(
            f"{contract.name} has no start/end dates to renew from",
            reason="CONTRACT_INCOMPLETE",
            metadata={"resource": contract.name},
        )
    start = start_date or contract.end_date + timedelta(days=1)
    end = end_date or same_term_end(contract.start_date, contract.end_date, start)
    check_dates(start, end, path="", violations=violations)
    value = contract.amount if amount is None else amount
    if not 0 <= value <= MAX_AMOUNT:
        violations.add("amount.amount_minor", f"must be between 0 and {MAX_AMOUNT}")
    violations.raise_if_any("the renewal has invalid fields")
    return RenewalTerms(start_date=start, end_date=end, amount=value)
