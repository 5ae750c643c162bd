"""kvmdeskd's configuration: bad files and flags stop it with a clear message,
and command-line flags override the file.
"""

import json
import os
import unittest
import urllib.request

from kdtest import Daemon


class ConfigRefusedTest(unittest.TestCase):

    def refused(self, config="", extra_args=(), listen="127.0.0.1:0", names=()):
        """Runs kvmdeskd and asserts it refuses to start with a message
        containing every string in @names."""
        d = Daemon(config=config)
        self.addCleanup(d.cleanup)
        rc, out = d.run_until_exit(extra_args=extra_args, listen=listen, timeout=20)
        self.assertIsNotNone(rc, "kvmdeskd started although it should refuse:\n" + out)
        self.assertNotEqual(rc, 0, "kvmdeskd exited 0 on a bad configuration:\n" + out)
        self.assertGreater(rc, 0, "kvmdeskd died of a signal (%d):\n%s" % (rc, out))
        self.assertTrue(out.strip(), "kvmdeskd gave no message")
        for n in names:
            self.assertIn(n, out)
        self.assertNotIn("Traceback", out)
        self.assertFalse(os.path.exists(os.path.join(d.state_dir, "listen-address")))
        return out

    def test_unknown_key(self):
        self.refused("[api]\nlogin_atempts = 3\n", names=("login_atempts",))

    def test_unknown_group(self):
        self.refused("[apii]\nlogin_attempts = 3\n", names=("apii",))

    def test_bad_number(self):
        self.refused("[api]\ntoken_ttl = soon\n", names=("token_ttl", "soon"))

    def test_number_out_of_range(self):
        self.refused("[api]\nlogin_attempts = 0\n", names=("login_attempts",))
        self.refused("[libvirt]\nshutdown_timeout = 99999999999999999999\n",
                     names=("shutdown_timeout",))

    def test_not_an_ini_file(self):
        self.refused("this is = not [ a key file\n[[[\n")

    def test_bad_listen_flag(self):
        for bad in ("nonsense", "127.0.0.1:notaport", "127.0.0.1:70000", "999.1.2.3:80", ""):
            with self.subTest(listen=bad):
                out = self.refused(listen=bad)
                if bad:
                    self.assertIn(bad, out)

    def test_bad_listen_in_file(self):
        self.refused("[daemon]\nlisten = 127.0.0.1:notaport\n", listen=None,
                     names=("127.0.0.1:notaport",))

    def test_missing_config_file(self):
        d = Daemon()
        self.addCleanup(d.cleanup)
        os.unlink(d.config_path)
        rc, out = d.run_until_exit(timeout=20)
        self.assertIsNotNone(rc, "kvmdeskd started without its configuration file:\n" + out)
        self.assertNotEqual(rc, 0)
        self.assertIn(d.config_path, out)

    def test_unknown_flag(self):
        self.refused(extra_args=("--no-such-flag",), names=("no-such-flag",))


class FlagsOverrideFileTest(unittest.TestCase):

    def test_listen_flag_wins(self):
        # The file says port 1 (needs root, and nothing listens there); the
        # harness passes --listen 127.0.0.1:0, which must win.
        d = Daemon(config="[daemon]\nlisten = 127.0.0.1:1\n")
        self.addCleanup(d.cleanup)
        d.start()
        host, port = d.url[len("http://"):].rsplit(":", 1)
        self.assertEqual(host, "127.0.0.1")
        self.assertNotEqual(int(port), 1)
        self.assertGreater(int(port), 0)
        with urllib.request.urlopen(d.url + "/healthz", timeout=10) as r:
            self.assertEqual(json.loads(r.read())["status"], "ok")

    def test_state_dir_flag_wins(self):
        d = Daemon(config="[daemon]\nstate_dir = /nonexistent/kvmdesk-test-state\n")
        self.addCleanup(d.cleanup)
        d.start()   # waits for listen-address in the flag's state directory
        self.assertTrue(os.path.exists(os.path.join(d.state_dir, "listen-address")))
        self.assertFalse(os.path.exists("/nonexistent/kvmdesk-test-state"))
        d.request("GET", "/api/v1/hosts")


if __name__ == "__main__":
    unittest.main()
