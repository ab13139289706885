"""Follow-up records through the real gRPC API (SQLite and PostgreSQL, real NATS, ManualClock)."""

from __future__ import annotations

import uuid

import grpc
import pool_support
import pytest
from pool_support import DAY, SECOND, T0, expect_error, ts, when

from crm.customer.v1 import follow_up_service_pb2 as rpc
from crm.customer.v1 import pool_events_pb2 as events_pb
from crm_shared.events.envelope import unpack_payload

pytestmark = pytest.mark.asyncio(loop_scope="session")
pool_env = pool_support.pool_env  # the fixture, shared with the other pool test modules

OK = grpc.StatusCode


def call(content="called about the renewal", **kw) -> rpc.FollowUp:
    return rpc.FollowUp(type=rpc.FOLLOW_UP_TYPE_CALL, content=content, **kw)


async def test_logging_a_follow_up_updates_the_customer_and_is_published_without_its_content(pool_env):
    env = pool_env
    alice = env.user("sales_rep", "alice")
    customer = await env.new_customer(owner="alice", as_=alice)
    env.clock.set(T0 + 2 * 3600 * SECOND)
    logged = await env.follow_ups.CreateFollowUp(
        rpc.CreateFollowUpRequest(
            parent=customer.name,
            follow_up=call(
                follow_up_time=ts(T0 + 3600 * SECOND),
                next_follow_up_time=ts(T0 + 3 * DAY),
                related_opportunity="opportunities/opp-1",
            ),
        ),
        metadata=alice,
    )
    assert logged.name.startswith(f"{customer.name}/followUps/")
    assert (logged.author, when(logged.follow_up_time), logged.related_opportunity) == (
        "alice",
        T0 + 3600 * SECOND,
        "opportunities/opp-1",
    )
    current = await env.get(customer)
    assert when(current.last_follow_up_time) == T0 + 3600 * SECOND
    assert when(current.next_follow_up_time) == T0 + 3 * DAY

    [envelope] = await env.events("crm.customer.follow_up.logged", logged.name)
    event = unpack_payload(envelope, events_pb.FollowUpLogged)
    assert (event.customer, event.author, event.type) == (customer.name, "alice", rpc.FOLLOW_UP_TYPE_CALL)
    assert b"renewal" not in envelope.SerializeToString()  # content stays in the service


async def test_follow_ups_list_newest_first_in_pages_within_the_callers_scope(pool_env):
    env = pool_env
    alice = env.user("sales_rep", "alice")
    customer = await env.new_customer(owner="alice", as_=alice)
    env.clock.set(T0 + 10 * DAY)
    for hours in (1, 5, 3):
        await env.follow_ups.CreateFollowUp(
            rpc.CreateFollowUpRequest(
                parent=customer.name,
                follow_up=rpc.FollowUp(
                    type=rpc.FOLLOW_UP_TYPE_VISIT,
                    content=f"visit {hours}",
                    follow_up_time=ts(T0 + hours * DAY),
                ),
            ),
            metadata=alice,
        )
    first = await env.follow_ups.ListFollowUps(
        rpc.ListFollowUpsRequest(parent=customer.name, page_size=2), metadata=alice
    )
    rest = await env.follow_ups.ListFollowUps(
        rpc.ListFollowUpsRequest(parent=customer.name, page_size=2, page_token=first.next_page_token),
        metadata=alice,
    )
    assert [f.content for f in [*first.follow_ups, *rest.follow_ups]] == ["visit 5", "visit 3", "visit 1"]
    assert not rest.next_page_token
    # The last follow-up is the latest one, whatever order they were logged in.
    assert when((await env.get(customer)).last_follow_up_time) == T0 + 5 * DAY

    # Bob neither sees nor writes Alice's customer's follow-ups; her manager reads them.
    bob = env.user("sales_rep", "bob")
    await expect_error(
        env.follow_ups.ListFollowUps(rpc.ListFollowUpsRequest(parent=customer.name), metadata=bob),
        OK.NOT_FOUND,
    )
    await expect_error(
        env.follow_ups.CreateFollowUp(
            rpc.CreateFollowUpRequest(parent=customer.name, follow_up=call()), metadata=bob
        ),
        OK.NOT_FOUND,
    )
    managed = await env.follow_ups.ListFollowUps(
        rpc.ListFollowUpsRequest(parent=customer.name), metadata=env.user("sales_manager", "mia", "east")
    )
    assert len(managed.follow_ups) == 3


async def test_bad_follow_ups_are_rejected_and_a_retry_with_the_request_id_is_answered_once(pool_env):
    env = pool_env
    alice = env.user("sales_rep", "alice")
    customer = await env.new_customer(owner="alice", as_=alice)
    bad = await expect_error(
        env.follow_ups.CreateFollowUp(
            rpc.CreateFollowUpRequest(
                parent=customer.name,
                follow_up=call(follow_up_time=ts(T0), next_follow_up_time=ts(T0 - DAY)),
            ),
            metadata=alice,
        ),
        OK.INVALID_ARGUMENT,
    )
    assert "follow_up.next_follow_up_time" in bad.field_violations
    future = await expect_error(
        env.follow_ups.CreateFollowUp(
            rpc.CreateFollowUpRequest(parent=customer.name, follow_up=call(follow_up_time=ts(T0 + DAY))),
            metadata=alice,
        ),
        OK.INVALID_ARGUMENT,
    )
    assert "follow_up.follow_up_time" in future.field_violations
    untyped = await expect_error(
        env.follow_ups.CreateFollowUp(
            rpc.CreateFollowUpRequest(parent=customer.name, follow_up=rpc.FollowUp(content="x")),
            metadata=alice,
        ),
        OK.INVALID_ARGUMENT,
    )
    assert "follow_up.type" in untyped.field_violations

    request_id = str(uuid.uuid4())
    request = rpc.CreateFollowUpRequest(parent=customer.name, follow_up=call(), request_id=request_id)
    first = await env.follow_ups.CreateFollowUp(request, metadata=alice)
    again = await env.follow_ups.CreateFollowUp(request, metadata=alice)
    assert again == first
    listed = await env.follow_ups.ListFollowUps(
        rpc.ListFollowUpsRequest(parent=customer.name), metadata=alice
    )
    assert len(listed.follow_ups) == 1


async def test_the_next_follow_up_time_fires_a_reminder_to_the_owner_at_that_moment(pool_env):
    env = pool_env
    alice = env.user("sales_rep", "alice")
    customer = await env.new_customer(owner="alice", as_=alice)
    due = T0 + DAY + 2 * 3600 * SECOND + 15 * 60 * SECOND
    await env.follow_ups.CreateFollowUp(
        rpc.CreateFollowUpRequest(parent=customer.name, follow_up=call(next_follow_up_time=ts(due))),
        metadata=alice,
    )
    await env.at(due - SECOND)
    assert await env.events("crm.customer.follow_up.due", customer.name, count=1, within=0.5) == []
    await env.at(due)
    [envelope] = await env.events("crm.customer.follow_up.due", customer.name)
    reminder = unpack_payload(envelope, events_pb.FollowUpDue)
    assert (reminder.owner, when(reminder.next_follow_up_time)) == ("alice", due)
    assert await env.at(due + 30 * DAY) == 0  # once
