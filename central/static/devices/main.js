// The field tech's Devices page: every enrolled gateway (its certificate, when it was last
// heard from, whether it was revoked and by whom), new enrollment codes, and revocation.
// The list is asked for again every few seconds while the person is at the page; away from
// it, the page stops asking, so that the session can lock when idle as it should.

import { ApiError, del, get, post, session } from "../lib/api.js";
import { $, clockTime, el } from "../lib/ui.js";
import { confirmRevoke } from "./revoke.js";
import { EnrollPanel } from "./enroll.js";
import { counts, DeviceTable } from "./table.js";

const POLL_MS = 4000;
// Polls stop this long after the person's last key, click or mouse move (at most half the
// idle lock, so that the center still locks an abandoned session in time).
const AWAY_MAX_MS = 120_000;
const enc = encodeURIComponent;

const state = {
  polls: 0, failures: 0, lastOk: null, forbidden: false, paused: false, activeAt: Date.now(), awayMs: AWAY_MAX_MS,
};
let table = null;
let pollTimer = null;

function setStatus(kind, text) {
  const node = $("#list-status");
  node.dataset.state = kind;
  node.textContent = text;
}

function showCounts(nowS) {
  const tally = counts(table.units, nowS);
  const chip = (key, label, n) => el(`span.count.c-${key}`, { title: label }, `${n} ${label}`);
  const chips = [chip("online", "online", tally.online), chip("offline", "offline", tally.offline)];
  if (tally.soon) chips.push(chip("soon", "expiring soon", tally.soon));
  if (tally.expired) chips.push(chip("expired", "expired", tally.expired));
  if (tally.revoked) chips.push(chip("revoked", "revoked", tally.revoked));
  $("#device-counts").replaceChildren(...chips);
}

function render() {
  const nowS = Date.now() / 1000;
  table.render(nowS);
  showCounts(nowS);
}

function away() {
  return document.visibilityState !== "visible" || Date.now() - state.activeAt > state.awayMs;
}

async function poll() {
  clearTimeout(pollTimer);
  if (state.forbidden) return;
  state.paused = away();
  if (state.paused) {
    setStatus("paused", "paused while you are away: move the mouse to update");
    return; // woken by the person's next move (see watchActivity)
  }
  try {
    table.update(await get("/api/v1/provision/devices"));
    state.polls += 1;
    state.failures = 0;
    state.lastOk = Date.now();
    setStatus("ok", "up to date");
    render();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return; // on the way to sign-in
    if (error instanceof ApiError && error.status === 403) return forbidden();
    state.failures += 1;
    const when = state.lastOk ? ` (list from ${clockTime(state.lastOk / 1000)})` : "";
    setStatus("failing", `${error.status === 0 ? "center unreachable" : error.message}: retrying${when}`);
  }
  pollTimer = setTimeout(poll, POLL_MS);
}

function forbidden() {
  state.forbidden = true;
  setStatus("failing", "not allowed");
  $("#desk").replaceChildren(el("section.refused", { role: "alert" },
    el("h2", {}, "This page is for field techs"),
    el("p", {}, `Signed in as ${state.me.user} (${state.me.role}): this role may not enroll or revoke gateways.`),
    el("p", {}, el("a", { href: "/" }, "Back to the start page"))));
}

function watchActivity() {
  const woke = () => {
    const wasAway = away();
    state.activeAt = Date.now();
    if (wasAway && !state.forbidden) poll();
  };
  for (const type of ["pointermove", "pointerdown", "keydown", "wheel", "focus"]) {
    window.addEventListener(type, woke, { passive: true });
  }
  document.addEventListener("visibilitychange", woke);
}

function notice(text, kind) {
  $("#notice-text").textContent = text;
  $("#notice").dataset.kind = kind;
  $("#notice").hidden = false;
}

async function revoke(unitId) {
  if (!(await confirmRevoke(unitId))) return;
  try {
    const answer = await post(`/api/v1/provision/devices/${enc(unitId)}/revoke`);
    const serials = answer.revoked.length ? answer.revoked.join(", ") : "none was still valid";
    notice(`${unitId} revoked. Certificates revoked: ${serials}. Its unused codes are cancelled; `
      + "it is disconnected within seconds and needs a new code to come back.", "ok");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    const why = error instanceof ApiError && error.status === 403
      ? `your role (${state.me.role}) may not revoke gateways` : error.message;
    notice(`${unitId} was NOT revoked: ${why}.`, "error");
  }
  poll();
}

function topBar(me) {
  $("#who").replaceChildren(el("b", {}, me.user), el("span.role", {}, me.role));
  $("#signout").addEventListener("click", async () => {
    clearTimeout(pollTimer);
    await del("/api/v1/session").catch(() => {});
    location.assign("/");
  });
  $("#notice-close").addEventListener("click", () => ($("#notice").hidden = true));
}

async function boot() {
  const me = await session();
  state.me = me;
  if (me.idle_lock_s) state.awayMs = Math.min(AWAY_MAX_MS, (me.idle_lock_s * 1000) / 2);
  topBar(me);
  table = new DeviceTable({ rows: $("#device-rows"), empty: $("#no-devices") }, revoke);
  const panel = new EnrollPanel(me);
  $("#search").addEventListener("input", () => {
    table.filter = $("#search").value;
    render();
  });
  $("#show-earlier").addEventListener("change", () => {
    table.showEarlier = $("#show-earlier").checked;
    render();
  });
  watchActivity();
  const tick = () => {
    const nowS = Date.now() / 1000;
    $("#clock").textContent = clockTime(nowS);
    panel.tick(nowS);
  };
  tick();
  setInterval(tick, 1000);
  setInterval(() => !state.forbidden && table.units.size && render(), 15_000); // "x min ago"
  await poll();
  $("#unit-id")?.focus();
  window.rtccDevices = {
    ready: true, state, panel,
    units: () => Object.fromEntries([...table.units].map(([id, e]) => [id, e.current])),
  };
}

boot().catch((error) => {
  if (error instanceof ApiError && error.status === 401) return; // on the way to sign-in
  document.body.append(el("p.fatal", { role: "alert" }, `The devices page could not start: ${error.message}`));
  throw error;
});
