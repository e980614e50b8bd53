import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.tokens import TokenError, TokenSigner

KEY = b"k" * 32
signer = TokenSigner({"a": KEY}, "a")


def reason(token: str, aud: str = "whep", stream: str = "s1", now: float = 100.0) -> str:
    with pytest.raises(TokenError) as info:
        signer.verify(token, aud, stream, now)  # type: ignore[arg-type]
    return info.value.reason


def test_round_trip() -> None:
    token = signer.issue("whep", "s1", now=100.0, ttl_s=60, who="dispatcher-7")
    claims = signer.verify(token, "whep", "s1", now=120.0)
    assert claims.sub == "s1" and claims.aud == "whep" and claims.who == "dispatcher-7"


def test_refusals() -> None:
    token = signer.issue("whep", "s1", now=100.0, ttl_s=60)
    assert reason(token, now=160.0) == "expired"
    assert reason(token, stream="s2") == "wrong_scope"
    assert reason(token, aud="whip") == "wrong_scope"
    assert reason("") == "malformed"
    assert reason("Bearer " + token) == "malformed"
    other = TokenSigner({"a": b"x" * 32}, "a").issue("whep", "s1", 100.0, 60)
    assert reason(other) == "bad_signature"
    rotated = TokenSigner({"b": KEY}, "b").issue("whep", "s1", 100.0, 60)
    assert reason(rotated) == "unknown_key"


def test_forged_claims_fail_the_signature() -> None:
    token = signer.issue("whep", "s1", now=100.0, ttl_s=60)
    body, sig = token.rsplit(".", 1)
    claims = json.loads(base64.urlsafe_b64decode(body[3:] + "=="))
    claims["exp"] = 10**12
    forged = "v1." + base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert reason(forged + "." + sig) == "bad_signature"


def test_key_rotation_keeps_old_tokens_valid() -> None:
    old = TokenSigner({"a": KEY}, "a").issue("whip", "s1", 100.0, 60)
    both = TokenSigner({"a": KEY, "b": b"n" * 32}, "b")
    assert both.verify(old, "whip", "s1", 101.0).kid == "a"
    assert both.verify(both.issue("whip", "s1", 100.0, 60), "whip", "s1", 101.0).kid == "b"


def test_weak_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenSigner({"a": b"short"}, "a")


@given(st.text(max_size=400))
def test_garbage_only_raises_token_error(text: str) -> None:
    with pytest.raises(TokenError):
        signer.verify(text, "whep", "s1", 100.0)


@given(st.binary(max_size=300))
def test_garbage_with_the_prefix_only_raises_token_error(data: bytes) -> None:
    text = "v1." + base64.urlsafe_b64encode(data).decode() + ".c2ln"
    with pytest.raises(TokenError):
        signer.verify(text, "whep", "s1", 100.0)
