"""crm.customer.v1.CustomerDataService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from crm.customer.v1 import customer_data_service_pb2 as rpc
from crm.customer.v1 import customer_data_service_pb2_grpc as rpc_grpc
from crm.customer.v1 import customer_pb2 as pb
from crm_customer.adapters.published import timestamp
from crm_customer.api import mappers
from crm_customer.app import CustomerApp
from crm_customer.service import customers, duplicates, exports, imports, merge
from crm_shared.db.idempotency import idempotent
from crm_shared.errors import InvalidArgument
from crm_shared.principal import current_principal

SERVICE = "crm.customer.v1.CustomerDataService"

_MATCH_KIND = {
    "exact_email": rpc.MATCH_KIND_EXACT_EMAIL,
    "exact_phone": rpc.MATCH_KIND_EXACT_PHONE,
    "exact_tax_id": rpc.MATCH_KIND_EXACT_TAX_ID,
    "fuzzy_name": rpc.MATCH_KIND_FUZZY_NAME,
}
_MODE_FROM_PB = {
    rpc.IMPORT_MODE_CREATE_ONLY: imports.Mode.CREATE_ONLY,
    rpc.IMPORT_MODE_UPSERT: imports.Mode.UPSERT,
    rpc.IMPORT_MODE_UPDATE_ONLY: imports.Mode.UPDATE_ONLY,
}
_MODE_TO_PB = {v: k for k, v in _MODE_FROM_PB.items()}
_OUTCOME_TO_PB = {
    imports.Outcome.CREATED: rpc.IMPORT_ROW_OUTCOME_CREATED,
    imports.Outcome.UPDATED: rpc.IMPORT_ROW_OUTCOME_UPDATED,
    imports.Outcome.UNCHANGED: rpc.IMPORT_ROW_OUTCOME_UNCHANGED,
    imports.Outcome.REJECTED: rpc.IMPORT_ROW_OUTCOME_REJECTED,
    imports.Outcome.ALREADY_APPLIED: rpc.IMPORT_ROW_OUTCOME_ALREADY_APPLIED,
}
_STATE_TO_PB = {
    imports.JobState.RUNNING: rpc.IMPORT_JOB_STATE_RUNNING,
    imports.JobState.COMPLETED: rpc.IMPORT_JOB_STATE_COMPLETED,
    imports.JobState.REVERTED: rpc.IMPORT_JOB_STATE_REVERTED,
}


def _job_id_from(name: str) -> str:
    prefix, _, job_id = name.partition("/")
    if prefix != "importJobs" or not job_id:
        raise InvalidArgument.for_field("name", "must look like importJobs/{job}")
    return job_id


def job_to_pb(job: imports.JobView) -> rpc.ImportJob:
    return rpc.ImportJob(
        name=job.name,
        mode=_MODE_TO_PB[job.mode],
        source=job.source,
        state=_STATE_TO_PB[job.state],
        dry_run=job.dry_run,
        processed_rows=job.processed_rows,
        created_rows=job.created_rows,
        updated_rows=job.updated_rows,
        unchanged_rows=job.unchanged_rows,
        rejected_rows=job.rejected_rows,
        skipped_rows=job.skipped_rows,
        reverted_rows=job.reverted_rows,
        revert_kept_rows=job.revert_kept_rows,
        owner=job.owner,
        create_time=timestamp(job.create_time),
        update_time=timestamp(job.update_time),
    )


def _row_result_to_pb(result: imports.RowResult) -> rpc.ImportRowResult:
    return rpc.ImportRowResult(
        row_number=result.row_number,
        outcome=_OUTCOME_TO_PB[result.outcome],
        customer=f"customers/{result.customer_id}" if result.customer_id else "",
        reason=result.reason,
        fields=result.fields,
    )


def _duplicate_set_to_pb(found: duplicates.DuplicateSet) -> rpc.DuplicateSet:
    return rpc.DuplicateSet(
        customer=found.customer,
        candidates=[
            rpc.DuplicateCandidate(
                customer=f"customers/{c.customer_id}",
                display_name=c.display_name,
                match_kinds=[_MATCH_KIND[k] for k in c.match_kinds],
                score=c.score,
            )
            for c in found.candidates
        ],
    )


class CustomerDataServicer(rpc_grpc.CustomerDataServiceServicer):
    def __init__(self, app: CustomerApp) -> None:
        self._app = app

    @property
    def _deps(self):
        return self._app.deps

    def _masker(self) -> mappers.OutputMasker:
        return mappers.OutputMasker(self._deps.policy, current_principal(), customers.RESOURCE)

    # --- duplicates ----------------------------------------------------------------------------

    async def FindDuplicates(self, request: rpc.FindDuplicatesRequest, context) -> rpc.FindDuplicatesResponse:
        principal = current_principal()
        options = {"min_score": request.min_score, "max_candidates": request.max_candidates}
        target = request.WhichOneof("target")
        async with self._app.db.read_session() as session:
            if target == "customer":
                found = await duplicates.duplicates_of_customer(
                    session,
                    self._deps,
                    principal,
                    mappers.customer_id_from(request.customer, field="customer"),
                    **options,
                )
                return rpc.FindDuplicatesResponse(duplicates=[_duplicate_set_to_pb(found)])
            if target == "probe":
                probe = duplicates.probe_customer(
                    mappers.customer_input(request.probe), self._deps.phone_region
                )
                found = await duplicates.duplicates_of_probe(session, self._deps, principal, probe, **options)
                return rpc.FindDuplicatesResponse(duplicates=[_duplicate_set_to_pb(found)])
            sets, token = await duplicates.scan_duplicates(
                session,
                self._deps,
                principal,
                page_size=request.scan.page_size,
                page_token=request.scan.page_token,
                **options,
            )
        return rpc.FindDuplicatesResponse(
            duplicates=[_duplicate_set_to_pb(s) for s in sets], next_page_token=token
        )

    # --- merge ---------------------------------------------------------------------------------

    async def MergeCustomers(self, request: rpc.MergeCustomersRequest, context) -> rpc.MergeCustomersResponse:
        principal = current_principal()
        survivor_id = mappers.customer_id_from(request.survivor, field="survivor")
        loser_ids = [mappers.customer_id_from(n, field=f"losers[{i}]") for i, n in enumerate(request.losers)]
        field_sources = {
            name: mappers.customer_id_from(source, field=f'field_sources["{name}"]')
            for name, source in request.field_sources.items()
        }
        etags = {mappers.customer_id_from(n, field="etags"): etag for n, etag in request.etags.items()}

        async def run(uow) -> merge.MergeOutcome:
            return await merge.merge_customers(
                uow, self._deps, principal, survivor_id, loser_ids, field_sources=field_sources, etags=etags
            )

        if request.validate_only:
            async with self._app.uow_factory() as uow:
                outcome = await run(uow)
                await uow.rollback()  # a preview: the same statements, never committed
            return self._merge_response(outcome, validate_only=True)

        captured: dict[str, merge.MergeOutcome] = {}

        async def first_run(uow) -> rpc.MergeCustomersResponse:
            captured["outcome"] = outcome = await run(uow)
            response = self._merge_response(outcome)
            response.ClearField("survivor")  # the stored replay holds no personal data
            return response

        stored = await idempotent(
            self._app.uow_factory,
            method=f"/{SERVICE}/MergeCustomers",
            request_id=request.request_id,
            request=request,
            response_type=rpc.MergeCustomersResponse,
            run=first_run,
        )
        if "outcome" in captured:
            return self._merge_response(captured["outcome"])
        async with self._app.db.read_session() as session:
            survivor = await customers.get_customer(session, self._deps, principal, survivor_id)
        stored.survivor.CopyFrom(mappers.customer_to_pb(survivor, self._masker()))
        return stored

    def _merge_response(self, outcome: merge.MergeOutcome, *, validate_only: bool = False):
        return rpc.MergeCustomersResponse(
            survivor=mappers.customer_to_pb(outcome.survivor, self._masker()),
            losers=outcome.losers,
            changed_fields=outcome.changed_fields,
            moved=rpc.MergeMoves(
                contacts=outcome.contacts,
                tags=outcome.tags,
                collaborators=outcome.collaborators,
                other=outcome.children.moved,
                dropped=outcome.children.dropped,
            ),
            already_merged=outcome.already_merged,
            validate_only=validate_only,
        )

    # --- import --------------------------------------------------------------------------------

    async def ImportCustomers(self, request_iterator, context) -> AsyncIterator[rpc.ImportCustomersResponse]:
        principal = current_principal()
        run: imports.ImportRun | None = None
        pending: list[tuple[int, dict[str, str]]] = []
        async for message in request_iterator:
            kind = message.WhichOneof("message")
            if run is None:
                if kind != "header":
                    raise InvalidArgument.for_field("header", "the first message must carry the job header")
                header = message.header
                run = imports.ImportRun(
                    self._app.uow_factory,
                    self._deps,
                    principal,
                    imports.ImportHeader(
                        job_id=header.job_id,
                        mode=_MODE_FROM_PB[header.mode],
                        source=header.source,
                        dry_run=header.dry_run,
                        batch_size=header.batch_size or imports.DEFAULT_BATCH_SIZE,
                    ),
                )
                yield rpc.ImportCustomersResponse(job=job_to_pb(await run.start()))
                continue
            if kind == "header":
                raise InvalidArgument.for_field("header", "only the first message may carry the header")
            pending.extend((row.row_number, dict(row.values)) for row in message.rows.rows)
            size = run.header.batch_size
            while len(pending) >= size:
                batch, pending = pending[:size], pending[size:]
                results = await run.apply_batch(batch)
                yield rpc.ImportCustomersResponse(
                    job=job_to_pb(run.job), results=[_row_result_to_pb(r) for r in results]
                )
        if run is None:
            raise InvalidArgument.for_field("header", "the stream ended before the job header")
        if pending:
            results = await run.apply_batch(pending)
            yield rpc.ImportCustomersResponse(
                job=job_to_pb(run.job), results=[_row_result_to_pb(r) for r in results]
            )
        yield rpc.ImportCustomersResponse(job=job_to_pb(await run.finish()))

    async def GetImportJob(self, request: rpc.GetImportJobRequest, context) -> rpc.ImportJob:
        async with self._app.db.read_session() as session:
            job = await imports.get_import_job(
                session, self._deps, current_principal(), _job_id_from(request.name)
            )
        return job_to_pb(job)

    async def RevertImportJob(
        self, request: rpc.RevertImportJobRequest, context
    ) -> rpc.RevertImportJobResponse:
        principal = current_principal()
        job_id = _job_id_from(request.name)
        async with self._app.uow_factory() as uow:
            outcome = await imports.revert_import_job(uow, self._deps, principal, job_id)
            await uow.commit()
        return rpc.RevertImportJobResponse(
            job=job_to_pb(outcome.job), deleted=outcome.deleted, kept=outcome.kept
        )

    # --- export --------------------------------------------------------------------------------

    async def ExportCustomers(
        self, request: rpc.ExportCustomersRequest, context
    ) -> AsyncIterator[pb.Customer]:
        masker = self._masker()
        async for customer in exports.export_customers(
            self._app.db,
            self._app.uow_factory,
            self._deps,
            current_principal(),
            filter_text=request.filter,
            order_by=request.order_by,
        ):
            yield mappers.customer_to_pb(customer, masker)
