"""Rich gRPC errors: DomainError -> google.rpc.Status, and back again on the client side.

The server sends the canonical code plus a google.rpc.Status in the
`grpc-status-details-bin` trailer carrying ErrorInfo (always) and BadRequest
(for field violations). `error_details` is what clients and tests use to read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from crm_shared.errors import DomainError

STATUS_DETAILS_KEY = "grpc-status-details-bin"


def status_code_for(error: DomainError) -> grpc.StatusCode:
    try:
        return grpc.StatusCode[error.code]
    except KeyError:
        return grpc.StatusCode.UNKNOWN


def rpc_status_for(error: DomainError, domain: str) -> status_pb2.Status:
    return build_rpc_status(
        status_code_for(error),
        error.message,
        reason=error.reason,
        domain=domain,
        metadata=error.metadata,
        field_violations=[(violation.field, violation.description) for violation in error.field_violations],
    )


def build_rpc_status(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: str,
    domain: str,
    metadata: dict[str, str] | None = None,
    field_violations: list[tuple[str, str]] | None = None,
) -> status_pb2.Status:
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=metadata or {})
    )
    if field_violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=path, description=description)
                for path, description in field_violations
            ]
        )
        status.details.add().Pack(bad_request)
    return status


def grpc_status_for(error: DomainError, domain: str) -> grpc.Status:
    """What `context.abort_with_status` takes."""
    return rpc_status.to_status(rpc_status_for(error, domain))


@dataclass(frozen=True)
class ErrorDetails:
    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    # field path -> description; a path with several violations keeps them joined by "; ".
    field_violations: dict[str, str] = field(default_factory=dict)


def error_details(rpc_error: grpc.RpcError) -> ErrorDetails:
    """Reads code, message, ErrorInfo and BadRequest from a failed call (sync or grpc.aio)."""
    code = rpc_error.code()  # type: ignore[attr-defined]
    message = rpc_error.details() or ""  # type: ignore[attr-defined]
    status = _status_from_trailer(rpc_error.trailing_metadata())  # type: ignore[attr-defined]
    if status is None:
        return ErrorDetails(code=code, message=message)
    if status.code != code.value[0]:
        # The trailer must describe the same failure the status line does; anything else is a bug.
        raise ValueError(
            f"status details code {code_pb2.Code.Name(status.code)} does not match call code {code.name}"
        )
    reason = domain = ""
    metadata: dict[str, str] = {}
    violations: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            for violation in bad_request.field_violations:
                previous = violations.get(violation.field)
                violations[violation.field] = (
                    f"{previous}; {violation.description}" if previous else violation.description
                )
    return ErrorDetails(code, message, reason, domain, metadata, violations)


def _status_from_trailer(trailing_metadata: object) -> status_pb2.Status | None:
    for key, value in trailing_metadata or ():  # type: ignore[attr-defined]
        if key == STATUS_DETAILS_KEY:
            return status_pb2.Status.FromString(value)
    return None
