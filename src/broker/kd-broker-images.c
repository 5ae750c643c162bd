/*
 * kd-broker-images.c: golden images and templates.
 *
 * An import is validated before anything is stored: the uploaded file is
 * probed in a worker (format, backing file, size), only then are the
 * image and its volume recorded ("importing") and the bytes streamed to
 * the host's storage pool. A failed upload removes both records.
 */
#include "kd-broker-priv.h"

#include "common/kd-error.h"
#include "common/kd-name.h"
#include "common/kd-time.h"

#include <glib/gstdio.h>

static char *
kd_broker_image_volume_name (KdBroker *b, const char *image, const char *format)
{
  return g_strdup_printf ("%s-image-%s.%s", b->config->domain_prefix, image,
                          g_str_equal (format, "qcow2") ? "qcow2" : "img");
}

static KdBrokerHost *
kd_broker_default_host (KdBroker *b, GError **error)
{
  if (g_hash_table_size (b->hosts) == 1)
    {
      GHashTableIter iter;
      gpointer value;
      g_hash_table_iter_init (&iter, b->hosts);
      g_hash_table_iter_next (&iter, NULL, &value);
      return value;
    }
  if (g_hash_table_size (b->hosts) == 0)
    g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "no host is registered; add one first");
  else
    g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                 "%u hosts are registered: say which one with 'host'",
                 g_hash_table_size (b->hosts));
  return NULL;
}

/**
 * kd_broker_image_check_new:
 * @host: (nullable): host name; %NULL means the only host
 *
 * Checks, before an upload begins, that the name is valid and free and the
 * host known and up, so a client does not send gigabytes for nothing.
 */
gboolean
kd_broker_image_check_new (KdBroker *b, const char *name, const char *host,
                           KdBrokerHost **out_host, GError **error)
{
  g_autoptr(KdImageRow) existing = NULL;
  KdBrokerHost *h;

  if (!kd_name_validate ("image", name, error))
    return FALSE;
  existing = kd_store_image_get_by_name (b->store, name, NULL);
  if (existing != NULL || g_hash_table_contains (b->importing, name))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_EXISTS, "an image named '%s' already exists", name);
      return FALSE;
    }
  h = host ? kd_broker_host_lookup (b, host, error) : kd_broker_default_host (b, error);
  if (h == NULL)
    return FALSE;
  if (!kd_broker_host_is_up (h))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_UNAVAILABLE, "host '%s' is %s%s%s",
                   h->row->name, h->state, h->last_error ? ": " : "",
                   h->last_error ? h->last_error : "");
      return FALSE;
    }
  if (out_host)
    *out_host = h;
  return TRUE;
}

typedef struct {
  KdBroker      *broker;
  GTask         *task;
  char          *name;
  char          *host;
  KdHvHost      *hv;
  char          *spool;
  char          *actor;
  char          *volume;
  KdHvImageInfo  info;
  KdImageRow    *image;
  gint64         volume_row_id;
  char          *volume_path;
  gboolean       simulated;
  GError        *error;
} KdImportJob;

static void
kd_import_job_free (KdImportJob *j)
{
  if (j->spool)
    g_unlink (j->spool);
  g_free (j->spool);
  g_clear_object (&j->task);
  g_free (j->name);
  g_free (j->host);
  g_clear_pointer (&j->hv, kd_hv_host_unref);
  g_free (j->actor);
  g_free (j->volume);
  kd_hv_image_info_clear (&j->info);
  kd_image_row_free (j->image);
  g_free (j->volume_path);
  g_clear_error (&j->error);
  g_free (j);
}

static void
kd_import_probe_run (gpointer data, GCancellable *cancellable)
{
  KdImportJob *j = data;
  kd_hv_image_probe_labeled (j->spool, j->name, &j->info, &j->error);
}

static void
kd_import_upload_run (gpointer data, GCancellable *cancellable)
{
  KdImportJob *j = data;

  kd_hv_image_upload (j->hv, j->volume, j->spool, &j->info, NULL, NULL, cancellable,
                      &j->volume_path, &j->simulated, &j->error);
}

static void
kd_import_fail (KdBroker *b, KdImportJob *j, GError *error)
{
  g_hash_table_remove (b->importing, j->name);
  g_task_return_error (j->task, error);
}

static void
kd_import_uploaded (KdBroker *b, gpointer data)
{
  KdImportJob *j = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageVolumeRow) vol = NULL;

  if (j->error)
    {
      kd_store_image_delete (b->store, j->image->id, NULL);
      kd_broker_event (b, "image", j->name, j->actor, "import-failed", "importing", NULL,
                       "import of image '%s' to host '%s' failed: %s", j->name, j->host,
                       j->error->message);
      kd_import_fail (b, j, g_steal_pointer (&j->error));
      kd_import_job_free (j);
      return;
    }
  vol = kd_store_image_volume_get (b->store, j->image->id,
                                   kd_broker_host_lookup (b, j->host, NULL) ?
                                   kd_broker_host_lookup (b, j->host, NULL)->row->id : -1,
                                   &error);
  if (vol != NULL)
    {
      g_free (vol->path);
      vol->path = g_strdup (j->volume_path);
      g_free (vol->state);
      vol->state = g_strdup ("ready");
      vol->simulated = j->simulated;
      if (!kd_store_image_volume_update (b->store, vol, &error))
        g_debug ("cannot update image volume: %s", error->message);
    }
  kd_broker_event (b, "image", j->name, j->actor, "import", "importing", "ready",
                   "image '%s' (%s, %" G_GINT64_FORMAT " bytes virtual) stored on host '%s'%s",
                   j->name, j->info.format, j->info.virtual_size, j->host,
                   j->simulated ? " (simulated host: recorded without content)" : "");
  g_hash_table_remove (b->importing, j->name);
  g_task_return_pointer (j->task, g_steal_pointer (&j->image), (GDestroyNotify) kd_image_row_free);
  kd_import_job_free (j);
}

static void
kd_import_probed (KdBroker *b, gpointer data)
{
  KdImportJob *j = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageVolumeRow) vol = NULL;
  KdBrokerHost *h;

  if (j->error)
    {
      kd_import_fail (b, j, g_steal_pointer (&j->error));
      kd_import_job_free (j);
      return;
    }
  h = kd_broker_host_lookup (b, j->host, &error);
  if (h == NULL || !kd_broker_host_is_up (h))
    {
      if (error == NULL)
        g_set_error (&error, KD_ERROR, KD_ERROR_UNAVAILABLE, "host '%s' is %s", j->host, h->state);
      kd_import_fail (b, j, g_steal_pointer (&error));
      kd_import_job_free (j);
      return;
    }
  j->hv = kd_hv_host_ref (h->hv);
  j->volume = kd_broker_image_volume_name (b, j->name, j->info.format);

  j->image = g_new0 (KdImageRow, 1);
  j->image->name = g_strdup (j->name);
  j->image->format = g_strdup (j->info.format);
  j->image->virtual_size = j->info.virtual_size;
  j->image->file_size = j->info.file_size;
  vol = g_new0 (KdImageVolumeRow, 1);
  vol->host_id = h->row->id;
  vol->volume = g_strdup (j->volume);
  vol->state = g_strdup ("importing");
  if (!kd_store_begin (b->store, &error))
    goto fail;
  if (!kd_store_image_insert (b->store, j->image, &error))
    {
      kd_store_rollback (b->store);
      goto fail;
    }
  vol->image_id = j->image->id;
  if (!kd_store_image_volume_insert (b->store, vol, &error) ||
      !kd_store_commit (b->store, &error))
    {
      kd_store_rollback (b->store);
      goto fail;
    }
  kd_broker_run_host_job (b, j->host, kd_import_upload_run, kd_import_uploaded, j, NULL);
  return;

fail:
  kd_import_fail (b, j, g_steal_pointer (&error));
  kd_import_job_free (j);
}

/**
 * kd_broker_image_import_async:
 * @path: a spooled upload; the broker deletes it when done, whatever happens
 */
void
kd_broker_image_import_async (KdBroker *b, const char *name, const char *host,
                              const char *path, const char *actor,
                              GAsyncReadyCallback cb, gpointer data)
{
  g_autoptr(GError) error = NULL;
  KdImportJob *j = g_new0 (KdImportJob, 1);
  KdBrokerHost *h = NULL;

  j->broker = b;
  j->task = g_task_new (NULL, NULL, cb, data);
  j->spool = g_strdup (path);
  j->name = g_strdup (name);
  j->actor = g_strdup (actor);
  if (!kd_broker_image_check_new (b, name, host, &h, &error))
    {
      g_task_return_error (j->task, g_steal_pointer (&error));
      kd_import_job_free (j);
      return;
    }
  j->host = g_strdup (h->row->name);
  g_hash_table_add (b->importing, g_strdup (name));
  /* The job is freed by the last stage, not by the job runner. */
  kd_broker_run_job (b, kd_import_probe_run, kd_import_probed, j, NULL);
}

KdImageRow *
kd_broker_image_import_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_pointer (G_TASK (res), error);
}

/* image delete ------------------------------------------------------- */

typedef struct {
  GTask     *task;
  char      *name;
  char      *actor;
  gint64     image_id;
  GPtrArray *hvs;       /* KdHvHost*, parallel to volumes */
  GPtrArray *volumes;   /* char* */
  GError    *error;
} KdImageDeleteJob;

static void
kd_image_delete_job_free (KdImageDeleteJob *j)
{
  g_clear_object (&j->task);
  g_free (j->name);
  g_free (j->actor);
  g_ptr_array_unref (j->hvs);
  g_ptr_array_unref (j->volumes);
  g_clear_error (&j->error);
  g_free (j);
}

static void
kd_image_delete_run (gpointer data, GCancellable *cancellable)
{
  KdImageDeleteJob *j = data;

  for (guint i = 0; i < j->volumes->len; i++)
    if (!kd_hv_volume_delete (j->hvs->pdata[i], j->volumes->pdata[i], TRUE, &j->error))
      return;
}

static void
kd_image_delete_done (KdBroker *b, gpointer data)
{
  KdImageDeleteJob *j = data;
  g_autoptr(GError) error = NULL;

  if (j->error)
    {
      g_task_return_error (j->task, g_steal_pointer (&j->error));
      return;
    }
  if (!kd_store_image_delete (b->store, j->image_id, &error))
    {
      g_task_return_error (j->task, g_steal_pointer (&error));
      return;
    }
  kd_broker_event (b, "image", j->name, j->actor, "delete", NULL, NULL,
                   "image '%s' deleted", j->name);
  g_task_return_boolean (j->task, TRUE);
}

void
kd_broker_image_delete_async (KdBroker *b, const char *name, const char *actor,
                              GAsyncReadyCallback cb, gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageRow) img = kd_store_image_get_by_name (b->store, name, &error);
  g_autoptr(GPtrArray) vols = NULL;
  KdImageDeleteJob *j;
  gint64 used;

  if (img == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  {
    g_autoptr(KdImageEditRow) edit = kd_store_image_edit_get (b->store, img->id, NULL);
    if (edit != NULL)
      {
        g_task_return_new_error (task, KD_ERROR, KD_ERROR_BUSY,
                                 "image '%s' is being edited; publish or cancel the edit first", name);
        return;
      }
  }
  used = kd_store_desktop_count_by_image (b->store, img->id, NULL);
  if (used > 0)
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_BUSY,
                               "image '%s' is used by %" G_GINT64_FORMAT
                               " desktop(s); delete them first", name, used);
      return;
    }
  vols = kd_store_image_volume_list (b->store, img->id, &error);
  if (vols == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  j = g_new0 (KdImageDeleteJob, 1);
  j->hvs = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_hv_host_unref);
  j->volumes = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < vols->len; i++)
    {
      KdImageVolumeRow *v = vols->pdata[i];
      KdBrokerHost *h = kd_broker_host_by_id (b, v->host_id);
      if (h == NULL)
        continue;
      if (!kd_broker_host_is_up (h))
        {
          g_task_return_new_error (task, KD_ERROR, KD_ERROR_UNAVAILABLE,
                                   "host '%s' is %s: cannot delete the volume of image '%s' there",
                                   h->row->name, h->state, name);
          kd_image_delete_job_free (j);
          return;
        }
      g_ptr_array_add (j->hvs, kd_hv_host_ref (h->hv));
      g_ptr_array_add (j->volumes, g_strdup (v->volume));
    }
  j->task = g_steal_pointer (&task);
  j->name = g_strdup (name);
  j->actor = g_strdup (actor);
  j->image_id = img->id;
  kd_broker_run_job (b, kd_image_delete_run, kd_image_delete_done, j,
                     (GDestroyNotify) kd_image_delete_job_free);
}

gboolean
kd_broker_image_delete_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_boolean (G_TASK (res), error);
}

/* ------------------------------------------------------------------ */
/* templates */

#define KD_TEMPLATE_VCPUS_MAX   256
#define KD_TEMPLATE_MEMORY_MIN  64            /* MiB */
#define KD_TEMPLATE_MEMORY_MAX  (4 * 1024 * 1024)
#define KD_TEMPLATE_DISK_MAX    65536         /* GiB */

static gboolean
kd_template_check_network (const char *network, GError **error)
{
  const char *name = network;

  if (g_str_equal (network, "none") || g_str_equal (network, "user"))
    return TRUE;
  if (g_str_has_prefix (network, "bridge:"))
    name = network + strlen ("bridge:");
  if (*name == '\0' || strlen (name) > 64 ||
      strspn (name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen (name))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "network '%.80s' is invalid: use none, user, a libvirt network name, "
                   "or bridge:NAME", network);
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_broker_template_add:
 * Fills defaults, checks every value, stores the template.
 */
KdTemplateRow *
kd_broker_template_add (KdBroker *b, const KdTemplateSpec *spec, const char *actor,
                        GError **error)
{
  g_autoptr(KdTemplateRow) row = g_new0 (KdTemplateRow, 1);
  const char *display = spec->display ? spec->display : "vnc";
  const char *network = spec->network ? spec->network : "none";
  const char *firmware = spec->firmware ? spec->firmware : "bios";

  if (!kd_name_validate ("template", spec->name, error))
    return NULL;
  row->vcpus = spec->vcpus ? spec->vcpus : 1;
  row->memory_mib = spec->memory_mib ? spec->memory_mib : 1024;
  row->disk_gib = spec->disk_gib ? spec->disk_gib : 10;
  if (!kd_range_check_int64 ("vcpus", row->vcpus, 1, KD_TEMPLATE_VCPUS_MAX, error) ||
      !kd_range_check_int64 ("memory_mib", row->memory_mib, KD_TEMPLATE_MEMORY_MIN,
                             KD_TEMPLATE_MEMORY_MAX, error) ||
      !kd_range_check_int64 ("disk_gib", row->disk_gib, 1, KD_TEMPLATE_DISK_MAX, error))
    return NULL;
  if (!g_str_equal (display, "vnc") && !g_str_equal (display, "spice") && !g_str_equal (display, "dbus"))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "display '%.40s' is invalid: use vnc, spice or dbus", display);
      return NULL;
    }
  if (!kd_range_check_int64 ("rdp_port", spec->rdp_port, 0, 65535, error) ||
      !kd_range_check_int64 ("gpus", spec->gpus, 0, 8, error))
    return NULL;
  row->rdp_port = spec->rdp_port;
  row->gpus = spec->gpus;
  if (spec->gpu_mdev != NULL && *spec->gpu_mdev != '\0')
    {
      g_autoptr(GPtrArray) gpus = NULL;
      gboolean offered = FALSE;

      if (!kd_hv_mdev_type_is_valid (spec->gpu_mdev))
        {
          g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                       "gpu_mdev '%.40s' is not a mediated device type (e.g. nvidia-63)", spec->gpu_mdev);
          return NULL;
        }
      if (spec->gpus > 0)
        {
          g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                       "a template has whole GPUs (gpus) or a vGPU (gpu_mdev), not both");
          return NULL;
        }
      gpus = kd_store_host_gpu_list (b->store, -1, error);
      if (gpus == NULL)
        return NULL;
      for (guint i = 0; i < gpus->len && !offered; i++)
        {
          KdHostGpuRow *g = gpus->pdata[i];
          for (guint k = 0; k < g->mdevs->len && !offered; k++)
            offered = g_str_equal (((KdGpuMdevTypeRow *) g->mdevs->pdata[k])->type_id, spec->gpu_mdev);
        }
      if (!offered)
        {
          g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                       "no host GPU offers vGPU type '%s' (see the mdev_types of the hosts' GPUs)",
                       spec->gpu_mdev);
          return NULL;
        }
      row->gpu_mdev = g_strdup (spec->gpu_mdev);
    }
  else
    row->gpu_mdev = g_strdup ("");
  if (!kd_template_check_network (network, error))
    return NULL;
  if (!g_str_equal (firmware, "bios") && !g_str_equal (firmware, "uefi"))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "firmware '%.40s' is invalid: use bios or uefi", firmware);
      return NULL;
    }
  row->name = g_strdup (spec->name);
  row->display = g_strdup (display);
  row->network = g_strdup (network);
  row->firmware = g_strdup (firmware);
  if (!kd_store_template_insert (b->store, row, error))
    return NULL;
  kd_broker_event (b, "template", row->name, actor, "create", NULL, NULL,
                   "template '%s' added: %" G_GINT64_FORMAT " vCPU, %" G_GINT64_FORMAT
                   " MiB, %" G_GINT64_FORMAT " GiB, %s, network %s, %s",
                   row->name, row->vcpus, row->memory_mib, row->disk_gib, row->display,
                   row->network, row->firmware);
  return g_steal_pointer (&row);
}

gboolean
kd_broker_template_remove (KdBroker *b, const char *name, const char *actor, GError **error)
{
  g_autoptr(KdTemplateRow) row = kd_store_template_get_by_name (b->store, name, error);
  g_autoptr(GPtrArray) desktops = NULL;
  guint used = 0;

  if (row == NULL)
    return FALSE;
  desktops = kd_store_desktop_list (b->store, NULL);
  for (guint i = 0; desktops && i < desktops->len; i++)
    if (((KdDesktopRow *) desktops->pdata[i])->template_id == row->id)
      used++;
  if (used > 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_BUSY,
                   "template '%s' is used by %u desktop(s); delete them first", name, used);
      return FALSE;
    }
  if (!kd_store_template_delete (b->store, row->id, error))
    return FALSE;
  kd_broker_event (b, "template", name, actor, "delete", NULL, NULL,
                   "template '%s' removed", name);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* copying an image to another host in advance */

/**
 * kd_broker_image_copy_settle:
 * The copy into image volume @vol_id is over: the row becomes ready at
 * @path, or (with @error) goes, so that a later placement may try again.
 * Creates waiting for that copy go on or fail with it.
 *
 * Returns: the image version the volume holds (0 when it is gone).
 */
gint64
kd_broker_image_copy_settle (KdBroker *b, gint64 image_id, gint64 vol_id, const char *path,
                             gboolean simulated, const GError *error)
{
  g_autoptr(GPtrArray) vols = kd_store_image_volume_list (b->store, image_id, NULL);

  for (guint i = 0; vols != NULL && i < vols->len; i++)
    {
      KdImageVolumeRow *v = vols->pdata[i];
      if (v->id != vol_id)
        continue;
      if (error == NULL)
        {
          g_free (v->state);
          v->state = g_strdup ("ready");
          g_free (v->path);
          v->path = g_strdup (path);
          v->simulated = simulated;
          kd_store_image_volume_update (b->store, v, NULL);
        }
      else
        kd_store_image_volume_delete (b->store, v->id, NULL);
      kd_create_release_waiters (b, v->id, error ? NULL : v->path, error);
      return v->version;
    }
  return 0;
}

typedef struct {
  GTask        *task;
  char         *actor;
  char         *image;
  KdHvHost     *src;
  KdHvHost     *dst;
  char         *volume;
  char         *spool;
  KdHvImageInfo info;
  gint64        vol_id;
  char         *new_path;
  gboolean      simulated;
  GError       *error;
} KdImageCopyJob;

static void
kd_image_copy_job_free (KdImageCopyJob *j)
{
  g_clear_object (&j->task);
  g_free (j->actor);
  g_free (j->image);
  g_clear_pointer (&j->src, kd_hv_host_unref);
  g_clear_pointer (&j->dst, kd_hv_host_unref);
  g_free (j->volume);
  if (j->spool)
    g_unlink (j->spool);
  g_free (j->spool);
  kd_hv_image_info_clear (&j->info);
  g_free (j->new_path);
  g_clear_error (&j->error);
  g_free (j);
}

static void
kd_image_copy_run (gpointer data, GCancellable *cancellable)
{
  KdImageCopyJob *j = data;

  kd_hv_volume_transfer (j->src, j->dst, j->volume, j->spool, &j->info, NULL, NULL, cancellable,
                         &j->new_path,
                         &j->simulated, &j->error);
}

static void
kd_image_copy_done (KdBroker *b, gpointer data)
{
  KdImageCopyJob *j = data;
  g_autoptr(KdImageRow) img = kd_store_image_get_by_name (b->store, j->image, NULL);

  kd_broker_image_copy_settle (b, img ? img->id : 0, j->vol_id, j->new_path, j->simulated, j->error);
  if (j->error != NULL)
    {
      kd_broker_event (b, "image", j->image, j->actor, "copy-failed", NULL, NULL,
                       "image '%s' could not be copied to host '%s': %s", j->image,
                       kd_hv_host_get_name (j->dst), j->error->message);
      g_task_return_error (j->task, g_steal_pointer (&j->error));
      return;
    }
  kd_broker_event (b, "image", j->image, j->actor, "copy", NULL, NULL,
                   "image '%s' copied from host '%s' to host '%s'%s", j->image,
                   kd_hv_host_get_name (j->src), kd_hv_host_get_name (j->dst),
                   j->simulated ? " (simulated)" : "");
  kd_broker_pools_kick (b);
  g_task_return_pointer (j->task, g_steal_pointer (&img), (GDestroyNotify) kd_image_row_free);
}

/**
 * kd_broker_image_copy_async:
 * Copies the current version of @image to @host from a host that holds
 * it (a real host feeds any host; a simulated one only simulated hosts).
 */
void
kd_broker_image_copy_async (KdBroker *b, const char *image, const char *host, const char *actor,
                            GAsyncReadyCallback cb, gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageRow) img = NULL;
  g_autoptr(GPtrArray) vols = NULL;
  g_autoptr(KdImageVersionRow) version = NULL;
  g_autoptr(KdImageVolumeRow) row = NULL;
  KdBrokerHost *dst, *src = NULL;
  const char *src_volume = NULL;
  KdImageCopyJob *j;

  if ((img = kd_store_image_get_by_name (b->store, image, &error)) == NULL ||
      (dst = kd_broker_host_lookup (b, host, &error)) == NULL ||
      (vols = kd_store_image_volume_list (b->store, img->id, &error)) == NULL ||
      (version = kd_store_image_version_get (b->store, img->id, img->current_version, &error)) == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  if (!kd_broker_host_is_up (dst))
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_UNAVAILABLE, "host '%s' is %s", host, dst->state);
      return;
    }
  for (guint i = 0; i < vols->len; i++)
    {
      KdImageVolumeRow *v = vols->pdata[i];
      KdBrokerHost *h = kd_broker_host_by_id (b, v->host_id);
      if (v->version != 0 && v->version != img->current_version)
        continue;
      if (v->host_id == dst->row->id)
        {
          g_task_return_new_error (task, KD_ERROR, KD_ERROR_EXISTS,
                                   "host '%s' already holds version %" G_GINT64_FORMAT " of image '%s' (%s)",
                                   host, img->current_version, image, v->state);
          return;
        }
      if (h == NULL || !kd_broker_host_is_up (h) || !g_str_equal (v->state, "ready"))
        continue;
      if (kd_hv_host_is_simulated (h->hv) && !kd_hv_host_is_simulated (dst->hv))
        continue;
      if (src == NULL || (kd_hv_host_is_simulated (src->hv) && !kd_hv_host_is_simulated (h->hv)))
        {
          src = h;
          src_volume = v->volume;
        }
    }
  if (src == NULL)
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_UNAVAILABLE,
                               "no host that is up holds version %" G_GINT64_FORMAT " of image '%s' "
                               "to copy it from", img->current_version, image);
      return;
    }
  row = g_new0 (KdImageVolumeRow, 1);
  row->image_id = img->id;
  row->host_id = dst->row->id;
  row->volume = g_strdup (src_volume);
  row->state = g_strdup ("importing");
  row->version = img->current_version;
  if (!kd_store_image_volume_insert (b->store, row, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  kd_broker_event (b, "image", image, actor, "copy", NULL, NULL,
                   "image '%s' version %" G_GINT64_FORMAT " is being copied from host '%s' to host '%s'",
                   image, img->current_version, src->row->name, host);
  j = g_new0 (KdImageCopyJob, 1);
  j->task = g_steal_pointer (&task);
  j->actor = g_strdup (actor);
  j->image = g_strdup (image);
  j->src = kd_hv_host_ref (src->hv);
  j->dst = kd_hv_host_ref (dst->hv);
  j->volume = g_strdup (src_volume);
  j->spool = g_strdup_printf ("%s/uploads/copy-%s-%s", b->config->state_dir, host, src_volume);
  j->info.format = g_strdup (version->format);
  j->info.virtual_size = version->virtual_size;
  j->vol_id = row->id;
  kd_broker_run_host_job (b, host, kd_image_copy_run, kd_image_copy_done, j,
                          (GDestroyNotify) kd_image_copy_job_free);
}

KdImageRow *
kd_broker_image_copy_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_pointer (G_TASK (res), error);
}
