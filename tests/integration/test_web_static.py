"""The web dashboard's static files (src/api/kd-api-static.c).

kvmdeskd is started with --web-dir pointing at a tree this test makes: an
index, files of every served type, a large file (sent from its fd, checked
byte for byte), a directory with its own index, a symlink inside the tree
and one leading out of it, a FIFO, and a secret file next to (outside) the
tree. Covers: `/` is index.html; content types; Cache-Control, ETag and 304;
the security headers on HTML (CSP limited to this origin and its WebSocket,
nosniff, no framing, no referrer) and not on other files; HEAD; 404 pages
for missing files; traversal attempts (`/../`, `%2e%2e`, `%00`, `%2f`,
hidden files, a symlink out of the tree) that never read the secret; 405 for
other methods; and that /api/ and /healthz are still the API's.
"""

import hashlib
import http.client
import os
import shutil
import socket
import unittest

import kdtest

SECRET = b"kvmdesk-web-static-secret\n"


class WebStatic(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.daemon = kdtest.Daemon()
        d = cls.daemon
        root = os.path.join(d.tmp, "site")
        cls.root = root
        os.makedirs(os.path.join(root, "js", "sub"))
        os.makedirs(os.path.join(root, "docs"))
        os.makedirs(os.path.join(root, ".hidden"))
        files = {
            "index.html": b"<!doctype html><title>kvmdesk test index</title>\n",
            "app.js": b"export const x = 1;\n",
            "js/sub/mod.mjs": b"export default 2;\n",
            "style.css": b"body { color: black; }\n",
            "logo.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>\n",
            "icon.png": b"\x89PNG\r\n\x1a\nnot really\n",
            "data.json": b"{\"a\": 1}\n",
            "font.woff2": b"wOF2fake",
            "blob.bin": b"\x00\x01\x02",
            "docs/index.html": b"<!doctype html><title>docs</title>\n",
            ".hidden/x.js": b"hidden\n",
            ".env": b"hidden\n",
        }
        for rel, data in files.items():
            with open(os.path.join(root, rel), "wb") as f:
                f.write(data)
        cls.files = files
        # 3 MiB of varied bytes: more than any buffer, sent from the file.
        cls.big = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32)
        with open(os.path.join(root, "big.js"), "wb") as f:
            f.write(cls.big)
        with open(os.path.join(d.tmp, "secret.txt"), "wb") as f:
            f.write(SECRET)
        os.symlink("app.js", os.path.join(root, "inside-link.js"))
        os.symlink(os.path.join(d.tmp, "secret.txt"), os.path.join(root, "escape.js"))
        os.symlink(d.tmp, os.path.join(root, "updir"))
        os.mkfifo(os.path.join(root, "fifo.js"))
        try:
            d.start(extra_args=("--web-dir", root))
        except Exception:
            d.cleanup()
            raise
        host, port = d.url[len("http://"):].rsplit(":", 1)
        cls.host, cls.port = host, int(port)

    @classmethod
    def tearDownClass(cls):
        log = cls.daemon.read_log()
        cls.daemon.cleanup()
        if os.environ.get("KD_TEST_SHOW_LOG"):
            print(log)

    # -- helpers -----------------------------------------------------------------
    def get(self, path, method="GET", headers=None):
        """(status, {lower-case header: value}, body) of one request sent as is."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            c.putrequest(method, path, skip_accept_encoding=True)
            for k, v in (headers or {}).items():
                c.putheader(k, v)
            c.endheaders()
            r = c.getresponse()
            body = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body
        finally:
            c.close()

    def raw(self, request_line):
        """Status line and body for a request line sent byte for byte."""
        s = socket.create_connection((self.host, self.port), timeout=30)
        try:
            s.sendall(request_line + b"\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
                      % (self.host.encode(), self.port))
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return head, body

    def assertNoSecret(self, body, path):
        self.assertNotIn(SECRET.strip(), body, "%s leaked a file outside web_dir" % path)

    # -- the tests -----------------------------------------------------------------
    def test_root_is_index_with_security_headers(self):
        status, h, body = self.get("/")
        self.assertEqual(status, 200)
        self.assertEqual(body, self.files["index.html"])
        self.assertEqual(h["content-type"], "text/html; charset=utf-8")
        csp = h.get("content-security-policy", "")
        self.assertIn("default-src 'self'", csp)
        self.assertIn("script-src 'self'", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertIn("ws://%s:%d" % (self.host, self.port), csp)
        self.assertIn("wss://%s:%d" % (self.host, self.port), csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertEqual(h.get("x-content-type-options"), "nosniff")
        self.assertEqual(h.get("x-frame-options"), "DENY")
        self.assertEqual(h.get("referrer-policy"), "no-referrer")
        self.assertEqual(h.get("cache-control"), "no-cache")
        status, _, body = self.get("/index.html")
        self.assertEqual((status, body), (200, self.files["index.html"]))

    def test_content_types(self):
        want = {
            "/app.js": "text/javascript; charset=utf-8",
            "/js/sub/mod.mjs": "text/javascript; charset=utf-8",
            "/style.css": "text/css; charset=utf-8",
            "/logo.svg": "image/svg+xml",
            "/icon.png": "image/png",
            "/data.json": "application/json",
            "/font.woff2": "font/woff2",
            "/blob.bin": "application/octet-stream",
        }
        for path, ctype in want.items():
            with self.subTest(path=path):
                status, h, body = self.get(path)
                self.assertEqual(status, 200)
                self.assertEqual(body, self.files[path[1:]])
                self.assertEqual(h["content-type"], ctype)
                self.assertEqual(h.get("x-content-type-options"), "nosniff")
                self.assertEqual(h.get("cache-control"), "no-cache")
                self.assertEqual(h.get("content-length"), str(len(body)))
                # The page policy belongs to pages.
                self.assertNotIn("content-security-policy", h)

    def test_large_file_whole_and_head(self):
        status, h, body = self.get("/big.js")
        self.assertEqual(status, 200)
        self.assertEqual(len(body), len(self.big))
        self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(self.big).hexdigest())
        status, h, body = self.get("/big.js", method="HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        self.assertEqual(h.get("content-length"), str(len(self.big)))
        self.assertEqual(h["content-type"], "text/javascript; charset=utf-8")

    def test_etag_revalidation(self):
        status, h, _ = self.get("/app.js")
        self.assertEqual(status, 200)
        etag = h.get("etag")
        self.assertTrue(etag and etag.startswith('"'), h)
        status, h2, body = self.get("/app.js", headers={"If-None-Match": etag})
        self.assertEqual(status, 304)
        self.assertEqual(body, b"")
        status, _, body = self.get("/app.js", headers={"If-None-Match": '"other"'})
        self.assertEqual((status, body), (200, self.files["app.js"]))

    def test_directory_index_and_redirect(self):
        status, h, body = self.get("/docs/")
        self.assertEqual((status, body), (200, self.files["docs/index.html"]))
        status, h, _ = self.get("/docs")
        self.assertEqual(status, 301)
        self.assertEqual(h.get("location"), "/docs/")
        # A directory without an index is not listed.
        status, _, body = self.get("/js/")
        self.assertEqual(status, 404)
        self.assertNotIn(b"mod.mjs", body)

    def test_missing_file_is_a_404_page(self):
        for path in ("/nope.html", "/js/nope.js", "/a/b/c/d/e/f/g.js", "/index.html/x"):
            with self.subTest(path=path):
                status, h, body = self.get(path)
                self.assertEqual(status, 404)
                self.assertEqual(h["content-type"], "text/html; charset=utf-8")
                self.assertIn(b"Not found", body)
                self.assertEqual(h.get("x-frame-options"), "DENY")
        # The daemon is still there.
        self.assertEqual(self.daemon.request("GET", "/healthz", auth=False)["status"], "ok")

    def test_traversal_is_refused(self):
        attempts = [
            b"GET /../secret.txt HTTP/1.1",
            b"GET /js/../../secret.txt HTTP/1.1",
            b"GET /%2e%2e/secret.txt HTTP/1.1",
            b"GET /%2E%2E/%2e%2e/secret.txt HTTP/1.1",
            b"GET /js/%2e%2e/%2e%2e/secret.txt HTTP/1.1",
            b"GET /..%2fsecret.txt HTTP/1.1",
            b"GET /%2e%2e%2fsecret.txt HTTP/1.1",
            b"GET /app.js%00.html HTTP/1.1",
            b"GET /%00 HTTP/1.1",
            b"GET /index.html%00 HTTP/1.1",
            b"GET /./index.html HTTP/1.1",
            b"GET //etc/passwd HTTP/1.1",
            b"GET /.env HTTP/1.1",
            b"GET /.hidden/x.js HTTP/1.1",
            b"GET /escape.js HTTP/1.1",
            b"GET /updir/secret.txt HTTP/1.1",
            b"GET /fifo.js HTTP/1.1",
            b"GET /app.js\\..\\..\\secret.txt HTTP/1.1",
        ]
        for line in attempts:
            with self.subTest(request=line):
                head, body = self.raw(line)
                status = int(head.split(b" ", 2)[1])
                self.assertIn(status, (400, 404), head)
                self.assertNoSecret(body, line)
                self.assertNotIn(b"hidden", body)
        # A symlink that stays inside the tree is served.
        status, _, body = self.get("/inside-link.js")
        self.assertEqual((status, body), (200, self.files["app.js"]))
        self.assertEqual(self.daemon.request("GET", "/healthz", auth=False)["status"], "ok")

    def test_other_methods(self):
        for method in ("POST", "PUT", "DELETE"):
            with self.subTest(method=method):
                status, h, _ = self.get("/index.html", method=method)
                self.assertEqual(status, 405)
                self.assertEqual(h.get("allow"), "GET, HEAD")

    def test_api_paths_stay_the_api(self):
        status, h, body = self.get("/api/v1/nothing-here")
        self.assertEqual(status, 401)             # the API asks for a login first
        self.assertEqual(h["content-type"], "application/json")
        status, h, body = self.get("/api")
        self.assertEqual(status, 404)
        self.assertEqual(h["content-type"], "application/json")
        self.assertEqual(self.daemon.request("GET", "/healthz", auth=False)["status"], "ok")
        status, h, _ = self.get("/healthz/x")
        self.assertEqual(h["content-type"], "application/json")


class WebStaticMissingDir(unittest.TestCase):
    """A web_dir that does not exist: 404 pages, the API unharmed."""

    def test_missing_web_dir(self):
        d = kdtest.Daemon()
        self.addCleanup(d.cleanup)
        d.start(extra_args=("--web-dir", os.path.join(d.tmp, "no-such-dir")))
        host, port = d.url[len("http://"):].rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        c.request("GET", "/")
        r = c.getresponse()
        body = r.read()
        c.close()
        self.assertEqual(r.status, 404)
        self.assertIn(b"Not found", body)
        self.assertIn("no web dashboard", d.read_log())
        self.assertEqual(d.request("GET", "/api/v1/me")["user"], "admin")


class WebDashboardBuilt(unittest.TestCase):
    """The tree the build assembled (build/web) is what the harness serves."""

    def test_built_tree_has_the_dashboard_and_novnc(self):
        web = kdtest.WEB_DIR
        self.assertTrue(os.path.isfile(os.path.join(web, "index.html")),
                        "%s/index.html is missing: the build did not assemble web/" % web)
        novnc = os.path.join(web, "vendor", "novnc", "core", "rfb.js")
        if not os.path.isfile(novnc):
            msg = "%s is missing: run 'npm ci' in the source directory" % novnc
            if kdtest.require_e2e():
                self.fail(msg)
            self.skipTest(msg)
        self.assertTrue(os.path.isfile(os.path.join(web, "vendor", "novnc", "vendor", "pako",
                                                    "lib", "zlib", "inflate.js")))
        for base, _, names in os.walk(web):
            for n in names:
                self.assertFalse(os.path.islink(os.path.join(base, n)),
                                 "%s is a symlink: kvmdeskd would refuse it"
                                 % os.path.join(base, n))
        d = kdtest.Daemon()
        self.addCleanup(d.cleanup)
        d.start(login=False)
        host, port = d.url[len("http://"):].rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        c.request("GET", "/vendor/novnc/core/rfb.js")
        r = c.getresponse()
        body = r.read()
        c.close()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Type"), "text/javascript; charset=utf-8")
        with open(novnc, "rb") as f:
            self.assertEqual(body, f.read())


if __name__ == "__main__":
    unittest.main()
