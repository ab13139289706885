"""crm.customer.v1.PoolService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from google.protobuf import empty_pb2

from crm.customer.v1 import customer_pb2
from crm.customer.v1 import pool_service_pb2 as rpc
from crm.customer.v1 import pool_service_pb2_grpc as rpc_grpc
from crm_customer.adapters.pool_published import RELEASE_REASON_FROM_PB
from crm_customer.api import mappers, pool_mappers
from crm_customer.app import CustomerApp
from crm_customer.service import customers, pools
from crm_shared.db.idempotency import create_once, in_unit_of_work
from crm_shared.errors import InvalidArgument
from crm_shared.principal import current_principal

SERVICE = "crm.customer.v1.PoolService"


class PoolServicer(rpc_grpc.PoolServiceServicer):
    def __init__(self, app: CustomerApp) -> None:
        self._app = app
        self._db = app.db
        self._uow = app.uow_factory
        self._deps = app.deps

    async def _write(self, run):
        return await in_unit_of_work(self._uow, run)

    async def _once(self, method: str, request, request_id: str, run, response_type, reread):
        return await create_once(
            self._uow,
            method=f"/{SERVICE}/{method}",
            request=request,
            request_id=request_id,
            run=run,
            response_type=response_type,
            reread=reread,
        )

    def _customer_pb(self, customer) -> customer_pb2.Customer:
        masker = mappers.OutputMasker(self._deps.policy, current_principal(), customers.RESOURCE)
        return mappers.customer_to_pb(customer, masker)

    async def _reread_customer(self, name: str):
        # A replayed move returns the customer as it is now, in the caller's read scope.
        async with self._db.read_session() as session:
            return await customers.get_customer(
                session, self._deps, current_principal(), mappers.customer_id_from(name)
            )

    # --- pools -------------------------------------------------------------------------------

    async def CreatePool(self, request: rpc.CreatePoolRequest, context) -> rpc.Pool:
        principal = current_principal()
        data = pool_mappers.pool_input(request.pool)

        async def reread(name: str):
            async with self._db.read_session() as session:
                return await pools.get_pool(session, self._deps, principal, pool_mappers.pool_id_from(name))

        pool = await self._once(
            "CreatePool",
            request,
            request.request_id,
            lambda uow: pools.create_pool(uow, self._deps, principal, data),
            rpc.Pool,
            reread,
        )
        return pool_mappers.pool_to_pb(pool)

    async def GetPool(self, request: rpc.GetPoolRequest, context) -> rpc.Pool:
        async with self._db.read_session() as session:
            pool = await pools.get_pool(
                session, self._deps, current_principal(), pool_mappers.pool_id_from(request.name)
            )
        return pool_mappers.pool_to_pb(pool)

    async def ListPools(self, request: rpc.ListPoolsRequest, context) -> rpc.ListPoolsResponse:
        async with self._db.read_session() as session:
            page = await pools.list_pools(
                session,
                self._deps,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
            )
        return rpc.ListPoolsResponse(
            pools=[pool_mappers.pool_to_pb(p) for p in page.pools], next_page_token=page.next_page_token
        )

    async def UpdatePool(self, request: rpc.UpdatePoolRequest, context) -> rpc.Pool:
        if not request.pool.name:
            raise InvalidArgument.for_field("pool.name", "is required to say which pool to update")
        pool_id = pool_mappers.pool_id_from(request.pool.name, field="pool.name")
        principal = current_principal()
        data = pool_mappers.pool_input(request.pool)
        pool = await self._write(
            lambda uow: pools.update_pool(
                uow, self._deps, principal, pool_id, data, list(request.update_mask.paths), request.pool.etag
            )
        )
        return pool_mappers.pool_to_pb(pool)

    async def DeletePool(self, request: rpc.DeletePoolRequest, context) -> empty_pb2.Empty:
        pool_id = pool_mappers.pool_id_from(request.name)
        principal = current_principal()
        await self._write(lambda uow: pools.delete_pool(uow, self._deps, principal, pool_id, request.etag))
        return empty_pb2.Empty()

    # --- ownership moves -----------------------------------------------------------------------

    async def _move(self, method: str, request, run) -> customer_pb2.Customer:
        customer = await self._once(
            method,
            request,
            getattr(request, "request_id", ""),
            run,
            customer_pb2.Customer,
            self._reread_customer,
        )
        return self._customer_pb(customer)

    async def ClaimCustomer(self, request: rpc.ClaimCustomerRequest, context) -> customer_pb2.Customer:
        customer_id = mappers.customer_id_from(request.name)
        principal = current_principal()
        return await self._move(
            "ClaimCustomer",
            request,
            lambda uow: pools.claim_customer(uow, self._deps, principal, customer_id),
        )

    async def AssignCustomer(self, request: rpc.AssignCustomerRequest, context) -> customer_pb2.Customer:
        customer_id = mappers.customer_id_from(request.name)
        pool_id = pool_mappers.pool_id_from(request.pool, field="pool") if request.pool else ""
        principal = current_principal()
        return await self._move(
            "AssignCustomer",
            request,
            lambda uow: pools.assign_customer(
                uow,
                self._deps,
                principal,
                customer_id,
                owner=request.owner.strip(),
                team=request.team,
                pool_id=pool_id,
            ),
        )

    async def ReleaseToPool(self, request: rpc.ReleaseToPoolRequest, context) -> customer_pb2.Customer:
        customer_id = mappers.customer_id_from(request.name)
        pool_id = pool_mappers.pool_id_from(request.pool, field="pool") if request.pool else ""
        reason = RELEASE_REASON_FROM_PB.get(request.reason)
        if reason is None:
            raise InvalidArgument.for_field("reason", "is required")
        principal = current_principal()
        return await self._move(
            "ReleaseToPool",
            request,
            lambda uow: pools.release_to_pool(
                uow, self._deps, principal, customer_id, pool_id=pool_id, reason=reason
            ),
        )

    async def TransferCustomer(self, request: rpc.TransferCustomerRequest, context) -> customer_pb2.Customer:
        customer_id = mappers.customer_id_from(request.name)
        principal = current_principal()
        return await self._move(
            "TransferCustomer",
            request,
            lambda uow: pools.transfer_customer(
                uow, self._deps, principal, customer_id, owner=request.owner.strip(), team=request.team
            ),
        )

    async def LockCustomer(self, request: rpc.LockCustomerRequest, context) -> customer_pb2.Customer:
        customer_id = mappers.customer_id_from(request.name)
        principal = current_principal()
        customer = await self._write(
            lambda uow: pools.set_locked(uow, self._deps, principal, customer_id, True)
        )
        return self._customer_pb(customer)

    async def UnlockCustomer(self, request: rpc.UnlockCustomerRequest, context) -> customer_pb2.Customer:
        customer_id = mappers.customer_id_from(request.name)
        principal = current_principal()
        customer = await self._write(
            lambda uow: pools.set_locked(uow, self._deps, principal, customer_id, False)
        )
        return self._customer_pb(customer)

    # --- listings ------------------------------------------------------------------------------

    async def ListPoolCustomers(
        self, request: rpc.ListPoolCustomersRequest, context
    ) -> rpc.ListPoolCustomersResponse:
        principal = current_principal()
        async with self._db.read_session() as session:
            page = await pools.list_pool_customers(
                session,
                self._deps,
                principal,
                pool_mappers.pool_id_from(request.parent, field="parent"),
                page_size=request.page_size,
                page_token=request.page_token,
            )
        masker = pool_mappers.PoolListingMasker(self._deps.policy, principal, customers.RESOURCE)
        return rpc.ListPoolCustomersResponse(
            customers=[mappers.customer_to_pb(c, masker) for c in page.customers],
            next_page_token=page.next_page_token,
        )

    async def ListOwnershipChanges(
        self, request: rpc.ListOwnershipChangesRequest, context
    ) -> rpc.ListOwnershipChangesResponse:
        async with self._db.read_session() as session:
            page = await pools.list_ownership_changes(
                session,
                self._deps,
                current_principal(),
                mappers.customer_id_from(request.parent, field="parent"),
                page_size=request.page_size,
                page_token=request.page_token,
            )
        return rpc.ListOwnershipChangesResponse(
            ownership_changes=[pool_mappers.ownership_change_to_pb(c) for c in page.changes],
            next_page_token=page.next_page_token,
        )
