"""SearchArticles on SQLite (FTS5) and PostgreSQL (tsvector), through the real gRPC API.

What a reader notices: the better match comes first (title and repeated mentions beat a
single mention), every word of a query must match, the last word matches as a prefix,
category and tag filters narrow the results, drafts and archived articles never show up,
and paging walks through every result exactly once.
"""

from __future__ import annotations

import uuid

import grpc
import pytest

from crm.servicedesk.v1 import knowledge_service_pb2 as pb
from crm.servicedesk.v1 import knowledge_service_pb2_grpc as pb_grpc
from crm_shared.grpc.status import error_details

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def kb(channel):
    return pb_grpc.KnowledgeServiceStub(channel)


def word() -> str:
    """A word no other test uses, so each test searches its own articles only."""
    return "w" + uuid.uuid4().hex[:10]


async def published(kb, manager, *, title: str, body: str, category: str = "", tags=()) -> pb.Article:
    created = await kb.CreateArticle(
        pb.CreateArticleRequest(article=pb.Article(title=title, body=body, category=category, tags=tags)),
        metadata=manager,
    )
    await kb.SubmitArticle(pb.SubmitArticleRequest(name=created.name), metadata=manager)
    return await kb.PublishArticle(pb.PublishArticleRequest(name=created.name), metadata=manager)


async def search(kb, who, query: str, **fields) -> list[str]:
    reply = await kb.SearchArticles(pb.SearchArticlesRequest(query=query, **fields), metadata=who)
    return [result.article.title for result in reply.results]


async def test_the_better_match_ranks_first(kb, as_user):
    manager, topic = as_user("support_manager", "mia"), word()
    await published(kb, manager, title="Printer setup", body=f"Unrelated text, and once {topic} in passing.")
    await published(
        kb,
        manager,
        title=f"How to reset {topic}",
        body=f"Reset {topic} first. If {topic} keeps failing, reinstall {topic} and call us.",
    )
    await published(kb, manager, title="Noise", body=f"The {topic} appears here once as well.")

    reply = await kb.SearchArticles(
        pb.SearchArticlesRequest(query=topic), metadata=as_user("customer_portal")
    )

    titles = [r.article.title for r in reply.results]
    assert titles[0] == f"How to reset {topic}"
    assert sorted(titles[1:]) == ["Noise", "Printer setup"]
    scores = [r.score for r in reply.results]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]
    assert f"**{topic}**" in reply.results[0].snippet


async def test_every_word_must_match_and_the_last_one_is_a_prefix(kb, as_user):
    manager, reader, topic = as_user("support_manager", "mia"), as_user("sales_rep", "sal"), word()
    await published(kb, manager, title=f"{topic} invoices", body="Download your monthly invoice as PDF.")
    await published(kb, manager, title=f"{topic} payments", body="Pay by card or by bank transfer.")

    assert await search(kb, reader, f"{topic} invoi") == [f"{topic} invoices"]
    assert await search(kb, reader, f"{topic} monthly") == [f"{topic} invoices"]
    assert await search(kb, reader, f"{topic} bank card") == [f"{topic} payments"]
    assert await search(kb, reader, f"{topic} monthly card") == []
    # Query syntax of either database is just punctuation here: no error, same words.
    assert await search(kb, reader, f'"{topic}" & (invoi*:') == [f"{topic} invoices"]


async def test_category_and_tag_filters(kb, as_user):
    manager, reader, topic = as_user("support_manager", "mia"), as_user("customer_portal"), word()
    await published(kb, manager, title=f"{topic} a", body="x", category="billing", tags=["pdf"])
    await published(
        kb, manager, title=f"{topic} b", body="x", category="billing/invoices", tags=["pdf", "eu"]
    )
    await published(kb, manager, title=f"{topic} c", body="x", category="billing_old", tags=["eu"])
    await published(kb, manager, title=f"{topic} d", body="x", category="network")

    assert sorted(await search(kb, reader, topic, category="billing")) == [f"{topic} a", f"{topic} b"]
    assert await search(kb, reader, topic, category="billing/invoices") == [f"{topic} b"]
    assert sorted(await search(kb, reader, topic, category="billing/*")) == [f"{topic} a", f"{topic} b"]
    assert sorted(await search(kb, reader, topic, tags=["eu"])) == [f"{topic} b", f"{topic} c"]
    assert await search(kb, reader, topic, tags=["EU", "pdf"]) == [f"{topic} b"]
    assert await search(kb, reader, topic, category="billing", tags=["eu"]) == [f"{topic} b"]


async def test_only_published_articles_are_found(kb, as_user):
    manager, topic = as_user("support_manager", "mia"), word()
    await kb.CreateArticle(
        pb.CreateArticleRequest(article=pb.Article(title=topic, body="draft")), metadata=manager
    )
    review = await kb.CreateArticle(
        pb.CreateArticleRequest(article=pb.Article(title=topic, body="in review")), metadata=manager
    )
    await kb.SubmitArticle(pb.SubmitArticleRequest(name=review.name), metadata=manager)
    archived = await published(kb, manager, title=topic, body="archived")
    await kb.ArchiveArticle(pb.ArchiveArticleRequest(name=archived.name), metadata=manager)
    live = await published(kb, manager, title=topic, body="live")

    reply = await kb.SearchArticles(pb.SearchArticlesRequest(query=topic), metadata=manager)

    assert [r.article.name for r in reply.results] == [live.name]


async def test_paging_returns_every_hit_once_in_rank_order(kb, as_user):
    manager, reader, topic = as_user("support_manager", "mia"), as_user("customer_portal"), word()
    for copies in range(1, 5):
        for twin in "ab":  # equal scores: the page boundary falls inside a tie
            body = " ".join([topic] * copies + ["filler"] * 20)
            await published(kb, manager, title=f"Article {copies}{twin}", body=body)
    seen, token = [], ""
    while True:
        reply = await kb.SearchArticles(
            pb.SearchArticlesRequest(query=topic, page_size=3, page_token=token), metadata=reader
        )
        seen.extend(r.article.title for r in reply.results)
        token = reply.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 8
    assert [title[:-1] for title in seen] == [f"Article {n}" for n in (4, 4, 3, 3, 2, 2, 1, 1)]

    with pytest.raises(grpc.aio.AioRpcError) as caught:  # a token belongs to its own query
        await kb.SearchArticles(
            pb.SearchArticlesRequest(query=f"{topic} other", page_token=reply.next_page_token or "x"),
            metadata=reader,
        )
    assert error_details(caught.value).code == grpc.StatusCode.INVALID_ARGUMENT
