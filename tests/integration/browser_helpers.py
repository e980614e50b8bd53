"""Screenshots in the browser tests: a page at each size a dispatcher's screens have, kept in
var/screenshots for a person to look at."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from playwright.async_api import Page

from tests.helpers import ROOT

SHOTS = ROOT / "var" / "screenshots"
SIZES = [(1920, 1080), (1366, 768)]
# Two animation frames: the map and the wall have laid themselves out for a new size.
LAID_OUT = "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"


def keep(shot: Path) -> None:
    """A copy of `shot` in SHOTS, for a person to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SHOTS / shot.name)


async def shoot(page: Page, folder: Path, name: str, kept: bool = True) -> list[Path]:
    """The page at every size in SIZES, as `folder`/`name`-WxH.png (if `kept`, copied to
    SHOTS too); the page is left at the first size."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    taken = []
    for width, height in SIZES:
        await page.set_viewport_size({"width": width, "height": height})
        await page.evaluate(LAID_OUT)
        path = folder / f"{name}-{width}x{height}.png"
        assert await page.screenshot(path=str(path))
        if kept:
            await asyncio.to_thread(keep, path)
        taken.append(path)
    await page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})
    return taken
