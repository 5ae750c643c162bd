"""Handing desktops out (issue 3): POST /pools/{name}/desktop.

Covers the first assignment (201) and asking again (200, same desktop),
persistent pools (same desktop after release and after a daemon restart),
floating pools (release resets the desktop and returns it to the pool), a
full pool (409 naming the pool and its size), and a burst of 200 users
asking a pool of 50 at the same moment: exactly 50 distinct desktops for 50
distinct users, 150 clear refusals.
"""

import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import kdtest
from kdtest import Client, PoolTestCase

HANDED_OUT = ("assigned", "connected", "disconnected")


class AllocationTest(PoolTestCase):

    def entitled_pool(self, users, **fields):
        pool = self.create_pool(users=[u.name for u in users], **fields)
        return pool["name"]

    def test_first_assignment_and_again(self):
        user = self.create_user()
        pool = self.entitled_pool([user], size=2)
        status, desk = self.get_desktop(user, pool, expect=(201,))
        self.assertEqual(desk["user"], user.name)
        self.assertEqual(desk["pool"], pool)
        self.assertIn(desk["state"], ("provisioning", "stopped", "starting", "running",
                                      "assigned"), desk)
        self.assertTrue(desk.get("assigned_at"), desk)
        desk = self.wait_desktop(desk["name"], lambda d: d["state"] == "assigned", client=user,
                                 what="the new desktop to be 'assigned'")
        self.assertEqual(desk["user"], user.name)
        self.assertEqual(desk["pool"], pool)
        self.assertIn("session", desk)
        self.assertIs(desk["session"]["connected"], False)
        status, again = self.get_desktop(user, pool, expect=(200,))
        self.assertEqual(again["name"], desk["name"])
        self.assertEqual(again["user"], user.name)
        self.assertEqual(len(self.pool_desktops(pool)), 1)
        counts = self.api("GET", "/api/v1/pools/" + pool)["desktops"]
        self.assertEqual((counts["total"], counts["assigned"]), (1, 1), counts)
        # The events name the pool and the user.
        events = self.api("GET", "/api/v1/events?desktop=" + desk["name"])
        assigned = [e for e in events if e.get("to_state") == "assigned"]
        self.assertTrue(assigned, events)
        self.assertEqual(assigned[0]["pool"], pool)
        self.assertEqual(assigned[0]["user"], user.name)

    def test_warm_desktop_is_handed_out_at_once(self):
        user = self.create_user()
        pool = self.entitled_pool([user], size=3, warm=1)
        warm = self.wait_pool(pool, lambda ds: any(d["state"] == "running" and not d["user"]
                                                  for d in ds), timeout=30)
        status, desk = self.get_desktop(user, pool, expect=(201,))
        self.assertEqual(desk["name"], warm[0]["name"])
        self.assertEqual(desk["state"], "assigned", desk)
        # The pool manager makes a new warm one.
        self.wait_pool(pool, lambda ds: len(ds) == 2 and any(
            d["state"] == "running" and not d["user"] for d in ds), timeout=30)

    def test_persistent_keeps_desktop(self):
        user = self.create_user()
        pool = self.entitled_pool([user], mode="persistent", size=3, warm=1)
        _, desk = self.get_desktop(user, pool)
        name = desk["name"]
        self.wait_desktop(name, lambda d: d["state"] == "assigned")
        released = user.request("POST", "/api/v1/desktops/%s/release" % name)
        self.assertEqual(released["user"], user.name, "a persistent desktop stays his")
        time.sleep(2)    # two passes of the pool manager: it must not take it back
        self.assertEqual(self.api("GET", "/api/v1/desktops/" + name)["user"], user.name)
        status, again = self.get_desktop(user, pool, expect=(200,))
        self.assertEqual(again["name"], name)
        # Another user gets another desktop.
        other = self.create_user()
        self.api("PATCH", "/api/v1/pools/" + pool, {"users": [user.name, other.name]},
                 expect=200)
        _, theirs = self.get_desktop(other, pool)
        self.assertNotEqual(theirs["name"], name)

    def test_floating_release_returns_to_pool(self):
        user = self.create_user()
        pool = self.entitled_pool([user], size=2, warm=1)
        _, desk = self.get_desktop(user, pool)
        name = desk["name"]
        self.wait_desktop(name, lambda d: d["state"] == "assigned")
        released = user.request("POST", "/api/v1/desktops/%s/release" % name)
        self.assertEqual(released["name"], name)
        back = self.wait_desktop(name, lambda d: d["user"] is None and
                                 d["state"] in ("running", "stopped"),
                                 timeout=30, what="'%s' reset and back in the pool" % name)
        self.assertEqual(back["pool"], pool)
        self.assertIsNone(back.get("assigned_at"))
        events = self.api("GET", "/api/v1/events?desktop=" + name)
        self.assertIn("resetting", [e.get("to_state") for e in events], events)
        # He no longer sees it.
        self.assertNotIn(name, [d["name"] for d in user.request("GET", "/api/v1/desktops")])
        status, err = user.exchange("GET", "/api/v1/desktops/" + name)
        self.assertEqual(status, 404, err)
        # His next request gives him a desktop of the pool (maybe another one).
        status, again = self.get_desktop(user, pool, expect=(201,))
        self.assertEqual(again["pool"], pool)
        self.assertEqual(again["user"], user.name)

    def test_admin_releases_a_users_desktop(self):
        user = self.create_user()
        pool = self.entitled_pool([user], size=1)
        _, desk = self.get_desktop(user, pool)
        self.wait_desktop(desk["name"], lambda d: d["state"] == "assigned")
        self.api("POST", "/api/v1/desktops/%s/release" % desk["name"], expect=200)
        self.wait_desktop(desk["name"], lambda d: d["user"] is None, timeout=30)

    def test_full_pool_409(self):
        users = [self.create_user() for _ in range(3)]
        pool = self.entitled_pool(users, size=2)
        a = self.get_desktop(users[0], pool, expect=(201,))[1]
        b = self.get_desktop(users[1], pool, expect=(201,))[1]
        self.assertNotEqual(a["name"], b["name"])
        status, err = users[2].exchange("POST", "/api/v1/pools/%s/desktop" % pool)
        self.assertEqual(status, 409, err)
        self.assertEqual(err.get("code"), "busy", err)
        self.assertIn(pool, err["error"])
        self.assertIn("2", err["error"], "the refusal must give the pool's size")
        self.assertEqual(len(self.pool_desktops(pool)), 2)
        self.assertEqual([d["name"] for d in users[2].request("GET", "/api/v1/desktops")], [])
        # Once one is released (floating), the third user gets a desktop.
        self.wait_desktop(a["name"], lambda d: d["state"] == "assigned")
        users[0].request("POST", "/api/v1/desktops/%s/release" % a["name"])
        self.wait_desktop(a["name"], lambda d: d["user"] is None and
                          d["state"] in ("running", "stopped"), timeout=30)
        status, c = self.get_desktop(users[2], pool, expect=(201,))
        self.assertEqual(c["name"], a["name"])

    def test_removed_user_releases_desktop(self):
        user = self.create_user()
        pool = self.entitled_pool([user], size=1)
        _, desk = self.get_desktop(user, pool)
        self.wait_desktop(desk["name"], lambda d: d["state"] == "assigned")
        self.api("DELETE", "/api/v1/users/" + user.name, expect=204)
        self.wait_desktop(desk["name"], lambda d: d["user"] is None, timeout=30,
                          what="the removed user's desktop to be released")

    def test_persistent_survives_restart(self):
        user = self.create_user()
        pool = self.entitled_pool([user], mode="persistent", size=2)
        _, desk = self.get_desktop(user, pool)
        name = desk["name"]
        self.wait_desktop(name, lambda d: d["state"] == "assigned")
        self.daemon.restart()
        user.login()
        # test:// keeps its domains in memory only: the host comes back empty
        # and the reconciler marks the desktop 'error' (what it then does with
        # it is test_error_desktop_never_handed_out's business). The
        # assignment itself is in the store and must survive.
        after = self.api("GET", "/api/v1/desktops/" + name)
        self.assertEqual(after["user"], user.name, after)
        self.assertEqual(after["pool"], pool, after)
        # His broken persistent desktop holds his data: it is neither handed
        # out nor swapped for another; the refusal names it and says why.
        status, again = user.exchange("POST", "/api/v1/pools/%s/desktop" % pool)
        self.assertEqual(status, 409, again)
        self.assertIn(name, again["error"])
        self.assertIn("broken", again["error"])
        self.assertEqual(self.api("GET", "/api/v1/desktops/" + name)["user"], user.name)


    def test_error_desktop_never_handed_out(self):
        # test:// keeps its domains in memory only: after a restart the
        # reconciler finds them missing and marks their desktops 'error'.
        a, b = self.create_user(), self.create_user()
        pool = self.entitled_pool([a, b], size=3, warm=1)
        _, mine = self.get_desktop(a, pool)
        name = mine["name"]
        self.wait_desktop(name, lambda d: d["state"] == "assigned")
        self.daemon.restart()
        a.login()
        b.login()
        broken = self.wait_desktop(name, lambda d: d["state"] == "error", timeout=30,
                                   what="'%s' to be found broken after the restart" % name)
        self.assertTrue(broken["state_reason"], broken)
        # Another user never gets the broken desktop.
        status, theirs = self.get_desktop(b, pool, expect=(201,))
        self.assertNotEqual(theirs["name"], name)
        self.assertNotEqual(theirs["state"], "error", theirs)
        self.wait_desktop(theirs["name"], lambda d: d["state"] == "assigned", timeout=30)
        # Its holder is not handed a broken desktop either: a working one,
        # or a clear refusal.
        status, again = a.exchange("POST", "/api/v1/pools/%s/desktop" % pool)
        if status in (200, 201):
            self.assertNotEqual(again["state"], "error",
                                "POST /pools/%s/desktop handed out a desktop in 'error': %r"
                                % (pool, again))
        else:
            # A floating desktop in error is let go and reset; while that
            # runs the pool may be full, and the refusal says to ask again.
            self.assertIn(status, (409, 503), again)
            self.assertTrue(name in again["error"] or "ask again" in again["error"], again)
        # The broken desktop is no longer his, and it is repaired or replaced.
        self.wait_desktop(name, lambda d: d["user"] != a.name, timeout=30,
                          what="'%s' to be let go by its user" % name)

class BurstTest(PoolTestCase):
    """200 users ask a pool of 50 for a desktop at the same moment."""

    daemon_config = PoolTestCase.daemon_config + "per_ip_connection_limit = 1024\n"
    USERS = 200
    SIZE = 50

    def test_burst(self):
        pool = self.create_pool(size=self.SIZE, warm=5)["name"]
        group = self.create_group()["name"]
        self.api("PATCH", "/api/v1/pools/" + pool, {"groups": [group]}, expect=200)
        names = [self.unique("b%03d" % i) for i in range(self.USERS)]

        def make(name):
            password = "pw-" + kdtest.random_suffix(10)
            status, body = self.daemon.exchange(
                "POST", "/api/v1/users",
                {"name": name, "password": password, "role": "user", "groups": [group]})
            if status != 201:
                raise AssertionError("POST /users %s: %d %r" % (name, status, body))
            c = Client(self.daemon, name, password)
            c.login()
            return c

        for n in names:
            self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/users/" + n)
        with ThreadPoolExecutor(max_workers=8) as ex:
            clients = list(ex.map(make, names))
        self.wait_pool(pool, lambda ds: len(ds) >= 5, timeout=60)

        barrier = threading.Barrier(self.USERS)
        results = [None] * self.USERS

        def ask(i):
            barrier.wait(60)
            try:
                results[i] = clients[i].exchange("POST", "/api/v1/pools/%s/desktop" % pool,
                                                 timeout=300)
            except Exception as e:    # a dropped connection is a failure too
                results[i] = (0, repr(e))

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(self.USERS)]
        began = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(400)
        took = time.monotonic() - began

        statuses = [r[0] for r in results]
        granted = [(clients[i].name, r[1]) for i, r in enumerate(results) if r[0] in (200, 201)]
        refused = [r[1] for r in results if r[0] == 409]
        other = [r for r in results if r[0] not in (200, 201, 409)]
        self.assertEqual(other, [], "answers other than 200/201/409")
        self.assertEqual(len(granted), self.SIZE,
                         "granted %d, refused %d (%.1fs)" % (len(granted), len(refused), took))
        self.assertEqual(len(refused), self.USERS - self.SIZE)
        self.assertEqual(statuses.count(200), 0, "nobody had a desktop before")
        for err in refused:
            self.assertEqual(err.get("code"), "busy", err)
            self.assertIn(pool, err["error"])
            self.assertIn(str(self.SIZE), err["error"])
        # 50 distinct desktops for 50 distinct users, each the one he asked for.
        self.assertEqual(len({d["name"] for _, d in granted}), self.SIZE)
        for who, d in granted:
            self.assertEqual(d["user"], who, d)
            self.assertEqual(d["pool"], pool, d)
        listing = [d for d in self.api("GET", "/api/v1/desktops") if d.get("pool") == pool]
        self.assertEqual(len(listing), self.SIZE)
        holders = [d["user"] for d in listing if d.get("user")]
        self.assertEqual(len(holders), self.SIZE, "assigned desktops in the admin listing")
        self.assertEqual(len(set(holders)), self.SIZE)
        self.assertEqual(sorted(holders), sorted(w for w, _ in granted))
        self.assertFalse([d for d in listing if d["state"] == "error"], listing)
        # Every granted desktop settles in 'assigned'.
        self.wait_pool(pool, lambda ds: sum(d["state"] == "assigned" for d in ds) == self.SIZE,
                       timeout=120, what="the %d desktops to be 'assigned'" % self.SIZE)
        counts = self.api("GET", "/api/v1/pools/" + pool)["desktops"]
        self.assertEqual((counts["total"], counts["assigned"]), (self.SIZE, self.SIZE), counts)
        # The pool manager does not go beyond size while it is full.
        time.sleep(2)
        self.assertEqual(len(self.pool_desktops(pool)), self.SIZE)
        # Each granted user asking again gets the same desktop (200).
        by_user = dict(granted)
        for c in clients[:]:
            if c.name in by_user:
                status, again = c.exchange("POST", "/api/v1/pools/%s/desktop" % pool)
                self.assertEqual(status, 200, again)
                self.assertEqual(again["name"], by_user[c.name]["name"])
                break


if __name__ == "__main__":
    unittest.main()
