"""End-to-end: kvmdeskd with two real libvirt hosts on this machine.

hv1 is the normal libvirtd (qemu:///system); hv2 a second libvirtd in its own
mount namespace (tests/e2e/hostlib.py), with kvmdesk's pool in another
directory. Through the REST API only:

 1. both hosts are added; the test desktop image is imported on hv1 and copied
    to hv2 by kvmdesk (download + upload between two real libvirtds);
 2. desktops on both hosts: one running on hv1 (keys typed on it), one shut off
    on hv1, one running on hv2; a browser console is open on the running one;
 3. `POST /hosts/hv1/drain`: the running desktop is migrated live with its
    overlay, the shut-off one moves cold, hv2's stays untouched;
 4. after the move the domain runs on hv2 only, its screen shows the same BIOS
    banner UUID and the keys typed before, a key typed after is echoed, its
    overlay is in hv2's pool and gone from hv1's, the console that was open was
    cut and a new one through the gateway speaks RFB with the desktop's name;
    the desktop moved cold starts on hv2 and shows its prompt.

Every libvirt object carries the daemon's prefix (kdt…) and pool; they are
removed on both hosts even when the test fails, and the second host is stopped.
"""

import os
import struct
import unittest
import urllib.parse

import e2elib
import hostlib
import kdtest
from test_console_e2e import WebSocket

MEMORY_MIB = 64


def virsh_at(uri, *args, check=True):
    return e2elib.virsh(*args, check=check, timeout=120, uri=uri)


def names_at(uri):
    return set(n.strip() for n in virsh_at(uri, "list", "--all", "--name").splitlines() if n.strip())


class MigrateE2E(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        e2elib.require_system_libvirt()
        problem = hostlib.second_host_problem()
        if problem:
            if kdtest.require_e2e():
                raise AssertionError("KD_REQUIRE_E2E=1 but the second host cannot run: " + problem)
            raise unittest.SkipTest(problem)
        cls.hv2 = hostlib.SecondHost()
        left = cls.hv2.stop()           # a crashed earlier run
        if left:
            raise AssertionError("leftovers of an earlier second host: %s" % "; ".join(left))
        cls.hv2.start()

    @classmethod
    def tearDownClass(cls):
        left = cls.hv2.stop()
        if left:
            raise AssertionError("could not stop the second host: %s" % "; ".join(left))

    def setUp(self):
        self.daemon = kdtest.Daemon()
        self.addCleanup(self.cleanup)
        self.daemon.start()
        d = self.daemon
        # hv2's kvmdesk pool: the same name, its own directory (both
        # daemons see one filesystem; a host's pool is its own disk).
        self.pool_b = os.path.join(d.tmp, "pool-hv2")
        os.makedirs(self.pool_b)
        os.chmod(self.pool_b, 0o755)
        virsh_at(self.hv2.uri, "pool-define-as", d.pool, "dir", "--target", self.pool_b)
        virsh_at(self.hv2.uri, "pool-start", d.pool)

    def cleanup(self):
        d = self.daemon
        d.stop()
        problems = e2elib.remove_libvirt_objects(d.prefix, d.pool)
        if self.hv2.status().get("answers"):
            problems += e2elib.remove_libvirt_objects(d.prefix, d.pool, uri=self.hv2.uri)
        d.cleanup()
        if problems:
            raise AssertionError("cleanup left: " + "; ".join(problems))

    # -- helpers ---------------------------------------------------------------
    def desktop(self, name):
        return self.daemon.request("GET", "/api/v1/desktops/" + name)

    def wait_desktop(self, name, pred, what, timeout=60):
        return kdtest.wait_until(lambda: (lambda x: x if pred(x) else None)(self.desktop(name)),
                                 timeout=timeout, what="desktop %s: %s" % (name, what))

    def screen_at(self, uri, domain, predicate, what, timeout=e2elib.SCREEN_TIMEOUT):
        return e2elib.wait_for_screen(domain, predicate, what, timeout=timeout, uri=uri)

    def prompt_shows(self, typed):
        return lambda rows: e2elib.screen.prompt_line(rows) == typed

    def open_console(self, name):
        t = self.daemon.request("POST", "/api/v1/desktops/%s/console" % name)
        u = urllib.parse.urlsplit(t["url"])
        ws = WebSocket(self.daemon.url, u.path + "?" + u.query, self.daemon.url)
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, 101, ws.body)
        self.assertEqual(ws.read(12), b"RFB 003.008\n")
        ws.send(b"RFB 003.008\n")
        n = ws.read(1)[0]
        self.assertEqual(list(ws.read(n)), [1])
        ws.send(b"\x01")
        self.assertEqual(struct.unpack("!I", ws.read(4))[0], 0)
        ws.send(b"\x01")                                   # ClientInit, shared
        w, h = struct.unpack("!HH", ws.read(4))
        ws.read(16)                                        # pixel format
        name_len = struct.unpack("!I", ws.read(4))[0]
        return ws, (w, h), ws.read(name_len).decode()

    # -- the test --------------------------------------------------------------
    def test_drain_migrates_live_and_moves_cold(self):
        d = self.daemon
        a_uri, b_uri = e2elib.URI, self.hv2.uri
        hv1 = d.request("POST", "/api/v1/hosts", {"name": "hv1", "uri": a_uri})
        hv2 = d.request("POST", "/api/v1/hosts", {"name": "hv2", "uri": b_uri})
        self.assertEqual((hv1["state"], hv2["state"]), ("up", "up"))
        self.assertEqual((hv1["migration"], hv2["migration"]), ("live", "live"))

        with open(kdtest.TEST_IMAGE, "rb") as f:
            d.request("PUT", "/api/v1/images/td?host=hv1", raw=f.read())
        img = d.request("POST", "/api/v1/images/td/copy", {"host": "hv2"})
        on = {v["host"]: v for v in img["volumes"]}
        self.assertEqual(on["hv2"]["state"], "ready", img)
        self.assertTrue(on["hv2"]["path"].startswith(self.pool_b + "/"), on["hv2"])
        # A real copy: the same bytes on hv2 as on hv1.
        self.assertEqual(e2elib.sha256_of(on["hv2"]["path"]), e2elib.sha256_of(on["hv1"]["path"]))
        d.request("POST", "/api/v1/templates", {"name": "t1", "vcpus": 1, "memory_mib": MEMORY_MIB,
                                                "disk_gib": 1})
        for name, host, start in (("mover", "hv1", True), ("cold", "hv1", False),
                                  ("other", "hv2", True)):
            d.request("POST", "/api/v1/desktops", {"name": name, "image": "td", "template": "t1",
                                                   "host": host, "start": start})
        mover = self.wait_desktop("mover", lambda x: x["state"] == "running", "running")
        self.wait_desktop("cold", lambda x: x["state"] == "stopped", "stopped")
        other = self.wait_desktop("other", lambda x: x["state"] == "running", "running")
        self.assertEqual(other["host"], "hv2")
        domain = mover["domain"]
        self.assertIn(domain, names_at(a_uri))
        self.assertNotIn(domain, names_at(b_uri))
        self.assertIn(other["domain"], names_at(b_uri))
        self.assertNotIn(other["domain"], names_at(a_uri))
        old_overlay = mover["overlay"]["path"]

        rows = e2elib.wait_for_prompt(domain)
        uuid = e2elib.banner_uuid(rows)
        self.assertEqual(uuid, mover["uuid"].lower())
        e2elib.send_text(domain, "abc")
        e2elib.wait_for_prompt(domain, typed="abc")
        ws, size, desk_name = self.open_console("mover")
        self.assertEqual(size, (720, 400))

        r = d.request("POST", "/api/v1/hosts/hv1/drain")
        steps = {s["name"]: s for s in r["desktops"]}
        self.assertEqual(set(steps), {"mover", "cold"}, r)
        self.assertEqual(steps["mover"]["action"], "migrating", r)
        self.assertIn("migrated live to host 'hv2'", steps["mover"]["reason"])
        self.assertEqual(steps["cold"]["action"], "moving", r)

        moved = self.wait_desktop("mover", lambda x: x["host"] == "hv2" and not x["busy"],
                                  "migrated to hv2", timeout=180)
        events = d.request("GET", "/api/v1/events?desktop=mover&limit=50")
        done = [e for e in events if e["action"] in ("migrate", "migrate-failed")]
        self.assertTrue(done, events[:6])
        self.assertEqual(done[0]["action"], "migrate", done[0])
        self.assertIn("migrated live from host 'hv1' to host 'hv2'", done[0]["message"])
        print("\n" + done[0]["message"])
        self.assertNotEqual(moved["state"], "error", moved)

        # libvirt's view: on hv2 only, running, persistent, on hv2's overlay.
        self.assertNotIn(domain, names_at(a_uri))
        self.assertEqual(virsh_at(b_uri, "domstate", domain).strip(), "running")
        self.assertIn("yes", [l.split()[-1] for l in virsh_at(b_uri, "dominfo", domain).splitlines()
                              if l.startswith("Persistent")])
        new_overlay = moved["overlay"]["path"]
        self.assertTrue(new_overlay.startswith(self.pool_b + "/"), moved["overlay"])
        self.assertFalse(os.path.exists(old_overlay), old_overlay)
        for flags in ((), ("--inactive",)):
            self.assertIn("file='%s'" % new_overlay, virsh_at(b_uri, "dumpxml", *flags, domain))
        info = e2elib.qemu_img_info(new_overlay)
        self.assertEqual(info.get("backing-filename"), on["hv2"]["path"], info)

        # The same guest, memory and all: banner, the keys typed before, and
        # a key typed now is echoed.
        rows = self.screen_at(b_uri, domain, self.prompt_shows("abc"), "the keys typed before the move")
        self.assertEqual(e2elib.banner_uuid(rows), uuid)
        virsh_at(b_uri, "send-key", domain, "KEY_Z")
        self.screen_at(b_uri, domain, self.prompt_shows("abcz"), "a key typed after the move")

        # The console open during the move was cut; a new one reaches hv2.
        with self.assertRaises((ConnectionError, OSError)):
            ws.sock.settimeout(10)
            ws.read(1 << 20)
        ws2, size, desk_name = self.open_console("mover")
        self.assertEqual(size, (720, 400))
        self.assertIn(domain, desk_name)
        ws2.close()

        # The shut-off one moved cold and boots on hv2.
        cold = self.wait_desktop("cold", lambda x: x["host"] == "hv2" and not x["busy"], "moved to hv2",
                                 timeout=120)
        self.assertEqual(cold["state"], "stopped")
        cold_events = d.request("GET", "/api/v1/events?desktop=cold&limit=50")
        moved_events = [e for e in cold_events if e["action"] == "move"]
        self.assertTrue(moved_events, cold_events[:6])
        print(moved_events[0]["message"])
        self.assertTrue([e for e in cold_events if e["action"] == "move-progress"], cold_events[:8])
        self.assertNotIn(cold["domain"], names_at(a_uri))
        d.request("POST", "/api/v1/desktops/cold/start")
        self.screen_at(b_uri, cold["domain"], lambda rows: e2elib.banner_uuid(rows) == cold["uuid"].lower(),
                       "the moved desktop's banner")

        # hv2's own desktop was not touched; nothing of ours is left on hv1.
        self.assertEqual(self.desktop("other")["host"], "hv2")
        self.assertEqual([n for n in names_at(a_uri) if n.startswith(d.prefix)], [])
        host = d.request("GET", "/api/v1/hosts/hv1")
        self.assertTrue(host["draining"] and host["maintenance"], host)
        # Maintenance off ends the drain.
        host = d.request("PATCH", "/api/v1/hosts/hv1", {"maintenance": False})
        self.assertFalse(host["draining"], host)
        for name in ("mover", "cold", "other"):
            d.request("DELETE", "/api/v1/desktops/" + name, expect=204)


if __name__ == "__main__":
    unittest.main()
