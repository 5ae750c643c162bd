"""Authentication and request-body handling of kvmdeskd's REST API.

Covers /healthz, login/logout and bearer tokens, the per-account rate limit
on failed logins, refusal of malformed JSON bodies (and that a refused
request changes nothing), the body size limit, and the admin password the
daemon generates and prints once when none is given in the environment.
"""

import json
import re
import unittest
import urllib.request

import kdtest
from kdtest import ApiError, Daemon, DaemonTestCase


class AuthTest(DaemonTestCase):
    # Generous limit: these tests make a few failed logins on purpose; the
    # rate limit itself is tested by RateLimitTest on its own daemon.
    daemon_config = "[api]\nlogin_attempts = 50\nmax_body_size = 1024\n"

    def test_healthz_without_auth(self):
        with urllib.request.urlopen(self.daemon.url + "/healthz", timeout=10) as r:
            self.assertEqual(r.status, 200)
            body = json.loads(r.read())
        self.assertEqual(body["status"], "ok")
        self.assertIsInstance(body["version"], str)
        self.assertTrue(body["version"])

    def test_login_returns_token(self):
        body = self.daemon.request("POST", "/api/v1/login",
                                   {"username": "admin", "password": self.daemon.admin_password},
                                   auth=False, expect=200)
        self.assertIsInstance(body["token"], str)
        self.assertGreaterEqual(len(body["token"]), 16)
        self.assertEqual(body["user"], "admin")
        self.assertEqual(body["role"], "admin")
        self.assertRegex(body["expires_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
        # The new token works, and differs from the class's token.
        self.assertNotEqual(body["token"], self.daemon.token)
        self.api("GET", "/api/v1/hosts", auth=False,
                 headers={"Authorization": "Bearer " + body["token"]})

    def test_wrong_password_and_unknown_user_look_the_same(self):
        wrong = self.assertApiError(401, "POST", "/api/v1/login",
                                    {"username": "admin", "password": "not-the-password"},
                                    auth=False)
        unknown = self.assertApiError(401, "POST", "/api/v1/login",
                                      {"username": "nobody-" + kdtest.random_suffix(),
                                       "password": "not-the-password"},
                                      auth=False)
        self.assertEqual(wrong.get("code"), "unauthorized")
        # Same answer: the API must not tell which user names exist.
        self.assertEqual(wrong["error"], unknown["error"])
        self.assertNotIn("not-the-password", wrong["error"])

    def test_missing_or_bad_bearer_is_401(self):
        for hdrs in ({}, {"Authorization": "Bearer "},
                     {"Authorization": "Bearer garbage-token-" + kdtest.random_suffix()},
                     {"Authorization": "Basic YWRtaW46eA=="},
                     {"Authorization": self.daemon.token}):   # scheme left out
            with self.subTest(headers=hdrs):
                body = self.assertApiError(401, "GET", "/api/v1/hosts", auth=False, headers=hdrs)
                self.assertEqual(body.get("code"), "unauthorized")
        # A write without a token is refused and changes nothing.
        name = self.unique("noauth")
        self.assertApiError(401, "POST", "/api/v1/hosts",
                            {"name": name, "uri": "test:///default"}, auth=False)
        self.assertNotIn(name, self.names("/api/v1/hosts"))

    def test_every_endpoint_needs_a_token(self):
        name = self.unique("noauth")
        calls = [("GET", "/api/v1/hosts/" + name, None), ("GET", "/api/v1/images", None),
                 ("GET", "/api/v1/templates", None), ("GET", "/api/v1/desktops", None),
                 ("POST", "/api/v1/templates", {"name": name}),
                 ("POST", "/api/v1/desktops", {"name": name, "image": name, "template": name}),
                 ("POST", "/api/v1/desktops/%s/start" % name, None),
                 ("DELETE", "/api/v1/desktops/" + name, None),
                 ("GET", "/api/v1/reconciler", None), ("POST", "/api/v1/reconciler/run", None),
                 ("GET", "/api/v1/events", None)]
        for method, path, body in calls:
            with self.subTest(method=method, path=path):
                self.assertApiError(401, method, path, body, auth=False)
        # An upload without a token is refused before anything is stored.
        status, body = self.daemon.raw_request("PUT", "/api/v1/images/" + name, b"\0" * 65536,
                                               auth=False)
        self.assertEqual(status, 401, body)
        self.assertNotIn(name, self.names("/api/v1/images"))
        self.assertNotIn(name, self.names("/api/v1/templates"))

    def test_logout_revokes_token(self):
        token = self.daemon.request("POST", "/api/v1/login",
                                    {"username": "admin", "password": self.daemon.admin_password},
                                    auth=False)["token"]
        hdr = {"Authorization": "Bearer " + token}
        self.api("GET", "/api/v1/hosts", auth=False, headers=hdr)
        self.api("POST", "/api/v1/logout", auth=False, headers=hdr, expect=204)
        self.assertApiError(401, "GET", "/api/v1/hosts", auth=False, headers=hdr)
        self.assertApiError(401, "POST", "/api/v1/logout", auth=False, headers=hdr)
        # Only that token is revoked.
        self.api("GET", "/api/v1/hosts")

    def test_bad_login_bodies(self):
        cases = {
            "not json": "this is not json",
            "json array": json.dumps(["admin", self.daemon.admin_password]),
            "unknown field": json.dumps({"username": "admin",
                                         "password": self.daemon.admin_password, "otp": "1"}),
            "username not a string": json.dumps({"username": 7,
                                                 "password": self.daemon.admin_password}),
            "password not a string": json.dumps({"username": "admin", "password": ["x"]}),
            "empty body": "",
        }
        for label, raw in cases.items():
            with self.subTest(label):
                body = self.assertApiError(400, "POST", "/api/v1/login", raw.encode(),
                                           auth=False, headers={"Content-Type": "application/json"})
                self.assertEqual(body.get("code"), "invalid")

    def test_bad_bodies_change_nothing(self):
        before = self.api("GET", "/api/v1/hosts")
        name = self.unique("badbody")
        cases = {
            "not json": b"{name: " + name.encode(),
            "json array": json.dumps([name, "test:///default"]).encode(),
            "json string": json.dumps(name).encode(),
            "unknown field": json.dumps({"name": name, "uri": "test:///default",
                                         "colour": "blue"}).encode(),
            "name not a string": json.dumps({"name": 12, "uri": "test:///default"}).encode(),
            "uri not a string": json.dumps({"name": name, "uri": {"a": 1}}).encode(),
            "name null": json.dumps({"name": None, "uri": "test:///default"}).encode(),
            "truncated": json.dumps({"name": name, "uri": "test:///default"}).encode()[:-3],
            "invalid utf-8": b'{"name": "\xff\xfe", "uri": "test:///default"}',
        }
        for label, raw in cases.items():
            with self.subTest(label):
                body = self.assertApiError(400, "POST", "/api/v1/hosts", raw,
                                           headers={"Content-Type": "application/json"})
                self.assertEqual(body.get("code"), "invalid")
        self.assertEqual(self.api("GET", "/api/v1/hosts"), before)

    def test_body_over_max_body_size(self):
        # A valid request padded with JSON whitespace past max_body_size
        # (1024 here): only its size is wrong, so success would be a bug.
        name = self.unique("big")
        raw = b'{"name": "' + name.encode() + b'"' + b" " * 4096 + b"}"
        status, body = self.daemon.raw_request("POST", "/api/v1/templates", raw,
                                               headers={"Content-Type": "application/json"})
        self.assertIn(status, (400, 413), body)
        self.assertIsInstance(body, dict)
        self.assertTrue(body.get("error"))
        self.assertNotIn(name, self.names("/api/v1/templates"))
        # Just under the limit, the same request is fine.
        raw = b'{"name": "' + name.encode() + b'"' + b" " * 512 + b"}"
        self.api("POST", "/api/v1/templates", raw, expect=201,
                 headers={"Content-Type": "application/json"})
        self.api("DELETE", "/api/v1/templates/" + name, expect=204)
        # A body far larger than the limit, on an unauthenticated endpoint too.
        raw = (b'{"username": "admin", "password": "' + self.daemon.admin_password.encode()
               + b'"' + b" " * (4 << 20) + b"}")
        status, body = self.daemon.raw_request("POST", "/api/v1/login", raw, auth=False,
                                               headers={"Content-Type": "application/json"})
        self.assertIn(status, (400, 413), body)
        # The daemon is still serving.
        self.api("GET", "/api/v1/hosts")


class RateLimitTest(DaemonTestCase):
    daemon_config = "[api]\nlogin_attempts = 3\n"

    def test_rate_limit_after_failed_logins(self):
        for i in range(3):
            self.assertApiError(401, "POST", "/api/v1/login",
                                {"username": "admin", "password": "wrong-%d" % i}, auth=False)
        # Even the right password is refused now.
        body = self.assertApiError(429, "POST", "/api/v1/login",
                                   {"username": "admin", "password": self.daemon.admin_password},
                                   auth=False)
        self.assertEqual(body.get("code"), "rate_limited")
        self.assertRegex(body["error"], r"\d", "429 must say how many seconds to wait")
        # A token obtained before keeps working.
        self.api("GET", "/api/v1/hosts")


class GeneratedAdminPasswordTest(unittest.TestCase):
    """No KVMDESK_ADMIN_PASSWORD: the daemon makes one and prints it once."""

    def setUp(self):
        self.daemon = Daemon(config="[api]\nlogin_attempts = 100\n", admin_password=None)
        self.addCleanup(self.daemon.cleanup)

    def find_password(self, log):
        """Tries every word on the log lines that mention a password."""
        candidates = []
        for line in log.splitlines():
            if "password" not in line.lower():
                continue
            for word in re.findall(r"[A-Za-z0-9_\-+/=.:!@#$%^&*]{8,}", line):
                word = word.strip(".:'\"")
                if len(word) >= 8 and word not in candidates and "password" not in word.lower():
                    candidates.append(word)
        for word in candidates:
            try:
                self.daemon.login(password=word)
                return word
            except ApiError as e:
                self.assertEqual(e.status, 401, e.body)
        self.fail("no password that logs in was found in the log:\n%s" % log)

    def full_log(self):
        with open(self.daemon.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def test_generated_password_printed_once_and_kept(self):
        self.daemon.start(login=False)
        log1 = self.full_log()
        password = self.find_password(log1)
        self.assertEqual(log1.count(password), 1, "the password must be printed exactly once")
        self.daemon.request("GET", "/api/v1/hosts")

        self.daemon.restart(login=False)
        full = self.full_log()
        after = full[len(log1):]
        self.assertEqual(full.count(password), 1, "the password was printed again on restart")
        for line in after.splitlines():
            self.assertFalse(re.search(r"generat", line, re.I) and "password" in line.lower(),
                             "restart generated a new password: %s" % line)
        self.daemon.login(password=password)
        self.daemon.request("GET", "/api/v1/hosts")

if __name__ == "__main__":
    unittest.main()
