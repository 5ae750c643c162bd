// app.js: the dashboard's entry point: login, the frame, routing by the
// URL's hash (#/desktops, #/operator[/section]), the live event stream, and
// the one place errors are shown.
//
// No framework and no build step: ES modules the browser loads as they are.

import * as api from "./api.js";
import { UserView } from "./user.js";
import { OperatorView } from "./operator.js";
import { Console } from "./console.js";

const $ = (id) => document.getElementById(id);

const EVENT_TYPES = ["desktop", "pool", "host", "image", "template", "user", "group",
  "reconciler", "session", "console", "message"];

class App {
  constructor() {
    this.me = null;
    this.stream = null;
    this.streamListeners = new Set();
    this.console = new Console(this);
    this.user = new UserView(this);
    this.operator = new OperatorView(this);
    this.current = null;

    $("login-form").addEventListener("submit", (e) => { e.preventDefault(); this.doLogin(); });
    $("logout").addEventListener("click", () => this.doLogout());
    $("alert-close").addEventListener("click", () => this.clearError());
    window.addEventListener("hashchange", () => this.route());
  }

  async start() {
    // No CSRF token kept: never logged in from this browser (or logged out),
    // so the login form at once, without a refused request.
    if (!api.csrfToken()) {
      this.route();
      return;
    }
    try {
      this.me = await api.get("/me");
    } catch (e) {
      this.me = null;
      if (e.status !== 401) this.showError(e.message);
    }
    this.route();
  }

  // -- errors and status ------------------------------------------------------------
  showError(message) {
    $("alert-text").textContent = message;
    $("alert").hidden = false;
  }

  clearError() {
    $("alert").hidden = true;
    $("alert-text").textContent = "";
  }

  say(message) {
    $("status").textContent = message;
  }

  /**
   * Runs @fn and shows its failure as a sentence; returns its result or
   * undefined. An action a person started clears the last error first; a
   * background refresh (background = true) leaves it for him to read.
   */
  async attempt(fn, background = false) {
    try {
      if (!background) this.clearError();
      return await fn();
    } catch (e) {
      if (e instanceof api.ApiError && e.status === 401) {
        this.sessionEnded();
        return undefined;
      }
      this.showError(e.message || String(e));
      return undefined;
    }
  }

  sessionEnded() {
    this.me = null;
    api.forgetSession();
    this.closeStream();
    this.console.close();
    this.route();
    this.showError("Your session has ended. Please log in again.");
  }

  // -- login ---------------------------------------------------------------------------
  async doLogin() {
    const user = $("login-user").value.trim();
    const password = $("login-password").value;
    const err = $("login-error");
    err.hidden = true;
    if (!user || !password) {
      err.textContent = !user ? "Enter your user name." : "Enter your password.";
      err.hidden = false;
      (!user ? $("login-user") : $("login-password")).focus();
      return;
    }
    $("login-submit").disabled = true;
    try {
      await api.login(user, password);
      this.me = await api.get("/me");
      $("login-password").value = "";
      this.clearError();
      if (!location.hash || location.hash === "#/login") location.hash = "#/desktops";
      this.route();
      $("main").focus();
    } catch (e) {
      err.textContent = e.status === 401 ? "The user name or password is wrong." : e.message;
      err.hidden = false;
      $("login-password").select();
      $("login-password").focus();
    } finally {
      $("login-submit").disabled = false;
    }
  }

  async doLogout() {
    this.console.close();
    this.closeStream();
    try { await api.logout(); } catch { /* the session may be gone already */ }
    this.me = null;
    location.hash = "";
    this.route();
  }

  // -- routing -------------------------------------------------------------------------
  route() {
    const hash = location.hash || "#/desktops";
    const isAdmin = this.me && this.me.role === "admin";
    for (const v of ["view-login", "view-desktops", "view-operator"]) $(v).hidden = true;
    $("topbar").hidden = !this.me;
    if (!this.me) {
      this.stopViews();
      $("view-login").hidden = false;
      document.title = "Log in - kvmdesk";
      setTimeout(() => $("login-user").focus(), 0);
      return;
    }
    $("who-name").replaceChildren(this.me.user, " ",
      Object.assign(document.createElement("span"), { className: "role", textContent: this.me.role }));
    $("nav-operator").hidden = !isAdmin;
    this.openStream();
    let view = "desktops";
    let section = null;
    if (hash.startsWith("#/operator") && isAdmin) {
      view = "operator";
      section = hash.split("/")[2] || null;
    }
    for (const a of document.querySelectorAll(".mainnav a"))
      a.toggleAttribute("aria-current", a.id === `nav-${view}`) && a.setAttribute("aria-current", "page");
    if (view === "operator") {
      $("view-operator").hidden = false;
      document.title = "Operator - kvmdesk";
      if (this.current !== this.operator) { this.stopViews(); this.current = this.operator; this.operator.show(); }
      if (section) this.operator.scrollTo(section);
    } else {
      $("view-desktops").hidden = false;
      document.title = "My desktops - kvmdesk";
      if (this.current !== this.user) { this.stopViews(); this.current = this.user; this.user.show(); }
    }
  }

  stopViews() {
    this.user.hide();
    this.operator.hide();
    this.current = null;
  }

  // -- live events (GET /api/v1/events/stream, Server-Sent Events) ------------------------
  onEvent(fn) { this.streamListeners.add(fn); return () => this.streamListeners.delete(fn); }

  openStream(since) {
    if (this.stream) return;
    const url = "/api/v1/events/stream" + (since ? `?since=${encodeURIComponent(since)}` : "");
    const es = new EventSource(url, { withCredentials: true });
    this.stream = es;
    const deliver = (type) => (msg) => {
      let ev;
      try { ev = JSON.parse(msg.data); } catch { return; }
      for (const fn of this.streamListeners) fn(type, ev);
    };
    for (const t of EVENT_TYPES) es.addEventListener(t, deliver(t));
    es.addEventListener("gap", deliver("gap"));
    es.addEventListener("open", () => this.streamState(true));
    es.addEventListener("error", async () => {
      this.streamState(false);
      if (es.readyState === EventSource.CLOSED) {
        // Refused (401 after the session ended, or the daemon went away).
        this.stream = null;
        try { await api.get("/me"); } catch (e) {
          if (e.status === 401) { this.sessionEnded(); return; }
        }
        setTimeout(() => { if (this.me && !this.stream) this.openStream(); }, 3000);
      }
    });
  }

  streamState(on) {
    for (const fn of this.streamListeners) fn(on ? "open" : "closed", null);
  }

  closeStream() {
    if (this.stream) { this.stream.close(); this.stream = null; }
  }
}

const app = new App();
window.kvmdesk = app;          // for the browser tests and curious operators
app.start();
