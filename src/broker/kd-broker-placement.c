/*
 * kd-broker-placement.c: where a new desktop goes, and what hosts say
 * about their use. Builds the scheduler's snapshot (src/sched) from the
 * hosts' capacity as libvirt last reported it, their placement settings,
 * and the desktops the database places on them (every desktop counts,
 * running or not: a stopped persistent desktop will start there), then
 * applies the scheduler's choice. Host settings (maintenance, overcommit,
 * reserve, labels) are validated and changed here too.
 */
#include "kd-broker-priv.h"

#include "common/kd-error.h"
#include "common/kd-name.h"
#include "sched/kd-sched.h"

#include <string.h>

#define KD_HOST_LABELS_MAX 16
#define KD_GIB             (G_GINT64_CONSTANT (1) << 30)

static gint
kd_compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* ---- labels ---- */

/**
 * kd_broker_labels_normalize:
 * @labels: (nullable): names, each a kvmdesk name
 *
 * Returns: (transfer full): the labels joined with ',' (sorted, no
 * duplicates; "" for none), or %NULL with KD_ERROR_INVALID.
 */
char *
kd_broker_labels_normalize (const char *const *labels, GError **error)
{
  g_autoptr(GPtrArray) sorted = g_ptr_array_new ();
  g_autoptr(GString) out = g_string_new (NULL);

  for (guint i = 0; labels != NULL && labels[i] != NULL; i++)
    {
      if (!kd_name_validate ("label", labels[i], error))
        return NULL;
      if (!g_ptr_array_find_with_equal_func (sorted, labels[i], g_str_equal, NULL))
        g_ptr_array_add (sorted, (gpointer) labels[i]);
    }
  if (sorted->len > KD_HOST_LABELS_MAX)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "at most %d labels, not %u", KD_HOST_LABELS_MAX,
                   sorted->len);
      return NULL;
    }
  g_ptr_array_sort (sorted, kd_compare_strings);
  for (guint i = 0; i < sorted->len; i++)
    g_string_append_printf (out, "%s%s", i ? "," : "", (const char *) sorted->pdata[i]);
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* "a,b" -> { "a", "b", NULL }; "" or NULL -> { NULL }. */
char **
kd_broker_labels_split (const char *joined)
{
  if (joined == NULL || *joined == '\0')
    return g_new0 (char *, 1);
  return g_strsplit (joined, ",", -1);
}

/* ---- host settings ---- */

/**
 * kd_broker_host_check_settings:
 * Ranges of a host's placement settings (ratios, reserve).
 */
gboolean
kd_broker_host_check_settings (const KdHostRow *row, gint64 memory_bytes, GError **error)
{
  static const struct { const char *what; gsize offset; double min, max; } ratios[] = {
    { "cpu_ratio", G_STRUCT_OFFSET (KdHostRow, cpu_ratio), 0.1, 64.0 },
    { "memory_ratio", G_STRUCT_OFFSET (KdHostRow, memory_ratio), 0.1, 4.0 },
    { "disk_ratio", G_STRUCT_OFFSET (KdHostRow, disk_ratio), 0.1, 100.0 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (ratios); i++)
    {
      double v = G_STRUCT_MEMBER (double, row, ratios[i].offset);
      if (!(v >= ratios[i].min && v <= ratios[i].max))
        {
          g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "%s %g is out of range (%g to %g)",
                       ratios[i].what, v, ratios[i].min, ratios[i].max);
          return FALSE;
        }
    }
  if (row->memory_reserved < 0 || (memory_bytes > 0 && row->memory_reserved >= memory_bytes))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "memory_reserved_mib %" G_GINT64_FORMAT " must be at least 0 and less than the "
                   "host's memory", row->memory_reserved / (1024 * 1024));
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_broker_host_set:
 * Changes the settings @s says it sets on host @name; records an event.
 */
KdBrokerHost *
kd_broker_host_set (KdBroker *b, const char *name, const KdHostSettings *s, const char *actor,
                    GError **error)
{
  KdBrokerHost *h = kd_broker_host_lookup (b, name, error);
  g_autoptr(KdHostRow) row = NULL;
  g_autoptr(GString) what = g_string_new (NULL);

  if (h == NULL)
    return NULL;
  row = g_new0 (KdHostRow, 1);
  *row = *h->row;
  row->name = g_strdup (h->row->name);
  row->uri = g_strdup (h->row->uri);
  row->graphics_listen = g_strdup (h->row->graphics_listen);
  row->console_access = g_strdup (h->row->console_access);
  row->labels = g_strdup (h->row->labels);
  row->migration = g_strdup (h->row->migration);
  if (s->has_maintenance)
    {
      row->maintenance = s->maintenance;
      g_string_append_printf (what, " maintenance %s", s->maintenance ? "on" : "off");
      if (!s->maintenance && row->draining)
        g_string_append (what, " (its drain ends)");
      if (s->maintenance && s->draining && !row->draining)
        g_string_append (what, " draining");
      row->draining = s->maintenance && (s->draining || row->draining);
    }
  if (s->migration != NULL)
    {
      if (!g_str_equal (s->migration, "live") && !g_str_equal (s->migration, "cold"))
        {
          g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "migration must be 'live' or 'cold', not '%s'",
                       s->migration);
          return NULL;
        }
      g_free (row->migration);
      row->migration = g_strdup (s->migration);
      g_string_append_printf (what, " migration %s", s->migration);
    }
  if (s->cpu_ratio > 0)
    {
      row->cpu_ratio = s->cpu_ratio;
      g_string_append_printf (what, " cpu_ratio %g", s->cpu_ratio);
    }
  if (s->memory_ratio > 0)
    {
      row->memory_ratio = s->memory_ratio;
      g_string_append_printf (what, " memory_ratio %g", s->memory_ratio);
    }
  if (s->disk_ratio > 0)
    {
      row->disk_ratio = s->disk_ratio;
      g_string_append_printf (what, " disk_ratio %g", s->disk_ratio);
    }
  if (s->memory_reserved >= 0)
    {
      row->memory_reserved = s->memory_reserved;
      g_string_append_printf (what, " memory_reserved %" G_GINT64_FORMAT " MiB",
                              s->memory_reserved / (1024 * 1024));
    }
  if (s->labels != NULL)
    {
      g_autofree char *joined = kd_broker_labels_normalize ((const char *const *) s->labels, error);
      if (joined == NULL)
        return NULL;
      g_free (row->labels);
      row->labels = g_steal_pointer (&joined);
      g_string_append_printf (what, " labels '%s'", row->labels);
    }
  if (what->len == 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "nothing to change on host '%s'", name);
      return NULL;
    }
  if (!kd_broker_host_check_settings (row, h->have_capacity ? h->capacity.memory_bytes : 0, error) ||
      !kd_store_host_update (b->store, row, error))
    return NULL;
  kd_host_row_free (h->row);
  h->row = g_steal_pointer (&row);
  kd_broker_event (b, "host", name, actor, "update", h->state, h->state, "host '%s' changed:%s",
                   name, what->str);
  kd_broker_pools_kick (b);
  return h;
}

/* ---- the snapshot ---- */

/* What the desktops on each host use, by host id. */
typedef struct {
  gint64 vcpus, memory, disk, desktops;
} KdHostUse;

/* @host_id: one host's desktops only (a host's view), or 0 for all (a
 * placement). */
static GHashTable *
kd_placement_use (KdBroker *b, gint64 host_id)
{
  g_autoptr(GPtrArray) desktops = host_id != 0 ? kd_store_desktop_list_by_host (b->store, host_id, NULL)
                                               : kd_store_desktop_list (b->store, NULL);
  g_autoptr(GHashTable) templates = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL,
                                                           (GDestroyNotify) kd_template_row_free);
  GHashTable *use = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);

  for (guint i = 0; desktops != NULL && i < desktops->len; i++)
    {
      KdDesktopRow *d = desktops->pdata[i];
      KdTemplateRow *tpl;
      KdHostUse *u;

      if (d->host_id == 0)
        continue;
      tpl = g_hash_table_lookup (templates, &d->template_id);
      if (tpl == NULL)
        {
          tpl = kd_store_template_get (b->store, d->template_id, NULL);
          if (tpl == NULL)
            continue;
          g_hash_table_insert (templates, &tpl->id, tpl);
        }
      u = g_hash_table_lookup (use, &d->host_id);
      if (u == NULL)
        {
          gint64 *key = g_new (gint64, 1);
          *key = d->host_id;
          u = g_new0 (KdHostUse, 1);
          g_hash_table_insert (use, key, u);
        }
      u->vcpus += tpl->vcpus;
      u->memory += tpl->memory_mib * 1024 * 1024;
      u->disk += tpl->disk_gib * KD_GIB;
      u->desktops++;
    }
  return use;
}

/**
 * kd_broker_host_use:
 * What the desktops placed on @h use, and its limits.
 */
void
kd_broker_host_use (KdBroker *b, KdBrokerHost *h, KdBrokerHostUse *out)
{
  g_autoptr(GHashTable) use = kd_placement_use (b, h->row->id);
  KdHostUse *u = g_hash_table_lookup (use, &h->row->id);

  memset (out, 0, sizeof *out);
  if (u != NULL)
    {
      out->vcpus = u->vcpus;
      out->memory_bytes = u->memory;
      out->disk_bytes = u->disk;
      out->desktops = u->desktops;
    }
  if (h->have_capacity)
    {
      out->vcpus_limit = (gint64) (h->capacity.cpus * h->row->cpu_ratio);
      out->memory_limit = (gint64) (h->capacity.memory_bytes * h->row->memory_ratio)
                          - h->row->memory_reserved;
      out->disk_limit = h->capacity.pool_capacity > 0
                        ? (gint64) (h->capacity.pool_capacity * h->row->disk_ratio) : 0;
    }
}

/**
 * kd_broker_place:
 * @img: the image the desktop is a clone of (its current version must be
 *   ready on the host)
 * @pool: (nullable): the pool (allowed hosts, labels, placement)
 * @allowed: (nullable): allowed host ids (the pool's)
 *
 * Returns: (transfer none): the host for a new desktop of @tpl, with
 * *@out_vol its image volume; %NULL with KD_ERROR_UNAVAILABLE naming each
 * host and why it refused.
 */
void
kd_image_copy_clear (KdImageCopy *copy)
{
  g_clear_pointer (&copy->volume, g_free);
  copy->source = NULL;
}

static gboolean
kd_volume_is_current (const KdImageVolumeRow *v, const KdImageRow *img)
{
  return v->version == 0 || v->version == img->current_version;
}

KdBrokerHost *
kd_broker_place (KdBroker *b, KdImageRow *img, KdTemplateRow *tpl, KdPoolRow *pool,
                 GArray *allowed, KdImageVolumeRow **out_vol, KdImageCopy *out_copy, GError **error)
{
  KdBrokerHost *real_source = NULL, *simulated_source = NULL;
  const char *real_volume = NULL, *simulated_volume = NULL;
  g_autoptr(GPtrArray) hosts = kd_broker_host_list (b);
  g_autoptr(GHashTable) use = kd_placement_use (b, 0);
  g_autoptr(KdBrokerGpuSnapshot) gpus = kd_broker_gpu_snapshot_new (b, -1);
  g_autoptr(GPtrArray) vols = kd_store_image_volume_list (b->store, img->id, error);
  g_autofree KdSchedHost *snap = NULL;
  g_autoptr(GPtrArray) label_vectors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  g_autoptr(GPtrArray) allowed_names = g_ptr_array_new ();
  g_auto(GStrv) want_labels = NULL;
  g_autoptr(GError) local = NULL;
  KdSchedRequest req = { 0 };
  guint *cursor = NULL;
  gint chosen;

  if (vols == NULL)
    return NULL;
  snap = g_new0 (KdSchedHost, MAX (hosts->len, 1));
  /* Where the current version can be copied from: a host that is up and
   * holds it (a simulated one only feeds simulated hosts). */
  for (guint k = 0; k < vols->len; k++)
    {
      KdImageVolumeRow *v = vols->pdata[k];
      KdBrokerHost *src = kd_broker_host_by_id (b, v->host_id);
      if (src == NULL || !kd_broker_host_is_up (src) || !g_str_equal (v->state, "ready") ||
          !kd_volume_is_current (v, img))
        continue;
      if (kd_hv_host_is_simulated (src->hv) && simulated_source == NULL)
        {
          simulated_source = src;
          simulated_volume = v->volume;
        }
      else if (!kd_hv_host_is_simulated (src->hv) && real_source == NULL)
        {
          real_source = src;
          real_volume = v->volume;
        }
    }
  for (guint i = 0; i < hosts->len; i++)
    {
      KdBrokerHost *h = hosts->pdata[i];
      KdHostUse *u = g_hash_table_lookup (use, &h->row->id);
      char **labels = kd_broker_labels_split (h->row->labels);
      KdSchedHost *s = &snap[i];

      g_ptr_array_add (label_vectors, labels);
      s->name = h->row->name;
      s->up = kd_broker_host_is_up (h) && h->have_capacity;
      s->maintenance = h->row->maintenance;
      s->cpus = h->capacity.cpus;
      s->memory_bytes = h->capacity.memory_bytes;
      s->disk_bytes = h->capacity.pool_capacity > 0 ? h->capacity.pool_capacity : 0;
      s->cpu_ratio = h->row->cpu_ratio;
      s->memory_ratio = h->row->memory_ratio;
      s->disk_ratio = h->row->disk_ratio;
      s->memory_reserved_bytes = h->row->memory_reserved;
      if (u != NULL)
        {
          s->used_vcpus = u->vcpus;
          s->used_memory_bytes = u->memory;
          s->used_disk_bytes = u->disk;
          s->desktops = u->desktops;
        }
      s->labels = (const char *const *) labels;
      kd_broker_gpu_snapshot_host (gpus, h->row->id, &s->gpus, &s->n_gpus);
      for (guint k = 0; k < vols->len; k++)
        {
          KdImageVolumeRow *v = vols->pdata[k];
          if (v->host_id != h->row->id || !kd_volume_is_current (v, img))
            continue;
          if (g_str_equal (v->state, "ready"))
            s->has_image = TRUE;
          else if (g_str_equal (v->state, "importing"))
            s->image_importing = TRUE;
        }
      /* A real host is fed by a real one; a simulated host by either. */
      s->image_importable = real_source != NULL ||
                            (simulated_source != NULL && kd_hv_host_is_simulated (h->hv));
      if (allowed != NULL)
        for (guint k = 0; k < allowed->len; k++)
          if (g_array_index (allowed, gint64, k) == h->row->id)
            g_ptr_array_add (allowed_names, (gpointer) h->row->name);
    }
  g_ptr_array_add (allowed_names, NULL);
  req.vcpus = tpl->vcpus;
  req.memory_bytes = tpl->memory_mib * 1024 * 1024;
  req.disk_bytes = tpl->disk_gib * KD_GIB;
  req.gpus = tpl->gpus;
  req.vgpu_type = tpl->gpu_mdev != NULL && *tpl->gpu_mdev != '\0' ? tpl->gpu_mdev : NULL;
  req.allowed_hosts = allowed != NULL && allowed->len > 0
                      ? (const char *const *) allowed_names->pdata : NULL;
  if (pool != NULL)
    {
      want_labels = kd_broker_labels_split (pool->host_labels);
      req.labels = (const char *const *) want_labels;
      req.weigher = pool->placement != NULL && g_str_equal (pool->placement, "pack")
                    ? KD_SCHED_PACK : KD_SCHED_SPREAD;
      if (pool->placement != NULL && g_str_equal (pool->placement, "round-robin") &&
          req.allowed_hosts != NULL)
        {
          cursor = g_hash_table_lookup (b->rr_cursors, &pool->id);
          if (cursor == NULL)
            {
              gint64 *key = g_new (gint64, 1);
              *key = pool->id;
              cursor = g_new0 (guint, 1);
              g_hash_table_insert (b->rr_cursors, key, cursor);
            }
          req.round_robin = TRUE;
          req.rr_next = *cursor;
        }
    }
  chosen = kd_sched_place (snap, hosts->len, &req, &local);
  if (chosen < 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_UNAVAILABLE, "image '%s', template '%s'%s%s%s: %s",
                   img->name, tpl->name, pool ? " (pool '" : "", pool ? pool->name : "",
                   pool ? "')" : "", local->message);
      return NULL;
    }
  if (cursor != NULL)
    *cursor = req.rr_next;
  for (guint k = 0; k < vols->len; k++)
    {
      KdImageVolumeRow *v = vols->pdata[k];
      KdBrokerHost *h = hosts->pdata[chosen];
      if (v->host_id == h->row->id && g_str_equal (v->state, "ready") && kd_volume_is_current (v, img))
        {
          *out_vol = g_ptr_array_steal_index (vols, k);
          return h;
        }
    }
  /* Chosen for its room; the image is on its way there, or copied
   * there first. */
  for (guint k = 0; k < vols->len; k++)
    {
      KdImageVolumeRow *v = vols->pdata[k];
      KdBrokerHost *h = hosts->pdata[chosen];
      if (v->host_id == h->row->id && g_str_equal (v->state, "importing") && kd_volume_is_current (v, img))
        {
          *out_vol = NULL;
          if (out_copy != NULL)
            out_copy->wait_volume_id = v->id;
          return h;
        }
    }
  {
    KdBrokerHost *h = hosts->pdata[chosen];
    gboolean use_real = real_source != NULL;

    if (use_real || (simulated_source != NULL && kd_hv_host_is_simulated (h->hv)))
      {
        *out_vol = NULL;
        if (out_copy != NULL)
          {
            out_copy->source = use_real ? real_source : simulated_source;
            out_copy->volume = g_strdup (use_real ? real_volume : simulated_volume);
          }
        return h;
      }
  }
  g_set_error (error, KD_ERROR, KD_ERROR_FAILED, "host '%s' lost image '%s' while it was chosen",
               ((KdBrokerHost *) hosts->pdata[chosen])->row->name, img->name);
  return NULL;
}
