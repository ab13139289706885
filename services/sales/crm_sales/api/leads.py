"""crm.sales.v1.LeadService over gRPC (thin: parse, call a use case, map the result).

Authentication, request validation, error mapping, metrics and tracing happen in the
shared interceptors; nothing here touches status codes directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC

from google.protobuf import empty_pb2

from crm.sales.v1 import lead_service_pb2 as pb
from crm.sales.v1 import lead_service_pb2_grpc as rpc_grpc
from crm_sales.adapters.customer_client import CustomerServiceClient
from crm_sales.api import lead_mappers as mappers
from crm_sales.app import SalesApp
from crm_sales.service import conversion, leads
from crm_sales.service.conversion import OpportunityDraft
from crm_sales.service.leads import LeadDeps
from crm_shared.db.idempotency import create_once, idempotent, in_unit_of_work
from crm_shared.errors import InvalidArgument
from crm_shared.principal import current_principal

SERVICE = "crm.sales.v1.LeadService"


class LeadServicer(rpc_grpc.LeadServiceServicer):
    def __init__(self, app: SalesApp) -> None:
        self._app = app
        self._db = app.db
        self._uow = app.uow_factory
        self._deps = LeadDeps(
            policy=app.policy,
            codec=app.codec,
            page_tokens=app.page_tokens,
            phone_region=app.settings.default_phone_region,
        )
        # One channel to the customer service, opened on first use (on behalf of each caller).
        self._customers = CustomerServiceClient(
            app.settings.customer_target, timeout=app.settings.downstream_timeout_seconds
        )

    async def close(self) -> None:
        """Closes the channel to the customer service (a closer of the composition root)."""
        await self._customers.close()

    def _masker(self) -> mappers.LeadMasker:
        return mappers.LeadMasker(self._deps.policy, current_principal())

    async def _write(self, run: Callable[[object], Awaitable[object]]):
        return await in_unit_of_work(self._uow, run)

    async def _create_once(self, method: str, request, request_id: str, *, run, reread):
        """request_id idempotency storing only the new lead's name (never its personal data)."""
        return await create_once(
            self._uow,
            method=method,
            request=request,
            request_id=request_id,
            run=run,
            response_type=pb.Lead,
            reread=reread,
        )

    async def _reread(self, name: str, principal):
        async with self._db.read_session() as session:
            return await leads.get_lead(session, self._deps, principal, mappers.lead_id_from(name))

    # --- standard methods ------------------------------------------------------------------------

    async def GetLead(self, request: pb.GetLeadRequest, context) -> pb.Lead:
        lead_id = mappers.lead_id_from(request.name)
        async with self._db.read_session() as session:
            lead = await leads.get_lead(session, self._deps, current_principal(), lead_id)
        return mappers.lead_to_pb(lead, self._masker())

    async def ListLeads(self, request: pb.ListLeadsRequest, context) -> pb.ListLeadsResponse:
        async with self._db.read_session() as session:
            page = await leads.list_leads(
                session,
                self._deps,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
                order_by=request.order_by,
            )
        masker = self._masker()
        return pb.ListLeadsResponse(
            leads=[mappers.lead_to_pb(lead, masker) for lead in page.leads],
            next_page_token=page.next_page_token,
        )

    async def CreateLead(self, request: pb.CreateLeadRequest, context) -> pb.Lead:
        principal = current_principal()
        data = mappers.lead_input(request.lead)
        lead = await self._create_once(
            f"/{SERVICE}/CreateLead",
            request,
            request.request_id,
            run=lambda uow: leads.create_lead(
                uow, self._deps, principal, data, allow_duplicate=request.allow_duplicate
            ),
            reread=lambda name: self._reread(name, principal),
        )
        return mappers.lead_to_pb(lead, self._masker())

    async def UpdateLead(self, request: pb.UpdateLeadRequest, context) -> pb.Lead:
        if not request.lead.name:
            raise InvalidArgument.for_field("lead.name", "is required to say which lead to update")
        lead_id = mappers.lead_id_from(request.lead.name, field="lead.name")
        principal = current_principal()
        data = mappers.lead_input(request.lead)
        lead = await self._write(
            lambda uow: leads.update_lead(
                uow, self._deps, principal, lead_id, data, list(request.update_mask.paths), request.lead.etag
            )
        )
        return mappers.lead_to_pb(lead, self._masker())

    async def DeleteLead(self, request: pb.DeleteLeadRequest, context) -> empty_pb2.Empty:
        lead_id = mappers.lead_id_from(request.name)
        principal = current_principal()
        await self._write(lambda uow: leads.delete_lead(uow, self._deps, principal, lead_id, request.etag))
        return empty_pb2.Empty()

    # --- capture and assignment ------------------------------------------------------------------

    async def CaptureLead(self, request: pb.CaptureLeadRequest, context) -> pb.CaptureLeadResponse:
        principal = current_principal()
        data = mappers.capture_input(request)

        async def run(uow):
            lead, duplicate = await leads.capture_lead(uow, self._deps, principal, data)
            return pb.CaptureLeadResponse(lead=lead.name, duplicate=duplicate)

        # The response holds only the lead's name, so storing it for request_id replays is fine.
        return await idempotent(
            self._uow,
            method=f"/{SERVICE}/CaptureLead",
            request_id=request.request_id,
            request=request,
            response_type=pb.CaptureLeadResponse,
            run=run,
        )

    async def AssignLead(self, request: pb.AssignLeadRequest, context) -> pb.Lead:
        lead_id = mappers.lead_id_from(request.name)
        principal = current_principal()
        lead = await self._write(
            lambda uow: leads.assign_lead(
                uow, self._deps, principal, lead_id, owner=request.owner, team=request.team, etag=request.etag
            )
        )
        return mappers.lead_to_pb(lead, self._masker())

    async def AssignLeads(self, request: pb.AssignLeadsRequest, context) -> pb.AssignLeadsResponse:
        rule_id = mappers.rule_id_from(request.rule, field="rule")
        lead_ids = [mappers.lead_id_from(name, field=f"leads[{i}]") for i, name in enumerate(request.leads)]
        principal = current_principal()
        assigned = await self._write(
            lambda uow: leads.assign_leads(uow, self._deps, principal, rule_id, lead_ids, request.max_leads)
        )
        masker = self._masker()
        return pb.AssignLeadsResponse(leads=[mappers.lead_to_pb(lead, masker) for lead in assigned])

    # --- status changes --------------------------------------------------------------------------

    async def StartWorkingLead(self, request: pb.StartWorkingLeadRequest, context) -> pb.Lead:
        lead_id = mappers.lead_id_from(request.name)
        principal = current_principal()
        lead = await self._write(
            lambda uow: leads.start_working(uow, self._deps, principal, lead_id, request.etag)
        )
        return mappers.lead_to_pb(lead, self._masker())

    async def RecycleLead(self, request: pb.RecycleLeadRequest, context) -> pb.Lead:
        lead_id = mappers.lead_id_from(request.name)
        principal = current_principal()
        lead = await self._write(lambda uow: leads.recycle(uow, self._deps, principal, lead_id, request.etag))
        return mappers.lead_to_pb(lead, self._masker())

    async def DisqualifyLead(self, request: pb.DisqualifyLeadRequest, context) -> pb.Lead:
        lead_id = mappers.lead_id_from(request.name)
        principal = current_principal()
        lead = await self._write(
            lambda uow: leads.disqualify(uow, self._deps, principal, lead_id, request.reason, request.etag)
        )
        return mappers.lead_to_pb(lead, self._masker())

    async def ConvertLead(self, request: pb.ConvertLeadRequest, context) -> pb.ConvertLeadResponse:
        lead_id = mappers.lead_id_from(request.name)
        opportunity = None
        if request.create_opportunity:
            if not request.HasField("opportunity"):
                raise InvalidArgument.for_field("opportunity", "is required when create_opportunity is set")
            o = request.opportunity
            opportunity = OpportunityDraft(
                title=o.title,
                amount_minor=o.amount.amount_minor if o.HasField("amount") else None,
                currency_code=o.amount.currency_code,
                pipeline=o.pipeline,
                expected_close_time=o.expected_close_time.ToDatetime(tzinfo=UTC)
                if o.HasField("expected_close_time")
                else None,
            )
        result = await conversion.convert_lead(
            read_session=self._db.read_session,
            uow_factory=self._uow,
            deps=self._deps,
            principal=current_principal(),
            customers=self._customers,
            lead_id=lead_id,
            opportunity=opportunity,
            now=self._app.clock.now(),
        )
        return pb.ConvertLeadResponse(
            lead=mappers.lead_to_pb(result.lead, self._masker()),
            customer=result.customer,
            contact=result.contact,
            opportunity=result.opportunity,
            linked_existing_customer=result.linked_existing_customer,
        )

    # --- assignment rules ------------------------------------------------------------------------

    async def GetLeadAssignmentRule(self, request: pb.GetLeadAssignmentRuleRequest, context):
        rule_id = mappers.rule_id_from(request.name)
        async with self._db.read_session() as session:
            rule = await leads.get_rule(session, self._deps, current_principal(), rule_id)
        return mappers.rule_to_pb(rule)

    async def ListLeadAssignmentRules(self, request: pb.ListLeadAssignmentRulesRequest, context):
        async with self._db.read_session() as session:
            page = await leads.list_rules(
                session,
                self._deps,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
            )
        return pb.ListLeadAssignmentRulesResponse(
            rules=[mappers.rule_to_pb(r) for r in page.rules], next_page_token=page.next_page_token
        )

    async def CreateLeadAssignmentRule(self, request: pb.CreateLeadAssignmentRuleRequest, context):
        principal = current_principal()
        data = mappers.rule_input(request.rule)

        async def run(uow):
            rule = await leads.create_rule(uow, self._deps, principal, data)
            return mappers.rule_to_pb(rule)

        return await idempotent(
            self._uow,
            method=f"/{SERVICE}/CreateLeadAssignmentRule",
            request_id=request.request_id,
            request=request,
            response_type=pb.LeadAssignmentRule,
            run=run,
        )

    async def UpdateLeadAssignmentRule(self, request: pb.UpdateLeadAssignmentRuleRequest, context):
        if not request.rule.name:
            raise InvalidArgument.for_field("rule.name", "is required to say which rule to update")
        rule_id = mappers.rule_id_from(request.rule.name, field="rule.name")
        principal = current_principal()
        data = mappers.rule_input(request.rule)
        rule = await self._write(
            lambda uow: leads.update_rule(
                uow, self._deps, principal, rule_id, data, list(request.update_mask.paths), request.rule.etag
            )
        )
        return mappers.rule_to_pb(rule)

    async def DeleteLeadAssignmentRule(self, request: pb.DeleteLeadAssignmentRuleRequest, context):
        rule_id = mappers.rule_id_from(request.name)
        principal = current_principal()
        await self._write(lambda uow: leads.delete_rule(uow, self._deps, principal, rule_id, request.etag))
        return empty_pb2.Empty()
