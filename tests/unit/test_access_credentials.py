"""Opaque session ids and API keys: shown once, stored hashed, scoped, expiring, revocable."""

import hashlib
import re
from dataclasses import replace

import pytest

from central.access.credentials import (
    KEY_PREFIX,
    ApiKey,
    KeyCheck,
    check_api_key,
    hash_secret,
    issue_api_key,
    key_allows,
    key_id_of,
    new_session_id,
    revoke,
    same_hash,
)
from central.access.policy import Action, Scope

NOW = 1_000.0
CAD = frozenset({Scope.UNITS_READ, Scope.STREAMS_START})


def test_session_ids_are_long_random_and_only_their_hash_is_kept() -> None:
    issued = [new_session_id() for _ in range(100)]
    assert len({i.token for i in issued}) == 100
    for one in issued:
        assert len(one.token) == 43  # 256 bits, URL-safe base64
        assert one.token_hash == hashlib.sha256(one.token.encode()).hexdigest()
        assert one.token not in one.token_hash
        assert same_hash(one.token_hash, one.token)
        assert not same_hash(one.token_hash, one.token[:-1])


def test_an_api_key_is_recognisable_and_its_record_holds_no_secret() -> None:
    issued = issue_api_key("cad", CAD, NOW)
    assert issued.key.startswith(KEY_PREFIX)
    assert re.fullmatch(r"rtcc_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", issued.key)
    record = issued.record
    assert key_id_of(issued.key) == record.key_id
    assert record.key_hash == hash_secret(issued.key)
    secret_part = issued.key.removeprefix(f"{KEY_PREFIX}{record.key_id}_")
    assert secret_part not in repr(record)
    assert (record.client, record.scopes, record.created_at) == ("cad", CAD, NOW)


def test_keys_differ_each_time() -> None:
    keys = [issue_api_key("cad", CAD, NOW) for _ in range(50)]
    assert len({k.key for k in keys}) == len({k.record.key_id for k in keys}) == 50


def test_a_valid_key_checks_and_grants_only_its_scopes() -> None:
    issued = issue_api_key("cad", CAD, NOW)
    assert check_api_key(issued.record, issued.key, NOW + 1) is KeyCheck.VALID
    assert key_allows(issued.record, Action.REMOTE_START)
    assert key_allows(issued.record, Action.UNITS_LIST)
    assert not key_allows(issued.record, Action.LIVE_WATCH)
    assert not key_allows(issued.record, Action.USERS_MANAGE)


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "rtcc_",
        "Bearer rtcc_0123456789ab_" + "A" * 43,
        "rtcc_0123456789AB_" + "A" * 43,
        "rtcc_0123456789ab_" + "A" * 42,
        "xtcc_0123456789ab_" + "A" * 43,
    ],
)
def test_text_that_is_no_key_has_no_key_id(presented: str) -> None:
    assert key_id_of(presented) is None


def test_a_wrong_or_tampered_key_is_refused() -> None:
    issued = issue_api_key("cad", CAD, NOW)
    other = issue_api_key("cad", CAD, NOW)
    last = issued.key[-1]
    tampered = issued.key[:-1] + ("B" if last != "B" else "C")
    assert check_api_key(issued.record, tampered, NOW) is KeyCheck.WRONG
    assert check_api_key(issued.record, other.key, NOW) is KeyCheck.WRONG
    assert check_api_key(None, issued.key, NOW) is KeyCheck.WRONG
    # The right id with another key's secret: the hash decides, not the id.
    other_secret = other.key[len(f"{KEY_PREFIX}{other.record.key_id}_") :]
    forged = f"{KEY_PREFIX}{issued.record.key_id}_{other_secret}"
    assert key_id_of(forged) == issued.record.key_id
    assert check_api_key(issued.record, forged, NOW) is KeyCheck.WRONG


def test_an_expired_key_is_refused_from_its_expiry_on() -> None:
    issued = issue_api_key("script", frozenset({Scope.METRICS_SCRAPE}), NOW, NOW + 3600)
    assert check_api_key(issued.record, issued.key, NOW + 3599) is KeyCheck.VALID
    assert check_api_key(issued.record, issued.key, NOW + 3600) is KeyCheck.EXPIRED


def test_a_revoked_key_is_refused_and_revoking_again_changes_nothing() -> None:
    issued = issue_api_key("cad", CAD, NOW)
    revoked = revoke(issued.record, NOW + 10)
    assert revoked.revoked_at == NOW + 10
    assert revoke(revoked, NOW + 20) is revoked
    assert check_api_key(revoked, issued.key, NOW + 10) is KeyCheck.REVOKED
    assert check_api_key(issued.record, issued.key, NOW + 10) is KeyCheck.VALID


def test_a_wrong_key_says_wrong_even_when_the_record_is_revoked() -> None:
    issued = issue_api_key("cad", CAD, NOW)
    revoked: ApiKey = replace(issued.record, revoked_at=NOW)
    assert check_api_key(revoked, issue_api_key("x", CAD, NOW).key, NOW) is KeyCheck.WRONG


def test_a_key_needs_a_scope_and_a_future_expiry() -> None:
    with pytest.raises(ValueError, match="scope"):
        issue_api_key("cad", frozenset(), NOW)
    with pytest.raises(ValueError, match="future"):
        issue_api_key("cad", CAD, NOW, expires_at=NOW)
