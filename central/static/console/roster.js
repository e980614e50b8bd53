// The roster: every unit, searchable by unit or officer, most urgent first; a unit's detail
// (battery, storage, camera, link, last seen, versions, recent events) with its actions.

import { get } from "../lib/api.js";
import { ago, clockTime, el, kmh, pct, words } from "../lib/ui.js";

const ORDER = { alert: 0, live: 1, recording: 2, available: 3, offline: 4 };
const SHOWN = 150; // rows in the list at once; a search narrows it
const RENDER_EVERY_MS = 1000;

export class Roster {
  constructor({ search, list, summary, detail }, store, actions) {
    Object.assign(this, { search, list, summary, detail, store, actions });
    this.selected = null;
    this.dirty = true;
    this.rows = new Map(); // unit_id -> its row, reused
    this.order = null; // the rows shown, in order
    this.events = [];
    search.addEventListener("input", () => this.render());
    for (const type of ["units", "snapshot"]) store.addEventListener(type, () => (this.dirty = true));
    setInterval(() => this.dirty && this.render(), RENDER_EVERY_MS);
    this.render();
  }

  matches() {
    const needle = this.search.value.trim().toLowerCase();
    const found = [];
    for (const unit of this.store.units.values()) {
      if (!needle || unit.unit_id.toLowerCase().includes(needle)
          || (unit.officer || "").toLowerCase().includes(needle)) found.push(unit);
    }
    return found.sort((a, b) => (ORDER[a.state_label] ?? 9) - (ORDER[b.state_label] ?? 9)
      || a.unit_id.localeCompare(b.unit_id));
  }

  render() {
    this.dirty = false;
    const found = this.matches();
    const counts = {};
    for (const unit of this.store.units.values()) counts[unit.state_label] = (counts[unit.state_label] || 0) + 1;
    this.summary.replaceChildren(...Object.keys(ORDER).filter((s) => counts[s]).map((s) =>
      el(`span.count.state-${s}`, { title: words(s) }, `${counts[s]} ${s}`)));
    // Rows are kept and updated in place: a row must not be replaced under the pointer of a
    // dispatcher about to click it.
    const shown = found.slice(0, SHOWN);
    const rows = shown.map((unit) => this.row(unit));
    const notes = [];
    if (found.length > SHOWN) notes.push(el("p.empty", {}, `${found.length - SHOWN} more: search to narrow`));
    if (!found.length) notes.push(el("p.empty", {}, this.store.units.size ? "No unit matches." : "No units yet."));
    const order = shown.map((u) => u.unit_id).join("\n") + notes.map((n) => n.textContent).join("\n");
    if (order !== this.order) {
      this.order = order;
      this.list.replaceChildren(...rows, ...notes);
    }
    for (const id of this.rows.keys()) if (!this.store.units.has(id)) this.rows.delete(id);
    if (this.selected) this.renderDetail();
  }

  row(unit) {
    let row = this.rows.get(unit.unit_id);
    if (!row) {
      row = el("button.roster-row", { type: "button", dataset: { unit: unit.unit_id },
        onclick: () => this.show(unit.unit_id) },
        el("i.dot"), el("b", {}, unit.unit_id), el("span.officer"), el("span.state-word"),
        el("span.battery", { title: "battery" }));
      this.rows.set(unit.unit_id, row);
    }
    const [dot, , officer, state, battery] = row.children;
    const look = `${unit.state_label}|${unit.officer}|${pct(unit.battery_pct)}|${unit.unit_id === this.selected}`;
    if (row.dataset.look !== look) {
      row.dataset.look = look;
      dot.className = `dot state-${unit.state_label}`;
      officer.textContent = unit.officer || "—";
      state.className = `state-word state-${unit.state_label}`;
      state.textContent = unit.state_label;
      battery.textContent = pct(unit.battery_pct);
      row.setAttribute("aria-current", String(unit.unit_id === this.selected));
    }
    return row;
  }

  async show(unitId) {
    this.selected = unitId;
    this.events = [];
    this.detail.hidden = false;
    this.render();
    await this.loadEvents();
  }

  hide() {
    this.selected = null;
    this.detail.hidden = true;
    this.render();
  }

  async loadEvents() {
    const unitId = this.selected;
    try {
      const events = await get(`/api/v1/units/${encodeURIComponent(unitId)}/events?limit=20`);
      if (unitId !== this.selected) return;
      this.events = events;
    } catch (error) {
      this.events = [{ id: "error", type: `events unavailable: ${error.message}`, ts: null, data: {} }];
    }
    this.renderDetail();
  }

  renderDetail() {
    const unit = this.store.units.get(this.selected);
    if (!unit) {
      this.detail.replaceChildren(this.backButton(), el("p.empty", {}, `${this.selected}: unknown unit.`));
      return;
    }
    const following = this.actions.following() === unit.unit_id;
    const fact = (label, value, warn = false) =>
      [el("dt", {}, label), el(warn ? "dd.warn" : "dd", {}, value ?? "–")];
    const link = [unit.link_type, unit.signal_dbm != null ? `${unit.signal_dbm} dBm` : null].filter(Boolean).join(" · ");
    this.detail.replaceChildren(
      this.backButton(),
      el("h2.detail-title", {}, el(`i.dot.state-${unit.state_label}`), unit.unit_id,
        el(`span.pill.state-${unit.state_label}`, {}, words(unit.state_label))),
      el("p.detail-officer", {}, unit.officer || "No officer signed in"),
      el("div.detail-actions", {},
        el("button", { type: "button", onclick: () => this.actions.centre(unit.unit_id) }, "Centre"),
        el("button", { type: "button", "aria-pressed": String(following),
          onclick: () => this.actions.follow(following ? null : unit.unit_id) }, following ? "Following" : "Follow"),
        el("button.primary", { type: "button", onclick: () => this.actions.goLive(unit.unit_id) }, "Go live"),
        el("button", { type: "button", title: "The last minutes of its video",
          onclick: () => this.actions.rewind(unit.unit_id) }, "Rewind")),
      el("dl.facts", {},
        fact("Battery", pct(unit.battery_pct), unit.battery_pct != null && unit.battery_pct < 15),
        fact("Storage free", pct(unit.storage_free_pct), unit.storage_free_pct != null && unit.storage_free_pct < 10),
        fact("Camera", unit.camera_connected == null ? null : unit.camera_connected ? "connected" : "not connected", unit.camera_connected === false),
        fact("Recording", unit.recording == null ? null : unit.recording ? "yes" : "no"),
        fact("Streaming", unit.streaming == null ? null : unit.streaming ? "yes" : "no"),
        fact("Link", link || null, unit.online === false),
        fact("Speed", unit.speed_mps != null ? `${kmh(unit.speed_mps)}${unit.heading_deg != null ? ` · ${Math.round(unit.heading_deg)}°` : ""}` : null),
        fact("Position", unit.lat != null ? `${unit.lat.toFixed(5)}, ${unit.lon.toFixed(5)}` : null),
        fact("Last seen", unit.last_seen ? `${clockTime(unit.last_seen)} (${ago(unit.last_seen)})` : null),
        fact("Agent", unit.agent_version),
        fact("Firmware", unit.firmware_version)),
      el("h3", {}, "Recent events ", el("button.plain.small", { type: "button", onclick: () => this.loadEvents() }, "Refresh")),
      el("ol.events", {}, ...(this.events.length ? this.events.map(eventRow) : [el("li.empty", {}, "None yet.")])));
  }

  backButton() {
    return el("button.plain.small.back", { type: "button", onclick: () => this.hide() }, "← All units");
  }
}

function eventRow(event) {
  const data = event.data || {};
  const summary = Object.entries(data).slice(0, 3)
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
  return el("li", {}, el("span.event-time", {}, clockTime(event.ts)), el("b", {}, words(event.type)),
    summary ? el("span.event-data", {}, summary) : null);
}
