"""Articles in the database: rows, tags, ListArticles' filters and the atomic counters.

Visibility (which statuses a caller may see) is a predicate inside every query, so an
article the caller may not see is simply not found.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_servicedesk.adapters.article_tables import article_tags, articles
from crm_servicedesk.domain.articles import Article, ArticleStatus
from crm_shared.aip.filtering import FilterField, FilterSchema, invalid_filter
from crm_shared.aip.paging import SortKey, keyset_after, keyset_order
from crm_shared.errors import Aborted

COUNTERS = frozenset({"view_count", "helpful_count", "not_helpful_count"})
ORDERABLE = ("update_time", "view_count", "helpful_count")
DEFAULT_ORDER = "update_time desc"
STATUS_FILTER_VALUES = {f"ARTICLE_STATUS_{s.name}": s.value for s in ArticleStatus}


def category_predicate(category: str) -> sa.ColumnElement[bool]:
    """The category itself and everything below it ("billing" matches "billing/invoices")."""
    return sa.or_(
        articles.c.category == category,
        articles.c.category.startswith(f"{category}/", autoescape=True),
    )


def has_tag(tag: str) -> sa.ColumnElement[bool]:
    return sa.exists().where(article_tags.c.article_id == articles.c.id, article_tags.c.tag == tag)


def _category_filter(op: str, value: str) -> sa.ColumnElement[bool]:
    """`category = "billing"` is exact; `category: "billing/*"` (or `= "billing/*"`) is the subtree."""
    if value.endswith("/*"):
        return category_predicate(value[:-2])
    if op == ":":
        return category_predicate(value)
    return articles.c.category == value


def _tag_filter(op: str, value: str) -> sa.ColumnElement[bool]:
    if not value.strip():
        raise invalid_filter("tags: needs a tag")
    return has_tag(value.strip().lower())


ARTICLE_FILTERS = FilterSchema(
    {
        "status": FilterField.enum(articles.c.status, STATUS_FILTER_VALUES),
        "category": FilterField.custom("= :", _category_filter),
        "tags": FilterField.custom(":", _tag_filter),
        "author": FilterField.string(articles.c.author),
        "update_time": FilterField.timestamp(articles.c.update_time),
    }
)

_SORT_COLUMNS = {name: articles.c[name] for name in ORDERABLE}


def sort_keys(fields: Sequence[tuple[str, bool]]) -> list[SortKey]:
    keys = [SortKey(_SORT_COLUMNS[name], descending) for name, descending in fields]
    return [*keys, SortKey(articles.c.id, fields[-1][1] if fields else False)]


def visible(statuses: Collection[ArticleStatus] | None) -> sa.ColumnElement[bool]:
    """None: every status (authors and reviewers); else only those statuses."""
    if statuses is None:
        return sa.true()
    return articles.c.status.in_([s.value for s in statuses])


def article_values(a: Article) -> dict[str, Any]:
    return {
        "id": a.id,
        "title": a.title,
        "body": a.body,
        "category": a.category,
        "status": a.status.value,
        "author": a.author,
        "view_count": a.view_count,
        "helpful_count": a.helpful_count,
        "not_helpful_count": a.not_helpful_count,
        "publish_time": a.publish_time,
        "create_time": a.create_time,
        "update_time": a.update_time,
        "row_version": a.row_version,
    }


def article_from_row(row: Any, tags: Sequence[str] = ()) -> Article:
    return Article(
        id=row["id"],
        title=row["title"],
        body=row["body"],
        category=row["category"],
        tags=list(tags),
        status=ArticleStatus(row["status"]),
        author=row["author"],
        view_count=int(row["view_count"]),
        helpful_count=int(row["helpful_count"]),
        not_helpful_count=int(row["not_helpful_count"]),
        publish_time=row["publish_time"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        row_version=row["row_version"],
    )


ARTICLE_COLUMNS = [articles.c[column.name] for column in articles.columns]


class ArticleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def tags_of(self, article_ids: Collection[str]) -> dict[str, list[str]]:
        """Each article's tags in the author's order (one query for a whole page)."""
        if not article_ids:
            return {}
        rows = await self.session.execute(
            sa.select(article_tags.c.article_id, article_tags.c.tag)
            .where(article_tags.c.article_id.in_(list(article_ids)))
            .order_by(article_tags.c.article_id, article_tags.c.position)
        )
        found: dict[str, list[str]] = {}
        for article_id, tag in rows.all():
            found.setdefault(article_id, []).append(tag)
        return found

    async def with_tags(self, rows: Sequence[Any]) -> list[Article]:
        tags = await self.tags_of([row["id"] for row in rows])
        return [article_from_row(row, tags.get(row["id"], ())) for row in rows]

    async def get(
        self, article_id: str, statuses: Collection[ArticleStatus] | None = None, lock: bool = False
    ) -> Article | None:
        query = sa.select(*ARTICLE_COLUMNS).where(articles.c.id == article_id, visible(statuses))
        if lock and self.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await self.session.execute(query)).mappings().first()
        return None if row is None else (await self.with_tags([row]))[0]

    async def list(
        self,
        statuses: Collection[ArticleStatus] | None,
        *,
        where: sa.ColumnElement[bool] | None,
        sort: Sequence[SortKey],
        after: Sequence[Any] | None,
        limit: int,
    ) -> list[Article]:
        query = sa.select(*ARTICLE_COLUMNS).where(visible(statuses))
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*keyset_order(sort)).limit(limit)
        return await self.with_tags((await self.session.execute(query)).mappings().all())

    async def add(self, article: Article) -> None:
        await self.session.execute(sa.insert(articles).values(article_values(article)))
        await self._write_tags(article)

    async def save(self, article: Article, expected_row_version: int) -> None:
        """Writes everything but the counters; Aborted when someone else wrote first."""
        values = article_values(article)
        for column in ("id", "create_time", *COUNTERS):
            del values[column]
        result = await self.session.execute(
            sa.update(articles)
            .where(articles.c.id == article.id, articles.c.row_version == expected_row_version)
            .values(values)
        )
        if result.rowcount != 1:
            raise Aborted(
                f"{article.name} was changed concurrently; read it again and retry",
                reason="CONCURRENT_UPDATE",
                metadata={"resource": article.name},
            )
        await self.session.execute(sa.delete(article_tags).where(article_tags.c.article_id == article.id))
        await self._write_tags(article)

    async def _write_tags(self, article: Article) -> None:
        if article.tags:
            await self.session.execute(
                sa.insert(article_tags),
                [{"article_id": article.id, "tag": tag, "position": i} for i, tag in enumerate(article.tags)],
            )

    async def remove(self, article_id: str) -> None:
        await self.session.execute(sa.delete(article_tags).where(article_tags.c.article_id == article_id))
        await self.session.execute(sa.delete(articles).where(articles.c.id == article_id))

    async def increment(self, article_id: str, counter: str, *, status: ArticleStatus) -> bool:
        """counter = counter + 1 in one statement (no lost update however many run at once).

        Only while the article is in `status`; False when it is not (or does not exist).
        Counters are not edits: row_version and update_time stay, so etags stay valid.
        """
        if counter not in COUNTERS:
            raise ValueError(f"not a counter: {counter}")
        result = await self.session.execute(
            sa.update(articles)
            .where(articles.c.id == article_id, articles.c.status == status.value)
            .values({counter: articles.c[counter] + 1})
        )
        return result.rowcount == 1
