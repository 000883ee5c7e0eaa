"""Domain errors. The API layer maps each class to an HTTP status in one table
(`controller.api.errors`); services raise these and never build HTTP responses."""

from __future__ import annotations


class HomerunError(Exception):
    """Base of every error a caller is meant to see; `message` is shown to them."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(HomerunError):
    """The request is malformed or violates a rule (400)."""


class NotAuthenticated(HomerunError):
    """No credentials, or credentials that match nothing (401)."""


class NotAuthorized(HomerunError):
    """Valid credentials that do not reach this resource (403)."""


class NotFound(HomerunError):
    """The addressed entity does not exist (404)."""


class Conflict(HomerunError):
    """The entity exists already or changed underneath the request (409)."""


class TooLarge(HomerunError):
    """A body or a field of it exceeds its size limit (413)."""


class UnsupportedMediaType(HomerunError):
    """The body is not JSON (415)."""
