"""The organisation tree and the data scopes built on it (P2.1)."""
