"""Devices' records: one-time enrollment codes (kept as hashes), the certificates the device
CA issued (by serial, with their revocation), and each unit's evidence signing key as
registered at enrollment."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ForeignKey, Index, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from central.db.models import HASH_LENGTH, Base, EpochTime
from central.db.records import record_of

# Moves whenever a certificate is issued or revoked: (certificates, revoked, last issued,
# last revoked).
Revision = tuple[int, int, float | None, float | None]


class EnrollCodeRow(Base):
    __tablename__ = "enroll_codes"

    code_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[float] = mapped_column(EpochTime)
    created_by: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[float] = mapped_column(EpochTime)
    used_at: Mapped[float | None] = mapped_column(EpochTime)
    used_from: Mapped[str | None] = mapped_column(String(64))
    # The certificate the code bought (its serial, hex).
    serial: Mapped[str | None] = mapped_column(String(64))


class DeviceCertRow(Base):
    __tablename__ = "device_certs"
    __table_args__ = (Index("device_certs_by_unit", "unit_id", "issued_at"),)

    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[float] = mapped_column(EpochTime)
    expires_at: Mapped[float] = mapped_column(EpochTime)
    revoked_at: Mapped[float | None] = mapped_column(EpochTime, index=True)
    revoked_by: Mapped[str | None] = mapped_column(String(128))


class UnitKeyRow(Base):
    """The Ed25519 public key (base64, raw 32 bytes) a unit's evidence is signed with."""

    __tablename__ = "unit_evidence_keys"

    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    evidence_key: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[float] = mapped_column(EpochTime)
    serial: Mapped[str] = mapped_column(ForeignKey("device_certs.serial"))


@dataclass(frozen=True, slots=True)
class EnrollCode:
    unit_id: str
    created_at: float
    created_by: str
    expires_at: float
    used_at: float | None


@dataclass(frozen=True, slots=True)
class DeviceCert:
    serial: str
    unit_id: str
    issued_at: float
    expires_at: float
    revoked_at: float | None
    revoked_by: str | None

    @classmethod
    def of(cls, row: DeviceCertRow) -> DeviceCert:
        return record_of(cls, row)


class Devices:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add_code(
        self, code_hash: str, unit_id: str, created_by: str, now: float, expires_at: float
    ) -> None:
        self._session.add(
            EnrollCodeRow(
                code_hash=code_hash,
                unit_id=unit_id,
                created_at=now,
                created_by=created_by,
                expires_at=expires_at,
            )
        )
        self._session.flush()

    def code(self, code_hash: str, for_update: bool = False) -> EnrollCode | None:
        query = select(EnrollCodeRow).where(EnrollCodeRow.code_hash == code_hash)
        # Two gateways presenting one code at once: the second waits, then sees it used.
        row = self._session.scalars(query.with_for_update() if for_update else query).first()
        if row is None:
            return None
        return EnrollCode(row.unit_id, row.created_at, row.created_by, row.expires_at, row.used_at)

    def use_code(self, code_hash: str, now: float, source: str, serial: str) -> None:
        row = self._session.get_one(EnrollCodeRow, code_hash)
        row.used_at, row.used_from, row.serial = now, source, serial
        self._session.flush()

    def cancel_codes(self, unit_id: str, now: float) -> int:
        """Ends the unit's unused codes that have not expired; how many."""
        rows = self._session.scalars(
            select(EnrollCodeRow).where(
                EnrollCodeRow.unit_id == unit_id,
                EnrollCodeRow.used_at.is_(None),
                EnrollCodeRow.expires_at > now,
            )
        ).all()
        for row in rows:
            row.expires_at = now
        self._session.flush()
        return len(rows)

    def add_cert(self, serial: str, unit_id: str, issued_at: float, expires_at: float) -> None:
        self._session.add(
            DeviceCertRow(
                serial=serial, unit_id=unit_id, issued_at=issued_at, expires_at=expires_at
            )
        )
        self._session.flush()

    def revoke_unit(self, unit_id: str, now: float, by: str) -> list[str]:
        """Revokes the unit's certificates not revoked yet; returns their serials."""
        rows = self._session.scalars(
            select(DeviceCertRow).where(
                DeviceCertRow.unit_id == unit_id, DeviceCertRow.revoked_at.is_(None)
            )
        ).all()
        for row in rows:
            row.revoked_at, row.revoked_by = now, by
        self._session.flush()
        return [row.serial for row in rows]

    def revoked(self) -> list[tuple[str, float]]:
        """Every revoked serial and when, oldest first: what the CRL lists."""
        rows = self._session.execute(
            select(DeviceCertRow.serial, DeviceCertRow.revoked_at)
            .where(DeviceCertRow.revoked_at.is_not(None))
            .order_by(DeviceCertRow.revoked_at, DeviceCertRow.serial)
        ).all()
        return [(serial, at) for serial, at in rows if at is not None]

    def certs(self, unit_id: str | None = None) -> list[DeviceCert]:
        query = select(DeviceCertRow).order_by(DeviceCertRow.unit_id, DeviceCertRow.issued_at)
        if unit_id is not None:
            query = query.where(DeviceCertRow.unit_id == unit_id)
        return [DeviceCert.of(row) for row in self._session.scalars(query)]

    def register_key(self, unit_id: str, evidence_key: str, serial: str, now: float) -> None:
        row = self._session.get(UnitKeyRow, unit_id)
        if row is None:
            self._session.add(
                UnitKeyRow(
                    unit_id=unit_id, evidence_key=evidence_key, registered_at=now, serial=serial
                )
            )
        else:
            row.evidence_key, row.registered_at, row.serial = evidence_key, now, serial
        self._session.flush()

    def evidence_key(self, unit_id: str) -> str | None:
        row = self._session.get(UnitKeyRow, unit_id, populate_existing=True)
        return None if row is None else row.evidence_key

    def lock_unit(self, unit_id: str) -> str | None:
        """The unit's evidence key, its row locked until the transaction ends. Renewal,
        enrollment and revocation of one unit take this lock first and so take turns
        (SQLite's writers take turns anyway; PostgreSQL's would not): a certificate a
        renewal issues can never slip past a revocation committed at the same time."""
        query = (
            select(UnitKeyRow)
            .where(UnitKeyRow.unit_id == unit_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        row = self._session.scalars(query).first()
        return None if row is None else row.evidence_key

    def standing(self, now: float) -> DeviceStanding:
        """Which units may speak for themselves now (a certificate neither revoked nor
        expired) and which serials are revoked, with their units."""
        rows = self._session.execute(
            select(
                DeviceCertRow.serial,
                DeviceCertRow.unit_id,
                DeviceCertRow.expires_at,
                DeviceCertRow.revoked_at,
            )
        ).all()
        enrolled = {unit for _, unit, expires, revoked in rows if revoked is None and expires > now}
        revoked = {serial: unit for serial, unit, _, at in rows if at is not None}
        return DeviceStanding(frozenset(enrolled), revoked, frozenset(u for _, u, _, _ in rows))

    def revision(self) -> Revision:
        """Changes whenever a certificate is issued or revoked: cheap to ask every second."""
        certs, revoked, issued_last, revoked_last = self._session.execute(
            select(
                func.count(),
                func.count(DeviceCertRow.revoked_at),
                func.max(DeviceCertRow.issued_at),
                func.max(DeviceCertRow.revoked_at),
            )
        ).one()
        return int(certs), int(revoked), issued_last, revoked_last


@dataclass(frozen=True, slots=True)
class DeviceStanding:
    enrolled: frozenset[str]
    revoked: dict[str, str]  # serial -> unit id
    known: frozenset[str]  # every unit the CA ever issued a certificate to

    def shut_out(self, unit_id: str) -> bool:
        """A unit that enrolled once and has no usable certificate now: revoked or expired."""
        return unit_id in self.known and unit_id not in self.enrolled
