"""Sign-in throttling and lockout (CJIS 5.5.3), alone and with real password hashes."""

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.access.passwords import PasswordHasher, PasswordSettings
from central.access.throttle import (
    Admission,
    Failures,
    Refusal,
    SignInThrottle,
    ThrottlePolicy,
    ThrottleSettings,
    check,
    current,
    fail,
)

ACCOUNT = ThrottlePolicy()
THROTTLE = SignInThrottle(ThrottleSettings())


def fail_times(policy: ThrottlePolicy, times: list[float]) -> Failures:
    failures = Failures()
    for now in times:
        failures = fail(failures, policy, now)
    return failures


def test_defaults_lock_an_account_for_ten_minutes_after_five_failures() -> None:
    assert (ACCOUNT.lock_after, ACCOUNT.lock_s) == (5, 600.0)


def test_waits_grow_with_failures_up_to_a_cap() -> None:
    assert [ACCOUNT.delay_s(n) for n in range(8)] == [0, 0, 1, 2, 4, 8, 16, 30]
    assert ACCOUNT.delay_s(10**9) == 30


@given(
    st.integers(0, 20),
    st.floats(0, 100),
    st.floats(0, 10_000),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
)
def test_waits_never_shrink_as_failures_grow(
    free: int, base: float, cap: float, fewer: int, extra: int
) -> None:
    policy = ThrottlePolicy(free_failures=free, base_delay_s=base, max_delay_s=cap)
    assert 0 <= policy.delay_s(fewer) <= policy.delay_s(fewer + extra) <= cap


def test_an_attempt_before_the_wait_is_over_is_refused_and_says_when() -> None:
    failures = fail_times(ACCOUNT, [100.0, 101.0])
    assert check(failures, ACCOUNT, 101.5) == Admission(Refusal.TOO_SOON, 0.5)
    assert check(failures, ACCOUNT, 102.0).admitted


def test_the_fifth_failure_locks_and_the_lock_ends_by_itself() -> None:
    failures = fail_times(ACCOUNT, [0.0, 10.0, 20.0, 30.0])
    assert failures.locked_until is None
    failures = fail(failures, ACCOUNT, 40.0)
    assert failures == Failures(5, 40.0, 640.0)
    assert check(failures, ACCOUNT, 639.0) == Admission(Refusal.LOCKED, 1.0)
    assert check(failures, ACCOUNT, 640.0).admitted
    assert current(failures, ACCOUNT, 640.0) == Failures()


def test_a_quiet_spell_clears_an_address_count() -> None:
    address = ThrottleSettings().address
    failures = fail_times(address, [float(t) for t in range(12)])
    assert check(failures, address, 12.0).refusal is Refusal.TOO_SOON
    assert current(failures, address, 11.0 + 3600.0) == Failures()


def test_an_account_count_has_no_quiet_spell_by_default() -> None:
    failures = fail_times(ACCOUNT, [0.0])
    assert current(failures, ACCOUNT, 10**9) == failures


def test_a_policy_without_lock_only_slows_down() -> None:
    policy = ThrottlePolicy(lock_after=None)
    failures = fail_times(policy, [float(t * 100) for t in range(50)])
    assert failures.locked_until is None and failures.count == 50


def test_success_clears_the_account_but_not_the_address() -> None:
    account, address = Failures(), Failures()
    for now in (0.0, 10.0):
        account, address = THROTTLE.record(account, address, False, now)
    account, address = THROTTLE.record(account, address, True, 20.0)
    assert account == Failures()
    assert address == Failures(2, 10.0)


def test_one_address_guessing_many_accounts_is_slowed_then_locked_out() -> None:
    address = Failures()
    now = 0.0
    for attempt in range(100):
        account = Failures()  # a different account each time
        admission = THROTTLE.admit(account, address, now)
        if not admission.admitted:
            assert admission.refusal is Refusal.TOO_SOON and attempt >= 11
            now += admission.retry_after_s
        assert THROTTLE.admit(account, address, now).admitted
        account, address = THROTTLE.record(account, address, False, now)
    refused = THROTTLE.admit(Failures(), address, now)
    assert refused.refusal is Refusal.LOCKED and refused.retry_after_s == 600.0


def test_a_lock_wins_over_a_wait() -> None:
    locked = fail_times(ACCOUNT, [0.0, 10.0, 20.0, 30.0, 40.0])
    address = ThrottleSettings().address
    slowed = fail_times(address, [float(t) for t in range(30)] + [40.0])
    assert THROTTLE.admit(locked, slowed, 41.0).refusal is Refusal.LOCKED
    assert THROTTLE.admit(Failures(), slowed, 41.0).refusal is Refusal.TOO_SOON


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 120)), max_size=40))
def test_never_admitted_while_locked_and_locked_only_after_enough_failures(
    attempts: list[tuple[bool, float]],
) -> None:
    account, address, now = Failures(), Failures(), 0.0
    consecutive = 0
    for succeeded, pause in attempts:
        now += pause
        admission = THROTTLE.admit(account, address, now)
        if account.locked_until is not None and now < account.locked_until:
            assert admission.refusal is Refusal.LOCKED
        if not admission.admitted:
            continue
        if current(account, ACCOUNT, now) == Failures():
            consecutive = 0
        account, address = THROTTLE.record(account, address, succeeded, now)
        consecutive = 0 if succeeded else consecutive + 1
        assert (account.locked_until is not None) is (consecutive >= 5)
        assert account.count == consecutive


@dataclass
class SignInDesk:
    """What the sign-in route will do: throttle first, then the password, then record."""

    hasher: PasswordHasher
    stored_hash: str
    throttle: SignInThrottle = field(default_factory=lambda: SignInThrottle(ThrottleSettings()))
    account: Failures = field(default_factory=Failures)
    address: Failures = field(default_factory=Failures)
    checked: int = 0

    def sign_in(self, password: str, now: float) -> Refusal | bool:
        admission = self.throttle.admit(self.account, self.address, now)
        if admission.refusal is not None:
            return admission.refusal
        self.checked += 1
        ok = self.hasher.verify(self.stored_hash, password)
        self.account, self.address = self.throttle.record(self.account, self.address, ok, now)
        return ok

    def fail(self, times: int, start: float = 0.0) -> None:
        """`times` wrong passwords, 100 s apart from `start`: each one turned away as wrong."""
        for attempt in range(times):
            assert self.sign_in("a wrong password", start + 100.0 * attempt) is False


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(PasswordSettings(time_cost=1, memory_kib=8192, parallelism=1))


@pytest.fixture
def desk(hasher: PasswordHasher) -> SignInDesk:
    return SignInDesk(hasher, hasher.hash("the right password"))


def test_five_failures_lock_and_the_right_password_is_refused_while_locked(
    desk: SignInDesk,
) -> None:
    desk.fail(5)
    assert desk.sign_in("the right password", 401.0) is Refusal.LOCKED
    assert desk.sign_in("the right password", 400.0 + 599.0) is Refusal.LOCKED
    assert desk.checked == 5  # refused before the password was looked at
    assert desk.sign_in("the right password", 400.0 + 600.0) is True
    assert desk.account == Failures()


def test_a_right_password_before_the_fifth_failure_starts_the_count_again(desk: SignInDesk) -> None:
    desk.fail(4)
    assert desk.sign_in("the right password", 400.0) is True
    desk.fail(4, start=500.0)
    assert desk.sign_in("the right password", 900.0) is True
