"""End-to-end: the second real libvirt host of tests/e2e/hostlib.py, and a live
migration with incremental storage copy from qemu:///system (host A) to it (B).

No kvmdeskd here: this proves the harness the migration e2e test builds on.

 1. B starts in its own mount namespace and answers on its URI; it has its own
    host UUID, no domain, pool or network of A's;
 2. a dir pool on each host (different directories), the test desktop image
    uploaded into both, a qcow2 overlay on A's copy, a domain (type qemu, no NIC,
    VNC on 127.0.0.1) booted on A showing its prompt; a marker written into the
    overlay through QEMU (HMP qemu-io), so that it is a block the guest wrote;
 3. the same-named overlay pre-created in B's pool backed by B's copy, then
    `virsh migrate --live --persistent --undefinesource --copy-storage-inc
    --migrateuri tcp://127.0.0.1 --listen-address 127.0.0.1 --xml DEST
    --persistent-xml PERSIST` where DEST and PERSIST are A's migratable live and
    inactive XML with B's overlay path;
 4. the domain runs on B and is gone from A, B's screen shows the same banner
    UUID and echoes a key typed after the move, B's overlay holds the marker and
    is still a small overlay on B's image, B's persistent definition names it;
 5. everything is removed, B is stopped, A still answers.

Every libvirt object is named kdhv2-*; leftovers of an earlier run (on A, and B's
whole directory) are removed first, and everything again in tearDownClass.
"""

import glob
import os
import re
import shutil
import subprocess
import time
import unittest

import kdtest
import e2elib
import hostlib

PREFIX = "kdhv2-"
POOL_ROOT = "/tmp/kdhv2-pools"      # A's pool in a/, B's in b/
MARKER = 0xcd
MARKER_OFFSET = "512k"              # past the boot sector the guest runs from (disk: 1 MiB)
MEMORY_MIB = 64
KEY = "q"


def virsh_at(uri, *args, check=True, timeout=120):
    r = subprocess.run(["virsh", "-q", "-c", uri, *args], capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("virsh -c %s %s failed (%d): %s"
                             % (uri, " ".join(args), r.returncode,
                                (r.stderr or r.stdout).strip()))
    return r.stdout if check else r


def remove_prefixed(uri):
    """Destroys/undefines every kdhv2-* domain and deletes every kdhv2-* pool with
    its volumes on @uri. Returns the sentences of what could not be removed."""
    problems = []
    r = virsh_at(uri, "list", "--all", "--name", check=False)
    for name in r.stdout.split() if r.returncode == 0 else []:
        if name.startswith(PREFIX):
            virsh_at(uri, "destroy", name, check=False)
            u = virsh_at(uri, "undefine", name, "--nvram", check=False)
            if u.returncode != 0:
                problems.append("undefine %s on %s: %s" % (name, uri, u.stderr.strip()))
    r = virsh_at(uri, "pool-list", "--all", "--name", check=False)
    for pool in r.stdout.split() if r.returncode == 0 else []:
        if not pool.startswith(PREFIX):
            continue
        virsh_at(uri, "pool-start", pool, check=False)     # volumes of an inactive pool
        virsh_at(uri, "pool-refresh", pool, check=False)
        v = virsh_at(uri, "vol-list", pool, check=False)
        for line in v.stdout.splitlines() if v.returncode == 0 else []:
            if line.split():
                d = virsh_at(uri, "vol-delete", line.split()[0], "--pool", pool, check=False)
                if d.returncode != 0:
                    problems.append("vol-delete %s on %s: %s" % (line.split()[0], uri,
                                                                 d.stderr.strip()))
        virsh_at(uri, "pool-destroy", pool, check=False)
        u = virsh_at(uri, "pool-undefine", pool, check=False)
        if u.returncode != 0:
            problems.append("pool-undefine %s on %s: %s" % (pool, uri, u.stderr.strip()))
    return problems


def domain_xml(name, disk):
    return """<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>%d</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/><bootmenu enable='no'/></os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='%s'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>
    <video><model type='vga'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
""" % (name, MEMORY_MIB, disk)


def destination_xml(source_xml, old_path, new_path):
    """A's migratable XML with the disk moved to @new_path; the <backingStore>
    chain is dropped (B probes its own chain from the overlay's header)."""
    if source_xml.count("file='%s'" % old_path) != 1:
        raise AssertionError("disk '%s' not found once in:\n%s" % (old_path, source_xml))
    xml = source_xml.replace("file='%s'" % old_path, "file='%s'" % new_path)
    xml = re.sub(r"\s*<backingStore.*?</backingStore>", "", xml, flags=re.S)
    return re.sub(r"\s*<backingStore/>", "", xml)


class SecondHostE2E(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        e2elib.require_system_libvirt()
        problem = hostlib.second_host_problem()
        if problem:
            if kdtest.require_e2e():
                raise AssertionError("KD_REQUIRE_E2E=1 but the second host cannot run: "
                                     + problem)
            raise unittest.SkipTest(problem)
        cls.a = e2elib.URI
        cls.host = hostlib.SecondHost()
        cls.suffix = kdtest.random_suffix()
        cls.pool_a = PREFIX + "a-" + cls.suffix
        cls.pool_b = PREFIX + "b-" + cls.suffix
        cls.dir_a = os.path.join(POOL_ROOT, "a")
        cls.dir_b = os.path.join(POOL_ROOT, "b")
        cls.domain = PREFIX + "dom-" + cls.suffix
        cls.image_vol = PREFIX + "image.qcow2"
        cls.overlay_vol = cls.domain + ".qcow2"
        cls.paths = {}
        cls.timings = {}
        # A crashed earlier run: its B (daemons, QEMU, directory), its objects on A.
        left = cls.host.stop() + remove_prefixed(cls.a)
        if left:
            raise AssertionError("leftovers of an earlier run: %s" % "; ".join(left))
        shutil.rmtree(POOL_ROOT, ignore_errors=True)
        try:
            cls.host.start()
        except Exception:
            cls._cleanup()
            raise
        cls.timings["start"] = cls.host.start_seconds
        cls.b = cls.host.uri

    @classmethod
    def tearDownClass(cls):
        cls._cleanup()

    @classmethod
    def _cleanup(cls):
        problems = []
        cls.save_log()
        if cls.host.status()["answers"]:
            problems += remove_prefixed(cls.host.uri)
        problems += cls.host.stop()
        problems += remove_prefixed(cls.a)
        shutil.rmtree(POOL_ROOT, ignore_errors=True)
        for log in glob.glob("/var/log/libvirt/qemu/%s*.log" % PREFIX):   # A's QEMU logs
            os.unlink(log)
        if cls.timings:
            print("second host timings: %s" % ", ".join(
                "%s %.1f s" % kv for kv in sorted(cls.timings.items()) if kv[1] is not None))
        if problems:
            raise AssertionError("could not remove: " + "; ".join(problems))

    @classmethod
    def save_log(cls):
        """Keeps B's libvirtd.log in tests/e2e/out/ (its directory goes with stop())."""
        log = cls.host.libvirtd_log()
        if log:
            os.makedirs(e2elib.OUT_DIR, exist_ok=True)
            with open(os.path.join(e2elib.OUT_DIR, "second-host-libvirtd.log"), "w") as f:
                f.write(log)

    # -- helpers ------------------------------------------------------------------
    def need(self, *keys):
        for k in keys:
            if k not in self.paths:
                self.fail("an earlier step failed: no %s" % k)

    def make_pool(self, uri, name, directory):
        os.makedirs(directory, exist_ok=True)
        os.chmod(POOL_ROOT, 0o755)
        os.chmod(directory, 0o755)      # QEMU runs as libvirt-qemu
        virsh_at(uri, "pool-define-as", name, "dir", "--target", directory)
        virsh_at(uri, "pool-start", name)

    def upload_image(self, uri, pool):
        size = os.path.getsize(kdtest.TEST_IMAGE)
        virsh_at(uri, "vol-create-as", pool, self.image_vol, str(size), "--format", "raw")
        virsh_at(uri, "vol-upload", self.image_vol, kdtest.TEST_IMAGE, "--pool", pool)
        virsh_at(uri, "pool-refresh", pool)
        path = virsh_at(uri, "vol-path", self.image_vol, "--pool", pool).strip()
        self.assertEqual(e2elib.sha256_of(path), e2elib.sha256_of(kdtest.TEST_IMAGE))
        return path

    def make_overlay(self, uri, pool, backing):
        capacity = e2elib.qemu_img_info(backing)["virtual-size"]
        virsh_at(uri, "vol-create-as", pool, self.overlay_vol, str(capacity),
                 "--format", "qcow2", "--backing-vol", backing, "--backing-vol-format", "qcow2")
        return virsh_at(uri, "vol-path", self.overlay_vol, "--pool", pool).strip()

    def names(self, uri, *args):
        return set(virsh_at(uri, *args).split())

    def screen(self, uri):
        return e2elib.screen.read_screen(self.domain, uri)

    def wait_screen(self, uri, predicate, what, timeout=e2elib.SCREEN_TIMEOUT):
        deadline = time.monotonic() + timeout
        rows = error = None
        while True:
            try:
                rows = self.screen(uri)
                error = None
                if predicate(rows):
                    return rows
            except (subprocess.CalledProcessError, RuntimeError) as e:
                error = e.stderr if isinstance(e, subprocess.CalledProcessError) else str(e)
            if time.monotonic() >= deadline:
                self.fail("%s on %s: timed out after %ds waiting for %s; last screen:\n%s%s"
                          % (self.domain, uri, timeout, what,
                             e2elib.screen_text(rows) if rows else "(none)",
                             "\nlast error: %s" % error if error else ""))
            time.sleep(e2elib.SCREEN_POLL_INTERVAL)

    def marker_at(self, path):
        rc, out = e2elib.qemu_io_shared(path, "read -P 0x%02x %s 64k" % (MARKER, MARKER_OFFSET))
        return rc == 0 and "Pattern verification failed" not in out

    # -- 1 ---------------------------------------------------------------------------
    def test_1_second_host(self):
        self.assertIn("QEMU", virsh_at(self.b, "version"))
        uuid_a = re.search(r"<uuid>(.*?)</uuid>", virsh_at(self.a, "capabilities")).group(1)
        uuid_b = re.search(r"<uuid>(.*?)</uuid>", virsh_at(self.b, "capabilities")).group(1)
        self.assertEqual(uuid_b, self.host.host_uuid)
        self.assertNotEqual(uuid_a, uuid_b, "both hosts have host UUID %s" % uuid_a)
        # Nothing of A's is visible on B.
        self.assertEqual(self.names(self.b, "list", "--all", "--name"), set())
        self.assertEqual(self.names(self.b, "pool-list", "--all", "--name"), set())
        self.assertEqual(self.names(self.b, "net-list", "--all", "--name"), set())
        self.assertTrue(self.host.processes(), "no process in the second host's namespace")
        # B's private /run/libvirt is not A's.
        self.assertFalse(os.path.samefile("/run/libvirt", self.host.path("run")),
                         "the second host's /run/libvirt is mounted outside its namespace")
        self.paths["host"] = True

    # -- 2 ---------------------------------------------------------------------------
    def test_2_boot_on_a(self):
        self.need("host")
        self.make_pool(self.a, self.pool_a, self.dir_a)
        self.make_pool(self.b, self.pool_b, self.dir_b)
        self.assertNotIn(self.pool_b, self.names(self.a, "pool-list", "--all", "--name"))
        self.assertNotIn(self.pool_a, self.names(self.b, "pool-list", "--all", "--name"))
        image_a = self.upload_image(self.a, self.pool_a)
        image_b = self.upload_image(self.b, self.pool_b)
        overlay_a = self.make_overlay(self.a, self.pool_a, image_a)
        self.assertEqual(e2elib.qemu_img_info(overlay_a).get("backing-filename"), image_a)
        xml = os.path.join(self.host.state_dir, "domain.xml")
        with open(xml, "w") as f:
            f.write(domain_xml(self.domain, overlay_a))
        virsh_at(self.a, "define", xml)
        t0 = time.monotonic()
        virsh_at(self.a, "start", self.domain)
        rows = self.wait_screen(self.a, lambda r: e2elib.screen.prompt_line(r) is not None,
                                "the prompt")
        self.timings["boot on A"] = time.monotonic() - t0
        uuid = virsh_at(self.a, "domuuid", self.domain).strip().lower()
        self.assertEqual(e2elib.banner_uuid(rows), uuid, e2elib.screen_text(rows))
        # A block written by the running QEMU into A's overlay.
        out = virsh_at(self.a, "qemu-monitor-command", self.domain, "--hmp",
                       'qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend "write -P 0x%02x %s 64k"' % (MARKER, MARKER_OFFSET))
        self.assertNotIn("error", out.lower(), out)
        self.assertTrue(self.marker_at(overlay_a), "the marker is not in A's overlay")
        self.assertFalse(self.marker_at(image_a), "the marker went into A's image")
        self.paths.update(image_a=image_a, image_b=image_b, overlay_a=overlay_a, uuid=uuid)

    # -- 3 ---------------------------------------------------------------------------
    def test_3_migrate(self):
        self.need("overlay_a", "image_b")
        overlay_b = self.make_overlay(self.b, self.pool_b, self.paths["image_b"])
        self.assertFalse(self.marker_at(overlay_b), "the marker is in B's overlay before the move")
        # The live definition (--xml) and the persistent one (--persistent-xml: without
        # it B keeps A's inactive definition, with A's overlay path) both move the disk.
        dest = os.path.join(self.host.state_dir, "dest.xml")
        persist = os.path.join(self.host.state_dir, "persist.xml")
        for path, flags in ((dest, ["--migratable"]), (persist, ["--migratable", "--inactive"])):
            src = virsh_at(self.a, "dumpxml", *flags, self.domain)
            with open(path, "w") as f:
                f.write(destination_xml(src, self.paths["overlay_a"], overlay_b))
        t0 = time.monotonic()
        virsh_at(self.a, "migrate", "--live", "--persistent", "--undefinesource",
                 "--copy-storage-inc", "--verbose",
                 "--migrateuri", "tcp://127.0.0.1", "--listen-address", "127.0.0.1",
                 "--xml", dest, "--persistent-xml", persist, self.domain, self.b, timeout=300)
        self.timings["migration"] = time.monotonic() - t0
        self.paths["overlay_b"] = overlay_b

    # -- 4 ---------------------------------------------------------------------------
    def test_4_runs_on_b(self):
        self.need("overlay_b")
        self.assertNotIn(self.domain, self.names(self.a, "list", "--all", "--name"),
                         "the domain is still on A")
        self.assertEqual(virsh_at(self.b, "domstate", self.domain).strip(), "running")
        self.assertIn(self.domain, self.names(self.b, "list", "--persistent", "--name"))
        self.assertEqual(virsh_at(self.b, "domuuid", self.domain).strip().lower(),
                         self.paths["uuid"])
        live = virsh_at(self.b, "dumpxml", self.domain)
        self.assertIn("file='%s'" % self.paths["overlay_b"], live)
        self.assertNotIn(self.paths["overlay_a"], live)
        inactive = virsh_at(self.b, "dumpxml", "--inactive", self.domain)
        self.assertIn("file='%s'" % self.paths["overlay_b"], inactive)
        rows = self.wait_screen(self.b, lambda r: e2elib.screen.prompt_line(r) is not None,
                                "the prompt")
        self.assertEqual(e2elib.banner_uuid(rows), self.paths["uuid"], e2elib.screen_text(rows))
        virsh_at(self.b, "send-key", self.domain, "KEY_" + KEY.upper())
        self.wait_screen(self.b, lambda r: e2elib.screen.prompt_line(r) == KEY,
                         "the prompt to echo %r" % KEY, timeout=30)
        # The block written on A is on B; the overlay is still an overlay on B's image.
        self.assertTrue(self.marker_at(self.paths["overlay_b"]),
                        "the marker written on A is not in B's overlay")
        info = e2elib.qemu_img_info(self.paths["overlay_b"])
        self.assertEqual(info.get("backing-filename"), self.paths["image_b"], info)
        self.assertLess(info["actual-size"], 8 << 20, "B's overlay is a full copy: %r" % info)
        self.assertEqual(e2elib.sha256_of(self.paths["image_b"]),
                         e2elib.sha256_of(kdtest.TEST_IMAGE), "B's image was written")
        rc, first = e2elib.qemu_io_shared(self.paths["overlay_b"], "read -v 0 512")
        rc2, base = e2elib.qemu_io_shared(self.paths["image_a"], "read -v 0 512")
        self.assertEqual((rc, first.split("read ")[0]), (rc2, base.split("read ")[0]),
                         "B's overlay does not read the image's boot sector")

    # -- 5 ---------------------------------------------------------------------------
    def test_5_cleanup(self):
        self.need("host")
        self.assertEqual(remove_prefixed(self.b), [])
        self.assertEqual(remove_prefixed(self.a), [])
        self.save_log()
        self.assertEqual(self.host.stop(), [])
        self.assertFalse(os.path.exists(self.host.state_dir))
        self.assertEqual(self.host.processes(), [])
        with open("/proc/self/mountinfo") as f:
            self.assertNotIn(self.host.state_dir, f.read())
        self.assertIn("QEMU", virsh_at(self.a, "version"))
        self.assertFalse([n for n in self.names(self.a, "list", "--all", "--name")
                          if n.startswith(PREFIX)])
        self.assertFalse([n for n in self.names(self.a, "pool-list", "--all", "--name")
                          if n.startswith(PREFIX)])


if __name__ == "__main__":
    unittest.main()
