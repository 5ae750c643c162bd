"""HTTPS: kvmdeskd with a certificate and key (issue 4, "HTTPS").

A daemon given a self-signed certificate (made here with openssl, SAN
127.0.0.1 and localhost) serves only HTTPS: it says so in STATE_DIR/base-url,
its session cookie is Secure (also when cleared at logout), console tickets
point at wss://, the console's Origin check wants the https origin, and plain
HTTP to its port is dropped without harm to the daemon. The CLI trusts the
certificate with --ca-cert or KVMDESK_CA_CERT and says what to do without
it. Every bad certificate or key stops the daemon at start with one sentence
naming the file; an expired certificate only warns.
"""

import base64
import os
import select
import socket
import ssl
import subprocess
import time
import unittest

import kdtest
from kdtest import Daemon, PoolTestCase, http_exchange


def cookie_of(headers):
    for name, value in headers:
        if name == "set-cookie" and value.startswith("kvmdesk_session="):
            return value
    return None


def cookie_attrs(set_cookie):
    return [a.strip().lower() for a in set_cookie.split(";")]


class TlsServing(PoolTestCase):
    daemon_tls = True
    daemon_config = (PoolTestCase.daemon_config +
                     "[api]\nconnection_timeout = 3\nper_ip_connection_limit = 8\n")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user = None

    def test_base_url_and_healthz(self):
        d = self.daemon
        with open(os.path.join(d.state_dir, "base-url")) as f:
            base = f.read().strip()
        with open(os.path.join(d.state_dir, "listen-address")) as f:
            addr = f.read().strip()
        self.assertEqual(base, "https://" + addr)
        self.assertEqual(d.url, base)
        status, _, body = http_exchange(d.url, "GET", "/healthz", context=d.ssl_context)
        self.assertEqual(status, 200, body)
        self.assertEqual(body.get("status"), "ok")
        # The certificate is checked for real: without trusting it, no answer.
        with self.assertRaises(Exception) as cm:
            http_exchange(d.url, "GET", "/healthz", context=ssl.create_default_context())
        self.assertIn("CERTIFICATE_VERIFY_FAILED", str(cm.exception))

    def test_cookie_is_secure(self):
        d = self.daemon
        user = self.create_user(login=False)
        status, headers, body = http_exchange(
            d.url, "POST", "/api/v1/login", {"username": user.name, "password": user.password},
            context=d.ssl_context)
        self.assertEqual(status, 200, body)
        set_cookie = cookie_of(headers)
        self.assertIsNotNone(set_cookie, headers)
        attrs = cookie_attrs(set_cookie)
        for a in ("secure", "httponly", "samesite=strict", "path=/"):
            self.assertIn(a, attrs, set_cookie)
        jar = {"Cookie": set_cookie.split(";", 1)[0].strip(), "X-CSRF-Token": body["csrf_token"]}
        status, _, me = http_exchange(d.url, "GET", "/api/v1/me", headers=jar,
                                      context=d.ssl_context)
        self.assertEqual(status, 200, me)
        # Logout clears the cookie, with the same attributes.
        status, headers, _ = http_exchange(d.url, "POST", "/api/v1/logout", headers=jar,
                                           context=d.ssl_context)
        self.assertEqual(status, 204)
        cleared = cookie_of(headers)
        self.assertIsNotNone(cleared, headers)
        self.assertIn("secure", cookie_attrs(cleared), cleared)
        self.assertIn("max-age=0", cookie_attrs(cleared), cleared)

    def test_console_ticket_is_wss(self):
        user = self.create_user()
        pool = self.create_pool(users=[user.name], size=1)["name"]
        _, desk = self.get_desktop(user, pool, expect=(201,))
        self.wait_desktop(desk["name"], lambda x: x["state"] == "assigned", client=user,
                          timeout=30)
        t = user.request("POST", "/api/v1/desktops/%s/console" % desk["name"])
        host_port = self.daemon.url.split("://", 1)[1]
        self.assertEqual(t["url"], "wss://%s%s" % (host_port, t["path"]), t)
        self.assertTrue(t["path"].startswith("/api/v1/console?ticket="), t)
        # The Host the client used is the one in the URL.
        t2 = user.request("POST", "/api/v1/desktops/%s/console" % desk["name"],
                          headers={"Host": "localhost:" + host_port.rsplit(":", 1)[1]})
        self.assertTrue(t2["url"].startswith("wss://localhost:"), t2)

    def upgrade(self, origin):
        """GET /console with a forged ticket over TLS: the status line."""
        host, port = self.daemon.address
        sock = self.daemon.ssl_context.wrap_socket(
            socket.create_connection((host, port), timeout=10), server_hostname=host)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(("GET /api/v1/console?ticket=%s HTTP/1.1\r\nHost: %s:%d\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                          "Origin: %s\r\n\r\n" % ("A" * 43, host, port, key, origin)).encode())
            head = b""
            while b"\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
            return int(head.split(b" ", 2)[1])
        finally:
            sock.close()

    def test_console_origin_is_https(self):
        host, port = self.daemon.address
        # The https origin passes the Origin check (the forged ticket is what fails) …
        self.assertEqual(self.upgrade("https://%s:%d" % (host, port)), 401)
        # … and the same host with http:// is another origin.
        self.assertEqual(self.upgrade("http://%s:%d" % (host, port)), 403)

    def test_plain_http_to_tls_port(self):
        host, port = self.daemon.address
        for attempt in range(3):
            sock = socket.create_connection((host, port), timeout=10)
            try:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                got = b""
                started = time.monotonic()
                try:
                    while True:
                        chunk = sock.recv(4096)
                        if not chunk:
                            break
                        got += chunk
                except (ConnectionResetError, socket.timeout):
                    pass
                self.assertLess(time.monotonic() - started, 10, "the daemon did not close")
                self.assertFalse(got.startswith(b"HTTP/"), got[:100])
            finally:
                sock.close()
        self.assertIsNone(self.daemon.proc.poll(), "kvmdeskd died")
        status, _, body = http_exchange(self.daemon.url, "GET", "/healthz",
                                        context=self.daemon.ssl_context)
        self.assertEqual(status, 200, body)

    def test_silent_client_is_dropped(self):
        """A client that never starts its handshake is closed after
        connection_timeout (3 s here), and a half handshake costs nothing more."""
        host, port = self.daemon.address
        socks = [socket.create_connection((host, port), timeout=10) for _ in range(5)]
        socks[0].sendall(b"\x16\x03\x01\x00\x50")          # a TLS record header, no body
        started = time.monotonic()
        try:
            for s in socks:
                self.assertEqual(s.recv(100), b"")
            self.assertLess(time.monotonic() - started, 8)
        finally:
            for s in socks:
                s.close()
        status, _, body = http_exchange(self.daemon.url, "GET", "/healthz",
                                        context=self.daemon.ssl_context)
        self.assertEqual(status, 200, body)

    def test_per_address_limit_counts_handshakes(self):
        """Connections that have not finished their handshake count against
        per_ip_connection_limit (8 here): of 12 silent connections, at least
        4 are closed at once, the others wait for their handshake."""
        host, port = self.daemon.address
        socks = [socket.create_connection((host, port), timeout=10) for _ in range(12)]
        try:
            closed = set()
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                ready, _, _ = select.select([s for s in socks if s not in closed], [], [],
                                           max(0, deadline - time.monotonic()))
                for s in ready:
                    try:
                        self.assertEqual(s.recv(100), b"")
                    except ConnectionResetError:
                        pass
                    closed.add(s)
            self.assertGreaterEqual(len(closed), 4, "not refused at once")
            self.assertLess(len(closed), 12, "all refused")
        finally:
            for s in socks:
                s.close()
        # Once they are gone, clients are served again.
        def healthy():
            try:
                return http_exchange(self.daemon.url, "GET", "/healthz",
                                     context=self.daemon.ssl_context)[0] == 200
            except OSError:
                return False
        kdtest.wait_until(healthy, timeout=5, what="healthz after the silent clients left")

    def test_big_upload_and_early_answer(self):
        """Bodies much larger than the TLS pump's buffers cross it whole, and an
        answer sent before the body was read (413) reaches the client."""
        name = self.unique("big")
        path = kdtest.make_image(os.path.join(self.daemon.tmp, name + ".img"), "raw", "8M")
        self.daemon.request("PUT", "/api/v1/images/%s?host=%s" % (name, self.host),
                            raw=kdtest.read_bytes(path), expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/images/" + name)
        image = self.api("GET", "/api/v1/images/" + name)
        self.assertEqual(image["name"], name)
        status, err = self.daemon.raw_request("POST", "/api/v1/templates",
                                              body=b"{" + b" " * 2000000 + b"}",
                                              headers={"Content-Type": "application/json"})
        self.assertEqual(status, 413, err)
        self.assertIsNone(self.daemon.proc.poll(), "kvmdeskd died")

    def test_cli_with_and_without_ca_cert(self):
        d = self.daemon
        env = {"KVMDESK_PASSWORD": d.admin_password}
        # Without the certificate: one sentence saying what to do, exit 1.
        r = d.cli("login", "admin", env={**env, "KVMDESK_CA_CERT": ""}, check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("not trusted", r.stderr)
        self.assertIn("--ca-cert FILE", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        # With --ca-cert.
        r = d.cli("--ca-cert", d.ca_cert, "login", "admin", env={**env, "KVMDESK_CA_CERT": ""})
        self.assertIn("logged in to https://", r.stdout)
        r = d.cli("--ca-cert", d.ca_cert, "--json", "host", "list",
                  env={"KVMDESK_CA_CERT": ""})
        self.assertIn(self.host, r.stdout)
        # With KVMDESK_CA_CERT (the harness sets it).
        r = d.cli("host", "list")
        self.assertIn(self.host, r.stdout)
        # A CA file that is not there.
        r = d.cli("--ca-cert", "/nonexistent/ca.pem", "host", "list", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("'/nonexistent/ca.pem'", r.stderr)
        # Another certificate does not vouch for this server.
        other, _ = kdtest.make_tls_pair(d.tmp, name="other")
        r = d.cli("--ca-cert", other, "host", "list", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not vouched for by '%s'" % other, r.stderr)
        # Plain http:// to the HTTPS port.
        r = d.cli("--url", d.url.replace("https://", "http://"), "host", "list",
                  env={"KVMDESK_TOKEN": "x"}, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("use an https:// URL", r.stderr)
        self.assertIsNone(d.proc.poll(), "kvmdeskd died")


class StalledHandshakes(unittest.TestCase):
    """Clients that start a handshake and stall hold nothing another client
    needs: with 40 of them (and connection_timeout 10 s), a new client is
    served at once."""

    def test_others_are_served(self):
        d = Daemon(tls=True, config="[api]\nconnection_timeout = 10\n")
        self.addCleanup(d.cleanup)
        d.start(login=False)
        host, port = d.address
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(40):
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(b"\x16\x03\x01\x00\x50")       # a ClientHello record header, no body
            socks.append(s)
        time.sleep(0.3)
        for _ in range(3):
            started = time.monotonic()
            status, _, body = http_exchange(d.url, "GET", "/healthz", context=d.ssl_context,
                                            timeout=20)
            self.assertEqual(status, 200, body)
            self.assertLess(time.monotonic() - started, 2.0)


class PlainHttp(unittest.TestCase):
    """Without a certificate: http, no Secure cookie (loopback and tests)."""

    def test_plain(self):
        d = Daemon()
        self.addCleanup(d.cleanup)
        d.start(login=False)
        with open(os.path.join(d.state_dir, "base-url")) as f:
            self.assertEqual(f.read().strip(), d.url)
        self.assertTrue(d.url.startswith("http://127.0.0.1:"), d.url)
        status, headers, body = http_exchange(
            d.url, "POST", "/api/v1/login", {"username": "admin", "password": d.admin_password})
        self.assertEqual(status, 200, body)
        self.assertNotIn("secure", cookie_attrs(cookie_of(headers)))
        self.assertNotIn("without TLS", d.read_log())   # loopback: no warning


class BadCertificates(unittest.TestCase):
    """Each bad pair stops kvmdeskd at start with one sentence naming the file."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon()
        cls.dir = cls.daemon.tmp
        cls.cert, cls.key = kdtest.make_tls_pair(cls.dir)
        cls.other_cert, cls.other_key = kdtest.make_tls_pair(cls.dir, name="other")
        cls.der = os.path.join(cls.dir, "cert.der")
        subprocess.run([kdtest.OPENSSL, "x509", "-in", cls.cert, "-outform", "DER",
                        "-out", cls.der], check=True, capture_output=True)
        cls.garbage = os.path.join(cls.dir, "garbage.pem")
        with open(cls.garbage, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
        cls.encrypted = os.path.join(cls.dir, "encrypted-key.pem")
        subprocess.run([kdtest.OPENSSL, "pkey", "-in", cls.key, "-aes256", "-passout",
                        "pass:secret", "-out", cls.encrypted], check=True, capture_output=True)
        cls.unreadable = os.path.join(cls.dir, "unreadable.pem")
        with open(cls.unreadable, "w") as f:
            f.write("x")
        os.chmod(cls.unreadable, 0)
        cls.empty = os.path.join(cls.dir, "empty.pem")
        open(cls.empty, "w").close()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()

    def refuse(self, args, expect):
        status, out = self.daemon.run_until_exit(extra_args=args)
        self.assertEqual(status, 1, out)
        lines = [l for l in out.splitlines() if l.startswith("kvmdeskd: ")]
        self.assertEqual(len(lines), 1, out)
        self.assertIn(expect, lines[0])
        self.assertFalse(os.path.exists(os.path.join(self.daemon.state_dir, "listen-address")))
        return lines[0]

    def test_bad_pairs(self):
        missing = os.path.join(self.dir, "missing.pem")
        cases = [
            (["--tls-cert", self.cert], "tls_cert '%s' is given without tls_key" % self.cert),
            (["--tls-key", self.key], "tls_key '%s' is given without tls_cert" % self.key),
            (["--tls-cert", missing, "--tls-key", self.key],
             "cannot read the TLS certificate '%s'" % missing),
            (["--tls-cert", self.cert, "--tls-key", missing],
             "cannot read the TLS key '%s'" % missing),
            (["--tls-cert", self.der, "--tls-key", self.key],
             "the TLS certificate '%s' is not a PEM certificate" % self.der),
            (["--tls-cert", self.empty, "--tls-key", self.key],
             "the TLS certificate '%s' is not a PEM" % self.empty),
            (["--tls-cert", self.key, "--tls-key", self.cert],
             "the TLS certificate '%s' is not a PEM certificate" % self.key),
            (["--tls-cert", self.cert, "--tls-key", self.garbage],
             "the TLS key '%s' is not a PEM private key" % self.garbage),
            (["--tls-cert", self.cert, "--tls-key", self.encrypted],
             "the TLS key '%s' is encrypted" % self.encrypted),
            (["--tls-cert", self.cert, "--tls-key", self.other_key],
             "the TLS key '%s' does not belong to the certificate '%s'"
             % (self.other_key, self.cert)),
        ]
        if os.geteuid() != 0:      # root reads any file
            cases.append((["--tls-cert", self.unreadable, "--tls-key", self.key],
                          "cannot read the TLS certificate '%s'" % self.unreadable))
        for args, expect in cases:
            with self.subTest(args=args):
                self.refuse(args, expect)

    def test_bad_pair_from_config(self):
        d = Daemon(config="[daemon]\ntls_cert = %s\ntls_key = %s\n" % (self.cert, self.other_key))
        self.addCleanup(d.cleanup)
        status, out = d.run_until_exit()
        self.assertEqual(status, 1, out)
        self.assertIn("does not belong to the certificate", out)

    def test_expired_certificate_warns(self):
        cert, key = kdtest.make_tls_pair(self.dir, name="expired", days=1,
                                         start="20200101000000Z")
        d = Daemon()
        self.addCleanup(d.cleanup)
        d.use_tls(cert, key)
        d.start(login=False)
        self.assertIn("the TLS certificate '%s' expired on 2020-01-02" % cert, d.read_log())
        self.assertEqual(d.scheme, "https")
        self.assertIsNone(d.proc.poll())


if __name__ == "__main__":
    unittest.main()
