"""Bad input through the gateway: the same error on both wires.

Invalid fields are INVALID_ARGUMENT with a BadRequest naming each field (REST: 400 with the
google.rpc.Status as JSON, details included); a duplicate email is ALREADY_EXISTS (409) naming the
existing customer in ErrorInfo.metadata["existing"].
"""

from __future__ import annotations

import json

import grpc
import pytest
from e2e_client import customer_json, expect_error

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_invalid_fields_are_named_in_field_violations(e2e_stack, make_api, wire):
    api = make_api(wire, e2e_stack.token())
    error = await expect_error(
        api.create_customer(
            customer_json("Bad email", email_addresses=[{"address": "not-an-email"}], website="not a url")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert {"customer.email_addresses[0].address", "customer.website"} <= set(error.field_violations), error
    assert error.domain == "customer"
    if wire == "rest":
        status = json.loads(error.body)
        assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        types = {detail["@type"] for detail in status["details"]}
        assert "type.googleapis.com/google.rpc.BadRequest" in types

    rule = await expect_error(
        api.create_customer(customer_json("", phone_numbers=[{"number": "12345"}])),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(rule.field_violations) == {"customer.display_name", "customer.phone_numbers[0].number"}

    bad_filter = await expect_error(
        api.list_customers(filter="colour = red"), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "filter" in bad_filter.field_violations


async def test_invalid_input_reads_the_same_on_both_wires(e2e_stack, make_api):
    bad = customer_json("Bad email", email_addresses=[{"address": "not-an-email"}])
    seen = []
    for wire in ("grpc", "rest"):
        error = await expect_error(
            make_api(wire, e2e_stack.token()).create_customer(bad), grpc.StatusCode.INVALID_ARGUMENT
        )
        seen.append((error.code, error.message, error.reason, error.domain, error.field_violations))
    assert seen[0] == seen[1]


async def test_duplicate_email_names_the_existing_customer(e2e_stack, make_api, wire):
    api = make_api(wire, e2e_stack.token())
    first = await api.create_customer(customer_json("Original"))
    email = first["email_addresses"][0]["address"]
    duplicate = await expect_error(
        api.create_customer(customer_json("Copy", email_addresses=[{"address": email.upper()}])),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert duplicate.reason == "DUPLICATE_CUSTOMER"
    assert duplicate.domain == "customer"
    assert duplicate.metadata["existing"] == first["name"]
    if wire == "rest":
        assert duplicate.http_status == 409
