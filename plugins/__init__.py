"""Built-in chapter plugins, one per chapter of the policy. Each is found through the
``portal.plugins`` entry-point group exactly as a third-party plugin is."""
