"""What the center refuses or cannot carry out, as plain exceptions by kind. Domain code
raises these; `central.http_errors` alone decides how each kind answers over HTTP."""

from __future__ import annotations

from pydantic import JsonValue


class CenterError(Exception):
    """`str(exc)` is the detail the caller sees; `context` adds facts worth answering with
    (the id of a command that got no result, say)."""

    def __init__(self, detail: str, **context: JsonValue) -> None:
        super().__init__(detail)
        self.context = context


class Invalid(CenterError):
    """The request itself is unusable (an SDP offer without video)."""


class Unprocessable(CenterError):
    """Well formed, but it fails a check (bytes that do not hash to their entry)."""


class TooLarge(CenterError):
    """More than the center takes in one request or for one item."""


class Refused(CenterError):
    """Understood and not allowed (an entry not signed by the unit's pinned key)."""


class NotFound(CenterError):
    """No such unit, stream or session."""


class Conflict(CenterError):
    """It exists, but its state rules the request out now (a unit offline)."""


class NotAuthorized(CenterError):
    """No token, or one that is forged, malformed or expired."""


class Forbidden(NotAuthorized):
    """A valid token, for another stream or use."""


class Unavailable(CenterError):
    """A part the center needs (the broker, a relay worker) cannot be reached; worth
    asking again after `retry_after_s` when given."""

    def __init__(self, detail: str, retry_after_s: int | None = None, **context: JsonValue) -> None:
        super().__init__(detail, **context)
        self.retry_after_s = retry_after_s


class Failed(CenterError):
    """A unit was asked and answered that it could not."""


class TimedOut(CenterError):
    """A unit or a relay worker did not get there in time."""


class UnknownUnit(NotFound):
    def __init__(self, unit_id: str) -> None:
        super().__init__(f"unknown unit {unit_id}")


class UnitOffline(Conflict):
    def __init__(self, unit_id: str) -> None:
        super().__init__(f"unit {unit_id} is offline")
