"""gRPC servicers of the reporting service (thin: parse, call a use case, map the result)."""
