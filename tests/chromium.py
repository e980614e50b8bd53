"""Debian's headless Chromium as the browser tests and the console benchmark launch it under
Playwright (no traffic of its own, WebRTC on loopback), and the marks by which the center's
pages say they are ready. Plain values, no test framework: the benchmark imports them too."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/lib/chromium/chromium")
NOT_INSTALLED = "Debian's chromium is not installed (apt-get install chromium)"
# Playwright passes its own --disable-features list; a second flag replaces it, so repeat it.
PLAYWRIGHT_DISABLED = (
    "AvoidUnnecessaryBeforeUnloadCheckSync,DestroyProfileOnBrowserClose,HttpsUpgrades,"
    "HttpsFirstBalancedModeAutoEnable,LensOverlay,MediaRouter,PaintHolding,"
    "ThirdPartyStoragePartitioning,OptimizationHints,NetworkTimeServiceQuerying"
)
CONSOLE_READY = "window.rtccConsole?.ready && rtccConsole.live.state === 'live'"
PATROL_READY = "window.rtccPatrol?.ready && rtccPatrol.live.state === 'live'"


def chromium_args(*extra: str) -> list[str]:
    """Chromium's command line for a test or a benchmark run, then `extra`."""
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        # Inside a loopback-only network ICE completes only with these two.
        "--allow-loopback-in-peer-connection",
        f"--disable-features=WebRtcHideLocalIpsWithMdns,{PLAYWRIGHT_DISABLED}",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        *extra,
    ]
