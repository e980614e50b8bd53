"""TOTP: enrolment URI, the one-step window, one use per code, the terminal QR code."""

import base64
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import qrcode  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from central.access.totp import (
    STEP_S,
    code_at,
    new_secret,
    provisioning_uri,
    qr_text,
    time_step,
    verify_code,
)

NOW = 1_800_000_015.0  # 15 s into a step
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_a_new_secret_is_160_random_bits_of_base32() -> None:
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    for secret in secrets:
        assert len(base64.b32decode(secret)) == 20


def test_the_enrolment_uri_names_rtcc_and_the_account() -> None:
    uri = provisioning_uri(SECRET, "alice")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path) == ("otpauth", "totp", "/rtcc:alice")
    query = parse_qs(parts.query)
    assert query["secret"] == [SECRET]
    assert query["issuer"] == ["rtcc"]


def test_codes_agree_with_what_an_authenticator_app_shows() -> None:
    assert code_at(SECRET, time_step(NOW)) == pyotp.TOTP(SECRET).at(NOW)


def test_the_current_code_is_accepted_and_its_step_returned() -> None:
    code = pyotp.TOTP(SECRET).at(NOW)
    assert verify_code(SECRET, code, NOW, None) == time_step(NOW)
    spaced = f"{code[:3]} {code[3:]}"
    assert verify_code(SECRET, spaced, NOW, None) == time_step(NOW)


@pytest.mark.parametrize(
    ("offset_steps", "accepted"), [(-2, False), (-1, True), (1, True), (2, False)]
)
def test_one_step_either_side_is_accepted(offset_steps: int, accepted: bool) -> None:
    code = pyotp.TOTP(SECRET).at(NOW + offset_steps * STEP_S)
    result = verify_code(SECRET, code, NOW, None)
    assert (result == time_step(NOW) + offset_steps) if accepted else result is None


def test_a_code_is_good_once() -> None:
    code = pyotp.TOTP(SECRET).at(NOW)
    step = verify_code(SECRET, code, NOW, None)
    assert step is not None
    assert verify_code(SECRET, code, NOW + 5, step) is None
    earlier = pyotp.TOTP(SECRET).at(NOW - STEP_S)
    assert verify_code(SECRET, earlier, NOW + 5, step) is None
    later = pyotp.TOTP(SECRET).at(NOW + STEP_S)
    assert verify_code(SECRET, later, NOW + STEP_S, step) == step + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", "12345 "])
def test_malformed_codes_are_refused(code: str) -> None:
    assert verify_code(SECRET, code, NOW, None) is None


@given(st.text(alphabet="0123456789", min_size=6, max_size=6))
def test_a_code_is_accepted_only_if_it_is_one_of_the_window(code: str) -> None:
    window = {code_at(SECRET, time_step(NOW) + offset) for offset in (-1, 0, 1)}
    assert (verify_code(SECRET, code, NOW, None) is not None) is (code in window)


def test_the_qr_code_carries_the_uri_in_text() -> None:
    uri = provisioning_uri(SECRET, "alice")
    text = qr_text(uri)
    expected = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    expected.add_data(uri)
    expected.make(fit=True)
    lines = text.splitlines()
    width = expected.modules_count + 4
    assert len(lines) == (width + 1) // 2
    assert all(len(line) == width for line in lines)
    assert set(text) <= {"\n", " ", "\u2580", "\u2584", "\u2588", "\xa0"}
    assert qr_text(uri) == text
