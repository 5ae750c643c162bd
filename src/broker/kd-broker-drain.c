/*
 * kd-broker-drain.c: emptying a host. Draining puts the host in
 * maintenance (no new desktops), marks it draining, and moves what can
 * move: unassigned pool desktops (warm spares, stopped ones) are deleted
 * and their pools rebuild them on other hosts; floating desktops in use
 * follow when their user releases them (the pool manager deletes instead
 * of resetting on a host in maintenance); persistent and stand-alone
 * desktops that run are migrated live with their overlay (kd-hv-migrate.c)
 * where both hosts allow it; those that cannot be (a host set to "cold",
 * a GPU, a simulated host, a migration that failed) are shut down once
 * their user is gone, and shut-off ones move cold: their overlay is copied
 * to a host the scheduler chooses among those holding the image, the same
 * definition is defined there, and the source is removed.
 *
 * A drain is not one pass: every reconciler pass goes on with the hosts
 * still draining (a user leaves, a shutdown completes), until maintenance
 * is turned off. Every decision is an event (again only when it changes)
 * and part of the first answer.
 */
#include "kd-broker-priv.h"
#include "kd-broker-state.h"

#include "common/kd-error.h"

#include <string.h>
#include <glib/gstdio.h>


/* ---- moving one desktop ---- */

typedef struct {
  KdBroker     *broker;
  GMainContext *context;
  gboolean      live;
  char         *actor;
  gint64        desktop_id;
  char         *desktop;
  char         *domain;
  char         *volume;
  char         *old_path;
  KdHvHost     *src;
  KdHvHost     *dst;
  gint64        src_id;
  gint64        dst_id;
  char        **hostdevs;        /* cold, with GPUs: the functions taken on the destination */
  char         *spool;           /* cold: where the disk passes through */
  char         *backing_path;    /* live: the image on the destination */
  char         *backing_format;
  char         *migrate_uri;
  char         *listen_address;
  int           last_quarter;    /* live: progress reported up to (poller thread) */
  gint64        started;
  gint64        copied_bytes;
  char         *new_path;
  char         *warning;         /* moved, but something is left behind */
  GError       *error;
} KdMoveJob;

static void
kd_move_job_free (KdMoveJob *j)
{
  g_main_context_unref (j->context);
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
  g_free (j->backing_path);
  g_free (j->backing_format);
  g_free (j->migrate_uri);
  g_free (j->listen_address);
  g_free (j->new_path);
  g_free (j->warning);
  g_strfreev (j->hostdevs);
  g_clear_error (&j->error);
  g_free (j);
}

static void kd_move_progress (gint64 done, gint64 total, gpointer data);

/* Worker thread: disk, then definition, then the source goes. Undone on
 * the destination when a step fails. */
static void
kd_move_cold_run (KdMoveJob *j, GCancellable *cancellable)
{
  g_autofree char *xml = kd_hv_domain_get_definition (j->src, j->domain, &j->error);
  g_autoptr(KdHvVolume) vol = NULL;
  g_autoptr(GError) local = NULL;
  g_autofree char *uuid = NULL;
  KdHvImageInfo info = { 0 };
  gboolean simulated = FALSE;

  if (xml == NULL || (vol = kd_hv_volume_lookup (j->src, j->volume, &j->error)) == NULL)
    return;
  info.format = g_strdup ("qcow2");
  info.virtual_size = vol->capacity;
  if (!kd_hv_volume_transfer (j->src, j->dst, j->volume, j->spool, &info, kd_move_progress, j,
                              cancellable, &j->new_path, &simulated, &j->error))
    goto out;
  j->copied_bytes = vol->allocation;
  if (vol->path != NULL && j->new_path != NULL && !g_str_equal (vol->path, j->new_path))
    {
      g_autoptr(GHashTable) paths = g_hash_table_new (g_str_hash, g_str_equal);
      char *moved;
      g_hash_table_insert (paths, vol->path, j->new_path);
      moved = kd_hv_domain_xml_move_disks (xml, paths, NULL, &j->error);
      if (moved == NULL)
        goto undo;
      g_free (xml);
      xml = moved;
    }
  if (j->hostdevs != NULL)
    {
      /* Its GPU on the new host, in place of the old one's. */
      char *with = kd_hv_domain_xml_set_pci_hostdevs (xml, (const char *const *) j->hostdevs, &j->error);
      if (with == NULL)
        goto undo;
      g_free (xml);
      xml = with;
    }
  if (!kd_hv_domain_define (j->dst, xml, &uuid, &j->error))
    goto undo;
  /* Defined on the destination: the source copy goes. A failure here
   * leaves an orphan the reconciler reports, never two live copies. */
  if (!kd_hv_domain_delete (j->src, j->domain, TRUE, &local) ||
      !kd_hv_volume_delete (j->src, j->volume, TRUE, &local))
    j->warning = g_strdup_printf ("the old copy on host '%s' remains: %s", kd_hv_host_get_name (j->src),
                                  local->message);
  goto out;
undo:
  kd_hv_volume_delete (j->dst, j->volume, TRUE, NULL);
  g_clear_pointer (&j->new_path, g_free);
out:
  kd_hv_image_info_clear (&info);
}

typedef struct {
  KdBroker *broker;
  gboolean  live;
  gint64    desktop_id;
  char     *desktop;
  char     *dst;
  int       percent;
  gboolean  report;
  gint64    done, total;
} KdMoveProgress;

static void
kd_move_progress_free (KdMoveProgress *p)
{
  g_free (p->desktop);
  g_free (p->dst);
  g_free (p);
}

/* Main loop: the busy note shows the percentage; an event every quarter. */
static gboolean
kd_move_progress_main (gpointer data)
{
  KdMoveProgress *p = data;
  KdBroker *b = p->broker;
  g_autofree char *what = NULL;
  g_autoptr(KdDesktopRow) row = NULL;

  if (!kd_broker_desktop_is_busy (b, p->desktop_id))
    return G_SOURCE_REMOVE;   /* already done */
  what = g_strdup_printf ("%s to host '%s' %d%%", p->live ? "migrate" : "move", p->dst, p->percent);
  kd_broker_busy_set (b, p->desktop_id, what);
  if (p->report && (row = kd_store_desktop_get (b->store, p->desktop_id, NULL)) != NULL)
    kd_broker_desktop_event (b, row, NULL, p->live ? "migrate-progress" : "move-progress",
                             row->state, row->state,
                             "desktop '%s' %s to host '%s': %d%% (%" G_GINT64_FORMAT
                             " of %" G_GINT64_FORMAT " MiB %s)", p->desktop,
                             p->live ? "migrating" : "moving", p->dst, p->percent, p->done >> 20,
                             p->total >> 20, p->live ? "of memory and disk" : "of its disk copied down and up");
  return G_SOURCE_REMOVE;
}

/* The migration's poller thread. */
static void
kd_move_progress (gint64 done, gint64 total, gpointer data)
{
  KdMoveJob *j = data;
  KdMoveProgress *p = g_new0 (KdMoveProgress, 1);

  p->broker = j->broker;
  p->live = j->live;
  p->desktop_id = j->desktop_id;
  p->desktop = g_strdup (j->desktop);
  p->dst = g_strdup (kd_hv_host_get_name (j->dst));
  p->percent = total > 0 ? (int) (done * 100 / total) : 0;
  p->done = done;
  p->total = total;
  p->report = p->percent / 25 > j->last_quarter;
  if (p->report)
    j->last_quarter = p->percent / 25;
  g_main_context_invoke_full (j->context, G_PRIORITY_DEFAULT, kd_move_progress_main, p,
                              (GDestroyNotify) kd_move_progress_free);
}

/* Worker thread: an empty overlay on the image at the destination, the
 * migration with the overlay copied into it, then the old overlay goes.
 * When the migration fails the domain still runs on the source, and the
 * destination's overlay is removed — unless the domain runs there after
 * all (a failure reported after the switch-over). */
static void
kd_move_live_run (KdMoveJob *j)
{
  g_autoptr(KdHvVolume) vol = kd_hv_volume_lookup (j->src, j->volume, &j->error);
  g_autoptr(GHashTable) paths = NULL;
  g_autoptr(GError) local = NULL;
  KdHvDomainState there;

  if (vol == NULL)
    return;
  if (!kd_hv_overlay_create (j->dst, j->volume, j->backing_path, j->backing_format, vol->capacity,
                             &j->new_path, &j->error))
    {
      g_prefix_error (&j->error, "cannot make its overlay on host '%s': ", kd_hv_host_get_name (j->dst));
      return;
    }
  paths = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (paths, vol->path, j->new_path);
  if (kd_hv_domain_migrate (j->src, j->dst, j->domain, paths, j->migrate_uri, j->listen_address,
                            kd_move_progress, j, &j->error))
    {
      j->copied_bytes = vol->allocation;
      if (!kd_hv_volume_delete (j->src, j->volume, TRUE, &local))
        j->warning = g_strdup_printf ("its old overlay on host '%s' remains: %s",
                                      kd_hv_host_get_name (j->src), local->message);
      return;
    }
  there = kd_hv_domain_get_state (j->dst, j->domain, NULL);
  if (there == KD_HV_DOMAIN_RUNNING || there == KD_HV_DOMAIN_PAUSED)
    {
      j->warning = g_strdup_printf ("libvirt reported \"%s\" but it runs on host '%s'; its old copy on "
                                    "host '%s' may remain", j->error->message,
                                    kd_hv_host_get_name (j->dst), kd_hv_host_get_name (j->src));
      g_clear_error (&j->error);
      return;
    }
  kd_hv_volume_delete (j->dst, j->volume, TRUE, NULL);
  g_clear_pointer (&j->new_path, g_free);
}

static void
kd_move_run (gpointer data, GCancellable *cancellable)
{
  KdMoveJob *j = data;

  j->started = g_get_monotonic_time ();
  if (j->live)
    kd_move_live_run (j);
  else
    kd_move_cold_run (j, cancellable);
}

static void
kd_move_done (KdBroker *b, gpointer data)
{
  KdMoveJob *j = data;
  g_autoptr(KdDesktopRow) row = kd_store_desktop_get (b->store, j->desktop_id, NULL);
  double seconds = (g_get_monotonic_time () - j->started) / (double) G_USEC_PER_SEC;

  kd_broker_busy_clear (b, j->desktop_id);
  if (row == NULL)
    return;
  if (j->error == NULL && j->new_path != NULL)
    {
      row->host_id = j->dst_id;
      g_free (row->overlay_path);
      row->overlay_path = g_strdup (j->new_path);
      kd_store_desktop_update (b->store, row, NULL);
      if (j->hostdevs != NULL)
        kd_broker_gpus_release_on_host (b, j->desktop_id, j->src_id);
      kd_broker_display_follow (b, row);   /* a D-Bus display is served on its new host */
      g_hash_table_remove (b->drain_notes, &j->desktop_id);
      g_autofree char *size = g_format_size (j->copied_bytes);
      kd_broker_desktop_event (b, row, j->actor, j->live ? "migrate" : "move", row->state, row->state,
                               "desktop '%s' %s from host '%s' to host '%s' in %.1f s (its overlay, "
                               "%s, copied)%s%s", row->name,
                               j->live ? "migrated live" : "moved", kd_hv_host_get_name (j->src),
                               kd_hv_host_get_name (j->dst), seconds, size,
                               j->warning ? "; " : "", j->warning ? j->warning : "");
    }
  else
    {
      if (j->hostdevs != NULL)
        kd_broker_gpus_release_on_host (b, j->desktop_id, j->dst_id);
      if (j->live)
        {
          gint64 *key = g_new (gint64, 1);
          *key = j->desktop_id;
          g_hash_table_add (b->no_live, key);
        }
      kd_broker_desktop_event (b, row, j->actor, j->live ? "migrate-failed" : "move-failed",
                               row->state, row->state,
                               "desktop '%s' could not be %s to host '%s': %s; it stays on host '%s'%s",
                               row->name, j->live ? "migrated" : "moved", kd_hv_host_get_name (j->dst),
                               j->error ? j->error->message : "unknown error", kd_hv_host_get_name (j->src),
                               j->live ? " and moves cold once its user is gone" : "");
    }
  kd_broker_pools_kick (b);
}

/* Where desktop @d can go: a host the scheduler accepts among those that
 * hold its image's current version. NULL with a reason otherwise. */
static KdBrokerHost *
kd_drain_destination (KdBroker *b, KdBrokerHost *src, KdDesktopRow *d, KdImageVolumeRow **out_vol,
                      char **out_reason)
{
  g_autoptr(KdImageRow) img = kd_store_image_get (b->store, d->image_id, NULL);
  g_autoptr(KdTemplateRow) tpl = kd_store_template_get (b->store, d->template_id, NULL);
  g_autoptr(GPtrArray) vols = NULL;
  g_autoptr(GArray) holders = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(KdImageVolumeRow) vol = NULL;
  g_auto(KdImageCopy) copy = { 0 };
  g_autoptr(GError) error = NULL;
  KdBrokerHost *dst;

  if (img == NULL || tpl == NULL)
    {
      *out_reason = g_strdup ("its image or template is gone");
      return NULL;
    }
  if (tpl->gpu_mdev != NULL && *tpl->gpu_mdev != '\0')
    {
      *out_reason = g_strdup ("it has a vGPU: moving those is not built yet");
      return NULL;
    }
  if (d->image_version != img->current_version)
    {
      *out_reason = g_strdup_printf ("its disk is built on version %" G_GINT64_FORMAT " of image '%s', "
                                     "not the current one", d->image_version, img->name);
      return NULL;
    }
  /* Only hosts that hold the image: the disk's backing file must be there. */
  vols = kd_store_image_volume_list (b->store, img->id, NULL);
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
      return NULL;
    }
  dst = kd_broker_place (b, img, tpl, NULL, holders, &vol, &copy, &error);
  if (dst == NULL || vol == NULL)
    {
      *out_reason = dst == NULL ? g_strdup_printf ("nowhere to go: %s", error->message)
                                : g_strdup_printf ("host '%s' has room but not image '%s': import it there first",
                                                   dst->row->name, img->name);
      return NULL;
    }
  *out_vol = g_steal_pointer (&vol);
  return dst;
}

static gboolean
kd_drain_has_gpu (KdBroker *b, const KdDesktopRow *d)
{
  g_autoptr(KdTemplateRow) tpl = kd_store_template_get (b->store, d->template_id, NULL);
  return tpl != NULL && tpl->gpus > 0;
}

/* Why desktop @d cannot migrate live from @src to @dst, or NULL. */
static char *
kd_drain_no_live_reason (KdBroker *b, KdBrokerHost *src, KdBrokerHost *dst, KdDesktopRow *d)
{
  if (kd_drain_has_gpu (b, d))
    return g_strdup ("it has a passthrough GPU, which does not migrate live");
  if (g_hash_table_contains (b->no_live, &d->id))
    return g_strdup ("its live migration failed");
  if (g_strcmp0 (src->row->migration, "cold") == 0)
    return g_strdup_printf ("host '%s' is set to cold migration", src->row->name);
  if (g_strcmp0 (dst->row->migration, "cold") == 0)
    return g_strdup_printf ("host '%s' is set to cold migration", dst->row->name);
  if (kd_hv_host_is_simulated (src->hv) || kd_hv_host_is_simulated (dst->hv))
    return g_strdup_printf ("host '%s' is simulated (test://): no live migration",
                            kd_hv_host_is_simulated (src->hv) ? src->row->name : dst->row->name);
  return NULL;
}

/* Starts moving desktop @d: live when @live, else cold (it is shut off).
 * A GPU desktop takes its GPUs on the destination first (the scheduler
 * chose a host with them free); FALSE with a reason when that fails. */
static gboolean
kd_drain_start_move (KdBroker *b, KdBrokerHost *src, KdBrokerHost *dst, KdImageVolumeRow *vol,
                     KdDesktopRow *d, gboolean live, const char *actor, char **out_reason)
{
  g_autoptr(KdImageRow) img = kd_store_image_get (b->store, d->image_id, NULL);
  g_autoptr(KdTemplateRow) tpl = kd_store_template_get (b->store, d->template_id, NULL);
  g_auto(GStrv) hostdevs = NULL;
  KdMoveJob *j;

  if (!live && tpl != NULL && tpl->gpus > 0)
    {
      g_autoptr(GError) error = NULL;
      hostdevs = kd_broker_gpus_take (b, dst->row->id, d->id, tpl->gpus, &error);
      if (hostdevs == NULL)
        {
          *out_reason = g_strdup_printf ("host '%s' cannot give it a GPU: %s", dst->row->name,
                                         error->message);
          return FALSE;
        }
    }
  j = g_new0 (KdMoveJob, 1);
  j->hostdevs = g_steal_pointer (&hostdevs);
  j->src_id = src->row->id;

  j->broker = b;
  j->context = g_main_context_ref_thread_default ();
  j->live = live;
  j->actor = g_strdup (actor);
  j->desktop_id = d->id;
  j->desktop = g_strdup (d->name);
  j->domain = g_strdup (d->domain);
  j->volume = g_strdup (d->overlay_volume);
  j->old_path = g_strdup (d->overlay_path);
  j->src = kd_hv_host_ref (src->hv);
  j->dst = kd_hv_host_ref (dst->hv);
  j->dst_id = dst->row->id;
  if (live)
    {
      g_autofree char *src_name = kd_hv_host_uri_hostname (src->hv);
      g_autofree char *dst_name = kd_hv_host_uri_hostname (dst->hv);

      j->backing_path = g_strdup (vol->path);
      j->backing_format = g_strdup (img ? img->format : "qcow2");
      /* Both hosts on this machine: QEMU to QEMU over loopback only.
       * Otherwise the destination by the name the broker reaches it by. */
      if (src_name == NULL && dst_name == NULL)
        {
          j->migrate_uri = g_strdup ("tcp://127.0.0.1");
          j->listen_address = g_strdup ("127.0.0.1");
        }
      else if (dst_name != NULL)
        j->migrate_uri = g_strdup_printf ("tcp://%s", dst_name);
      kd_broker_busy_set (b, d->id, "migrate");
    }
  else
    {
      j->spool = g_strdup_printf ("%s/uploads/move-%s", b->config->state_dir, d->overlay_volume);
      kd_broker_busy_set (b, d->id, "move");
    }
  kd_broker_run_host_job (b, src->row->name, kd_move_run, kd_move_done, j,
                          (GDestroyNotify) kd_move_job_free);
  return TRUE;
}

/* ---- what a drain does with each desktop ---- */

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
kd_drain_deleted (GObject *src, GAsyncResult *res, gpointer data)
{
  KdBroker *b = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = kd_broker_desktop_action_finish (b, res, &error);

  if (error != NULL)
    g_debug ("drain: %s", error->message);
  kd_broker_pools_kick (b);
}

static void
kd_drain_shut_down (GObject *src, GAsyncResult *res, gpointer data)
{
  KdBroker *b = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = kd_broker_desktop_action_finish (b, res, &error);

  if (error != NULL)
    g_debug ("drain: %s", error->message);
  kd_broker_drain_continue (b);   /* off now: it can move cold */
}

/* Its user is gone: no one holds or watches it. */
static gboolean
kd_drain_user_gone (KdBroker *b, KdDesktopRow *d)
{
  return (g_str_equal (d->state, KD_DESKTOP_RUNNING) || g_str_equal (d->state, KD_DESKTOP_DISCONNECTED)) &&
         kd_broker_viewer_count (b, d->id) == 0;
}

/* Decides and starts what happens to desktop @d of draining host @h.
 * Returns the action ("deleted", "migrating", "moving", "shutting-down",
 * "moves-on-release", "stays") and sets *@out_reason. */
static const char *
kd_drain_desktop (KdBroker *b, KdBrokerHost *h, KdDesktopRow *d, const char *actor, char **out_reason)
{
  g_autoptr(KdPoolRow) pool = d->pool_id ? kd_store_pool_get (b->store, d->pool_id, NULL) : NULL;
  const char *kind = pool != NULL ? "persistent" : "stand-alone";
  g_autoptr(KdImageVolumeRow) vol = NULL;
  g_autofree char *where = NULL, *no_live = NULL;
  KdBrokerHost *dst;

  if (kd_broker_desktop_is_busy (b, d->id))
    {
      *out_reason = g_strdup_printf ("an operation is under way (%s); it moves after",
                                     (const char *) g_hash_table_lookup (b->busy, &d->id));
      return "stays";
    }
  if (g_str_equal (d->state, KD_DESKTOP_UNKNOWN) || g_str_equal (d->state, KD_DESKTOP_ERROR))
    {
      *out_reason = g_strdup_printf ("it is %s; it moves once it is stopped or running again", d->state);
      return "stays";
    }
  if (pool != NULL && d->user_id == 0)
    {
      *out_reason = g_strdup_printf ("unassigned desktop of pool '%s': deleted, the pool rebuilds it "
                                     "on another host", pool->name);
      kd_broker_desktop_action_async (b, d->name, KD_DESKTOP_ACTION_DELETE, actor, kd_drain_deleted, b);
      return "deleted";
    }
  if (pool != NULL && g_str_equal (pool->mode, "floating"))
    {
      *out_reason = g_strdup ("in use by its user: rebuilt on another host when released");
      return "moves-on-release";
    }
  dst = kd_drain_destination (b, h, d, &vol, &where);
  if (dst == NULL)
    {
      *out_reason = g_strdup_printf ("%s and %s, but %s", kind, d->state, where);
      return "stays";
    }
  if (g_str_equal (d->state, KD_DESKTOP_STOPPED))
    {
      g_autofree char *why = NULL;
      if (!kd_drain_start_move (b, h, dst, vol, d, FALSE, actor, &why))
        {
          *out_reason = g_strdup_printf ("%s and stopped, but %s", kind, why);
          return "stays";
        }
      *out_reason = g_strdup_printf ("shut off: its disk is copied to host '%s' and it moves there%s",
                                     dst->row->name, kd_drain_has_gpu (b, d) ? " with a GPU of that host" : "");
      return "moving";
    }
  if (!kd_desktop_state_is_up (d->state))
    {
      *out_reason = g_strdup_printf ("%s and %s: it moves once it is stopped or running", kind, d->state);
      return "stays";
    }
  no_live = kd_drain_no_live_reason (b, h, dst, d);
  if (no_live == NULL)
    {
      g_autofree char *why = NULL;
      if (!kd_drain_start_move (b, h, dst, vol, d, TRUE, actor, &why))
        {
          *out_reason = g_strdup_printf ("%s and %s, but %s", kind, d->state, why);
          return "stays";
        }
      *out_reason = g_strdup_printf ("%s and %s: migrated live to host '%s' with its overlay", kind,
                                     d->state, dst->row->name);
      return "migrating";
    }
  if (kd_drain_user_gone (b, d))
    {
      *out_reason = g_strdup_printf ("%s and %s, no live migration (%s), its user is gone: shut down, "
                                     "then moved cold to host '%s'", kind, d->state, no_live, dst->row->name);
      kd_broker_desktop_action_async (b, d->name, KD_DESKTOP_ACTION_SHUTDOWN, actor, kd_drain_shut_down, b);
      return "shutting-down";
    }
  *out_reason = g_strdup_printf ("%s and %s, no live migration (%s): shut down and moved cold once its "
                                 "user is gone", kind, d->state, no_live);
  return "stays";
}

/* One pass over a draining host; every decision an event when it is not
 * the one recorded last for that desktop. */
static void
kd_drain_pass (KdBroker *b, KdBrokerHost *h, const char *actor, GPtrArray *steps)
{
  g_autoptr(GPtrArray) desktops = kd_store_desktop_list_by_host (b->store, h->row->id, NULL);

  for (guint i = 0; desktops != NULL && i < desktops->len; i++)
    {
      KdDesktopRow *d = desktops->pdata[i];
      char *reason = NULL;
      const char *action = kd_drain_desktop (b, h, d, actor, &reason);
      const char *last = g_hash_table_lookup (b->drain_notes, &d->id);

      if (g_strcmp0 (last, reason) != 0)
        {
          gint64 *key = g_new (gint64, 1);
          *key = d->id;
          kd_broker_desktop_event (b, d, actor, "drain", d->state, d->state, "desktop '%s' %s: %s",
                                   d->name, action, reason);
          g_hash_table_replace (b->drain_notes, key, g_strdup (reason));
        }
      if (steps != NULL)
        {
          KdDrainStep *step = g_new0 (KdDrainStep, 1);
          step->desktop = g_strdup (d->name);
          step->action = g_strdup (action);
          step->reason = reason;
          g_ptr_array_add (steps, step);
        }
      else
        g_free (reason);
    }
}

/**
 * kd_broker_drain_continue:
 * Goes on with every host still draining (from the reconciler's passes
 * and when a drain's shutdown completes).
 */
void
kd_broker_drain_continue (KdBroker *b)
{
  g_autoptr(GPtrArray) hosts = kd_broker_host_list (b);

  for (guint i = 0; i < hosts->len; i++)
    {
      KdBrokerHost *h = hosts->pdata[i];
      if (h->row->draining && h->row->maintenance && g_str_equal (h->state, "up"))
        kd_drain_pass (b, h, NULL, NULL);
    }
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
  if (!h->row->maintenance || !h->row->draining)
    {
      KdHostSettings on = { .has_maintenance = TRUE, .maintenance = TRUE, .memory_reserved = -1,
                            .draining = TRUE };
      if (kd_broker_host_set (b, name, &on, actor, error) == NULL)
        return NULL;
    }
  kd_broker_event (b, "host", name, actor, "drain", h->state, h->state,
                   "host '%s' is being drained: in maintenance, its desktops move where they can", name);
  /* Every desktop's decision is told again in this drain's events. */
  desktops = kd_store_desktop_list_by_host (b->store, h->row->id, error);
  if (desktops == NULL)
    return NULL;
  for (guint i = 0; i < desktops->len; i++)
    {
      KdDesktopRow *d = desktops->pdata[i];
      g_hash_table_remove (b->drain_notes, &d->id);
      g_hash_table_remove (b->no_live, &d->id);
    }
  kd_drain_pass (b, h, actor, steps);
  kd_broker_pools_kick (b);
  return g_steal_pointer (&steps);
}
