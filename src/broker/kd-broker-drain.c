/*
 * kd-broker-drain.c: emptying a host. Draining puts the host in
 * maintenance (no new desktops) and moves what can move now: unassigned
 * pool desktops (warm spares, stopped ones) are deleted and their pools
 * rebuild them on other hosts; floating desktops in use follow when their
 * user releases them (the pool manager deletes instead of resetting on a
 * host in maintenance); persistent and stand-alone desktops that are shut
 * off move cold: their disk (the overlay) is copied to a host the
 * scheduler chooses among those holding the image, the same definition is
 * defined there, and the source is removed. Running ones stay (live
 * migration is not built yet), as do desktops with a GPU. Every decision
 * is an event and part of the answer.
 */
#include "kd-broker-priv.h"

#include "common/kd-error.h"

#include <string.h>
#include <glib/gstdio.h>

/* ---- a cold move ---- */

typedef struct {
  KdBroker *broker;
  char     *actor;
  gint64    desktop_id;
  char     *desktop;
  char     *domain;
  char     *volume;
  char     *old_path;
  KdHvHost *src;
  KdHvHost *dst;
  gint64    dst_id;
  char     *spool;
  char     *new_path;
  GError   *error;
} KdMoveJob;

static void
kd_move_job_free (KdMoveJob *j)
{
  g_free (j->actor);
  g_free (j->desktop);
  g_free (j->domain);
  g_free (j->volume);
  g_free (j->old_path);
  g_clear_pointer (&j->src, kd_hv_host_unref);
  g_clear_pointer (&j->dst, kd_hv_host_unref);
  if (j->spool)
    g_unlink (j->spool);
  g_free (j->spool);
  g_free (j->new_path);
  g_clear_error (&j->error);
  g_free (j);
}

/* Worker thread: disk, then definition, then the source goes. Undone on
 * the destination when a step fails. */
static void
kd_move_run (gpointer data, GCancellable *cancellable)
{
  KdMoveJob *j = data;
  g_autofree char *xml = kd_hv_domain_get_definition (j->src, j->domain, &j->error);
  g_autoptr(KdHvVolume) vol = NULL;
  g_autofree char *uuid = NULL;
  KdHvImageInfo info = { 0 };
  gboolean simulated = FALSE, copied = FALSE;

  if (xml == NULL || (vol = kd_hv_volume_lookup (j->src, j->volume, &j->error)) == NULL)
    return;
  info.format = g_strdup ("qcow2");
  info.virtual_size = vol->capacity;
  if (!kd_hv_volume_transfer (j->src, j->dst, j->volume, j->spool, &info, cancellable, &j->new_path,
                              &simulated, &j->error))
    goto out;
  copied = TRUE;
  if (j->old_path != NULL && j->new_path != NULL && !g_str_equal (j->old_path, j->new_path))
    {
      g_autoptr(GString) s = g_string_new (xml);
      g_string_replace (s, j->old_path, j->new_path, 0);
      g_free (xml);
      xml = g_string_free (g_steal_pointer (&s), FALSE);
    }
  if (!kd_hv_domain_define (j->dst, xml, &uuid, &j->error))
    goto out;
  /* Defined on the destination: the source copy goes. A failure here
   * leaves an orphan the reconciler reports, never two live copies. */
  if (!kd_hv_domain_delete (j->src, j->domain, TRUE, &j->error) ||
      !kd_hv_volume_delete (j->src, j->volume, TRUE, &j->error))
    {
      g_prefix_error (&j->error, "moved, but the old copy on host '%s' remains: ",
                      kd_hv_host_get_name (j->src));
      copied = FALSE;   /* the new one is the desktop now */
      goto out;
    }
  copied = FALSE;
out:
  if (copied)
    kd_hv_volume_delete (j->dst, j->volume, TRUE, NULL);
  kd_hv_image_info_clear (&info);
}

static void
kd_move_done (KdBroker *b, gpointer data)
{
  KdMoveJob *j = data;
  g_autoptr(KdDesktopRow) row = kd_store_desktop_get (b->store, j->desktop_id, NULL);
  gboolean moved = j->new_path != NULL && (j->error == NULL ||
                                           g_str_has_prefix (j->error->message, "moved,"));

  kd_broker_busy_clear (b, j->desktop_id);
  if (row == NULL)
    return;
  if (moved)
    {
      row->host_id = j->dst_id;
      g_free (row->overlay_path);
      row->overlay_path = g_strdup (j->new_path);
      kd_store_desktop_update (b->store, row, NULL);
      kd_broker_desktop_event (b, row, j->actor, "move", row->state, row->state,
                               "desktop '%s' moved from host '%s' to host '%s' (its disk copied)%s%s",
                               row->name, kd_hv_host_get_name (j->src), kd_hv_host_get_name (j->dst),
                               j->error ? "; " : "", j->error ? j->error->message : "");
    }
  else
    kd_broker_desktop_event (b, row, j->actor, "move-failed", row->state, row->state,
                             "desktop '%s' could not be moved to host '%s': %s; it stays on host '%s'",
                             row->name, kd_hv_host_get_name (j->dst),
                             j->error ? j->error->message : "unknown error", kd_hv_host_get_name (j->src));
}

/* Starts the cold move of a shut-off desktop; FALSE with a reason when
 * there is nowhere to go. */
static gboolean
kd_drain_move (KdBroker *b, KdBrokerHost *src, KdDesktopRow *d, const char *actor, char **out_reason)
{
  g_autoptr(KdImageRow) img = kd_store_image_get (b->store, d->image_id, NULL);
  g_autoptr(KdTemplateRow) tpl = kd_store_template_get (b->store, d->template_id, NULL);
  g_autoptr(KdImageVolumeRow) vol = NULL;
  g_auto(KdImageCopy) copy = { 0 };
  g_autoptr(GError) error = NULL;
  KdBrokerHost *dst;
  KdMoveJob *j;

  if (img == NULL || tpl == NULL)
    {
      *out_reason = g_strdup ("its image or template is gone");
      return FALSE;
    }
  if (tpl->gpus > 0)
    {
      *out_reason = g_strdup ("it has a passthrough GPU: moving those is not built yet");
      return FALSE;
    }
  if (d->image_version != img->current_version)
    {
      *out_reason = g_strdup_printf ("its disk is built on version %" G_GINT64_FORMAT " of image '%s', "
                                     "not the current one", d->image_version, img->name);
      return FALSE;
    }
  /* Only hosts that hold the image: the disk's backing file must be there. */
  {
    g_autoptr(GPtrArray) vols = kd_store_image_volume_list (b->store, img->id, NULL);
    g_autoptr(GArray) holders = g_array_new (FALSE, FALSE, sizeof (gint64));
    for (guint i = 0; vols != NULL && i < vols->len; i++)
      {
        KdImageVolumeRow *v = vols->pdata[i];
        if (v->host_id != src->row->id && g_str_equal (v->state, "ready") &&
            (v->version == 0 || v->version == img->current_version))
          g_array_append_val (holders, v->host_id);
      }
    if (holders->len == 0)
      {
        *out_reason = g_strdup_printf ("no other host holds image '%s'", img->name);
        return FALSE;
      }
    dst = kd_broker_place (b, img, tpl, NULL, holders, &vol, &copy, &error);
  }
  if (dst == NULL || vol == NULL)
    {
      *out_reason = dst == NULL ? g_strdup_printf ("nowhere to go: %s", error->message)
                                : g_strdup_printf ("host '%s' has room but not image '%s': import it there first",
                                                   dst->row->name, img->name);
      return FALSE;
    }
  j = g_new0 (KdMoveJob, 1);
  j->broker = b;
  j->actor = g_strdup (actor);
  j->desktop_id = d->id;
  j->desktop = g_strdup (d->name);
  j->domain = g_strdup (d->domain);
  j->volume = g_strdup (d->overlay_volume);
  j->old_path = g_strdup (d->overlay_path);
  j->src = kd_hv_host_ref (src->hv);
  j->dst = kd_hv_host_ref (dst->hv);
  j->dst_id = dst->row->id;
  j->spool = g_strdup_printf ("%s/uploads/move-%s", b->config->state_dir, d->overlay_volume);
  kd_broker_busy_set (b, d->id, "move");
  *out_reason = g_strdup_printf ("shut off: its disk is copied to host '%s' and it moves there",
                                 dst->row->name);
  kd_broker_run_host_job (b, src->row->name, kd_move_run, kd_move_done, j,
                          (GDestroyNotify) kd_move_job_free);
  return TRUE;
}

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
      else if (g_str_equal (d->state, KD_DESKTOP_STOPPED) && kd_drain_move (b, h, d, actor, &reason))
        {
          kd_drain_add (steps, d->name, "moving", reason);
          kd_broker_desktop_event (b, d, actor, "drain", d->state, d->state, "desktop '%s': %s",
                                   d->name, reason);
        }
      else
        {
          if (!g_str_equal (d->state, KD_DESKTOP_STOPPED))
            reason = g_strdup_printf ("%s and %s: live migration is not built yet; shut it down "
                                      "and drain again to move it", pool != NULL ? "persistent"
                                      : "stand-alone", d->state);
          kd_drain_add (steps, d->name, "stays", reason);
          kd_broker_desktop_event (b, d, actor, "drain", d->state, d->state, "desktop '%s' stays: %s",
                                   d->name, reason);
        }
    }
  kd_broker_pools_kick (b);
  return g_steal_pointer (&steps);
}
