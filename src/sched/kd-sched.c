/*
 * kd-sched.c: placement over a capacity snapshot (see kd-sched.h). Pure:
 * the only state is what the caller passes in. One placement is a linear
 * pass over the hosts (10,000 desktops over 1,000 hosts is 10^7 cheap
 * checks); the allowed-host list is hashed once per call.
 */
#include "sched/kd-sched.h"

#include <math.h>
#include <string.h>

G_DEFINE_QUARK (kd-sched-error-quark, kd_sched_error)

#define KD_GIB (1024.0 * 1024.0 * 1024.0)

/* Why a host was refused, for counting the hosts not named one by one. */
typedef enum {
  KD_REFUSE_NONE,
  KD_REFUSE_DOWN,
  KD_REFUSE_MAINTENANCE,
  KD_REFUSE_NOT_ALLOWED,
  KD_REFUSE_LABEL,
  KD_REFUSE_IMAGE,
  KD_REFUSE_GPU,
  KD_REFUSE_VGPU,
  KD_REFUSE_CPU,
  KD_REFUSE_MEMORY,
  KD_REFUSE_DISK,
  KD_REFUSE_N
} KdRefusal;

static const char *const kd_refusal_words[KD_REFUSE_N] = {
  "", "down", "maintenance", "not in the pool's hosts", "missing label", "no image",
  "no free GPU", "no free vGPU", "vCPUs", "memory", "disk",
};

static double
ratio_or (double ratio, double fallback)
{
  return ratio > 0 ? ratio : fallback;
}

static gint64
cpu_limit (const KdSchedHost *h)
{
  return (gint64) floor ((double) h->cpus * ratio_or (h->cpu_ratio, KD_SCHED_CPU_RATIO_DEFAULT));
}

static gint64
memory_limit (const KdSchedHost *h)
{
  return (gint64) ((double) h->memory_bytes * ratio_or (h->memory_ratio, KD_SCHED_MEMORY_RATIO_DEFAULT))
         - h->memory_reserved_bytes;
}

static gint64
disk_limit (const KdSchedHost *h)
{
  return (gint64) ((double) h->disk_bytes * ratio_or (h->disk_ratio, KD_SCHED_DISK_RATIO_DEFAULT));
}

/**
 * kd_sched_host_free_memory:
 * Returns: the memory still free for desktops (may be negative when the
 * host is over its limit already).
 */
gint64
kd_sched_host_free_memory (const KdSchedHost *h)
{
  return memory_limit (h) - h->used_memory_bytes;
}

/**
 * kd_sched_host_gpus_free:
 * Returns: the whole GPUs free on @h: from its GPU list when it has one,
 * else its ->gpus_free count.
 */
gint64
kd_sched_host_gpus_free (const KdSchedHost *h)
{
  gint64 n = 0;

  if (h->n_gpus == 0)
    return h->gpus_free;
  for (guint i = 0; i < h->n_gpus; i++)
    if (!h->gpus[i].taken && h->gpus[i].vgpus == 0)
      n++;
  return n;
}

static gint64
gpu_instances (const KdSchedGpu *g, const char *type)
{
  for (guint t = 0; t < g->n_types; t++)
    if (g_strcmp0 (g->types[t].type_id, type) == 0)
      return g->types[t].instances;
  return 0;
}

gint
kd_sched_vgpu_pick (const KdSchedHost *h, const char *type)
{
  gint best = -1;

  if (type == NULL)
    return -1;
  for (guint i = 0; i < h->n_gpus; i++)
    {
      const KdSchedGpu *g = &h->gpus[i];
      if (g->taken || (g->vgpus > 0 && g_strcmp0 (g->vgpu_type, type) != 0) ||
          g->vgpus >= gpu_instances (g, type))
        continue;
      if (best < 0 || g->vgpus > h->gpus[best].vgpus)
        best = (gint) i;
    }
  return best;
}

static gboolean
offers_type (const KdSchedHost *h, const char *type)
{
  for (guint i = 0; i < h->n_gpus; i++)
    if (gpu_instances (&h->gpus[i], type) > 0)
      return TRUE;
  return FALSE;
}

static gboolean
has_label (const KdSchedHost *h, const char *label)
{
  for (guint i = 0; h->labels != NULL && h->labels[i] != NULL; i++)
    if (g_str_equal (h->labels[i], label))
      return TRUE;
  return FALSE;
}

/* Checks every filter but the allowed-host list; the first failing one
 * wins, in the order an operator fixes them. @why may be NULL. */
static KdRefusal
check_host (const KdSchedHost *h, const KdSchedRequest *req, GString *why)
{
  if (!h->up)
    {
      if (why)
        g_string_append (why, "down");
      return KD_REFUSE_DOWN;
    }
  if (h->maintenance)
    {
      if (why)
        g_string_append (why, "maintenance");
      return KD_REFUSE_MAINTENANCE;
    }
  for (guint i = 0; req->labels != NULL && req->labels[i] != NULL; i++)
    if (!has_label (h, req->labels[i]))
      {
        if (why)
          g_string_append_printf (why, "no label '%s'", req->labels[i]);
        return KD_REFUSE_LABEL;
      }
  if (!h->has_image && !h->image_importing && !h->image_importable)
    {
      if (why)
        g_string_append (why, "does not hold the image and cannot import it");
      return KD_REFUSE_IMAGE;
    }
  if (req->gpus > 0 && kd_sched_host_gpus_free (h) < req->gpus)
    {
      gint64 n = kd_sched_host_gpus_free (h);
      if (why)
        g_string_append_printf (why, "%" G_GINT64_FORMAT " free GPU%s, needs %" G_GINT64_FORMAT,
                                n, n == 1 ? "" : "s", req->gpus);
      return KD_REFUSE_GPU;
    }
  if (req->vgpu_type != NULL && kd_sched_vgpu_pick (h, req->vgpu_type) < 0)
    {
      if (why && !offers_type (h, req->vgpu_type))
        g_string_append_printf (why, "no GPU offers vGPU type %s", req->vgpu_type);
      else if (why)
        g_string_append_printf (why, "no free vGPU of type %s", req->vgpu_type);
      return KD_REFUSE_VGPU;
    }
  if (h->used_vcpus + req->vcpus > cpu_limit (h))
    {
      if (why)
        g_string_append_printf (why, "vCPUs %" G_GINT64_FORMAT "/%" G_GINT64_FORMAT
                                " used, needs %" G_GINT64_FORMAT,
                                h->used_vcpus, cpu_limit (h), req->vcpus);
      return KD_REFUSE_CPU;
    }
  if (h->used_memory_bytes + req->memory_bytes > memory_limit (h))
    {
      if (why)
        g_string_append_printf (why, "memory %.1f/%.1f GiB used, needs %.1f",
                                h->used_memory_bytes / KD_GIB, MAX (memory_limit (h), 0) / KD_GIB,
                                req->memory_bytes / KD_GIB);
      return KD_REFUSE_MEMORY;
    }
  if (h->used_disk_bytes + req->disk_bytes > disk_limit (h))
    {
      if (why)
        g_string_append_printf (why, "disk %.1f/%.1f GiB used, needs %.1f",
                                h->used_disk_bytes / KD_GIB, disk_limit (h) / KD_GIB,
                                req->disk_bytes / KD_GIB);
      return KD_REFUSE_DISK;
    }
  return KD_REFUSE_NONE;
}

/**
 * kd_sched_host_refusal:
 * Returns: (transfer full) (nullable): why @host cannot take a desktop of
 * @req (its allowed-host list aside), or %NULL when it can.
 */
char *
kd_sched_host_refusal (const KdSchedHost *host, const KdSchedRequest *req)
{
  g_autoptr(GString) why = g_string_new (NULL);

  if (check_host (host, req, why) == KD_REFUSE_NONE)
    return NULL;
  return g_string_free (g_steal_pointer (&why), FALSE);
}

void
kd_sched_commit (KdSchedHost *host, const KdSchedRequest *req)
{
  host->used_vcpus += req->vcpus;
  host->used_memory_bytes += req->memory_bytes;
  host->used_disk_bytes += req->disk_bytes;
  if (host->n_gpus == 0)
    host->gpus_free -= req->gpus;
  else
    {
      gint64 left = req->gpus;
      for (guint i = 0; i < host->n_gpus && left > 0; i++)
        if (!host->gpus[i].taken && host->gpus[i].vgpus == 0)
          {
            host->gpus[i].taken = TRUE;
            left--;
          }
    }
  if (req->vgpu_type != NULL)
    {
      gint g = kd_sched_vgpu_pick (host, req->vgpu_type);
      if (g >= 0)
        {
          host->gpus[g].vgpus++;
          host->gpus[g].vgpu_type = req->vgpu_type;
        }
    }
  host->desktops++;
}

/* ---- one call's context: the allowed list, hashed once ---- */

typedef struct {
  GHashTable *by_name;   /* host name -> index + 1 (only when a list is given) */
  GPtrArray  *list;      /* the allowed hosts, in order, that exist: gint index + 1 */
  guint8     *mask;      /* per host index: 1 when allowed (only when a list is given) */
} KdPlaceContext;

static gboolean
has_list (const KdSchedRequest *req)
{
  return req->allowed_hosts != NULL && req->allowed_hosts[0] != NULL;
}

static void
context_init (KdPlaceContext *ctx, const KdSchedHost *hosts, guint n, const KdSchedRequest *req)
{
  memset (ctx, 0, sizeof *ctx);
  if (!has_list (req))
    return;
  ctx->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < n; i++)
    g_hash_table_insert (ctx->by_name, (gpointer) hosts[i].name, GUINT_TO_POINTER (i + 1));
  ctx->list = g_ptr_array_new ();
  ctx->mask = g_new0 (guint8, MAX (n, 1));
  for (guint i = 0; req->allowed_hosts[i] != NULL; i++)
    {
      gpointer idx = g_hash_table_lookup (ctx->by_name, req->allowed_hosts[i]);
      if (idx != NULL && !ctx->mask[GPOINTER_TO_UINT (idx) - 1])
        {
          g_ptr_array_add (ctx->list, idx);
          ctx->mask[GPOINTER_TO_UINT (idx) - 1] = 1;
        }
    }
}

static void
context_clear (KdPlaceContext *ctx)
{
  g_clear_pointer (&ctx->by_name, g_hash_table_unref);
  g_clear_pointer (&ctx->list, g_ptr_array_unref);
  g_clear_pointer (&ctx->mask, g_free);
}

static gboolean
allowed (const KdPlaceContext *ctx, guint index)
{
  return ctx->mask == NULL || ctx->mask[index];
}

/* TRUE when @a is a better choice than @b. */
static gboolean
better (const KdSchedHost *a, const KdSchedHost *b, KdSchedWeigher weigher)
{
  gint64 fa = kd_sched_host_free_memory (a), fb = kd_sched_host_free_memory (b);

  if (fa != fb)
    return weigher == KD_SCHED_PACK ? fa < fb : fa > fb;
  if (a->desktops != b->desktops)
    return weigher == KD_SCHED_PACK ? a->desktops > b->desktops : a->desktops < b->desktops;
  return g_strcmp0 (a->name, b->name) < 0;   /* stable: the same answer every time */
}

/* The refusal message: each host and why, the first
 * KD_SCHED_REFUSALS_NAMED by name, the rest counted by reason. Hosts
 * outside the pool's list are only counted. */
static void
set_refusal (const KdSchedHost *hosts, guint n, const KdSchedRequest *req,
             const KdPlaceContext *ctx, GError **error)
{
  g_autoptr(GString) msg = g_string_new (NULL);
  guint counts[KD_REFUSE_N] = { 0 };
  guint named = 0, counted = 0, outside = 0;

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GString) why = g_string_new (NULL);
      KdRefusal r;

      if (!allowed (ctx, i))
        {
          outside++;
          continue;
        }
      r = check_host (&hosts[i], req, why);
      if (named < KD_SCHED_REFUSALS_NAMED)
        {
          g_string_append_printf (msg, "%s%s: %s", named ? "; " : "", hosts[i].name, why->str);
          named++;
        }
      else
        {
          counts[r]++;
          counted++;
        }
    }
  if (counted > 0)
    {
      gboolean first = TRUE;
      g_string_append_printf (msg, "; and %u more (", counted);
      for (guint r = 1; r < KD_REFUSE_N; r++)
        if (counts[r] > 0)
          {
            g_string_append_printf (msg, "%s%u %s", first ? "" : ", ", counts[r], kd_refusal_words[r]);
            first = FALSE;
          }
      g_string_append (msg, ")");
    }
  if (named == 0)
    g_string_append (msg, n == 0 ? "there are no hosts"
                                 : "none of the pool's hosts exists");
  if (outside > 0 && named > 0)
    g_string_append_printf (msg, "; %u other host%s not in the pool's list", outside,
                            outside == 1 ? " is" : "s are");
  g_set_error (error, KD_SCHED_ERROR, KD_SCHED_ERROR_NO_HOST, "no host can take the desktop: %s",
               msg->str);
}

static gint
place_one (const KdSchedHost *hosts, guint n, KdSchedRequest *req, const KdPlaceContext *ctx)
{
  gint best = -1;

  if (req->round_robin && ctx->list != NULL && ctx->list->len > 0)
    {
      guint len = ctx->list->len;
      for (guint k = 0; k < len; k++)
        {
          guint pos = (req->rr_next + k) % len;
          guint index = GPOINTER_TO_UINT (ctx->list->pdata[pos]) - 1;
          if (check_host (&hosts[index], req, NULL) == KD_REFUSE_NONE)
            {
              req->rr_next = (pos + 1) % len;
              return (gint) index;
            }
        }
      return -1;
    }
  for (guint i = 0; i < n; i++)
    {
      if (!allowed (ctx, i) || check_host (&hosts[i], req, NULL) != KD_REFUSE_NONE)
        continue;
      if (best < 0 || better (&hosts[i], &hosts[best], req->weigher))
        best = (gint) i;
    }
  return best;
}

static gboolean
check_request (const KdSchedRequest *req, GError **error)
{
  if (req->vcpus < 0 || req->memory_bytes < 0 || req->disk_bytes < 0 || req->gpus < 0)
    {
      g_set_error (error, KD_SCHED_ERROR, KD_SCHED_ERROR_INVALID,
                   "a desktop cannot need a negative amount of anything");
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_sched_place:
 * @hosts: the snapshot
 * @req: the desktop; ->rr_next advances past the chosen host when
 *   ->round_robin
 *
 * Returns: the index of the chosen host, or -1 with an error naming every
 * host (up to KD_SCHED_REFUSALS_NAMED) and why it refused.
 */
gint
kd_sched_place (const KdSchedHost *hosts, guint n_hosts, KdSchedRequest *req, GError **error)
{
  KdPlaceContext ctx;
  gint chosen;

  if (!check_request (req, error))
    return -1;
  context_init (&ctx, hosts, n_hosts, req);
  chosen = place_one (hosts, n_hosts, req, &ctx);
  if (chosen < 0)
    set_refusal (hosts, n_hosts, req, &ctx, error);
  context_clear (&ctx);
  return chosen;
}

/**
 * kd_sched_place_many:
 *
 * Returns: how many of @count desktops were placed (and committed to
 * @hosts); the first that could not be placed stops it, with one error.
 */
guint
kd_sched_place_many (KdSchedHost *hosts, guint n_hosts, KdSchedRequest *req, guint count,
                     gint *out_indexes, GError **error)
{
  KdPlaceContext ctx;
  guint placed = 0;

  if (!check_request (req, error))
    return 0;
  context_init (&ctx, hosts, n_hosts, req);
  for (; placed < count; placed++)
    {
      gint chosen = place_one (hosts, n_hosts, req, &ctx);
      if (chosen < 0)
        {
          set_refusal (hosts, n_hosts, req, &ctx, error);
          break;
        }
      kd_sched_commit (&hosts[chosen], req);
      out_indexes[placed] = chosen;
    }
  context_clear (&ctx);
  return placed;
}
