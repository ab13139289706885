"""gRPC API of the sales service."""
