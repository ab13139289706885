"""crm.customer.v1.CustomerService over gRPC: thin — parse, call a use case, map the result.

Authentication, request validation, error mapping, metrics and tracing happen
in the shared interceptors; nothing here touches status codes directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from google.protobuf import empty_pb2

from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as rpc
from crm.customer.v1 import customer_service_pb2_grpc as rpc_grpc
from crm_customer.api import mappers
from crm_customer.service import contacts, customers
from crm_customer.service.customers import CustomerDeps
from crm_shared.db.idempotency import create_once, in_unit_of_work
from crm_shared.errors import InvalidArgument
from crm_shared.principal import current_principal

SERVICE = "crm.customer.v1.CustomerService"


class CustomerServicer(rpc_grpc.CustomerServiceServicer):
    def __init__(self, *, db, uow_factory, deps: CustomerDeps) -> None:
        self._db = db
        self._uow = uow_factory
        self._deps = deps

    def _masker(self, resource: str) -> mappers.OutputMasker:
        return mappers.OutputMasker(self._deps.policy, current_principal(), resource)

    async def _write(self, run: Callable[[object], Awaitable[object]]):
        return await in_unit_of_work(self._uow, run)

    async def _create_once(self, method: str, request, request_id: str, *, run, response_type, reread):
        return await create_once(
            self._uow,
            method=method,
            request=request,
            request_id=request_id,
            run=run,
            response_type=response_type,
            reread=reread,
        )

    async def GetCustomer(self, request: rpc.GetCustomerRequest, context) -> pb.Customer:
        customer_id = mappers.customer_id_from(request.name)
        async with self._db.read_session() as session:
            customer = await customers.get_customer(session, self._deps, current_principal(), customer_id)
        return mappers.customer_to_pb(customer, self._masker(customers.RESOURCE))

    async def ListCustomers(self, request: rpc.ListCustomersRequest, context) -> rpc.ListCustomersResponse:
        async with self._db.read_session() as session:
            page = await customers.list_customers(
                session,
                self._deps,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
                order_by=request.order_by,
            )
        masker = self._masker(customers.RESOURCE)
        return rpc.ListCustomersResponse(
            customers=[mappers.customer_to_pb(c, masker) for c in page.customers],
            next_page_token=page.next_page_token,
        )

    async def CreateCustomer(self, request: rpc.CreateCustomerRequest, context) -> pb.Customer:
        principal = current_principal()
        data = mappers.customer_input(request.customer)

        async def reread(name: str):
            async with self._db.read_session() as session:
                return await customers.get_customer(
                    session, self._deps, principal, mappers.customer_id_from(name)
                )

        customer = await self._create_once(
            f"/{SERVICE}/CreateCustomer",
            request,
            request.request_id,
            run=lambda uow: customers.create_customer(uow, self._deps, principal, data),
            response_type=pb.Customer,
            reread=reread,
        )
        return mappers.customer_to_pb(customer, self._masker(customers.RESOURCE))

    async def UpdateCustomer(self, request: rpc.UpdateCustomerRequest, context) -> pb.Customer:
        if not request.customer.name:
            raise InvalidArgument.for_field("customer.name", "is required to say which customer to update")
        customer_id = mappers.customer_id_from(request.customer.name, field="customer.name")
        principal = current_principal()
        data = mappers.customer_input(request.customer)
        customer = await self._write(
            lambda uow: customers.update_customer(
                uow,
                self._deps,
                principal,
                customer_id,
                data,
                list(request.update_mask.paths),
                request.customer.etag,
            )
        )
        return mappers.customer_to_pb(customer, self._masker(customers.RESOURCE))

    async def DeleteCustomer(self, request: rpc.DeleteCustomerRequest, context) -> empty_pb2.Empty:
        customer_id = mappers.customer_id_from(request.name)
        principal = current_principal()
        await self._write(
            lambda uow: customers.delete_customer(uow, self._deps, principal, customer_id, request.etag)
        )
        return empty_pb2.Empty()

    # --- contacts ------------------------------------------------------------------------------

    async def GetContact(self, request: rpc.GetContactRequest, context) -> pb.Contact:
        customer_id, contact_id = mappers.contact_ids_from(request.name)
        async with self._db.read_session() as session:
            contact = await contacts.get_contact(
                session, self._deps, current_principal(), customer_id, contact_id
            )
        return mappers.contact_to_pb(contact, self._masker(contacts.RESOURCE))

    async def ListContacts(self, request: rpc.ListContactsRequest, context) -> rpc.ListContactsResponse:
        customer_id = mappers.customer_id_from(request.parent, field="parent")
        async with self._db.read_session() as session:
            page = await contacts.list_contacts(
                session,
                self._deps,
                current_principal(),
                customer_id,
                page_size=request.page_size,
                page_token=request.page_token,
            )
        masker = self._masker(contacts.RESOURCE)
        return rpc.ListContactsResponse(
            contacts=[mappers.contact_to_pb(c, masker) for c in page.contacts],
            next_page_token=page.next_page_token,
        )

    async def CreateContact(self, request: rpc.CreateContactRequest, context) -> pb.Contact:
        customer_id = mappers.customer_id_from(request.parent, field="parent")
        principal = current_principal()
        data = mappers.contact_input(request.contact)

        async def reread(name: str):
            parent_id, contact_id = mappers.contact_ids_from(name)
            async with self._db.read_session() as session:
                return await contacts.get_contact(session, self._deps, principal, parent_id, contact_id)

        contact = await self._create_once(
            f"/{SERVICE}/CreateContact",
            request,
            request.request_id,
            run=lambda uow: contacts.create_contact(uow, self._deps, principal, customer_id, data),
            response_type=pb.Contact,
            reread=reread,
        )
        return mappers.contact_to_pb(contact, self._masker(contacts.RESOURCE))

    async def UpdateContact(self, request: rpc.UpdateContactRequest, context) -> pb.Contact:
        if not request.contact.name:
            raise InvalidArgument.for_field("contact.name", "is required to say which contact to update")
        customer_id, contact_id = mappers.contact_ids_from(request.contact.name, field="contact.name")
        principal = current_principal()
        data = mappers.contact_input(request.contact)
        contact = await self._write(
            lambda uow: contacts.update_contact(
                uow,
                self._deps,
                principal,
                customer_id,
                contact_id,
                data,
                list(request.update_mask.paths),
                request.contact.etag,
            )
        )
        return mappers.contact_to_pb(contact, self._masker(contacts.RESOURCE))

    async def DeleteContact(self, request: rpc.DeleteContactRequest, context) -> empty_pb2.Empty:
        customer_id, contact_id = mappers.contact_ids_from(request.name)
        principal = current_principal()
        await self._write(
            lambda uow: contacts.delete_contact(
                uow, self._deps, principal, customer_id, contact_id, request.etag
            )
        )
        return empty_pb2.Empty()
