#!/usr/bin/env python3
"""screen.py: read the VGA text screen of a running test desktop, without OCR.

The test desktop (test-desktop.asm) writes through the BIOS in 80x25 text mode, so the whole
screen is in guest memory at 0xB8000: 2 bytes per cell, character then attribute. QEMU's
monitor dumps it:  virsh qemu-monitor-command DOM --hmp 'xp /4000bx 0xb8000'

Usage:  screen.py [-c URI] DOMAIN            print the 25 rows
        screen.py [-c URI] --prompt DOMAIN   print only the text after the last "kvmdesk> "
Import: read_screen(domain, uri) -> list of 25 (text, attrs) rows; prompt_line(rows).
"""

import argparse
import re
import subprocess
import sys

COLS = 80
ROWS = 25
VGA_TEXT = 0xB8000
PROMPT = "kvmdesk> "
ATTR_PROMPT = 0x1F

_BYTE = re.compile(r"0x([0-9a-fA-F]{2})\b")


def parse_xp(output):
    """Bytes from the output of HMP 'xp /Nbx ADDR' ("ADDR: 0x.. 0x.." lines)."""
    data = bytearray()
    for line in output.splitlines():
        _, sep, rest = line.partition(":")
        if not sep:
            continue
        data.extend(int(h, 16) for h in _BYTE.findall(rest))
    return bytes(data)


def decode(data):
    """Split text-mode memory into (text, attrs) rows; non-printable cells read as spaces."""
    rows = []
    for r in range(len(data) // (2 * COLS)):
        cells = data[r * 2 * COLS:(r + 1) * 2 * COLS]
        text = "".join(chr(c) if 0x20 <= c < 0x7F else " " for c in cells[0::2])
        rows.append((text, list(cells[1::2])))
    return rows


def read_screen(domain, uri="qemu:///system", timeout=30):
    """The 25 rows of DOMAIN's text screen as (text, attrs); raises on virsh failure."""
    out = subprocess.run(
        ["virsh", "-c", uri, "qemu-monitor-command", domain, "--hmp",
         "xp /%dbx 0x%x" % (COLS * ROWS * 2, VGA_TEXT)],
        check=True, capture_output=True, text=True, timeout=timeout).stdout
    data = parse_xp(out)
    if len(data) != COLS * ROWS * 2:
        raise RuntimeError("domain '%s': expected %d bytes of VGA text memory, got %d"
                           % (domain, COLS * ROWS * 2, len(data)))
    return decode(data)


def prompt_line(rows):
    """Text typed after the last prompt (prompt row = starts with PROMPT in ATTR_PROMPT),
    or None when no prompt is on the screen yet."""
    for text, attrs in reversed(rows):
        if text.startswith(PROMPT) and attrs[0] == ATTR_PROMPT:
            return text[len(PROMPT):].rstrip()
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--connect", default="qemu:///system", help="libvirt URI")
    ap.add_argument("--prompt", action="store_true", help="print only the current input line")
    ap.add_argument("domain")
    args = ap.parse_args()
    try:
        rows = read_screen(args.domain, args.connect)
    except (subprocess.CalledProcessError, RuntimeError) as e:
        msg = e.stderr.strip() if isinstance(e, subprocess.CalledProcessError) else str(e)
        print("screen.py: %s" % msg, file=sys.stderr)
        return 1
    if args.prompt:
        line = prompt_line(rows)
        if line is None:
            print("screen.py: no 'kvmdesk> ' prompt on the screen of '%s'" % args.domain,
                  file=sys.stderr)
            return 1
        print(line)
    else:
        for text, _ in rows:
            print(text.rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
