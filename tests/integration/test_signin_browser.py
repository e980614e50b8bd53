"""The center's sign-in page (central/static/home.html) in Debian's headless Chromium, against
a whole center: a dispatcher signs in with password and TOTP, a wrong code is refused and
audited, an idle session locks and the password opens it again, sign-out ends the session
for good, and a change without the CSRF header is refused. Screenshots of every view at two
screen sizes go to the test's folder and to var/screenshots for a person to look at."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from central.access import totp
from central.access.policy import Role
from central.gate import CSRF_COOKIE, SESSION_COOKIE
from central.service import Central
from tests.integration.browser_helpers import SHOTS, SIZES, shoot
from tests.integration.site_helpers import PASSWORD, Site, running_site
from tests.integration.test_browser import browser

__all__ = ["browser"]  # the fixture, shared with the stream viewer's browser tests

VIEWS = ("signin", "unlock", "signed-in")
IDLE_LOCK_S = 2.0
# Long enough that no other test's session locks on a busy machine.
NO_IDLE_LOCK_S = 600.0
WAIT_MS = 15_000


@pytest.fixture
async def site(broker_url: str, unique: str, tmp_path: Path) -> AsyncIterator[Site]:
    async with running_site(broker_url, unique, tmp_path, NO_IDLE_LOCK_S) as running:
        yield running


@pytest.fixture
async def idle_site(broker_url: str, unique: str, tmp_path: Path) -> AsyncIterator[Site]:
    async with running_site(broker_url, unique, tmp_path, IDLE_LOCK_S) as running:
        yield running


class Desk:
    """One browser window on the center's home page; it notes every request the page makes
    and every script error, so that a test can check none went elsewhere and none failed."""

    def __init__(self, context: BrowserContext, page: Page, base: str) -> None:
        self.context = context
        self.page = page
        self.base = base
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    async def open(self) -> None:
        await self.page.goto(self.base + "/")
        await self.showing("signin")

    async def showing(self, view: str) -> None:
        """Waits until the page shows `view` (one of VIEWS) and only it."""
        await expect(self.page.locator(f"#{view}")).to_be_visible(timeout=WAIT_MS)
        for other in VIEWS:
            if other != view:
                await expect(self.page.locator(f"#{other}")).to_be_hidden(timeout=WAIT_MS)

    async def sign_in(self, name: str, password: str, code: str) -> None:
        """Types into the form as a person would and presses the button."""
        await self.page.locator("#name").press_sequentially(name)
        await self.page.locator("#password").press_sequentially(password)
        await self.page.locator("#code").press_sequentially(code)
        await self.page.get_by_role("button", name="Sign in").click()

    async def signed_in_as(self, name: str, role: Role) -> None:
        await self.showing("signed-in")
        await expect(self.page.locator("#user")).to_have_text(name)
        await expect(self.page.locator("#role")).to_have_text(role.value)
        await expect(self.page.locator("#error")).to_have_text("")

    async def cookie(self, name: str) -> str | None:
        found = [c for c in await self.context.cookies(self.base) if c.get("name") == name]
        return found[0].get("value") if found else None

    async def status_of(
        self, method: str, path: str, headers: dict[str, str], body: str | None = None
    ) -> int:
        """The status of a fetch made by the page itself (its cookies, its origin)."""
        status = await self.page.evaluate(
            "async ([method, path, headers, body]) =>"
            " (await fetch(path, { method, headers, body })).status",
            [method, path, headers, body],
        )
        assert isinstance(status, int)
        return status

    def check_clean(self) -> None:
        assert self.errors == [], self.errors
        elsewhere = [url for url in self.requests if not url.startswith(self.base + "/")]
        assert elsewhere == [], elsewhere


@contextlib.asynccontextmanager
async def desk_at(browser: Browser, central: Central) -> AsyncIterator[Desk]:
    width, height = SIZES[0]
    context = await browser.new_context(viewport={"width": width, "height": height})
    try:
        desk = Desk(context, await context.new_page(), central.api_url)
        await desk.open()
        yield desk
        desk.check_clean()
    finally:
        await context.close()


def current_code(secret: str | None) -> str:
    assert secret is not None
    return totp.code_at(secret, totp.time_step(time.time()))


def wrong_code(secret: str | None) -> str:
    """Six digits that no step near now gives (a step may turn while the test runs)."""
    assert secret is not None
    now = totp.time_step(time.time())
    near = {totp.code_at(secret, step) for step in range(now - 2, now + 3)}
    return next(code for code in (f"{n:06d}" for n in range(1_000_000)) if code not in near)


def shots_named(paths: list[Path]) -> Iterator[str]:
    for path in paths:
        assert path.stat().st_size > 0 and (SHOTS / path.name).exists(), path
        yield path.name


async def test_dispatcher_signs_in_with_password_and_code(
    browser: Browser, site: Site, tmp_path: Path
) -> None:
    site.add("dana", Role.DISPATCHER)
    async with desk_at(browser, site.central) as desk:
        form = await shoot(desk.page, tmp_path, "signin-form")
        await desk.sign_in("dana", PASSWORD, current_code(site.secrets["dana"]))
        await desk.signed_in_as("dana", Role.DISPATCHER)
        assert await desk.cookie(SESSION_COOKIE)
        signed_in = await shoot(desk.page, tmp_path, "signed-in")
        # The view holds after a reload: the session, not the page, says who is signed in.
        await desk.page.reload()
        await desk.signed_in_as("dana", Role.DISPATCHER)
    assert sorted(shots_named(form + signed_in)) == sorted(
        f"{view}-{w}x{h}.png" for view in ("signin-form", "signed-in") for w, h in SIZES
    )
    assert [(r["actor"], r["outcome"]) for r in site.audit("signin")] == [("dana", "ok")]


async def test_a_wrong_code_is_refused_and_audited(
    browser: Browser, site: Site, tmp_path: Path
) -> None:
    site.add("omar", Role.DISPATCHER)
    async with desk_at(browser, site.central) as desk:
        await desk.sign_in("omar", PASSWORD, wrong_code(site.secrets["omar"]))
        await expect(desk.page.locator("#error")).to_have_text(
            "wrong name, password or code", timeout=WAIT_MS
        )
        await desk.showing("signin")
        # The form keeps the name and clears the secrets.
        await expect(desk.page.locator("#name")).to_have_value("omar")
        await expect(desk.page.locator("#password")).to_have_value("")
        await expect(desk.page.locator("#code")).to_have_value("")
        assert await desk.cookie(SESSION_COOKIE) is None
        shot = await shoot(desk.page, tmp_path, "signin-refused")
    assert len(list(shots_named(shot))) == len(SIZES)
    refused = [(r["actor"], r["outcome"], r["source"]) for r in site.audit("signin")]
    assert refused == [("omar", "wrong_credentials", "127.0.0.1")]


async def test_an_idle_session_locks_and_the_password_opens_it(
    browser: Browser, idle_site: Site, tmp_path: Path
) -> None:
    site = idle_site
    site.add("lee", Role.DISPATCHER)
    async with desk_at(browser, site.central) as desk:
        await desk.sign_in("lee", PASSWORD, current_code(site.secrets["lee"]))
        await desk.signed_in_as("lee", Role.DISPATCHER)
        # Left alone, the page shows the lock by itself once the session is idle that long;
        # after a reload the center says the same.
        await desk.showing("unlock")
        await desk.page.reload()
        await desk.showing("unlock")
        await expect(desk.page.locator("#unlock-password")).to_be_focused()
        shot = await shoot(desk.page, tmp_path, "unlock")
        # A wrong password leaves it locked and says so.
        await desk.page.locator("#unlock-password").press_sequentially("not the password")
        await desk.page.get_by_role("button", name="Unlock").click()
        await expect(desk.page.locator("#error")).to_have_text("wrong password", timeout=WAIT_MS)
        await desk.showing("unlock")
        await desk.page.locator("#unlock-password").press_sequentially(PASSWORD)
        await desk.page.get_by_role("button", name="Unlock").click()
        await desk.signed_in_as("lee", Role.DISPATCHER)
        assert await desk.status_of("GET", "/api/v1/session", {}) == 200
    assert len(list(shots_named(shot))) == len(SIZES)
    assert [r["outcome"] for r in site.audit("session.lock")] == ["ok"]
    # Newest first.
    assert [r["outcome"] for r in site.audit("session.unlock")] == ["ok", "wrong_credentials"]


async def test_sign_out_ends_the_session_for_good(browser: Browser, site: Site) -> None:
    site.add("sam", Role.DISPATCHER)
    async with desk_at(browser, site.central) as desk:
        await desk.sign_in("sam", PASSWORD, current_code(site.secrets["sam"]))
        await desk.signed_in_as("sam", Role.DISPATCHER)
        old_cookies = await desk.context.cookies(desk.base)
        old_session = await desk.cookie(SESSION_COOKIE)
        assert old_session and await desk.cookie(CSRF_COOKIE)
        await desk.page.get_by_role("button", name="Sign out").click()
        await desk.showing("signin")
        await expect(desk.page.locator("#name")).to_be_focused()
        assert await desk.cookie(SESSION_COOKIE) is None
        assert await desk.cookie(CSRF_COOKIE) is None
        await desk.page.reload()
        await desk.showing("signin")
        # The old cookie, put back (as one copied before sign-out would be), opens nothing.
        await desk.context.add_cookies(old_cookies)  # type: ignore[arg-type]
        assert await desk.status_of("GET", "/api/v1/session", {}) == 401
        await desk.page.reload()
        await desk.showing("signin")
    async with site.browser() as other:
        cookie = {"Cookie": f"{SESSION_COOKIE}={old_session}"}
        answer = await other.get("/api/v1/session", headers=cookie)
        assert answer.status_code == 401 and answer.json()["session"] == "ended", answer.text
    assert [(r["actor"], r["outcome"]) for r in site.audit("signout")] == [("sam", "ok")]


async def test_a_change_without_the_csrf_header_is_refused(browser: Browser, site: Site) -> None:
    site.add("kim", Role.DISPATCHER)
    async with desk_at(browser, site.central) as desk:
        await desk.sign_in("kim", PASSWORD, current_code(site.secrets["kim"]))
        await desk.signed_in_as("kim", Role.DISPATCHER)
        # The page's own origin and cookies, without (or with a wrong) X-CSRF-Token.
        assert await desk.status_of("DELETE", "/api/v1/session", {}) == 403
        assert await desk.status_of("DELETE", "/api/v1/session", {"X-CSRF-Token": "x"}) == 403
        json = {"Content-Type": "application/json"}
        body = f'{{"password": "{PASSWORD}"}}'
        assert await desk.status_of("POST", "/api/v1/session/unlock", json, body) == 403
        # Nothing was changed: still signed in.
        assert await desk.status_of("GET", "/api/v1/session", {}) == 200
        await desk.page.reload()
        await desk.signed_in_as("kim", Role.DISPATCHER)
    assert site.audit("signout") == []
