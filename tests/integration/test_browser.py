"""A dispatcher's browser (Debian's headless Chromium) plays a unit's live stream."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.integration.center_helpers import streaming_unit

CHROMIUM = Path("/usr/lib/chromium/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
# Playwright passes its own --disable-features list; a second flag replaces it, so repeat it.
PLAYWRIGHT_DISABLED = (
    "AvoidUnnecessaryBeforeUnloadCheckSync,DestroyProfileOnBrowserClose,HttpsUpgrades,"
    "HttpsFirstBalancedModeAutoEnable,LensOverlay,MediaRouter,PaintHolding,"
    "ThirdPartyStoragePartitioning,OptimizationHints,NetworkTimeServiceQuerying"
)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    f"--disable-features=WebRtcHideLocalIpsWithMdns,{PLAYWRIGHT_DISABLED}",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
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
        assert await page.text_content("#state") == "connected"
        await page.screenshot(path=str(tmp_path / f"viewer-{codec}.png"))


async def test_viewer_page_without_a_valid_token_is_refused(
    browser: Browser, broker_url: str, unique: str, tmp_path: Path
) -> None:
    async with streaming_unit(broker_url, unique, tmp_path, codec="vp8") as unit:
        page = await browser.new_page()
        url = unit.grant["view_url"].split("#")[0] + "#token=forged"
        await page.goto(url)
        await page.wait_for_function(
            "document.querySelector('#state').textContent.startsWith('refused')"
        )
        assert await page.text_content("#state") == "refused (401)"
