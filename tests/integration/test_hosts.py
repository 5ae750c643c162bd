"""Hosts through the REST API, on libvirt's test:// driver.

A host is registered with its libvirt URI; kvmdeskd connects, reads its
capacity and makes its storage pool. Every refused request must leave the
host list as it was.
"""

import unittest

import kdtest
from kdtest import DaemonTestCase


class HostsTest(DaemonTestCase):

    def assertHostShape(self, host, name, uri):
        self.assertEqual(host["name"], name)
        self.assertEqual(host["uri"], uri)
        self.assertEqual(host["state"], "up", host)
        self.assertIs(host["simulated"], True)
        self.assertEqual(host["accel"], "test")
        self.assertGreater(host["cpus"], 0)
        self.assertGreater(host["memory_bytes"], 0)
        self.assertIn("free_memory_bytes", host)
        self.assertIsNone(host["last_error"])
        self.assertEqual(host["desktops"], 0)
        self.assertTrue(host["created_at"])
        for key in ("accel_reason", "hostname", "hypervisor", "libvirt_version"):
            self.assertIn(key, host)
        pool = host["pool"]
        self.assertIsInstance(pool, dict, "the storage pool must exist after add")
        self.assertEqual(pool["name"], self.daemon.pool)
        for key in ("capacity", "allocation", "available"):
            self.assertIsInstance(pool[key], int, pool)
            self.assertGreaterEqual(pool[key], 0, pool)

    def test_add_default_show_list_remove(self):
        name = self.unique("default")
        host = self.api("POST", "/api/v1/hosts", {"name": name, "uri": "test:///default"},
                        expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/hosts/" + name)
        self.assertHostShape(host, name, "test:///default")
        # test:///default has 16 CPUs and 8 GiB in libvirt's built-in node.
        self.assertEqual(host["cpus"], 16)

        shown = self.api("GET", "/api/v1/hosts/" + name)
        self.assertHostShape(shown, name, "test:///default")
        listed = [h for h in self.api("GET", "/api/v1/hosts") if h["name"] == name]
        self.assertEqual(len(listed), 1)
        self.assertHostShape(listed[0], name, "test:///default")

        self.api("DELETE", "/api/v1/hosts/" + name, expect=204)
        self.assertNotIn(name, self.names("/api/v1/hosts"))
        self.assertApiError(404, "GET", "/api/v1/hosts/" + name)

    def test_add_custom_node_file(self):
        uri = self.simulated_host_uri()
        name = self.unique("small")
        host = self.add_host(name, uri)
        self.assertHostShape(host, name, uri)
        # tests/data/integration/host-small.xml: 4 CPUs, 8388608 KiB.
        self.assertEqual(host["cpus"], 4)
        self.assertEqual(host["memory_bytes"], 8388608 * 1024)

    def test_duplicate_name_409(self):
        name = self.unique("dup")
        self.add_host(name)
        other_uri = self.simulated_host_uri()
        body = self.assertApiError(409, "POST", "/api/v1/hosts", {"name": name, "uri": other_uri})
        self.assertEqual(body.get("code"), "exists")
        self.assertIn(name, body["error"])
        self.assertNotEqual(self.api("GET", "/api/v1/hosts/" + name)["uri"], other_uri)
        self.assertEqual([n for n in self.names("/api/v1/hosts") if n == name], [name])

    def test_duplicate_uri_409(self):
        uri = self.simulated_host_uri()
        first = self.unique("uri")
        self.add_host(first, uri)
        second = self.unique("uri")
        body = self.assertApiError(409, "POST", "/api/v1/hosts", {"name": second, "uri": uri})
        self.assertEqual(body.get("code"), "exists")
        self.assertNotIn(second, self.names("/api/v1/hosts"))

    def test_bad_names_400(self):
        before = self.names("/api/v1/hosts")
        uri = self.simulated_host_uri()
        for bad in ("Upper", "a" * 64, "-lead", "", "has space", "dot.name", "under_score",
                    "caf\u00e9", "../etc", "ab\u0000cd", "ab\n"):
            with self.subTest(name=bad):
                body = self.assertApiError(400, "POST", "/api/v1/hosts", {"name": bad, "uri": uri})
                self.assertEqual(body.get("code"), "invalid")
        self.assertEqual(self.names("/api/v1/hosts"), before)
        # 63 characters is the longest name allowed.
        self.add_host("a" * 57 + "-" + kdtest.random_suffix(5), uri)

    def test_missing_fields_400(self):
        before = self.names("/api/v1/hosts")
        name = self.unique("missing")
        for body in ({"name": name}, {"uri": self.simulated_host_uri()}, {},
                     {"name": name, "uri": ""}):
            with self.subTest(body=body):
                self.assertApiError(400, "POST", "/api/v1/hosts", body)
        self.assertEqual(self.names("/api/v1/hosts"), before)

    def test_unreachable_uri_503_nothing_stored(self):
        before = self.names("/api/v1/hosts")
        name = self.unique("gone")
        uri = "qemu+unix:///system?socket=/nonexistent/kvmdesk-test/sock"
        body = self.assertApiError(503, "POST", "/api/v1/hosts", {"name": name, "uri": uri})
        self.assertEqual(body.get("code"), "unavailable")
        self.assertEqual(self.names("/api/v1/hosts"), before)
        self.assertApiError(404, "GET", "/api/v1/hosts/" + name)
        # The name is still free: the failed add stored nothing.
        self.add_host(name)

    def test_nul_in_url(self):
        name = self.add_host()["name"]
        # "%00" must not cut the name short and reach the real host.
        status, body = self.daemon.status_of("DELETE", "/api/v1/hosts/%s%%00junk" % name)
        self.assertIn(status, (400, 404), body)
        self.assertIn(name, self.names("/api/v1/hosts"))

    def test_unknown_host_404(self):
        name = self.unique("nosuch")
        for method in ("GET", "DELETE"):
            with self.subTest(method=method):
                body = self.assertApiError(404, method, "/api/v1/hosts/" + name)
                self.assertEqual(body.get("code"), "not_found")
                self.assertIn(name, body["error"])

    def test_remove_with_desktop_409(self):
        host = self.unique("busy")
        self.add_host(host)
        image = self.unique("img")
        raw = b"\0" * (1 << 20)
        self.api("PUT", "/api/v1/images/%s?host=%s" % (image, host), raw=raw, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/images/" + image)
        template = self.unique("tpl")
        self.api("POST", "/api/v1/templates", {"name": template, "disk_gib": 1}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/templates/" + template)
        desktop = self.unique("d")
        self.api("POST", "/api/v1/desktops",
                 {"name": desktop, "image": image, "template": template, "host": host},
                 expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + desktop)
        self.assertEqual(self.api("GET", "/api/v1/hosts/" + host)["desktops"], 1)

        body = self.assertApiError(409, "DELETE", "/api/v1/hosts/" + host)
        self.assertEqual(body.get("code"), "busy")
        self.assertIn(host, self.names("/api/v1/hosts"))
        self.assertEqual(self.api("GET", "/api/v1/desktops/" + desktop)["host"], host)

        # With the desktop gone, the image still holds the host.
        self.api("DELETE", "/api/v1/desktops/" + desktop, expect=204)
        self.assertEqual(self.api("GET", "/api/v1/hosts/" + host)["desktops"], 0)
        self.assertApiError(409, "DELETE", "/api/v1/hosts/" + host)
        self.assertIn(host, self.names("/api/v1/hosts"))
        # Once the image is gone too, the host can go.
        self.api("DELETE", "/api/v1/images/" + image, expect=204)
        self.api("DELETE", "/api/v1/hosts/" + host, expect=204)
        self.assertNotIn(host, self.names("/api/v1/hosts"))


if __name__ == "__main__":
    unittest.main()
