// The device list: one row per unit (its newest certificate), earlier certificates under it
// on request. Rows are kept per unit and refreshed in place, so that a poll neither moves
// the focus off a Revoke button nor makes the list flicker.

import { ago, el } from "../lib/ui.js";

const DAY_S = 86400;
// Matches the agent's `rtcc doctor` warning and its renewal (RenewalSettings.min_days): a
// certificate this close to its end was not renewed when it should have been.
const SOON_DAYS = 30;
// Until the device list says whether a unit is online, a unit heard from within this long
// counts as online: agents publish their state at least every 30 s (state_heartbeat_s).
const HEARD_WITHIN_S = 75;

// "2025-03-04 14:03", the person's local time, 24 h: unambiguous in any locale.
export function dateTime(epochS) {
  if (epochS == null) return "–";
  const d = new Date(epochS * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

// "in 364 days", "in 5 h", "expired 2 days ago".
export function untilText(epochS, nowS) {
  const s = epochS - nowS;
  const span = (v) => {
    const a = Math.abs(v);
    if (a >= 2 * DAY_S) return `${Math.floor(a / DAY_S)} days`;
    if (a >= 3600) return `${Math.floor(a / 3600)} h`;
    return `${Math.max(1, Math.floor(a / 60))} min`;
  };
  return s > 0 ? `in ${span(s)}` : `expired ${span(s)} ago`;
}

// An expiring-soon certificate: under SOON_DAYS left, or under half of its lifetime for a
// short-lived one (renewal starts half way at the latest).
export function expiringSoon(cert, nowS) {
  const left = cert.expires_at - nowS;
  const lifetime = cert.expires_at - cert.issued_at;
  return left > 0 && left < Math.min(SOON_DAYS * DAY_S, lifetime / 2);
}

// What a unit's row says: revoked, expired, online or offline (in that order).
export function statusOf(cert, nowS) {
  if (cert.revoked_at != null) return "revoked";
  if (cert.expires_at <= nowS) return "expired";
  const online = typeof cert.online === "boolean"
    ? cert.online
    : cert.last_seen != null && nowS - cert.last_seen < HEARD_WITHIN_S;
  return online ? "online" : "offline";
}

// {unit_id -> {current, earlier[]}} from the API's list; units in natural order (P-2 < P-10).
export function byUnit(certs) {
  const units = new Map();
  for (const cert of certs) {
    const entry = units.get(cert.unit_id) || { current: null, earlier: [] };
    units.set(cert.unit_id, entry);
    entry.earlier.push(cert);
  }
  for (const entry of units.values()) {
    entry.earlier.sort((a, b) => b.issued_at - a.issued_at);
    entry.current = entry.earlier.shift();
  }
  const names = [...units.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  return new Map(names.map((name) => [name, units.get(name)]));
}

export function counts(units, nowS) {
  const tally = { online: 0, offline: 0, soon: 0, expired: 0, revoked: 0 };
  for (const { current } of units.values()) {
    tally[statusOf(current, nowS)] += 1;
    if (!current.revoked_at && expiringSoon(current, nowS)) tally.soon += 1;
  }
  return tally;
}

const STATUS_LABEL = { online: "online", offline: "offline", expired: "expired", revoked: "revoked" };

function statusCell(cert, nowS) {
  const status = statusOf(cert, nowS);
  const cell = el("td.status", {}, el(`span.pill.st-${status}`, {}, STATUS_LABEL[status]));
  if (cert.revoked_at != null) {
    // Enrolling a gateway again revokes the unit's earlier certificate as "replaced".
    const by = cert.revoked_by === "replaced" ? "replaced by a new enrollment" : `by ${cert.revoked_by || "?"}`;
    cell.append(el("div.sub", {}, by), el("div.sub", {}, dateTime(cert.revoked_at)));
  }
  return cell;
}

function expiresCell(cert, nowS) {
  const soon = !cert.revoked_at && expiringSoon(cert, nowS);
  const gone = cert.expires_at <= nowS;
  return el(`td.expires${soon ? ".soon" : ""}${gone ? ".gone" : ""}`, {},
    el("div", {}, untilText(cert.expires_at, nowS), soon ? el("span.flag", {}, "soon") : null),
    el("div.sub", {}, dateTime(cert.expires_at)));
}

function cells(cert, nowS, earlier) {
  return [
    el("th.unit", { scope: "row" }, earlier ? el("span.earlier-mark", {}, "earlier") : cert.unit_id),
    statusCell(cert, nowS),
    el("td.seen", {}, earlier ? "" : ago(cert.last_seen, nowS),
      !earlier && cert.last_seen != null ? el("div.sub", {}, dateTime(cert.last_seen)) : null),
    expiresCell(cert, nowS),
    el("td.cert", {}, el("div.serial", { title: cert.serial }, cert.serial),
      el("div.sub", {}, `issued ${dateTime(cert.issued_at)}`)),
  ];
}

// Puts `wanted` in `parent` in that order, moving only what is out of place: a row that moves
// (is taken out and put back) loses the focus, so rows already in order are left alone.
function reconcile(parent, wanted) {
  wanted.forEach((node, i) => {
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
  });
  while (parent.children.length > wanted.length) parent.lastElementChild.remove();
}

export class DeviceTable {
  // nodes: {rows: <tbody>, empty: <p>}; onRevoke(unitId) when a row's Revoke is pressed.
  constructor(nodes, onRevoke) {
    this.nodes = nodes;
    this.onRevoke = onRevoke;
    this.rows = new Map(); // unit_id -> {tr, button}; "serial:<serial>" -> {tr} (earlier ones)
    this.units = new Map();
    this.filter = "";
    this.showEarlier = false;
  }

  update(certs) {
    this.units = byUnit(certs);
  }

  render(nowS) {
    const shown = [];
    const kept = new Set();
    const needle = this.filter.trim().toLowerCase();
    for (const [unitId, entry] of this.units) {
      const all = [entry.current, ...entry.earlier];
      if (needle && !unitId.toLowerCase().includes(needle) && !all.some((c) => c.serial.includes(needle))) {
        continue;
      }
      shown.push(this.unitRow(unitId, entry.current, nowS));
      kept.add(unitId);
      for (const cert of this.showEarlier ? entry.earlier : []) {
        shown.push(this.earlierRow(unitId, cert, nowS));
        kept.add(`serial:${cert.serial}`);
      }
    }
    for (const key of [...this.rows.keys()]) if (!kept.has(key)) this.rows.delete(key);
    reconcile(this.nodes.rows, shown);
    this.nodes.empty.hidden = shown.length > 0;
    this.nodes.empty.textContent = this.units.size
      ? "No unit matches."
      : "No gateway is enrolled yet. Make an enrollment code, then run the command it shows on the gateway.";
  }

  unitRow(unitId, cert, nowS) {
    let row = this.rows.get(unitId);
    if (!row) {
      const button = el("button.revoke.small", { type: "button", onclick: () => this.onRevoke(unitId) }, "Revoke…");
      const action = el("td.action", {}, button);
      row = { tr: el("tr.unit-row", { dataset: { unit: unitId } }, action), button, action };
      this.rows.set(unitId, row);
    }
    const status = statusOf(cert, nowS);
    row.tr.dataset.status = status;
    row.tr.dataset.serial = cert.serial;
    row.tr.classList.toggle("soon", !cert.revoked_at && expiringSoon(cert, nowS));
    row.button.hidden = status === "revoked";
    row.button.setAttribute("aria-label", `Revoke ${unitId}`);
    // The action cell (and its button, which may have the focus) stays; the others change.
    while (row.tr.firstElementChild !== row.action) row.tr.firstElementChild.remove();
    row.action.before(...cells(cert, nowS, false));
    return row.tr;
  }

  earlierRow(unitId, cert, nowS) {
    const key = `serial:${cert.serial}`;
    let row = this.rows.get(key);
    if (!row) {
      row = { tr: el("tr.earlier", { dataset: { unit: unitId, serial: cert.serial } }) };
      this.rows.set(key, row);
    }
    row.tr.replaceChildren(...cells(cert, nowS, true), el("td"));
    return row.tr;
  }
}
