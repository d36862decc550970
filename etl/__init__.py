"""legacylake.etl."""
