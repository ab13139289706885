"""The customer service as the ticket snapshot needs it: GetCustomer with a short deadline.

At ticket creation the call goes out on behalf of the caller (crm_shared.grpc.client forwards
their token); the snapshot retry timer has no caller and passes the servicedesk's own service
identity token instead (ServiceTokenFile). Outcomes: the customer's facts, None when it does not
exist, or Unavailable when the customer service is down, slow or refuses us (retry later).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import grpc

from crm.customer.v1 import customer_pb2, customer_service_pb2, customer_service_pb2_grpc
from crm_servicedesk.domain.tickets import CustomerFacts
from crm_shared.errors import Unavailable
from crm_shared.grpc.client import AUTHORIZATION, open_channel
from crm_shared.grpc.status import error_details

log = logging.getLogger(__name__)

_closing: set[asyncio.Future] = set()


def _close_later(channel: grpc.aio.Channel) -> None:
    task = asyncio.ensure_future(channel.close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


def _enum_label(enum_type, value: int, prefix: str) -> str:
    """CUSTOMER_TIER_A -> "A", LIFECYCLE_STAGE_AT_RISK -> "at_risk"; UNSPECIFIED -> ""."""
    name = enum_type.Name(value) if value in enum_type.values() else ""
    return "" if not name or name.endswith("_UNSPECIFIED") else name.removeprefix(prefix)


def customer_facts(customer: customer_pb2.Customer) -> CustomerFacts:
    return CustomerFacts(
        display_name=customer.display_name,
        tier=_enum_label(customer_pb2.CustomerTier, customer.tier, "CUSTOMER_TIER_"),
        lifecycle_stage=_enum_label(
            customer_pb2.LifecycleStage, customer.lifecycle_stage, "LIFECYCLE_STAGE_"
        ).lower(),
        owner=customer.owner,
        team=customer.team,
    )


class ServiceTokenFile:
    """The servicedesk's service identity (a JWT with role `service`) kept in a file.

    The platform refreshes the file before the token expires, so it is read again whenever its
    modification time changes. No file (or an empty one) means no identity: None.
    """

    def __init__(self, path: str) -> None:
        self._path = Path(path) if path else None
        self._seen: tuple[float, str] | None = None

    def read(self) -> str | None:
        if self._path is None:
            return None
        try:
            modified = os.stat(self._path).st_mtime
        except OSError:
            return None
        if self._seen is None or self._seen[0] != modified:
            self._seen = (modified, self._path.read_text().strip())
        return self._seen[1] or None


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
        """A channel that failed to connect backs off before trying again (up to minutes), so the
        next retry would still fail: start afresh. The old channel closes after its calls' deadline."""
        old, self._channel, self._stub = self._channel, None, None
        if old is not None:
            asyncio.get_running_loop().call_later(self._timeout + 1, _close_later, old)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel, self._stub = None, None

    async def fetch(self, customer: str, *, token: str | None = None) -> CustomerFacts | None:
        """The customer's facts; None when it does not exist; Unavailable when we cannot tell now.

        `token`: call as this identity (the retry timer); None: as the current caller.
        """
        metadata = ((AUTHORIZATION, f"Bearer {token}"),) if token else None
        try:
            reply = await self._customers().GetCustomer(
                customer_service_pb2.GetCustomerRequest(name=customer), metadata=metadata
            )
        except grpc.RpcError as error:
            details = error_details(error)
            if details.code is grpc.StatusCode.NOT_FOUND:
                return None
            if details.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                self._reset_after_failure()
            # Down, slow, or not allowed for this caller (a customer_portal token): the retry timer
            # asks again later with the service identity.
            raise Unavailable(
                f"the customer service could not give {customer} ({details.code.name})",
                reason="CUSTOMER_SERVICE_UNAVAILABLE",
                metadata={"downstream_code": details.code.name},
            ) from None
        return customer_facts(reply)
