// Units on the map. Thousands of them move at once, so markers are made once and then moved
// in place (setLatLng), changes are applied at most once per animation frame, and icons are
// shared. A unit in alert is taken out of the clusters so that it is never hidden in one.

import { hasPosition } from "../lib/geo.js";
import { clusterIcon, iconKey, unitIcon, unitTooltip } from "../lib/map.js";

const L = window.L;

export class UnitMarkers {
  constructor(map, { onClick }) {
    this.map = map;
    this.onClick = onClick;
    this.cluster = L.markerClusterGroup({
      chunkedLoading: true,
      chunkInterval: 100,
      showCoverageOnHover: false,
      maxClusterRadius: 45,
      disableClusteringAtZoom: 16,
      spiderfyOnMaxZoom: true,
      iconCreateFunction: clusterIcon,
    }).addTo(map);
    this.alertLayer = L.layerGroup().addTo(map); // never clustered, drawn above the rest
    this.entries = new Map(); // unit_id -> {marker, key, alert, unit}
    this.pending = new Map(); // unit_id -> Unit | null (null: remove)
    this.frame = null;
    this.following = null;
    this.flushes = 0; // animation frames that applied changes (for benchmarks)
    this.applied = 0; // unit changes applied
  }

  get count() {
    return this.entries.size;
  }

  update(units) {
    for (const unit of units) this.pending.set(unit.unit_id, unit);
    this.schedule();
  }

  // A snapshot: units not in it go away.
  replaceAll(units) {
    const keep = new Set(units.map((u) => u.unit_id));
    for (const id of this.entries.keys()) if (!keep.has(id)) this.pending.set(id, null);
    this.update(units);
  }

  schedule() {
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = null;
    const added = [];
    for (const [id, unit] of this.pending) {
      const entry = this.entries.get(id);
      if (unit === null || !hasPosition(unit)) {
        if (entry) this.remove(id, entry);
      } else if (entry) {
        this.move(entry, unit);
      } else {
        const made = this.make(unit);
        if (!made.alert) added.push(made.marker);
      }
      this.applied += 1;
    }
    this.pending.clear();
    if (added.length) this.cluster.addLayers(added);
    this.flushes += 1;
    this.keepFollowing();
  }

  make(unit) {
    const alert = unit.state_label === "alert";
    const marker = L.marker([unit.lat, unit.lon], {
      icon: unitIcon(unit, alert),
      keyboard: false,
      riseOnHover: true,
      zIndexOffset: alert ? 10000 : 0,
    });
    const entry = { marker, key: iconKey(unit, alert), alert, unit };
    marker.bindTooltip(() => unitTooltip(entry.unit), { direction: "top", opacity: 0.95 });
    marker.on("click", () => this.onClick(entry.unit.unit_id));
    this.entries.set(unit.unit_id, entry);
    if (alert) this.alertLayer.addLayer(marker);
    return entry;
  }

  move(entry, unit) {
    entry.unit = unit;
    const alert = unit.state_label === "alert";
    if (alert !== entry.alert) {
      // In or out of the clusters: an alert is always on show.
      (entry.alert ? this.alertLayer : this.cluster).removeLayer(entry.marker);
      entry.alert = alert;
      entry.marker.setZIndexOffset(alert ? 10000 : 0);
      entry.marker.setLatLng([unit.lat, unit.lon]);
      (alert ? this.alertLayer : this.cluster).addLayer(entry.marker);
    } else {
      const at = entry.marker.getLatLng();
      if (at.lat !== unit.lat || at.lng !== unit.lon) entry.marker.setLatLng([unit.lat, unit.lon]);
    }
    const key = iconKey(unit, alert);
    if (key !== entry.key) {
      entry.key = key;
      entry.marker.setIcon(unitIcon(unit, alert));
    }
    if (entry.marker.isTooltipOpen()) entry.marker.setTooltipContent(unitTooltip(unit));
  }

  remove(id, entry) {
    (entry.alert ? this.alertLayer : this.cluster).removeLayer(entry.marker);
    this.entries.delete(id);
    if (this.following === id) this.follow(null);
  }

  centre(unitId, zoom = 16) {
    const unit = this.entries.get(unitId)?.unit;
    if (!unit) return false;
    this.centreOn(unit.lat, unit.lon, zoom);
    return true;
  }

  // Not animated: the wall opening at the same moment resizes the map, and an animation
  // would land where the centre was for the old size.
  centreOn(lat, lon, zoom = 16) {
    this.map.setView([lat, lon], Math.max(this.map.getZoom(), zoom), { animate: false });
  }

  follow(unitId) {
    this.following = unitId;
    this.map.getContainer().dataset.following = unitId ?? "";
    if (unitId) this.centre(unitId);
    this.map.fire("rtcc:follow", { unitId });
  }

  keepFollowing() {
    const unit = this.following && this.entries.get(this.following)?.unit;
    if (unit) this.map.panTo([unit.lat, unit.lon], { animate: false });
  }

  fitAll() {
    const points = [];
    for (const { unit } of this.entries.values()) points.push([unit.lat, unit.lon]);
    if (points.length === 1) this.map.setView(points[0], 15, { animate: false });
    else if (points.length) {
      this.map.fitBounds(L.latLngBounds(points), { padding: [30, 30], maxZoom: 16, animate: false });
    }
    return points.length > 0;
  }
}
