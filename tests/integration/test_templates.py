"""Templates through the REST API: defaults, ranges, enums, conflicts.

A template is pure data until a desktop uses it; every refused request must
leave the template list unchanged.
"""

import os
import unittest
from urllib.parse import quote

from kdtest import DaemonTestCase

DEFAULTS = {"vcpus": 1, "memory_mib": 1024, "disk_gib": 10, "display": "vnc",
            "network": "none", "firmware": "bios", "rdp_port": 0}


class TemplatesTest(DaemonTestCase):

    def add(self, body, expect=201):
        t = self.api("POST", "/api/v1/templates", body, expect=expect)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/templates/" + body["name"])
        return t

    def assertRefused(self, body, status=400, code="invalid"):
        before = self.names("/api/v1/templates")
        err = self.assertApiError(status, "POST", "/api/v1/templates", body)
        self.assertEqual(err.get("code"), code, err)
        self.assertEqual(self.names("/api/v1/templates"), before)
        if isinstance(body.get("name"), str) and body["name"]:
            self.assertApiError(404, "GET", "/api/v1/templates/" + quote(body["name"], safe=""))
        return err

    def test_defaults_filled(self):
        name = self.unique("t")
        t = self.add({"name": name})
        self.assertEqual(t["name"], name)
        for key, value in DEFAULTS.items():
            self.assertEqual(t[key], value, key)
        self.assertEqual(self.api("GET", "/api/v1/templates/" + name), t)
        self.assertEqual([x for x in self.api("GET", "/api/v1/templates") if x["name"] == name],
                         [t])

    def test_all_fields(self):
        name = self.unique("full")
        body = {"name": name, "vcpus": 4, "memory_mib": 4096, "disk_gib": 40, "display": "vnc",
                "network": "bridge:br0", "firmware": "uefi"}
        t = self.add(body)
        for key, value in body.items():
            self.assertEqual(t[key], value, key)

    def test_range_edges_accepted(self):
        for vcpus, mem, disk in ((1, 64, 1), (256, 4194304, 65536)):
            with self.subTest(vcpus=vcpus):
                name = self.unique("edge")
                t = self.add({"name": name, "vcpus": vcpus, "memory_mib": mem, "disk_gib": disk})
                self.assertEqual((t["vcpus"], t["memory_mib"], t["disk_gib"]), (vcpus, mem, disk))

    def test_networks_accepted(self):
        for net in ("none", "user", "default", "bridge:virbr0"):
            with self.subTest(network=net):
                t = self.add({"name": self.unique("net"), "network": net})
                self.assertEqual(t["network"], net)

    def test_range_and_enum_errors(self):
        cases = [
            ("vcpus", 0), ("vcpus", 257), ("vcpus", -1),
            ("memory_mib", 10), ("memory_mib", 63), ("memory_mib", 4194305),
            ("disk_gib", 0), ("disk_gib", 65537),
            ("display", "x"), ("display", ""), ("display", "VNC"),
            ("rdp_port", -1), ("rdp_port", 65536), ("rdp_port", "3389"),
            ("network", "bridge:"), ("network", ""), ("network", "bridge:bad name"),
            ("firmware", "x"), ("firmware", ""),
            # wrong JSON types
            ("vcpus", "2"), ("vcpus", 1.5), ("memory_mib", True),
            ("display", 1), ("firmware", ["bios"]),
        ]
        for key, value in cases:
            with self.subTest(key=key, value=value):
                err = self.assertRefused({"name": self.unique("bad"), key: value})
                self.assertIn(key.split("_")[0], err["error"].lower(),
                              "the message should name the field")

    def test_bad_names(self):
        for bad in ("Upper", "a" * 64, "-lead", "", "x y", None, 5):
            with self.subTest(name=bad):
                self.assertRefused({"name": bad})
        self.assertRefused({"vcpus": 2})   # no name at all

    def test_unknown_field(self):
        self.assertRefused({"name": self.unique("unk"), "gpu": "yes"})

    def test_duplicate_409(self):
        name = self.unique("dup")
        first = self.add({"name": name, "vcpus": 2})
        err = self.assertApiError(409, "POST", "/api/v1/templates", {"name": name, "vcpus": 3})
        self.assertEqual(err.get("code"), "exists")
        self.assertIn(name, err["error"])
        self.assertEqual(self.api("GET", "/api/v1/templates/" + name), first)

    def test_unknown_404(self):
        name = self.unique("none")
        for method in ("GET", "DELETE"):
            with self.subTest(method=method):
                err = self.assertApiError(404, method, "/api/v1/templates/" + name)
                self.assertEqual(err.get("code"), "not_found")

    def test_delete(self):
        name = self.unique("del")
        self.add({"name": name})
        self.api("DELETE", "/api/v1/templates/" + name, expect=204)
        self.assertNotIn(name, self.names("/api/v1/templates"))
        self.assertApiError(404, "GET", "/api/v1/templates/" + name)

    def test_remove_in_use_409(self):
        host = self.add_host()["name"]
        image = self.unique("img")
        self.api("PUT", "/api/v1/images/%s?host=%s" % (image, host), raw=os.urandom(65536),
                 expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/images/" + image)
        name = self.unique("used")
        t = self.add({"name": name, "disk_gib": 1})
        desktop = self.unique("d")
        self.api("POST", "/api/v1/desktops",
                 {"name": desktop, "image": image, "template": name, "host": host}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + desktop)

        err = self.assertApiError(409, "DELETE", "/api/v1/templates/" + name)
        self.assertEqual(err.get("code"), "busy")
        self.assertEqual(self.api("GET", "/api/v1/templates/" + name), t)

        self.api("DELETE", "/api/v1/desktops/" + desktop, expect=204)
        self.api("DELETE", "/api/v1/templates/" + name, expect=204)
        self.assertNotIn(name, self.names("/api/v1/templates"))


if __name__ == "__main__":
    unittest.main()
