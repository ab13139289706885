"""Domain errors: what went wrong, in terms a caller can act on.

Use cases raise these; the gRPC error interceptor turns them into the canonical
status code with a google.rpc.Status carrying ErrorInfo (reason, domain = the
service, metadata) and, for input errors, BadRequest field violations. This
module knows nothing about gRPC: `code` is the canonical code's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: `field` is the request path, e.g. "customer.email_addresses[0].address"."""

    field: str
    description: str


class DomainError(Exception):
    code = "UNKNOWN"
    default_reason = "ERROR"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        field_violations: list[FieldViolation] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})
        self.field_violations = list(field_violations or [])


class InvalidArgument(DomainError):
    code = "INVALID_ARGUMENT"
    default_reason = "INVALID_ARGUMENT"

    @classmethod
    def for_field(cls, field_path: str, description: str, *, reason: str | None = None) -> InvalidArgument:
        return cls(
            f"{field_path}: {description}",
            reason=reason,
            field_violations=[FieldViolation(field_path, description)],
        )


class NotFound(DomainError):
    code = "NOT_FOUND"
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    code = "ALREADY_EXISTS"
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    code = "FAILED_PRECONDITION"
    default_reason = "FAILED_PRECONDITION"


class Aborted(DomainError):
    code = "ABORTED"
    default_reason = "ABORTED"


class PermissionDenied(DomainError):
    code = "PERMISSION_DENIED"
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"
    default_reason = "UNAUTHENTICATED"


class ResourceExhausted(DomainError):
    code = "RESOURCE_EXHAUSTED"
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(DomainError):
    """A dependency is down; the caller may retry."""

    code = "UNAVAILABLE"
    default_reason = "UNAVAILABLE"


@dataclass
class Violations:
    """Collects field violations so a caller hears about every bad field at once."""

    items: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str) -> None:
        self.items.append(FieldViolation(field_path, description))

    def raise_if_any(self, message: str = "request has invalid fields") -> None:
        if self.items:
            raise InvalidArgument(message, field_violations=self.items)
