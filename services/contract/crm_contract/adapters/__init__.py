"""Tables, repositories and clients of the contract service."""
