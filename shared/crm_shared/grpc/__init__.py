"""The gRPC runtime every service shares: server interceptors, rich errors, client channels."""

from crm_shared.grpc.client import open_channel
from crm_shared.grpc.status import ErrorDetails, error_details, grpc_status_for, rpc_status_for

__all__ = ["ErrorDetails", "error_details", "grpc_status_for", "open_channel", "rpc_status_for"]
