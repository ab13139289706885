"""Pipelines, stages and opportunities: the rules, with no I/O.

Money is integer minor units everywhere; the only division is the weighted
amount, done in integers with round-half-to-even (banker's rounding) so sums
never drift and no float ever touches an amount.

Probability rule: an opportunity's probability is its stage's default unless
set explicitly; an explicit value sticks until the next stage change (which
resets it to the new stage's default unless the move carries its own value).
Won means 100, lost means 0, whatever was set before.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from crm_shared.access import Scope, ScopeGrant
from crm_shared.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Violations

MAX_AMOUNT_MINOR = 10**15
DEFAULT_PIPELINE_ID = "default"
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class ForecastCategory(enum.StrEnum):
    PIPELINE = "pipeline"
    BEST_CASE = "best_case"
    COMMIT = "commit"
    CLOSED = "closed"
    OMITTED = "omitted"


# The order forecasts report categories in.
FORECAST_CATEGORIES = (
    ForecastCategory.PIPELINE,
    ForecastCategory.BEST_CASE,
    ForecastCategory.COMMIT,
    ForecastCategory.CLOSED,
    ForecastCategory.OMITTED,
)


class OpportunityState(enum.StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


# --- arithmetic ---------------------------------------------------------------------------------


def weighted_amount(amount_minor: int, probability: int) -> int:
    """round_half_even(amount × probability / 100), exactly, in integers."""
    if not 0 <= probability <= 100:
        raise ValueError(f"probability {probability} is outside 0..100")
    quotient, remainder = divmod(amount_minor * probability, 100)  # floor division: remainder in 0..99
    if remainder > 50 or (remainder == 50 and quotient % 2 == 1):
        quotient += 1
    return quotient


def line_amount(quantity: int, unit_price_minor: int) -> int:
    return quantity * unit_price_minor


# --- pipelines ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    id: str
    display_name: str
    default_probability: int
    forecast_category: ForecastCategory
    is_won: bool = False
    is_lost: bool = False
    position: int = 0  # 1-based, set from the order in the pipeline

    @property
    def is_open(self) -> bool:
        return not (self.is_won or self.is_lost)


@dataclass(frozen=True)
class Pipeline:
    id: str
    display_name: str
    currency_code: str
    stages: tuple[Stage, ...]
    is_default: bool
    create_time: datetime
    update_time: datetime
    version: int = 1

    @property
    def name(self) -> str:
        return f"pipelines/{self.id}"

    def stage_name(self, stage_id: str) -> str:
        return f"pipelines/{self.id}/stages/{stage_id}"

    def stage(self, stage_id: str) -> Stage | None:
        return next((s for s in self.stages if s.id == stage_id), None)

    def first_open_stage(self) -> Stage:
        return next(s for s in self.stages if s.is_open)

    def first_won_stage(self) -> Stage:
        return next(s for s in self.stages if s.is_won)

    def first_lost_stage(self) -> Stage:
        return next(s for s in self.stages if s.is_lost)


@dataclass(frozen=True)
class StageInput:
    id: str  # "" = new stage
    display_name: str
    default_probability: int
    forecast_category: ForecastCategory | None
    is_won: bool = False
    is_lost: bool = False


@dataclass(frozen=True)
class PipelineInput:
    display_name: str = ""
    currency_code: str = ""
    stages: Sequence[StageInput] = ()


PIPELINE_WRITABLE_FIELDS = ("display_name", "currency_code", "stages")
PIPELINE_OUTPUT_ONLY_FIELDS = ("name", "is_default", "create_time", "update_time", "etag")


def _canonical_stage(stage: StageInput, position: int, path: str, violations: Violations) -> Stage:
    if not stage.display_name.strip():
        violations.add(f"{path}.display_name", "is required")
    if stage.forecast_category is None:
        violations.add(f"{path}.forecast_category", "is required")
    if stage.is_won and stage.is_lost:
        violations.add(f"{path}.is_lost", "a stage cannot be both won and lost")
    category = stage.forecast_category or ForecastCategory.PIPELINE
    probability = stage.default_probability
    # Closed stages have fixed meanings so forecasts cannot be skewed by configuration.
    if stage.is_won:
        if probability != 100:
            violations.add(f"{path}.default_probability", "a won stage has probability 100")
        if stage.forecast_category not in (None, ForecastCategory.CLOSED):
            violations.add(f"{path}.forecast_category", "a won stage is in FORECAST_CATEGORY_CLOSED")
        category = ForecastCategory.CLOSED
    elif stage.is_lost:
        if probability != 0:
            violations.add(f"{path}.default_probability", "a lost stage has probability 0")
        if stage.forecast_category not in (None, ForecastCategory.OMITTED):
            violations.add(f"{path}.forecast_category", "a lost stage is in FORECAST_CATEGORY_OMITTED")
        category = ForecastCategory.OMITTED
    elif stage.forecast_category is ForecastCategory.CLOSED:
        violations.add(f"{path}.forecast_category", "only won stages are in FORECAST_CATEGORY_CLOSED")
    if not 0 <= probability <= 100:
        violations.add(f"{path}.default_probability", "must be between 0 and 100")
    return Stage(
        id=stage.id,
        display_name=stage.display_name.strip(),
        default_probability=probability,
        forecast_category=category,
        is_won=stage.is_won,
        is_lost=stage.is_lost,
        position=position,
    )


def build_stages(
    stages: Sequence[StageInput], *, new_stage_id, path: str, violations: Violations
) -> tuple[Stage, ...]:
    """Validate an ordered stage list; stages without an id get `new_stage_id(display_name)`."""
    built: list[Stage] = []
    seen: set[str] = set()
    for index, raw in enumerate(stages):
        stage = _canonical_stage(raw, index + 1, f"{path}[{index}]", violations)
        stage_id = stage.id or new_stage_id(stage.display_name, seen)
        if stage_id in seen:
            violations.add(f"{path}[{index}].name", "appears twice in the pipeline")
        seen.add(stage_id)
        built.append(replace(stage, id=stage_id))
    if not any(s.is_open for s in built):
        violations.add(path, "needs at least one open stage")
    if not any(s.is_won for s in built):
        violations.add(path, "needs a won stage (is_won)")
    if not any(s.is_lost for s in built):
        violations.add(path, "needs a lost stage (is_lost)")
    return tuple(built)


def stage_id_from_title(title: str, taken: set[str]) -> str:
    """A readable, unique stage id from its display name ("Needs analysis" -> "needs-analysis")."""
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:56] or "stage"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def new_pipeline(data: PipelineInput, *, pipeline_id: str, now: datetime) -> Pipeline:
    violations = Violations()
    if not data.display_name.strip():
        violations.add("pipeline.display_name", "is required")
    stages = build_stages(
        data.stages, new_stage_id=stage_id_from_title, path="pipeline.stages", violations=violations
    )
    violations.raise_if_any("the pipeline has invalid fields")
    return Pipeline(
        id=pipeline_id,
        display_name=data.display_name.strip(),
        currency_code=data.currency_code,
        stages=stages,
        is_default=False,
        create_time=now,
        update_time=now,
    )


def update_pipeline(
    current: Pipeline, data: PipelineInput, fields: frozenset[str], *, now: datetime
) -> tuple[Pipeline, list[str]]:
    violations = Violations()
    changes: dict[str, Any] = {}
    if "display_name" in fields:
        if not data.display_name.strip():
            violations.add("pipeline.display_name", "is required")
        changes["display_name"] = data.display_name.strip()
    if "currency_code" in fields:
        changes["currency_code"] = data.currency_code
    if "stages" in fields:
        known = {s.id for s in current.stages}
        for index, stage in enumerate(data.stages):
            if stage.id and stage.id not in known:
                violations.add(
                    f"pipeline.stages[{index}].name",
                    f"is not a stage of {current.name}; leave name empty to add a stage",
                )
        changes["stages"] = build_stages(
            data.stages, new_stage_id=stage_id_from_title, path="pipeline.stages", violations=violations
        )
    violations.raise_if_any("the pipeline has invalid fields")
    changed = [name for name, value in changes.items() if getattr(current, name) != value]
    if not changed:
        return current, []
    return replace(current, **changes, update_time=now, version=current.version + 1), changed


def removed_stages(before: Pipeline, after: Pipeline) -> list[str]:
    kept = {s.id for s in after.stages}
    return [s.id for s in before.stages if s.id not in kept]


def recategorized_stages(before: Pipeline, after: Pipeline) -> dict[str, ForecastCategory]:
    """Stages whose forecast category changed: their opportunities follow."""
    old = {s.id: s.forecast_category for s in before.stages}
    return {
        s.id: s.forecast_category for s in after.stages if s.id in old and old[s.id] != s.forecast_category
    }


def default_pipeline(now: datetime) -> Pipeline:
    """The pipeline every database starts with (seeded by migration 0003)."""
    return Pipeline(
        id=DEFAULT_PIPELINE_ID,
        display_name="Default sales pipeline",
        currency_code="",
        stages=tuple(
            Stage(sid, title, p, cat, won, lost, i + 1)
            for i, (sid, title, p, cat, won, lost) in enumerate(DEFAULT_STAGES)
        ),
        is_default=True,
        create_time=now,
        update_time=now,
    )


DEFAULT_STAGES = (
    ("qualification", "Qualification", 10, ForecastCategory.PIPELINE, False, False),
    ("needs-analysis", "Needs analysis", 25, ForecastCategory.PIPELINE, False, False),
    ("proposal", "Proposal", 50, ForecastCategory.BEST_CASE, False, False),
    ("negotiation", "Negotiation", 75, ForecastCategory.COMMIT, False, False),
    ("closed-won", "Closed won", 100, ForecastCategory.CLOSED, True, False),
    ("closed-lost", "Closed lost", 0, ForecastCategory.OMITTED, False, True),
)


# --- opportunities ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductLine:
    display_name: str
    quantity: int
    unit_price_minor: int
    product: str = ""  # "products/{id}"
    sku: str = ""

    @property
    def amount_minor(self) -> int:
        return line_amount(self.quantity, self.unit_price_minor)


@dataclass(frozen=True)
class ProductLineInput:
    display_name: str
    quantity: int
    unit_price_minor: int
    currency_code: str
    product: str = ""
    sku: str = ""


@dataclass(frozen=True)
class StageEntry:
    """An opportunity entering a stage: what it was worth and how likely then."""

    pipeline_id: str
    stage_id: str
    enter_time: datetime
    changed_by: str
    amount_minor: int
    currency_code: str
    probability: int
    forecast_category: ForecastCategory

    @property
    def stage_name(self) -> str:
        return f"pipelines/{self.pipeline_id}/stages/{self.stage_id}"


@dataclass(frozen=True)
class Opportunity:
    id: str
    customer_id: str
    title: str
    amount_minor: int
    currency_code: str
    expected_close_time: datetime
    pipeline_id: str
    stage_id: str
    probability: int
    probability_overridden: bool
    forecast_category: ForecastCategory
    state: OpportunityState
    owner: str
    team: str
    create_time: datetime
    update_time: datetime
    contact: str = ""  # "customers/{c}/contacts/{k}"
    product_lines: tuple[ProductLine, ...] = ()
    competitor: str = ""
    lost_reason: str = ""
    source_lead: str = ""
    campaign: str = ""
    close_time: datetime | None = None
    history: tuple[StageEntry, ...] = ()
    version: int = 1

    @property
    def name(self) -> str:
        return f"opportunities/{self.id}"

    @property
    def customer(self) -> str:
        return f"customers/{self.customer_id}"

    @property
    def pipeline(self) -> str:
        return f"pipelines/{self.pipeline_id}"

    @property
    def stage(self) -> str:
        return f"pipelines/{self.pipeline_id}/stages/{self.stage_id}"

    @property
    def weighted_amount_minor(self) -> int:
        return weighted_amount(self.amount_minor, self.probability)

    @property
    def is_open(self) -> bool:
        return self.state is OpportunityState.OPEN

    def last_open_stage_id(self, pipeline: Pipeline) -> str | None:
        """The open stage it was last in (reopen goes back there by default)."""
        for entry in reversed(self.history):
            stage = pipeline.stage(entry.stage_id) if entry.pipeline_id == pipeline.id else None
            if stage is not None and stage.is_open:
                return stage.id
        return None


@dataclass(frozen=True)
class OpportunityInput:
    """What a caller asks for; `probability` None = the stage's default (or, on update, clear)."""

    customer: str = ""  # "customers/{c}"
    title: str = ""
    amount_minor: int | None = None  # None = not given
    currency_code: str = ""
    expected_close_time: datetime | None = None
    pipeline: str = ""  # "pipelines/{p}"; "" = default
    stage: str = ""  # "pipelines/{p}/stages/{s}"; "" = first open stage
    probability: int | None = None
    owner: str = ""
    team: str = ""
    contact: str = ""
    product_lines: Sequence[ProductLineInput] = ()
    competitor: str = ""
    source_lead: str = ""
    campaign: str = ""


OPPORTUNITY_WRITABLE_FIELDS = (
    "customer",
    "contact",
    "title",
    "amount",
    "expected_close_time",
    "probability",
    "owner",
    "team",
    "product_lines",
    "competitor",
    "campaign",
)
OPPORTUNITY_OUTPUT_ONLY_FIELDS = (
    "name",
    "pipeline",
    "stage",
    "probability_overridden",
    "weighted_amount",
    "forecast_category",
    "state",
    "lost_reason",
    "source_lead",
    "stage_history",
    "create_time",
    "update_time",
    "close_time",
    "etag",
)


def resource_id(name: str, collection: str) -> str | None:
    prefix, _, rest = name.partition("/")
    return rest if prefix == collection and rest and "/" not in rest else None


def stage_ids(name: str) -> tuple[str, str] | None:
    parts = name.split("/")
    if len(parts) == 4 and parts[0] == "pipelines" and parts[2] == "stages" and parts[1] and parts[3]:
        return parts[1], parts[3]
    return None


def check_ownership(grant: ScopeGrant, *, owner: str, team: str) -> None:
    """A caller may only create or hand an opportunity into their own scope."""
    if grant.scope is Scope.OWN and owner != grant.subject:
        raise PermissionDenied(
            "you can only own opportunities yourself; ask a manager to assign one to someone else",
            reason="OWNER_OUTSIDE_SCOPE",
        )
    # A rep's deal stays in the rep's team: another team's manager must not see it.
    if grant.scope in (Scope.TEAM, Scope.OWN) and team != grant.team:
        raise PermissionDenied(
            f"you can only place opportunities in your team ({grant.team or 'none'})",
            reason="TEAM_OUTSIDE_SCOPE",
        )


def _lines(
    lines: Iterable[ProductLineInput], currency: str, violations: Violations
) -> tuple[ProductLine, ...]:
    built = []
    for index, line in enumerate(lines):
        path = f"opportunity.product_lines[{index}]"
        if not line.display_name.strip():
            violations.add(f"{path}.display_name", "is required")
        if line.quantity <= 0:
            violations.add(f"{path}.quantity", "must be positive")
        if not 0 <= line.unit_price_minor <= MAX_AMOUNT_MINOR:
            violations.add(f"{path}.unit_price.amount_minor", "must be between 0 and 10^15")
        if currency and line.currency_code != currency:
            violations.add(
                f"{path}.unit_price.currency_code", f"must be the opportunity's currency {currency}"
            )
        built.append(
            ProductLine(
                line.display_name.strip(), line.quantity, line.unit_price_minor, line.product, line.sku
            )
        )
    return tuple(built)


def _amount(
    data: OpportunityInput, pipeline: Pipeline, violations: Violations
) -> tuple[int, str, tuple[ProductLine, ...]]:
    """Amount, currency and lines: the given amount, or the lines' sum when only lines are given."""
    currency = data.currency_code
    if data.amount_minor is None and not data.product_lines:
        violations.add("opportunity.amount", "is required (or give product_lines)")
    if not currency and data.product_lines:
        currency = data.product_lines[0].currency_code
    if not currency:
        currency = pipeline.currency_code
    if not currency and (data.amount_minor is not None or data.product_lines):
        violations.add("opportunity.amount.currency_code", "is required (an ISO-4217 code like CNY)")
    if pipeline.currency_code and currency and currency != pipeline.currency_code:
        violations.add(
            "opportunity.amount.currency_code", f"{pipeline.name} takes {pipeline.currency_code} only"
        )
    lines = _lines(data.product_lines, currency, violations)
    amount = data.amount_minor if data.amount_minor is not None else sum(li.amount_minor for li in lines)
    if not 0 <= amount <= MAX_AMOUNT_MINOR:
        violations.add("opportunity.amount.amount_minor", "must be between 0 and 10^15")
    return amount, currency, lines


def new_opportunity(
    data: OpportunityInput,
    pipeline: Pipeline,
    *,
    opportunity_id: str,
    now: datetime,
    grant: ScopeGrant,
) -> Opportunity:
    violations = Violations()
    customer_id = resource_id(data.customer, "customers")
    if customer_id is None:
        violations.add("opportunity.customer", "is required: customers/{customer}")
    if data.contact and not data.contact.startswith(f"{data.customer}/contacts/"):
        violations.add("opportunity.contact", "must be a contact of opportunity.customer")
    if not data.title.strip():
        violations.add("opportunity.title", "is required")
    if data.expected_close_time is None:
        violations.add("opportunity.expected_close_time", "is required")
    amount, currency, lines = _amount(data, pipeline, violations)
    stage = pipeline.first_open_stage()
    if data.stage:
        ids = stage_ids(data.stage)
        chosen = pipeline.stage(ids[1]) if ids and ids[0] == pipeline.id else None
        if chosen is None:
            violations.add("opportunity.stage", f"is not a stage of {pipeline.name}")
        elif not chosen.is_open:
            violations.add(
                "opportunity.stage", "new opportunities start in an open stage; win or lose them afterwards"
            )
        else:
            stage = chosen
    if data.probability is not None and not 0 <= data.probability <= 100:
        violations.add("opportunity.probability", "must be between 0 and 100")
    violations.raise_if_any("the opportunity has invalid fields")
    owner = data.owner.strip() or grant.subject
    team = data.team.strip() or grant.team
    check_ownership(grant, owner=owner, team=team)
    overridden = data.probability is not None
    probability = data.probability if overridden else stage.default_probability
    assert customer_id is not None and data.expected_close_time is not None
    opportunity = Opportunity(
        id=opportunity_id,
        customer_id=customer_id,
        title=data.title.strip(),
        amount_minor=amount,
        currency_code=currency,
        expected_close_time=data.expected_close_time,
        pipeline_id=pipeline.id,
        stage_id=stage.id,
        probability=probability,
        probability_overridden=overridden,
        forecast_category=stage.forecast_category,
        state=OpportunityState.OPEN,
        owner=owner,
        team=team,
        create_time=now,
        update_time=now,
        contact=data.contact,
        product_lines=lines,
        competitor=data.competitor.strip(),
        source_lead=data.source_lead,
        campaign=data.campaign,
    )
    return replace(opportunity, history=(_entry(opportunity, now, grant.subject),))


def _entry(opportunity: Opportunity, now: datetime, by: str) -> StageEntry:
    return StageEntry(
        pipeline_id=opportunity.pipeline_id,
        stage_id=opportunity.stage_id,
        enter_time=now,
        changed_by=by,
        amount_minor=opportunity.amount_minor,
        currency_code=opportunity.currency_code,
        probability=opportunity.probability,
        forecast_category=opportunity.forecast_category,
    )


def _require_open(opportunity: Opportunity, action: str) -> None:
    if not opportunity.is_open:
        raise FailedPrecondition(
            f"{opportunity.name} is already {opportunity.state.value}; {action} needs an open opportunity",
            reason="OPPORTUNITY_CLOSED",
            metadata={"state": opportunity.state.value},
        )


def update_opportunity(  # noqa: PLR0915 - one flat rule per field reads best
    current: Opportunity,
    data: OpportunityInput,
    fields: frozenset[str],
    pipeline: Pipeline,
    *,
    now: datetime,
    grant: ScopeGrant,
) -> tuple[Opportunity, list[str]]:
    """Apply the named fields; returns the new state and the API names of fields that changed."""
    _require_open(current, "an update")
    violations = Violations()
    changes: dict[str, Any] = {}
    if "customer" in fields:
        customer_id = resource_id(data.customer, "customers")
        if customer_id is None:
            violations.add("opportunity.customer", "is required: customers/{customer}")
        changes["customer_id"] = customer_id
    customer = data.customer if "customer" in fields else current.customer
    if "contact" in fields:
        if data.contact and not data.contact.startswith(f"{customer}/contacts/"):
            violations.add("opportunity.contact", "must be a contact of opportunity.customer")
        changes["contact"] = data.contact
    elif "customer" in fields and current.contact and not current.contact.startswith(f"{customer}/"):
        changes["contact"] = ""  # the old contact belongs to the old customer
    if "title" in fields:
        if not data.title.strip():
            violations.add("opportunity.title", "is required")
        changes["title"] = data.title.strip()
    if "expected_close_time" in fields:
        if data.expected_close_time is None:
            violations.add("opportunity.expected_close_time", "is required")
        changes["expected_close_time"] = data.expected_close_time
    if "amount" in fields or "product_lines" in fields:
        changes.update(_updated_amount(current, data, fields, pipeline, violations))
    if "probability" in fields:
        if data.probability is None:
            stage = pipeline.stage(current.stage_id)
            changes["probability"] = stage.default_probability if stage else current.probability
            changes["probability_overridden"] = False
        else:
            if not 0 <= data.probability <= 100:
                violations.add("opportunity.probability", "must be between 0 and 100")
            changes["probability"] = data.probability
            changes["probability_overridden"] = True
    if "competitor" in fields:
        changes["competitor"] = data.competitor.strip()
    if "campaign" in fields:
        changes["campaign"] = data.campaign
    if "owner" in fields:
        changes["owner"] = data.owner.strip() or grant.subject
    if "team" in fields:
        changes["team"] = data.team.strip()
    violations.raise_if_any("the opportunity has invalid fields")

    changed_attrs = [name for name, value in changes.items() if getattr(current, name) != value]
    if not changed_attrs:
        return current, []
    if {"owner", "team"} & set(changed_attrs):
        if grant.scope is Scope.OWN:
            raise PermissionDenied(
                "sales reps cannot hand an opportunity to someone else; ask a manager",
                reason="OWNER_CHANGE_NOT_ALLOWED",
            )
        check_ownership(
            grant, owner=changes.get("owner", current.owner), team=changes.get("team", current.team)
        )
    updated = replace(current, **changes, update_time=now, version=current.version + 1)
    api_names = sorted({_API_FIELD.get(name, name) for name in changed_attrs})
    return updated, api_names


def _updated_amount(
    current: Opportunity,
    data: OpportunityInput,
    fields: frozenset[str],
    pipeline: Pipeline,
    violations: Violations,
) -> dict[str, Any]:
    keep_lines = [
        ProductLineInput(
            li.display_name, li.quantity, li.unit_price_minor, current.currency_code, li.product, li.sku
        )
        for li in current.product_lines
    ]
    merged = replace(
        data,
        amount_minor=data.amount_minor if "amount" in fields else current.amount_minor,
        currency_code=data.currency_code if "amount" in fields else current.currency_code,
        product_lines=data.product_lines if "product_lines" in fields else keep_lines,
    )
    amount, currency, lines = _amount(merged, pipeline, violations)
    return {"amount_minor": amount, "currency_code": currency, "product_lines": lines}


_API_FIELD = {
    "customer_id": "customer",
    "amount_minor": "amount",
    "currency_code": "amount",
    "probability_overridden": "probability",
}


def move_stage(
    current: Opportunity,
    pipeline: Pipeline,
    stage_name: str,
    probability: int | None,
    *,
    now: datetime,
    by: str,
) -> Opportunity:
    """Move an open opportunity to another open stage; the probability resets unless given."""
    _require_open(current, "a stage move")
    ids = stage_ids(stage_name)
    stage = pipeline.stage(ids[1]) if ids and ids[0] == pipeline.id else None
    if stage is None:
        raise InvalidArgument.for_field("stage", f"is not a stage of {pipeline.name}", reason="UNKNOWN_STAGE")
    if not stage.is_open:
        raise FailedPrecondition(
            f"{stage_name} is a {'won' if stage.is_won else 'lost'} stage; "
            f"use {'WinOpportunity' if stage.is_won else 'LoseOpportunity'}",
            reason="CLOSING_STAGE_NEEDS_WIN_OR_LOSE",
        )
    if stage.id == current.stage_id:
        raise FailedPrecondition(f"{current.name} is already in {stage_name}", reason="ALREADY_IN_STAGE")
    return _enter(current, stage, probability, overridden=probability is not None, now=now, by=by)


def _enter(
    current: Opportunity,
    stage: Stage,
    probability: int | None,
    *,
    overridden: bool,
    now: datetime,
    by: str,
    **changes: Any,
) -> Opportunity:
    moved = replace(
        current,
        stage_id=stage.id,
        probability=stage.default_probability if probability is None else probability,
        probability_overridden=overridden,
        forecast_category=stage.forecast_category,
        update_time=now,
        version=current.version + 1,
        **changes,
    )
    return replace(moved, history=(*current.history, _entry(moved, now, by)))


def _closing_stage(pipeline: Pipeline, stage_name: str, *, won: bool) -> Stage:
    if not stage_name:
        return pipeline.first_won_stage() if won else pipeline.first_lost_stage()
    ids = stage_ids(stage_name)
    stage = pipeline.stage(ids[1]) if ids and ids[0] == pipeline.id else None
    if stage is None or (won and not stage.is_won) or (not won and not stage.is_lost):
        raise InvalidArgument.for_field(
            "stage", f"is not a {'won' if won else 'lost'} stage of {pipeline.name}", reason="UNKNOWN_STAGE"
        )
    return stage


def win(current: Opportunity, pipeline: Pipeline, stage_name: str, *, now: datetime, by: str) -> Opportunity:
    _require_open(current, "winning")
    stage = _closing_stage(pipeline, stage_name, won=True)
    return _enter(
        current, stage, 100, overridden=False, now=now, by=by, state=OpportunityState.WON, close_time=now
    )


def lose(
    current: Opportunity,
    pipeline: Pipeline,
    stage_name: str,
    *,
    lost_reason: str,
    competitor: str,
    now: datetime,
    by: str,
) -> Opportunity:
    if not lost_reason.strip():
        raise InvalidArgument.for_field("lost_reason", "is required to lose an opportunity")
    _require_open(current, "losing")
    stage = _closing_stage(pipeline, stage_name, won=False)
    return _enter(
        current,
        stage,
        0,
        overridden=False,
        now=now,
        by=by,
        state=OpportunityState.LOST,
        close_time=now,
        lost_reason=lost_reason.strip(),
        competitor=competitor.strip() or current.competitor,
    )


def reopen(
    current: Opportunity, pipeline: Pipeline, stage_name: str, *, now: datetime, by: str
) -> Opportunity:
    if current.is_open:
        raise FailedPrecondition(f"{current.name} is open already", reason="OPPORTUNITY_OPEN")
    if stage_name:
        ids = stage_ids(stage_name)
        stage = pipeline.stage(ids[1]) if ids and ids[0] == pipeline.id else None
        if stage is None or not stage.is_open:
            raise InvalidArgument.for_field(
                "stage", f"is not an open stage of {pipeline.name}", reason="UNKNOWN_STAGE"
            )
    else:
        previous = current.last_open_stage_id(pipeline)
        stage = pipeline.stage(previous) if previous else None
        if stage is None or not stage.is_open:
            stage = pipeline.first_open_stage()
    return _enter(
        current,
        stage,
        None,
        overridden=False,
        now=now,
        by=by,
        state=OpportunityState.OPEN,
        close_time=None,
        lost_reason="",
    )


# --- forecast -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastGroup:
    """Opportunities in scope and period sharing currency, state and category (one SQL GROUP BY row)."""

    currency_code: str
    state: OpportunityState
    category: ForecastCategory
    count: int
    amount_minor: int
    weighted_minor: int


@dataclass(frozen=True)
class Total:
    count: int = 0
    amount_minor: int = 0
    weighted_minor: int = 0

    def __add__(self, other: Total) -> Total:
        return Total(
            self.count + other.count,
            self.amount_minor + other.amount_minor,
            self.weighted_minor + other.weighted_minor,
        )


@dataclass(frozen=True)
class ForecastTotals:
    currency_code: str
    categories: dict[ForecastCategory, Total] = field(default_factory=dict)
    closed_won: Total = Total()
    weighted_pipeline_minor: int = 0
    excluded_currencies: dict[str, int] = field(default_factory=dict)

    @property
    def expected_total_minor(self) -> int:
        return self.closed_won.amount_minor + self.weighted_pipeline_minor


def aggregate_forecast(groups: Iterable[ForecastGroup], currency_code: str) -> ForecastTotals:
    """Totals by category, closed-won and weighted pipeline, in one currency.

    Weighted amounts are the sum of each opportunity's own rounded weighted
    amount (what users see on each opportunity), never a re-rounded total.
    Other currencies are not converted: counted in excluded_currencies only.
    """
    categories = {category: Total() for category in FORECAST_CATEGORIES}
    closed_won = Total()
    weighted_pipeline = 0
    excluded: dict[str, int] = {}
    for group in groups:
        if group.currency_code != currency_code:
            excluded[group.currency_code] = excluded.get(group.currency_code, 0) + group.count
            continue
        total = Total(group.count, group.amount_minor, group.weighted_minor)
        categories[group.category] = categories[group.category] + total
        if group.state is OpportunityState.WON:
            closed_won = closed_won + total
        elif group.state is OpportunityState.OPEN and group.category is not ForecastCategory.OMITTED:
            weighted_pipeline += group.weighted_minor
    return ForecastTotals(
        currency_code=currency_code,
        categories=categories,
        closed_won=closed_won,
        weighted_pipeline_minor=weighted_pipeline,
        excluded_currencies=dict(sorted(excluded.items())),
    )
