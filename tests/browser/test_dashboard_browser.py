"""The web dashboard in a real browser (Debian's chromium, driven by playwright-core).

One kvmdeskd for the class, on the real qemu:///system host, with the test desktop
image (a boot sector whose blue `kvmdesk> ` prompt echoes keys), a template of
1 vCPU / 96 MiB, a floating pool of 3 open to the users alice, bob and carol, and
the page served from the build's assembled web tree (web/ + noVNC). Each test runs
one scenario of scenarios.mjs with node and checks what it reports, and what lies
outside the browser:

 a. alice logs in through the page, gets a desktop from the pool, opens its
    console (noVNC through the gateway) and types; the text is in the guest's VGA
    text memory on the prompt row (read through QEMU's monitor), and the canvas
    changed on that row and not above it; Reconnect (a fresh ticket) works; the
    .vv link downloads a remote-viewer file; Ctrl+Alt+Del reboots the guest;
 b. bob, in his own browser context, sees no such desktop, a forged ticket
    request for it is refused (404 with a sentence), the page's console shows
    that sentence and no screen, and a made-up WebSocket ticket never opens; his
    "Get desktop" on a full pool shows the API's sentence naming the pool;
 c. the operator view lists the host (with its bars), the pool and the desktops,
    and an event made elsewhere shows in the live feed within seconds;
 d. carol logs in and gets a desktop with the keyboard only, every Tab stop
    showing a focus ring;
 e. login, user and operator pages at 1280x800 and 390x844 without horizontal
    overflow.

Screenshots are kept in tests/browser/out/ (look at them). Skips (or, with
KD_REQUIRE_E2E=1, fails) when qemu:///system, node, chromium, playwright-core or
noVNC is missing. Every domain and volume made is removed, even on failure.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import e2elib  # noqa: E402
import kdtest  # noqa: E402

OUT_DIR = os.path.join(HERE, "out")
SCENARIOS = os.path.join(HERE, "scenarios.mjs")
CHROMIUM = os.environ.get("KD_CHROMIUM", "/usr/bin/chromium")
NODE_MODULES = os.path.join(kdtest.SOURCE_DIR, "node_modules")
CONFIG = "[broker]\npolicy_interval = 1\n[api]\nlogin_attempts = 10000\n"
USERS = {"alice": "alice-pass-1", "bob": "bob-pass-12", "carol": "carol-pass-1"}
TYPED = "hello42web"
SCENARIO_TIMEOUT = 420       # seconds for one node scenario (boots under TCG included)


def browser_problem():
    """None when the browser tests can run, else why not."""
    if not shutil.which("node"):
        return "node is not installed (Debian package nodejs)"
    if not os.path.exists(CHROMIUM):
        return "%s is missing (Debian package chromium)" % CHROMIUM
    if not os.path.isdir(os.path.join(NODE_MODULES, "playwright-core")):
        return "playwright-core is not installed: run scripts/npm-deps.sh (npm ci)"
    if not os.path.isfile(os.path.join(kdtest.WEB_DIR, "vendor", "novnc", "core", "rfb.js")):
        return "noVNC is not in %s: run scripts/npm-deps.sh, then build" % kdtest.WEB_DIR
    return None


class DashboardBrowser(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        problem = browser_problem()
        if problem:
            if kdtest.require_e2e():
                raise AssertionError("KD_REQUIRE_E2E=1 but the browser tests cannot run: " + problem)
            raise unittest.SkipTest(problem)
        e2elib.require_system_libvirt()
        cls.seen_domains = set()
        cls.daemon = kdtest.Daemon(config=CONFIG)
        cls.addClassCleanup(cls.cleanup_all)
        cls.daemon.start()
        d = cls.daemon
        s = d.suffix
        cls.image, cls.template, cls.group, cls.pool = ("bimg-" + s, "btpl-" + s, "bgrp-" + s,
                                                        "office-" + s)
        d.request("POST", "/api/v1/hosts", {"name": "local", "uri": e2elib.URI}, expect=201)
        d.request("PUT", "/api/v1/images/%s?host=local" % cls.image,
                  raw=kdtest.read_bytes(kdtest.TEST_IMAGE), expect=201)
        d.request("POST", "/api/v1/templates", {"name": cls.template, "vcpus": 1, "memory_mib": 96,
                                                "disk_gib": 1, "network": "none"}, expect=201)
        d.request("POST", "/api/v1/groups", {"name": cls.group}, expect=201)
        for name, password in USERS.items():
            d.request("POST", "/api/v1/users", {"name": name, "password": password, "role": "user",
                                                "groups": [cls.group]}, expect=201)
        d.request("POST", "/api/v1/pools", {"name": cls.pool, "image": cls.image,
                                            "template": cls.template, "mode": "floating",
                                            "size": 3, "warm": 0, "groups": [cls.group]},
                  expect=201)
        os.makedirs(OUT_DIR, exist_ok=True)

    @classmethod
    def cleanup_all(cls):
        d = cls.daemon
        try:
            if d.proc and d.proc.poll() is None:
                _, desks = d.status_of("GET", "/api/v1/desktops", timeout=30)
                if isinstance(desks, list):
                    cls.seen_domains |= {x["domain"] for x in desks if x.get("domain")}
        except Exception:
            pass
        d.stop()
        try:
            shutil.copyfile(d.log_path, os.path.join(OUT_DIR, "kvmdeskd.log"))
        except OSError:
            pass
        left = e2elib.remove_domains(sorted(cls.seen_domains))
        left += e2elib.remove_libvirt_objects(d.prefix, d.pool)
        d.cleanup()
        if left:
            raise AssertionError("cleanup could not remove everything: %s" % left)

    # -- helpers -----------------------------------------------------------------------
    def run_scenario(self, name, **extra):
        config = {"url": self.daemon.url, "out": OUT_DIR, "users": USERS,
                  "admin_password": self.daemon.admin_password, "pool": self.pool,
                  "text": TYPED}
        config.update(extra)
        env = dict(os.environ, KD_BROWSER_CONFIG=json.dumps(config),
                   NODE_PATH=NODE_MODULES)
        t0 = time.monotonic()
        r = subprocess.run(["node", SCENARIOS, name], cwd=kdtest.SOURCE_DIR, env=env,
                           capture_output=True, text=True, timeout=SCENARIO_TIMEOUT)
        print("\n  scenario %s: %.1f s" % (name, time.monotonic() - t0))
        sys.stdout.write(r.stderr[-3000:])
        if r.returncode != 0:
            self.fail("browser scenario '%s' failed (%d):\n%s\n--- kvmdeskd log ---\n%s"
                      % (name, r.returncode, r.stderr[-6000:], self.daemon.read_log()[-3000:]))
        lines = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
        self.assertTrue(lines, "scenario '%s' printed no result: %s" % (name, r.stdout))
        return json.loads(lines[-1][len("RESULT "):])

    def desktop(self, name):
        d = self.daemon.request("GET", "/api/v1/desktops/" + name)
        if d.get("domain"):
            self.seen_domains.add(d["domain"])
        return d

    def user_desktop(self, user, pool=None):
        """The name of @user's desktop in @pool (default: the class's), allocated
        through the API if needed."""
        c = kdtest.Client(self.daemon, user, USERS[user])
        c.login()
        d = c.request("POST", "/api/v1/pools/%s/desktop" % (pool or self.pool))
        self.seen_domains.add(d["domain"])
        return d["name"]

    # -- the tests -----------------------------------------------------------------------
    def test_a_user_types_into_the_console(self):
        res = self.run_scenario("user-console")
        self.check_user_console(res, self.pool)

    def check_user_console(self, res, pool):
        """What the user-console scenario did, seen from outside the browser."""
        name = res["desktop"]
        desk = self.desktop(name)
        self.assertEqual(desk["user"], "alice")
        self.assertEqual(desk["pool"], pool)
        self.assertEqual(res["vv_href"], "/api/v1/desktops/%s/console.vv" % name)
        # The link gave a remote-viewer file for this desktop (not an error page).
        self.assertEqual(res["vv_name"], "%s.vv" % name)
        with open(res["vv_file"]) as f:
            vv = f.read()
        self.assertIn("\n[virt-viewer]\n", "\n" + vv, vv[:200])
        self.assertIn("password=", vv)
        os.unlink(res["vv_file"])                 # it holds a (short-lived) password
        # The keys reached the guest: its VGA text memory shows them after the prompt.
        rows = e2elib.wait_for_prompt(desk["domain"], typed=TYPED, timeout=30)
        row = e2elib.prompt_row(rows)
        self.assertIsNotNone(row)
        # The canvas (noVNC's framebuffer, 720x400 text mode) changed on the prompt
        # row: the typed characters are drawn in white where there was none.
        with open(os.path.join(OUT_DIR, "console-canvas-before.png"), "rb") as f:
            before = e2elib.decode_png(f.read())
        with open(os.path.join(OUT_DIR, "console-canvas-after.png"), "rb") as f:
            after = e2elib.decode_png(f.read())
        self.assertEqual((after.width, after.height), (720, 400))
        col0 = len("kvmdesk> ")
        drawn = [e2elib.light_pixels(after, row, col0 + i) for i in range(len(TYPED))]
        blank = [e2elib.light_pixels(before, row, col0 + i) for i in range(len(TYPED))]
        self.assertTrue(all(n > 0 for n in drawn),
                        "typed characters missing on the canvas prompt row %d: %r" % (row, drawn))
        self.assertEqual(sum(blank), 0, "the prompt row had text before typing: %r" % blank)
        self.assertGreater(e2elib.blue_fraction(after, row), 0.3, "the prompt row is not blue")
        # Rows above the prompt are the same (the banner did not move).
        for y in range(0, row * e2elib.CELL_H):
            self.assertEqual(before.rows[y], after.rows[y], "canvas row %d changed" % y)
        # The console's Ctrl+Alt+Del button reaches the guest: its BIOS reboots it,
        # and the fresh prompt no longer shows what was typed.
        self.run_scenario("ctrl-alt-del", desktop=name)
        rows = e2elib.wait_for_prompt(desk["domain"], typed="", timeout=60)
        self.assertEqual(e2elib.banner_uuid(rows), desk["uuid"].lower())

    def test_b_another_user_cannot_open_it(self):
        name = self.user_desktop("alice")
        # A pool of one, already taken by alice: bob's "Get desktop" must say so.
        full = "small-" + self.daemon.suffix
        self.daemon.request("POST", "/api/v1/pools", {"name": full, "image": self.image,
                                                      "template": self.template, "size": 1,
                                                      "groups": [self.group]}, expect=201)
        self.user_desktop("alice", full)
        res = self.run_scenario("other-user", desktop=name, full_pool=full)
        self.assertEqual(res["listed"], 0, "bob's page lists alice's desktop")
        self.assertEqual(res["mine"], 0, "bob has no desktop, but his page shows %d" % res["mine"])
        self.assertEqual(res["forged"]["status"], 404, res["forged"])
        self.assertIn(name, res["forged"]["body"]["error"])
        self.assertIn("no desktop", res["sentence"].lower(), res["sentence"])
        self.assertEqual(res["canvases"], 0, "a screen was shown for somebody else's desktop")
        self.assertIn(res["ws"], ("error", "closed"))
        self.assertIn(full, res["full"] or "", "no sentence about the full pool: %r" % res["full"])
        self.assertNotIn("409", res["full"])
        self.assertNotIn("busy", res["full"].split())
        # Nothing of it reached alice's desktop: it still has no console session.
        self.assertFalse(self.desktop(name)["session"]["connected"])

    def test_c_operator_view_and_live_events(self):
        mine = self.user_desktop("alice")
        res = self.run_scenario("operator")
        self.assertEqual(res["hosts"], ["local"])
        self.assertGreaterEqual(res["meters"], 2, "the host card has no capacity bars")
        self.assertIn(self.pool, res["pools"])
        self.assertIn(mine, res["desktops"])
        self.assertIn("group %s: create" % res["group"], res["event"])
        self.assertLess(res["latency_ms"], 10000)

    def test_d_keyboard_only(self):
        res = self.run_scenario("keyboard-login")
        self.assertEqual(res["onPassword"], "login-password", res)
        self.assertIn("wrong", res["wrong"])
        self.assertEqual(res["focusAfterWrong"], "login-password")
        for stop in res["stops"]:
            self.assertTrue(stop["outline"], "no visible focus on %r" % stop)
        self.assertEqual(res["stops"][-1]["tag"], "BUTTON")
        self.assertEqual(self.desktop(res["desktop"])["user"], "carol")

    def test_f_dbus_desktop_in_the_browser(self):
        """The same user path on a desktop whose display QEMU exports over
        D-Bus and kvmdesk-display serves: noVNC in the page cannot tell."""
        d = self.daemon
        template, pool = "bdbus-" + d.suffix, "dbus-" + d.suffix
        d.request("POST", "/api/v1/templates", {"name": template, "vcpus": 1, "memory_mib": 96,
                                                "disk_gib": 1, "network": "none", "display": "dbus"},
                  expect=201)
        d.request("POST", "/api/v1/pools", {"name": pool, "image": self.image, "template": template,
                                            "mode": "floating", "size": 1, "warm": 0,
                                            "groups": [self.group]}, expect=201)
        res = self.run_scenario("user-console", pool=pool)
        desk = self.desktop(res["desktop"])
        self.assertIn("<graphics type='dbus'", e2elib.virsh("dumpxml", desk["domain"]))
        self.assertEqual(desk["display_process"]["state"], "running", desk)
        self.check_user_console(res, pool)

    def test_e_screenshots(self):
        self.user_desktop("alice")
        res = self.run_scenario("screenshots")
        self.assertIn("console-390", res, "no console was opened at phone width")
        for key, shot in res.items():
            self.assertTrue(os.path.getsize(shot["file"]) > 2000, shot)
            self.assertLessEqual(shot["overflow"], 0, "%s scrolls sideways by %d px (%s)"
                                 % (key, shot["overflow"], shot["file"]))


if __name__ == "__main__":
    unittest.main()
