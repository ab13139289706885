"""Public pools through the real gRPC API, on SQLite and PostgreSQL, with real NATS and a ManualClock.

What a user notices: who may claim what, the limits, the race, the reclaim happening at the exact
deadline (warned before), locked customers kept, and every move recorded and published.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pool_support
import pytest
from google.protobuf import field_mask_pb2
from pool_support import DAY, SECOND, T0, expect_error, when

from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as customer_rpc
from crm.customer.v1 import pool_events_pb2 as events_pb
from crm.customer.v1 import pool_service_pb2 as rpc
from crm_shared.events.envelope import unpack_payload
from crm_shared.grpc.status import error_details

pytestmark = pytest.mark.asyncio(loop_scope="session")
pool_env = pool_support.pool_env  # the fixture, shared with the other pool test modules

OK = grpc.StatusCode


def rules(follow_up_days=0, deal_days=0, **kw) -> rpc.PoolRules:
    return rpc.PoolRules(
        reclaim_rules=[rpc.ReclaimRule(follow_up_days=follow_up_days, deal_days=deal_days)], **kw
    )


# --- pools -----------------------------------------------------------------------------------------


async def test_pools_are_managed_by_admins_and_their_team_managers_and_seen_by_members(pool_env):
    env = pool_env
    manager_east = env.user("sales_manager", "mia", "east")
    east = await env.new_pool(members=["alice"], team="east", as_=manager_east)
    west = await env.new_pool(members=["bob"], team="west")
    assert east.name.startswith("pools/") and east.etag and east.team == "east"

    await expect_error(
        env.pools.CreatePool(
            rpc.CreatePoolRequest(pool=rpc.Pool(display_name="x", team="west")), metadata=manager_east
        ),
        OK.PERMISSION_DENIED,
        "TEAM_OUTSIDE_SCOPE",
    )
    await expect_error(
        env.pools.CreatePool(
            rpc.CreatePoolRequest(pool=rpc.Pool(display_name="x")), metadata=env.user("sales_rep", "alice")
        ),
        OK.PERMISSION_DENIED,
    )
    # One rule per tier.
    twice = rpc.PoolRules(reclaim_rules=[rpc.ReclaimRule(follow_up_days=1), rpc.ReclaimRule(deal_days=2)])
    bad = await expect_error(
        env.pools.CreatePool(
            rpc.CreatePoolRequest(pool=rpc.Pool(display_name="x", rules=twice)), metadata=env.user()
        ),
        OK.INVALID_ARGUMENT,
    )
    assert "pool.rules.reclaim_rules[1].tier" in bad.field_violations

    # Reps see the pools they are members of; managers their team's; admins all.
    alice_sees = await env.pools.ListPools(rpc.ListPoolsRequest(), metadata=env.user("sales_rep", "alice"))
    assert east.name in [p.name for p in alice_sees.pools] and west.name not in [
        p.name for p in alice_sees.pools
    ]
    await expect_error(
        env.pools.GetPool(rpc.GetPoolRequest(name=west.name), metadata=env.user("sales_rep", "alice")),
        OK.NOT_FOUND,
        "POOL_NOT_FOUND",
    )
    mia_sees = await env.pools.ListPools(rpc.ListPoolsRequest(), metadata=manager_east)
    assert [p.name for p in mia_sees.pools if p.name in (east.name, west.name)] == [east.name]

    # Update with etag (stale → ABORTED), rules round-trip.
    changed = rpc.Pool(
        name=east.name,
        etag=east.etag,
        member_users=["alice", "carol"],
        rules=rpc.PoolRules(
            reclaim_rules=[
                rpc.ReclaimRule(tier=pb.CUSTOMER_TIER_A, follow_up_days=30),
                rpc.ReclaimRule(follow_up_days=7, deal_days=90),
            ],
            warn_days_before=2,
            max_claims_per_day=5,
        ),
    )
    mask = field_mask_pb2.FieldMask(paths=["member_users", "rules"])
    updated = await env.pools.UpdatePool(
        rpc.UpdatePoolRequest(pool=changed, update_mask=mask), metadata=manager_east
    )
    assert list(updated.member_users) == ["alice", "carol"] and updated.rules.warn_days_before == 2
    assert {(r.tier, r.follow_up_days, r.deal_days) for r in updated.rules.reclaim_rules} == {
        (pb.CUSTOMER_TIER_A, 30, 0),
        (pb.CUSTOMER_TIER_UNSPECIFIED, 7, 90),
    }
    await expect_error(
        env.pools.UpdatePool(rpc.UpdatePoolRequest(pool=changed, update_mask=mask), metadata=manager_east),
        OK.ABORTED,
    )
    # A pool with waiting customers cannot be deleted; an empty one can.
    await env.pooled_customer(updated)
    await expect_error(
        env.pools.DeletePool(
            rpc.DeletePoolRequest(name=updated.name, etag=updated.etag), metadata=env.user()
        ),
        OK.FAILED_PRECONDITION,
        "POOL_NOT_EMPTY",
    )
    await env.pools.DeletePool(rpc.DeletePoolRequest(name=west.name, etag=west.etag), metadata=env.user())
    await expect_error(
        env.pools.GetPool(rpc.GetPoolRequest(name=west.name), metadata=env.user()), OK.NOT_FOUND
    )


# --- claims ----------------------------------------------------------------------------------------


async def test_claim_takes_a_customer_out_of_the_pool_and_is_recorded_and_published(pool_env):
    env = pool_env
    pool = await env.new_pool(members=["alice"])
    customer = await env.pooled_customer(pool)
    assert customer.status == pb.CUSTOMER_STATUS_IN_POOL and customer.pool == pool.name and not customer.owner

    waiting = await env.pools.ListPoolCustomers(
        rpc.ListPoolCustomersRequest(parent=pool.name), metadata=env.user("sales_rep", "alice")
    )
    listed = [c for c in waiting.customers if c.name == customer.name]
    assert listed and not listed[0].email_addresses  # no personal data before the claim

    request_id = str(uuid.uuid4())
    claimed = await env.claim(customer, "alice", request_id=request_id)
    assert (claimed.status, claimed.owner, claimed.team) == (pb.CUSTOMER_STATUS_OWNED, "alice", "east")
    assert when(claimed.assign_time) == T0
    assert claimed.email_addresses  # now hers to contact
    # A retry with the same request_id returns the customer instead of "already claimed".
    again = await env.claim(customer, "alice", request_id=request_id)
    assert again.name == claimed.name and again.owner == "alice"

    waiting = await env.pools.ListPoolCustomers(
        rpc.ListPoolCustomersRequest(parent=pool.name), metadata=env.user("sales_rep", "alice")
    )
    assert customer.name not in [c.name for c in waiting.customers]

    history = await env.pools.ListOwnershipChanges(
        rpc.ListOwnershipChangesRequest(parent=customer.name), metadata=env.user("sales_rep", "alice")
    )
    latest = history.ownership_changes[0]
    assert (latest.reason, latest.from_owner, latest.to_owner, latest.actor, latest.pool) == (
        rpc.OWNERSHIP_CHANGE_REASON_CLAIMED,
        "",
        "alice",
        "alice",
        pool.name,
    )
    assert when(latest.change_time) == T0
    assert history.ownership_changes[1].reason == rpc.OWNERSHIP_CHANGE_REASON_RELEASED

    [envelope] = await env.events("crm.customer.customer.claimed", customer.name)
    event = unpack_payload(envelope, events_pb.OwnershipChanged)
    assert (event.reason, event.to_owner, event.pool, event.ownership_change) == (
        rpc.OWNERSHIP_CHANGE_REASON_CLAIMED,
        "alice",
        pool.name,
        latest.name,
    )
    assert envelope.actor.subject == "alice"


async def test_two_reps_claiming_the_same_customer_at_once_exactly_one_wins(pool_env):
    env = pool_env
    pool = await env.new_pool(members=["alice", "bob"])
    for _ in range(5):
        customer = await env.pooled_customer(pool)
        results = await asyncio.gather(
            env.claim(customer, "alice"), env.claim(customer, "bob"), return_exceptions=True
        )
        winners = [r for r in results if isinstance(r, pb.Customer)]
        losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(winners) == 1 and len(losers) == 1, results
        lost = error_details(losers[0])
        assert (lost.code, lost.reason) == (OK.FAILED_PRECONDITION, "CUSTOMER_ALREADY_CLAIMED"), lost
        current = await env.get(customer)
        assert current.owner == winners[0].owner and current.status == pb.CUSTOMER_STATUS_OWNED
        history = await env.pools.ListOwnershipChanges(
            rpc.ListOwnershipChangesRequest(parent=customer.name), metadata=env.user()
        )
        claims = [c for c in history.ownership_changes if c.reason == rpc.OWNERSHIP_CHANGE_REASON_CLAIMED]
        assert len(claims) == 1


async def test_a_rep_cannot_claim_from_a_pool_they_are_not_a_member_of(pool_env):
    env = pool_env
    pool = await env.new_pool(members=["alice"], teams=["north"])
    customer = await env.pooled_customer(pool)
    await expect_error(env.claim(customer, "bob", team="east"), OK.NOT_FOUND, "CUSTOMER_NOT_FOUND")
    await expect_error(
        env.pools.ListPoolCustomers(
            rpc.ListPoolCustomersRequest(parent=pool.name), metadata=env.user("sales_rep", "bob")
        ),
        OK.NOT_FOUND,
        "POOL_NOT_FOUND",
    )
    assert (await env.get(customer)).status == pb.CUSTOMER_STATUS_IN_POOL
    # Membership through a team works.
    claimed = await env.claim(customer, "dave", team="north")
    assert claimed.owner == "dave" and claimed.team == "north"


async def test_claim_limits_customers_held_and_claims_per_rolling_24_hours(pool_env):
    env = pool_env
    pool = await env.new_pool(
        members=["alice", "bob"], rules=rpc.PoolRules(max_customers_per_user=2, max_claims_per_day=3)
    )
    customers = [await env.pooled_customer(pool) for _ in range(5)]
    await env.claim(customers[0], "alice")
    await env.claim(customers[1], "alice")
    await expect_error(env.claim(customers[2], "alice"), OK.RESOURCE_EXHAUSTED, "MAX_CUSTOMERS_REACHED")

    # Releasing one frees a slot (held < max); the third claim of the day is still allowed.
    await env.pools.ReleaseToPool(
        rpc.ReleaseToPoolRequest(name=customers[0].name, reason=rpc.RELEASE_REASON_NO_INTEREST),
        metadata=env.user("sales_rep", "alice"),
    )
    env.clock.set(T0 + 1 * SECOND)
    await env.claim(customers[2], "alice")
    await env.pools.ReleaseToPool(
        rpc.ReleaseToPoolRequest(name=customers[2].name, reason=rpc.RELEASE_REASON_NO_BUDGET),
        metadata=env.user("sales_rep", "alice"),
    )
    # Three claims in the last 24 hours: the fourth waits until the first is 24 h old — to the second.
    env.clock.set(T0 + DAY - SECOND)
    await expect_error(env.claim(customers[3], "alice"), OK.RESOURCE_EXHAUSTED, "DAILY_CLAIM_LIMIT_REACHED")
    await env.claim(customers[3], "bob")  # limits are per user
    env.clock.set(T0 + DAY)
    assert (await env.claim(customers[4], "alice")).owner == "alice"


async def test_a_former_owner_waits_the_cooldown_before_claiming_again(pool_env):
    env = pool_env
    pool = await env.new_pool(members=["alice", "bob"], rules=rpc.PoolRules(reclaim_cooldown_days=2))
    customer = await env.pooled_customer(pool)
    await env.claim(customer, "alice")
    env.clock.set(T0 + 3 * 3600 * SECOND)
    released = await env.pools.ReleaseToPool(
        rpc.ReleaseToPoolRequest(name=customer.name, reason=rpc.RELEASE_REASON_UNREACHABLE),
        metadata=env.user("sales_rep", "alice"),
    )
    assert released.former_owner == "alice" and released.status == pb.CUSTOMER_STATUS_IN_POOL
    env.clock.set(T0 + 3 * 3600 * SECOND + 2 * DAY - SECOND)
    details = await expect_error(env.claim(customer, "alice"), OK.FAILED_PRECONDITION, "CLAIM_COOLDOWN")
    assert details.metadata["claimable_from"] == (T0 + 3 * 3600 * SECOND + 2 * DAY).isoformat()
    env.clock.set(T0 + 3 * 3600 * SECOND + 2 * DAY)
    assert (await env.claim(customer, "alice")).owner == "alice"


# --- reclaim ---------------------------------------------------------------------------------------


async def test_reclaim_fires_at_the_exact_deadline_after_a_warning_and_keeps_the_former_owner(pool_env):
    env = pool_env
    pool = await env.new_pool(members=["alice"], rules=rules(follow_up_days=3, warn_days_before=1))
    customer = await env.pooled_customer(pool)
    env.clock.set(T0 + 17 * 60 * SECOND)  # claimed at 09:47
    claimed = await env.claim(customer, "alice")
    deadline = T0 + 17 * 60 * SECOND + 3 * DAY
    assert when(claimed.reclaim_time) == deadline

    assert await env.at(deadline - DAY - SECOND) == 0  # not yet warned
    assert await env.at(deadline - DAY) >= 1  # warning at 09:47 two days later
    [warning] = await env.events("crm.customer.customer.reclaim_warning", customer.name)
    payload = unpack_payload(warning, events_pb.ReclaimWarning)
    assert (payload.owner, payload.pool, when(payload.reclaim_time)) == ("alice", pool.name, deadline)

    # A change that does not move the deadline does not warn again (one warning per deadline).
    current = await env.get(customer)
    await env.customers.UpdateCustomer(
        customer_rpc.UpdateCustomerRequest(
            customer=pb.Customer(name=customer.name, tier=pb.CUSTOMER_TIER_C, etag=current.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["tier"]),
        ),
        metadata=env.user(),
    )
    await env.at(deadline - SECOND)
    assert (await env.get(customer)).owner == "alice"
    assert (
        len(await env.events("crm.customer.customer.reclaim_warning", customer.name, count=2, within=1)) == 1
    )
    await env.at(deadline)
    reclaimed = await env.get(customer)
    assert (reclaimed.status, reclaimed.owner, reclaimed.former_owner, reclaimed.pool) == (
        pb.CUSTOMER_STATUS_IN_POOL,
        "",
        "alice",
        pool.name,
    )
    assert not reclaimed.HasField("reclaim_time")
    [envelope] = await env.events("crm.customer.customer.reclaimed", customer.name)
    event = unpack_payload(envelope, events_pb.OwnershipChanged)
    assert (event.reason, event.from_owner, event.detail_code, when(event.change_time)) == (
        rpc.OWNERSHIP_CHANGE_REASON_RECLAIMED,
        "alice",
        "no_follow_up",
        deadline,
    )
    assert envelope.actor.subject == "service:customer"
    history = await env.pools.ListOwnershipChanges(
        rpc.ListOwnershipChangesRequest(parent=customer.name), metadata=env.user()
    )
    assert [c.reason for c in history.ownership_changes][:2] == [
        rpc.OWNERSHIP_CHANGE_REASON_RECLAIMED,
        rpc.OWNERSHIP_CHANGE_REASON_CLAIMED,
    ]
    # The pool lists it again; nothing fires twice.
    assert await env.at(deadline + 30 * DAY) == 0


async def test_tier_rules_differ_and_a_follow_up_moves_the_deadline(pool_env):
    env = pool_env
    pool = await env.new_pool(
        members=["alice"],
        rules=rpc.PoolRules(
            reclaim_rules=[
                rpc.ReclaimRule(tier=pb.CUSTOMER_TIER_A, follow_up_days=10),
                rpc.ReclaimRule(follow_up_days=3),
            ]
        ),
    )
    key_account = await env.pooled_customer(pool, tier=pb.CUSTOMER_TIER_A)
    normal = await env.pooled_customer(pool, tier=pb.CUSTOMER_TIER_C)
    assert when((await env.claim(key_account, "alice")).reclaim_time) == T0 + 10 * DAY
    assert when((await env.claim(normal, "alice")).reclaim_time) == T0 + 3 * DAY

    from crm.customer.v1 import follow_up_service_pb2 as fu

    env.clock.set(T0 + 2 * DAY)
    await env.follow_ups.CreateFollowUp(
        fu.CreateFollowUpRequest(
            parent=normal.name, follow_up=fu.FollowUp(type=fu.FOLLOW_UP_TYPE_CALL, content="talked budget")
        ),
        metadata=env.user("sales_rep", "alice"),
    )
    moved = await env.get(normal)
    assert when(moved.reclaim_time) == T0 + 5 * DAY and when(moved.last_follow_up_time) == T0 + 2 * DAY

    await env.at(T0 + 3 * DAY)  # the old deadline: nothing happens
    assert (await env.get(normal)).owner == "alice"
    await env.at(T0 + 5 * DAY)
    assert (await env.get(normal)).status == pb.CUSTOMER_STATUS_IN_POOL
    assert (await env.get(key_account)).owner == "alice"
    await env.at(T0 + 10 * DAY)
    assert (await env.get(key_account)).status == pb.CUSTOMER_STATUS_IN_POOL


async def test_locked_customers_are_never_reclaimed(pool_env):
    env = pool_env
    manager = env.user("sales_manager", "mia", "east")
    pool = await env.new_pool(members=["alice"], rules=rules(follow_up_days=1, warn_days_before=1))
    customer = await env.pooled_customer(pool)
    await env.claim(customer, "alice")
    await expect_error(
        env.pools.LockCustomer(
            rpc.LockCustomerRequest(name=customer.name), metadata=env.user("sales_rep", "alice")
        ),
        OK.PERMISSION_DENIED,
    )
    locked = await env.pools.LockCustomer(rpc.LockCustomerRequest(name=customer.name), metadata=manager)
    assert locked.locked and not locked.HasField("reclaim_time")
    await env.at(T0 + 60 * DAY)
    assert (await env.get(customer)).owner == "alice"
    await env.events("crm.customer.customer.locked", customer.name)
    # A locked customer cannot be released either; unlocking recomputes (and the overdue deadline fires).
    await expect_error(
        env.pools.ReleaseToPool(
            rpc.ReleaseToPoolRequest(name=customer.name, reason=rpc.RELEASE_REASON_OTHER),
            metadata=env.user("sales_rep", "alice"),
        ),
        OK.FAILED_PRECONDITION,
        "CUSTOMER_LOCKED",
    )
    unlocked = await env.pools.UnlockCustomer(rpc.UnlockCustomerRequest(name=customer.name), metadata=manager)
    assert not unlocked.locked and when(unlocked.reclaim_time) == T0 + DAY
    await env.fire()
    assert (await env.get(customer)).status == pb.CUSTOMER_STATUS_IN_POOL


# --- release, assign, transfer ---------------------------------------------------------------------


async def test_release_is_for_the_owner_or_their_manager_with_a_reason(pool_env):
    env = pool_env
    pool = await env.new_pool(members=["alice", "bob"])
    customer = await env.pooled_customer(pool)
    await env.claim(customer, "alice")
    # Bob cannot release Alice's customer: for him it does not exist.
    await expect_error(
        env.pools.ReleaseToPool(
            rpc.ReleaseToPoolRequest(name=customer.name, reason=rpc.RELEASE_REASON_OTHER),
            metadata=env.user("sales_rep", "bob"),
        ),
        OK.NOT_FOUND,
    )
    await expect_error(
        env.pools.ReleaseToPool(
            rpc.ReleaseToPoolRequest(name=customer.name), metadata=env.user("sales_rep", "alice")
        ),
        OK.INVALID_ARGUMENT,
    )
    released = await env.pools.ReleaseToPool(
        rpc.ReleaseToPoolRequest(name=customer.name, reason=rpc.RELEASE_REASON_NO_BUDGET),
        metadata=env.user("sales_rep", "alice"),
    )
    assert (released.status, released.former_owner) == (pb.CUSTOMER_STATUS_IN_POOL, "alice")
    [envelope] = (await env.events("crm.customer.customer.released", customer.name, count=2))[-1:]
    event = unpack_payload(envelope, events_pb.OwnershipChanged)
    assert (event.from_owner, event.detail_code) == ("alice", "no_budget")


async def test_managers_assign_and_transfer_within_their_team_and_every_move_is_published(pool_env):
    env = pool_env
    manager = env.user("sales_manager", "mia", "east")
    pool = await env.new_pool(members=["alice"], team="east")
    customer = await env.pooled_customer(pool)

    await expect_error(
        env.pools.AssignCustomer(
            rpc.AssignCustomerRequest(name=customer.name, owner="bob"),
            metadata=env.user("sales_rep", "alice"),
        ),
        OK.PERMISSION_DENIED,
    )
    await expect_error(
        env.pools.AssignCustomer(
            rpc.AssignCustomerRequest(name=customer.name, owner="bob"),
            metadata=env.user("sales_manager", "wes", "west"),
        ),
        OK.NOT_FOUND,
    )
    assigned = await env.pools.AssignCustomer(
        rpc.AssignCustomerRequest(name=customer.name, owner="bob"), metadata=manager
    )
    assert (assigned.owner, assigned.team, assigned.status) == ("bob", "east", pb.CUSTOMER_STATUS_OWNED)
    await expect_error(
        env.pools.TransferCustomer(
            rpc.TransferCustomerRequest(name=customer.name, owner="carol", team="west"), metadata=manager
        ),
        OK.PERMISSION_DENIED,
        "TEAM_OUTSIDE_SCOPE",
    )
    transferred = await env.pools.TransferCustomer(
        rpc.TransferCustomerRequest(name=customer.name, owner="carol"), metadata=manager
    )
    assert (transferred.owner, transferred.former_owner) == ("carol", "bob")

    history = await env.pools.ListOwnershipChanges(
        rpc.ListOwnershipChangesRequest(parent=customer.name, page_size=2), metadata=manager
    )
    assert [(c.reason, c.from_owner, c.to_owner, c.actor) for c in history.ownership_changes] == [
        (rpc.OWNERSHIP_CHANGE_REASON_TRANSFERRED, "bob", "carol", "mia"),
        (rpc.OWNERSHIP_CHANGE_REASON_ASSIGNED, "", "bob", "mia"),
    ]
    assert history.next_page_token
    rest = await env.pools.ListOwnershipChanges(
        rpc.ListOwnershipChangesRequest(
            parent=customer.name, page_size=2, page_token=history.next_page_token
        ),
        metadata=manager,
    )
    assert [c.reason for c in rest.ownership_changes] == [rpc.OWNERSHIP_CHANGE_REASON_RELEASED]
    for subject in ("assigned", "transferred"):
        [envelope] = await env.events(f"crm.customer.customer.{subject}", customer.name)
        assert envelope.actor.subject == "mia"
    # The new owner sees it in their own scope.
    mine = await env.customers.GetCustomer(
        customer_rpc.GetCustomerRequest(name=customer.name), metadata=env.user("sales_rep", "carol")
    )
    assert mine.owner == "carol"


async def test_the_conditional_update_decides_a_race_even_when_both_claims_read_the_customer_in_the_pool(
    pool_env,
):
    """The loser's read happens while the winner's transaction is still open (PostgreSQL: both see
    IN_POOL; the loser's UPDATE waits for the winner's row lock, then matches no row)."""
    from crm_customer.api.pools import PoolServicer
    from crm_customer.service import pools as pool_cases
    from crm_shared.errors import FailedPrecondition
    from crm_shared.principal import Principal

    env = pool_env
    app = next(s for _, s in env.running.parts.servicers if isinstance(s, PoolServicer))._app
    pool = await env.new_pool(members=["alice", "bob"])
    customer = await env.pooled_customer(pool)
    customer_id = customer.name.removeprefix("customers/")
    first_read = asyncio.Event()

    async def winner():
        async with app.uow_factory() as uow:
            claimed = await pool_cases.claim_customer(
                uow, app.deps, Principal("alice", frozenset({"sales_rep"}), "east"), customer_id
            )
            first_read.set()
            await asyncio.sleep(0.3)  # the other claim reaches its UPDATE meanwhile
            await uow.commit()
            return claimed

    async def loser():
        await first_read.wait()
        async with app.uow_factory() as uow:
            await pool_cases.claim_customer(
                uow, app.deps, Principal("bob", frozenset({"sales_rep"}), "east"), customer_id
            )
            await uow.commit()

    won, lost = await asyncio.gather(winner(), loser(), return_exceptions=True)
    assert won.owner == "alice"
    assert isinstance(lost, FailedPrecondition) and lost.reason == "CUSTOMER_ALREADY_CLAIMED", lost
    assert (await env.get(customer)).owner == "alice"


async def test_ownership_changes_only_through_the_pool_methods_and_a_tier_change_moves_the_deadline(pool_env):
    env = pool_env
    pool = await env.new_pool(
        members=["alice"],
        rules=rpc.PoolRules(
            reclaim_rules=[
                rpc.ReclaimRule(tier=pb.CUSTOMER_TIER_A, follow_up_days=10),
                rpc.ReclaimRule(follow_up_days=3),
            ]
        ),
    )
    customer = await env.pooled_customer(pool, tier=pb.CUSTOMER_TIER_B)
    claimed = await env.claim(customer, "alice")
    for path in ("owner", "team"):
        bad = await expect_error(
            env.customers.UpdateCustomer(
                customer_rpc.UpdateCustomerRequest(
                    customer=pb.Customer(name=customer.name, owner="bob", team="west", etag=claimed.etag),
                    update_mask=field_mask_pb2.FieldMask(paths=[path]),
                ),
                metadata=env.user(),
            ),
            OK.INVALID_ARGUMENT,
        )
        assert "update_mask" in " ".join(bad.field_violations)
    upgraded = await env.customers.UpdateCustomer(
        customer_rpc.UpdateCustomerRequest(
            customer=pb.Customer(name=customer.name, tier=pb.CUSTOMER_TIER_A, etag=claimed.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["tier"]),
        ),
        metadata=env.user(),
    )
    assert upgraded.owner == "alice" and when(upgraded.reclaim_time) == T0 + 10 * DAY
    await env.at(T0 + 3 * DAY)
    assert (await env.get(customer)).owner == "alice"
