"""The four kinds of people (and one machine) using the CRM, as Locust users.

Weights are the mix of a mid-size sales and service organisation: ten reps for six agents, a
sales and a support manager, one integration. Think times are between two clicks of a person
at work (a rep reads a 360 view before logging a call), not a benchmark loop. Every persona acts
only on records its token may see: the seed gives each identity its own customers, deal, team
queue; anything else would be NOT_FOUND and count as an error.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from locust import between, task

from crm.customer.v1 import behavior_events_pb2 as behavior_pb
from crm.customer.v1 import behavior_service_pb2  # noqa: F401 - registers BehaviorService for call()
from crm.customer.v1 import customer_data_service_pb2 as data_pb
from crm.customer.v1 import customer_service_pb2 as customer_pb
from crm.customer.v1 import follow_up_service_pb2 as follow_up_pb
from crm.reporting.v1 import agenda_service_pb2 as agenda_pb
from crm.reporting.v1 import common_pb2 as report_common_pb
from crm.reporting.v1 import customer_insight_service_pb2 as insight_pb
from crm.reporting.v1 import finance_report_service_pb2 as finance_pb
from crm.reporting.v1 import sales_report_service_pb2 as sales_report_pb
from crm.reporting.v1 import service_report_service_pb2 as service_report_pb
from crm.sales.v1 import forecast_service_pb2 as forecast_pb
from crm.sales.v1 import opportunity_service_pb2 as opportunity_pb
from crm.servicedesk.v1 import common_pb2 as desk_common_pb
from crm.servicedesk.v1 import knowledge_service_pb2 as knowledge_pb
from crm.servicedesk.v1 import ticket_service_pb2 as ticket_pb
from crm_load import seedfile
from crm_load.grpc_user import GrpcUser
from crm_load.mix import INDUSTRIES, SEARCH_TAGS, WEIGHTS
from crm_load.seedfile import Identity

CUSTOMERS = "crm.customer.v1.CustomerService"
FOLLOW_UPS = "crm.customer.v1.FollowUpService"
BEHAVIOR = "crm.customer.v1.BehaviorService"
CUSTOMER_DATA = "crm.customer.v1.CustomerDataService"
OPPORTUNITIES = "crm.sales.v1.OpportunityService"
FORECASTS = "crm.sales.v1.ForecastService"
RECEIVABLES = "crm.contract.v1.ReceivableService"
TICKETS = "crm.servicedesk.v1.TicketService"
KNOWLEDGE = "crm.servicedesk.v1.KnowledgeService"
INSIGHTS = "crm.reporting.v1.CustomerInsightService"
AGENDA = "crm.reporting.v1.AgendaService"
SALES_REPORTS = "crm.reporting.v1.SalesReportService"
FINANCE_REPORTS = "crm.reporting.v1.FinanceReportService"
SERVICE_REPORTS = "crm.reporting.v1.ServiceReportService"

# A deal moves forward through the open stages and, when a customer hesitates, back again.
STAGE_CYCLE = ("qualification", "needs-analysis", "proposal", "negotiation")
FOLLOW_UP_NOTES = (
    "Called about the renewal; asked for a revised quote by Friday.",
    "Visited the plant, met the purchasing lead; trial of two units agreed.",
    "Sent the product sheet and the reference case.",
)


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _this_year() -> report_common_pb.Period:
    now = datetime.now(UTC)
    start = datetime(now.year, 1, 1, tzinfo=UTC)
    return report_common_pb.Period(
        start_time=_timestamp(start), end_time=_timestamp(start.replace(year=now.year + 1))
    )


class SalesRep(GrpcUser):
    """Searches their customers, opens a 360 view, logs follow-ups, moves their deal on."""

    weight = WEIGHTS["SalesRep"]
    wait_time = between(4, 12)
    role = "sales_rep"
    pool = "reps"

    def customer(self) -> str:
        return random.choice(self.profile["customers"])

    @task(4)
    def search_customers(self) -> None:
        if random.random() < 0.5:
            query = f'industry = "{random.choice(INDUSTRIES)}"'
        else:
            query = f'tags:"{random.choice(SEARCH_TAGS)}"'
        self.call(CUSTOMERS, "ListCustomers", customer_pb.ListCustomersRequest(page_size=20, filter=query))

    @task(3)
    def open_customer_360(self) -> None:
        """The customer page: profile, the 360 read model, recent follow-ups, open deals."""
        name = self.customer()
        self.call(CUSTOMERS, "GetCustomer", customer_pb.GetCustomerRequest(name=name))
        self.call(
            INSIGHTS, "GetCustomer360", insight_pb.GetCustomer360Request(customer=name, timeline_limit=20)
        )
        self.call(FOLLOW_UPS, "ListFollowUps", follow_up_pb.ListFollowUpsRequest(parent=name, page_size=10))
        self.call(
            OPPORTUNITIES,
            "ListOpportunities",
            opportunity_pb.ListOpportunitiesRequest(page_size=10, filter=f'customer = "{name}"'),
        )

    @task(2)
    def log_follow_up(self) -> None:
        now = datetime.now(UTC)
        follow_up = follow_up_pb.FollowUp(
            type=random.choice((follow_up_pb.FOLLOW_UP_TYPE_CALL, follow_up_pb.FOLLOW_UP_TYPE_VISIT)),
            content=random.choice(FOLLOW_UP_NOTES),
            follow_up_time=_timestamp(now),
            next_follow_up_time=_timestamp(now + timedelta(days=3)),
        )
        self.call(
            FOLLOW_UPS,
            "CreateFollowUp",
            follow_up_pb.CreateFollowUpRequest(
                parent=self.customer(), follow_up=follow_up, request_id=str(uuid.uuid4())
            ),
        )

    @task(1)
    def move_opportunity(self) -> None:
        """Open the deal, then move it one stage on (the seed gives each rep a deal of their own)."""
        name = self.profile["opportunity"]
        deal = self.call(OPPORTUNITIES, "GetOpportunity", opportunity_pb.GetOpportunityRequest(name=name))
        if deal is None:
            return
        current = deal.stage.rsplit("/", 1)[-1]
        position = STAGE_CYCLE.index(current) if current in STAGE_CYCLE else 0
        following = STAGE_CYCLE[(position + 1) % len(STAGE_CYCLE)]
        self.call(
            OPPORTUNITIES,
            "MoveOpportunityStage",
            opportunity_pb.MoveOpportunityStageRequest(
                name=name, stage=f"{deal.pipeline}/stages/{following}", etag=deal.etag
            ),
        )


class SupportAgent(GrpcUser):
    """Works the team queue: lists it, opens tickets, replies, logs phone tickets, searches the KB."""

    weight = WEIGHTS["SupportAgent"]
    wait_time = between(3, 9)
    role = "support_agent"
    pool = "agents"

    def choose_identity(self) -> Identity:
        identity = super().choose_identity()
        self.tickets = list(self.seed["tickets"][identity.team])
        return identity

    @task(4)
    def list_my_queue(self) -> None:
        status = random.choice(("TICKET_STATUS_NEW", "TICKET_STATUS_OPEN"))
        self.call(
            TICKETS,
            "ListTickets",
            ticket_pb.ListTicketsRequest(page_size=25, filter=f"status = {status}", order_by="priority desc"),
        )

    @task(3)
    def open_ticket(self) -> None:
        name = random.choice(self.tickets)
        self.call(TICKETS, "GetTicket", ticket_pb.GetTicketRequest(name=name))
        self.call(
            TICKETS, "ListTicketComments", ticket_pb.ListTicketCommentsRequest(parent=name, page_size=20)
        )

    @task(2)
    def public_reply(self) -> None:
        comment = ticket_pb.TicketComment(
            body="Thanks for the details, we are on it; next update within the hour."
        )
        self.call(
            TICKETS,
            "AddTicketComment",
            ticket_pb.AddTicketCommentRequest(
                parent=random.choice(self.tickets), comment=comment, request_id=str(uuid.uuid4())
            ),
        )

    @task(1)
    def create_phone_ticket(self) -> None:
        ticket = ticket_pb.Ticket(
            subject="Customer called: delivery delayed",
            description="Order shipped late; customer asks for a new delivery date.",
            type=desk_common_pb.TICKET_TYPE_INQUIRY,
            channel=desk_common_pb.TICKET_CHANNEL_PHONE,
            priority=desk_common_pb.TICKET_PRIORITY_NORMAL,
            customer=random.choice(self.seed["customers"]),
            team=self.identity.team,
        )
        created = self.call(
            TICKETS,
            "CreateTicket",
            ticket_pb.CreateTicketRequest(ticket=ticket, request_id=str(uuid.uuid4())),
        )
        if created is not None:
            self.tickets.append(created.name)

    @task(2)
    def search_knowledge_base(self) -> None:
        query = random.choice(self.seed["search_terms"])
        self.call(KNOWLEDGE, "SearchArticles", knowledge_pb.SearchArticlesRequest(query=query, page_size=10))


class SalesManager(GrpcUser):
    """Reviews the team's funnel, forecast, performance and receivables, and their agenda."""

    weight = WEIGHTS["SalesManager"]
    wait_time = between(10, 25)
    role = "sales_manager"
    pool = "sales_managers"

    def query(self) -> report_common_pb.ReportQuery:
        return report_common_pb.ReportQuery(period=_this_year(), team=self.identity.team)

    @task(2)
    def funnel(self) -> None:
        self.call(
            SALES_REPORTS, "GetFunnelReport", sales_report_pb.GetFunnelReportRequest(query=self.query())
        )

    @task(2)
    def forecast(self) -> None:
        period = _this_year()
        self.call(
            FORECASTS,
            "GetForecast",
            forecast_pb.GetForecastRequest(
                team=self.identity.team,
                start_time=period.start_time,
                end_time=period.end_time,
                currency_code="CNY",
            ),
        )

    @task(1)
    def performance(self) -> None:
        self.call(
            SALES_REPORTS,
            "GetSalesPerformanceReport",
            sales_report_pb.GetSalesPerformanceReportRequest(
                query=self.query(), group_by=sales_report_pb.PERFORMANCE_GROUPING_OWNER
            ),
        )

    @task(1)
    def receivables(self) -> None:
        self.call(
            FINANCE_REPORTS,
            "GetReceivablesReport",
            finance_pb.GetReceivablesReportRequest(
                query=self.query(), group_by=finance_pb.RECEIVABLES_GROUPING_OWNER
            ),
        )

    @task(2)
    def agenda(self) -> None:
        self.call(AGENDA, "GetAgenda", agenda_pb.GetAgendaRequest())


class SupportManager(GrpcUser):
    """Watches SLA and CSAT in the service report, the urgent tickets, and their agenda."""

    weight = WEIGHTS["SupportManager"]
    wait_time = between(10, 25)
    role = "support_manager"
    pool = "support_managers"

    @task(2)
    def service_report(self) -> None:
        self.call(
            SERVICE_REPORTS,
            "GetServiceReport",
            service_report_pb.GetServiceReportRequest(
                query=report_common_pb.ReportQuery(period=_this_year()),
                group_by=service_report_pb.SERVICE_GROUPING_AGENT,
            ),
        )

    @task(1)
    def urgent_tickets(self) -> None:
        self.call(
            TICKETS,
            "ListTickets",
            ticket_pb.ListTicketsRequest(
                page_size=50, filter="priority = TICKET_PRIORITY_URGENT", order_by="create_time desc"
            ),
        )

    @task(2)
    def agenda(self) -> None:
        self.call(AGENDA, "GetAgenda", agenda_pb.GetAgendaRequest())


class Integration(GrpcUser):
    """The ERP sync and the web shop: small CSV batches into the import, behaviour events in batches."""

    weight = WEIGHTS["Integration"]
    wait_time = between(5, 15)
    role = "integration"
    pool = "integrations"
    import_rows = 20
    events_per_batch = 50

    def choose_identity(self) -> Identity:
        identity = super().choose_identity()
        # Imports need a customer-creating role: the ERP sync runs as a sales manager of its team.
        self.importer = Identity(self.profile["importer"], "sales_manager", identity.team)
        return identity

    def on_start(self) -> None:
        self.import_metadata = (("authorization", f"Bearer {seedfile.minter().token(self.importer)}"),)
        super().on_start()

    @task(1)
    def bulk_import(self) -> None:
        batch = uuid.uuid4().hex[:12]
        rows = [
            data_pb.ImportRow(
                row_number=n,
                values={
                    "display_name": f"ERP account {batch}-{n}",
                    "email_addresses": f"erp-{batch}-{n}@customers.example",
                    "industry": random.choice(INDUSTRIES),
                    "tags": "erp;imported",
                },
            )
            for n in range(1, self.import_rows + 1)
        ]
        header = data_pb.ImportJobHeader(
            job_id=str(uuid.uuid4()), mode=data_pb.IMPORT_MODE_CREATE_ONLY, source="erp-sync", batch_size=100
        )
        requests = [
            data_pb.ImportCustomersRequest(header=header),
            data_pb.ImportCustomersRequest(rows=data_pb.ImportRows(rows=rows)),
        ]
        self.call(CUSTOMER_DATA, "ImportCustomers", requests=requests, metadata=self.import_metadata)

    @task(3)
    def behaviour_events(self) -> None:
        now = datetime.now(UTC)
        kinds = (
            behavior_pb.BEHAVIOR_EVENT_TYPE_PAGE_VIEW,
            behavior_pb.BEHAVIOR_EVENT_TYPE_PRODUCT_VIEW,
            behavior_pb.BEHAVIOR_EVENT_TYPE_EMAIL_OPEN,
        )
        events = []
        for n in range(self.events_per_batch):
            event = behavior_pb.BehaviorEvent(
                event_id=str(uuid.uuid4()),
                source="web-shop",
                type=random.choice(kinds),
                occur_time=_timestamp(now - timedelta(seconds=n)),
                customer=random.choice(self.seed["customers"]),
            )
            event.properties.url = f"https://shop.example/p/{random.randrange(1000)}"
            events.append(event)
        self.call(BEHAVIOR, "IngestBehaviorEvents", requests=events)


PERSONAS = (SalesRep, SupportAgent, SalesManager, SupportManager, Integration)
