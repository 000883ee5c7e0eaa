"""Alembic migrations for the controller's database."""
