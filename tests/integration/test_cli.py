"""The real `kvmdesk` CLI against a real kvmdeskd on test://.

Every test runs the binary with its own XDG_CONFIG_HOME (set by the
harness), logs in with KVMDESK_PASSWORD, and checks exit status, --json
output and, for errors, a one-line message on stderr. What the CLI did is
verified through the REST API, not through the CLI itself.
"""

import json
import os
import unittest

import kdtest
from kdtest import DaemonTestCase, make_image

DESKTOP_KEYS = ("name", "state", "host", "image", "template", "domain")


class CliTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = {"KVMDESK_PASSWORD": cls.daemon.admin_password}
        r = cls.daemon.cli("login", "admin", env=cls.env)
        if r.returncode != 0:
            cls.daemon.cleanup()
            raise AssertionError("kvmdesk login failed: %s%s" % (r.stdout, r.stderr))

    def kd(self, *args, check=True):
        return self.daemon.cli(*args, check=check)

    def kd_json(self, *args):
        r = self.kd(*args, "--json")
        try:
            return json.loads(r.stdout)
        except ValueError:
            self.fail("kvmdesk %s --json printed no JSON: %r" % (" ".join(args), r.stdout))

    def assertCliFails(self, *args, mention=None, env=None, progress=False):
        """Asserts a non-zero exit with one line on stderr (the last line
        when @progress: uploads report progress on stderr first)."""
        r = self.daemon.cli(*args, check=False, env=env)
        self.assertNotEqual(r.returncode, 0, "kvmdesk %s succeeded: %s" % (" ".join(args), r.stdout))
        err = r.stderr.strip()
        self.assertTrue(err, "no message on stderr")
        if progress:
            err = err.splitlines()[-1]
        self.assertEqual(len(err.splitlines()), 1, "expected one line on stderr, got: %r" % err)
        self.assertTrue(err.startswith("kvmdesk"), err)
        if mention:
            self.assertIn(mention, err)
        self.assertNotIn("Traceback", err)
        self.assertNotIn("CRITICAL", err)
        return r

    def setup_world(self):
        """A host, an image and a template made with the CLI; returns their names."""
        host = self.unique("clihost")
        self.kd("host", "add", host, self.simulated_host_uri())
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/hosts/" + host)
        template = self.unique("clitpl")
        self.kd("template", "add", template, "--vcpus", "2", "--memory", "256",
                "--disk", "1")
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/templates/" + template)
        image = self.unique("cliimg")
        path = make_image(os.path.join(self.daemon.tmp, image + ".qcow2"), "qcow2", "64M")
        self.kd("image", "import", image, path, "--host", host)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/images/" + image)
        return host, image, template

    def test_host_add_and_list_json(self):
        name = self.unique("clihost")
        uri = self.simulated_host_uri()
        self.kd("host", "add", name, uri)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/hosts/" + name)
        host = self.api("GET", "/api/v1/hosts/" + name)
        self.assertEqual(host["uri"], uri)
        listed = self.kd_json("host", "list")
        self.assertIsInstance(listed, list)
        mine = [h for h in listed if h.get("name") == name]
        self.assertEqual(len(mine), 1, listed)
        self.assertEqual(mine[0]["state"], "up")
        for h in listed:
            self.assertIn("name", h)
            self.assertIn("state", h)
        # The human listing names it too.
        self.assertIn(name, self.kd("host", "list").stdout)
        # How a drain moves running desktops off it.
        self.assertEqual(mine[0]["migration"], "live")
        self.kd("host", "set", name, "--migration", "cold")
        self.assertEqual(self.api("GET", "/api/v1/hosts/" + name)["migration"], "cold")
        r = self.kd("host", "set", name, "--migration", "warm", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--migration must be 'live' or 'cold', not 'warm'", r.stderr.splitlines()[0])
        self.assertEqual(self.api("GET", "/api/v1/hosts/" + name)["migration"], "cold")

    def test_template_add(self):
        name = self.unique("clitpl")
        self.kd("template", "add", name, "--vcpus", "2", "--memory", "512", "--disk", "3")
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/templates/" + name)
        t = self.api("GET", "/api/v1/templates/" + name)
        self.assertEqual((t["vcpus"], t["memory_mib"], t["disk_gib"]), (2, 512, 3))

    def test_image_import(self):
        host = self.add_host()["name"]
        name = self.unique("cliimg")
        path = make_image(os.path.join(self.daemon.tmp, name + ".qcow2"), "qcow2", "64M")
        self.kd("image", "import", name, path, "--host", host)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/images/" + name)
        img = self.api("GET", "/api/v1/images/" + name)
        self.assertEqual(img["format"], "qcow2")
        self.assertEqual(img["virtual_size"], 64 << 20)

    def test_image_import_refused(self):
        host = self.add_host()["name"]
        base = make_image(os.path.join(self.daemon.tmp, "base-%s.qcow2" % kdtest.random_suffix()))
        overlay = make_image(os.path.join(self.daemon.tmp, "ov-%s.qcow2" % kdtest.random_suffix()),
                             backing=base)
        name = self.unique("backed")
        self.assertCliFails("image", "import", name, overlay, "--host", host, mention="backing",
                            progress=True)
        self.assertApiError(404, "GET", "/api/v1/images/" + name)

    def test_desktop_lifecycle(self):
        host, image, template = self.setup_world()
        name = self.unique("clid")
        self.kd("desktop", "create", name, "--image", image, "--template", template)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + name)
        self.assertEqual(self.api("GET", "/api/v1/desktops/" + name)["state"], "stopped")

        listed = self.kd_json("desktop", "list")
        self.assertIsInstance(listed, list)
        mine = [d for d in listed if d.get("name") == name]
        self.assertEqual(len(mine), 1, listed)
        for key in DESKTOP_KEYS:
            self.assertIn(key, mine[0])
        self.assertEqual(mine[0]["host"], host)
        self.assertEqual(mine[0]["image"], image)
        self.assertEqual(mine[0]["template"], template)
        self.assertTrue(mine[0]["domain"].startswith(self.daemon.prefix + "-"))

        self.kd("desktop", "start", name)
        self.assertEqual(self.api("GET", "/api/v1/desktops/" + name)["state"], "running")
        self.kd("desktop", "shutdown", name)
        self.assertEqual(self.api("GET", "/api/v1/desktops/" + name)["state"], "stopped")
        self.kd("desktop", "delete", name)
        self.assertApiError(404, "GET", "/api/v1/desktops/" + name)
        self.assertNotIn(name, [d["name"] for d in self.kd_json("desktop", "list")])

    def test_remove_commands(self):
        host, image, template = self.setup_world()
        self.kd("image", "delete", image)
        self.assertApiError(404, "GET", "/api/v1/images/" + image)
        self.kd("template", "remove", template)
        self.assertApiError(404, "GET", "/api/v1/templates/" + template)
        self.kd("host", "remove", host)
        self.assertApiError(404, "GET", "/api/v1/hosts/" + host)

    def test_reconcile_json(self):
        report = self.kd_json("reconcile", "--run")
        self.assertIsInstance(report, dict)
        for key in ("last_run", "orphans", "problems"):
            self.assertIn(key, report)
        self.assertTrue(report["last_run"])

    def test_unknown_desktop_fails(self):
        name = self.unique("nosuch")
        for verb in ("start", "shutdown", "delete"):
            with self.subTest(verb=verb):
                self.assertCliFails("desktop", verb, name, mention=name)

    def test_unknown_command_fails(self):
        r = self.daemon.cli("desktop", "explode", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip())

    def test_not_logged_in(self):
        # A fresh configuration directory holds no token.
        fresh = os.path.join(self.daemon.tmp, "fresh-" + kdtest.random_suffix())
        os.makedirs(fresh)
        r = self.assertCliFails("host", "list", env={"XDG_CONFIG_HOME": fresh})
        self.assertRegex(r.stderr.lower(), r"log ?in|not logged|token|unauthori[sz]ed")

    def test_logout(self):
        cfg = os.path.join(self.daemon.tmp, "logout-" + kdtest.random_suffix())
        os.makedirs(cfg)
        env = {"XDG_CONFIG_HOME": cfg, "KVMDESK_PASSWORD": self.daemon.admin_password}
        self.daemon.cli("login", "admin", env=env)
        self.daemon.cli("host", "list", env={"XDG_CONFIG_HOME": cfg})
        self.daemon.cli("logout", env={"XDG_CONFIG_HOME": cfg})
        self.assertCliFails("host", "list", env={"XDG_CONFIG_HOME": cfg})

    def test_wrong_password(self):
        cfg = os.path.join(self.daemon.tmp, "wrong-" + kdtest.random_suffix())
        os.makedirs(cfg)
        r = self.assertCliFails("login", "admin",
                                env={"XDG_CONFIG_HOME": cfg, "KVMDESK_PASSWORD": "wrong-pw"})
        self.assertNotIn("wrong-pw", r.stderr)


if __name__ == "__main__":
    unittest.main()
