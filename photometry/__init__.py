"""legacylake.photometry."""
