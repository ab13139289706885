"""One small client API over both wire formats of crm.customer.v1.CustomerService at the gateway.

`GrpcApi` calls through a grpc.aio channel, `RestApi` sends HTTP/1.1 JSON (http.client, run off
the event loop). Both take and return resources as JSON dicts with proto field names, and both
raise `ApiError` carrying the canonical code, ErrorInfo and BadRequest, so a test can run the
same steps on either and compare what the caller sees.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format

from crm.customer.v1 import customer_pb2 as pb
from crm.customer.v1 import customer_service_pb2 as rpc
from crm.customer.v1 import customer_service_pb2_grpc as rpc_grpc
from crm_shared.grpc.status import error_details

# google.api HTTP mapping of the canonical codes (what Envoy's transcoder answers).
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
_CODE_BY_HTTP = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
}
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


@dataclass
class ApiError(Exception):
    code: grpc.StatusCode
    message: str = ""
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: dict[str, str] = field(default_factory=dict)
    http_status: int | None = None  # REST only
    body: bytes = b""  # REST only

    def __str__(self) -> str:
        return f"{self.code.name} ({self.http_status}) {self.reason}: {self.message} {self.body[:300]!r}"


def _to_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


class GrpcApi:
    kind = "grpc"

    def __init__(self, channel: grpc.aio.Channel, token: str | None) -> None:
        self._stub = rpc_grpc.CustomerServiceStub(channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    async def _call(self, method: str, request: Any) -> dict[str, Any]:
        try:
            reply = await getattr(self._stub, method)(request, metadata=self._metadata, timeout=15)
        except grpc.aio.AioRpcError as error:
            d = error_details(error)
            raise ApiError(d.code, d.message, d.reason, d.domain, d.metadata, d.field_violations) from None
        return _to_dict(reply)

    async def create_customer(self, customer: dict[str, Any], request_id: str = "") -> dict[str, Any]:
        request = rpc.CreateCustomerRequest(
            customer=json_format.ParseDict(customer, pb.Customer()), request_id=request_id
        )
        return await self._call("CreateCustomer", request)

    async def get_customer(self, name: str) -> dict[str, Any]:
        return await self._call("GetCustomer", rpc.GetCustomerRequest(name=name))

    async def list_customers(
        self, *, page_size: int = 0, page_token: str = "", filter: str = "", order_by: str = ""
    ) -> dict[str, Any]:
        request = rpc.ListCustomersRequest(
            page_size=page_size, page_token=page_token, filter=filter, order_by=order_by
        )
        return await self._call("ListCustomers", request)

    async def update_customer(self, customer: dict[str, Any], mask: list[str]) -> dict[str, Any]:
        request = rpc.UpdateCustomerRequest(
            customer=json_format.ParseDict(customer, pb.Customer()), update_mask={"paths": mask}
        )
        return await self._call("UpdateCustomer", request)

    async def delete_customer(self, name: str, etag: str = "") -> dict[str, Any]:
        return await self._call("DeleteCustomer", rpc.DeleteCustomerRequest(name=name, etag=etag))

    async def create_contact(self, parent: str, contact: dict[str, Any]) -> dict[str, Any]:
        request = rpc.CreateContactRequest(
            parent=parent, contact=json_format.ParseDict(contact, pb.Contact())
        )
        return await self._call("CreateContact", request)

    async def list_contacts(self, parent: str, *, page_size: int = 0, page_token: str = "") -> dict[str, Any]:
        request = rpc.ListContactsRequest(parent=parent, page_size=page_size, page_token=page_token)
        return await self._call("ListContacts", request)


class RestApi:
    kind = "rest"

    def __init__(self, port: int, token: str | None) -> None:
        self._port = port
        self._token = token

    def _send(self, method: str, path: str, body: Any | None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=15)
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        try:
            connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    async def request(self, method: str, path: str, body: Any | None = None, **query: Any) -> dict[str, Any]:
        params = {key: value for key, value in query.items() if value not in ("", 0, None)}
        if params:
            path += "?" + urllib.parse.urlencode(params)
        status, raw = await asyncio.to_thread(self._send, method, path, body)
        if status == 200:
            return json.loads(raw) if raw else {}
        raise _rest_error(status, raw)

    async def create_customer(self, customer: dict[str, Any], request_id: str = "") -> dict[str, Any]:
        return await self.request("POST", "/v1/customers", customer, request_id=request_id)

    async def get_customer(self, name: str) -> dict[str, Any]:
        return await self.request("GET", f"/v1/{name}")

    async def list_customers(
        self, *, page_size: int = 0, page_token: str = "", filter: str = "", order_by: str = ""
    ) -> dict[str, Any]:
        return await self.request(
            "GET",
            "/v1/customers",
            page_size=page_size,
            page_token=page_token,
            filter=filter,
            order_by=order_by,
        )

    async def update_customer(self, customer: dict[str, Any], mask: list[str]) -> dict[str, Any]:
        body = {key: value for key, value in customer.items() if key != "name"}
        return await self.request("PATCH", f"/v1/{customer['name']}", body, update_mask=",".join(mask))

    async def delete_customer(self, name: str, etag: str = "") -> dict[str, Any]:
        return await self.request("DELETE", f"/v1/{name}", etag=etag)

    async def create_contact(self, parent: str, contact: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", f"/v1/{parent}/contacts", contact)

    async def list_contacts(self, parent: str, *, page_size: int = 0, page_token: str = "") -> dict[str, Any]:
        return await self.request("GET", f"/v1/{parent}/contacts", page_size=page_size, page_token=page_token)


def _rest_error(status: int, raw: bytes) -> ApiError:
    """The gateway answers errors with google.rpc.Status as JSON; jwt_authn with plain text."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict) or "code" not in body:
        code = _CODE_BY_HTTP.get(status, grpc.StatusCode.UNKNOWN)
        return ApiError(code, raw.decode(errors="replace"), http_status=status, body=raw)
    error = ApiError(
        _CODE_BY_NUMBER.get(body["code"], grpc.StatusCode.UNKNOWN),
        body.get("message", ""),
        http_status=status,
        body=raw,
    )
    for detail in body.get("details", []):
        if detail.get("@type") == _ERROR_INFO:
            error.reason = detail.get("reason", "")
            error.domain = detail.get("domain", "")
            error.metadata = dict(detail.get("metadata", {}))
        elif detail.get("@type") == _BAD_REQUEST:
            for violation in detail.get("field_violations", []):
                previous = error.field_violations.get(violation["field"])
                description = violation.get("description", "")
                error.field_violations[violation["field"]] = (
                    f"{previous}; {description}" if previous else description
                )
    return error


Api = GrpcApi | RestApi


async def expect_error(call: Any, code: grpc.StatusCode) -> ApiError:
    """Awaits `call`, which must fail with `code` (and, over REST, its HTTP status)."""
    try:
        result = await call
    except ApiError as error:
        assert error.code == code, str(error)
        if error.http_status is not None:
            assert error.http_status == HTTP_STATUS[code], str(error)
        return error
    raise AssertionError(f"expected {code.name}, got {result}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def customer_json(display_name: str, **fields: Any) -> dict[str, Any]:
    """A valid customer with a unique email (duplicates are refused service-wide)."""
    return {
        "display_name": display_name,
        "kind": "CUSTOMER_KIND_COMPANY",
        "industry": "manufacturing",
        "email_addresses": [{"address": f"{unique('buyer')}@acme.example"}],
        **fields,
    }


# Fields other services maintain asynchronously: the reporting service's health score may land
# between two reads of the same customer (without a new etag), so comparisons leave it out.
ASYNC_CUSTOMER_FIELDS = ("health_score",)


def as_written(customer: dict[str, Any]) -> dict[str, Any]:
    """A customer as the API wrote it, without the fields maintained in the background."""
    return {k: v for k, v in customer.items() if k not in ASYNC_CUSTOMER_FIELDS}
