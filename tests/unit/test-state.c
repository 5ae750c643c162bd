/*
 * test-state.c: the desktop state machine (every allowed and refused
 * transition) and the session policies, driven by a test clock.
 */
#include "broker/kd-broker.h"
#include "broker/kd-broker-state.h"

static const char *all_states[] = {
  KD_DESKTOP_PROVISIONING, KD_DESKTOP_STOPPED, KD_DESKTOP_STARTING, KD_DESKTOP_RUNNING,
  KD_DESKTOP_ASSIGNED, KD_DESKTOP_CONNECTED, KD_DESKTOP_DISCONNECTED, KD_DESKTOP_RESETTING,
  KD_DESKTOP_SHUTTING_DOWN, KD_DESKTOP_DELETING, KD_DESKTOP_ERROR, KD_DESKTOP_UNKNOWN,
};

/* The whole table, written out: "from>to" pairs that are allowed
 * (besides staying put and going to error). */
static const char *allowed[] = {
  "provisioning>stopped", "provisioning>running", "provisioning>assigned",
  "stopped>starting", "stopped>running", "stopped>resetting", "stopped>deleting", "stopped>shutting-down",
  "starting>running", "starting>assigned", "starting>stopped",
  "running>assigned", "running>connected", "running>shutting-down", "running>resetting",
  "running>deleting", "running>stopped", "running>starting",
  "assigned>connected", "assigned>disconnected", "assigned>shutting-down", "assigned>resetting",
  "assigned>deleting", "assigned>stopped", "assigned>starting",
  "connected>disconnected", "connected>shutting-down", "connected>resetting", "connected>deleting",
  "connected>stopped", "connected>starting",
  "disconnected>connected", "disconnected>shutting-down", "disconnected>resetting",
  "disconnected>deleting", "disconnected>stopped", "disconnected>starting", "disconnected>assigned",
  "resetting>running", "resetting>stopped", "resetting>assigned",
  "shutting-down>stopped", "shutting-down>running", "shutting-down>assigned",
  "shutting-down>connected", "shutting-down>disconnected",
  "error>starting", "error>resetting", "error>deleting", "error>shutting-down", "error>stopped",
  /* a host going down: any settled or moving state but provisioning and deleting */
  "stopped>unknown", "starting>unknown", "running>unknown", "assigned>unknown", "connected>unknown",
  "disconnected>unknown", "resetting>unknown", "shutting-down>unknown", "error>unknown",
  /* the host is back: the reconciler says what it is */
  "unknown>stopped", "unknown>running", "unknown>assigned", "unknown>connected",
  "unknown>disconnected", "unknown>deleting",
};

static void
test_transition_table (void)
{
  guint n_allowed = 0;

  for (gsize f = 0; f < G_N_ELEMENTS (all_states); f++)
    for (gsize t = 0; t < G_N_ELEMENTS (all_states); t++)
      {
        g_autofree char *pair = g_strdup_printf ("%s>%s", all_states[f], all_states[t]);
        gboolean want = g_strv_contains (allowed, pair) || f == t ||
                        g_str_equal (all_states[t], KD_DESKTOP_ERROR);
        gboolean got = kd_desktop_transition_allowed (all_states[f], all_states[t]);
        if (want != got)
          g_error ("transition %s: expected %s, the state machine says %s", pair,
                   want ? "allowed" : "refused", got ? "allowed" : "refused");
        n_allowed += got;
      }
  g_assert_cmpuint (n_allowed, ==, G_N_ELEMENTS (allowed) + G_N_ELEMENTS (all_states) * 2 - 1);
}

static void
test_transition_edges (void)
{
  /* A new desktop starts provisioning and nowhere else. */
  g_assert_true (kd_desktop_transition_allowed (NULL, KD_DESKTOP_PROVISIONING));
  g_assert_false (kd_desktop_transition_allowed (NULL, KD_DESKTOP_RUNNING));
  /* Deleting leads nowhere but away (or error). */
  g_assert_false (kd_desktop_transition_allowed (KD_DESKTOP_DELETING, KD_DESKTOP_RUNNING));
  /* An error desktop is never handed out directly. */
  g_assert_false (kd_desktop_transition_allowed (KD_DESKTOP_ERROR, KD_DESKTOP_ASSIGNED));
  g_assert_false (kd_desktop_transition_allowed (KD_DESKTOP_ERROR, KD_DESKTOP_RUNNING));
  /* Unknown words are refused. */
  g_assert_false (kd_desktop_transition_allowed ("flying", KD_DESKTOP_RUNNING));
  g_assert_false (kd_desktop_transition_allowed (KD_DESKTOP_RUNNING, "flying"));
  g_assert_false (kd_desktop_transition_allowed (KD_DESKTOP_RUNNING, NULL));
}

#define SEC G_GINT64_CONSTANT (1000000)
#define T0  (G_GINT64_CONSTANT (1800000000) * SEC)   /* the test clock's origin */

static KdPolicyInput
session (gboolean floating, const char *state)
{
  KdPolicyInput in = {
    .floating = floating, .idle_timeout = 600, .disconnect_timeout = 120, .state = state,
    .assigned = TRUE, .assigned_at = T0,
  };
  return in;
}

static void
test_policy_floating_disconnect (void)
{
  KdPolicyInput in = session (TRUE, KD_DESKTOP_DISCONNECTED);

  in.last_seen = T0 + 10 * SEC;
  in.disconnected_at = T0 + 10 * SEC;
  g_assert_cmpint (kd_policy_decide (&in, T0 + 129 * SEC), ==, KD_POLICY_NONE);
  g_assert_cmpint (kd_policy_decide (&in, T0 + 130 * SEC), ==, KD_POLICY_RELEASE);
  /* No disconnect timeout: the idle timeout still applies. */
  in.disconnect_timeout = 0;
  g_assert_cmpint (kd_policy_decide (&in, T0 + 130 * SEC), ==, KD_POLICY_NONE);
  g_assert_cmpint (kd_policy_decide (&in, T0 + 610 * SEC), ==, KD_POLICY_RELEASE);
}

static void
test_policy_connected_is_left_alone (void)
{
  KdPolicyInput in = session (TRUE, KD_DESKTOP_CONNECTED);

  in.connected_since = T0 + 5 * SEC;
  in.last_seen = T0 + 1000 * SEC;
  g_assert_cmpint (kd_policy_decide (&in, T0 + 1000 * SEC + 89 * SEC), ==, KD_POLICY_NONE);
  /* Heartbeats stopped: the client is gone. */
  g_assert_cmpint (kd_policy_decide (&in, T0 + 1000 * SEC + KD_HEARTBEAT_TIMEOUT_SEC * SEC), ==,
                   KD_POLICY_MARK_DISCONNECTED);
}

static void
test_policy_persistent_idle (void)
{
  KdPolicyInput in = session (FALSE, KD_DESKTOP_ASSIGNED);

  /* Never connected: idle since assignment. */
  g_assert_cmpint (kd_policy_decide (&in, T0 + 599 * SEC), ==, KD_POLICY_NONE);
  g_assert_cmpint (kd_policy_decide (&in, T0 + 600 * SEC), ==, KD_POLICY_SHUTDOWN);
  /* A disconnect timeout does not release a persistent desktop. */
  in.state = KD_DESKTOP_DISCONNECTED;
  in.disconnected_at = T0 + 500 * SEC;
  g_assert_cmpint (kd_policy_decide (&in, T0 + 1000 * SEC), ==, KD_POLICY_NONE);
  g_assert_cmpint (kd_policy_decide (&in, T0 + 1100 * SEC), ==, KD_POLICY_SHUTDOWN);
  /* Already stopped: nothing to do; idle timeout 0: never. */
  in.state = KD_DESKTOP_STOPPED;
  g_assert_cmpint (kd_policy_decide (&in, T0 + 99999 * SEC), ==, KD_POLICY_NONE);
  in.state = KD_DESKTOP_ASSIGNED;
  in.idle_timeout = 0;
  g_assert_cmpint (kd_policy_decide (&in, T0 + 99999 * SEC), ==, KD_POLICY_NONE);
}

static void
test_policy_unassigned (void)
{
  KdPolicyInput in = session (TRUE, KD_DESKTOP_RUNNING);

  in.assigned = FALSE;
  g_assert_cmpint (kd_policy_decide (&in, T0 + 99999 * SEC), ==, KD_POLICY_NONE);
  g_assert_cmpstr (kd_policy_action_to_string (KD_POLICY_RELEASE), ==, "release");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/state/transition-table", test_transition_table);
  g_test_add_func ("/state/transition-edges", test_transition_edges);
  g_test_add_func ("/policy/floating-disconnect-timeout", test_policy_floating_disconnect);
  g_test_add_func ("/policy/connected-left-alone", test_policy_connected_is_left_alone);
  g_test_add_func ("/policy/persistent-idle-shutdown", test_policy_persistent_idle);
  g_test_add_func ("/policy/unassigned", test_policy_unassigned);
  return g_test_run ();
}
