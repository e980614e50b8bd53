// The dispatcher console: map, roster, alerts, video wall and shares, kept current by the
// center's live feed. Everything it knows comes from that feed and the API; nothing from the
// internet.

import { ApiError, del, get, session } from "../lib/api.js";
import { connectLive } from "../lib/live.js";
import { createMap } from "../lib/map.js";
import { cue, cueCounts, soundButton } from "../lib/sounds.js";
import { $, clockTime, el } from "../lib/ui.js";
import { AlertsView } from "./alerts.js";
import { UnitMarkers } from "./markers.js";
import { Roster } from "./roster.js";
import { SharePanel } from "./share.js";
import { Store } from "./store.js";
import { VideoWall } from "./wall.js";

// What the page assumes when the center does not say.
const DEFAULT_CONFIG = {
  tile_url: null, tile_attribution: "", overlays: [], share_radius_m: 2000, share_ttl_s: 3600,
  map: null, wall_max: 16,
};

async function loadConfig() {
  try {
    return { ...DEFAULT_CONFIG, ...(await get("/api/v1/console/config")) };
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw error;
    console.warn(`console config: ${error.message}; using defaults`);
    return DEFAULT_CONFIG;
  }
}

function topBar(me, live) {
  $("#who").replaceChildren(el("b", {}, me.user), el("span.role", {}, me.role));
  soundButton($("#mute"));
  $("#signout").addEventListener("click", async () => {
    live.close();
    await del("/api/v1/session").catch(() => {});
    location.assign("/");
  });
  const tick = () => ($("#clock").textContent = clockTime(Date.now() / 1000));
  tick();
  setInterval(tick, 1000);
}

function tabs() {
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
}

function showTab(name) {
  for (const button of document.querySelectorAll("[data-tab]")) {
    const on = button.dataset.tab === name;
    button.setAttribute("aria-selected", String(on));
    $(`#tab-${button.dataset.tab}`).hidden = !on;
  }
}

function liveStatus(state) {
  const node = $("#live-status");
  node.dataset.state = state;
  node.textContent = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…" }[state];
}

async function boot() {
  const me = await session();
  if (me.role === "patrol") return location.assign("/patrol");
  const store = new Store();
  store.me = me;
  store.config = await loadConfig();
  const map = createMap($("#map"), store.config);
  let roster = null;
  const markers = new UnitMarkers(map, {
    onClick: (unitId) => {
      showTab("units");
      roster.show(unitId);
    },
  });
  const shares = new SharePanel($("#share-panel"), $("#share-list"), store, map);
  const wall = new VideoWall($("#wall"), store, {
    onShare: (source) => shares.compose(source),
  });
  const follow = (unitId) => {
    markers.follow(unitId);
    $("#following").hidden = !unitId;
    $("#following-unit").textContent = unitId || "";
    roster.render();
  };
  roster = new Roster(
    { search: $("#search"), list: $("#roster"), summary: $("#unit-counts"), detail: $("#detail") },
    store,
    {
      centre: (unitId) => markers.centre(unitId),
      follow,
      following: () => markers.following,
      goLive: (unitId) => wall.open(unitId),
      rewind: (unitId) => wall.rewind(unitId),
    },
  );
  const alertsSeen = {}; // alert id -> Date.now() when the banner showed it (benchmarks)
  const alerts = new AlertsView(
    { banner: $("#banner"), list: $("#alert-list"), count: $("#alert-count") },
    store,
    {
      onOpen: (alert) => {
        if (alert.lat != null && alert.lon != null) markers.centreOn(alert.lat, alert.lon);
        else markers.centre(alert.unit_id);
        wall.open(alert.unit_id, { reason: `alert ${alert.kind}`, incident: "" }, alert.stream_id);
      },
    },
  );
  map.on("dragstart", () => markers.following && follow(null));
  $("#fit").addEventListener("click", () => markers.fitAll());
  $("#unfollow").addEventListener("click", () => follow(null));
  $("#new-share").addEventListener("click", () => shares.compose({}));
  store.addEventListener("shares", () => ($("#share-count").textContent = String(store.shares.size || "")));
  tabs();

  let fitted = Boolean(store.config.map);
  const alarm = (alert) => {
    alertsSeen[alert.id] = Date.now();
    cue("alert");
  };
  const live = connectLive({
    status: liveStatus,
    snapshot(data) {
      const before = new Set(store.alerts.keys());
      store.snapshot(data);
      markers.replaceAll(data.units || []);
      for (const alert of store.alerts.values()) if (!before.has(alert.id)) alarm(alert);
      if (!fitted && (data.units || []).length) {
        fitted = true;
        requestAnimationFrame(() => requestAnimationFrame(() => markers.fitAll()));
      }
      $("#share-count").textContent = String(store.shares.size || "");
    },
    units(data) {
      store.updateUnits(data.units || []);
      markers.update(data.units || []);
    },
    alert(alert) {
      if (store.updateAlert(alert)) alarm(alert);
    },
    stream: (stream) => store.updateStream(stream),
    share: (share) => store.updateShare(share),
    share_revoked: (data) => store.removeShare(data.share_id),
  });
  topBar(me, live);

  window.rtccConsole = {
    store, map, markers, wall, roster, alerts, shares, live: live.info, alertsSeen,
    cues: cueCounts, tiles: () => wall.describe(), rewinds: () => wall.rewinds(), ready: true,
  };
}

boot().catch((error) => {
  if (error instanceof ApiError && error.status === 401) return; // on the way to sign-in
  document.body.append(el("p.fatal", { role: "alert" }, `The console could not start: ${error.message}`));
  throw error;
});
