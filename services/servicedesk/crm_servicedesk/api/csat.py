"""crm.servicedesk.v1.CsatService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from crm.servicedesk.v1 import csat_service_pb2 as rpc
from crm.servicedesk.v1 import csat_service_pb2_grpc as rpc_grpc
from crm_servicedesk.api import csat_mappers as m
from crm_servicedesk.api._base import ServicedeskServicerBase
from crm_servicedesk.service import csat_surveys as uc
from crm_servicedesk.service.tickets import customer_facing
from crm_shared.db.idempotency import create_once
from crm_shared.principal import current_principal

SERVICE = "crm.servicedesk.v1.CsatService"


class CsatServicer(ServicedeskServicerBase, rpc_grpc.CsatServiceServicer):
    def _to_pb(self, survey, principal) -> rpc.CsatSurvey:
        return m.survey_to_pb(survey, internal_fields=not customer_facing(self._app, principal))

    async def GetCsatSurvey(self, request: rpc.GetCsatSurveyRequest, context) -> rpc.CsatSurvey:
        ticket_id, principal = m.ticket_id(request.name), current_principal()
        async with self._app.db.read_session() as session:
            survey = await uc.get_survey(session, self._app, principal, ticket_id)
        return self._to_pb(survey, principal)

    async def SubmitCsatResponse(self, request: rpc.SubmitCsatResponseRequest, context) -> rpc.CsatSurvey:
        ticket_id, principal = m.ticket_id(request.name), current_principal()

        async def run(uow):
            return await uc.submit_response(
                uow, self._app, principal, ticket_id, score=request.score, comment=request.comment
            )

        async def reread(name: str):
            async with self._app.db.read_session() as session:
                return await uc.get_survey(session, self._app, principal, m.ticket_id(name))

        # The comment is the customer's own words: the idempotency table keeps only the name.
        survey = await create_once(
            self._app.uow_factory,
            method=f"/{SERVICE}/SubmitCsatResponse",
            request=request,
            request_id=request.request_id,
            run=run,
            response_type=rpc.CsatSurvey,
            reread=reread,
        )
        return self._to_pb(survey, principal)

    async def ListCsatSurveys(
        self, request: rpc.ListCsatSurveysRequest, context
    ) -> rpc.ListCsatSurveysResponse:
        principal = current_principal()
        async with self._app.db.read_session() as session:
            page = await uc.list_surveys(
                session,
                self._app,
                principal,
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
            )
        return rpc.ListCsatSurveysResponse(
            csat_surveys=[self._to_pb(s, principal) for s in page.items], next_page_token=page.next_page_token
        )
