// scenarios.mjs: browser scenarios of the kvmdesk dashboard, run by the Python
// tests beside this file (test_dashboard_browser.py), which start kvmdeskd, make
// the host, image, template, pool and users, and check what is outside the
// browser (the guest's screen memory, the PNGs).
//
//   node scenarios.mjs SCENARIO     with KD_BROWSER_CONFIG = JSON:
//     {url, out, users: {name: password}, admin_password, pool, desktop?}
//
// Drives Debian's chromium (/usr/bin/chromium, or KD_CHROMIUM) headless through
// playwright-core; playwright gives every launch a fresh profile directory.
// Prints one JSON line of results on stdout ("RESULT {...}") and exits 0, or
// prints why and exits 1. Screenshots go to config.out.
//
// Scenarios: user-console, ctrl-alt-del, other-user, operator, keyboard-login, screenshots.

import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const cfg = JSON.parse(process.env.KD_BROWSER_CONFIG || "{}");
const CHROMIUM = process.env.KD_CHROMIUM || "/usr/bin/chromium";
const STEP_TIMEOUT = 30000;            // ms for one UI step (a click, a list to show)
const BOOT_TIMEOUT = 180000;           // ms for a desktop to be handed out and booted (TCG)

const problems = [];                  // console errors, CSP violations, failed requests

function fail(msg) { throw new Error(msg); }
function log(msg) { process.stderr.write(`[browser] ${msg}\n`); }

async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

async function newPage(browser, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, baseURL: cfg.url });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("dialog", (d) => d.accept());
  return page;
}

async function shot(page, name) {
  fs.mkdirSync(cfg.out, { recursive: true });
  const file = path.join(cfg.out, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

async function login(page, user, password) {
  await page.goto("/");
  await page.getByLabel("User name").fill(user);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#who-name").filter({ hasText: user }).waitFor();
}

// CSP violations and script errors fail every scenario: the page must run
// under its own policy. Expected failures (a refused request a test makes on
// purpose) are filtered by the caller.
function checkProblems(allow = []) {
  const bad = problems.filter((p) => !allow.some((re) => re.test(p)));
  if (bad.length) fail(`the page reported errors:\n  ${bad.join("\n  ")}`);
}

// -- the console canvas ------------------------------------------------------------

async function canvasPng(page) {
  return page.evaluate(() => {
    const c = document.querySelector("#console-screen canvas");
    return c && c.width > 16 ? c.toDataURL("image/png") : null;
  });
}

// Share of VGA-blue pixels (the test desktop's prompt row) on the canvas.
async function blueShare(page) {
  return page.evaluate(() => {
    const c = document.querySelector("#console-screen canvas");
    if (!c || c.width < 16) return 0;
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let blue = 0;
    for (let i = 0; i < d.length; i += 4)
      if (d[i + 2] >= 0x80 && d[i] < 0x40 && d[i + 1] < 0x40) blue++;
    return blue / (d.length / 4);
  });
}

// Bright (glyph) pixels in the prompt row's cells after "kvmdesk> " on the canvas:
// the row is the one that is mostly VGA blue, cells are 9x16 (text mode 720x400).
async function typedPixels(page, n) {
  return page.evaluate((count) => {
    const c = document.querySelector("#console-screen canvas");
    if (!c || c.width < 16) return -1;
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const px = (x, y) => 4 * (y * c.width + x);
    let row = -1;
    for (let r = Math.floor(c.height / 16) - 1; r >= 0 && row < 0; r--) {
      let blue = 0;
      for (let x = 0; x < c.width; x++) {
        const i = px(x, r * 16 + 8);
        if (d[i + 2] >= 0x80 && d[i] < 0x40 && d[i + 1] < 0x40) blue++;
      }
      if (blue > c.width / 2) row = r;
    }
    if (row < 0) return -1;
    let light = 0;
    for (let y = row * 16; y < row * 16 + 12; y++)
      for (let x = 9 * 9; x < 9 * (9 + count); x++) {
        const i = px(x, y);
        if (d[i] > 0xa0 && d[i + 1] > 0xa0 && d[i + 2] > 0xa0) light++;
      }
    return light;
  }, n);
}

function savePng(dataUrl, name) {
  const file = path.join(cfg.out, `${name}.png`);
  fs.mkdirSync(cfg.out, { recursive: true });
  fs.writeFileSync(file, Buffer.from(dataUrl.split(",")[1], "base64"));
  return file;
}

async function waitFor(what, fn, timeout) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  fail(`timed out after ${timeout / 1000} s waiting for ${what}`);
}

// Gets a desktop from the pool through the page; returns its name once its
// Connect button is enabled.
async function getDesktop(page, pool) {
  const card = page.locator(`[data-pool-card="${pool}"]`);
  await card.getByRole("button", { name: "Get desktop" }).click();
  const desk = page.locator(`#mine li[data-pool="${pool}"]`).first();
  await desk.waitFor({ timeout: BOOT_TIMEOUT });
  const name = await desk.getAttribute("data-desktop");
  await waitFor(`desktop '${name}' to be ready to connect`,
    () => desk.getByRole("button", { name: "Connect" }).isEnabled(), BOOT_TIMEOUT);
  return name;
}

// -- scenarios ---------------------------------------------------------------------

const scenarios = {
  // (a) log in, get a desktop, open its console, type; the canvas changes.
  async "user-console"(browser) {
    const [user, password] = Object.entries(cfg.users)[0];
    const page = await newPage(browser);
    await login(page, user, password);
    await shot(page, "user-1280-desktops-before");
    const name = await getDesktop(page, cfg.pool);
    log(`desktop ${name} is ready`);
    await shot(page, "user-1280-desktops");
    await page.locator(`[data-desktop="${name}"]`).getByRole("button", { name: "Connect" }).click();
    await page.locator("#console").waitFor();
    if (!(await page.evaluate(() => document.getElementById("main").inert)))
      fail("the page behind the console still takes focus");
    await waitFor("the console to connect",
      async () => /Connected/.test(await page.locator("#console-state").textContent()), STEP_TIMEOUT);
    // The test desktop's prompt row is VGA blue: wait until it is drawn.
    await waitFor("the prompt on the console canvas", async () => (await blueShare(page)) > 0.005, BOOT_TIMEOUT);
    await page.waitForTimeout(500);               // let the last updates land
    const before = await canvasPng(page);
    savePng(before, "console-canvas-before");
    await shot(page, "console-1280-before");
    await page.locator("#console-screen canvas").click();
    await page.keyboard.type(cfg.text, { delay: 60 });
    const after = await waitFor("the typed text on the canvas", async () => {
      const now = await canvasPng(page);
      return now && now !== before ? now : null;
    }, STEP_TIMEOUT);
    await page.waitForTimeout(1500);              // every key echoed and drawn
    savePng(await canvasPng(page), "console-canvas-after");
    await shot(page, "console-1280-typed");
    // Ctrl+Alt+Del and the clipboard panel are buttons that work with the keyboard.
    await page.getByRole("button", { name: "Clipboard" }).click();
    if (await page.locator("#console-clip").isHidden()) fail("the Clipboard button did not open its panel");
    await shot(page, "console-1280-clipboard");
    await page.getByRole("button", { name: "Clipboard" }).click();
    // Reconnect gets a fresh ticket and connects again.
    await page.getByRole("button", { name: "Reconnect" }).click();
    await waitFor("the console to connect again",
      async () => /Connected/.test(await page.locator("#console-state").textContent()), STEP_TIMEOUT);
    await page.getByRole("button", { name: "Close" }).click();
    await page.locator("#console").waitFor({ state: "hidden" });
    // The focus is back where the console was opened from.
    const back = await page.evaluate(() => document.activeElement && document.activeElement.dataset.key);
    if (back !== `${name}:connect`) fail(`after Close the focus is on '${back}', not on the Connect button`);
    // Download .vv: a plain link the session cookie authenticates.
    const link = page.locator(`[data-desktop="${name}"] a`, { hasText: "Download .vv" });
    const vv = await link.getAttribute("href");
    const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
    const vvFile = path.join(cfg.out, "downloaded.vv");
    await download.saveAs(vvFile);
    checkProblems();
    return { desktop: name, vv_href: vv, vv_file: vvFile, vv_name: download.suggestedFilename() };
  },

  // (a, continued) the Ctrl+Alt+Del button reaches the guest (its BIOS reboots).
  async "ctrl-alt-del"(browser) {
    const [user, password] = Object.entries(cfg.users)[0];
    const page = await newPage(browser);
    await login(page, user, password);
    const card = page.locator(`[data-desktop="${cfg.desktop}"]`);
    await card.getByRole("button", { name: "Connect" }).click();
    await waitFor("the console to connect",
      async () => /Connected/.test(await page.locator("#console-state").textContent()), STEP_TIMEOUT);
    await waitFor("the prompt on the console canvas", async () => (await blueShare(page)) > 0.005, BOOT_TIMEOUT);
    const typedBefore = await typedPixels(page, cfg.text.length);
    if (typedBefore <= 0) fail(`the typed text is not on the canvas before Ctrl+Alt+Del (${typedBefore})`);
    await page.getByRole("button", { name: "Ctrl+Alt+Del" }).click();
    // The guest reboots: a fresh prompt, with nothing typed after it.
    await waitFor("a fresh prompt after Ctrl+Alt+Del",
      async () => (await typedPixels(page, cfg.text.length)) === 0, BOOT_TIMEOUT);
    await shot(page, "console-1280-after-ctrl-alt-del");
    checkProblems();
    return { desktop: cfg.desktop, typedBefore };
  },

  // (b) another user: no such desktop in his view, and forged requests refused.
  async "other-user"(browser) {
    const [user, password] = Object.entries(cfg.users)[1];
    const page = await newPage(browser);
    await login(page, user, password);
    await page.locator("#pools li").first().waitFor();
    const mine = await page.locator("#mine li").count();
    const listed = await page.locator(`[data-desktop="${cfg.desktop}"]`).count();
    await shot(page, "other-user-1280");
    // A forged ticket request with his own session and CSRF token.
    const forged = await page.evaluate(async (desk) => {
      const r = await fetch(`/api/v1/desktops/${encodeURIComponent(desk)}/console`, {
        method: "POST", headers: { "X-CSRF-Token": localStorage.getItem("kvmdesk.csrf") },
      });
      return { status: r.status, body: await r.json() };
    }, cfg.desktop);
    // The page's own console opener, aimed at the other desktop.
    await page.evaluate((desk) => window.kvmdesk.console.open(desk), cfg.desktop);
    await waitFor("the console to say why it cannot open",
      async () => (await page.locator("#console-state").textContent()).length > 0 &&
        !/Asking|Connecting/.test(await page.locator("#console-state").textContent()), STEP_TIMEOUT);
    const sentence = await page.locator("#console-state").textContent();
    const canvases = await page.locator("#console-screen canvas").count();
    await shot(page, "other-user-console-refused");
    await page.getByRole("button", { name: "Close" }).click();
    // A full pool: the answer's sentence is shown, not a code.
    let full = null;
    if (cfg.full_pool) {
      await page.locator(`[data-pool-card="${cfg.full_pool}"]`).getByRole("button", { name: "Get desktop" }).click();
      await page.locator("#alert").waitFor();
      full = await page.locator("#alert-text").textContent();
      await shot(page, "other-user-pool-full");
    }
    // A WebSocket with a made-up ticket never opens.
    const ws = await page.evaluate(() => new Promise((resolve) => {
      const s = new WebSocket(`ws://${location.host}/api/v1/console?ticket=${"A".repeat(43)}`, ["binary"]);
      s.onopen = () => resolve("open");
      s.onerror = () => resolve("error");
      s.onclose = () => resolve("closed");
    }));
    checkProblems([/404|401|409|Not Found|Unauthorized|Conflict|WebSocket/i]);
    return { mine, listed, forged, sentence, canvases, ws, full };
  },

  // (c) the operator view lists hosts, pools, desktops; a live event arrives.
  async operator(browser) {
    const page = await newPage(browser);
    await login(page, "admin", cfg.admin_password);
    await page.getByRole("link", { name: "Operator" }).click();
    await page.locator("#hosts [data-host]").first().waitFor();
    await page.locator("#ops-pools-table tbody th").first().waitFor();
    await waitFor("the event stream to be live",
      async () => (await page.locator("#events-live").textContent()) === "live", STEP_TIMEOUT);
    const hosts = await page.locator("#hosts [data-host]").evaluateAll((els) => els.map((e) => e.dataset.host));
    const pools = await page.locator("#ops-pools-table tbody th").evaluateAll((els) => els.map((e) => e.firstChild.textContent));
    const desktops = await page.locator("#ops-desktops-table tbody th").allTextContents();
    const meters = await page.locator("#hosts [role=meter]").count();
    await shot(page, "operator-1280");
    // Something happens elsewhere (through the API, not this page).
    const group = `live${Date.now().toString(36)}`;
    const t0 = Date.now();
    const tok = await (await fetch(`${cfg.url}/api/v1/login`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: "admin", password: cfg.admin_password }),
    })).json();
    const made = await fetch(`${cfg.url}/api/v1/groups`, {
      method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${tok.token}` },
      body: JSON.stringify({ name: group }),
    });
    if (made.status !== 201) fail(`creating group '${group}' answered ${made.status}`);
    const item = page.locator("#events li", { hasText: group }).first();
    await item.waitFor({ timeout: 10000 });
    const latency = Date.now() - t0;
    const text = await item.textContent();
    // ... and the groups table follows.
    await page.locator("#ops-groups-table tbody th", { hasText: group }).waitFor({ timeout: 10000 });
    await shot(page, "operator-1280-live-event");
    await page.getByRole("link", { name: "Images" }).click();
    await page.locator("#images details summary").first().click();
    await page.locator("#images details .versions tbody tr").first().waitFor();
    await shot(page, "operator-1280-images");
    checkProblems();
    return { hosts, pools, desktops, meters, event: text, latency_ms: latency, group };
  },

  // (d) keyboard only: log in and get a desktop without the mouse.
  async "keyboard-login"(browser) {
    const [user, password] = Object.entries(cfg.users)[2];
    const page = await newPage(browser);
    await page.goto("/");
    await page.locator("#login-user").waitFor();
    const start = await page.evaluate(() => document.activeElement && document.activeElement.id);
    // The focus starts in the user name field; type, Tab, type, Enter.
    if (start !== "login-user") await page.keyboard.press("Tab");
    await page.keyboard.type(user);
    await page.keyboard.press("Tab");
    const onPassword = await page.evaluate(() => document.activeElement.id);
    // A wrong password first: a sentence, and the focus back on the password.
    await page.keyboard.type("not-the-password");
    await page.keyboard.press("Enter");
    await page.locator("#login-error").waitFor();
    const wrong = await page.locator("#login-error").textContent();
    const focusAfterWrong = await page.evaluate(() => document.activeElement.id);
    await shot(page, "keyboard-login-wrong-password");
    await page.keyboard.type(password);          // the field's text is selected: replaced
    await page.keyboard.press("Enter");
    await page.locator("#who-name").filter({ hasText: user }).waitFor();
    await page.locator("#pools li button").first().waitFor();
    // Tab to the pool's button; every stop shows a visible focus ring.
    const stops = [];
    let found = false;
    for (let i = 0; i < 20 && !found; i++) {
      await page.keyboard.press("Tab");
      const s = await page.evaluate(() => {
        const el = document.activeElement;
        const cs = getComputedStyle(el);
        return { tag: el.tagName, text: (el.textContent || "").trim().slice(0, 40), pool: el.dataset.pool || null,
          outline: cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) >= 2 };
      });
      stops.push(s);
      found = s.pool === cfg.pool;
    }
    if (!found) fail(`Tab never reached the pool's button: ${JSON.stringify(stops)}`);
    await shot(page, "keyboard-focus-get-desktop");
    await page.keyboard.press("Enter");
    await page.locator("#mine li").first().waitFor({ timeout: BOOT_TIMEOUT });
    const desktop = await page.locator("#mine li").first().getAttribute("data-desktop");
    checkProblems([/401/]);
    return { start, onPassword, wrong, focusAfterWrong, stops, desktop };
  },

  // (e) the pages at 1280x800 and at a phone's 390 px, with overflow checks.
  async screenshots(browser) {
    const result = {};
    const [user, password] = Object.entries(cfg.users)[0];
    for (const [label, viewport] of [["1280", { width: 1280, height: 800 }], ["390", { width: 390, height: 844 }]]) {
      const page = await newPage(browser, viewport);
      await page.goto("/");
      await page.locator("#login-user").waitFor();
      await shot(page, `login-${label}`);
      await login(page, user, password);
      await page.locator("#pools li").first().waitFor();
      await page.waitForTimeout(300);
      const overflow = async () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      result[`user-${label}`] = { overflow: await overflow(), file: await shot(page, `user-${label}`) };
      // The console at this size.
      const connect = page.locator("#mine li").first().getByRole("button", { name: "Connect" });
      if (await connect.count()) {
        await waitFor("a desktop to connect to", () => connect.isEnabled(), BOOT_TIMEOUT);
        await connect.click();
        await waitFor("the console to connect",
          async () => /Connected/.test(await page.locator("#console-state").textContent()), STEP_TIMEOUT);
        await waitFor("the screen on the canvas", async () => (await blueShare(page)) > 0.005, BOOT_TIMEOUT);
        result[`console-${label}`] = { overflow: await overflow(), file: await shot(page, `console-${label}`) };
        await page.getByRole("button", { name: "Close" }).click();
      }
      await page.getByRole("button", { name: "Log out" }).click();
      await page.locator("#login-user").waitFor();
      await login(page, "admin", cfg.admin_password);
      await page.goto("/#/operator");
      await page.locator("#hosts [data-host]").first().waitFor();
      await page.waitForTimeout(300);
      result[`operator-${label}`] = { overflow: await overflow(), file: await shot(page, `operator-${label}`) };
      await page.goto("/#/operator/desktops");
      await page.waitForTimeout(300);
      await shot(page, `operator-${label}-desktops`);
      await page.context().close();
    }
    checkProblems();
    return result;
  },
};

async function main() {
  const name = process.argv[2];
  const run = scenarios[name];
  if (!run) fail(`unknown scenario '${name}' (one of: ${Object.keys(scenarios).join(", ")})`);
  if (!fs.existsSync(CHROMIUM)) fail(`${CHROMIUM} is missing (Debian package chromium)`);
  const browser = await launch();
  try {
    const result = await run(browser);
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  process.stderr.write(`[browser] FAILED: ${e.stack || e.message}\n`);
  if (problems.length) process.stderr.write(`[browser] page problems:\n  ${problems.join("\n  ")}\n`);
  process.exit(1);
});
