"""A host that goes away and comes back: keepalive, close callback, backoff.

The host is the real local libvirtd reached through a unix-socket proxy that
the test owns (qemu+unix:///system?socket=PROXY). Stopping the proxy cuts the
connection as a dead network or a restarted libvirtd would; kvmdeskd must mark
the host down with the reason, refuse work on it with a clear 503, and
reconnect on its own once the proxy is back.
"""

import os
import subprocess
import tempfile
import time
import unittest

import e2elib
import kdtest

from sockproxy import SocketProxy


class HostReconnectTest(unittest.TestCase):

    def setUp(self):
        e2elib.require_system_libvirt()
        self.tmp = tempfile.mkdtemp(prefix="kdproxy-")
        self.proxy = SocketProxy(os.path.join(self.tmp, "sock"))
        self.proxy.start()
        self.addCleanup(self.proxy.stop)
        self.daemon = kdtest.Daemon()
        self.addCleanup(self.daemon.cleanup)
        self.daemon.start()
        self.addCleanup(self._remove_pool)

    def _remove_pool(self):
        for cmd in (["pool-destroy", self.daemon.pool], ["pool-undefine", self.daemon.pool]):
            subprocess.run(["virsh", "-c", "qemu:///system", *cmd], capture_output=True)

    def wait_state(self, name, state, timeout=30):
        deadline = time.time() + timeout
        host = None
        while time.time() < deadline:
            host = self.daemon.request("GET", "/api/v1/hosts/" + name)
            if host["state"] == state:
                return host
            time.sleep(0.2)
        self.fail("host %r did not become %r in %ds: %r\n%s" % (name, state, timeout, host,
                                                               self.daemon.read_log()))

    def test_down_and_back(self):
        d = self.daemon
        uri = "qemu+unix:///system?socket=" + self.proxy.path
        host = d.request("POST", "/api/v1/hosts", {"name": "proxied", "uri": uri})
        self.assertEqual(host["state"], "up")
        self.assertIsNone(host["last_error"])

        # The network goes away: the close callback marks the host down.
        self.proxy.stop()
        down = self.wait_state("proxied", "down")
        self.assertTrue(down["last_error"], down)
        # Work on a down host is refused with a clear answer, not a hang.
        status, body = d.status_of("POST", "/api/v1/templates", {"name": "t1", "memory_mib": 64, "disk_gib": 1})
        self.assertIn(status, (200, 201))
        status, body = d.status_of("PUT", "/api/v1/images/img1?host=proxied", raw=b"\0" * 1024)
        self.assertEqual(status, 503, body)
        self.assertIn("proxied", body["error"])

        # While it stays away, kvmdeskd keeps trying (backoff) and stays up itself.
        time.sleep(3)
        self.assertEqual(d.request("GET", "/healthz", auth=False)["status"], "ok")
        self.assertEqual(d.request("GET", "/api/v1/hosts/proxied")["state"], "down")

        # It comes back: reconnected without anyone asking.
        self.proxy.start()
        up = self.wait_state("proxied", "up", timeout=30)
        self.assertIsNone(up["last_error"])
        self.assertGreater(up["cpus"], 0)

        events = d.request("GET", "/api/v1/events?object_type=host&object_name=proxied&limit=50")
        transitions = [(e["from_state"], e["to_state"]) for e in reversed(events) if e["action"] == "state"]
        self.assertIn("down", [t for _, t in transitions], events)
        self.assertEqual(transitions[-1][1], "up", events)
        self.assertTrue(any("connection lost" in e["message"] or "unreachable" in e["message"]
                            for e in events), events)

        d.request("DELETE", "/api/v1/hosts/proxied", expect=204)

    def test_desktops_unknown_while_down(self):
        """Desktops of a host that is down are 'unknown' (not given out, not
        deleted); when it is back the reconciler restores what they are."""
        if not os.path.exists(kdtest.TEST_IMAGE):
            if kdtest.require_e2e():
                self.fail("the test desktop image %s is missing" % kdtest.TEST_IMAGE)
            self.skipTest("the test desktop image is missing")
        d = self.daemon
        self.addCleanup(self._remove_desktops)
        uri = "qemu+unix:///system?socket=" + self.proxy.path
        d.request("POST", "/api/v1/hosts", {"name": "proxied", "uri": uri})
        with open(kdtest.TEST_IMAGE, "rb") as f:
            d.request("PUT", "/api/v1/images/td?host=proxied", raw=f.read())
        d.request("POST", "/api/v1/templates", {"name": "t1", "memory_mib": 96, "disk_gib": 1})
        d.request("POST", "/api/v1/desktops", {"name": "on", "image": "td", "template": "t1",
                                               "start": True})
        d.request("POST", "/api/v1/desktops", {"name": "off", "image": "td", "template": "t1"})
        self.wait_desktop("on", "running")
        self.wait_desktop("off", "stopped")

        self.proxy.stop()
        self.wait_state("proxied", "down")
        for name in ("on", "off"):
            desk = self.wait_desktop(name, "unknown")
            self.assertEqual(desk["state_reason"], "host 'proxied' is down")
        # The guest itself runs on: only the broker lost sight of it.
        self.assertEqual(e2elib.domain_state(d.prefix + "-on"), "running")

        self.proxy.start()
        self.wait_state("proxied", "up")
        self.wait_desktop("on", "running")
        self.wait_desktop("off", "stopped")
        events = d.request("GET", "/api/v1/events?desktop=on&limit=50")
        states = [e["to_state"] for e in reversed(events) if e["to_state"]]
        self.assertIn("unknown", states, events)
        self.assertEqual(states[-1], "running", events)

    def wait_desktop(self, name, state, timeout=60):
        deadline = time.time() + timeout
        desk = None
        while time.time() < deadline:
            desk = self.daemon.request("GET", "/api/v1/desktops/" + name)
            if desk["state"] == state:
                return desk
            time.sleep(0.2)
        self.fail("desktop %r did not become %r: %r" % (name, state, desk))

    def _remove_desktops(self):
        self.daemon.stop()
        e2elib.remove_domains([self.daemon.prefix + "-on", self.daemon.prefix + "-off"])
        e2elib.remove_libvirt_objects(self.daemon.prefix, self.daemon.pool)


if __name__ == "__main__":
    unittest.main()
