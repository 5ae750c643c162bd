/*
 * kd-broker-state.c: the desktop state machine and the session policies.
 * Pure functions: the broker asks, then acts.
 */
#include "kd-broker-state.h"
#include "kd-broker.h"

typedef struct {
  const char *from;
  const char *to[10];
} KdTransitions;

/* DESIGN.md: provisioning -> stopped -> starting -> running(ready) ->
 * assigned -> connected <-> disconnected -> (floating: resetting ->
 * stopped/ready | persistent: shutting-down -> stopped); any -> error. */
static const KdTransitions kd_transitions[] = {
  { KD_DESKTOP_PROVISIONING, { KD_DESKTOP_STOPPED, KD_DESKTOP_RUNNING, KD_DESKTOP_ASSIGNED, NULL } },
  { KD_DESKTOP_STOPPED, { KD_DESKTOP_STARTING, KD_DESKTOP_RUNNING, KD_DESKTOP_RESETTING,
                          KD_DESKTOP_DELETING, KD_DESKTOP_SHUTTING_DOWN, NULL } },
  { KD_DESKTOP_STARTING, { KD_DESKTOP_RUNNING, KD_DESKTOP_ASSIGNED, KD_DESKTOP_STOPPED, NULL } },
  { KD_DESKTOP_RUNNING, { KD_DESKTOP_ASSIGNED, KD_DESKTOP_CONNECTED, KD_DESKTOP_SHUTTING_DOWN,
                          KD_DESKTOP_RESETTING, KD_DESKTOP_DELETING, KD_DESKTOP_STOPPED,
                          KD_DESKTOP_STARTING, NULL } },
  { KD_DESKTOP_ASSIGNED, { KD_DESKTOP_CONNECTED, KD_DESKTOP_DISCONNECTED, KD_DESKTOP_SHUTTING_DOWN,
                           KD_DESKTOP_RESETTING, KD_DESKTOP_DELETING, KD_DESKTOP_STOPPED,
                           KD_DESKTOP_STARTING, NULL } },
  { KD_DESKTOP_CONNECTED, { KD_DESKTOP_DISCONNECTED, KD_DESKTOP_SHUTTING_DOWN, KD_DESKTOP_RESETTING,
                            KD_DESKTOP_DELETING, KD_DESKTOP_STOPPED, KD_DESKTOP_STARTING, NULL } },
  { KD_DESKTOP_DISCONNECTED, { KD_DESKTOP_CONNECTED, KD_DESKTOP_SHUTTING_DOWN, KD_DESKTOP_RESETTING,
                               KD_DESKTOP_DELETING, KD_DESKTOP_STOPPED, KD_DESKTOP_STARTING,
                               KD_DESKTOP_ASSIGNED, NULL } },
  { KD_DESKTOP_RESETTING, { KD_DESKTOP_RUNNING, KD_DESKTOP_STOPPED, KD_DESKTOP_ASSIGNED, NULL } },
  { KD_DESKTOP_SHUTTING_DOWN, { KD_DESKTOP_STOPPED, KD_DESKTOP_RUNNING, KD_DESKTOP_ASSIGNED,
                                KD_DESKTOP_CONNECTED, KD_DESKTOP_DISCONNECTED, NULL } },
  { KD_DESKTOP_DELETING, { NULL } },
  { KD_DESKTOP_ERROR, { KD_DESKTOP_STARTING, KD_DESKTOP_RESETTING, KD_DESKTOP_DELETING,
                        KD_DESKTOP_SHUTTING_DOWN, KD_DESKTOP_STOPPED, NULL } },
  /* Its host came back: the reconciler says what it really is. */
  { KD_DESKTOP_UNKNOWN, { KD_DESKTOP_STOPPED, KD_DESKTOP_RUNNING, KD_DESKTOP_ASSIGNED,
                          KD_DESKTOP_CONNECTED, KD_DESKTOP_DISCONNECTED, KD_DESKTOP_DELETING, NULL } },
};

/**
 * kd_desktop_transition_allowed:
 * Failed operations return a desktop to where it was (shutdown of a
 * running desktop that fails leaves it running): those back edges are
 * part of the table.
 */
gboolean
kd_desktop_transition_allowed (const char *from, const char *to)
{
  if (to == NULL)
    return FALSE;
  if (g_str_equal (to, KD_DESKTOP_ERROR))
    return TRUE;
  /* Any settled state may become unknown when its host goes down. */
  if (g_str_equal (to, KD_DESKTOP_UNKNOWN))
    return from != NULL && !g_str_equal (from, KD_DESKTOP_DELETING) &&
           !g_str_equal (from, KD_DESKTOP_PROVISIONING);
  if (from == NULL)
    return g_str_equal (to, KD_DESKTOP_PROVISIONING);
  if (g_str_equal (from, to))
    return TRUE;
  for (gsize i = 0; i < G_N_ELEMENTS (kd_transitions); i++)
    {
      if (!g_str_equal (kd_transitions[i].from, from))
        continue;
      for (gsize k = 0; kd_transitions[i].to[k]; k++)
        if (g_str_equal (kd_transitions[i].to[k], to))
          return TRUE;
      return FALSE;
    }
  return FALSE;
}

gboolean
kd_desktop_state_is_up (const char *state)
{
  return g_strcmp0 (state, KD_DESKTOP_RUNNING) == 0 ||
         g_strcmp0 (state, KD_DESKTOP_ASSIGNED) == 0 ||
         g_strcmp0 (state, KD_DESKTOP_CONNECTED) == 0 ||
         g_strcmp0 (state, KD_DESKTOP_DISCONNECTED) == 0;
}

gboolean
kd_desktop_state_is_idle (const char *state)
{
  return g_strcmp0 (state, KD_DESKTOP_RUNNING) == 0 ||
         g_strcmp0 (state, KD_DESKTOP_STOPPED) == 0;
}

/**
 * kd_policy_decide:
 * @now: µs, from the broker's clock (a test passes its own)
 *
 * Returns: what the broker should do with an assigned desktop now.
 */
KdPolicyAction
kd_policy_decide (const KdPolicyInput *in, gint64 now)
{
  gint64 quiet_since;

  if (!in->assigned || !kd_desktop_state_is_up (in->state))
    return KD_POLICY_NONE;

  if (in->connected_since > 0)
    {
      /* A client that stopped reporting is gone. */
      gint64 seen = MAX (in->last_seen, in->connected_since);
      if (now - seen >= (gint64) KD_HEARTBEAT_TIMEOUT_SEC * G_USEC_PER_SEC)
        return KD_POLICY_MARK_DISCONNECTED;
      return KD_POLICY_NONE;
    }

  if (in->floating && in->disconnect_timeout > 0 && in->disconnected_at > 0 &&
      now - in->disconnected_at >= in->disconnect_timeout * G_USEC_PER_SEC)
    return KD_POLICY_RELEASE;

  /* No client: idle since the last sign of one, or since assignment. */
  quiet_since = MAX (MAX (in->last_seen, in->disconnected_at), in->assigned_at);
  if (in->idle_timeout > 0 && now - quiet_since >= in->idle_timeout * G_USEC_PER_SEC)
    return in->floating ? KD_POLICY_RELEASE : KD_POLICY_SHUTDOWN;
  return KD_POLICY_NONE;
}

const char *
kd_policy_action_to_string (KdPolicyAction a)
{
  switch (a)
    {
    case KD_POLICY_MARK_DISCONNECTED: return "mark-disconnected";
    case KD_POLICY_RELEASE: return "release";
    case KD_POLICY_SHUTDOWN: return "shutdown";
    case KD_POLICY_NONE: default: return "none";
    }
}
