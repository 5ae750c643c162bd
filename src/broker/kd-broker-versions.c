/*
 * kd-broker-versions.c: the golden-image cycle.
 *
 * An admin starts an *edit session* on an image: the current version's
 * volume is copied (a full, writable copy) and booted in a desktop of its
 * own. *Publishing* turns the copy into the image's next version and makes
 * it current; *cancelling* throws it away. An older version can be made
 * current again (rollback). Pools follow the current version: desktops
 * nobody holds are rebuilt at once, held ones when they are released
 * (every reset rebuilds on the current version).
 */
#include "kd-broker-priv.h"
#include "kd-broker-state.h"

#include "common/kd-error.h"
#include "common/kd-name.h"
#include "common/kd-time.h"

/**
 * kd_broker_desktop_is_edit:
 * TRUE when @row is the desktop of an image's edit session: its disk is
 * the edit copy, which neither reset nor delete may throw away.
 */
gboolean
kd_broker_desktop_is_edit (KdBroker *b, const KdDesktopRow *row)
{
  g_autoptr(KdImageEditRow) edit = kd_store_image_edit_get (b->store, row->image_id, NULL);

  return edit != NULL && edit->desktop_id == row->id;
}

static char *
kd_version_volume_name (KdBroker *b, const KdImageRow *img, gint64 version)
{
  return g_strdup_printf ("%s-image-%s-v%" G_GINT64_FORMAT ".%s", b->config->domain_prefix,
                          img->name, version, g_str_equal (img->format, "qcow2") ? "qcow2" : "img");
}

static char *
kd_edit_desktop_name (const KdImageRow *img)
{
  g_autofree char *name = g_strdup_printf ("edit-%s", img->name);

  if (strlen (name) > KD_NAME_MAX_LEN)
    name[KD_NAME_MAX_LEN] = '\0';
  while (name[strlen (name) - 1] == '-')
    name[strlen (name) - 1] = '\0';
  return g_steal_pointer (&name);
}

/* Pools follow the current version: rebuild desktops nobody holds. */
static void
kd_broker_versions_follow (KdBroker *b, KdImageRow *img, const char *actor)
{
  g_autoptr(GPtrArray) desktops = kd_store_desktop_list (b->store, NULL);
  guint rebuilt = 0, later = 0;

  for (guint i = 0; desktops && i < desktops->len; i++)
    {
      KdDesktopRow *d = desktops->pdata[i];
      if (d->image_id != img->id || d->pool_id == 0 || d->image_version == img->current_version)
        continue;
      if (d->user_id != 0 || kd_broker_desktop_is_busy (b, d->id))
        {
          later++;
          continue;
        }
      d->needs_reset = TRUE;
      kd_store_desktop_update (b->store, d, NULL);
      rebuilt++;
    }
  if (rebuilt || later)
    kd_broker_event (b, "image", img->name, actor, "follow", NULL, NULL,
                     "image '%s' version %" G_GINT64_FORMAT ": %u pool desktop(s) rebuilt now, "
                     "%u when their users release them", img->name, img->current_version,
                     rebuilt, later);
  kd_broker_pools_kick (b);
}

/* ------------------------------------------------------------------ */
/* start an edit session */

typedef struct {
  KdBroker       *broker;
  GTask          *task;
  char           *actor;
  KdHvHost       *hv;
  char           *host;
  char           *template_name;
  KdImageRow     *img;
  KdImageEditRow *edit;
  char           *source;       /* current version's volume */
  char           *path;         /* the copy's path */
  GError         *error;
} KdEditJob;

static void
kd_edit_job_free (KdEditJob *j)
{
  g_clear_object (&j->task);
  g_free (j->actor);
  g_clear_pointer (&j->hv, kd_hv_host_unref);
  g_free (j->host);
  g_free (j->template_name);
  kd_image_row_free (j->img);
  kd_image_edit_row_free (j->edit);
  g_free (j->source);
  g_free (j->path);
  g_clear_error (&j->error);
  g_free (j);
}

static void
kd_edit_copy_run (gpointer data, GCancellable *c)
{
  KdEditJob *j = data;

  kd_hv_volume_clone (j->hv, j->source, j->edit->volume, j->img->format,
                      j->img->virtual_size, &j->path, &j->error);
}

static void
kd_edit_discard_run (gpointer data, GCancellable *c)
{
  KdEditJob *j = data;
  kd_hv_volume_delete (j->hv, j->edit->volume, TRUE, NULL);
}

static void
kd_edit_discard_done (KdBroker *b, gpointer data)
{
}

static void
kd_edit_desktop_made (GObject *src, GAsyncResult *res, gpointer data)
{
  KdEditJob *j = data;
  KdBroker *b = j->broker;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) desk = kd_broker_desktop_create_finish (b, res, &error);

  if (desk == NULL)
    {
      /* Undo: no edit session, and its copy goes. */
      kd_store_image_edit_delete (b->store, j->img->id, NULL);
      g_task_return_error (j->task, g_steal_pointer (&error));
      kd_broker_run_job (b, kd_edit_discard_run, kd_edit_discard_done, j,
                         (GDestroyNotify) kd_edit_job_free);
      return;
    }
  kd_broker_event (b, "image", j->img->name, j->actor, "edit", NULL, NULL,
                   "editing image '%s': version %" G_GINT64_FORMAT " is being prepared in desktop '%s'",
                   j->img->name, j->edit->version, desk->name);
  g_task_return_pointer (j->task, g_steal_pointer (&desk), (GDestroyNotify) kd_desktop_row_free);
  kd_edit_job_free (j);
}

static void
kd_edit_copied (KdBroker *b, gpointer data)
{
  KdEditJob *j = data;
  g_autoptr(GError) error = NULL;
  g_autofree char *desk_name = NULL;
  KdDesktopCreateSpec spec = { 0 };

  if (j->error)
    {
      kd_store_image_edit_delete (b->store, j->img->id, NULL);
      g_task_return_error (j->task, g_steal_pointer (&j->error));
      kd_edit_job_free (j);
      return;
    }
  g_free (j->edit->path);
  j->edit->path = g_strdup (j->path);
  kd_store_image_edit_update (b->store, j->edit, NULL);

  desk_name = kd_edit_desktop_name (j->img);
  spec.name = desk_name;
  spec.image = j->img->name;
  spec.template_name = j->template_name;
  spec.host = j->host;
  spec.start = TRUE;
  spec.disk_volume = j->edit->volume;
  spec.disk_path = j->path;
  /* The edit row must point at the desktop before anything could delete
   * it with its disk: done in kd_broker_edit_link() below. */
  kd_broker_desktop_create_spec_async (b, &spec, j->actor, kd_edit_desktop_made, j);
  {
    g_autoptr(KdDesktopRow) d = kd_store_desktop_get_by_name (b->store, desk_name, NULL);
    if (d != NULL)
      {
        j->edit->desktop_id = d->id;
        kd_store_image_edit_update (b->store, j->edit, NULL);
      }
  }
}

/**
 * kd_broker_image_edit_async:
 * @host: (nullable): where to edit; %NULL: a host holding the current version
 * @template_name: the machine shape of the editing desktop
 */
void
kd_broker_image_edit_async (KdBroker *b, const char *image, const char *host,
                            const char *template_name, const char *actor,
                            GAsyncReadyCallback cb, gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageRow) img = kd_store_image_get_by_name (b->store, image, &error);
  g_autoptr(KdTemplateRow) tpl = NULL;
  g_autoptr(KdImageEditRow) existing = NULL;
  g_autoptr(GPtrArray) versions = NULL;
  g_autoptr(GPtrArray) vols = NULL;
  KdImageVolumeRow *vol = NULL;
  KdBrokerHost *h = NULL;
  KdEditJob *j;
  gint64 next = 1;

  if (img == NULL)
    goto fail;
  existing = kd_store_image_edit_get (b->store, img->id, NULL);
  if (existing)
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_BUSY,
                   "image '%s' is already being edited (version %" G_GINT64_FORMAT "); publish or "
                   "cancel that edit first", image, existing->version);
      goto fail;
    }
  if (template_name == NULL)
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_INVALID, "field 'template' is required");
      goto fail;
    }
  tpl = kd_store_template_get_by_name (b->store, template_name, &error);
  if (tpl == NULL)
    goto fail;
  vols = kd_store_image_volume_list (b->store, img->id, &error);
  if (vols == NULL)
    goto fail;
  for (guint i = 0; i < vols->len; i++)
    {
      KdImageVolumeRow *v = vols->pdata[i];
      KdBrokerHost *vh = kd_broker_host_by_id (b, v->host_id);
      if (v->version != img->current_version || !g_str_equal (v->state, "ready") || vh == NULL)
        continue;
      if (host != NULL && !g_str_equal (vh->row->name, host))
        continue;
      if (!kd_broker_host_is_up (vh))
        continue;
      vol = v;
      h = vh;
      break;
    }
  if (vol == NULL)
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_UNAVAILABLE,
                   "version %" G_GINT64_FORMAT " of image '%s' is not ready on %s%s%s host that is up",
                   img->current_version, image, host ? "host '" : "any", host ? host : "",
                   host ? "', or it is not a" : "");
      goto fail;
    }
  versions = kd_store_image_version_list (b->store, img->id, &error);
  if (versions == NULL)
    goto fail;
  for (guint i = 0; i < versions->len; i++)
    next = MAX (next, ((KdImageVersionRow *) versions->pdata[i])->version + 1);

  j = g_new0 (KdEditJob, 1);
  j->broker = b;
  j->task = g_steal_pointer (&task);
  j->actor = g_strdup (actor);
  j->hv = kd_hv_host_ref (h->hv);
  j->host = g_strdup (h->row->name);
  j->template_name = g_strdup (template_name);
  j->source = g_strdup (vol->volume);
  j->edit = g_new0 (KdImageEditRow, 1);
  j->edit->image_id = img->id;
  j->edit->version = next;
  j->edit->host_id = h->row->id;
  j->edit->volume = kd_version_volume_name (b, img, next);
  j->edit->actor = g_strdup (actor);
  if (!kd_store_image_edit_insert (b->store, j->edit, &error))
    {
      g_task_return_error (j->task, g_steal_pointer (&error));
      kd_edit_job_free (j);
      return;
    }
  j->img = g_steal_pointer (&img);
  kd_broker_run_host_job (b, j->host, kd_edit_copy_run, kd_edit_copied, j, NULL);
  return;

fail:
  g_task_return_error (task, g_steal_pointer (&error));
}

KdDesktopRow *
kd_broker_image_edit_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_pointer (G_TASK (res), error);
}

/* ------------------------------------------------------------------ */
/* publish and cancel */

typedef struct {
  KdBroker       *broker;
  GTask          *task;
  char           *actor;
  char           *note;
  gboolean        publish;
  KdImageRow     *img;
  KdImageEditRow *edit;
  KdHvHost       *hv;
  char           *desktop;      /* the editing desktop's name, or NULL */
  char           *domain;
  gint64          shutdown_timeout;
  KdHvVolume     *info;         /* publish: the copy as libvirt sees it */
  GError         *error;
} KdPublishJob;

static void
kd_publish_job_free (KdPublishJob *j)
{
  g_clear_object (&j->task);
  g_free (j->actor);
  g_free (j->note);
  kd_image_row_free (j->img);
  kd_image_edit_row_free (j->edit);
  g_clear_pointer (&j->hv, kd_hv_host_unref);
  g_free (j->desktop);
  g_free (j->domain);
  kd_hv_volume_free (j->info);
  g_clear_error (&j->error);
  g_free (j);
}

static void
kd_publish_run (gpointer data, GCancellable *c)
{
  KdPublishJob *j = data;
  gboolean forced = FALSE;

  /* The guest gets its chance to write everything down. */
  if (j->domain != NULL &&
      (!kd_hv_domain_shutdown (j->hv, j->domain, j->shutdown_timeout, &forced, c, &j->error) ||
       !kd_hv_domain_delete (j->hv, j->domain, TRUE, &j->error)))
    return;
  if (j->publish)
    j->info = kd_hv_volume_lookup (j->hv, j->edit->volume, &j->error);
  else
    kd_hv_volume_delete (j->hv, j->edit->volume, TRUE, &j->error);
}

static void
kd_publish_done (KdBroker *b, gpointer data)
{
  KdPublishJob *j = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) desk = NULL;

  if (j->desktop)
    {
      desk = kd_store_desktop_get_by_name (b->store, j->desktop, NULL);
      if (desk)
        kd_broker_busy_clear (b, desk->id);
    }
  if (j->error)
    {
      g_task_return_error (j->task, g_steal_pointer (&j->error));
      return;
    }
  if (!kd_store_begin (b->store, &error))
    goto fail;
  if (desk && !kd_store_desktop_delete (b->store, desk->id, &error))
    goto rollback;
  if (j->publish)
    {
      KdImageVersionRow v = { 0 };
      KdImageVolumeRow vol = { 0 };

      v.image_id = j->img->id;
      v.version = j->edit->version;
      v.format = j->img->format;
      v.virtual_size = j->info && j->info->capacity > 0 ? j->info->capacity : j->img->virtual_size;
      v.file_size = j->info ? j->info->allocation : 0;
      v.note = j->note;
      v.actor = j->actor;
      vol.image_id = j->img->id;
      vol.host_id = j->edit->host_id;
      vol.volume = j->edit->volume;
      vol.path = j->edit->path;
      vol.state = (char *) "ready";
      vol.version = j->edit->version;
      vol.simulated = kd_hv_host_is_simulated (j->hv);
      j->img->current_version = j->edit->version;
      j->img->virtual_size = v.virtual_size;
      j->img->file_size = v.file_size;
      if (!kd_store_image_version_insert (b->store, &v, &error) ||
          !kd_store_image_volume_insert (b->store, &vol, &error) ||
          !kd_store_image_update (b->store, j->img, &error))
        goto rollback;
    }
  if (!kd_store_image_edit_delete (b->store, j->img->id, &error) ||
      !kd_store_commit (b->store, &error))
    goto rollback;

  if (j->publish)
    {
      kd_broker_event (b, "image", j->img->name, j->actor, "publish", NULL, NULL,
                       "image '%s' version %" G_GINT64_FORMAT " published and made current%s%s",
                       j->img->name, j->edit->version, j->note ? ": " : "", j->note ? j->note : "");
      kd_broker_versions_follow (b, j->img, j->actor);
    }
  else
    kd_broker_event (b, "image", j->img->name, j->actor, "edit-cancel", NULL, NULL,
                     "edit of image '%s' cancelled; its copy was deleted", j->img->name);
  g_task_return_pointer (j->task, g_steal_pointer (&j->img), (GDestroyNotify) kd_image_row_free);
  return;

rollback:
  kd_store_rollback (b->store);
fail:
  g_task_return_error (j->task, g_steal_pointer (&error));
}

/**
 * kd_broker_image_publish_async:
 * @publish: TRUE publishes the edit as the next version; FALSE cancels it
 */
void
kd_broker_image_publish_async (KdBroker *b, const char *image, gboolean publish,
                               const char *note, const char *actor,
                               GAsyncReadyCallback cb, gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageRow) img = kd_store_image_get_by_name (b->store, image, &error);
  g_autoptr(KdImageEditRow) edit = NULL;
  g_autoptr(KdDesktopRow) desk = NULL;
  KdBrokerHost *h;
  KdPublishJob *j;

  if (img == NULL)
    goto fail;
  edit = kd_store_image_edit_get (b->store, img->id, NULL);
  if (edit == NULL)
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_BUSY, "image '%s' is not being edited", image);
      goto fail;
    }
  if (edit->path == NULL)
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_BUSY,
                   "the edit copy of image '%s' is still being made; try again in a moment", image);
      goto fail;
    }
  h = kd_broker_host_by_id (b, edit->host_id);
  if (h == NULL || !kd_broker_host_is_up (h))
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_UNAVAILABLE, "the host of the edit of image '%s' is %s",
                   image, h ? h->state : "gone");
      goto fail;
    }
  if (edit->desktop_id)
    {
      desk = kd_store_desktop_get (b->store, edit->desktop_id, NULL);
      if (desk && kd_broker_desktop_is_busy (b, desk->id))
        {
          g_set_error (&error, KD_ERROR, KD_ERROR_BUSY, "desktop '%s' is busy; try again in a moment",
                       desk->name);
          goto fail;
        }
    }
  j = g_new0 (KdPublishJob, 1);
  j->broker = b;
  j->task = g_steal_pointer (&task);
  j->actor = g_strdup (actor);
  j->note = g_strdup (note);
  j->publish = publish;
  j->hv = kd_hv_host_ref (h->hv);
  j->shutdown_timeout = b->config->shutdown_timeout;
  if (desk)
    {
      j->desktop = g_strdup (desk->name);
      j->domain = g_strdup (desk->domain);
      kd_broker_busy_set (b, desk->id, publish ? "publish" : "cancel");
      kd_broker_desktop_set_state (b, desk, KD_DESKTOP_SHUTTING_DOWN, NULL, actor,
                                   publish ? "publish" : "edit-cancel");
    }
  j->img = g_steal_pointer (&img);
  j->edit = g_steal_pointer (&edit);
  kd_broker_run_host_job (b, h->row->name, kd_publish_run, kd_publish_done, j,
                          (GDestroyNotify) kd_publish_job_free);
  return;

fail:
  g_task_return_error (task, g_steal_pointer (&error));
}

KdImageRow *
kd_broker_image_publish_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_pointer (G_TASK (res), error);
}

/**
 * kd_broker_image_rollback:
 * Makes @version current again; pools follow it.
 */
KdImageRow *
kd_broker_image_rollback (KdBroker *b, const char *image, gint64 version, const char *actor,
                          GError **error)
{
  g_autoptr(KdImageRow) img = kd_store_image_get_by_name (b->store, image, error);
  g_autoptr(KdImageVersionRow) v = NULL;
  g_autoptr(GPtrArray) vols = NULL;
  gboolean on_a_host = FALSE;
  gint64 from;

  if (img == NULL)
    return NULL;
  v = kd_store_image_version_get (b->store, img->id, version, NULL);
  if (v == NULL)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_NOT_FOUND, "image '%s' has no version %" G_GINT64_FORMAT,
                   image, version);
      return NULL;
    }
  vols = kd_store_image_volume_list (b->store, img->id, NULL);
  for (guint i = 0; vols && i < vols->len; i++)
    {
      KdImageVolumeRow *vol = vols->pdata[i];
      on_a_host |= vol->version == version && g_str_equal (vol->state, "ready");
    }
  if (!on_a_host)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_BUSY,
                   "version %" G_GINT64_FORMAT " of image '%s' is on no host any more", version, image);
      return NULL;
    }
  from = img->current_version;
  img->current_version = version;
  img->virtual_size = v->virtual_size;
  img->file_size = v->file_size;
  if (!kd_store_image_update (b->store, img, error))
    return NULL;
  kd_broker_event (b, "image", img->name, actor, "rollback", NULL, NULL,
                   "image '%s': version %" G_GINT64_FORMAT " is current again (was %" G_GINT64_FORMAT ")",
                   img->name, version, from);
  kd_broker_versions_follow (b, img, actor);
  return g_steal_pointer (&img);
}
