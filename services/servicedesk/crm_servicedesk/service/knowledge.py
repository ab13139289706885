"""Use cases of the knowledge base: articles, their review workflow, search, suggestions, counters.

Writes take a unit of work (rows, outbox events and audit records commit together); reads
take a session. Who sees what: every role that may read articles sees PUBLISHED ones; the
roles that may write articles (support agents, managers, admins) see every status. An
article outside the caller's view is NOT_FOUND, exactly like one that does not exist.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from crm.servicedesk.v1 import events_pb2
from crm_servicedesk.adapters.article_repository import (
    ARTICLE_FILTERS,
    DEFAULT_ORDER,
    ORDERABLE,
    ArticleRepository,
    sort_keys,
)
from crm_servicedesk.adapters.article_search import SearchFilters, SearchHit, search_articles
from crm_servicedesk.adapters.ticket_repository import TicketRepository
from crm_servicedesk.domain import articles as rules
from crm_servicedesk.domain.articles import Article, ArticleInput, ArticleStatus, SearchTerms
from crm_shared.access import Scope
from crm_shared.aip.etag import check_etag
from crm_shared.aip.fieldmask import resolve_update_mask
from crm_shared.aip.paging import Page, clamp_page_size, parse_list_request, query_fingerprint
from crm_shared.errors import NotFound, PermissionDenied, Violations
from crm_shared.ids import new_id
from crm_shared.principal import Principal

ARTICLES = "articles"
TICKETS = "tickets"
SUBJECT_PUBLISHED = "crm.servicedesk.article.published"

DEFAULT_SEARCH_PAGE, MAX_SEARCH_PAGE = 10, 100
DEFAULT_SUGGESTIONS, MAX_SUGGESTIONS = 5, 20
OUTPUT_ONLY_FIELDS = frozenset(
    {
        "name",
        "status",
        "author",
        "view_count",
        "helpful_count",
        "not_helpful_count",
        "publish_time",
        "create_time",
        "update_time",
        "etag",
    }
)
PUBLISHED_ONLY = frozenset({ArticleStatus.PUBLISHED})


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    next_page_token: str


def article_not_found(article_id: str) -> NotFound:
    name = f"articles/{article_id}"
    return NotFound(f"{name} not found", reason="ARTICLE_NOT_FOUND", metadata={"resource": name})


def readable_statuses(deps, principal: Principal) -> Collection[ArticleStatus] | None:
    """None (every status) for the roles that write articles; PUBLISHED only for everyone else.

    PERMISSION_DENIED when the caller may not read the knowledge base at all.
    """
    deps.policy.grant(principal, ARTICLES, "read")
    if deps.policy.scope(principal, ARTICLES, "update") is Scope.NONE:
        return PUBLISHED_ONLY
    return None


async def _visible(
    session: AsyncSession, deps, principal: Principal, article_id: str, *, lock: bool = False
) -> Article:
    article = await ArticleRepository(session).get(article_id, readable_statuses(deps, principal), lock=lock)
    if article is None:
        raise article_not_found(article_id)
    return article


async def _writable(uow, deps, principal: Principal, article_id: str, action: str, etag: str) -> Article:
    """The article, locked, if the caller may `action` it (an agent: only what they wrote)."""
    grant = deps.policy.grant(principal, ARTICLES, action)
    article = await _visible(uow.session, deps, principal, article_id, lock=True)
    if not grant.permits(owner=article.author, team=""):
        raise PermissionDenied(
            f"only the author of {article.name} (or a support manager) may {action} it",
            reason="NOT_ARTICLE_AUTHOR",
            metadata={"resource": article.name, "action": action},
        )
    check_etag(etag, article.id, article.row_version, resource=article.name)
    return article


# --- reading -----------------------------------------------------------------------------------


async def get_article(session: AsyncSession, deps, principal: Principal, article_id: str) -> Article:
    return await _visible(session, deps, principal, article_id)


async def list_articles(
    session: AsyncSession,
    deps,
    principal: Principal,
    *,
    page_size: int,
    page_token: str,
    filter_text: str,
    order_by: str,
) -> Page:
    statuses = readable_statuses(deps, principal)
    request = parse_list_request(
        deps.page_tokens,
        collection=ARTICLES,
        caller=principal.subject,
        page_size=page_size,
        page_token=page_token,
        filter_text=filter_text,
        filters=ARTICLE_FILTERS,
        order_by=order_by,
        orderable=ORDERABLE,
        default_order=DEFAULT_ORDER,
    )
    rows = await ArticleRepository(session).list(
        statuses,
        where=request.where,
        sort=sort_keys(request.order.fields),
        after=request.after,
        limit=request.limit + 1,
    )
    return request.page(rows, deps.page_tokens)


# --- writing -----------------------------------------------------------------------------------


async def create_article(uow, deps, principal: Principal, data: ArticleInput) -> Article:
    deps.policy.grant(principal, ARTICLES, "create")
    article = rules.new_article(
        data, article_id=new_id(), author=principal.subject, now=uow.now, violations=Violations()
    )
    await ArticleRepository(uow.session).add(article)
    uow.audit("created", article.name, ["title", "category", "tags"])
    return article


async def update_article(
    uow, deps, principal: Principal, article_id: str, data: ArticleInput, mask: Sequence[str], etag: str
) -> Article:
    fields = resolve_update_mask(mask, writable=rules.UPDATABLE_FIELDS, output_only=OUTPUT_ONLY_FIELDS)
    current = await _writable(uow, deps, principal, article_id, "update", etag)
    updated, changed = rules.update_article(current, data, fields, now=uow.now, violations=Violations())
    if updated is current:
        return current
    await ArticleRepository(uow.session).save(updated, current.row_version)
    uow.audit("updated", updated.name, changed)
    return updated


async def delete_article(uow, deps, principal: Principal, article_id: str, etag: str) -> None:
    article = await _writable(uow, deps, principal, article_id, "delete", etag)
    await ArticleRepository(uow.session).remove(article.id)
    uow.audit("deleted", article.name, [])


async def change_status(
    uow, deps, principal: Principal, article_id: str, *, action: str, etag: str
) -> Article:
    """submit (the author, or a manager) / publish / archive (managers and admins)."""
    permission = "update" if action == "submit" else "publish"
    current = await _writable(uow, deps, principal, article_id, permission, etag)
    changed = rules.transition(current, action, uow.now)
    await ArticleRepository(uow.session).save(changed, current.row_version)
    if changed.status is ArticleStatus.PUBLISHED:
        uow.emit(
            SUBJECT_PUBLISHED,
            events_pb2.ArticlePublished(
                article=changed.name, category=changed.category, author=changed.author
            ),
            resource=changed.name,
        )
    uow.audit(action, changed.name, ["status"])
    return changed


# --- counters ----------------------------------------------------------------------------------


async def count(uow, deps, principal: Principal, article_id: str, counter: str) -> Article:
    """One view or vote: an atomic increment, so concurrent calls never lose one."""
    action = "read" if counter == "view_count" else "rate"
    deps.policy.grant(principal, ARTICLES, action)
    repo = ArticleRepository(uow.session)
    if not await repo.increment(article_id, counter, status=ArticleStatus.PUBLISHED):
        article = await _visible(uow.session, deps, principal, article_id)
        rules.check_countable(article, "view" if counter == "view_count" else "vote")
    return await _visible(uow.session, deps, principal, article_id)


# --- search ------------------------------------------------------------------------------------


async def search(
    session: AsyncSession,
    deps,
    principal: Principal,
    *,
    query: str,
    category: str,
    tags: Sequence[str],
    page_size: int,
    page_token: str,
) -> SearchPage:
    """Published articles containing every word (prefix on the last), best first."""
    deps.policy.grant(principal, ARTICLES, "read")
    terms = rules.search_terms(query)
    filters = SearchFilters(
        category=category.strip().removesuffix("/*").strip("/"), tags=rules.normalize_tags(tags)
    )
    limit = clamp_page_size(page_size, default=DEFAULT_SEARCH_PAGE, maximum=MAX_SEARCH_PAGE)
    # A token resumes the same search for the same caller only.
    fingerprint = query_fingerprint(
        "articles:search", terms.canonical, filters.category, ",".join(filters.tags), principal.subject
    )
    after = None
    if page_token:
        score, article_id = deps.page_tokens.decode(page_token, query=fingerprint)
        after = (float(score), str(article_id))
    hits = await search_articles(session, terms, filters, after=after, limit=limit + 1)
    if len(hits) <= limit:
        return SearchPage(hits, "")
    last = hits[limit - 1]
    token = deps.page_tokens.encode([last.score, last.article.id], query=fingerprint)
    return SearchPage(hits[:limit], token)


async def suggest(
    session: AsyncSession, deps, principal: Principal, *, ticket_id: str, max_results: int
) -> list[SearchHit]:
    """Published articles matching the ticket's most informative words, best first.

    The ticket is read with the caller's own tickets.read scope: a ticket they cannot see is
    NOT_FOUND here too, so suggestions never reveal what another team's ticket is about.
    """
    deps.policy.grant(principal, ARTICLES, "read")
    grant = deps.policy.grant(principal, TICKETS, "read")
    ticket = await TicketRepository(session).get(ticket_id, grant)
    if ticket is None:
        name = f"tickets/{ticket_id}"
        raise NotFound(f"{name} not found", reason="TICKET_NOT_FOUND", metadata={"resource": name})
    terms: SearchTerms | None = rules.suggestion_terms(ticket.subject, ticket.description)
    if terms is None:
        return []
    limit = clamp_page_size(max_results, default=DEFAULT_SUGGESTIONS, maximum=MAX_SUGGESTIONS)
    return await search_articles(session, terms, SearchFilters(), after=None, limit=limit)
