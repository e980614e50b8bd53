// One card per share for this unit: the text, a still, how far and which way the scene is
// from here, who sent it, how long it lasts, and Play for its live video.

import { bearingDeg, compass, compassWords, distanceM, formatDistance, hasPosition } from "../lib/geo.js";
import { clockTime, el, timeLeft } from "../lib/ui.js";

// Distance and bearing from this unit's own position when it is known; the center's
// figures (as of when it sent the share) otherwise.
export function direction(share, unit) {
  if (hasPosition(unit) && share.scene) {
    return { meters: distanceM(unit, share.scene), bearing: bearingDeg(unit, share.scene), live: true };
  }
  return { meters: share.distance_m, bearing: share.bearing_deg, live: false };
}

export function card(share, { onPlay, onStill }) {
  const parts = {
    arrow: el("span.arrow", { "aria-hidden": "true" }),
    distance: el("b.distance"),
    words: el("span.compass"),
    left: el("span.left"),
  };
  const still = share.still_url
    ? el("button.still", { type: "button", title: "Show the still larger", onclick: () => onStill(share) },
      el("img", { src: share.still_url, alt: "still from the scene", loading: "lazy" }))
    : null;
  const play = share.stream_id
    ? el("button.play.primary", { type: "button", onclick: () => onPlay(share.share_id) }, "▶ Play live video")
    : null;
  const node = el("article.share-card", { dataset: { share: share.share_id } },
    el("div.card-body", {},
      el("p.card-text", {}, share.text || "(no text)"),
      el("p.card-meta", {}, `From ${share.from_user} · ${clockTime(share.created_at)} · `, parts.left)),
    el("div.card-direction", { title: "Direction to the scene (north up)" }, parts.arrow, parts.distance, parts.words),
    still,
    play);
  return { node, parts, play, share };
}

export function refreshCard(entry, unit, nowS) {
  const { meters, bearing } = direction(entry.share, unit);
  const { parts } = entry;
  if (bearing != null) {
    parts.arrow.style.transform = `rotate(${Math.round(bearing)}deg)`;
    parts.arrow.textContent = "↑";
    parts.words.textContent = `${compass(bearing)} · ${compassWords(bearing)}`;
  } else {
    parts.arrow.textContent = "";
    parts.words.textContent = "direction unknown";
  }
  parts.distance.textContent = formatDistance(meters);
  const left = timeLeft(entry.share.expires_at, nowS);
  parts.left.textContent = left;
  parts.left.classList.toggle("soon", entry.share.expires_at - nowS < 300);
}
