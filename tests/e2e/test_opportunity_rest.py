"""Opportunities and the forecast over REST/JSON through the real gateway (Envoy's transcoder, the
custom-method paths `:moveStage`, `:win`, `:lose`), with the errors a REST caller sees."""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.parse
import uuid

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _call(port: int, method: str, path: str, body: dict | None, token: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(
            method,
            path,
            body=None if body is None else json.dumps(body),
            headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


async def test_opportunity_lifecycle_and_forecast_over_rest(e2e_stack):
    port = e2e_stack.gateway_port
    team = f"t{uuid.uuid4().hex[:6]}"
    rep = e2e_stack.token("sales_rep", "bob", team)

    async def call(method: str, path: str, body: dict | None = None, token: str = rep):
        return await asyncio.to_thread(_call, port, method, path, body, token)

    status, created = await call(
        "POST",
        "/v1/opportunities",
        {
            "customer": f"customers/{uuid.uuid4()}",
            "title": "REST deal",
            "amount": {"currency_code": "CNY", "amount_minor": "1000001"},
            "expected_close_time": "2027-02-01T00:00:00Z",
        },
    )
    assert status == 200, created
    assert (created["probability"], created["weighted_amount"]["amount_minor"]) == (10, "100000")
    name = created["name"]

    status, moved = await call(
        "POST", f"/v1/{name}:moveStage", {"stage": "pipelines/default/stages/proposal"}
    )
    assert status == 200, moved
    assert (moved["probability"], moved["weighted_amount"]["amount_minor"]) == (
        50,
        "500000",
    )  # 500000.5 -> even
    assert [h["stage"].rsplit("/", 1)[1] for h in moved["stage_history"]] == ["qualification", "proposal"]

    status, error = await call("POST", f"/v1/{name}:lose", {})
    assert status == 400, error
    assert "lost_reason" in json.dumps(error)

    status, won = await call("POST", f"/v1/{name}:win", {})
    assert status == 200 and won["state"] == "OPPORTUNITY_STATE_WON", won
    status, error = await call("POST", f"/v1/{name}:win", {})
    assert status == 400 and "OPPORTUNITY_CLOSED" in json.dumps(error), error  # FAILED_PRECONDITION

    query = urllib.parse.urlencode(
        {
            "team": team,
            "start_time": "2026-01-01T00:00:00Z",
            "end_time": "2028-01-01T00:00:00Z",
            "currency_code": "CNY",
        }
    )
    status, forecast = await call("GET", f"/v1/forecast?{query}")
    assert status == 200, forecast
    assert forecast["closed_won"]["amount"]["amount_minor"] == "1000001"
    assert forecast["expected_total"]["amount_minor"] == "1000001"

    status, error = await call("GET", f"/v1/{name}", token=e2e_stack.token("sales_rep", "carol", team))
    assert status == 404, error
