"""Data scope through the gateway: a customer outside the caller's scope does not exist for them.

Sales rep B cannot read rep A's customer (NOT_FOUND / 404, never PERMISSION_DENIED) nor see it
in a list; a sales manager of the same team sees it, a manager of another team does not.
"""

from __future__ import annotations

import grpc
import pytest
from e2e_client import as_written, customer_json, expect_error, unique

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_sales_reps_and_managers_see_exactly_their_scope(e2e_stack, make_api, wire):
    team = unique("scope")
    rep_a = make_api(wire, e2e_stack.token("sales_rep", unique("rep-a"), team))
    rep_b = make_api(wire, e2e_stack.token("sales_rep", unique("rep-b"), team))
    manager = make_api(wire, e2e_stack.token("sales_manager", unique("boss"), team))
    other_manager = make_api(wire, e2e_stack.token("sales_manager", unique("boss"), unique("elsewhere")))

    # A tier chosen by a person: reporting's ABC class never overrides it, so "B's attempts changed
    # nothing" below can compare the whole customer.
    mine = await rep_a.create_customer(customer_json("Rep A's customer", tier="CUSTOMER_TIER_B"))
    assert mine["team"] == team
    assert (await rep_a.get_customer(mine["name"]))["name"] == mine["name"]

    hidden = await expect_error(rep_b.get_customer(mine["name"]), grpc.StatusCode.NOT_FOUND)
    assert hidden.reason == "CUSTOMER_NOT_FOUND"
    assert (await rep_b.list_customers(filter=f'team = "{team}"'))["customers"] == []
    await expect_error(
        rep_b.update_customer({"name": mine["name"], "industry": "x"}, ["industry"]),
        grpc.StatusCode.NOT_FOUND,
    )
    # Reps may not delete at all (role-level, decided before any lookup): the answer is the same
    # for A's customer and for one that does not exist, so it reveals nothing.
    denied = await expect_error(rep_b.delete_customer(mine["name"]), grpc.StatusCode.PERMISSION_DENIED)
    nobody = await expect_error(
        rep_b.delete_customer("customers/00000000-0000-0000-0000-000000000000"),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert denied.reason == nobody.reason == "ACTION_NOT_ALLOWED"
    assert denied.message == nobody.message

    assert (await manager.get_customer(mine["name"]))["name"] == mine["name"]
    team_view = await manager.list_customers(filter=f'team = "{team}"')
    assert [c["name"] for c in team_view["customers"]] == [mine["name"]]

    await expect_error(other_manager.get_customer(mine["name"]), grpc.StatusCode.NOT_FOUND)
    assert (await other_manager.list_customers(filter=f'team = "{team}"'))["customers"] == []

    # B's attempts changed nothing.
    assert as_written(await rep_a.get_customer(mine["name"])) == as_written(mine)
