"""ConvertLead: create or link the customer, create the contact (customer service), optionally an
opportunity (crm_sales.service.opportunities), then mark the lead CONVERTED — in an order that
never leaves anything half-done.

1. Read the lead in the caller's scope; a lead already CONVERTED answers with its stored
   result (a retry after success is a no-op); an illegal status is FAILED_PRECONDITION.
2. Remote calls, each idempotent by a request_id derived from the lead id: a retry after any
   later failure re-finds the same customer and contact instead of creating new ones.
   Customer service down or too slow -> UNAVAILABLE, and nothing local has changed.
3. One local transaction: (opportunity +) lead -> CONVERTED + LeadConverted in the outbox.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from crm.sales.v1 import events_pb2 as events_pb
from crm_sales.adapters import lead_published as published
from crm_sales.adapters.customer_client import ContactDraft, CustomerDraft
from crm_sales.adapters.lead_repository import LeadRepository
from crm_sales.domain import leads as rules
from crm_sales.domain import opportunities as opportunity_rules
from crm_sales.domain.leads import Lead, LeadStatus
from crm_sales.domain.opportunities import OpportunityInput
from crm_sales.service import opportunities
from crm_sales.service.leads import RESOURCE, LeadDeps, not_found
from crm_sales.service.pipelines import resolve_pipeline
from crm_shared.ids import derived_id
from crm_shared.principal import Principal


class CustomerDirectory(Protocol):
    async def create_or_link_customer(self, draft: CustomerDraft, *, request_id: str) -> tuple[str, bool]: ...

    async def create_contact(self, customer: str, draft: ContactDraft, *, request_id: str) -> str: ...


@dataclass(frozen=True)
class OpportunityDraft:
    title: str
    amount_minor: int | None = None  # None = not given
    currency_code: str = ""
    pipeline: str = ""
    expected_close_time: datetime | None = None


@dataclass(frozen=True)
class ConversionResult:
    lead: Lead
    customer: str
    contact: str
    opportunity: str
    linked_existing_customer: bool


def customer_request_id(lead_id: str) -> str:
    return derived_id("convert-lead", lead_id)


def contact_request_id(lead_id: str) -> str:
    return derived_id("convert-lead-contact", lead_id)


# --- opportunities ---------------------------------------------------------------------------
# The opportunities area's own use case creates the opportunity inside the conversion's unit of
# work, so the opportunity, its OpportunityCreated event and the converted lead commit together.
# Its input is checked before any remote call (same rules, with a provisional customer name), so a bad
# opportunity never leaves a customer created for a lead that then stays unconverted.


def _opportunity_input(
    lead: Lead, draft: OpportunityDraft, *, customer: str, contact: str, owner: str, team: str
) -> OpportunityInput:
    return OpportunityInput(
        customer=customer,
        contact=contact,
        title=draft.title,
        amount_minor=draft.amount_minor,
        currency_code=draft.currency_code,
        expected_close_time=draft.expected_close_time,
        pipeline=draft.pipeline,
        owner=owner,
        team=team,
        source_lead=lead.name,
        campaign=lead.campaign,
    )


async def check_opportunity(
    session, deps: LeadDeps, principal: Principal, lead: Lead, draft: OpportunityDraft, now: datetime
) -> None:
    """Every input error create_opportunity would raise later, raised now (nothing written)."""
    grant = deps.policy.grant(principal, opportunities.RESOURCE, "create")
    pipeline = await resolve_pipeline(session, draft.pipeline, "", field_prefix="opportunity")
    provisional_customer = f"customers/{customer_request_id(lead.id)}"
    data = _opportunity_input(
        lead,
        draft,
        customer=provisional_customer,
        contact="",
        owner=lead.owner or principal.subject,
        team=lead.team or principal.team,
    )
    opportunity_rules.new_opportunity(data, pipeline, opportunity_id=lead.id, now=now, grant=grant)


async def create_opportunity_for_conversion(
    uow,
    deps: LeadDeps,
    principal: Principal,
    lead: Lead,
    *,
    customer: str,
    contact: str,
    draft: OpportunityDraft,
) -> str:
    """Returns "opportunities/{id}", created in the conversion's unit of work (not committed here)."""
    data = _opportunity_input(
        lead,
        draft,
        customer=customer,
        contact=contact,
        owner=lead.owner or principal.subject,
        team=lead.team or principal.team,
    )
    opportunity = await opportunities.create_opportunity(uow, deps, principal, data)
    return opportunity.name


# --- the use case ----------------------------------------------------------------------------


def _attribution(lead: Lead) -> str:
    source = f"lead:{lead.source_channel.value}" if lead.source_channel else "lead"
    return source if not lead.campaign_id else f"{source}:{lead.campaign_id}"[:64]


def _result_of(lead: Lead, linked: bool) -> ConversionResult:
    return ConversionResult(
        lead, lead.converted_customer, lead.converted_contact, lead.converted_opportunity, linked
    )


async def record_conversion(
    uow,
    deps: LeadDeps,
    principal: Principal,
    lead: Lead,
    *,
    customer: str,
    contact: str,
    linked: bool,
    opportunity: OpportunityDraft | None,
) -> ConversionResult:
    """The local half, in one transaction: opportunity, lead -> CONVERTED, LeadConverted event."""
    grant = deps.policy.grant(principal, RESOURCE, "convert")
    repo = LeadRepository(uow.session, deps.codec)
    current = await repo.get(lead.id, grant)
    if current is None:
        raise not_found(lead.name)
    if current.status is LeadStatus.CONVERTED:
        return _result_of(current, linked)  # a concurrent conversion committed first
    opportunity_name = ""
    if opportunity is not None:
        opportunity_name = await create_opportunity_for_conversion(
            uow, deps, principal, current, customer=customer, contact=contact, draft=opportunity
        )
    converted = rules.convert(
        current,
        customer=customer,
        contact=contact,
        opportunity=opportunity_name,
        owner=principal.subject,
        now=uow.now,
    )
    await repo.save(converted, expected_version=current.version)
    uow.emit(
        published.SUBJECT_LEAD_CONVERTED,
        events_pb.LeadConverted(
            lead=published.lead_snapshot(converted),
            customer=customer,
            contact=contact,
            opportunity=opportunity_name,
            linked_existing_customer=linked,
        ),
        resource=converted.name,
    )
    uow.audit("converted", converted.name, ["status", "converted_customer", "converted_contact"])
    return ConversionResult(converted, customer, contact, opportunity_name, linked)


async def convert_lead(
    *,
    read_session: Callable[[], Any],
    uow_factory: Callable[[], Any],
    deps: LeadDeps,
    principal: Principal,
    customers: CustomerDirectory,
    lead_id: str,
    opportunity: OpportunityDraft | None,
    now: datetime,
    record: Callable[..., Awaitable[ConversionResult]] | None = None,
) -> ConversionResult:
    grant = deps.policy.grant(principal, RESOURCE, "convert")
    async with read_session() as session:
        lead = await LeadRepository(session, deps.codec).get(lead_id, grant)
        if lead is None:
            raise not_found(f"leads/{lead_id}")
        if lead.status is LeadStatus.CONVERTED:
            return _result_of(lead, False)
        rules.transition(lead.status, rules.LeadAction.CONVERT, lead_name=lead.name)
        if opportunity is not None:
            await check_opportunity(session, deps, principal, lead, opportunity, now)
    # Remote first (idempotent per lead), local commit last.
    owner = lead.owner or principal.subject
    customer, linked = await customers.create_or_link_customer(
        CustomerDraft(
            display_name=lead.company or lead.display_name,
            is_company=bool(lead.company),
            source=_attribution(lead),
            owner=owner,
            team=lead.team or principal.team,
            phones=list(lead.phones),
            emails=list(lead.emails),
        ),
        request_id=customer_request_id(lead.id),
    )
    contact = await customers.create_contact(
        customer,
        ContactDraft(
            display_name=lead.display_name,
            title=lead.title,
            phones=list(lead.phones),
            emails=list(lead.emails),
            notes=f"Converted from {lead.name}",
        ),
        request_id=contact_request_id(lead.id),
    )
    record = record or record_conversion
    async with uow_factory() as uow:
        result = await record(
            uow,
            deps,
            principal,
            lead,
            customer=customer,
            contact=contact,
            linked=linked,
            opportunity=opportunity,
        )
        await uow.commit()
    return result
