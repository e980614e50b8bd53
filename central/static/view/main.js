// The single-stream /view page (a link from the API, or a tile popped out of the console's
// wall): one stream played by the shared WHEP player, which re-joins by itself whenever the
// session dies, so that nobody ever has to reload it. The token comes in the URL fragment,
// which browsers never send to servers or write to their logs.

import { WhepPlayer } from "../lib/whep.js";

const $ = (id) => document.getElementById(id);
const streamId = decodeURIComponent(location.pathname.split("/").pop());
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
const whepUrl = new URL(`/whep/${encodeURIComponent(streamId)}`, location.href).href;
const video = $("video");
$("title").textContent = streamId;

// The receiver's counters as getStats() names them; tests read them.
window.__lastStats = { framesDecoded: 0 };

const LABELS = {
  connecting: (n) => (n > 1 ? `connecting… (attempt ${n})` : "connecting…"),
  live: () => "live",
  reconnecting: (n) => `reconnecting… (attempt ${n})`,
  "not-live": () => "stream not live yet",
  waiting: () => "waiting for the unit's video…",
  ended: () => "stream ended",
  refused: () => "access expired — reload from the console",
  stopped: () => "closed",
};

// The last picture, greyed, stays up while there is no live video.
function keepStill() {
  if (!video.videoWidth) return;
  const still = $("still");
  still.width = video.videoWidth;
  still.height = video.videoHeight;
  still.getContext("2d").drawImage(video, 0, 0);
  still.classList.add("kept");
}

function since(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 1) return "now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s ago`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
}

const capitalised = (text) => text.charAt(0).toUpperCase() + text.slice(1);

function renderStats(player) {
  const { stats } = player;
  const live = player.state === "live";
  window.__lastStats = { ...stats, codec: stats.mimeType };
  $("codec").textContent = stats.codec || "-";
  $("size").textContent = stats.frameWidth ? `${stats.frameWidth}x${stats.frameHeight}` : "-";
  $("fps").textContent = live && stats.framesPerSecond != null ? Math.round(stats.framesPerSecond) : "-";
  let latency = "-";
  if (live) latency = stats.latencyMs != null ? `${Math.round(stats.latencyMs)} ms` : "n/a";
  $("latency").textContent = latency;
}

function detailOf(player, seen) {
  let next = player.current?.answeredAt != null ? "waiting for video…" : "joining…";
  if (player.retryAt !== null) {
    const wait = Math.max(0, Math.ceil((player.retryAt - Date.now()) / 1000));
    next = wait > 0 ? `trying again in ${wait} s` : "trying again…";
  }
  const last = player.lastVideoAt === null ? "No video yet" : `Last video ${seen}`;
  const causes = {
    "not-live": "Waiting for the body-cam to start streaming",
    waiting: "The unit's link is down or it is reconnecting; video resumes here by itself",
    ended: "The body-cam stopped streaming; this view keeps checking",
    refused: `The viewing link is no longer valid (HTTP ${player.status})`,
  };
  if (player.state === "refused") return ["Reload this view from the console", causes.refused];
  if (player.state === "waiting") return [last, causes.waiting];
  return [`${last} · ${next}`, causes[player.state] ?? player.cause];
}

function render(player) {
  const label = LABELS[player.state](player.attempt);
  $("state").textContent = label;
  $("state").className = player.state;
  $("stage").className = player.state;
  document.title = `${label} · ${streamId}`;
  const seen = player.lastVideoAt === null ? "never" : since(Date.now() - player.lastVideoAt);
  $("seen").textContent = seen;
  renderStats(player);
  if (player.state === "live") return;
  const [detail, cause] = detailOf(player, seen);
  $("banner-title").textContent = player.state === "refused" ? "Access expired" : capitalised(label);
  $("banner-detail").textContent = detail;
  $("banner-cause").textContent = cause ? capitalised(cause) : "";
}

const player = new WhepPlayer(video, { whepUrl, token }, {
  onChange: render,
  onEnded: keepStill,
});

// What the page shows; tests read it.
window.rtccViewer = Object.freeze({
  get state() { return player.state; },
  get attempt() { return player.attempt; },
  get joins() { return player.joins; },
  get framesDecoded() { return player.framesDecoded; },
  get lastVideoAt() { return player.lastVideoAt; },
  get status() { return player.status; },
});

// Leaving ends the relay's session (the player's DELETE outlives the page).
addEventListener("pagehide", () => player.stop());
// "Last video 12 s ago" and "trying again in 2 s" count on between the player's changes.
setInterval(() => render(player), 500);
render(player);
player.start();
