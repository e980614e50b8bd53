// The scene and radius of a share on the map: a circle with a handle in the middle to move
// it and one on its edge to change its size.

import { destination, distanceM } from "../lib/geo.js";

const L = window.L;

const handleIcon = (kind) => L.divIcon({ className: `share-handle ${kind}`, iconSize: [22, 22], iconAnchor: [11, 11] });

export class ShareCircle {
  constructor(map, onChange) {
    this.map = map;
    this.onChange = onChange;
    this.scene = null;
    this.radius = null;
    this.layer = L.layerGroup();
    this.circle = L.circle([0, 0], { radius: 1, color: "#c77dff", weight: 3, fillOpacity: 0.08, dashArray: "8 6", interactive: false });
    this.centre = L.marker([0, 0], { draggable: true, icon: handleIcon("centre"), title: "Drag to move the scene", zIndexOffset: 20000 });
    this.edge = L.marker([0, 0], { draggable: true, icon: handleIcon("edge"), title: "Drag to change the radius", zIndexOffset: 20000 });
    this.centre.on("drag", () => {
      const at = this.centre.getLatLng();
      this.place({ lat: at.lat, lon: at.lng }, this.radius, false);
    });
    this.edge.on("drag", () => {
      const at = this.edge.getLatLng();
      this.place(this.scene, Math.max(50, distanceM(this.scene, { lat: at.lat, lon: at.lng })), true);
    });
    this.edge.on("dragend", () => this.place(this.scene, this.radius, false));
  }

  show(scene, radius, editable) {
    this.layer.clearLayers();
    this.layer.addLayer(this.circle);
    if (editable) this.layer.addLayer(this.centre).addLayer(this.edge);
    this.layer.addTo(this.map);
    this.place(scene, radius, false);
  }

  // The map shows the whole circle.
  frame() {
    this.map.fitBounds(this.circle.getBounds(), { padding: [40, 40], maxZoom: 16, animate: false });
  }

  hide() {
    this.layer.remove();
  }

  // dragging: the edge handle is where the pointer is; leave it there.
  place(scene, radius, dragging) {
    this.scene = scene;
    this.radius = radius;
    this.circle.setLatLng([scene.lat, scene.lon]).setRadius(radius);
    if (!this.centre.dragging?.moved()) this.centre.setLatLng([scene.lat, scene.lon]);
    if (!dragging) {
      const at = destination(scene, 180, radius); // below: unit labels sit to the right
      this.edge.setLatLng([at.lat, at.lon]);
    }
    this.onChange();
  }

  setRadius(radius) {
    if (this.scene) this.place(this.scene, radius, false);
  }

  moveTo(scene) {
    this.place(scene, this.radius, false);
    this.map.panTo([scene.lat, scene.lon], { animate: false });
  }
}
