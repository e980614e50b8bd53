// The patrol page (a unit's in-car laptop): shares sent to this unit arrive live with a sound,
// each with its text, still, distance and direction to the scene; Play shows its live video,
// one at a time. A revoked or expired share disappears and its video stops.

import { ApiError, del, get, post, session } from "../lib/api.js";
import { connectLive } from "../lib/live.js";
import { cue, cueCounts, soundButton } from "../lib/sounds.js";
import { $, clockTime, el, words } from "../lib/ui.js";
import { STATE_LABELS, WhepPlayer } from "../lib/whep.js";
import { card, refreshCard } from "./cards.js";

const enc = encodeURIComponent;
const shares = new Map(); // share_id -> {node, parts, play, share}
const received = new Set(); // share ids the center was told this page showed
const seen = {}; // share id -> Date.now() when it was first shown (benchmarks)
let unit = null;
let snapshots = 0;
let playing = null; // {shareId, player}
let playAttempts = 0; // the latest Play wins

function render() {
  const list = $("#share-list");
  const ordered = [...shares.values()].sort((a, b) => b.share.created_at - a.share.created_at);
  if (!ordered.length) {
    list.replaceChildren(el("p.empty", {}, "No shares for this unit. New ones appear here with a sound."));
  } else {
    list.replaceChildren(...ordered.map((entry) => entry.node));
  }
  $("#share-count").textContent = ordered.length ? String(ordered.length) : "";
  refresh();
  tellReceived();
}

function refresh() {
  const now = Date.now() / 1000;
  for (const entry of [...shares.values()]) {
    if (entry.share.expires_at <= now) removeShare(entry.share.share_id, "expired");
    else refreshCard(entry, unit, now);
  }
}

// The center learns which shares were on screen.
function tellReceived() {
  if (document.visibilityState !== "visible") return;
  for (const id of shares.keys()) {
    if (received.has(id)) continue;
    received.add(id);
    post(`/api/v1/patrol/shares/${enc(id)}/received`).catch(() => received.delete(id));
  }
}

function addShare(share, quiet) {
  const known = shares.get(share.share_id);
  if (known) {
    known.share = share;
    return;
  }
  const entry = card(share, { onPlay: play, onStill: showStill });
  shares.set(share.share_id, entry);
  seen[share.share_id] = Date.now();
  if (!quiet) cue("share");
}

function removeShare(shareId, why) {
  if (!shares.delete(shareId)) return;
  if (playing?.shareId === shareId) stopPlaying(`The share was ${why}: video stopped.`);
  render();
}

function playerState(player) {
  const stage = $("#player");
  stage.dataset.state = player.state;
  $("#player-state").textContent = words(STATE_LABELS[player.state] || player.state);
  $("#player-state").className = `pill ${player.state === "live" ? "state-live" : ""}`;
  $("#player-banner").hidden = player.state === "live";
  if (player.state !== "live") $("#player-banner").textContent = words(STATE_LABELS[player.state] || player.state);
  const s = player.stats;
  const fps = s.framesPerSecond != null ? ` · ${Math.round(s.framesPerSecond)} fps` : "";
  $("#player-info").textContent = player.state === "live" && s.codec
    ? `${s.codec.toUpperCase()}${fps} · ${s.frameWidth}×${s.frameHeight}`
    : "";
}

async function play(shareId) {
  if (playing?.shareId === shareId) return;
  stopPlaying(null);
  const entry = shares.get(shareId);
  const open = async () => {
    const grant = await post(`/api/v1/patrol/shares/${enc(shareId)}/open`);
    return { whepUrl: grant.whep_url, token: grant.token };
  };
  $("#player-title").textContent = entry.share.text || "Live video";
  $("#stop").hidden = false;
  markPlaying(entry);
  const attempt = ++playAttempts;
  try {
    const source = await open();
    if (attempt !== playAttempts) return; // another Play came meanwhile
    if (!shares.has(shareId)) return stopPlaying("The share ended.");
    const player = new WhepPlayer($("#video"), source, { renew: open, onChange: playerState });
    playing = { shareId, player };
    player.start();
  } catch (error) {
    if (attempt === playAttempts) stopPlaying(`The video cannot be opened: ${error.message}`);
  }
}

function stopPlaying(message) {
  playAttempts += 1;
  playing?.player.stop();
  playing = null;
  $("#video").srcObject = null;
  $("#player").dataset.state = "idle";
  $("#player-state").textContent = "";
  $("#player-state").className = "pill";
  $("#player-title").textContent = "No video playing";
  $("#player-info").textContent = "";
  $("#stop").hidden = true;
  $("#player-banner").hidden = false;
  $("#player-banner").textContent = message || "Tap Play on a share to watch its live video.";
  markPlaying(null);
}

// The card whose video plays says so; the others offer Play.
function markPlaying(playingEntry) {
  for (const entry of shares.values()) {
    const on = entry === playingEntry;
    entry.node.classList.toggle("playing", on);
    if (entry.play) {
      entry.play.textContent = on ? "Playing" : "▶ Play live video";
      entry.play.disabled = on;
    }
  }
}

function showStill(share) {
  const dialog = $("#still-view");
  dialog.querySelector("img").src = share.still_url;
  dialog.showModal();
}

function showUnit(me) {
  $("#unit").textContent = me.unit_id ? `Unit ${me.unit_id}` : `${me.user} (no unit)`;
}

function showPosition() {
  const known = unit && unit.lat != null;
  $("#position").textContent = known ? "GPS ok" : "no GPS: distances as sent";
  $("#position").dataset.ok = String(Boolean(known));
}

function topBar(live) {
  soundButton($("#mute"));
  $("#signout").addEventListener("click", async () => {
    live.close();
    stopPlaying(null);
    await del("/api/v1/session").catch(() => {});
    location.assign("/");
  });
  $("#stop").addEventListener("click", () => stopPlaying(null));
  $("#still-view button").addEventListener("click", () => $("#still-view").close());
  const tick = () => {
    $("#clock").textContent = clockTime(Date.now() / 1000);
    refresh();
  };
  tick();
  setInterval(tick, 1000);
}

function liveStatus(state) {
  const node = $("#live-status");
  node.dataset.state = state;
  node.textContent = { connecting: "connecting…", live: "connected", reconnecting: "reconnecting…" }[state];
}

async function boot() {
  await session();
  const me = await get("/api/v1/patrol/me");
  unit = me.unit;
  showUnit(me);
  showPosition();
  const live = connectLive({
    status: liveStatus,
    snapshot(data) {
      const quiet = snapshots === 0;
      snapshots += 1;
      unit = (data.units || []).find((u) => u.unit_id === me.unit_id) || unit;
      const keep = new Set((data.shares || []).map((s) => s.share_id));
      for (const id of [...shares.keys()]) if (!keep.has(id)) removeShare(id, "revoked");
      for (const share of data.shares || []) addShare(share, quiet);
      showPosition();
      render();
    },
    units(data) {
      const mine = (data.units || []).find((u) => u.unit_id === me.unit_id);
      if (!mine) return;
      unit = mine;
      showPosition();
      refresh();
    },
    share(share) {
      if (share.revoked_at) return removeShare(share.share_id, "revoked");
      addShare(share, false);
      render();
    },
    share_revoked: (data) => removeShare(data.share_id, "revoked"),
  });
  document.addEventListener("visibilitychange", tellReceived);
  topBar(live);
  render();
  window.rtccPatrol = {
    me, live: live.info, seen, cues: cueCounts, ready: true,
    shares: () => [...shares.keys()],
    playing: () => (playing ? {
      share_id: playing.shareId, state: playing.player.state, framesDecoded: playing.player.framesDecoded,
      joins: playing.player.joins, stats: playing.player.stats,
    } : null),
  };
}

boot().catch((error) => {
  if (error instanceof ApiError && error.status === 401) return; // on the way to sign-in
  document.body.append(el("p.fatal", { role: "alert" }, `The patrol page could not start: ${error.message}`));
  throw error;
});
