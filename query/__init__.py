"""legacylake.query."""
