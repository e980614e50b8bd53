"""One sign-in attempt end to end: throttle, argon2id password, TOTP, with real hashes."""

import pyotp
import pytest

from central.access.passwords import PasswordHasher, PasswordSettings
from central.access.policy import Role
from central.access.signin import Attempt, Credentials, Outcome, SignInDesk, SignInResult
from central.access.throttle import Failures, SignInThrottle, ThrottleSettings

CHEAP = PasswordSettings(time_cost=1, memory_kib=8192, parallelism=1)
PASSWORD = "the right password"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(CHEAP)


@pytest.fixture(scope="module")
def desk(hasher: PasswordHasher) -> SignInDesk:
    return SignInDesk(hasher, SignInThrottle(ThrottleSettings()))


@pytest.fixture(scope="module")
def dispatcher(hasher: PasswordHasher) -> Credentials:
    return Credentials("alice", Role.DISPATCHER, hasher.hash(PASSWORD), totp_secret=SECRET)


def code(now: float) -> str:
    return pyotp.TOTP(SECRET).at(now)


def attempt(
    password: str,
    code: str | None,
    now: float,
    account: Failures | None = None,
    address: Failures | None = None,
) -> Attempt:
    return Attempt(password, code, account or Failures(), address or Failures(), now)


def test_password_and_code_sign_in_and_the_step_is_kept(
    desk: SignInDesk, dispatcher: Credentials
) -> None:
    earlier = Failures(2, T0 - 100)
    result = desk.sign_in(dispatcher, attempt(PASSWORD, code(T0), T0, earlier))
    assert result.signed_in
    assert result.account_failures == Failures()
    assert result.totp_step == int(T0 // 30)
    assert result.new_password_hash is None


@pytest.mark.parametrize("typed_code", [None, "", "000000"])
def test_a_wrong_or_missing_code_is_a_failed_attempt(
    desk: SignInDesk, dispatcher: Credentials, typed_code: str | None
) -> None:
    if typed_code == "000000" and code(T0) == "000000":
        typed_code = "111111"
    result = desk.sign_in(dispatcher, attempt(PASSWORD, typed_code, T0))
    assert result.outcome is Outcome.WRONG
    assert result.account_failures.count == result.address_failures.count == 1


def test_a_code_used_once_is_refused_again(desk: SignInDesk, dispatcher: Credentials) -> None:
    first = desk.sign_in(dispatcher, attempt(PASSWORD, code(T0), T0))
    used = Credentials(
        dispatcher.username,
        dispatcher.role,
        dispatcher.password_hash,
        totp_secret=SECRET,
        last_totp_step=first.totp_step,
    )
    assert desk.sign_in(used, attempt(PASSWORD, code(T0), T0 + 1)).outcome is Outcome.WRONG


def test_a_role_that_needs_a_second_factor_cannot_sign_in_without_one(
    desk: SignInDesk, hasher: PasswordHasher
) -> None:
    for role in (Role.ADMIN, Role.SUPERVISOR, Role.DISPATCHER):
        bob = Credentials("bob", role, hasher.hash(PASSWORD))
        counts = Failures(1, T0 - 60)
        result = desk.sign_in(bob, attempt(PASSWORD, None, T0, counts))
        assert result == SignInResult(Outcome.SECOND_FACTOR_NOT_ENROLLED, counts, Failures())


def test_patrol_and_tech_sign_in_with_the_password_alone(
    desk: SignInDesk, hasher: PasswordHasher
) -> None:
    for role in (Role.PATROL, Role.TECH):
        car = Credentials("car-12", role, hasher.hash(PASSWORD))
        assert desk.sign_in(car, attempt(PASSWORD, None, T0)).signed_in
        enrolled = Credentials("car-12", role, car.password_hash, totp_secret=SECRET)
        assert desk.sign_in(enrolled, attempt(PASSWORD, None, T0)).outcome is Outcome.WRONG
        assert desk.sign_in(enrolled, attempt(PASSWORD, code(T0), T0)).signed_in


def test_an_unknown_name_is_a_failed_attempt(desk: SignInDesk) -> None:
    result = desk.sign_in(None, attempt(PASSWORD, None, T0))
    assert result.outcome is Outcome.WRONG
    assert result.account_failures.count == result.address_failures.count == 1


def test_a_disabled_account_is_refused_even_with_the_right_password(
    desk: SignInDesk, dispatcher: Credentials
) -> None:
    disabled = Credentials(
        "alice", Role.DISPATCHER, dispatcher.password_hash, disabled=True, totp_secret=SECRET
    )
    assert desk.sign_in(disabled, attempt(PASSWORD, code(T0), T0)).outcome is Outcome.DISABLED
    wrong = desk.sign_in(disabled, attempt("not it", code(T0), T0))
    assert wrong.outcome is Outcome.WRONG


def test_five_failures_lock_and_password_and_code_are_refused_until_the_lock_ends(
    desk: SignInDesk, dispatcher: Credentials
) -> None:
    account, address, now = Failures(), Failures(), T0
    for _ in range(5):
        result = desk.sign_in(dispatcher, attempt("a wrong one", None, now, account, address))
        assert result.outcome is Outcome.WRONG
        account, address = result.account_failures, result.address_failures
        now += 60
    assert account.locked_until == now - 60 + 600
    locked = desk.sign_in(dispatcher, attempt(PASSWORD, code(now), now, account, address))
    assert locked.outcome is Outcome.LOCKED
    assert (locked.account_failures, locked.address_failures) == (account, address)
    assert locked.retry_after_s == account.locked_until - now
    assert account.locked_until is not None
    after = account.locked_until
    assert desk.sign_in(
        dispatcher, attempt(PASSWORD, code(after), after, account, address)
    ).signed_in


def test_quick_retries_are_told_to_wait(desk: SignInDesk, dispatcher: Credentials) -> None:
    first = desk.sign_in(dispatcher, attempt("wrong", None, T0))
    second = desk.sign_in(
        dispatcher, attempt("wrong", None, T0 + 0.1, first.account_failures, first.address_failures)
    )
    third = desk.sign_in(
        dispatcher,
        attempt(PASSWORD, code(T0), T0 + 0.2, second.account_failures, second.address_failures),
    )
    assert (second.outcome, third.outcome) == (Outcome.WRONG, Outcome.TOO_SOON)
    assert third.retry_after_s == pytest.approx(0.9)


def test_a_raised_cost_gives_a_new_hash_on_sign_in(hasher: PasswordHasher) -> None:
    patrol = Credentials("car-12", Role.PATROL, hasher.hash(PASSWORD))
    stronger = PasswordHasher(CHEAP.model_copy(update={"time_cost": 2}))
    desk = SignInDesk(stronger, SignInThrottle(ThrottleSettings()))
    result = desk.sign_in(patrol, attempt(PASSWORD, None, T0))
    assert result.signed_in and result.new_password_hash is not None
    assert not stronger.needs_rehash(result.new_password_hash)
    assert stronger.verify(result.new_password_hash, PASSWORD)
