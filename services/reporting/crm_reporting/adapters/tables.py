"""The reporting service's database schema (SQLAlchemy Core tables); areas add their own modules."""

from __future__ import annotations

import sqlalchemy as sa

from crm_shared.db.tables import platform_tables

metadata = sa.MetaData()
platform = platform_tables(metadata)
