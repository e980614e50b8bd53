// What the console knows: units, open alerts, streams and shares, kept by the live feed.
// A snapshot replaces everything; later events change one thing at a time. Views listen
// for "units", "alerts", "streams", "shares" and "snapshot".

// The center says `ended`; `live: false` alone may be a stream starting or reconnecting.
const ended = (stream) => stream.ended ?? (stream.live === false && !["starting", "reconnecting"].includes(stream.state));

export class Store extends EventTarget {
  constructor() {
    super();
    this.units = new Map();
    this.alerts = new Map(); // open ones (not acknowledged)
    this.streams = new Map();
    this.shares = new Map(); // active ones
    this.stills = new Map(); // stream_id -> the latest Still taken from this page
    this.me = null;
    this.config = null;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  snapshot(data) {
    this.units = new Map((data.units || []).map((u) => [u.unit_id, u]));
    this.alerts = new Map((data.alerts || []).filter((a) => !a.acked_at).map((a) => [a.id, a]));
    this.streams = new Map((data.streams || []).filter((s) => !ended(s)).map((s) => [s.stream_id, s]));
    this.shares = new Map((data.shares || []).filter((s) => !s.revoked_at).map((s) => [s.share_id, s]));
    this.emit("snapshot", data);
  }

  updateUnits(units) {
    for (const unit of units) this.units.set(unit.unit_id, unit);
    this.emit("units", units);
  }

  // Returns true for an alert this page had not seen open before.
  updateAlert(alert) {
    const known = this.alerts.has(alert.id);
    if (alert.acked_at) this.alerts.delete(alert.id);
    else this.alerts.set(alert.id, alert);
    this.emit("alerts", alert);
    return !known && !alert.acked_at;
  }

  updateStream(stream) {
    if (ended(stream)) this.streams.delete(stream.stream_id);
    else this.streams.set(stream.stream_id, stream);
    this.emit("streams", stream);
  }

  updateShare(share) {
    if (share.revoked_at) this.shares.delete(share.share_id);
    else this.shares.set(share.share_id, share);
    this.emit("shares", share);
  }

  removeShare(shareId) {
    this.shares.delete(shareId);
    this.emit("shares", { share_id: shareId, revoked_at: Date.now() / 1000 });
  }

  // The live stream of a unit, if there is one.
  streamOf(unitId) {
    for (const stream of this.streams.values()) if (stream.unit_id === unitId) return stream;
    const unit = this.units.get(unitId);
    return unit?.stream_id ? { stream_id: unit.stream_id, unit_id: unitId } : null;
  }

  sortedAlerts() {
    return [...this.alerts.values()].sort((a, b) => b.ts - a.ts);
  }
}
