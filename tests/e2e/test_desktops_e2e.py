"""End-to-end: kvmdeskd against the real libvirtd + QEMU on qemu:///system.

One daemon, the local host, the test desktop image (a boot sector that shows
the SeaBIOS banner with the machine UUID and a blue `kvmdesk> ` prompt that
echoes keys), one template and three desktops, walked through their life in
numbered steps that share the class's state:

 1. the host is up with its accelerator and CPUs;
 2. image imported with the CLI, template and three desktops through the API;
 3. each desktop's disk is a linked clone (a small qcow2 overlay whose backing
    file is the image volume), and the image is never written;
 4. the desktops boot: each screen shows ITS OWN uuid, the prompt row is blue
    in a libvirt screenshot, and typed keys are echoed;
 5. reset throws away what was written to the overlay, keeps the power state;
 6. shutdown of a guest that ignores ACPI ends in a forced power-off;
 7. deleting desktops and image leaves nothing in libvirt.

Everything the daemon made (domains with its prefix, volumes, its pool) is
removed in tearDownClass, whatever failed. Screenshots go to tests/e2e/out/.
"""

import os
import shutil
import time
import unittest

import kdtest
import e2elib
from e2elib import virsh


class DesktopsE2E(unittest.TestCase):
    host = "local"

    @classmethod
    def setUpClass(cls):
        e2elib.require_system_libvirt()
        cls.daemon = kdtest.Daemon()
        cls.suffix = cls.daemon.suffix
        cls.image = "e2e-img-" + cls.suffix
        cls.template = "e2e-tpl-" + cls.suffix
        cls.desktops = ["e2e-%d-%s" % (i, cls.suffix) for i in (1, 2, 3)]
        cls.created = {}      # desktop name -> desktop object at creation
        cls.image_obj = None
        cls.image_sha = None
        cls.started = False
        try:
            cls.daemon.start()
        except Exception:
            cls._cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._cleanup()

    @classmethod
    def _cleanup(cls):
        cls.daemon.stop()
        os.makedirs(e2elib.OUT_DIR, exist_ok=True)
        try:
            shutil.copyfile(cls.daemon.log_path,
                            os.path.join(e2elib.OUT_DIR, "desktops-kvmdeskd.log"))
        except OSError:
            pass
        left = e2elib.remove_libvirt_objects(cls.daemon.prefix, cls.daemon.pool)
        if os.environ.get("KD_TEST_SHOW_LOG"):
            print(cls.daemon.read_log())
        cls.daemon.cleanup()
        if left:
            raise AssertionError("could not remove: " + "; ".join(left))

    # -- helpers -------------------------------------------------------------
    def api(self, method, path, body=None, **kw):
        return self.daemon.request(method, path, body, **kw)

    def desktop(self, name):
        return self.api("GET", "/api/v1/desktops/" + name)

    def need(self, what, ok):
        """Fails at once when an earlier step did not leave what this one needs."""
        if not ok:
            self.fail("an earlier step failed: no %s" % what)

    def image_path(self):
        vols = [v for v in self.image_obj["volumes"] if v["host"] == self.host]
        self.assertEqual(len(vols), 1, self.image_obj)
        return vols[0]["path"]

    def assertLinkedClone(self, d, what):
        overlay = d["overlay"]["path"]
        info = e2elib.qemu_img_info(overlay)
        self.assertEqual(info["format"], "qcow2", "%s: %r" % (what, info))
        self.assertEqual(info.get("backing-filename"), self.image_path(),
                         "%s: overlay '%s' is not backed by the image volume: %r"
                         % (what, overlay, info))
        self.assertLess(info["actual-size"], 1 << 20,
                        "%s: overlay '%s' takes %d bytes: a copy, not a linked clone"
                        % (what, overlay, info["actual-size"]))
        self.assertEqual(info["virtual-size"], 1 << 30, "%s: disk size of the template" % what)
        return info

    def assertScreenIsDesktop(self, d, rows, what):
        """The banner on the screen carries this desktop's UUID."""
        uuid = e2elib.banner_uuid(rows)
        self.assertIsNotNone(uuid, "%s: no 'Machine UUID' on the screen:\n%s"
                             % (what, e2elib.screen_text(rows)))
        self.assertEqual(uuid, e2elib.domain_uuid(d["domain"]).lower(), what)
        self.assertEqual(uuid, d["uuid"].lower(), what)

    # -- 1 ---------------------------------------------------------------------
    def test_1_host(self):
        r = self.daemon.cli("login", "admin", "--password-stdin",
                            input=self.daemon.admin_password + "\n")
        r = self.daemon.cli("host", "add", self.host, e2elib.URI)
        host = self.api("GET", "/api/v1/hosts/" + self.host)
        self.assertEqual(host["uri"], e2elib.URI)
        self.assertEqual(host["state"], "up", host)
        self.assertIs(host["simulated"], False, host)
        self.assertIsNone(host["last_error"], host)
        if os.path.exists("/dev/kvm"):
            self.assertIn(host["accel"], ("kvm", "tcg"), host)
        else:
            self.assertEqual(host["accel"], "tcg", host)
        if host["accel"] == "tcg":
            self.assertTrue(host["accel_reason"], "TCG without a reason: %r" % host)
        self.assertGreater(host["cpus"], 0, host)
        self.assertGreater(host["memory_bytes"], 0, host)
        self.assertEqual(host["pool"]["name"], self.daemon.pool, host)
        self.assertTrue(e2elib.pool_exists(self.daemon.pool),
                        "pool '%s' is not in libvirt" % self.daemon.pool)
        listed = self.daemon.cli("host", "list").stdout
        self.assertIn(self.host, listed)
        self.assertIn("up", listed)

    # -- 2 ---------------------------------------------------------------------
    def test_2_create(self):
        self.need("host", self.daemon.status_of("GET", "/api/v1/hosts/" + self.host)[0] == 200)
        self.daemon.cli("image", "import", self.image, kdtest.TEST_IMAGE)
        img = self.api("GET", "/api/v1/images/" + self.image)
        self.assertEqual(img["format"], "qcow2", img)
        self.assertEqual([v["state"] for v in img["volumes"]], ["ready"], img)
        type(self).image_obj = img
        path = self.image_path()
        self.assertIn(path, e2elib.pool_volumes(self.daemon.pool).values(),
                      "the image volume is not in pool '%s'" % self.daemon.pool)
        type(self).image_sha = e2elib.sha256_of(path)
        r = kdtest.subprocess.run(["qemu-img", "compare", "-U", kdtest.TEST_IMAGE, path],
                                  capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, "the image volume's content differs from the file "
                         "imported: %s%s" % (r.stdout, r.stderr))

        self.api("POST", "/api/v1/templates",
                 {"name": self.template, "vcpus": 1, "memory_mib": 96, "disk_gib": 1,
                  "network": "none"}, expect=201)
        for name in self.desktops:
            d = self.api("POST", "/api/v1/desktops",
                         {"name": name, "image": self.image, "template": self.template},
                         expect=201)
            self.assertEqual(d["state"], "stopped", d)
            self.assertEqual(d["host"], self.host)
            self.assertTrue(d["domain"].startswith(self.daemon.prefix), d)
            self.created[name] = d
        domains = e2elib.domains_with_prefix(self.daemon.prefix)
        self.assertEqual(domains, sorted(d["domain"] for d in self.created.values()))
        for d in self.created.values():
            self.assertEqual(e2elib.domain_state(d["domain"]), "shut off")

    # -- 3 ---------------------------------------------------------------------
    def test_3_linked_clones(self):
        self.need("desktops", len(self.created) == 3)
        overlays = set()
        for name, d in self.created.items():
            self.assertLinkedClone(d, "desktop '%s'" % name)
            overlays.add(d["overlay"]["path"])
            self.assertIn(d["overlay"]["volume"], e2elib.pool_volumes(self.daemon.pool))
        self.assertEqual(len(overlays), 3, "desktops share an overlay: %r" % overlays)
        self.assertEqual(e2elib.sha256_of(self.image_path()), self.image_sha,
                         "the image volume was written")

    # -- 4 ---------------------------------------------------------------------
    def test_4_boot_screen_input(self):
        self.need("desktops", len(self.created) == 3)
        t0 = time.monotonic()
        for name in self.desktops:
            d = self.api("POST", "/api/v1/desktops/%s/start" % name)
            self.assertEqual(d["state"], "running", d)
            self.assertEqual(e2elib.domain_state(d["domain"]), "running")
        type(self).started = True
        for i, name in enumerate(self.desktops, 1):
            d = self.desktop(name)
            dom = d["domain"]
            what = "desktop '%s' (domain '%s')" % (name, dom)
            rows = e2elib.wait_for_prompt(dom)
            if i == 1:
                print("\n  first prompt %.1f s after the starts began" % (time.monotonic() - t0))
            self.assertScreenIsDesktop(d, rows, what)
            self.assertIn("kvmdesk test desktop", e2elib.screen_text(rows))

            # The prompt row is blue in the picture libvirt takes.
            row = e2elib.prompt_row(rows)
            before_path = os.path.join(e2elib.OUT_DIR, "desktop-%d-prompt.png" % i)
            _, before = e2elib.screenshot(dom, before_path)
            self.assertEqual((before.width, before.height), (720, 400), what)
            blue = e2elib.blue_fraction(before, row)
            self.assertGreater(blue, 0.6, "%s: prompt row %d is not blue in %s (%.0f%% blue)"
                               % (what, row, before_path, 100 * blue))
            self.assertLess(e2elib.blue_fraction(before, 0), 0.01,
                            "%s: the BIOS banner row is blue in %s" % (what, before_path))

            # Typed keys are echoed, and the picture changes with them.
            typed = "kd%d" % i
            virsh("send-key", dom, "KEY_K", "KEY_D", "KEY_%d" % i)
            rows = e2elib.wait_for_prompt(dom, typed=typed)
            self.assertEqual(e2elib.prompt_row(rows), row, "%s: the prompt moved" % what)
            after_path = os.path.join(e2elib.OUT_DIR, "desktop-%d-typed.png" % i)
            _, after = e2elib.screenshot(dom, after_path)
            col0 = len(e2elib.screen.PROMPT)
            for col in range(col0, col0 + len(typed)):
                self.assertEqual(e2elib.light_pixels(before, row, col), 0,
                                 "%s: cell %d,%d is not empty before typing (%s)"
                                 % (what, row, col, before_path))
                self.assertGreater(e2elib.light_pixels(after, row, col), 5,
                                   "%s: no glyph in cell %d,%d after typing %r (%s)"
                                   % (what, row, col, typed, after_path))
            self.assertEqual(before.rows[:row * e2elib.CELL_H], after.rows[:row * e2elib.CELL_H],
                             "%s: rows above the prompt changed while typing" % what)
            self.assertGreater(e2elib.blue_fraction(after, row), 0.6, what)
        # Each screen showed its own UUID: three different machines.
        self.assertEqual(len({self.desktop(n)["uuid"] for n in self.desktops}), 3)
        self.assertEqual(e2elib.sha256_of(self.image_path()), self.image_sha,
                         "the image volume was written while desktops ran")

    # -- 5 ---------------------------------------------------------------------
    def test_5_reset(self):
        self.need("running desktops", self.started)
        name = self.desktops[0]
        d = self.api("POST", "/api/v1/desktops/%s/poweroff" % name)
        self.assertEqual(d["state"], "stopped", d)
        self.assertEqual(e2elib.domain_state(d["domain"]), "shut off")
        overlay = d["overlay"]["path"]

        # Change the disk out of band, as a user of the desktop would have.
        rc, out = e2elib.qemu_io(overlay, "write -P 0xab 0 64k")
        self.assertEqual(rc, 0, out)
        rc, out = e2elib.qemu_io(overlay, "read -P 0xab 0 64k", read_only=True)
        self.assertEqual(rc, 0, "the pattern does not read back before the reset: " + out)

        d = self.api("POST", "/api/v1/desktops/%s/reset" % name)
        self.assertEqual(d["state"], "stopped", "reset of a stopped desktop: %r" % d)
        self.assertEqual(e2elib.domain_state(d["domain"]), "shut off")
        self.assertEqual(d["uuid"], self.created[name]["uuid"], "reset changed the machine")
        rc, out = e2elib.qemu_io(d["overlay"]["path"], "read -P 0xab 0 64k", read_only=True)
        self.assertNotEqual(rc, 0, "the pattern written before the reset is still there")
        self.assertIn("Pattern verification failed", out)
        r = kdtest.subprocess.run(["qemu-img", "compare", "-U", d["overlay"]["path"],
                                   self.image_path()], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, "after the reset the disk differs from the image: %s%s"
                         % (r.stdout, r.stderr))
        self.assertLinkedClone(d, "desktop '%s' after reset" % name)

        d = self.api("POST", "/api/v1/desktops/%s/start" % name)
        self.assertEqual(d["state"], "running", d)
        rows = e2elib.wait_for_prompt(d["domain"], typed="")
        self.assertScreenIsDesktop(d, rows, "desktop '%s' after reset" % name)

        # A running desktop comes back running, with a fresh screen and disk.
        name = self.desktops[1]
        before = self.desktop(name)
        self.assertEqual(before["state"], "running")
        d = self.api("POST", "/api/v1/desktops/%s/reset" % name)
        self.assertEqual(d["state"], "running", "reset of a running desktop: %r" % d)
        self.assertEqual(e2elib.domain_state(d["domain"]), "running")
        rows = e2elib.wait_for_prompt(d["domain"], typed="")
        self.assertScreenIsDesktop(d, rows, "desktop '%s' after a running reset" % name)
        self.assertLinkedClone(d, "desktop '%s' after a running reset" % name)

    # -- 6 ---------------------------------------------------------------------
    def test_6_shutdown_forced(self):
        self.need("running desktops", self.started)
        name = self.desktops[2]
        self.assertEqual(self.desktop(name)["state"], "running")
        t0 = time.monotonic()
        d = self.api("POST", "/api/v1/desktops/%s/shutdown" % name)
        took = time.monotonic() - t0
        self.assertEqual(d["state"], "stopped", d)
        self.assertIn("forced", d["state_reason"] or "", d)
        self.assertEqual(e2elib.domain_state(d["domain"]), "shut off")
        self.assertGreaterEqual(took, 2.5, "forced off before shutdown_timeout (3 s)")
        events = self.api("GET", "/api/v1/events?object_type=desktop&object_name=%s&limit=5" % name)
        self.assertTrue(events and events[0]["to_state"] == "stopped", events)

    # -- 7 ---------------------------------------------------------------------
    def test_7_delete(self):
        self.need("desktops", len(self.created) == 3)
        for name in self.desktops:
            self.api("DELETE", "/api/v1/desktops/" + name, expect=204)
            self.daemon.request("GET", "/api/v1/desktops/" + name, expect=404)
        self.assertEqual(e2elib.domains_with_prefix(self.daemon.prefix), [])
        remaining = e2elib.pool_volumes(self.daemon.pool)
        self.assertEqual(list(remaining.values()), [self.image_path()],
                         "only the image volume may be left: %r" % remaining)
        self.assertEqual(e2elib.sha256_of(self.image_path()), self.image_sha,
                         "the image volume was written")
        self.daemon.cli("image", "delete", self.image)
        self.api("DELETE", "/api/v1/templates/" + self.template, expect=204)
        self.assertEqual(e2elib.pool_volumes(self.daemon.pool), {})
        self.assertEqual([n for n in virsh("list", "--all", "--name").split()
                          if n.startswith(self.daemon.prefix)], [])


class PngDecoderTest(unittest.TestCase):
    """decode_png() against PNGs written here with each of the five filters
    (libvirt's screenshots use only some of them). Needs no libvirt."""

    def encode(self, width, height, pixels, filters):
        import struct
        import zlib

        def chunk(kind, body):
            return (struct.pack(">I", len(body)) + kind + body +
                    struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
        raw, prev = bytearray(), bytes(3 * width)
        for y in range(height):
            line = pixels[y]
            f = filters[y % len(filters)]
            out = bytearray()
            for i, v in enumerate(line):
                left = line[i - 3] if i >= 3 else 0
                up = prev[i]
                upleft = prev[i - 3] if i >= 3 else 0
                pred = (0, left, up, (left + up) >> 1, e2elib._paeth(left, up, upleft))[f]
                out.append((v - pred) & 0xFF)
            raw += bytes([f]) + out
            prev = line
        return (b"\x89PNG\r\n\x1a\n" +
                chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))

    def test_all_filters(self):
        w, h = 7, 10
        pixels = [bytes((x * 37 + y * 11 + c * 101) & 0xFF for x in range(w) for c in range(3))
                  for y in range(h)]
        img = e2elib.decode_png(self.encode(w, h, pixels, [0, 1, 2, 3, 4]))
        self.assertEqual((img.width, img.height), (w, h))
        self.assertEqual(img.rows, pixels)
        self.assertEqual(img.pixel(2, 3), tuple(pixels[3][6:9]))

    def test_refuses_garbage(self):
        with self.assertRaises(ValueError):
            e2elib.decode_png(b"P6\n720 400\n255\n")
        good = bytearray(self.encode(1, 1, [b"\x00\x00\xaa"], [0]))
        good[-20] ^= 0xFF   # inside IDAT: the CRC no longer matches
        with self.assertRaises(ValueError):
            e2elib.decode_png(bytes(good))


if __name__ == "__main__":
    unittest.main()
