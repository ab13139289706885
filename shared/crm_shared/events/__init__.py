"""Domain events: envelope, transactional outbox relay, durable consumers."""
