"""Placement over many simulated hosts (issue 5).

Twenty test:// hosts of different sizes (custom node definitions: CPUs and
memory), each holding the image. A pool asked for more desktops than fit
is filled to the last free slot, never over a host's limits (vCPUs x
cpu_ratio, memory - reserve), and says why it cannot grow once, naming
the hosts. Maintenance keeps new desktops off a host; spread, pack and
round-robin place as they promise; bad settings are refused unchanged.
"""

import collections
import os
import time
import unittest

from kdtest import DaemonTestCase, make_image, random_suffix, read_bytes, wait_until

MIB = 1024 * 1024
GIB = 1024 * MIB

NODE = """<node>
  <cpu><mhz>2000</mhz><model>x86_64</model><active>{cpus}</active><nodes>1</nodes>
       <sockets>1</sockets><cores>{cpus}</cores><threads>1</threads></cpu>
  <memory>{kib}</memory>
</node>
"""


class PlacementTest(DaemonTestCase):

    daemon_config = "[broker]\npolicy_interval = 1\n[api]\nlogin_attempts = 10000\n"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.sizes = {}
            cls.hosts = []
            path = os.path.join(cls.daemon.tmp, "golden.qcow2")
            image_bytes = read_bytes(make_image(path, "qcow2", "64M"))
            cls.image = "img-" + random_suffix()
            for i in range(20):
                name = "hv%02d-%s" % (i, random_suffix(4))
                cpus = 1 + i % 3                      # 1, 2, 3 CPUs
                mem_gib = 2 + i % 4                   # 2..5 GiB
                node = os.path.join(cls.daemon.tmp, "node-%s.xml" % name)
                with open(node, "w") as f:
                    f.write(NODE.format(cpus=cpus, kib=mem_gib * 1024 * 1024))
                cls.daemon.request("POST", "/api/v1/hosts", {"name": name, "uri": "test://" + node},
                                   expect=201)
                if i == 0:
                    # Only the first host holds the image: the others are
                    # refused for it (import on demand is not built yet).
                    cls.daemon.request("PUT", "/api/v1/images/%s?host=%s" % (cls.image, name),
                                       raw=image_bytes, expect=201)
                cls.hosts.append(name)
                cls.sizes[name] = (cpus, mem_gib)
            cls.template = "half-" + random_suffix()
            cls.daemon.request("POST", "/api/v1/templates",
                               {"name": cls.template, "vcpus": 1, "memory_mib": 512, "disk_gib": 1},
                               expect=201)
        except Exception:
            cls.daemon.cleanup()
            raise

    def capacity(self, name):
        """Desktops of 1 vCPU / 512 MiB the host takes: 4 vCPUs per CPU,
        memory less the 1 GiB reserve."""
        cpus, mem_gib = self.sizes[name]
        return min(cpus * 4, (mem_gib * GIB - GIB) // (512 * MIB))

    def test_host_settings_and_refusals(self):
        h = self.api("GET", "/api/v1/hosts/" + self.hosts[1])
        self.assertEqual((h["maintenance"], h["cpu_ratio"], h["memory_ratio"], h["disk_ratio"],
                          h["memory_reserved_mib"], h["labels"]),
                         (False, 4.0, 1.0, 1.0, 1024, []))
        self.assertEqual(h["use"]["vcpus_limit"], self.sizes[self.hosts[1]][0] * 4)
        changed = self.api("PATCH", "/api/v1/hosts/" + self.hosts[1],
                           {"labels": ["ssd", "rack-2", "ssd"], "cpu_ratio": 2.5})
        self.assertEqual(changed["labels"], ["rack-2", "ssd"], "sorted, without duplicates")
        self.assertEqual(changed["cpu_ratio"], 2.5)
        for bad in ({"cpu_ratio": 0}, {"cpu_ratio": 100}, {"memory_ratio": "1"},
                    {"memory_reserved_mib": -1}, {"memory_reserved_mib": 1 << 40},
                    {"labels": ["Bad Label"]}, {"labels": "ssd"}, {"maintenance": "yes"},
                    {"uri": "test:///default"}, {}):
            with self.subTest(bad=bad):
                status, err = self.daemon.status_of("PATCH", "/api/v1/hosts/" + self.hosts[1], bad)
                self.assertEqual(status, 400, err)
        after = self.api("GET", "/api/v1/hosts/" + self.hosts[1])
        self.assertEqual((after["labels"], after["cpu_ratio"]), (["rack-2", "ssd"], 2.5),
                         "refused changes change nothing")
        self.api("PATCH", "/api/v1/hosts/" + self.hosts[1], {"labels": [], "cpu_ratio": 4})
        status, _ = self.daemon.status_of("PATCH", "/api/v1/hosts/nope-host", {"maintenance": True})
        self.assertEqual(status, 404)

    def pool_desktops(self, pool):
        return [d for d in self.api("GET", "/api/v1/desktops") if d.get("pool") == pool]

    def remove_pool(self, name):
        deadline = time.time() + 120
        while time.time() < deadline:
            status, _ = self.daemon.status_of("DELETE", "/api/v1/pools/" + name)
            if status in (204, 404):
                return
            time.sleep(0.5)

    def test_drain(self):
        """Draining: maintenance on; spares deleted and rebuilt on the other
        host; a floating desktop in use follows when released; a stopped
        stand-alone desktop moves cold; a running one with nobody on it
        cannot migrate live between simulated hosts, so it is shut down and
        then moves cold."""
        a, b = self.hosts[7], self.hosts[11]        # 5 GiB each: room for 8 desktops
        user = self.unique("u")
        self.api("POST", "/api/v1/users", {"name": user, "password": "drain-pass-1"}, expect=201)
        pool = "drain-" + random_suffix()
        self.api("POST", "/api/v1/pools", {"name": pool, "image": self.image, "template": self.template,
                                           "size": 4, "warm": 3, "hosts": [a, b], "users": [user]},
                 expect=201)
        self.addCleanup(self.remove_pool, pool)
        wait_until(lambda: len([d for d in self.pool_desktops(pool) if d["state"] == "running"]) == 3,
                   timeout=60, what="3 warm desktops")
        client = self.daemon.__class__.__new__(self.daemon.__class__)
        client.__dict__.update(self.daemon.__dict__)
        client.token = None
        client.login(user, "drain-pass-1")
        mine = client.request("POST", "/api/v1/pools/%s/desktop" % pool)
        drained = mine["host"]
        alone = "alone-" + random_suffix()
        self.api("POST", "/api/v1/desktops", {"name": alone, "image": self.image,
                                              "template": self.template, "host": drained}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + alone)
        busy = "busy-" + random_suffix()
        self.api("POST", "/api/v1/desktops", {"name": busy, "image": self.image,
                                              "template": self.template, "host": drained,
                                              "start": True}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + busy)
        wait_until(lambda: self.api("GET", "/api/v1/desktops/" + alone)["state"] == "stopped" and
                   self.api("GET", "/api/v1/desktops/" + busy)["state"] == "running",
                   timeout=30, what="stand-alone desktops made")

        r = self.api("POST", "/api/v1/hosts/%s/drain" % drained)
        self.addCleanup(self.api, "PATCH", "/api/v1/hosts/" + drained, {"maintenance": False})
        actions = {d["name"]: d["action"] for d in r["desktops"]}
        self.assertEqual(actions[mine["name"]], "moves-on-release", r)
        self.assertEqual(actions[alone], "moving", r)
        self.assertEqual(actions[busy], "shutting-down", r)
        reasons = {d["name"]: d["reason"] for d in r["desktops"]}
        self.assertIn("is simulated (test://): no live migration", reasons[busy])
        self.assertIn("its user is gone", reasons[busy])
        host = self.api("GET", "/api/v1/hosts/" + drained)
        self.assertTrue(host["draining"], host)
        went = wait_until(lambda: (lambda d: d if d["host"] != drained and not d["busy"] else None)(
            self.api("GET", "/api/v1/desktops/" + busy)), timeout=30, what="the running desktop moved")
        self.assertEqual(went["state"], "stopped")
        moved = wait_until(lambda: (lambda d: d if d["host"] != drained and not d["busy"] else None)(
            self.api("GET", "/api/v1/desktops/" + alone)), timeout=30, what="the stopped desktop moved")
        self.assertEqual(moved["state"], "stopped")
        self.assertTrue([e for e in self.api("GET", "/api/v1/events?desktop=%s&limit=20" % alone)
                         if e["action"] == "move" and "moved from host '%s'" % drained in e["message"]])
        # It runs where it went.
        self.api("POST", "/api/v1/desktops/%s/start" % alone)
        self.assertEqual(self.api("GET", "/api/v1/desktops/" + alone)["host"], moved["host"])
        for d in r["desktops"]:
            self.assertTrue(d["reason"], d)
        self.assertTrue(self.api("GET", "/api/v1/hosts/" + drained)["maintenance"])
        other = b if drained == a else a
        # Spares rebuilt on the other host; only his desktop is left on the drained one.
        wait_until(lambda: [d["name"] for d in self.pool_desktops(pool) if d["host"] == drained]
                   == [mine["name"]] and len(self.pool_desktops(pool)) == 4,
                   timeout=60, what="spares rebuilt on %s" % other)
        # Released: deleted (not reset) and rebuilt elsewhere.
        client.request("POST", "/api/v1/desktops/%s/release" % mine["name"])
        wait_until(lambda: not [d for d in self.pool_desktops(pool) if d["host"] == drained],
                   timeout=60, what="nothing of the pool left on %s" % drained)
        events = self.api("GET", "/api/v1/events?desktop=%s&limit=50" % mine["name"])
        self.assertTrue([e for e in events if e["action"] == "drain" and "rebuilds it elsewhere" in e["message"]],
                        events[:5])
        status, _ = self.daemon.status_of("POST", "/api/v1/hosts/nope-%s/drain" % random_suffix())
        self.assertEqual(status, 404)
        # Maintenance off ends the drain.
        host = self.api("PATCH", "/api/v1/hosts/" + drained, {"maintenance": False})
        self.assertFalse(host["draining"], host)
        self.assertFalse(host["maintenance"], host)

    def test_drain_waits_for_the_user(self):
        """A persistent desktop in use on a host that cannot migrate live
        stays while its user is connected; once he is gone the drain goes
        on by itself (the next reconciler pass): shut down, moved cold."""
        a, b = self.hosts[8], self.hosts[12]
        user = self.unique("u")
        self.api("POST", "/api/v1/users", {"name": user, "password": "drain-pass-2"}, expect=201)
        pool = "keep-" + random_suffix()
        self.api("POST", "/api/v1/pools", {"name": pool, "image": self.image, "template": self.template,
                                           "mode": "persistent", "size": 2, "warm": 0, "hosts": [a, b],
                                           "users": [user]}, expect=201)
        self.addCleanup(self.remove_pool, pool)
        client = self.daemon.__class__.__new__(self.daemon.__class__)
        client.__dict__.update(self.daemon.__dict__)
        client.token = None
        client.login(user, "drain-pass-2")
        mine = client.request("POST", "/api/v1/pools/%s/desktop" % pool)
        name, drained = mine["name"], mine["host"]
        wait_until(lambda: self.api("GET", "/api/v1/desktops/" + name)["state"] in ("assigned", "running"),
                   timeout=30, what="his desktop up")
        client.request("POST", "/api/v1/desktops/%s/heartbeat" % name, {"connected": True})
        self.assertEqual(self.api("GET", "/api/v1/desktops/" + name)["state"], "connected")

        r = self.api("POST", "/api/v1/hosts/%s/drain" % drained)
        self.addCleanup(self.api, "PATCH", "/api/v1/hosts/" + drained, {"maintenance": False})
        step = {d["name"]: d for d in r["desktops"]}[name]
        self.assertEqual(step["action"], "stays", r)
        self.assertIn("shut down and moved cold once its user is gone", step["reason"])
        # Passes while he is connected change nothing.
        self.api("POST", "/api/v1/reconciler/run")
        d = self.api("GET", "/api/v1/desktops/" + name)
        self.assertEqual((d["host"], d["state"]), (drained, "connected"))
        # He leaves; the next pass shuts it down and moves it.
        client.request("POST", "/api/v1/desktops/%s/heartbeat" % name, {"connected": False})
        self.api("POST", "/api/v1/reconciler/run")
        moved = wait_until(lambda: (lambda d: d if d["host"] != drained and not d["busy"] else None)(
            self.api("GET", "/api/v1/desktops/" + name)), timeout=30, what="his desktop moved")
        self.assertEqual(moved["state"], "stopped")
        self.assertEqual(moved["user"], user)
        events = self.api("GET", "/api/v1/events?desktop=%s&limit=50" % name)
        said = [e["message"] for e in events if e["action"] == "drain"]
        self.assertTrue([m for m in said if "stays" in m], said)
        self.assertTrue([m for m in said if "shutting-down" in m], said)
        self.assertTrue([e for e in events if e["action"] == "move"], events[:5])
        # The same decision is told once, not at every pass.
        self.assertEqual(len([m for m in said if "stays" in m]), 1, said)

    def test_migration_setting(self):
        h = self.hosts[3]
        self.addCleanup(self.api, "PATCH", "/api/v1/hosts/" + h, {"migration": "live"})
        self.assertEqual(self.api("GET", "/api/v1/hosts/" + h)["migration"], "live")
        self.assertEqual(self.api("PATCH", "/api/v1/hosts/" + h, {"migration": "cold"})["migration"], "cold")
        for bad in ("warm", "", 3, None):
            status, err = self.daemon.status_of("PATCH", "/api/v1/hosts/" + h, {"migration": bad})
            self.assertEqual(status, 400, (bad, err))
        self.assertEqual(self.api("GET", "/api/v1/hosts/" + h)["migration"], "cold")

    def test_image_copy_in_advance(self):
        target = self.hosts[18]
        img = self.api("POST", "/api/v1/images/%s/copy" % self.image, {"host": target})
        on = {v["host"]: v for v in img["volumes"]}
        self.assertEqual(on[target]["state"], "ready", img["volumes"])
        status, err = self.daemon.status_of("POST", "/api/v1/images/%s/copy" % self.image, {"host": target})
        self.assertEqual(status, 409, err)
        self.assertIn("already holds", err["error"])
        for body, want in (({"host": "nope-" + random_suffix()}, 404), ({}, 400), ({"host": 3}, 400),
                           ({"host": target, "x": 1}, 400)):
            status, err = self.daemon.status_of("POST", "/api/v1/images/%s/copy" % self.image, body)
            self.assertEqual(status, want, (body, err))
        status, _ = self.daemon.status_of("POST", "/api/v1/images/nope-%s/copy" % random_suffix(),
                                          {"host": target})
        self.assertEqual(status, 404)
        # A desktop placed there needs no copy first.
        name = "cp-" + random_suffix()
        d = self.api("POST", "/api/v1/desktops", {"name": name, "image": self.image,
                                                  "template": self.template, "host": target},
                     expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + name)
        self.assertEqual(d["host"], target)
        r = self.daemon.cli("login", "admin", env={"KVMDESK_PASSWORD": self.daemon.admin_password})
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.daemon.cli("image", "copy", self.image, "--host", target, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("already holds", r.stderr)

    def test_fill_to_the_last_slot(self):
        """All hosts but the image's first are given the image by a pool
        restricted to hosts that hold it: here, the one host. Then the pool
        grows until it is full, and says why once."""
        host = self.hosts[0]
        cap = self.capacity(host)
        pool = "fill-" + random_suffix()
        self.api("POST", "/api/v1/pools", {"name": pool, "image": self.image,
                                           "template": self.template, "size": cap + 3,
                                           "warm": cap + 3, "hosts": [host]}, expect=201)
        self.addCleanup(self.remove_pool, pool)
        wait_until(lambda: len(self.pool_desktops(pool)) == cap, timeout=120,
                   what="%d desktops on %s" % (cap, host))
        time.sleep(3)   # a few more pool manager ticks: nothing more may appear
        desks = self.pool_desktops(pool)
        self.assertEqual(len(desks), cap)
        self.assertEqual({d["host"] for d in desks}, {host})
        h = self.api("GET", "/api/v1/hosts/" + host)
        self.assertLessEqual(h["use"]["vcpus"], h["use"]["vcpus_limit"])
        self.assertLessEqual(h["use"]["memory_bytes"], h["use"]["memory_limit"])
        events = [e for e in self.api("GET", "/api/v1/events?object_type=pool&object_name=%s&limit=1000" % pool)
                  if e["action"] == "placement"]
        self.assertEqual(len(events), 1, "said once, not once per desktop or tick: %r" % events)
        self.assertIn("cannot start more desktops", events[0]["message"])
        self.assertIn(host + ": ", events[0]["message"])
        self.assertRegex(events[0]["message"], r"(vCPUs \d+/\d+ used, needs 1|memory [\d.]+/[\d.]+ GiB used, needs 0\.5)")

    def test_maintenance_and_image_copy(self):
        """A host in maintenance gets no new desktop; the desktop goes to a
        host with room, and the image is copied there first."""
        host = self.hosts[0]
        self.api("PATCH", "/api/v1/hosts/" + host, {"maintenance": True})
        self.addCleanup(self.api, "PATCH", "/api/v1/hosts/" + host, {"maintenance": False})
        events = self.api("GET", "/api/v1/events?object_type=host&object_name=%s&limit=50" % host)
        self.assertTrue([e for e in events if "maintenance on" in e["message"]], events[:5])
        name = "d-" + random_suffix()
        d = self.api("POST", "/api/v1/desktops", {"name": name, "image": self.image,
                                                  "template": self.template}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + name)
        self.assertNotEqual(d["host"], host)
        d = wait_until(lambda: (lambda x: x if x["state"] == "stopped" else None)(
            self.api("GET", "/api/v1/desktops/" + name)), timeout=60, what="desktop stopped")
        vols = self.api("GET", "/api/v1/images/" + self.image)["volumes"]
        on = {v["host"]: v for v in vols}
        self.assertEqual(on[d["host"]]["state"], "ready", vols)
        copies = [e for e in self.api("GET", "/api/v1/events?object_type=image&object_name=%s&limit=100"
                                      % self.image) if e["action"] == "copy"]
        self.assertTrue([e for e in copies if "copied from host '%s' to host '%s'" % (host, d["host"])
                         in e["message"]], copies)
        # A pool that may only use the host in maintenance says so, once.
        pool = "maint-" + random_suffix()
        self.api("POST", "/api/v1/pools", {"name": pool, "image": self.image, "template": self.template,
                                           "size": 2, "warm": 2, "hosts": [host]}, expect=201)
        self.addCleanup(self.remove_pool, pool)
        ev = wait_until(lambda: [e for e in self.api(
            "GET", "/api/v1/events?object_type=pool&object_name=%s&limit=50" % pool)
            if e["action"] == "placement"], timeout=20, what="placement event")
        time.sleep(2)
        ev = [e for e in self.api("GET", "/api/v1/events?object_type=pool&object_name=%s&limit=50" % pool)
              if e["action"] == "placement"]
        self.assertEqual(len(ev), 1, ev)
        self.assertIn("%s: maintenance" % host, ev[0]["message"])
        self.assertIn("other hosts are not in the pool's list", ev[0]["message"])

    def test_spread_pack_round_robin(self):
        """Spread puts each new desktop on the emptiest host (copying the
        image where needed), pack fills one host first, round-robin takes
        the pool's list in turn."""
        spread = "spread-" + random_suffix()
        self.api("POST", "/api/v1/pools", {"name": spread, "image": self.image,
                                           "template": self.template, "size": 6, "warm": 6},
                 expect=201)
        self.addCleanup(self.remove_pool, spread)
        desks = wait_until(lambda: (lambda ds: ds if len(ds) == 6 else None)(self.pool_desktops(spread)),
                           timeout=120, what="6 spread desktops")
        # Most free memory first: the five 5-GiB hosts (4 GiB free after the
        # reserve) take one each, then one of them (3.5 GiB) beats every
        # 4-GiB host (3 GiB).
        biggest = {h for h in self.hosts if self.sizes[h][1] == 5}
        counts = collections.Counter(d["host"] for d in desks)
        self.assertEqual(set(counts), biggest, counts)
        self.assertEqual(sorted(counts.values()), [1, 1, 1, 1, 2], counts)

        pack = "pack-" + random_suffix()
        allowed = self.hosts[4:8]            # 4 hosts: pack fills the smallest first
        self.api("POST", "/api/v1/pools", {"name": pack, "image": self.image, "template": self.template,
                                           "size": 3, "warm": 3, "placement": "pack",
                                           "hosts": allowed}, expect=201)
        self.addCleanup(self.remove_pool, pack)
        desks = wait_until(lambda: (lambda ds: ds if len(ds) == 3 else None)(self.pool_desktops(pack)),
                           timeout=120, what="3 packed desktops")
        counts = collections.Counter(d["host"] for d in desks)
        self.assertLessEqual(len(counts), 2, counts)
        self.assertGreaterEqual(max(counts.values()), 2, counts)

        rr = "rr-" + random_suffix()
        order = [self.hosts[10], self.hosts[13], self.hosts[16]]
        self.api("POST", "/api/v1/pools", {"name": rr, "image": self.image, "template": self.template,
                                           "size": 6, "warm": 6, "placement": "round-robin",
                                           "hosts": order}, expect=201)
        self.addCleanup(self.remove_pool, rr)
        desks = wait_until(lambda: (lambda ds: ds if len(ds) == 6 else None)(self.pool_desktops(rr)),
                           timeout=120, what="6 round-robin desktops")
        counts = collections.Counter(d["host"] for d in desks)
        self.assertEqual(set(counts), set(order), counts)
        self.assertEqual(sorted(counts.values()), [2, 2, 2], counts)
        pool = self.api("GET", "/api/v1/pools/" + rr)
        self.assertEqual(pool["placement"], "round-robin")
        for bad in ("random", "", 3):
            status, err = self.daemon.status_of("PATCH", "/api/v1/pools/" + rr, {"placement": bad})
            self.assertEqual(status, 400, err)

if __name__ == "__main__":
    unittest.main()
