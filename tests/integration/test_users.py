"""Accounts and groups through the REST API (issue 3).

Covers creating users and groups as the admin, listing and showing them,
the refusals (duplicate 409, bad names and short passwords 400), removal
(the removed user's tokens stop working), the last admin that cannot be
removed, and password changes by the admin and by the user himself (his
other tokens are revoked, the old password no longer works).
"""

import unittest

import kdtest
from kdtest import Client, DaemonTestCase


def whoami(client):
    """GET /me as @client: the user name it answers (the token works).
    The /me answer's own shape is checked in test_create_list_show."""
    me = client.request("GET", "/api/v1/me")
    return me.get("user", me.get("name"))

USER_KEYS = ("name", "role", "groups", "created_at")
BAD_NAMES = ("Upper", "a" * 64, "-lead", "", "a/b", "a b")


class UsersTest(DaemonTestCase):
    daemon_config = "[api]\nlogin_attempts = 10000\n"

    def test_create_list_show(self):
        group = self.create_group()["name"]
        name = self.unique("u")
        user = self.api("POST", "/api/v1/users",
                        {"name": name, "password": "long-enough-pw", "role": "user",
                         "groups": [group]}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/users/" + name)
        for key in USER_KEYS:
            self.assertIn(key, user)
        self.assertEqual(user["name"], name)
        self.assertEqual(user["role"], "user")
        self.assertEqual(user["groups"], [group])
        for secret in ("password", "password_hash", "hash"):
            self.assertNotIn(secret, user)
        self.assertNotIn("long-enough-pw", repr(user))
        self.assertEqual(self.api("GET", "/api/v1/users/" + name), user)
        listed = [u for u in self.api("GET", "/api/v1/users") if u["name"] == name]
        self.assertEqual(listed, [user])
        self.assertIn("admin", self.names("/api/v1/users"))
        # The group lists its member.
        g = [x for x in self.api("GET", "/api/v1/groups") if x["name"] == group]
        self.assertEqual(len(g), 1)
        self.assertIn(name, g[0]["members"])
        # The user logs in with role "user"; /me tells him who he is.
        client = Client(self.daemon, name, "long-enough-pw")
        answer = client.login()
        self.assertEqual(answer["user"], name)
        self.assertEqual(answer["role"], "user")
        me = client.request("GET", "/api/v1/me")
        self.assertEqual(sorted(me), ["groups", "role", "user"],
                         "contract: GET /me answers {user, role, groups}; got %r" % (me,))
        self.assertEqual(me["user"], name)
        self.assertEqual(me["role"], "user")
        self.assertEqual(me["groups"], [group])

    def test_defaults_and_admin_role(self):
        name = self.unique("u")
        user = self.api("POST", "/api/v1/users", {"name": name, "password": "long-enough-pw"},
                        expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/users/" + name)
        self.assertEqual(user["role"], "user")
        self.assertEqual(user["groups"], [])
        admin2 = self.create_user(role="admin")
        self.assertEqual(admin2.login_answer["role"], "admin")
        # A second admin may use the admin endpoints.
        admin2.request("GET", "/api/v1/hosts")
        admin2.request("GET", "/api/v1/users")

    def test_duplicate_409(self):
        client = self.create_user(login=False)
        err = self.assertApiError(409, "POST", "/api/v1/users",
                                  {"name": client.name, "password": "another-password"})
        self.assertEqual(err.get("code"), "exists")
        self.assertIn(client.name, err["error"])
        # The first account is untouched: its password still works.
        client.login()
        self.assertApiError(409, "POST", "/api/v1/users",
                            {"name": "admin", "password": "another-password"})
        self.daemon.login()

    def test_bad_bodies_400(self):
        before = self.api("GET", "/api/v1/users")
        for bad in BAD_NAMES:
            with self.subTest(name=bad):
                err = self.assertApiError(400, "POST", "/api/v1/users",
                                          {"name": bad, "password": "long-enough-pw"})
                self.assertEqual(err.get("code"), "invalid")
        name = self.unique("u")
        cases = {
            "password 7 bytes": {"name": name, "password": "1234567"},
            "password empty": {"name": name, "password": ""},
            "password 1025 bytes": {"name": name, "password": "x" * 1025},
            "password missing": {"name": name},
            "password not a string": {"name": name, "password": 12345678},
            "name missing": {"password": "long-enough-pw"},
            "bad role": {"name": name, "password": "long-enough-pw", "role": "root"},
            "groups not a list": {"name": name, "password": "long-enough-pw", "groups": "g"},
            "unknown field": {"name": name, "password": "long-enough-pw", "email": "a@b"},
        }
        for label, body in cases.items():
            with self.subTest(label):
                err = self.assertApiError(400, "POST", "/api/v1/users", body)
                self.assertEqual(err.get("code"), "invalid")
                self.assertNotIn("long-enough-pw", err["error"])
        with self.subTest("unknown group"):
            missing = self.unique("nosuch")
            status, err = self.daemon.status_of("POST", "/api/v1/users",
                                                {"name": name, "password": "long-enough-pw",
                                                 "groups": [missing]})
            self.assertIn(status, (400, 404), err)
            self.assertIn(missing, err["error"])
        self.assertEqual(self.api("GET", "/api/v1/users"), before)
        self.assertApiError(404, "GET", "/api/v1/users/" + name)
        # Exactly 8 and 1024 bytes are fine.
        for pw in ("12345678", "y" * 1024):
            c = self.create_user(password=pw)
            self.assertEqual(whoami(c), c.name)

    def test_unknown_user_404(self):
        name = self.unique("nosuch")
        for method, path, body in (("GET", "/api/v1/users/" + name, None),
                                   ("DELETE", "/api/v1/users/" + name, None),
                                   ("POST", "/api/v1/users/%s/password" % name,
                                    {"password": "long-enough-pw"})):
            with self.subTest(method=method, path=path):
                err = self.assertApiError(404, method, path, body)
                self.assertEqual(err.get("code"), "not_found")
                self.assertIn(name, err["error"])

    def test_remove_revokes_tokens(self):
        client = self.create_user()
        other = client.new_token()
        client.request("GET", "/api/v1/me")
        self.api("DELETE", "/api/v1/users/" + client.name, expect=204)
        self.assertApiError(404, "GET", "/api/v1/users/" + client.name)
        self.assertNotIn(client.name, self.names("/api/v1/users"))
        for token in (client.token, other):
            status, body = kdtest.http_exchange(self.daemon.url, "GET", "/api/v1/me",
                                                headers={"Authorization": "Bearer " + token})[::2]
            self.assertEqual(status, 401, body)
        self.assertApiError(401, "POST", "/api/v1/login",
                            {"username": client.name, "password": client.password}, auth=False)
        # The name may be used again.
        again = self.create_user(name=client.name)
        self.assertEqual(whoami(again), client.name)

    def test_last_admin_cannot_be_removed(self):
        admin2 = self.create_user(role="admin")
        # With two admins, one may go.
        self.api("DELETE", "/api/v1/users/" + admin2.name, expect=204)
        err = self.assertApiError(409, "DELETE", "/api/v1/users/admin")
        self.assertIn("admin", err["error"])
        # Still there and still working.
        self.assertEqual(self.api("GET", "/api/v1/users/admin")["role"], "admin")
        self.daemon.login()
        self.api("GET", "/api/v1/hosts")

    def test_admin_changes_password(self):
        client = self.create_user()
        other = client.new_token()
        self.api("POST", "/api/v1/users/%s/password" % client.name,
                 {"password": "brand-new-password"}, expect=204)
        for token in (client.token, other):
            status, _, body = kdtest.http_exchange(self.daemon.url, "GET", "/api/v1/me",
                                                   headers={"Authorization": "Bearer " + token})
            self.assertEqual(status, 401, "a token from before the password change still "
                             "works: %r" % (body,))
        self.assertApiError(401, "POST", "/api/v1/login",
                            {"username": client.name, "password": client.password}, auth=False)
        client.login(password="brand-new-password")
        self.assertEqual(whoami(client), client.name)
        # The admin's own token is not affected.
        self.api("GET", "/api/v1/users")

    def test_user_changes_own_password(self):
        client = self.create_user()
        other = client.new_token()
        status, body = client.exchange("POST", "/api/v1/users/%s/password" % client.name,
                                       {"password": "my-own-new-password"})
        self.assertEqual(status, 204, body)
        # His other tokens are revoked.
        status, _, body = kdtest.http_exchange(self.daemon.url, "GET", "/api/v1/me",
                                               headers={"Authorization": "Bearer " + other})
        self.assertEqual(status, 401, body)
        self.assertApiError(401, "POST", "/api/v1/login",
                            {"username": client.name, "password": client.password}, auth=False)
        fresh = Client(self.daemon, client.name, "my-own-new-password")
        fresh.login()
        # Too short a new password: 400, password unchanged.
        status, body = fresh.exchange("POST", "/api/v1/users/%s/password" % client.name,
                                      {"password": "short"})
        self.assertEqual(status, 400, body)
        fresh.login()
        # The token that made the change is not one of "his other tokens".
        status, body = client.exchange("GET", "/api/v1/me")
        self.assertEqual(status, 200, "the token that changed the password was revoked "
                         "(contract: 'his other tokens are revoked'): %r" % (body,))

    def test_user_cannot_change_another_password(self):
        alice = self.create_user()
        bob = self.create_user()
        for target in (bob.name, "admin"):
            with self.subTest(target=target):
                status, body = alice.exchange("POST", "/api/v1/users/%s/password" % target,
                                              {"password": "hijacked-password"})
                self.assertEqual(status, 403, body)
                self.assertEqual(body.get("code"), "forbidden", body)
        # Nothing changed: bob and the admin keep their passwords and tokens.
        self.assertEqual(whoami(bob), bob.name)
        bob.login()
        self.daemon.login()
        self.api("GET", "/api/v1/users")
        self.assertApiError(401, "POST", "/api/v1/login",
                            {"username": bob.name, "password": "hijacked-password"}, auth=False)

    def test_user_endpoints_are_admin_only(self):
        alice = self.create_user()
        bob = self.create_user(login=False)
        calls = [("GET", "/api/v1/users", None), ("GET", "/api/v1/users/" + bob.name, None),
                 ("GET", "/api/v1/users/" + alice.name, None),
                 ("POST", "/api/v1/users", {"name": self.unique("u"),
                                            "password": "long-enough-pw"}),
                 ("DELETE", "/api/v1/users/" + bob.name, None),
                 ("POST", "/api/v1/groups", {"name": self.unique("g")}),
                 ("GET", "/api/v1/groups", None)]
        users_before = self.api("GET", "/api/v1/users")
        for method, path, body in calls:
            with self.subTest(method=method, path=path):
                status, err = alice.exchange(method, path, body)
                self.assertEqual(status, 403, err)
                self.assertEqual(err.get("code"), "forbidden", err)
        self.assertEqual(self.api("GET", "/api/v1/users"), users_before)
        # The user cannot make himself an admin by creating an account either.
        self.assertEqual(alice.request("GET", "/api/v1/me")["role"], "user")


class GroupsTest(DaemonTestCase):
    daemon_config = "[api]\nlogin_attempts = 10000\n"

    def test_create_list_delete(self):
        name = self.unique("g")
        group = self.api("POST", "/api/v1/groups", {"name": name}, expect=201)
        self.addCleanup(self.daemon.status_of, "DELETE", "/api/v1/groups/" + name)
        self.assertEqual(group["name"], name)
        self.assertEqual(group["members"], [])
        self.assertIn("created_at", group)
        self.assertIn(name, self.names("/api/v1/groups"))
        a = self.create_user(groups=[name], login=False)
        b = self.create_user(groups=[name], login=False)
        g = [x for x in self.api("GET", "/api/v1/groups") if x["name"] == name][0]
        self.assertEqual(sorted(g["members"]), sorted([a.name, b.name]))
        self.api("DELETE", "/api/v1/groups/" + name, expect=204)
        self.assertNotIn(name, self.names("/api/v1/groups"))
        # Its members lose it.
        self.assertEqual(self.api("GET", "/api/v1/users/" + a.name)["groups"], [])

    def test_refusals(self):
        name = self.create_group()["name"]
        err = self.assertApiError(409, "POST", "/api/v1/groups", {"name": name})
        self.assertEqual(err.get("code"), "exists")
        before = self.names("/api/v1/groups")
        for bad in BAD_NAMES:
            with self.subTest(name=bad):
                err = self.assertApiError(400, "POST", "/api/v1/groups", {"name": bad})
                self.assertEqual(err.get("code"), "invalid")
        self.assertApiError(400, "POST", "/api/v1/groups", {"name": self.unique("g"), "x": 1})
        self.assertEqual(self.names("/api/v1/groups"), before)
        missing = self.unique("nosuch")
        err = self.assertApiError(404, "DELETE", "/api/v1/groups/" + missing)
        self.assertIn(missing, err["error"])


if __name__ == "__main__":
    unittest.main()
