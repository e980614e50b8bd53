"""argon2id password hashes and one-time passwords."""

import re

import pytest
from pydantic import ValidationError

from central.access.passwords import (
    MAX_PASSWORD_CHARS,
    READABLE_ALPHABET,
    PasswordHasher,
    PasswordSettings,
    one_time_password,
    password_problem,
)

# The cheapest cost argon2id allows here: the tests check behaviour, not strength.
CHEAP = PasswordSettings(time_cost=1, memory_kib=8192, parallelism=1)


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(CHEAP)


def test_a_hash_is_argon2id_with_the_configured_cost(hasher: PasswordHasher) -> None:
    stored = hasher.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert "correct horse" not in stored


def test_the_right_password_verifies_and_others_do_not(hasher: PasswordHasher) -> None:
    stored = hasher.hash("correct horse battery staple")
    assert hasher.verify(stored, "correct horse battery staple")
    assert not hasher.verify(stored, "correct horse battery stapl")
    assert not hasher.verify(stored, "")
    assert not hasher.verify(stored, "x" * (MAX_PASSWORD_CHARS + 1))


def test_the_same_password_hashes_differently_each_time(hasher: PasswordHasher) -> None:
    assert hasher.hash("same password here") != hasher.hash("same password here")


def test_a_malformed_hash_is_refused_not_raised(hasher: PasswordHasher) -> None:
    assert not hasher.verify("not a hash", "anything")
    assert not hasher.verify("", "anything")
    assert hasher.needs_rehash("not a hash")


def test_an_unknown_account_is_refused(hasher: PasswordHasher) -> None:
    assert not hasher.verify_unknown_account("whatever was typed")


def test_a_raised_cost_asks_for_a_new_hash_and_old_hashes_still_verify(
    hasher: PasswordHasher,
) -> None:
    old = hasher.hash("long enough password")
    assert not hasher.needs_rehash(old)
    stronger = PasswordHasher(CHEAP.model_copy(update={"time_cost": 2}))
    assert stronger.needs_rehash(old)
    assert stronger.verify(old, "long enough password")
    assert not stronger.needs_rehash(stronger.hash("long enough password"))


def test_empty_and_oversized_passwords_are_not_hashed(hasher: PasswordHasher) -> None:
    with pytest.raises(ValueError, match="empty"):
        hasher.hash("")
    with pytest.raises(ValueError, match="at most"):
        hasher.hash("x" * (MAX_PASSWORD_CHARS + 1))


def test_default_cost_is_memory_hard() -> None:
    settings = PasswordSettings()
    assert (settings.memory_kib, settings.time_cost, settings.parallelism) == (65_536, 3, 4)


def test_settings_refuse_unknown_fields_and_weak_costs() -> None:
    with pytest.raises(ValidationError):
        PasswordSettings.model_validate({"memory": 1})
    with pytest.raises(ValidationError):
        PasswordSettings(memory_kib=1024)


def test_password_problems() -> None:
    settings = PasswordSettings()
    assert password_problem("short", "alice", settings) == (
        "a password needs at least 12 characters"
    )
    assert password_problem("Alice.Example", "alice.example", settings) == (
        "a password must not be the user name"
    )
    assert password_problem("x" * (MAX_PASSWORD_CHARS + 1), "alice", settings)
    assert password_problem("a long enough passphrase", "alice", settings) is None


def test_one_time_passwords_are_readable_random_and_long_enough(
    hasher: PasswordHasher,
) -> None:
    passwords = {one_time_password() for _ in range(200)}
    assert len(passwords) == 200
    group = f"[{READABLE_ALPHABET}]{{5}}"
    for password in passwords:
        assert re.fullmatch(f"{group}-{group}-{group}-{group}", password), password
        assert password_problem(password, "alice", PasswordSettings()) is None
    assert not set("01ilo") & set(READABLE_ALPHABET)
    issued = one_time_password()
    assert hasher.verify(hasher.hash(issued), issued)
