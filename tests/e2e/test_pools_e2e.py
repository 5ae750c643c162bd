"""End-to-end: pools of desktops on the real libvirtd + QEMU (issue 3).

Each test has its own kvmdeskd (pool manager every second), the local host
qemu:///system, the test desktop image (a boot sector that shows the SeaBIOS
banner with the machine UUID and a blue `kvmdesk> ` prompt that echoes keys),
a template of 1 vCPU / 96 MiB / 1 GiB / no network, and a group whose members
the tests create through the API:

 1. warm desktops are running before anyone asks: a floating pool of size 3
    with 2 warm ones boots two desktops by itself (domains running, prompts on
    their screens, nobody asked); a user then gets one of them at once and the
    pool boots another spare;
 2. a floating desktop's writes are gone after release: typed keys echo on
    the screen; powered off, a marker is written into its overlay with
    qemu-io; after the release the desktop is reset (no user, no needs_reset)
    and its overlay no longer reads the marker; booted again (the pool wants a
    warm one) it shows a fresh prompt without the typed keys;
 3. a persistent user gets the same desktop back after a restart of kvmdeskd:
    same name, uuid, overlay and user, and the machine kept running (what he
    typed is still on its screen);
 4. kvmdeskd killed (SIGKILL) after a release answers, while the reset is in
    flight or just done (rounds with the kill 0 to 300 ms after the answer):
    after a restart the desktop is reset (or reset again) and, while another
    user keeps asking for a desktop, it is never handed out with needs_reset
    true or with the marker still in its overlay.

Everything the daemons made (domains with their prefix or seen through the
API, the volumes of their storage pool, the pool) is removed whatever failed.
The daemon logs are copied to tests/e2e/out/pools-<test>-kvmdeskd.log.
"""

import os
import shutil
import time
import unittest

import kdtest
import e2elib
from e2elib import virsh

DAEMON_CONFIG = "[broker]\npolicy_interval = 1\n[api]\nlogin_attempts = 10000\n"
MARKER = 0xcd                # the byte qemu-io writes into an overlay
BOOT_TIMEOUT = 120           # seconds for the pool manager to make and boot spares (TCG)
RESET_TIMEOUT = 90           # seconds for a released desktop to be reset
POLL = 0.25                  # seconds between two polls of the API
KILL_DELAYS = (0, 0.02, 0.05, 0.1, 0.3)   # seconds from the release answer to SIGKILL (test 4)


class PoolsE2E(unittest.TestCase):
    host = "local"

    def setUp(self):
        e2elib.require_system_libvirt()
        self.t0 = time.monotonic()
        self.daemon = kdtest.Daemon(config=DAEMON_CONFIG)
        self.seen_domains = set()
        self.addCleanup(self.cleanup_all)
        self.daemon.start()
        s = self.daemon.suffix
        self.image, self.template, self.group = "pimg-" + s, "ptpl-" + s, "pgrp-" + s
        self.api("POST", "/api/v1/hosts", {"name": self.host, "uri": e2elib.URI}, expect=201)
        self.api("PUT", "/api/v1/images/%s?host=%s" % (self.image, self.host),
                 raw=kdtest.read_bytes(kdtest.TEST_IMAGE), expect=201)
        self.api("POST", "/api/v1/templates",
                 {"name": self.template, "vcpus": 1, "memory_mib": 96, "disk_gib": 1,
                  "network": "none"}, expect=201)
        self.api("POST", "/api/v1/groups", {"name": self.group}, expect=201)

    def cleanup_all(self):
        # Learn every domain the daemon knows before stopping it: the pool
        # manager must not run while libvirt objects are removed.
        try:
            if self.daemon.proc and self.daemon.proc.poll() is None:
                self.note_desktops(self.daemon.status_of("GET", "/api/v1/desktops", timeout=30)[1])
        except Exception:
            pass
        self.daemon.stop()
        os.makedirs(e2elib.OUT_DIR, exist_ok=True)
        try:
            shutil.copyfile(self.daemon.log_path, os.path.join(
                e2elib.OUT_DIR, "pools-%s-kvmdeskd.log" % self._testMethodName))
        except OSError:
            pass
        left = e2elib.remove_domains(sorted(self.seen_domains))
        left += e2elib.remove_libvirt_objects(self.daemon.prefix, self.daemon.pool)
        if os.environ.get("KD_TEST_SHOW_LOG"):
            print(self.daemon.read_log())
        self.daemon.cleanup()
        print("\n  %s: %.1f s" % (self._testMethodName, time.monotonic() - self.t0))
        self.assertEqual(left, [], "cleanup could not remove everything")

    # -- helpers ---------------------------------------------------------------------
    def api(self, method, path, body=None, **kw):
        return self.daemon.request(method, path, body, **kw)

    def note_desktops(self, desktops):
        if isinstance(desktops, list):
            self.seen_domains |= {d["domain"] for d in desktops if d.get("domain")}
        elif isinstance(desktops, dict) and desktops.get("domain"):
            self.seen_domains.add(desktops["domain"])
        return desktops

    def elapsed(self, since):
        return "%.1f s" % (time.monotonic() - since)

    def make_user(self, name=None):
        """A user of the class's group, created through the API and logged in."""
        name = name or "u" + kdtest.random_suffix()
        password = "pw-" + kdtest.random_suffix(10)
        self.api("POST", "/api/v1/users", {"name": name, "password": password,
                                           "role": "user", "groups": [self.group]}, expect=201)
        client = kdtest.Client(self.daemon, name, password)
        client.login()
        return client

    def make_pool(self, mode, size, warm=0):
        name = "p" + kdtest.random_suffix()
        pool = self.api("POST", "/api/v1/pools",
                        {"name": name, "image": self.image, "template": self.template,
                         "mode": mode, "size": size, "warm": warm, "groups": [self.group]},
                        expect=201)
        self.assertEqual((pool["mode"], pool["size"], pool["warm"]), (mode, size, warm), pool)
        return name

    def pool_desktops(self, pool):
        listing = self.api("GET", "/api/v1/desktops")
        return self.note_desktops([d for d in listing if d.get("pool") == pool])

    def desktop(self, name):
        return self.note_desktops(self.api("GET", "/api/v1/desktops/" + name))

    def wait_pool(self, pool, predicate, what, timeout=BOOT_TIMEOUT):
        return kdtest.wait_until(lambda: (lambda ds: ds if predicate(ds) else None)(
            self.pool_desktops(pool)), timeout=timeout, interval=POLL, what=what)

    def wait_desktop(self, name, predicate, what, timeout=RESET_TIMEOUT):
        return kdtest.wait_until(lambda: (lambda d: d if predicate(d) else None)(
            self.desktop(name)), timeout=timeout, interval=POLL, what=what)

    def ask(self, client, pool, expect=(200, 201), timeout=BOOT_TIMEOUT):
        """POST /pools/POOL/desktop as @client; returns (status, desktop)."""
        status, body = client.exchange("POST", "/api/v1/pools/%s/desktop" % pool, timeout=timeout)
        self.assertIn(status, expect, "POST /pools/%s/desktop as '%s' answered %d: %r"
                      % (pool, client.username, status, body))
        if status in (200, 201):
            self.note_desktops(body)
        return status, body

    def history(self, name):
        """The desktop's events, oldest first, one line each (for failure messages)."""
        status, events = self.daemon.status_of("GET", "/api/v1/events?desktop=%s&limit=100" % name)
        if status != 200 or not isinstance(events, list):
            return "(no events: %r)" % (events,)
        return "\n".join("  %s %s %s->%s: %s" % (e.get("time"), e.get("action"), e.get("from_state"),
                                                e.get("to_state"), e.get("message"))
                         for e in reversed(events))

    def assertRunsWithPrompt(self, d, typed=""):
        """The desktop's domain runs in libvirt and shows ITS banner and the
        prompt (with @typed after it; None: anything)."""
        dom = d["domain"]
        self.assertEqual(e2elib.domain_state(dom), "running",
                         "desktop '%s': domain '%s' is not running" % (d["name"], dom))
        rows = e2elib.wait_for_prompt(dom, typed=typed)
        uuid = e2elib.banner_uuid(rows)
        self.assertEqual(uuid, d["uuid"].lower(), "desktop '%s': the screen shows machine %r:\n%s"
                         % (d["name"], uuid, e2elib.screen_text(rows)))
        return rows

    def assertLinkedClone(self, d):
        info = e2elib.qemu_img_info(d["overlay"]["path"])
        self.assertEqual(info["format"], "qcow2", info)
        self.assertTrue(info.get("backing-filename"),
                        "desktop '%s': overlay without a backing file: %r" % (d["name"], info))
        self.assertEqual(info["virtual-size"], 1 << 30, info)

    def is_spare(self, d):
        """Running, unassigned, clean and idle: what a user may get at once."""
        return (d["state"] == "running" and d["user"] is None and not d["needs_reset"]
                and not d["busy"])

    def mark_overlay(self, d):
        """Writes the marker into the (powered-off) desktop's overlay and checks it reads back."""
        path = d["overlay"]["path"]
        rc, out = e2elib.qemu_io(path, "write -P 0x%02x 0 64k" % MARKER)
        self.assertEqual(rc, 0, "qemu-io write into '%s': %s" % (path, out))
        rc, out = e2elib.qemu_io(path, "read -P 0x%02x 0 64k" % MARKER, read_only=True)
        self.assertEqual(rc, 0, "the marker does not read back from '%s': %s" % (path, out))

    # -- 1 ---------------------------------------------------------------------------
    def test_1_warm_before_anyone_asks(self):
        pool = self.make_pool("floating", size=3, warm=2)
        t0 = time.monotonic()
        spares = self.wait_pool(pool, lambda ds: len([d for d in ds if self.is_spare(d)]) == 2,
                                "pool '%s' to boot 2 warm desktops" % pool)
        print("\n  2 warm desktops running %s after the pool was created" % self.elapsed(t0))
        users = [u["name"] for u in self.api("GET", "/api/v1/users")]
        self.assertEqual(users, ["admin"], "somebody could have asked: %r" % users)
        domains = e2elib.domains_with_prefix(self.daemon.prefix)
        for d in spares:
            self.assertEqual(d["pool"], pool, d)
            self.assertIn(d["domain"], domains, "desktop '%s': domain not in libvirt" % d["name"])
            self.assertLinkedClone(d)
            self.assertRunsWithPrompt(d)
        print("  their prompts on screen %s after the pool was created" % self.elapsed(t0))
        # The pool boots what it must keep warm, not its whole size.
        now = self.pool_desktops(pool)
        self.assertEqual(len(now), 2, "pool of size 3, warm 2, nobody asked: %r"
                         % [(d["name"], d["state"]) for d in now])
        counts = self.api("GET", "/api/v1/pools/" + pool)["desktops"]
        self.assertEqual((counts["total"], counts["ready"], counts["assigned"]), (2, 2, 0), counts)

        # A user gets one of them at once; the pool boots another spare.
        alice = self.make_user()
        t1 = time.monotonic()
        status, d = self.ask(alice, pool, timeout=30)
        took = time.monotonic() - t1
        self.assertEqual(status, 201, d)
        self.assertIn(d["name"], {s["name"] for s in spares}, "not a warm desktop: %r" % d)
        self.assertEqual((d["state"], d["user"], d["needs_reset"]), ("assigned", alice.name, False), d)
        self.assertLess(took, 10, "a warm desktop took %.1f s to hand out" % took)
        print("  warm desktop handed out in %.2f s" % took)
        self.assertRunsWithPrompt(d)
        t2 = time.monotonic()
        self.wait_pool(pool, lambda ds: len([x for x in ds if self.is_spare(x)]) == 2 and len(ds) == 3,
                       "pool '%s' to boot a new spare after one was taken" % pool)
        print("  spare replaced in %s" % self.elapsed(t2))
        mine = [x for x in self.pool_desktops(pool) if x["user"] == alice.name]
        self.assertEqual([x["name"] for x in mine], [d["name"]])

    # -- 2 ---------------------------------------------------------------------------
    def test_2_release_throws_writes_away(self):
        pool = self.make_pool("floating", size=1, warm=1)
        t0 = time.monotonic()
        self.wait_pool(pool, lambda ds: any(self.is_spare(d) for d in ds),
                       "pool '%s' to boot its warm desktop" % pool)
        print("\n  warm desktop running %s after the pool was created" % self.elapsed(t0))
        bob = self.make_user()
        status, d = self.ask(bob, pool, timeout=30)
        self.assertEqual(status, 201, d)
        self.assertEqual((d["state"], d["user"]), ("assigned", bob.name), d)
        name, dom, uuid = d["name"], d["domain"], d["uuid"]
        self.assertRunsWithPrompt(d)
        e2elib.send_text(dom, "kd2")
        e2elib.wait_for_prompt(dom, typed="kd2")

        # Powered off by its user, the disk is changed as the user would have.
        status, off = bob.exchange("POST", "/api/v1/desktops/%s/poweroff" % name)
        self.assertEqual(status, 200, "poweroff as the owner: %r" % (off,))
        self.assertEqual((off["state"], off["user"]), ("stopped", bob.name), off)
        self.assertEqual(e2elib.domain_state(dom), "shut off")
        self.mark_overlay(off)

        t1 = time.monotonic()
        status, rel = bob.exchange("POST", "/api/v1/desktops/%s/release" % name)
        self.assertEqual(status, 200, "release as the owner: %r" % (rel,))
        self.assertIsNone(rel["user"], rel)
        d = self.wait_desktop(name, lambda x: (not x["busy"] and not x["needs_reset"]
                                               and x["user"] is None
                                               and x["state"] in ("running", "stopped")),
                              "desktop '%s' to be reset after its release" % name)
        print("  reset done %s after the release (state %s)" % (self.elapsed(t1), d["state"]))
        self.assertEqual((d["domain"], d["uuid"]), (dom, uuid), "the reset made another machine")
        self.assertLinkedClone(d)
        rc, out = e2elib.qemu_io_shared(d["overlay"]["path"], "read -P 0x%02x 0 64k" % MARKER)
        self.assertNotEqual(rc, 0, "desktop '%s': the marker written before the release is "
                            "still in '%s'; events:\n%s" % (name, d["overlay"]["path"],
                                                             self.history(name)))
        self.assertIn("Pattern verification failed", out)
        # Nobody has the desktop in the listings of its former user.
        status, his = bob.exchange("GET", "/api/v1/desktops")
        self.assertEqual((status, [x["name"] for x in his]), (200, []), his)

        # The pool wants one warm desktop: it comes back booted, with a fresh screen.
        d = self.wait_desktop(name, self.is_spare, "desktop '%s' to be warm again" % name,
                              timeout=BOOT_TIMEOUT)
        rows = self.assertRunsWithPrompt(d, typed="")
        self.assertNotIn("kd2", e2elib.screen_text(rows), "the typed keys survived the reset")
        print("  warm again with a fresh prompt %s after the release" % self.elapsed(t1))

    # -- 3 ---------------------------------------------------------------------------
    def test_3_persistent_survives_restart(self):
        pool = self.make_pool("persistent", size=2)
        carol = self.make_user()
        t0 = time.monotonic()
        status, d1 = self.ask(carol, pool)
        self.assertEqual(status, 201, d1)
        print("\n  new persistent desktop handed out in %s" % self.elapsed(t0))
        self.assertEqual(d1["user"], carol.name, d1)
        d1 = self.wait_desktop(d1["name"], lambda x: x["state"] in ("assigned", "connected")
                               and not x["busy"], "desktop '%s' to be assigned" % d1["name"])
        self.assertRunsWithPrompt(d1)
        e2elib.send_text(d1["domain"], "kd3")
        e2elib.wait_for_prompt(d1["domain"], typed="kd3")

        t1 = time.monotonic()
        self.daemon.restart()
        carol.login()
        status, d2 = self.ask(carol, pool)
        print("  restart and the same desktop back in %s" % self.elapsed(t1))
        self.assertEqual(status, 200, "his existing desktop is answered 200: %r" % (d2,))
        for field in ("name", "uuid", "domain", "host"):
            self.assertEqual(d2[field], d1[field], "%s changed across the restart: %r -> %r"
                             % (field, d1[field], d2[field]))
        self.assertEqual(d2["overlay"]["path"], d1["overlay"]["path"], d2)
        self.assertEqual(d2["user"], carol.name, d2)
        self.assertIn(d2["state"], ("assigned", "connected", "disconnected"), d2)
        self.assertFalse(d2["needs_reset"], d2)
        # The machine kept running: what he typed is still on its screen.
        self.assertRunsWithPrompt(d2, typed="kd3")
        self.assertEqual(len(self.pool_desktops(pool)), 1, "a second desktop was made")

    # -- 4 ---------------------------------------------------------------------------
    def test_4_kill_during_reset(self):
        """Rounds with the kill at different delays after the release answer,
        so that it falls before, inside and after the reset's libvirt calls.
        The user who gets the desktop in one round releases it in the next."""
        pool = self.make_pool("floating", size=1, warm=0)
        holder, other = self.make_user(), self.make_user()
        status, d = self.ask(holder, pool)
        self.assertEqual(status, 201, d)
        name = d["name"]
        print()
        for delay in KILL_DELAYS:
            self.kill_round(pool, name, holder, other, delay)
            holder, other = other, holder

    def kill_round(self, pool, name, holder, other, delay):
        what = "round with the kill %.0f ms after the release" % (delay * 1000)
        d = self.wait_desktop(name, lambda x: x["state"] == "assigned" and not x["busy"]
                              and x["user"] == holder.name,
                              "%s: desktop '%s' assigned to '%s'" % (what, name, holder.name),
                              timeout=BOOT_TIMEOUT)
        self.assertRunsWithPrompt(d, typed="")
        status, off = holder.exchange("POST", "/api/v1/desktops/%s/poweroff" % name)
        self.assertEqual(status, 200, "%s: poweroff as the owner: %r" % (what, off))
        self.mark_overlay(off)
        overlay = off["overlay"]["path"]

        status, rel = holder.exchange("POST", "/api/v1/desktops/%s/release" % name)
        if delay:
            time.sleep(delay)   # where the kill falls is what this round is about
        self.daemon.kill()
        self.assertEqual(status, 200, "%s: release as the owner: %r" % (what, rel))
        on_disk = ("missing" if not os.path.exists(overlay) else
                   "with the marker" if e2elib.overlay_has_pattern(overlay, MARKER) else "clean")
        print("  %s: answer state %s, needs_reset %s; at the kill: domain %s, overlay %s" % (
            what, rel["state"], rel["needs_reset"],
            e2elib.domain_state(rel["domain"]) if rel["domain"] in
            e2elib.domains_with_prefix(self.daemon.prefix) else "gone", on_disk))

        t0 = time.monotonic()
        self.daemon.start()
        other.login()
        seen = []           # (state, needs_reset, busy, user) as the admin saw them, changes only
        got = None
        refused, refusal = 0, None
        deadline = time.monotonic() + RESET_TIMEOUT
        while time.monotonic() < deadline:
            x = self.desktop(name)
            obs = (x["state"], x["needs_reset"], x["busy"], x["user"])
            if not seen or seen[-1] != obs:
                seen.append(obs)
            self.assertFalse(x["user"] and x["needs_reset"],
                             "%s: desktop '%s' is assigned to %r while marked for reset: %r\n"
                             "events:\n%s" % (what, name, x["user"], x, self.history(name)))
            status, body = self.ask(other, pool, expect=(200, 201, 409))
            if status == 409:
                refused += 1
                refusal = body.get("error") if isinstance(body, dict) else body
                time.sleep(POLL)
                continue
            got = body
            break
        self.assertIsNotNone(got, "%s: no desktop for another user %ds after the restart; the "
                             "desktop went through %r\nevents:\n%s"
                             % (what, RESET_TIMEOUT, seen, self.history(name)))
        print("    after the restart: %r; %d refusals (409%s), then '%s' got it %s after the start"
              % (seen, refused, ": %r" % refusal if refusal else "", other.name,
                 self.elapsed(t0)))
        self.assertEqual(got["name"], name, got)
        self.assertEqual(got["user"], other.name, got)
        self.assertFalse(got["needs_reset"], "%s: handed out while marked for reset: %r\n"
                         "events:\n%s" % (what, got, self.history(name)))
        self.assertFalse(e2elib.overlay_has_pattern(got["overlay"]["path"], MARKER),
                         "%s: desktop '%s' handed to '%s' with the previous user's marker in "
                         "'%s'\nevents:\n%s" % (what, name, other.name, got["overlay"]["path"],
                                                  self.history(name)))
        self.assertLinkedClone(got)
        d = self.wait_desktop(name, lambda x: x["state"] == "assigned" and not x["busy"],
                              "%s: desktop '%s' to be assigned to '%s'" % (what, name, other.name),
                              timeout=BOOT_TIMEOUT)
        self.assertRunsWithPrompt(d, typed="")
        self.assertFalse(e2elib.overlay_has_pattern(d["overlay"]["path"], MARKER))

if __name__ == "__main__":
    unittest.main()
