"""Plain HTTP/1.1 calls for REST tests, run off the event loop (the upstream lives on it)."""

from __future__ import annotations

import asyncio
import http.client
import json
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def _request(port: int, method: str, path: str, body: object | None, token: str | None) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


async def request(
    port: int, method: str, path: str, body: object | None = None, token: str | None = None
) -> Reply:
    return await asyncio.to_thread(_request, port, method, path, body, token)
