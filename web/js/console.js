// console.js: a desktop's screen in the page, through noVNC's RFB class.
//
// Each connection asks for a fresh one-time ticket (POST
// /api/v1/desktops/{name}/console -> {ticket, url}) and opens the WebSocket
// the answer names (ws:// or wss:// from the page's own origin when the url
// is relative). The gateway has done the VNC security already: noVNC is
// offered "None". Toolbar: Ctrl+Alt+Del, clipboard both ways, scaling, full
// screen, reconnect (a new ticket), close. noVNC is loaded only when a
// console opens, so the rest of the dashboard works without it.

import * as api from "./api.js";

const $ = (id) => document.getElementById(id);
const NOVNC = "../vendor/novnc/core/rfb.js";

export class Console {
  constructor(app) {
    this.app = app;
    this.rfb = null;
    this.name = null;
    this.returnFocus = null;
    this.closing = false;
    $("console-close").addEventListener("click", () => this.close());
    $("console-reconnect").addEventListener("click", () => this.connect());
    $("console-cad").addEventListener("click", () => { if (this.rfb) { this.rfb.sendCtrlAltDel(); this.rfb.focus(); } });
    $("console-fullscreen").addEventListener("click", () => this.fullscreen());
    $("console-scale").addEventListener("change", () => this.applyScale());
    $("console-clipboard").addEventListener("click", () => this.toggleClipboard());
    $("console-clip-send").addEventListener("click", () => {
      if (this.rfb) { this.rfb.clipboardPasteFrom($("console-clip-text").value); this.state("Clipboard sent to the desktop."); }
    });
    document.addEventListener("keydown", (e) => {
      // Escape leaves the console when the focus is on its toolbar (in the
      // screen itself every key belongs to the desktop).
      if (e.key === "Escape" && !$("console").hidden && $("console").querySelector(".console-bar").contains(document.activeElement))
        this.close();
    });
  }

  state(text) { $("console-state").textContent = text; }

  // A sentence over the (empty or dead) screen, for what went wrong.
  problem(text) {
    this.state(text);
    const screen = $("console-screen");
    let msg = screen.querySelector(".console-message");
    if (!msg) {
      msg = document.createElement("div");
      msg.className = "console-message";
      msg.setAttribute("aria-hidden", "true");      // the status line above reads it out
      msg.append(document.createElement("p"));
      screen.append(msg);
    }
    msg.firstChild.textContent = text;
  }

  async open(name) {
    this.returnFocus = document.activeElement;
    this.name = name;
    $("console-title").textContent = `Console: ${name}`;
    $("console").hidden = false;
    document.body.style.overflow = "hidden";
    // The page behind the console takes no focus and no clicks while it is open.
    for (const id of ["topbar", "main", "alert", "status"]) $(id).inert = true;
    $("console-close").focus();
    await this.connect();
  }

  async connect() {
    this.disconnect();
    const name = this.name;
    if (!name) return;
    this.state("Asking for a console ticket…");
    let RFB;
    try {
      ({ default: RFB } = await import(NOVNC));
    } catch {
      this.problem("The browser console (noVNC) is not installed on this server. Use “Download .vv” instead.");
      return;
    }
    let t;
    try {
      t = await api.post(`/desktops/${api.enc(name)}/console`);
    } catch (e) {
      $("console-screen").replaceChildren();
      this.problem(e.message);
      if (e.status === 401) this.app.sessionEnded();
      return;
    }
    if (name !== this.name) return;          // closed or switched meanwhile
    const url = new URL(t.url, location.href);
    if (url.protocol === "http:") url.protocol = "ws:";
    else if (url.protocol === "https:") url.protocol = "wss:";
    this.state("Connecting…");
    const screen = $("console-screen");
    screen.replaceChildren();
    let rfb;
    try {
      rfb = new RFB(screen, url.href, { shared: true, wsProtocols: ["binary"] });
    } catch (e) {
      this.problem(`The console could not start: ${e.message}.`);
      return;
    }
    this.rfb = rfb;
    rfb.focusOnClick = true;
    rfb.background = "#0d1117";
    this.applyScale();
    rfb.addEventListener("connect", () => {
      this.state("Connected. Click the screen to type.");
      rfb.focus();
    });
    rfb.addEventListener("disconnect", (e) => {
      if (this.rfb !== rfb) return;
      this.rfb = null;
      if (this.closing) return;
      this.problem(e.detail && e.detail.clean
        ? "Disconnected. Press Reconnect to open the console again."
        : "The connection was lost (another console may have taken over). Press Reconnect to try again.");
      $("console-reconnect").focus();
    });
    rfb.addEventListener("securityfailure", (e) => {
      this.problem(`The desktop refused the console: ${(e.detail && e.detail.reason) || "security failure"}.`);
    });
    rfb.addEventListener("clipboard", (e) => {
      $("console-clip-text").value = e.detail.text;
      this.state("The desktop copied text: it is in the Clipboard panel.");
    });
  }

  applyScale() {
    if (!this.rfb) return;
    const fit = $("console-scale").checked;
    this.rfb.scaleViewport = fit;
    this.rfb.clipViewport = !fit;
    this.rfb.resizeSession = false;
  }

  toggleClipboard() {
    const panel = $("console-clip");
    panel.hidden = !panel.hidden;
    $("console-clipboard").setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) $("console-clip-text").focus();
  }

  async fullscreen() {
    const el = $("console");
    try {
      if (document.fullscreenElement) await document.exitFullscreen();
      else await el.requestFullscreen();
    } catch {
      this.state("This browser does not allow full screen here.");
    }
    if (this.rfb) this.rfb.focus();
  }

  disconnect() {
    if (this.rfb) {
      const r = this.rfb;
      this.rfb = null;
      try { r.disconnect(); } catch { /* already gone */ }
    }
  }

  close() {
    if ($("console").hidden) return;
    this.closing = true;
    this.disconnect();
    this.closing = false;
    this.name = null;
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    $("console-screen").replaceChildren();
    $("console").hidden = true;
    document.body.style.overflow = "";
    for (const id of ["topbar", "main", "alert", "status"]) $(id).inert = false;
    // Back to the button that opened it (lists are re-rendered meanwhile:
    // find its successor by its key).
    let back = this.returnFocus;
    if (back && !document.contains(back) && back.dataset && back.dataset.key)
      back = document.querySelector(`[data-key="${CSS.escape(back.dataset.key)}"]`);
    if (back && document.contains(back)) back.focus();
  }
}
