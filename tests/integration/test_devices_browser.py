"""The field tech's Devices page (central/static/devices) in Debian's headless Chromium,
against a whole center with its own mutual-TLS broker: a tech sent to sign in comes back to
the page, makes an enrollment code there (shown in its groups, with the gateway's command;
audited), a gateway enrolls with that very code and its agent comes online over mTLS, the
list shows it online beside a replaced and an expiring-soon certificate, and revoking it
from the page (after a confirmation naming it) throws the agent off and shows it revoked,
by whom. A dispatcher is not offered the page and is refused by it. Screenshots at
1920x1080 and 1366x768 go to /tmp/devices-shots (RTCC_DEVICES_SHOTS) for a person to look at.
The page's Content-Security-Policy stays on throughout."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.async_api import Browser, expect

from agent.enroll import certificate_request, enroll
from central.access.policy import Role
from central.provisioning import Provisioning
from protocol.evidence import UnitKey
from tests.center_tls import ca_file
from tests.helpers import wait_for
from tests.integration.browser_helpers import SIZES, shoot
from tests.integration.console_helpers import Screen, screen_of
from tests.integration.identity_helpers import (
    TECH,
    audited,
    center_with_own_broker,
    enroll_gateway,
    enrolled_agent,
)
from tests.integration.site_helpers import PASSWORD, Site, running_site
from tests.integration.test_browser import browser

__all__ = ["browser"]  # the fixture

SHOTS = Path(os.environ.get("RTCC_DEVICES_SHOTS", "/tmp/devices-shots"))
CODE = re.compile(r"[A-Z2-9]{4}(?:-[A-Z2-9]{4}){3}")
DAY_S = 86_400.0
READY = "window.rtccDevices?.ready && rtccDevices.state.polls > 0"
WAIT_MS = 20_000
# People sign in cheaply here; no session locks while a test runs.
ACCESS = {
    "passwords": {"time_cost": 1, "memory_kib": 8192, "parallelism": 1},
    "sessions": {"idle_lock_s": 600},
    "throttle": {"account": {"base_delay_s": 0}},
}


@pytest.fixture
async def secure_site(unique: str, tmp_path: Path) -> AsyncIterator[Site]:
    """A whole center whose supervised broker speaks mutual TLS (the default), with people."""
    async with center_with_own_broker(unique, tmp_path, access=ACCESS) as central:
        yield Site(central)


@pytest.fixture
async def site(broker_url: str, unique: str, tmp_path: Path) -> AsyncIterator[Site]:
    async with running_site(broker_url, unique, tmp_path, idle_lock_s=600) as running:
        yield running


@contextlib.asynccontextmanager
async def window(browser: Browser, site: Site) -> AsyncIterator[Screen]:
    """A browser window on the center that has signed nobody in yet."""
    width, height = SIZES[0]
    context = await browser.new_context(viewport={"width": width, "height": height})
    try:
        screen = Screen(context, await context.new_page(), site.central.api_url)
        yield screen
        screen.check_clean()
    finally:
        await context.close()


def row(screen: Screen, unit_id: str) -> str:
    return f'#device-rows tr.unit-row[data-unit="{unit_id}"]'


async def make_code(screen: Screen, unit_id: str) -> str:
    """Types the unit id, keeps the default expiry, presses the button; the code shown."""
    page = screen.page
    await page.locator("#unit-id").fill(unit_id)
    await expect(page.locator("#expires")).to_have_value(str(int(DAY_S)))
    await page.get_by_role("button", name="Create code").click()
    await expect(page.locator("#code-result")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#code-unit")).to_have_text(unit_id)
    code = await page.locator("#code-value").get_attribute("data-code")
    assert code is not None and CODE.fullmatch(code), code
    # Shown in the groups the center made, one box each.
    groups = await page.locator("#code-value span").all_inner_texts()
    assert groups == code.split("-")
    command = f"rtcc provision enroll --center {screen.base} --code {code} --ca-file center-ca.pem"
    await expect(page.locator("#enroll-command")).to_have_text(command)
    return code


def enroll_in_the_past(site: Site, unit_id: str, days_ago: float) -> str:
    """A certificate for `unit_id` issued `days_ago` (so its end is near), as a center whose
    clock said so would have issued it; its serial."""
    central = site.central
    then = time.time() - days_ago * DAY_S
    past = Provisioning(
        site.database, central.settings.data_dir, central.settings.provision, clock=lambda: then
    )
    code = past.create_code(TECH, unit_id)
    csr = certificate_request(ec.generate_private_key(ec.SECP256R1())).decode()
    return past.enroll(code, csr, UnitKey.generate().public_b64, "127.0.0.1").serial


async def test_a_tech_enrolls_and_revokes_a_gateway_from_the_devices_page(
    browser: Browser, secure_site: Site, unique: str, tmp_path: Path
) -> None:
    site = secure_site
    central = site.central
    assert central.fleet is not None and central.mqtt_url.startswith("mqtts://")
    unit, spare, old = f"P-{unique[:4]}", f"S-{unique[:4]}", f"Q-{unique[:4]}"
    site.add("tess", Role.TECH)
    async with window(browser, site) as tech:
        page = tech.page
        # Sent to sign in, then back to the page.
        await page.goto(tech.base + "/devices")
        await expect(page.locator("#signin")).to_be_visible(timeout=WAIT_MS)
        assert "next=%2Fdevices" in page.url
        await page.locator("#name").fill("tess")
        await page.locator("#password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(tech.base + "/devices", timeout=WAIT_MS)
        await tech.until(READY)
        await expect(page.locator("#who")).to_contain_text("tess")
        await expect(page.locator("#no-devices")).to_contain_text("No gateway is enrolled yet")
        await shoot(tech.page, SHOTS, "empty", kept=False)

        # A typo is named before the center is asked; then a code, audited.
        await page.locator("#unit-id").fill("P 117")
        await page.get_by_role("button", name="Create code").click()
        await expect(page.locator("#code-error")).to_contain_text('"P 117" is not a unit id')
        await shoot(tech.page, SHOTS, "code-refused", kept=False)
        before = time.time()
        code = await make_code(tech, unit)
        after = time.time()
        await tech.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await page.get_by_role("button", name="Copy code").click()
        await expect(page.locator("#copy-code")).to_have_text("Copied ✓")
        assert await page.evaluate("navigator.clipboard.readText()") == code
        [made] = [r for r in site.audit("device.code_create") if r["object"] == unit]
        assert (made["actor"], made["outcome"]) == ("tess", "ok")
        expires_at = made["detail"]["expires_at"]
        assert before + DAY_S <= expires_at <= after + DAY_S

        # The gateway enrolls with the code on the screen; its agent comes online over mTLS.
        folder = tmp_path / "gateway"
        enrolled = await asyncio.to_thread(
            enroll, central.api_url, code, folder, ca_file(), io.StringIO()
        )
        assert enrolled.unit_id == unit
        # Beside it: a unit enrolled twice (the first certificate replaced), and one whose
        # certificate is near its end.
        for _ in range(2):
            await enroll_gateway(central, spare, tmp_path / "spare")
        expiring = await asyncio.to_thread(enroll_in_the_past, site, old, 349.5)
        await expect(page.locator(row(tech, unit))).to_have_attribute("data-status", "offline")
        await expect(page.locator(row(tech, old))).to_have_class(re.compile(r"\bsoon\b"))
        await expect(page.locator(row(tech, old))).to_have_attribute("data-serial", expiring)
        await expect(page.locator(f"{row(tech, old)} .expires")).to_contain_text("in 15 days")
        assert await page.locator(f"{row(tech, unit)}.soon").count() == 0

        async with enrolled_agent(central, enrolled, folder) as agent:
            unit_row = page.locator(row(tech, unit))
            await expect(unit_row).to_have_attribute("data-status", "online", timeout=WAIT_MS)
            await expect(unit_row).to_have_attribute("data-serial", enrolled.serial)
            await expect(unit_row.locator(".serial")).to_have_text(enrolled.serial)
            await expect(unit_row.locator(".pill")).to_have_text("online")
            counts = page.locator("#device-counts")
            await expect(counts).to_have_text("1 online2 offline1 expiring soon")
            # The replaced certificate, on request.
            await page.locator("#show-earlier").check()
            await expect(page.locator(f'tr.earlier[data-unit="{spare}"]')).to_contain_text(
                "replaced"
            )
            await shoot(tech.page, SHOTS, "list-with-code", kept=False)

            # Revoke: a confirmation naming the unit; Cancel changes nothing.
            await unit_row.get_by_role("button", name=f"Revoke {unit}").click()
            dialog = page.locator("dialog.revoke-dialog")
            await expect(dialog).to_be_visible()
            await expect(dialog.locator("h2")).to_have_text(f"Revoke {unit}?")
            await shoot(tech.page, SHOTS, "revoke-confirm", kept=False)
            await dialog.get_by_role("button", name="Cancel").click()
            await expect(dialog).to_have_count(0)
            assert audited(central, "device.revoke", unit) == []
            await unit_row.get_by_role("button", name=f"Revoke {unit}").click()
            await (
                page.locator("dialog.revoke-dialog")
                .get_by_role("button", name=f"Revoke {unit}")
                .click()
            )
            await expect(page.locator("#notice")).to_contain_text(
                f"{unit} revoked. Certificates revoked: {enrolled.serial}", timeout=WAIT_MS
            )
            await expect(unit_row).to_have_attribute("data-status", "revoked", timeout=WAIT_MS)
            await expect(unit_row.locator(".status")).to_contain_text("by tess")
            await expect(unit_row.get_by_role("button", name=f"Revoke {unit}")).to_be_hidden()
            # The gateway is thrown off the broker.
            await wait_for(lambda: not agent.link.connected.is_set(), timeout=15)
            await page.locator("#code-done").click()
            await expect(page.locator("#code-result")).to_be_hidden()
            await shoot(tech.page, SHOTS, "revoked", kept=False)

        [revoked] = audited(central, "device.revoke", unit)
        assert (revoked.actor, revoked.outcome) == ("tess", "ok")
        assert revoked.detail["serials"] == [enrolled.serial]
        # The start page offers this page to a tech.
        await page.goto(tech.base + "/")
        await expect(page.locator("#to-devices")).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator("#to-console")).to_be_hidden()
        await page.locator("#to-devices").click()
        await tech.until(READY)


async def test_an_unattended_page_lets_the_session_lock(
    browser: Browser, broker_url: str, unique: str, tmp_path: Path
) -> None:
    """The list refreshes itself only while the person is at the page: left alone, it stops
    asking, so the session locks when idle as it should; back at it, the person unlocks
    with the password and returns to the page."""
    idle_lock_s = 3.0
    async with (
        running_site(broker_url, unique, tmp_path, idle_lock_s=idle_lock_s) as site,
        screen_of(browser, site, "ivo", Role.TECH) as tech,
    ):
        page = tech.page
        asked: list[float] = []  # when the page last asked the center anything
        page.on("request", lambda _: asked.append(time.monotonic()))
        await tech.open("/devices", READY)
        await tech.until("rtccDevices.state.paused")
        await expect(page.locator("#list-status")).to_contain_text("paused")
        # Nothing asked for longer than the idle lock: the session is locked at the center.
        await wait_for(lambda: time.monotonic() - asked[-1] > idle_lock_s + 1, timeout=30)
        await page.mouse.move(300, 300)
        await page.mouse.move(320, 320)
        await expect(page.locator("#unlock")).to_be_visible(timeout=WAIT_MS)
        assert "next=%2Fdevices" in page.url
        await page.locator("#unlock-password").fill(PASSWORD)
        await page.get_by_role("button", name="Unlock").click()
        await page.wait_for_url(tech.base + "/devices", timeout=WAIT_MS)
    assert [r["actor"] for r in site.audit("session.unlock")] == ["ivo"]


async def test_a_dispatcher_is_not_offered_the_devices_page_and_is_refused_by_it(
    browser: Browser, site: Site
) -> None:
    async with screen_of(browser, site, "dana", Role.DISPATCHER) as desk:
        page = desk.page
        await page.goto(desk.base + "/")
        await expect(page.locator("#to-console")).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator("#to-devices")).to_be_hidden()
        await page.goto(desk.base + "/devices")
        refused = page.locator(".refused")
        await expect(refused).to_contain_text("This page is for field techs", timeout=WAIT_MS)
        await expect(refused).to_contain_text("dana (dispatcher)")
        await expect(page.locator("#code-form")).to_have_count(0)
        await shoot(desk.page, SHOTS, "dispatcher-refused", kept=False)
        body = '{"unit_id": "P-117"}'
        assert await desk.status_of("POST", "/api/v1/provision/codes", body) == 403
        assert await desk.status_of("GET", "/api/v1/provision/devices") == 403
        assert await desk.status_of("POST", "/api/v1/provision/devices/P-117/revoke") == 403
    assert site.audit("device.code_create") == []
