"""`--suite import` (SUITES names are module names; `import` cannot be written in an import
statement, so the suite lives in crm_bench/imports.py and this module re-exports it)."""

from crm_bench.imports import KEY, TITLE, measure

__all__ = ["KEY", "TITLE", "measure"]
