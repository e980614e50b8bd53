"""Administering the people who sign in to the center (`rtcc users ...`): add, list,
disable, enable, reset a password, change a role, enrol a second factor.

Every change commits together with its audit record, in one transaction; a refused change
(a duplicate, an unknown name) is audited too, as refused. Whoever acts is an `Operator`:
the OS user at the command line, or the signed-in person a route passes. After each audited
change the chain's head is also appended to the anchor file in the data directory.
"""

from __future__ import annotations

import os
import pwd
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

from pydantic import JsonValue
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from central.access import totp
from central.access.passwords import (
    PasswordHasher,
    PasswordSettings,
    one_time_password,
    password_problem,
)
from central.access.policy import Role
from central.config import CentralSettings
from central.db.anchors import ANCHOR_FILE, AnchorFile
from central.db.audit import Audit
from central.db.audit_chain import AuditEntry, AuditRecord, head_of
from central.db.engine import Database
from central.db.schema import SchemaTooNew, open_migrated
from central.db.sessions import Sessions
from central.db.users import User, Users
from central.errors import CenterError, Conflict, NotFound
from protocol.topics import is_id

_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")


class CommandRefused(Exception):
    """What the command could not do, in one line for the person who ran it."""


@dataclass(frozen=True, slots=True)
class Operator:
    """Who makes a change, as the audit log records it."""

    actor: str
    role: str | None = None
    source: str | None = "cli"

    @classmethod
    def at_command_line(cls) -> Operator:
        """The OS user running the command: "cli:<login name>"."""
        try:
            # The account itself, never $USER or $LOGNAME: the caller sets those.
            login = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            login = f"uid-{os.geteuid()}"
        return cls(f"cli:{login}")


@dataclass(frozen=True, slots=True)
class UserSummary:
    name: str
    role: str
    disabled: bool
    locked: bool
    totp_enrolled: bool
    last_sign_in: float | None


@dataclass(frozen=True, slots=True)
class Enrollment:
    secret: str
    uri: str


def open_center_database(url: str) -> Database:
    """The center's database, migrated; CommandRefused (without the password) when it
    cannot be opened."""
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        return open_migrated(url)
    except SchemaTooNew as exc:
        raise CommandRefused(f"database {shown}: {exc}") from None
    except (SQLAlchemyError, OSError) as exc:
        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        raise CommandRefused(f"cannot open the database {shown}: {reason}") from None


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise CommandRefused(
            f"user name {name[:80]!r} is not valid: 1 to 64 of a-z, 0-9, '.', '_', '@', '-', "
            "starting with a letter or digit"
        )
    return name


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise CommandRefused(f"unknown role {role[:80]!r} (one of {known})") from None


class People:
    """User administration on the center's database; `now` comes from `clock`."""

    def __init__(
        self,
        database: Database,
        operator: Operator,
        passwords: PasswordSettings,
        anchors: AnchorFile | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._database = database
        self._operator = operator
        self._passwords = passwords
        self._anchors = anchors
        self._clock = clock

    def add(
        self, name: str, role: str, password: str | None = None, unit_id: str | None = None
    ) -> str | None:
        """Creates the user; returns the one-time password made when none was given. A
        patrol login belongs to one unit (its vehicle); no other role has one."""
        check_name(name)
        wanted = check_role(role)
        if (wanted is Role.PATROL) != (unit_id is not None):
            raise CommandRefused("a patrol login needs --unit (its vehicle); other roles none")
        if unit_id is not None and not is_id(unit_id):
            raise CommandRefused(f"not a unit id: {unit_id[:80]!r}")
        made, password_hash = self._new_password(password, name)

        def change(tx: Session, now: float) -> dict[str, JsonValue]:
            Users(tx).create(name, wanted.value, password_hash, now, unit_id=unit_id)
            return {"role": wanted.value, "unit_id": unit_id, "one_time_password": made is not None}

        self._audited("user.create", name, change)
        return made

    def summaries(self) -> list[UserSummary]:
        now = self._clock()
        with self._database.read() as tx:
            return [self._summary(tx, user, now) for user in Users(tx).all()]

    def disable(self, name: str) -> None:
        """Disables the account and ends its sessions."""

        def change(tx: Session, now: float) -> dict[str, JsonValue]:
            Users(tx).set_disabled(name, True, now)
            return {"sessions_ended": Sessions(tx).end_all_of_user(name, now, "user_disabled")}

        self._audited("user.disable", check_name(name), change)

    def enable(self, name: str) -> None:
        def change(tx: Session, now: float) -> dict[str, JsonValue]:
            Users(tx).set_disabled(name, False, now)
            return {}

        self._audited("user.enable", check_name(name), change)

    def reset_password(self, name: str, password: str | None = None) -> str | None:
        """Stores a new password and ends the user's sessions; returns the one-time
        password made when none was given."""
        made, password_hash = self._new_password(password, check_name(name))

        def change(tx: Session, now: float) -> dict[str, JsonValue]:
            Users(tx).set_password(name, password_hash, now)
            ended = Sessions(tx).end_all_of_user(name, now, "password_reset")
            return {"sessions_ended": ended, "one_time_password": made is not None}

        self._audited("user.password_reset", name, change)
        return made

    def set_role(self, name: str, role: str) -> None:
        """Changes the role and ends the user's sessions (they were granted under the old
        one)."""
        check_name(name)
        wanted = check_role(role)

        def change(tx: Session, now: float) -> dict[str, JsonValue]:
            before = _existing(tx, name).role
            if Role.PATROL.value in (before, wanted.value) and before != wanted.value:
                raise Conflict("a patrol login is its unit's: add a new login instead")
            Users(tx).set_role(name, wanted.value, now)
            ended = Sessions(tx).end_all_of_user(name, now, "role_changed")
            return {"from": before, "to": wanted.value, "sessions_ended": ended}

        self._audited("user.role_change", name, change)

    def enroll_totp(self, name: str) -> Enrollment:
        """A new TOTP secret for the user, replacing any before it."""
        secret = totp.new_secret()

        def change(tx: Session, now: float) -> dict[str, JsonValue]:
            replaced = _existing(tx, name).totp_secret is not None
            Users(tx).set_totp_secret(name, secret, now)
            return {"replaced": replaced}

        self._audited("user.totp_enroll", check_name(name), change)
        return Enrollment(secret, totp.provisioning_uri(secret, name))

    def _new_password(self, password: str | None, name: str) -> tuple[str | None, str]:
        """Checks the given password, or makes a one-time one; returns the one made (None
        when one was given) and the hash to store."""
        made = None
        if password is None:
            made = password = one_time_password()
        problem = password_problem(password, name, self._passwords)
        if problem is not None:
            raise CommandRefused(f"password refused: {problem}")
        return made, PasswordHasher(self._passwords).hash(password)

    def _summary(self, tx: Session, user: User, now: float) -> UserSummary:
        sessions = Sessions(tx).of_user(user.name, open_only=False)
        return UserSummary(
            user.name,
            user.role,
            user.disabled,
            user.locked_until is not None and user.locked_until > now,
            user.totp_secret is not None,
            max((s.created_at for s in sessions), default=None),
        )

    def _audited(
        self, action: str, name: str, change: Callable[[Session, float], dict[str, JsonValue]]
    ) -> None:
        """Runs `change` and appends its audit record in one transaction; a refusal is
        audited on its own and raised as CommandRefused."""
        now = self._clock()
        try:
            with self._database.write() as tx:
                detail = change(tx, now)
                record = Audit(tx).append(self._entry(now, action, name, "ok", detail))
        except (NotFound, Conflict) as exc:
            refusal = self._entry(now, action, name, "refused", {"reason": str(exc)})
            with self._database.write() as tx:
                record = Audit(tx).append(refusal)
            self._anchor(record, now)
            raise CommandRefused(str(exc)) from None
        self._anchor(record, now)

    def _entry(
        self, now: float, action: str, name: str, outcome: str, detail: dict[str, JsonValue]
    ) -> AuditEntry:
        operator = self._operator
        return AuditEntry(
            now, operator.actor, action, outcome, operator.role, operator.source, name, detail
        )

    def _anchor(self, record: AuditRecord, now: float) -> None:
        if self._anchors is not None:
            self._anchors.record(head_of(record), now)


def _existing(tx: Session, name: str) -> User:
    user = Users(tx).get(name, for_update=True)
    if user is None:
        raise NotFound(f"no user {name}")
    return user


def anchor_file(data_dir: Path) -> AnchorFile:
    return AnchorFile(data_dir / ANCHOR_FILE)


UserVerb = Literal["add", "list", "disable", "enable", "reset-password", "set-role", "totp"]


@dataclass(frozen=True, slots=True)
class UserCommand:
    """One `rtcc users` command as typed."""

    verb: UserVerb
    name: str | None = None
    role: str | None = None
    password_stdin: bool = False
    unit_id: str | None = None


def run_users_command(
    settings: CentralSettings, command: UserCommand, stdin: TextIO, stdout: TextIO
) -> None:
    """Carries out `command`, printing what the person needs; raises CommandRefused."""
    password = _read_password(stdin) if command.password_stdin else None
    database = open_center_database(settings.database())
    try:
        people = People(
            database,
            Operator.at_command_line(),
            settings.access.passwords,
            anchor_file(settings.data_dir),
        )
        _dispatch(people, command, password, stdout)
    except CenterError as exc:  # e.g. an audit field too long for its column
        raise CommandRefused(str(exc)) from None
    finally:
        database.close()


def _dispatch(people: People, command: UserCommand, password: str | None, out: TextIO) -> None:
    if command.verb == "list":
        print_users(people.summaries(), out)
        return
    name = command.name or ""
    if command.verb == "add":
        made = people.add(name, command.role or "", password, command.unit_id)
        _print_done(out, f"user {name} added ({command.role})", name, made)
    elif command.verb == "reset-password":
        made = people.reset_password(name, password)
        _print_done(out, f"password of {name} reset; their sessions are ended", name, made)
    elif command.verb == "set-role":
        people.set_role(name, command.role or "")
        print(f"{name} is now {command.role}; their sessions are ended", file=out)
    elif command.verb == "totp":
        enrollment = people.enroll_totp(name)
        print(f"TOTP for {name}: scan the code or enter the URI in an authenticator app", file=out)
        print(enrollment.uri, file=out)
        print(totp.qr_text(enrollment.uri), end="", file=out)
    else:
        disable = command.verb == "disable"
        (people.disable if disable else people.enable)(name)
        print(
            f"user {name} {'disabled; their sessions are ended' if disable else 'enabled'}",
            file=out,
        )


def _read_password(stdin: TextIO) -> str:
    """One line: what `echo "$PASSWORD" | rtcc users add ... --password-stdin` gives."""
    password = stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandRefused("no password on standard input")
    return password


def _print_done(out: TextIO, message: str, name: str, made: str | None) -> None:
    print(message, file=out)
    if made is not None:
        print(f"one-time password for {name}: {made}", file=out)


def print_users(users: list[UserSummary], out: TextIO) -> None:
    columns = ("name", "role", "disabled", "locked", "totp", "last sign-in")
    rows = [columns] + [
        (
            u.name,
            u.role,
            "yes" if u.disabled else "no",
            "yes" if u.locked else "no",
            "yes" if u.totp_enrolled else "no",
            "never" if u.last_sign_in is None else _iso(u.last_sign_in),
        )
        for u in users
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))
