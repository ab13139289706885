"""Knowledge base: articles, their tags and a full-text index per database.

PostgreSQL: a generated tsvector (title weight A, body weight B, 'simple' configuration)
with a GIN index. SQLite: an FTS5 table holding the PUBLISHED articles only, kept in sync
by triggers inside the writing transaction. Its rowid is `articles.search_key`, a copy of
the article's rowid taken at insert: a stored value, so a VACUUM that renumbers rowids
cannot detach the index from its articles. See docs/adr/0015-knowledge-base-search.md.

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from crm_shared.db.types import UtcDateTime

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None

POSTGRES_SEARCH = [
    """
    ALTER TABLE articles ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple'::regconfig, title), 'A')
        || setweight(to_tsvector('simple'::regconfig, body), 'B')
    ) STORED
    """,
    "CREATE INDEX ix_articles_search ON articles USING GIN (search_vector)",
]

SQLITE_SEARCH = [
    "ALTER TABLE articles ADD COLUMN search_key INTEGER",
    "CREATE UNIQUE INDEX ix_articles_search_key ON articles (search_key)",
    # unicode61 without diacritic folding and without stemming: the same words PostgreSQL's
    # 'simple' configuration produces (lower-cased, split on non-alphanumerics).
    """
    CREATE VIRTUAL TABLE articles_fts USING fts5(
        title, body, tokenize = 'unicode61 remove_diacritics 0'
    )
    """,
    """
    CREATE TRIGGER articles_search_insert AFTER INSERT ON articles BEGIN
        UPDATE articles SET search_key = new.rowid WHERE id = new.id;
        INSERT INTO articles_fts (rowid, title, body)
            SELECT new.rowid, new.title, new.body WHERE new.status = 'published';
    END
    """,
    """
    CREATE TRIGGER articles_search_update AFTER UPDATE OF title, body, status ON articles BEGIN
        DELETE FROM articles_fts WHERE rowid = old.search_key AND old.status = 'published';
        INSERT INTO articles_fts (rowid, title, body)
            SELECT new.search_key, new.title, new.body WHERE new.status = 'published';
    END
    """,
    """
    CREATE TRIGGER articles_search_delete AFTER DELETE ON articles BEGIN
        DELETE FROM articles_fts WHERE rowid = old.search_key;
    END
    """,
]


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("category", sa.String(200), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("view_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("helpful_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("not_helpful_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("publish_time", UtcDateTime(), nullable=True),
        sa.Column("create_time", UtcDateTime(), nullable=False),
        sa.Column("update_time", UtcDateTime(), nullable=False),
        sa.Column("row_version", sa.Integer, nullable=False),
    )
    op.create_index("ix_articles_update", "articles", ["update_time", "id"])
    op.create_index("ix_articles_status_update", "articles", ["status", "update_time", "id"])
    op.create_index("ix_articles_category", "articles", ["category"])
    op.create_index("ix_articles_author", "articles", ["author", "update_time"])
    op.create_table(
        "article_tags",
        sa.Column(
            "article_id",
            sa.String(36),
            sa.ForeignKey("articles.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tag", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_index("ix_article_tags_tag", "article_tags", ["tag", "article_id"])
    statements = POSTGRES_SEARCH if op.get_bind().dialect.name == "postgresql" else SQLITE_SEARCH
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("articles_search_insert", "articles_search_update", "articles_search_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS articles_fts")
    op.drop_table("article_tags")
    op.drop_table("articles")
