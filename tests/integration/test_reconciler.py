"""The reconciler, seen through the REST API, on libvirt's test:// driver.

test:///default keeps its state in the daemon's memory only: when kvmdeskd
restarts, every domain and volume it made there is gone while its database
still holds the desktops. That is exactly the split the reconciler exists
for: after the restart it must mark every such desktop `error`, say that the
domain is missing, report the problem, and call nothing healthy.
"""

import os
import unittest

import kdtest
from kdtest import DaemonTestCase, make_image, read_bytes, wait_until


class ReconcilerTest(DaemonTestCase):
    daemon_config = "[reconciler]\ninterval = 2\n"

    def assertReport(self, report):
        self.assertIsInstance(report, dict, report)
        for key in ("last_run", "running", "orphans", "problems"):
            self.assertIn(key, report)
        self.assertIsInstance(report["running"], bool)
        self.assertIsInstance(report["orphans"], list)
        self.assertIsInstance(report["problems"], list)
        for o in report["orphans"]:
            self.assertIsInstance(o, dict, "an orphan must be an object: %r" % (o,))
            for key in ("host", "kind", "name", "detail"):
                self.assertIn(key, o)
            self.assertIn(o["kind"], ("domain", "volume"))
        for p in report["problems"]:
            self.assertIsInstance(p, dict, "a problem must be an object: %r" % (p,))
            for key in ("desktop", "problem"):
                self.assertIn(key, p)
            self.assertTrue(p["problem"])

    def test_report_after_start(self):
        report = wait_until(lambda: (lambda r: r if r.get("last_run") else None)(
            self.api("GET", "/api/v1/reconciler")), timeout=20, what="a first reconciler run")
        self.assertReport(report)
        self.assertRegex(report["last_run"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
        now = self.api("POST", "/api/v1/reconciler/run")
        self.assertReport(now)
        self.assertGreaterEqual(now["last_run"], report["last_run"])

    def test_restart_loses_test_domains(self):
        host = self.unique("rhost")
        self.api("POST", "/api/v1/hosts", {"name": host, "uri": "test:///default"}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/hosts/" + host)
        image = self.unique("rimg")
        path = make_image(os.path.join(self.daemon.tmp, image + ".qcow2"), "qcow2", "64M")
        self.api("PUT", "/api/v1/images/%s?host=%s" % (image, host), raw=read_bytes(path),
                 expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/images/" + image)
        template = self.unique("rtpl")
        self.api("POST", "/api/v1/templates", {"name": template, "disk_gib": 1}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/templates/" + template)
        desktops = {}
        for start in (False, True):
            name = self.unique("rd")
            d = self.api("POST", "/api/v1/desktops",
                         {"name": name, "image": image, "template": template, "start": start},
                         expect=201)
            self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + name)
            desktops[name] = d

        # Before the restart, the reconciler finds nothing wrong with them.
        report = self.api("POST", "/api/v1/reconciler/run")
        self.assertReport(report)
        self.assertEqual([p for p in report["problems"] if p["desktop"] in desktops], [])
        for name, d in desktops.items():
            self.assertIn(self.api("GET", "/api/v1/desktops/" + name)["state"],
                          ("stopped", "running"))

        self.daemon.restart()

        # The database still knows every desktop...
        after = {d["name"]: d for d in self.api("GET", "/api/v1/desktops") if d["name"] in desktops}
        self.assertEqual(sorted(after), sorted(desktops))
        for name, d in after.items():
            for key in ("host", "image", "template", "domain", "uuid"):
                self.assertEqual(d[key], desktops[name][key], key)

        # ...but their domains vanished with test:///default's memory.
        def all_error():
            self.api("POST", "/api/v1/reconciler/run")
            states = {n: self.api("GET", "/api/v1/desktops/" + n) for n in desktops}
            return states if all(d["state"] == "error" for d in states.values()) else None

        states = wait_until(all_error, timeout=30, interval=0.5,
                            what="the desktops to be marked error after the restart")
        for name, d in states.items():
            reason = (d["state_reason"] or "").lower()
            self.assertTrue(reason, d)
            self.assertTrue("domain" in reason or d["domain"].lower() in reason, d)
            self.assertTrue(any(w in reason for w in ("missing", "not found", "no such",
                                                      "vanished", "gone", "does not exist",
                                                      "no longer exists")),
                            "state_reason should say the domain is missing: %r" % reason)

        report = self.api("GET", "/api/v1/reconciler")
        self.assertReport(report)
        reported = {p["desktop"] for p in report["problems"]}
        self.assertEqual(reported & set(desktops), set(desktops), report)
        # Nothing of ours is reported healthy: no desktop in a power state.
        for d in self.api("GET", "/api/v1/desktops"):
            if d["name"] in desktops:
                self.assertEqual(d["state"], "error")

        # An error desktop can still be removed by the operator.
        for name in desktops:
            self.api("DELETE", "/api/v1/desktops/" + name, expect=204)
            self.assertApiError(404, "GET", "/api/v1/desktops/" + name)


if __name__ == "__main__":
    unittest.main()
