"""kdrfb.py: a small RFB 3.8 client for bench/display (Python standard library only).

What the display benchmark needs and nothing more: security None or VNC authentication (the
DES response comes from kvmdesk's own kd-vnc-auth helper, tests/e2e/kd-vnc-auth.c, since
Python has no DES), a 32 bpp true-colour pixel format, raw (0) and ZRLE (16) rectangles and
the DesktopSize pseudo-encoding (-223), a client-side copy of the framebuffer, and the arrival
time and size of every FramebufferUpdate. Every read has a deadline.

    c = Client("127.0.0.1", port, password="x", vnc_auth_helper=path)
    c.set_encodings([ENC_ZRLE, ENC_DESKTOP_SIZE])
    c.request(incremental=False)
    upd = c.read_update(deadline)   # Update: .rects, .nbytes, .t_done (time.monotonic())
    c.pixel(x, y) -> (r, g, b)
"""

import socket
import struct
import subprocess
import time
import zlib

ENC_RAW = 0
ENC_ZRLE = 16
ENC_DESKTOP_SIZE = -223
ENCODING_NAMES = {"raw": ENC_RAW, "zrle": ENC_ZRLE}

MESSAGE_TIMEOUT = 30.0    # seconds a server message may take once its first byte is in

KEY_BACKSPACE = 0xFF08
KEY_RETURN = 0xFF0D
KEY_F1 = 0xFFBE
KEY_F2 = 0xFFBF
KEY_F3 = 0xFFC0


class RfbError(Exception):
    pass


class Update:
    """One FramebufferUpdate: its rectangles (x, y, w, h, encoding), its size in bytes on the
    wire (header included) and the monotonic time its last byte was read."""

    def __init__(self, rects, nbytes, t_done):
        self.rects = rects
        self.nbytes = nbytes
        self.t_done = t_done

    def covers(self, x, y, w, h):
        """True when a pixel rectangle of this update intersects (x, y, w, h)."""
        for rx, ry, rw, rh, enc in self.rects:
            if enc < 0:
                continue
            if rx < x + w and x < rx + rw and ry < y + h and y < ry + rh:
                return True
        return False

    def resized(self):
        return any(enc == ENC_DESKTOP_SIZE for _, _, _, _, enc in self.rects)


class Client:
    def __init__(self, host, port, password=None, vnc_auth_helper=None, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
        self.bytes_in = 0
        self.deadline = time.monotonic() + timeout
        self.zlib = zlib.decompressobj()
        self._handshake(password, vnc_auth_helper)
        self.deadline = None

    # -- reading with a deadline ------------------------------------------------------------

    def _fill(self, n):
        while len(self.buf) - self.pos < n:
            left = None if self.deadline is None else self.deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("RFB: no data from the server in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                raise TimeoutError("RFB: no data from the server in time") from None
            if not chunk:
                raise RfbError("RFB: the server closed the connection")
            if self.pos > (1 << 20):
                del self.buf[:self.pos]
                self.pos = 0
            self.buf += chunk
            self.bytes_in += len(chunk)

    def _take(self, n):
        self._fill(n)
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def _unpack(self, fmt):
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))

    def pending(self):
        """Bytes already received and not yet parsed."""
        return len(self.buf) - self.pos

    # -- handshake --------------------------------------------------------------------------

    def _handshake(self, password, helper):
        version = self._take(12)
        if not version.startswith(b"RFB 003."):
            raise RfbError("RFB: not an RFB server: %r" % version)
        self.sock.sendall(b"RFB 003.008\n")
        (ntypes,) = self._unpack("!B")
        if ntypes == 0:
            (n,) = self._unpack("!I")
            raise RfbError("RFB: refused: %s" % self._take(n).decode(errors="replace"))
        types = self._take(ntypes)
        if password is not None and 2 in types:
            self.sock.sendall(b"\x02")
            challenge = self._take(16)
            if helper is None:
                raise RfbError("RFB: VNC authentication needs the kd-vnc-auth helper")
            out = subprocess.run([helper, password, challenge.hex()], check=True,
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            self.sock.sendall(bytes.fromhex(out))
        elif 1 in types:
            self.sock.sendall(b"\x01")
        else:
            raise RfbError("RFB: no usable security type in %s" % list(types))
        (result,) = self._unpack("!I")
        if result != 0:
            (n,) = self._unpack("!I")
            raise RfbError("RFB: authentication failed: %s"
                           % self._take(n).decode(errors="replace"))
        self.sock.sendall(b"\x01")                                  # ClientInit: shared
        self.width, self.height = self._unpack("!HH")
        self._take(16)                                              # server pixel format
        (n,) = self._unpack("!I")
        self.name = self._take(n).decode(errors="replace")
        # 32 bpp, depth 24, little-endian, true colour, red<<16 green<<8 blue: a pixel in memory
        # is B, G, R, 0 and a ZRLE CPIXEL is its first three bytes.
        self.sock.sendall(struct.pack("!BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1,
                                      255, 255, 255, 16, 8, 0))
        self.fb = bytearray(self.width * self.height * 4)

    # -- client messages --------------------------------------------------------------------

    def set_encodings(self, encodings):
        self.sock.sendall(struct.pack("!BxH", 2, len(encodings))
                          + b"".join(struct.pack("!i", e) for e in encodings))

    def request(self, incremental=True):
        self.sock.sendall(struct.pack("!BBHHHH", 3, 1 if incremental else 0, 0, 0,
                                      self.width, self.height))

    def key(self, keysym):
        """Press and release @keysym in one send; returns the monotonic time before it."""
        msg = struct.pack("!BBxxI", 4, 1, keysym) + struct.pack("!BBxxI", 4, 0, keysym)
        t = time.monotonic()
        self.sock.sendall(msg)
        return t

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- server messages --------------------------------------------------------------------

    def read_update(self, deadline):
        """The next FramebufferUpdate (other server messages are read and dropped), applied to
        the framebuffer copy. Raises TimeoutError when no message has begun by @deadline
        (time.monotonic()); a message that has begun is read to its end (at most
        MESSAGE_TIMEOUT more seconds), so that a timeout never leaves one half-read."""
        try:
            while True:
                self.deadline = deadline
                start_in = self.bytes_in - self.pending()
                (mtype,) = self._unpack("!B")
                self.deadline = time.monotonic() + MESSAGE_TIMEOUT
                if mtype == 0:
                    return self._update(start_in)
                if mtype == 1:                                      # SetColourMapEntries
                    _, _, n = self._unpack("!BHH")
                    self._take(6 * n)
                elif mtype == 2:                                    # Bell
                    pass
                elif mtype == 3:                                    # ServerCutText
                    (n,) = self._unpack("!xxxI")
                    self._take(n)
                else:
                    raise RfbError("RFB: unexpected server message type %d" % mtype)
        finally:
            self.deadline = None

    def _update(self, start_in):
        (nrects,) = self._unpack("!xH")
        rects = []
        for _ in range(nrects):
            x, y, w, h, enc = self._unpack("!HHHHi")
            rects.append((x, y, w, h, enc))
            if enc == ENC_RAW:
                self._raw(x, y, w, h)
            elif enc == ENC_ZRLE:
                self._zrle(x, y, w, h)
            elif enc == ENC_DESKTOP_SIZE:
                self.width, self.height = w, h
                self.fb = bytearray(w * h * 4)
            else:
                raise RfbError("RFB: rectangle in encoding %d, which was not asked for" % enc)
        t_done = time.monotonic()
        nbytes = self.bytes_in - self.pending() - start_in
        return Update(rects, nbytes, t_done)

    def _check_rect(self, x, y, w, h):
        if x + w > self.width or y + h > self.height:
            raise RfbError("RFB: rectangle %dx%d+%d+%d outside the %dx%d framebuffer"
                           % (w, h, x, y, self.width, self.height))

    def _raw(self, x, y, w, h):
        self._check_rect(x, y, w, h)
        data = self._take(w * h * 4)
        stride = self.width * 4
        for row in range(h):
            o = (y + row) * stride + x * 4
            self.fb[o:o + w * 4] = data[row * w * 4:(row + 1) * w * 4]

    def _zrle(self, x, y, w, h):
        self._check_rect(x, y, w, h)
        (n,) = self._unpack("!I")
        data = self.zlib.decompress(self._take(n))
        p = 0
        stride = self.width * 4
        for ty in range(y, y + h, 64):
            th = min(64, y + h - ty)
            for tx in range(x, x + w, 64):
                tw = min(64, x + w - tx)
                sub = data[p]
                p += 1
                pixels = None
                if sub == 0:
                    pixels = [data[p + 3 * i:p + 3 * i + 3] for i in range(tw * th)]
                    p += 3 * tw * th
                elif sub == 1:
                    px = data[p:p + 3] + b"\x00"
                    p += 3
                    row = px * tw
                    for r in range(th):
                        o = (ty + r) * stride + tx * 4
                        self.fb[o:o + tw * 4] = row
                    continue
                elif 2 <= sub <= 16:
                    pal = [data[p + 3 * i:p + 3 * i + 3] for i in range(sub)]
                    p += 3 * sub
                    bits = 1 if sub == 2 else 2 if sub <= 4 else 4
                    mask = (1 << bits) - 1
                    pixels = []
                    for _ in range(th):
                        nb = (tw * bits + 7) // 8
                        rowbytes = data[p:p + nb]
                        p += nb
                        for i in range(tw):
                            bit = i * bits
                            v = (rowbytes[bit >> 3] >> (8 - bits - (bit & 7))) & mask
                            pixels.append(pal[v])
                elif sub == 128 or sub >= 130:
                    pal = None
                    if sub >= 130:
                        pal = [data[p + 3 * i:p + 3 * i + 3] for i in range(sub - 128)]
                        p += 3 * (sub - 128)
                    pixels = []
                    total = tw * th
                    while len(pixels) < total:
                        if pal is None:
                            px = data[p:p + 3]
                            p += 3
                            run = True
                        else:
                            idx = data[p]
                            p += 1
                            px = pal[idx & 0x7F]
                            run = bool(idx & 0x80)
                        length = 1
                        if run:
                            while True:
                                b = data[p]
                                p += 1
                                length += b
                                if b != 255:
                                    break
                        pixels.extend([px] * length)
                    if len(pixels) != total:
                        raise RfbError("RFB: ZRLE run past the end of a tile")
                else:
                    raise RfbError("RFB: ZRLE tile subencoding %d is invalid" % sub)
                for r in range(th):
                    o = (ty + r) * stride + tx * 4
                    self.fb[o:o + tw * 4] = b"".join(px + b"\x00"
                                                     for px in pixels[r * tw:(r + 1) * tw])
        if p != len(data):
            raise RfbError("RFB: ZRLE rectangle has %d bytes left over" % (len(data) - p))

    # -- the framebuffer copy ---------------------------------------------------------------

    def pixel(self, x, y):
        o = (y * self.width + x) * 4
        return self.fb[o + 2], self.fb[o + 1], self.fb[o]
