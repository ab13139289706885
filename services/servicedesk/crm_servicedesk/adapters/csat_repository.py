"""CSAT surveys in the database. The survey has no scope of its own: whoever may see the ticket
may see its survey, so List joins the tickets table and applies the ticket's scope predicate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_servicedesk.adapters.csat_tables import csat_surveys
from crm_servicedesk.adapters.ticket_tables import tickets
from crm_servicedesk.domain.csat import CsatState, CsatSurvey
from crm_shared.aip.filtering import FilterField, FilterSchema
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted

# ListCsatSurveys: answered surveys only, newest answer first (the id breaks ties).
CSAT_FILTERS = FilterSchema(
    {
        "score": FilterField.number(csat_surveys.c.score),
        "assignee": FilterField.string(csat_surveys.c.assignee),
        "team": FilterField.string(csat_surveys.c.team),
        "first_contact_resolution": FilterField.boolean(csat_surveys.c.first_contact_resolution),
        "answer_time": FilterField.timestamp(csat_surveys.c.answer_time),
    }
)
NEWEST_ANSWER_FIRST = (
    SortKey(csat_surveys.c.answer_time, descending=True),
    SortKey(csat_surveys.c.ticket_id, descending=True),
)


def survey_values(s: CsatSurvey) -> dict[str, Any]:
    return {
        "ticket_id": s.ticket_id,
        "customer": s.customer,
        "state": s.state.value,
        "score": s.score,
        "comment": s.comment,
        "first_contact_resolution": s.first_contact_resolution,
        "assignee": s.assignee,
        "team": s.team,
        "open_time": s.open_time,
        "answer_time": s.answer_time,
        "answered_by": s.answered_by,
        "update_time": s.update_time,
        "row_version": s.row_version,
    }


def survey_from_row(row: Any) -> CsatSurvey:
    return CsatSurvey(
        ticket_id=row["ticket_id"],
        customer=row["customer"],
        state=CsatState(row["state"]),
        score=int(row["score"]),
        comment=row["comment"],
        first_contact_resolution=bool(row["first_contact_resolution"]),
        assignee=row["assignee"],
        team=row["team"],
        open_time=row["open_time"],
        answer_time=row["answer_time"],
        answered_by=row["answered_by"],
        update_time=row["update_time"],
        row_version=row["row_version"],
    )


def sort_values(survey: CsatSurvey) -> list:
    """The keyset of one survey in the order NEWEST_ANSWER_FIRST describes (for the next page token)."""
    return [survey.answer_time, survey.ticket_id]


class CsatRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, ticket_id: str, *, lock: bool = False) -> CsatSurvey | None:
        query = sa.select(csat_surveys).where(csat_surveys.c.ticket_id == ticket_id)
        if lock and self.session.get_bind().dialect.name == "postgresql":
            # Two racing answers: the second waits, then sees ANSWERED instead of an etag clash.
            query = query.with_for_update()
        row = (await self.session.execute(query)).mappings().first()
        return None if row is None else survey_from_row(row)

    async def save(self, survey: CsatSurvey) -> None:
        """Insert the first version, update later ones; Aborted when someone else wrote first."""
        values = survey_values(survey)
        if survey.row_version == 1:
            await self.session.execute(sa.insert(csat_surveys).values(values))
            return
        result = await self.session.execute(
            sa.update(csat_surveys)
            .where(
                csat_surveys.c.ticket_id == survey.ticket_id,
                csat_surveys.c.row_version == survey.row_version - 1,
            )
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{survey.name} was changed concurrently; read it again and retry",
                reason="CONCURRENT_UPDATE",
                metadata={"resource": survey.name},
            )

    async def list_answered(
        self,
        ticket_scope: sa.ColumnElement[bool],
        *,
        where: sa.ColumnElement[bool] | None,
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[CsatSurvey]:
        """Answered surveys of tickets matching `ticket_scope` (a predicate on the tickets table)."""
        query = (
            sa.select(csat_surveys)
            .join(tickets, tickets.c.id == csat_surveys.c.ticket_id)
            .where(csat_surveys.c.state == CsatState.ANSWERED.value, ticket_scope)
        )
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(NEWEST_ANSWER_FIRST, after))
        query = query.order_by(*keyset_order(NEWEST_ANSWER_FIRST)).limit(limit)
        return [survey_from_row(row) for row in (await self.session.execute(query)).mappings().all()]

    async def move_customer(self, source: str, target: str) -> None:
        """CustomerMerged: the surveys of the merged-away customer belong to the survivor."""
        await self.session.execute(
            sa.update(csat_surveys)
            .where(csat_surveys.c.customer == source)
            .values(customer=target, row_version=csat_surveys.c.row_version + 1)
        )

    async def erase_comments(self, customer: str) -> int:
        """CustomerErased: free-text comments may hold personal data; scores stay for statistics."""
        result = await self.session.execute(
            sa.update(csat_surveys)
            .where(csat_surveys.c.customer == customer, csat_surveys.c.comment != "")
            .values(comment="", row_version=csat_surveys.c.row_version + 1)
        )
        return result.rowcount
