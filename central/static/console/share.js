// Sharing to patrols: a live stream and/or a still with a text (BOLO), to the units within
// a radius of the scene (dragged on the map) or to chosen units; then who received and who
// opened it, live, until it expires or is revoked.

import { del, post } from "../lib/api.js";
import { distanceM, formatDistance, hasPosition } from "../lib/geo.js";
import { clockTime, el, timeLeft, toast } from "../lib/ui.js";
import { ShareCircle } from "./circle.js";

const TTL_CHOICES = [[900, "15 min"], [1800, "30 min"], [3600, "1 hour"], [7200, "2 hours"], [14400, "4 hours"]];

export class SharePanel {
  constructor(root, list, store, map) {
    Object.assign(this, { root, list, store, map });
    this.circle = new ShareCircle(map, () => this.renderReach());
    this.mode = null; // "compose" | "status"
    this.shareId = null;
    store.addEventListener("shares", (e) => this.changed(e.detail.share_id));
    store.addEventListener("snapshot", () => this.changed(this.shareId));
    setInterval(() => this.mode === "status" && this.renderStatus(), 5000);
    this.renderList();
  }

  changed(shareId) {
    this.renderList();
    if (this.mode === "status" && shareId === this.shareId) this.renderStatus();
  }

  close() {
    this.mode = null;
    this.root.hidden = true;
    this.circle.hide();
    this.map.getContainer().classList.remove("picking");
  }

  // source: {unitId, streamId, still, stillOnly}
  compose(source = {}) {
    const unit = this.store.units.get(source.unitId);
    const scene = hasPosition(unit) ? { lat: unit.lat, lon: unit.lon } : this.mapCentre();
    this.draft = { ...source, scene, radius: this.store.config.share_radius_m || 2000, target: "radius", chosen: new Set() };
    this.mode = "compose";
    this.root.hidden = false;
    this.renderCompose();
    this.circle.frame();
  }

  mapCentre() {
    const c = this.map.getCenter();
    return { lat: c.lat, lon: c.lng };
  }

  renderCompose() {
    const d = this.draft;
    const f = (this.fields = {
      stream: el("input", { type: "checkbox", checked: Boolean(d.streamId) && !d.stillOnly, disabled: !d.streamId }),
      still: el("input", { type: "checkbox", checked: Boolean(d.still), disabled: !d.still }),
      text: el("textarea", { rows: 3, maxLength: 2000, placeholder: "BOLO: who or what to look for, direction of travel…" }),
      radius: el("input", { type: "number", min: 100, max: 50000, step: 100, value: String(Math.round(d.radius)) }),
      ttl: el("select", {}, ...TTL_CHOICES.map(([s, label]) => el("option", { value: String(s), selected: s === (this.store.config.share_ttl_s || 3600) }, label))),
      reach: el("p.reach"),
      error: el("p.dialog-error", { role: "alert" }),
      units: el("div.choose-units"),
    });
    f.radius.addEventListener("input", () => {
      const r = Number(f.radius.value);
      if (r >= 50) this.circle.setRadius(r);
    });
    const target = (value, label) => el("label.radio", {},
      el("input", { type: "radio", name: "target", value, checked: d.target === value,
        onchange: () => { d.target = value; this.renderTarget(); } }), label);
    this.root.replaceChildren(
      el("header.panel-head", {}, el("h2", {}, "Share to patrols"),
        el("button.plain.small", { type: "button", onclick: () => this.close() }, "Cancel")),
      el("fieldset", {}, el("legend", {}, "What"),
        el("label.check", {}, f.stream, d.streamId ? `Live video of ${d.unitId}` : "No live video chosen"),
        el("label.check", {}, f.still, d.still ? el("img.still-thumb", { src: d.still.url, alt: "still" }) : null,
          d.still ? `Still ${clockTime(d.still.taken_at)}` : "No still taken")),
      el("label.block", {}, el("span", {}, "Text (BOLO)"), f.text),
      el("fieldset", {}, el("legend", {}, "To"),
        target("radius", "Units within"), f.radius, el("span.unit-suffix", {}, "m of the scene"),
        el("div.scene-row", {},
          el("button.small", { type: "button", onclick: () => this.pickScene() }, "Pick scene on map"),
          d.unitId ? el("button.small.plain", { type: "button", onclick: () => this.sceneAtUnit() }, `At ${d.unitId}`) : null),
        target("units", "Chosen units"), f.units, f.reach),
      el("label.block", {}, el("span", {}, "Expires after"), f.ttl),
      f.error,
      el("div.panel-buttons", {}, el("button.primary", { type: "button", onclick: () => this.send() }, "Send share")));
    this.renderTarget();
    f.text.focus();
  }

  renderTarget() {
    const d = this.draft;
    const byRadius = d.target === "radius";
    this.fields.radius.disabled = !byRadius;
    this.circle.show(d.scene, d.radius, byRadius);
    if (byRadius) this.fields.units.replaceChildren();
    else this.renderChooser("");
    this.renderReach();
  }

  renderChooser(needle) {
    const d = this.draft;
    const search = el("input", { type: "search", placeholder: "unit or officer", value: needle,
      oninput: () => this.renderChooser(search.value) });
    const rows = [...this.store.units.values()]
      .filter((u) => u.online !== false && (!needle || `${u.unit_id} ${u.officer || ""}`.toLowerCase().includes(needle.toLowerCase())))
      .sort((a, b) => a.unit_id.localeCompare(b.unit_id)).slice(0, 60)
      .map((u) => el("label.check", {}, el("input", { type: "checkbox", checked: d.chosen.has(u.unit_id),
        onchange: (e) => { e.target.checked ? d.chosen.add(u.unit_id) : d.chosen.delete(u.unit_id); this.renderReach(); } }),
        `${u.unit_id} ${u.officer || ""}`));
    this.fields.units.replaceChildren(search, el("div.choose-list", {}, ...rows));
    search.focus();
  }

  // The circle moved or changed size, or the choice changed.
  renderReach() {
    const d = this.draft;
    if (this.mode !== "compose") return;
    d.scene = this.circle.scene ?? d.scene;
    d.radius = this.circle.radius ?? d.radius;
    if (document.activeElement !== this.fields.radius) this.fields.radius.value = String(Math.round(d.radius));
    if (d.target === "units") {
      this.fields.reach.textContent = `${d.chosen.size} unit${d.chosen.size === 1 ? "" : "s"} chosen`;
      return;
    }
    let inside = 0;
    for (const u of this.store.units.values()) {
      if (u.online !== false && hasPosition(u) && distanceM(d.scene, u) <= d.radius) inside += 1;
    }
    this.fields.reach.textContent = `About ${inside} online unit${inside === 1 ? "" : "s"} inside ${formatDistance(d.radius)} (patrols only receive it).`;
  }

  pickScene() {
    const container = this.map.getContainer();
    container.classList.add("picking");
    toast("Click the map where the scene is.");
    this.map.once("click", (e) => {
      container.classList.remove("picking");
      this.circle.moveTo({ lat: e.latlng.lat, lon: e.latlng.lng });
    });
  }

  sceneAtUnit() {
    const unit = this.store.units.get(this.draft.unitId);
    if (hasPosition(unit)) this.circle.moveTo({ lat: unit.lat, lon: unit.lon });
  }

  async send() {
    const d = this.draft;
    const f = this.fields;
    const body = { text: f.text.value.trim(), scene: d.scene, ttl_s: Number(f.ttl.value) };
    if (f.stream.checked) body.stream_id = d.streamId;
    if (f.still.checked) body.still_id = d.still.still_id;
    if (d.target === "units") body.unit_ids = [...d.chosen];
    else body.radius_m = d.radius;
    let problem = "";
    if (!body.stream_id && !body.still_id && !body.text) problem = "Give a text, a still or the live video.";
    else if (d.target === "units" && !body.unit_ids.length) problem = "Choose at least one unit.";
    f.error.textContent = problem;
    if (problem) return;
    try {
      const share = await post("/api/v1/shares", body);
      this.store.updateShare(share);
      this.status(share.share_id);
    } catch (error) {
      f.error.textContent = error.message;
    }
  }

  status(shareId) {
    this.mode = "status";
    this.shareId = shareId;
    this.root.hidden = false;
    this.map.getContainer().classList.remove("picking");
    this.renderStatus();
    if (this.store.shares.has(shareId)) this.circle.frame();
  }

  renderStatus() {
    const share = this.store.shares.get(this.shareId);
    const head = el("header.panel-head", {}, el("h2", {}, "Share"),
      el("button.plain.small", { type: "button", onclick: () => this.close() }, "Close"));
    if (!share) {
      this.circle.hide();
      this.root.replaceChildren(head, el("p.empty", {}, "This share has ended (revoked or expired)."));
      return;
    }
    this.circle.show(share.scene, share.radius_m || 0, false);
    const recipients = share.recipients || [];
    const tick = (at) => (at ? el("span.tick.yes", { title: clockTime(at) }, "✓") : el("span.tick", {}, "·"));
    this.root.replaceChildren(head,
      el("p.share-text", {}, share.text || "(no text)"),
      el("p.share-meta", {}, [share.stream_id ? `live video of ${share.unit_id}` : null, share.still_id ? "still" : null]
        .filter(Boolean).join(" + ") || "text only",
        ` · sent ${clockTime(share.created_at)} · ${timeLeft(share.expires_at)}`),
      // The distance goes under the unit: three columns fit the narrow side panel.
      el("table.recipients", {},
        el("thead", {}, el("tr", {}, el("th", {}, "Unit"), el("th", {}, "Received"), el("th", {}, "Opened"))),
        el("tbody", {}, ...(recipients.length ? recipients.map((r) => el("tr", { dataset: { unit: r.unit_id } },
          el("td", { title: r.unit_id }, el("b", {}, r.unit_id), el("span.distance", {}, formatDistance(r.distance_m))),
          el("td", {}, tick(r.received_at)), el("td", {}, tick(r.opened_at))))
          : [el("tr", {}, el("td", { colSpan: 3 }, "No patrol unit was inside."))]))),
      el("div.panel-buttons", {}, el("button.danger", { type: "button", onclick: () => this.revoke(share.share_id) }, "Revoke now")));
  }

  async revoke(shareId) {
    try {
      const share = await del(`/api/v1/shares/${encodeURIComponent(shareId)}`);
      this.store.updateShare({ ...share, revoked_at: share.revoked_at ?? Date.now() / 1000 });
      toast("Share revoked: patrols lose it within seconds.");
    } catch (error) {
      toast(`Revoke: ${error.message}`, "error");
    }
  }

  renderList() {
    const shares = [...this.store.shares.values()].sort((a, b) => b.created_at - a.created_at);
    const count = (list, key) => list.filter((r) => r[key]).length;
    this.list.replaceChildren(...(shares.length ? shares.map((s) => {
      const r = s.recipients || [];
      return el("button.share-row", { type: "button", dataset: { share: s.share_id }, onclick: () => this.status(s.share_id) },
        el("b", {}, s.text || "(no text)"),
        el("span", {}, `${clockTime(s.created_at)} · ${r.length} sent · ${count(r, "received_at")} received · ${count(r, "opened_at")} opened`));
    }) : [el("p.empty", {}, "No active shares. Use Share on a live tile.")]));
  }
}
