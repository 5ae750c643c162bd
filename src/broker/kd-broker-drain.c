/*
 * kd-broker-drain.c: emptying a host. Draining puts the host in
 * maintenance (no new desktops) and moves what can move now: unassigned
 * pool desktops (warm spares, stopped ones) are deleted and their pools
 * rebuild them on other hosts; floating desktops in use follow when their
 * user releases them (the pool manager deletes instead of resetting on a
 * host in maintenance). Persistent desktops stay: moving them (live
 * migration, or a cold copy of their disk) is not built yet, and each is
 * reported as staying with that reason. Every decision is an event and
 * part of the answer.
 */
#include "kd-broker-priv.h"

#include "common/kd-error.h"

void
kd_drain_step_free (KdDrainStep *step)
{
  if (step == NULL)
    return;
  g_free (step->desktop);
  g_free (step->action);
  g_free (step->reason);
  g_free (step);
}

static void
kd_drain_add (GPtrArray *steps, const char *desktop, const char *action, char *reason)
{
  KdDrainStep *step = g_new0 (KdDrainStep, 1);
  step->desktop = g_strdup (desktop);
  step->action = g_strdup (action);
  step->reason = reason;
  g_ptr_array_add (steps, step);
}

static void
kd_drain_deleted (GObject *src, GAsyncResult *res, gpointer data)
{
  KdBroker *b = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = kd_broker_desktop_action_finish (b, res, &error);

  if (error != NULL)
    g_debug ("drain: %s", error->message);
  kd_broker_pools_kick (b);
}

/**
 * kd_broker_host_drain:
 *
 * Returns: (transfer full) (element-type KdDrainStep): what happens to
 * each desktop of the host, or %NULL when there is no such host.
 */
GPtrArray *
kd_broker_host_drain (KdBroker *b, const char *name, const char *actor, GError **error)
{
  KdBrokerHost *h = kd_broker_host_lookup (b, name, error);
  g_autoptr(GPtrArray) desktops = NULL;
  g_autoptr(GPtrArray) steps = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_drain_step_free);

  if (h == NULL)
    return NULL;
  if (!h->row->maintenance)
    {
      KdHostSettings on = { .has_maintenance = TRUE, .maintenance = TRUE, .memory_reserved = -1 };
      if (kd_broker_host_set (b, name, &on, actor, error) == NULL)
        return NULL;
    }
  kd_broker_event (b, "host", name, actor, "drain", h->state, h->state,
                   "host '%s' is being drained: in maintenance, its desktops move where they can", name);
  desktops = kd_store_desktop_list_by_host (b->store, h->row->id, error);
  if (desktops == NULL)
    return NULL;
  for (guint i = 0; i < desktops->len; i++)
    {
      KdDesktopRow *d = desktops->pdata[i];
      g_autoptr(KdPoolRow) pool = d->pool_id ? kd_store_pool_get (b->store, d->pool_id, NULL) : NULL;
      gboolean floating = pool != NULL && g_str_equal (pool->mode, "floating");
      char *reason;

      if (kd_broker_desktop_is_busy (b, d->id))
        {
          reason = g_strdup_printf ("an operation is under way (%s); drain again once it is over",
                                    d->state);
          kd_drain_add (steps, d->name, "stays", reason);
        }
      else if (pool != NULL && d->user_id == 0 && !g_str_equal (d->state, KD_DESKTOP_UNKNOWN))
        {
          reason = g_strdup_printf ("unassigned desktop of pool '%s': deleted, the pool rebuilds it "
                                    "on another host", pool->name);
          kd_drain_add (steps, d->name, "deleted", reason);
          kd_broker_desktop_event (b, d, actor, "drain", d->state, KD_DESKTOP_DELETING,
                                   "desktop '%s': %s", d->name, reason);
          kd_broker_desktop_action_async (b, d->name, KD_DESKTOP_ACTION_DELETE, actor,
                                          kd_drain_deleted, b);
        }
      else if (floating)
        {
          reason = g_strdup_printf ("in use by its user: rebuilt on another host when released");
          kd_drain_add (steps, d->name, "moves-on-release", reason);
          kd_broker_desktop_event (b, d, actor, "drain", d->state, d->state, "desktop '%s': %s",
                                   d->name, reason);
        }
      else
        {
          reason = g_strdup_printf ("%s desktop: moving it to another host (live migration or a "
                                    "cold copy of its disk) is not built yet",
                                    pool != NULL ? "persistent" : "stand-alone");
          kd_drain_add (steps, d->name, "stays", reason);
          kd_broker_desktop_event (b, d, actor, "drain", d->state, d->state, "desktop '%s' stays: %s",
                                   d->name, reason);
        }
    }
  kd_broker_pools_kick (b);
  return g_steal_pointer (&steps);
}
