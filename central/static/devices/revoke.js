// The confirmation before a unit is revoked: it names the unit and what revoking does, and
// the button that confirms names the unit again.

import { el } from "../lib/ui.js";

export function confirmRevoke(unitId) {
  return new Promise((resolve) => {
    const dialog = el("dialog.modal.revoke-dialog", { "aria-label": `Revoke ${unitId}` });
    const finish = (yes) => {
      dialog.close();
      dialog.remove();
      resolve(yes);
    };
    const form = el("form.dialog", { method: "dialog" },
      el("h2", {}, "Revoke ", el("span.unit-name", {}, unitId), "?"),
      el("p.dialog-note", {},
        `Every valid certificate of ${unitId} is revoked now: the gateway is disconnected within `
        + "seconds and cannot connect, stream or upload again. Its unused enrollment codes are "
        + "cancelled. To bring it back, enroll it again with a new code."),
      el("div.dialog-buttons", {},
        el("button.plain", { type: "button", onclick: () => finish(false) }, "Cancel"),
        el("button.danger", { type: "submit" }, `Revoke ${unitId}`)));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      finish(true);
    });
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      finish(false);
    });
    dialog.append(form);
    document.body.append(dialog);
    dialog.showModal();
    form.querySelector("button.plain").focus(); // the safe choice has the focus
  });
}
