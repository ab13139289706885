"""gRPC servicers of the servicedesk (thin: parse, call a use case, map the result)."""
