"""Browser session lifetime (pure: time comes in as an argument). CJIS 5.5.5.

A session is active while it is used; after `idle_lock_s` without use it locks and only the
password opens it again; after `absolute_s` from sign-in it is over whatever happens. Signing
out ends it for good, and since the record lives in the shared database, everywhere it is
used at once. `valid_after` (kept per user) ends every session of a user signed in before
it: sign-out everywhere, a disabled account, a new password or a new role.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class SessionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idle_lock_s: float = Field(
        default=1800.0, gt=0, le=86_400, description="Unused this long, a session locks."
    )
    absolute_s: float = Field(
        default=43_200.0, gt=0, le=604_800, description="A session ends this long after sign-in."
    )


class SessionState(StrEnum):
    ACTIVE = "active"
    LOCKED = "locked"  # idle too long, or locked by its user: the password opens it again
    EXPIRED = "expired"  # past its absolute lifetime: sign in again
    ENDED = "ended"  # signed out, or ended by `valid_after`


class EndReason(StrEnum):
    SIGNED_OUT = "signed_out"
    ENDED_BY_ADMIN = "ended_by_admin"


@dataclass(frozen=True, slots=True)
class Session:
    """What the database keeps of one session; `token_hash` is the SHA-256 of the opaque
    id in the cookie (see `credentials`), never the id itself."""

    token_hash: str
    user: str
    created_at: float
    last_used_at: float
    locked_at: float | None = None
    ended_at: float | None = None
    end_reason: EndReason | None = None


class SessionRefused(Exception):
    """The session is not in a state that allows this; `state` says which it is in."""

    def __init__(self, state: SessionState) -> None:
        super().__init__(f"session is {state}")
        self.state = state


def start(token_hash: str, user: str, now: float) -> Session:
    return Session(token_hash=token_hash, user=user, created_at=now, last_used_at=now)


def state_of(
    session: Session, settings: SessionSettings, now: float, valid_after: float | None = None
) -> SessionState:
    if session.ended_at is not None:
        return SessionState.ENDED
    if valid_after is not None and session.created_at <= valid_after:
        return SessionState.ENDED
    if now >= session.created_at + settings.absolute_s:
        return SessionState.EXPIRED
    if session.locked_at is not None or now >= session.last_used_at + settings.idle_lock_s:
        return SessionState.LOCKED
    return SessionState.ACTIVE


def use(
    session: Session, settings: SessionSettings, now: float, valid_after: float | None = None
) -> Session:
    """A request on the session: allowed only while active, and it keeps it active."""
    state = state_of(session, settings, now, valid_after)
    if state is not SessionState.ACTIVE:
        raise SessionRefused(state)
    return replace(session, last_used_at=max(session.last_used_at, now))


def lock(session: Session, settings: SessionSettings, now: float) -> Session:
    """Records the lock of an active or idle session (when it locked); a session already
    locked, expired or ended stays as it is."""
    state = state_of(session, settings, now)
    if session.locked_at is not None or state not in (SessionState.ACTIVE, SessionState.LOCKED):
        return session
    if state is SessionState.ACTIVE:
        return replace(session, locked_at=now)
    return replace(session, locked_at=session.last_used_at + settings.idle_lock_s)


def unlock(
    session: Session,
    settings: SessionSettings,
    now: float,
    password_ok: bool,
    valid_after: float | None = None,
) -> Session:
    """The password entered again on a locked (or active) session opens it; an expired or
    ended session stays closed whatever is entered."""
    state = state_of(session, settings, now, valid_after)
    if state in (SessionState.EXPIRED, SessionState.ENDED) or not password_ok:
        raise SessionRefused(state)
    return replace(session, locked_at=None, last_used_at=max(session.last_used_at, now))


def end(session: Session, now: float, reason: EndReason = EndReason.SIGNED_OUT) -> Session:
    if session.ended_at is not None:
        return session
    return replace(session, ended_at=now, end_reason=reason)


def expires_at(session: Session, settings: SessionSettings) -> float:
    """When the session is over at the latest (the cookie's and the database row's end)."""
    return session.created_at + settings.absolute_s
