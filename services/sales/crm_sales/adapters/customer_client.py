"""The customer service as ConvertLead needs it: create-or-link a customer, create a contact.

Calls go out on behalf of the caller (crm_shared.grpc.client forwards their token) with
the configured deadline. Remote failures become domain errors: unreachable or too slow
-> UNAVAILABLE (retryable); anything the customer service refuses -> a clear error.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import grpc

from crm.customer.v1 import customer_pb2, customer_service_pb2, customer_service_pb2_grpc
from crm_shared.errors import DomainError, FailedPrecondition, PermissionDenied, Unavailable
from crm_shared.grpc.client import open_channel
from crm_shared.grpc.status import error_details

_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)


@dataclass(frozen=True)
class CustomerDraft:
    display_name: str
    is_company: bool
    source: str
    owner: str
    team: str
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ContactDraft:
    display_name: str
    title: str
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    notes: str = ""


_closing: set[asyncio.Future] = set()


def _close_later(channel: grpc.aio.Channel) -> None:
    task = asyncio.ensure_future(channel.close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


def _translate(error: grpc.RpcError, doing: str) -> DomainError:
    details = error_details(error)
    if details.code in _RETRYABLE:
        return Unavailable(
            f"the customer service is unavailable ({details.code.name}) while {doing}; "
            "nothing was changed here, retry later",
            reason="CUSTOMER_SERVICE_UNAVAILABLE",
            metadata={"downstream_code": details.code.name},
        )
    if details.code is grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(
            f"the customer service refused {doing}: {details.message}",
            reason=details.reason or "CUSTOMER_SERVICE_DENIED",
        )
    return FailedPrecondition(
        f"the customer service refused {doing} ({details.code.name}: {details.message})",
        reason="CUSTOMER_SERVICE_REJECTED",
        metadata={"downstream_code": details.code.name, "downstream_reason": details.reason},
    )


class CustomerServiceClient:
    def __init__(self, target: str, *, timeout: float) -> None:
        self._target = target
        self._timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._stub: customer_service_pb2_grpc.CustomerServiceStub | None = None

    def _customers(self) -> customer_service_pb2_grpc.CustomerServiceStub:
        if self._stub is None:
            # A local subchannel pool: a fresh channel must not inherit a shared subchannel that is
            # still backing off from an earlier failure.
            self._channel = open_channel(
                self._target,
                default_timeout=self._timeout,
                options=[("grpc.use_local_subchannel_pool", 1)],
            )
            self._stub = customer_service_pb2_grpc.CustomerServiceStub(self._channel)
        return self._stub

    def _reset_after_failure(self) -> None:
        """A channel that failed to connect backs off before trying again (up to minutes), so a
        retry right after the customer service is back would still fail: start afresh instead.
        The old channel closes once calls still on it have had their deadline."""
        old, self._channel, self._stub = self._channel, None, None
        if old is not None:
            asyncio.get_running_loop().call_later(self._timeout + 1, _close_later, old)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel, self._stub = None, None

    def _failed(self, error: grpc.RpcError, doing: str) -> DomainError:
        translated = _translate(error, doing)
        if translated.code == "UNAVAILABLE":
            self._reset_after_failure()
        return translated

    async def create_or_link_customer(self, draft: CustomerDraft, *, request_id: str) -> tuple[str, bool]:
        """(customer name, linked): linked when one with the same email/phone already existed."""
        customer = customer_pb2.Customer(
            kind=customer_pb2.CUSTOMER_KIND_COMPANY
            if draft.is_company
            else customer_pb2.CUSTOMER_KIND_PERSON,
            display_name=draft.display_name,
            source=draft.source,
            owner=draft.owner,
            team=draft.team,
            phone_numbers=[customer_pb2.PhoneNumber(number=p) for p in draft.phones],
            email_addresses=[customer_pb2.EmailAddress(address=e) for e in draft.emails],
        )
        request = customer_service_pb2.CreateCustomerRequest(customer=customer, request_id=request_id)
        try:
            reply = await self._customers().CreateCustomer(request)
        except grpc.RpcError as error:
            details = error_details(error)
            existing = details.metadata.get("existing", "")
            if details.code is grpc.StatusCode.ALREADY_EXISTS and existing:
                return existing, True
            if details.code is grpc.StatusCode.INVALID_ARGUMENT and details.reason == "REQUEST_ID_REUSED":
                raise FailedPrecondition(
                    "this lead's conversion was started by another user or with different lead data; "
                    "the customer may already exist: ask the user who started it, or an admin",
                    reason="CONVERSION_STARTED_ELSEWHERE",
                ) from None
            raise self._failed(error, "creating the customer") from None
        return reply.name, False

    async def create_contact(self, customer: str, draft: ContactDraft, *, request_id: str) -> str:
        contact = customer_pb2.Contact(
            display_name=draft.display_name,
            title=draft.title,
            phone_numbers=[customer_pb2.PhoneNumber(number=p) for p in draft.phones],
            email_addresses=[customer_pb2.EmailAddress(address=e) for e in draft.emails],
            is_primary=True,
            notes=draft.notes,
        )
        request = customer_service_pb2.CreateContactRequest(
            parent=customer, contact=contact, request_id=request_id
        )
        try:
            reply = await self._customers().CreateContact(request)
        except grpc.RpcError as error:
            details = error_details(error)
            if details.code is grpc.StatusCode.NOT_FOUND:
                raise FailedPrecondition(
                    f"the lead matches the existing customer {customer}, which is outside your data scope; "
                    "ask its owner or a manager to convert the lead",
                    reason="LINKED_CUSTOMER_OUT_OF_SCOPE",
                    metadata={"customer": customer},
                ) from None
            raise self._failed(error, "creating the contact") from None
        return reply.name
