"""SlaService over gRPC (SQLite and PostgreSQL): calendars, policies, AddBusinessTime, and the SLA
a ticket shows in GetTicket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.type import date_pb2, dayofweek_pb2

from crm.servicedesk.v1 import common_pb2 as cpb
from crm.servicedesk.v1 import sla_service_pb2 as pb
from crm.servicedesk.v1 import sla_service_pb2_grpc as pb_grpc
from crm.servicedesk.v1 import ticket_service_pb2 as tpb
from crm.servicedesk.v1 import ticket_service_pb2_grpc as tpb_grpc
from crm_shared.grpc.status import error_details

pytestmark = pytest.mark.asyncio(loop_scope="session")

WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY")
EVERY_DAY = (*WEEKDAYS, "SATURDAY", "SUNDAY")


@pytest.fixture
def sla(channel):
    return pb_grpc.SlaServiceStub(channel)


@pytest.fixture
def tickets(channel):
    return tpb_grpc.TicketServiceStub(channel)


@pytest.fixture
def admin(as_user):
    return as_user("admin", "ada", team="support-east")


async def expect_error(call, code: grpc.StatusCode):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = error_details(caught.value)
    assert details.code == code, f"{details.code} {details.message}"
    return details


def working_hours(days, start="09:00", end="18:00") -> list[pb.WorkingHours]:
    return [pb.WorkingHours(day=dayofweek_pb2.DayOfWeek.Value(day), start=start, end=end) for day in days]


def duration(**kwargs) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromTimedelta(timedelta(**kwargs))
    return value


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromDatetime(moment)
    return value


async def berlin_office(sla, meta, **fields) -> pb.BusinessCalendar:
    calendar = pb.BusinessCalendar(
        display_name="Berlin office",
        time_zone="Europe/Berlin",
        working_hours=working_hours(WEEKDAYS),
        holidays=[date_pb2.Date(year=2026, month=12, day=25)],
    )
    calendar.MergeFrom(pb.BusinessCalendar(**fields))
    return await sla.CreateBusinessCalendar(
        pb.CreateBusinessCalendarRequest(business_calendar=calendar), metadata=meta
    )


async def test_calendar_crud_validation_and_add_business_time(sla, admin):
    created = await berlin_office(sla, admin)
    assert created.name.startswith("businessCalendars/") and created.etag
    monday = created.working_hours[0]
    assert (monday.day, monday.start, monday.end) == (dayofweek_pb2.MONDAY, "09:00", "18:00")
    assert (
        await sla.GetBusinessCalendar(pb.GetBusinessCalendarRequest(name=created.name), metadata=admin)
        == created
    )

    # Friday 17:00 Berlin + 2 business hours = Monday 10:00 Berlin (09:00 UTC in winter).
    preview = await sla.AddBusinessTime(
        pb.AddBusinessTimeRequest(
            calendar=created.name,
            start_time=ts(datetime(2026, 1, 9, 16, 0, tzinfo=UTC)),
            duration=duration(hours=2),
        ),
        metadata=admin,
    )
    assert preview.due_time.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 12, 9, 0, tzinfo=UTC)

    for bad, field in (
        (pb.BusinessCalendar(time_zone="Mars/Olympus", working_hours=working_hours(WEEKDAYS)), "time_zone"),
        (pb.BusinessCalendar(time_zone="Europe/Berlin"), "working_hours"),
        (
            pb.BusinessCalendar(
                time_zone="Europe/Berlin",
                working_hours=working_hours(["MONDAY"], "09:00", "13:00")
                + working_hours(["MONDAY"], "12:00", "18:00"),
            ),
            "working_hours",
        ),
    ):
        details = await expect_error(
            sla.CreateBusinessCalendar(
                pb.CreateBusinessCalendarRequest(business_calendar=bad), metadata=admin
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert f"business_calendar.{field}" in details.field_violations

    updated = await sla.UpdateBusinessCalendar(
        pb.UpdateBusinessCalendarRequest(
            business_calendar=pb.BusinessCalendar(
                name=created.name, time_zone="Asia/Shanghai", etag=created.etag
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["time_zone"]),
        ),
        metadata=admin,
    )
    assert (updated.time_zone, updated.display_name, len(updated.working_hours)) == (
        "Asia/Shanghai",
        "Berlin office",
        5,
    )
    stale = await expect_error(
        sla.UpdateBusinessCalendar(
            pb.UpdateBusinessCalendarRequest(
                business_calendar=pb.BusinessCalendar(name=created.name, display_name="x", etag=created.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            ),
            metadata=admin,
        ),
        grpc.StatusCode.ABORTED,
    )
    assert stale.reason == "STALE_ETAG"

    second = await berlin_office(sla, admin, display_name="second")
    first_page = await sla.ListBusinessCalendars(pb.ListBusinessCalendarsRequest(page_size=1), metadata=admin)
    assert [c.name for c in first_page.business_calendars] == [created.name] and first_page.next_page_token
    rest = await sla.ListBusinessCalendars(
        pb.ListBusinessCalendarsRequest(page_size=1, page_token=first_page.next_page_token), metadata=admin
    )
    assert [c.name for c in rest.business_calendars] == [second.name] and not rest.next_page_token

    await sla.DeleteBusinessCalendar(pb.DeleteBusinessCalendarRequest(name=second.name), metadata=admin)
    await expect_error(
        sla.GetBusinessCalendar(pb.GetBusinessCalendarRequest(name=second.name), metadata=admin),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_policy_crud_validation_and_calendar_in_use(sla, admin, as_user):
    calendar = await berlin_office(sla, admin)
    missing = "businessCalendars/00000000-0000-0000-0000-000000000000"
    details = await expect_error(
        sla.CreateSlaPolicy(
            pb.CreateSlaPolicyRequest(
                sla_policy=pb.SlaPolicy(
                    calendar=missing, targets=pb.SlaTargets(first_response=duration(seconds=0)), active=True
                )
            ),
            metadata=admin,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert {"sla_policy.calendar", "sla_policy.targets.first_response"} <= set(details.field_violations)

    policy = await sla.CreateSlaPolicy(
        pb.CreateSlaPolicyRequest(
            sla_policy=pb.SlaPolicy(
                display_name="VIP urgent",
                priority=10,
                active=True,
                calendar=calendar.name,
                condition=pb.SlaCondition(priorities=[cpb.TICKET_PRIORITY_URGENT], customer_tiers=["vip"]),
                targets=pb.SlaTargets(first_response=duration(hours=1), resolution=duration(hours=8)),
                escalations=[
                    pb.EscalationAction(
                        metric=cpb.SLA_METRIC_RESOLUTION,
                        kind=cpb.ESCALATION_KIND_NOTIFY,
                        notify=["role:support_manager"],
                    )
                ],
            )
        ),
        metadata=admin,
    )
    assert policy.warning_percent == 80  # the default
    assert policy.targets.resolution.ToTimedelta() == timedelta(hours=8) and not policy.targets.HasField(
        "next_response"
    )
    assert await sla.GetSlaPolicy(pb.GetSlaPolicyRequest(name=policy.name), metadata=admin) == policy

    inactive = await sla.CreateSlaPolicy(
        pb.CreateSlaPolicyRequest(
            sla_policy=pb.SlaPolicy(
                calendar=calendar.name, targets=pb.SlaTargets(resolution=duration(hours=40))
            )
        ),
        metadata=admin,
    )
    active_only = await sla.ListSlaPolicies(pb.ListSlaPoliciesRequest(filter="active = true"), metadata=admin)
    assert [p.name for p in active_only.sla_policies] == [policy.name]
    by_calendar = await sla.ListSlaPolicies(
        pb.ListSlaPoliciesRequest(filter=f'calendar = "{calendar.name}"'), metadata=admin
    )
    assert [p.name for p in by_calendar.sla_policies] == [inactive.name, policy.name]  # priority 0 first

    updated = await sla.UpdateSlaPolicy(
        pb.UpdateSlaPolicyRequest(
            sla_policy=pb.SlaPolicy(name=policy.name, warning_percent=50, etag=policy.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["warning_percent"]),
        ),
        metadata=admin,
    )
    assert (updated.warning_percent, updated.display_name) == (50, "VIP urgent")

    agent = as_user("support_agent", "sam", team="support-east")
    await expect_error(
        sla.CreateSlaPolicy(
            pb.CreateSlaPolicyRequest(sla_policy=pb.SlaPolicy(calendar=calendar.name)), metadata=agent
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert len((await sla.ListSlaPolicies(pb.ListSlaPoliciesRequest(), metadata=agent)).sla_policies) == 2

    in_use = await expect_error(
        sla.DeleteBusinessCalendar(pb.DeleteBusinessCalendarRequest(name=calendar.name), metadata=admin),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert in_use.reason == "BUSINESS_CALENDAR_IN_USE"
    for name in (policy.name, inactive.name):
        await sla.DeleteSlaPolicy(pb.DeleteSlaPolicyRequest(name=name), metadata=admin)
    await sla.DeleteBusinessCalendar(pb.DeleteBusinessCalendarRequest(name=calendar.name), metadata=admin)


async def test_get_ticket_shows_due_times_remaining_and_pauses(sla, tickets, admin):
    # Round the clock in UTC: business time is wall time, so due times are exact.
    calendar = await sla.CreateBusinessCalendar(
        pb.CreateBusinessCalendarRequest(
            business_calendar=pb.BusinessCalendar(
                time_zone="UTC", working_hours=working_hours(EVERY_DAY, "00:00", "24:00")
            )
        ),
        metadata=admin,
    )
    policy = await sla.CreateSlaPolicy(
        pb.CreateSlaPolicyRequest(
            sla_policy=pb.SlaPolicy(
                active=True,
                calendar=calendar.name,
                condition=pb.SlaCondition(priorities=[cpb.TICKET_PRIORITY_HIGH]),
                targets=pb.SlaTargets(first_response=duration(hours=4), resolution=duration(hours=8)),
            )
        ),
        metadata=admin,
    )
    unmatched = await tickets.CreateTicket(
        tpb.CreateTicketRequest(ticket=tpb.Ticket(subject="Low", priority=cpb.TICKET_PRIORITY_LOW)),
        metadata=admin,
    )
    assert unmatched.sla.policy == "" and not unmatched.sla.targets

    ticket = await tickets.CreateTicket(
        tpb.CreateTicketRequest(
            ticket=tpb.Ticket(subject="Printer on fire", priority=cpb.TICKET_PRIORITY_HIGH)
        ),
        metadata=admin,
    )
    shown = await tickets.GetTicket(tpb.GetTicketRequest(name=ticket.name), metadata=admin)
    created = shown.create_time.ToDatetime(tzinfo=UTC)
    assert (shown.sla.policy, shown.sla.calendar, shown.sla.escalation_count) == (
        policy.name,
        calendar.name,
        0,
    )
    first, resolution = shown.sla.targets
    assert (first.metric, resolution.metric) == (cpb.SLA_METRIC_FIRST_RESPONSE, cpb.SLA_METRIC_RESOLUTION)
    assert first.due_time.ToDatetime(tzinfo=UTC) == created + timedelta(hours=4)
    assert first.warning_time.ToDatetime(tzinfo=UTC) == created + timedelta(hours=3, minutes=12)
    assert resolution.due_time.ToDatetime(tzinfo=UTC) == created + timedelta(hours=8)
    assert timedelta(hours=3, minutes=59) < first.remaining.ToTimedelta() <= timedelta(hours=4)
    assert not (first.warned or first.breached or first.paused or first.HasField("achieved_time"))

    held = await tickets.HoldTicket(tpb.HoldTicketRequest(name=ticket.name, reason="waiting"), metadata=admin)
    frozen = [t.remaining.ToTimedelta() for t in held.sla.targets]
    assert all(t.paused for t in held.sla.targets)
    again = await tickets.GetTicket(tpb.GetTicketRequest(name=ticket.name), metadata=admin)
    assert [t.remaining.ToTimedelta() for t in again.sla.targets] == frozen  # frozen while paused

    await tickets.ResumeTicket(tpb.ResumeTicketRequest(name=ticket.name), metadata=admin)
    await tickets.AddTicketComment(
        tpb.AddTicketCommentRequest(parent=ticket.name, comment=tpb.TicketComment(body="On it")),
        metadata=admin,
    )
    answered = await tickets.GetTicket(tpb.GetTicketRequest(name=ticket.name), metadata=admin)
    first, resolution = answered.sla.targets
    assert first.HasField("achieved_time") and not first.breached and not first.paused
    assert not resolution.HasField("achieved_time") and not resolution.paused
