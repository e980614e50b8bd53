"""Session lifetime: idle lock, absolute end, sign-out everywhere (CJIS 5.5.5)."""

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from central.access.sessions import (
    EndReason,
    Session,
    SessionRefused,
    SessionSettings,
    SessionState,
    end,
    expires_at,
    lock,
    start,
    state_of,
    unlock,
    use,
)

SETTINGS = SessionSettings()
T0 = 1_000.0


def test_defaults_lock_after_thirty_idle_minutes_and_end_after_twelve_hours() -> None:
    assert (SETTINGS.idle_lock_s, SETTINGS.absolute_s) == (1800.0, 43_200.0)


def test_use_keeps_a_session_active() -> None:
    session = start("h", "alice", T0)
    for minute in range(1, 100):
        session = use(session, SETTINGS, T0 + minute * 60)
    assert state_of(session, SETTINGS, T0 + 99 * 60) is SessionState.ACTIVE


def test_idle_for_thirty_minutes_locks_and_the_password_opens_it() -> None:
    session = start("h", "alice", T0)
    assert state_of(session, SETTINGS, T0 + 1799) is SessionState.ACTIVE
    assert state_of(session, SETTINGS, T0 + 1800) is SessionState.LOCKED
    with pytest.raises(SessionRefused) as refused:
        use(session, SETTINGS, T0 + 1800)
    assert refused.value.state is SessionState.LOCKED
    with pytest.raises(SessionRefused):
        unlock(session, SETTINGS, T0 + 1800, password_ok=False)
    opened = unlock(session, SETTINGS, T0 + 1900, password_ok=True)
    assert state_of(opened, SETTINGS, T0 + 1900) is SessionState.ACTIVE
    assert use(opened, SETTINGS, T0 + 2000).last_used_at == T0 + 2000


def test_a_lock_is_recorded_when_it_happened() -> None:
    session = start("h", "alice", T0)
    assert lock(session, SETTINGS, T0 + 10).locked_at == T0 + 10
    idle = lock(session, SETTINGS, T0 + 5000)
    assert idle.locked_at == T0 + 1800
    assert lock(idle, SETTINGS, T0 + 6000) is idle
    assert state_of(lock(session, SETTINGS, T0 + 10), SETTINGS, T0 + 11) is SessionState.LOCKED


def test_the_absolute_lifetime_ends_even_a_busy_session() -> None:
    session = start("h", "alice", T0)
    for ten_minutes in range(1, 72):
        session = use(session, SETTINGS, T0 + ten_minutes * 600)
    assert expires_at(session, SETTINGS) == T0 + 43_200
    assert state_of(session, SETTINGS, T0 + 43_200) is SessionState.EXPIRED
    for password_ok in (True, False):
        with pytest.raises(SessionRefused) as refused:
            unlock(session, SETTINGS, T0 + 43_200, password_ok)
        assert refused.value.state is SessionState.EXPIRED


def test_sign_out_ends_a_session_for_good() -> None:
    session = end(start("h", "alice", T0), T0 + 5)
    assert (session.ended_at, session.end_reason) == (T0 + 5, EndReason.SIGNED_OUT)
    assert end(session, T0 + 9, EndReason.ENDED_BY_ADMIN) is session
    assert state_of(session, SETTINGS, T0 + 6) is SessionState.ENDED
    with pytest.raises(SessionRefused):
        unlock(session, SETTINGS, T0 + 6, password_ok=True)


def test_valid_after_ends_every_session_signed_in_before_it() -> None:
    before = start("h1", "alice", T0)
    after = start("h2", "alice", T0 + 20)
    assert state_of(before, SETTINGS, T0 + 30, valid_after=T0 + 10) is SessionState.ENDED
    assert state_of(after, SETTINGS, T0 + 30, valid_after=T0 + 10) is SessionState.ACTIVE
    with pytest.raises(SessionRefused):
        use(before, SETTINGS, T0 + 30, valid_after=T0 + 10)


def test_a_clock_stepping_back_never_moves_last_use_back() -> None:
    session = use(start("h", "alice", T0), SETTINGS, T0 + 100)
    assert use(session, SETTINGS, T0 + 50).last_used_at == T0 + 100


SHORT = SessionSettings(idle_lock_s=60.0, absolute_s=600.0)


class SessionLife(RuleBasedStateMachine):
    """Any sequence of use, lock, unlock, sign-out, sign-out-everywhere and time passing
    keeps the rules: ended and expired are final, nothing is active past its idle or
    absolute limit, and a request succeeds exactly when the session is active."""

    @initialize()
    def sign_in(self) -> None:
        self.now = T0
        self.session: Session = start("h", "alice", T0)
        self.valid_after: float | None = None
        self.final: SessionState | None = None

    def state(self) -> SessionState:
        return state_of(self.session, SHORT, self.now, self.valid_after)

    @rule(seconds=st.floats(0, 200))
    def wait(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def request(self) -> None:
        before = self.state()
        try:
            self.session = use(self.session, SHORT, self.now, self.valid_after)
        except SessionRefused as refused:
            assert refused.state is before is not SessionState.ACTIVE
        else:
            assert before is SessionState.ACTIVE

    @rule()
    def lock_screen(self) -> None:
        self.session = lock(self.session, SHORT, self.now)
        assert self.state() is not SessionState.ACTIVE

    @rule(password_ok=st.booleans())
    def enter_password(self, password_ok: bool) -> None:
        before = self.state()
        try:
            self.session = unlock(self.session, SHORT, self.now, password_ok, self.valid_after)
        except SessionRefused:
            assert not password_ok or before in (SessionState.EXPIRED, SessionState.ENDED)
        else:
            assert password_ok and self.state() is SessionState.ACTIVE

    @rule()
    def sign_out(self) -> None:
        self.session = end(self.session, self.now)

    @rule()
    def sign_out_everywhere(self) -> None:
        self.valid_after = self.now

    @invariant()
    def rules_hold(self) -> None:
        state = self.state()
        if self.final is SessionState.ENDED:
            assert state is SessionState.ENDED
        if self.final is SessionState.EXPIRED:
            assert state in (SessionState.EXPIRED, SessionState.ENDED)
        if state in (SessionState.EXPIRED, SessionState.ENDED):
            self.final = state
        if self.now >= self.session.created_at + SHORT.absolute_s:
            assert state is not SessionState.ACTIVE
        if state is SessionState.ACTIVE:
            assert self.now - self.session.last_used_at < SHORT.idle_lock_s


TestSessionLife = SessionLife.TestCase
