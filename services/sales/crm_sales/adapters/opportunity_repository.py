"""Pipelines and opportunities in the database: scope inside every query, keyset pages, history appended."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sales.adapters.opportunity_tables import (
    opportunities,
    opportunity_lines,
    opportunity_stage_history,
    pipeline_stages,
    pipelines,
)
from crm_sales.domain.opportunities import (
    ForecastCategory,
    ForecastGroup,
    Opportunity,
    OpportunityState,
    Pipeline,
    ProductLine,
    Stage,
    StageEntry,
)
from crm_shared.access import ScopeGrant
from crm_shared.access.sql import scope_predicate
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted


def _concurrent(name: str) -> Aborted:
    return Aborted(f"{name} was changed concurrently; read it again and retry", reason="CONCURRENT_UPDATE")


class PipelineRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _stages(self, pipeline_ids: Sequence[str]) -> dict[str, list[Stage]]:
        rows = (
            await self.session.execute(
                sa.select(pipeline_stages)
                .where(pipeline_stages.c.pipeline_id.in_(pipeline_ids))
                .order_by(pipeline_stages.c.pipeline_id, pipeline_stages.c.position)
            )
        ).all()
        found: dict[str, list[Stage]] = {pid: [] for pid in pipeline_ids}
        for row in rows:
            found[row.pipeline_id].append(
                Stage(
                    id=row.id,
                    display_name=row.display_name,
                    default_probability=row.default_probability,
                    forecast_category=ForecastCategory(row.forecast_category),
                    is_won=row.is_won,
                    is_lost=row.is_lost,
                    position=row.position,
                )
            )
        return found

    @staticmethod
    def _to_pipeline(row: sa.Row, stages: list[Stage]) -> Pipeline:
        return Pipeline(
            id=row.id,
            display_name=row.display_name,
            currency_code=row.currency_code,
            stages=tuple(stages),
            is_default=row.is_default,
            create_time=row.create_time,
            update_time=row.update_time,
            version=row.version,
        )

    async def get(self, pipeline_id: str) -> Pipeline | None:
        row = (await self.session.execute(sa.select(pipelines).where(pipelines.c.id == pipeline_id))).first()
        if row is None:
            return None
        return self._to_pipeline(row, (await self._stages([row.id]))[row.id])

    async def get_default(self) -> Pipeline | None:
        row = (
            await self.session.execute(
                sa.select(pipelines.c.id).where(pipelines.c.is_default.is_(True)).limit(1)
            )
        ).first()
        return None if row is None else await self.get(row.id)

    async def list(self, *, after: Sequence[Any] | None, limit: int) -> list[Pipeline]:
        sort = [SortKey(pipelines.c.create_time), SortKey(pipelines.c.id)]
        query = sa.select(pipelines)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        rows = (await self.session.execute(query.order_by(*keyset_order(sort)).limit(limit))).all()
        stages = await self._stages([row.id for row in rows]) if rows else {}
        return [self._to_pipeline(row, stages[row.id]) for row in rows]

    def _values(self, pipeline: Pipeline) -> dict[str, Any]:
        return {
            "id": pipeline.id,
            "display_name": pipeline.display_name,
            "currency_code": pipeline.currency_code,
            "is_default": pipeline.is_default,
            "create_time": pipeline.create_time,
            "update_time": pipeline.update_time,
            "version": pipeline.version,
        }

    async def _write_stages(self, pipeline: Pipeline) -> None:
        await self.session.execute(
            sa.delete(pipeline_stages).where(pipeline_stages.c.pipeline_id == pipeline.id)
        )
        await self.session.execute(
            sa.insert(pipeline_stages),
            [
                {
                    "pipeline_id": pipeline.id,
                    "id": s.id,
                    "position": s.position,
                    "display_name": s.display_name,
                    "default_probability": s.default_probability,
                    "forecast_category": s.forecast_category.value,
                    "is_won": s.is_won,
                    "is_lost": s.is_lost,
                }
                for s in pipeline.stages
            ],
        )

    async def exists(self, pipeline_id: str) -> bool:
        found = await self.session.execute(sa.select(pipelines.c.id).where(pipelines.c.id == pipeline_id))
        return found.first() is not None

    async def add(self, pipeline: Pipeline) -> None:
        await self.session.execute(sa.insert(pipelines).values(self._values(pipeline)))
        await self._write_stages(pipeline)

    async def save(self, pipeline: Pipeline, *, expected_version: int) -> None:
        values = self._values(pipeline)
        del values["id"], values["create_time"]
        result = await self.session.execute(
            sa.update(pipelines)
            .where(pipelines.c.id == pipeline.id, pipelines.c.version == expected_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise _concurrent(pipeline.name)
        await self._write_stages(pipeline)

    async def remove(self, pipeline_id: str) -> None:
        await self.session.execute(
            sa.delete(pipeline_stages).where(pipeline_stages.c.pipeline_id == pipeline_id)
        )
        await self.session.execute(sa.delete(pipelines).where(pipelines.c.id == pipeline_id))

    async def opportunities_in(
        self, pipeline_id: str, stage_ids: Sequence[str] | None = None, *, currency_other_than: str = ""
    ) -> int:
        """How many opportunities (in any scope) sit in the pipeline, or in some of its stages."""
        query = (
            sa.select(sa.func.count())
            .select_from(opportunities)
            .where(opportunities.c.pipeline_id == pipeline_id)
        )
        if stage_ids is not None:
            query = query.where(opportunities.c.stage_id.in_(stage_ids))
        if currency_other_than:
            query = query.where(opportunities.c.currency_code != currency_other_than)
        return int((await self.session.execute(query)).scalar_one())

    async def recategorize(
        self, pipeline_id: str, stage_id: str, category: ForecastCategory, now: datetime
    ) -> int:
        result = await self.session.execute(
            sa.update(opportunities)
            .where(opportunities.c.pipeline_id == pipeline_id, opportunities.c.stage_id == stage_id)
            .values(forecast_category=category.value, update_time=now, version=opportunities.c.version + 1)
        )
        return result.rowcount


class OpportunityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- scope ----------------------------------------------------------------------------------

    @staticmethod
    def in_scope(grant: ScopeGrant) -> sa.ColumnElement[bool]:
        return scope_predicate(grant, owner=opportunities.c.owner, team=opportunities.c.team)

    @classmethod
    def readable(cls, grant: ScopeGrant, unwon: ScopeGrant) -> sa.ColumnElement[bool]:
        """Read scope; open and lost opportunities also need the `read_unwon` scope (finance has none)."""
        return sa.and_(
            cls.in_scope(grant),
            sa.or_(opportunities.c.state == OpportunityState.WON.value, cls.in_scope(unwon)),
        )

    # --- mapping --------------------------------------------------------------------------------

    @staticmethod
    def _values(o: Opportunity) -> dict[str, Any]:
        return {
            "id": o.id,
            "customer_id": o.customer_id,
            "contact": o.contact,
            "title": o.title,
            "amount_minor": o.amount_minor,
            "currency_code": o.currency_code,
            "weighted_amount_minor": o.weighted_amount_minor,
            "expected_close_time": o.expected_close_time,
            "pipeline_id": o.pipeline_id,
            "stage_id": o.stage_id,
            "probability": o.probability,
            "probability_overridden": o.probability_overridden,
            "forecast_category": o.forecast_category.value,
            "state": o.state.value,
            "owner": o.owner,
            "team": o.team,
            "competitor": o.competitor,
            "lost_reason": o.lost_reason,
            "source_lead": o.source_lead,
            "campaign": o.campaign,
            "create_time": o.create_time,
            "update_time": o.update_time,
            "close_time": o.close_time,
            "version": o.version,
        }

    @staticmethod
    def _to_opportunity(row: sa.Row, lines: list[ProductLine], history: list[StageEntry]) -> Opportunity:
        return Opportunity(
            id=row.id,
            customer_id=row.customer_id,
            title=row.title,
            amount_minor=int(row.amount_minor),
            currency_code=row.currency_code,
            expected_close_time=row.expected_close_time,
            pipeline_id=row.pipeline_id,
            stage_id=row.stage_id,
            probability=row.probability,
            probability_overridden=row.probability_overridden,
            forecast_category=ForecastCategory(row.forecast_category),
            state=OpportunityState(row.state),
            owner=row.owner,
            team=row.team,
            create_time=row.create_time,
            update_time=row.update_time,
            contact=row.contact,
            product_lines=tuple(lines),
            competitor=row.competitor,
            lost_reason=row.lost_reason,
            source_lead=row.source_lead,
            campaign=row.campaign,
            close_time=row.close_time,
            history=tuple(history),
            version=row.version,
        )

    async def _children(self, ids: Sequence[str]) -> tuple[dict[str, list], dict[str, list]]:
        lines: dict[str, list[ProductLine]] = {i: [] for i in ids}
        history: dict[str, list[StageEntry]] = {i: [] for i in ids}
        if not ids:
            return lines, history
        for row in (
            await self.session.execute(
                sa.select(opportunity_lines)
                .where(opportunity_lines.c.opportunity_id.in_(ids))
                .order_by(opportunity_lines.c.opportunity_id, opportunity_lines.c.position)
            )
        ).all():
            lines[row.opportunity_id].append(
                ProductLine(
                    row.display_name, int(row.quantity), int(row.unit_price_minor), row.product, row.sku
                )
            )
        h = opportunity_stage_history
        for row in (
            await self.session.execute(
                sa.select(h).where(h.c.opportunity_id.in_(ids)).order_by(h.c.opportunity_id, h.c.seq)
            )
        ).all():
            history[row.opportunity_id].append(
                StageEntry(
                    pipeline_id=row.pipeline_id,
                    stage_id=row.stage_id,
                    enter_time=row.enter_time,
                    changed_by=row.changed_by,
                    amount_minor=int(row.amount_minor),
                    currency_code=row.currency_code,
                    probability=row.probability,
                    forecast_category=ForecastCategory(row.forecast_category),
                )
            )
        return lines, history

    # --- queries --------------------------------------------------------------------------------

    async def get(self, opportunity_id: str, visible: sa.ColumnElement[bool]) -> Opportunity | None:
        row = (
            await self.session.execute(
                sa.select(opportunities).where(opportunities.c.id == opportunity_id, visible)
            )
        ).first()
        if row is None:
            return None
        lines, history = await self._children([row.id])
        return self._to_opportunity(row, lines[row.id], history[row.id])

    async def list(
        self,
        visible: sa.ColumnElement[bool],
        *,
        where: sa.ColumnElement[bool] | None,
        sort: Sequence[SortKey],
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[Opportunity]:
        query = sa.select(opportunities).where(visible)
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        rows = (await self.session.execute(query.order_by(*keyset_order(sort)).limit(limit))).all()
        lines, history = await self._children([row.id for row in rows])
        return [self._to_opportunity(row, lines[row.id], history[row.id]) for row in rows]

    async def forecast_groups(
        self,
        visible: sa.ColumnElement[bool],
        *,
        start: datetime,
        end: datetime,
        owner: str = "",
        team: str = "",
        pipeline_id: str = "",
    ) -> list[ForecastGroup]:
        """One row per (currency, state, category): open ones by expected close, closed ones by close time."""
        o = opportunities.c
        in_period = sa.or_(
            sa.and_(
                o.state == OpportunityState.OPEN.value,
                o.expected_close_time >= start,
                o.expected_close_time < end,
            ),
            sa.and_(o.state != OpportunityState.OPEN.value, o.close_time >= start, o.close_time < end),
        )
        query = (
            sa.select(
                o.currency_code,
                o.state,
                o.forecast_category,
                sa.func.count().label("n"),
                sa.func.sum(o.amount_minor).label("amount"),
                sa.func.sum(o.weighted_amount_minor).label("weighted"),
            )
            .where(visible, in_period)
            .group_by(o.currency_code, o.state, o.forecast_category)
        )
        if owner:
            query = query.where(o.owner == owner)
        if team:
            query = query.where(o.team == team)
        if pipeline_id:
            query = query.where(o.pipeline_id == pipeline_id)
        return [
            ForecastGroup(
                currency_code=row.currency_code,
                state=OpportunityState(row.state),
                category=ForecastCategory(row.forecast_category),
                count=int(row.n),
                amount_minor=int(row.amount or 0),
                weighted_minor=int(row.weighted or 0),
            )
            for row in (await self.session.execute(query)).all()
        ]

    # --- writes ---------------------------------------------------------------------------------

    async def _write_lines(self, o: Opportunity) -> None:
        if o.product_lines:
            await self.session.execute(
                sa.insert(opportunity_lines),
                [
                    {
                        "opportunity_id": o.id,
                        "position": position,
                        "product": line.product,
                        "sku": line.sku,
                        "display_name": line.display_name,
                        "quantity": line.quantity,
                        "unit_price_minor": line.unit_price_minor,
                        "amount_minor": line.amount_minor,
                    }
                    for position, line in enumerate(o.product_lines, start=1)
                ],
            )

    async def _append_history(self, o: Opportunity, first_seq: int) -> None:
        entries = o.history[first_seq:]
        if entries:
            await self.session.execute(
                sa.insert(opportunity_stage_history),
                [
                    {
                        "opportunity_id": o.id,
                        "seq": seq,
                        "pipeline_id": e.pipeline_id,
                        "stage_id": e.stage_id,
                        "enter_time": e.enter_time,
                        "changed_by": e.changed_by,
                        "amount_minor": e.amount_minor,
                        "currency_code": e.currency_code,
                        "probability": e.probability,
                        "forecast_category": e.forecast_category.value,
                    }
                    for seq, e in enumerate(entries, start=first_seq)
                ],
            )

    async def add(self, o: Opportunity) -> None:
        await self.session.execute(sa.insert(opportunities).values(self._values(o)))
        await self._write_lines(o)
        await self._append_history(o, 0)

    async def save(self, o: Opportunity, *, previous: Opportunity) -> None:
        """Optimistic concurrency on `previous.version`; lines rewritten if changed; new history appended."""
        values = self._values(o)
        del values["id"], values["create_time"]
        result = await self.session.execute(
            sa.update(opportunities)
            .where(opportunities.c.id == o.id, opportunities.c.version == previous.version)
            .values(values)
        )
        if result.rowcount != 1:
            raise _concurrent(o.name)
        if o.product_lines != previous.product_lines:
            await self.session.execute(
                sa.delete(opportunity_lines).where(opportunity_lines.c.opportunity_id == o.id)
            )
            await self._write_lines(o)
        await self._append_history(o, len(previous.history))

    async def remove(self, opportunity_id: str) -> None:
        for table in (opportunity_lines, opportunity_stage_history):
            await self.session.execute(sa.delete(table).where(table.c.opportunity_id == opportunity_id))
        await self.session.execute(sa.delete(opportunities).where(opportunities.c.id == opportunity_id))
