"""Console settings and native viewer files through the API (issue 4), on
libvirt's test:// driver.

Hosts say how consoles reach their displays (graphics_listen,
console_access, console_path); pools choose takeover or share; templates
may be SPICE and may name the guest's RDP port; desktops show console
counters and viewers. The viewer files themselves (.vv with a password on
the real display) are tested against real QEMU in tests/e2e; here every
refusal is checked: simulated host, stopped desktop, bad query values,
foreign desktops, templates without RDP. Nothing is changed by a refused
request.
"""

import os
import shutil
import unittest

from kdtest import PoolTestCase, TEST_DATA, make_image, random_suffix, read_bytes


class ConsoleSettingsTest(PoolTestCase):

    def node_uri(self, name):
        node = os.path.join(self.daemon.tmp, "node-%s.xml" % name)
        shutil.copyfile(os.path.join(TEST_DATA, "integration", "host-small.xml"), node)
        return "test://" + node

    def test_host_display_fields(self):
        host = self.api("GET", "/api/v1/hosts/" + self.host)
        self.assertEqual(host["graphics_listen"], "127.0.0.1")
        self.assertEqual(host["console_access"], "auto")
        self.assertEqual(host["console_path"], "none", "a test:// host has no displays")

        name = self.unique("h")
        h = self.api("POST", "/api/v1/hosts",
                     {"name": name, "uri": self.node_uri(name), "graphics_listen": "0.0.0.0",
                      "console_access": "tcp"}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/hosts/" + name)
        self.assertEqual(h["graphics_listen"], "0.0.0.0")
        self.assertEqual(h["console_access"], "tcp")

    def test_host_display_fields_refused(self):
        before = self.names("/api/v1/hosts")
        cases = [
            ({"graphics_listen": "localhost"}, "graphics_listen"),
            ({"graphics_listen": "1.2.3.4.5"}, "graphics_listen"),
            ({"graphics_listen": ""}, "graphics_listen"),
            ({"graphics_listen": 7}, "graphics_listen"),
            ({"console_access": "ssh"}, "console_access"),
            ({"console_access": ""}, "console_access"),
            ({"console_access": "fd", "uri": "qemu+ssh://root@hv9.invalid/system"}, "fd"),
        ]
        for extra, word in cases:
            with self.subTest(extra=extra):
                name = self.unique("bad")
                body = {"name": name, "uri": self.node_uri(name)}
                body.update(extra)
                status, err = self.daemon.status_of("POST", "/api/v1/hosts", body)
                self.assertEqual(status, 400, err)
                self.assertIn(word, err["error"])
        self.assertEqual(self.names("/api/v1/hosts"), before, "nothing may be stored")

    def test_templates_spice_and_rdp(self):
        t = self.api("POST", "/api/v1/templates",
                     {"name": self.unique("sp"), "display": "spice", "rdp_port": 3389},
                     expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/templates/" + t["name"])
        self.assertEqual(t["display"], "spice")
        self.assertEqual(t["rdp_port"], 3389)
        self.assertEqual(self.api("GET", "/api/v1/templates/" + t["name"])["rdp_port"], 3389)

    def test_pool_console_mode(self):
        pool = self.create_pool(size=1)
        self.assertEqual(pool["console_mode"], "takeover", "the default")
        p = self.api("PATCH", "/api/v1/pools/" + pool["name"], {"console_mode": "share"})
        self.assertEqual(p["console_mode"], "share")
        for bad in ("shared", "", 1, "TAKEOVER"):
            with self.subTest(bad=bad):
                status, err = self.daemon.status_of("PATCH", "/api/v1/pools/" + pool["name"],
                                                    {"console_mode": bad})
                self.assertEqual(status, 400, err)
                self.assertIn("console_mode", err["error"])
        self.assertEqual(self.api("GET", "/api/v1/pools/" + pool["name"])["console_mode"], "share",
                         "a refused change changes nothing")
        p2 = self.create_pool(size=1, console_mode="share")
        self.assertEqual(p2["console_mode"], "share")
        self.api("POST", "/api/v1/pools",
                 {"name": self.unique("p"), "image": self.image, "template": self.template,
                  "console_mode": "both"}, expect=400)

    def running_desktop(self, **pool_fields):
        user = self.create_user()
        pool = self.create_pool(users=[user.name], size=1, **pool_fields)["name"]
        _, desk = self.get_desktop(user, pool, expect=(201,))
        desk = self.wait_desktop(desk["name"], lambda d: d["state"] == "assigned", client=user,
                                 timeout=30)
        return user, pool, desk

    def test_desktop_console_view(self):
        user, pool, desk = self.running_desktop()
        d = user.request("GET", "/api/v1/desktops/" + desk["name"])
        self.assertEqual(d["console"], {"mode": "takeover", "connections": 0, "bytes_in": 0,
                                        "bytes_out": 0, "viewers": []})

    def test_viewer_files_refused(self):
        user, pool, desk = self.running_desktop()
        name = desk["name"]
        events_before = self.api("GET", "/api/v1/events?desktop=%s&limit=1000" % name)
        # A simulated host has no display to give a password to.
        status, err = user.exchange("GET", "/api/v1/desktops/%s/console.vv" % name)
        self.assertEqual(status, 503, err)
        self.assertIn("simulation", err["error"])
        # Bad query values: 400 before anything happens.
        for query in ("ttl=0", "ttl=3601", "ttl=x", "ttl=", "fullscreen=2", "kiosk=yes"):
            with self.subTest(query=query):
                status, err = user.exchange("GET", "/api/v1/desktops/%s/console.vv?%s" % (name, query))
                self.assertEqual(status, 400, err)
        # No RDP port in the template: says which setting is missing.
        status, err = user.exchange("GET", "/api/v1/desktops/%s/console.rdp" % name)
        self.assertEqual(status, 503, err)
        self.assertIn("rdp_port", err["error"])
        # Another user's desktop does not exist for him.
        other = self.create_user()
        for f in ("console.vv", "console.rdp"):
            status, err = other.exchange("GET", "/api/v1/desktops/%s/%s" % (name, f))
            self.assertEqual(status, 404, err)
        # Wrong methods and unknown files.
        status, _ = user.exchange("POST", "/api/v1/desktops/%s/console.vv" % name)
        self.assertEqual(status, 405)
        status, _ = user.exchange("GET", "/api/v1/desktops/%s/console.exe" % name)
        self.assertEqual(status, 405)
        # Nothing was issued: no viewer-pass event.
        events = self.api("GET", "/api/v1/events?desktop=%s&limit=1000" % name)
        self.assertFalse([e for e in events if e["action"] == "viewer-pass"], events)
        self.assertGreaterEqual(len(events), len(events_before))

    def test_viewer_file_of_stopped_desktop(self):
        name = self.unique("d")
        self.api("POST", "/api/v1/desktops",
                 {"name": name, "image": self.image, "template": self.template}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + name)
        self.wait_desktop(name, lambda d: d["state"] == "stopped")
        status, err = self.daemon.exchange("GET", "/api/v1/desktops/%s/console.vv" % name)
        self.assertEqual(status, 409, err)
        self.assertIn("not running", err["error"])

    def test_rdp_file(self):
        """On a host with a libvirt network, the .rdp file points at the
        guest's address and the template's port."""
        host = self.unique("hn")
        node = os.path.join(self.daemon.tmp, "node-%s.xml" % host)
        shutil.copyfile(os.path.join(TEST_DATA, "integration", "host-net.xml"), node)
        self.api("POST", "/api/v1/hosts", {"name": host, "uri": "test://" + node}, expect=201)
        tpl = self.api("POST", "/api/v1/templates",
                       {"name": self.unique("rdp"), "disk_gib": 1, "memory_mib": 64,
                        "network": "default", "rdp_port": 3390}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/templates/" + tpl["name"])
        img = self.unique("img")
        path = os.path.join(self.daemon.tmp, "rdp.qcow2")
        self.api("PUT", "/api/v1/images/%s?host=%s" % (img, host),
                 raw=read_bytes(make_image(path, "qcow2", "64M")), expect=201)
        name = self.unique("d")
        self.api("POST", "/api/v1/desktops", {"name": name, "image": img, "template": tpl["name"],
                                              "host": host, "start": True}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + name)
        self.wait_desktop(name, lambda d: d["state"] == "running")
        status, text = self.daemon.exchange(
            "GET", "/api/v1/desktops/%s/console.rdp?fullscreen=1" % name)
        self.assertEqual(status, 200, text)
        lines = text.split("\r\n")
        self.assertRegex(lines[0], r"^full address:s:192\.168\.122\.\d+:3390$")
        self.assertIn("screen mode id:i:2", lines)
        self.assertIn("username:s:admin", lines)
        # A guest without a network has no address: 503 with a sentence.
        tpl2 = self.api("POST", "/api/v1/templates",
                        {"name": self.unique("rdp"), "disk_gib": 1, "memory_mib": 64,
                         "rdp_port": 3389}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/templates/" + tpl2["name"])
        name2 = self.unique("d")
        self.api("POST", "/api/v1/desktops", {"name": name2, "image": img, "template": tpl2["name"],
                                              "host": host, "start": True}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + name2)
        self.wait_desktop(name2, lambda d: d["state"] == "running")
        status, err = self.daemon.exchange("GET", "/api/v1/desktops/%s/console.rdp" % name2)
        self.assertEqual(status, 503, err)
        self.assertIn("network address", err["error"])

    def test_cli_viewer_file_errors(self):
        user, pool, desk = self.running_desktop()
        out = os.path.join(self.daemon.tmp, "x-%s.vv" % random_suffix())
        r = self.daemon.cli("login", "admin", env={"KVMDESK_PASSWORD": self.daemon.admin_password})
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.daemon.cli("desktop", "vv", desk["name"], "--output", out, check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("simulation", r.stderr)
        self.assertFalse(os.path.exists(out), "no file on failure")
        r = self.daemon.cli("desktop", "rdp", desk["name"], "--ttl", "5", check=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--ttl", r.stderr)


if __name__ == "__main__":
    unittest.main()
