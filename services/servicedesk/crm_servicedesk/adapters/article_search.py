"""Full-text search over PUBLISHED articles, one implementation per database.

Both take the same SearchTerms (plain lower-case words, see domain/articles.py), match
every word (or any, for suggestions) with a prefix match on the last one, rank the title
above the body, and page by keyset on (score desc, id) — no OFFSET.

PostgreSQL: `search_vector` (generated: title weight A, body weight B, 'simple' config) @@
to_tsquery, ranked by ts_rank_cd (cover density: terms close together and in the title
score higher), snippet by ts_headline. SQLite: the FTS5 table `articles_fts` (published
articles only) MATCH, ranked by bm25 with the title weighted 10 to 1, snippet by snippet().
Scores are comparable within one response only (the proto says so): they differ in scale
between the databases, not in order for the cases that matter (see test_knowledge_search).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_servicedesk.adapters.article_repository import (
    ARTICLE_COLUMNS,
    ArticleRepository,
    category_predicate,
    has_tag,
)
from crm_servicedesk.adapters.article_tables import articles
from crm_servicedesk.domain.articles import Article, ArticleStatus, SearchTerms

HIGHLIGHT = "**"  # the body is Markdown: a highlighted term renders bold
ELLIPSIS = "…"
SNIPPET_WORDS = 24
TITLE_WEIGHT, BODY_WEIGHT = 10.0, 1.0  # SQLite bm25 column weights


@dataclass(frozen=True)
class SearchFilters:
    category: str = ""  # this category and its sub-categories
    tags: Sequence[str] = ()  # all of them


@dataclass(frozen=True)
class SearchHit:
    article: Article
    score: float
    snippet: str


def tsquery_text(terms: SearchTerms) -> str:
    """'vpn & connect & timeo:*' — the words are letters and digits only, so nothing to escape."""
    words = list(terms.words)
    if terms.prefix_last:
        words[-1] = f"{words[-1]}:*"
    return (" & " if terms.match_all else " | ").join(words)


def fts5_query_text(terms: SearchTerms) -> str:
    """'"vpn" "connect" "timeo"*' — quoted strings, implicit AND (or OR), prefix on the last."""
    words = [f'"{word}"' for word in terms.words]
    if terms.prefix_last:
        words[-1] = f"{words[-1]}*"
    return (" " if terms.match_all else " OR ").join(words)


def _filtered(query: sa.Select, filters: SearchFilters) -> sa.Select:
    if filters.category:
        query = query.where(category_predicate(filters.category))
    for tag in filters.tags:
        query = query.where(has_tag(tag))
    return query


def _after(score: sa.ColumnElement, after: tuple[float, str] | None) -> sa.ColumnElement[bool]:
    if after is None:
        return sa.true()
    best, article_id = after
    return sa.or_(score < best, sa.and_(score == best, articles.c.id > article_id))


def _postgres_query(terms: SearchTerms) -> tuple[sa.ColumnElement, sa.ColumnElement, sa.ColumnElement]:
    config = sa.literal_column("'simple'::regconfig")
    tsquery = sa.func.to_tsquery(config, sa.bindparam("tsquery", tsquery_text(terms)))
    vector = sa.literal_column("articles.search_vector")
    # float8, so the score read back into a page token compares equal to the recomputed one
    score = sa.cast(sa.func.ts_rank_cd(vector, tsquery), sa.Float(precision=53))
    options = (
        f"StartSel={HIGHLIGHT}, StopSel={HIGHLIGHT}, MaxWords={SNIPPET_WORDS}, "
        f"MinWords={SNIPPET_WORDS // 2}, MaxFragments=1, FragmentDelimiter={ELLIPSIS}"
    )
    snippet = sa.func.ts_headline(config, articles.c.body, tsquery, options)
    return vector.op("@@")(tsquery), score, snippet


def _sqlite_query(terms: SearchTerms) -> tuple[sa.ColumnElement, sa.ColumnElement, sa.ColumnElement]:
    fts = sa.literal_column("articles_fts")
    matches = fts.op("MATCH")(sa.bindparam("fts_query", fts5_query_text(terms)))
    # bm25 is lower-is-better; negated so that higher is better on both databases.
    score = -sa.func.bm25(fts, TITLE_WEIGHT, BODY_WEIGHT)
    snippet = sa.func.snippet(fts, 1, HIGHLIGHT, HIGHLIGHT, ELLIPSIS, SNIPPET_WORDS)
    return matches, score, snippet


def _parts(session: AsyncSession, terms: SearchTerms):
    if session.get_bind().dialect.name == "postgresql":
        matches, score, snippet = _postgres_query(terms)
        published = articles.c.status == ArticleStatus.PUBLISHED.value
        return articles, sa.and_(matches, published), score, snippet
    matches, score, snippet = _sqlite_query(terms)
    # The FTS table holds published articles only: no status test needed.
    source = sa.table("articles_fts", sa.column("rowid")).join(
        articles, sa.literal_column("articles.search_key") == sa.literal_column("articles_fts.rowid")
    )
    return source, matches, score, snippet


async def search_articles(
    session: AsyncSession,
    terms: SearchTerms,
    filters: SearchFilters,
    *,
    after: tuple[float, str] | None,
    limit: int,
) -> list[SearchHit]:
    """Best match first; `after` is the (score, id) of the last hit of the previous page.

    Two steps: rank (ids and scores only, so the sort never carries article bodies), then
    load the page's articles with their snippets (computed for these rows only).
    """
    source, matches, score, snippet = _parts(session, terms)
    ranking = (
        sa.select(articles.c.id, score.label("score"))
        .select_from(source)
        .where(matches, _after(score, after))
        .order_by(score.desc(), articles.c.id)
        .limit(limit)
    )
    ranked = (await session.execute(_filtered(ranking, filters))).all()
    if not ranked:
        return []
    page = (
        sa.select(*ARTICLE_COLUMNS, snippet.label("snippet"))
        .select_from(source)
        .where(matches, articles.c.id.in_([article_id for article_id, _ in ranked]))
    )
    rows = {row["id"]: row for row in (await session.execute(page)).mappings().all()}
    ordered = [rows[article_id] for article_id, _ in ranked if article_id in rows]
    found = {article.id: article for article in await ArticleRepository(session).with_tags(ordered)}
    return [
        SearchHit(found[article_id], float(best), rows[article_id]["snippet"] or "")
        for article_id, best in ranked
        if article_id in found
    ]
