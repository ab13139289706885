"""Customer analytics: ABC / RFM / health / churn scores, kept current from events, and the reports.

When scores are recomputed (O(1) per event, the population at most once per RERANK_DELAY):

* Health (and churn risk, derived from it) depends on one customer only: it is recomputed for that
  customer on its own events (created/updated, follow-ups, behaviour, deals, tickets, SLA breaches,
  CSAT, payments confirmed/voided, installments overdue/paid) with a constant number of indexed
  queries, and for everybody in the daily pass (durable timer "reporting.analytics.daily").
* ABC and RFM rank a buyer against every other buyer. A payment confirmed or voided, a customer
  deleted or merged away only marks the ranking dirty: it ensures the durable timer
  "reporting.analytics.rerank", due RERANK_DELAY later; a pending one keeps its deadline (so a
  steady stream of payments cannot postpone the pass forever). That pass (`rerank`) ranks
  everybody in one go from the confirmed payments and writes only the rows whose ABC/RFM changed;
  the daily pass ranks too, and `python -m crm_reporting rebuild` runs one final `rerank` after
  its replay. Until the pass, a payer keeps its previous ABC/RFM (ListCustomerScores trails by at
  most RERANK_DELAY plus the timer poll); GetCustomerAnalytics computes its ABC table from the
  payments at query time and is always exact.
* A customer without purchases is scored locally: ABC C, RFM 1/1/1 and "new" when created within
  NEW_CUSTOMER_DAYS before its score's compute_time, else "hibernating" (no pass needed).

What is a function of the events alone (reproduced by a rebuild, whatever the interleaving):

* compute_time and health: the scoring "now" of a customer's event is the event's occurred_at,
  never before the score's previous compute_time (a late event does not move a score back), so
  compute_time ends as the customer's newest event time. Every health input is read as of that
  moment (activities with time <= now, tickets, SLA breaches and CSAT of the customer, confirmed
  payments known, installments overdue at now's date) and is written by events of that customer,
  each of which rescores it: the last one sees them all, in any cross-stream order.
* ABC and RFM of buyers: time-free ranks (revenue, payment counts, last payment day) of the final
  confirmed payments, computed by a pass that runs after the last change (the live timer, the
  rebuild's final pass). Non-buyers' RFM depends on their own compute_time only.
  Hence a rebuilt database equals, row by row, a live one whose pending re-rank has run.

What is not: the daily passes (their health "as of midnight" depends on which midnights the live
service was running: a rebuild holds the event-time scores and joins at its next daily pass);
intermediate states between passes; the CustomerScored events (the live service published each
change as it happened, the rebuild marks what it emits as sent); and data of another stream that
changes a customer's health without an event of that customer (e.g. a payment plan whose
installments later fall overdue, without a PaymentOverdue) until the customer's next event or the
daily pass.

A changed score (abc class, RFM segment, health score or churn risk) is published as
CustomerScored on crm.reporting.customer.scored through the outbox, in the same transaction;
an unchanged one is saved silently (factors and compute_time refresh) and published never.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from crm.contract.v1 import events_pb2 as contract_events
from crm.customer.v1 import behavior_events_pb2, customer_pb2, data_events_pb2, events_pb2, pool_events_pb2
from crm.reporting.v1 import common_pb2, export_service_pb2
from crm.reporting.v1 import events_pb2 as reporting_events
from crm.sales.v1 import events_pb2 as sales_events
from crm.servicedesk.v1 import events_pb2 as sd_events
from crm_reporting.adapters import analytics_queries as q
from crm_reporting.domain import analytics as rules
from crm_reporting.service.report_scope import report_scope
from crm_shared import timers
from crm_shared.aip.filtering import FilterField, FilterSchema
from crm_shared.aip.paging import Page, parse_list_request
from crm_shared.errors import InvalidArgument
from crm_shared.events.envelope import occurred_at

SUBJECT_SCORED = "crm.reporting.customer.scored"
DAILY_TIMER = "reporting.analytics.daily"
DAILY_KEY = "all"
# The debounced population pass (ABC/RFM of everybody) after payments, deletions and merges.
RERANK_TIMER = "reporting.analytics.rerank"
RERANK_KEY = "all"
RERANK_DELAY = timedelta(seconds=10)
RESOURCE = "customer_insights"
# A customer without purchases created this recently is "new" in RFM, else "hibernating".
NEW_CUSTOMER_DAYS = 90

ABC_NAMES = {rules.Abc.A: "A", rules.Abc.B: "B", rules.Abc.C: "C"}
CHURN_NAMES = {rules.Churn.LOW: "low", rules.Churn.MEDIUM: "medium", rules.Churn.HIGH: "high"}
CustomerScore = q.ScoreRow

SCORE_FILTERS = FilterSchema(
    {
        "abc_class": FilterField.enum(
            q.customer_scores.c.abc_class,
            {name: value for name, value in common_pb2.AbcClass.items() if value},
        ),
        "rfm_segment": FilterField.string(q.customer_scores.c.rfm_segment),
        "churn_risk": FilterField.enum(
            q.customer_scores.c.churn_risk,
            {name: value for name, value in common_pb2.ChurnRisk.items() if value},
        ),
        "health_score": FilterField.number(q.customer_scores.c.health_score),
        "owner": FilterField.string(q.customer_scores.c.owner),
        "team": FilterField.string(q.customer_scores.c.team),
    }
)
SCORE_ORDERABLE = ("health_score", "compute_time")


# --- the score computation ------------------------------------------------------------------------

Totals = Mapping[str, q.PaymentTotals]  # currency -> one customer's confirmed payments


async def _payment_history(session, currency: str, until=None) -> dict:
    from crm_reporting.service.contract_projection import payment_history

    return await payment_history(session, currency, until=until)


async def _service_summary(session, customer: str, now: datetime):
    from crm_reporting.service.service_projection import customer_service_summary

    return await customer_service_summary(session, customer, now)


async def _overdue(session, customer: str, now: datetime) -> dict[str, int]:
    """currency -> the customer's unpaid installments due before now's date (every confirmed payment
    known counts as paid; the contract area's rule, as in customer_money_summary)."""
    from crm_reporting.adapters import contract_queries
    from crm_reporting.adapters.contract_tables import report_contracts

    as_of = now.astimezone(UTC).date()
    overdue: dict[str, int] = {}
    mine = report_contracts.c.customer == customer
    for position in await contract_queries.installment_positions(session, mine, paid_until=None):
        if position.outstanding and position.due_date < as_of:
            overdue[position.currency] = overdue.get(position.currency, 0) + position.outstanding
    return overdue


def _aware(value):
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if value is not None and not isinstance(value, datetime):  # a date
        return datetime.combine(value, time.min, tzinfo=UTC)
    return value


def _purchase_facts(totals: Totals) -> rules.PurchaseFacts:
    days = [t.last_day for t in totals.values() if t.last_day is not None]
    return rules.PurchaseFacts(
        count=sum(t.count for t in totals.values()),
        last_time=_aware(max(days)) if days else None,
        monetary={currency: t.total_minor for currency, t in totals.items()},
    )


def _is_buyer(totals: Totals) -> bool:
    facts = _purchase_facts(totals)
    return facts.count > 0 and facts.last_time is not None


def _non_buyer(info: q.CustomerInfo | None, at: datetime) -> rules.Rfm:
    created = _aware(info.create_time) if info is not None else None
    return rules.non_buyer_rfm(created, at, NEW_CUSTOMER_DAYS)


async def _health(session, customer: str, now: datetime, totals: Totals) -> rules.Health:
    """One customer's health as of `now` (every input read as of that moment)."""
    last, last_30, prev_60 = await q.activity_stats(session, customer, now)
    service = await _service_summary(session, customer, now)
    overdue = await _overdue(session, customer, now)
    overdue_bp = max(
        (
            rules.overdue_share_bp(amount, totals[cur].total_minor if cur in totals else 0)
            for cur, amount in overdue.items()
        ),
        default=0,
    )
    last = _aware(last)
    return rules.health(
        rules.HealthInputs(
            days_since_activity=None if last is None else max((now - last).total_seconds(), 0) / 86400,
            open_tickets=service.open_tickets,
            sla_breaches_90d=service.recent_sla_breaches,
            average_csat=service.average_csat,
            payments_count=sum(t.count for t in totals.values()),
            overdue_share_bp=overdue_bp,
            activity_last_30d=last_30,
            activity_prev_60d=prev_60,
        )
    )


def _factors_json(health: rules.Health) -> list[dict]:
    return [
        {"name": f.name, "value": f.value, "impact": f.impact, "explanation": f.explanation}
        for f in health.factors
    ]


def _key(abc: int, segment: str, health_score: int, churn: int) -> tuple:
    """What a CustomerScored announces: a change of any of these is published."""
    return (int(abc), segment, int(health_score), int(churn))


async def _save(
    uow,
    customer: str,
    now: datetime,
    abc: int,
    rfm: rules.Rfm,
    health: rules.Health,
    *,
    old: q.ScoreRow | None,
    info: q.CustomerInfo | None,
) -> None:
    """Store the score; publish CustomerScored when abc/rfm/health/churn changed."""
    owner, team = (info.owner, info.team) if info else ((old.owner, old.team) if old else ("", ""))
    values = dict(
        customer=customer,
        owner=owner,
        team=team,
        abc_class=int(abc),
        rfm_segment=rfm.segment,
        recency_score=rfm.recency,
        frequency_score=rfm.frequency,
        monetary_score=rfm.monetary,
        health_score=health.score,
        churn_risk=int(health.churn_risk),
        factors=_factors_json(health),
        compute_time=now,
    )
    await q.save_score(uow.session, values)
    new_key = _key(abc, rfm.segment, health.score, health.churn_risk)
    if old is None or _key(old.abc_class, old.rfm_segment, old.health_score, old.churn_risk) != new_key:
        uow.emit(SUBJECT_SCORED, scored_event(q.ScoreRow(**values)), resource=customer)


def scored_event(score: q.ScoreRow) -> reporting_events.CustomerScored:
    compute_time = Timestamp()
    compute_time.FromDatetime(_aware(score.compute_time))
    return reporting_events.CustomerScored(
        customer=score.customer,
        abc_class=score.abc_class,
        rfm_segment=score.rfm_segment,
        health_score=score.health_score,
        churn_risk=score.churn_risk,
        factors=[reporting_events.ScoreFactor(**f) for f in score.factors],
        compute_time=compute_time,
    )


def _stored_rfm(score: q.ScoreRow) -> rules.Rfm:
    return rules.Rfm(score.recency_score, score.frequency_score, score.monetary_score, score.rfm_segment)


async def rescore_customer(uow, customer: str, event_time: datetime) -> None:
    """One customer's score as of its event (O(1) indexed queries, whatever the population).

    Health as of max(event time, previous compute_time); a non-buyer's ABC/RFM are local; a
    buyer keeps the ABC/RFM of the last pass (a first score of a buyer marks the ranking dirty).
    """
    session = uow.session
    if not customer:
        return
    info, removed = await q.customer_state(session, customer)
    if removed:
        return
    old = await q.get_score(session, customer)
    now = max(event_time, _aware(old.compute_time)) if old is not None else event_time
    totals = (await q.payment_totals(session, customer)).get(customer, {})
    health = await _health(session, customer, now, totals)
    if not _is_buyer(totals):
        abc, rfm = rules.Abc.C, _non_buyer(info, now)
    elif old is not None:
        abc, rfm = old.abc_class, _stored_rfm(old)
    else:
        abc, rfm = rules.Abc.C, _non_buyer(info, now)
        await mark_ranking_dirty(uow)
    await _save(uow, customer, now, abc, rfm, health, old=old, info=info)
    await ensure_daily_timer(uow)


async def mark_ranking_dirty(uow) -> None:
    """Ask for a population pass in RERANK_DELAY, unless one is pending (its deadline is kept)."""
    await timers.schedule_unless_pending(uow, RERANK_TIMER, RERANK_KEY, uow.now + RERANK_DELAY)


async def _population(session):
    """(removed customers, stored scores, live customers, confirmed payment totals of the others)."""
    removed = await q.removed_customers(session)
    scored = await q.all_scores(session)
    population = await q.customers(session)
    totals = {c: t for c, t in (await q.payment_totals(session)).items() if c not in removed}
    stale = removed & set(scored)
    if stale:  # deleted or merged away: not scored any more
        await q.delete_scores(session, stale)
        scored = {c: s for c, s in scored.items() if c not in stale}
    return removed, scored, population, totals


def _ranks(totals: Mapping[str, Totals]) -> tuple[dict[str, rules.Abc], dict[str, rules.Rfm]]:
    return rules.population_ranks({c: _purchase_facts(t) for c, t in totals.items()})


async def rerank(uow) -> int:
    """The population pass: ABC/RFM of every stored score from the confirmed payments.

    Writes (and publishes) only the scores whose ABC/RFM changed; health, factors and compute_time
    are left alone. Idempotent: a second pass changes nothing. Returns how many scores changed.
    """
    session = uow.session
    _, scored, population, totals = await _population(session)
    abc, rfm = _ranks(totals)
    changed = 0
    for customer, old in sorted(scored.items()):
        if customer in rfm:
            cls, ranks = abc[customer], rfm[customer]
        else:
            cls, ranks = rules.Abc.C, _non_buyer(population.get(customer), _aware(old.compute_time))
        if (int(cls), ranks) == (old.abc_class, _stored_rfm(old)):
            continue
        values = dict(
            abc_class=int(cls),
            rfm_segment=ranks.segment,
            recency_score=ranks.recency,
            frequency_score=ranks.frequency,
            monetary_score=ranks.monetary,
        )
        await q.update_ranks(session, customer, values)
        changed += 1
        if (old.abc_class, old.rfm_segment) != (int(cls), ranks.segment):
            new = dataclasses.replace(old, **values)
            uow.emit(SUBJECT_SCORED, scored_event(new), resource=customer)
    return changed


async def rerank_due(uow, timer) -> None:
    """The "reporting.analytics.rerank" timer."""
    await rerank(uow)


def _next_midnight(moment: datetime) -> datetime:
    return datetime.combine(moment.astimezone(UTC).date() + timedelta(days=1), time.min, tzinfo=UTC)


async def ensure_daily_timer(uow) -> None:
    if await timers.pending(uow, DAILY_TIMER, DAILY_KEY) is None:
        await timers.schedule(uow, DAILY_TIMER, DAILY_KEY, _next_midnight(uow.now))


async def daily(uow, timer) -> None:
    """The daily pass: every customer's ranks and health as of the timer's due time (never before a
    score's compute_time). Depends on when it runs (which midnights the service saw)."""
    due = _aware(timer.due_at)
    session = uow.session
    removed, scored, population, totals = await _population(session)
    abc, rfm = _ranks(totals)
    for customer in sorted((set(population) | set(scored) | set(totals)) - removed):
        old = scored.get(customer)
        at = max(due, _aware(old.compute_time)) if old is not None else due
        health = await _health(session, customer, at, totals.get(customer, {}))
        info = population.get(customer)
        if customer in rfm:
            cls, ranks = abc[customer], rfm[customer]
        else:
            cls, ranks = rules.Abc.C, _non_buyer(info, at)
        await _save(uow, customer, at, cls, ranks, health, old=old, info=info)
    await timers.schedule(uow, DAILY_TIMER, DAILY_KEY, _next_midnight(max(uow.now, due)))


def timer_handlers(app) -> dict:
    return {DAILY_TIMER: daily, RERANK_TIMER: rerank_due}


async def final_rerank(app) -> int:
    """The pass a rebuild runs after its replay (its timers do not fire): returns scores changed."""
    async with app.uow_factory() as uow:
        changed = await rerank(uow)
        await timers.cancel(uow, RERANK_TIMER, RERANK_KEY)
        await uow.commit()
    return changed


# --- event handlers -----------------------------------------------------------------------------------


def _ts(message, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    return getattr(message, name).ToDatetime(tzinfo=UTC)


def _stage(value: int) -> str:
    try:
        name = customer_pb2.LifecycleStage.Name(value)
    except ValueError:
        return ""
    label = name.removeprefix("LIFECYCLE_STAGE_").lower()
    return "" if label == "unspecified" else label


async def _activity(
    uow, envelope, customer: str, kind: str, when: datetime | None = None, currency: str = ""
):
    if customer:
        await q.record_activity(
            uow.session,
            key=f"{envelope.id}:{kind}",
            customer=customer,
            time=when or occurred_at(envelope),
            kind=kind,
            currency=currency,
        )


async def customer_snapshot(uow, envelope, payload) -> None:
    snapshot = payload.customer
    stage = _stage(snapshot.lifecycle_stage)
    when = _ts(snapshot, "update_time") or occurred_at(envelope)
    if stage:
        await q.record_stage(uow.session, snapshot.name, when, stage)
    if isinstance(payload, events_pb2.CustomerCreated):
        await _activity(uow, envelope, snapshot.name, "created", _ts(snapshot, "create_time"))
    await rescore_customer(uow, snapshot.name, occurred_at(envelope))


async def customer_deleted(uow, envelope, payload: events_pb2.CustomerDeleted) -> None:
    """A deleted customer is not scored any more (nothing is published: there is no one to update);
    the others' ranks move without it."""
    await q.delete_score(uow.session, payload.customer)
    await mark_ranking_dirty(uow)


async def customer_merged(uow, envelope, payload: data_events_pb2.CustomerMerged) -> None:
    """Merged-away customers are not scored any more; the ranks move (the pass re-reads who is live)."""
    await q.delete_scores(uow.session, [loser for loser in payload.losers if loser])
    await mark_ranking_dirty(uow)


async def ownership_changed(uow, envelope, payload: pool_events_pb2.OwnershipChanged) -> None:
    # The customer area applied the newest owner; copy it onto the score row.
    info = await q.customer_info(uow.session, payload.customer)
    if info is not None:
        await q.set_owner(uow.session, payload.customer, info.owner, info.team)


def _activity_handler(kind: str, customer_of, time_of=None):
    async def handle(uow, envelope, payload) -> None:
        customer = customer_of(payload)
        await _activity(uow, envelope, customer, kind, time_of(payload) if time_of else None)
        await rescore_customer(uow, customer, occurred_at(envelope))

    return handle


def _rescore_handler(customer_of):
    async def handle(uow, envelope, payload) -> None:
        await rescore_customer(uow, customer_of(payload), occurred_at(envelope))

    return handle


async def payment_changed(uow, envelope, payload) -> None:
    """Confirmed or voided: the payer's health now, everybody's ranks in the next pass."""
    payment = payload.payment
    await _activity(uow, envelope, payment.customer, q.PAYMENT_KIND, currency=payment.amount.currency_code)
    await rescore_customer(uow, payment.customer, occurred_at(envelope))
    await mark_ranking_dirty(uow)


def register(registry, app) -> None:
    c, s, k, d = "customer", "sales", "contract", "servicedesk"
    registry.on(c, events_pb2.CustomerCreated, customer_snapshot)
    registry.on(c, events_pb2.CustomerUpdated, customer_snapshot)
    registry.on(c, events_pb2.CustomerDeleted, customer_deleted)
    registry.on(c, data_events_pb2.CustomerMerged, customer_merged)
    registry.on(c, pool_events_pb2.OwnershipChanged, ownership_changed)
    registry.on(
        c,
        pool_events_pb2.FollowUpLogged,
        _activity_handler("follow_up", lambda p: p.customer, lambda p: _ts(p, "follow_up_time")),
    )
    registry.on(
        c,
        behavior_events_pb2.PurchaseMade,
        _activity_handler("purchase", lambda p: p.customer, lambda p: _ts(p, "occur_time")),
    )
    registry.on(
        c,
        behavior_events_pb2.CartAbandoned,
        _activity_handler("cart_abandoned", lambda p: p.customer, lambda p: _ts(p, "occur_time")),
    )
    registry.on(
        s, sales_events.OpportunityCreated, _activity_handler("deal", lambda p: p.opportunity.customer)
    )
    registry.on(
        s, sales_events.OpportunityWon, _activity_handler("deal_won", lambda p: p.opportunity.customer)
    )
    registry.on(k, contract_events.PaymentConfirmed, payment_changed)
    registry.on(k, contract_events.PaymentVoided, payment_changed)
    registry.on(k, contract_events.PaymentOverdue, _rescore_handler(lambda p: p.installment.customer))
    registry.on(k, contract_events.InstallmentPaid, _rescore_handler(lambda p: p.installment.customer))
    registry.on(d, sd_events.TicketCreated, _activity_handler("ticket", lambda p: p.ticket.customer))
    registry.on(d, sd_events.TicketStatusChanged, _rescore_handler(lambda p: p.ticket.customer))
    registry.on(d, sd_events.SlaBreached, _rescore_handler(lambda p: p.ticket.customer))
    registry.on(d, sd_events.CsatSubmitted, _activity_handler("csat", lambda p: p.customer))


# --- reads --------------------------------------------------------------------------------------------


async def score_of(session, customer: str) -> CustomerScore | None:
    return await q.get_score(session, customer)


async def list_score_page(session, deps, principal, request) -> Page:
    """ListCustomerScores: the caller's scope, AIP-160 filter, least healthy first by default."""
    scope = report_scope(deps, principal, RESOURCE, None)
    req = parse_list_request(
        deps.page_tokens,
        collection="customerScores",
        caller=principal.subject,
        page_size=request.page_size,
        page_token=request.page_token,
        filter_text=request.filter,
        filters=SCORE_FILTERS,
        order_by=request.order_by,
        orderable=SCORE_ORDERABLE,
        default_order="health_score",
    )
    sort = q.sort_keys(req.order.fields)
    rows = await q.list_scores(
        session,
        predicate=scope.predicate(*q.scope_columns()),
        where=req.where,
        sort=sort,
        after=req.after,
        limit=req.limit + 1,
    )
    return req.page(
        rows, deps.page_tokens, key=lambda r: [getattr(r, f) for f, _ in req.order.fields] + [r.customer]
    )


@dataclass(frozen=True)
class AbcSummary:
    abc_class: int
    customers: int
    revenue_minor: int
    revenue_share_bp: int


@dataclass(frozen=True)
class Analytics:
    currency: str
    abc: list[AbcSummary]
    top_20_percent_revenue_share_bp: int
    rfm_segments: list[tuple[str, int]]
    lifecycle_stages: list[tuple[str, int]]
    churn_risks: list[tuple[str, int]]
    churn_rate_bp: int
    average_health_score: float
    customers: int


async def _revenue(session, currency: str, start, end) -> dict[str, int]:
    """Confirmed minus voided payments received in [start, end) per customer (payment_history totals)."""
    # payment_history counts received dates up to and including `until`'s day: the day before
    # an exclusive bound is the last one in (periods are day-granular for revenue).
    tick = timedelta(microseconds=1)
    until_end = await _payment_history(session, currency, None if end is None else end - tick)
    revenue = {c: int(p.total_minor) for c, p in until_end.items()}
    if start is not None:
        for c, p in (await _payment_history(session, currency, start - tick)).items():
            revenue[c] = revenue.get(c, 0) - int(p.total_minor)
    return revenue


def _counts(values) -> list[tuple[str, int]]:
    return sorted(Counter(values).items())


async def analytics_report(session, deps, principal, request) -> Analytics:
    if not request.currency_code:
        raise InvalidArgument.for_field("currency_code", "required (revenue is counted in one currency)")
    scope = report_scope(deps, principal, RESOURCE, request.query)
    population = await q.customers(session, scope.predicate(*q.customer_scope_columns()))
    if scope.end is not None:
        population = {
            c: i for c, i in population.items() if i.create_time is None or _aware(i.create_time) < scope.end
        }
    all_revenue = await _revenue(session, request.currency_code, scope.start, scope.end)
    revenue = {c: max(all_revenue.get(c, 0), 0) for c in population}
    classes = rules.abc_classes(revenue)
    total = sum(revenue.values())
    abc = []
    for cls in (rules.Abc.A, rules.Abc.B, rules.Abc.C):
        members = [c for c, k in classes.items() if k is cls]
        amount = sum(revenue[c] for c in members)
        abc.append(AbcSummary(int(cls), len(members), amount, rules.share_bp(amount, total)))
    scores = [
        s
        for s in await q.scores_in_scope(session, scope.predicate(*q.scope_columns()))
        if s.customer in population
    ]
    history = await q.lifecycle_history(session, population)
    return Analytics(
        currency=request.currency_code,
        abc=abc,
        top_20_percent_revenue_share_bp=rules.top_20_percent_share_bp(revenue),
        rfm_segments=_counts(s.rfm_segment for s in scores),
        lifecycle_stages=_counts(i.lifecycle_stage or "unknown" for i in population.values()),
        churn_risks=_counts(CHURN_NAMES[rules.Churn(s.churn_risk)] for s in scores),
        churn_rate_bp=rules.churn_rate_bp(history, scope.start, scope.end),
        average_health_score=(sum(s.health_score for s in scores) / len(scores)) if scores else 0.0,
        customers=len(population),
    )


# The servicer (api/customer_insight.py) returns these as they are: the response messages, built by
# api/analytics_mappers from the results above.


async def list_scores(session, deps, principal, request):
    from crm_reporting.api import analytics_mappers

    return analytics_mappers.scores_response(await list_score_page(session, deps, principal, request))


async def customer_analytics(session, deps, principal, request):
    from crm_reporting.api import analytics_mappers

    return analytics_mappers.analytics_to_pb(await analytics_report(session, deps, principal, request))


EXPORT_HEADER = [
    "customer",
    "owner",
    "team",
    "abc_class",
    "rfm_segment",
    "recency_score",
    "frequency_score",
    "monetary_score",
    "health_score",
    "churn_risk",
    "factors",
    "compute_time",
]


async def export_rows(
    session, deps, principal, kind: int, query_pb, group_by: str
) -> tuple[list[str], list[list]]:
    """CUSTOMER_SCORES as CSV rows: every score in scope, least healthy first (group_by unused)."""
    if kind != export_service_pb2.REPORT_KIND_CUSTOMER_SCORES:
        raise InvalidArgument.for_field("kind", "not an analytics report")
    scope = report_scope(deps, principal, RESOURCE, query_pb)
    scores = await q.scores_in_scope(session, scope.predicate(*q.scope_columns()))
    scores.sort(key=lambda s: (s.health_score, s.customer))
    rows = [
        [
            s.customer,
            s.owner,
            s.team,
            ABC_NAMES[rules.Abc(s.abc_class)],
            s.rfm_segment,
            s.recency_score,
            s.frequency_score,
            s.monetary_score,
            s.health_score,
            CHURN_NAMES[rules.Churn(s.churn_risk)],
            "; ".join(f["explanation"] for f in s.factors),
            _aware(s.compute_time).isoformat(),
        ]
        for s in scores
    ]
    return EXPORT_HEADER, rows
