// The video wall: up to `wall_max` live tiles, laid out 1, 2x2, 3x3 or 4x4. A tile joins a
// unit's live stream (or starts it remotely, with a reason), shows how the video is doing,
// and re-joins by itself when the stream drops. Still, share, pop out, maximise, close.

import { ApiError, post } from "../lib/api.js";
import { ask, bitrate, clockTime, el, toast, words } from "../lib/ui.js";
import { STATE_LABELS, WhepPlayer } from "../lib/whep.js";
import { RewindTile } from "./rewind.js";

const enc = encodeURIComponent;

export class VideoWall {
  constructor(root, store, { onShare }) {
    this.root = root;
    this.store = store;
    this.onShare = onShare;
    this.tiles = new Map(); // unit_id -> Tile
    this.max = store.config?.wall_max || 16;
    store.addEventListener("units", (e) => {
      for (const unit of e.detail) this.tiles.get(unit.unit_id)?.renderUnit();
    });
    store.addEventListener("snapshot", () => this.tiles.forEach((t) => t.renderUnit()));
    addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.tiles.forEach((t) => t.maximise(false));
    });
    this.layout();
  }

  // Opens (or shows again) the unit's tile. why: {reason, incident} for a remote start;
  // without it, a person is asked when the unit is not live yet. streamId: a stream the
  // caller knows of (an alert's), tried first.
  async open(unitId, why = null, streamId = null) {
    const existing = this.tiles.get(unitId);
    if (existing) {
      existing.flash();
      return existing;
    }
    if (this.tiles.size >= this.max) {
      toast(`The wall is full (${this.max} tiles): close one first.`, "error");
      return null;
    }
    const tile = new Tile(this, unitId);
    this.tiles.set(unitId, tile);
    this.root.append(tile.node);
    this.layout();
    try {
      await tile.join(why, streamId);
    } catch (error) {
      this.close(unitId);
      if (!(error instanceof Cancelled)) toast(`${unitId}: ${error.message}`, "error");
      return null;
    }
    return tile;
  }

  // The unit's last minutes in a tile beside its live one (or last on the wall).
  async rewind(unitId) {
    const key = `rewind:${unitId}`;
    const existing = this.tiles.get(key);
    if (existing) return existing.flash();
    if (this.tiles.size >= this.max) {
      toast(`The wall is full (${this.max} tiles): close one first.`, "error");
      return;
    }
    const tile = new RewindTile(this, unitId);
    this.tiles.set(key, tile);
    const live = this.tiles.get(unitId);
    if (live) live.node.after(tile.node);
    else this.root.append(tile.node);
    this.layout();
    try {
      await tile.load();
    } catch (error) {
      this.close(key);
      toast(`Rewind ${unitId}: ${error.message}`, "error");
    }
  }

  // key: the unit id of a live tile, or "rewind:<unit id>".
  close(key) {
    const tile = this.tiles.get(key);
    if (!tile) return;
    tile.stop();
    tile.node.remove();
    this.tiles.delete(key);
    this.layout();
  }

  layout() {
    const n = this.tiles.size;
    const side = n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : 4;
    this.root.dataset.count = String(n);
    this.root.style.setProperty("--side", String(side));
    this.root.style.setProperty("--rows", String(Math.max(1, Math.ceil(n / side))));
    document.body.classList.toggle("wall-empty", n === 0);
  }

  // For tests and benchmarks: the live tiles, and the rewind tiles.
  rewinds() {
    return [...this.tiles.values()].filter((t) => t instanceof RewindTile).map((t) => t.describe());
  }

  describe() {
    return [...this.tiles.values()].filter((t) => t instanceof Tile).map((t) => ({
      unit_id: t.unitId,
      stream_id: t.streamId,
      state: t.player?.state ?? "starting",
      framesDecoded: t.player?.framesDecoded ?? 0,
      joins: t.player?.joins ?? 0,
      stats: t.player?.stats ?? {},
      firstFrameMs: t.player?.firstFrameAt != null ? t.player.firstFrameAt - t.openedAt : null,
    }));
  }
}

class Cancelled extends Error {}

class Tile {
  constructor(wall, unitId) {
    this.wall = wall;
    this.store = wall.store;
    this.unitId = unitId;
    this.streamId = null;
    this.player = null;
    this.openedAt = performance.now();
    this.video = el("video", { muted: true, autoplay: true, playsInline: true });
    this.video.muted = true;
    const button = (label, title, onclick) =>
      el("button.tile-button", { type: "button", title, "aria-label": title, onclick }, label);
    this.parts = {
      unit: el("b.tile-unit", {}, unitId),
      officer: el("span.tile-officer"),
      state: el("span.pill"),
      banner: el("div.tile-banner", { role: "status" }, "Starting…"),
      stats: el("footer.tile-stats"),
      still: el("button.tile-still", { type: "button", title: "Share this still", hidden: true,
        onclick: () => this.share(true) }),
    };
    const p = this.parts;
    this.node = el("article.tile", { dataset: { unit: unitId } },
      el("header.tile-head", {}, p.unit, p.officer, p.state,
        el("span.tile-buttons", {},
          button("Still", "Take a still (stored at the center)", () => this.takeStill()),
          button("Share", "Share to patrols", () => this.share(false)),
          button("Rewind", "The last minutes beside this tile", () => this.wall.rewind(unitId)),
          button("↗", "Pop out", () => this.popOut()),
          button("⤢", "Maximise (Esc to restore)", () => this.maximise()),
          button("✕", "Close", () => this.wall.close(unitId)))),
      el("div.tile-video", {}, this.video, p.banner, p.still),
      p.stats);
    this.renderUnit();
  }

  async grant(why, hint) {
    const known = [hint, this.store.streamOf(this.unitId)?.stream_id].filter(Boolean);
    for (const streamId of new Set(known)) {
      try {
        return await post(`/api/v1/streams/${enc(streamId)}/viewer-token`);
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 404) throw error;
      }
    }
    let reason = why;
    if (!reason) {
      reason = await ask(`Go live: ${this.unitId}`, [
        { name: "reason", label: "Reason", oneOf: true, placeholder: "why this camera, now" },
        { name: "incident", label: "Incident number", oneOf: true, maxLength: 64 },
      ], { okLabel: "Start video", note: "Remote starts are audited." });
      if (!reason) throw new Cancelled("cancelled");
    }
    this.parts.banner.textContent = "Starting the unit's camera…";
    return post(`/api/v1/units/${enc(this.unitId)}/stream`, {
      reason: reason.reason || "", incident: reason.incident || "",
    });
  }

  async join(why, hint) {
    const grant = await this.grant(why, hint);
    this.streamId = grant.stream_id;
    this.node.dataset.stream = grant.stream_id;
    const renew = async () => {
      const fresh = await post(`/api/v1/streams/${enc(this.streamId)}/viewer-token`);
      return { whepUrl: fresh.whep_url, token: fresh.token };
    };
    this.player = new WhepPlayer(this.video, { whepUrl: grant.whep_url, token: grant.token }, {
      renew, onChange: () => this.renderPlayer(),
    }).start();
  }

  renderUnit() {
    const unit = this.store.units.get(this.unitId);
    const state = unit?.state_label || "offline";
    this.parts.officer.textContent = unit?.officer || "";
    this.parts.state.textContent = words(state);
    this.parts.state.className = `pill state-${state}`;
    this.node.classList.toggle("tile-alert", state === "alert");
  }

  renderPlayer() {
    const player = this.player;
    const { stats } = player;
    const live = player.state === "live";
    this.node.dataset.player = player.state;
    this.parts.banner.hidden = live;
    if (!live) {
      const attempt = player.attempt > 1 ? ` (attempt ${player.attempt})` : "";
      this.parts.banner.textContent = words(STATE_LABELS[player.state] || player.state) + attempt;
    }
    const codec = stats.codec ? stats.codec.toUpperCase() : "–";
    const fps = live && stats.framesPerSecond != null ? `${Math.round(stats.framesPerSecond)} fps` : "– fps";
    const latency = stats.latencyMs != null ? stats.latencyMs : stats.jitterMs;
    const delay = live && latency != null ? `${Math.round(latency)} ms` : "–";
    const size = stats.frameWidth ? `${stats.frameWidth}×${stats.frameHeight}` : "";
    this.parts.stats.replaceChildren(
      el("span", {}, codec), el("span", {}, fps), el("span", {}, live ? bitrate(stats.bitrateBps) : "–"),
      el("span", { title: "live latency" }, `latency ${delay}`), size ? el("span.dim", {}, size) : null);
  }

  stop() {
    this.player?.stop();
  }

  flash() {
    this.node.classList.remove("flash");
    void this.node.offsetWidth; // restart the animation
    this.node.classList.add("flash");
    this.node.scrollIntoView({ block: "nearest" });
  }

  maximise(on = !this.node.classList.contains("maximised")) {
    this.node.classList.toggle("maximised", on);
  }

  async takeStill() {
    if (!this.streamId) return;
    try {
      const still = await post(`/api/v1/streams/${enc(this.streamId)}/stills`, {});
      this.store.stills.set(this.streamId, still);
      const image = el("img", { src: still.url, alt: `still of ${this.unitId}` });
      this.parts.still.replaceChildren(image, el("span", {}, clockTime(still.taken_at)));
      this.parts.still.hidden = false;
      toast(`Still of ${this.unitId} taken.`);
    } catch (error) {
      toast(`Still of ${this.unitId}: ${error.message}`, "error");
    }
  }

  // From the still's thumbnail: share that still (without video unless chosen again).
  share(stillOnly) {
    const still = this.store.stills.get(this.streamId) || null;
    this.wall.onShare({ unitId: this.unitId, streamId: this.streamId, still, stillOnly });
  }

  async popOut() {
    if (!this.streamId) return;
    try {
      const grant = await post(`/api/v1/streams/${enc(this.streamId)}/viewer-token`);
      window.open(grant.view_url, `rtcc-view-${this.streamId}`, "popup,width=960,height=600");
    } catch (error) {
      toast(`Pop out: ${error.message}`, "error");
    }
  }
}
