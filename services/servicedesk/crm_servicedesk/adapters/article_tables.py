"""Knowledge-base articles and their tags (on the servicedesk `metadata`).

The full-text index is not declared here because it differs per database (see
migrations/versions/0004_knowledge.py and adapters/article_search.py): PostgreSQL keeps a
generated `search_vector` tsvector column with a GIN index; SQLite keeps an FTS5 table
`articles_fts` filled by triggers with the PUBLISHED articles only.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm_servicedesk.adapters.tables import metadata
from crm_shared.db.types import UtcDateTime

articles = sa.Table(
    "articles",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("category", sa.String(200), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("author", sa.String(128), nullable=False),
    # Counters change only through atomic UPDATE ... SET n = n + 1 (never read-modify-write).
    sa.Column("view_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("helpful_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("not_helpful_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("publish_time", UtcDateTime(), nullable=True),
    sa.Column("create_time", UtcDateTime(), nullable=False),
    sa.Column("update_time", UtcDateTime(), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),  # etag / optimistic concurrency
    sa.Index("ix_articles_update", "update_time", "id"),
    sa.Index("ix_articles_status_update", "status", "update_time", "id"),
    sa.Index("ix_articles_category", "category"),
    sa.Index("ix_articles_author", "author", "update_time"),
)

# One row per (article, tag): "has tag" filters are an indexed EXISTS on both databases.
article_tags = sa.Table(
    "article_tags",
    metadata,
    sa.Column(
        "article_id", sa.String(36), sa.ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("tag", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),  # the author's order, kept for display
    sa.Index("ix_article_tags_tag", "tag", "article_id"),
)
