// Open alerts: a banner across the top for the newest, a list of all, one click to centre
// the map on the unit and open its live tile, and acknowledgement with a note (audited).

import { post } from "../lib/api.js";
import { ago, ask, clockTime, el, toast } from "../lib/ui.js";

const KINDS = {
  weapon_drawn: "Weapon drawn",
  gunshot: "Gunshot",
  man_down: "Man down",
  watch_me: "Watch me",
  battery_critical: "Battery critical",
  storage_critical: "Storage critical",
  offline_recording: "Offline while recording",
  other: "Alert",
};

const kindWords = (alert) => KINDS[alert.kind] || KINDS.other;

export class AlertsView {
  constructor({ banner, list, count }, store, { onOpen }) {
    this.banner = banner;
    this.list = list;
    this.count = count;
    this.store = store;
    this.onOpen = onOpen;
    for (const type of ["alerts", "snapshot"]) store.addEventListener(type, () => this.render());
    // "12 s ago" keeps counting.
    setInterval(() => this.render(), 5000);
    this.render();
  }

  officer(alert) {
    return this.store.units.get(alert.unit_id)?.officer || "";
  }

  render() {
    const alerts = this.store.sortedAlerts();
    this.count.textContent = String(alerts.length);
    this.count.hidden = alerts.length === 0;
    document.body.classList.toggle("has-alerts", alerts.length > 0);
    this.renderBanner(alerts);
    if (!alerts.length) {
      this.list.replaceChildren(el("p.empty", {}, "No open alerts."));
      return;
    }
    this.list.replaceChildren(...alerts.map((alert) => this.row(alert)));
  }

  renderBanner(alerts) {
    const newest = alerts[0];
    this.banner.hidden = !newest;
    if (!newest) return this.banner.replaceChildren();
    const more = alerts.length > 1 ? el("span.banner-more", {}, `+${alerts.length - 1} more open`) : null;
    this.banner.dataset.alert = newest.id;
    this.banner.replaceChildren(...[
      el("span.banner-icon", { "aria-hidden": "true" }, "⚠"),
      el("button.banner-main", { type: "button", title: "Centre the map and open the live video",
        onclick: () => this.onOpen(newest) },
        el("strong.banner-kind", {}, kindWords(newest)),
        el("span.banner-unit", {}, newest.unit_id),
        el("span.banner-officer", {}, this.officer(newest)),
        el("span.banner-time", {}, `${clockTime(newest.ts)} · ${ago(newest.ts)}`)),
      more,
      el("button.banner-action", { type: "button", onclick: () => this.onOpen(newest) }, "Open video"),
      el("button.banner-action.plain", { type: "button", onclick: () => this.acknowledge(newest) },
        "Acknowledge")].filter(Boolean));
  }

  row(alert) {
    return el("div.alert-row", { dataset: { alert: alert.id, kind: alert.kind } },
      el("button.alert-open", { type: "button", title: "Centre the map and open the live video",
        onclick: () => this.onOpen(alert) },
        el("strong", {}, kindWords(alert)),
        el("span.alert-unit", {}, `${alert.unit_id} ${this.officer(alert)}`.trim()),
        el("span.alert-time", {}, `${clockTime(alert.ts)} · ${ago(alert.ts)}`)),
      el("button.plain.small", { type: "button", onclick: () => this.acknowledge(alert) }, "Ack"));
  }

  async acknowledge(alert) {
    const answer = await ask(`Acknowledge: ${kindWords(alert)} · ${alert.unit_id}`, [
      { name: "note", label: "Note", multiline: true, placeholder: "what was done (kept in the audit log)" },
    ], { okLabel: "Acknowledge" });
    if (!answer) return;
    try {
      const acked = await post(`/api/v1/alerts/${encodeURIComponent(alert.id)}/ack`, { note: answer.note });
      this.store.updateAlert(acked);
    } catch (error) {
      toast(`Acknowledge: ${error.message}`, "error");
    }
  }
}
