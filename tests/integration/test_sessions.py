"""Client sessions and the timeouts of the pool manager (issue 3).

Heartbeats move a desktop between connected and disconnected and record
the session; with policy_interval = 1 s, a floating desktop whose client
left is released and reset after disconnect_timeout, and a persistent
desktop nobody uses is shut down after idle_timeout (and stays its user's).
The event log can be filtered by desktop, pool and user.
"""

import time
import unittest

from kdtest import PoolTestCase

TIME_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"


class SessionsTest(PoolTestCase):

    def assigned_desktop(self, **pool_fields):
        """A new user, an entitled pool and his desktop once 'assigned'."""
        user = self.create_user()
        pool = self.create_pool(users=[user.name], **pool_fields)["name"]
        _, desk = self.get_desktop(user, pool, expect=(201,))
        desk = self.wait_desktop(desk["name"], lambda d: d["state"] == "assigned", client=user,
                                 timeout=30)
        return user, pool, desk

    def heartbeat(self, user, name, connected, expect=200):
        status, body = user.exchange("POST", "/api/v1/desktops/%s/heartbeat" % name,
                                     {"connected": connected})
        self.assertEqual(status, expect, body)
        return body

    def test_heartbeat_connect_disconnect(self):
        user, pool, desk = self.assigned_desktop(size=1)
        name = desk["name"]
        self.assertIs(desk["session"]["connected"], False)
        self.assertIsNone(desk["session"]["connected_since"])
        self.heartbeat(user, name, True)
        d = user.request("GET", "/api/v1/desktops/" + name)
        self.assertEqual(d["state"], "connected", d)
        self.assertIs(d["session"]["connected"], True)
        self.assertRegex(d["session"]["connected_since"], TIME_RE)
        self.assertRegex(d["session"]["last_seen"], TIME_RE)
        first_seen = d["session"]["last_seen"]
        counts = self.api("GET", "/api/v1/pools/" + pool)["desktops"]
        self.assertEqual(counts["connected"], 1, counts)
        # A second heartbeat keeps it connected and moves last_seen on.
        time.sleep(1.1)
        self.heartbeat(user, name, True)
        d = user.request("GET", "/api/v1/desktops/" + name)
        self.assertEqual(d["state"], "connected")
        self.assertGreater(d["session"]["last_seen"], first_seen)
        self.heartbeat(user, name, False)
        d = user.request("GET", "/api/v1/desktops/" + name)
        self.assertEqual(d["state"], "disconnected", d)
        self.assertIs(d["session"]["connected"], False)
        self.assertRegex(d["session"]["disconnected_at"], TIME_RE)
        self.assertEqual(d["user"], user.name, "disconnect_timeout 0: he keeps it")
        # And back.
        self.heartbeat(user, name, True)
        self.assertEqual(user.request("GET", "/api/v1/desktops/" + name)["state"], "connected")

    def test_heartbeat_bad_bodies(self):
        user, _, desk = self.assigned_desktop(size=1)
        path = "/api/v1/desktops/%s/heartbeat" % desk["name"]
        for body in ({"connected": "yes"}, {"connected": 1}, {"connected": True, "x": 1},
                     b"not json", []):
            with self.subTest(body=body):
                status, err = user.exchange("POST", path, body)
                self.assertEqual(status, 400, err)
                self.assertEqual(err.get("code"), "invalid", err)
        self.assertEqual(user.request("GET", "/api/v1/desktops/" + desk["name"])["state"],
                         "assigned")
        # A desktop of the pool that is not his (or no desktop): 404.
        status, err = user.exchange("POST", "/api/v1/desktops/%s/heartbeat"
                                    % self.unique("nosuch"), {"connected": True})
        self.assertEqual(status, 404, err)

    def test_floating_disconnect_timeout(self):
        user, pool, desk = self.assigned_desktop(size=1, disconnect_timeout=2)
        name = desk["name"]
        self.heartbeat(user, name, True)
        # Connected clients are never timed out.
        time.sleep(3.5)
        d = self.api("GET", "/api/v1/desktops/" + name)
        self.assertEqual((d["state"], d["user"]), ("connected", user.name), d)
        self.heartbeat(user, name, False)
        left = time.monotonic()
        d = self.wait_desktop(name, lambda d: d["user"] is None and
                              d["state"] in ("running", "stopped"), timeout=15,
                              what="'%s' released after disconnect_timeout" % name)
        self.assertLess(time.monotonic() - left, 10)
        self.assertGreaterEqual(time.monotonic() - left, 1.5, "released before the timeout")
        self.assertEqual(d["pool"], pool)
        self.assertIs(d["session"]["connected"], False)
        events = self.api("GET", "/api/v1/events?desktop=" + name)
        to_states = [e.get("to_state") for e in events]
        self.assertIn("resetting", to_states, events)
        self.assertEqual(user.request("GET", "/api/v1/desktops"), [])

    def test_persistent_idle_timeout(self):
        user, pool, desk = self.assigned_desktop(mode="persistent", size=1, idle_timeout=2)
        name = desk["name"]
        d = self.wait_desktop(name, lambda d: d["state"] == "stopped", timeout=15,
                              what="'%s' shut down after idle_timeout" % name)
        self.assertEqual(d["user"], user.name, "an idle persistent desktop stays his")
        self.assertEqual(d["pool"], pool)
        events = self.api("GET", "/api/v1/events?desktop=" + name)
        self.assertIn("stopped", [e.get("to_state") for e in events], events)
        # Asking again gives him the same desktop.
        status, again = user.exchange("POST", "/api/v1/pools/%s/desktop" % pool)
        self.assertEqual(status, 200, again)
        self.assertEqual(again["name"], name)

    def test_heartbeats_keep_idle_desktop_up(self):
        user, _, desk = self.assigned_desktop(mode="persistent", size=1, idle_timeout=3)
        name = desk["name"]
        end = time.monotonic() + 6
        while time.monotonic() < end:
            self.heartbeat(user, name, True)
            time.sleep(0.5)
        self.assertEqual(self.api("GET", "/api/v1/desktops/" + name)["state"], "connected")

    def test_events_filters(self):
        user, pool, desk = self.assigned_desktop(size=1, disconnect_timeout=1)
        name = desk["name"]
        self.heartbeat(user, name, True)
        self.heartbeat(user, name, False)
        self.wait_desktop(name, lambda d: d["user"] is None and
                          d["state"] in ("running", "stopped"), timeout=15)
        events = self.api("GET", "/api/v1/events?desktop=" + name)
        for e in events:
            self.assertEqual(e["object_name"], name, e)
            self.assertIn("pool", e)
            self.assertIn("user", e)
        to_states = [e.get("to_state") for e in reversed(events)]   # oldest first
        for state in ("assigned", "connected", "disconnected", "resetting"):
            self.assertIn(state, to_states, to_states)
        order = [to_states.index(s) for s in ("assigned", "connected", "disconnected")]
        self.assertEqual(order, sorted(order), to_states)
        self.assertGreater(to_states.index("resetting"), to_states.index("disconnected"))
        self.assertEqual([e for e in events if e.get("to_state") == "connected"][0]["user"],
                         user.name)
        ids = [e["id"] for e in events]
        self.assertEqual(ids, sorted(ids, reverse=True))

        by_pool = self.api("GET", "/api/v1/events?pool=" + pool)
        self.assertTrue(by_pool)
        for e in by_pool:
            self.assertEqual(e["pool"], pool, e)
        self.assertTrue({e["id"] for e in events if e.get("pool") == pool}
                        <= {e["id"] for e in by_pool})

        by_user = self.api("GET", "/api/v1/events?user=" + user.name)
        self.assertTrue(any(e.get("to_state") == "connected" and e["object_name"] == name
                            for e in by_user), by_user)
        for e in by_user:
            self.assertTrue(e.get("user") == user.name or e.get("actor") == user.name or
                            e.get("object_name") == user.name, e)

        limited = self.api("GET", "/api/v1/events?desktop=%s&limit=2" % name)
        self.assertEqual(limited, events[:2])
        since = self.api("GET", "/api/v1/events?desktop=%s&since=%d" % (name, events[2]["id"]))
        self.assertEqual([e["id"] for e in since], ids[:2])

    def test_user_sees_only_his_events(self):
        user, pool, desk = self.assigned_desktop(size=2)
        name = desk["name"]
        self.heartbeat(user, name, True)
        mine = user.request("GET", "/api/v1/events?desktop=" + name)
        self.assertIn("connected", [e.get("to_state") for e in mine], mine)
        everything = user.request("GET", "/api/v1/events")
        self.assertTrue(everything)
        for e in everything:
            self.assertEqual(e["object_type"], "desktop", e)
            self.assertEqual(e["object_name"], name, e)
        other = self.create_user()
        self.api("PATCH", "/api/v1/pools/" + pool, {"users": [user.name, other.name]},
                 expect=200)
        status, theirs = other.exchange("GET", "/api/v1/events?desktop=" + name)
        self.assertIn(status, (200, 404), theirs)
        if status == 200:
            self.assertEqual(theirs, [])
        status, theirs = other.exchange("GET", "/api/v1/events?pool=" + pool)
        self.assertIn(status, (200, 404), theirs)
        if status == 200:
            self.assertFalse([e for e in theirs if e["object_name"] == name], theirs)
        status, theirs = other.exchange("GET", "/api/v1/events")
        self.assertEqual(status, 200, theirs)
        self.assertFalse([e for e in theirs if e["object_name"] == name], theirs)

if __name__ == "__main__":
    unittest.main()
