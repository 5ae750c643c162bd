"""e2elib: helpers for the end-to-end tests against a real libvirtd with QEMU.

- require_system_libvirt(): skip (or, with KD_REQUIRE_E2E=1, fail) when
  qemu:///system cannot be used;
- virsh(), domains_with_prefix(), pool_volumes(), remove_libvirt_objects():
  look at and clean up what a test's daemon made, by its name prefix and pool;
- wait_for_prompt(), read_screen(): the test desktop's VGA text screen
  (through data/images/test-desktop/screen.py), polled, never slept on;
- decode_png(): a stdlib-only PNG decoder (zlib + the five PNG filters), so a
  test can count the pixels of a libvirt screenshot without PIL;
- qemu_img_info(), qemu_io(): look at an overlay out of band.

Nothing here talks to kvmdeskd: that is kdtest's job.
"""

import json
import os
import struct
import subprocess
import sys
import time
import unittest
import zlib

import kdtest

URI = "qemu:///system"
SCREEN_POLL_INTERVAL = 0.2   # seconds between two reads of the text screen
SCREEN_TIMEOUT = 60          # seconds a desktop may take to show its prompt
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")

sys.path.insert(0, os.path.join(kdtest.SOURCE_DIR, "data", "images", "test-desktop"))
import screen  # noqa: E402  (data/images/test-desktop/screen.py)

CELL_W, CELL_H = 9, 16       # VGA text mode 80x25 at 720x400


# -- availability -----------------------------------------------------------

def system_libvirt_problem():
    """None when `virsh -c qemu:///system version` works, else why not."""
    try:
        r = subprocess.run(["virsh", "-c", URI, "version"], capture_output=True, text=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "cannot run 'virsh -c %s version': %s" % (URI, e)
    if r.returncode != 0:
        return "'virsh -c %s version' failed (%d): %s" % (URI, r.returncode,
                                                          (r.stderr or r.stdout).strip())
    for tool in ("qemu-img", "qemu-io"):
        if subprocess.run(["sh", "-c", "command -v " + tool], capture_output=True).returncode:
            return "'%s' is not installed (Debian package qemu-utils)" % tool
    if not os.path.exists(kdtest.TEST_IMAGE):
        return "the test desktop image '%s' was not built" % kdtest.TEST_IMAGE
    return None


def require_system_libvirt():
    """Raises SkipTest when the real libvirt is unusable; with KD_REQUIRE_E2E=1
    raises AssertionError instead, so that CI cannot pass by skipping."""
    problem = system_libvirt_problem()
    if problem is None:
        return
    # libvirtd 9.0 has been seen to segfault when a client with domain event
    # callbacks is killed (the crash tests do that). It is a separate daemon
    # the suite shares: start it again once, and say so, rather than let
    # every later test fail on it.
    if os.geteuid() == 0 and ("Connection refused" in problem or "No such file" in problem):
        up = os.path.join(kdtest.SOURCE_DIR, "scripts", "libvirt-up.sh")
        print("e2e: libvirtd is not answering (%s); restarting it with %s" % (problem, up))
        subprocess.run(["bash", up], capture_output=True, text=True, timeout=120)
        problem = system_libvirt_problem()
        if problem is None:
            return
    if kdtest.require_e2e():
        raise AssertionError("KD_REQUIRE_E2E=1 but the end-to-end tests cannot run: " + problem)
    raise unittest.SkipTest(problem)


# -- virsh ------------------------------------------------------------------

def virsh(*args, check=True, timeout=60, uri=URI):
    """Runs virsh on @uri (qemu:///system); returns its stdout. Raises
    AssertionError with virsh's message when @check and it fails."""
    r = subprocess.run(["virsh", "-q", "-c", uri, *args], capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("virsh %s failed (%d): %s" % (" ".join(args), r.returncode,
                                                           (r.stderr or r.stdout).strip()))
    return r.stdout if check else r


def domains_with_prefix(prefix, uri=URI):
    """Names of every domain (running or not) whose name starts with @prefix."""
    out = virsh("list", "--all", "--name", uri=uri)
    return sorted(n.strip() for n in out.splitlines() if n.strip().startswith(prefix))


def domain_state(domain):
    return virsh("domstate", domain).strip()


def domain_uuid(domain):
    return virsh("domuuid", domain).strip()


def pool_exists(pool, uri=URI):
    return virsh("pool-info", pool, check=False, uri=uri).returncode == 0


def pool_volumes(pool):
    """{volume name: path} of @pool (refreshed first, so files added out of band count)."""
    virsh("pool-refresh", pool)
    vols = {}
    for line in virsh("vol-list", pool).splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            vols[parts[0]] = parts[1].strip()
    return vols


def remove_libvirt_objects(prefix, pool, log=None, uri=URI):
    """Destroys and undefines every domain named @prefix*, deletes every volume
    of @pool and the pool itself. Best effort: goes on past failures, and
    returns the sentences of what could not be removed."""
    problems = []

    def run(*args):
        r = virsh(*args, check=False, uri=uri)
        if r.returncode != 0:
            problems.append("virsh %s: %s" % (" ".join(args), (r.stderr or r.stdout).strip()))
        return r

    try:
        names = domains_with_prefix(prefix, uri)
    except AssertionError as e:
        names = []
        problems.append(str(e))
    for name in names:
        virsh("destroy", name, check=False, uri=uri)      # fails harmlessly when not running
        run("undefine", name, "--nvram")
    if pool_exists(pool, uri):
        virsh("pool-refresh", pool, check=False, uri=uri)
        r = virsh("vol-list", pool, check=False, uri=uri)
        for line in (r.stdout if r.returncode == 0 else "").splitlines():
            parts = line.split(None, 1)
            if parts:
                run("vol-delete", parts[0], "--pool", pool)
        virsh("pool-destroy", pool, check=False, uri=uri)  # fails harmlessly when inactive
        run("pool-undefine", pool)
    if problems and log is not None:
        log("cleanup left something behind: " + "; ".join(problems))
    return problems


# -- the test desktop's screen ------------------------------------------------

def read_screen(domain, uri=URI):
    return screen.read_screen(domain, uri)


def prompt_row(rows):
    """Index of the last prompt row on the screen, or None."""
    for i in range(len(rows) - 1, -1, -1):
        text, attrs = rows[i]
        if text.startswith(screen.PROMPT) and attrs[0] == screen.ATTR_PROMPT:
            return i
    return None


def screen_text(rows):
    return "\n".join(text.rstrip() for text, _ in rows)


def wait_for_screen(domain, predicate, what, timeout=SCREEN_TIMEOUT, uri=URI):
    """Reads @domain's text screen (on @uri) every 0.2 s until @predicate(rows)
    is true; returns the rows. Fails with the last screen in the message."""
    deadline = time.monotonic() + timeout
    rows, error = None, None
    while True:
        try:
            rows = read_screen(domain, uri)
            error = None
            if predicate(rows):
                return rows
        except (subprocess.CalledProcessError, RuntimeError) as e:
            # The monitor may not answer in the first instants of a start.
            error = e.stderr if isinstance(e, subprocess.CalledProcessError) else str(e)
        if time.monotonic() >= deadline:
            break
        time.sleep(SCREEN_POLL_INTERVAL)
    raise AssertionError("domain '%s': timed out after %ds waiting for %s; last screen:\n%s%s"
                         % (domain, timeout, what, screen_text(rows) if rows else "(none)",
                            "\nlast error: %s" % error if error else ""))


def wait_for_prompt(domain, typed=None, timeout=SCREEN_TIMEOUT):
    """Waits until the prompt row shows (with @typed after it, when given)."""
    def ok(rows):
        line = screen.prompt_line(rows)
        return line is not None and (typed is None or line == typed)
    what = "the prompt" if typed is None else "the prompt to show %r" % typed
    return wait_for_screen(domain, ok, what, timeout)


def banner_uuid(rows):
    """The UUID SeaBIOS printed ("Machine UUID ..."), lower case, or None."""
    for text, _ in rows:
        if "Machine UUID" in text:
            return text.split("Machine UUID", 1)[1].strip().split()[0].lower()
    return None


# -- screenshots ----------------------------------------------------------------

class Image:
    """Decoded pixels: width, height, rows of (r, g, b) bytes (3 per pixel)."""

    def __init__(self, width, height, rows):
        self.width = width
        self.height = height
        self.rows = rows          # list of bytes objects, 3 * width each

    def pixel(self, x, y):
        row = self.rows[y]
        return row[3 * x], row[3 * x + 1], row[3 * x + 2]


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data):
    """Decodes an 8-bit, non-interlaced RGB/RGBA/greyscale PNG (what QEMU writes).
    Returns an Image with RGB rows. Raises ValueError on anything else."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file (signature %r)" % data[:8])
    pos, idat, ihdr = 8, [], None
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            raise ValueError("PNG chunk %r has a bad CRC" % ctype)
        if ctype == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
        pos += 12 + length
    if ihdr is None or not idat:
        raise ValueError("PNG without IHDR or IDAT")
    width, height, depth, color, _, _, interlace = ihdr
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace != 0:
        raise ValueError("unsupported PNG: depth %d, colour type %d, interlace %d"
                         % (depth, color, interlace))
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise ValueError("PNG data is %d bytes, expected %d" % (len(raw), height * (stride + 1)))
    rows, prev = [], bytearray(stride)
    bpp = channels
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ftype == 1:        # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:      # Up
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif ftype == 3:      # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:      # Paeth
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                upleft = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, prev[i], upleft)) & 0xFF
        elif ftype != 0:
            raise ValueError("PNG row %d has unknown filter type %d" % (y, ftype))
        prev = line
        if channels == 3:
            rows.append(bytes(line))
        elif channels == 4:
            rgb = bytearray(3 * width)
            rgb[0::3], rgb[1::3], rgb[2::3] = line[0::4], line[1::4], line[2::4]
            rows.append(bytes(rgb))
        else:
            grey = line[0::channels]
            rgb = bytearray(3 * width)
            rgb[0::3] = rgb[1::3] = rgb[2::3] = grey
            rows.append(bytes(rgb))
    return Image(width, height, rows)


def screenshot(domain, path):
    """Takes a libvirt screenshot of @domain into @path; returns (bytes, Image)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    virsh("screenshot", domain, path)
    with open(path, "rb") as f:
        data = f.read()
    return data, decode_png(data)


def is_blue(r, g, b):
    """VGA blue (0, 0, 0xAA) and near it; not white, not black."""
    return b >= 0x80 and r < 0x40 and g < 0x40


def blue_fraction(img, text_row):
    """Share of the pixels of character row @text_row (16 px high) that are blue."""
    y0 = text_row * CELL_H
    blue = total = 0
    for y in range(y0, min(y0 + CELL_H, img.height)):
        row = img.rows[y]
        for x in range(img.width):
            total += 1
            if is_blue(row[3 * x], row[3 * x + 1], row[3 * x + 2]):
                blue += 1
    return blue / total if total else 0.0


def light_pixels(img, text_row, col, scanlines=12):
    """Bright pixels (a glyph drawn in white) in the top @scanlines of one character
    cell; the blinking cursor lives in the cell's bottom scanlines and is not counted."""
    n = 0
    for y in range(text_row * CELL_H, text_row * CELL_H + scanlines):
        for x in range(col * CELL_W, (col + 1) * CELL_W):
            r, g, b = img.pixel(x, y)
            if r > 0xA0 and g > 0xA0 and b > 0xA0:
                n += 1
    return n


# -- images out of band ------------------------------------------------------------

def qemu_img_info(path):
    """`qemu-img info -U --output=json` of @path as a dict (-U: even while in use)."""
    r = subprocess.run(["qemu-img", "info", "-U", "--output=json", path],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("qemu-img info '%s' failed: %s" % (path, r.stderr.strip()))
    return json.loads(r.stdout)


def qemu_io(path, command, read_only=False):
    """Runs one qemu-io command on a qcow2 file; returns (exit status, output)."""
    args = ["qemu-io", "-f", "qcow2"]
    if read_only:
        args.append("-r")
    r = subprocess.run([*args, "-c", command, path], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def sha256_of(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- additions for the pool tests (issue 3) ------------------------------------------

def qemu_io_shared(path, command):
    """Runs one read-only qemu-io command on a qcow2 file that a running QEMU may
    hold (-U, force-share); returns (exit status, output)."""
    r = subprocess.run(["qemu-io", "-f", "qcow2", "-r", "-U", "-c", command, path],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def overlay_has_pattern(path, pattern, length="64k"):
    """True when the first @length bytes of the qcow2 at @path all read @pattern
    (an int, e.g. 0xcd). A missing file reads as no pattern."""
    if not os.path.exists(path):
        return False
    rc, _ = qemu_io_shared(path, "read -P 0x%02x 0 %s" % (pattern, length))
    return rc == 0


def send_text(domain, text):
    """Types @text (lower-case letters and digits) on @domain with virsh send-key."""
    keys = []
    for ch in text:
        if not (ch.isdigit() or "a" <= ch <= "z"):
            raise ValueError("send_text types only a-z and 0-9, not %r" % ch)
        keys.append("KEY_" + ch.upper())
    virsh("send-key", domain, *keys)


def remove_domains(names):
    """Destroys and undefines the domains @names (best effort); returns the
    sentences of what could not be removed. For domains a test knows by name
    whatever prefix they carry."""
    problems = []
    existing = set(n.strip() for n in virsh("list", "--all", "--name").splitlines())
    for name in names:
        if name not in existing:
            continue
        virsh("destroy", name, check=False)
        r = virsh("undefine", name, "--nvram", check=False)
        if r.returncode != 0:
            problems.append("virsh undefine %s: %s" % (name, (r.stderr or r.stdout).strip()))
    return problems
