"""Image versions (the golden-image cycle) through the REST API and the CLI.

An admin opens an edit session on an image (POST /images/NAME/edit: a full
copy of the current version booted in desktop edit-NAME), publishes it as
the next version or cancels it, lists the versions and rolls back. Pools
follow the current version: desktops nobody holds are rebuilt at once, a
held one when its user releases it. Everything runs on a simulated test://
host; every test imports an image of its own so that versions do not mix.
"""

import json
import os
import time
import unittest

import kdtest
from kdtest import PoolTestCase, make_image, read_bytes, wait_until

API = "/api/v1"


class VersionsTest(PoolTestCase):

    daemon_config = ("[broker]\npolicy_interval = 1\n"
                     "[libvirt]\nshutdown_timeout = 2\n"
                     "[api]\nlogin_attempts = 10000\n")

    # -- helpers -------------------------------------------------------------
    def new_image(self):
        """Imports an image of this test's own on the class's host; after
        the test its edit (if any) is cancelled and it is deleted."""
        name = self.unique("vimg")
        path = os.path.join(self.daemon.tmp, name + ".qcow2")
        self.api("PUT", "%s/images/%s?host=%s" % (API, name, self.host),
                 raw=read_bytes(make_image(path, "qcow2", "64M")), expect=201)
        os.unlink(path)
        self.addCleanup(self.remove_image, name)
        return name

    def remove_image(self, name, timeout=30):
        self.daemon.status_of("POST", "%s/images/%s/edit/cancel" % (API, name))
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, _ = self.daemon.status_of("DELETE", "%s/images/%s" % (API, name))
            if status in (204, 200, 404):
                return
            time.sleep(0.3)

    def image_of(self, name):
        return self.api("GET", "%s/images/%s" % (API, name))

    def versions(self, name):
        return self.api("GET", "%s/images/%s/versions" % (API, name))

    def edit(self, name, **body):
        body.setdefault("template", self.template)
        status, desk = self.daemon.exchange("POST", "%s/images/%s/edit" % (API, name), body)
        self.assertEqual(status, 201, "POST /images/%s/edit: %r" % (name, desk))
        return desk

    def publish(self, name, note=None):
        body = {"note": note} if note is not None else None
        status, img = self.daemon.exchange("POST", "%s/images/%s/publish" % (API, name), body)
        self.assertEqual(status, 200, "POST /images/%s/publish: %r" % (name, img))
        return img

    def rollback(self, name, version):
        status, img = self.daemon.exchange("POST", "%s/images/%s/rollback" % (API, name),
                                           {"version": version})
        self.assertEqual(status, 200, "POST /images/%s/rollback: %r" % (name, img))
        return img

    def assertStatus(self, status, method, path, body=None):
        """Asserts @status and an error sentence; returns the body."""
        got, answer = self.daemon.exchange(method, path, body)
        self.assertEqual(got, status, "%s %s %r: %r" % (method, path, body, answer))
        if status >= 400:
            self.assertIsInstance(answer, dict, answer)
            self.assertTrue(answer.get("error"), answer)
        return answer

    def assertUnchanged(self, name, versions, current=1, editing=False):
        img = self.image_of(name)
        self.assertEqual(img["current_version"], current, img)
        if editing:
            self.assertIsNotNone(img["editing"], img)
        else:
            self.assertIsNone(img["editing"], img)
        self.assertEqual(self.versions(name), versions)

    def wait_editing_desktop_running(self, desk):
        return self.wait_desktop(desk["name"], lambda d: d["state"] == "running", timeout=30,
                                 what="editing desktop '%s' to run" % desk["name"])

    def wait_pool_on(self, pool, version, what, warm=2, timeout=60):
        """Until every unassigned desktop of @pool is on @version, needs no
        reset and is not being worked on, and @warm of them run; returns
        the desktops."""
        seen = []

        def probe():
            ds = self.pool_desktops(pool)
            seen[:] = [(d["name"], d["state"], d["user"], d["image_version"], d["needs_reset"],
                        d["busy"]) for d in ds]
            free = [d for d in ds if not d.get("user")]
            ok = (free and all(d["image_version"] == version and d["needs_reset"] is False
                               and d["state"] in ("running", "stopped") for d in free)
                  and len([d for d in free if d["state"] == "running"]) == warm)
            return ds if ok else None
        try:
            return wait_until(probe, timeout=timeout, interval=0.25, what=what)
        except AssertionError as e:
            raise AssertionError("%s; desktops (name, state, user, image_version, needs_reset, "
                                 "busy): %r" % (e, seen)) from None

    def wait_pool_settled(self, pool, total, warm=2, timeout=30):
        """Until @pool has @total desktops, @warm of them free and running,
        none being worked on; returns them."""
        def ok(ds):
            return (len(ds) == total and not any(d["busy"] for d in ds)
                    and len([d for d in ds if not d["user"] and d["state"] == "running"]) == warm
                    and all(d["state"] in ("running", "stopped", "assigned") for d in ds))
        return self.wait_pool(pool, ok, timeout=timeout,
                              what="pool '%s' settled at %d desktops, %d warm" % (pool, total, warm))

    # -- edit, publish -------------------------------------------------------
    def test_edit_then_publish(self):
        name = self.new_image()
        before = self.versions(name)
        self.assertEqual([v["version"] for v in before], [1], before)
        self.assertIs(before[0]["current"], True, before)
        self.assertEqual(before[0]["hosts"], [self.host], before)
        img = self.image_of(name)
        self.assertEqual(img["current_version"], 1, img)
        self.assertIsNone(img["editing"], img)

        desk = self.edit(name)
        self.assertEqual(desk["name"], "edit-" + name, desk)
        self.assertEqual(desk["image"], name, desk)
        self.assertEqual(desk["host"], self.host, desk)
        self.assertIsNone(desk.get("pool"), desk)
        self.assertIn(desk["state"], ("starting", "running"), desk)
        self.wait_editing_desktop_running(desk)
        img = self.image_of(name)
        self.assertEqual(img["current_version"], 1, img)
        self.assertIsNotNone(img["editing"], img)
        self.assertEqual(img["editing"]["desktop"], desk["name"], img)
        self.assertEqual(img["editing"]["version"], 2, img)
        self.assertEqual(img["editing"]["actor"], "admin", img)
        self.assertTrue(img["editing"]["since"], img)
        # Editing is not a version yet.
        self.assertEqual([v["version"] for v in self.versions(name)], [1])

        # One edit at a time; the image and the editing desktop are protected.
        self.assertStatus(409, "POST", "%s/images/%s/edit" % (API, name),
                          {"template": self.template})
        self.assertStatus(409, "DELETE", "%s/images/%s" % (API, name))
        self.assertStatus(409, "POST", "%s/desktops/%s/reset" % (API, desk["name"]))
        self.assertEqual(self.image_of(name)["editing"]["desktop"], desk["name"])
        self.assertEqual(self.api("GET", "%s/desktops/%s" % (API, desk["name"]))["state"],
                         "running")
        # The copy being edited is known to the reconciler: no orphan, no problem.
        report = self.api("POST", API + "/reconciler/run")
        self.assertEqual(report.get("orphans"), [], report)
        self.assertEqual([p for p in report.get("problems", []) if p.get("desktop") == desk["name"]],
                         [], report)

        img = self.publish(name, note="first update")
        self.assertEqual(img["name"], name, img)
        self.assertEqual(img["current_version"], 2, img)
        self.assertIsNone(img["editing"], img)
        vols = {v["version"]: v for v in img["volumes"]}
        self.assertIn(1, vols, img)
        self.assertIn(2, vols, img)
        self.assertEqual(vols[2]["host"], self.host, img)
        self.assertEqual(vols[2]["state"], "ready", img)

        versions = self.versions(name)
        self.assertEqual([v["version"] for v in versions], [1, 2], versions)
        self.assertEqual([v["current"] for v in versions], [False, True], versions)
        v2 = versions[1]
        self.assertEqual(v2["note"], "first update", v2)
        self.assertEqual(v2["actor"], "admin", v2)
        self.assertTrue(v2["created_at"], v2)
        self.assertEqual(v2["format"], versions[0]["format"], versions)
        self.assertEqual(v2["virtual_size"], versions[0]["virtual_size"], versions)
        self.assertIsInstance(v2["file_size"], int, v2)
        self.assertEqual(v2["hosts"], [self.host], v2)
        # The editing desktop is gone.
        self.assertStatus(404, "GET", "%s/desktops/%s" % (API, desk["name"]))
        self.assertNotIn(desk["name"], self.names(API + "/desktops"))
        # Nothing left to publish or cancel.
        self.assertStatus(409, "POST", "%s/images/%s/publish" % (API, name))
        self.assertStatus(409, "POST", "%s/images/%s/edit/cancel" % (API, name))

        # A second cycle gives version 3; publishing without a note is fine.
        self.wait_editing_desktop_running(self.edit(name))
        img = self.publish(name)
        self.assertEqual(img["current_version"], 3, img)
        versions = self.versions(name)
        self.assertEqual([v["version"] for v in versions], [1, 2, 3], versions)
        self.assertIsNone(versions[2]["note"], versions)

        # Rollback: an existing version only.
        img = self.rollback(name, 1)
        self.assertEqual(img["current_version"], 1, img)
        self.assertEqual([v["current"] for v in self.versions(name)], [True, False, False])
        self.assertStatus(404, "POST", "%s/images/%s/rollback" % (API, name), {"version": 99})
        self.assertStatus(404, "POST", "%s/images/%s/rollback" % (API, name), {"version": 0})
        self.assertEqual(self.image_of(name)["current_version"], 1)
        # A new edit starts from the current version and numbers after the last.
        self.wait_editing_desktop_running(self.edit(name))
        self.assertEqual(self.image_of(name)["editing"]["version"], 4)
        self.assertStatus(204, "POST", "%s/images/%s/edit/cancel" % (API, name))

    # -- cancel ----------------------------------------------------------------
    def test_edit_then_cancel(self):
        name = self.new_image()
        versions = self.versions(name)
        desk = self.edit(name)
        self.wait_editing_desktop_running(desk)
        domain = self.api("GET", "%s/desktops/%s" % (API, desk["name"]))["domain"]

        self.assertStatus(204, "POST", "%s/images/%s/edit/cancel" % (API, name))
        self.assertUnchanged(name, versions)
        self.assertStatus(404, "GET", "%s/desktops/%s" % (API, desk["name"]))
        self.assertStatus(409, "POST", "%s/images/%s/edit/cancel" % (API, name))
        # The copy went with it: the reconciler finds no orphan volume or domain.
        report = self.api("POST", API + "/reconciler/run")
        orphans = [o for o in report.get("orphans", [])
                   if name in (o.get("name") or "") or o.get("name") == domain]
        self.assertEqual(orphans, [], report)
        self.assertEqual([o for o in report.get("orphans", []) if o.get("kind") == "volume"],
                         [], report)
        # The image can be edited again, and deleted once nothing edits it.
        self.wait_editing_desktop_running(self.edit(name))
        self.assertEqual(self.image_of(name)["editing"]["version"], 2)
        self.assertStatus(204, "POST", "%s/images/%s/edit/cancel" % (API, name))
        self.assertUnchanged(name, versions)
        self.assertStatus(204, "DELETE", "%s/images/%s" % (API, name))
        self.assertStatus(404, "GET", "%s/images/%s/versions" % (API, name))

    # -- refusals ----------------------------------------------------------------
    def test_bad_requests_change_nothing(self):
        name = self.new_image()
        versions = self.versions(name)
        edit = "%s/images/%s/edit" % (API, name)
        for body in ({}, {"host": self.host}, {"template": self.template, "bogus": 1},
                     {"template": 5}, {"template": self.template, "host": 7}, [],
                     "not json"):
            self.assertStatus(400, "POST", edit, body)
            self.assertUnchanged(name, versions)
        self.assertStatus(404, "POST", edit, {"template": "no-such-template"})
        self.assertStatus(404, "POST", "%s/images/no-such-image/edit" % API,
                          {"template": self.template})
        self.assertStatus(404, "GET", "%s/images/no-such-image/versions" % API)
        self.assertUnchanged(name, versions)
        # Nothing to publish, cancel or roll back to.
        self.assertStatus(409, "POST", "%s/images/%s/publish" % (API, name))
        self.assertStatus(409, "POST", "%s/images/%s/edit/cancel" % (API, name))
        rollback = "%s/images/%s/rollback" % (API, name)
        for body in ({}, {"version": "1"}, {"version": None}, {"version": 1, "bogus": 1},
                     {"version": [1]}, "not json"):
            self.assertStatus(400, "POST", rollback, body)
        self.assertStatus(404, "POST", rollback, {"version": 2})
        self.assertUnchanged(name, versions)

        # While an edit is open: a bad publish body publishes nothing.
        desk = self.edit(name)
        self.wait_editing_desktop_running(desk)
        publish = "%s/images/%s/publish" % (API, name)
        for body in ({"note": 5}, {"note": "x", "bogus": 1}, {"comment": "x"},
                     {"note": "x" * 1001}):
            self.assertStatus(400, "POST", publish, body)
            self.assertUnchanged(name, versions, editing=True)
        self.assertEqual(self.api("GET", "%s/desktops/%s" % (API, desk["name"]))["state"],
                         "running")
        self.assertStatus(204, "POST", "%s/images/%s/edit/cancel" % (API, name))
        self.assertUnchanged(name, versions)

    def test_users_may_not(self):
        name = self.new_image()
        user = self.create_user()
        for method, suffix, body in (("POST", "/edit", {"template": self.template}),
                                     ("POST", "/publish", None),
                                     ("POST", "/edit/cancel", None),
                                     ("GET", "/versions", None),
                                     ("POST", "/rollback", {"version": 1})):
            status, answer = user.exchange(method, "%s/images/%s%s" % (API, name, suffix), body)
            self.assertEqual(status, 403, "%s %s as a user: %r" % (method, suffix, answer))
        self.assertUnchanged(name, self.versions(name))

    # -- pools follow the current version ----------------------------------------
    def test_pool_follows_publish_and_rollback(self):
        name = self.new_image()
        user = self.create_user()
        pool = self.create_pool(image=name, size=3, warm=2, users=[user.name])["name"]
        ds = self.wait_pool(pool, lambda ds: len([d for d in ds if d["state"] == "running"
                                                  and not d["user"]]) == 2, timeout=30,
                            what="2 warm desktops in pool '%s'" % pool)
        self.assertTrue(all(d["image_version"] == 1 for d in ds), ds)
        _, held = self.get_desktop(user, pool, expect=(201,))
        held = self.wait_desktop(held["name"], lambda d: d["state"] == "assigned",
                                 what="the user's desktop to be assigned")
        self.assertEqual(held["image_version"], 1, held)
        # The pool makes up its warm desktops again before the publish (a
        # publish during provisioning is test_publish_while_pool_provisions).
        self.wait_pool_settled(pool, 3)

        self.wait_editing_desktop_running(self.edit(name))
        self.assertEqual(self.publish(name, note="for the pool")["current_version"], 2)

        # Unassigned desktops are rebuilt on version 2 at once...
        self.wait_pool_on(pool, 2, "the free desktops of pool '%s' on version 2" % pool)
        # ...the held one keeps version 1 while its user has it.
        d = self.api("GET", "%s/desktops/%s" % (API, held["name"]))
        self.assertEqual(d["user"], user.name, d)
        self.assertEqual(d["image_version"], 1, d)
        self.assertIn(d["state"], ("assigned", "connected", "disconnected"), d)
        time.sleep(2)    # two passes of the pool manager: still his, still version 1
        d = self.api("GET", "%s/desktops/%s" % (API, held["name"]))
        self.assertEqual((d["user"], d["image_version"]), (user.name, 1), d)

        # Released: rebuilt on version 2 (a floating desktop goes back to the pool).
        user.request("POST", "%s/desktops/%s/release" % (API, held["name"]))

        def rebuilt():
            status, d = self.daemon.status_of("GET", "%s/desktops/%s" % (API, held["name"]))
            if status == 404:
                return "deleted"
            return d if (not d["user"] and d["image_version"] == 2 and not d["needs_reset"]
                         and d["state"] in ("running", "stopped")) else None
        wait_until(rebuilt, timeout=60, interval=0.25,
                   what="released desktop '%s' rebuilt on version 2" % held["name"])
        ds = self.wait_pool_on(pool, 2, "every desktop of pool '%s' on version 2" % pool)
        self.assertTrue(all(not d["user"] for d in ds), ds)

        # Rollback: the pool follows back to version 1.
        self.assertEqual(self.rollback(name, 1)["current_version"], 1)
        ds = self.wait_pool_on(pool, 1, "the desktops of pool '%s' back on version 1" % pool)
        self.assertEqual(len([d for d in ds if d["state"] == "running"]), 2, ds)
        self.assertStatus(404, "POST", "%s/images/%s/rollback" % (API, name), {"version": 99})
        self.assertEqual(self.image_of(name)["current_version"], 1)
        # A new desktop from the pool is on the current version.
        _, got = self.get_desktop(user, pool, expect=(201,))
        got = self.wait_desktop(got["name"], lambda d: d["state"] == "assigned")
        self.assertEqual(got["image_version"], 1, got)
        user.request("POST", "%s/desktops/%s/release" % (API, got["name"]))

    def test_publish_while_pool_provisions(self):
        # A desktop being created while the version changes must end up on
        # the new version too, though nobody holds it.
        name = self.new_image()
        self.wait_editing_desktop_running(self.edit(name))
        pool = self.create_pool(image=name, size=3, warm=2)["name"]
        # Publish while the pool manager provisions its warm desktops; on
        # test:// that can be over before a poll sees it, and then the
        # publish simply comes after (the test is weaker, not wrong).
        try:
            wait_until(lambda: any(d["busy"] or d["state"] == "provisioning"
                                   for d in self.pool_desktops(pool)),
                       timeout=5, interval=0.02)
        except AssertionError:
            pass
        self.assertEqual(self.publish(name, note="during provisioning")["current_version"], 2)
        self.wait_pool_on(pool, 2, "the desktops of pool '%s' on version 2" % pool, timeout=30)
        ds = self.pool_desktops(pool)
        self.assertTrue(all(d["image_version"] == 2 for d in ds), ds)

    # -- the real CLI ----------------------------------------------------------
    def kd(self, *args, check=True):
        return self.daemon.cli(*args, check=check,
                               env={"KVMDESK_PASSWORD": self.daemon.admin_password})

    def kd_json(self, *args):
        r = self.kd(*args, "--json")
        try:
            return json.loads(r.stdout)
        except ValueError:
            self.fail("kvmdesk %s --json printed no JSON: %r" % (" ".join(args), r.stdout))

    def assertCliFails(self, *args, code=1, mention=None):
        r = self.kd(*args, check=False)
        self.assertEqual(r.returncode, code, "kvmdesk %s: %r %r" % (" ".join(args), r.stdout,
                                                                     r.stderr))
        err = r.stderr.strip()
        self.assertTrue(err.startswith("kvmdesk"), err)
        if mention:
            self.assertIn(mention, err)
        self.assertNotIn("CRITICAL", err)
        return r

    def test_cli(self):
        name = self.new_image()
        self.kd("login", "admin")

        r = self.kd("image", "edit", name, "--template", self.template)
        self.assertIn("edit-" + name, r.stdout)
        self.assertIn("image publish", r.stdout)
        img = self.image_of(name)
        self.assertEqual(img["editing"]["desktop"], "edit-" + name, img)
        self.wait_desktop("edit-" + name, lambda d: d["state"] == "running", timeout=30)
        self.assertCliFails("image", "edit", name, "--template", self.template,
                            mention="already being edited")
        listed = self.kd("image", "list").stdout
        self.assertIn("CURRENT", listed)
        self.assertIn("EDITING", listed)
        self.assertIn("v2 in edit-" + name, listed)
        shown = self.kd("image", "show", name).stdout
        self.assertIn("current_version:", shown)
        self.assertIn("editing.desktop:", shown)

        versions = self.kd_json("image", "versions", name)
        self.assertEqual([v["version"] for v in versions], [1], versions)

        r = self.kd("image", "publish", name, "--note", "from the CLI")
        self.assertIn("version 2", r.stdout)
        versions = self.kd_json("image", "versions", name)
        self.assertEqual([v["version"] for v in versions], [1, 2], versions)
        self.assertEqual(versions[1]["note"], "from the CLI", versions)
        self.assertEqual(versions[1]["actor"], "admin", versions)
        table = self.kd("image", "versions", name).stdout.splitlines()
        self.assertEqual(table[0].split(), ["VERSION", "CURRENT", "FORMAT", "VIRTUAL-SIZE",
                                            "FILE-SIZE", "HOSTS", "ACTOR", "CREATED", "NOTE"])
        self.assertEqual(len(table), 3, table)
        self.assertTrue(table[2].startswith("2 "), table)
        self.assertIn("from the CLI", table[2])
        self.assertIn("yes", table[2])
        self.assertIsNone(self.image_of(name)["editing"])

        r = self.kd("image", "rollback", name, "1")
        self.assertIn("version 1", r.stdout)
        self.assertEqual(self.image_of(name)["current_version"], 1)
        img = self.kd_json("image", "rollback", name, "2")
        self.assertEqual(img["current_version"], 2, img)
        self.assertCliFails("image", "rollback", name, "99", mention="99")
        self.assertCliFails("image", "rollback", name, "two", code=2, mention="VERSION")
        self.assertEqual(self.image_of(name)["current_version"], 2)

        # Edit and cancel.
        desk = self.kd_json("image", "edit", name, "--template", self.template,
                            "--host", self.host)
        self.assertEqual(desk["name"], "edit-" + name, desk)
        self.assertEqual(desk["host"], self.host, desk)
        self.wait_desktop(desk["name"], lambda d: d["state"] == "running", timeout=30)
        r = self.kd("image", "cancel-edit", name)
        self.assertIn("cancelled", r.stdout)
        self.assertIsNone(self.image_of(name)["editing"])
        self.assertEqual([v["version"] for v in self.versions(name)], [1, 2])
        self.assertCliFails("image", "cancel-edit", name, mention=name)
        self.assertCliFails("image", "publish", name, mention=name)
        self.assertCliFails("image", "edit", name, code=2, mention="--template")


if __name__ == "__main__":
    unittest.main()
