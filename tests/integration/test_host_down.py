"""A simulated host that disappears and returns (issue 5, host health).

libvirtd serves the test driver too: `test+unix:///default?socket=PROXY`
reaches its shared test:///default through a unix-socket proxy the test
owns (tests/pylib/sockproxy.py). Stopping the proxy is a host that goes
away: kvmdeskd marks it down, its desktops `unknown` (not given out, not
deleted), the scheduler refuses it by name ("down") and places elsewhere;
when it is back the host is up again by itself, its desktops are restored
from libvirt's state by the reconciler, and it takes desktops again.

Needs libvirtd running (it is for the e2e tests; KD_REQUIRE_E2E=1 makes a
missing one a failure). Everything made on libvirtd's test:///default
carries this daemon's prefix and pool and is removed after.
"""

import os
import shutil
import subprocess
import tempfile
import time
import unittest

import kdtest
from kdtest import DaemonTestCase, make_image, random_suffix, read_bytes, wait_until
from sockproxy import LIBVIRT_SOCK, SocketProxy

NODE = """<node>
  <cpu><mhz>2000</mhz><model>x86_64</model><active>4</active><nodes>1</nodes>
       <sockets>1</sockets><cores>4</cores><threads>1</threads></cpu>
  <memory>8388608</memory>
</node>
"""
SHARED = "test+unix:///default"


def virsh_shared(*args):
    return subprocess.run(["virsh", "-q", "-c", SHARED, *args], capture_output=True, text=True,
                          timeout=60)


class HostDownTest(DaemonTestCase):

    daemon_config = "[broker]\npolicy_interval = 1\n[reconciler]\ninterval = 2\n"

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(LIBVIRT_SOCK) or virsh_shared("version").returncode != 0:
            if kdtest.require_e2e():
                raise AssertionError("libvirtd does not answer on %s (needed for this test)" % LIBVIRT_SOCK)
            raise unittest.SkipTest("libvirtd does not answer on %s" % LIBVIRT_SOCK)
        super().setUpClass()

    def setUp(self):
        # libvirtd frees its shared test:///default when the last client
        # leaves: a virsh shell holds it while kvmdeskd's connection is cut,
        # as a host's own state outlives a network outage.
        self.holder = subprocess.Popen(["virsh", "-q", "-c", SHARED], stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(self.release_holder)
        self.tmp = tempfile.mkdtemp(prefix="kdflaky-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.proxy = SocketProxy(os.path.join(self.tmp, "sock"))
        self.proxy.start()
        self.addCleanup(self.proxy.stop)
        self.addCleanup(self.remove_shared)
        d = self.daemon
        self.flaky = "flaky-" + random_suffix(4)
        self.steady = "steady-" + random_suffix(4)
        node = os.path.join(d.tmp, "node-%s.xml" % self.steady)
        with open(node, "w") as f:
            f.write(NODE)
        self.api("POST", "/api/v1/hosts", {"name": self.flaky,
                                           "uri": SHARED + "?socket=" + self.proxy.path}, expect=201)
        self.api("POST", "/api/v1/hosts", {"name": self.steady, "uri": "test://" + node}, expect=201)
        image = read_bytes(make_image(os.path.join(d.tmp, "img.qcow2"), "qcow2", "64M"))
        self.image = "img-" + random_suffix()
        self.api("PUT", "/api/v1/images/%s?host=%s" % (self.image, self.flaky), raw=image, expect=201)
        self.api("POST", "/api/v1/images/%s/copy" % self.image, {"host": self.steady})
        self.template = "t-" + random_suffix()
        self.api("POST", "/api/v1/templates", {"name": self.template, "vcpus": 1, "memory_mib": 256,
                                               "disk_gib": 1}, expect=201)

    def release_holder(self):
        self.holder.stdin.close()
        try:
            self.holder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.holder.kill()

    def remove_shared(self):
        """What this daemon made on libvirtd's shared test:///default."""
        d = self.daemon
        self.proxy.start()
        for name in ("on-flaky", "after", "back"):
            d.status_of("DELETE", "/api/v1/desktops/" + name)
        d.status_of("DELETE", "/api/v1/images/%s" % self.image)
        for host in (self.flaky, self.steady):
            d.status_of("DELETE", "/api/v1/hosts/" + host)
        r = virsh_shared("list", "--all", "--name")
        for name in r.stdout.split():
            if name.startswith(d.prefix):
                virsh_shared("destroy", name)
                virsh_shared("undefine", name)
        if virsh_shared("pool-info", d.pool).returncode == 0:
            for line in virsh_shared("vol-list", d.pool).stdout.splitlines():
                if line.split():
                    virsh_shared("vol-delete", line.split()[0], "--pool", d.pool)
            virsh_shared("pool-destroy", d.pool)
            virsh_shared("pool-undefine", d.pool)

    def host_state(self, name):
        return self.api("GET", "/api/v1/hosts/" + name)["state"]

    def test_down_and_back(self):
        self.api("POST", "/api/v1/desktops", {"name": "on-flaky", "image": self.image,
                                              "template": self.template, "host": self.flaky,
                                              "start": True}, expect=201)
        wait_until(lambda: self.api("GET", "/api/v1/desktops/on-flaky")["state"] == "running",
                   timeout=30, what="the desktop on the flaky host running")

        self.proxy.stop()
        wait_until(lambda: self.host_state(self.flaky) == "down", timeout=30, what="host down")
        desk = wait_until(lambda: (lambda x: x if x["state"] == "unknown" else None)(
            self.api("GET", "/api/v1/desktops/on-flaky")), timeout=30, what="its desktop unknown")
        self.assertEqual(desk["state_reason"], "host '%s' is down" % self.flaky)
        # Placement goes around it, and says so when it is the only choice.
        after = self.api("POST", "/api/v1/desktops", {"name": "after", "image": self.image,
                                                      "template": self.template}, expect=201)
        self.assertEqual(after["host"], self.steady)
        pool = "only-flaky-" + random_suffix(4)
        self.api("POST", "/api/v1/pools", {"name": pool, "image": self.image, "template": self.template,
                                           "size": 1, "warm": 1, "hosts": [self.flaky]}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/pools/" + pool)
        events = wait_until(lambda: [e for e in self.api("GET", "/api/v1/events?limit=100")
                                     if e["action"] == "placement" and pool in e["message"]],
                            timeout=30, what="the pool's placement problem")
        self.assertIn("%s: down" % self.flaky, events[0]["message"])

        # Back: up by itself, the desktop restored, the host used again.
        self.proxy.start()
        wait_until(lambda: self.host_state(self.flaky) == "up", timeout=30, what="host up again")
        wait_until(lambda: self.api("GET", "/api/v1/desktops/on-flaky")["state"] == "running",
                   timeout=30, what="its desktop restored")
        wait_until(lambda: [d for d in self.api("GET", "/api/v1/desktops")
                            if d.get("pool") == pool and d["host"] == self.flaky],
                   timeout=30, what="the pool placed on the host again")
        self.daemon.status_of("DELETE", "/api/v1/pools/" + pool)


if __name__ == "__main__":
    unittest.main()
