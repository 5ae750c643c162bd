"""Desktops through the REST API on libvirt's test:// driver.

Each test makes its own image, template and desktop names. The class shares
one simulated host (test:///default). Power actions on test:// complete at
once (shutdown included); shutdown_timeout is 3 s in the harness config, so
a shutdown that waits for the guest is forced quickly in any case.
"""

import os
import time
import unittest
from urllib.parse import quote

import kdtest
from kdtest import DaemonTestCase, make_image, read_bytes

GIB = 1 << 30
DESKTOP_KEYS = ("name", "state", "state_reason", "host", "image", "template", "domain", "uuid",
                "overlay", "pool", "user", "created_at", "updated_at")


class DesktopsTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.host = "dhost-" + kdtest.random_suffix()
            cls.daemon.request("POST", "/api/v1/hosts",
                               {"name": cls.host, "uri": "test:///default"}, expect=201)
            path = os.path.join(cls.daemon.tmp, "golden.qcow2")
            cls.image = "golden-" + kdtest.random_suffix()
            cls.daemon.request("PUT", "/api/v1/images/%s?host=%s" % (cls.image, cls.host),
                               raw=read_bytes(make_image(path, "qcow2", "64M")), expect=201)
            cls.template = "small-" + kdtest.random_suffix()
            cls.daemon.request("POST", "/api/v1/templates",
                               {"name": cls.template, "disk_gib": 1, "memory_mib": 128},
                               expect=201)
        except Exception:
            cls.daemon.cleanup()
            raise

    def create(self, name=None, expect=201, **extra):
        body = {"name": name or self.unique("d"), "image": self.image,
                "template": self.template}
        body.update(extra)
        d = self.api("POST", "/api/v1/desktops", body, expect=expect)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + body["name"])
        return d

    def action(self, name, verb, expect=200):
        return self.api("POST", "/api/v1/desktops/%s/%s" % (name, verb), expect=expect)

    def show(self, name):
        return self.api("GET", "/api/v1/desktops/" + name)

    def assertRefused(self, body, statuses, code=None):
        before = self.names("/api/v1/desktops")
        domains_before = sorted(d["domain"] for d in self.api("GET", "/api/v1/desktops"))
        status, err = self.daemon.status_of("POST", "/api/v1/desktops", body)
        self.assertIn(status, statuses, err)
        self.assertIsInstance(err, dict)
        self.assertTrue(err.get("error"), err)
        if code:
            self.assertEqual(err.get("code"), code, err)
        self.assertEqual(self.names("/api/v1/desktops"), before)
        self.assertEqual(sorted(d["domain"] for d in self.api("GET", "/api/v1/desktops")),
                         domains_before)
        if isinstance(body.get("name"), str) and body["name"] and "/" not in body["name"]:
            self.assertApiError(404, "GET", "/api/v1/desktops/" + quote(body["name"], safe=""))
        return err

    def test_create_stopped(self):
        name = self.unique("d")
        d = self.create(name)
        for key in DESKTOP_KEYS:
            self.assertIn(key, d)
        self.assertEqual(d["name"], name)
        self.assertEqual(d["state"], "stopped", d)
        self.assertEqual(d["host"], self.host)
        self.assertEqual(d["image"], self.image)
        self.assertEqual(d["template"], self.template)
        self.assertTrue(d["domain"].startswith(self.daemon.prefix + "-"), d["domain"])
        self.assertIn(name, d["domain"])
        self.assertRegex(d["uuid"], r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
        self.assertIsInstance(d["overlay"], dict)
        self.assertTrue(d["overlay"]["volume"])
        self.assertTrue(d["overlay"]["path"])
        self.assertIsNone(d["pool"])
        self.assertIsNone(d["user"])
        self.assertEqual(self.show(name), d)
        listed = [x for x in self.api("GET", "/api/v1/desktops") if x["name"] == name]
        self.assertEqual(listed, [d])
        # The image and host count it.
        self.assertGreaterEqual(self.api("GET", "/api/v1/images/" + self.image)["desktops"], 1)
        self.assertGreaterEqual(self.api("GET", "/api/v1/hosts/" + self.host)["desktops"], 1)

    def test_two_desktops_have_distinct_domains_and_overlays(self):
        a = self.create()
        b = self.create()
        self.assertNotEqual(a["domain"], b["domain"])
        self.assertNotEqual(a["uuid"], b["uuid"])
        self.assertNotEqual(a["overlay"]["path"], b["overlay"]["path"])

    def test_create_with_start(self):
        d = self.create(start=True)
        self.assertEqual(d["state"], "running", d)
        self.assertEqual(self.show(d["name"])["state"], "running")

    def test_lifecycle(self):
        name = self.create()["name"]
        d = self.action(name, "start")
        self.assertEqual(d["state"], "running", d)
        began = time.monotonic()
        d = self.action(name, "shutdown")
        # test:// shuts down at once; at worst the forced power-off follows
        # shutdown_timeout (3 s in the harness configuration).
        self.assertLess(time.monotonic() - began, 10)
        self.assertEqual(d["state"], "stopped", d)
        d = self.action(name, "start")
        self.assertEqual(d["state"], "running", d)
        d = self.action(name, "poweroff")
        self.assertEqual(d["state"], "stopped", d)
        self.assertEqual(self.show(name)["state"], "stopped")
        self.api("DELETE", "/api/v1/desktops/" + name, expect=204)
        self.assertNotIn(name, self.names("/api/v1/desktops"))
        self.assertApiError(404, "GET", "/api/v1/desktops/" + name)

    def test_start_twice_and_stop_stopped(self):
        name = self.create()["name"]
        # Stopping a stopped desktop and starting a running one either
        # succeed as no-ops or are refused with 409; never 500.
        for verb, state in (("shutdown", "stopped"), ("poweroff", "stopped"),
                            ("start", "running"), ("start", "running")):
            with self.subTest(verb=verb):
                status, body = self.daemon.status_of("POST", "/api/v1/desktops/%s/%s" % (name, verb))
                self.assertIn(status, (200, 409), body)
                self.assertEqual(self.show(name)["state"], state)

    def test_reset_stopped(self):
        d = self.create()
        r = self.action(d["name"], "reset")
        self.assertEqual(r["name"], d["name"])
        self.assertEqual(r["domain"], d["domain"])
        self.assertEqual(r["state"], "stopped", r)
        self.assertEqual(self.show(d["name"])["state"], "stopped")
        self.assertTrue(r["overlay"]["path"])

    def test_reset_running(self):
        d = self.create(start=True)
        r = self.action(d["name"], "reset")
        self.assertEqual(r["name"], d["name"])
        self.assertEqual(r["domain"], d["domain"])
        self.assertEqual(r["uuid"], d["uuid"])
        self.assertEqual(r["state"], "running", r)
        self.assertEqual(self.show(d["name"])["state"], "running")

    def test_delete_running(self):
        name = self.create(start=True)["name"]
        self.api("DELETE", "/api/v1/desktops/" + name, expect=204)
        self.assertNotIn(name, self.names("/api/v1/desktops"))

    def test_template_disk_smaller_than_image_400(self):
        path = os.path.join(self.daemon.tmp, "big-%s.qcow2" % kdtest.random_suffix())
        image = self.unique("big")
        self.api("PUT", "/api/v1/images/%s?host=%s" % (image, self.host),
                 raw=read_bytes(make_image(path, "qcow2", "2G")), expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/images/" + image)
        err = self.assertRefused({"name": self.unique("d"), "image": image,
                                  "template": self.template}, (400,), code="invalid")
        self.assertIn(self.template, err["error"])
        self.assertEqual(self.api("GET", "/api/v1/images/" + image)["desktops"], 0)

    def test_unknown_references(self):
        for key in ("image", "template", "host"):
            with self.subTest(missing=key):
                body = {"name": self.unique("d"), "image": self.image, "template": self.template,
                        "host": self.host}
                body[key] = self.unique("nosuch")
                err = self.assertRefused(body, (400, 404))
                self.assertIn(body[key], err["error"])

    def test_missing_fields(self):
        for key in ("name", "image", "template"):
            with self.subTest(missing=key):
                body = {"name": self.unique("d"), "image": self.image, "template": self.template}
                del body[key]
                self.assertRefused(body, (400,), code="invalid")
        self.assertRefused({"name": self.unique("d"), "image": self.image,
                            "template": self.template, "colour": "red"}, (400,), code="invalid")
        self.assertRefused({"name": self.unique("d"), "image": self.image,
                            "template": self.template, "start": "yes"}, (400,), code="invalid")

    def test_duplicate_409(self):
        first = self.create()
        err = self.assertApiError(409, "POST", "/api/v1/desktops",
                                  {"name": first["name"], "image": self.image,
                                   "template": self.template})
        self.assertEqual(err.get("code"), "exists")
        self.assertEqual(self.show(first["name"]), first)

    def test_bad_names_400(self):
        for bad in ("Upper", "a" * 64, "-lead", "", "a/b", "a b"):
            with self.subTest(name=bad):
                self.assertRefused({"name": bad, "image": self.image, "template": self.template},
                                   (400,), code="invalid")

    def test_unknown_desktop_404(self):
        name = self.unique("nosuch")
        for verb in ("start", "shutdown", "poweroff", "reset"):
            with self.subTest(verb=verb):
                err = self.assertApiError(404, "POST", "/api/v1/desktops/%s/%s" % (name, verb))
                self.assertEqual(err.get("code"), "not_found")
                self.assertIn(name, err["error"])
        self.assertApiError(404, "GET", "/api/v1/desktops/" + name)
        self.assertApiError(404, "DELETE", "/api/v1/desktops/" + name)
        self.assertNotIn(name, self.names("/api/v1/desktops"))

    def test_unknown_action_404(self):
        name = self.create()["name"]
        status, body = self.daemon.status_of("POST", "/api/v1/desktops/%s/explode" % name)
        self.assertIn(status, (400, 404, 405), body)
        self.assertEqual(self.show(name)["state"], "stopped")

    def test_events_recorded(self):
        name = self.create()["name"]
        self.action(name, "start")
        events = self.api("GET", "/api/v1/events?object_type=desktop&object_name=%s" % name)
        self.assertIsInstance(events, list)
        self.assertTrue(events, "no event recorded for desktop '%s'" % name)
        for e in events:
            self.assertEqual(e["object_name"], name)
            self.assertEqual(e["object_type"], "desktop")
        self.assertTrue(any(e.get("to_state") == "running" for e in events), events)
        ids = [e["id"] for e in events]
        self.assertEqual(ids, sorted(ids, reverse=True), "events must be newest first")


if __name__ == "__main__":
    unittest.main()
