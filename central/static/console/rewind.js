// Rewind: the last minutes of a unit's video in a tile beside its live one. The recent past
// comes from the relay's buffer of the live stream (one clip, fragmented MP4 or WebM, which
// the browser plays as it comes and seeks in by range requests); older video from the
// unit's stored evidence segments, newest first. Every view is audited by the center.

import { get } from "../lib/api.js";
import { clockTime, el, toast } from "../lib/ui.js";

const SPAN_S = 600; // how far back to look

export class RewindTile {
  constructor(wall, unitId) {
    this.wall = wall;
    this.unitId = unitId;
    this.key = `rewind:${unitId}`;
    this.video = el("video", { controls: true, muted: true, playsInline: true, preload: "auto" });
    this.video.muted = true;
    this.parts = {
      title: el("span.rewind-span", {}, "looking for recorded video…"),
      sources: el("select.rewind-sources", { "aria-label": "Recorded video", onchange: () => this.play() }),
    };
    const button = (label, title, onclick) =>
      el("button.tile-button", { type: "button", title, "aria-label": title, onclick }, label);
    this.node = el("article.tile.rewind", { dataset: { unit: unitId, rewind: "" } },
      el("header.tile-head", {}, el("b.tile-unit", {}, unitId), el("span.pill.rewind-pill", {}, "Rewind"),
        this.parts.title,
        el("span.tile-buttons", {},
          button("⤢", "Maximise (Esc to restore)", () => this.maximise()),
          button("✕", "Close", () => this.wall.close(this.key)))),
      el("div.tile-video", {}, this.video),
      el("footer.tile-stats", {}, this.parts.sources));
  }

  async load() {
    const found = await get(`/api/v1/units/${encodeURIComponent(this.unitId)}/rewind-sources?seconds=${SPAN_S}`);
    const options = [];
    if (found.relay) {
      const r = found.relay;
      options.push({ url: r.url, label: `Recent ${clockTime(r.start)}–${clockTime(r.end)} (${r.codec.toUpperCase()})` });
    }
    for (const s of found.segments) {
      options.push({ url: s.url, label: `Recorded ${clockTime(s.start)}–${clockTime(s.end)}` });
    }
    if (!options.length) {
      this.parts.title.textContent = `no video in the last ${SPAN_S / 60} min`;
      return;
    }
    this.parts.sources.replaceChildren(...options.map((o) => el("option", { value: o.url }, o.label)));
    this.play();
  }

  play() {
    const option = this.parts.sources.selectedOptions[0];
    if (!option) return;
    this.parts.title.textContent = option.textContent;
    this.video.src = option.value;
    this.video.play().catch((error) => toast(`Rewind ${this.unitId}: ${error.message}`, "error"));
  }

  maximise(on = !this.node.classList.contains("maximised")) {
    this.node.classList.toggle("maximised", on);
  }

  flash() {
    this.node.classList.remove("flash");
    void this.node.offsetWidth;
    this.node.classList.add("flash");
  }

  renderUnit() {}

  stop() {
    this.video.pause();
    this.video.removeAttribute("src");
    this.video.load(); // lets go of the clip
  }

  describe() {
    return {
      unit_id: this.unitId, source: this.parts.sources.value || null,
      currentTime: this.video.currentTime, readyState: this.video.readyState,
      videoWidth: this.video.videoWidth, error: this.video.error?.message ?? null,
    };
  }
}
