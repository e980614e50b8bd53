"""`rtcc users ...` through the real command entry, on an SQLite file and on a real
PostgreSQL server: every change lands in the database and in the audit log, sessions end
where they must, and refusals are one clear line with a non-zero exit."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from central.access import totp
from central.access.passwords import PasswordHasher
from central.db.anchors import ANCHOR_FILE, AnchorFile
from central.db.sessions import Sessions
from central.db.users import FailureCount, Users
from rtcc.cli import main
from runtime.logs import configure_logging
from tests.center_cli import CHEAP_PASSWORDS, Center

OPERATOR = f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"


def one_time_password(out: str, name: str) -> str:
    prefix = f"one-time password for {name}: "
    line = next(line for line in out.splitlines() if line.startswith(prefix))
    return line.removeprefix(prefix)


def listed(center: Center) -> dict[str, list[str]]:
    code, out, err = center.run("users", "list")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split()[:5] == ["name", "role", "disabled", "locked", "totp"]
    return {row.split()[0]: row.split()[1:] for row in rows}


def test_add_list_change_and_every_change_audited(center: Center) -> None:
    code, out, err = center.run("users", "add", "ana", "--role", "dispatcher")
    assert code == 0, err
    password = one_time_password(out, "ana")
    assert PasswordHasher(CHEAP_PASSWORDS).verify(center.user("ana").password_hash, password)
    chosen = "correct horse battery staple"
    code, out, err = center.run(
        "users", "add", "bob", "--role", "supervisor", "--password-stdin", stdin=chosen + "\n"
    )
    assert code == 0, err
    assert "one-time password" not in out
    assert PasswordHasher(CHEAP_PASSWORDS).verify(center.user("bob").password_hash, chosen)
    assert listed(center) == {
        "ana": ["dispatcher", "no", "no", "no", "never"],
        "bob": ["supervisor", "no", "no", "no", "never"],
    }

    assert center.run("users", "disable", "ana")[0] == 0
    assert center.user("ana").disabled
    assert listed(center)["ana"][:2] == ["dispatcher", "yes"]
    assert center.run("users", "enable", "ana")[0] == 0
    assert not center.user("ana").disabled
    code, out, _ = center.run("users", "reset-password", "bob")
    assert code == 0
    assert PasswordHasher(CHEAP_PASSWORDS).verify(
        center.user("bob").password_hash, one_time_password(out, "bob")
    )
    assert center.run("users", "set-role", "ana", "supervisor")[0] == 0
    assert center.user("ana").role == "supervisor"

    code, out, _ = center.run("users", "totp", "ana")
    assert code == 0
    secret = center.user("ana").totp_secret
    assert secret is not None
    assert totp.provisioning_uri(secret, "ana") in out.splitlines()
    assert "\u2588" in out or "\u2580" in out or "\u2584" in out  # the QR code's blocks
    assert listed(center)["ana"][:4] == ["supervisor", "no", "no", "yes"]

    records = center.audit()
    assert [(r.entry.action, r.entry.object, r.entry.outcome) for r in records] == [
        ("user.create", "ana", "ok"),
        ("user.create", "bob", "ok"),
        ("user.disable", "ana", "ok"),
        ("user.enable", "ana", "ok"),
        ("user.password_reset", "bob", "ok"),
        ("user.role_change", "ana", "ok"),
        ("user.totp_enroll", "ana", "ok"),
    ]
    assert {(r.entry.actor, r.entry.source) for r in records} == {(OPERATOR, "cli")}
    assert records[5].entry.detail["from"] == "dispatcher"
    assert records[5].entry.detail["to"] == "supervisor"
    assert not any(password in str(r.entry.detail) for r in records)
    heads = AnchorFile(center.data_dir / ANCHOR_FILE).heads()
    assert heads[-1].seq == records[-1].seq and heads[-1].hash == records[-1].hash


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (("reset-password", "ana"), "password_reset"),
        (("set-role", "ana", "tech"), "role_changed"),
        (("disable", "ana"), "user_disabled"),
    ],
)
def test_changes_that_end_the_users_sessions(
    center: Center, argv: tuple[str, ...], reason: str
) -> None:
    assert center.run("users", "add", "ana", "--role", "dispatcher")[0] == 0
    with center.database.write() as tx:
        started = Users(tx).get("ana")
        assert started is not None
        now = started.created_at + 1
        Sessions(tx).create("a" * 64, "ana", now, source="10.0.0.7")
        Sessions(tx).create("b" * 64, "ana", now + 1, source="10.0.0.8")
    assert listed(center)["ana"][4] != "never"  # the last sign-in: a time

    code, _, err = center.run("users", *argv)
    assert code == 0, err
    with center.database.read() as tx:
        sessions = Sessions(tx).of_user("ana", open_only=False)
    assert [s.end_reason for s in sessions] == [reason, reason]
    assert center.user("ana").sessions_valid_after is not None
    assert center.audit()[-1].entry.detail["sessions_ended"] == 2


def test_a_locked_account_is_listed_as_locked(center: Center) -> None:
    assert center.run("users", "add", "ana", "--role", "patrol", "--unit", "P-117")[0] == 0
    with center.database.write() as tx:
        user = Users(tx).get("ana")
        assert user is not None
        far = user.created_at + 10 * 365 * 86_400  # locked long after the test ends
        Users(tx).store_failures("ana", FailureCount(5, user.created_at, far), user.created_at)
    assert listed(center)["ana"][:3] == ["patrol", "no", "yes"]


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (("add", "ana", "--role", "tech"), "", "user ana exists"),
        (("disable", "ghost"), "", "no user ghost"),
        (("enable", "ghost"), "", "no user ghost"),
        (("reset-password", "ghost"), "", "no user ghost"),
        (("set-role", "ghost", "tech"), "", "no user ghost"),
        (("totp", "ghost"), "", "no user ghost"),
        (("add", "cy", "--role", "chief"), "", "unknown role 'chief'"),
        (("add", "car", "--role", "patrol"), "", "a patrol login needs --unit"),
        (("add", "cy", "--role", "tech", "--unit", "P-1"), "", "a patrol login needs --unit"),
        (("add", "car", "--role", "patrol", "--unit", "P 1"), "", "not a unit id"),
        (("set-role", "ana", "patrol"), "", "a patrol login is its unit's"),
        (("set-role", "ana", "chief"), "", "unknown role 'chief'"),
        (("add", "Cy Smith", "--role", "tech"), "", "user name 'Cy Smith' is not valid"),
        (("add", "cy", "--role", "tech", "--password-stdin"), "short\n", "at least 12"),
        (("add", "cy", "--role", "tech", "--password-stdin"), "", "no password on standard"),
        (
            ("reset-password", "ana", "--password-stdin"),
            "ANA\n",
            "password refused: a password needs at least 12 characters",
        ),
    ],
)
def test_refusals_are_one_clear_line(
    center: Center, argv: tuple[str, ...], stdin: str, message: str
) -> None:
    assert center.run("users", "add", "ana", "--role", "dispatcher")[0] == 0
    before = center.audit()
    code, out, err = center.run("users", *argv, stdin=stdin)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and message in err, err
    assert err.startswith(f"rtcc users {argv[0]}: ")
    assert center.user("ana").role == "dispatcher"
    refused = center.audit()[len(before) :]
    if message.startswith(("no user", "user ana exists", "a patrol login is its")):
        # Refused on the database's word: audited as refused.
        assert [(r.entry.object, r.entry.outcome) for r in refused] == [(argv[1], "refused")]
    else:
        assert refused == []


def test_a_database_that_cannot_be_opened_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RTCC_DATA_DIR", str(tmp_path))
    try:
        for url, expected in (
            ("postgresql://rtcc:s3cret@127.0.0.1:1/center", "cannot open the database"),
            (f"sqlite:///{tmp_path}/not-a-dir/center.db", "cannot open the database"),
        ):
            if url.startswith("sqlite"):
                (tmp_path / "not-a-dir").write_text("a file where a directory should be")
            monkeypatch.setenv("RTCC_DATABASE_URL", url)
            assert main(["users", "list"]) == 2
            out, err = capsys.readouterr()
            assert out == "" and err.count("\n") == 1 and expected in err, err
            assert "s3cret" not in err and "Traceback" not in err
    finally:
        configure_logging("warning", "console")


def test_the_center_config_file_names_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in ("RTCC_DATA_DIR", "RTCC_DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    config = tmp_path / "center.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        "[access.passwords]\ntime_cost = 1\nmemory_kib = 8192\nparallelism = 1\n"
    )
    try:
        assert main(["users", "add", "ana", "--role", "tech", "--config", str(config)]) == 0
        assert main(["users", "list", "--config", str(config)]) == 0
        assert "ana   tech" in capsys.readouterr().out
    finally:
        configure_logging("warning", "console")
    assert (tmp_path / "data" / "center.db").is_file()
    assert (tmp_path / "data" / ANCHOR_FILE).is_file()
