"""What ListOpportunities can filter and sort on, as SQL over the opportunities table."""

from __future__ import annotations

import sqlalchemy as sa

from crm_sales.adapters.opportunity_published import CATEGORY_FILTER_VALUES, STATE_FILTER_VALUES
from crm_sales.adapters.opportunity_tables import opportunities
from crm_sales.domain.opportunities import resource_id, stage_ids
from crm_shared.aip.filtering import FilterField, FilterSchema, invalid_filter
from crm_shared.aip.paging import SortKey

# API order_by field -> column.
ORDERABLE = {
    "create_time": opportunities.c.create_time,
    "update_time": opportunities.c.update_time,
    "expected_close_time": opportunities.c.expected_close_time,
    "amount": opportunities.c.amount_minor,
}
DEFAULT_ORDER = "create_time desc"


def sort_keys(fields: tuple[tuple[str, bool], ...]) -> list[SortKey]:
    """The requested order plus the id as the final tie-breaker (keyset pagination needs a unique key)."""
    keys = [SortKey(ORDERABLE[name], descending) for name, descending in fields]
    last_descending = fields[-1][1] if fields else False
    return [*keys, SortKey(opportunities.c.id, last_descending)]


def _integer(value: str, quoted: bool) -> int:
    try:
        return int(value)
    except ValueError:
        raise invalid_filter(f"amount: {value!r} is not an integer amount in minor units") from None


def _compare(column, op: str, value):
    return {
        "=": column == value,
        "!=": column != value,
        "<": column < value,
        "<=": column <= value,
        ">": column > value,
        ">=": column >= value,
    }[op]


def _reference(collection: str):
    def convert(value: str, quoted: bool) -> str:
        found = resource_id(value, collection)
        if found is None:
            raise invalid_filter(f"{value!r} is not a {collection}/{{id}} name")
        return found

    return convert


def _stage(value: str, quoted: bool) -> tuple[str, str]:
    ids = stage_ids(value)
    if ids is None:
        raise invalid_filter(f"{value!r} is not a pipelines/{{pipeline}}/stages/{{stage}} name")
    return ids


def _stage_sql(op: str, ids: tuple[str, str]) -> sa.ColumnElement[bool]:
    match = sa.and_(opportunities.c.pipeline_id == ids[0], opportunities.c.stage_id == ids[1])
    return match if op == "=" else sa.not_(match)


def _column_eq(column):
    return lambda op, value: column == value if op == "=" else column != value


def opportunity_filter_schema() -> FilterSchema:
    c = opportunities.c
    return FilterSchema(
        {
            "owner": FilterField.string(c.owner),
            "team": FilterField.string(c.team),
            "currency_code": FilterField.string(c.currency_code),
            "customer": FilterField.custom("= !=", _column_eq(c.customer_id), _reference("customers")),
            "pipeline": FilterField.custom("= !=", _column_eq(c.pipeline_id), _reference("pipelines")),
            "stage": FilterField.custom("= !=", _stage_sql, _stage),
            "campaign": FilterField.string(c.campaign),
            "source_lead": FilterField.string(c.source_lead),
            "forecast_category": FilterField.enum(c.forecast_category, CATEGORY_FILTER_VALUES),
            "state": FilterField.enum(c.state, STATE_FILTER_VALUES),
            "amount": FilterField.custom(
                "= != < <= > >=", lambda op, v: _compare(c.amount_minor, op, v), _integer
            ),
            "expected_close_time": FilterField.timestamp(c.expected_close_time),
            "close_time": FilterField.timestamp(c.close_time),
            "create_time": FilterField.timestamp(c.create_time),
            "update_time": FilterField.timestamp(c.update_time),
        }
    )
