"""Persistence: typed SQLAlchemy models, the engine, and migrations glue."""
