"""The browser side of the console benchmark: Debian's headless Chromium driven by
Playwright, one signed-in window per person, and the marks the benchmark reads in the pages.

Every mark is taken on the browser's clock as epoch ms (performance.timeOrigin +
performance.now()), the same machine clock the benchmark's own time.time() reads. "Painted"
means after the frame that holds the change: a requestAnimationFrame callback runs just
before that frame is drawn, and a message posted from it is handled just after.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, sync_playwright

from bench.center import CenterProcess, http
from central.access import totp
from tests.chromium import CHROMIUM, CONSOLE_READY, NOT_INSTALLED, PATROL_READY, chromium_args

VIEWPORT: ViewportSize = {"width": 1920, "height": 1080}
POLL_S = 0.02
# performance.memory in bytes, not rounded to coarse buckets.
ARGS = chromium_args("--enable-precise-memory-info")

_AFTER_PAINT = """
  const now = () => performance.timeOrigin + performance.now();
  const afterPaint = (done) => requestAnimationFrame(() => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => done(now());
    channel.port2.postMessage(null);
  });
"""

# The console: when the banner shows an alert (DOM changed, then painted), when a click
# happened, and when each new tile's <video> presented its first frame.
CONSOLE_MARKS = f"""() => {{
  if (window.__bench) return;
  {_AFTER_PAINT}
  const marks = window.__bench = {{ banners: {{}}, clicks: [], frames: {{}} }};
  const banner = document.querySelector("#banner");
  new MutationObserver(() => {{
    const id = banner.dataset.alert;
    if (banner.hidden || !id || marks.banners[id]) return;
    const mark = marks.banners[id] = {{ dom: now(), painted: null }};
    afterPaint((t) => (mark.painted = t));
  }}).observe(banner, {{ attributes: true, childList: true }});
  document.addEventListener("click", (e) => marks.clicks.push(performance.timeOrigin + e.timeStamp),
    true);
  new MutationObserver((records) => {{
    for (const record of records) for (const node of record.addedNodes) {{
      const video = node.querySelector?.("video");
      const unit = node.dataset?.unit;
      if (video && unit) video.requestVideoFrameCallback((t) => {{
        marks.frames[unit] = performance.timeOrigin + t;
      }});
    }}
  }}).observe(document.querySelector("#wall"), {{ childList: true }});
}}"""

# The patrol page: when each share's card was put in the list, then painted.
PATROL_MARKS = f"""() => {{
  if (window.__bench) return;
  {_AFTER_PAINT}
  const marks = window.__bench = {{ cards: {{}} }};
  const list = document.querySelector("#share-list");
  new MutationObserver(() => {{
    for (const card of list.querySelectorAll(".share-card[data-share]")) {{
      const id = card.dataset.share;
      if (marks.cards[id]) continue;
      const mark = marks.cards[id] = {{ dom: now(), painted: null }};
      afterPaint((t) => (mark.painted = t));
    }}
  }}).observe(list, {{ childList: true }});
}}"""

# Runs from the console's first byte: the ms from navigation until every unit (at least
# `expected`) has a marker in the map's layers (markercluster adds them in chunks), the map
# has fitted itself to them (two frames after the snapshot) and the frame is painted.
_FIRST_RENDER = """(() => {
  const expected = __EXPECTED__;
  let frames = 0;
  let snapshotFrame = null;
  const drawn = (m) => m.cluster.getLayers().length + m.alertLayer.getLayers().length;
  const check = () => {
    frames += 1;
    const c = window.rtccConsole;
    if (c?.ready && c.live.snapshots > 0) {
      snapshotFrame ??= frames;
      const m = c.markers;
      // _animatingZoom: Leaflet's own flag while the fit's zoom animation runs.
      if (frames > snapshotFrame + 2 && m.count >= expected && !c.map._animatingZoom
          && drawn(m) === m.count) {
        requestAnimationFrame(() => {
          const channel = new MessageChannel();
          channel.port1.onmessage = () => {
            window.__firstRender = { ms: performance.now(), markers: m.count,
              icons: document.querySelectorAll(".leaflet-marker-icon").length };
          };
          channel.port2.postMessage(null);
        });
        return;
      }
    }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})();"""

# Frames per second over `ms` (after `settle` ms), counted by requestAnimationFrame, with
# the gaps between frames; the unit changes the feed brought and how many units they were;
# sampled each second, the markers on show (not hidden in a cluster) and how many of them are
# drawn more than a pixel away from the latest position the page received; the JS heap.
FRAME_RATE = """async ([settle, ms]) => {
  const { map, markers: m, store } = window.rtccConsole;
  const onShow = () => {
    let shown = 0, late = 0;
    for (const [id, e] of m.entries) {
      const icon = e.marker.getElement(), unit = store.units.get(id);
      const drawn = icon?.isConnected && window.L.DomUtil.getPosition(icon);
      if (!drawn || !unit) continue;
      shown += 1;
      if (drawn.distanceTo(map.latLngToLayerPoint([unit.lat, unit.lon])) > 1) late += 1;
    }
    return { shown, late };
  };
  const samples = [];
  const frames = (span, sample) => new Promise((resolve) => {
    const seen = [];
    const tick = (t) => {
      if (sample && seen.length && Math.floor((t - seen[0]) / 1000) > samples.length) {
        samples.push(onShow());
      }
      seen.push(t);
      if (t - seen[0] < span) requestAnimationFrame(tick); else resolve(seen);
    };
    requestAnimationFrame(tick);
  });
  await frames(settle, false);
  let received = 0;
  const moving = new Set();
  const count = (e) => {
    received += e.detail.length;
    for (const unit of e.detail) moving.add(unit.unit_id);
  };
  store.addEventListener("units", count);
  const applied = m.applied;
  const times = await frames(ms, true);
  store.removeEventListener("units", count);
  const span = times[times.length - 1] - times[0];
  const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  const at = (q) => gaps[Math.min(gaps.length - 1, Math.floor(q * gaps.length))];
  const sum = (key) => samples.reduce((total, sample) => total + sample[key], 0);
  const memory = performance.memory;
  return {
    fps: (1000 * (times.length - 1)) / span, frames: times.length - 1, span_ms: span,
    gap_p50_ms: at(0.5), gap_p99_ms: at(0.99), gap_max_ms: gaps[gaps.length - 1],
    received_per_s: (1000 * received) / span, units_moving: moving.size,
    applied_per_s: (1000 * (m.applied - applied)) / span, markers: m.count,
    on_show: samples.length ? sum("shown") / samples.length : 0,
    behind_pct: sum("shown") ? (100 * sum("late")) / sum("shown") : 0,
    icons: document.querySelectorAll(".leaflet-marker-icon").length,
    heap_mb: memory ? memory.usedJSHeapSize / 2 ** 20 : null,
  };
}"""


FETCH = """async ([method, path, body]) => {
  const csrf = (document.cookie.split("; ").find((c) => c.startsWith("rtcc_csrf=")) || "=")
    .split("=")[1];
  const headers = { "Content-Type": "application/json", "X-CSRF-Token": csrf };
  const sent = performance.timeOrigin + performance.now();
  const answer = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  const answered = performance.timeOrigin + performance.now();
  return { status: answer.status, body: await answer.json().catch(() => null), sent, answered };
}"""


def first_render_script(expected: int) -> str:
    return _FIRST_RENDER.replace("__EXPECTED__", str(int(expected)))


class Window:
    """One page of one person's browser context, read by polling evaluate() (the pages'
    Content-Security-Policy refuses the string functions wait_for_function would use)."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def value(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def until(self, expression: str, arg: Any = None, timeout_s: float = 20.0) -> Any:
        """The first truthy value of `expression` (or of the function it is, given `arg`);
        a script error in the page ends the wait at once."""
        deadline = time.monotonic() + timeout_s
        while not (value := self.page.evaluate(expression, arg)):
            if self.errors:
                raise RuntimeError(f"the page failed: {self.errors}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true in {timeout_s} s: {expression} ({self.errors})")
            time.sleep(POLL_S)
        return value

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """The page's own fetch with its CSRF header: {status, body, sent, answered} (epoch
        ms on the browser's clock)."""
        answer: dict[str, Any] = self.page.evaluate(FETCH, [method, path, body])
        if answer["status"] >= 300:
            raise RuntimeError(f"{method} {path}: {answer['status']} {answer['body']}")
        return answer

    def open(self, path: str, ready: str, marks: str | None = None) -> None:
        self.page.goto(self.base + path)
        self.until(ready)
        if marks is not None:
            self.page.evaluate(marks)


class Chromium:
    """The browser and a signed-in context per person."""

    def __init__(self, browser: Browser, base: str) -> None:
        self.browser = browser
        self.base = base

    def sign_in(self, name: str, password: str, totp_secret: str | None) -> BrowserContext:
        """Signs in from the home page with the page's own fetch (its origin, its cookies);
        the context keeps the session cookie for every page opened in it later."""
        context = self.browser.new_context(viewport=VIEWPORT)
        home = Window(context.new_page(), self.base)
        home.page.goto(self.base + "/")
        code = totp.code_at(totp_secret, totp.time_step(time.time())) if totp_secret else None
        home.call("POST", "/api/v1/session", {"name": name, "password": password, "code": code})
        home.page.close()
        return context

    def window(self, context: BrowserContext, init_script: str | None = None) -> Window:
        page = context.new_page()
        if init_script is not None:
            page.add_init_script(init_script)
        return Window(page, self.base)


@contextlib.contextmanager
def chromium(base: str) -> Iterator[Chromium]:
    if not CHROMIUM.exists():
        raise SystemExit(NOT_INSTALLED)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield Chromium(browser, base)
        finally:
            browser.close()


# ---- the rounds ------------------------------------------------------------------------------

NEW_BANNER_PAINTED = """(known) => Object.keys(__bench.banners).find(
  (id) => !known.includes(id) && __bench.banners[id].painted)"""
STREAM_LIVE = """(unit) => [...rtccConsole.store.streams.values()].some(
  (s) => s.unit_id === unit && s.live)"""
FIRST_TILE_FRAME = "(t => t?.firstFrameMs != null && t.stats.codec && t)(rtccConsole.tiles()[0])"


def click_to_frame(desk: Window, unit: str) -> dict[str, Any]:
    """Clicks the banner's "Open video" once the alert's stream is live at the relay (so the
    figure is a dispatcher joining it; bench/remote_start.py measures a unit starting): ms to
    the first frame the tile's <video> presents; the tile is closed again."""
    desk.until(STREAM_LIVE, unit, timeout_s=30)
    desk.value("(unit) => { __bench.clicks.length = 0; delete __bench.frames[unit]; }", unit)
    desk.page.locator("#banner").get_by_role("button", name="Open video", exact=True).click()
    presented = desk.until("(unit) => __bench.frames[unit]", unit, timeout_s=30)
    clicked = desk.value("__bench.clicks[0]")
    tile = desk.until(FIRST_TILE_FRAME)
    tile_node = desk.page.locator(f'#wall .tile[data-unit="{unit}"]')
    tile_node.get_by_role("button", name="Close", exact=True).click()
    desk.until("rtccConsole.tiles().length === 0")
    return {
        "click_to_frame_ms": presented - clicked,
        "wall_first_frame_ms": tile["firstFrameMs"],  # the wall's own: tile made -> frame
        "codec": tile["stats"].get("codec"),
    }


def alert_rounds(
    browser: Chromium,
    desk_of: BrowserContext,
    center: CenterProcess,
    control_port: int,
    unit: str,
    rounds: int,
    clicks: int,
) -> list[dict[str, Any]]:
    """Holster draws on the body-cam (its simulator's control port) -> the alert at the
    center, the banner in the DOM, the banner painted; in the first `clicks` rounds, a
    click -> the tile's first frame; each alert acknowledged before the next."""
    desk = browser.window(desk_of)
    desk.open("/console", CONSOLE_READY, CONSOLE_MARKS)
    out = []
    with socket.create_connection(("127.0.0.1", control_port)) as control:
        replies = control.makefile("rb")
        for n in range(rounds):
            known = desk.value("Object.keys(__bench.banners)")
            sent_ms = 1000 * time.time()
            control.sendall(b"trigger holster_draw\n")
            replies.readline()
            alert_id = desk.until(NEW_BANNER_PAINTED, known)
            mark = desk.value("(id) => __bench.banners[id]", alert_id)
            alert = desk.value("(id) => rtccConsole.store.alerts.get(id)", alert_id)
            if (alert["unit_id"], alert["kind"]) != (unit, "weapon_drawn"):
                raise RuntimeError(f"an alert that is not the holster draw: {alert}")
            row: dict[str, Any] = {
                "center_ms": 1000 * alert["received"] - sent_ms,
                "dom_ms": mark["dom"] - sent_ms,
                "painted_ms": mark["painted"] - sent_ms,
            }
            if n < clicks:
                row |= click_to_frame(desk, unit)
            out.append(row)
            ack = f"{center.api}/api/v1/alerts/{alert_id}/ack"
            http("POST", ack, center.key, {"note": "bench"})
            desk.until("document.querySelector('#banner').hidden")
    desk.page.close()
    return out


def share_rounds(
    browser: Chromium,
    desk_of: BrowserContext,
    patrol_of: BrowserContext,
    center: CenterProcess,
    units: tuple[str, str],
    rounds: int,
) -> list[dict[str, Any]]:
    """The dispatcher's console POSTs /api/v1/shares (the source unit's live stream and a
    text, 2 km around it) -> the card painted on the patrol unit's page; revoked, and gone
    from that page, between rounds. units: (source, patrol)."""
    source, patrol_unit = units
    start = {"reason": "bench"}
    live = http("POST", f"{center.api}/api/v1/units/{source}/stream", center.key, start)
    desk, patrol = browser.window(desk_of), browser.window(patrol_of)
    desk.open("/console", CONSOLE_READY)
    patrol.open("/patrol", PATROL_READY, PATROL_MARKS)
    out = []
    for n in range(rounds):
        body = {"stream_id": live["stream_id"], "text": f"bench {n}: grey hoodie", "radius_m": 2000}
        answer = desk.call("POST", "/api/v1/shares", body)
        share = answer["body"]
        if patrol_unit not in {r["unit_id"] for r in share["recipients"]}:
            raise RuntimeError(f"the patrol unit is not a recipient: {share['recipients']}")
        share_id = share["share_id"]
        mark = patrol.until("(id) => __bench.cards[id]?.painted && __bench.cards[id]", share_id)
        out.append(
            {
                "answer_ms": answer["answered"] - answer["sent"],
                "dom_ms": mark["dom"] - answer["sent"],
                "painted_ms": mark["painted"] - answer["sent"],
            }
        )
        desk.call("DELETE", f"/api/v1/shares/{share_id}")
        patrol.until("(id) => !rtccPatrol.shares().includes(id)", share_id)
    desk.page.close()
    patrol.page.close()
    return out


def map_run(
    browser: Chromium,
    desk_of: BrowserContext,
    expected: int,
    street: tuple[float, float],
    span_s: tuple[float, float],
    ingested: Callable[[], float],
) -> list[dict[str, Any]]:
    """A fresh console page: navigation -> `expected` units drawn and painted; then the
    frame rate with the map fitted to them and, when there are units, at street level
    around `street`. span_s: (settle, window); ingested(): the center's count of states
    taken in, to tell a page that falls behind from a center that does."""
    desk = browser.window(desk_of, first_render_script(expected))

    def frame_rate(view: str) -> dict[str, Any]:
        before, began = ingested(), time.monotonic()
        rate = desk.value(FRAME_RATE, [1000 * span_s[0], 1000 * span_s[1]])
        center_per_s = (ingested() - before) / (time.monotonic() - began)
        return {"view": view, **rate, "center_states_per_s": center_per_s}

    try:
        desk.page.goto(desk.base + "/console")
        first = desk.until("window.__firstRender", timeout_s=180)["ms"]
        rows = [{"first_render_ms": first, **frame_rate("fitted")}]
        if expected:
            desk.value(
                "([lat, lon]) => rtccConsole.map.setView([lat, lon], 16, {animate: false})",
                list(street),
            )
            rows.append(frame_rate("street, zoom 16"))
        return rows
    finally:
        desk.page.close()
