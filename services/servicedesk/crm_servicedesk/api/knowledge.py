"""crm.servicedesk.v1.KnowledgeService over gRPC (thin: parse, call a use case, map the result)."""

from __future__ import annotations

from google.protobuf import empty_pb2

from crm.servicedesk.v1 import knowledge_service_pb2 as rpc
from crm.servicedesk.v1 import knowledge_service_pb2_grpc as rpc_grpc
from crm_servicedesk.api import article_mappers as m
from crm_servicedesk.api._base import ServicedeskServicerBase
from crm_servicedesk.service import knowledge as uc
from crm_shared.principal import current_principal

SERVICE = "crm.servicedesk.v1.KnowledgeService"


class KnowledgeServicer(ServicedeskServicerBase, rpc_grpc.KnowledgeServiceServicer):
    async def GetArticle(self, request: rpc.GetArticleRequest, context) -> rpc.Article:
        async with self._app.db.read_session() as session:
            article = await uc.get_article(
                session, self._app, current_principal(), m.article_id(request.name)
            )
        return m.article_to_pb(article)

    async def ListArticles(self, request: rpc.ListArticlesRequest, context) -> rpc.ListArticlesResponse:
        async with self._app.db.read_session() as session:
            page = await uc.list_articles(
                session,
                self._app,
                current_principal(),
                page_size=request.page_size,
                page_token=request.page_token,
                filter_text=request.filter,
                order_by=request.order_by,
            )
        return rpc.ListArticlesResponse(
            articles=[m.article_to_pb(a) for a in page.items], next_page_token=page.next_page_token
        )

    async def CreateArticle(self, request: rpc.CreateArticleRequest, context) -> rpc.Article:
        principal, data = current_principal(), m.article_input(request.article)

        async def run(uow):
            return m.article_to_pb(await uc.create_article(uow, self._app, principal, data))

        return await self._once(f"/{SERVICE}/CreateArticle", request, run=run, response_type=rpc.Article)

    async def UpdateArticle(self, request: rpc.UpdateArticleRequest, context) -> rpc.Article:
        article_id = m.article_id(request.article.name, field="article.name")
        principal, data = current_principal(), m.article_input(request.article)
        article = await self._write(
            lambda uow: uc.update_article(
                uow,
                self._app,
                principal,
                article_id,
                data,
                list(request.update_mask.paths),
                request.article.etag,
            )
        )
        return m.article_to_pb(article)

    async def DeleteArticle(self, request: rpc.DeleteArticleRequest, context) -> empty_pb2.Empty:
        article_id, principal = m.article_id(request.name), current_principal()
        await self._write(lambda uow: uc.delete_article(uow, self._app, principal, article_id, request.etag))
        return empty_pb2.Empty()

    async def _change_status(self, request, action: str) -> rpc.Article:
        article_id, principal = m.article_id(request.name), current_principal()
        article = await self._write(
            lambda uow: uc.change_status(
                uow, self._app, principal, article_id, action=action, etag=request.etag
            )
        )
        return m.article_to_pb(article)

    async def SubmitArticle(self, request: rpc.SubmitArticleRequest, context) -> rpc.Article:
        return await self._change_status(request, "submit")

    async def PublishArticle(self, request: rpc.PublishArticleRequest, context) -> rpc.Article:
        return await self._change_status(request, "publish")

    async def ArchiveArticle(self, request: rpc.ArchiveArticleRequest, context) -> rpc.Article:
        return await self._change_status(request, "archive")

    async def SearchArticles(self, request: rpc.SearchArticlesRequest, context) -> rpc.SearchArticlesResponse:
        async with self._app.db.read_session() as session:
            page = await uc.search(
                session,
                self._app,
                current_principal(),
                query=request.query,
                category=request.category,
                tags=list(request.tags),
                page_size=request.page_size,
                page_token=request.page_token,
            )
        return rpc.SearchArticlesResponse(
            results=[m.search_result_to_pb(hit) for hit in page.hits], next_page_token=page.next_page_token
        )

    async def SuggestArticles(
        self, request: rpc.SuggestArticlesRequest, context
    ) -> rpc.SuggestArticlesResponse:
        ticket_id = m.ticket_id(request.ticket)
        async with self._app.db.read_session() as session:
            hits = await uc.suggest(
                session, self._app, current_principal(), ticket_id=ticket_id, max_results=request.max_results
            )
        return rpc.SuggestArticlesResponse(results=[m.search_result_to_pb(hit) for hit in hits])

    async def RecordArticleView(self, request: rpc.RecordArticleViewRequest, context) -> rpc.Article:
        article_id, principal = m.article_id(request.name), current_principal()
        article = await self._write(lambda uow: uc.count(uow, self._app, principal, article_id, "view_count"))
        return m.article_to_pb(article)

    async def RateArticle(self, request: rpc.RateArticleRequest, context) -> rpc.Article:
        article_id, principal = m.article_id(request.name), current_principal()
        counter = "helpful_count" if request.helpful else "not_helpful_count"
        article = await self._write(lambda uow: uc.count(uow, self._app, principal, article_id, counter))
        return m.article_to_pb(article)
