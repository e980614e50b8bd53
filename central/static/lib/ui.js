// Small DOM and formatting helpers shared by the console and the patrol page.

// el("button.primary", {onclick, title: "x"}, "text", child...) -> HTMLElement
export function el(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const node = document.createElement(tag || "div");
  if (classes.length) node.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

export function clockTime(epochS) {
  if (epochS == null) return "–";
  return new Date(epochS * 1000).toLocaleTimeString([], { hour12: false });
}

export function ago(epochS, nowS = Date.now() / 1000) {
  if (epochS == null) return "never";
  const s = Math.max(0, Math.floor(nowS - epochS));
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function timeLeft(untilS, nowS = Date.now() / 1000) {
  const s = Math.floor(untilS - nowS);
  if (s <= 0) return "expired";
  if (s < 60) return `${s} s left`;
  if (s < 3600) return `${Math.floor(s / 60)} min left`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min left`;
}

export const pct = (v) => (v == null ? "–" : `${Math.round(v)}%`);
export const kmh = (mps) => (mps == null ? "–" : `${Math.round(mps * 3.6)} km/h`);

export function bitrate(bps) {
  if (bps == null || !Number.isFinite(bps)) return "–";
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(1)} Mb/s`;
  return `${Math.round(bps / 1000)} kb/s`;
}

// "Weapon drawn" for "weapon_drawn".
export const words = (name) => {
  const text = String(name ?? "").replace(/[_.-]+/g, " ").trim();
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : "";
};

// A small modal asking for text; resolves to the fields' values or null (cancelled).
// fields: [{name, label, value, placeholder, multiline, required}]
export function ask(title, fields, { okLabel = "OK", note = "" } = {}) {
  return new Promise((resolve) => {
    const inputs = fields.map((f) => {
      const input = el(f.multiline ? "textarea" : "input", {
        name: f.name, placeholder: f.placeholder || "", maxLength: f.maxLength || 512,
      });
      input.value = f.value || "";
      return el("label", {}, el("span", {}, f.label), input);
    });
    const error = el("p.dialog-error", { role: "alert" });
    const form = el("form.dialog", { method: "dialog" },
      el("h2", {}, title), note ? el("p.dialog-note", {}, note) : null, ...inputs, error,
      el("div.dialog-buttons", {},
        el("button.plain", { type: "button", onclick: () => finish(null) }, "Cancel"),
        el("button.primary", { type: "submit" }, okLabel)));
    const dialog = el("dialog.modal", {}, form);
    const finish = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const values = Object.fromEntries(fields.map((f) => [f.name, form.elements[f.name].value.trim()]));
      const missing = fields.find((f) => f.required && !values[f.name]);
      const anyOf = fields.filter((f) => f.oneOf);
      if (missing) error.textContent = `${missing.label} is needed.`;
      else if (anyOf.length && !anyOf.some((f) => values[f.name])) {
        error.textContent = `Give ${anyOf.map((f) => f.label.toLowerCase()).join(" or ")}.`;
      } else finish(values);
    });
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      finish(null);
    });
    document.body.append(dialog);
    dialog.showModal();
    form.querySelector("input, textarea")?.focus();
  });
}

// A short message at the bottom of the screen.
export function toast(text, kind = "info") {
  let host = document.getElementById("toasts");
  if (!host) {
    host = el("div", { id: "toasts" });
    document.body.append(host);
  }
  const note = el(`div.toast.${kind}`, { role: kind === "error" ? "alert" : "status" }, text);
  host.append(note);
  setTimeout(() => note.remove(), kind === "error" ? 8000 : 4000);
}
