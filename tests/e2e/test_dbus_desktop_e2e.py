"""End-to-end: a desktop with display = dbus, served by kvmdesk-display that
kvmdeskd starts, watches and stops (issue 6, the broker's side).

Real libvirtd + QEMU, through the REST API:
 - the domain has a D-Bus display (p2p) and no VNC server in QEMU;
 - kvmdeskd starts kvmdesk-display when the desktop runs; its state, pid and
   port are in the desktop's details and its start is an event;
 - the browser console through the gateway reaches it (offered "None", the
   gateway answers kvmdesk-display's VNC authentication with a one-time
   password), shows the desktop's screen (pixels equal libvirt's screenshot
   but for the cursor), typed keys are echoed by the guest, and the guest's
   switch to 640x480 graphics and back reaches the browser as DesktopSize;
 - the .vv file's password lets a native VNC client in; a wrong one does not;
 - kvmdesk-display killed: kvmdeskd starts a new one, the VM keeps running
   (same domain id), the console works again;
 - kvmdeskd restarted: the old process ends with it, the new kvmdeskd starts
   one for the running desktop;
 - the desktop stopped: the process is gone.
"""

import os
import signal
import struct
import time
import unittest
import urllib.parse

import e2elib
import kdtest
from test_console_e2e import WebSocket, read_framebuffer
from test_viewers_e2e import RfbClient, VNC_AUTH, parse_vv


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class DbusDesktopE2E(unittest.TestCase):

    daemon_config = ""

    def setUp(self):
        e2elib.require_system_libvirt()
        for need in (kdtest.TEST_IMAGE, VNC_AUTH,
                     os.path.join(kdtest.BUILD_DIR, "src", "display", "kvmdesk-display")):
            if not os.path.exists(need):
                if kdtest.require_e2e():
                    self.fail("%s is missing: build the project first" % need)
                self.skipTest("%s is missing" % need)
        self.daemon = kdtest.Daemon(config=self.daemon_config)
        self.addCleanup(self.cleanup)
        self.daemon.start()
        d = self.daemon
        d.request("POST", "/api/v1/hosts", {"name": "local", "uri": e2elib.URI})
        with open(kdtest.TEST_IMAGE, "rb") as f:
            d.request("PUT", "/api/v1/images/td?host=local", raw=f.read())
        d.request("POST", "/api/v1/templates", {"name": "tdbus", "vcpus": 1, "memory_mib": 64,
                                                "disk_gib": 1, "display": "dbus"})

    def cleanup(self):
        d = self.daemon
        d.stop()
        problems = e2elib.remove_libvirt_objects(d.prefix, d.pool)
        d.cleanup()
        if problems:
            raise AssertionError("cleanup left: " + "; ".join(problems))

    def desktop(self, name):
        return self.daemon.request("GET", "/api/v1/desktops/" + name)

    def wait_desktop(self, name, pred, what, timeout=60):
        return kdtest.wait_until(lambda: (lambda x: x if pred(x) else None)(self.desktop(name)),
                                 timeout=timeout, what="desktop %s: %s" % (name, what))

    @staticmethod
    def serving(desk):
        p = desk.get("display_process")
        return p is not None and p["state"] == "running" and p["port"] > 0

    def console(self, name):
        t = self.daemon.request("POST", "/api/v1/desktops/%s/console" % name)
        u = urllib.parse.urlsplit(t["url"])
        ws = WebSocket(self.daemon.url, u.path + "?" + u.query, self.daemon.url)
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, 101, ws.body)
        self.assertEqual(ws.read(12), b"RFB 003.008\n")
        ws.send(b"RFB 003.008\n")
        n = ws.read(1)[0]
        self.assertEqual(list(ws.read(n)), [1], "the browser is offered None only")
        ws.send(b"\x01")
        self.assertEqual(struct.unpack("!I", ws.read(4))[0], 0)
        ws.send(b"\x01")
        w, h = struct.unpack("!HH", ws.read(4))
        ws.read(16)
        ws.read(struct.unpack("!I", ws.read(4))[0])
        return ws, w, h

    @staticmethod
    def wait_resize(ws, w, h, timeout=30):
        """Asks for updates until a DesktopSize rectangle comes; its size."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ws.send(struct.pack("!BBHHHH", 3, 1, 0, 0, w, h))
            kind = ws.read(1)[0]
            if kind == 2:                                  # Bell
                continue
            if kind == 3:                                  # ServerCutText
                ws.read(3)
                ws.read(struct.unpack("!I", ws.read(4))[0])
                continue
            if kind != 0:
                raise AssertionError("unexpected RFB message %d" % kind)
            ws.read(1)
            size = None
            for _ in range(struct.unpack("!H", ws.read(2))[0]):
                x, y, rw, rh, enc = struct.unpack("!HHHHi", ws.read(12))
                if enc == -223:
                    size = (rw, rh)
                elif enc == 0:
                    ws.read(rw * rh * 4)
                else:
                    raise AssertionError("unexpected encoding %d" % enc)
            if size is not None:
                return size
        raise AssertionError("no DesktopSize in %ds" % timeout)

    def test_dbus_desktop(self):
        d = self.daemon
        d.request("POST", "/api/v1/desktops", {"name": "dd", "image": "td", "template": "tdbus",
                                               "start": True})
        desk = self.wait_desktop("dd", lambda x: x["state"] == "running" and self.serving(x),
                                 "running with its kvmdesk-display")
        domain = desk["domain"]
        xml = e2elib.virsh("dumpxml", domain)
        self.assertIn("<graphics type='dbus'", xml)
        self.assertNotIn("type='vnc'", xml)
        proc = desk["display_process"]
        pid = int(proc["pid"])
        self.assertTrue(pid_alive(pid))
        self.assertEqual(proc["restarts"], 0)
        self.assertEqual(proc["listen"], "127.0.0.1")
        events = d.request("GET", "/api/v1/events?desktop=dd&limit=50")
        self.assertTrue([e for e in events if e["action"] == "display" and
                         "serves its display" in e["message"]], events[:5])

        # The browser console, through the gateway, to kvmdesk-display.
        rows = e2elib.wait_for_prompt(domain)
        self.assertEqual(e2elib.banner_uuid(rows), desk["uuid"].lower())
        ws, w, h = self.console("dd")
        self.assertEqual((w, h), (720, 400))
        ws.send(struct.pack("!BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))
        ws.send(struct.pack("!BxHi", 2, 1, 0))            # SetEncodings: raw only
        frame = read_framebuffer(ws, w, h)
        _, shot = e2elib.screenshot(domain, os.path.join(e2elib.OUT_DIR, "dbus-%s.png" % domain))
        self.assertEqual((shot.width, shot.height), (w, h))
        differ = sum(1 for y in range(h) for x in range(w) if frame[y][x] != shot.pixel(x, y))
        self.assertLess(differ, 200, "%d of %d pixels differ" % (differ, w * h))
        for ch in "kd":
            ws.send(struct.pack("!BBxxI", 4, 1, ord(ch)))
            ws.send(struct.pack("!BBxxI", 4, 0, ord(ch)))
        e2elib.wait_for_prompt(domain, typed="kd")
        # A resolution change reaches the browser through the gateway: F2
        # switches the test desktop to 640x480 graphics, F1 back to text.
        ws.send(struct.pack("!BxHii", 2, 2, 0, -223))      # raw + DesktopSize
        for keysym, size in ((0xFFBF, (640, 480)), (0xFFBE, (720, 400))):
            ws.send(struct.pack("!BBxxI", 4, 1, keysym))
            ws.send(struct.pack("!BBxxI", 4, 0, keysym))
            self.assertEqual(self.wait_resize(ws, w, h), size)
            w, h = size
        e2elib.wait_for_prompt(domain, typed="kd")          # the text screen as it was
        ws.close()

        # A native viewer with the .vv file's password.
        status, text = d.exchange("GET", "/api/v1/desktops/dd/console.vv?ttl=60")
        self.assertEqual(status, 200, text)
        vv = parse_vv(text)
        self.assertEqual((vv["type"], vv["host"]), ("vnc", "127.0.0.1"))
        self.assertEqual(int(vv["port"]), proc["port"])
        wrong = RfbClient("127.0.0.1", int(vv["port"]))
        self.assertEqual(wrong.security_types(), [2], "VNC authentication only")
        self.assertFalse(wrong.vnc_auth("nopenope"))
        wrong.close()
        viewer = RfbClient("127.0.0.1", int(vv["port"]))
        self.assertEqual(viewer.security_types(), [2])
        self.assertTrue(viewer.vnc_auth(vv["password"]))
        self.assertEqual(viewer.init()[:2], (720, 400))
        viewer.type("vv")
        e2elib.wait_for_prompt(domain, typed="kdvv")
        viewer.close()

        # Killed: a new one, the VM untouched.
        dom_id = e2elib.virsh("domid", domain).strip()
        os.kill(pid, signal.SIGKILL)
        desk = self.wait_desktop("dd", lambda x: self.serving(x) and int(x["display_process"]["pid"]) != pid,
                                 "a new kvmdesk-display", timeout=30)
        self.assertEqual(desk["display_process"]["restarts"], 1)
        self.assertEqual(e2elib.virsh("domid", domain).strip(), dom_id)
        events = d.request("GET", "/api/v1/events?desktop=dd&limit=50")
        self.assertTrue([e for e in events if e["action"] == "display" and "ended" in e["message"]],
                        events[:5])
        ws, w, h = self.console("dd")
        self.assertEqual((w, h), (720, 400))
        ws.send(struct.pack("!BBxxI", 4, 1, ord("z")))
        ws.send(struct.pack("!BBxxI", 4, 0, ord("z")))
        e2elib.wait_for_prompt(domain, typed="kdvvz")
        ws.close()

        # kvmdeskd restarted (an upgrade, a crash): its processes end with it,
        # the new kvmdeskd starts one for the running desktop.
        old_pid = int(desk["display_process"]["pid"])
        d.stop()
        deadline = time.time() + 10
        while pid_alive(old_pid) and time.time() < deadline:
            time.sleep(0.1)
        self.assertFalse(pid_alive(old_pid), "kvmdesk-display outlived kvmdeskd")
        self.assertEqual(e2elib.virsh("domid", domain).strip(), dom_id)
        d.start()
        desk = self.wait_desktop("dd", self.serving, "a kvmdesk-display from the new kvmdeskd", timeout=60)
        self.assertNotEqual(int(desk["display_process"]["pid"]), old_pid)
        ws, w, h = self.console("dd")
        ws.send(struct.pack("!BBxxI", 4, 1, ord("r")))
        ws.send(struct.pack("!BBxxI", 4, 0, ord("r")))
        e2elib.wait_for_prompt(domain, typed="kdvvzr")
        ws.close()

        # Stopped with the desktop.
        new_pid = int(desk["display_process"]["pid"])
        d.request("POST", "/api/v1/desktops/dd/poweroff")
        desk = self.wait_desktop("dd", lambda x: x["state"] == "stopped" and
                                 (x["display_process"] is None or x["display_process"]["state"] == "stopped"),
                                 "stopped, and its display process too", timeout=30)
        deadline = time.time() + 10
        while pid_alive(new_pid) and time.time() < deadline:
            time.sleep(0.1)
        self.assertFalse(pid_alive(new_pid), "kvmdesk-display still runs after the desktop stopped")


class DbusDisplayMissingE2E(DbusDesktopE2E):
    """kvmdesk-display cannot be started: the desktop runs, the reason is in
    its details and once in its events, and a console says why."""

    daemon_config = "[display]\nprogram = /nonexistent/kvmdesk-display\n"
    test_dbus_desktop = None       # the working path is the class above

    def test_display_cannot_start(self):
        d = self.daemon
        d.request("POST", "/api/v1/desktops", {"name": "nd", "image": "td", "template": "tdbus",
                                               "start": True})
        desk = self.wait_desktop("nd", lambda x: x["state"] == "running" and x["display_process"] and
                                 x["display_process"]["state"] == "failed", "running, its display failed")
        self.assertIn("cannot start /nonexistent/kvmdesk-display", desk["display_process"]["last_error"])
        status, err = d.status_of("GET", "/api/v1/desktops/nd/console.vv")
        self.assertEqual(status, 503, err)
        self.assertIn("kvmdesk-display", err["error"])
        self.assertIn("failed", err["error"])
        t = d.request("POST", "/api/v1/desktops/nd/console")
        u = urllib.parse.urlsplit(t["url"])
        ws = WebSocket(d.url, u.path + "?" + u.query, d.url)
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, 503, ws.body)
        self.assertIn(b"kvmdesk-display", ws.body)
        # Every reconciler pass tries again, and says it once.
        d.request("POST", "/api/v1/reconciler/run")
        d.request("POST", "/api/v1/reconciler/run")
        events = d.request("GET", "/api/v1/events?desktop=nd&limit=50")
        said = [e for e in events if e["action"] == "display"]
        self.assertEqual(len(said), 1, said)


if __name__ == "__main__":
    unittest.main()
