// ui.js: small DOM helpers and formatting. Text always goes in as text
// (textContent), never as HTML: names come from the API and users.

/** h("button", {class: "x", onclick: f}, "text", child…) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) { el.replaceChildren(); return el; }

export function bytes(n) {
  if (n === null || n === undefined || n < 0) return "unknown";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function timeOnly(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return iso || "";
  return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

// Desktop and host states -> badge colour and words.
const STATE_CLASS = {
  running: "ok", assigned: "ok", connected: "ok", up: "ok", ready: "ok",
  starting: "info", provisioning: "info", resetting: "info", connecting: "info",
  importing: "info", disconnected: "warn", "shutting-down": "warn", stopped: "",
  deleting: "warn", error: "bad", down: "bad",
};
const STATE_WORDS = {
  "shutting-down": "shutting down",
};

export function badge(state) {
  return h("span", { class: `badge ${STATE_CLASS[state] ?? ""}` }, STATE_WORDS[state] || state || "unknown");
}

/** A labelled bar: used of total, e.g. memory or disk. */
export function meter(label, used, total, format = bytes) {
  const known = total > 0 && used >= 0;
  const pct = known ? Math.min(100, Math.round((used / total) * 100)) : 0;
  const text = known ? `${format(used)} of ${format(total)} (${pct}%)` : "unknown";
  return h("div", { class: "meter" },
    h("div", { class: "meter-label" }, h("span", {}, label), h("span", {}, text)),
    h("div", { class: "meter-bar", role: "meter", "aria-label": label, "aria-valuemin": 0,
               "aria-valuemax": 100, "aria-valuenow": pct, "aria-valuetext": text },
      h("div", { class: `meter-fill ${pct >= 95 ? "full" : pct >= 80 ? "high" : ""}`,
                 style: null, dataset: { pct } })));
}

// Inline styles are refused by the page's CSP: bar widths are set through CSSOM.
export function sizeMeters(root) {
  for (const el of root.querySelectorAll(".meter-fill[data-pct]")) el.style.width = `${el.dataset.pct}%`;
}

export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/** A table: cols = [{label, get(row) -> node|text, num, wrap}]; cells stay on one line unless wrap. */
export function table(el, caption, cols, rows, emptyText) {
  clear(el);
  if (caption) el.append(h("caption", { class: "visually-hidden" }, caption));
  el.append(h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))));
  const body = h("tbody");
  if (!rows.length)
    body.append(h("tr", {}, h("td", { class: "empty", colspan: cols.length }, emptyText || "None.")));
  for (const r of rows)
    body.append(h("tr", {}, cols.map((c, i) => (i === 0
      ? h("th", { scope: "row" }, c.get(r))
      : h("td", { class: [c.num ? "num" : "", c.wrap ? "wrap" : ""].join(" ").trim() || null,
                  "data-label": c.label }, h("div", {}, c.get(r)))))));
  el.append(body);
}
