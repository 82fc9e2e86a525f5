"""Authentication: users, roles, permissions, sessions, API tokens, login throttling."""
