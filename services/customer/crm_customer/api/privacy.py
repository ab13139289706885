"""crm.customer.v1.PrivacyService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

import json

import sqlalchemy as sa
from google.protobuf import json_format, struct_pb2

from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import privacy_service_pb2 as rpc
from crm.customer.v1 import privacy_service_pb2_grpc as rpc_grpc
from crm_customer.api import mappers
from crm_customer.api.audit import audit_event_to_pb
from crm_customer.app import CustomerApp
from crm_customer.service import privacy
from crm_customer.service.customers import RESOURCE as CUSTOMERS
from crm_shared.aip.paging import query_fingerprint
from crm_shared.db.idempotency import idempotent
from crm_shared.principal import current_principal

SERVICE = "crm.customer.v1.PrivacyService"
_ROTATION_TOKEN_QUERY = query_fingerprint("rotatePersonalDataKeys")


def _struct(row: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(json.loads(json.dumps(row, default=str)))
    return struct


class PrivacyServicer(rpc_grpc.PrivacyServiceServicer):
    def __init__(self, app: CustomerApp) -> None:
        self._app = app

    def _masker(self, resource: str) -> mappers.OutputMasker:
        return mappers.OutputMasker(self._app.deps.policy, current_principal(), resource)

    async def ExportPersonalData(self, request, context) -> rpc.ExportPersonalDataResponse:
        customer_id = mappers.customer_id_from(request.name)
        principal = current_principal()
        async with self._app.uow_factory() as uow:  # a write: the export is audited in the same transaction
            export = await privacy.export_personal_data(uow, self._app.deps, principal, customer_id)
            export_time = uow.now
            await uow.commit()
        response = rpc.ExportPersonalDataResponse(
            customer=mappers.customer_to_pb(export.customer, self._masker(CUSTOMERS)),
            contacts=[mappers.contact_to_pb(c, self._masker("contacts")) for c in export.contacts],
            audit_events=[audit_event_to_pb(r) for r in export.audit],
            related_records=[
                rpc.ExportedRecords(table=table, rows=[_struct(row) for row in rows])
                for table, rows in sorted(export.related.items())
            ],
        )
        response.export_time.FromDatetime(export_time)
        document = json_format.MessageToDict(response, preserving_proto_field_name=True)
        response.json = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True)
        return response

    async def ErasePersonalData(self, request, context) -> pb.Customer:
        customer_id = mappers.customer_id_from(request.name)
        principal = current_principal()

        async def run(uow):
            erased = await privacy.erase_personal_data(uow, self._app.deps, principal, customer_id)
            return mappers.customer_to_pb(erased, self._masker(CUSTOMERS))

        customer = await idempotent(
            self._app.uow_factory,
            method=f"/{SERVICE}/ErasePersonalData",
            request_id=request.request_id,
            request=request,
            response_type=pb.Customer,
            run=run,
        )
        if self._app.db.is_sqlite:
            await _checkpoint(self._app.db)
        return customer

    async def RotatePersonalDataKeys(self, request, context) -> rpc.RotatePersonalDataKeysResponse:
        tokens = self._app.deps.page_tokens
        resume_after = ""
        if request.resume_token:
            resume_after = tokens.decode(request.resume_token, query=_ROTATION_TOKEN_QUERY)[0]
        progress = await privacy.rotate_personal_data_keys(
            self._app.uow_factory,
            self._app.deps.codec,
            self._app.deps.policy,
            current_principal(),
            batch_size=request.batch_size,
            max_batches=request.max_batches,
            resume_after=resume_after,
        )
        return rpc.RotatePersonalDataKeysResponse(
            active_key_id=progress.active_key_id,
            rewrapped=progress.rewrapped,
            already_current=progress.already_current,
            remaining=progress.remaining,
            total=progress.total,
            resume_token=tokens.encode([progress.resume_after], query=_ROTATION_TOKEN_QUERY)
            if progress.resume_after
            else "",
        )


async def _checkpoint(db) -> None:
    """SQLite: fold the WAL into the database file and truncate it, so the pre-erasure page images
    it still holds (ciphertext and blind indexes) do not linger on disk. Best effort: a reader
    holding an old snapshot makes it partial, and the next checkpoint finishes the job."""
    async with db.engine.connect() as conn:
        await conn.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))
