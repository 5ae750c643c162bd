"""Passthrough GPUs on simulated hosts (issue 5).

libvirt's test driver with a node definition holding PCI node devices
(tests/data/integration/host-gpu.xml): GPUs are checked against them
(each function exists; one IOMMU group holding nothing that is not passed
through), stored with product and group, handed whole to desktops whose
template asks for one, never to two, and freed when the desktop goes.
"""

import os
import shutil
import time
import unittest

from kdtest import (DaemonTestCase, TEST_DATA, make_image, random_suffix, read_bytes,
                    wait_until)

GPU_A = ["0000:01:00.0", "0000:01:00.1"]
GPU_B = ["0000:02:00.0", "0000:02:00.1"]


class GpuTest(DaemonTestCase):

    daemon_config = "[broker]\npolicy_interval = 1\n[api]\nlogin_attempts = 10000\n"

    def node(self, name, source="host-gpu.xml"):
        path = os.path.join(self.daemon.tmp, "node-%s.xml" % name)
        shutil.copyfile(os.path.join(TEST_DATA, "integration", source), path)
        return "test://" + path

    def add_host(self, gpus=None, source="host-gpu.xml", expect=201):
        name = "g" + random_suffix()
        body = {"name": name, "uri": self.node(name, source)}
        if gpus is not None:
            body["gpus"] = gpus
        status, answer = self.daemon.status_of("POST", "/api/v1/hosts", body)
        self.assertEqual(status, 200 if expect == 201 else expect, answer)
        return name, answer

    def test_gpus_checked_and_listed(self):
        name, host = self.add_host(gpus=[GPU_A, ",".join(GPU_B)])
        gpus = host["gpus"]
        self.assertEqual([g["addresses"] for g in gpus], [GPU_A, GPU_B])
        self.assertEqual([g["iommu_group"] for g in gpus], [12, 13])
        self.assertEqual(gpus[0]["product"], "TU104GL [Tesla T4]")
        self.assertEqual([g["desktop"] for g in gpus], [None, None])

        before = self.names("/api/v1/hosts")
        cases = [
            ([["0000:09:00.0"]], "has no PCI device 0000:09:00.0"),
            ([["0000:01:00.0"]], "shares IOMMU group 12 with 0000:01:00.1, which is not passed through"),
            ([["0000:03:00.0"]], "shares IOMMU group 3 with 0000:00:1f.3"),
            ([["0000:01:00.0", "0000:02:00.0"], ["0000:01:00.1", "0000:02:00.1"]],
             "different IOMMU groups (12 and 13)"),
            ([["gpu0"]], "is not a PCI address"),
            ([GPU_A, GPU_A], "one GPU only"),
            ([[]], "1 to 8 PCI addresses"),
            ("0000:01:00.0", "must be a list of GPUs"),
            ([[1]], "must be a list of GPUs"),
        ]
        for gpus, words in cases:
            with self.subTest(gpus=gpus):
                _, err = self.add_host(gpus=gpus, expect=400)
                self.assertIn(words, err["error"])
        self.assertEqual(self.names("/api/v1/hosts"), before, "a refused host is not stored")

        # PUT replaces the list, [] removes it; a bad list changes nothing.
        h = self.api("PUT", "/api/v1/hosts/%s/gpus" % name, {"gpus": [GPU_B]})
        self.assertEqual([g["addresses"] for g in h["gpus"]], [GPU_B])
        status, err = self.daemon.status_of("PUT", "/api/v1/hosts/%s/gpus" % name, {"gpus": [["0000:03:00.0"]]})
        self.assertEqual(status, 400, err)
        self.assertEqual([g["addresses"] for g in self.api("GET", "/api/v1/hosts/" + name)["gpus"]], [GPU_B])
        h = self.api("PUT", "/api/v1/hosts/%s/gpus" % name, {"gpus": []})
        self.assertEqual(h["gpus"], [])

    def test_desktops_get_whole_gpus(self):
        gpu_host, _ = self.add_host(gpus=[GPU_A, GPU_B])
        plain, _ = self.add_host(source="host-small.xml")
        image = "img-" + random_suffix()
        path = os.path.join(self.daemon.tmp, "g.qcow2")
        self.api("PUT", "/api/v1/images/%s?host=%s" % (image, gpu_host),
                 raw=read_bytes(make_image(path, "qcow2", "64M")), expect=201)
        tpl = "gpu-" + random_suffix()
        t = self.api("POST", "/api/v1/templates",
                     {"name": tpl, "memory_mib": 256, "disk_gib": 1, "gpus": 1}, expect=201)
        self.assertEqual(t["gpus"], 1)
        for bad in (-1, 9, "1"):
            status, err = self.daemon.status_of("POST", "/api/v1/templates",
                                                {"name": "bad-" + random_suffix(), "gpus": bad})
            self.assertEqual(status, 400, err)

        pool = "gpus-" + random_suffix()
        self.api("POST", "/api/v1/pools", {"name": pool, "image": image, "template": tpl, "size": 3,
                                           "warm": 3, "hosts": [gpu_host, plain]}, expect=201)
        self.addCleanup(self.remove_pool, pool)
        desks = wait_until(lambda: (lambda ds: ds if len(ds) == 2 else None)(
            [d for d in self.api("GET", "/api/v1/desktops") if d.get("pool") == pool]),
            timeout=60, what="two GPU desktops")
        time.sleep(2)
        desks = [d for d in self.api("GET", "/api/v1/desktops") if d.get("pool") == pool]
        self.assertEqual(len(desks), 2, "only two GPUs: the third desktop cannot be placed")
        self.assertEqual({d["host"] for d in desks}, {gpu_host})
        gpus = self.api("GET", "/api/v1/hosts/" + gpu_host)["gpus"]
        self.assertEqual(sorted(g["desktop"] for g in gpus), sorted(d["name"] for d in desks),
                         "each desktop has its own GPU")
        events = [e for e in self.api("GET", "/api/v1/events?object_type=pool&object_name=%s&limit=50" % pool)
                  if e["action"] == "placement"]
        self.assertEqual(len(events), 1, events)
        self.assertIn("%s: 0 free GPUs, needs 1" % gpu_host, events[0]["message"])
        self.assertIn("%s: 0 free GPUs, needs 1" % plain, events[0]["message"])

        # A GPU given to a desktop cannot be taken from the host's list.
        status, err = self.daemon.status_of("PUT", "/api/v1/hosts/%s/gpus" % gpu_host, {"gpus": []})
        self.assertEqual(status, 409, err)

        # Deleting a desktop frees its GPU: no GPU names it any more (the pool
        # may give the GPU to the desktop it makes next, never to two).
        gone = desks[0]["name"]
        self.api("DELETE", "/api/v1/desktops/" + gone, expect=None)
        gpus = wait_until(lambda: (lambda gs: gs if gone not in [g["desktop"] for g in gs] else None)(
            self.api("GET", "/api/v1/hosts/" + gpu_host)["gpus"]), timeout=30, what="the GPU freed")
        taken = [g["desktop"] for g in gpus if g["desktop"]]
        self.assertEqual(len(taken), len(set(taken)), gpus)

    def test_drain_moves_gpu_desktops_cold(self):
        """A GPU desktop never migrates live; drained, it is shut down (nobody
        is on it) and moves cold to a host with a free GPU, which it takes;
        the GPU it left is free."""
        a, _ = self.add_host(gpus=[GPU_A])
        b, _ = self.add_host(gpus=[GPU_A])
        image = "img-" + random_suffix()
        path = os.path.join(self.daemon.tmp, "m.qcow2")
        self.api("PUT", "/api/v1/images/%s?host=%s" % (image, a),
                 raw=read_bytes(make_image(path, "qcow2", "64M")), expect=201)
        self.api("POST", "/api/v1/images/%s/copy" % image, {"host": b})
        tpl = "gpu-" + random_suffix()
        self.api("POST", "/api/v1/templates", {"name": tpl, "memory_mib": 256, "disk_gib": 1, "gpus": 1},
                 expect=201)
        name = "g-" + random_suffix()
        self.api("POST", "/api/v1/desktops", {"name": name, "image": image, "template": tpl, "host": a,
                                              "start": True}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/desktops/" + name)
        self.addCleanup(self.daemon.status_of, "PATCH", "/api/v1/hosts/" + a, {"maintenance": False})
        wait_until(lambda: self.api("GET", "/api/v1/desktops/" + name)["state"] == "running",
                   timeout=30, what="the GPU desktop running")
        self.assertEqual([g["desktop"] for g in self.api("GET", "/api/v1/hosts/" + a)["gpus"]], [name])

        r = self.api("POST", "/api/v1/hosts/%s/drain" % a)
        step = {d["name"]: d for d in r["desktops"]}[name]
        self.assertEqual(step["action"], "shutting-down", r)
        self.assertIn("passthrough GPU, which does not migrate live", step["reason"])
        moved = wait_until(lambda: (lambda d: d if d["host"] == b and not d["busy"] else None)(
            self.api("GET", "/api/v1/desktops/" + name)), timeout=30, what="moved to the other GPU host")
        self.assertEqual(moved["state"], "stopped")
        self.assertEqual([g["desktop"] for g in self.api("GET", "/api/v1/hosts/" + b)["gpus"]], [name])
        self.assertEqual([g["desktop"] for g in self.api("GET", "/api/v1/hosts/" + a)["gpus"]], [None])
        events = self.api("GET", "/api/v1/events?desktop=%s&limit=30" % name)
        said = [e["message"] for e in events if e["action"] == "drain"]
        self.assertTrue([m for m in said if "with a GPU of that host" in m], said)
        # It starts where it went, on that host's GPU.
        self.api("POST", "/api/v1/desktops/%s/start" % name)
        self.assertEqual(self.api("GET", "/api/v1/desktops/" + name)["state"], "running")

    def remove_pool(self, name):
        deadline = time.time() + 60
        while time.time() < deadline:
            status, _ = self.daemon.status_of("DELETE", "/api/v1/pools/" + name)
            if status in (204, 404):
                return
            time.sleep(0.5)


if __name__ == "__main__":
    unittest.main()
