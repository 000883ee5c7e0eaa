"""The `homerun` command: composes the controller and the invoker into one CLI."""

__version__ = "0.1.0"
