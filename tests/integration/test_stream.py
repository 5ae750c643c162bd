"""The live event stream: GET /api/v1/events/stream (Server-Sent Events).

Covers the headers and record format (the data line is the event exactly as
GET /events shows it), order and increasing ids, replay after ?since= and
Last-Event-ID (the header wins), the filters, what a user may see (only
events of his own desktop), 401 without a token, keepalive comments (the
interval is set to 1 s through the stream_keepalive setting), an idle stream
costing no CPU, a client that never reads being disconnected while the API
keeps answering and the daemon's memory stays bounded, and a clean exit on
SIGTERM with streams open.
"""

import json
import os
import signal
import socket
import time
import unittest

import kdtest
from kdtest import PoolTestCase


STREAM = "/api/v1/events/stream"


class SseStream:
    """A raw HTTP/1.1 client for one event stream: undoes the chunked
    encoding and parses records as an EventSource does."""

    def __init__(self, url, path=STREAM, token=None, headers=None, timeout=10, rcvbuf=None):
        host, port = url[len("http://"):].rsplit(":", 1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, int(port)))
        hdrs = {"Host": "%s:%s" % (host, port), "Accept": "text/event-stream"}
        if token:
            hdrs["Authorization"] = "Bearer " + token
        hdrs.update(headers or {})
        self.sock.sendall(("GET %s HTTP/1.1\r\n%s\r\n" % (
            path, "".join("%s: %s\r\n" % kv for kv in hdrs.items()))).encode())
        self.raw = b""          # bytes from the socket not yet de-chunked
        self.text = ""          # de-chunked body not yet parsed
        self.keepalives = 0
        self.eof = False
        self.status = None
        self.headers = {}
        self.body = b""         # the body of a non-200 answer

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.time()))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.raw += chunk
        return True

    def read_head(self, timeout=10):
        deadline = time.time() + timeout
        while b"\r\n\r\n" not in self.raw:
            if not self._recv(deadline):
                raise AssertionError("no HTTP head from the stream (got %r)" % self.raw)
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if self.status != 200:
            while not self.eof and time.time() < deadline and len(self.raw) < int(
                    self.headers.get("content-length", 1 << 30)):
                self._recv(deadline)
            self.body = self.raw
        return self.status

    def _dechunk(self):
        while True:
            line, sep, rest = self.raw.partition(b"\r\n")
            if not sep:
                return
            size = int(line.split(b";")[0], 16)
            if size == 0:
                self.eof = True
                return
            if len(rest) < size + 2:
                return
            self.text += rest[:size].decode()
            self.raw = rest[size + 2:]

    def _next_record(self):
        while "\n\n" in self.text:
            block, self.text = self.text.split("\n\n", 1)
            rec = {}
            for line in block.split("\n"):
                if line.startswith(":"):
                    if line.strip() == ": keepalive":
                        self.keepalives += 1
                    continue
                field, _, value = line.partition(":")
                rec[field] = value[1:] if value.startswith(" ") else value
            if "data" in rec:
                rec["json"] = json.loads(rec["data"])
                return rec
        return None

    def next_event(self, timeout=10):
        """The next record with data, or None when @timeout passes."""
        deadline = time.time() + timeout
        while True:
            self._dechunk()
            rec = self._next_record()
            if rec is not None:
                return rec
            if self.eof or time.time() >= deadline:
                return None
            self._recv(deadline)

    def events_until(self, predicate, timeout=15, what="an event"):
        """Every record up to and including the first one @predicate accepts."""
        got = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            rec = self.next_event(deadline - time.time())
            if rec is None:
                break
            got.append(rec)
            if predicate(rec):
                return got
        raise AssertionError("timed out waiting for %s on the stream; got %r"
                             % (what, [(r.get("id"), r.get("event"), r["json"].get("object_name"))
                                       for r in got]))

    def read_quiet(self, timeout):
        """Reads whatever comes within @timeout seconds; returns the records."""
        got = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            rec = self.next_event(deadline - time.time())
            if rec is None:
                break
            got.append(rec)
        return got


def is_obj(object_type, name):
    return lambda rec: rec["json"]["object_type"] == object_type and \
        rec["json"]["object_name"] == name


def full_log(daemon):
    with open(daemon.log_path, "rb") as f:
        return f.read().decode(errors="replace")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class StreamTest(PoolTestCase):
    # Keepalive comments every second instead of every 15.
    daemon_config = ("[broker]\npolicy_interval = 1\n"
                     "[api]\nlogin_attempts = 10000\nstream_keepalive = 1\n")

    def open(self, path=STREAM, token=None, headers=None, **kw):
        s = SseStream(self.daemon.url, path, token=token or self.daemon.token,
                      headers=headers, **kw)
        self.addCleanup(s.close)
        self.assertEqual(s.read_head(), 200, s.body)
        return s

    def last_event_id(self):
        events = self.api("GET", "/api/v1/events?limit=1")
        return events[0]["id"] if events else 0

    def add_template(self, name=None):
        name = name or self.unique("t")
        self.api("POST", "/api/v1/templates", {"name": name, "disk_gib": 1, "memory_mib": 64},
                 expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/templates/" + name)
        return name

    # -- format, order -------------------------------------------------------
    def test_admin_sees_template_host_desktop_in_order(self):
        s = self.open()
        self.assertTrue(s.headers["content-type"].startswith("text/event-stream"), s.headers)
        self.assertEqual(s.headers.get("cache-control"), "no-store")
        self.assertEqual(s.headers.get("x-accel-buffering"), "no")

        tmpl = self.add_template()
        host = self.add_host()["name"]
        desk = self.unique("d")
        self.api("POST", "/api/v1/desktops", {"name": desk, "image": self.image,
                                              "template": tmpl, "host": self.host}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + desk)

        got = s.events_until(is_obj("desktop", desk), what="desktop '%s'" % desk)
        ids = [int(r["id"]) for r in got]
        self.assertEqual(ids, sorted(set(ids)), "ids not strictly increasing: %r" % ids)
        order = [i for i, r in enumerate(got)
                 if is_obj("template", tmpl)(r) or is_obj("host", host)(r)
                 or is_obj("desktop", desk)(r)]
        kinds = [got[i]["event"] for i in order]
        self.assertEqual(kinds[0], "template", kinds)
        self.assertIn("host", kinds)
        self.assertLess(kinds.index("template"), kinds.index("host"))
        self.assertLess(kinds.index("host"), kinds.index("desktop"))
        # Each record is the event exactly as GET /events shows it.
        stored = {e["id"]: e for e in self.api("GET", "/api/v1/events?since=%d&limit=1000"
                                               % (ids[0] - 1))}
        for r in got:
            self.assertEqual(int(r["id"]), r["json"]["id"])
            self.assertEqual(r["event"], r["json"]["object_type"])
            self.assertEqual(r["json"], stored[r["json"]["id"]])
        # More desktop events follow live (state changes of its deletion).
        self.api("DELETE", "/api/v1/desktops/" + desk, expect=None)
        more = s.events_until(lambda r: is_obj("desktop", desk)(r) and int(r["id"]) > ids[-1],
                              what="the deletion of '%s'" % desk)
        self.assertGreater(int(more[-1]["id"]), ids[-1])

    # -- replay ----------------------------------------------------------------
    def test_since_and_last_event_id_replay(self):
        base = self.last_event_id()
        names = [self.add_template() for _ in range(3)]
        s = self.open(STREAM + "?since=%d&object_type=template" % base)
        replay = [s.next_event(5) for _ in range(3)]
        self.assertNotIn(None, replay)
        self.assertEqual([r["json"]["object_name"] for r in replay], names)
        ids = [int(r["id"]) for r in replay]
        self.assertEqual(ids, sorted(ids))
        self.assertTrue(all(i > base for i in ids))
        # then live
        live = self.add_template()
        rec = s.next_event(5)
        self.assertIsNotNone(rec, "no live event after the replay")
        self.assertEqual(rec["json"]["object_name"], live)
        self.assertGreater(int(rec["id"]), ids[-1])

        # A reconnecting EventSource sends Last-Event-ID with its first URL:
        # the header wins over ?since=.
        s2 = self.open(STREAM + "?since=%d&object_type=template" % base,
                       headers={"Last-Event-ID": str(ids[1])})
        got = s2.events_until(is_obj("template", live), timeout=5, what="the live template")
        self.assertEqual([r["json"]["object_name"] for r in got], [names[2], live])

        # since = the newest id: nothing replayed, live only.
        s3 = self.open(STREAM + "?since=%d" % self.last_event_id())
        last = self.add_template()
        rec = s3.next_event(5)
        self.assertEqual(rec["json"]["object_name"], last)

    def test_filters(self):
        s = self.open(STREAM + "?object_type=template&object_name=nope-never")
        desk_stream = self.open(STREAM + "?desktop=nope-never")
        s_all = self.open(STREAM + "?object_type=template")
        name = self.add_template()
        rec = s_all.next_event(5)
        self.assertEqual(rec["json"]["object_name"], name)
        self.assertEqual(s.read_quiet(0.5), [])
        self.assertEqual(desk_stream.read_quiet(0.1), [])

    def test_bad_requests(self):
        for path, headers in ((STREAM + "?since=-1", None), (STREAM + "?since=abc", None),
                              (STREAM, {"Last-Event-ID": "x1"})):
            s = SseStream(self.daemon.url, path, token=self.daemon.token, headers=headers)
            self.addCleanup(s.close)
            self.assertEqual(s.read_head(), 400, (path, s.body))
            self.assertIn("not an event id", json.loads(s.body)["error"])
        status, body = self.daemon.exchange("POST", STREAM, {})
        self.assertEqual(status, 405, body)

    # -- authorization ---------------------------------------------------------
    def test_no_token_401(self):
        s = SseStream(self.daemon.url, STREAM)
        self.addCleanup(s.close)
        self.assertEqual(s.read_head(), 401)
        self.assertIn("error", json.loads(s.body))
        s = SseStream(self.daemon.url, STREAM, token="not-a-token")
        self.addCleanup(s.close)
        self.assertEqual(s.read_head(), 401)

    def test_user_sees_only_his_desktop(self):
        user = self.create_user()
        pool = self.unique("p")
        self.create_pool(pool, users=[user.name])
        mine = self.open(token=user.token)
        replayed = self.open(STREAM + "?since=0", token=user.token)
        admin = self.open()

        # Events the user must not see: a template, and a desktop of nobody.
        tmpl = self.add_template()
        other = self.unique("d")
        self.api("POST", "/api/v1/desktops", {"name": other, "image": self.image,
                                              "template": self.template, "host": self.host},
                 expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + other)
        admin.events_until(is_obj("desktop", other), what="desktop '%s'" % other)

        _, desk = self.get_desktop(user, pool)
        got = mine.events_until(lambda r: r["json"]["object_name"] == desk["name"]
                                and r["json"]["to_state"] == "assigned",
                                what="his desktop assigned")
        for r in got:
            self.assertEqual(r["json"]["object_type"], "desktop", r)
            self.assertEqual(r["json"]["user"], user.name, r)
            self.assertEqual(r["json"]["object_name"], desk["name"], r)
        # The stream is ordered: anything of the admin's came before these.
        self.assertNotIn(tmpl, [r["json"]["object_name"] for r in got])
        got = replayed.events_until(lambda r: r["json"]["to_state"] == "assigned",
                                    what="his desktop assigned (replay stream)")
        self.assertTrue(all(r["json"]["user"] == user.name for r in got), got)
        # A user's ?user=admin filter does not widen what he sees.
        s = self.open(STREAM + "?since=0&user=admin", token=user.token)
        self.assertTrue(all(r["json"]["user"] == user.name for r in s.read_quiet(0.5)))

    def test_stream_ends_with_its_session(self):
        user = self.create_user()
        s = self.open(token=user.token)
        user.request("POST", "/api/v1/logout", expect=204)
        # The keepalive timer (1 s here) re-checks the token.
        deadline = time.time() + 10
        while not s.eof and time.time() < deadline:
            s.next_event(deadline - time.time())
        self.assertTrue(s.eof, "the stream of a closed session stayed open")

    # -- liveness and cost -----------------------------------------------------
    def test_keepalive_and_idle_costs_nothing(self):
        s = self.open()
        pid = self.daemon.proc.pid
        before = cpu_seconds(pid)
        deadline = time.time() + 5
        while s.keepalives < 2 and time.time() < deadline:
            s.next_event(deadline - time.time())
        self.assertGreaterEqual(s.keepalives, 2, "no keepalive comments in 5 s")
        spent = cpu_seconds(pid) - before
        self.assertLess(spent, 0.5, "an idle stream used %.2f s of CPU: busy loop?" % spent)

    def test_client_that_does_not_read_is_dropped(self):
        pid = self.daemon.proc.pid
        stuck = SseStream(self.daemon.url, STREAM, token=self.daemon.token, rcvbuf=4096)
        self.addCleanup(stuck.close)
        watcher = self.open(STREAM + "?object_type=template")
        rss_before = rss_kib(pid)
        names = []
        seen = []
        slowest = 0.0
        for i in range(800):
            # one big event per template: its message names it
            name = "big-%s-%03d" % (kdtest.random_suffix(), i)
            names.append(name)
            self.add_template(name)
            t = time.time()
            self.api("GET", "/healthz", auth=False)
            slowest = max(slowest, time.time() - t)
            self.daemon.status_of("DELETE", "/api/v1/templates/" + name)
            if i % 50 == 0:
                seen += watcher.read_quiet(0.01)
        self.assertLess(slowest, 1.0, "the API answered slowly (%.2f s) while a stream was stuck"
                        % slowest)
        growth = rss_kib(pid) - rss_before
        self.assertLess(growth, 32 * 1024, "the daemon grew by %d KiB" % growth)
        kdtest.wait_until(lambda: "client left" in full_log(self.daemon), timeout=10,
                          what="the log line about the dropped stream")
        # The stuck socket was closed by the daemon: reading it ends.
        total = 0
        stuck.sock.settimeout(10)
        try:
            while True:
                chunk = stuck.sock.recv(65536)
                if not chunk:
                    break
                total += len(chunk)
        except (ConnectionResetError, socket.timeout) as e:
            if isinstance(e, socket.timeout):
                self.fail("the stuck stream was not closed (read %d bytes)" % total)
        self.assertLess(total, 4 * 1024 * 1024)
        # A client that reads lost nothing meanwhile, in order.
        got = seen + watcher.events_until(lambda r: r["json"]["object_name"] == names[-1]
                                   and r["json"]["action"] != "create",
                                   what="the deletion of '%s'" % names[-1])
        created = [r["json"]["object_name"] for r in got if r["json"]["action"] == "create"]
        self.assertEqual(created, names)
        ids = [int(r["id"]) for r in got]
        self.assertEqual(ids, sorted(set(ids)))


class StreamShutdownTest(unittest.TestCase):

    def test_sigterm_with_open_streams(self):
        daemon = kdtest.Daemon()
        self.addCleanup(daemon.cleanup)
        daemon.start()
        idle = SseStream(daemon.url, STREAM, token=daemon.token)
        self.addCleanup(idle.close)
        self.assertEqual(idle.read_head(), 200)
        busy = SseStream(daemon.url, STREAM + "?since=0", token=daemon.token, rcvbuf=4096)
        self.addCleanup(busy.close)
        for i in range(20):
            daemon.request("POST", "/api/v1/templates", {"name": "t%02d" % i})
        self.assertIsNotNone(idle.next_event(5))
        t = time.time()
        daemon.proc.send_signal(signal.SIGTERM)
        rc = daemon.proc.wait(10)
        self.assertEqual(rc, 0, daemon.read_log())
        self.assertLess(time.time() - t, 5)
        # the idle stream sees the end of its connection
        deadline = time.time() + 5
        while not idle.eof and time.time() < deadline:
            idle.next_event(deadline - time.time())
        self.assertTrue(idle.eof)


if __name__ == "__main__":
    unittest.main()
