"""Service functions: one per operation, called by the thin API handlers and the CLI."""
