"""The one place where the center's domain errors become HTTP answers (the API and the
relay workers both install it): `{"detail": ...}` plus whatever context the error carries."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from central.errors import (
    CenterError,
    Conflict,
    Failed,
    Forbidden,
    Invalid,
    NotAuthorized,
    NotFound,
    Refused,
    TimedOut,
    TooLarge,
    Unavailable,
    Unprocessable,
)

# Most specific first: a subclass is answered by its own row.
STATUS: tuple[tuple[type[CenterError], int], ...] = (
    (Invalid, 400),
    (Forbidden, 403),
    (NotAuthorized, 401),
    (Refused, 403),
    (NotFound, 404),
    (Conflict, 409),
    (TooLarge, 413),
    (Unprocessable, 422),
    (Failed, 502),
    (Unavailable, 503),
    (TimedOut, 504),
)
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def status_of(exc: CenterError) -> int:
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 500)


def answer(exc: CenterError) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(exc, NotAuthorized):
        headers.update(CHALLENGE)
    if isinstance(exc, Unavailable) and exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    body = {"detail": str(exc), **exc.context}
    return JSONResponse(body, status_code=status_of(exc), headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    async def on_center_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CenterError)
        return answer(exc)

    app.add_exception_handler(CenterError, on_center_error)
