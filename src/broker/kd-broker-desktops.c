/*
 * kd-broker-desktops.c: desktops as linked clones, and their power
 * actions.
 *
 * Creating a desktop records it first ("provisioning"), then builds the
 * overlay and the domain in a worker; a failure undoes what was made and
 * forgets the record, so a failed request changes nothing. A daemon killed
 * in between leaves a "provisioning" record that the next start turns into
 * "error" (kd_broker_desktops_recover) — never a healthy-looking desktop.
 *
 * One operation at a time per desktop: others get KD_ERROR_BUSY.
 */
#include "kd-broker-priv.h"
#include "kd-broker-state.h"

#include "common/kd-error.h"
#include "common/kd-name.h"
#include "common/kd-random.h"
#include "common/kd-time.h"

#include <unistd.h>
#include <glib/gstdio.h>

#define KD_GIB (G_GINT64_CONSTANT (1) << 30)

gboolean
kd_desktop_action_from_string (const char *s, KdDesktopAction *out)
{
  static const struct { const char *name; KdDesktopAction action; } table[] = {
    { "start", KD_DESKTOP_ACTION_START },
    { "shutdown", KD_DESKTOP_ACTION_SHUTDOWN },
    { "poweroff", KD_DESKTOP_ACTION_POWEROFF },
    { "reset", KD_DESKTOP_ACTION_RESET },
    { "delete", KD_DESKTOP_ACTION_DELETE },
    { "reboot", KD_DESKTOP_ACTION_REBOOT },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (table); i++)
    if (g_strcmp0 (s, table[i].name) == 0)
      {
        *out = table[i].action;
        return TRUE;
      }
  return FALSE;
}

static const char *
kd_desktop_action_name (KdDesktopAction a)
{
  switch (a)
    {
    case KD_DESKTOP_ACTION_START: return "start";
    case KD_DESKTOP_ACTION_SHUTDOWN: return "shutdown";
    case KD_DESKTOP_ACTION_POWEROFF: return "poweroff";
    case KD_DESKTOP_ACTION_RESET: return "reset";
    case KD_DESKTOP_ACTION_DELETE: return "delete";
    case KD_DESKTOP_ACTION_REBOOT: return "reboot";
    default: return "?";
    }
}

gboolean
kd_broker_desktop_is_busy (KdBroker *b, gint64 desktop_id)
{
  return g_hash_table_contains (b->busy, &desktop_id);
}

/**
 * kd_broker_desktop_operation:
 * Returns: (nullable): what is under way on the desktop ("migrate to host
 * 'hv2' 40%", "create", …), or %NULL.
 */
const char *
kd_broker_desktop_operation (KdBroker *b, gint64 desktop_id)
{
  return g_hash_table_lookup (b->busy, &desktop_id);
}

void
kd_broker_busy_set (KdBroker *b, gint64 id, const char *what)
{
  gint64 *key = g_new (gint64, 1);
  *key = id;
  g_hash_table_replace (b->busy, key, g_strdup (what));
}

void
kd_broker_busy_clear (KdBroker *b, gint64 id)
{
  g_hash_table_remove (b->busy, &id);
}

/**
 * kd_broker_desktop_set_state:
 * Stores a transition and records it as an event. @reason is kept with the
 * state (the message of an error). A transition the state machine refuses
 * is not made (and logged at debug level): the caller's bug must not put a
 * desktop into a state it cannot leave.
 */
void
kd_broker_desktop_set_state (KdBroker *b, KdDesktopRow *row, const char *state,
                             const char *reason, const char *actor, const char *action)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *from = g_strdup (row->state);

  if (!kd_desktop_transition_allowed (from, state))
    {
      g_debug ("desktop '%s': transition %s -> %s refused by the state machine (%s)",
               row->name, from, state, action);
      return;
    }
  g_free (row->state);
  row->state = g_strdup (state);
  g_free (row->state_reason);
  row->state_reason = g_strdup (reason);
  if (!kd_store_desktop_update (b->store, row, &error))
    g_debug ("cannot store state of desktop '%s': %s", row->name, error->message);
  if (g_strcmp0 (from, state) != 0 || reason != NULL)
    kd_broker_desktop_event (b, row, actor, action, from, state, "desktop '%s': %s -> %s%s%s",
                             row->name, from ? from : "(new)", state, reason ? ": " : "",
                             reason ? reason : "");
  kd_broker_display_follow (b, row);
}

/* The state of a desktop whose guest runs: who holds it decides. */
const char *
kd_broker_desktop_up_state (const KdDesktopRow *row)
{
  if (row->user_id == 0)
    return KD_DESKTOP_RUNNING;
  if (row->connected_since > 0)
    return KD_DESKTOP_CONNECTED;
  /* "disconnected" is set only when a client leaves. */
  return KD_DESKTOP_ASSIGNED;
}

/* ------------------------------------------------------------------ */
/* create */

typedef struct {
  GTask          *task;
  char           *actor;
  KdHvHost       *hv;
  KdDesktopRow   *row;
  char           *backing_path;
  char           *backing_format;
  gint64          capacity;
  gboolean        start;
  gboolean        existing_disk; /* an edit copy: no overlay to make or undo */
  /* the image copied to this host first (backing_path NULL until then) */
  KdHvHost       *copy_from;
  char           *copy_volume;
  char           *copy_spool;
  KdHvImageInfo   copy_info;
  gint64          copy_vol_id;  /* its image_volumes row, "importing" */
  gint64          wait_volume_id; /* another create copies it: start when it is there */
  char          **hostdevs;     /* the functions of its GPUs */
  char           *mdev_uuid;    /* its vGPU: a mediated device made before the domain */
  char           *mdev_parent;  /* the GPU's PCI address */
  char           *mdev_type;
  char          **mdevs;        /* { mdev_uuid, NULL } for the domain spec */
  gboolean        mdev_simulated;
  gboolean        copy_simulated;
  gboolean        copied;
  KdHvDomainSpec  spec;         /* borrowed strings below */
  char           *domain_type;
  char           *instance_id;
  char           *desktop_id;
  char           *display;
  char           *graphics_listen;
  char           *graphics_passwd;
  char           *network;
  char           *firmware;
  gint64          vcpus;
  gint64          memory_mib;
  /* results */
  char           *overlay_path;
  char           *uuid;
  gboolean        started;
  GError         *error;
} KdCreateJob;

static void
kd_create_job_free (KdCreateJob *j)
{
  g_clear_object (&j->task);
  g_free (j->actor);
  g_clear_pointer (&j->hv, kd_hv_host_unref);
  kd_desktop_row_free (j->row);
  g_free (j->backing_path);
  g_free (j->backing_format);
  g_clear_pointer (&j->copy_from, kd_hv_host_unref);
  g_free (j->copy_volume);
  if (j->copy_spool)
    g_unlink (j->copy_spool);
  g_free (j->copy_spool);
  kd_hv_image_info_clear (&j->copy_info);
  g_free (j->domain_type);
  g_free (j->instance_id);
  g_free (j->desktop_id);
  g_free (j->display);
  g_free (j->graphics_listen);
  g_free (j->graphics_passwd);
  g_strfreev (j->hostdevs);
  g_free (j->mdev_uuid);
  g_free (j->mdev_parent);
  g_free (j->mdev_type);
  g_strfreev (j->mdevs);
  g_free (j->network);
  g_free (j->firmware);
  g_free (j->overlay_path);
  g_free (j->uuid);
  g_clear_error (&j->error);
  g_free (j);
}

/* Worker thread: the image's bytes from the source host into a spool
 * file, then up into a volume of the same name on this host. */
static gboolean
kd_create_copy_image (KdCreateJob *j, GCancellable *cancellable)
{
  j->copied = kd_hv_volume_transfer (j->copy_from, j->hv, j->copy_volume, j->copy_spool, &j->copy_info,
                                      NULL, NULL,
                                     cancellable, &j->backing_path, &j->copy_simulated, &j->error);
  return j->copied;
}

static void
kd_create_run (gpointer data, GCancellable *cancellable)
{
  KdCreateJob *j = data;
  g_autofree char *xml = NULL;
  gboolean made_overlay = FALSE, defined = FALSE, made_mdev = FALSE;

  if (j->copy_from != NULL && !kd_create_copy_image (j, cancellable))
    {
      g_prefix_error (&j->error, "copying the image to host '%s': ", kd_hv_host_get_name (j->hv));
      return;
    }

  if (j->existing_disk)
    j->overlay_path = g_strdup (j->row->overlay_path);
  else
    {
      if (!kd_hv_overlay_create (j->hv, j->row->overlay_volume, j->backing_path, j->backing_format,
                                 j->capacity, &j->overlay_path, &j->error))
        goto fail;
      made_overlay = TRUE;
    }
  if (j->mdev_uuid != NULL)
    {
      if (!kd_hv_mdev_create (j->hv, j->mdev_parent, j->mdev_type, j->mdev_uuid, &j->mdev_simulated,
                              &j->error))
        goto fail;
      made_mdev = !j->mdev_simulated;
    }

  j->spec.name = j->row->domain;
  j->spec.title = j->row->name;
  j->spec.domain_type = j->domain_type;
  j->spec.arch = "x86_64";
  j->spec.vcpus = j->vcpus;
  j->spec.memory_mib = j->memory_mib;
  j->spec.disk_path = j->overlay_path;
  j->spec.disk_format = j->existing_disk ? j->backing_format : "qcow2";
  j->spec.firmware = j->firmware;
  j->spec.display = j->display;
  j->spec.graphics_listen = j->graphics_listen;
  j->spec.graphics_passwd = j->graphics_passwd;
  j->spec.hostdevs = (const char *const *) j->hostdevs;
  j->spec.mdevs = (const char *const *) j->mdevs;
  j->spec.network = j->network;
  j->spec.instance_id = j->instance_id;
  j->spec.desktop_id = j->desktop_id;
  j->spec.desktop_name = j->row->name;
  xml = kd_hv_domain_xml_build (&j->spec, &j->error);
  if (xml == NULL)
    goto fail;
  if (!kd_hv_domain_define (j->hv, xml, &j->uuid, &j->error))
    goto fail;
  defined = TRUE;
  if (j->start)
    {
      if (!kd_hv_domain_start (j->hv, j->row->domain, &j->error))
        goto fail;
      j->started = TRUE;
    }
  return;

fail:
  /* Undo what this request made; a name clash (EXISTS) means the
   * objects are not ours and must not be touched. */
  if (defined)
    kd_hv_domain_delete (j->hv, j->row->domain, TRUE, NULL);
  if (made_mdev)
    kd_hv_mdev_destroy (j->hv, j->mdev_uuid, NULL);
  if (made_overlay)
    kd_hv_volume_delete (j->hv, j->row->overlay_volume, TRUE, NULL);
}

/* Parks @j until the copy of the image to its host (another create's)
 * is done. */
static void
kd_create_wait_for_copy (KdBroker *b, KdCreateJob *j)
{
  GPtrArray *list = g_hash_table_lookup (b->copy_waiters, &j->wait_volume_id);

  if (list == NULL)
    {
      gint64 *key = g_new (gint64, 1);
      *key = j->wait_volume_id;
      list = g_ptr_array_new ();
      g_hash_table_insert (b->copy_waiters, key, list);
    }
  g_ptr_array_add (list, j);
}

static void kd_create_done (KdBroker *b, gpointer data);

/* The copy @volume_id is over: the creates waiting for it go on with
 * @path as their backing file, or fail with @error. */
void
kd_create_release_waiters (KdBroker *b, gint64 volume_id, const char *path, const GError *error)
{
  GPtrArray *list = NULL;
  gint64 *key = NULL;

  if (!g_hash_table_steal_extended (b->copy_waiters, &volume_id, (gpointer *) &key, (gpointer *) &list))
    return;
  g_free (key);
  for (guint i = 0; i < list->len; i++)
    {
      KdCreateJob *w = list->pdata[i];
      if (error == NULL)
        {
          w->backing_path = g_strdup (path);
          kd_broker_run_host_job (b, kd_hv_host_get_name (w->hv), kd_create_run, kd_create_done, w,
                                  (GDestroyNotify) kd_create_job_free);
        }
      else
        {
          w->error = g_error_new (KD_ERROR, KD_ERROR_UNAVAILABLE,
                                  "the image could not be copied to host '%s': %s",
                                  kd_hv_host_get_name (w->hv), error->message);
          kd_create_done (b, w);
          kd_create_job_free (w);
        }
    }
  g_ptr_array_unref (list);
}

/* The copied image's volume row: ready with its path, or gone (so that a
 * later placement may try again). */
static void
kd_create_copy_done (KdBroker *b, KdCreateJob *j)
{
  g_autoptr(KdImageRow) img = kd_store_image_get (b->store, j->row->image_id, NULL);
  g_autoptr(GError) why = j->copied ? NULL : j->error ? g_error_copy (j->error)
                                         : g_error_new (KD_ERROR, KD_ERROR_FAILED, "cancelled");
  const char *host = kd_hv_host_get_name (j->hv);
  gint64 version = kd_broker_image_copy_settle (b, j->row->image_id, j->copy_vol_id, j->backing_path,
                                                j->copy_simulated, why);

  if (why == NULL)
    kd_broker_event (b, "image", img ? img->name : "?", j->actor, "copy", NULL, NULL,
                     "image '%s' version %" G_GINT64_FORMAT " copied from host '%s' to host '%s'"
                     " for desktop '%s'%s", img ? img->name : "?", version,
                     kd_hv_host_get_name (j->copy_from), host, j->row->name,
                     j->copy_simulated ? " (simulated)" : "");
  else
    kd_broker_event (b, "image", img ? img->name : "?", j->actor, "copy-failed", NULL, NULL,
                     "image '%s' could not be copied to host '%s': %s", img ? img->name : "?",
                     host, why->message);
}

static void
kd_create_done (KdBroker *b, gpointer data)
{
  KdCreateJob *j = data;
  g_autoptr(GError) error = NULL;
  KdDesktopRow *row = j->row;

  kd_broker_busy_clear (b, row->id);
  if (j->copy_from != NULL)
    kd_create_copy_done (b, j);
  if (j->error)
    {
      kd_store_desktop_delete (b->store, row->id, NULL);
      kd_broker_desktop_event (b, row, j->actor, "create-failed", KD_DESKTOP_PROVISIONING,
                               NULL, "desktop '%s' could not be created: %s", row->name, j->error->message);
      g_task_return_error (j->task, g_steal_pointer (&j->error));
      return;
    }
  g_free (row->uuid);
  row->uuid = g_strdup (j->uuid);
  g_free (row->overlay_path);
  row->overlay_path = g_strdup (j->overlay_path);
  kd_broker_desktop_set_state (b, row, j->started ? kd_broker_desktop_up_state (row) : KD_DESKTOP_STOPPED,
                               NULL, j->actor, "create");
  g_task_return_pointer (j->task, g_steal_pointer (&j->row), (GDestroyNotify) kd_desktop_row_free);
}


/* The host for a new desktop: the one asked for (it must hold the
 * image's current version and be up), else the scheduler's choice. */
static KdBrokerHost *
kd_broker_pick_host (KdBroker *b, const KdDesktopCreateSpec *cs, KdImageRow *img, KdTemplateRow *tpl,
                     KdImageVolumeRow **out_vol, KdImageCopy *out_copy, GError **error)
{
  g_autoptr(GPtrArray) vols = NULL;
  g_autoptr(KdPoolRow) pool = NULL;
  KdBrokerHost *h;

  if (cs->host == NULL)
    {
      if (cs->pool_id != 0)
        pool = kd_store_pool_get (b->store, cs->pool_id, NULL);
      return kd_broker_place (b, img, tpl, pool, cs->allowed_hosts, out_vol, out_copy, error);
    }
  h = kd_broker_host_lookup (b, cs->host, error);
  if (h == NULL || (vols = kd_store_image_volume_list (b->store, img->id, error)) == NULL)
    return NULL;
  for (guint i = 0; i < vols->len; i++)
    {
      KdImageVolumeRow *v = vols->pdata[i];
      if (v->host_id != h->row->id || (v->version != 0 && v->version != img->current_version))
        continue;
      if (!g_str_equal (v->state, "ready"))
        {
          g_set_error (error, KD_ERROR, KD_ERROR_BUSY,
                       "image '%s' on host '%s' is %s%s%s", img->name, cs->host, v->state,
                       v->error ? ": " : "", v->error ? v->error : "");
          return NULL;
        }
      if (!kd_broker_host_is_up (h))
        {
          g_set_error (error, KD_ERROR, KD_ERROR_UNAVAILABLE, "host '%s' is %s", cs->host, h->state);
          return NULL;
        }
      *out_vol = g_ptr_array_steal_index (vols, i);
      return h;
    }
  g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
               "image '%s' is not on host '%s'; import it there first", img->name, cs->host);
  return NULL;
}

/**
 * kd_broker_desktop_create_async:
 * @host: (nullable): a host holding the image; %NULL picks one
 * @start: boot the desktop once made
 */
void
kd_broker_desktop_create_async (KdBroker *b, const char *name, const char *image,
                                const char *template_name, const char *host, gboolean start,
                                const char *actor, GAsyncReadyCallback cb, gpointer data)
{
  KdDesktopCreateSpec spec = {
    .name = name, .image = image, .template_name = template_name, .host = host, .start = start,
  };
  kd_broker_desktop_create_spec_async (b, &spec, actor, cb, data);
}

/**
 * kd_broker_desktop_create_spec_async:
 * Creates a desktop, possibly in a pool and already held by a user. The
 * record is stored before this returns, so a caller counting a pool's
 * desktops right after sees it.
 */
void
kd_broker_desktop_create_spec_async (KdBroker *b, const KdDesktopCreateSpec *cs,
                                     const char *actor, GAsyncReadyCallback cb, gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageRow) img = NULL;
  g_autoptr(KdTemplateRow) tpl = NULL;
  g_autoptr(KdImageVolumeRow) vol = NULL;
  g_autoptr(KdImageVolumeRow) import_vol = NULL;
  g_autoptr(KdImageVersionRow) version = NULL;
  g_auto(KdImageCopy) copy = { 0 };
  g_auto(GStrv) hostdevs = NULL;
  g_autoptr(KdVgpuRow) vgpu = NULL;
  g_autofree char *vgpu_parent = NULL;
  g_autoptr(KdDesktopRow) existing = NULL;
  g_autoptr(KdDesktopRow) row = NULL;
  const char *name = cs->name, *image = cs->image, *template_name = cs->template_name;
  KdBrokerHost *h;
  KdCreateJob *j;

  if (!kd_name_validate ("desktop", name, &error))
    goto fail;
  if (strlen (b->config->domain_prefix) + 1 + strlen (name) > 200)
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_INVALID, "desktop name '%s' is too long", name);
      goto fail;
    }
  if (image == NULL || template_name == NULL)
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_INVALID, "field '%s' is required",
                   image == NULL ? "image" : "template");
      goto fail;
    }
  existing = kd_store_desktop_get_by_name (b->store, name, NULL);
  if (existing)
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_EXISTS, "a desktop named '%s' already exists", name);
      goto fail;
    }
  if ((img = kd_store_image_get_by_name (b->store, image, &error)) == NULL ||
      (tpl = kd_store_template_get_by_name (b->store, template_name, &error)) == NULL)
    goto fail;
  if (tpl->disk_gib * KD_GIB < img->virtual_size)
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_INVALID,
                   "template '%s' has a %" G_GINT64_FORMAT " GiB disk, smaller than image '%s' "
                   "(%.1f GiB): use a template with a larger disk",
                   tpl->name, tpl->disk_gib, img->name, (double) img->virtual_size / KD_GIB);
      goto fail;
    }
  h = kd_broker_pick_host (b, cs, img, tpl, &vol, &copy, &error);
  if (h == NULL)
    goto fail;
  if (g_str_equal (tpl->firmware, "uefi") && !h->capacity.uefi)
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_INVALID,
                   "template '%s' asks for UEFI firmware, which host '%s' does not have "
                   "(install the ovmf package there)", tpl->name, h->row->name);
      goto fail;
    }

  row = g_new0 (KdDesktopRow, 1);
  row->name = g_strdup (name);
  row->domain = kd_broker_domain_name (b, name);
  row->host_id = h->row->id;
  row->image_id = img->id;
  row->template_id = tpl->id;
  if (cs->disk_volume)
    {
      row->overlay_volume = g_strdup (cs->disk_volume);
      row->overlay_path = g_strdup (cs->disk_path);
    }
  else
    row->overlay_volume = g_strdup_printf ("%s.qcow2", row->domain);
  row->state = g_strdup (KD_DESKTOP_PROVISIONING);
  row->image_version = img->current_version;
  row->pool_id = cs->pool_id;
  row->user_id = cs->user_id;
  row->assigned_at = cs->user_id ? kd_time_now () : 0;
  if (vol == NULL && copy.wait_volume_id == 0)
    {
      /* The image goes to the chosen host first: recorded "importing" so
       * that no other placement starts a second copy there. */
      version = kd_store_image_version_get (b->store, img->id, img->current_version, &error);
      if (version == NULL)
        goto fail;
      import_vol = g_new0 (KdImageVolumeRow, 1);
      import_vol->image_id = img->id;
      import_vol->host_id = h->row->id;
      import_vol->volume = g_strdup (copy.volume);
      import_vol->state = g_strdup ("importing");
      import_vol->version = img->current_version;
      if (!kd_store_image_volume_insert (b->store, import_vol, &error))
        goto fail;
    }
  if (!kd_store_desktop_insert (b->store, row, &error))
    {
      if (import_vol != NULL)
        kd_store_image_volume_delete (b->store, import_vol->id, NULL);
      goto fail;
    }
  if (tpl->gpus > 0)
    {
      hostdevs = kd_broker_gpus_take (b, h->row->id, row->id, tpl->gpus, &error);
      if (hostdevs == NULL)
        {
          g_prefix_error (&error, "host '%s': ", h->row->name);
          kd_store_desktop_delete (b->store, row->id, NULL);
          if (import_vol != NULL)
            kd_store_image_volume_delete (b->store, import_vol->id, NULL);
          goto fail;
        }
    }
  if (tpl->gpu_mdev != NULL && *tpl->gpu_mdev != '\0')
    {
      vgpu = kd_broker_vgpu_take (b, h->row->id, row->id, tpl->gpu_mdev, &vgpu_parent, &error);
      if (vgpu == NULL)
        {
          g_prefix_error (&error, "host '%s': ", h->row->name);
          kd_store_desktop_delete (b->store, row->id, NULL);
          if (import_vol != NULL)
            kd_store_image_volume_delete (b->store, import_vol->id, NULL);
          goto fail;
        }
    }
  {
    g_autofree char *with = vgpu == NULL ? NULL
      : g_strdup_printf (" with vGPU %s (type %s on %s%s)", vgpu->uuid, vgpu->type_id, vgpu_parent,
                         kd_hv_host_is_simulated (h->hv)
                         ? "; simulated host: the mediated device is not created, test:// cannot make one" : "");
    kd_broker_desktop_event (b, row, actor, "create", NULL, KD_DESKTOP_PROVISIONING,
                             "desktop '%s' is being created on host '%s' from image '%s' and template '%s'%s",
                             name, h->row->name, img->name, tpl->name,
                             hostdevs != NULL ? " with a passthrough GPU" : with != NULL ? with : "");
  }
  kd_broker_busy_set (b, row->id, "create");

  j = g_new0 (KdCreateJob, 1);
  j->task = g_steal_pointer (&task);
  j->actor = g_strdup (actor);
  j->hv = kd_hv_host_ref (h->hv);
  j->row = g_steal_pointer (&row);
  if (vol != NULL)
    j->backing_path = g_strdup (vol->path);
  else if (copy.wait_volume_id != 0)
    j->wait_volume_id = copy.wait_volume_id;
  else
    {
      j->copy_from = kd_hv_host_ref (copy.source->hv);
      j->copy_volume = g_strdup (copy.volume);
      j->copy_spool = g_strdup_printf ("%s/uploads/copy-%s-%s", b->config->state_dir,
                                       h->row->name, copy.volume);
      j->copy_info.format = g_strdup (version->format);
      j->copy_info.virtual_size = version->virtual_size;
      j->copy_vol_id = import_vol->id;
      kd_broker_event (b, "image", img->name, actor, "copy", NULL, NULL,
                       "image '%s' version %" G_GINT64_FORMAT " is being copied from host '%s' to "
                       "host '%s' for desktop '%s'", img->name, img->current_version,
                       copy.source->row->name, h->row->name, name);
    }
  j->backing_format = g_strdup (img->format);
  j->capacity = tpl->disk_gib * KD_GIB;
  j->start = cs->start;
  j->existing_disk = cs->disk_volume != NULL;
  j->domain_type = g_strdup (h->capacity.domain_type ? h->capacity.domain_type : "qemu");
  j->instance_id = g_strdup (kd_store_get_instance_id (b->store));
  j->desktop_id = g_strdup_printf ("%" G_GINT64_FORMAT, j->row->id);
  j->display = g_strdup (tpl->display);
  j->hostdevs = g_steal_pointer (&hostdevs);
  if (vgpu != NULL)
    {
      j->mdev_uuid = g_strdup (vgpu->uuid);
      j->mdev_type = g_strdup (vgpu->type_id);
      j->mdev_parent = g_steal_pointer (&vgpu_parent);
      j->mdevs = g_new0 (char *, 2);
      j->mdevs[0] = g_strdup (vgpu->uuid);
    }
  j->graphics_listen = g_strdup (h->row->graphics_listen ? h->row->graphics_listen : "127.0.0.1");
  /* Nobody is told this password: a viewer gets a one-time one. */
  j->graphics_passwd = kd_random_password (KD_BROKER_VNC_PASSWORD_LEN);
  j->network = g_strdup (tpl->network);
  j->firmware = g_strdup (tpl->firmware);
  j->vcpus = tpl->vcpus;
  j->memory_mib = tpl->memory_mib;
  if (j->wait_volume_id != 0)
    {
      kd_create_wait_for_copy (b, j);
      return;
    }
  kd_broker_run_host_job (b, h->row->name, kd_create_run, kd_create_done, j,
                          (GDestroyNotify) kd_create_job_free);
  return;

fail:
  g_task_return_error (task, g_steal_pointer (&error));
}

KdDesktopRow *
kd_broker_desktop_create_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_pointer (G_TASK (res), error);
}

/* ------------------------------------------------------------------ */
/* power actions, reset, delete */

typedef struct {
  GTask           *task;
  char            *actor;
  KdHvHost        *hv;
  KdDesktopRow    *row;
  KdDesktopAction  action;
  char            *prev_state;
  gint64           shutdown_timeout;
  /* reset */
  char            *backing_path;
  char            *backing_format;
  gint64           capacity;
  gboolean         was_running;
  gboolean         keep_disk;      /* an image edit copy is not the desktop's to delete */
  char           **mdevs;          /* delete: UUIDs of its vGPUs, destroyed after the domain */
  gint64           version;        /* reset: the image version rebuilt on */
  /* results */
  gboolean         forced;
  gboolean         running;
  GError          *error;
} KdActionJob;

static void
kd_action_job_free (KdActionJob *j)
{
  g_clear_object (&j->task);
  g_free (j->actor);
  g_clear_pointer (&j->hv, kd_hv_host_unref);
  kd_desktop_row_free (j->row);
  g_free (j->prev_state);
  g_free (j->backing_path);
  g_free (j->backing_format);
  g_strfreev (j->mdevs);
  g_clear_error (&j->error);
  g_free (j);
}

static void
kd_action_run (gpointer data, GCancellable *cancellable)
{
  KdActionJob *j = data;
  KdHvDomainState st;
  g_autofree char *path = NULL;

  switch (j->action)
    {
    case KD_DESKTOP_ACTION_START:
      st = kd_hv_domain_get_state (j->hv, j->row->domain, &j->error);
      if (j->error)
        return;
      if (st == KD_HV_DOMAIN_MISSING)
        {
          g_set_error (&j->error, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND,
                       "domain '%s' no longer exists on the host", j->row->domain);
          return;
        }
      if (st != KD_HV_DOMAIN_RUNNING && !kd_hv_domain_start (j->hv, j->row->domain, &j->error))
        return;
      j->running = TRUE;
      break;

    case KD_DESKTOP_ACTION_SHUTDOWN:
      if (!kd_hv_domain_shutdown (j->hv, j->row->domain, j->shutdown_timeout, &j->forced,
                                  cancellable, &j->error))
        return;
      break;

    case KD_DESKTOP_ACTION_POWEROFF:
      if (!kd_hv_domain_poweroff (j->hv, j->row->domain, &j->error))
        return;
      break;

    case KD_DESKTOP_ACTION_REBOOT:
      if (!kd_hv_domain_reboot (j->hv, j->row->domain, &j->error))
        return;
      j->running = TRUE;
      break;

    case KD_DESKTOP_ACTION_RESET:
      /* A clean machine: power off, throw the overlay away, make a new
       * one on the image, and boot again if it was running. */
      if (!kd_hv_domain_poweroff (j->hv, j->row->domain, &j->error) ||
          !kd_hv_volume_delete (j->hv, j->row->overlay_volume, TRUE, &j->error) ||
          !kd_hv_overlay_create (j->hv, j->row->overlay_volume, j->backing_path,
                                 j->backing_format, j->capacity, &path, &j->error))
        return;
      if (j->was_running)
        {
          if (!kd_hv_domain_start (j->hv, j->row->domain, &j->error))
            return;
          j->running = TRUE;
        }
      break;

    case KD_DESKTOP_ACTION_DELETE:
      if (!kd_hv_domain_delete (j->hv, j->row->domain, TRUE, &j->error) ||
          (!j->keep_disk && !kd_hv_volume_delete (j->hv, j->row->overlay_volume, TRUE, &j->error)))
        return;
      for (guint i = 0; j->mdevs != NULL && j->mdevs[i] != NULL; i++)
        if (!kd_hv_mdev_destroy (j->hv, j->mdevs[i], &j->error))
          return;
      break;
    }
}

static void
kd_action_done (KdBroker *b, gpointer data)
{
  KdActionJob *j = data;
  KdDesktopRow *row = j->row;
  const char *action = kd_desktop_action_name (j->action);

  kd_broker_busy_clear (b, row->id);
  if (j->error)
    {
      /* The desktop is no longer known to be healthy: say why. */
      g_autofree char *reason = g_strdup_printf ("%s failed: %s", action, j->error->message);
      if (j->action == KD_DESKTOP_ACTION_SHUTDOWN || j->action == KD_DESKTOP_ACTION_POWEROFF)
        kd_broker_desktop_set_state (b, row, j->prev_state, reason, j->actor, action);
      else
        kd_broker_desktop_set_state (b, row, KD_DESKTOP_ERROR, reason, j->actor, action);
      g_task_return_error (j->task, g_steal_pointer (&j->error));
      return;
    }
  switch (j->action)
    {
    case KD_DESKTOP_ACTION_DELETE:
      {
        g_autoptr(GError) error = NULL;
        if (!kd_store_desktop_delete (b->store, row->id, &error))
          {
            g_task_return_error (j->task, g_steal_pointer (&error));
            return;
          }
        kd_broker_display_forget (b, row->id);
        kd_broker_desktop_event (b, row, j->actor, "delete", j->prev_state, NULL,
                                 "desktop '%s' deleted (domain '%s' and its overlay removed)",
                                 row->name, row->domain);
        g_task_return_pointer (j->task, NULL, NULL);
        return;
      }
    case KD_DESKTOP_ACTION_SHUTDOWN:
      kd_broker_desktop_set_state (b, row, KD_DESKTOP_STOPPED,
                                   j->forced ? "the guest did not shut down in time: forced off" : NULL,
                                   j->actor, action);
      break;
    case KD_DESKTOP_ACTION_RESET:
      /* A clean machine has no session; a released one has no user. */
      row->needs_reset = FALSE;
      row->image_version = j->version;
      row->connected_since = 0;
      row->disconnected_at = 0;
      row->last_seen = 0;
      kd_broker_desktop_set_state (b, row, j->running ? kd_broker_desktop_up_state (row) : KD_DESKTOP_STOPPED,
                                   NULL, j->actor, action);
      break;
    case KD_DESKTOP_ACTION_REBOOT:
      kd_broker_desktop_event (b, row, j->actor, "reboot", row->state, row->state,
                               "desktop '%s' was asked to reboot", row->name);
      break;
    default:
      if (!j->running)
        {
          row->connected_since = 0;
          if (row->user_id && row->disconnected_at == 0)
            row->disconnected_at = kd_time_now ();
        }
      kd_broker_desktop_set_state (b, row, j->running ? kd_broker_desktop_up_state (row) : KD_DESKTOP_STOPPED,
                                   NULL, j->actor, action);
      break;
    }
  g_task_return_pointer (j->task, g_steal_pointer (&j->row), (GDestroyNotify) kd_desktop_row_free);
}

/**
 * kd_broker_desktop_action_async:
 * Runs a power action, a reset or a deletion. A desktop with another
 * operation in flight answers KD_ERROR_BUSY.
 */
void
kd_broker_desktop_action_async (KdBroker *b, const char *name, KdDesktopAction action,
                                const char *actor, GAsyncReadyCallback cb, gpointer data)
{
  kd_broker_desktop_action_full_async (b, name, action, -1, actor, cb, data);
}

/**
 * kd_broker_desktop_action_full_async:
 * @reset_power: for a reset: -1 keeps the power state, 0 leaves it off,
 *   1 boots it
 */
void
kd_broker_desktop_action_full_async (KdBroker *b, const char *name, KdDesktopAction action,
                                     int reset_power, const char *actor,
                                     GAsyncReadyCallback cb, gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = kd_store_desktop_get_by_name (b->store, name, &error);
  KdBrokerHost *h;
  KdActionJob *j;
  const char *transient = NULL;

  if (row == NULL)
    goto fail;
  if (kd_broker_desktop_is_busy (b, row->id))
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_BUSY,
                   "desktop '%s' is busy (%s in progress); try again when it is done",
                   name, (char *) g_hash_table_lookup (b->busy, &row->id));
      goto fail;
    }
  h = kd_broker_host_by_id (b, row->host_id);
  if (h == NULL || !kd_broker_host_is_up (h))
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_UNAVAILABLE,
                   "desktop '%s' is on host '%s', which is %s", name,
                   h ? h->row->name : "?", h ? h->state : "unknown");
      goto fail;
    }

  j = g_new0 (KdActionJob, 1);
  j->action = action;
  j->prev_state = g_strdup (row->state);
  switch (action)
    {
    case KD_DESKTOP_ACTION_START:
      if (g_str_equal (row->state, KD_DESKTOP_PROVISIONING))
        goto not_now;
      transient = KD_DESKTOP_STARTING;
      break;
    case KD_DESKTOP_ACTION_SHUTDOWN:
    case KD_DESKTOP_ACTION_POWEROFF:
      if (g_str_equal (row->state, KD_DESKTOP_PROVISIONING))
        goto not_now;
      if (g_str_equal (row->state, KD_DESKTOP_STOPPED))
        {
          /* Nothing to do; answer with the desktop as it is. */
          kd_action_job_free (j);
          g_task_return_pointer (task, g_steal_pointer (&row), (GDestroyNotify) kd_desktop_row_free);
          return;
        }
      transient = KD_DESKTOP_SHUTTING_DOWN;
      j->shutdown_timeout = action == KD_DESKTOP_ACTION_SHUTDOWN ? b->config->shutdown_timeout : 0;
      break;
    case KD_DESKTOP_ACTION_RESET:
      {
        g_autoptr(KdImageRow) img = kd_store_image_get (b->store, row->image_id, &error);
        g_autoptr(KdTemplateRow) tpl = img ? kd_store_template_get (b->store, row->template_id, &error) : NULL;
        g_autoptr(KdImageVolumeRow) vol = tpl ? kd_store_image_volume_get (b->store, img->id, h->row->id, &error) : NULL;
        if (vol == NULL || vol->path == NULL)
          {
            if (error == NULL)
              g_set_error (&error, KD_ERROR, KD_ERROR_FAILED,
                           "the image of desktop '%s' is not ready on host '%s'", name, h->row->name);
            kd_action_job_free (j);
            goto fail;
          }
        if (g_str_equal (row->state, KD_DESKTOP_PROVISIONING))
          goto not_now;
        if (kd_broker_desktop_is_edit (b, row))
          {
            g_set_error (&error, KD_ERROR, KD_ERROR_BUSY,
                         "desktop '%s' edits image '%s': publish or cancel the edit instead of resetting it",
                         name, img->name);
            kd_action_job_free (j);
            goto fail;
          }
        /* A reset rebuilds on the image's current version. */
        j->backing_path = g_strdup (vol->path);
        j->backing_format = g_strdup (img->format);
        j->capacity = tpl->disk_gib * KD_GIB;
        j->version = img->current_version;
        j->was_running = reset_power < 0 ? kd_desktop_state_is_up (row->state) : reset_power > 0;
        transient = KD_DESKTOP_RESETTING;
        break;
      }
    case KD_DESKTOP_ACTION_DELETE:
      transient = KD_DESKTOP_DELETING;
      j->keep_disk = kd_broker_desktop_is_edit (b, row);
      {
        g_autoptr(GPtrArray) vgpus = kd_store_vgpu_list_by_desktop (b->store, row->id, NULL);
        GPtrArray *uuids = g_ptr_array_new ();
        for (guint i = 0; vgpus != NULL && i < vgpus->len; i++)
          g_ptr_array_add (uuids, g_strdup (((KdVgpuRow *) vgpus->pdata[i])->uuid));
        g_ptr_array_add (uuids, NULL);
        j->mdevs = (char **) g_ptr_array_free (uuids, FALSE);
      }
      break;
    case KD_DESKTOP_ACTION_REBOOT:
      if (!kd_desktop_state_is_up (row->state))
        goto not_now;
      transient = NULL;       /* a reboot keeps the state it has */
      break;
    }

  kd_broker_busy_set (b, row->id, kd_desktop_action_name (action));
  if (transient != NULL)
    kd_broker_desktop_set_state (b, row, transient, NULL, actor, kd_desktop_action_name (action));
  j->task = g_steal_pointer (&task);
  j->actor = g_strdup (actor);
  j->hv = kd_hv_host_ref (h->hv);
  j->row = g_steal_pointer (&row);
  kd_broker_run_host_job (b, h->row->name, kd_action_run, kd_action_done, j,
                          (GDestroyNotify) kd_action_job_free);
  return;

not_now:
  g_set_error (&error, KD_ERROR, KD_ERROR_BUSY, "desktop '%s' is %s: cannot %s it now",
               name, row->state, kd_desktop_action_name (action));
  kd_action_job_free (j);
fail:
  g_task_return_error (task, g_steal_pointer (&error));
}

KdDesktopRow *
kd_broker_desktop_action_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_pointer (G_TASK (res), error);
}

/* ------------------------------------------------------------------ */
/* libvirt's view */

/**
 * kd_broker_domain_event:
 * A lifecycle event from a host: keeps the desktop's state honest when the
 * guest powers itself off, crashes, or is started from outside.
 */
void
kd_broker_domain_event (KdHvHost *hv, const char *domain_name, KdHvDomainState state,
                        const char *detail, gpointer user_data)
{
  KdBroker *b = user_data;
  KdBrokerHost *h = g_hash_table_lookup (b->hosts, kd_hv_host_get_name (hv));
  g_autoptr(GPtrArray) desktops = NULL;

  if (h == NULL)
    return;
  desktops = kd_store_desktop_list_by_host (b->store, h->row->id, NULL);
  for (guint i = 0; desktops && i < desktops->len; i++)
    {
      KdDesktopRow *row = desktops->pdata[i];
      if (!g_str_equal (row->domain, domain_name))
        continue;
      if (kd_broker_desktop_is_busy (b, row->id))
        return;           /* the operation in flight will set the state */
      if (state == KD_HV_DOMAIN_CRASHED)
        kd_broker_desktop_set_state (b, row, KD_DESKTOP_ERROR, "the guest crashed", NULL, "event");
      else if (state == KD_HV_DOMAIN_SHUTOFF && kd_desktop_state_is_up (row->state))
        {
          row->connected_since = 0;
          kd_broker_desktop_set_state (b, row, KD_DESKTOP_STOPPED, "the guest powered off", NULL, "event");
        }
      else if (state == KD_HV_DOMAIN_RUNNING && g_str_equal (row->state, KD_DESKTOP_STOPPED))
        kd_broker_desktop_set_state (b, row, kd_broker_desktop_up_state (row), NULL, NULL, "event");
      return;
    }
}

/**
 * kd_broker_desktops_recover:
 * At start, no operation is in flight: a desktop left in the middle of
 * one by a killed daemon cannot be trusted. Creation, reset and deletion
 * become "error" with the reason; starting and shutting-down are settled
 * by the first reconciler pass from libvirt's state.
 */
void
kd_broker_desktops_recover (KdBroker *b)
{
  g_autoptr(GPtrArray) desktops = kd_store_desktop_list (b->store, NULL);
  g_autoptr(GPtrArray) vols = kd_store_image_volume_list (b->store, -1, NULL);

  for (guint i = 0; desktops && i < desktops->len; i++)
    {
      KdDesktopRow *row = desktops->pdata[i];
      const char *reason = NULL;

      if (g_str_equal (row->state, KD_DESKTOP_PROVISIONING))
        reason = "creation was interrupted by a restart of kvmdeskd; delete the desktop and create it again";
      else if (g_str_equal (row->state, KD_DESKTOP_RESETTING) && row->needs_reset)
        {
          /* A released pool desktop: still marked for reset, which the
           * pool manager redoes; it is never handed out before. */
          kd_broker_desktop_set_state (b, row, KD_DESKTOP_STOPPED,
                                       "a reset was interrupted by a restart of kvmdeskd; it will be reset again",
                                       NULL, "recover");
          continue;
        }
      else if (g_str_equal (row->state, KD_DESKTOP_RESETTING))
        reason = "a reset was interrupted by a restart of kvmdeskd; reset it again";
      else if (g_str_equal (row->state, KD_DESKTOP_DELETING))
        reason = "a deletion was interrupted by a restart of kvmdeskd; delete it again";
      if (reason)
        kd_broker_desktop_set_state (b, row, KD_DESKTOP_ERROR, reason, NULL, "recover");
    }
  for (guint i = 0; vols && i < vols->len; i++)
    {
      KdImageVolumeRow *v = vols->pdata[i];
      if (g_str_equal (v->state, "importing"))
        {
          g_autoptr(KdImageRow) img = kd_store_image_get (b->store, v->image_id, NULL);
          g_free (v->state);
          v->state = g_strdup ("error");
          g_free (v->error);
          v->error = g_strdup ("the import was interrupted by a restart of kvmdeskd; delete the image and import it again");
          kd_store_image_volume_update (b->store, v, NULL);
          kd_create_release_waiters (b, v->id, v->path, NULL);
          kd_broker_event (b, "image", img ? img->name : "?", NULL, "recover", "importing", "error",
                           "%s", v->error);
        }
    }
}

