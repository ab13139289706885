"""KnowledgeService through a real gRPC channel on SQLite and PostgreSQL, events on real NATS.

What a caller notices: the review workflow and who may do what (agents write and submit,
managers publish and archive), drafts invisible outside support, editing rules, etags,
counters that never lose a concurrent vote, and suggestions for a ticket the caller can see.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from crm.servicedesk.v1 import common_pb2, events_pb2
from crm.servicedesk.v1 import knowledge_service_pb2 as pb
from crm.servicedesk.v1 import knowledge_service_pb2_grpc as pb_grpc
from crm_servicedesk.adapters.ticket_repository import TicketRepository
from crm_servicedesk.api.knowledge import KnowledgeServicer
from crm_servicedesk.domain.tickets import Ticket
from crm_shared.grpc.status import error_details
from crm_shared.testing.events import wait_for_envelopes
from crm_shared.testing.fixtures_nats import connect_nats

pytestmark = pytest.mark.asyncio(loop_scope="session")

STREAM = "CRM_SERVICEDESK"
Status = common_pb2.ArticleStatus


@pytest.fixture
def kb(channel):
    return pb_grpc.KnowledgeServiceStub(channel)


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


def draft(**fields) -> pb.Article:
    values = dict(title="Reset your password", body="Open settings, then security.", category="account")
    values.update(fields)
    return pb.Article(**values)


async def create(kb, who, **fields) -> pb.Article:
    return await kb.CreateArticle(pb.CreateArticleRequest(article=draft(**fields)), metadata=who)


async def publish(kb, manager, name: str) -> pb.Article:
    await kb.SubmitArticle(pb.SubmitArticleRequest(name=name), metadata=manager)
    return await kb.PublishArticle(pb.PublishArticleRequest(name=name), metadata=manager)


async def test_agent_writes_and_submits_manager_publishes_with_an_event(kb, as_user, nats_server):
    agent, manager = as_user("support_agent", "sam", "east"), as_user("support_manager", "mia")
    created = await create(kb, agent, tags=["Password", "password ", "login"])
    assert created.status == Status.ARTICLE_STATUS_DRAFT
    assert created.author == "sam" and list(created.tags) == ["password", "login"]

    submitted = await kb.SubmitArticle(pb.SubmitArticleRequest(name=created.name), metadata=agent)
    assert submitted.status == Status.ARTICLE_STATUS_IN_REVIEW
    denied = await expect_error(
        kb.PublishArticle(pb.PublishArticleRequest(name=created.name), metadata=agent),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert denied.reason == "ACTION_NOT_ALLOWED"

    published = await kb.PublishArticle(
        pb.PublishArticleRequest(name=created.name, etag=submitted.etag), metadata=manager
    )
    assert published.status == Status.ARTICLE_STATUS_PUBLISHED and published.HasField("publish_time")
    again = await expect_error(
        kb.PublishArticle(pb.PublishArticleRequest(name=created.name), metadata=manager),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert again.reason == "ARTICLE_NOT_IN_REVIEW"

    nc = await connect_nats(nats_server.url)
    try:
        envelopes = await wait_for_envelopes(nc.jetstream(), STREAM, resource=created.name)
    finally:
        await nc.close()
    assert [e.type for e in envelopes] == ["crm.servicedesk.v1.ArticlePublished"]
    event = events_pb2.ArticlePublished()
    envelopes[0].payload.Unpack(event)
    assert (event.article, event.category, event.author) == (created.name, "account", "sam")


async def test_drafts_are_invisible_outside_support(kb, as_user):
    agent, manager = as_user("support_agent", "sam"), as_user("support_manager", "mia")
    hidden = await create(kb, agent, title=f"Draft {uuid.uuid4().hex}")
    visible = await publish(kb, manager, (await create(kb, agent)).name)

    for role in ("customer_portal", "sales_rep", "marketing"):
        reader = as_user(role, "someone")
        await expect_error(
            kb.GetArticle(pb.GetArticleRequest(name=hidden.name), metadata=reader), grpc.StatusCode.NOT_FOUND
        )
        got = await kb.GetArticle(pb.GetArticleRequest(name=visible.name), metadata=reader)
        assert got.status == Status.ARTICLE_STATUS_PUBLISHED
    listed = await kb.ListArticles(
        pb.ListArticlesRequest(filter='author = "sam"'), metadata=as_user("customer_portal")
    )
    assert hidden.name not in {a.name for a in listed.articles}
    assert all(a.status == Status.ARTICLE_STATUS_PUBLISHED for a in listed.articles)
    # Another agent reads the draft (support sees every status) ...
    other = as_user("support_agent", "ann")
    assert (await kb.GetArticle(pb.GetArticleRequest(name=hidden.name), metadata=other)).title == hidden.title
    # ... but only its author (or a manager) may change it.
    denied = await expect_error(
        kb.UpdateArticle(
            pb.UpdateArticleRequest(
                article=pb.Article(name=hidden.name, title="Mine now"), update_mask=mask("title")
            ),
            metadata=other,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert denied.reason == "NOT_ARTICLE_AUTHOR"
    # An analyst may not read the knowledge base at all.
    await expect_error(
        kb.GetArticle(pb.GetArticleRequest(name=visible.name), metadata=as_user("analyst")),
        grpc.StatusCode.PERMISSION_DENIED,
    )


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


async def test_editing_rules_and_etags(kb, as_user):
    agent, manager = as_user("support_agent", "sam"), as_user("support_manager", "mia")
    created = await create(kb, agent)
    review = await kb.SubmitArticle(pb.SubmitArticleRequest(name=created.name), metadata=agent)

    stale = await expect_error(
        kb.UpdateArticle(
            pb.UpdateArticleRequest(
                article=pb.Article(name=created.name, title="New", etag=created.etag),
                update_mask=mask("title"),
            ),
            metadata=agent,
        ),
        grpc.StatusCode.ABORTED,
    )
    assert stale.reason == "STALE_ETAG"
    edited = await kb.UpdateArticle(
        pb.UpdateArticleRequest(
            article=pb.Article(name=created.name, title="New", etag=review.etag), update_mask=mask("title")
        ),
        metadata=agent,
    )
    assert edited.title == "New" and edited.status == Status.ARTICLE_STATUS_DRAFT  # back to draft

    live = await publish(kb, manager, created.name)
    locked = await expect_error(
        kb.UpdateArticle(
            pb.UpdateArticleRequest(
                article=pb.Article(name=created.name, body="changed"), update_mask=mask("body")
            ),
            metadata=manager,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert locked.reason == "ARTICLE_PUBLISHED"
    archived = await kb.ArchiveArticle(
        pb.ArchiveArticleRequest(name=created.name, etag=live.etag), metadata=manager
    )
    assert archived.status == Status.ARTICLE_STATUS_ARCHIVED
    redrafted = await kb.UpdateArticle(
        pb.UpdateArticleRequest(
            article=pb.Article(name=created.name, body="Better body"), update_mask=mask("body")
        ),
        metadata=agent,
    )
    assert redrafted.status == Status.ARTICLE_STATUS_DRAFT and redrafted.body == "Better body"

    bad = await expect_error(
        kb.UpdateArticle(
            pb.UpdateArticleRequest(
                article=pb.Article(name=created.name, title=" "), update_mask=mask("title", "status")
            ),
            metadata=agent,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "update_mask.paths[1]" in bad.field_violations
    missing = await expect_error(
        kb.CreateArticle(pb.CreateArticleRequest(article=pb.Article(title="", body="")), metadata=agent),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(missing.field_violations) == {"article.title", "article.body"}

    await kb.DeleteArticle(pb.DeleteArticleRequest(name=created.name), metadata=agent)
    await expect_error(
        kb.GetArticle(pb.GetArticleRequest(name=created.name), metadata=agent), grpc.StatusCode.NOT_FOUND
    )


async def test_create_with_a_request_id_is_done_once(kb, as_user):
    agent, request_id = as_user("support_agent", "sam"), str(uuid.uuid4())
    request = pb.CreateArticleRequest(article=draft(title=f"Once {request_id}"), request_id=request_id)
    first = await kb.CreateArticle(request, metadata=agent)
    retried = await kb.CreateArticle(request, metadata=agent)
    assert retried.name == first.name
    listed = await kb.ListArticles(pb.ListArticlesRequest(filter='author = "sam"'), metadata=agent)
    assert [a.name for a in listed.articles if a.title == first.title] == [first.name]


async def test_list_filters_by_category_subtree_status_and_tag(kb, as_user):
    manager, team_tag = as_user("support_manager", "mia"), f"t{uuid.uuid4().hex[:8]}"
    top = await create(kb, manager, category="billing", tags=[team_tag])
    sub = await create(kb, manager, category="billing/invoices", tags=[team_tag])
    await create(kb, manager, category="billingx", tags=[team_tag])
    await publish(kb, manager, sub.name)

    async def names(filter_text: str) -> set[str]:
        reply = await kb.ListArticles(pb.ListArticlesRequest(filter=filter_text), metadata=manager)
        return {a.name for a in reply.articles}

    assert await names(f'tags: "{team_tag}" AND category: "billing/*"') == {top.name, sub.name}
    assert await names(f'tags: "{team_tag}" AND category = "billing"') == {top.name}
    assert await names(f'tags: "{team_tag}" AND status = ARTICLE_STATUS_PUBLISHED') == {sub.name}
    bad = await expect_error(
        kb.ListArticles(pb.ListArticlesRequest(filter="colour = red"), metadata=manager),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert bad.reason == "INVALID_FILTER"


async def test_concurrent_votes_and_views_are_all_counted(kb, as_user):
    manager, reader = as_user("support_manager", "mia"), as_user("customer_portal", "cp")
    article = await publish(kb, manager, (await create(kb, manager)).name)

    await asyncio.gather(
        *(
            kb.RateArticle(pb.RateArticleRequest(name=article.name, helpful=True), metadata=reader)
            for _ in range(20)
        ),
        *(
            kb.RateArticle(pb.RateArticleRequest(name=article.name, helpful=False), metadata=reader)
            for _ in range(5)
        ),
        *(
            kb.RecordArticleView(pb.RecordArticleViewRequest(name=article.name), metadata=reader)
            for _ in range(10)
        ),
    )

    got = await kb.GetArticle(pb.GetArticleRequest(name=article.name), metadata=reader)
    assert (got.helpful_count, got.not_helpful_count, got.view_count) == (20, 5, 10)
    assert got.etag == article.etag  # counting is not an edit

    a_draft = await create(kb, manager)
    refused = await expect_error(
        kb.RateArticle(pb.RateArticleRequest(name=a_draft.name, helpful=True), metadata=manager),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert refused.reason == "ARTICLE_NOT_PUBLISHED"
    await expect_error(
        kb.RecordArticleView(pb.RecordArticleViewRequest(name=a_draft.name), metadata=reader),
        grpc.StatusCode.NOT_FOUND,
    )


async def add_ticket(service, *, subject: str, description: str, team: str) -> str:
    """A ticket straight through S1's repository (the test is about suggestions, not tickets)."""
    app = next(s for _, s in service.parts.servicers if isinstance(s, KnowledgeServicer))._app
    async with app.uow_factory() as uow:
        repo = TicketRepository(uow.session)
        ticket = Ticket(
            id=str(uuid.uuid4()),
            number=await repo.next_number(),
            subject=subject,
            description=description,
            requester="portal-user",
            team=team,
            create_time=uow.now,
            update_time=uow.now,
        )
        await repo.add(ticket)
        await uow.commit()
    return ticket.name


async def test_suggestions_for_a_ticket_the_caller_can_see(kb, as_user, servicedesk_service):
    manager, topic = as_user("support_manager", "mia"), "v" + uuid.uuid4().hex[:8]
    best = await publish(
        kb,
        manager,
        (
            await create(
                kb, manager, title=f"{topic} disconnects", body=f"When {topic} drops, renew the lease."
            )
        ).name,
    )
    other = await publish(
        kb, manager, (await create(kb, manager, title="Lease renewal", body="How a lease is renewed.")).name
    )
    await create(kb, manager, title=f"{topic} draft", body=f"{topic} {topic} lease")  # never suggested
    ticket = await add_ticket(
        servicedesk_service,
        subject=f"Hello, my {topic} keeps dropping",
        description=f"Since yesterday the {topic} drops every hour. Is it the lease? Please help!",
        team="east",
    )

    reply = await kb.SuggestArticles(
        pb.SuggestArticlesRequest(ticket=ticket), metadata=as_user("support_agent", "sam", "east")
    )

    names = [r.article.name for r in reply.results]
    # The article about the ticket's main words first, one sharing a single word after it; no draft.
    assert names == [best.name, other.name]
    assert reply.results[0].score > reply.results[1].score
    # An agent of another team cannot see the ticket, so cannot learn what it is about either.
    hidden = await expect_error(
        kb.SuggestArticles(
            pb.SuggestArticlesRequest(ticket=ticket), metadata=as_user("support_agent", "zoe", "west")
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert hidden.reason == "TICKET_NOT_FOUND"
