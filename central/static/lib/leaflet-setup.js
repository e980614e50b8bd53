// Read by Leaflet as it loads (a plain script before leaflet.js). Leaflet places every marker
// with a 3D transform, which makes each of thousands of markers a compositing layer of its
// own; plain 2D placement draws them together, much faster with thousands of units.
window.L_DISABLE_3D = true;
