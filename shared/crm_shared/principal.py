"""Who is calling, and the per-request context (principal, request id) code can read anywhere.

The auth interceptor verifies the JWT and sets these context variables for the
duration of one RPC; use cases read them instead of threading gRPC contexts
through the domain.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from crm_shared.errors import Unauthenticated


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str] = field(default_factory=frozenset)
    team: str = ""
    # The verified bearer token, forwarded on calls made on this user's behalf.
    token: str = field(default="", repr=False)

    @property
    def is_service(self) -> bool:
        return self.subject.startswith("service:")

    def has_role(self, role: str) -> bool:
        return role in self.roles


_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("crm_principal", default=None)
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("crm_request_id", default="")


def current_principal() -> Principal:
    principal = _principal.get()
    if principal is None:
        raise Unauthenticated("no authenticated principal for this call", reason="NO_PRINCIPAL")
    return principal


def optional_principal() -> Principal | None:
    return _principal.get()


def set_principal(principal: Principal | None) -> contextvars.Token:
    return _principal.set(principal)


def reset_principal(token: contextvars.Token) -> None:
    _principal.reset(token)


def current_request_id() -> str:
    return _request_id.get()


def set_request_id(request_id: str) -> contextvars.Token:
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token) -> None:
    _request_id.reset(token)
