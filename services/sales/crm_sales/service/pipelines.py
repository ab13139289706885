"""Use cases for pipelines and their stages (shared sales configuration)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from crm_sales.adapters.opportunity_repository import PipelineRepository
from crm_sales.app import SalesApp
from crm_sales.domain import opportunities as rules
from crm_sales.domain.opportunities import Pipeline, PipelineInput
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import clamp_page_size, query_fingerprint
from crm_shared.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from crm_shared.ids import new_id
from crm_shared.principal import Principal

RESOURCE = "pipelines"


@dataclass(frozen=True)
class PipelinePage:
    pipelines: list[Pipeline]
    next_page_token: str


def not_found(name: str) -> NotFound:
    return NotFound(f"{name} not found", reason="PIPELINE_NOT_FOUND", metadata={"resource": name})


async def get_pipeline(
    session: AsyncSession, app: SalesApp, principal: Principal, pipeline_id: str
) -> Pipeline:
    app.policy.grant(principal, RESOURCE, "read")
    pipeline = await PipelineRepository(session).get(pipeline_id)
    if pipeline is None:
        raise not_found(f"pipelines/{pipeline_id}")
    return pipeline


async def list_pipelines(
    session: AsyncSession, app: SalesApp, principal: Principal, *, page_size: int, page_token: str
) -> PipelinePage:
    app.policy.grant(principal, RESOURCE, "read")
    limit = clamp_page_size(page_size)
    query = query_fingerprint("pipelines", principal.subject)
    after = app.page_tokens.decode(page_token, query=query) if page_token else None
    rows = await PipelineRepository(session).list(after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    token = app.page_tokens.encode([page[-1].create_time, page[-1].id], query=query) if more else ""
    return PipelinePage(page, token)


async def create_pipeline(
    uow, app: SalesApp, principal: Principal, data: PipelineInput, pipeline_id: str = ""
) -> Pipeline:
    app.policy.grant(principal, RESOURCE, "create")
    pipeline = rules.new_pipeline(data, pipeline_id=pipeline_id or new_id(), now=uow.now)
    repo = PipelineRepository(uow.session)
    if await repo.exists(pipeline.id):
        raise AlreadyExists(
            f"{pipeline.name} already exists",
            reason="PIPELINE_EXISTS",
            metadata={"existing": pipeline.name},
        )
    await repo.add(pipeline)
    uow.audit(
        "created", pipeline.name, ["display_name", "stages", *(["currency_code"] * bool(data.currency_code))]
    )
    return pipeline


async def update_pipeline(
    uow,
    app: SalesApp,
    principal: Principal,
    pipeline_id: str,
    data: PipelineInput,
    mask_paths: Sequence[str],
    etag: str,
) -> Pipeline:
    fields = resolve_update_mask(
        mask_paths, writable=rules.PIPELINE_WRITABLE_FIELDS, output_only=rules.PIPELINE_OUTPUT_ONLY_FIELDS
    )
    app.policy.grant(principal, RESOURCE, "update")
    repo = PipelineRepository(uow.session)
    current = await repo.get(pipeline_id)
    if current is None:
        raise not_found(f"pipelines/{pipeline_id}")
    check_etag(etag, current.id, current.version, resource=current.name)
    updated, changed = rules.update_pipeline(current, data, fields, now=uow.now)
    if not changed:
        return current
    removed = rules.removed_stages(current, updated)
    if removed:
        in_use = await repo.opportunities_in(current.id, removed)
        if in_use:
            raise FailedPrecondition(
                f"{in_use} opportunities are in the removed stages ({', '.join(removed)}); move them first",
                reason="STAGE_IN_USE",
                metadata={"stages": ",".join(current.stage_name(s) for s in removed)},
            )
    if "currency_code" in changed and updated.currency_code:
        other = await repo.opportunities_in(current.id, currency_other_than=updated.currency_code)
        if other:
            raise FailedPrecondition(
                f"{other} opportunities in {current.name} use another currency than {updated.currency_code}",
                reason="CURRENCY_IN_USE",
            )
    await repo.save(updated, expected_version=current.version)
    for stage_id, category in rules.recategorized_stages(current, updated).items():
        await repo.recategorize(current.id, stage_id, category, uow.now)
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_pipeline(uow, app: SalesApp, principal: Principal, pipeline_id: str, etag: str) -> None:
    app.policy.grant(principal, RESOURCE, "delete")
    repo = PipelineRepository(uow.session)
    current = await repo.get(pipeline_id)
    if current is None:
        raise not_found(f"pipelines/{pipeline_id}")
    check_etag(etag, current.id, current.version, resource=current.name)
    if current.is_default:
        raise FailedPrecondition("the default pipeline cannot be deleted", reason="DEFAULT_PIPELINE")
    if await repo.opportunities_in(current.id):
        raise FailedPrecondition(
            f"{current.name} still has opportunities; move or delete them first", reason="PIPELINE_IN_USE"
        )
    await repo.remove(current.id)
    uow.audit("deleted", current.name, [])


async def resolve_pipeline(
    session: AsyncSession, pipeline: str, stage: str, *, field_prefix: str
) -> Pipeline:
    """The pipeline an opportunity goes into: named, implied by its stage, or the default."""
    repo = PipelineRepository(session)
    pipeline_id = rules.resource_id(pipeline, "pipelines") if pipeline else None
    if pipeline and pipeline_id is None:
        raise InvalidArgument.for_field(f"{field_prefix}.pipeline", "must look like pipelines/{pipeline}")
    if pipeline_id is None and stage:
        ids = rules.stage_ids(stage)
        pipeline_id = ids[0] if ids else None
    found = await (repo.get(pipeline_id) if pipeline_id else repo.get_default())
    if found is None:
        where = f"{field_prefix}.pipeline" if pipeline else f"{field_prefix}.stage"
        raise InvalidArgument.for_field(
            where, f"no such pipeline: pipelines/{pipeline_id}", reason="UNKNOWN_PIPELINE"
        )
    return found
