// Units on the map. Thousands of them move at once, so markers are made once and then moved
// in place, icons are shared, and changes are applied in animation frames within a time
// budget. A marker on show moves on screen at once (only its drawn position); moving it in
// the clustering plugin (setLatLng) costs a removal and an insertion at every zoom level, so
// that is done for each marker at most every few seconds, or at once when it moved far enough
// to change its cluster. Until then the marker's own position stays where the plugin filed
// it, as the plugin expects. A unit in alert is never clustered, never hidden.

import { hasPosition } from "../lib/geo.js";
import { clusterIcon, iconKey, unitIcon, unitTooltip } from "../lib/map.js";

const L = window.L;
// Every change to the markers makes the browser paint all of them again, so changes come
// together in as few frames as possible (a frame per batch from the center, about two a
// second), each with a bounded amount of work.
const SHOW_BUDGET_MS = 20;
const REFILE_BUDGET_MS = 10;
const FOLLOW_UP_MS = 250; // leftover work waits this long: the frames between stay idle
const RECLUSTER_EVERY_MS = 3000;
const CLUSTER_RADIUS_PX = 45;
// A small fleet has every unit's id written beside its marker; a large one only its units in
// alert (thousands of names would hide the map, and drawing them slows it down).
const LABEL_ALL_UP_TO = 40;

export class UnitMarkers {
  constructor(map, { onClick }) {
    this.map = map;
    this.onClick = onClick;
    this.entries = new Map(); // unit_id -> {marker, key, alert, unit, filing, waiting, filedTime}
    this.pending = new Map(); // unit_id -> Unit | null (null: remove)
    this.unfiled = new Map(); // unit_id -> entry whose marker is filed at an older place
    this.frame = null;
    this.followUp = null;
    this.dropped = new Set(); // markers removed while the plugin was still filing them
    this.cluster = L.markerClusterGroup({
      chunkedLoading: true,
      chunkInterval: 50,
      showCoverageOnHover: false,
      maxClusterRadius: CLUSTER_RADIUS_PX,
      disableClusteringAtZoom: 16,
      spiderfyOnMaxZoom: true,
      animate: false,
      iconCreateFunction: clusterIcon,
      // Markers are filed a chunk at a time; one moved before it is filed waits for that.
      chunkProgress: (done, total) => done === total && this.filed(),
    }).addTo(map);
    this.alertLayer = L.layerGroup().addTo(map); // never clustered, drawn above the rest
    map.on("zoomend moveend", () => this.redraw());
    this.following = null;
    this.labelAll = true;
    this.flushes = 0; // animation frames that applied changes (for benchmarks)
    this.applied = 0; // unit changes shown
    this.refiled = 0; // markers moved within the clusters
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
    clearTimeout(this.followUp);
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = null;
    const started = performance.now();
    this.relabel();
    const added = [];
    for (const [id, unit] of this.pending) {
      if (performance.now() - started > SHOW_BUDGET_MS) break;
      this.pending.delete(id);
      const entry = this.entries.get(id);
      if (unit === null || !hasPosition(unit)) {
        if (entry) this.remove(id, entry);
      } else if (entry) {
        entry.unit = unit;
        this.show(entry);
      } else {
        const made = this.make(unit);
        if (!made.alert) added.push(made.marker);
      }
      this.applied += 1;
    }
    if (added.length) this.cluster.addLayers(added);
    this.refile(performance.now());
    this.flushes += 1;
    this.keepFollowing();
    if (this.pending.size || this.unfiled.size) {
      this.followUp = setTimeout(() => this.schedule(), FOLLOW_UP_MS);
    }
  }

  // Whether every unit is named on the map, for the fleet as it will be once the changes
  // waiting are shown; when that changes, the markers already made are drawn again.
  relabel() {
    let fleet = this.entries.size;
    for (const [id, unit] of this.pending) {
      if (unit !== null && !this.entries.has(id)) fleet += 1;
      else if (unit === null && this.entries.has(id)) fleet -= 1;
    }
    const labelAll = fleet <= LABEL_ALL_UP_TO;
    if (labelAll === this.labelAll) return;
    this.labelAll = labelAll;
    for (const entry of this.entries.values()) this.show(entry);
  }

  labelled(unit) {
    return this.labelAll || unit.state_label === "alert";
  }

  make(unit) {
    const alert = unit.state_label === "alert";
    const labelled = this.labelled(unit);
    const marker = L.marker([unit.lat, unit.lon], {
      icon: unitIcon(unit, labelled),
      keyboard: false,
      riseOnHover: true,
      zIndexOffset: alert ? 10000 : 0,
    });
    const entry = {
      marker, key: iconKey(unit, labelled), alert, unit, filing: !alert, waiting: false,
      filedTime: performance.now(),
    };
    marker.bindTooltip(() => unitTooltip(entry.unit), { direction: "top", opacity: 0.95 });
    marker.on("click", () => this.onClick(entry.unit.unit_id));
    this.entries.set(unit.unit_id, entry);
    if (alert) this.alertLayer.addLayer(marker);
    return entry;
  }

  // Markers the clusters have taken in; those that changed meanwhile are shown now.
  filed() {
    for (const marker of this.dropped) {
      if (this.cluster.hasLayer(marker)) this.cluster.removeLayer(marker);
    }
    this.dropped.clear();
    for (const [id, entry] of this.entries) {
      if (!entry.filing || !this.cluster.hasLayer(entry.marker)) continue;
      entry.filing = false;
      if (entry.waiting) {
        entry.waiting = false;
        this.pending.set(id, entry.unit);
      }
    }
    this.schedule();
  }

  // The unit's latest on its marker: state, icon, and position on screen.
  show(entry) {
    const { unit, marker } = entry;
    if (entry.filing) {
      entry.waiting = true;
      return;
    }
    const alert = unit.state_label === "alert";
    if (alert !== entry.alert) {
      // In or out of the clusters: an alert is always on show.
      (entry.alert ? this.alertLayer : this.cluster).removeLayer(marker);
      this.unfiled.delete(unit.unit_id);
      entry.alert = alert;
      marker.setZIndexOffset(alert ? 10000 : 0);
      marker.setLatLng([unit.lat, unit.lon]);
      (alert ? this.alertLayer : this.cluster).addLayer(marker);
      entry.filedTime = performance.now();
    } else if (alert) {
      marker.setLatLng([unit.lat, unit.lon]);
    } else {
      const at = marker.getLatLng();
      if (at.lat !== unit.lat || at.lng !== unit.lon) {
        this.unfiled.set(unit.unit_id, entry);
        this.draw(entry);
      }
    }
    const labelled = this.labelled(unit);
    const key = iconKey(unit, labelled);
    if (key !== entry.key) {
      entry.key = key;
      marker.setIcon(unitIcon(unit, labelled));
      this.draw(entry);
    }
    if (marker.isTooltipOpen()) marker.setTooltipContent(unitTooltip(unit));
  }

  // Where a marker on show is drawn: its unit's latest position, ahead of the filing.
  // `_setPos` is how Leaflet itself places a marker's element (1.9.4, pinned).
  draw(entry) {
    if (entry.marker.getElement() && this.unfiled.has(entry.unit.unit_id)) {
      entry.marker._setPos(this.map.latLngToLayerPoint([entry.unit.lat, entry.unit.lon]));
    }
  }

  // After a zoom or pan Leaflet draws markers where they are filed: draw them where they are.
  redraw() {
    for (const entry of this.unfiled.values()) this.draw(entry);
  }

  // Moves markers in the clusters, within the frame's budget: those whose unit moved far
  // (its cluster may change) or that were not filed for a while.
  refile(started) {
    const now = performance.now();
    const zoom = this.map.getZoom();
    for (const [id, entry] of this.unfiled) {
      if (performance.now() - started > REFILE_BUDGET_MS) return;
      const filed = this.map.project(entry.marker.getLatLng(), zoom);
      const far = filed.distanceTo(this.map.project([entry.unit.lat, entry.unit.lon], zoom));
      if (far < CLUSTER_RADIUS_PX / 3 && now - entry.filedTime < RECLUSTER_EVERY_MS) continue;
      this.unfiled.delete(id);
      entry.marker.setLatLng([entry.unit.lat, entry.unit.lon]); // the plugin re-files it
      entry.filedTime = now;
      this.refiled += 1;
    }
  }

  remove(id, entry) {
    this.unfiled.delete(id);
    if (entry.filing) this.dropped.add(entry.marker);
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
