"""crm.sales.v1.QuoteService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from google.protobuf import empty_pb2

from crm.sales.v1 import quote_service_pb2 as rpc
from crm.sales.v1 import quote_service_pb2_grpc as rpc_grpc
from crm_sales.api import quote_mappers as m
from crm_sales.api._base import SalesServicerBase
from crm_sales.api.catalog_mappers import id_from
from crm_sales.service import quotes as uc
from crm_shared.errors import InvalidArgument
from crm_shared.principal import current_principal

SERVICE = "crm.sales.v1.QuoteService"


class QuoteServicer(SalesServicerBase, rpc_grpc.QuoteServiceServicer):
    def _quote(self, quote) -> rpc.Quote:
        return m.quote_to_pb(quote, now=self._app.clock.now())

    # --- quotes --------------------------------------------------------------------------------

    async def GetQuote(self, request: rpc.GetQuoteRequest, context) -> rpc.Quote:
        async with self._app.db.read_session() as session:
            quote = await uc.get_quote(
                session, self._app, current_principal(), id_from(request.name, "quotes")
            )
        return self._quote(quote)

    async def ListQuotes(self, request: rpc.ListQuotesRequest, context) -> rpc.ListQuotesResponse:
        async with self._app.db.read_session() as session:
            page = await uc.list_quotes(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
                order_by=request.order_by,
            )
        return rpc.ListQuotesResponse(
            quotes=[self._quote(q) for q in page.items], next_page_token=page.next_page_token
        )

    async def CreateQuote(self, request: rpc.CreateQuoteRequest, context) -> rpc.Quote:
        principal = current_principal()
        data = m.quote_input(request.quote)

        async def run(uow):
            return self._quote(await uc.create_quote(uow, self._app, principal, data))

        return await self._once(f"/{SERVICE}/CreateQuote", request, run=run, response_type=rpc.Quote)

    async def UpdateQuote(self, request: rpc.UpdateQuoteRequest, context) -> rpc.Quote:
        if not request.quote.name:
            raise InvalidArgument.for_field("quote.name", "is required to say which quote to update")
        quote_id = id_from(request.quote.name, "quotes", field="quote.name")
        principal = current_principal()
        data = m.quote_input(request.quote)
        quote = await self._write(
            lambda uow: uc.update_quote(
                uow, self._app, principal, quote_id, data, list(request.update_mask.paths), request.quote.etag
            )
        )
        return self._quote(quote)

    async def DeleteQuote(self, request: rpc.DeleteQuoteRequest, context) -> empty_pb2.Empty:
        quote_id = id_from(request.name, "quotes")
        principal = current_principal()
        await self._write(lambda uow: uc.delete_quote(uow, self._app, principal, quote_id, request.etag))
        return empty_pb2.Empty()

    async def SendQuote(self, request: rpc.SendQuoteRequest, context) -> rpc.Quote:
        quote_id, principal = id_from(request.name, "quotes"), current_principal()

        async def run(uow):
            return self._quote(await uc.send_quote(uow, self._app, principal, quote_id, request.etag))

        return await self._once(f"/{SERVICE}/SendQuote", request, run=run, response_type=rpc.Quote)

    async def ReviseQuote(self, request: rpc.ReviseQuoteRequest, context) -> rpc.Quote:
        quote_id, principal = id_from(request.name, "quotes"), current_principal()

        async def run(uow):
            return self._quote(await uc.revise_quote(uow, self._app, principal, quote_id, request.etag))

        return await self._once(f"/{SERVICE}/ReviseQuote", request, run=run, response_type=rpc.Quote)

    async def AcceptQuote(self, request: rpc.AcceptQuoteRequest, context) -> rpc.AcceptQuoteResponse:
        quote_id, principal = id_from(request.name, "quotes"), current_principal()

        async def run(uow):
            quote, order = await uc.accept_quote(uow, self._app, principal, quote_id, request.etag)
            return rpc.AcceptQuoteResponse(quote=self._quote(quote), order=m.order_to_pb(order))

        return await self._once(
            f"/{SERVICE}/AcceptQuote", request, run=run, response_type=rpc.AcceptQuoteResponse
        )

    async def RejectQuote(self, request: rpc.RejectQuoteRequest, context) -> rpc.Quote:
        quote_id, principal = id_from(request.name, "quotes"), current_principal()

        async def run(uow):
            return self._quote(
                await uc.reject_quote(uow, self._app, principal, quote_id, request.reason, request.etag)
            )

        return await self._once(f"/{SERVICE}/RejectQuote", request, run=run, response_type=rpc.Quote)

    async def ListQuoteVersions(
        self, request: rpc.ListQuoteVersionsRequest, context
    ) -> rpc.ListQuoteVersionsResponse:
        async with self._app.db.read_session() as session:
            versions = await uc.list_quote_versions(
                session, self._app, current_principal(), id_from(request.name, "quotes")
            )
        return rpc.ListQuoteVersionsResponse(versions=[self._quote(v) for v in versions])

    # --- orders --------------------------------------------------------------------------------

    async def GetOrder(self, request: rpc.GetOrderRequest, context) -> rpc.Order:
        async with self._app.db.read_session() as session:
            order = await uc.get_order(
                session, self._app, current_principal(), id_from(request.name, "orders")
            )
        return m.order_to_pb(order)

    async def ListOrders(self, request: rpc.ListOrdersRequest, context) -> rpc.ListOrdersResponse:
        async with self._app.db.read_session() as session:
            page = await uc.list_orders(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
                order_by=request.order_by,
            )
        return rpc.ListOrdersResponse(
            orders=[m.order_to_pb(o) for o in page.items], next_page_token=page.next_page_token
        )

    async def CreateOrder(self, request: rpc.CreateOrderRequest, context) -> rpc.Order:
        principal = current_principal()
        data = m.quote_input(request.order)

        async def run(uow):
            return m.order_to_pb(await uc.create_order(uow, self._app, principal, data))

        return await self._once(f"/{SERVICE}/CreateOrder", request, run=run, response_type=rpc.Order)

    async def _change_order(self, method: str, request, action: str, **kwargs) -> rpc.Order:
        order_id, principal = id_from(request.name, "orders"), current_principal()

        async def run(uow):
            return m.order_to_pb(
                await uc.change_order(uow, self._app, principal, order_id, request.etag, action, **kwargs)
            )

        return await self._once(f"/{SERVICE}/{method}", request, run=run, response_type=rpc.Order)

    async def ConfirmOrder(self, request: rpc.ConfirmOrderRequest, context) -> rpc.Order:
        return await self._change_order("ConfirmOrder", request, "confirm")

    async def FulfillOrder(self, request: rpc.FulfillOrderRequest, context) -> rpc.Order:
        return await self._change_order("FulfillOrder", request, "fulfill", partial=request.partial)

    async def CancelOrder(self, request: rpc.CancelOrderRequest, context) -> rpc.Order:
        return await self._change_order("CancelOrder", request, "cancel", reason=request.reason)
