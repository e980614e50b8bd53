"""HTTP for people: sign in (password, and a TOTP code where the role needs one), unlock a
locked session, sign out; the audit log for supervisors; the API's own documentation, served
from the center (Swagger UI from the pinned npm package) and only to those signed in."""

# No `from __future__ import annotations`: the routes' signatures hold the gate's
# dependencies, which FastAPI must evaluate where the routes are defined.

import asyncio
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from central.access.policy import Action
from central.db.audit import Audit, AuditQuery
from central.errors import NotAuthorized, NotFound
from central.gate import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    Caller,
    Gate,
    check_csrf,
    csrf_token,
    source_of,
)
from central.sign_in import SignedIn, SignInService

SWAGGER_FILES = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"})


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignInRequest(ApiModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    code: str | None = Field(default=None, max_length=16, description="TOTP code, if enrolled.")


class UnlockRequest(ApiModel):
    password: str = Field(min_length=1, max_length=1024)


class SessionView(ApiModel):
    user: str
    role: str
    csrf_token: str | None = Field(description=f"Send it as {CSRF_HEADER} on changes.")
    expires_at: float | None = None
    idle_lock_s: float | None = Field(
        default=None, description="Unused this long, the session locks (sessions only)."
    )


class AuditRecordView(ApiModel):
    seq: int
    at: float
    actor: str
    role: str | None
    source: str | None
    action: str
    object: str | None
    outcome: str
    detail: dict[str, JsonValue]
    hash: str


class AuditPageView(ApiModel):
    records: list[AuditRecordView]
    next_cursor: int | None


def _session_answer(signed: SignedIn, request: Request, idle_lock_s: float) -> JSONResponse:
    body = SessionView(
        user=signed.user,
        role=signed.role.value,
        csrf_token=signed.csrf,
        expires_at=signed.expires_at,
        idle_lock_s=idle_lock_s,
    )
    answer = JSONResponse(body.model_dump())
    secure = request.url.scheme == "https"
    common: dict[str, Any] = {"secure": secure, "samesite": "strict", "path": "/"}
    answer.set_cookie(SESSION_COOKIE, signed.session_id, httponly=True, **common)
    answer.set_cookie(CSRF_COOKIE, signed.csrf, httponly=False, **common)
    return answer


def add_access_routes(
    app: FastAPI, gate: Gate, sign_ins: SignInService, swagger_dir: Path | None
) -> None:
    tags: list[Any] = ["access"]
    home_page = resources.files("central.static").joinpath("home.html").read_text()
    idle_lock_s = gate.settings.sessions.idle_lock_s

    @app.post("/api/v1/session", tags=tags, responses={401: {}})
    async def sign_in(body: SignInRequest, request: Request) -> JSONResponse:
        """Sign in; sets the session cookie (HttpOnly, SameSite=Strict) and the CSRF cookie."""
        signed = await asyncio.to_thread(
            sign_ins.sign_in, body.name, body.password, body.code, source_of(request)
        )
        return _session_answer(signed, request, idle_lock_s)

    @app.get("/api/v1/session", tags=tags, responses={401: {}})
    def who_am_i(request: Request) -> SessionView:
        caller = gate.identify(request)
        session_id = request.cookies.get(SESSION_COOKIE)
        csrf = csrf_token(session_id) if caller.session_hash and session_id else None
        idle = idle_lock_s if caller.session_hash else None
        return SessionView(user=caller.name, role=caller.role, csrf_token=csrf, idle_lock_s=idle)

    @app.post("/api/v1/session/unlock", tags=tags, responses={401: {}})
    async def unlock(body: UnlockRequest, request: Request) -> JSONResponse:
        """The password again opens a session that locked after being idle."""
        session_id = _cookie_with_csrf(request)
        signed = await asyncio.to_thread(
            sign_ins.unlock, session_id, body.password, source_of(request)
        )
        return _session_answer(signed, request, idle_lock_s)

    @app.delete("/api/v1/session", tags=tags)
    async def sign_out(request: Request) -> Response:
        """Ends the session everywhere it is used, and the viewer tokens issued in it."""
        session_id = _cookie_with_csrf(request)
        await asyncio.to_thread(sign_ins.sign_out, session_id, source_of(request))
        answer = Response(status_code=204)
        answer.delete_cookie(SESSION_COOKIE, path="/")
        answer.delete_cookie(CSRF_COOKIE, path="/")
        return answer

    add_audit_route(app, gate)
    add_docs_routes(app, gate, swagger_dir)

    @app.get("/", include_in_schema=False)
    def home() -> HTMLResponse:
        """Sign-in, lock and sign-out (the page holds no data: its calls are checked)."""
        return HTMLResponse(home_page)


def add_audit_route(app: FastAPI, gate: Gate) -> None:
    @app.get("/api/v1/audit", tags=["access"])
    def audit_log(
        caller: Annotated[Caller, Depends(gate.require(Action.AUDIT_READ))],
        query: Annotated[AuditQuery, Query()],
    ) -> AuditPageView:
        """The audit log, newest first, filtered by actor, action, object and time."""
        with gate.database.read() as tx:
            page = Audit(tx).query(query)
        filters = query.model_dump(exclude_none=True, exclude={"limit", "newest_first"})
        gate.audit(caller, "audit.read", "ok", None, filters)
        return AuditPageView(
            records=[
                AuditRecordView(
                    seq=r.seq,
                    at=r.entry.at,
                    actor=r.entry.actor,
                    role=r.entry.role,
                    source=r.entry.source,
                    action=r.entry.action,
                    object=r.entry.object,
                    outcome=r.entry.outcome,
                    detail=dict(r.entry.detail),
                    hash=r.hash,
                )
                for r in page.records
            ],
            next_cursor=page.next_cursor,
        )


def add_docs_routes(app: FastAPI, gate: Gate, swagger_dir: Path | None) -> None:
    docs = [Depends(gate.require(Action.API_DOCS))]

    @app.get("/openapi.json", include_in_schema=False, dependencies=docs)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=docs)
    def docs_page() -> HTMLResponse:
        if swagger_dir is None:
            raise NotFound("API docs assets are not installed (run 'make setup')")
        return HTMLResponse(_SWAGGER_PAGE)

    @app.get("/assets/swagger-ui/{name}", include_in_schema=False, dependencies=docs)
    def swagger_asset(name: str) -> FileResponse:
        if swagger_dir is None or name not in SWAGGER_FILES:
            raise NotFound("no such asset")
        return FileResponse(swagger_dir / name)


def _cookie_with_csrf(request: Request) -> str:
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        raise NotAuthorized("sign in first", session="none")
    check_csrf(request, session_id)
    return session_id


_SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rtcc center API</title>
<link rel="stylesheet" href="/assets/swagger-ui/swagger-ui.css">
<link rel="icon" href="/assets/swagger-ui/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/assets/swagger-ui/swagger-ui-bundle.js"></script>
<script>
const csrf = document.cookie.split("; ").find((c) => c.startsWith("rtcc_csrf="));
SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  requestInterceptor: (req) => {
    if (csrf) req.headers["X-CSRF-Token"] = csrf.split("=")[1];
    return req;
  },
});
</script>
</body></html>
"""
