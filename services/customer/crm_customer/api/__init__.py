"""gRPC API of the customer service."""
