"""Domain exceptions; `web` maps each to one HTTP status in one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class FengqiaoError(Exception):
    """Base of every error a use case raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(FengqiaoError):
    """The thing does not exist, or is outside the caller's scope (never say which)."""

    code = "not_found"


class PermissionDeniedError(FengqiaoError):
    """The caller can see the thing but may not do this to it."""

    code = "forbidden"


class ConflictError(FengqiaoError):
    """A lost race (row version) or an action that the current state does not allow."""

    code = "conflict"


class InvalidTransitionError(ConflictError):
    """The case or task is not in a state where this action applies."""

    code = "invalid_transition"


class ValidationError(FengqiaoError):
    """Bad input, with messages per field; nothing was changed."""

    code = "validation_error"

    def __init__(
        self, message: str, errors: Mapping[str, Sequence[str] | Mapping[str, object]] | None = None
    ) -> None:
        super().__init__(message)
        self.errors: dict[str, object] = dict(errors or {})


class AuthenticationError(FengqiaoError):
    """Missing, wrong, expired or revoked credentials."""

    code = "unauthorized"
