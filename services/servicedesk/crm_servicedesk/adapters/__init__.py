"""Tables, repositories and clients of the servicedesk."""
