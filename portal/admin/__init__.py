"""Administration pages: people, roles, units, settings, plugins."""
