// operator.js: the operator view (role admin): hosts with capacity and use,
// pools, desktops, images with their versions and import state, templates,
// users and groups, and the live event feed. Everything is read from the
// API as it answers (src/api/kd-api-json.c); lists are refreshed when an
// event says something changed, and every 15 s.

import * as api from "./api.js";
import { h, clear, badge, bytes, when, timeOnly, meter, sizeMeters, facts, table } from "./ui.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 15000;

// "1 viewer: browser alice · 6.3 KiB sent" from the desktop's console member.
function viewers(c) {
  if (!c) return "";
  const list = (c.viewers || []).map((v) => `${v.kind}${v.user ? ` ${v.user}` : ""}`);
  const who = list.length ? `${list.length} viewer${list.length > 1 ? "s" : ""}: ${list.join(", ")}` : "no viewer";
  return c.bytes_out ? `${who} · ${bytes(c.bytes_out)} sent` : who;
}
const MAX_EVENTS = 200;

export class OperatorView {
  constructor(app) {
    this.app = app;
    this.timer = null;
    this.unlisten = null;
    this.lastEventId = 0;
    this.seen = new Set();
    this.refreshQueued = false;
    this.openImages = new Set();
  }

  show() {
    this.refresh();
    this.loadEvents();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    this.unlisten = this.app.onEvent((type, ev) => this.onEvent(type, ev));
    this.liveState(!!(this.app.stream && this.app.stream.readyState === EventSource.OPEN));
  }

  hide() {
    clearInterval(this.timer);
    this.timer = null;
    if (this.unlisten) this.unlisten();
    this.unlisten = null;
  }

  scrollTo(section) {
    const el = $(`ops-${section}`);
    if (!el) return;
    el.scrollIntoView({ block: "start" });
    const heading = el.querySelector("h2");
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  }

  queueRefresh() {
    if (this.refreshQueued) return;
    this.refreshQueued = true;
    setTimeout(() => { this.refreshQueued = false; this.refresh(); }, 500);
  }

  async refresh() {
    const got = await this.app.attempt(async () => {
      const [hosts, pools, desktops, images, templates, users, groups] = await Promise.all(
        ["/hosts", "/pools", "/desktops", "/images", "/templates", "/users", "/groups"].map((p) => api.get(p)));
      return { hosts, pools, desktops, images, templates, users, groups };
    }, true);
    if (!got) return;
    this.renderHosts(got.hosts);
    this.renderPools(got.pools);
    this.renderDesktops(got.desktops);
    this.renderImages(got.images);
    this.renderTemplates(got.templates);
    this.renderUsers(got.users, got.groups);
  }

  // -- hosts ---------------------------------------------------------------------------
  renderHosts(hosts) {
    const el = $("hosts");
    clear(el);
    if (!hosts.length) el.append(h("p", { class: "muted" }, "No host yet: add one with 'kvmdesk host add NAME URI'."));
    for (const x of hosts) {
      const pool = x.pool || {};
      const accel = x.accel === "tcg" ? `TCG (software)${x.accel_reason ? `: ${x.accel_reason}` : ""}`
        : x.accel === "kvm" ? "KVM" : x.accel || "unknown";
      el.append(h("article", { class: "host", dataset: { host: x.name } },
        h("div", { class: "card-head" }, h("h3", {}, x.name),
          x.maintenance ? h("span", { class: "badge warn" }, "maintenance") : null, badge(x.state)),
        facts([
          ["URI", x.uri],
          ["Acceleration", accel],
          ["CPUs", `${x.cpus || "?"}${x.arch ? ` (${x.arch})` : ""}`],
          ["Desktops", String(x.desktops ?? 0)],
          x.console_path ? ["Consoles", x.console_path === "fd" ? "through libvirt (no TCP port)"
            : x.console_path === "tcp" ? `over TCP (${x.graphics_listen || "?"})` : x.console_path] : null,
          x.labels && x.labels.length ? ["Labels", x.labels.join(", ")] : null,
          x.gpus && x.gpus.length ? ["GPUs", `${x.gpus.filter((g) => !g.desktop).length} of ${x.gpus.length} free`
            + (x.gpus[0].product ? ` (${x.gpus[0].product})` : "")] : null,
          x.last_error ? ["Problem", x.last_error] : null,
        ]),
        meter("Memory in use", x.memory_bytes - x.free_memory_bytes, x.memory_bytes),
        x.use && x.use.vcpus_limit ? meter(`vCPUs placed (× ${x.cpu_ratio} overcommit)`, x.use.vcpus, x.use.vcpus_limit, String) : null,
        x.use && x.use.memory_limit > 0 ? meter("Memory placed", x.use.memory_bytes, x.use.memory_limit) : null,
        meter(`Storage (${pool.name || "pool"})`, pool.allocation, pool.capacity)));
    }
    sizeMeters(el);
  }

  // -- pools ---------------------------------------------------------------------------
  renderPools(pools) {
    table($("ops-pools-table"), "Pools", [
      { label: "Pool", get: (p) => [p.name, h("span", { class: "sub" }, `${p.mode} · ${p.image || "no image"}`)] },
      { label: "Size", num: true, get: (p) => String(p.size) },
      { label: "Warm", num: true, get: (p) => String(p.warm) },
      { label: "Total", num: true, get: (p) => String(p.desktops.total) },
      { label: "Ready", num: true, get: (p) => String(p.desktops.ready) },
      { label: "Assigned", num: true, get: (p) => String(p.desktops.assigned) },
      { label: "Connected", num: true, get: (p) => String(p.desktops.connected) },
      { label: "Status", get: (p) => p.maintenance ? h("span", { class: "badge warn" }, "maintenance")
        : p.desktops.error ? h("span", { class: "badge bad" }, `${p.desktops.error} in error`)
          : p.desktops.provisioning ? h("span", { class: "badge info" }, `${p.desktops.provisioning} provisioning`)
            : h("span", { class: "badge ok" }, "open") },
      { label: "Entitled", wrap: true, get: (p) => [...(p.users || []), ...(p.groups || []).map((g) => `@${g}`)].join(", ") || "—" },
    ], pools, "No pool yet.");
  }

  // -- desktops ------------------------------------------------------------------------
  renderDesktops(desktops) {
    const on = (d) => ["running", "assigned", "connected", "disconnected"].includes(d.state);
    table($("ops-desktops-table"), "Desktops", [
      { label: "Desktop", get: (d) => d.name },
      { label: "State", wrap: true, get: (d) => [badge(d.state), d.busy ? " …" : "",
        d.session && d.session.connected ? h("span", { class: "sub" }, `since ${when(d.session.connected_since)}`) : null,
        d.state === "error" && d.state_reason ? h("div", { class: "small error" }, d.state_reason) : null] },
      { label: "User", get: (d) => d.user || "—" },
      { label: "Pool", get: (d) => d.pool || "—" },
      { label: "Host and image", get: (d) => [d.host || "—",
        d.image ? h("span", { class: "sub" }, `${d.image} v${d.image_version}`) : null] },
      { label: "Console", wrap: true, get: (d) => [
        h("button", {
          type: "button", class: "small secondary", disabled: !on(d),
          onclick: () => this.app.console.open(d.name), "aria-label": `Open the console of ${d.name}`,
        }, "Open"),
        h("span", { class: "sub" }, viewers(d.console))] },
    ], desktops, "No desktop yet.");
  }

  // -- images --------------------------------------------------------------------------
  renderImages(images) {
    const el = $("images");
    clear(el);
    if (!images.length) el.append(h("p", { class: "muted" }, "No image yet: import one with 'kvmdesk image import'."));
    for (const img of images) {
      const vols = img.volumes || [];
      const states = vols.map((v) => h("span", {}, `${v.host}: `, badge(v.state), v.error ? ` ${v.error}` : "", " "));
      const details = h("details", { class: "image card", dataset: { image: img.name } },
        h("summary", {}, `${img.name} — version ${img.current_version}, ${img.format}, ${bytes(img.virtual_size)}`,
          img.editing ? h("span", { class: "badge info" }, ` being edited (v${img.editing.version})`) : ""),
        facts([
          ["File size", bytes(img.file_size)],
          ["Desktops", String(img.desktops)],
          ["On hosts", states.length ? states : "—"],
          img.editing ? ["Editing", `desktop '${img.editing.desktop}' by ${img.editing.actor} since ${when(img.editing.since)}`] : null,
          ["Created", when(img.created_at)],
        ]),
        h("div", { class: "versions table-wrap" }, h("table", {})));
      details.addEventListener("toggle", () => {
        if (details.open) { this.openImages.add(img.name); this.loadVersions(img.name, details); }
        else this.openImages.delete(img.name);
      });
      if (this.openImages.has(img.name)) { details.open = true; }
      el.append(details);
    }
  }

  async loadVersions(name, details) {
    const versions = await this.app.attempt(() => api.get(`/images/${api.enc(name)}/versions`));
    if (!versions) return;
    table(details.querySelector(".versions table"), `Versions of ${name}`, [
      { label: "Version", get: (v) => `v${v.version}${v.current ? " (current)" : ""}` },
      { label: "Size", num: true, get: (v) => bytes(v.file_size) },
      { label: "Note", wrap: true, get: (v) => v.note || "—" },
      { label: "By", get: (v) => v.actor || "—" },
      { label: "Created", get: (v) => when(v.created_at) },
    ], versions, "No versions.");
  }

  // -- templates, users, groups ---------------------------------------------------------
  renderTemplates(templates) {
    table($("ops-templates-table"), "Templates", [
      { label: "Template", get: (t) => t.name },
      { label: "vCPUs", num: true, get: (t) => String(t.vcpus) },
      { label: "Memory", num: true, get: (t) => `${t.memory_mib} MiB` },
      { label: "Disk", num: true, get: (t) => `${t.disk_gib} GiB` },
      { label: "Display", get: (t) => t.display },
      { label: "Network", get: (t) => t.network },
      { label: "Firmware", get: (t) => t.firmware },
    ], templates, "No template yet.");
  }

  renderUsers(users, groups) {
    table($("ops-users-table"), "Users", [
      { label: "User", get: (u) => u.name },
      { label: "Role", get: (u) => u.role },
      { label: "Groups", get: (u) => (u.groups || []).join(", ") || "—" },
    ], users, "No users.");
    table($("ops-groups-table"), "Groups", [
      { label: "Group", get: (g) => g.name },
      { label: "Members", get: (g) => (g.members || []).join(", ") || "—" },
    ], groups, "No groups.");
  }

  // -- events --------------------------------------------------------------------------
  async loadEvents() {
    const events = await this.app.attempt(() => api.get("/events?limit=50"), true);
    if (!events) return;
    const list = $("events");
    clear(list);
    this.seen.clear();
    for (const ev of events) list.append(this.eventItem(ev, false));     // newest first
  }

  eventItem(ev, fresh) {
    this.seen.add(ev.id);
    this.lastEventId = Math.max(this.lastEventId, ev.id);
    const change = ev.from_state && ev.to_state ? ` (${ev.from_state} → ${ev.to_state})` : "";
    return h("li", { class: fresh ? "fresh" : null, dataset: { eventId: ev.id } },
      h("div", { class: "when" }, h("time", { datetime: ev.time }, timeOnly(ev.time)),
        ev.actor ? ` · ${ev.actor}` : ""),
      h("div", { class: "what" }, `${ev.object_type} ${ev.object_name}: ${ev.action}${change}`),
      ev.message ? h("div", {}, ev.message) : null);
  }

  onEvent(type, ev) {
    if (type === "open" || type === "closed") { this.liveState(type === "open"); return; }
    if (type === "gap") { this.loadEvents(); return; }
    if (!ev || this.seen.has(ev.id)) return;
    const list = $("events");
    list.prepend(this.eventItem(ev, true));
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
    this.queueRefresh();
  }

  liveState(on) {
    const el = $("events-live");
    el.textContent = on ? "live" : "reconnecting…";
    el.classList.toggle("on", on);
  }
}
