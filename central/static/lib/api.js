// Calls to the center's API from the console and the patrol page: the session's CSRF token
// on every change, JSON both ways, and a 401 (signed out, expired or locked) sends the
// person to the sign-in page, which brings them back here once signed in again.

let csrfToken = "";

export class ApiError extends Error {
  constructor(status, detail, data) {
    super(detail || `the center answered ${status}`);
    this.status = status;
    this.data = data;
  }
}

function csrfCookie() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("rtcc_csrf="));
  return found ? decodeURIComponent(found.slice("rtcc_csrf=".length)) : "";
}

function signInAgain() {
  // The sign-in page sends the person back here once signed in.
  if (location.pathname !== "/") location.assign(`/?next=${encodeURIComponent(location.pathname)}`);
}

function detailOf(data, status) {
  const detail = data?.detail;
  if (typeof detail === "string") return detail;
  // FastAPI's validation errors: [{loc, msg}, ...]
  if (Array.isArray(detail)) return detail.map((d) => d.msg || String(d)).join("; ");
  return `the center answered ${status}`;
}

// The answer's JSON (null for 204). Throws ApiError; status 0 = the center is unreachable.
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken || csrfCookie();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let answer;
  try {
    answer = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "the center cannot be reached", null);
  }
  if (answer.status === 401) {
    signInAgain();
    throw new ApiError(401, "signed out", null);
  }
  let data = null;
  if (answer.status !== 204) {
    try {
      data = await answer.json();
    } catch {
      data = null;
    }
  }
  if (!answer.ok) throw new ApiError(answer.status, detailOf(data, answer.status), data);
  return data;
}

// Who is signed in; keeps the CSRF token for later changes.
export async function session() {
  const data = await api("GET", "/api/v1/session");
  csrfToken = data.csrf_token || csrfCookie();
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body = {}) => api("POST", path, body);
export const del = (path) => api("DELETE", path);
