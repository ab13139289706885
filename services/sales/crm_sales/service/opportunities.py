"""Use cases for opportunities: one function per command or query.

Writes take a unit of work (rows, stage history, outbox events and audit
records commit together); reads take a session. The caller's data scope comes
from the access policy and goes into every query, so an opportunity outside it
is simply not found.

`create_opportunity(uow, app, principal, data)` is also called by ConvertLead
inside the leads unit of work, so it never opens or commits a transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm.sales.v1 import events_pb2
from crm_sales.adapters import opportunity_published as published
from crm_sales.adapters.opportunity_filters import (
    DEFAULT_ORDER,
    ORDERABLE,
    opportunity_filter_schema,
    sort_keys,
)
from crm_sales.adapters.opportunity_repository import OpportunityRepository, PipelineRepository
from crm_sales.app import SalesApp
from crm_sales.domain import opportunities as rules
from crm_sales.domain.opportunities import Opportunity, OpportunityInput, Pipeline
from crm_sales.service.pipelines import resolve_pipeline
from crm_shared.access import ScopeGrant
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import parse_list_request
from crm_shared.errors import NotFound
from crm_shared.ids import new_id
from crm_shared.principal import Principal

RESOURCE = "opportunities"
# Reading open and lost opportunities needs this action too; finance has read but not this.
READ_UNWON = "read_unwon"

__all__ = [
    "Opportunity",
    "OpportunityInput",
    "create_opportunity",
    "delete_opportunity",
    "get_opportunity",
    "list_opportunities",
    "lose_opportunity",
    "move_opportunity_stage",
    "reopen_opportunity",
    "update_opportunity",
    "win_opportunity",
]


@dataclass(frozen=True)
class OpportunityPage:
    opportunities: list[Opportunity]
    next_page_token: str


def not_found(name: str) -> NotFound:
    # The same answer whether the opportunity does not exist or is outside the caller's scope.
    return NotFound(f"{name} not found", reason="OPPORTUNITY_NOT_FOUND", metadata={"resource": name})


def readable(app: SalesApp, principal: Principal) -> sa.ColumnElement[bool]:
    grant = app.policy.grant(principal, RESOURCE, "read")
    unwon = ScopeGrant(app.policy.scope(principal, RESOURCE, READ_UNWON), principal.subject, principal.team)
    return OpportunityRepository.readable(grant, unwon)


async def _pipeline_of(session: AsyncSession, opportunity: Opportunity) -> Pipeline:
    pipeline = await PipelineRepository(session).get(opportunity.pipeline_id)
    if pipeline is None:  # pipelines with opportunities cannot be deleted
        raise RuntimeError(f"{opportunity.name} points at a missing pipeline {opportunity.pipeline}")
    return pipeline


# --- queries ------------------------------------------------------------------------------------


async def get_opportunity(
    session: AsyncSession, app: SalesApp, principal: Principal, opportunity_id: str
) -> Opportunity:
    found = await OpportunityRepository(session).get(opportunity_id, readable(app, principal))
    if found is None:
        raise not_found(f"opportunities/{opportunity_id}")
    return found


async def list_opportunities(
    session: AsyncSession,
    app: SalesApp,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
    order_by: str,
) -> OpportunityPage:
    visible = readable(app, principal)
    # A token is bound to its query and caller: not replayable with another filter or by someone else.
    req = parse_list_request(
        app.page_tokens,
        collection="opportunities",
        caller=principal.subject,
        page_size=page_size,
        page_token=page_token,
        filter_text=filter_text,
        filters=opportunity_filter_schema(),
        order_by=order_by,
        orderable=tuple(ORDERABLE),
        default_order=DEFAULT_ORDER,
    )
    rows = await OpportunityRepository(session).list(
        visible, where=req.where, sort=sort_keys(req.order.fields), after=req.after, limit=req.limit + 1
    )
    attribute = {"amount": "amount_minor"}
    page = req.page(
        rows,
        app.page_tokens,
        key=lambda last: (
            [getattr(last, attribute.get(name, name)) for name, _ in req.order.fields] + [last.id]
        ),
    )
    return OpportunityPage(page.items, page.next_page_token)


# --- commands -----------------------------------------------------------------------------------


async def create_opportunity(uow, app: SalesApp, principal: Principal, data: OpportunityInput) -> Opportunity:
    """Create an open opportunity, its first stage-history entry and OpportunityCreated, in `uow`.

    For callers in other use cases (ConvertLead): `app` only needs `.policy` (the AccessPolicy), so
    the leads deps object works too; nothing is committed here. `data` needs customer, title,
    amount_minor + currency_code (or product_lines) and expected_close_time; source_lead
    ("leads/{id}") and campaign ("campaigns/{id}") keep the attribution. Input errors raise
    InvalidArgument with `opportunity.*` field paths.
    """
    grant = app.policy.grant(principal, RESOURCE, "create")
    pipeline = await resolve_pipeline(uow.session, data.pipeline, data.stage, field_prefix="opportunity")
    opportunity = rules.new_opportunity(data, pipeline, opportunity_id=new_id(), now=uow.now, grant=grant)
    await OpportunityRepository(uow.session).add(opportunity)
    uow.emit(
        published.SUBJECT_OPPORTUNITY_CREATED,
        events_pb2.OpportunityCreated(opportunity=published.opportunity_snapshot(opportunity)),
        resource=opportunity.name,
    )
    uow.audit("created", opportunity.name, _set_fields(opportunity))
    return opportunity


def _set_fields(o: Opportunity) -> list[str]:
    present = ["customer", "title", "amount", "expected_close_time", "pipeline", "stage", "owner", "team"]
    optional = {
        "contact": o.contact,
        "product_lines": o.product_lines,
        "competitor": o.competitor,
        "source_lead": o.source_lead,
        "campaign": o.campaign,
        "probability": o.probability_overridden,
    }
    return present + [name for name, value in optional.items() if value]


async def _load_for_write(
    uow, app: SalesApp, principal: Principal, opportunity_id: str, action: str, etag: str
):
    grant = app.policy.grant(principal, RESOURCE, action)
    current = await OpportunityRepository(uow.session).get(
        opportunity_id, OpportunityRepository.in_scope(grant)
    )
    if current is None:
        raise not_found(f"opportunities/{opportunity_id}")
    check_etag(etag, current.id, current.version, resource=current.name)
    return grant, current


async def update_opportunity(
    uow,
    app: SalesApp,
    principal: Principal,
    opportunity_id: str,
    data: OpportunityInput,
    mask_paths: Sequence[str],
    etag: str,
) -> Opportunity:
    fields = resolve_update_mask(
        mask_paths,
        writable=rules.OPPORTUNITY_WRITABLE_FIELDS,
        output_only=rules.OPPORTUNITY_OUTPUT_ONLY_FIELDS,
    )
    grant, current = await _load_for_write(uow, app, principal, opportunity_id, "update", etag)
    pipeline = await _pipeline_of(uow.session, current)
    updated, changed = rules.update_opportunity(current, data, fields, pipeline, now=uow.now, grant=grant)
    if not changed:
        return current
    await OpportunityRepository(uow.session).save(updated, previous=current)
    uow.emit(
        published.SUBJECT_OPPORTUNITY_UPDATED,
        events_pb2.OpportunityUpdated(
            opportunity=published.opportunity_snapshot(updated), changed_fields=changed
        ),
        resource=updated.name,
    )
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_opportunity(
    uow, app: SalesApp, principal: Principal, opportunity_id: str, etag: str
) -> None:
    _, current = await _load_for_write(uow, app, principal, opportunity_id, "delete", etag)
    await OpportunityRepository(uow.session).remove(current.id)
    uow.emit(
        published.SUBJECT_OPPORTUNITY_DELETED,
        events_pb2.OpportunityDeleted(
            opportunity=current.name, customer=current.customer, owner=current.owner, team=current.team
        ),
        resource=current.name,
    )
    uow.audit("deleted", current.name, [])


async def move_opportunity_stage(
    uow,
    app: SalesApp,
    principal: Principal,
    opportunity_id: str,
    stage: str,
    probability: int | None,
    etag: str,
) -> Opportunity:
    _, current = await _load_for_write(uow, app, principal, opportunity_id, "update", etag)
    pipeline = await _pipeline_of(uow.session, current)
    moved = rules.move_stage(current, pipeline, stage, probability, now=uow.now, by=principal.subject)
    await OpportunityRepository(uow.session).save(moved, previous=current)
    _emit_stage_changed(uow, current, moved)
    uow.audit("stage_changed", moved.name, ["stage", "probability", "forecast_category"])
    return moved


def _emit_stage_changed(uow, before: Opportunity, after: Opportunity) -> None:
    uow.emit(
        published.SUBJECT_OPPORTUNITY_STAGE_CHANGED,
        events_pb2.OpportunityStageChanged(
            opportunity=published.opportunity_snapshot(after),
            from_stage=before.stage,
            to_stage=after.stage,
            change_time=published.timestamp(uow.now),
        ),
        resource=after.name,
    )


async def win_opportunity(
    uow, app: SalesApp, principal: Principal, opportunity_id: str, stage: str, etag: str
) -> Opportunity:
    _, current = await _load_for_write(uow, app, principal, opportunity_id, "update", etag)
    pipeline = await _pipeline_of(uow.session, current)
    won = rules.win(current, pipeline, stage, now=uow.now, by=principal.subject)
    await OpportunityRepository(uow.session).save(won, previous=current)
    uow.emit(
        published.SUBJECT_OPPORTUNITY_WON,
        events_pb2.OpportunityWon(
            opportunity=published.opportunity_snapshot(won), won_time=published.timestamp(uow.now)
        ),
        resource=won.name,
    )
    uow.audit("won", won.name, ["state", "stage", "probability", "close_time"])
    return won


async def lose_opportunity(
    uow,
    app: SalesApp,
    principal: Principal,
    opportunity_id: str,
    *,
    lost_reason: str,
    competitor: str,
    stage: str,
    etag: str,
) -> Opportunity:
    _, current = await _load_for_write(uow, app, principal, opportunity_id, "update", etag)
    pipeline = await _pipeline_of(uow.session, current)
    lost = rules.lose(
        current,
        pipeline,
        stage,
        lost_reason=lost_reason,
        competitor=competitor,
        now=uow.now,
        by=principal.subject,
    )
    await OpportunityRepository(uow.session).save(lost, previous=current)
    uow.emit(
        published.SUBJECT_OPPORTUNITY_LOST,
        events_pb2.OpportunityLost(
            opportunity=published.opportunity_snapshot(lost),
            lost_reason=lost.lost_reason,
            competitor=lost.competitor,
            lost_time=published.timestamp(uow.now),
        ),
        resource=lost.name,
    )
    uow.audit("lost", lost.name, ["state", "stage", "probability", "close_time", "lost_reason", "competitor"])
    return lost


async def reopen_opportunity(
    uow, app: SalesApp, principal: Principal, opportunity_id: str, stage: str, etag: str
) -> Opportunity:
    _, current = await _load_for_write(uow, app, principal, opportunity_id, "reopen", etag)
    pipeline = await _pipeline_of(uow.session, current)
    reopened = rules.reopen(current, pipeline, stage, now=uow.now, by=principal.subject)
    await OpportunityRepository(uow.session).save(reopened, previous=current)
    _emit_stage_changed(uow, current, reopened)
    uow.audit("reopened", reopened.name, ["state", "stage", "probability", "close_time"])
    return reopened
