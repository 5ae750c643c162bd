"""Pools through the REST API (issue 3) on libvirt's test:// driver.

Covers creation with defaults, the refusal of every bad field (and that a
refused request creates nothing), duplicates, the warm desktops the pool
manager keeps ready (policy_interval = 1 s here), shrinking a pool,
maintenance, and deletion with and without assigned desktops.
"""

import time
import unittest

import kdtest
from kdtest import PoolTestCase

POOL_KEYS = ("name", "image", "template", "mode", "size", "warm", "idle_timeout",
             "disconnect_timeout", "users", "groups", "hosts", "maintenance", "desktops")
COUNT_KEYS = ("total", "ready", "assigned", "connected", "provisioning", "error")


def warm_ready(ds):
    """The unassigned, running desktops of a pool listing."""
    return [d for d in ds if d["state"] == "running" and d.get("user") is None]


class PoolsTest(PoolTestCase):

    def test_create_with_defaults(self):
        name = self.unique("p")
        pool = self.create_pool(name)
        for key in POOL_KEYS:
            self.assertIn(key, pool)
        self.assertEqual(pool["name"], name)
        self.assertEqual(pool["image"], self.image)
        self.assertEqual(pool["template"], self.template)
        self.assertEqual(pool["mode"], "floating")
        self.assertEqual(pool["size"], 1)
        self.assertEqual(pool["warm"], 0)
        self.assertEqual(pool["idle_timeout"], 0)
        self.assertEqual(pool["disconnect_timeout"], 0)
        self.assertEqual(pool["users"], [])
        self.assertEqual(pool["groups"], [])
        self.assertEqual(pool["hosts"], [])
        self.assertIs(pool["maintenance"], False)
        for key in COUNT_KEYS:
            self.assertEqual(pool["desktops"][key], 0, pool["desktops"])
        self.assertEqual(self.api("GET", "/api/v1/pools/" + name), pool)
        self.assertEqual([p for p in self.api("GET", "/api/v1/pools") if p["name"] == name],
                         [pool])
        # warm 0: the pool manager makes nothing on its own.
        time.sleep(2)    # two passes of the pool manager
        self.assertEqual(self.pool_desktops(name), [])

    def test_create_with_every_field(self):
        group = self.create_group()["name"]
        user = self.create_user(login=False).name
        name = self.unique("p")
        pool = self.create_pool(name, mode="persistent", size=7, warm=0, idle_timeout=60,
                                disconnect_timeout=30, users=[user], groups=[group],
                                hosts=[self.host], maintenance=True)
        self.assertEqual(pool["mode"], "persistent")
        self.assertEqual(pool["size"], 7)
        self.assertEqual(pool["idle_timeout"], 60)
        self.assertEqual(pool["disconnect_timeout"], 30)
        self.assertEqual(pool["users"], [user])
        self.assertEqual(pool["groups"], [group])
        self.assertEqual(pool["hosts"], [self.host])
        self.assertIs(pool["maintenance"], True)

    def test_bad_fields_400(self):
        before = self.names("/api/v1/pools")
        name = self.unique("p")
        base = {"name": name, "image": self.image, "template": self.template}
        cases = {
            "mode": {"mode": "sticky"},
            "mode not a string": {"mode": 1},
            "size 0": {"size": 0},
            "size negative": {"size": -1},
            "size 10001": {"size": 10001},
            "size a string": {"size": "5"},
            "size fractional": {"size": 1.5},
            "warm > size": {"size": 2, "warm": 3},
            "warm negative": {"warm": -1},
            "idle_timeout negative": {"idle_timeout": -1},
            "idle_timeout too large": {"idle_timeout": 31536001},
            "disconnect_timeout negative": {"disconnect_timeout": -5},
            "maintenance not a boolean": {"maintenance": "yes"},
            "users not a list": {"users": "bob"},
            "unknown field": {"colour": "red"},
            "image missing": {"image": None},
            "template missing": {"template": None},
            "name missing": {"name": None},
        }
        for label, patch in cases.items():
            with self.subTest(label):
                body = dict(base)
                for k, v in patch.items():
                    if v is None and k in ("image", "template", "name"):
                        del body[k]
                    else:
                        body[k] = v
                err = self.assertApiError(400, "POST", "/api/v1/pools", body)
                self.assertEqual(err.get("code"), "invalid", err)
        for bad in ("Upper", "a" * 64, "-lead", "", "a b"):
            with self.subTest(name=bad):
                self.assertApiError(400, "POST", "/api/v1/pools", dict(base, name=bad))
        for key in ("image", "template", "users", "groups", "hosts"):
            with self.subTest(unknown=key):
                missing = self.unique("nosuch")
                value = [missing] if key in ("users", "groups", "hosts") else missing
                status, err = self.daemon.status_of("POST", "/api/v1/pools",
                                                    dict(base, **{key: value}))
                self.assertIn(status, (400, 404), err)
                self.assertIn(missing, err["error"])
        self.assertEqual(self.names("/api/v1/pools"), before)
        self.assertApiError(404, "GET", "/api/v1/pools/" + name)
        # Edge values are fine.
        p = self.create_pool(size=10000, warm=0, idle_timeout=31536000, disconnect_timeout=0)
        self.assertEqual(p["size"], 10000)
        self.api("DELETE", "/api/v1/pools/" + p["name"], expect=204)

    def test_duplicate_409(self):
        pool = self.create_pool()
        err = self.assertApiError(409, "POST", "/api/v1/pools",
                                  {"name": pool["name"], "image": self.image,
                                   "template": self.template, "size": 3})
        self.assertEqual(err.get("code"), "exists")
        self.assertIn(pool["name"], err["error"])
        self.assertEqual(self.api("GET", "/api/v1/pools/" + pool["name"])["size"], 1)

    def test_patch(self):
        name = self.create_pool(size=3)["name"]
        user = self.create_user(login=False).name
        p = self.api("PATCH", "/api/v1/pools/" + name,
                     {"size": 4, "idle_timeout": 10, "disconnect_timeout": 20, "users": [user]},
                     expect=200)
        self.assertEqual((p["size"], p["idle_timeout"], p["disconnect_timeout"], p["users"]),
                         (4, 10, 20, [user]))
        self.assertEqual(self.api("GET", "/api/v1/pools/" + name), p)
        for label, body in {"size 0": {"size": 0}, "warm > size": {"warm": 5},
                            "negative timeout": {"idle_timeout": -1},
                            "mode is fixed": {"mode": "persistent"},
                            "image is fixed": {"image": self.image},
                            "unknown field": {"colour": "red"},
                            "unknown user": {"users": [self.unique("nosuch")]}}.items():
            with self.subTest(label):
                status, err = self.daemon.status_of("PATCH", "/api/v1/pools/" + name, body)
                self.assertIn(status, (400, 404), err)
                self.assertTrue(err.get("error"), err)
        self.assertEqual(self.api("GET", "/api/v1/pools/" + name), p)
        missing = self.unique("nosuch")
        err = self.assertApiError(404, "PATCH", "/api/v1/pools/" + missing, {"size": 2})
        self.assertIn(missing, err["error"])

    def test_warm_desktops(self):
        name = self.create_pool(size=5, warm=2)["name"]
        ds = self.wait_pool(name, lambda ds: len(warm_ready(ds)) == 2, timeout=30,
                            what="2 warm desktops in pool '%s'" % name)
        for d in ds:
            self.assertEqual(d["pool"], name)
            self.assertEqual(d["image"], self.image)
            self.assertEqual(d["template"], self.template)
        # It stays at exactly 2 over a few more passes of the pool manager.
        for _ in range(3):
            time.sleep(1)    # one policy_interval
            ds = self.pool_desktops(name)
            self.assertEqual(len(ds), 2, ds)
            self.assertEqual(len(warm_ready(ds)), 2, ds)
        counts = self.api("GET", "/api/v1/pools/" + name)["desktops"]
        self.assertEqual(counts["total"], 2, counts)
        self.assertEqual(counts["ready"], 2, counts)
        self.assertEqual(counts["assigned"], 0, counts)

        # warm 0: no booted spares any more (powered off or removed).
        self.api("PATCH", "/api/v1/pools/" + name, {"warm": 0}, expect=200)
        left = self.wait_pool(name, lambda ds: not warm_ready(ds) and
                              all(d["state"] == "stopped" for d in ds), timeout=30,
                              what="no running spare in pool '%s' after warm 0" % name)
        self.assertLessEqual(len(left), 2)
        # size 1: the spares beyond it are deleted.
        self.api("PATCH", "/api/v1/pools/" + name, {"size": 1}, expect=200)
        left = self.wait_pool(name, lambda ds: len(ds) <= 1, timeout=30,
                              what="pool '%s' shrunk to size 1" % name)
        gone = {d["name"] for d in ds} - {d["name"] for d in left}
        self.assertTrue(gone)
        for n in gone:
            self.assertApiError(404, "GET", "/api/v1/desktops/" + n)

    def test_shrink_keeps_assigned(self):
        name = self.create_pool(size=5, warm=3)["name"]
        user = self.create_user()
        self.api("PATCH", "/api/v1/pools/" + name, {"users": [user.name]}, expect=200)
        self.wait_pool(name, lambda ds: len(warm_ready(ds)) == 3, timeout=30)
        _, mine = self.get_desktop(user, name)
        # Shrinking below the count: the unassigned surplus goes, his desktop stays.
        self.api("PATCH", "/api/v1/pools/" + name, {"size": 2, "warm": 1}, expect=200)
        ds = self.wait_pool(name, lambda ds: len(ds) == 2 and len(warm_ready(ds)) == 1,
                            timeout=30, what="pool '%s' shrunk to 2" % name)
        self.assertIn(mine["name"], [d["name"] for d in ds])
        self.assertEqual(self.api("GET", "/api/v1/desktops/" + mine["name"])["user"], user.name)
        # size 1 with one assigned desktop: nothing assigned is taken away.
        self.api("PATCH", "/api/v1/pools/" + name, {"size": 1, "warm": 0}, expect=200)
        ds = self.wait_pool(name, lambda ds: len(ds) == 1, timeout=30)
        self.assertEqual(ds[0]["name"], mine["name"])
        self.assertEqual(ds[0]["user"], user.name)

    def test_maintenance(self):
        name = self.create_pool(size=2)["name"]
        user = self.create_user()
        self.api("PATCH", "/api/v1/pools/" + name,
                 {"users": [user.name], "maintenance": True}, expect=200)
        status, err = user.exchange("POST", "/api/v1/pools/%s/desktop" % name)
        self.assertEqual(status, 409, err)
        self.assertIn(err.get("code"), ("busy", "exists"), err)
        self.assertIn("maintenance", err["error"].lower())
        self.assertIn(name, err["error"])
        self.assertEqual(self.pool_desktops(name), [])
        # The user can still see the pool, and that it is in maintenance.
        self.assertIs(user.request("GET", "/api/v1/pools/" + name)["maintenance"], True)
        self.api("PATCH", "/api/v1/pools/" + name, {"maintenance": False}, expect=200)
        status, desk = self.get_desktop(user, name)
        self.assertEqual(status, 201, desk)
        self.assertEqual(desk["user"], user.name)

    def test_delete(self):
        name = self.create_pool(size=3, warm=1)["name"]
        user = self.create_user()
        self.api("PATCH", "/api/v1/pools/" + name, {"users": [user.name]}, expect=200)
        _, desk = self.get_desktop(user, name)
        err = self.assertApiError(409, "DELETE", "/api/v1/pools/" + name)
        self.assertEqual(err.get("code"), "busy", err)
        self.assertIn(name, err["error"])
        self.assertEqual(self.api("GET", "/api/v1/pools/" + name)["name"], name)
        self.assertEqual(self.api("GET", "/api/v1/desktops/" + desk["name"])["user"], user.name)
        # Released (floating: reset and back in the pool), the pool may go.
        self.api("POST", "/api/v1/desktops/%s/release" % desk["name"], expect=200)
        self.wait_pool(name, lambda ds: ds and all(d.get("user") is None for d in ds),
                       timeout=30)
        ds = kdtest.wait_until(
            lambda: self.daemon.exchange("DELETE", "/api/v1/pools/" + name)[0] == 204 or None,
            timeout=20, what="DELETE /pools/%s to answer 204" % name)
        self.assertTrue(ds)
        self.assertApiError(404, "GET", "/api/v1/pools/" + name)
        self.assertEqual(self.pool_desktops(name), [])
        self.assertApiError(404, "GET", "/api/v1/desktops/" + desk["name"])
        self.assertNotIn(name, self.names("/api/v1/pools"))
        missing = self.unique("nosuch")
        self.assertApiError(404, "DELETE", "/api/v1/pools/" + missing)


if __name__ == "__main__":
    unittest.main()
