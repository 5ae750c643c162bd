/*
 * kd-broker-state.h: the desktop lifecycle as one state machine, and the
 * session policies (disconnect and idle timeouts) as pure functions of a
 * session record and a clock. No I/O: unit-tested with a test clock.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define KD_DESKTOP_ASSIGNED      "assigned"
#define KD_DESKTOP_CONNECTED     "connected"
#define KD_DESKTOP_DISCONNECTED  "disconnected"

/* TRUE if a desktop may go from @from to @to. Anything may become
 * "error"; @from NULL means a new desktop. */
gboolean kd_desktop_transition_allowed (const char *from,
                                        const char *to);
/* TRUE for the states of a desktop whose guest runs. */
gboolean kd_desktop_state_is_up (const char *state);
/* TRUE for the states a desktop can be handed out from. */
gboolean kd_desktop_state_is_idle (const char *state);

/* A client that sends no heartbeat for this long is no longer connected. */
#define KD_HEARTBEAT_TIMEOUT_SEC 90

typedef enum {
  KD_POLICY_NONE,
  KD_POLICY_MARK_DISCONNECTED,  /* heartbeats stopped */
  KD_POLICY_RELEASE,            /* floating: reset and back to the pool */
  KD_POLICY_SHUTDOWN,           /* persistent: shut down, stays his */
} KdPolicyAction;

typedef struct {
  gboolean    floating;
  gint64      idle_timeout;        /* seconds; 0 = never */
  gint64      disconnect_timeout;  /* seconds; 0 = never */
  const char *state;
  gboolean    assigned;
  gint64      assigned_at;         /* µs */
  gint64      connected_since;     /* µs; 0 = no client */
  gint64      last_seen;           /* µs; 0 = never */
  gint64      disconnected_at;     /* µs; 0 = never */
} KdPolicyInput;

KdPolicyAction kd_policy_decide (const KdPolicyInput *in,
                                 gint64               now);
const char    *kd_policy_action_to_string (KdPolicyAction action);

G_END_DECLS
