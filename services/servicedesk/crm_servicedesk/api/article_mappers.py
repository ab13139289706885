"""Protobuf <-> domain for knowledge-base articles."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from crm.servicedesk.v1 import common_pb2
from crm.servicedesk.v1 import knowledge_service_pb2 as pb
from crm_servicedesk.adapters.article_search import SearchHit
from crm_servicedesk.domain.articles import Article, ArticleInput, ArticleStatus
from crm_shared.aip.etag import etag_for
from crm_shared.errors import InvalidArgument

STATUS_TO_PB = {
    status: common_pb2.ArticleStatus.Value(f"ARTICLE_STATUS_{status.name}") for status in ArticleStatus
}


def _timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment.astimezone(UTC))
    return ts


def article_id(name: str, *, field: str = "name") -> str:
    """The id in "articles/{id}" (the request validator has checked the pattern when it is set)."""
    if not name.startswith("articles/"):
        raise InvalidArgument.for_field(field, "is required: articles/{article}")
    return name.removeprefix("articles/")


def ticket_id(name: str, *, field: str = "ticket") -> str:
    if not name.startswith("tickets/"):
        raise InvalidArgument.for_field(field, "is required: tickets/{ticket}")
    return name.removeprefix("tickets/")


def article_input(message: pb.Article) -> ArticleInput:
    return ArticleInput(
        title=message.title, body=message.body, category=message.category, tags=list(message.tags)
    )


def article_to_pb(article: Article) -> pb.Article:
    return pb.Article(
        name=article.name,
        title=article.title,
        body=article.body,
        category=article.category,
        tags=article.tags,
        status=STATUS_TO_PB[article.status],
        author=article.author,
        view_count=article.view_count,
        helpful_count=article.helpful_count,
        not_helpful_count=article.not_helpful_count,
        publish_time=_timestamp(article.publish_time),
        create_time=_timestamp(article.create_time),
        update_time=_timestamp(article.update_time),
        etag=etag_for(article.id, article.row_version),
    )


def search_result_to_pb(hit: SearchHit) -> pb.ArticleSearchResult:
    return pb.ArticleSearchResult(article=article_to_pb(hit.article), score=hit.score, snippet=hit.snippet)
