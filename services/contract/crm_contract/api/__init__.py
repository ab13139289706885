"""gRPC servicers of the contract service (thin: parse, call a use case, map the result)."""
