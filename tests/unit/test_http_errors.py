"""The center's domain errors as HTTP answers: one adapter, the same statuses as before."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from central import errors
from central.fleet import CommandNotSent, NoResultInTime
from central.http_errors import install_error_handlers
from central.reconcile import StreamStartFailed
from central.relay.auth import authorize
from protocol.tokens import TokenSigner


async def answer_to(error: Exception) -> httpx.Response:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/")
    def fail() -> None:
        raise error

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://center") as http:
        return await http.get("/")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.Invalid("not an SDP offer"), 400),
        (errors.NotAuthorized("expired"), 401),
        (errors.Forbidden("wrong_scope"), 403),
        (errors.Refused("entry 3: not signed by the pinned key"), 403),
        (errors.NotFound("no such stream was started"), 404),
        (errors.UnknownUnit("u1"), 404),
        (errors.Conflict("entry 2 before entry 4"), 409),
        (errors.UnitOffline("u1"), 409),
        (errors.TooLarge("more bytes than the entry's size"), 413),
        (errors.Unprocessable("SHA-256 does not match"), 422),
        (errors.Failed("refused"), 502),
        (StreamStartFailed("unit could not start: failed: busy"), 502),
        (errors.Unavailable("relay worker unreachable"), 503),
        (CommandNotSent("cannot send command: broker down"), 503),
        (errors.TimedOut("the stream did not go live in time"), 504),
        (errors.CenterError("something else"), 500),
    ],
)
async def test_each_kind_answers_with_its_status_and_detail(
    error: errors.CenterError, status: int
) -> None:
    answer = await answer_to(error)
    assert answer.status_code == status
    assert answer.json() == {"detail": str(error)}


async def test_a_refused_token_challenges_for_a_bearer_token() -> None:
    for error in (errors.NotAuthorized("bearer token required"), errors.Forbidden("wrong_scope")):
        assert (await answer_to(error)).headers["WWW-Authenticate"] == "Bearer"
    assert "WWW-Authenticate" not in (await answer_to(errors.Refused("unsigned"))).headers


async def test_unavailable_says_when_to_ask_again() -> None:
    answer = await answer_to(errors.Unavailable("relay worker unreachable", retry_after_s=1))
    assert answer.headers["Retry-After"] == "1"
    assert "Retry-After" not in (await answer_to(CommandNotSent("broker down"))).headers


async def test_a_command_without_result_names_it_and_whether_it_was_accepted() -> None:
    answer = await answer_to(NoResultInTime("no final result in time", cmd_id="c1", accepted=True))
    assert answer.status_code == 504
    assert answer.json() == {"detail": "no final result in time", "cmd_id": "c1", "accepted": True}


def test_authorize_refuses_by_kind() -> None:
    signer = TokenSigner({"k1": b"k" * 32}, "k1")
    whep = signer.issue("whep", "s1", 100.0, 60.0, who="api")
    with pytest.raises(errors.NotAuthorized, match="bearer token required") as missing:
        authorize(signer, "whep", "s1", None, 100.0)
    assert not isinstance(missing.value, errors.Forbidden)
    with pytest.raises(errors.Forbidden):
        authorize(signer, "whip", "s1", f"Bearer {whep}", 100.0)
    with pytest.raises(errors.NotAuthorized):
        authorize(signer, "whep", "s1", f"Bearer {whep}", 1000.0)
    assert authorize(signer, "whep", "s1", f"Bearer {whep}", 100.0).who == "api"
