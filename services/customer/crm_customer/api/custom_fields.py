"""crm.customer.v1.CustomFieldService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from google.protobuf import empty_pb2

from crm.customer.v1 import custom_field_service_pb2 as rpc
from crm.customer.v1 import custom_field_service_pb2_grpc as rpc_grpc
from crm_customer.adapters.published import timestamp
from crm_customer.app import CustomerApp
from crm_customer.domain.custom_fields import CustomFieldDefinition, DefinitionInput, FieldType, ResourceType
from crm_customer.service import custom_fields
from crm_shared.aip.etag import etag_for
from crm_shared.db.idempotency import idempotent
from crm_shared.errors import InvalidArgument
from crm_shared.principal import current_principal

SERVICE = "crm.customer.v1.CustomFieldService"

RESOURCE_TYPE_TO_PB = {
    ResourceType.CUSTOMERS: rpc.CUSTOM_FIELD_RESOURCE_TYPE_CUSTOMERS,
    ResourceType.CONTACTS: rpc.CUSTOM_FIELD_RESOURCE_TYPE_CONTACTS,
}
TYPE_TO_PB = {
    FieldType.TEXT: rpc.CUSTOM_FIELD_TYPE_TEXT,
    FieldType.NUMBER: rpc.CUSTOM_FIELD_TYPE_NUMBER,
    FieldType.DATE: rpc.CUSTOM_FIELD_TYPE_DATE,
    FieldType.BOOL: rpc.CUSTOM_FIELD_TYPE_BOOL,
    FieldType.ENUM: rpc.CUSTOM_FIELD_TYPE_ENUM,
    FieldType.MULTI_ENUM: rpc.CUSTOM_FIELD_TYPE_MULTI_ENUM,
}
RESOURCE_TYPE_FROM_PB = {v: k for k, v in RESOURCE_TYPE_TO_PB.items()}
TYPE_FROM_PB = {v: k for k, v in TYPE_TO_PB.items()}


def definition_id_from(name: str, *, field: str = "name") -> str:
    prefix, _, definition_id = name.partition("/")
    if prefix != "customFields" or not definition_id or "/" in definition_id:
        raise InvalidArgument.for_field(field, "must look like customFields/{custom_field}")
    return definition_id


def definition_input(message: rpc.CustomFieldDefinition) -> DefinitionInput:
    return DefinitionInput(
        resource_type=RESOURCE_TYPE_FROM_PB.get(message.resource_type),
        key=message.key,
        display_name=message.display_name,
        type=TYPE_FROM_PB.get(message.type),
        allowed_values=list(message.allowed_values),
        required=message.required,
        unique=message.unique,
        filterable=message.filterable,
    )


def definition_to_pb(definition: CustomFieldDefinition) -> rpc.CustomFieldDefinition:
    return rpc.CustomFieldDefinition(
        name=definition.name,
        resource_type=RESOURCE_TYPE_TO_PB[definition.resource_type],
        key=definition.key,
        display_name=definition.display_name,
        type=TYPE_TO_PB[definition.type],
        allowed_values=definition.allowed_values,
        required=definition.required,
        unique=definition.unique,
        filterable=definition.filterable,
        create_time=timestamp(definition.create_time),
        update_time=timestamp(definition.update_time),
        etag=etag_for(definition.id, definition.version),
    )


class CustomFieldServicer(rpc_grpc.CustomFieldServiceServicer):
    def __init__(self, app: CustomerApp) -> None:
        self._app = app

    @property
    def _policy(self):
        return self._app.deps.policy

    async def GetCustomFieldDefinition(self, request, context) -> rpc.CustomFieldDefinition:
        definition_id = definition_id_from(request.name)
        async with self._app.db.read_session() as session:
            definition = await custom_fields.get_definition(
                session, self._policy, current_principal(), definition_id
            )
        return definition_to_pb(definition)

    async def ListCustomFieldDefinitions(self, request, context) -> rpc.ListCustomFieldDefinitionsResponse:
        async with self._app.db.read_session() as session:
            page = await custom_fields.list_definitions(
                session,
                self._policy,
                self._app.deps.page_tokens,
                current_principal(),
                resource_type=RESOURCE_TYPE_FROM_PB.get(request.resource_type),
                page_size=request.page_size,
                page_token=request.page_token,
            )
        return rpc.ListCustomFieldDefinitionsResponse(
            custom_field_definitions=[definition_to_pb(d) for d in page.definitions],
            next_page_token=page.next_page_token,
        )

    async def CreateCustomFieldDefinition(self, request, context) -> rpc.CustomFieldDefinition:
        principal = current_principal()
        data = definition_input(request.custom_field_definition)

        async def run(uow):
            return definition_to_pb(await custom_fields.create_definition(uow, self._policy, principal, data))

        # Definitions hold no personal data: the stored response can be replayed as is.
        return await idempotent(
            self._app.uow_factory,
            method=f"/{SERVICE}/CreateCustomFieldDefinition",
            request_id=request.request_id,
            request=request,
            response_type=rpc.CustomFieldDefinition,
            run=run,
        )

    async def UpdateCustomFieldDefinition(self, request, context) -> rpc.CustomFieldDefinition:
        message = request.custom_field_definition
        if not message.name:
            raise InvalidArgument.for_field(
                "custom_field_definition.name", "is required to say which definition to update"
            )
        definition_id = definition_id_from(message.name, field="custom_field_definition.name")
        principal = current_principal()
        async with self._app.uow_factory() as uow:
            definition = await custom_fields.update_definition(
                uow,
                self._policy,
                principal,
                definition_id,
                definition_input(message),
                list(request.update_mask.paths),
                message.etag,
            )
            await uow.commit()
        return definition_to_pb(definition)

    async def DeleteCustomFieldDefinition(self, request, context) -> empty_pb2.Empty:
        definition_id = definition_id_from(request.name)
        principal = current_principal()
        async with self._app.uow_factory() as uow:
            await custom_fields.delete_definition(uow, self._policy, principal, definition_id, request.etag)
            await uow.commit()
        return empty_pb2.Empty()
