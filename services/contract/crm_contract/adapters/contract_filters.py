"""ListContracts' filter fields and sort keys (AIP-160 subset, AIP-132 order_by)."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from crm_contract.adapters.contract_tables import contracts
from crm_contract.domain.contracts import ContractStatus
from crm_shared.aip.filtering import FilterField, FilterSchema, invalid_filter
from crm_shared.aip.paging import SortKey

STATUS_FILTER_VALUES = {f"CONTRACT_STATUS_{s.name}": s.value for s in ContractStatus}
ORDERABLE = ("create_time", "update_time", "end_date")
DEFAULT_ORDER = "create_time desc"
# Contracts without an end date sort after every dated one (a keyset cannot compare NULLs).
NO_END_DATE = date(9999, 12, 31)

_COMPARE = {
    "=": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
}


def _calendar_date(column: sa.ColumnElement) -> FilterField:
    def convert(value: str, quoted: bool) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise invalid_filter(f'{value!r} is not a calendar date like "2026-03-31"') from None

    return FilterField.custom(" ".join(_COMPARE), lambda op, v: _COMPARE[op](column, v), convert)


def _resource(prefix: str, column: sa.ColumnElement) -> FilterField:
    """A reference stored as its resource name, accepted with or without the collection prefix."""

    def convert(value: str, quoted: bool) -> str:
        return value if value.startswith(prefix) else f"{prefix}{value}"

    return FilterField.custom("= !=", lambda op, v: _COMPARE[op](column, v), convert)


CONTRACT_FILTERS = FilterSchema(
    {
        "status": FilterField.enum(contracts.c.status, STATUS_FILTER_VALUES),
        "owner": FilterField.string(contracts.c.owner),
        "team": FilterField.string(contracts.c.team),
        "customer": _resource("customers/", contracts.c.customer),
        "opportunity": _resource("opportunities/", contracts.c.opportunity),
        "number": FilterField.string(contracts.c.number),
        "contract_type": FilterField.string(contracts.c.contract_type),
        "currency_code": FilterField.string(contracts.c.currency),
        "start_date": _calendar_date(contracts.c.start_date),
        "end_date": _calendar_date(contracts.c.end_date),
        "create_time": FilterField.timestamp(contracts.c.create_time),
        "update_time": FilterField.timestamp(contracts.c.update_time),
    }
)

_SORT_COLUMNS: dict[str, sa.ColumnElement] = {
    "create_time": contracts.c.create_time,
    "update_time": contracts.c.update_time,
    "end_date": sa.func.coalesce(contracts.c.end_date, NO_END_DATE),
}


def sort_keys(fields: tuple[tuple[str, bool], ...]) -> list[SortKey]:
    keys = [SortKey(_SORT_COLUMNS[name], descending) for name, descending in fields]
    return [*keys, SortKey(contracts.c.id, fields[-1][1] if fields else False)]


def sort_values(contract, fields: tuple[tuple[str, bool], ...]) -> list:
    """The keyset of one contract in the order `sort_keys` describes (for the next page token)."""
    values = []
    for name, _descending in fields:
        value = getattr(contract, name)
        values.append(NO_END_DATE if name == "end_date" and value is None else value)
    return [*values, contract.id]
