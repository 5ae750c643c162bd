/*
 * kd-broker-pools.c: pools of desktops, handing them out, taking them
 * back, and the pool manager.
 *
 * Allocation runs on the main loop and decides synchronously (a desktop
 * is marked as held before the request yields), so requests never share
 * a desktop; the store's conditional assignment is a second guard.
 *
 * The pool manager runs every policy_interval seconds: it resets released
 * floating desktops, keeps `warm` desktops booted and unassigned, removes
 * desktops beyond `size` and unassigned broken ones, and applies the
 * disconnect and idle timeouts (kd_policy_decide).
 */
#include "kd-broker-priv.h"
#include "kd-broker-state.h"

#include "common/kd-error.h"
#include "common/kd-name.h"
#include "common/kd-time.h"

#define KD_POOL_NAME_MAX    56         /* leaves room for "-NNNNNN" */
#define KD_POOL_SIZE_MAX    10000
#define KD_POOL_TIMEOUT_MAX 31536000   /* seconds: a year */

/* ------------------------------------------------------------------ */
/* validation and references */

static GArray *
kd_pool_resolve (KdBroker *b, GPtrArray *names, const char *kind, GError **error)
{
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint64));

  for (guint i = 0; names && i < names->len; i++)
    {
      const char *n = names->pdata[i];
      gint64 id = 0;

      if (g_str_equal (kind, "user"))
        {
          g_autoptr(KdUserRow) u = kd_store_user_get_by_name (b->store, n, NULL);
          id = u ? u->id : 0;
        }
      else if (g_str_equal (kind, "group"))
        {
          g_autoptr(KdGroupRow) g = kd_store_group_get_by_name (b->store, n, NULL);
          id = g ? g->id : 0;
        }
      else
        {
          KdBrokerHost *h = g_hash_table_lookup (b->hosts, n);
          id = h ? h->row->id : 0;
        }
      if (id == 0)
        {
          g_set_error (error, KD_ERROR, KD_ERROR_NOT_FOUND, "no %s named '%.80s'", kind, n);
          g_array_unref (ids);
          return NULL;
        }
      g_array_append_val (ids, id);
    }
  return ids;
}

static gboolean
kd_pool_check_numbers (gint64 size, gint64 warm, gint64 idle, gint64 disconnect, GError **error)
{
  if (!kd_range_check_int64 ("size", size, 1, KD_POOL_SIZE_MAX, error) ||
      !kd_range_check_int64 ("warm", warm, 0, size, error) ||
      !kd_range_check_int64 ("idle_timeout", idle, 0, KD_POOL_TIMEOUT_MAX, error) ||
      !kd_range_check_int64 ("disconnect_timeout", disconnect, 0, KD_POOL_TIMEOUT_MAX, error))
    return FALSE;
  return TRUE;
}

static gboolean
kd_pool_store_lists (KdBroker *b, gint64 pool_id, const KdPoolSpec *spec, GError **error)
{
  g_autoptr(GArray) users = NULL;
  g_autoptr(GArray) groups = NULL;
  g_autoptr(GArray) hosts = NULL;

  if ((spec->users && (users = kd_pool_resolve (b, spec->users, "user", error)) == NULL) ||
      (spec->groups && (groups = kd_pool_resolve (b, spec->groups, "group", error)) == NULL) ||
      (spec->hosts && (hosts = kd_pool_resolve (b, spec->hosts, "host", error)) == NULL))
    return FALSE;
  if ((users && !kd_store_pool_set_users (b->store, pool_id, users, error)) ||
      (groups && !kd_store_pool_set_groups (b->store, pool_id, groups, error)) ||
      (hosts && !kd_store_pool_set_hosts (b->store, pool_id, hosts, error)))
    return FALSE;
  return TRUE;
}

/**
 * kd_broker_pool_add:
 * Validates every field, stores the pool with its entitlements and host
 * list in one transaction; the pool manager then makes its warm desktops.
 */
static gboolean
kd_pool_check_placement (const char *placement, GError **error)
{
  if (placement == NULL || g_str_equal (placement, "spread") || g_str_equal (placement, "pack") ||
      g_str_equal (placement, "round-robin"))
    return TRUE;
  g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
               "placement '%.40s' is invalid: use spread (most free memory first), pack (fill a "
               "host before the next) or round-robin (the pool's hosts in turn)", placement);
  return FALSE;
}

static gboolean
kd_pool_check_console_mode (const char *mode, GError **error)
{
  if (mode == NULL || g_str_equal (mode, "takeover") || g_str_equal (mode, "share"))
    return TRUE;
  g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
               "console_mode '%.40s' is invalid: use takeover (a new console ends the old one) "
               "or share (up to %d viewers at once)", mode, KD_BROKER_VIEWERS_MAX);
  return FALSE;
}

KdPoolRow *
kd_broker_pool_add (KdBroker *b, const KdPoolSpec *spec, const char *actor, GError **error)
{
  g_autoptr(KdPoolRow) row = g_new0 (KdPoolRow, 1);
  g_autoptr(KdImageRow) img = NULL;
  g_autoptr(KdTemplateRow) tpl = NULL;
  const char *mode = spec->mode ? spec->mode : "floating";

  if (!kd_name_validate ("pool", spec->name, error))
    return NULL;
  if (strlen (spec->name) > KD_POOL_NAME_MAX)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "pool name '%s' is longer than %d characters",
                   spec->name, KD_POOL_NAME_MAX);
      return NULL;
    }
  if (!g_str_equal (mode, "floating") && !g_str_equal (mode, "persistent"))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "mode '%.40s' is invalid: use floating or persistent", mode);
      return NULL;
    }
  if (spec->image == NULL || spec->template_name == NULL)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "field '%s' is required",
                   spec->image == NULL ? "image" : "template");
      return NULL;
    }
  if ((img = kd_store_image_get_by_name (b->store, spec->image, error)) == NULL ||
      (tpl = kd_store_template_get_by_name (b->store, spec->template_name, error)) == NULL)
    return NULL;
  row->size = spec->has_size ? spec->size : 1;
  row->warm = spec->has_warm ? spec->warm : 0;
  row->idle_timeout = spec->has_idle_timeout ? spec->idle_timeout : 0;
  row->disconnect_timeout = spec->has_disconnect_timeout ? spec->disconnect_timeout : 0;
  if (!kd_pool_check_numbers (row->size, row->warm, row->idle_timeout, row->disconnect_timeout, error))
    return NULL;
  if (tpl->disk_gib * (G_GINT64_CONSTANT (1) << 30) < img->virtual_size)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "template '%s' has a %" G_GINT64_FORMAT " GiB disk, smaller than image '%s'",
                   tpl->name, tpl->disk_gib, img->name);
      return NULL;
    }
  row->name = g_strdup (spec->name);
  row->image_id = img->id;
  row->template_id = tpl->id;
  row->mode = g_strdup (mode);
  row->maintenance = spec->has_maintenance && spec->maintenance;
  if (!kd_pool_check_console_mode (spec->console_mode, error))
    return NULL;
  row->console_mode = g_strdup (spec->console_mode ? spec->console_mode : "takeover");
  if (!kd_pool_check_placement (spec->placement, error))
    return NULL;
  row->placement = g_strdup (spec->placement ? spec->placement : "spread");
  row->host_labels = kd_broker_labels_normalize ((const char *const *) spec->host_labels, error);
  if (row->host_labels == NULL)
    return NULL;

  if (!kd_store_begin (b->store, error))
    return NULL;
  if (!kd_store_pool_insert (b->store, row, error) ||
      !kd_pool_store_lists (b, row->id, spec, error) ||
      !kd_store_commit (b->store, error))
    {
      kd_store_rollback (b->store);
      return NULL;
    }
  kd_broker_event (b, "pool", row->name, actor, "create", NULL, NULL,
                   "pool '%s' added: %s, image '%s', template '%s', size %" G_GINT64_FORMAT
                   ", warm %" G_GINT64_FORMAT, row->name, row->mode, img->name, tpl->name,
                   row->size, row->warm);
  kd_broker_pools_kick (b);
  return g_steal_pointer (&row);
}

/**
 * kd_broker_pool_update:
 * Changes only what @spec says it sets; lists replace the old ones.
 */
KdPoolRow *
kd_broker_pool_update (KdBroker *b, const char *name, const KdPoolSpec *spec, const char *actor,
                       GError **error)
{
  g_autoptr(KdPoolRow) row = kd_store_pool_get_by_name (b->store, name, error);
  g_autoptr(GString) what = g_string_new (NULL);

  if (row == NULL)
    return NULL;
  if (spec->has_size)
    {
      row->size = spec->size;
      g_string_append_printf (what, " size %" G_GINT64_FORMAT, spec->size);
    }
  if (spec->has_warm)
    {
      row->warm = spec->warm;
      g_string_append_printf (what, " warm %" G_GINT64_FORMAT, spec->warm);
    }
  if (spec->has_idle_timeout)
    row->idle_timeout = spec->idle_timeout;
  if (spec->has_disconnect_timeout)
    row->disconnect_timeout = spec->disconnect_timeout;
  if (spec->has_maintenance)
    {
      row->maintenance = spec->maintenance;
      g_string_append_printf (what, " maintenance %s", spec->maintenance ? "on" : "off");
    }
  if (spec->console_mode != NULL)
    {
      if (!kd_pool_check_console_mode (spec->console_mode, error))
        return NULL;
      g_free (row->console_mode);
      row->console_mode = g_strdup (spec->console_mode);
      g_string_append_printf (what, " console %s", spec->console_mode);
    }
  if (spec->placement != NULL)
    {
      if (!kd_pool_check_placement (spec->placement, error))
        return NULL;
      g_free (row->placement);
      row->placement = g_strdup (spec->placement);
      g_string_append_printf (what, " placement %s", spec->placement);
    }
  if (spec->host_labels != NULL)
    {
      char *labels = kd_broker_labels_normalize ((const char *const *) spec->host_labels, error);
      if (labels == NULL)
        return NULL;
      g_free (row->host_labels);
      row->host_labels = labels;
      g_string_append_printf (what, " host labels '%s'", labels);
    }
  if (!kd_pool_check_numbers (row->size, row->warm, row->idle_timeout, row->disconnect_timeout, error))
    return NULL;
  if (!kd_store_begin (b->store, error))
    return NULL;
  if (!kd_store_pool_update (b->store, row, error) ||
      !kd_pool_store_lists (b, row->id, spec, error) ||
      !kd_store_commit (b->store, error))
    {
      kd_store_rollback (b->store);
      return NULL;
    }
  kd_broker_event (b, "pool", row->name, actor, "update", NULL, NULL, "pool '%s' changed:%s",
                   row->name, what->len ? what->str : " settings");
  kd_broker_pools_kick (b);
  return g_steal_pointer (&row);
}

/**
 * kd_broker_pool_counts:
 * How the pool's desktops stand, for the API.
 */
void
kd_broker_pool_counts (KdBroker *b, gint64 pool_id, KdPoolCounts *out)
{
  g_autoptr(GPtrArray) desktops = kd_store_desktop_list_by_pool (b->store, pool_id, NULL);

  memset (out, 0, sizeof *out);
  for (guint i = 0; desktops && i < desktops->len; i++)
    {
      KdDesktopRow *d = desktops->pdata[i];
      out->total++;
      if (g_str_equal (d->state, KD_DESKTOP_ERROR))
        out->error++;
      else if (g_str_equal (d->state, KD_DESKTOP_PROVISIONING))
        out->provisioning++;
      if (d->user_id)
        out->assigned++;
      if (d->user_id && d->connected_since > 0)
        out->connected++;
      if (!d->user_id && !d->needs_reset && g_str_equal (d->state, KD_DESKTOP_RUNNING) &&
          !kd_broker_desktop_is_busy (b, d->id))
        out->ready++;
    }
}

/* pool removal ------------------------------------------------------- */

typedef struct {
  KdBroker *broker;
  GTask    *task;
  gint64    pool_id;
  char     *name;
  char     *actor;
  guint     pending;
  GError   *error;
} KdPoolRemove;

static void
kd_pool_remove_finish_one (KdPoolRemove *r)
{
  g_autoptr(GError) error = NULL;

  if (--r->pending > 0)
    return;
  if (r->error)
    g_task_return_error (r->task, g_steal_pointer (&r->error));
  else if (!kd_store_pool_delete (r->broker->store, r->pool_id, &error))
    g_task_return_error (r->task, g_steal_pointer (&error));
  else
    {
      kd_broker_event (r->broker, "pool", r->name, r->actor, "delete", NULL, NULL,
                       "pool '%s' removed with its desktops", r->name);
      g_task_return_boolean (r->task, TRUE);
    }
  g_object_unref (r->task);
  g_free (r->name);
  g_free (r->actor);
  g_free (r);
}

static void
kd_pool_remove_desktop_done (GObject *src, GAsyncResult *res, gpointer data)
{
  KdPoolRemove *r = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = kd_broker_desktop_action_finish (r->broker, res, &error);

  if (error && r->error == NULL)
    r->error = g_steal_pointer (&error);
  kd_pool_remove_finish_one (r);
}

void
kd_broker_pool_remove_async (KdBroker *b, const char *name, const char *actor,
                             GAsyncReadyCallback cb, gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdPoolRow) pool = kd_store_pool_get_by_name (b->store, name, &error);
  g_autoptr(GPtrArray) desktops = NULL;
  KdPoolRemove *r;

  if (pool == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  desktops = kd_store_desktop_list_by_pool (b->store, pool->id, NULL);
  for (guint i = 0; desktops && i < desktops->len; i++)
    {
      KdDesktopRow *d = desktops->pdata[i];
      if (d->user_id)
        {
          g_autoptr(KdUserRow) u = kd_store_user_get (b->store, d->user_id, NULL);
          g_task_return_new_error (task, KD_ERROR, KD_ERROR_BUSY,
                                   "pool '%s' still has desktop '%s' assigned to '%s'; release it first",
                                   name, d->name, u ? u->name : "?");
          return;
        }
      if (kd_broker_desktop_is_busy (b, d->id))
        {
          g_task_return_new_error (task, KD_ERROR, KD_ERROR_BUSY,
                                   "desktop '%s' of pool '%s' is busy; try again in a moment",
                                   d->name, name);
          return;
        }
    }
  /* No new desktops while it goes. */
  pool->maintenance = TRUE;
  pool->warm = 0;
  kd_store_pool_update (b->store, pool, NULL);

  r = g_new0 (KdPoolRemove, 1);
  r->broker = b;
  r->task = g_steal_pointer (&task);
  r->pool_id = pool->id;
  r->name = g_strdup (name);
  r->actor = g_strdup (actor);
  r->pending = 1;
  for (guint i = 0; desktops && i < desktops->len; i++)
    {
      KdDesktopRow *d = desktops->pdata[i];
      r->pending++;
      kd_broker_desktop_action_async (b, d->name, KD_DESKTOP_ACTION_DELETE, actor,
                                      kd_pool_remove_desktop_done, r);
    }
  kd_pool_remove_finish_one (r);
}

gboolean
kd_broker_pool_remove_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_boolean (G_TASK (res), error);
}

/* ------------------------------------------------------------------ */
/* allocation */

static char *
kd_pool_next_desktop_name (KdBroker *b, const char *pool)
{
  for (guint n = 1; ; n++)
    {
      g_autofree char *name = g_strdup_printf ("%s-%u", pool, n);
      g_autoptr(KdDesktopRow) d = kd_store_desktop_get_by_name (b->store, name, NULL);
      if (d == NULL)
        return g_steal_pointer (&name);
    }
}

typedef struct {
  KdBroker *broker;
  GTask    *task;
  gint64    user_id;
} KdAllocation;

static void
kd_allocation_free (KdAllocation *a)
{
  g_clear_object (&a->task);
  g_free (a);
}

static void
kd_allocation_done (GObject *src, GAsyncResult *res, gpointer data)
{
  KdAllocation *a = data;
  g_autoptr(GError) error = NULL;
  KdDesktopRow *row;

  /* Both creation and start answer with the desktop row. */
  row = g_task_propagate_pointer (G_TASK (res), &error);
  if (row == NULL)
    g_task_return_error (a->task, g_steal_pointer (&error));
  else
    g_task_return_pointer (a->task, row, (GDestroyNotify) kd_desktop_row_free);
  kd_allocation_free (a);
}

/**
 * kd_broker_pool_get_desktop_async:
 * @user_id: who asks; @is_admin: admins may use every pool
 *
 * Answers the user's desktop in the pool: his own, else a warm one, else a
 * stopped one (started), else a new one while the pool is not full. The
 * result says whether this call assigned it (kd_broker_pool_get_desktop_finish).
 */
void
kd_broker_pool_get_desktop_async (KdBroker *b, const char *pool_name, gint64 user_id,
                                  gboolean is_admin, const char *actor,
                                  GAsyncReadyCallback cb, gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdPoolRow) pool = kd_store_pool_get_by_name (b->store, pool_name, NULL);
  g_autoptr(GPtrArray) desktops = NULL;
  g_autoptr(KdImageRow) img = NULL;
  g_autoptr(KdTemplateRow) tpl = NULL;
  g_autoptr(GArray) hosts = NULL;
  g_autofree char *name = NULL;
  KdDesktopRow *warm = NULL, *stopped = NULL;
  guint active = 0, resetting = 0;
  KdDesktopCreateSpec spec = { 0 };
  KdAllocation *a;

  if (pool == NULL || (!is_admin && !kd_store_pool_is_entitled (b->store, pool->id, user_id, NULL)))
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_NOT_FOUND, "no pool named '%s'", pool_name);
      return;
    }
  desktops = kd_store_desktop_list_by_pool (b->store, pool->id, &error);
  if (desktops == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  for (guint i = 0; i < desktops->len; i++)
    {
      KdDesktopRow *d = desktops->pdata[i];
      if (d->user_id == user_id && g_str_equal (d->state, KD_DESKTOP_ERROR))
        {
          /* A broken desktop is never handed out. A floating one is let
           * go (it is reset or replaced) and he gets another; a persistent
           * one holds his data, so an administrator must look at it. */
          if (g_str_equal (pool->mode, "persistent"))
            {
              g_task_return_new_error (task, KD_ERROR, KD_ERROR_BUSY,
                                       "your desktop '%s' in pool '%s' is broken (%s); "
                                       "an administrator must repair or reset it",
                                       d->name, pool->name, d->state_reason ? d->state_reason : "error");
              return;
            }
          kd_broker_desktop_event (b, d, actor, "release", d->state, d->state,
                                   "desktop '%s' is broken: released from its user and marked for reset",
                                   d->name);
          d->user_id = 0;
          d->assigned_at = 0;
          d->connected_since = 0;
          d->disconnected_at = 0;
          d->needs_reset = TRUE;
          kd_store_desktop_update (b->store, d, NULL);
          kd_broker_pools_kick (b);
          continue;
        }
      if (d->user_id == user_id && g_str_equal (d->state, KD_DESKTOP_UNKNOWN))
        {
          /* Still his: its host may come back with his session in it. */
          g_task_return_new_error (task, KD_ERROR, KD_ERROR_UNAVAILABLE,
                                   "your desktop '%s' in pool '%s' cannot be reached: %s; it is "
                                   "kept for you until its host is back", d->name, pool->name,
                                   d->state_reason ? d->state_reason : "its host is down");
          return;
        }
      if (d->user_id == user_id)
        {
          /* His own: answered as it is; a stopped one is started. */
          g_task_set_task_data (task, GINT_TO_POINTER (0), NULL);
          if (g_str_equal (d->state, KD_DESKTOP_STOPPED) && !kd_broker_desktop_is_busy (b, d->id))
            {
              a = g_new0 (KdAllocation, 1);
              a->broker = b;
              a->task = g_steal_pointer (&task);
              kd_broker_desktop_action_async (b, d->name, KD_DESKTOP_ACTION_START, actor,
                                              kd_allocation_done, a);
              return;
            }
          g_task_return_pointer (task, g_ptr_array_steal_index (desktops, i),
                                 (GDestroyNotify) kd_desktop_row_free);
          return;
        }
    }
  if (pool->maintenance)
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_BUSY,
                               "pool '%s' is in maintenance and gives out no desktop now", pool->name);
      return;
    }
  for (guint i = 0; i < desktops->len; i++)
    {
      KdDesktopRow *d = desktops->pdata[i];
      if (d->user_id || d->needs_reset || kd_broker_desktop_is_busy (b, d->id))
        {
          if (!d->user_id)
            resetting++;
          active++;
          continue;
        }
      if (g_str_equal (d->state, KD_DESKTOP_RUNNING) && warm == NULL)
        warm = d;
      else if (g_str_equal (d->state, KD_DESKTOP_STOPPED) && stopped == NULL)
        stopped = d;
      if (!g_str_equal (d->state, KD_DESKTOP_ERROR))
        active++;
    }
  g_task_set_task_data (task, GINT_TO_POINTER (1), NULL);
  if (warm || stopped)
    {
      KdDesktopRow *d = warm ? warm : stopped;
      gint64 now = kd_time_now ();
      if (!kd_store_desktop_assign (b->store, d->id, user_id, now, &error))
        {
          g_task_return_error (task, g_steal_pointer (&error));
          return;
        }
      d->user_id = user_id;
      d->assigned_at = now;
      d->connected_since = d->disconnected_at = d->last_seen = 0;
      if (warm)
        {
          kd_broker_desktop_set_state (b, d, KD_DESKTOP_ASSIGNED, NULL, actor, "assign");
          guint idx = 0;
          g_ptr_array_find (desktops, d, &idx);
          g_task_return_pointer (task, g_ptr_array_steal_index (desktops, idx),
                                 (GDestroyNotify) kd_desktop_row_free);
          return;
        }
      kd_broker_desktop_event (b, d, actor, "assign", d->state, d->state,
                               "desktop '%s' assigned; starting it", d->name);
      a = g_new0 (KdAllocation, 1);
      a->broker = b;
      a->task = g_steal_pointer (&task);
      kd_broker_desktop_action_async (b, d->name, KD_DESKTOP_ACTION_START, actor,
                                      kd_allocation_done, a);
      return;
    }
  if (desktops->len >= (guint) pool->size)
    {
      if (resetting > 0)
        g_task_return_new_error (task, KD_ERROR, KD_ERROR_BUSY,
                                 "pool '%s' is full (size %" G_GINT64_FORMAT "); %u of its desktops "
                                 "%s being reset or prepared: ask again in a moment",
                                 pool->name, pool->size, resetting, resetting == 1 ? "is" : "are");
      else
        g_task_return_new_error (task, KD_ERROR, KD_ERROR_BUSY,
                                 "pool '%s' is full: all %" G_GINT64_FORMAT " of its desktops are in use%s",
                                 pool->name, pool->size,
                                 active < desktops->len ? " or broken" : "");
      return;
    }
  img = kd_store_image_get (b->store, pool->image_id, NULL);
  tpl = kd_store_template_get (b->store, pool->template_id, NULL);
  hosts = kd_store_pool_get_hosts (b->store, pool->id, NULL);
  if (img == NULL || tpl == NULL)
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_FAILED,
                               "pool '%s' refers to a missing image or template", pool->name);
      return;
    }
  name = kd_pool_next_desktop_name (b, pool->name);
  spec.name = name;
  spec.image = img->name;
  spec.template_name = tpl->name;
  spec.allowed_hosts = hosts;
  spec.start = TRUE;
  spec.pool_id = pool->id;
  spec.user_id = user_id;
  a = g_new0 (KdAllocation, 1);
  a->broker = b;
  a->task = g_steal_pointer (&task);
  kd_broker_desktop_create_spec_async (b, &spec, actor, kd_allocation_done, a);
}

/**
 * kd_broker_pool_get_desktop_finish:
 * @out_assigned: (out): TRUE when this call gave the desktop to the user
 */
KdDesktopRow *
kd_broker_pool_get_desktop_finish (KdBroker *b, GAsyncResult *res, gboolean *out_assigned,
                                   GError **error)
{
  if (out_assigned)
    *out_assigned = GPOINTER_TO_INT (g_task_get_task_data (G_TASK (res))) != 0;
  return g_task_propagate_pointer (G_TASK (res), error);
}

/* ------------------------------------------------------------------ */
/* release and sessions */

/**
 * kd_broker_desktop_release_async:
 * The user is done. Floating: the desktop forgets him, is marked for reset
 * (persisted first, so a crash cannot hand it out dirty) and reset now.
 * Persistent: it stays his; only the session is closed.
 */
void
kd_broker_desktop_release_async (KdBroker *b, const char *name, const char *actor,
                                 GAsyncReadyCallback cb, gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = kd_store_desktop_get_by_name (b->store, name, &error);
  g_autoptr(KdPoolRow) pool = NULL;
  g_autoptr(KdUserRow) user = NULL;

  if (row == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  if (row->pool_id == 0 || (pool = kd_store_pool_get (b->store, row->pool_id, NULL)) == NULL)
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_BUSY,
                               "desktop '%s' is not in a pool: there is nothing to release", name);
      return;
    }
  if (row->user_id == 0)
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_BUSY, "desktop '%s' is not assigned", name);
      return;
    }
  if (kd_broker_desktop_is_busy (b, row->id))
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_BUSY,
                               "desktop '%s' is busy; release it again in a moment", name);
      return;
    }
  user = kd_store_user_get (b->store, row->user_id, NULL);
  if (g_str_equal (pool->mode, "persistent"))
    {
      if (row->connected_since > 0)
        {
          row->connected_since = 0;
          row->disconnected_at = kd_time_now ();
          kd_broker_desktop_set_state (b, row, KD_DESKTOP_DISCONNECTED, NULL, actor, "release");
        }
      kd_broker_desktop_event (b, row, actor, "release", row->state, row->state,
                               "desktop '%s' released by '%s'; it stays theirs (persistent pool)",
                               name, user ? user->name : "?");
      g_task_return_pointer (task, g_steal_pointer (&row), (GDestroyNotify) kd_desktop_row_free);
      return;
    }
  kd_broker_desktop_event (b, row, actor, "release", row->state, KD_DESKTOP_RESETTING,
                           "desktop '%s' released by '%s'; it is reset for the next user",
                           name, user ? user->name : "?");
  row->user_id = 0;
  row->assigned_at = 0;
  row->connected_since = 0;
  row->disconnected_at = 0;
  row->needs_reset = TRUE;
  if (!kd_store_desktop_update (b->store, row, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  /* Answer with the desktop as the reset begins; the reset runs on. On
   * a host in maintenance the pool manager deletes it instead (and
   * rebuilds it elsewhere). */
  {
    KdBrokerHost *dh = kd_broker_host_by_id (b, row->host_id);
    if (dh != NULL && dh->row->maintenance)
      kd_broker_pools_kick (b);
    else
      kd_broker_pools_reset_one (b, row->name, pool->warm > 0);
  }
  {
    KdDesktopRow *now = kd_store_desktop_get (b->store, row->id, NULL);
    g_task_return_pointer (task, now ? now : g_steal_pointer (&row), (GDestroyNotify) kd_desktop_row_free);
  }
}

KdDesktopRow *
kd_broker_desktop_release_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_pointer (G_TASK (res), error);
}

/**
 * kd_broker_desktop_heartbeat:
 * A client reports whether it is connected to the desktop.
 */
KdDesktopRow *
kd_broker_desktop_heartbeat (KdBroker *b, const char *name, gboolean connected,
                             const char *actor, GError **error)
{
  g_autoptr(KdDesktopRow) row = kd_store_desktop_get_by_name (b->store, name, error);
  gint64 now = kd_time_now ();

  if (row == NULL)
    return NULL;
  if (row->user_id == 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_BUSY, "desktop '%s' is not assigned to anyone", name);
      return NULL;
    }
  if (!kd_desktop_state_is_up (row->state))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_BUSY, "desktop '%s' is %s, not running", name, row->state);
      return NULL;
    }
  row->last_seen = now;
  if (connected)
    {
      if (row->connected_since == 0)
        row->connected_since = now;
      if (!g_str_equal (row->state, KD_DESKTOP_CONNECTED))
        {
          kd_broker_desktop_set_state (b, row, KD_DESKTOP_CONNECTED, NULL, actor, "connect");
          return g_steal_pointer (&row);
        }
    }
  else if (row->connected_since > 0 || !g_str_equal (row->state, KD_DESKTOP_DISCONNECTED))
    {
      row->connected_since = 0;
      row->disconnected_at = now;
      kd_broker_desktop_set_state (b, row, KD_DESKTOP_DISCONNECTED, NULL, actor, "disconnect");
      return g_steal_pointer (&row);
    }
  if (!kd_store_desktop_update (b->store, row, error))
    return NULL;
  return g_steal_pointer (&row);
}

void
kd_broker_user_forget (KdBroker *b, gint64 user_id, const char *actor)
{
  g_autoptr(GPtrArray) desktops = kd_store_desktop_list_by_user (b->store, user_id, NULL);

  for (guint i = 0; desktops && i < desktops->len; i++)
    {
      KdDesktopRow *d = desktops->pdata[i];
      kd_broker_desktop_event (b, d, actor, "release", d->state, d->state,
                               "desktop '%s' released: its user is removed; it will be reset",
                               d->name);
      d->user_id = 0;
      d->assigned_at = 0;
      d->connected_since = 0;
      d->disconnected_at = 0;
      d->needs_reset = TRUE;
      kd_store_desktop_update (b->store, d, NULL);
    }
  kd_broker_pools_kick (b);
}

/* ------------------------------------------------------------------ */
/* the pool manager */

static void
kd_pools_action_done (GObject *src, GAsyncResult *res, gpointer data)
{
  KdBroker *b = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = kd_broker_desktop_action_finish (b, res, &error);

  if (error)
    g_debug ("pool manager: %s", error->message);
}

static void
kd_pools_create_done (GObject *src, GAsyncResult *res, gpointer data)
{
  KdBroker *b = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = kd_broker_desktop_create_finish (b, res, &error);

  if (error)
    g_debug ("pool manager: %s", error->message);
}

void
kd_broker_pools_reset_one (KdBroker *b, const char *name, gboolean boot)
{
  kd_broker_desktop_action_full_async (b, name, KD_DESKTOP_ACTION_RESET, boot ? 1 : 0, NULL,
                                       kd_pools_action_done, b);
}

/* Records (as one event) that the pool cannot grow and why; NULL clears
 * it. The same reason is not recorded twice in a row. */
static void
kd_pool_placement_problem (KdBroker *b, KdPoolRow *pool, const char *message)
{
  const char *last = g_hash_table_lookup (b->pool_problems, &pool->id);

  if (message == NULL)
    {
      if (last != NULL)
        {
          kd_broker_event (b, "pool", pool->name, NULL, "placement", NULL, NULL,
                           "pool '%s' can place desktops again", pool->name);
          g_hash_table_remove (b->pool_problems, &pool->id);
        }
      return;
    }
  if (g_strcmp0 (last, message) == 0)
    return;
  {
    gint64 *key = g_new (gint64, 1);
    *key = pool->id;
    g_hash_table_insert (b->pool_problems, key, g_strdup (message));
  }
  kd_broker_event (b, "pool", pool->name, NULL, "placement", NULL, NULL,
                   "pool '%s' cannot start more desktops: %s", pool->name, message);
}

static void
kd_pool_manage (KdBroker *b, KdPoolRow *pool, gint64 now)
{
  g_autoptr(GPtrArray) desktops = kd_store_desktop_list_by_pool (b->store, pool->id, NULL);
  gboolean floating = g_str_equal (pool->mode, "floating");
  gint64 ready = 0, coming = 0, total, current_version = 0;
  GPtrArray *unassigned_stopped = g_ptr_array_new ();
  GPtrArray *unassigned_ready = g_ptr_array_new ();

  if (desktops == NULL)
    goto out;
  {
    g_autoptr(KdImageRow) img = kd_store_image_get (b->store, pool->image_id, NULL);
    current_version = img ? img->current_version : 0;
  }
  total = desktops->len;
  for (guint i = 0; i < desktops->len; i++)
    {
      KdDesktopRow *d = desktops->pdata[i];
      KdPolicyInput in;
      KdPolicyAction act;

      if (kd_broker_desktop_is_busy (b, d->id))
        {
          if (d->user_id == 0)
            coming++;
          continue;
        }
      if (d->user_id == 0 && !d->needs_reset && current_version > 0 &&
          d->image_version != current_version && !kd_broker_desktop_is_edit (b, d))
        {
          /* Pools follow the image's current version: a spare built on
           * another one is rebuilt (held desktops wait for release). */
          d->needs_reset = TRUE;
          kd_store_desktop_update (b->store, d, NULL);
        }
      if (d->needs_reset)
        {
          KdBrokerHost *dh = kd_broker_host_by_id (b, d->host_id);
          if (dh != NULL && dh->row->maintenance && floating)
            {
              /* Its host is being emptied: rebuilt elsewhere instead. */
              kd_broker_desktop_event (b, d, NULL, "drain", d->state, d->state,
                                       "desktop '%s' released on host '%s', which is in maintenance: "
                                       "deleted, the pool rebuilds it elsewhere", d->name, dh->row->name);
              kd_broker_desktop_action_async (b, d->name, KD_DESKTOP_ACTION_DELETE, NULL,
                                              kd_pools_action_done, b);
              total--;
              continue;
            }
          /* Released, not reset yet (or a reset was interrupted). */
          kd_broker_pools_reset_one (b, d->name, FALSE);
          coming++;
          continue;
        }
      if (d->user_id == 0)
        {
          if (g_str_equal (d->state, KD_DESKTOP_ERROR))
            {
              /* A broken spare is replaced, not repaired. */
              kd_broker_desktop_action_async (b, d->name, KD_DESKTOP_ACTION_DELETE, NULL,
                                              kd_pools_action_done, b);
              total--;
            }
          else if (g_str_equal (d->state, KD_DESKTOP_RUNNING))
            {
              ready++;
              g_ptr_array_add (unassigned_ready, d);
            }
          else if (g_str_equal (d->state, KD_DESKTOP_STOPPED))
            g_ptr_array_add (unassigned_stopped, d);
          continue;
        }
      in.floating = floating;
      in.idle_timeout = pool->idle_timeout;
      in.disconnect_timeout = pool->disconnect_timeout;
      in.state = d->state;
      in.assigned = TRUE;
      in.assigned_at = d->assigned_at;
      in.connected_since = d->connected_since;
      /* A viewer still attached is as good as a heartbeat. */
      in.last_seen = kd_broker_viewer_count (b, d->id) > 0 ? now : d->last_seen;
      in.disconnected_at = d->disconnected_at;
      act = kd_policy_decide (&in, now);
      switch (act)
        {
        case KD_POLICY_MARK_DISCONNECTED:
          d->connected_since = 0;
          d->disconnected_at = now;
          kd_broker_desktop_set_state (b, d, KD_DESKTOP_DISCONNECTED,
                                       "the client stopped sending heartbeats", NULL, "timeout");
          break;
        case KD_POLICY_RELEASE:
          kd_broker_desktop_release_async (b, d->name, NULL, NULL, NULL);
          break;
        case KD_POLICY_SHUTDOWN:
          kd_broker_desktop_event (b, d, NULL, "idle", d->state, KD_DESKTOP_SHUTTING_DOWN,
                                   "desktop '%s' idle for %" G_GINT64_FORMAT " s: shutting it down",
                                   d->name, pool->idle_timeout);
          kd_broker_desktop_action_async (b, d->name, KD_DESKTOP_ACTION_SHUTDOWN, NULL,
                                          kd_pools_action_done, b);
          break;
        case KD_POLICY_NONE:
          break;
        }
    }

  /* Too many desktops: remove spares, stopped ones first. */
  while (total > pool->size && (unassigned_stopped->len || unassigned_ready->len))
    {
      GPtrArray *from = unassigned_stopped->len ? unassigned_stopped : unassigned_ready;
      KdDesktopRow *d = from->pdata[from->len - 1];
      if (from == unassigned_ready)
        ready--;
      g_ptr_array_remove_index (from, from->len - 1);
      kd_broker_desktop_action_async (b, d->name, KD_DESKTOP_ACTION_DELETE, NULL,
                                      kd_pools_action_done, b);
      total--;
    }
  /* More booted spares than wanted: power the extra ones off. */
  while (ready > pool->warm && unassigned_ready->len)
    {
      KdDesktopRow *d = g_ptr_array_steal_index (unassigned_ready, unassigned_ready->len - 1);
      kd_broker_desktop_action_async (b, d->name, KD_DESKTOP_ACTION_POWEROFF, NULL,
                                      kd_pools_action_done, b);
      ready--;
    }
  if (pool->maintenance)
    goto out;
  /* Too few: boot stopped spares, then make new ones within size. */
  while (ready + coming < pool->warm && unassigned_stopped->len)
    {
      KdDesktopRow *d = g_ptr_array_steal_index (unassigned_stopped, unassigned_stopped->len - 1);
      kd_broker_desktop_action_async (b, d->name, KD_DESKTOP_ACTION_START, NULL,
                                      kd_pools_action_done, b);
      coming++;
    }
  while (ready + coming < pool->warm && total < pool->size)
    {
      g_autoptr(KdImageRow) img = kd_store_image_get (b->store, pool->image_id, NULL);
      g_autoptr(KdTemplateRow) tpl = kd_store_template_get (b->store, pool->template_id, NULL);
      g_autoptr(GArray) hosts = kd_store_pool_get_hosts (b->store, pool->id, NULL);
      g_autofree char *name = kd_pool_next_desktop_name (b, pool->name);
      KdDesktopCreateSpec spec = { 0 };

      g_autoptr(KdImageVolumeRow) vol = NULL;
      g_autoptr(GError) place_error = NULL;
      KdImageCopy copy = { 0 };

      if (img == NULL || tpl == NULL)
        break;
      /* Nowhere to put it: said once (an event when the reason changes),
       * not once per desktop and tick. */
      if (kd_broker_place (b, img, tpl, pool, hosts, &vol, &copy, &place_error) == NULL)
        {
          kd_pool_placement_problem (b, pool, place_error->message);
          break;
        }
      kd_image_copy_clear (&copy);
      kd_pool_placement_problem (b, pool, NULL);
      spec.name = name;
      spec.image = img->name;
      spec.template_name = tpl->name;
      spec.allowed_hosts = hosts;
      spec.start = TRUE;
      spec.pool_id = pool->id;
      kd_broker_desktop_create_spec_async (b, &spec, NULL, kd_pools_create_done, b);
      coming++;
      total++;
    }
out:
  g_ptr_array_unref (unassigned_stopped);
  g_ptr_array_unref (unassigned_ready);
}

static gboolean
kd_broker_pools_tick (gpointer data)
{
  KdBroker *b = data;
  g_autoptr(GPtrArray) pools = kd_store_pool_list (b->store, NULL);
  gint64 now = kd_time_now ();

  b->pools_kick_id = 0;
  for (guint i = 0; pools && i < pools->len; i++)
    kd_pool_manage (b, pools->pdata[i], now);
  return G_SOURCE_CONTINUE;
}

static gboolean
kd_broker_pools_kick_cb (gpointer data)
{
  kd_broker_pools_tick (data);
  return G_SOURCE_REMOVE;
}

/**
 * kd_broker_pools_kick:
 * Runs the pool manager soon (after a change of settings).
 */
void
kd_broker_pools_kick (KdBroker *b)
{
  if (b->started && b->pools_kick_id == 0)
    b->pools_kick_id = g_idle_add (kd_broker_pools_kick_cb, b);
}

void
kd_broker_pools_start (KdBroker *b)
{
  b->pools_timer = g_timeout_add_seconds ((guint) b->config->policy_interval,
                                          kd_broker_pools_tick, b);
}
