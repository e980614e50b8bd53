// Plays one stream over WHEP and re-joins by itself whenever the session dies (relay worker
// restarted, vehicle network handed over, center restarted): a dispatcher must never have to
// reload a tile. The single-stream /view page, the video wall's tiles and the patrol page
// each hold one per stream.

import { readStamp } from "./stamp.js";

const BACKOFF_FIRST_MS = 500;
const BACKOFF_CAP_MS = 2000; // video must be back within seconds of the relay or center returning
const DISCONNECTED_GRACE_MS = 2000; // ICE "disconnected" often heals by itself
const STALL_MS = 1500; // no new frame while playing: ask the relay (cheap) what is up
const FIRST_FRAME_MS = 10000; // answered but never a frame: the far end is not really there
const PROBE_EVERY_MS = 1500; // while video is away, ask the relay this often
const ENDED_AFTER_MS = 15000; // "not live" this long after there was video: it ended
const TICK_MS = 400;
const STATS_WINDOW_MS = 2000;

export const STATE_LABELS = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  "not-live": "not live yet",
  waiting: "waiting for the unit…",
  ended: "stream ended",
  refused: "access ended",
  stopped: "stopped",
};

function iceGathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
    setTimeout(resolve, 2000);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class WhepPlayer {
  // source: {whepUrl, token}; renew(): a fresh source when the relay refuses this one (an
  // expired token), or null to give up. onChange(player) after every state or stats change.
  // onEnded(player) as a session that played ends, while the video still shows its last
  // frame (its connection closes right after).
  constructor(video, source, { renew = null, onChange = () => {}, onEnded = () => {} } = {}) {
    this.video = video;
    this.source = source;
    this.renew = renew;
    this.onChange = onChange;
    this.onEnded = onEnded;
    this.state = "connecting";
    this.attempt = 1; // the join being tried since video was last seen
    this.joins = 0; // sessions the relay answered
    this.framesDecoded = 0; // in the current session
    this.firstFrameAt = null; // performance.now() of the first frame ever
    this.lastVideoAt = null; // Date.now() of the last new frame
    this.retryAt = null;
    this.cause = "";
    this.status = null; // the HTTP status that refused access
    this.stats = {};
    this.current = null;
    this.leaving = false;
    this.ticking = false;
    this.timer = null;
  }

  start() {
    this.timer = setInterval(() => this.tick(), TICK_MS);
    if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
      const onFrame = () => {
        if (this.leaving) return;
        const session = this.current;
        if (session?.stream && this.video.srcObject === session.stream) this.frameSeen(session);
        this.video.requestVideoFrameCallback(onFrame);
      };
      this.video.requestVideoFrameCallback(onFrame);
    }
    this.run();
    return this;
  }

  // Leaves the relay's session; keepalive lets the DELETE outlive the page. The connection
  // closes once the relay has answered: closed first, the relay drops the session by itself
  // and the center records a viewer gone on its own instead of one who left.
  stop() {
    this.leaving = true;
    clearInterval(this.timer);
    const session = this.current;
    if (session) {
      this.deleteSession(session).finally(() => session.end("stopped"));
    }
    this.video.srcObject = null;
    this.set({ state: "stopped", retryAt: null });
  }

  set(fields) {
    Object.assign(this, fields);
    this.onChange(this);
  }

  frameSeen(session) {
    session.played = true;
    session.liveProbes = 0;
    session.lastFrameAt = performance.now();
    this.firstFrameAt ??= session.lastFrameAt;
    this.lastVideoAt = Date.now();
    if (this.state !== "live") this.set({ state: "live", attempt: 1, retryAt: null, cause: "" });
  }

  auth() {
    return { Authorization: `Bearer ${this.source.token}` };
  }

  // Resolves once the relay has answered (or could not be reached).
  deleteSession(session) {
    const url = session.location;
    session.location = null;
    if (!url) return Promise.resolve();
    return fetch(url, { method: "DELETE", headers: session.auth, keepalive: true }).catch(() => {});
  }

  // One WHEP session from offer to death: {kind, cause, played, status} with kind "refused",
  // "not-live", "error" (nothing joined) or "lost" (joined, then died).
  async joinOnce() {
    const pc = new RTCPeerConnection();
    let settle;
    const died = new Promise((resolve) => {
      settle = resolve;
    });
    const session = {
      pc, location: null, stream: null, answeredAt: null, lastFrameAt: 0, frames: 0,
      samples: [], played: false, badSince: null,
      auth: this.auth(), end: (cause) => settle({ kind: "lost", cause }),
    };
    this.current = session;
    this.framesDecoded = 0;
    let outcome = { kind: "error", cause: "" };
    try {
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.ontrack = (event) => {
        session.stream = event.streams[0] || new MediaStream([event.track]);
        this.video.srcObject = session.stream;
      };
      pc.onconnectionstatechange = () => {
        const state = pc.connectionState;
        if (state === "failed" || state === "closed") session.end(`connection ${state}`);
        else if (state === "disconnected") session.badSince ??= performance.now();
        else session.badSince = null;
      };
      await pc.setLocalDescription(await pc.createOffer());
      await iceGathered(pc);
      let response;
      try {
        response = await fetch(this.source.whepUrl, {
          method: "POST",
          headers: { "Content-Type": "application/sdp", ...session.auth },
          body: pc.localDescription.sdp,
        });
      } catch {
        outcome = { kind: "error", cause: "the center cannot be reached" };
        return outcome;
      }
      if (response.status === 401 || response.status === 403) {
        outcome = { kind: "refused", status: response.status };
      } else if (response.status === 404) {
        outcome = { kind: "not-live", cause: "the relay has no video for this stream" };
      } else if (response.status !== 201) {
        outcome = { kind: "error", cause: `the center answered HTTP ${response.status}` };
      } else {
        const where = response.headers.get("Location");
        session.location = where ? new URL(where, this.source.whepUrl).href : null;
        if (this.leaving) return outcome; // stopped while joining: the finally block leaves
        await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
        session.answeredAt = performance.now();
        this.joins += 1;
        outcome = await died;
      }
      return outcome;
    } catch (error) {
      outcome = { kind: "error", cause: String(error) };
      return outcome;
    } finally {
      outcome.played = session.played;
      if (session.played) this.onEnded(this);
      this.current = null;
      pc.close();
      this.deleteSession(session);
    }
  }

  // A refused token: ask for a fresh one once; a second refusal in a row ends it.
  async renewed(outcome) {
    if (!this.renew || outcome.renewedBefore) return false;
    try {
      const fresh = await this.renew();
      if (fresh && !this.leaving) {
        this.source = fresh;
        return true;
      }
    } catch {
      // the share was revoked or the stream ended: refused, below
    }
    return false;
  }

  async run() {
    let everLive = false;
    let misses = 0; // joins in a row that brought no video
    let notLiveSince = null;
    let renewedLast = false;
    while (!this.leaving) {
      const outcome = await this.joinOnce();
      if (this.leaving) return;
      if (outcome.kind === "refused") {
        outcome.renewedBefore = renewedLast;
        renewedLast = await this.renewed(outcome);
        if (renewedLast) continue;
        this.set({ state: "refused", status: outcome.status, retryAt: null });
        return;
      }
      renewedLast = false;
      if (outcome.played) {
        everLive = true;
        misses = 0;
      }
      misses += 1;
      notLiveSince = outcome.kind === "not-live" ? (notLiveSince ?? Date.now()) : null;
      let state = "reconnecting";
      if (!everLive) state = notLiveSince !== null ? "not-live" : "connecting";
      else if (notLiveSince !== null && Date.now() - notLiveSince > ENDED_AFTER_MS) state = "ended";
      // Full jitter: viewers that lost the same relay together do not come back in lock-step.
      const delay = Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** (misses - 1));
      this.set({
        state, attempt: misses + (everLive ? 0 : 1), cause: outcome.cause || "",
        retryAt: Date.now() + delay,
      });
      await sleep(delay);
      this.retryAt = null;
    }
  }

  // Video stopped: ask the relay whether it still holds this session. If it does and the
  // unit's video is merely away, keep the session: the video resumes in it when the unit is
  // back. Join again only when the relay lost the session, or says video flows but none
  // reaches this page.
  async probe(session, cause) {
    const now = performance.now();
    if (session.probing || now - (session.probedAt ?? 0) < PROBE_EVERY_MS) return;
    session.probing = true;
    try {
      const response = session.location
        ? await fetch(session.location, { headers: session.auth, cache: "no-store" })
        : null;
      if (session !== this.current) return;
      const held = response?.ok ? await response.json() : null;
      if (held === null) return session.end(`${cause}; the relay lost this session`);
      session.liveProbes = held.live ? (session.liveProbes ?? 0) + 1 : 0;
      if (session.liveProbes >= 2) return session.end(`${cause}, although the stream is live`);
      if (!held.live) this.set({ state: "waiting", retryAt: null, cause: "" });
    } catch {
      if (session === this.current) session.end(`${cause}; the center cannot be reached`);
    } finally {
      session.probing = false;
      session.probedAt = performance.now();
    }
  }

  // What the tile shows, from the receiver's counters: frame rate and bitrate over the last
  // couple of seconds (the browser's own framesPerSecond jumps after a stall), and the
  // jitter buffer's delay per frame over the same span.
  readStats(session, report) {
    const stats = { framesDecoded: 0 };
    report.forEach((s) => {
      if (s.type !== "inbound-rtp" || s.kind !== "video") return;
      const sample = {
        at: s.timestamp, frames: s.framesDecoded || 0, bytes: s.bytesReceived || 0,
        delay: s.jitterBufferDelay || 0, emitted: s.jitterBufferEmittedCount || 0,
      };
      session.samples.push(sample);
      while (session.samples.length > 2 && sample.at - session.samples[1].at >= STATS_WINDOW_MS) {
        session.samples.shift();
      }
      const first = session.samples[0];
      const span = (sample.at - first.at) / 1000;
      if (span >= 0.5) {
        stats.framesPerSecond = (sample.frames - first.frames) / span;
        stats.bitrateBps = ((sample.bytes - first.bytes) * 8) / span;
      }
      if (sample.emitted > first.emitted) {
        stats.jitterMs = ((sample.delay - first.delay) * 1000) / (sample.emitted - first.emitted);
      }
      const mimeType = report.get(s.codecId)?.mimeType;
      Object.assign(stats, {
        framesDecoded: sample.frames, frameWidth: s.frameWidth, frameHeight: s.frameHeight,
        mimeType, codec: mimeType?.replace(/^video\//i, ""),
      });
    });
    return stats;
  }

  // Stats for the tile, and the watchdog that declares a session dead.
  async tick() {
    const session = this.current;
    if (this.ticking || !session || session.answeredAt === null) return;
    this.ticking = true;
    try {
      const stats = this.readStats(session, await session.pc.getStats());
      if (session !== this.current) return;
      const advanced = stats.framesDecoded > session.frames;
      if (advanced) {
        session.frames = stats.framesDecoded;
        this.frameSeen(session);
      }
      this.framesDecoded = session.frames;
      // A stamp read off a picture that stopped changing would be an ever older latency.
      const stamp = advanced && this.state === "live" ? readStamp(this.video) : null;
      stats.latencyMs = stamp ? Date.now() - stamp.wallMs : this.stats.latencyMs;
      this.set({ stats });
      const now = performance.now();
      if (session.badSince !== null && now - session.badSince > DISCONNECTED_GRACE_MS) {
        session.end("the connection was lost");
      } else if (session.played && now - session.lastFrameAt > STALL_MS) {
        this.probe(session, `no video for ${STALL_MS / 1000} s`);
      } else if (!session.played && now - session.answeredAt > FIRST_FRAME_MS) {
        this.probe(session, "joined, but no video came");
      }
    } catch {
      // getStats() of a session closed meanwhile; the next tick looks at the new one.
    } finally {
      this.ticking = false;
    }
  }
}
