/*
 * kd-broker-gpus.c: passthrough GPUs of hosts. An operator lists each
 * GPU as the PCI addresses of its functions; they are checked against the
 * host's node devices (each exists, one IOMMU group holding nothing that
 * is not passed through) and stored with their product and driver. A
 * desktop whose template asks for GPUs gets free ones of its host when it
 * is created; they are freed when it is deleted. A GPU offering mediated
 * device types may instead be shared as vGPUs: a desktop whose template
 * names a type gets one instance (a mediated device with a UUID kvmdesk
 * chooses); a GPU is never passed through whole while it runs vGPUs.
 */
#include "kd-broker-priv.h"

#include "common/kd-error.h"

#include <string.h>

#define KD_HOST_GPUS_MAX      64
#define KD_GPU_FUNCTIONS_MAX  8

/**
 * kd_broker_gpus_parse:
 * @specs: (element-type GStrv): one address list per GPU
 *
 * Returns: (transfer full) (element-type GStrv): the same with canonical
 * addresses, or %NULL with KD_ERROR_INVALID (bad address, an address in
 * two GPUs, too many).
 */
GPtrArray *
kd_broker_gpus_parse (GPtrArray *specs, GError **error)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  if (specs->len > KD_HOST_GPUS_MAX)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "at most %d GPUs per host", KD_HOST_GPUS_MAX);
      return NULL;
    }
  for (guint i = 0; i < specs->len; i++)
    {
      char **in = specs->pdata[i];
      GPtrArray *canon = g_ptr_array_new ();
      guint n = in ? g_strv_length (in) : 0;

      if (n == 0 || n > KD_GPU_FUNCTIONS_MAX)
        {
          g_ptr_array_free (canon, TRUE);
          g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                       "a GPU is 1 to %d PCI addresses (its functions)", KD_GPU_FUNCTIONS_MAX);
          return NULL;
        }
      for (guint k = 0; k < n; k++)
        {
          g_autoptr(GError) local = NULL;
          char *a = kd_hv_pci_address_parse (in[k], &local);
          if (a == NULL || g_hash_table_contains (seen, a))
            {
              g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "%s",
                           a ? "a PCI address may belong to one GPU only" : local->message);
              g_free (a);
              g_ptr_array_add (canon, NULL);
              g_strfreev ((char **) g_ptr_array_free (canon, FALSE));
              return NULL;
            }
          g_hash_table_add (seen, g_strdup (a));
          g_ptr_array_add (canon, a);
        }
      g_ptr_array_add (canon, NULL);
      g_ptr_array_add (out, g_ptr_array_free (canon, FALSE));
    }
  return g_steal_pointer (&out);
}

/**
 * kd_broker_gpus_check:
 * @gpus: (element-type GStrv): canonical address lists
 *
 * Worker thread: reads every function from the host's node devices and
 * applies the IOMMU group rule.
 *
 * Returns: (transfer full) (element-type KdHostGpuRow): rows to store.
 */
GPtrArray *
kd_broker_gpus_check (KdHvHost *hv, GPtrArray *gpus, GError **error)
{
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_host_gpu_row_free);
  g_autoptr(GPtrArray) passed = g_ptr_array_new ();

  for (guint i = 0; i < gpus->len; i++)
    for (char **a = gpus->pdata[i]; *a != NULL; a++)
      g_ptr_array_add (passed, *a);
  g_ptr_array_add (passed, NULL);

  for (guint i = 0; i < gpus->len; i++)
    {
      char **addresses = gpus->pdata[i];
      guint n = g_strv_length (addresses);
      g_autofree KdHvPciDevice *fns = g_new0 (KdHvPciDevice, n);
      KdHostGpuRow *row;
      gboolean ok = TRUE;

      for (guint k = 0; k < n && ok; k++)
        ok = kd_hv_pci_device_get (hv, addresses[k], &fns[k], error);
      if (ok)
        ok = kd_hv_gpu_check (fns, n, (const char *const *) passed->pdata, error);
      if (ok)
        {
          row = g_new0 (KdHostGpuRow, 1);
          row->addresses = g_strjoinv (",", addresses);
          row->product = g_strdup (fns[0].product);
          row->driver = g_strdup (fns[0].driver);
          row->iommu_group = fns[0].iommu_group;
          row->mdev_types = fns[0].mdev_types ? g_strjoinv (",", fns[0].mdev_types) : g_strdup ("");
          row->mdevs = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_gpu_mdev_type_row_free);
          for (guint t = 0; fns[0].mdevs != NULL && t < fns[0].mdevs->len; t++)
            {
              KdHvMdevType *mt = fns[0].mdevs->pdata[t];
              KdGpuMdevTypeRow *tr = g_new0 (KdGpuMdevTypeRow, 1);
              /* Nothing of kvmdesk runs on the GPU now (a GPU list is
               * not replaced while it does), so what is available is
               * what kvmdesk may use. */
              tr->type_id = g_strdup (mt->id);
              tr->name = g_strdup (mt->name);
              tr->device_api = g_strdup (mt->device_api);
              tr->instances = mt->available;
              g_ptr_array_add (row->mdevs, tr);
            }
          g_ptr_array_add (rows, row);
        }
      for (guint k = 0; k < n; k++)
        kd_hv_pci_device_clear (&fns[k]);
      if (!ok)
        return NULL;
    }
  return g_steal_pointer (&rows);
}

/* ---- set a host's GPUs ---- */

typedef struct {
  GTask     *task;
  KdHvHost  *hv;
  char      *host;
  char      *actor;
  GPtrArray *gpus;       /* GStrv */
  GPtrArray *rows;       /* KdHostGpuRow */
  GError    *error;
} KdGpuJob;

static void
kd_gpu_job_free (KdGpuJob *j)
{
  g_clear_object (&j->task);
  g_clear_pointer (&j->hv, kd_hv_host_unref);
  g_free (j->host);
  g_free (j->actor);
  g_clear_pointer (&j->gpus, g_ptr_array_unref);
  g_clear_pointer (&j->rows, g_ptr_array_unref);
  g_clear_error (&j->error);
  g_free (j);
}

static void
kd_gpu_run (gpointer data, GCancellable *c)
{
  KdGpuJob *j = data;
  j->rows = kd_broker_gpus_check (j->hv, j->gpus, &j->error);
}

static void
kd_gpu_done (KdBroker *b, gpointer data)
{
  KdGpuJob *j = data;
  g_autoptr(GError) error = NULL;
  KdBrokerHost *h = g_hash_table_lookup (b->hosts, j->host);

  if (j->rows == NULL)
    {
      g_task_return_new_error (j->task, KD_ERROR, KD_ERROR_INVALID, "%s; nothing was changed",
                               j->error->message);
      return;
    }
  if (h == NULL)
    {
      g_task_return_new_error (j->task, KD_ERROR, KD_ERROR_NOT_FOUND, "no host named '%s'", j->host);
      return;
    }
  if (!kd_store_host_gpus_set (b->store, h->row->id, j->rows, &error))
    {
      g_task_return_error (j->task, g_steal_pointer (&error));
      return;
    }
  kd_broker_event (b, "host", h->row->name, j->actor, "update", h->state, h->state,
                   "host '%s' passes through %u GPU%s", h->row->name, j->rows->len,
                   j->rows->len == 1 ? "" : "s");
  kd_broker_pools_kick (b);
  g_task_return_pointer (j->task, h, NULL);
}

/**
 * kd_broker_host_set_gpus_async:
 * @gpus: (element-type GStrv): one address list per GPU (an empty array
 *   removes them all)
 *
 * Checks the GPUs on the host and replaces its list.
 */
void
kd_broker_host_set_gpus_async (KdBroker *b, const char *host, GPtrArray *gpus, const char *actor,
                               GAsyncReadyCallback cb, gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  KdBrokerHost *h = kd_broker_host_lookup (b, host, &error);
  g_autoptr(GPtrArray) canon = NULL;
  KdGpuJob *j;

  if (h == NULL || (canon = kd_broker_gpus_parse (gpus, &error)) == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  if (!kd_broker_host_is_up (h))
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_UNAVAILABLE,
                               "host '%s' is %s: its GPUs cannot be checked now", host, h->state);
      return;
    }
  j = g_new0 (KdGpuJob, 1);
  j->task = g_steal_pointer (&task);
  j->hv = kd_hv_host_ref (h->hv);
  j->host = g_strdup (host);
  j->actor = g_strdup (actor);
  j->gpus = g_steal_pointer (&canon);
  kd_broker_run_host_job (b, host, kd_gpu_run, kd_gpu_done, j, (GDestroyNotify) kd_gpu_job_free);
}

KdBrokerHost *
kd_broker_host_set_gpus_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_pointer (G_TASK (res), error);
}

/* ---- giving GPUs to desktops ---- */

/* Free GPUs per host id (gint64* -> GINT_TO_POINTER count). */
GHashTable *
kd_broker_gpus_free_by_host (KdBroker *b)
{
  g_autoptr(GPtrArray) gpus = kd_store_host_gpu_list (b->store, -1, NULL);
  g_autoptr(GPtrArray) vgpus = kd_store_vgpu_list (b->store, -1, NULL);
  g_autoptr(GHashTable) shared = g_hash_table_new (g_int64_hash, g_int64_equal);
  GHashTable *free_by_host = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);

  /* A GPU running vGPUs is not free to pass through whole. */
  for (guint i = 0; vgpus != NULL && i < vgpus->len; i++)
    g_hash_table_add (shared, &((KdVgpuRow *) vgpus->pdata[i])->gpu_id);

  for (guint i = 0; gpus != NULL && i < gpus->len; i++)
    {
      KdHostGpuRow *g = gpus->pdata[i];
      gint64 *key;
      if (g->desktop_id != 0 || g_hash_table_contains (shared, &g->id))
        continue;
      key = g_new (gint64, 1);
      *key = g->host_id;
      g_hash_table_replace (free_by_host, key,
                            GINT_TO_POINTER (GPOINTER_TO_INT (g_hash_table_lookup (free_by_host, key)) + 1));
    }
  return free_by_host;
}

/**
 * kd_broker_gpus_take:
 * Gives @count free GPUs of host @host_id to desktop @desktop_id.
 *
 * Returns: (transfer full): the PCI addresses of every function of them
 * (for the domain's hostdevs), or %NULL with KD_ERROR_UNAVAILABLE (then
 * nothing is taken).
 */
char **
kd_broker_gpus_take (KdBroker *b, gint64 host_id, gint64 desktop_id, gint64 count, GError **error)
{
  g_autoptr(GPtrArray) gpus = kd_store_host_gpu_list (b->store, host_id, error);
  g_autoptr(GPtrArray) addresses = g_ptr_array_new ();
  g_autoptr(GArray) taken = g_array_new (FALSE, FALSE, sizeof (gint64));

  if (gpus == NULL)
    return NULL;
  for (guint i = 0; i < gpus->len && (gint64) taken->len < count; i++)
    {
      KdHostGpuRow *g = gpus->pdata[i];
      if (g->desktop_id != 0 || !kd_store_host_gpu_assign (b->store, g->id, desktop_id, NULL))
        continue;
      g_array_append_val (taken, g->id);
      {
        g_auto(GStrv) fns = g_strsplit (g->addresses, ",", -1);
        for (guint k = 0; fns[k] != NULL; k++)
          g_ptr_array_add (addresses, g_strdup (fns[k]));
      }
    }
  if ((gint64) taken->len < count)
    {
      /* Give back what this call took: all or nothing (the desktop may
       * hold GPUs on another host while it moves). */
      g_ptr_array_set_free_func (addresses, g_free);
      for (guint i = 0; i < taken->len; i++)
        kd_store_host_gpu_free (b->store, g_array_index (taken, gint64, i), NULL);
      g_set_error (error, KD_ERROR, KD_ERROR_UNAVAILABLE,
                   "the host has %u free GPU%s, the template needs %" G_GINT64_FORMAT, taken->len,
                   taken->len == 1 ? "" : "s", count);
      return NULL;
    }
  g_ptr_array_add (addresses, NULL);
  return (char **) g_ptr_array_free (g_steal_pointer (&addresses), FALSE);
}

/* Frees the GPUs of @desktop_id (its row may already be gone). */
void
kd_broker_gpus_release (KdBroker *b, gint64 desktop_id)
{
  g_autoptr(GPtrArray) gpus = kd_store_host_gpu_list (b->store, -1, NULL);

  for (guint i = 0; gpus != NULL && i < gpus->len; i++)
    {
      KdHostGpuRow *g = gpus->pdata[i];
      if (g->desktop_id == desktop_id)
        kd_store_host_gpu_free (b->store, g->id, NULL);
    }
}

/* Frees the GPUs of @desktop_id on @host_id only (after a move, the ones
 * it left behind). */
void
kd_broker_gpus_release_on_host (KdBroker *b, gint64 desktop_id, gint64 host_id)
{
  g_autoptr(GPtrArray) gpus = kd_store_host_gpu_list (b->store, host_id, NULL);

  for (guint i = 0; gpus != NULL && i < gpus->len; i++)
    {
      KdHostGpuRow *g = gpus->pdata[i];
      if (g->desktop_id == desktop_id)
        kd_store_host_gpu_free (b->store, g->id, NULL);
    }
}

/* ---- vGPUs ---- */

void
kd_broker_gpu_snapshot_free (KdBrokerGpuSnapshot *snap)
{
  if (snap == NULL)
    return;
  g_clear_pointer (&snap->rows, g_ptr_array_unref);
  g_free (snap->gpus);
  g_free (snap->types);
  g_free (snap);
}

/**
 * kd_broker_gpu_snapshot_new:
 * The GPUs of @host_id (-1: every host) with what runs on them: passed
 * through whole, or how many vGPUs of which type.
 */
KdBrokerGpuSnapshot *
kd_broker_gpu_snapshot_new (KdBroker *b, gint64 host_id)
{
  KdBrokerGpuSnapshot *snap = g_new0 (KdBrokerGpuSnapshot, 1);
  g_autoptr(GPtrArray) vgpus = kd_store_vgpu_list (b->store, host_id, NULL);
  g_autoptr(GHashTable) index = g_hash_table_new (g_int64_hash, g_int64_equal);
  guint n_types = 0, t = 0;

  snap->rows = kd_store_host_gpu_list (b->store, host_id, NULL);
  if (snap->rows == NULL)
    snap->rows = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_host_gpu_row_free);
  for (guint i = 0; i < snap->rows->len; i++)
    n_types += ((KdHostGpuRow *) snap->rows->pdata[i])->mdevs->len;
  snap->gpus = g_new0 (KdSchedGpu, MAX (snap->rows->len, 1));
  snap->types = g_new0 (KdSchedMdevType, MAX (n_types, 1));
  for (guint i = 0; i < snap->rows->len; i++)
    {
      KdHostGpuRow *row = snap->rows->pdata[i];
      KdSchedGpu *g = &snap->gpus[i];

      g->taken = row->desktop_id != 0;
      g->types = &snap->types[t];
      g->n_types = row->mdevs->len;
      for (guint k = 0; k < row->mdevs->len; k++, t++)
        {
          KdGpuMdevTypeRow *tr = row->mdevs->pdata[k];
          snap->types[t].type_id = tr->type_id;
          snap->types[t].instances = tr->instances;
        }
      g_hash_table_insert (index, &row->id, g);
    }
  for (guint i = 0; vgpus != NULL && i < vgpus->len; i++)
    {
      KdVgpuRow *v = vgpus->pdata[i];
      KdSchedGpu *g = g_hash_table_lookup (index, &v->gpu_id);
      if (g == NULL)
        continue;
      g->vgpus++;
      /* Borrow the type id from the GPU's own list (the vGPU row goes). */
      for (guint k = 0; k < g->n_types && g->vgpu_type == NULL; k++)
        if (g_str_equal (g->types[k].type_id, v->type_id))
          g->vgpu_type = g->types[k].type_id;
      if (g->vgpu_type == NULL)
        g->vgpu_type = "?";   /* a type the GPU no longer lists: blocks others */
    }
  return snap;
}

void
kd_broker_gpu_snapshot_host (KdBrokerGpuSnapshot *snap, gint64 host_id, KdSchedGpu **out_gpus, guint *out_n)
{
  *out_gpus = NULL;
  *out_n = 0;
  for (guint i = 0; i < snap->rows->len; i++)
    if (((KdHostGpuRow *) snap->rows->pdata[i])->host_id == host_id)
      {
        if (*out_gpus == NULL)
          *out_gpus = &snap->gpus[i];
        (*out_n)++;
      }
}

/**
 * kd_broker_vgpu_take:
 * @type: a mediated device type id
 *
 * Picks the GPU the scheduler would (kd_sched_vgpu_pick) and records the
 * vGPU; the store checks the GPU's rules again in the same statement.
 */
KdVgpuRow *
kd_broker_vgpu_take (KdBroker *b, gint64 host_id, gint64 desktop_id, const char *type,
                     char **out_parent, GError **error)
{
  g_autoptr(KdBrokerGpuSnapshot) snap = kd_broker_gpu_snapshot_new (b, host_id);
  g_autoptr(KdVgpuRow) row = NULL;
  g_autoptr(GError) local = NULL;
  KdSchedHost h = { 0 };
  KdHostGpuRow *gpu;
  gint pick;

  kd_broker_gpu_snapshot_host (snap, host_id, &h.gpus, &h.n_gpus);
  pick = kd_sched_vgpu_pick (&h, type);
  if (pick < 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_UNAVAILABLE, "no free vGPU of type %s", type);
      return NULL;
    }
  gpu = snap->rows->pdata[(h.gpus - snap->gpus) + pick];
  row = g_new0 (KdVgpuRow, 1);
  row->gpu_id = gpu->id;
  row->host_id = host_id;
  row->type_id = g_strdup (type);
  row->uuid = g_uuid_string_random ();
  row->desktop_id = desktop_id;
  if (!kd_store_vgpu_insert (b->store, row, &local))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_UNAVAILABLE, "no free vGPU of type %s: %s", type, local->message);
      return NULL;
    }
  {
    g_auto(GStrv) fns = g_strsplit (gpu->addresses, ",", 2);
    *out_parent = g_strdup (fns[0]);
  }
  return g_steal_pointer (&row);
}
