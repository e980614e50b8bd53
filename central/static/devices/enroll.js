// "New enrollment code": a unit id and how long the code holds -> the code, large, with the
// exact command to run on the gateway. The code is a credential: it stays on screen until
// the tech hides it or it expires, and is never kept by the page.

import { ApiError, post } from "../lib/api.js";
import { $ } from "../lib/ui.js";
import { dateTime, untilText } from "./table.js";

// protocol/topics.py's unit id, so that a typo is named before the center is asked.
const UNIT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

// The command a tech types on the gateway, for the center this page came from.
export function enrollCommand(code, origin = location.origin) {
  return `rtcc provision enroll --center ${origin} --code ${code} --ca-file center-ca.pem`;
}

function refusal(error, role) {
  if (!(error instanceof ApiError)) return `The code was not made: ${error.message}.`;
  if (error.status === 403) return `Your role (${role}) may not make enrollment codes.`;
  if (error.status === 422) return `The center refused the unit id: ${error.message}.`;
  if (error.status === 0) return "The center cannot be reached: try again.";
  return `The code was not made: ${error.message}.`;
}

// Copies `text`; the clipboard API needs a secure page and permission, so fall back to a
// selection the browser copies itself.
async function copy(text, button) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    const done = document.execCommand("copy");
    area.remove();
    if (!done) {
      button.textContent = "Select and copy it by hand";
      return;
    }
  }
  button.textContent = "Copied ✓";
  setTimeout(() => (button.textContent = label), 2000);
}

export class EnrollPanel {
  constructor(me) {
    this.me = me;
    this.shown = null; // {unit_id, code, expires_at}
    $("#code-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.make();
    });
    $("#unit-id").addEventListener("input", () => this.error(""));
    $("#copy-code").addEventListener("click", () => copy(this.shown?.code || "", $("#copy-code")));
    $("#copy-command").addEventListener("click", () => copy($("#enroll-command").textContent, $("#copy-command")));
    $("#code-done").addEventListener("click", () => this.hide());
  }

  error(text) {
    $("#code-error").textContent = text;
    $("#unit-id").setAttribute("aria-invalid", String(Boolean(text)));
  }

  async make() {
    const unitId = $("#unit-id").value.trim();
    if (!unitId) return this.error("Enter the unit id the gateway will be, e.g. P-117.");
    if (!UNIT_ID.test(unitId)) {
      return this.error(`"${unitId}" is not a unit id: letters, digits, - and _ only (up to 64), starting with a letter or digit.`);
    }
    this.error("");
    const button = $("#make-code");
    button.disabled = true;
    try {
      const answer = await post("/api/v1/provision/codes", { unit_id: unitId, expires_s: Number($("#expires").value) });
      this.show({ ...answer, expires_at: Date.now() / 1000 + answer.expires_s });
      $("#unit-id").value = "";
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) this.error(refusal(error, this.me.role));
    } finally {
      button.disabled = false;
    }
  }

  show(made) {
    this.shown = made;
    $("#code-unit").textContent = made.unit_id;
    $("#code-value").replaceChildren(...made.code.split("-").map((group) => {
      const span = document.createElement("span");
      span.textContent = group;
      return span;
    }));
    $("#code-value").dataset.code = made.code;
    $("#code-until").textContent = dateTime(made.expires_at);
    $("#enroll-command").textContent = enrollCommand(made.code);
    $("#code-result").hidden = false;
    $("#code-result").classList.remove("expired");
    this.tick(Date.now() / 1000);
  }

  hide() {
    this.shown = null;
    $("#code-result").hidden = true;
    $("#code-value").replaceChildren();
    $("#enroll-command").textContent = "";
    $("#unit-id").focus();
  }

  // Once a second: the time left; an expired code says so and can no longer be copied.
  tick(nowS) {
    if (!this.shown) return;
    const expired = this.shown.expires_at <= nowS;
    $("#code-left").textContent = expired ? "(expired: make a new one)" : `(${untilText(this.shown.expires_at, nowS)})`;
    $("#code-result").classList.toggle("expired", expired);
    $("#copy-code").disabled = expired;
    $("#copy-command").disabled = expired;
  }
}
