"""Sales domain: entities and rules, free of gRPC, SQL and NATS."""
