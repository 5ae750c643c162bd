/*
 * kd-broker-reconciler.c: brings the database (intent) and libvirt
 * (reality) together, at start and periodically.
 *
 * - A domain carrying this installation's metadata but unknown to the
 *   database, and a volume in kvmdesk's pool that no image or desktop
 *   references, are orphans: reported (API, events, log), never reused or
 *   silently deleted.
 * - A desktop whose domain vanished becomes "error" with the reason.
 * - A desktop at rest whose domain runs (or stopped) takes libvirt's state.
 * Domains of other kvmdesk installations on the same host are ignored.
 */
#include "kd-broker-priv.h"

#include <string.h>
#include "kd-broker-state.h"

#include "common/kd-error.h"
#include "common/kd-time.h"

typedef struct {
  char      *host;
  gint64     host_id;
  KdHvHost  *hv;
  GPtrArray *domains;   /* KdHvDomainInfo */
  GPtrArray *volumes;   /* KdHvVolume */
  KdHvCapacity capacity; /* read again on every pass (free memory, pool space) */
  gboolean   have_capacity;
  GError    *error;
} KdHostScan;

typedef struct {
  GPtrArray *scans;     /* KdHostScan* */
  GPtrArray *waiters;   /* GTask*: callers waiting for this pass */
} KdReconcileJob;

static void
kd_host_scan_free (KdHostScan *s)
{
  g_free (s->host);
  g_clear_pointer (&s->hv, kd_hv_host_unref);
  g_clear_pointer (&s->domains, g_ptr_array_unref);
  g_clear_pointer (&s->volumes, g_ptr_array_unref);
  kd_hv_capacity_clear (&s->capacity);
  g_clear_error (&s->error);
  g_free (s);
}

static void
kd_reconcile_job_free (KdReconcileJob *j)
{
  g_ptr_array_unref (j->scans);
  g_ptr_array_unref (j->waiters);
  g_free (j);
}

static void
kd_reconcile_run (gpointer data, GCancellable *cancellable)
{
  KdReconcileJob *j = data;

  for (guint i = 0; i < j->scans->len; i++)
    {
      KdHostScan *s = j->scans->pdata[i];
      s->domains = kd_hv_domain_list_kvmdesk (s->hv, &s->error);
      if (s->domains == NULL)
        continue;
      s->volumes = kd_hv_volume_list (s->hv, &s->error);
      if (s->volumes != NULL)
        s->have_capacity = kd_hv_host_read_capacity (s->hv, &s->capacity, NULL);
    }
}

static gboolean
kd_orphan_known (GPtrArray *list, const KdOrphan *o)
{
  for (guint i = 0; list && i < list->len; i++)
    {
      KdOrphan *p = list->pdata[i];
      if (g_str_equal (p->host, o->host) && g_str_equal (p->kind, o->kind) &&
          g_str_equal (p->name, o->name))
        return TRUE;
    }
  return FALSE;
}

static void
kd_reconcile_add_orphan (GPtrArray *orphans, const char *host, const char *kind,
                         const char *name, char *detail)
{
  KdOrphan *o = g_new0 (KdOrphan, 1);
  o->host = g_strdup (host);
  o->kind = g_strdup (kind);
  o->name = g_strdup (name);
  o->detail = detail;
  g_ptr_array_add (orphans, o);
}

static void
kd_reconcile_add_problem (GPtrArray *problems, const char *host, const char *desktop,
                          char *message)
{
  KdProblem *p = g_new0 (KdProblem, 1);
  p->host = g_strdup (host);
  p->desktop = g_strdup (desktop);
  p->message = message;
  g_ptr_array_add (problems, p);
}

static gboolean
kd_problem_known (GPtrArray *list, const KdProblem *p)
{
  for (guint i = 0; list && i < list->len; i++)
    {
      KdProblem *q = list->pdata[i];
      if (g_str_equal (q->message, p->message))
        return TRUE;
    }
  return FALSE;
}

/* A desktop being moved has a domain and an overlay on two hosts for a
 * while: neither is an orphan. */
static gboolean
kd_reconcile_moving (KdBroker *b, const char *desktop_id, const char *volume)
{
  GHashTableIter it;
  gpointer key;

  if (desktop_id != NULL)
    {
      gint64 id = g_ascii_strtoll (desktop_id, NULL, 10);
      return id > 0 && kd_broker_desktop_is_busy (b, id);
    }
  g_hash_table_iter_init (&it, b->busy);
  while (g_hash_table_iter_next (&it, &key, NULL))
    {
      g_autoptr(KdDesktopRow) row = kd_store_desktop_get (b->store, *(gint64 *) key, NULL);
      if (row != NULL && g_strcmp0 (row->overlay_volume, volume) == 0)
        return TRUE;
    }
  return FALSE;
}

static void
kd_reconcile_host (KdBroker *b, KdHostScan *s, GPtrArray *orphans, GPtrArray *problems)
{
  const char *instance = kd_store_get_instance_id (b->store);
  g_autoptr(GPtrArray) desktops = kd_store_desktop_list_by_host (b->store, s->host_id, NULL);
  g_autoptr(GPtrArray) ivols = kd_store_image_volume_list (b->store, -1, NULL);
  g_autoptr(GHashTable) by_domain = g_hash_table_new (g_str_hash, g_str_equal);

  for (guint i = 0; i < s->domains->len; i++)
    {
      KdHvDomainInfo *d = s->domains->pdata[i];
      g_hash_table_insert (by_domain, d->name, d);
    }

  /* Desktops against their domains. */
  for (guint i = 0; desktops && i < desktops->len; i++)
    {
      KdDesktopRow *row = desktops->pdata[i];
      KdHvDomainInfo *d;

      if (kd_broker_desktop_is_busy (b, row->id) ||
          g_str_equal (row->state, KD_DESKTOP_PROVISIONING))
        continue;
      d = g_hash_table_lookup (by_domain, row->domain);
      if (d == NULL)
        {
          if (!g_str_equal (row->state, KD_DESKTOP_ERROR))
            {
              g_autofree char *reason = g_strdup_printf (
                  "its domain '%s' no longer exists on host '%s'", row->domain, s->host);
              kd_broker_desktop_set_state (b, row, KD_DESKTOP_ERROR, reason, NULL, "reconcile");
            }
          kd_reconcile_add_problem (problems, s->host, row->name,
                                    g_strdup_printf ("desktop '%s': domain '%s' is missing on host '%s'",
                                                     row->name, row->domain, s->host));
          continue;
        }
      if (g_strcmp0 (d->instance_id, instance) != 0)
        {
          /* Same name, another installation: not ours to judge. */
          kd_reconcile_add_problem (problems, s->host, row->name, g_strdup_printf (
              "desktop '%s': domain '%s' on host '%s' belongs to another kvmdesk installation",
              row->name, row->domain, s->host));
          continue;
        }
      if (g_str_equal (row->state, KD_DESKTOP_ERROR))
        continue;
      if (d->state == KD_HV_DOMAIN_RUNNING || d->state == KD_HV_DOMAIN_PAUSED)
        {
          if (!kd_desktop_state_is_up (row->state))
            kd_broker_desktop_set_state (b, row, kd_broker_desktop_up_state (row), NULL, NULL, "reconcile");
        }
      else if (d->state == KD_HV_DOMAIN_CRASHED)
        kd_broker_desktop_set_state (b, row, KD_DESKTOP_ERROR, "the guest crashed", NULL, "reconcile");
      else if (!g_str_equal (row->state, KD_DESKTOP_STOPPED))
        kd_broker_desktop_set_state (b, row, KD_DESKTOP_STOPPED, NULL, NULL, "reconcile");
    }

  /* Domains of ours that the database does not know. */
  for (guint i = 0; i < s->domains->len; i++)
    {
      KdHvDomainInfo *d = s->domains->pdata[i];
      gboolean known = FALSE;

      if (g_strcmp0 (d->instance_id, instance) != 0)
        continue;
      for (guint k = 0; desktops && k < desktops->len; k++)
        {
          KdDesktopRow *row = desktops->pdata[k];
          g_autofree char *id = g_strdup_printf ("%" G_GINT64_FORMAT, row->id);
          if (g_str_equal (row->domain, d->name) && g_strcmp0 (d->desktop_id, id) == 0)
            known = TRUE;
        }
      if (!known && !kd_reconcile_moving (b, d->desktop_id, NULL))
        kd_reconcile_add_orphan (orphans, s->host, "domain", d->name,
                                 g_strdup_printf ("domain '%s' (desktop '%s', id %s) carries this "
                                                  "installation's metadata but no desktop record; "
                                                  "it was not reused or deleted",
                                                  d->name, d->desktop_name ? d->desktop_name : "?",
                                                  d->desktop_id ? d->desktop_id : "?"));
    }

  /* Volumes of kvmdesk's pool that nothing references. */
  for (guint i = 0; s->volumes && i < s->volumes->len; i++)
    {
      KdHvVolume *v = s->volumes->pdata[i];
      gboolean known = FALSE;

      for (guint k = 0; desktops && k < desktops->len && !known; k++)
        known = g_str_equal (((KdDesktopRow *) desktops->pdata[k])->overlay_volume, v->name);
      for (guint k = 0; ivols && k < ivols->len && !known; k++)
        {
          KdImageVolumeRow *iv = ivols->pdata[k];
          known = iv->host_id == s->host_id && g_str_equal (iv->volume, v->name);
        }
      if (!known && !kd_reconcile_moving (b, NULL, v->name))
        kd_reconcile_add_orphan (orphans, s->host, "volume", v->name,
                                 g_strdup_printf ("volume '%s' in pool '%s' is not used by any "
                                                  "image or desktop%s%s", v->name,
                                                  b->config->storage_pool,
                                                  v->backing_path ? "; backed by " : "",
                                                  v->backing_path ? v->backing_path : ""));
    }
}

static void
kd_reconcile_done (KdBroker *b, gpointer data)
{
  KdReconcileJob *j = data;
  g_autoptr(GPtrArray) orphans = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_orphan_free);
  g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_problem_free);
  g_autoptr(GPtrArray) new_orphans = g_ptr_array_new ();
  g_autoptr(GPtrArray) new_problems = g_ptr_array_new ();

  for (guint i = 0; i < j->scans->len; i++)
    {
      KdHostScan *s = j->scans->pdata[i];
      if (s->error)
        {
          kd_reconcile_add_problem (problems, s->host, NULL,
                                    g_strdup_printf ("host '%s': %s", s->host, s->error->message));
          continue;
        }
      if (kd_broker_host_by_id (b, s->host_id) == NULL)
        continue;              /* removed meanwhile */
      if (s->have_capacity)
        {
          KdBrokerHost *h = kd_broker_host_by_id (b, s->host_id);
          kd_hv_capacity_clear (&h->capacity);
          h->capacity = s->capacity;
          memset (&s->capacity, 0, sizeof s->capacity);
          h->have_capacity = TRUE;
        }
      kd_reconcile_host (b, s, orphans, problems);
    }

  for (guint i = 0; i < orphans->len; i++)
    {
      KdOrphan *o = orphans->pdata[i];
      if (!kd_orphan_known (b->report.orphans, o))
        {
          g_ptr_array_add (new_orphans, o);
          kd_broker_event (b, "reconciler", o->name, NULL, "orphan", NULL, NULL,
                           "host '%s': orphan %s: %s", o->host, o->kind, o->detail);
        }
    }
  for (guint i = 0; i < problems->len; i++)
    if (!kd_problem_known (b->report.problems, problems->pdata[i]))
      g_ptr_array_add (new_problems, problems->pdata[i]);

  if (b->reconciled && (new_orphans->len || new_problems->len))
    b->reconciled (b, new_orphans, new_problems, b->reconciled_data);

  g_ptr_array_unref (b->report.orphans);
  b->report.orphans = g_steal_pointer (&orphans);
  g_ptr_array_unref (b->report.problems);
  b->report.problems = g_steal_pointer (&problems);
  b->report.last_run = kd_time_now ();
  b->report.running = FALSE;

  kd_broker_drain_continue (b);
  kd_broker_displays_check (b);
  for (guint i = 0; i < j->waiters->len; i++)
    g_task_return_boolean (j->waiters->pdata[i], TRUE);

  if (b->reconcile_again)
    {
      b->reconcile_again = FALSE;
      kd_broker_reconcile_schedule (b);
    }
}

/**
 * kd_broker_reconcile_schedule:
 * Starts a pass over every host that is up, or asks for another one when a
 * pass is running.
 */
void
kd_broker_reconcile_schedule (KdBroker *b)
{
  KdReconcileJob *j;
  g_autoptr(GPtrArray) hosts = NULL;

  if (b->report.running)
    {
      b->reconcile_again = TRUE;
      return;
    }
  b->report.running = TRUE;
  j = g_new0 (KdReconcileJob, 1);
  j->scans = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_host_scan_free);
  /* Callers that asked before this pass began are answered by it. */
  j->waiters = b->reconcile_waiters;
  b->reconcile_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  hosts = kd_broker_host_list (b);
  for (guint i = 0; i < hosts->len; i++)
    {
      KdBrokerHost *h = hosts->pdata[i];
      KdHostScan *s;
      if (!kd_broker_host_is_up (h))
        continue;
      s = g_new0 (KdHostScan, 1);
      s->host = g_strdup (h->row->name);
      s->host_id = h->row->id;
      s->hv = kd_hv_host_ref (h->hv);
      g_ptr_array_add (j->scans, s);
    }
  kd_broker_run_job (b, kd_reconcile_run, kd_reconcile_done, j,
                     (GDestroyNotify) kd_reconcile_job_free);
}

const KdReconcileReport *
kd_broker_reconcile_report (KdBroker *b)
{
  return &b->report;
}

/**
 * kd_broker_reconcile_async:
 * Runs a pass (or joins the one running, followed by a fresh one) and
 * completes when a pass that started after this call has finished.
 */
void
kd_broker_reconcile_async (KdBroker *b, GAsyncReadyCallback cb, gpointer data)
{
  GTask *task = g_task_new (NULL, NULL, cb, data);

  g_ptr_array_add (b->reconcile_waiters, task);
  if (b->report.running)
    b->reconcile_again = TRUE;
  else
    kd_broker_reconcile_schedule (b);
}

gboolean
kd_broker_reconcile_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_boolean (G_TASK (res), error);
}
