"""Personal data: encryption at rest, blind indexes, normalization and masking."""
