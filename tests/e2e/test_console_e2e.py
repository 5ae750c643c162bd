"""The browser console path against real QEMU: ticket, WebSocket, RFB.

A WebSocket client written here (stdlib sockets, masked frames as a browser
sends them) asks kvmdeskd for a console ticket, upgrades /api/v1/console,
and speaks RFB through the gateway: it must be offered security "None"
(the gateway did QEMU's handshake), get the desktop's ServerInit (its
screen size and libvirt domain name), and its key events must reach the
test desktop, whose screen then echoes them. The desktop's session record
goes connected and, when the client leaves, disconnected. Used, forged and
foreign tickets and a wrong Origin are refused before any byte reaches QEMU.
The same runs once more over HTTPS (wss://, through libmicrohttpd's TLS
forwarding of upgraded connections) with a self-signed certificate.
"""

import base64
import os
import socket
import ssl
import struct
import time
import unittest
import urllib.parse

import e2elib
import kdtest

CONFIG = ("[broker]\npolicy_interval = 1\n[api]\nlogin_attempts = 10000\n")


class WebSocket:
    """A minimal RFC 6455 client: binary frames, masked, as a browser does."""

    def __init__(self, url, path, origin, timeout=20, context=None):
        """url: the daemon's http(s):// base URL; an https one is spoken over
        TLS trusting @context."""
        scheme, rest = url.split("://", 1)
        host, port = rest.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        if scheme == "https":
            self.sock = context.wrap_socket(self.sock, server_hostname=host)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: binary\r\n" % (path, host, port, key))
        if origin:
            req += "Origin: %s\r\n" % origin
        self.sock.sendall((req + "\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            head += chunk
        head, _, self.pending = head.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        self.headers = {k.strip().lower(): v.strip() for k, _, v in
                        (l.partition(":") for l in lines[1:])}
        self.body = self.pending
        self.data = b""

    def send(self, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x82, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x82, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x82, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def _recv_exact(self, n):
        while len(self.pending) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the gateway closed the connection")
            self.pending += chunk
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def _frame(self):
        b0, b1 = self._recv_exact(2)
        opcode, n = b0 & 0x0F, b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._recv_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._recv_exact(8))[0]
        if b1 & 0x80:
            raise AssertionError("a server must not mask its frames")
        return opcode, self._recv_exact(n)

    def read(self, n):
        """n bytes of the RFB stream, across WebSocket messages."""
        while len(self.data) < n:
            opcode, payload = self._frame()
            if opcode == 0x8:
                raise ConnectionError("closed by the gateway: %r" % payload[2:])
            if opcode == 0x9:                      # ping
                continue
            self.assert_binary(opcode)
            self.data += payload
        out, self.data = self.data[:n], self.data[n:]
        return out

    @staticmethod
    def assert_binary(opcode):
        if opcode not in (0x0, 0x2):
            raise AssertionError("unexpected WebSocket opcode %d" % opcode)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def desk_uuid(daemon, name):
    return daemon.request("GET", "/api/v1/desktops/" + name)["uuid"].lower()


def read_framebuffer(ws, w, h):
    """Asks for a full update and assembles it: rows of (r, g, b) tuples.
    Expects 32-bpp little-endian true colour (red at bit 16) and raw rects."""
    ws.send(struct.pack("!BBHHHH", 3, 0, 0, 0, w, h))
    fb = [[None] * w for _ in range(h)]
    missing = w * h
    while missing > 0:
        kind = ws.read(1)[0]
        if kind != 0:                                  # not a FramebufferUpdate
            if kind == 2:                              # Bell
                continue
            if kind == 3:                              # ServerCutText
                ws.read(3)
                ws.read(struct.unpack("!I", ws.read(4))[0])
                continue
            raise AssertionError("unexpected RFB message %d" % kind)
        ws.read(1)
        n = struct.unpack("!H", ws.read(2))[0]
        for _ in range(n):
            x, y, rw, rh, enc = struct.unpack("!HHHHi", ws.read(12))
            if enc != 0:
                # A pseudo-encoding we did not ask for has no pixels; skip it.
                if rw * rh == 0:
                    continue
                raise AssertionError("unexpected encoding %d" % enc)
            data = ws.read(rw * rh * 4)
            for j in range(rh):
                for i in range(rw):
                    b, g, r, _ = data[4 * (j * rw + i):4 * (j * rw + i) + 4]
                    if fb[y + j][x + i] is None:
                        missing -= 1
                    fb[y + j][x + i] = (r, g, b)
    return fb


class ConsoleE2E(unittest.TestCase):

    tls = False

    def setUp(self):
        e2elib.require_system_libvirt()
        if not os.path.exists(kdtest.TEST_IMAGE):
            if kdtest.require_e2e():
                self.fail("the test desktop image %s is missing" % kdtest.TEST_IMAGE)
            self.skipTest("the test desktop image %s is missing" % kdtest.TEST_IMAGE)
        self.daemon = kdtest.Daemon(config=CONFIG, tls=self.tls)
        self.addCleanup(self.cleanup)
        self.daemon.start()
        d = self.daemon
        d.request("POST", "/api/v1/hosts", {"name": "local", "uri": "qemu:///system"})
        with open(kdtest.TEST_IMAGE, "rb") as f:
            d.request("PUT", "/api/v1/images/td?host=local", raw=f.read())
        d.request("POST", "/api/v1/templates", {"name": "t1", "vcpus": 1, "memory_mib": 96,
                                                "disk_gib": 1})
        d.request("POST", "/api/v1/users", {"name": "alice", "password": "alice-pass-1"})
        d.request("POST", "/api/v1/users", {"name": "bob", "password": "bob-pass-12"})
        d.request("POST", "/api/v1/pools", {"name": "office", "image": "td", "template": "t1",
                                            "size": 2, "users": ["alice", "bob"]})
        self.origin = d.url
        self.assertEqual(d.scheme, "https" if self.tls else "http")

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

    def wait_state(self, name, state, timeout=60):
        deadline = time.time() + timeout
        d = None
        while time.time() < deadline:
            d = self.daemon.request("GET", "/api/v1/desktops/" + name)
            if d["state"] == state:
                return d
            time.sleep(0.2)
        self.fail("desktop %s did not become %s: %r" % (name, state, d))

    def test_console_through_the_gateway(self):
        alice = self.as_user("alice", "alice-pass-1")
        bob = self.as_user("bob", "bob-pass-12")
        desk = alice.request("POST", "/api/v1/pools/office/desktop")
        name, domain = desk["name"], desk["domain"]
        self.wait_state(name, "assigned")
        e2elib.wait_for_prompt(domain)

        # Somebody else's desktop: no ticket (it does not exist for him).
        status, body = bob.status_of("POST", "/api/v1/desktops/%s/console" % name)
        self.assertEqual(status, 404, body)

        t = alice.request("POST", "/api/v1/desktops/%s/console" % name)
        ws_scheme = "wss" if self.tls else "ws"
        host_port = self.daemon.url.split("://", 1)[1]
        self.assertEqual(t["url"], "%s://%s%s" % (ws_scheme, host_port, t["path"]), t)
        self.assertTrue(t["path"].startswith("/api/v1/console?ticket="), t)
        u = urllib.parse.urlsplit(t["url"])
        path = u.path + "?" + u.query
        ctx = self.daemon.ssl_context

        # A wrong Origin is refused, and the ticket is not spent on it; so is
        # this broker's own address with the other scheme.
        ws = WebSocket(self.daemon.url, path, "http://evil.example:1234", context=ctx)
        self.assertEqual(ws.status, 403, ws.body)
        ws.close()
        other = ("http://" if self.tls else "https://") + host_port
        ws = WebSocket(self.daemon.url, path, other, context=ctx)
        self.assertEqual(ws.status, 403, ws.body)
        ws.close()
        # A forged ticket.
        ws = WebSocket(self.daemon.url, "/api/v1/console?ticket=" + "A" * 43, self.origin,
                       context=ctx)
        self.assertEqual(ws.status, 401, ws.body)
        ws.close()

        ws = WebSocket(self.daemon.url, path, self.origin, context=ctx)
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, 101, ws.body)
        self.assertEqual(ws.headers.get("sec-websocket-protocol"), "binary")
        self.assertNotIn("sec-websocket-extensions", ws.headers)

        # RFB through the gateway: the browser is offered "None" only.
        self.assertEqual(ws.read(12), b"RFB 003.008\n")
        ws.send(b"RFB 003.008\n")
        n = ws.read(1)[0]
        self.assertEqual(list(ws.read(n)), [1])
        ws.send(b"\x01")
        self.assertEqual(struct.unpack("!I", ws.read(4))[0], 0)
        ws.send(b"\x01")                                   # ClientInit, shared
        w, h = struct.unpack("!HH", ws.read(4))
        bpp = ws.read(16)[0]                               # pixel format: bits per pixel
        name_len = struct.unpack("!I", ws.read(4))[0]
        server_name = ws.read(name_len).decode(errors="replace")
        self.assertEqual((w, h), (720, 400))
        self.assertIn(domain, server_name)                 # QEMU names the display after the domain

        # The session record: connected.
        self.wait_state(name, "connected")

        # The framebuffer through the gateway is the desktop's screen: decoded
        # (raw encoding, 32 bpp) it equals libvirt's screenshot of the domain,
        # whose BIOS banner carries the machine UUID libvirt reports.
        rows = e2elib.wait_for_prompt(domain)
        self.assertEqual(e2elib.banner_uuid(rows), desk_uuid(self.daemon, name))
        ws.send(struct.pack("!BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))
        ws.send(struct.pack("!BxHi", 2, 1, 0))            # SetEncodings: raw only
        started = time.monotonic()
        frame = read_framebuffer(ws, w, h)
        print("\n  full screen (%d bytes) over %s in %.3f s" % (
            w * h * 4, self.daemon.scheme, time.monotonic() - started))
        _, shot = e2elib.screenshot(domain, os.path.join(e2elib.OUT_DIR, "console-%s.png" % name))
        self.assertEqual((shot.width, shot.height), (w, h))
        differ = sum(1 for y in range(h) for x in range(w)
                     if frame[y][x] != shot.pixel(x, y))
        # Only the blinking text cursor may differ between the two moments.
        self.assertLess(differ, 200, "%d of %d pixels differ" % (differ, w * h))

        # Keys typed through the gateway reach the guest.
        for ch in "kd":
            keysym = ord(ch)
            ws.send(struct.pack("!BBxxI", 4, 1, keysym))
            ws.send(struct.pack("!BBxxI", 4, 0, keysym))
        e2elib.wait_for_prompt(domain, typed="kd")

        # The used ticket does not open a second console.
        again = WebSocket(self.daemon.url, path, self.origin, context=ctx)
        self.assertEqual(again.status, 401, again.body)
        again.close()

        # The client goes away: disconnected.
        ws.close()
        self.wait_state(name, "disconnected")


class ConsoleTlsE2E(ConsoleE2E):
    """The same console over HTTPS: wss:// through libmicrohttpd's TLS
    forwarding of the upgraded connection, in external-epoll mode."""

    tls = True


if __name__ == "__main__":
    unittest.main()
