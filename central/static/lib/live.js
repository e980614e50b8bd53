// The center's live feed (Server-Sent Events): positions, states, alerts, streams and shares.
// The browser's EventSource re-connects by itself and sends the last event id it saw, so the
// center replays what was missed (or sends a fresh snapshot). Only when the center refuses
// the feed outright does this module open a new one, after asking whether the session holds.

import { api } from "./api.js";

const EVENTS = ["snapshot", "units", "alert", "stream", "share", "share_revoked"];
const RETRY_FIRST_MS = 1000;
const RETRY_CAP_MS = 15000;

// handlers: {snapshot(data), units(data), ..., status(state)} where state is one of
// "connecting" | "live" | "reconnecting". Returns {close(), info} (info is for tests).
export function connectLive(handlers, path = "/api/v1/live") {
  const info = { state: "connecting", lastEventId: null, events: 0, snapshots: 0, opens: 0 };
  let source = null;
  let failures = 0;
  let closed = false;
  let retryTimer = null;

  const setState = (state) => {
    if (info.state === state) return;
    info.state = state;
    handlers.status?.(state);
  };

  const open = () => {
    source = new EventSource(path);
    source.onopen = () => {
      failures = 0;
      info.opens += 1;
      setState("live");
    };
    source.onerror = () => {
      if (closed) return;
      setState("reconnecting");
      if (source.readyState === EventSource.CLOSED) reopenLater();
    };
    // The center ends the feed of a session that ended: sign in again.
    source.addEventListener("signed_out", () => {
      source.close();
      api("GET", "/api/v1/session").catch(() => {});
    });
    // Too many pages at the center: come back a little later.
    source.addEventListener("busy", () => {
      setState("reconnecting");
      reopenLater();
    });
    for (const name of EVENTS) {
      source.addEventListener(name, (event) => {
        info.events += 1;
        if (event.lastEventId) info.lastEventId = event.lastEventId;
        if (name === "snapshot") info.snapshots += 1;
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        handlers[name]?.(data);
      });
    }
  };

  // The center refused the feed (an error status): a 401 from the session check below sends
  // the person to sign in; otherwise try again with growing, jittered pauses.
  const reopenLater = async () => {
    source.close();
    failures += 1;
    try {
      await api("GET", "/api/v1/session");
    } catch (error) {
      if (error.status === 401) return;
    }
    const cap = Math.min(RETRY_CAP_MS, RETRY_FIRST_MS * 2 ** (failures - 1));
    retryTimer = setTimeout(() => closed || open(), cap / 2 + (Math.random() * cap) / 2);
  };

  open();
  return {
    info,
    close() {
      closed = true;
      clearTimeout(retryTimer);
      source?.close();
    },
  };
}
