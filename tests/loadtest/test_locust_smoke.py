"""The real locustfile, headless, against the real stack: every persona's RPCs answer without error.

Seeds a small data set through the gateway, then runs 19 Locust users (one full turn of the
persona weights 10/6/1/1/1, so every persona runs) for 12 s with CRM_LOAD_TOUR=1: each user
runs each of its tasks once before the weighted mix. A wrong RPC name, role, scope or seed shows
up here as a missing row or a failure.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from crm_load import env
from crm_load.locust_run import LoadSpec, run
from crm_load.seed import seed
from crm_load.stack import Stack

USERS = 19
SECONDS = 12

EXPECTED_RPCS = {
    # SalesRep
    "CustomerService/ListCustomers",
    "CustomerService/GetCustomer",
    "CustomerInsightService/GetCustomer360",
    "FollowUpService/ListFollowUps",
    "FollowUpService/CreateFollowUp",
    "OpportunityService/ListOpportunities",
    "OpportunityService/GetOpportunity",
    "OpportunityService/MoveOpportunityStage",
    # SupportAgent
    "TicketService/ListTickets",
    "TicketService/GetTicket",
    "TicketService/ListTicketComments",
    "TicketService/AddTicketComment",
    "TicketService/CreateTicket",
    "KnowledgeService/SearchArticles",
    # SalesManager
    "SalesReportService/GetFunnelReport",
    "SalesReportService/GetSalesPerformanceReport",
    "ForecastService/GetForecast",
    "FinanceReportService/GetReceivablesReport",
    "AgendaService/GetAgenda",
    # SupportManager
    "ServiceReportService/GetServiceReport",
    # Integration
    "CustomerDataService/ImportCustomers",
    "BehaviorService/IngestBehaviorEvents",
}
PERSONAS = {"SalesRep", "SupportAgent", "SalesManager", "SupportManager", "Integration"}


@pytest.mark.timeout(180)
def test_every_persona_runs_its_rpcs_without_errors(e2e_stack, tmp_path: Path, monkeypatch) -> None:
    catalog = e2e_stack.stack.catalog
    stack = Stack(
        gateway=e2e_stack.gateway,
        direct={name: f"127.0.0.1:{s.dev_port}" for s in catalog.services for name in s.grpc_services},
        keys_dir=e2e_stack.stack.keys.directory,
        issuer=catalog.jwt_issuer,
        audience=catalog.jwt_audience,
        reporting_metrics=f"127.0.0.1:{catalog.service('reporting').metrics_port}",
    )
    seed_file = tmp_path / "seed.json"
    asyncio.run(
        seed(
            target=stack.gateway,
            direct=stack.direct,
            keys_dir=stack.keys_dir,
            issuer=stack.issuer,
            audience=stack.audience,
            users=USERS,
            out=seed_file,
            label=f"smoke-{uuid.uuid4().hex[:8]}",
        )
    )
    monkeypatch.setenv(env.TOUR, "1")

    result = run(LoadSpec(USERS, USERS, SECONDS, tmp_path / "locust"), stack, seed_file)

    failures = "\n".join(f"{f.name}: {f.error} x{f.occurrences}" for f in result.failures)
    assert result.total.failures == 0, f"calls failed:\n{failures}"
    called = {row.name for row in result.rpcs if row.requests > 0}
    assert called >= EXPECTED_RPCS, f"never called: {sorted(EXPECTED_RPCS - called)}"
    assert {p.name for p in result.personas if p.requests > 0} == PERSONAS
    assert (tmp_path / "locust" / "crm.html").stat().st_size > 0
    # The report's event-to-report lag comes from the reporting service's own histogram: the
    # follow-ups, tickets and imports of the run reached it.
    assert result.projection_lag is not None and result.projection_lag.events > 0
