// user.js: the user view: the pools he may use ("Get desktop") and his
// desktops with their state, Connect (noVNC in the page), Download .vv,
// power actions and Release. Refreshed on every event of the live stream
// that concerns him, and every 10 s in case the stream is down.

import * as api from "./api.js";
import { h, clear, badge, facts, when, ago } from "./ui.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 10000;
const POWERED = ["running", "assigned", "connected", "disconnected"];

export class UserView {
  constructor(app) {
    this.app = app;
    this.timer = null;
    this.unlisten = null;
    this.pending = new Set();        // desktop names with an action in flight
    this.refreshQueued = false;
  }

  show() {
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    this.unlisten = this.app.onEvent((type) => {
      if (type === "desktop" || type === "pool") this.queueRefresh();
    });
  }

  hide() {
    clearInterval(this.timer);
    this.timer = null;
    if (this.unlisten) this.unlisten();
    this.unlisten = null;
  }

  queueRefresh() {
    if (this.refreshQueued) return;
    this.refreshQueued = true;
    setTimeout(() => { this.refreshQueued = false; this.refresh(); }, 300);
  }

  async refresh() {
    const me = this.app.me;
    if (!me) return;
    const got = await this.app.attempt(async () => {
      const [pools, desktops] = await Promise.all([api.get("/pools"), api.get("/desktops")]);
      return { pools, desktops };
    }, true);
    if (!got) return;
    // An admin sees every desktop through the API: here only his own.
    const mine = got.desktops.filter((d) => d.user === me.user);
    this.renderPools(got.pools, mine);
    this.renderDesktops(mine);
  }

  renderPools(pools, mine) {
    const list = $("pools");
    $("pools-empty").hidden = pools.length > 0;
    // Keep the focus on a pool's button across a re-render.
    const focused = document.activeElement && document.activeElement.dataset.pool;
    clear(list);
    for (const p of pools) {
      const have = mine.find((d) => d.pool === p.name);
      const busy = this.pending.has(`pool:${p.name}`);
      const btn = h("button", {
        type: "button", dataset: { pool: p.name }, disabled: busy || p.maintenance,
        onclick: () => (have ? this.openDesktop(have) : this.getDesktop(p.name)),
      }, have ? "Connect to my desktop" : "Get desktop");
      if (have) btn.classList.add("secondary");
      list.append(h("li", { dataset: { poolCard: p.name } },
        h("div", { class: "card-head" }, h("h3", {}, p.name),
          p.maintenance ? h("span", { class: "badge warn" }, "maintenance") : h("span", { class: "badge" }, p.mode)),
        facts([
          ["Desktop", p.mode === "persistent" ? "yours to keep" : "fresh each time (floating)"],
          ["Image", p.image || "—"],
          p.maintenance ? ["Status", "Closed for maintenance"] : null,
        ]),
        h("div", { class: "actions" }, btn)));
      if (focused === p.name) btn.focus();
    }
  }

  renderDesktops(desktops) {
    const list = $("mine");
    $("mine-empty").hidden = desktops.length > 0;
    const focusedKey = document.activeElement && document.activeElement.dataset.key;
    clear(list);
    for (const d of desktops) {
      const card = this.desktopCard(d);
      list.append(card);
      if (focusedKey) {
        const again = card.querySelector(`[data-key="${CSS.escape(focusedKey)}"]`);
        if (again) again.focus();
      }
    }
  }

  desktopCard(d) {
    const busy = d.busy || this.pending.has(d.name);
    const on = POWERED.includes(d.state);
    const key = (what) => `${d.name}:${what}`;
    const act = (what, label, cls, enabled) => h("button", {
      type: "button", class: `small ${cls || ""}`, disabled: busy || !enabled,
      dataset: { key: key(what) }, onclick: () => this.action(d, what, label),
    }, label);
    const session = d.session || {};
    return h("li", { dataset: { desktop: d.name, pool: d.pool || "" } },
      h("div", { class: "card-head" }, h("h3", {}, d.name), badge(d.state)),
      facts([
        ["Pool", d.pool || "—"],
        session.connected ? ["Connected", `since ${when(session.connected_since)}`]
          : session.disconnected_at ? ["Last used", ago(session.disconnected_at)] : null,
        d.state === "error" && d.state_reason ? ["Problem", d.state_reason] : null,
        busy ? ["", "Working on it…"] : null,
      ]),
      h("div", { class: "actions" },
        h("button", {
          type: "button", class: "small", disabled: !on || d.state === "error",
          dataset: { key: key("connect") }, onclick: () => this.app.console.open(d.name),
        }, "Connect"),
        // A plain link (the cookie authenticates a GET); the file carries a
        // short-lived password, so it is offered only while the desktop runs.
        on ? h("a", {
          class: "button small secondary", href: `/api/v1/desktops/${api.enc(d.name)}/console.vv`,
          download: `${d.name}.vv`, dataset: { key: key("vv") },
          title: "A connection file for remote-viewer (virt-viewer); it works for two minutes",
        }, "Download .vv") : null,
        // Only the actions that make sense in this state.
        d.state === "stopped" ? act("start", "Start", "secondary", true) : null,
        on ? act("reboot", "Reboot", "secondary", true) : null,
        on ? act("shutdown", "Shut down", "secondary", true) : null,
        on || d.state === "starting" ? act("poweroff", "Power off", "danger", true) : null,
        d.pool ? act("release", "Release", "danger", d.state !== "resetting") : null));
  }

  // Already his: open its console when it is up, else show its card.
  openDesktop(d) {
    if (POWERED.includes(d.state)) { this.app.console.open(d.name); return; }
    const first = document.querySelector(`[data-desktop="${CSS.escape(d.name)}"] button:not([disabled])`);
    if (first) first.focus();
    this.app.say(`Desktop '${d.name}' is ${d.state}.`);
  }

  async getDesktop(pool) {
    const key = `pool:${pool}`;
    this.pending.add(key);
    this.app.say(`Getting a desktop from '${pool}'…`);
    this.refresh();
    const d = await this.app.attempt(() => api.post(`/pools/${api.enc(pool)}/desktop`));
    this.pending.delete(key);
    if (d) this.app.say(`Desktop '${d.name}' is yours (${d.state}).`);
    else this.app.say("");
    await this.refresh();
    if (d) {
      const card = document.querySelector(`[data-desktop="${CSS.escape(d.name)}"] button`);
      if (card) card.focus();
    }
  }

  async action(d, what, label) {
    if (what === "release" &&
        !confirm(`Release '${d.name}'? ${d.pool ? "A floating desktop is reset: nothing on it is kept." : ""}`))
      return;
    if (what === "poweroff" && !confirm(`Power off '${d.name}' at once? Unsaved work is lost.`))
      return;
    this.pending.add(d.name);
    this.app.say(`${label}: '${d.name}'…`);
    this.refresh();
    const r = await this.app.attempt(() => api.post(`/desktops/${api.enc(d.name)}/${what}`));
    this.pending.delete(d.name);
    this.app.say(r ? `${label}: '${d.name}' is now ${r.state}.` : "");
    this.refresh();
  }
}
