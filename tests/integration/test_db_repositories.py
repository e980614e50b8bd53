"""Users, sessions, API clients, failure counts and viewer grants on a real SQLite file and a
real PostgreSQL (the module shares one database per backend: names are unique per test)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from central.db.api_clients import ApiClients
from central.db.engine import Database
from central.db.schema import migrate
from central.db.sessions import Sessions
from central.db.users import AddressFailures, FailureCount, Users
from central.db.viewer_grants import ViewerGrants
from central.errors import Conflict, NotFound

NOW = 1_800_000_000.0


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_users_are_created_read_listed_and_changed(database: Database, unique: str) -> None:
    name = f"ana-{unique}"
    with database.write() as tx:
        made = Users(tx).create(name, "dispatcher", "$argon2id$x", NOW)
    assert (made.role, made.disabled, made.failed_attempts, made.totp_secret) == (
        "dispatcher",
        False,
        0,
        None,
    )
    with database.write() as tx:
        users = Users(tx)
        users.set_role(name, "supervisor", NOW + 1)
        users.set_password(name, "$argon2id$y", NOW + 2)
        users.set_totp_secret(name, "JBSWY3DPEHPK3PXP", NOW + 3)
        users.set_disabled(name, True, NOW + 4)
    with database.read() as tx:
        user = Users(tx).get(name)
        listed = [u.name for u in Users(tx).all()]
    assert user is not None
    assert (user.role, user.password_hash, user.totp_secret, user.disabled) == (
        "supervisor",
        "$argon2id$y",
        "JBSWY3DPEHPK3PXP",
        True,
    )
    assert (user.created_at, user.updated_at) == (NOW, NOW + 4)
    assert name in listed and listed == sorted(listed)
    with database.write() as tx:
        assert Users(tx).set_totp_secret(name, None, NOW + 5).totp_secret is None
        assert Users(tx).get_by_id(user.id) == Users(tx).get(name)


def test_a_taken_name_is_a_conflict_and_the_transaction_goes_on(
    database: Database, unique: str
) -> None:
    with database.write() as tx:
        Users(tx).create(f"bo-{unique}", "tech", "h", NOW)
    with database.write() as tx:
        with pytest.raises(Conflict):
            Users(tx).create(f"bo-{unique}", "patrol", "h", NOW)
        Users(tx).create(f"bo2-{unique}", "patrol", "h", NOW)
    with database.write() as tx:
        assert Users(tx).get(f"bo2-{unique}") is not None
        with pytest.raises(NotFound):
            Users(tx).set_role(f"nobody-{unique}", "admin", NOW)


def test_failures_are_kept_per_account_and_per_address(database: Database, unique: str) -> None:
    name, address = f"cy-{unique}", f"192.0.2.{unique}"
    with database.write() as tx:
        Users(tx).create(name, "dispatcher", "h", NOW)
        assert AddressFailures(tx).get(address) == FailureCount()
    counted = FailureCount(5, NOW + 9, NOW + 609)
    with database.write() as tx:
        Users(tx).store_failures(name, counted, NOW + 9)
        assert AddressFailures(tx).get(address, for_update=True) == FailureCount()
        AddressFailures(tx).store(address, FailureCount(1, NOW + 9))
    with database.read() as tx:
        user = Users(tx).get(name, for_update=True)
        assert user is not None and user.failures == counted
        assert AddressFailures(tx).get(address) == FailureCount(1, NOW + 9)


def test_sessions_are_touched_locked_and_ended(database: Database, unique: str) -> None:
    name, token = f"di-{unique}", digest(f"cookie-{unique}")
    with database.write() as tx:
        Users(tx).create(name, "dispatcher", "h", NOW)
        made = Sessions(tx).create(token, name, NOW, source="10.0.0.9")
    assert (made.user, made.created_at, made.last_seen_at, made.source) == (
        name,
        NOW,
        NOW,
        "10.0.0.9",
    )
    with database.write() as tx:
        sessions = Sessions(tx)
        assert sessions.touch(token, NOW + 60)
        assert sessions.touch(token, NOW + 30)  # an older request does not move it back
        assert sessions.lock(token, NOW + 90)
    with database.read() as tx:
        found = Sessions(tx).get(token)
    assert found is not None and (found.last_seen_at, found.locked_at) == (NOW + 60, NOW + 90)
    with database.write() as tx:
        assert Sessions(tx).unlock(token, NOW + 100)
        assert Sessions(tx).end(token, NOW + 200)
        assert not Sessions(tx).end(token, NOW + 300)  # ended once, when it was
        assert not Sessions(tx).touch(token, NOW + 301)
    with database.read() as tx:
        ended = Sessions(tx).get(token)
        assert Sessions(tx).get(digest("unknown")) is None
    assert ended is not None
    assert (ended.locked_at, ended.ended_at, ended.end_reason) == (None, NOW + 200, "signed_out")
    with database.write() as tx, pytest.raises(NotFound):
        Sessions(tx).create(digest(unique), f"nobody-{unique}", NOW)


def test_ending_all_of_a_users_sessions_revokes_their_viewer_tokens(
    database: Database, unique: str
) -> None:
    name = f"ed-{unique}"
    tokens = [digest(f"{unique}-{i}") for i in range(3)]
    with database.write() as tx:
        Users(tx).create(name, "dispatcher", "h", NOW)
        for i, token in enumerate(tokens):
            Sessions(tx).create(token, name, NOW + i)
        ViewerGrants(tx).issue(f"v1-{unique}", name, "unit-01", NOW, NOW + 3600, tokens[0])
        ViewerGrants(tx).issue(f"v2-{unique}", name, "unit-02", NOW, NOW + 3600)
        Sessions(tx).end(tokens[2], NOW + 10)
    with database.write() as tx:
        assert Sessions(tx).end_all_of_user(name, NOW + 20) == 2
    with database.read() as tx:
        assert Sessions(tx).of_user(name) == []
        assert len(Sessions(tx).of_user(name, open_only=False)) == 3
        user = Users(tx).get(name)
        grants = ViewerGrants(tx)
        first, second = grants.get(f"v1-{unique}"), grants.get(f"v2-{unique}")
    assert user is not None and user.sessions_valid_after == NOW + 20
    assert first is not None and first.revoked_at == NOW + 20 and not first.holds(NOW + 21)
    assert second is not None and second.holds(NOW + 21)


def test_viewer_grants_are_revoked_once_and_polled(database: Database, unique: str) -> None:
    stream, token = f"s-{unique}", f"t-{unique}"
    with database.write() as tx:
        grants = ViewerGrants(tx)
        grants.issue(token, "ana", stream, NOW, NOW + 60)
        grants.issue(f"{token}-short", "bo", stream, NOW, NOW + 5)
        with pytest.raises(Conflict):
            grants.issue(token, "ana", stream, NOW, NOW + 60)
    with database.write() as tx:
        assert [g.token_id for g in ViewerGrants(tx).active(NOW + 10, stream)] == [token]
        assert ViewerGrants(tx).revoke(token, NOW + 20).revoked_at == NOW + 20
        assert ViewerGrants(tx).revoke(token, NOW + 30).revoked_at == NOW + 20
        with pytest.raises(NotFound):
            ViewerGrants(tx).revoke(f"none-{unique}", NOW)
    with database.read() as tx:
        watched = [token, f"{token}-short", f"none-{unique}"]
        assert ViewerGrants(tx).revoked_among(watched) == [token]
        assert ViewerGrants(tx).active(NOW + 10, stream) == []
    with database.write() as tx:
        ViewerGrants(tx).issue(f"{token}-cad", f"cad-{unique}", stream, NOW, NOW + 60)
        assert ViewerGrants(tx).revoke_held_by(f"cad-{unique}", NOW + 40) == 1
        assert ViewerGrants(tx).revoked_among([f"{token}-cad"]) == [f"{token}-cad"]


def test_api_clients_are_created_listed_touched_and_revoked(
    database: Database, unique: str
) -> None:
    key_id, name = unique + "0000", f"cad-{unique}"
    with database.write() as tx:
        made = ApiClients(tx).create(
            key_id,
            name,
            digest("key"),
            ["units:read", "alerts:read", "units:read"],
            NOW,
            expires_at=NOW + 86_400,
        )
        with pytest.raises(Conflict):
            ApiClients(tx).create(key_id, name, digest("key"), ["units:read"], NOW)
    assert made.scopes == frozenset({"units:read", "alerts:read"})
    with database.write() as tx:
        ApiClients(tx).touch(key_id, NOW + 5)
        revoked = ApiClients(tx).revoke(key_id, NOW + 10)
        again = ApiClients(tx).revoke(key_id, NOW + 20)
    assert revoked.revoked_at == again.revoked_at == NOW + 10
    with database.read() as tx:
        found = ApiClients(tx).get(key_id)
        assert [c.key_id for c in ApiClients(tx).all(name)] == [key_id]
        assert ApiClients(tx).get("unknown") is None
    assert found is not None
    assert (found.key_hash, found.expires_at, found.last_used_at) == (
        digest("key"),
        NOW + 86_400,
        NOW + 5,
    )


def test_failures_counted_by_concurrent_processes_are_all_kept(
    new_database_url: Callable[[], str], unique: str
) -> None:
    """Read-lock-store from several connections at once loses no failed attempt."""
    url = new_database_url()
    centers = [Database.open(url) for _ in range(3)]
    migrate(centers[0].engine)
    with centers[0].write() as tx:
        Users(tx).create("ana", "dispatcher", "h", NOW)
    start = threading.Barrier(len(centers))

    def fail_sign_ins(n: int) -> None:
        start.wait(timeout=30)
        for i in range(15):
            with centers[n].write() as tx:
                address = AddressFailures(tx).get("192.0.2.1", for_update=True)
                AddressFailures(tx).store("192.0.2.1", FailureCount(address.count + 1, NOW + i))
                user = Users(tx).get("ana", for_update=True)
                assert user is not None
                counted = FailureCount(user.failed_attempts + 1, NOW + i)
                Users(tx).store_failures("ana", counted, NOW + i)

    try:
        with ThreadPoolExecutor(len(centers)) as pool:
            list(pool.map(fail_sign_ins, range(len(centers))))
        with centers[1].read() as tx:
            assert AddressFailures(tx).get("192.0.2.1").count == 45
            user = Users(tx).get("ana")
        assert user is not None and user.failed_attempts == 45
    finally:
        for center in centers:
            center.close()
