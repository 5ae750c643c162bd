"""Who may do what (issue 3): the authorization matrix of a `user`, and
cookie sessions with their CSRF token.

A user gets 403 on every admin-only endpoint, 404 on another user's desktop
and on pools he is not entitled to (and nothing changes), and sees only his
entitled pools and his own desktops. Cookie-authenticated writes need the
X-CSRF-Token the login answered; bearer requests need none.
"""

import unittest

import kdtest
from kdtest import PoolTestCase, http_exchange


def cookie_of(headers, name="kvmdesk_session"):
    """The Set-Cookie header setting @name, or None."""
    for key, value in headers:
        if key == "set-cookie" and value.strip().startswith(name + "="):
            return value
    return None


class AuthzTest(PoolTestCase):

    def setUp(self):
        self.entitled = self.create_pool(size=3)["name"]
        self.alice = self.create_user()
        self.bob = self.create_user()
        self.api("PATCH", "/api/v1/pools/" + self.entitled,
                 {"users": [self.alice.name, self.bob.name]}, expect=200)
        self.other = self.create_pool(size=2)["name"]

    def test_admin_endpoints_are_403(self):
        u = self.alice
        name = self.unique("x")
        calls = [
            ("GET", "/api/v1/hosts", None),
            ("GET", "/api/v1/hosts/" + self.host, None),
            ("POST", "/api/v1/hosts", {"name": name, "uri": "test:///default"}),
            ("DELETE", "/api/v1/hosts/" + self.host, None),
            ("GET", "/api/v1/images", None),
            ("GET", "/api/v1/images/" + self.image, None),
            ("DELETE", "/api/v1/images/" + self.image, None),
            ("GET", "/api/v1/templates", None),
            ("GET", "/api/v1/templates/" + self.template, None),
            ("POST", "/api/v1/templates", {"name": name}),
            ("DELETE", "/api/v1/templates/" + self.template, None),
            ("GET", "/api/v1/users", None),
            ("POST", "/api/v1/users", {"name": name, "password": "long-enough-pw"}),
            ("DELETE", "/api/v1/users/" + self.bob.name, None),
            ("GET", "/api/v1/groups", None),
            ("POST", "/api/v1/groups", {"name": name}),
            ("POST", "/api/v1/pools", {"name": name, "image": self.image,
                                       "template": self.template}),
            ("PATCH", "/api/v1/pools/" + self.entitled, {"size": 10}),
            ("PATCH", "/api/v1/pools/" + self.entitled, {"maintenance": True}),
            ("DELETE", "/api/v1/pools/" + self.entitled, None),
            ("POST", "/api/v1/desktops", {"name": name, "image": self.image,
                                          "template": self.template}),
            ("GET", "/api/v1/reconciler", None),
            ("POST", "/api/v1/reconciler/run", None),
        ]
        pool_before = self.api("GET", "/api/v1/pools/" + self.entitled)
        for method, path, body in calls:
            with self.subTest(method=method, path=path):
                status, err = u.exchange(method, path, body)
                self.assertEqual(status, 403, err)
                self.assertEqual(err.get("code"), "forbidden", err)
                self.assertTrue(err.get("error"), err)
        # An upload is refused before anything is stored.
        status, err = self.daemon.raw_request(
            "PUT", "/api/v1/images/%s?host=%s" % (name, self.host), b"\0" * 4096,
            auth=False, headers={"Authorization": "Bearer " + u.token})
        self.assertEqual(status, 403, err)
        # Nothing changed.
        self.assertEqual(self.api("GET", "/api/v1/pools/" + self.entitled)["size"],
                         pool_before["size"])
        self.assertFalse(self.api("GET", "/api/v1/pools/" + self.entitled)["maintenance"])
        for path in ("/api/v1/hosts", "/api/v1/templates", "/api/v1/users", "/api/v1/groups",
                     "/api/v1/pools", "/api/v1/desktops", "/api/v1/images"):
            self.assertNotIn(name, self.names(path))
        self.assertIn(self.host, self.names("/api/v1/hosts"))
        self.assertIn(self.template, self.names("/api/v1/templates"))
        self.assertIn(self.bob.name, self.names("/api/v1/users"))

    def test_other_users_desktop_is_404(self):
        _, mine = self.get_desktop(self.alice, self.entitled)
        name = mine["name"]
        self.wait_desktop(name, lambda d: d["state"] == "assigned")
        before = self.api("GET", "/api/v1/desktops/" + name)
        calls = [("GET", "/api/v1/desktops/" + name, None)]
        for verb in ("start", "shutdown", "reboot", "poweroff", "release"):
            calls.append(("POST", "/api/v1/desktops/%s/%s" % (name, verb), None))
        calls.append(("POST", "/api/v1/desktops/%s/heartbeat" % name, {"connected": True}))
        calls.append(("POST", "/api/v1/desktops/%s/heartbeat" % name, {"connected": False}))
        for method, path, body in calls:
            with self.subTest(method=method, path=path):
                status, err = self.bob.exchange(method, path, body)
                self.assertEqual(status, 404, err)
                self.assertEqual(err.get("code"), "not_found", err)
                # The answer looks like one for a desktop that does not exist.
                self.assertNotIn(self.alice.name, err["error"])
        # DELETE is admin-only or hidden: never a success.
        status, err = self.bob.exchange("DELETE", "/api/v1/desktops/" + name)
        self.assertIn(status, (403, 404), err)
        after = self.api("GET", "/api/v1/desktops/" + name)
        self.assertEqual(after["user"], self.alice.name)
        self.assertEqual(after["state"], before["state"])
        self.assertEqual(after["session"], before["session"])
        # Bob does not see it; alice does.
        self.assertNotIn(name, [d["name"] for d in self.bob.request("GET", "/api/v1/desktops")])
        self.assertEqual(self.alice.request("GET", "/api/v1/desktops/" + name)["name"], name)
        # The attempts were recorded as events.
        status, events = self.daemon.exchange("GET", "/api/v1/events?user=" + self.bob.name)
        self.assertEqual(status, 200, events)
        self.assertTrue([e for e in events if e.get("object_name") == name],
                        "the refused attempts of '%s' left no event" % self.bob.name)
        # Bob sees none of alice's events on it...
        status, events = self.bob.exchange("GET", "/api/v1/events?desktop=" + name)
        self.assertIn(status, (200, 404), events)
        if status == 200:
            self.assertEqual([e for e in events if e.get("actor") != self.bob.name], [])
            # ...and, per the contract ("a user gets only events of his
            # desktops"), not even his own refused attempts on it: they would
            # tell him that the desktop he got a 404 for exists.
            self.assertEqual(events, [], "events of another user's desktop are visible")

    def test_pools_not_entitled_are_404(self):
        before = self.pool_desktops(self.other)
        for method, path in (("GET", "/api/v1/pools/" + self.other),
                             ("POST", "/api/v1/pools/%s/desktop" % self.other)):
            with self.subTest(method=method, path=path):
                status, err = self.alice.exchange(method, path)
                self.assertEqual(status, 404, err)
                self.assertEqual(err.get("code"), "not_found", err)
        # A pool that does not exist answers the same way.
        missing = self.unique("nosuch")
        status, err = self.alice.exchange("POST", "/api/v1/pools/%s/desktop" % missing)
        self.assertEqual(status, 404, err)
        self.assertEqual(self.pool_desktops(self.other), before)
        self.assertEqual([d for d in self.api("GET", "/api/v1/desktops")
                          if d.get("user") == self.alice.name], [])

    def test_listings_are_filtered(self):
        group = self.create_group()["name"]
        carol = self.create_user(groups=[group])
        by_group = self.create_pool(size=1, groups=[group])["name"]
        self.api("PATCH", "/api/v1/pools/" + self.entitled,
                 {"users": [self.alice.name, self.bob.name, carol.name]}, expect=200)
        self.assertEqual(sorted(p["name"] for p in carol.request("GET", "/api/v1/pools")),
                         sorted([self.entitled, by_group]))
        self.assertEqual([p["name"] for p in self.alice.request("GET", "/api/v1/pools")],
                         [self.entitled])
        # Carol reaches the group's pool.
        self.assertEqual(carol.request("GET", "/api/v1/pools/" + by_group)["name"], by_group)
        # The admin sees every pool.
        names = self.names("/api/v1/pools")
        for p in (self.entitled, self.other, by_group):
            self.assertIn(p, names)
        # Desktops: each user only his own.
        _, a = self.get_desktop(self.alice, self.entitled)
        _, c = self.get_desktop(carol, by_group)
        self.assertEqual([d["name"] for d in self.alice.request("GET", "/api/v1/desktops")],
                         [a["name"]])
        self.assertEqual([d["name"] for d in carol.request("GET", "/api/v1/desktops")],
                         [c["name"]])
        self.assertEqual(self.bob.request("GET", "/api/v1/desktops"), [])
        admin_view = [d["name"] for d in self.api("GET", "/api/v1/desktops")]
        self.assertIn(a["name"], admin_view)
        self.assertIn(c["name"], admin_view)
        # Removing carol from the group takes the pool away from her listing
        # (deleting the group does it).
        self.api("DELETE", "/api/v1/groups/" + group, expect=204)
        self.assertEqual(sorted(p["name"] for p in carol.request("GET", "/api/v1/pools")),
                         [self.entitled])

    def test_cookie_session_and_csrf(self):
        url = self.daemon.url
        status, headers, body = http_exchange(
            url, "POST", "/api/v1/login",
            {"username": self.alice.name, "password": self.alice.password})
        self.assertEqual(status, 200, body)
        self.assertTrue(body.get("csrf_token"), body)
        csrf = body["csrf_token"]
        set_cookie = cookie_of(headers)
        self.assertIsNotNone(set_cookie, headers)
        attrs = [a.strip().lower() for a in set_cookie.split(";")]
        self.assertIn("httponly", attrs, set_cookie)
        self.assertIn("samesite=strict", attrs, set_cookie)
        self.assertIn("path=/", attrs, set_cookie)
        cookie = set_cookie.split(";", 1)[0].strip()
        self.assertGreater(len(cookie), len("kvmdesk_session=") + 16, cookie)
        jar = {"Cookie": cookie}

        status, _, me = http_exchange(url, "GET", "/api/v1/me", headers=jar)
        self.assertEqual(status, 200, me)
        self.assertEqual(me.get("user", me.get("name")), self.alice.name)
        path = "/api/v1/pools/%s/desktop" % self.entitled
        # A write with the cookie and no (or a wrong) CSRF token: 403, nothing assigned.
        for extra in ({}, {"X-CSRF-Token": "wrong-" + csrf}, {"X-CSRF-Token": ""}):
            with self.subTest(csrf=extra):
                status, _, err = http_exchange(url, "POST", path, headers={**jar, **extra})
                self.assertEqual(status, 403, err)
                self.assertEqual(err.get("code"), "forbidden", err)
        self.assertEqual([d for d in self.pool_desktops(self.entitled)
                          if d.get("user") == self.alice.name], [])
        # The bearer token is not a CSRF token.
        status, _, err = http_exchange(url, "POST", path,
                                       headers={**jar, "X-CSRF-Token": body["token"]})
        if body["token"] != csrf:
            self.assertEqual(status, 403, err)
        # With the right token it works.
        status, _, desk = http_exchange(url, "POST", path, headers={**jar, "X-CSRF-Token": csrf})
        self.assertIn(status, (200, 201), desk)
        self.assertEqual(desk["user"], self.alice.name)
        # Bearer requests need no CSRF token.
        status, again = self.alice.exchange("POST", path)
        self.assertEqual(status, 200, again)
        self.assertEqual(again["name"], desk["name"])
        # Logout needs the CSRF token too, then clears the cookie.
        status, _, err = http_exchange(url, "POST", "/api/v1/logout", headers=jar)
        self.assertEqual(status, 403, err)
        status, headers, _ = http_exchange(url, "POST", "/api/v1/logout",
                                           headers={**jar, "X-CSRF-Token": csrf})
        self.assertEqual(status, 204)
        cleared = cookie_of(headers)
        self.assertIsNotNone(cleared, "logout did not clear the cookie: %r" % headers)
        low = cleared.lower()
        self.assertTrue(cleared.split(";", 1)[0].strip() == "kvmdesk_session=" or
                        "max-age=0" in low or "expires=thu, 01 jan 1970" in low,
                        cleared)
        status, _, err = http_exchange(url, "GET", "/api/v1/me", headers=jar)
        self.assertEqual(status, 401, err)
        # The bearer token of the other login is unaffected.
        self.alice.request("GET", "/api/v1/me")

    def test_cookie_of_another_session_kind(self):
        # A garbage cookie is not a session.
        status, _, err = http_exchange(self.daemon.url, "GET", "/api/v1/me",
                                       headers={"Cookie": "kvmdesk_session=garbage-"
                                                + kdtest.random_suffix(20)})
        self.assertEqual(status, 401, err)


if __name__ == "__main__":
    unittest.main()
