"""Viewer tokens as people hold them: each is issued to one person (or API client) for one
stream, recorded as a grant, and checked against that record at every WHEP request, so a
revoked token or one whose session ended opens nothing more. The viewers already watching
with it are dropped at their relay worker within `SWEEP_S` (any center process sharing the
database sees the revocation), and every view's start and end is audited: who, which
stream, from where, how long.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import structlog

from central.db.audit_chain import AuditEntry
from central.db.viewer_grants import ViewerGrant, ViewerGrants
from central.errors import Forbidden, Unavailable
from central.gate import Caller, Gate
from central.relay_front import RelayFront
from protocol.tokens import Claims

log = structlog.get_logger("rtcc.viewers")

SWEEP_S = 1.0
# A worker that drops a viewer by itself (it left, media timed out) is noticed this often.
GONE_CHECK_S = 10.0
MAX_TRACKED_VIEWS = 10_000


@dataclass(frozen=True, slots=True)
class IssuedViewerToken:
    token: str
    token_id: str
    expires_at: float


@dataclass
class View:
    """One WHEP session the front opened: until it ends, it is watched for revocation."""

    token_id: str
    holder: str
    stream_id: str
    location: str
    source: str
    started: float


class ViewerAccess:
    def __init__(
        self,
        gate: Gate,
        relay: RelayFront,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gate = gate
        self.relay = relay
        self.ttl_s = ttl_s
        self._clock = clock
        self._views: dict[str, View] = {}  # by location; written from threads and the loop
        self._lock = threading.Lock()

    def issue(
        self,
        caller: Caller,
        stream_id: str,
        until: float | None = None,
        share_id: str | None = None,
    ) -> IssuedViewerToken:
        """Blocking (database): a token for `caller` to watch `stream_id`, recorded and
        audited; one issued through a share ends with it (`until`, or its revocation)."""
        now = self._clock()
        token_id = secrets.token_urlsafe(12)
        ttl = self.ttl_s if until is None else max(1.0, min(self.ttl_s, until - now))
        expires = now + ttl
        with self.gate.database.write() as tx:
            ViewerGrants(tx).issue(
                token_id, caller.name, stream_id, now, expires, caller.session_hash, share_id
            )
        detail = {"token_id": token_id} | ({"share_id": share_id} if share_id else {})
        self.gate.audit(caller, "streams.viewer_token", "ok", stream_id, detail)
        token = self.relay.signer.issue("whep", stream_id, now, ttl, who=caller.name, jti=token_id)
        return IssuedViewerToken(token, token_id, expires)

    def check(self, claims: Claims) -> ViewerGrant:
        """Blocking (database): the grant behind a viewer token, if it still holds (and
        the view can be watched for revocation)."""
        if len(self._views) >= MAX_TRACKED_VIEWS:
            raise Unavailable("too many viewers at this center", retry_after_s=5)
        with self.gate.database.read() as tx:
            grant = ViewerGrants(tx).get(claims.jti)
        if grant is None or grant.stream_id != claims.sub:
            raise Forbidden("viewer token was not issued by this center")
        if not grant.holds(self._clock()):
            raise Forbidden("viewer token revoked")
        return grant

    def revoke(self, caller: Caller, token_id: str) -> ViewerGrant:
        """Blocking (database): the token opens nothing from now on; its viewers are
        dropped by the next sweep."""
        with self.gate.database.write() as tx:
            grant = ViewerGrants(tx).revoke(token_id, self._clock())
        detail = {"holder": grant.holder, "token_id": token_id}
        self.gate.audit(caller, "streams.viewer_revoke", "ok", grant.stream_id, detail)
        return grant

    def grants(self, stream_id: str | None) -> list[ViewerGrant]:
        with self.gate.database.read() as tx:
            return ViewerGrants(tx).active(self._clock(), stream_id)

    # ---- views ----------------------------------------------------------------------------

    def opened(self, grant: ViewerGrant, location: str, source: str) -> None:
        """A WHEP session was answered for this grant (blocking: audits). Watched from now
        on: a revocation since the check is found by the next sweep, which asks by id."""
        now = self._clock()
        view = View(grant.token_id, grant.holder, grant.stream_id, location, source, now)
        with self._lock:
            self._views[location] = view
        self._audit_view(view, "streams.view_start", "ok", {})

    def closed(self, location: str, why: str) -> None:
        """The WHEP session ended (blocking: audits how long it lasted)."""
        with self._lock:
            view = self._views.pop(location, None)
        if view is not None:
            duration = round(self._clock() - view.started, 1)
            self._audit_view(view, "streams.view_stop", why, {"duration_s": duration})

    def _audit_view(self, view: View, action: str, outcome: str, detail: dict[str, float]) -> None:
        entry = AuditEntry(
            self._clock(),
            view.holder,
            action,
            outcome,
            None,
            view.source,
            view.stream_id,
            {"token_id": view.token_id, **detail},
        )
        self.gate.append(entry)

    async def run(self) -> None:
        """Drops revoked viewers every `SWEEP_S`; notices viewers gone on their own every
        `GONE_CHECK_S`."""
        checked = self._clock()
        async with httpx.AsyncClient(timeout=5.0) as http:
            while True:
                await asyncio.sleep(SWEEP_S)
                await self.sweep(http)
                if self._clock() - checked >= GONE_CHECK_S:
                    checked = self._clock()
                    await self._forget_gone(http)

    async def sweep(self, http: httpx.AsyncClient) -> None:
        """Drops the viewers whose token is revoked (by a supervisor, or with the session
        or key it was issued on). Asked by the ids watched, not by time, so that no clock
        or late commit hides a revocation; a view stays watched until its worker confirms
        the drop."""
        with self._lock:
            watched = list(self._views.values())
        if not watched:
            return
        ids = sorted({view.token_id for view in watched})
        revoked = set(await asyncio.to_thread(self._revoked_among, ids))
        for view in (v for v in watched if v.token_id in revoked):
            if await self._drop(http, view):
                await asyncio.to_thread(self.closed, view.location, "revoked")

    def _revoked_among(self, token_ids: list[str]) -> list[str]:
        with self.gate.database.read() as tx:
            return ViewerGrants(tx).revoked_among(token_ids)

    async def _drop(self, http: httpx.AsyncClient, view: View) -> bool:
        """Whether the worker no longer holds the viewer (dropped now, or already gone)."""
        try:
            answer = await http.delete(self._worker_url(view), headers=self._auth(view))
        except httpx.HTTPError as exc:
            log.warning("viewer_drop_failed", stream_id=view.stream_id, error=str(exc))
            return False
        return answer.status_code < 300 or answer.status_code == 404

    async def _forget_gone(self, http: httpx.AsyncClient) -> None:
        with self._lock:
            watched = list(self._views.values())
        for view in watched:
            try:
                answer = await http.get(self._worker_url(view), headers=self._auth(view))
            except httpx.HTTPError:
                continue
            if answer.status_code == 404:
                await asyncio.to_thread(self.closed, view.location, "ended")

    def _worker_url(self, view: View) -> str:
        return self.relay.worker_url(view.stream_id, view.location)

    def _auth(self, view: View) -> dict[str, str]:
        token = self.relay.signer.issue("whep", view.stream_id, self._clock(), 60.0, "center")
        return {"authorization": f"Bearer {token}"}
