"""TOTP second factor (RFC 6238: 6 digits, 30 s steps, SHA-1, as authenticator apps expect).

Verification takes the time as an argument and the last time step this account had
accepted: a code is good for one sign-in only, even within its window, so the caller stores
the step `verify_code` returns.
"""

from __future__ import annotations

import hmac
import io

import pyotp
import qrcode  # type: ignore[import-untyped]

ISSUER = "rtcc"
STEP_S = 30
DIGITS = 6
# Accept the previous and the next step too: phones' clocks drift.
WINDOW_STEPS = 1


def new_secret() -> str:
    """A fresh base32 secret of 160 bits (RFC 4226's recommended length)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, account_name: str) -> str:
    """The otpauth:// URI an authenticator app enrols from, labelled "rtcc:NAME"."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(
        name=account_name, issuer_name=ISSUER
    )


def time_step(now: float) -> int:
    return int(now // STEP_S)


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).generate_otp(step)


def verify_code(secret: str, code: str, now: float, last_step: int | None) -> int | None:
    """The time step the code belongs to if it is right, within one step of `now`, and
    later than `last_step` (the step accepted last for this account); else None."""
    candidate = code.replace(" ", "")
    if len(candidate) != DIGITS or not candidate.isascii() or not candidate.isdigit():
        return None
    current = time_step(now)
    matched: int | None = None
    # Every step in the window is compared, matched or not, so the time taken tells nothing.
    for step in range(current - WINDOW_STEPS, current + WINDOW_STEPS + 1):
        fresh = last_step is None or step > last_step
        if hmac.compare_digest(code_at(secret, step), candidate) and fresh and matched is None:
            matched = step
    return matched


def qr_text(uri: str) -> str:
    """The URI as a QR code in text (block characters), for `rtcc users totp NAME` to show
    in a terminal; dark-on-light, the way phones' cameras read it best."""
    code = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(uri)
    code.make(fit=True)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue()
