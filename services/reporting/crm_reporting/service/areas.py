"""The areas that project events into read models, in the order their handlers run.

Each module has `register(registry, app)`; see crm_reporting.projection_registry.
"""

from __future__ import annotations

from crm_reporting.service import (
    agenda,
    analytics,
    contract_projection,
    customer_projection,
    sales_projection,
    service_projection,
)

REGISTRARS: list = [
    customer_projection.register,
    sales_projection.register,
    contract_projection.register,
    service_projection.register,
    agenda.register,
    analytics.register,
]
