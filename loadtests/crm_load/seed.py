"""Seed a running stack with what the personas need, and write the seed file they read.

Sized for the largest user count you will run: one sales rep identity per SalesRep user (each
with its own customers and one open deal, so no two users move the same deal), agents spread
over support teams that each have a ticket queue, a sales and a support manager per team, a
published knowledge base, and integration accounts.

Idempotent-ish: every create carries a request id (or import job id) derived from --label, so
seeding the same stack twice with the same label returns the same records instead of new ones.
Fast: customers go in through the bulk import, the rest with many calls in flight (grpc.aio).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from crm_load import seedfile
from crm_load.mix import INDUSTRIES, SEARCH_TAGS, WEIGHTS
from crm_load.seedfile import Identity, TokenMinter

SALES_TEAMS = ("east", "west", "north", "south")
SUPPORT_TEAMS = ("support-east", "support-west", "support-north", "support-south")
CUSTOMERS_PER_REP = 3
TICKETS_PER_TEAM = 25
IN_FLIGHT = 16
ROWS_PER_JOB = 500
ROWS_PER_MESSAGE = 100
PROJECTION_TIMEOUT = 120.0
ARTICLES = (
    (
        "Charger shows error E4",
        "Hold the reset button of the charger for 10 seconds, then reconnect the battery.",
    ),
    (
        "Invoice address is wrong",
        "Update the billing address in the customer profile, then reissue the invoice.",
    ),
    ("Delivery date changed", "Open the order, choose a new delivery slot and notify the carrier by email."),
    (
        "Password reset for the portal",
        "Use the forgot password link; the reset email expires after one hour.",
    ),
    ("Forklift battery does not charge", "Check the charger fuse and the battery connector for corrosion."),
    (
        "Refund for a cancelled order",
        "Refunds go back to the original payment method within five working days.",
    ),
    (
        "Warranty claim for a broken unit",
        "Send a photo of the serial plate and the purchase invoice to open a claim.",
    ),
    (
        "Export customer list to CSV",
        "Use the export button in the customer list; filters apply to the export.",
    ),
)
SEARCH_TERMS = (
    "charger reset",
    "invoice address",
    "delivery",
    "password",
    "battery",
    "refund",
    "warranty",
    "export",
)


@dataclass(frozen=True)
class Plan:
    reps: int
    agents: int

    @classmethod
    def for_users(cls, users: int) -> Plan:
        total = sum(WEIGHTS.values())
        # One identity per user of the persona (+10 % for rounding in Locust's weighted spread).
        reps = math.ceil(users * WEIGHTS["SalesRep"] / total * 1.1) + 1
        agents = math.ceil(users * WEIGHTS["SupportAgent"] / total * 1.1) + 1
        return cls(reps=max(len(SALES_TEAMS), reps), agents=max(len(SUPPORT_TEAMS), agents))


def _id(label: str, *parts: Any) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "crm-load/" + "/".join(map(str, (label, *parts)))))


def _say(text: str) -> None:
    print(f"seed     | {text}", flush=True)


async def _bounded(calls: Iterable[Callable[[], Awaitable[Any]]], limit: int = IN_FLIGHT) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(call):
        async with gate:
            return await call()

    return await asyncio.gather(*(one(c) for c in calls))


class Seeder:
    def __init__(self, channel: grpc.aio.Channel, minter: TokenMinter, label: str) -> None:
        self.channel, self.minter, self.label = channel, minter, label
        self.admin = self.auth(Identity("load-admin", "admin", "east"))

    def auth(self, identity: Identity) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.minter.token(identity)}"),)

    # --- customers ---------------------------------------------------------------------------

    async def customers(self, reps: list[dict[str, Any]]) -> None:
        from crm.customer.v1 import customer_data_service_pb2 as pb
        from crm.customer.v1 import customer_data_service_pb2_grpc as pb_grpc

        stub = pb_grpc.CustomerDataServiceStub(self.channel)
        rows = []
        for r, rep in enumerate(reps):
            for c in range(CUSTOMERS_PER_REP):
                n = r * CUSTOMERS_PER_REP + c
                rows.append(
                    {
                        "display_name": f"{INDUSTRIES[n % len(INDUSTRIES)].title()} account {n}",
                        "email_addresses": f"buyer-{self.label}-{n}@customers.example",
                        "industry": INDUSTRIES[n % len(INDUSTRIES)],
                        "tags": SEARCH_TAGS[n % len(SEARCH_TAGS)],
                        "owner": rep["subject"],
                        "team": rep["team"],
                    }
                )
        names: dict[int, str] = {}
        for job, start in enumerate(range(0, len(rows), ROWS_PER_JOB)):
            chunk = rows[start : start + ROWS_PER_JOB]

            def requests(chunk=chunk, start=start, job=job):
                yield pb.ImportCustomersRequest(
                    header=pb.ImportJobHeader(
                        job_id=_id(self.label, "customers", len(rows), job),
                        mode=pb.IMPORT_MODE_CREATE_ONLY,
                        source="crm-load seed",
                        batch_size=ROWS_PER_JOB,
                    )
                )
                for offset in range(0, len(chunk), ROWS_PER_MESSAGE):
                    part = chunk[offset : offset + ROWS_PER_MESSAGE]
                    yield pb.ImportCustomersRequest(
                        rows=pb.ImportRows(
                            rows=[
                                pb.ImportRow(row_number=start + offset + i + 1, values=values)
                                for i, values in enumerate(part)
                            ]
                        )
                    )

            async for reply in stub.ImportCustomers(requests(), metadata=self.admin, timeout=300):
                for result in reply.results:
                    if not result.customer:
                        raise RuntimeError(f"import row {result.row_number} refused: {result.reason}")
                    names[result.row_number] = result.customer
            _say(f"customers {min(start + ROWS_PER_JOB, len(rows))}/{len(rows)}")
        for r, rep in enumerate(reps):
            first = r * CUSTOMERS_PER_REP + 1
            rep["customers"] = [names[first + c] for c in range(CUSTOMERS_PER_REP)]

    # --- opportunities -------------------------------------------------------------------------

    async def opportunities(self, reps: list[dict[str, Any]]) -> None:
        from google.protobuf.timestamp_pb2 import Timestamp

        from crm.common.v1 import money_pb2
        from crm.sales.v1 import opportunity_service_pb2 as pb
        from crm.sales.v1 import opportunity_service_pb2_grpc as pb_grpc

        stub = pb_grpc.OpportunityServiceStub(self.channel)
        close = Timestamp()
        close.FromDatetime(datetime.now(UTC) + timedelta(days=60))

        def create(n: int, rep: dict[str, Any]):
            async def call():
                deal = await stub.CreateOpportunity(
                    pb.CreateOpportunityRequest(
                        opportunity=pb.Opportunity(
                            customer=rep["customers"][0],
                            title=f"Fleet renewal {n}",
                            amount=money_pb2.Money(currency_code="CNY", amount_minor=5_000_000 + n * 1000),
                            expected_close_time=close,
                        ),
                        request_id=_id(self.label, "opportunity", rep["subject"]),
                    ),
                    # The rep creates their own deal: owner and team come from the token.
                    metadata=self.auth(Identity(rep["subject"], "sales_rep", rep["team"])),
                    timeout=30,
                )
                rep["opportunity"] = deal.name

            return call

        await _bounded(create(n, rep) for n, rep in enumerate(reps))
        _say(f"opportunities {len(reps)}")

    # --- servicedesk ---------------------------------------------------------------------------

    async def support_teams(self, agents: list[dict[str, Any]]) -> None:
        from crm.servicedesk.v1 import common_pb2 as common
        from crm.servicedesk.v1 import support_team_service_pb2 as pb
        from crm.servicedesk.v1 import support_team_service_pb2_grpc as pb_grpc

        stub = pb_grpc.SupportTeamServiceStub(self.channel)
        for team in SUPPORT_TEAMS:
            members = [a["subject"] for a in agents if a["team"] == team][:50]
            try:
                await stub.CreateSupportTeam(
                    pb.CreateSupportTeamRequest(
                        support_team_id=team,
                        support_team=pb.SupportTeam(
                            display_name=team.replace("-", " ").title(),
                            strategy=common.ASSIGNMENT_STRATEGY_MANUAL,
                            members=[pb.TeamMember(agent=m, available=True) for m in members],
                        ),
                    ),
                    metadata=self.admin,
                    timeout=30,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
        _say(f"support teams {len(SUPPORT_TEAMS)}")

    async def tickets(self, customers: list[str]) -> dict[str, list[str]]:
        from crm.servicedesk.v1 import common_pb2 as common
        from crm.servicedesk.v1 import ticket_service_pb2 as pb
        from crm.servicedesk.v1 import ticket_service_pb2_grpc as pb_grpc

        stub = pb_grpc.TicketServiceStub(self.channel)
        priorities = (common.TICKET_PRIORITY_NORMAL,) * 3 + (
            common.TICKET_PRIORITY_HIGH,
            common.TICKET_PRIORITY_URGENT,
        )
        queues: dict[str, list[str]] = {team: [] for team in SUPPORT_TEAMS}

        def create(team: str, n: int):
            async def call():
                ticket = await stub.CreateTicket(
                    pb.CreateTicketRequest(
                        ticket=pb.Ticket(
                            subject=f"{ARTICLES[n % len(ARTICLES)][0]} (#{n})",
                            description="Reported by the customer; details in the first comment.",
                            type=common.TICKET_TYPE_INCIDENT,
                            channel=common.TICKET_CHANNEL_EMAIL,
                            priority=priorities[n % len(priorities)],
                            customer=customers[(n * 7) % len(customers)],
                            team=team,
                        ),
                        request_id=_id(self.label, "ticket", team, n),
                    ),
                    metadata=self.admin,
                    timeout=30,
                )
                queues[team].append(ticket.name)

            return call

        await _bounded(create(team, n) for team in SUPPORT_TEAMS for n in range(TICKETS_PER_TEAM))
        _say(f"tickets {TICKETS_PER_TEAM * len(SUPPORT_TEAMS)}")
        return queues

    async def articles(self) -> list[str]:
        from crm.servicedesk.v1 import common_pb2 as common
        from crm.servicedesk.v1 import knowledge_service_pb2 as pb
        from crm.servicedesk.v1 import knowledge_service_pb2_grpc as pb_grpc

        stub = pb_grpc.KnowledgeServiceStub(self.channel)
        names = []
        for n, (title, body) in enumerate(ARTICLES):
            article = await stub.CreateArticle(
                pb.CreateArticleRequest(
                    article=pb.Article(title=title, body=body, category="how-to", tags=["faq"]),
                    request_id=_id(self.label, "article", n),
                ),
                metadata=self.admin,
                timeout=30,
            )
            if article.status == common.ARTICLE_STATUS_DRAFT:
                await stub.SubmitArticle(pb.SubmitArticleRequest(name=article.name), metadata=self.admin)
                article = await stub.GetArticle(pb.GetArticleRequest(name=article.name), metadata=self.admin)
            if article.status == common.ARTICLE_STATUS_IN_REVIEW:
                await stub.PublishArticle(pb.PublishArticleRequest(name=article.name), metadata=self.admin)
            names.append(article.name)
        _say(f"articles {len(names)} published")
        return names

    # --- reporting -----------------------------------------------------------------------------

    async def wait_for_projection(self, customer: str) -> float:
        """Until the reporting read model has the last seeded customer: the personas open 360 views."""
        from crm.reporting.v1 import customer_insight_service_pb2 as pb
        from crm.reporting.v1 import customer_insight_service_pb2_grpc as pb_grpc

        stub = pb_grpc.CustomerInsightServiceStub(self.channel)
        started = time.monotonic()
        while True:
            try:
                await stub.GetCustomer360(pb.GetCustomer360Request(customer=customer), metadata=self.admin)
                return time.monotonic() - started
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() - started > PROJECTION_TIMEOUT:
                    raise
            await asyncio.sleep(0.5)


async def seed(
    *,
    target: str,
    direct: dict[str, str],
    keys_dir: Path,
    issuer: str,
    audience: str,
    users: int,
    out: Path,
    label: str = "load",
) -> dict[str, Any]:
    plan = Plan.for_users(users)
    _say(f"for up to {users} users: {plan.reps} reps, {plan.agents} agents, target {target}")
    started = time.monotonic()
    minter = TokenMinter(keys_dir, issuer, audience)
    reps = [{"subject": f"rep-{n:04d}", "team": SALES_TEAMS[n % len(SALES_TEAMS)]} for n in range(plan.reps)]
    agents = [
        {"subject": f"agent-{n:04d}", "team": SUPPORT_TEAMS[n % len(SUPPORT_TEAMS)]}
        for n in range(plan.agents)
    ]
    async with grpc.aio.insecure_channel(target) as channel:
        seeder = Seeder(channel, minter, label)
        await seeder.customers(reps)
        customers = [name for rep in reps for name in rep["customers"]]
        await seeder.opportunities(reps)
        await seeder.support_teams(agents)
        tickets = await seeder.tickets(customers)
        articles = await seeder.articles()
        lag = await seeder.wait_for_projection(customers[-1])
        _say(f"reporting has the last customer {lag:.1f} s after the import finished")
    data = {
        "label": label,
        "users": users,
        "gateway": target,
        "direct": direct,
        "keys_dir": str(keys_dir),
        "issuer": issuer,
        "audience": audience,
        "reps": reps,
        "agents": agents,
        "sales_managers": [{"subject": f"manager-{team}", "team": team} for team in SALES_TEAMS],
        "support_managers": [{"subject": f"lead-{team}", "team": team} for team in SUPPORT_TEAMS],
        "integrations": [
            {"subject": "web-shop", "importer": "erp-sync", "team": "east"},
            {"subject": "mailer", "importer": "erp-sync-west", "team": "west"},
        ],
        "customers": customers,
        "tickets": tickets,
        "articles": articles,
        "search_terms": list(SEARCH_TERMS),
    }
    seedfile.write(out, data)
    _say(f"done in {time.monotonic() - started:.0f} s; seed file {out}")
    return data
