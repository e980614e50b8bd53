"""A dispatcher's browser (Debian's headless Chromium) plays a unit's live stream, and
re-joins by itself when the relay goes away and comes back or a session stops sending."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.center_tls import spki_pin
from tests.chromium import CHROMIUM, NOT_INSTALLED, chromium_args
from tests.helpers import wait_for
from tests.integration.browser_helpers import shoot
from tests.integration.center_helpers import streaming_unit
from tests.integration.relay_helpers import publishing, viewer_token
from tests.integration.test_viewer_rejoin import camera, relay_site

# The test centers' certificate, accepted by its key alone (tests/center_tls.py).
ARGS = chromium_args(f"--ignore-certificate-errors-spki-list={spki_pin()}")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(NOT_INSTALLED)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        await browser.close()


@pytest.mark.parametrize("codec", ["h264", "vp8"])
async def test_viewer_page_plays_the_stream(
    browser: Browser, broker_url: str, unique: str, tmp_path: Path, codec: str
) -> None:
    async with streaming_unit(broker_url, unique, tmp_path, codec=codec) as unit:
        page = await browser.new_page()
        await page.goto(unit.grant["view_url"])
        await page.wait_for_function("window.__lastStats.framesDecoded > 15", timeout=15_000)
        stats = await page.evaluate("window.__lastStats")
        assert (stats["frameWidth"], stats["frameHeight"]) == (320, 240)
        assert stats["codec"].lower() == f"video/{codec}"
        await page.wait_for_function("window.__lastStats.latencyMs !== undefined", timeout=5_000)
        latency = (await page.evaluate("window.__lastStats"))["latencyMs"]
        assert 0 <= latency < 2000
        assert await page.text_content("#state") == "live"
        await page.screenshot(path=str(tmp_path / f"viewer-{codec}.png"))


async def test_viewer_page_without_a_valid_token_is_refused(
    browser: Browser, broker_url: str, unique: str, tmp_path: Path
) -> None:
    async with streaming_unit(broker_url, unique, tmp_path, codec="vp8") as unit:
        page = await browser.new_page()
        url = unit.grant["view_url"].split("#")[0] + "#token=forged"
        await page.goto(url)
        await page.wait_for_function("window.rtccViewer.state === 'refused'")
        assert await page.text_content("#state") == "access expired — reload from the console"
        assert await page.evaluate("[rtccViewer.status, rtccViewer.joins]") == [401, 0]
        await page.screenshot(path=str(tmp_path / "refused.png"))


PLAYING = "rtccViewer.state === 'live' && rtccViewer.framesDecoded > 15"


async def test_viewer_page_rejoins_after_the_relay_restarts(
    browser: Browser, tmp_path: Path
) -> None:
    stream = "restart"
    async with relay_site() as site:
        page = await browser.new_page()
        await page.goto(site.page_url(stream, viewer_token(stream)))
        # Not published yet: the page waits and keeps asking.
        await page.wait_for_function("rtccViewer.state === 'not-live'")
        await shoot(page, tmp_path, "not-live", kept=False)
        async with publishing(site.base, stream, camera()):
            await page.wait_for_function(PLAYING, timeout=15_000)
            assert await page.text_content("#state") == "live"
            await shoot(page, tmp_path, "live-before", kept=False)
        await site.stop()  # every session ends and nothing answers
        await page.wait_for_function("rtccViewer.state === 'reconnecting'", timeout=10_000)
        assert (await page.text_content("#state") or "").startswith("reconnecting… (attempt ")
        assert await page.is_visible("#banner")
        await shoot(page, tmp_path, "reconnecting", kept=False)
        await site.start()  # back, but nothing publishes: 404 until it is called ended
        await page.wait_for_function("rtccViewer.state === 'ended'", timeout=40_000)
        assert await page.text_content("#state") == "stream ended"
        await shoot(page, tmp_path, "ended", kept=False)
        async with publishing(site.base, stream, camera()):
            await page.wait_for_function(f"rtccViewer.joins >= 2 && {PLAYING}", timeout=30_000)
            assert await page.text_content("#state") == "live"
            assert not await page.is_visible("#banner")
            await page.wait_for_function("window.__lastStats.latencyMs !== undefined")
            await shoot(page, tmp_path, "live-again", kept=False)
            assert len(site.sessions(stream)) == 1
            await page.close()  # leaving ends its session at the relay
            await wait_for(lambda: not site.sessions(stream), timeout=10)


async def test_viewer_page_rejoins_a_session_that_stopped_sending(browser: Browser) -> None:
    """A session whose video stops while its connection stays up, as one on a crashed relay
    worker until ICE gives up: the page leaves it (DELETE) and joins again."""
    stream = "frozen"
    async with relay_site() as site, publishing(site.base, stream, camera()):
        page = await browser.new_page()
        await page.goto(site.page_url(stream, viewer_token(stream)))
        await page.wait_for_function(PLAYING, timeout=15_000)
        frozen = site.freeze_viewers(stream)
        await page.wait_for_function(f"rtccViewer.joins === 2 && {PLAYING}", timeout=20_000)
        await wait_for(lambda: (now := site.sessions(stream)) and not now & frozen, timeout=10)
        assert len(site.sessions(stream)) == 1
        await page.close()


async def test_viewer_page_keeps_its_session_while_the_unit_is_away(
    browser: Browser, tmp_path: Path
) -> None:
    """The publisher drops out (a cut, a handover) while the relay stays: the page sees the
    relay still holds its session, says it waits for the unit, and the video resumes in the
    same session when the unit publishes again, without joining anew."""
    stream = "away"
    async with relay_site() as site:
        page = await browser.new_page()
        await page.goto(site.page_url(stream, viewer_token(stream)))
        async with publishing(site.base, stream, camera()):
            await page.wait_for_function(PLAYING, timeout=15_000)
        await page.wait_for_function("rtccViewer.state === 'waiting'", timeout=15_000)
        assert await page.text_content("#state") == "waiting for the unit's video…"
        await shoot(page, tmp_path, "waiting", kept=False)
        async with publishing(site.base, stream, camera()):
            await page.wait_for_function(
                f"rtccViewer.state === 'live' && {PLAYING}", timeout=15_000
            )
            assert await page.evaluate("rtccViewer.joins") == 1
        await page.close()
