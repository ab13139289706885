"""Public pool (公海) rules: pure functions over exact UTC datetimes (no whole-day truncation).

Reclaim deadline of an owned customer governed by a pool:
    min(later of last follow-up and assignment + follow-up days of its tier,
        later of last deal and assignment      + deal days of its tier)
A rule with 0 days is off. A locked customer is never reclaimed; with
exempt_with_deal a customer that has a won deal is exempt from the follow-up
rule (the deal rule, if any, still applies). The owner is warned warn_days
before the deadline.

Claim limits: "per day" is a rolling 24 hours before the claim (no calendar or
time zone needed, and a limit cannot be doubled around midnight); the cooldown
runs from the moment the former owner lost the customer (release or reclaim).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from crm_customer.domain.model import Customer, CustomerStatus, Tier
from crm_shared.errors import FailedPrecondition, InvalidArgument, ResourceExhausted

DAY = timedelta(days=1)
CLAIM_WINDOW = timedelta(hours=24)


class OwnershipReason(enum.StrEnum):
    CLAIMED = "claimed"
    ASSIGNED = "assigned"
    RELEASED = "released"
    RECLAIMED = "reclaimed"
    TRANSFERRED = "transferred"


class ReleaseReason(enum.StrEnum):
    NO_INTEREST = "no_interest"
    NO_BUDGET = "no_budget"
    UNREACHABLE = "unreachable"
    DUPLICATE = "duplicate"
    WORKLOAD = "workload"
    OTHER = "other"


# Reasons after which the previous owner is a "former owner" subject to the cooldown.
LOSING_REASONS = (OwnershipReason.RELEASED, OwnershipReason.RECLAIMED)


@dataclass(frozen=True)
class ReclaimRule:
    follow_up_days: int = 0
    deal_days: int = 0


@dataclass(frozen=True)
class PoolRules:
    # Keyed by tier; None is the default for tiers without a rule of their own.
    reclaim: dict[Tier | None, ReclaimRule] = field(default_factory=dict)
    exempt_with_deal: bool = False
    warn_days_before: int = 0
    max_customers_per_user: int = 0
    max_claims_per_day: int = 0
    reclaim_cooldown_days: int = 0

    def rule_for(self, tier: Tier | None) -> ReclaimRule:
        return self.reclaim.get(tier) or self.reclaim.get(None) or ReclaimRule()


@dataclass
class Pool:
    id: str
    display_name: str
    team: str
    create_time: datetime
    update_time: datetime
    member_users: list[str] = field(default_factory=list)
    member_teams: list[str] = field(default_factory=list)
    rules: PoolRules = field(default_factory=PoolRules)
    version: int = 1

    @property
    def name(self) -> str:
        return f"pools/{self.id}"

    def is_member(self, user: str, team: str) -> bool:
        return user in self.member_users or (bool(team) and team in self.member_teams)


@dataclass(frozen=True)
class PoolInput:
    display_name: str = ""
    team: str = ""
    member_users: list[str] = field(default_factory=list)
    member_teams: list[str] = field(default_factory=list)
    rules: PoolRules = field(default_factory=PoolRules)


POOL_WRITABLE_FIELDS = frozenset({"display_name", "member_users", "member_teams", "rules"})
POOL_OUTPUT_ONLY_FIELDS = frozenset({"name", "create_time", "update_time", "etag", "team"})


def new_pool(data: PoolInput, *, pool_id: str, now: datetime, team: str) -> Pool:
    if not data.display_name.strip():
        raise InvalidArgument.for_field("pool.display_name", "is required")
    return Pool(
        id=pool_id,
        display_name=data.display_name.strip(),
        team=team,
        create_time=now,
        update_time=now,
        member_users=list(dict.fromkeys(data.member_users)),
        member_teams=list(dict.fromkeys(data.member_teams)),
        rules=data.rules,
    )


def update_pool(current: Pool, data: PoolInput, fields: set[str], *, now: datetime) -> tuple[Pool, list[str]]:
    changes: dict = {}
    if "display_name" in fields:
        if not data.display_name.strip():
            raise InvalidArgument.for_field("pool.display_name", "may not be empty")
        changes["display_name"] = data.display_name.strip()
    if "member_users" in fields:
        changes["member_users"] = list(dict.fromkeys(data.member_users))
    if "member_teams" in fields:
        changes["member_teams"] = list(dict.fromkeys(data.member_teams))
    if "rules" in fields:
        changes["rules"] = data.rules
    changed = sorted(name for name, value in changes.items() if getattr(current, name) != value)
    if not changed:
        return current, []
    return replace(current, **changes, update_time=now, version=current.version + 1), changed


# --- deadlines ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReclaimDeadline:
    at: datetime
    clause: str  # "no_follow_up" | "no_deal"


def reclaim_deadline(customer: Customer, rules: PoolRules) -> ReclaimDeadline | None:
    """When the pool takes `customer` back if nothing happens; None when it never will."""
    if customer.status is not CustomerStatus.OWNED or customer.locked or not customer.pool_id:
        return None
    start = customer.assign_time or customer.create_time
    rule = rules.rule_for(customer.tier)
    candidates: list[ReclaimDeadline] = []
    exempt_from_follow_up = rules.exempt_with_deal and customer.last_deal_time is not None
    if rule.follow_up_days > 0 and not exempt_from_follow_up:
        since = max(start, customer.last_follow_up_time or start)
        candidates.append(ReclaimDeadline(since + rule.follow_up_days * DAY, "no_follow_up"))
    if rule.deal_days > 0:
        since = max(start, customer.last_deal_time or start)
        candidates.append(ReclaimDeadline(since + rule.deal_days * DAY, "no_deal"))
    return min(candidates, key=lambda d: d.at) if candidates else None


def warning_time(deadline: datetime, rules: PoolRules, *, now: datetime) -> datetime | None:
    """When to warn the owner of a deadline; None when warnings are off or the deadline is past."""
    if rules.warn_days_before <= 0 or deadline <= now:
        return None
    return max(now, deadline - rules.warn_days_before * DAY)


# --- claims ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimContext:
    """What the claim checks need to know besides the pool and the customer."""

    user: str
    team: str
    now: datetime
    customers_held: int  # customers the user owns now
    claims_last_24h: int  # claims from this pool by the user in (now - 24 h, now]
    lost_at: datetime | None  # when this user last lost this customer (release / reclaim), if ever


def check_claim(pool: Pool, customer: Customer, ctx: ClaimContext) -> None:
    """Raises the first claim rule `ctx.user` (a member of `pool`) would break by claiming `customer`.

    Membership is checked by the caller: to a non-member the pool's customers do not exist.
    """
    if customer.status is CustomerStatus.OWNED:
        raise FailedPrecondition(f"{customer.name} already has an owner", reason="CUSTOMER_ALREADY_CLAIMED")
    if customer.status is not CustomerStatus.IN_POOL or customer.pool_id != pool.id:
        raise FailedPrecondition(f"{customer.name} is not in {pool.name}", reason="CUSTOMER_NOT_IN_POOL")
    rules = pool.rules
    if ctx.lost_at is not None and rules.reclaim_cooldown_days > 0:
        until = ctx.lost_at + rules.reclaim_cooldown_days * DAY
        if ctx.now < until:
            raise FailedPrecondition(
                f"you gave up {customer.name} recently; you may claim it again from {until.isoformat()}",
                reason="CLAIM_COOLDOWN",
                metadata={"claimable_from": until.isoformat()},
            )
    if rules.max_customers_per_user and ctx.customers_held >= rules.max_customers_per_user:
        raise ResourceExhausted(
            f"you already own {ctx.customers_held} customers (limit {rules.max_customers_per_user})",
            reason="MAX_CUSTOMERS_REACHED",
            metadata={"limit": str(rules.max_customers_per_user)},
        )
    if rules.max_claims_per_day and ctx.claims_last_24h >= rules.max_claims_per_day:
        raise ResourceExhausted(
            f"you claimed {ctx.claims_last_24h} customers from {pool.name} in the last 24 hours"
            f" (limit {rules.max_claims_per_day})",
            reason="DAILY_CLAIM_LIMIT_REACHED",
            metadata={"limit": str(rules.max_claims_per_day)},
        )


# --- ownership moves ---------------------------------------------------------------------------


def take_from_pool(customer: Customer, *, owner: str, team: str, now: datetime) -> Customer:
    """Claim or assignment out of a pool (former_owner is kept: it is who lost it)."""
    return replace(
        customer,
        status=CustomerStatus.OWNED,
        owner=owner,
        team=team,
        assign_time=now,
        update_time=now,
        version=customer.version + 1,
    )


def give_to(customer: Customer, *, owner: str, team: str, now: datetime) -> Customer:
    """Assignment or transfer of an owned customer to another user."""
    return replace(
        customer,
        owner=owner,
        team=team,
        former_owner=customer.owner if customer.owner != owner else customer.former_owner,
        assign_time=now,
        update_time=now,
        version=customer.version + 1,
    )


def put_in_pool(customer: Customer, pool: Pool, *, now: datetime) -> Customer:
    """Release or reclaim: the owner becomes the former owner; the pool's team holds it."""
    return replace(
        customer,
        status=CustomerStatus.IN_POOL,
        pool_id=pool.id,
        former_owner=customer.owner,
        owner="",
        team=pool.team,
        reclaim_time=None,
        next_follow_up_time=None,
        update_time=now,
        version=customer.version + 1,
    )
