// Leaflet helpers: the base map (the agency's tiles, or a neutral grid that never needs the
// internet), GeoJSON overlays, and unit markers coloured by state. Leaflet and its
// clustering plugin are loaded as plain scripts before the modules (they define window.L).

import { api } from "./api.js";
import { kmh, words } from "./ui.js";

const L = window.L;

const MOVING_MPS = 0.8; // slower than this, a heading is mostly GPS noise

// Dark canvas tiles with a coarse and a fine grid: a neutral background that still shows
// movement and scale when no tile server is configured.
const GridLayer = L.GridLayer.extend({
  createTile() {
    const tile = document.createElement("canvas");
    const size = this.getTileSize();
    tile.width = size.x;
    tile.height = size.y;
    const ctx = tile.getContext("2d");
    ctx.fillStyle = "#141b23";
    ctx.fillRect(0, 0, size.x, size.y);
    ctx.strokeStyle = "#1f2a36";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let i = 1; i < 4; i++) {
      const at = Math.round((i * size.x) / 4) + 0.5;
      ctx.moveTo(at, 0);
      ctx.lineTo(at, size.y);
      ctx.moveTo(0, at);
      ctx.lineTo(size.x, at);
    }
    ctx.stroke();
    ctx.strokeStyle = "#2c3a4a";
    ctx.strokeRect(0.5, 0.5, size.x, size.y);
    return tile;
  },
});

export function createMap(element, config) {
  const map = L.map(element, {
    preferCanvas: true,
    zoomControl: true,
    worldCopyJump: true,
    minZoom: 2,
    maxZoom: 19,
    attributionControl: Boolean(config.tile_url),
  });
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { attribution: config.tile_attribution || "", maxZoom: 19 }).addTo(map);
  } else {
    new GridLayer({ maxZoom: 19 }).addTo(map);
  }
  L.control.scale({ metric: true, imperial: false, maxWidth: 160 }).addTo(map);
  const start = config.map;
  if (start) map.setView([start.lat, start.lon], start.zoom);
  else map.setView([20, 0], 2);
  addOverlays(map, config.overlays || []);
  // The banner, the wall and the window all change the map's size; Leaflet must know (and
  // keeps the same centre).
  new ResizeObserver(() => map.invalidateSize()).observe(element);
  return map;
}

const OVERLAY_STYLE = { color: "#7aa2c8", weight: 2, opacity: 0.8, fillOpacity: 0.04, dashArray: "6 4" };

// Where a feature's name is written: an area's just inside its top edge, so that a district's
// name and those of the beats inside it do not land on the same centre; a line's or a point's
// just below it.
function labelAt(featureLayer) {
  if (featureLayer instanceof L.Polygon) {
    const bounds = featureLayer.getBounds();
    return { at: [bounds.getNorth(), bounds.getCenter().lng], offset: [0, 2] };
  }
  const at = featureLayer.getLatLng?.() ?? featureLayer.getCenter();
  return { at, offset: [0, 6] };
}

// A GeoJSON file drawn over the map, with every named feature's name written on it (read at a
// glance, not on hover); one layer for the layers control, names included.
function overlayLayer(data) {
  const labels = [];
  const shapes = L.geoJSON(data, {
    style: OVERLAY_STYLE,
    // A point is a small ring drawn like the lines (Leaflet's default pin is an image).
    pointToLayer: (feature, at) => L.circleMarker(at, { ...OVERLAY_STYLE, radius: 5 }),
    onEachFeature(feature, featureLayer) {
      const name = feature.properties?.name;
      if (name == null || name === "") return;
      const { at, offset } = labelAt(featureLayer);
      labels.push(L.tooltip({
        permanent: true, direction: "bottom", offset, className: "overlay-label", pane: "overlay-labels",
      }).setLatLng(at).setContent(String(name)));
    },
  });
  return L.layerGroup([shapes, ...labels]);
}

async function addOverlays(map, overlays) {
  if (!overlays.length) return;
  map.createPane("overlay-labels"); // under the units' markers (console.css)
  // Top left, under the zoom buttons: the map's own tools hold the top right.
  const control = L.control.layers(null, {}, { collapsed: true, position: "topleft" }).addTo(map);
  for (const overlay of overlays) {
    try {
      const layer = overlayLayer(await api("GET", overlay.url)).addTo(map);
      control.addOverlay(layer, overlay.name);
    } catch (error) {
      console.warn(`overlay ${overlay.name} could not be loaded: ${error.message}`);
    }
  }
}

const isMoving = (unit) => unit.heading_deg != null && (unit.speed_mps ?? 0) >= MOVING_MPS;

// Icons are shared by every marker that looks the same (heading in 15 degree steps), so
// that thousands of markers need only a few hundred icons.
const icons = new Map();

export function iconKey(unit, labelled) {
  const state = unit.state_label || "offline";
  const heading = isMoving(unit) ? Math.round(unit.heading_deg / 15) * 15 % 360 : "x";
  return `${state}|${heading}|${labelled ? unit.unit_id : ""}`;
}

export function unitIcon(unit, labelled) {
  const key = iconKey(unit, labelled);
  let icon = icons.get(key);
  if (icon) return icon;
  const [state, heading] = key.split("|");
  const moving = heading !== "x";
  const size = state === "alert" ? 30 : 20;
  const arrow = moving ? `<b class="um-arrow" style="transform:rotate(${heading}deg)"></b>` : "";
  const label = labelled ? `<span class="um-label">${escapeHtml(unit.unit_id)}</span>` : "";
  icon = L.divIcon({
    className: "um-host",
    html: `<span class="um um-${state}${moving ? " moving" : ""}">${arrow}</span>${label}`,
    iconSize: [size, size],
    iconAnchor: [size / 2, size / 2],
    tooltipAnchor: [0, -size / 2],
  });
  icons.set(key, icon);
  return icon;
}

export function unitTooltip(unit) {
  const officer = unit.officer ? escapeHtml(unit.officer) : "no officer";
  const speed = unit.speed_mps != null ? ` · ${kmh(unit.speed_mps)}` : "";
  return `<b>${escapeHtml(unit.unit_id)}</b> · ${officer}${speed}<br>${words(unit.state_label)}`;
}

// A cluster's icon: how many units, in neutral colours (state colours stay with units).
export function clusterIcon(cluster) {
  const count = cluster.getChildCount();
  const size = count < 10 ? 34 : count < 100 ? 40 : count < 1000 ? 48 : 56;
  return L.divIcon({
    className: "um-cluster",
    html: `<span>${count}</span>`,
    iconSize: [size, size],
  });
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
