"""kdtest: the harness the Python integration and end-to-end tests share.

It starts a real kvmdeskd (built in KD_BUILD_DIR) on a fresh state directory
and a free loopback port, logs in, and speaks to the REST API with urllib, or
runs the real `kvmdesk` CLI. Nothing here is mocked: tests talk to the
daemon a user would run.

Environment: KD_BUILD_DIR, KD_SOURCE_DIR, KD_WEB_DIR (set by meson), KD_REQUIRE_E2E.
"""

import json
import os
import random
import shlex
import shutil
import signal
import socket
import ssl
import string
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

BUILD_DIR = os.environ.get("KD_BUILD_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
SOURCE_DIR = os.environ.get("KD_SOURCE_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..")
KVMDESKD = os.path.join(BUILD_DIR, "src", "daemon", "kvmdeskd")
KVMDESK = os.path.join(BUILD_DIR, "src", "cli", "kvmdesk")
TEST_IMAGE = os.path.join(BUILD_DIR, "data", "images", "test-desktop.qcow2")
# The web dashboard as the build assembles it (web/ + noVNC, see meson.build).
WEB_DIR = os.environ.get("KD_WEB_DIR") or os.path.join(BUILD_DIR, "web")
ADMIN_PASSWORD = "kd-test-admin-pw"
TEST_DATA = os.environ.get("KD_TEST_DATA") or os.path.join(SOURCE_DIR, "tests", "data")
QEMU_IMG = shutil.which("qemu-img")
OPENSSL = shutil.which("openssl")


def random_suffix(n=6):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def require_e2e():
    """True when a skipped end-to-end test must count as a failure (CI)."""
    return os.environ.get("KD_REQUIRE_E2E") == "1"


class ApiError(Exception):
    def __init__(self, status, body):
        self.status = status
        self.body = body
        msg = body.get("error") if isinstance(body, dict) else body
        super().__init__("HTTP %d: %s" % (status, msg))


def make_tls_pair(directory, name="server", days=30, sans=("IP:127.0.0.1", "DNS:localhost"),
                  cn="localhost", start=None):
    """Writes a self-signed certificate and its key (PEM) with openssl;
    returns (cert path, key path). start: "YYYYMMDDHHMMSSZ" to back-date
    the certificate (with days, to make an expired one)."""
    if OPENSSL is None:
        raise unittest.SkipTest("openssl is not installed")
    cert = os.path.join(directory, name + "-cert.pem")
    key = os.path.join(directory, name + "-key.pem")
    args = [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", cert, "-subj", "/CN=" + cn,
            "-addext", "subjectAltName=" + ",".join(sans)]
    if start:
        # openssl 3.0's req and x509 cannot back-date: self-sign with "openssl ca".
        subprocess.run([*args, "-days", "1"], check=True, capture_output=True)
        ca_dir = os.path.join(directory, name + "-ca")
        os.makedirs(ca_dir, exist_ok=True)
        open(os.path.join(ca_dir, "index.txt"), "w").close()
        with open(os.path.join(ca_dir, "serial"), "w") as f:
            f.write("01\n")
        cnf = os.path.join(ca_dir, "ca.cnf")
        with open(cnf, "w") as f:
            f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\nnew_certs_dir = %s\n"
                    "serial = %s/serial\ndefault_md = sha256\npolicy = p\n"
                    "[p]\ncommonName = supplied\n[ext]\nsubjectAltName = %s\n"
                    % (ca_dir, ca_dir, ca_dir, ",".join(sans)))
        csr = os.path.join(ca_dir, "req.csr")
        subprocess.run([OPENSSL, "req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr],
                       check=True, capture_output=True)
        end = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(
            time.mktime(time.strptime(start, "%Y%m%d%H%M%SZ")) + days * 86400))
        subprocess.run([OPENSSL, "ca", "-batch", "-config", cnf, "-selfsign", "-keyfile", key,
                        "-in", csr, "-out", cert, "-notext", "-startdate", start,
                        "-enddate", end, "-extensions", "ext", "-extfile", cnf],
                       check=True, capture_output=True)
    else:
        subprocess.run([*args, "-days", str(days)], check=True, capture_output=True)
    return cert, key


class Daemon:
    """A kvmdeskd process with its own state directory.

    config: extra INI text appended to the generated configuration.
    tls: serve HTTPS with a self-signed certificate made for this daemon
    (127.0.0.1 and localhost); requests then trust it (self.ca_cert).
    """

    def __init__(self, config="", state_dir=None, env=None, admin_password=ADMIN_PASSWORD,
                 tls=False):
        self.tmp = tempfile.mkdtemp(prefix="kdtest-")
        os.chmod(self.tmp, 0o755)
        self.state_dir = state_dir or os.path.join(self.tmp, "state")
        self.config_path = os.path.join(self.tmp, "kvmdeskd.conf")
        self.suffix = random_suffix()
        self.prefix = "kdt" + self.suffix
        self.pool = "kdt-" + self.suffix
        self.pool_path = os.path.join(self.tmp, "pool")
        with open(self.config_path, "w") as f:
            f.write("[daemon]\nlog_level = debug\nweb_dir = %s\n" % os.path.abspath(WEB_DIR))
            f.write("[libvirt]\nstorage_pool = %s\nstorage_pool_path = %s\n"
                    "domain_prefix = %s\nshutdown_timeout = 3\nreconnect_min = 1\n"
                    "reconnect_max = 2\nkeepalive_interval = 1\nkeepalive_count = 3\n"
                    % (self.pool, self.pool_path, self.prefix))
            f.write(config)
        self.admin_password = admin_password
        self.extra_env = env or {}
        self.proc = None
        self.log = None
        self.url = None
        self.token = None
        self.log_path = os.path.join(self.tmp, "kvmdeskd.log")
        self.ca_cert = None
        self.ssl_context = None
        if tls:
            cert, key = make_tls_pair(self.tmp)
            self.use_tls(cert, key)

    def use_tls(self, cert, key):
        """Serve HTTPS with @cert/@key (added to the configuration) and trust @cert."""
        with open(self.config_path, "a") as f:
            f.write("[daemon]\ntls_cert = %s\ntls_key = %s\n" % (cert, key))
        self.ca_cert = cert
        self.ssl_context = ssl.create_default_context(cafile=cert)

    @property
    def scheme(self):
        return self.url.split("://", 1)[0] if self.url else None

    @property
    def address(self):
        """("127.0.0.1", port) of the running daemon."""
        host, port = self.url.split("://", 1)[1].rsplit(":", 1)
        return host, int(port)

    # -- process ---------------------------------------------------------
    def start(self, timeout=20, login=True, extra_args=()):
        addr_file = os.path.join(self.state_dir, "listen-address")
        url_file = os.path.join(self.state_dir, "base-url")
        for stale in (addr_file, url_file):
            if os.path.exists(stale):
                os.unlink(stale)
        env = dict(os.environ)
        if self.admin_password is None:
            # The daemon must generate the admin password and print it once.
            env.pop("KVMDESK_ADMIN_PASSWORD", None)
        else:
            env["KVMDESK_ADMIN_PASSWORD"] = self.admin_password
        # Unit tests make warnings fatal; the daemon reports operator-facing
        # warnings (orphans, lost hosts) by design, so only criticals abort it.
        env["G_DEBUG"] = "fatal-criticals"
        env.update(self.extra_env)
        self.log = open(self.log_path, "ab")
        # KD_DAEMON_WRAPPER="valgrind --leak-check=full …" runs the daemon under a tool.
        wrapper = shlex.split(os.environ.get("KD_DAEMON_WRAPPER", ""))
        if wrapper:
            timeout *= 10
        self.proc = subprocess.Popen(
            [*wrapper, KVMDESKD, "--state-dir", self.state_dir, "--listen", "127.0.0.1:0",
             "--config", self.config_path, *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("kvmdeskd exited with %d:\n%s" % (self.proc.returncode, self.read_log()))
            if os.path.exists(addr_file):
                with open(addr_file) as f:
                    addr = f.read().strip()
                if addr:
                    # base-url (written before listen-address) has the scheme.
                    try:
                        with open(url_file) as f:
                            self.url = f.read().strip() or "http://" + addr
                    except FileNotFoundError:
                        self.url = "http://" + addr
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("kvmdeskd did not start in %ds:\n%s" % (timeout, self.read_log()))
        if login:
            self.login()
        return self

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-8000:]
        except OSError:
            return ""

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def restart(self, timeout=20, login=True):
        """Stops the daemon (SIGTERM) and starts it again on the same state directory."""
        self.stop()
        if self.log:
            self.log.close()
        self.token = None
        return self.start(timeout=timeout, login=login)

    def run_until_exit(self, extra_args=(), timeout=20, listen="127.0.0.1:0"):
        """Runs kvmdeskd with this daemon's files, expecting it to refuse to start.

        Returns (exit status, output). The status is None when the daemon
        was still running after @timeout seconds (it is then killed).
        listen: the --listen flag, or None to leave it out.
        """
        env = dict(os.environ)
        if self.admin_password is None:
            env.pop("KVMDESK_ADMIN_PASSWORD", None)
        else:
            env["KVMDESK_ADMIN_PASSWORD"] = self.admin_password
        # Unit tests make warnings fatal; the daemon reports operator-facing
        # warnings (orphans, lost hosts) by design, so only criticals abort it.
        env["G_DEBUG"] = "fatal-criticals"
        env.update(self.extra_env)
        args = [KVMDESKD, "--state-dir", self.state_dir, "--config", self.config_path]
        if listen is not None:
            args += ["--listen", listen]
        proc = subprocess.Popen([*args, *extra_args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env)
        try:
            out, _ = proc.communicate(timeout=timeout)
            return proc.returncode, out.decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            return None, out.decode(errors="replace")

    # -- REST ------------------------------------------------------------
    def login(self, username="admin", password=None):
        body = self.request("POST", "/api/v1/login",
                            {"username": username, "password": password or self.admin_password},
                            auth=False)
        self.token = body["token"]
        return body

    def request(self, method, path, body=None, auth=True, raw=None, headers=None,
                expect=None, timeout=600):
        """Send one request; returns the decoded JSON body (or None).

        expect: an HTTP status the caller wants; any other raises ApiError.
        Without expect, 2xx is returned and others raise ApiError.
        """
        data = None
        hdrs = dict(headers or {})
        if raw is not None:
            data = raw
            hdrs.setdefault("Content-Type", "application/octet-stream")
        elif body is not None:
            data = json.dumps(body).encode() if not isinstance(body, (bytes, str)) else (
                body.encode() if isinstance(body, str) else body)
            hdrs.setdefault("Content-Type", "application/json")
        if auth and self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout,
                                        context=getattr(self, "ssl_context", None)) as resp:
                status = resp.status
                payload = resp.read()
        except urllib.error.HTTPError as e:
            status = e.code
            payload = e.read()
        try:
            decoded = json.loads(payload) if payload else None
        except ValueError:
            decoded = payload.decode(errors="replace")
        if expect is not None:
            if status != expect:
                raise ApiError(status, decoded)
            return decoded
        if status >= 300:
            raise ApiError(status, decoded)
        return decoded

    def status_of(self, method, path, body=None, **kw):
        """Returns (status, decoded body) without raising."""
        try:
            return 200, self.request(method, path, body, **kw)
        except ApiError as e:
            return e.status, e.body

    def exchange(self, method, path, body=None, headers=None, timeout=600):
        """Like status_of, but returns the real status (201, 204, …), not 200
        for every success."""
        hdrs = dict(headers or {})
        if self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        status, _, decoded = http_exchange(self.url, method, path, body, hdrs, timeout,
                                           context=getattr(self, "ssl_context", None))
        return status, decoded

    def raw_request(self, method, path, body=b"", headers=None, auth=True, timeout=60,
                    expect_continue=True, chunked=False):
        """Sends one request over a plain socket; returns (status, decoded body).

        Unlike request(), this copes with a server that answers before it has
        read the whole body (413 on a too large upload): the request asks for
        "100 Continue" and sends the body only when told to; a server that
        closes the connection while the body is sent is tolerated and its
        answer is read anyway. chunked: send the body with chunked transfer
        encoding and no Content-Length.
        """
        host, port = self.url.split("://", 1)[1].rsplit(":", 1)
        hdrs = {"Host": "%s:%s" % (host, port), "Connection": "close"}
        if chunked:
            hdrs["Transfer-Encoding"] = "chunked"
            body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        else:
            hdrs["Content-Length"] = str(len(body))
        if auth and self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        if expect_continue and body:
            hdrs["Expect"] = "100-continue"
        hdrs.update(headers or {})
        head = "%s %s HTTP/1.1\r\n%s\r\n" % (
            method, path, "".join("%s: %s\r\n" % kv for kv in hdrs.items()))
        sock = socket.create_connection((host, int(port)), timeout=timeout)
        if self.url.startswith("https://"):
            sock = self.ssl_context.wrap_socket(sock, server_hostname=host)
        received = b""
        try:
            sock.sendall(head.encode())
            send_body = True
            if expect_continue and body:
                # Wait for "100 Continue" or an early final answer.
                sock.settimeout(5)
                try:
                    while b"\r\n\r\n" not in received:
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        received += chunk
                except socket.timeout:
                    pass
                sock.settimeout(timeout)
                if received.startswith(b"HTTP/1.1 100") or received.startswith(b"HTTP/1.0 100"):
                    received = received.split(b"\r\n\r\n", 1)[1]
                elif received:
                    send_body = False
            if send_body:
                try:
                    sock.sendall(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass
            try:
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    received += chunk
            except ConnectionResetError:
                pass
        finally:
            sock.close()
        if not received:
            raise ApiError(0, "no answer from the daemon to %s %s" % (method, path))
        head, _, payload = received.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if b"transfer-encoding: chunked" in head.lower():
            payload = _dechunk(payload)
        try:
            decoded = json.loads(payload) if payload else None
        except ValueError:
            decoded = payload.decode(errors="replace")
        return status, decoded

    # -- CLI -------------------------------------------------------------
    def cli(self, *args, env=None, input=None, check=True, timeout=600):
        """Runs the real kvmdesk CLI against this daemon with its own config dir."""
        cfg = os.path.join(self.tmp, "cli-config")
        os.makedirs(cfg, exist_ok=True)
        e = dict(os.environ)
        e["XDG_CONFIG_HOME"] = cfg
        e["HOME"] = self.tmp
        e["KVMDESK_URL"] = self.url
        if self.ca_cert:
            e["KVMDESK_CA_CERT"] = self.ca_cert
        e.update(env or {})
        r = subprocess.run([KVMDESK, *args], env=e, input=input, capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("kvmdesk %s failed (%d): %s%s" % (" ".join(args), r.returncode,
                                                                    r.stdout, r.stderr))
        return r


class DaemonTestCase(unittest.TestCase):
    """A test case with one daemon per test class, cleaned up even on failure."""

    daemon_config = ""
    daemon_tls = False          # serve HTTPS with a self-signed certificate

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(config=cls.daemon_config, tls=cls.daemon_tls)
        try:
            cls.daemon.start()
        except Exception:
            cls.daemon.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        log = cls.daemon.read_log()
        cls.daemon.cleanup()
        if os.environ.get("KD_TEST_SHOW_LOG"):
            print(log)

    def api(self, method, path, body=None, **kw):
        return self.daemon.request(method, path, body, **kw)

    def assertApiError(self, status, method, path, body=None, **kw):
        """Asserts the call fails with @status and a non-empty sentence."""
        try:
            got = self.daemon.request(method, path, body, **kw)
        except ApiError as e:
            self.assertEqual(e.status, status, "wrong status for %s %s: %r" % (method, path, e.body))
            self.assertIsInstance(e.body, dict, "error body is not JSON: %r" % (e.body,))
            self.assertTrue(e.body.get("error"), "error body has no message: %r" % (e.body,))
            return e.body
        self.fail("%s %s succeeded with %r, expected HTTP %d" % (method, path, got, status))

    # -- helpers for the integration tests --------------------------------
    def unique(self, prefix):
        """A name no other test uses: PREFIX-xxxxxx (valid kvmdesk name)."""
        return "%s-%s" % (prefix, random_suffix())

    def simulated_host_uri(self, label=None):
        """A test:// URI of its own (a copy of tests/data/integration/host-small.xml),
        so that every test can register a host without clashing on the URI."""
        path = os.path.join(self.daemon.tmp, "node-%s.xml" % (label or random_suffix()))
        shutil.copyfile(os.path.join(TEST_DATA, "integration", "host-small.xml"), path)
        return "test://" + path

    def add_host(self, name=None, uri=None):
        """Registers a simulated host; it is removed again after the test
        (after the cleanups registered later, e.g. its desktops)."""
        name = name or self.unique("h")
        host = self.api("POST", "/api/v1/hosts",
                        {"name": name, "uri": uri or self.simulated_host_uri()},
                        expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/hosts/" + name)
        return host

    def names(self, path):
        """The names of the objects a listing returns."""
        return sorted(o["name"] for o in self.api("GET", path))


    # -- helpers for users and pools (issue 3) ------------------------------
    def create_group(self, name=None):
        """Creates a group through the API; it is removed after the test."""
        name = name or self.unique("g")
        group = self.api("POST", "/api/v1/groups", {"name": name}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/groups/" + name)
        return group

    def create_user(self, name=None, password=None, role="user", groups=(), login=True):
        """Creates an account through the API (removed after the test) and
        returns a Client for it, logged in unless @login is false."""
        name = name or self.unique("u")
        password = password or "pw-" + random_suffix(10)
        self.api("POST", "/api/v1/users",
                 {"name": name, "password": password, "role": role, "groups": list(groups)},
                 expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/users/" + name)
        client = Client(self.daemon, name, password)
        if login:
            client.login()
        return client


class Client:
    """One more account speaking to the same daemon with its own bearer token
    (or, with cookie=True, with the session cookie and CSRF token instead)."""

    def __init__(self, daemon, username, password):
        self.daemon = daemon
        self.username = username
        self.name = username
        self.password = password
        self.token = None
        self.login_answer = None

    @property
    def url(self):
        return self.daemon.url

    @property
    def ssl_context(self):
        return self.daemon.ssl_context

    def login(self, password=None):
        self.login_answer = self.request(
            "POST", "/api/v1/login",
            {"username": self.username, "password": password or self.password}, auth=False)
        self.token = self.login_answer["token"]
        return self.login_answer

    # Same request code as the daemon's admin connection.
    request = Daemon.request
    status_of = Daemon.status_of
    exchange = Daemon.exchange

    def new_token(self):
        """Logs in once more; returns the new bearer token (this client keeps its own)."""
        return self.request("POST", "/api/v1/login",
                            {"username": self.username, "password": self.password},
                            auth=False)["token"]


def http_exchange(url, method, path, body=None, headers=None, timeout=120, context=None):
    """One request without any authentication added; returns
    (status, headers as a list of (lowercase name, value), decoded body).
    context: the ssl.SSLContext for an https URL."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url + path, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            status, got, payload = resp.status, resp.getheaders(), resp.read()
    except urllib.error.HTTPError as e:
        status, got, payload = e.code, list(e.headers.items()), e.read()
    try:
        decoded = json.loads(payload) if payload else None
    except ValueError:
        decoded = payload.decode(errors="replace")
    return status, [(k.lower(), v) for k, v in got], decoded


class PoolTestCase(DaemonTestCase):
    """A daemon with a fast pool manager, one simulated host, an image and a
    small template shared by the class; helpers for pools and desktops."""

    daemon_config = ("[broker]\npolicy_interval = 1\n"
                     "[api]\nlogin_attempts = 10000\n")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.host = "phost-" + random_suffix()
            node = os.path.join(cls.daemon.tmp, "node-%s.xml" % cls.host)
            shutil.copyfile(os.path.join(TEST_DATA, "integration", "host-small.xml"), node)
            # 4 simulated CPUs: 16 vCPUs per CPU leaves room for the
            # 50-desktop pools of the burst tests.
            cls.daemon.request("POST", "/api/v1/hosts",
                               {"name": cls.host, "uri": "test://" + node, "cpu_ratio": 16},
                               expect=201)
            path = os.path.join(cls.daemon.tmp, "golden.qcow2")
            cls.image = "golden-" + random_suffix()
            cls.daemon.request("PUT", "/api/v1/images/%s?host=%s" % (cls.image, cls.host),
                               raw=read_bytes(make_image(path, "qcow2", "64M")), expect=201)
            cls.template = "tiny-" + random_suffix()
            cls.daemon.request("POST", "/api/v1/templates",
                               {"name": cls.template, "disk_gib": 1, "memory_mib": 64},
                               expect=201)
        except Exception:
            cls.daemon.cleanup()
            raise

    def create_pool(self, name=None, expect=201, **fields):
        """POST /pools with the class's image and template; the pool is
        emptied (desktops released) and deleted after the test."""
        body = {"name": name or self.unique("p"), "image": self.image,
                "template": self.template}
        body.update(fields)
        pool = self.api("POST", "/api/v1/pools", body, expect=expect)
        self.addCleanup(self.remove_pool, body["name"])
        return pool

    def remove_pool(self, name, timeout=30):
        """Deletes the pool (best effort): its desktops are released, and
        deleted outright when that is not enough (a persistent pool keeps
        them assigned)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, _ = self.daemon.status_of("DELETE", "/api/v1/pools/" + name)
            if status in (204, 404):
                return
            for d in self.pool_desktops(name):
                if d.get("user"):
                    self.daemon.status_of("POST", "/api/v1/desktops/%s/release" % d["name"])
                    self.daemon.status_of("DELETE", "/api/v1/desktops/" + d["name"])
            time.sleep(0.3)

    def pool_desktops(self, pool):
        """The desktops of @pool, as the admin sees them."""
        status, listing = self.daemon.status_of("GET", "/api/v1/desktops")
        if status != 200:
            return []
        return [d for d in listing if d.get("pool") == pool]

    def wait_pool(self, pool, predicate, timeout=20, what=None):
        """Polls the pool's desktops until @predicate(desktops) is true; returns them."""
        return wait_until(lambda: (lambda ds: ds if predicate(ds) else None)(
            self.pool_desktops(pool)), timeout=timeout, interval=0.25,
            what=what or "desktops of pool '%s'" % pool)

    def wait_desktop(self, name, predicate, timeout=20, what=None, client=None):
        """Polls GET /desktops/NAME (as @client, default the admin) until
        @predicate(desktop) is true; returns the desktop."""
        who = client or self.daemon

        def probe():
            status, d = who.status_of("GET", "/api/v1/desktops/" + name)
            return d if status == 200 and predicate(d) else None
        return wait_until(probe, timeout=timeout, interval=0.25,
                          what=what or "desktop '%s'" % name)

    def get_desktop(self, client, pool, expect=(200, 201)):
        """POST /pools/POOL/desktop as @client; asserts the status is one of
        @expect and returns (status, body)."""
        status, body = client.exchange("POST", "/api/v1/pools/%s/desktop" % pool)
        self.assertIn(status, expect, "POST /pools/%s/desktop as %s: %r"
                      % (pool, client.username, body))
        return status, body



def _dechunk(data):
    out = b""
    while data:
        line, _, rest = data.partition(b"\r\n")
        size = int(line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return out


def wait_until(predicate, timeout=20, interval=0.1, what="condition"):
    """Polls @predicate until it returns a true value; returns that value.
    Raises AssertionError naming @what after @timeout seconds."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


def make_image(path, fmt="qcow2", size="64M", backing=None, backing_fmt="qcow2"):
    """Creates a disk image with qemu-img; returns @path."""
    if QEMU_IMG is None:
        raise unittest.SkipTest("qemu-img is not installed")
    args = [QEMU_IMG, "create", "-q", "-f", fmt]
    if backing:
        args += ["-b", backing, "-F", backing_fmt]
    subprocess.run([*args, path, size], check=True, capture_output=True)
    return path


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()
