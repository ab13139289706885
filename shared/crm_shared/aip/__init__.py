"""Google AIP helpers: page tokens and keyset paging, filters, field masks, etags."""
