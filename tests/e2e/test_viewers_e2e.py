"""Native viewers and the console's other paths, against real QEMU (issue 4).

- console.vv: the file names the desktop's VNC display and a password set
  on it through libvirt; the display offers only VNC authentication (its
  port alone is not enough), the password lets an RFB client in, keys
  typed reach the test desktop, and after the file's ttl the password no
  longer works. The native viewer appears in the desktop's viewers (from
  libvirt's graphics events) and makes the desktop connected, then
  disconnected when it leaves.
- SPICE templates: the .vv file is SPICE and its port answers the SPICE
  link handshake; the browser console still works (VNC beside it).
- A host whose console_access is tcp: the gateway reaches QEMU over TCP
  with a one-time VNC password, the browser is offered "None", keys are
  echoed, and the gateway's own TCP connection is not counted as a native
  viewer.
- takeover vs share: a second console ends the first, or joins it.
- counters: connections and bytes per desktop.
"""

import configparser
import os
import socket
import struct
import subprocess
import time
import unittest

import e2elib
import kdtest
from test_console_e2e import WebSocket

CONFIG = ("[broker]\npolicy_interval = 1\n[api]\nlogin_attempts = 10000\n")
VNC_AUTH = os.path.join(os.environ.get("KD_BUILD_DIR", "build"), "tests", "e2e", "kd-vnc-auth")


class RfbClient:
    """An RFB 3.8 client over TCP, as remote-viewer would be."""

    def __init__(self, host, port, timeout=20):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the VNC server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def security_types(self):
        self.assert_version()
        n = self.read(1)[0]
        if n == 0:
            reason_len = struct.unpack("!I", self.read(4))[0]
            raise ConnectionError(self.read(reason_len).decode(errors="replace"))
        return list(self.read(n))

    def assert_version(self):
        version = self.read(12)
        if not version.startswith(b"RFB 003."):
            raise AssertionError("not an RFB server: %r" % version)
        self.sock.sendall(b"RFB 003.008\n")

    def vnc_auth(self, password):
        """Chooses VNC authentication; returns True when the server accepts."""
        self.sock.sendall(b"\x02")
        challenge = self.read(16)
        out = subprocess.run([VNC_AUTH, password, challenge.hex()], check=True,
                             capture_output=True, text=True).stdout.strip()
        self.sock.sendall(bytes.fromhex(out))
        return struct.unpack("!I", self.read(4))[0] == 0

    def init(self):
        self.sock.sendall(b"\x01")                     # ClientInit, shared
        w, h = struct.unpack("!HH", self.read(4))
        self.read(16)
        name = self.read(struct.unpack("!I", self.read(4))[0]).decode(errors="replace")
        return w, h, name

    def type(self, text):
        for ch in text:
            self.sock.sendall(struct.pack("!BBxxI", 4, 1, ord(ch)))
            self.sock.sendall(struct.pack("!BBxxI", 4, 0, ord(ch)))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def parse_vv(text):
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(text)
    return cp["virt-viewer"]


def rfb_through_gateway(ws):
    """The browser's side of RFB through the gateway; returns (w, h, name)."""
    assert ws.read(12) == b"RFB 003.008\n"
    ws.send(b"RFB 003.008\n")
    n = ws.read(1)[0]
    types = list(ws.read(n))
    assert types == [1], "the browser must be offered None only, got %r" % types
    ws.send(b"\x01")
    assert struct.unpack("!I", ws.read(4))[0] == 0
    ws.send(b"\x01")
    w, h = struct.unpack("!HH", ws.read(4))
    ws.read(16)
    name = ws.read(struct.unpack("!I", ws.read(4))[0]).decode(errors="replace")
    return w, h, name


class ViewersE2E(unittest.TestCase):

    host_uri = "qemu:///system"
    host_fields = {}

    def setUp(self):
        e2elib.require_system_libvirt()
        if not os.path.exists(kdtest.TEST_IMAGE):
            if kdtest.require_e2e():
                self.fail("the test desktop image %s is missing" % kdtest.TEST_IMAGE)
            self.skipTest("the test desktop image %s is missing" % kdtest.TEST_IMAGE)
        if not os.access(VNC_AUTH, os.X_OK):
            self.fail("%s is missing: build the project first" % VNC_AUTH)
        self.daemon = kdtest.Daemon(config=CONFIG)
        self.addCleanup(self.cleanup)
        self.daemon.start()
        d = self.daemon
        body = {"name": "local", "uri": self.host_uri}
        body.update(self.host_fields)
        d.request("POST", "/api/v1/hosts", body)
        with open(kdtest.TEST_IMAGE, "rb") as f:
            d.request("PUT", "/api/v1/images/td?host=local", raw=f.read())
        d.request("POST", "/api/v1/templates", {"name": "t1", "vcpus": 1, "memory_mib": 96,
                                                "disk_gib": 1})
        d.request("POST", "/api/v1/users", {"name": "alice", "password": "alice-pass-1"})
        self.origin = d.url

    def cleanup(self):
        names = []
        try:
            names = [x["domain"] for x in self.daemon.request("GET", "/api/v1/desktops")]
        except Exception:
            pass
        self.daemon.stop()
        e2elib.remove_domains(names)
        e2elib.remove_libvirt_objects(self.daemon.prefix, self.daemon.pool)
        self.daemon.cleanup()

    def as_user(self, name, password):
        c = kdtest.Daemon.__new__(kdtest.Daemon)
        c.__dict__.update(self.daemon.__dict__)
        c.token = None
        c.login(name, password)
        return c

    def wait_desktop(self, name, predicate, what, timeout=60):
        deadline = time.time() + timeout
        d = None
        while time.time() < deadline:
            d = self.daemon.request("GET", "/api/v1/desktops/" + name)
            if predicate(d):
                return d
            time.sleep(0.2)
        self.fail("desktop %s: %s did not happen: %r" % (name, what, d))

    def alice_desktop(self, pool="office", template="t1", **pool_fields):
        body = {"name": pool, "image": "td", "template": template, "size": 1,
                "users": ["alice"]}
        body.update(pool_fields)
        self.daemon.request("POST", "/api/v1/pools", body)
        alice = self.as_user("alice", "alice-pass-1")
        desk = alice.request("POST", "/api/v1/pools/%s/desktop" % pool)
        self.wait_desktop(desk["name"], lambda d: d["state"] == "assigned", "assigned")
        e2elib.wait_for_prompt(desk["domain"])
        return alice, desk

    def open_console(self, client, name):
        t = client.request("POST", "/api/v1/desktops/%s/console" % name)
        ws = WebSocket(self.daemon.url, t["path"], self.origin)
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, 101, ws.body)
        return ws


class NativeViewerE2E(ViewersE2E):

    def get_vv(self, client, name, query=""):
        status, text = client.exchange("GET", "/api/v1/desktops/%s/console.vv%s" % (name, query))
        self.assertEqual(status, 200, text)
        return parse_vv(text)

    def test_vv_password_and_graphics_events(self):
        alice, desk = self.alice_desktop()
        name, domain = desk["name"], desk["domain"]

        vv = self.get_vv(alice, name, "?ttl=4&fullscreen=1")
        self.assertEqual(vv["type"], "vnc")
        self.assertEqual(vv["host"], "127.0.0.1")
        self.assertEqual(vv["fullscreen"], "1")
        self.assertEqual(vv["title"], name)
        self.assertEqual(len(vv["password"]), 8)
        port = int(vv["port"])

        # The display asks for a password: its port alone is not enough.
        bare = RfbClient(vv["host"], port)
        self.assertEqual(bare.security_types(), [2])
        self.assertFalse(bare.vnc_auth("wrong-pw"), "a wrong password must be refused")
        bare.close()

        viewer = RfbClient(vv["host"], port)
        self.addCleanup(viewer.close)
        self.assertEqual(viewer.security_types(), [2])
        self.assertTrue(viewer.vnc_auth(vv["password"]), "the .vv password must let the viewer in")
        w, h, server_name = viewer.init()
        self.assertEqual((w, h), (720, 400))
        self.assertIn(domain, server_name)
        viewer.type("vv")
        e2elib.wait_for_prompt(domain, typed="vv")

        # libvirt's graphics event made it a viewer: connected.
        d = self.wait_desktop(name, lambda d: d["state"] == "connected", "connected")
        kinds = [v["kind"] for v in d["console"]["viewers"]]
        self.assertEqual(kinds, ["native"], d["console"])
        self.assertTrue(d["console"]["viewers"][0]["client"].startswith("127.0.0.1:"))
        events = self.daemon.request("GET", "/api/v1/events?desktop=%s&limit=200" % name)
        self.assertTrue([e for e in events if e["action"] == "viewer-pass"], "issuing is recorded")
        self.assertTrue([e for e in events if e["action"] == "viewer" and "native viewer" in e["message"]],
                        events[:10])
        self.assertFalse([e for e in events if vv["password"] in (e.get("message") or "")],
                         "the password must never be in an event")

        # The viewer leaves: disconnected.
        viewer.close()
        d = self.wait_desktop(name, lambda d: d["state"] == "disconnected", "disconnected")
        self.assertEqual(d["console"]["viewers"], [])

        # After the ttl the same password no longer opens the display.
        time.sleep(5)
        late = RfbClient(vv["host"], port)
        self.addCleanup(late.close)
        self.assertEqual(late.security_types(), [2])
        self.assertFalse(late.vnc_auth(vv["password"]), "an expired password must be refused")

    def test_display_password_added_on_start(self):
        """A desktop defined by an older kvmdesk (a display without a
        password) refuses one-time passwords with a sentence while it runs,
        and gets a secret password when it starts again."""
        d = self.daemon
        d.request("POST", "/api/v1/desktops", {"name": "old", "image": "td", "template": "t1"})
        desk = self.wait_desktop("old", lambda x: x["state"] == "stopped", "stopped")
        domain = desk["domain"]
        xml = e2elib.virsh("dumpxml", "--security-info", "--inactive", domain)
        self.assertIn("passwd=", xml)
        import re
        old = re.sub(r" passwd='[^']*'", "", xml)
        path = os.path.join(d.tmp, "old.xml")
        with open(path, "w") as f:
            f.write(old)
        e2elib.virsh("define", path)
        self.assertNotIn("passwd=", e2elib.virsh("dumpxml", "--security-info", "--inactive", domain))
        # Started outside kvmdesk (as an older one did): no password to change.
        e2elib.virsh("start", domain)
        self.wait_desktop("old", lambda x: x["state"] == "running", "running")
        status, err = d.exchange("GET", "/api/v1/desktops/old/console.vv")
        self.assertEqual(status, 409, err)
        self.assertIn("restart the desktop once", err["error"])
        d.request("POST", "/api/v1/desktops/old/poweroff")
        self.wait_desktop("old", lambda x: x["state"] == "stopped", "stopped")
        d.request("POST", "/api/v1/desktops/old/start")
        self.wait_desktop("old", lambda x: x["state"] == "running", "running")
        self.assertIn("passwd=", e2elib.virsh("dumpxml", "--security-info", "--inactive", domain))
        status, text = d.exchange("GET", "/api/v1/desktops/old/console.vv")
        self.assertEqual(status, 200, text)
        vv = parse_vv(text)
        viewer = RfbClient(vv["host"], int(vv["port"]))
        self.addCleanup(viewer.close)
        self.assertEqual(viewer.security_types(), [2])
        self.assertTrue(viewer.vnc_auth(vv["password"]))

    def test_spice_template(self):
        self.daemon.request("POST", "/api/v1/templates", {"name": "tsp", "vcpus": 1,
                                                          "memory_mib": 96, "disk_gib": 1,
                                                          "display": "spice"})
        alice, desk = self.alice_desktop(pool="spicy", template="tsp")
        vv = self.get_vv(alice, desk["name"])
        self.assertEqual(vv["type"], "spice")
        self.assertEqual(len(vv["password"]), 20)
        # The port speaks SPICE: a link message gets a SPICE link reply.
        s = socket.create_connection((vv["host"], int(vv["port"])), timeout=20)
        self.addCleanup(s.close)
        link = struct.pack("<IIIBBII", 0, 1, 0, 0, 0, 0, 18)   # main channel, no caps
        s.sendall(b"REDQ" + struct.pack("<III", 2, 2, len(link)) + link)
        self.assertEqual(s.recv(4), b"REDQ", "the .vv port must be a SPICE server")
        # The browser console still works: VNC sits beside SPICE.
        ws = self.open_console(alice, desk["name"])
        w, h, server_name = rfb_through_gateway(ws)
        self.assertIn(desk["domain"], server_name)

    def test_takeover_share_and_counters(self):
        alice, desk = self.alice_desktop()
        name, domain = desk["name"], desk["domain"]
        first = self.open_console(alice, name)
        rfb_through_gateway(first)
        second = self.open_console(alice, name)
        w, h, _ = rfb_through_gateway(second)
        # A full framebuffer update: the bytes the counters must see.
        second.send(struct.pack("!BBHHHH", 3, 0, 0, 0, w, h))
        second.read(5000)
        # takeover (the default): the first console is closed with a reason.
        with self.assertRaises(ConnectionError) as cm:
            for _ in range(200):
                first.read(1)
        self.assertIn(b"taken over", str(cm.exception).encode())
        second.close()
        d = self.wait_desktop(name, lambda d: d["state"] == "disconnected", "disconnected")
        self.assertEqual(d["console"]["connections"], 2)
        self.assertGreater(d["console"]["bytes_out"], 1000, d["console"])
        self.assertGreater(d["console"]["bytes_in"], 10, d["console"])

        # share: both stay, both are listed.
        self.daemon.request("PATCH", "/api/v1/pools/office", {"console_mode": "share"})
        a = self.open_console(alice, name)
        rfb_through_gateway(a)
        b = self.open_console(alice, name)
        rfb_through_gateway(b)
        d = self.wait_desktop(name, lambda d: len(d["console"]["viewers"]) == 2, "two viewers")
        self.assertEqual(d["console"]["mode"], "share")
        # Open consoles count live: each viewer has its bytes so far.
        for v in d["console"]["viewers"]:
            self.assertEqual(v["kind"], "browser")
            self.assertEqual(v["user"], "alice")
            self.assertGreater(v["bytes_out"], 12, v)
        self.assertEqual(d["state"], "connected")
        # Both still carry the desktop: a key from one is echoed on the screen.
        a.send(struct.pack("!BBxxI", 4, 1, ord("s")))
        a.send(struct.pack("!BBxxI", 4, 0, ord("s")))
        e2elib.wait_for_prompt(domain, typed="s")
        a.close()
        d = self.wait_desktop(name, lambda d: len(d["console"]["viewers"]) == 1, "one viewer left")
        self.assertEqual(d["state"], "connected", "one viewer is still there")
        b.close()
        self.wait_desktop(name, lambda d: d["state"] == "disconnected", "disconnected")


class TcpConsoleE2E(ViewersE2E):
    """The path of a remote host, on this machine: a host whose consoles go
    over TCP with a one-time VNC password."""

    host_uri = "qemu+unix:///system"
    host_fields = {"console_access": "tcp"}

    def test_console_over_tcp(self):
        host = self.daemon.request("GET", "/api/v1/hosts/local")
        self.assertEqual(host["console_path"], "tcp")
        alice, desk = self.alice_desktop()
        name, domain = desk["name"], desk["domain"]
        ws = self.open_console(alice, name)
        w, h, server_name = rfb_through_gateway(ws)
        self.assertEqual((w, h), (720, 400))
        self.assertIn(domain, server_name)
        for ch in "tcp":
            ws.send(struct.pack("!BBxxI", 4, 1, ord(ch)))
            ws.send(struct.pack("!BBxxI", 4, 0, ord(ch)))
        e2elib.wait_for_prompt(domain, typed="tcp")
        d = self.wait_desktop(name, lambda d: d["state"] == "connected", "connected")
        # Our own TCP connection is the browser's viewer, not a native one.
        time.sleep(1)
        d = self.daemon.request("GET", "/api/v1/desktops/" + name)
        self.assertEqual([v["kind"] for v in d["console"]["viewers"]], ["browser"], d["console"])
        ws.close()
        self.wait_desktop(name, lambda d: d["state"] == "disconnected", "disconnected")


if __name__ == "__main__":
    unittest.main()
