"""Image import through the REST API (PUT /images/NAME?host=H), on test://.

Images are made on the fly with qemu-img. kvmdeskd must probe what it is
given (format, backing file, size), refuse what it cannot use with a 400
that says why, and store nothing when it refuses. test:// has no volume
upload, so the stored volume is reported as simulated.
"""

import os
import unittest

import kdtest
from kdtest import DaemonTestCase, make_image, read_bytes

MIB = 1 << 20


class ImagesTest(DaemonTestCase):
    daemon_config = "[api]\nmax_upload_size = 1048576\n"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.host = "imghost-" + kdtest.random_suffix()
        try:
            cls.daemon.request("POST", "/api/v1/hosts",
                               {"name": cls.host, "uri": "test:///default"}, expect=201)
        except Exception:
            cls.daemon.cleanup()
            raise

    def image_path(self, label):
        return os.path.join(self.daemon.tmp, "%s-%s" % (label, kdtest.random_suffix()))

    def put(self, name, data, host=None, expect=201):
        path = "/api/v1/images/" + name
        if host is not None:
            path += "?host=" + host
        body = self.api("PUT", path, raw=data, expect=expect)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/images/" + name)
        return body

    def assertRefused(self, status, name, data, host=None, code=None):
        before = self.names("/api/v1/images")
        path = "/api/v1/images/%s?host=%s" % (name, host or self.host)
        body = self.assertApiError(status, "PUT", path, raw=data)
        if code:
            self.assertEqual(body.get("code"), code, body)
        # The message speaks of what the client sent, not of the server's
        # temporary files.
        self.assertNotIn(self.daemon.state_dir, body["error"])
        self.assertEqual(self.names("/api/v1/images"), before)
        self.assertApiError(404, "GET", "/api/v1/images/" + name)
        return body

    def test_import_qcow2(self):
        data = read_bytes(make_image(self.image_path("q") + ".qcow2", "qcow2", "64M"))
        name = self.unique("qcow")
        img = self.put(name, data, host=self.host)
        self.assertEqual(img["name"], name)
        self.assertEqual(img["format"], "qcow2")
        self.assertEqual(img["virtual_size"], 64 * MIB)
        self.assertEqual(img["file_size"], len(data))
        self.assertEqual(img["desktops"], 0)
        self.assertTrue(img["created_at"])
        self.assertEqual(len(img["volumes"]), 1, img)
        vol = img["volumes"][0]
        self.assertEqual(vol["host"], self.host)
        self.assertIs(vol["simulated"], True)
        self.assertEqual(vol["state"], "ready")
        self.assertIsNone(vol["error"])
        self.assertTrue(vol["volume"])
        self.assertTrue(vol["path"])

        self.assertEqual(self.api("GET", "/api/v1/images/" + name), img)
        listed = [i for i in self.api("GET", "/api/v1/images") if i["name"] == name]
        self.assertEqual(listed, [img])

    def test_import_raw(self):
        data = os.urandom(512 * 1024)
        name = self.unique("raw")
        img = self.put(name, data, host=self.host)
        self.assertEqual(img["format"], "raw")
        self.assertEqual(img["virtual_size"], len(data))
        self.assertEqual(img["file_size"], len(data))
        self.assertIs(img["volumes"][0]["simulated"], True)

    def test_host_omitted_with_one_host(self):
        self.assertEqual(self.names("/api/v1/hosts"), [self.host])
        data = read_bytes(make_image(self.image_path("one") + ".qcow2", "qcow2", "64M"))
        name = self.unique("nohost")
        img = self.put(name, data)
        self.assertEqual(img["volumes"][0]["host"], self.host)

    def test_refuse_backing_file(self):
        base = make_image(self.image_path("base") + ".qcow2", "qcow2", "64M")
        data = read_bytes(make_image(self.image_path("overlay") + ".qcow2", "qcow2", "64M",
                                     backing=base))
        name = self.unique("backed")
        body = self.assertRefused(400, name, data, code="invalid")
        self.assertIn(name, body["error"])
        self.assertIn("backing", body["error"].lower())

    def test_refuse_vmdk(self):
        data = read_bytes(make_image(self.image_path("v") + ".vmdk", "vmdk", "64M"))
        name = self.unique("vmdk")
        body = self.assertRefused(400, name, data, code="invalid")
        self.assertIn(name, body["error"])
        self.assertIn("vmdk", body["error"].lower())

    def test_refuse_vdi(self):
        data = read_bytes(make_image(self.image_path("v") + ".vdi", "vdi", "64M"))
        name = self.unique("vdi")
        body = self.assertRefused(400, name, data, code="invalid")
        self.assertIn(name, body["error"])
        self.assertIn("vdi", body["error"].lower())

    def test_refuse_empty_body(self):
        self.assertRefused(400, self.unique("empty"), b"", code="invalid")

    def test_refuse_truncated_qcow2(self):
        data = read_bytes(make_image(self.image_path("t") + ".qcow2", "qcow2", "64M"))
        self.assertRefused(400, self.unique("trunc"), data[:40], code="invalid")

    def test_bad_name_400(self):
        data = os.urandom(4096)
        for bad in ("Upper", "-lead", "a" * 64, "dot.qcow2"):
            with self.subTest(name=bad):
                self.assertRefused(400, bad, data, code="invalid")

    def test_name_collision_409(self):
        name = self.unique("dup")
        first = self.put(name, os.urandom(8192), host=self.host)
        body = self.assertApiError(409, "PUT", "/api/v1/images/%s?host=%s" % (name, self.host),
                                   raw=os.urandom(4096))
        self.assertEqual(body.get("code"), "exists")
        self.assertEqual(self.api("GET", "/api/v1/images/" + name), first)

    def test_unknown_host_404(self):
        nohost = self.unique("nohost")
        body = self.assertRefused(404, self.unique("img"), os.urandom(4096), host=nohost,
                                  code="not_found")
        self.assertIn(nohost, body["error"])

    def test_over_max_upload_size_413(self):
        before = self.names("/api/v1/images")
        name = self.unique("huge")
        status, body = self.daemon.raw_request(
            "PUT", "/api/v1/images/%s?host=%s" % (name, self.host), b"\0" * (2 * MIB + 1),
            headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 413, body)
        self.assertEqual(body.get("code"), "too_large")
        self.assertEqual(self.names("/api/v1/images"), before)
        self.assertApiError(404, "GET", "/api/v1/images/" + name)
        # Exactly the limit is accepted.
        self.put(self.unique("limit"), b"\0" * MIB, host=self.host)

    def test_upload_without_content_length(self):
        before = self.names("/api/v1/images")
        name = self.unique("chunked")
        status, body = self.daemon.raw_request(
            "PUT", "/api/v1/images/%s?host=%s" % (name, self.host), os.urandom(8192),
            headers={"Content-Type": "application/octet-stream"}, chunked=True)
        self.assertIn(status, (400, 411), body)
        self.assertIsInstance(body, dict, body)
        self.assertTrue(body.get("error"), body)
        self.assertEqual(self.names("/api/v1/images"), before)

    def test_delete(self):
        name = self.unique("del")
        self.put(name, os.urandom(8192), host=self.host)
        self.api("DELETE", "/api/v1/images/" + name, expect=204)
        self.assertNotIn(name, self.names("/api/v1/images"))
        self.assertApiError(404, "GET", "/api/v1/images/" + name)
        self.assertApiError(404, "DELETE", "/api/v1/images/" + name)
        # The name can be used again.
        self.put(name, os.urandom(8192), host=self.host)

    def test_delete_in_use_409(self):
        name = self.unique("used")
        self.put(name, read_bytes(make_image(self.image_path("u") + ".qcow2", "qcow2", "64M")),
                 host=self.host)
        template = self.unique("tpl")
        self.api("POST", "/api/v1/templates", {"name": template, "disk_gib": 1}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/templates/" + template)
        desktop = self.unique("d")
        self.api("POST", "/api/v1/desktops", {"name": desktop, "image": name,
                                              "template": template}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + desktop)
        self.assertEqual(self.api("GET", "/api/v1/images/" + name)["desktops"], 1)

        body = self.assertApiError(409, "DELETE", "/api/v1/images/" + name)
        self.assertEqual(body.get("code"), "busy")
        self.assertIn(name, self.names("/api/v1/images"))
        self.assertEqual(self.api("GET", "/api/v1/images/" + name)["volumes"][0]["state"], "ready")

        self.api("DELETE", "/api/v1/desktops/" + desktop, expect=204)
        self.api("DELETE", "/api/v1/images/" + name, expect=204)
        self.assertNotIn(name, self.names("/api/v1/images"))


class ImagesTwoHostsTest(DaemonTestCase):
    """With two hosts, the target host must be named."""

    def test_host_required_with_two_hosts(self):
        self.add_host()
        self.add_host()
        name = self.unique("which")
        body = self.assertApiError(400, "PUT", "/api/v1/images/" + name, raw=os.urandom(4096))
        self.assertEqual(body.get("code"), "invalid")
        self.assertNotIn(name, self.names("/api/v1/images"))

    def test_no_host_at_all(self):
        if self.api("GET", "/api/v1/hosts"):
            self.skipTest("hosts left over by another test")
        name = self.unique("nohosts")
        status, body = self.daemon.status_of("PUT", "/api/v1/images/" + name, raw=os.urandom(4096))
        self.assertIn(status, (400, 404), body)
        self.assertNotIn(name, self.names("/api/v1/images"))


if __name__ == "__main__":
    unittest.main()
