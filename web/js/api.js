// api.js: the dashboard's only way to the REST API (docs/api.md).
//
// The session is the HttpOnly cookie kvmdesk_session that POST /api/v1/login
// sets; the page never sees the token. Every change (POST/PUT/PATCH/DELETE)
// sends X-CSRF-Token with the csrf_token of the login answer, kept in
// localStorage so that other tabs of the same browser can act too (it is
// worthless without the cookie, which scripts cannot read).
// Errors become ApiError with the API's own sentence ("error" member).

const BASE = "/api/v1";
const CSRF_KEY = "kvmdesk.csrf";

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code || "";
  }
}

export function csrfToken() {
  try { return localStorage.getItem(CSRF_KEY) || ""; } catch { return ""; }
}

function setCsrf(token) {
  try {
    if (token) localStorage.setItem(CSRF_KEY, token);
    else localStorage.removeItem(CSRF_KEY);
  } catch { /* private mode: the page still works until reloaded */ }
}

// Sentences for failures that have no API answer to show.
function statusSentence(status) {
  switch (status) {
    case 401: return "Your session has ended. Please log in again.";
    case 403: return "You are not allowed to do that.";
    case 404: return "That no longer exists.";
    case 429: return "Too many attempts. Please wait a little and try again.";
    case 502: case 503: case 504: return "kvmdesk is not answering right now. Try again in a moment.";
    default: return `The request failed (HTTP ${status}).`;
  }
}

/**
 * request(method, path, body): the decoded JSON answer (null for 204).
 * Throws ApiError with a sentence a person can read.
 */
export async function request(method, path, body) {
  const headers = { "Accept": "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && method !== "HEAD") {
    const t = csrfToken();
    if (t) headers["X-CSRF-Token"] = t;
  }
  let resp;
  try {
    resp = await fetch(BASE + path, init);
  } catch {
    throw new ApiError(0, "kvmdesk cannot be reached. Check your network connection.");
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!resp.ok) {
    const msg = data && typeof data.error === "string" && data.error ? data.error : statusSentence(resp.status);
    throw new ApiError(resp.status, capitalize(msg), data && data.code);
  }
  return data;
}

function capitalize(s) {
  s = String(s);
  const out = s.charAt(0).toUpperCase() + s.slice(1);
  return /[.!?]$/.test(out) ? out : out + ".";
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);

export async function login(username, password) {
  const answer = await request("POST", "/login", { username, password });
  setCsrf(answer.csrf_token);
  return answer;
}

export async function logout() {
  try { await request("POST", "/logout"); } finally { setCsrf(null); }
}

export function forgetSession() { setCsrf(null); }

export const enc = encodeURIComponent;
