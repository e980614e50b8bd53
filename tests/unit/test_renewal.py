"""Certificate renewal's pure parts: when the agent renews and retries, the bytes a renewal
signs, the center's reasons to refuse one, and the checks of the center's answer."""

import base64
import datetime as dt
import hashlib
import math
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from agent.enroll import certificate_request
from agent.health import HealthSnapshot, render_metrics
from agent.renewal_core import DAY_S, CertFacts, RenewalStatus, Schedule, answer_problem, due_at
from central.db.devices import DeviceCert
from central.device_ca import DeviceCa
from central.renewal import refusal
from protocol.renewal import LABEL, MAX_SKEW_S, RenewAnswer, RenewRequest, signed_request

NOW = 1_800_000_000.0
YEAR = 365 * DAY_S


def facts(lifetime_s: float, issued: float = NOW) -> CertFacts:
    return CertFacts("abc", issued, issued + lifetime_s)


# ---- when -------------------------------------------------------------------------------


def test_a_year_long_certificate_is_due_with_a_third_of_it_left() -> None:
    cert = facts(YEAR)
    assert due_at(cert, 1 / 3, 30) == pytest.approx(cert.not_after - YEAR / 3)


def test_min_days_renews_earlier_when_the_share_would_be_later() -> None:
    cert = facts(YEAR)
    assert due_at(cert, 0.05, 30) == pytest.approx(cert.not_after - 30 * DAY_S)


def test_a_certificate_shorter_than_min_days_is_not_due_as_soon_as_issued() -> None:
    for lifetime in (DAY_S, 7 * DAY_S, 20 * DAY_S):
        cert = facts(lifetime)
        assert due_at(cert, 1 / 3, 30) == pytest.approx(NOW + lifetime / 2)
        assert Schedule(1 / 3, 30, 600, 3600).next_attempt(cert, NOW) == due_at(cert, 1 / 3, 30)


def test_a_share_of_one_is_due_at_once() -> None:
    cert = facts(DAY_S)
    assert Schedule(1.0, 0, 600, 3600).next_attempt(cert, NOW + 1) == NOW


def test_at_most_one_attempt_per_window_after_a_success() -> None:
    schedule = Schedule(1.0, 0, 600, 3600)
    cert = facts(DAY_S)
    schedule.attempted(NOW, ok=True)
    assert schedule.next_attempt(cert, NOW + 1) == NOW + 600


def test_failures_back_off_with_jitter_never_sooner_than_the_window() -> None:
    draws = iter([1.0, 1.0, 1.0, 0.0, 1.0])
    schedule = Schedule(1.0, 0, 100, 1000, rand=lambda: next(draws))
    cert = facts(YEAR)
    waits = []
    for _ in range(5):
        schedule.attempted(NOW, ok=False)
        waits.append(schedule.next_attempt(cert, NOW) - NOW)  # type: ignore[operator]
    # window + uniform(0, min(1000, 100 * 2**n)): here the draws are the top, then 0.
    assert waits == [200, 300, 500, 100, 1100]
    schedule.attempted(NOW, ok=True)
    assert schedule.failures == 0 and schedule.next_attempt(cert, NOW) == NOW + 100


def test_an_expired_certificate_is_not_renewed() -> None:
    cert = facts(DAY_S)
    schedule = Schedule(1 / 3, 30, 600, 3600)
    assert schedule.next_attempt(cert, cert.not_after) is None
    assert schedule.not_before == -math.inf


# ---- what is signed ---------------------------------------------------------------------


def csr_pem() -> str:
    return certificate_request(ec.generate_private_key(ec.SECP256R1())).decode()


def test_the_signed_bytes_are_labelled_one_field_a_line() -> None:
    key = Ed25519PrivateKey.generate()
    csr = csr_pem()
    request = signed_request(key, "P-117", "ABC123", csr, 1_800_000_000)
    assert request.serial == "abc123"
    digest = hashlib.sha256(csr.encode()).hexdigest()
    assert request.signed_bytes() == LABEL + f"\nP-117\nabc123\n1800000000\n{digest}".encode()
    public = base64.b64encode(key.public_key().public_bytes_raw()).decode()
    assert request.signed_by(public)


@pytest.mark.parametrize(
    "change",
    [
        {"unit_id": "P-118"},
        {"serial": "abc124"},
        {"ts": 1_800_000_001},
        {"csr": csr_pem()},
        {"sig": base64.b64encode(b"\0" * 64).decode()},
        {"sig": "not base64!"},
    ],
)
def test_any_change_breaks_the_signature(change: dict[str, object]) -> None:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes_raw()).decode()
    request = signed_request(key, "P-117", "abc123", csr_pem(), 1_800_000_000)
    changed = RenewRequest.model_validate(request.model_dump() | change)
    assert not changed.signed_by(public)


def test_another_units_key_does_not_sign_for_it() -> None:
    request = signed_request(Ed25519PrivateKey.generate(), "P-117", "abc", csr_pem(), 1)
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    assert not request.signed_by(base64.b64encode(other).decode())
    assert not request.signed_by("not a key")


@pytest.mark.parametrize(
    "bad",
    [{"unit_id": "a/b"}, {"serial": "xyz"}, {"ts": -1}, {"csr": ""}, {"extra": 1}],
)
def test_malformed_requests_do_not_parse(bad: dict[str, object]) -> None:
    good = {"unit_id": "P-1", "serial": "ab", "csr": "x", "ts": 1, "sig": "AA=="}
    with pytest.raises(ValidationError):
        RenewRequest.model_validate(good | bad)


# ---- the center's reasons ---------------------------------------------------------------


class Unit:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.public = base64.b64encode(self.key.public_key().public_bytes_raw()).decode()
        self.certs = [
            DeviceCert("aa", "P-117", NOW - YEAR, NOW - 1, None, None),  # expired
            DeviceCert("bb", "P-117", NOW - 10, NOW + YEAR, NOW - 5, "tech-1"),  # revoked
            DeviceCert("cc", "P-117", NOW - 10, NOW + YEAR, None, None),
        ]

    def request(self, serial: str = "cc", ts: float = NOW, unit_id: str = "P-117") -> RenewRequest:
        return signed_request(self.key, unit_id, serial, "csr", int(ts))


def test_a_signed_fresh_request_naming_a_valid_certificate_is_admitted() -> None:
    unit = Unit()
    assert refusal(unit.request(), unit.certs, unit.public, NOW) is None
    assert refusal(unit.request(ts=NOW + MAX_SKEW_S), unit.certs, unit.public, NOW) is None


@pytest.mark.parametrize(
    ("serial", "ts", "expected"),
    [
        ("aa", NOW, "certificate aa expired"),
        ("bb", NOW, "certificate bb was revoked"),
        ("dd", NOW, "certificate dd is not one of the unit's"),
        ("cc", NOW - MAX_SKEW_S - 2, "s behind the center's clock"),
        ("cc", NOW + MAX_SKEW_S + 2, "s ahead of the center's clock"),
    ],
)
def test_refused_with_the_reason(serial: str, ts: float, expected: str) -> None:
    unit = Unit()
    reason = refusal(unit.request(serial, ts), unit.certs, unit.public, NOW)
    assert reason is not None and expected in reason


def test_an_unknown_unit_or_another_key_is_refused_before_anything_is_told() -> None:
    unit, other = Unit(), Unit()
    assert "unknown unit" in (refusal(unit.request(), [], None, NOW) or "")
    # Another key, naming a revoked certificate at a wrong time: the signature is the reason.
    forged = other.request("bb", NOW - 10 * MAX_SKEW_S)
    assert "signature" in (refusal(forged, unit.certs, unit.public, NOW) or "")


# ---- the center's answer ----------------------------------------------------------------


def answer_for(
    ca: DeviceCa, key: ec.EllipticCurvePrivateKey, unit_id: str, named: str | None = None
) -> RenewAnswer:
    issued = ca.issue_unit(certificate_request(key), unit_id, 1)
    return RenewAnswer(
        unit_id=named or unit_id,
        serial=issued.serial,
        expires_at=issued.cert.not_valid_after_utc.timestamp(),
        certificate=issued.pem.decode(),
        ca=ca.ca_pem().decode(),
    )


def test_the_answer_must_be_for_the_key_made_here_this_unit_and_the_trusted_ca(
    tmp_path: Path,
) -> None:
    ca = DeviceCa(tmp_path / "ca")
    trusted = [x509.load_pem_x509_certificate(ca.ca_pem())]
    key = ec.generate_private_key(ec.SECP256R1())
    good = answer_for(ca, key, "P-117")
    assert answer_problem(good, key.public_key(), "P-117", trusted) is None
    other_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert "not for the key" in (answer_problem(good, other_key, "P-117", trusted) or "")
    assert "names" in (answer_problem(good, key.public_key(), "P-118", trusted) or "")
    lying = answer_for(ca, key, "P-118", named="P-117")
    assert "names" in (answer_problem(lying, key.public_key(), "P-117", trusted) or "")
    foreign = answer_for(DeviceCa(tmp_path / "other"), key, "P-117")
    assert "device CA" in (answer_problem(foreign, key.public_key(), "P-117", trusted) or "")
    wrong_serial = good.model_copy(update={"serial": "ab"})
    assert "serial" in (answer_problem(wrong_serial, key.public_key(), "P-117", trusted) or "")


def test_cert_facts_and_health_lines() -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    name = x509.Name([])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(0xABC)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=2))
        .sign(ca_key, hashes.SHA256())
    )
    found = CertFacts.of(cert)
    assert found == CertFacts("abc", start.timestamp(), start.timestamp() + 2 * DAY_S)
    status = RenewalStatus()
    status.record("refused", "revoked", NOW)
    status.record("ok", "abd", NOW + 1)
    snapshot = HealthSnapshot(
        1.0, {"mqtt": True}, 0, 0, 0, 1, 0, False, None, {}, {}, [],
        cert_expires_in_s=86_400.0,
        renewal_outcomes=status.outcomes,
        renewal_last=status.last_outcome,
    )  # fmt: skip
    text = render_metrics(snapshot)
    assert "rtcc_agent_certificate_expiry_seconds 86400" in text
    assert 'rtcc_agent_certificate_renewals_total{outcome="refused"} 1' in text
    assert 'rtcc_agent_certificate_renewals_total{outcome="failed"} 0' in text
    assert 'rtcc_agent_certificate_renewal_last{outcome="ok"} 1' in text
