"""Deal events from sales and contract (published to the real NATS) move activity, lifecycle and deadlines."""

from __future__ import annotations

import pool_support
import pytest
from pool_support import DAY, T0, eventually, ts, when

from crm.contract.v1 import events_pb2 as contract_events_pb
from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import events_pb2 as customer_events_pb
from crm.customer.v1 import pool_service_pb2 as rpc
from crm.sales.v1 import events_pb2 as sales_pb
from crm_shared.events.envelope import build_envelope, serialize_envelope, unpack_payload
from crm_shared.ids import new_id

pytestmark = pytest.mark.asyncio(loop_scope="session")
pool_env = pool_support.pool_env  # the fixture, shared with the other pool test modules


async def publish(env, subject: str, payload, resource: str, occurred_at) -> str:
    event_id = new_id()
    envelope = build_envelope(
        event_id=event_id,
        payload=payload,
        source=subject.split(".")[1],
        subject=resource,
        occurred_at=occurred_at,
        actor_subject="alice",
    )
    await env.js.publish(subject, serialize_envelope(envelope), headers={"Nats-Msg-Id": event_id})
    return event_id


def won(customer: pb.Customer, at) -> sales_pb.OpportunityWon:
    return sales_pb.OpportunityWon(
        opportunity=sales_pb.OpportunitySnapshot(name="opportunities/o-1", customer=customer.name),
        won_time=ts(at),
    )


async def test_a_won_opportunity_sets_the_last_deal_time_activates_the_customer_and_moves_the_deadline(
    pool_env,
):
    env = pool_env
    pool = await env.new_pool(
        members=["alice"],
        rules=rpc.PoolRules(reclaim_rules=[rpc.ReclaimRule(follow_up_days=5, deal_days=10)]),
    )
    customer = await env.pooled_customer(pool)
    claimed = await env.claim(customer, "alice")
    assert (
        claimed.lifecycle_stage == pb.LIFECYCLE_STAGE_PROSPECT and when(claimed.reclaim_time) == T0 + 5 * DAY
    )

    env.clock.set(T0 + 4 * DAY)
    await publish(
        env, "crm.sales.opportunity.won", won(customer, T0 + 4 * DAY), "opportunities/o-1", T0 + 4 * DAY
    )

    async def applied():
        current = await env.get(customer)
        return current if current.HasField("last_deal_time") else None

    current = await eventually(applied)
    assert current, "the won opportunity was not applied"
    assert when(current.last_deal_time) == T0 + 4 * DAY
    assert current.lifecycle_stage == pb.LIFECYCLE_STAGE_ACTIVE
    # Still the follow-up clause (T0+5d) — the deal clause moved to T0+14d.
    assert when(current.reclaim_time) == T0 + 5 * DAY
    [envelope] = await env.events("crm.customer.customer.updated", customer.name)
    event = unpack_payload(envelope, customer_events_pb.CustomerUpdated)
    assert list(event.changed_fields) == ["last_deal_time", "lifecycle_stage"]
    assert event.customer.lifecycle_stage == pb.LIFECYCLE_STAGE_ACTIVE


async def test_with_exempt_with_deal_a_deal_suspends_the_follow_up_rule_and_opportunities_count_as_activity(
    pool_env,
):
    env = pool_env
    pool = await env.new_pool(
        members=["alice"],
        rules=rpc.PoolRules(
            reclaim_rules=[rpc.ReclaimRule(follow_up_days=3, deal_days=30)], exempt_with_deal=True
        ),
    )
    first, second = await env.pooled_customer(pool), await env.pooled_customer(pool)
    await env.claim(first, "alice")
    await env.claim(second, "alice")

    env.clock.set(T0 + 2 * DAY)
    signed = contract_events_pb.ContractSigned(
        contract="contracts/c-1", customer=first.name, sign_time=ts(T0 + 2 * DAY)
    )
    await publish(env, "crm.contract.contract.signed", signed, "contracts/c-1", T0 + 2 * DAY)
    created = sales_pb.OpportunityCreated(
        opportunity=sales_pb.OpportunitySnapshot(
            name="opportunities/o-2", customer=second.name, create_time=ts(T0 + 2 * DAY)
        )
    )
    await publish(env, "crm.sales.opportunity.created", created, "opportunities/o-2", T0 + 2 * DAY)

    async def both_applied():
        a, b = await env.get(first), await env.get(second)
        return (a, b) if a.HasField("last_deal_time") and b.HasField("last_follow_up_time") else None

    result = await eventually(both_applied)
    assert result, "deal events were not applied"
    a, b = result
    assert when(a.reclaim_time) == T0 + 32 * DAY  # only the deal rule applies now
    assert when(b.reclaim_time) == T0 + 5 * DAY  # a new opportunity restarted the follow-up clock
    await env.at(T0 + 5 * DAY)
    assert (await env.get(first)).owner == "alice"
    assert (await env.get(second)).status == pb.CUSTOMER_STATUS_IN_POOL


async def test_an_active_customer_without_activity_for_90_days_becomes_at_risk(pool_env):
    env = pool_env
    customer = await env.new_customer(owner="alice")
    await publish(env, "crm.sales.opportunity.won", won(customer, T0), "opportunities/o-3", T0)

    async def active():
        return (await env.get(customer)).lifecycle_stage == pb.LIFECYCLE_STAGE_ACTIVE

    assert await eventually(active)
    await env.at(T0 + 90 * DAY - DAY)
    assert (await env.get(customer)).lifecycle_stage == pb.LIFECYCLE_STAGE_ACTIVE
    await env.at(T0 + 90 * DAY)
    assert (await env.get(customer)).lifecycle_stage == pb.LIFECYCLE_STAGE_AT_RISK
    updates = await env.events("crm.customer.customer.updated", customer.name, count=2)
    last = unpack_payload(updates[-1], customer_events_pb.CustomerUpdated)
    assert list(last.changed_fields) == ["lifecycle_stage"]
