"""kvmdesk-display against real QEMU (issue 6): the VM's D-Bus display served over VNC.

A test-desktop domain with <graphics type='dbus' p2p='yes'/> (no VNC in QEMU at
all) on qemu:///system; kvmdesk-display attaches to it with
virDomainOpenGraphicsFD and serves VNC on a loopback port; an RFB client here
(raw encoding, rich-cursor pseudo-encoding so that the pointer is never painted
into the pixels) checks:

- the contract with the broker: one "ready port= width= height=" line on
  stdout, passwords over stdin, "quit", EOF, SIGTERM, bad arguments (2), the
  VM stopping (0, a line on stderr);
- VNC authentication only (never None): no password, a wrong one and an
  expired one are refused;
- the framebuffer equals libvirt's screenshot of the VM pixel for pixel (the
  text cursor's cell may differ: it blinks);
- typed keys reach the guest and are echoed, and the echo reaches the viewer;
- killing kvmdesk-display and starting another works without restarting the VM;
- an idle display costs (almost) no CPU.

Everything made in libvirt is named kddsp-* and removed, even on failure.
"""

import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import time
import unittest

import e2elib
import kdtest

PREFIX = "kddsp-"
DISPLAY = os.path.join(kdtest.BUILD_DIR, "src", "display", "kvmdesk-display")
VNC_AUTH = os.path.join(kdtest.BUILD_DIR, "tests", "e2e", "kd-vnc-auth")
OPEN_GRAPHICS = os.path.join(kdtest.BUILD_DIR, "tests", "e2e", "kd-open-graphics")
IMAGES_DIR = "/var/lib/libvirt/images"
READY_TIMEOUT = 30         # seconds for kvmdesk-display to attach and listen
EXIT_TIMEOUT = 15          # seconds for it to exit when told to
IDLE_SECONDS = 3           # CPU sampling window
IDLE_CPU_MAX = 0.05        # share of one CPU an idle display may use

ENC_RAW = 0
ENC_RICH_CURSOR = -239
ENC_NEW_FB_SIZE = -223


def domain_xml(name, disk):
    return """<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>64</memory>
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
    <graphics type='dbus' p2p='yes'/>
    <audio id='1' type='dbus'/>
    <video><model type='vga'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
""" % (name, disk)


def start_domain(name, paused=False):
    disk = os.path.join(IMAGES_DIR, name + ".qcow2")
    shutil.copyfile(kdtest.TEST_IMAGE, disk)
    xml_path = os.path.join(e2elib.OUT_DIR, name + ".xml")
    os.makedirs(e2elib.OUT_DIR, exist_ok=True)
    with open(xml_path, "w") as f:
        f.write(domain_xml(name, disk))
    e2elib.virsh("create", xml_path, *(["--paused"] if paused else []))
    return disk


def remove_domain(name):
    problems = e2elib.remove_domains([name])
    disk = os.path.join(IMAGES_DIR, name + ".qcow2")
    if os.path.exists(disk):
        os.unlink(disk)
    return problems


class Display:
    """A running kvmdesk-display with its pipes."""

    def __init__(self, *args, domain=None, argv=None):
        if argv is None:
            argv = [DISPLAY] + (list(args) if args else
                                ["--connect", e2elib.URI, "--domain", domain])
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.ready = None
        self.ready_after = None

    def wait_ready(self, timeout=READY_TIMEOUT):
        line = self._readline(self.proc.stdout, timeout)
        if not line:
            self.proc.wait(timeout=EXIT_TIMEOUT)
            raise AssertionError("kvmdesk-display exited (%s) before ready: %s"
                                 % (self.proc.returncode, self.proc.stderr.read().decode()))
        self.ready_after = time.monotonic() - self.started
        words = line.decode().split()
        if words[0] != "ready" or len(words) != 4:
            raise AssertionError("not a ready line: %r" % line)
        self.ready = dict(w.split("=", 1) for w in words[1:])
        self.port = int(self.ready["port"])
        return self.ready

    @staticmethod
    def _readline(stream, timeout):
        deadline = time.monotonic() + timeout
        data = b""
        fd = stream.fileno()
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError("no line within %ds (got %r)" % (timeout, data))
            chunk = os.read(fd, 1)
            if not chunk:
                break
            data += chunk
        return data

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def add_password(self, password, valid_for=60):
        self.send("password %s %d" % (password, int(time.time()) + valid_for))

    def wait_exit(self, timeout=EXIT_TIMEOUT):
        rc = self.proc.wait(timeout=timeout)
        return rc, self.proc.stdout.read().decode(), self.proc.stderr.read().decode()

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for s in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                s.close()
            except OSError:
                pass


class Viewer:
    """An RFB 3.8 client: VNC auth, 32-bpp xRGB raw, rich cursor, NewFBSize."""

    def __init__(self, port, timeout=20):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.width = self.height = 0
        self.fb = None
        self.cursor_updates = 0

    def read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the VNC server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def security_types(self):
        version = self.read(12)
        if not version.startswith(b"RFB 003."):
            raise AssertionError("not an RFB server: %r" % version)
        self.sock.sendall(b"RFB 003.008\n")
        n = self.read(1)[0]
        if n == 0:
            raise ConnectionError(self.read(struct.unpack("!I", self.read(4))[0]).decode())
        return list(self.read(n))

    def vnc_auth(self, password):
        self.sock.sendall(b"\x02")
        challenge = self.read(16)
        out = subprocess.run([VNC_AUTH, password, challenge.hex()], check=True,
                             capture_output=True, text=True).stdout.strip()
        self.sock.sendall(bytes.fromhex(out))
        return struct.unpack("!I", self.read(4))[0] == 0

    def init(self):
        self.sock.sendall(b"\x01")
        self.width, self.height = struct.unpack("!HH", self.read(4))
        self.read(16)
        name = self.read(struct.unpack("!I", self.read(4))[0]).decode(errors="replace")
        # 32 bpp, depth 24, little endian, true colour, red at 16, green 8, blue 0.
        self.sock.sendall(struct.pack("!BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1,
                                      255, 255, 255, 16, 8, 0))
        encodings = [ENC_RAW, ENC_RICH_CURSOR, ENC_NEW_FB_SIZE]
        self.sock.sendall(struct.pack("!BxH", 2, len(encodings))
                          + b"".join(struct.pack("!i", e) for e in encodings))
        self.fb = [bytearray(3 * self.width) for _ in range(self.height)]
        return name

    def connect(self, password):
        types = self.security_types()
        if types != [2]:
            raise AssertionError("security types %r, expected VNC auth only" % types)
        if not self.vnc_auth(password):
            raise AssertionError("password %r refused" % password)
        return self.init()

    def request(self, incremental):
        self.sock.sendall(struct.pack("!BBHHHH", 3, 1 if incremental else 0, 0, 0,
                                      self.width, self.height))

    def read_update(self):
        """Reads one FramebufferUpdate into self.fb; returns its pixel rectangles."""
        while True:
            kind = self.read(1)[0]
            if kind == 0:
                break
            if kind == 2:                       # Bell
                continue
            if kind == 3:                       # ServerCutText
                self.read(3)
                self.read(struct.unpack("!I", self.read(4))[0])
                continue
            raise AssertionError("unexpected RFB message %d" % kind)
        self.read(1)
        rects = []
        for _ in range(struct.unpack("!H", self.read(2))[0]):
            x, y, w, h, enc = struct.unpack("!HHHHi", self.read(12))
            if enc == ENC_RAW:
                data = self.read(w * h * 4)
                for j in range(h):
                    row = self.fb[y + j]
                    src = data[4 * w * j:4 * w * (j + 1)]
                    # BGRX little endian -> RGB
                    row[3 * x:3 * (x + w):3] = src[2::4]
                    row[3 * x + 1:3 * (x + w):3] = src[1::4]
                    row[3 * x + 2:3 * (x + w):3] = src[0::4]
                rects.append((x, y, w, h))
            elif enc == ENC_RICH_CURSOR:
                self.read(w * h * 4 + ((w + 7) // 8) * h)
                self.cursor_updates += 1
            elif enc == ENC_NEW_FB_SIZE:
                self.width, self.height = w, h
                self.fb = [bytearray(3 * w) for _ in range(h)]
            else:
                raise AssertionError("unexpected encoding %d" % enc)
        return rects

    def full_frame(self):
        self.request(False)
        covered = 0
        while covered < self.width * self.height:
            rects = self.read_update()
            covered += sum(w * h for _, _, w, h in rects)
            if covered == 0:
                self.request(False)
        return self.fb

    def type(self, text):
        for ch in text:
            self.sock.sendall(struct.pack("!BBxxI", 4, 1, ord(ch)))
            self.sock.sendall(struct.pack("!BBxxI", 4, 0, ord(ch)))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def compare_with_screenshot(testcase, domain, viewer, tag):
    """The viewer's frame against libvirt's screenshot: same size, and every
    differing pixel inside one 9x16 text cell (the blinking text cursor)."""
    _, shot = e2elib.screenshot(domain, os.path.join(e2elib.OUT_DIR, "%s-%s.png" % (domain, tag)))
    testcase.assertEqual((viewer.width, viewer.height), (shot.width, shot.height))
    # Black against black would prove nothing: the banner and prompt are drawn.
    lit = sum(1 for row in shot.rows for i in range(0, len(row), 3) if any(row[i:i + 3]))
    testcase.assertGreater(lit, 2000, "the screenshot is (almost) black")
    diff = [(x, y) for y in range(shot.height)
            for x in range(shot.width) if viewer.fb[y][3 * x:3 * x + 3] != shot.rows[y][3 * x:3 * x + 3]]
    if diff:
        xs = [p[0] for p in diff]
        ys = [p[1] for p in diff]
        box = (min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)
        testcase.assertTrue(box[2] <= e2elib.CELL_W and box[3] <= e2elib.CELL_H,
                            "%d pixels differ from the screenshot, in box %r" % (len(diff), box))
    return len(diff)


class DisplayE2E(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        e2elib.require_system_libvirt()
        if not all(os.path.exists(p) for p in (DISPLAY, VNC_AUTH, OPEN_GRAPHICS)):
            raise AssertionError("build kvmdesk-display and kd-vnc-auth first (%s)" % DISPLAY)
        cls.domain = "%s%d" % (PREFIX, os.getpid())
        cls.addClassCleanup(remove_domain, cls.domain)
        start_domain(cls.domain)
        rows = e2elib.wait_for_prompt(cls.domain)
        cls.uuid = e2elib.banner_uuid(rows)

    def setUp(self):
        self.displays = []
        self.viewers = []
        self.addCleanup(self.cleanup)

    def cleanup(self):
        for v in self.viewers:
            v.close()
        for d in self.displays:
            d.stop()

    def display(self, *args):
        d = Display(*args, domain=self.domain)
        self.displays.append(d)
        return d

    def viewer(self, port):
        v = Viewer(port)
        self.viewers.append(v)
        return v

    def domain_id(self):
        return e2elib.virsh("domid", self.domain).strip()

    def test_ready_line_and_pixels_equal_screenshot(self):
        d = self.display()
        ready = d.wait_ready()
        self.assertEqual((ready["width"], ready["height"]), ("720", "400"))
        d.add_password("pw123456")
        v = self.viewer(d.port)
        t0 = time.monotonic()
        name = v.connect("pw123456")
        self.assertEqual(name, self.domain)
        v.full_frame()
        first_frame = time.monotonic() - t0
        differing = compare_with_screenshot(self, self.domain, v, "first")
        print("\n  ready after %.0f ms, first full frame %.0f ms after connecting, "
              "%d pixels differ (text cursor)" % (1000 * d.ready_after, 1000 * first_frame,
                                                  differing))
        # The BIOS banner with this VM's UUID is on screen, i.e. this is its display.
        self.assertEqual(e2elib.banner_uuid(e2elib.read_screen(self.domain)), self.uuid)

    def test_typed_keys_are_echoed_and_reach_the_viewer(self):
        d = self.display()
        d.wait_ready()
        d.add_password("typing1")
        v = self.viewer(d.port)
        v.connect("typing1")
        v.full_frame()
        typed = "kd%d" % (os.getpid() % 1000)
        v.type(typed)
        e2elib.wait_for_prompt(self.domain, typed=typed)
        # The echo arrives as incremental updates; then the frames agree again.
        deadline = time.monotonic() + 20
        while True:
            v.request(True)
            v.read_update()
            try:
                compare_with_screenshot(self, self.domain, v, "typed")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        # Clear the line for the other tests (Backspace through the viewer).
        for _ in typed:
            v.sock.sendall(struct.pack("!BBxxI", 4, 1, 0xff08) + struct.pack("!BBxxI", 4, 0, 0xff08))
        e2elib.wait_for_prompt(self.domain, typed="")

    def test_vnc_auth_only_and_bad_passwords_refused(self):
        d = self.display()
        d.wait_ready()
        # No password yet: VNC auth is still the only offer, and fails.
        v = self.viewer(d.port)
        self.assertEqual(v.security_types(), [2])
        self.assertFalse(v.vnc_auth("anything"))
        d.add_password("right1")
        v = self.viewer(d.port)
        self.assertEqual(v.security_types(), [2])
        self.assertFalse(v.vnc_auth("wrong1"))
        # An expired password is refused when given (a line on stderr) and never works.
        d.send("password expired1 %d" % (int(time.time()) - 10))
        v = self.viewer(d.port)
        self.assertEqual(v.security_types(), [2])
        self.assertFalse(v.vnc_auth("expired1"))
        # The right one works; several are valid at once.
        d.add_password("second2")
        for pw in ("right1", "second2"):
            v = self.viewer(d.port)
            v.connect(pw)
        d.send("quit")
        rc, out, err = d.wait_exit()
        self.assertEqual(rc, 0)
        self.assertEqual(out, "")            # nothing after the ready line
        self.assertIn("expired", err)

    def test_restart_without_restarting_the_vm(self):
        before = self.domain_id()
        d = self.display()
        d.wait_ready()
        d.add_password("first1")
        self.viewer(d.port).connect("first1")
        d.proc.kill()
        d.proc.wait()
        d2 = self.display()
        d2.wait_ready()
        d2.add_password("again1")
        v = self.viewer(d2.port)
        v.connect("again1")
        v.full_frame()
        compare_with_screenshot(self, self.domain, v, "restarted")
        self.assertEqual(self.domain_id(), before)
        self.assertEqual(e2elib.domain_state(self.domain), "running")

    def test_inherited_dbus_fd(self):
        """As kvmdeskd will run it: the display socket opened by the parent."""
        d = Display(argv=[OPEN_GRAPHICS, e2elib.URI, self.domain, DISPLAY, "--dbus-fd", "{fd}"])
        self.displays.append(d)
        ready = d.wait_ready()
        self.assertEqual((ready["width"], ready["height"]), ("720", "400"))
        d.add_password("fdpass1")
        v = self.viewer(d.port)
        v.connect("fdpass1")
        v.full_frame()
        compare_with_screenshot(self, self.domain, v, "dbus-fd")

    def test_idle_costs_no_cpu(self):
        d = self.display()
        d.wait_ready()
        d.add_password("idle123")
        v = self.viewer(d.port)
        v.connect("idle123")
        v.full_frame()
        v.request(True)                    # a pending request, as real viewers keep
        time.sleep(0.5)
        c0, t0 = d.cpu_seconds(), time.monotonic()
        time.sleep(IDLE_SECONDS)
        share = (d.cpu_seconds() - c0) / (time.monotonic() - t0)
        print("\n  idle CPU: %.2f%% of one core over %ds" % (100 * share, IDLE_SECONDS))
        self.assertLess(share, IDLE_CPU_MAX)

    def test_stdin_eof_sigterm_and_bad_arguments(self):
        d = self.display()
        d.wait_ready()
        d.proc.stdin.close()
        rc, out, err = d.wait_exit()
        self.assertEqual(rc, 0)
        self.assertIn("stdin", err)
        d = self.display()
        d.wait_ready()
        d.proc.send_signal(signal.SIGTERM)
        self.assertEqual(d.wait_exit()[0], 0)
        for args in (["--domain", "x"], ["--dbus-fd", "1"], ["--bogus"],
                     ["--dbus-fd", "9", "--connect", e2elib.URI, "--domain", "x"],
                     ["--connect", e2elib.URI, "--domain", "x", "--listen", "localhost:5900"],
                     ["--connect", e2elib.URI, "--domain", "x", "--listen", "127.0.0.1:70000"]):
            d = self.display(*args)
            rc, out, err = d.wait_exit()
            self.assertEqual(rc, 2, args)
            self.assertEqual(out, "")
            self.assertEqual(len(err.strip().splitlines()), 1, err)
        d = self.display("--connect", e2elib.URI, "--domain", PREFIX + "no-such-domain")
        rc, out, err = d.wait_exit(timeout=60)
        self.assertEqual((rc, out), (1, ""))
        self.assertEqual(len(err.strip().splitlines()), 1, err)


class DisplayLifecycleE2E(unittest.TestCase):
    """A VM of its own, started paused: the display is attached before the
    guest's BIOS switches from QEMU's 640x480 placeholder to 720x400 text
    mode (QEMU 7.2 announces that with the console's size, no Scanout), then
    the VM is destroyed under it."""

    def test_resolution_change_reaches_the_viewer_then_vm_stops(self):
        e2elib.require_system_libvirt()
        domain = "%slife-%d" % (PREFIX, os.getpid())
        self.addCleanup(remove_domain, domain)
        start_domain(domain, paused=True)
        d = Display(domain=domain)
        self.addCleanup(d.stop)
        ready = d.wait_ready()
        d.add_password("resize1")
        v = Viewer(d.port)
        self.addCleanup(v.close)
        v.connect("resize1")
        before = (v.width, v.height)
        v.full_frame()
        e2elib.virsh("resume", domain)
        e2elib.wait_for_prompt(domain)
        deadline = time.monotonic() + 30
        while (v.width, v.height) != (720, 400):
            self.assertLess(time.monotonic(), deadline, "no NewFBSize to 720x400")
            v.request(True)
            v.read_update()
        print("\n  ready at %sx%s, viewer saw %dx%d then 720x400"
              % (ready["width"], ready["height"], before[0], before[1]))
        self.assertNotEqual(before, (720, 400))
        deadline = time.monotonic() + 20
        while True:
            v.full_frame()
            try:
                compare_with_screenshot(self, domain, v, "resized")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        e2elib.virsh("destroy", domain)
        rc, out, err = d.wait_exit()
        self.assertEqual((rc, out), (0, ""))
        self.assertIn("the VM stopped", err)

    def test_password_file_and_sighup(self):
        e2elib.require_system_libvirt()
        domain = "%spwf-%d" % (PREFIX, os.getpid())
        self.addCleanup(remove_domain, domain)
        start_domain(domain)
        path = os.path.join(e2elib.OUT_DIR, domain + ".passwords")
        with open(path, "w") as f:
            f.write("# one a line\nfile111 %d\n" % (int(time.time()) + 600))
        self.addCleanup(os.unlink, path)
        d = Display("--connect", e2elib.URI, "--domain", domain, "--password-file", path)
        self.addCleanup(d.stop)
        d.wait_ready()
        d.proc.stdin.close()                 # not read in this mode: it keeps running
        v = Viewer(d.port)
        self.addCleanup(v.close)
        v.connect("file111")
        with open(path, "w") as f:
            f.write("file222\n")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            w = Viewer(d.port)
            self.addCleanup(w.close)
            self.assertEqual(w.security_types(), [2])
            if w.vnc_auth("file222"):
                break
            self.assertLess(time.monotonic(), deadline, "SIGHUP did not reload the file")
            time.sleep(0.2)
        w = Viewer(d.port)
        self.addCleanup(w.close)
        w.security_types()
        self.assertFalse(w.vnc_auth("file111"))
        self.assertIsNone(d.proc.poll())


if __name__ == "__main__":
    unittest.main()
