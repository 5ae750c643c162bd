"""vGPUs (mediated devices) on simulated hosts (issue 5).

A test:// host whose node definition (tests/data/integration/host-vgpu.xml)
holds two GPUs offering mediated device types with availableInstances.
A template naming a type is placed only where an instance is free,
desktops take instances until they run out, the refusal names the type,
deleting a desktop frees its instance, and bad templates change nothing.
libvirt's test driver cannot create mediated devices (it creates only
vHBAs), so the simulated host records the vGPU and says in the create
event that the device was not made; the domain is defined with the mdev
hostdev (the golden XML is tests/data/domain-xml/vgpu.xml).
"""

import os
import shutil
import unittest

from kdtest import DaemonTestCase, TEST_DATA, make_image, random_suffix, read_bytes

GPU_1 = ["0000:21:00.0"]
GPU_2 = ["0000:22:00.0"]


class VgpuTest(DaemonTestCase):

    daemon_config = "[api]\nlogin_attempts = 10000\n"

    def add_host(self, gpus, source="host-vgpu.xml"):
        name = "v" + random_suffix()
        path = os.path.join(self.daemon.tmp, "node-%s.xml" % name)
        shutil.copyfile(os.path.join(TEST_DATA, "integration", source), path)
        return name, self.api("POST", "/api/v1/hosts", {"name": name, "uri": "test://" + path, "gpus": gpus})

    def create(self, image, tpl, expect=200):
        name = "d" + random_suffix()
        status, answer = self.daemon.status_of("POST", "/api/v1/desktops",
                                               {"name": name, "image": image, "template": tpl})
        self.assertEqual(status, expect, answer)
        return name, answer

    def test_vgpus(self):
        host, h = self.add_host([GPU_1, GPU_2])
        mdevs = h["gpus"][0]["mdevs"]
        self.assertEqual([(m["type"], m["name"], m["device_api"], m["instances"], m["used"]) for m in mdevs],
                         [("nvidia-63", "GRID P4-1Q", "vfio-pci", 2, 0),
                          ("nvidia-64", "GRID P4-2Q", "vfio-pci", 1, 0)])
        self.assertEqual(h["gpus"][0]["mdev_types"], ["nvidia-63", "nvidia-64"])
        self.assertEqual(h["gpus"][0]["vgpus"], [])

        image = "img-" + random_suffix()
        path = os.path.join(self.daemon.tmp, "v.qcow2")
        self.api("PUT", "/api/v1/images/%s?host=%s" % (image, host),
                 raw=read_bytes(make_image(path, "qcow2", "64M")), expect=201)

        # Bad templates: a 400 each, and nothing stored.
        before = [t["name"] for t in self.api("GET", "/api/v1/templates")]
        for bad, words in [({"gpu_mdev": "nvidia-999"}, "no host GPU offers vGPU type 'nvidia-999'"),
                           ({"gpu_mdev": "nvidia-63", "gpus": 1}, "not both"),
                           ({"gpu_mdev": "x'/><evil"}, "is not a mediated device type"),
                           ({"gpu_mdev": 63}, "gpu_mdev"),
                           ({"gpu_mdev": "a" * 65}, "is not a mediated device type")]:
            with self.subTest(bad=bad):
                body = dict(name="bad-" + random_suffix(), memory_mib=256, disk_gib=1, **bad)
                status, err = self.daemon.status_of("POST", "/api/v1/templates", body)
                self.assertEqual(status, 400, err)
                self.assertIn(words, err["error"])
        self.assertEqual([t["name"] for t in self.api("GET", "/api/v1/templates")], before)

        tpl = "vgpu-" + random_suffix()
        t = self.api("POST", "/api/v1/templates",
                     {"name": tpl, "memory_mib": 256, "disk_gib": 1, "gpu_mdev": "nvidia-63"}, expect=201)
        self.assertEqual((t["gpu_mdev"], t["gpus"]), ("nvidia-63", 0))
        self.assertEqual(self.api("GET", "/api/v1/templates/" + tpl)["gpu_mdev"], "nvidia-63")

        # Two GPUs of two nvidia-63 instances: four desktops, packed GPU by GPU.
        desks = [self.create(image, tpl)[0] for _ in range(4)]
        gpus = self.api("GET", "/api/v1/hosts/" + host)["gpus"]
        self.assertEqual([[m["used"] for m in g["mdevs"]] for g in gpus], [[2, 0], [2, 0]])
        held = sorted(v["desktop"] for g in gpus for v in g["vgpus"])
        self.assertEqual(held, sorted(desks), "each desktop has its own vGPU")
        uuids = [v["uuid"] for g in gpus for v in g["vgpus"]]
        self.assertEqual(len(set(uuids)), 4)
        self.assertEqual({g["desktop"] for g in gpus}, {None}, "no GPU is passed through whole")
        events = self.api("GET", "/api/v1/events?object_type=desktop&object_name=%s&limit=20" % desks[0])
        created = [e["message"] for e in events if e["action"] == "create" and "vGPU" in e["message"]]
        self.assertEqual(len(created), 1, events)
        self.assertIn("type nvidia-63 on 0000:21:00.0", created[0])
        self.assertIn("simulated host: the mediated device is not created", created[0])

        # The fifth is refused with the type named; nothing is left behind.
        names = [d["name"] for d in self.api("GET", "/api/v1/desktops")]
        _, err = self.create(image, tpl, expect=503)
        self.assertIn("%s: no free vGPU of type nvidia-63" % host, err["error"])
        self.assertEqual([d["name"] for d in self.api("GET", "/api/v1/desktops")], names)

        # A whole-GPU template finds no free GPU: both run vGPUs.
        whole = "whole-" + random_suffix()
        self.api("POST", "/api/v1/templates", {"name": whole, "memory_mib": 256, "disk_gib": 1, "gpus": 1},
                 expect=201)
        _, err = self.create(image, whole, expect=503)
        self.assertIn("%s: 0 free GPUs, needs 1" % host, err["error"])

        # The GPU list cannot be replaced while vGPUs run on it.
        status, err = self.daemon.status_of("PUT", "/api/v1/hosts/%s/gpus" % host, {"gpus": []})
        self.assertEqual(status, 409, err)

        # Deleting a desktop frees its instance, which the next one takes.
        self.api("DELETE", "/api/v1/desktops/" + desks[0], expect=None)
        gpus = self.api("GET", "/api/v1/hosts/" + host)["gpus"]
        self.assertNotIn(desks[0], [v["desktop"] for g in gpus for v in g["vgpus"]])
        self.assertEqual(sum(len(g["vgpus"]) for g in gpus), 3)
        again, _ = self.create(image, tpl)
        gpus = self.api("GET", "/api/v1/hosts/" + host)["gpus"]
        self.assertIn(again, [v["desktop"] for g in gpus for v in g["vgpus"]])

        # Deleting every desktop of a GPU frees it for a whole passthrough.
        for name in desks[1:] + [again]:
            self.api("DELETE", "/api/v1/desktops/" + name, expect=None)
        gpus = self.api("GET", "/api/v1/hosts/" + host)["gpus"]
        self.assertEqual([g["vgpus"] for g in gpus], [[], []])
        name, _ = self.create(image, whole)
        self.api("DELETE", "/api/v1/desktops/" + name, expect=None)


if __name__ == "__main__":
    unittest.main()
