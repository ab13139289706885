"""Protobuf <-> domain for CSAT surveys."""

from __future__ import annotations

from crm.servicedesk.v1 import csat_service_pb2 as pb
from crm_servicedesk.domain.csat import CsatState, CsatSurvey
from crm_servicedesk.service.ticket_events import timestamp
from crm_shared.errors import InvalidArgument

STATE_TO_PB = {s: pb.CsatSurveyState.Value(f"CSAT_SURVEY_STATE_{s.name}") for s in CsatState}
_PREFIX, _SUFFIX = "tickets/", "/csatSurvey"


def ticket_id(name: str, *, field: str = "name") -> str:
    """The ticket id of "tickets/{id}/csatSurvey"."""
    if not (name.startswith(_PREFIX) and name.endswith(_SUFFIX)) or len(name) <= len(_PREFIX + _SUFFIX):
        raise InvalidArgument.for_field(field, "must look like tickets/{ticket}/csatSurvey")
    return name[len(_PREFIX) : -len(_SUFFIX)]


def survey_to_pb(survey: CsatSurvey, *, internal_fields: bool = True) -> pb.CsatSurvey:
    """internal_fields=False (customer_portal callers): no assignee or team, as on the ticket."""
    message = pb.CsatSurvey(
        name=survey.name,
        ticket=survey.ticket,
        state=STATE_TO_PB[survey.state],
        score=survey.score,
        comment=survey.comment,
        first_contact_resolution=survey.first_contact_resolution,
        open_time=timestamp(survey.open_time),
        answer_time=timestamp(survey.answer_time),
    )
    if internal_fields:
        message.assignee = survey.assignee
        message.team = survey.team
    return message
