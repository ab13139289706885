"""crm.sales.v1.ProductService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from google.protobuf import empty_pb2

from crm.sales.v1 import product_service_pb2 as rpc
from crm.sales.v1 import product_service_pb2_grpc as rpc_grpc
from crm_sales.api import catalog_mappers as m
from crm_sales.api._base import SalesServicerBase
from crm_sales.service import products as uc
from crm_shared.errors import InvalidArgument
from crm_shared.principal import current_principal

SERVICE = "crm.sales.v1.ProductService"


class ProductServicer(SalesServicerBase, rpc_grpc.ProductServiceServicer):
    # --- products ------------------------------------------------------------------------------

    async def GetProduct(self, request: rpc.GetProductRequest, context) -> rpc.Product:
        async with self._app.db.read_session() as session:
            product = await uc.get_product(
                session, self._app, current_principal(), m.id_from(request.name, "products")
            )
        return m.product_to_pb(product)

    async def ListProducts(self, request: rpc.ListProductsRequest, context) -> rpc.ListProductsResponse:
        async with self._app.db.read_session() as session:
            page = await uc.list_products(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
                order_by=request.order_by,
            )
        return rpc.ListProductsResponse(
            products=[m.product_to_pb(p) for p in page.items], next_page_token=page.next_page_token
        )

    async def CreateProduct(self, request: rpc.CreateProductRequest, context) -> rpc.Product:
        principal = current_principal()
        data = m.product_input(request.product)

        async def run(uow):
            return m.product_to_pb(await uc.create_product(uow, self._app, principal, data))

        return await self._once(f"/{SERVICE}/CreateProduct", request, run=run, response_type=rpc.Product)

    async def UpdateProduct(self, request: rpc.UpdateProductRequest, context) -> rpc.Product:
        if not request.product.name:
            raise InvalidArgument.for_field("product.name", "is required to say which product to update")
        product_id = m.id_from(request.product.name, "products", field="product.name")
        principal = current_principal()
        data = m.product_input(request.product)
        product = await self._write(
            lambda uow: uc.update_product(
                uow,
                self._app,
                principal,
                product_id,
                data,
                list(request.update_mask.paths),
                request.product.etag,
            )
        )
        return m.product_to_pb(product)

    async def DeleteProduct(self, request: rpc.DeleteProductRequest, context) -> empty_pb2.Empty:
        product_id = m.id_from(request.name, "products")
        principal = current_principal()
        await self._write(lambda uow: uc.delete_product(uow, self._app, principal, product_id, request.etag))
        return empty_pb2.Empty()

    # --- price books ---------------------------------------------------------------------------

    async def GetPriceBook(self, request: rpc.GetPriceBookRequest, context) -> rpc.PriceBook:
        async with self._app.db.read_session() as session:
            book = await uc.get_price_book(
                session, self._app, current_principal(), m.id_from(request.name, "priceBooks")
            )
        return m.price_book_to_pb(book)

    async def ListPriceBooks(self, request: rpc.ListPriceBooksRequest, context) -> rpc.ListPriceBooksResponse:
        async with self._app.db.read_session() as session:
            page = await uc.list_price_books(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
            )
        return rpc.ListPriceBooksResponse(
            price_books=[m.price_book_to_pb(b) for b in page.items], next_page_token=page.next_page_token
        )

    async def CreatePriceBook(self, request: rpc.CreatePriceBookRequest, context) -> rpc.PriceBook:
        principal = current_principal()
        data = m.price_book_input(request.price_book)

        async def run(uow):
            return m.price_book_to_pb(await uc.create_price_book(uow, self._app, principal, data))

        return await self._once(f"/{SERVICE}/CreatePriceBook", request, run=run, response_type=rpc.PriceBook)

    async def UpdatePriceBook(self, request: rpc.UpdatePriceBookRequest, context) -> rpc.PriceBook:
        if not request.price_book.name:
            raise InvalidArgument.for_field(
                "price_book.name", "is required to say which price book to update"
            )
        book_id = m.id_from(request.price_book.name, "priceBooks", field="price_book.name")
        principal = current_principal()
        data = m.price_book_input(request.price_book)
        book = await self._write(
            lambda uow: uc.update_price_book(
                uow,
                self._app,
                principal,
                book_id,
                data,
                list(request.update_mask.paths),
                request.price_book.etag,
            )
        )
        return m.price_book_to_pb(book)

    async def DeletePriceBook(self, request: rpc.DeletePriceBookRequest, context) -> empty_pb2.Empty:
        book_id = m.id_from(request.name, "priceBooks")
        principal = current_principal()
        await self._write(lambda uow: uc.delete_price_book(uow, self._app, principal, book_id, request.etag))
        return empty_pb2.Empty()

    # --- entries -------------------------------------------------------------------------------

    async def GetPriceBookEntry(self, request: rpc.GetPriceBookEntryRequest, context) -> rpc.PriceBookEntry:
        book_id, entry_id = m.entry_ids_from(request.name)
        async with self._app.db.read_session() as session:
            entry = await uc.get_entry(session, self._app, current_principal(), book_id, entry_id)
        return m.entry_to_pb(entry)

    async def ListPriceBookEntries(
        self, request: rpc.ListPriceBookEntriesRequest, context
    ) -> rpc.ListPriceBookEntriesResponse:
        book_id = m.id_from(request.parent, "priceBooks", field="parent")
        async with self._app.db.read_session() as session:
            page = await uc.list_entries(
                session,
                self._app,
                current_principal(),
                book_id,
                page_size=request.page_size,
                page_token=request.page_token,
            )
        return rpc.ListPriceBookEntriesResponse(
            entries=[m.entry_to_pb(e) for e in page.items], next_page_token=page.next_page_token
        )

    async def CreatePriceBookEntry(
        self, request: rpc.CreatePriceBookEntryRequest, context
    ) -> rpc.PriceBookEntry:
        book_id = m.id_from(request.parent, "priceBooks", field="parent")
        principal = current_principal()
        data = m.entry_input(request.entry)

        async def run(uow):
            return m.entry_to_pb(await uc.create_entry(uow, self._app, principal, book_id, data))

        return await self._once(
            f"/{SERVICE}/CreatePriceBookEntry", request, run=run, response_type=rpc.PriceBookEntry
        )

    async def UpdatePriceBookEntry(
        self, request: rpc.UpdatePriceBookEntryRequest, context
    ) -> rpc.PriceBookEntry:
        if not request.entry.name:
            raise InvalidArgument.for_field("entry.name", "is required to say which entry to update")
        book_id, entry_id = m.entry_ids_from(request.entry.name, field="entry.name")
        principal = current_principal()
        data = m.entry_input(request.entry)
        entry = await self._write(
            lambda uow: uc.update_entry(
                uow,
                self._app,
                principal,
                book_id,
                entry_id,
                data,
                list(request.update_mask.paths),
                request.entry.etag,
            )
        )
        return m.entry_to_pb(entry)

    async def DeletePriceBookEntry(
        self, request: rpc.DeletePriceBookEntryRequest, context
    ) -> empty_pb2.Empty:
        book_id, entry_id = m.entry_ids_from(request.name)
        principal = current_principal()
        await self._write(
            lambda uow: uc.delete_entry(uow, self._app, principal, book_id, entry_id, request.etag)
        )
        return empty_pb2.Empty()
