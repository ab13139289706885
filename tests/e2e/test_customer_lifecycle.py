"""Customers and contacts through the real gateway, real service and real NATS, over gRPC and REST.

The same steps run on both wire formats and must give the caller the same results: create, get,
list (three pages, then a filter), update with a field mask and etag (a stale etag is ABORTED /
409), contacts under the customer, delete, and NOT_FOUND / 404 afterwards.
"""

from __future__ import annotations

import re
import secrets
import urllib.parse
from typing import Any

import grpc
import pytest
from e2e_client import Api, GrpcApi, RestApi, as_written, customer_json, expect_error, unique

pytestmark = pytest.mark.asyncio(loop_scope="session")

NAME = re.compile(r"^customers/[0-9a-f-]{36}$")


async def lifecycle(api: Api, team: str) -> list[Any]:
    """Runs the whole story on one wire format; returns what the caller saw, ids left out."""
    seen: list[Any] = []
    label = api.kind

    # create -> get
    created = await api.create_customer(
        customer_json(f"{team} 00", team=team, tier="CUSTOMER_TIER_B", tags=["b2b"])
    )
    assert NAME.match(created["name"]), (label, created)
    assert created["owner"] == "alice" and created["team"] == team and created["etag"], (label, created)
    assert created["email_addresses"][0]["address"].endswith("@acme.example")
    fetched = await api.get_customer(created["name"])
    assert as_written(fetched) == as_written(created), label
    seen.append(("created", sorted(created), created["tier"], created["tags"]))

    seen.append(await list_pages_and_filter(api, team, created))
    updated, step = await update_with_mask_and_etag(api, created)
    seen.append(step)
    seen.append(await contacts_under(api, created))
    seen.append(await delete_then_gone(api, team, created, updated))
    return seen


async def list_pages_and_filter(api: Api, team: str, created: dict[str, Any]) -> tuple:
    """7 customers of the team, 3 per page -> 3 pages in display_name order; then a filter."""
    label = api.kind
    names = [created["display_name"]]
    for i in range(1, 7):
        tier = "CUSTOMER_TIER_A" if i % 2 == 0 else "CUSTOMER_TIER_C"
        extra = await api.create_customer(customer_json(f"{team} {i:02d}", team=team, tier=tier))
        names.append(extra["display_name"])
    pages, listed, token = [], [], ""
    for _ in range(10):  # bounded: 3 pages expected
        page = await api.list_customers(
            page_size=3, page_token=token, filter=f'team = "{team}"', order_by="display_name"
        )
        pages.append(len(page["customers"]))
        listed += [c["display_name"] for c in page["customers"]]
        token = page["next_page_token"]
        if not token:
            break
    assert (pages, listed) == ([3, 3, 1], names), label
    first_page = await api.list_customers(page_size=3, filter=f'team = "{team}"', order_by="display_name")
    # List and get render a customer the same way.
    assert as_written(first_page["customers"][0]) == as_written(created), label
    tier_a = await api.list_customers(
        filter=f'team = "{team}" AND tier = CUSTOMER_TIER_A', order_by="display_name desc"
    )
    expected_a = [f"{team} {i:02d}" for i in (6, 4, 2)]
    assert [c["display_name"] for c in tier_a["customers"]] == expected_a, label
    assert tier_a["next_page_token"] == ""
    return ("pages", pages, "tier A", len(expected_a))


async def update_with_mask_and_etag(api: Api, created: dict[str, Any]) -> tuple[dict[str, Any], tuple]:
    """Only the masked fields change; the old etag is stale afterwards (ABORTED / 409)."""
    label, team = api.kind, created["team"]
    updated = await api.update_customer(
        {
            "name": created["name"],
            "display_name": f"{team} 00 renamed",
            "tier": "CUSTOMER_TIER_A",
            "industry": "ignored: not in the mask",
            "etag": created["etag"],
        },
        ["display_name", "tier"],
    )
    assert (updated["display_name"], updated["tier"], updated["industry"]) == (
        f"{team} 00 renamed",
        "CUSTOMER_TIER_A",
        "manufacturing",
    ), label
    assert updated["etag"] != created["etag"]
    assert await api.get_customer(created["name"]) == updated, label
    stale = await expect_error(
        api.update_customer(
            {"name": created["name"], "industry": "x", "etag": created["etag"]}, ["industry"]
        ),
        grpc.StatusCode.ABORTED,
    )
    assert stale.reason == "STALE_ETAG", label
    assert (await api.get_customer(created["name"]))["industry"] == "manufacturing"
    return updated, ("updated", updated["tier"], "stale", stale.code.name, stale.reason, stale.domain)


async def contacts_under(api: Api, created: dict[str, Any]) -> tuple:
    label = api.kind
    first = await api.create_contact(
        created["name"],
        {
            "display_name": "Li Lei",
            "is_primary": True,
            "email_addresses": [{"address": f"{unique('Li.Lei')}@Acme.example"}],
        },
    )
    second = await api.create_contact(created["name"], {"display_name": "Han Meimei", "is_primary": True})
    assert first["name"].startswith(created["name"] + "/contacts/"), label
    assert second["name"].startswith(created["name"] + "/contacts/"), label
    contacts = await api.list_contacts(created["name"])
    # one primary per customer: the newer primary takes over
    pairs = [(c["display_name"], c["is_primary"]) for c in contacts["contacts"]]
    assert pairs == [("Li Lei", False), ("Han Meimei", True)], label
    assert contacts["contacts"][0]["email_addresses"][0]["address"].islower()
    return ("contacts", pairs, sorted(first))


async def delete_then_gone(api: Api, team: str, created: dict[str, Any], updated: dict[str, Any]) -> tuple:
    """Delete with the current etag -> NOT_FOUND / 404, its contacts gone with it."""
    label = api.kind
    assert await api.delete_customer(created["name"], etag=updated["etag"]) == {}, label
    gone = await expect_error(api.get_customer(created["name"]), grpc.StatusCode.NOT_FOUND)
    assert gone.reason == "CUSTOMER_NOT_FOUND", label
    contacts_gone = await expect_error(api.list_contacts(created["name"]), grpc.StatusCode.NOT_FOUND)
    left = await api.list_customers(filter=f'team = "{team}"')
    assert len(left["customers"]) == 6, label
    return ("deleted", gone.code.name, gone.reason, contacts_gone.code.name)


async def test_lifecycle_gives_the_same_results_over_grpc_and_rest(e2e_stack, make_api):
    token = e2e_stack.token("admin", "alice", "east")
    over_grpc = await lifecycle(make_api("grpc", token), unique("grpc-team"))
    over_rest = await lifecycle(make_api("rest", token), unique("rest-team"))
    assert over_grpc == over_rest


async def test_a_customer_written_on_one_wire_reads_the_same_on_the_other(e2e_stack, make_api):
    token = e2e_stack.token("admin", "alice", "east")
    grpc_api, rest_api = make_api("grpc", token), make_api("rest", token)
    assert isinstance(grpc_api, GrpcApi) and isinstance(rest_api, RestApi)
    team = unique("cross")

    made_by_rest = await rest_api.create_customer(
        customer_json(
            "Made over REST",
            team=team,
            tags=["vip", "b2b"],
            phone_numbers=[{"number": f"+86 139 {secrets.randbelow(10**8):08d}", "label": "mobile"}],
        )
    )
    assert made_by_rest["phone_numbers"][0]["number"].startswith("+86139")  # normalized to E.164
    assert await grpc_api.get_customer(made_by_rest["name"]) == made_by_rest

    made_by_grpc = await grpc_api.create_customer(customer_json("Made over gRPC", team=team))
    assert await rest_api.get_customer(made_by_grpc["name"]) == made_by_grpc

    listed_grpc = await grpc_api.list_customers(filter=f'team = "{team}"', order_by="display_name")
    listed_rest = await rest_api.list_customers(filter=f'team = "{team}"', order_by="display_name")
    assert listed_grpc == listed_rest
    # display_name order: "Made over REST" < "Made over gRPC" (upper case sorts first)
    assert [c["name"] for c in listed_rest["customers"]] == [made_by_rest["name"], made_by_grpc["name"]]


async def test_rest_query_strings_may_encode_spaces_as_plus_or_percent_20(e2e_stack):
    """Form encoding (Python urlencode, requests' params=, URLSearchParams) sends a space as "+"."""
    api = RestApi(e2e_stack.gateway_port, e2e_stack.token())
    team = unique("plus")
    made = await api.create_customer(customer_json("Plus", team=team))
    query = f'team = "{team}"'
    as_plus = urllib.parse.urlencode({"filter": query})
    as_percent = urllib.parse.urlencode({"filter": query}, quote_via=urllib.parse.quote)
    assert "+" in as_plus and "%20" in as_percent
    for encoded in (as_plus, as_percent):
        listed = await api.request("GET", f"/v1/customers?{encoded}")
        assert [c["name"] for c in listed["customers"]] == [made["name"]], encoded
