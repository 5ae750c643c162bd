/*
 * kd-broker.c: the broker's core: worker jobs, events, and hosts (their
 * connections, capacity, and reconnection with backoff).
 *
 * Runs on the main loop only. Every libvirt call goes through
 * kd_broker_run_job() into a worker thread; this file never blocks.
 */
#include "kd-broker-priv.h"
#include "kd-broker-state.h"

#include "common/kd-error.h"
#include "common/kd-name.h"
#include "common/kd-time.h"

#include <stdarg.h>

/* ------------------------------------------------------------------ */
/* jobs */

typedef struct {
  KdBroker      *broker;
  GMainContext  *context;
  char          *host;      /* the host whose connection it uses, or NULL */
  KdJobFunc      func;
  KdJobDone      done;
  gpointer       job;
  GDestroyNotify job_free;
} KdJob;

/* Jobs in flight and waiting on one host's connection. */
typedef struct {
  guint  running;
  GQueue waiting;           /* KdJob* */
} KdHostSlots;

static void
kd_host_slots_free (KdHostSlots *slots)
{
  g_queue_clear (&slots->waiting);
  g_free (slots);
}

static void
kd_job_free (KdJob *j)
{
  if (j->job_free && j->job)
    j->job_free (j->job);
  g_main_context_unref (j->context);
  g_free (j->host);
  g_free (j);
}

static void kd_job_start (KdBroker *b, KdJob *j);

static gboolean
kd_job_complete (gpointer data)
{
  KdJob *j = data;
  KdBroker *b = j->broker;
  KdHostSlots *slots = j->host ? g_hash_table_lookup (b->host_slots, j->host) : NULL;

  j->done (b, j->job);
  if (slots != NULL)
    {
      KdJob *next;
      slots->running--;
      next = g_queue_pop_head (&slots->waiting);
      if (next != NULL)
        kd_job_start (b, next);
    }
  kd_job_free (j);
  g_atomic_int_dec_and_test (&b->jobs_outstanding);
  return G_SOURCE_REMOVE;
}

static void
kd_job_thread (gpointer data, gpointer user_data)
{
  KdJob *j = data;
  GSource *source;

  j->func (j->job, NULL);
  /* Back to the main loop, which owns all state. */
  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, kd_job_complete, j, NULL);
  g_source_attach (source, j->context);
  g_source_unref (source);
}

static void
kd_job_start (KdBroker *b, KdJob *j)
{
  if (j->host != NULL)
    {
      KdHostSlots *slots = g_hash_table_lookup (b->host_slots, j->host);
      slots->running++;
    }
  if (b->closing)
    {
      /* Shutting down: no worker takes new work; finish it here. */
      j->func (j->job, NULL);
      kd_job_complete (j);
      return;
    }
  g_thread_pool_push (b->workers, j, NULL);
}

/**
 * kd_broker_run_host_job:
 * @host: (nullable): the host whose connection @func uses
 *
 * Runs @func in one of the broker's worker threads (at most
 * worker_threads at once: every libvirt call is a blocking RPC), then
 * @done on the main loop; @job_free frees @job after @done. At most
 * KD_BROKER_HOST_CALLS_MAX jobs of one host run at once, the rest wait
 * their turn: libvirtd stops reading a client that has more requests in
 * flight than its max_client_requests (5 by default), keepalives
 * included, and would drop the connection behind a long call.
 */
void
kd_broker_run_host_job (KdBroker *broker, const char *host, KdJobFunc func, KdJobDone done,
                        gpointer job, GDestroyNotify job_free)
{
  KdJob *j = g_new0 (KdJob, 1);

  j->broker = broker;
  j->context = g_main_context_ref_thread_default ();
  j->host = g_strdup (host);
  j->func = func;
  j->done = done;
  j->job = job;
  j->job_free = job_free;
  g_atomic_int_inc (&broker->jobs_outstanding);
  if (host != NULL)
    {
      KdHostSlots *slots = g_hash_table_lookup (broker->host_slots, host);
      if (slots == NULL)
        {
          slots = g_new0 (KdHostSlots, 1);
          g_queue_init (&slots->waiting);
          g_hash_table_insert (broker->host_slots, g_strdup (host), slots);
        }
      if (slots->running >= KD_BROKER_HOST_CALLS_MAX && !broker->closing)
        {
          g_queue_push_tail (&slots->waiting, j);
          return;
        }
    }
  kd_job_start (broker, j);
}

void
kd_broker_run_job (KdBroker *broker, KdJobFunc func, KdJobDone done, gpointer job,
                   GDestroyNotify job_free)
{
  kd_broker_run_host_job (broker, NULL, func, done, job, job_free);
}

/* ------------------------------------------------------------------ */
/* the broker */

static void
kd_broker_host_free (KdBrokerHost *h)
{
  if (h == NULL)
    return;
  if (h->reconnect_id)
    g_source_remove (h->reconnect_id);
  kd_host_row_free (h->row);
  g_clear_pointer (&h->hv, kd_hv_host_unref);
  g_free (h->last_error);
  kd_hv_capacity_clear (&h->capacity);
  g_free (h);
}

void
kd_orphan_free (KdOrphan *o)
{
  if (o == NULL)
    return;
  g_free (o->host);
  g_free (o->kind);
  g_free (o->name);
  g_free (o->detail);
  g_free (o);
}

void
kd_problem_free (KdProblem *p)
{
  if (p == NULL)
    return;
  g_free (p->host);
  g_free (p->desktop);
  g_free (p->message);
  g_free (p);
}

/**
 * kd_broker_new:
 * @config: (transfer none): must outlive the broker
 * @store: (transfer none): must outlive the broker
 */
KdBroker *
kd_broker_new (KdConfig *config, KdStore *store)
{
  KdBroker *b = g_new0 (KdBroker, 1);

  b->config = config;
  b->store = store;
  b->hosts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                    (GDestroyNotify) kd_broker_host_free);
  b->busy = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
  kd_broker_consoles_init (b);
  kd_broker_displays_init (b);
  b->rr_cursors = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
  b->pool_problems = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
  b->copy_waiters = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                           (GDestroyNotify) g_ptr_array_unref);
  b->drain_notes = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
  b->no_live = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  b->importing = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  b->report.orphans = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_orphan_free);
  b->report.problems = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_problem_free);
  b->reconcile_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  b->workers = g_thread_pool_new (kd_job_thread, NULL, (gint) config->worker_threads, FALSE, NULL);
  b->host_slots = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify) kd_host_slots_free);
  return b;
}

void
kd_broker_free (KdBroker *b)
{
  if (b == NULL)
    return;
  if (b->reconcile_timer)
    g_source_remove (b->reconcile_timer);
  if (b->pools_timer)
    g_source_remove (b->pools_timer);
  if (b->pools_kick_id)
    g_source_remove (b->pools_kick_id);
  /* No callback may reach a freed broker: hosts stop reporting, running
   * libvirt calls finish and their completions run now. */
  b->closing = TRUE;
  {
    GHashTableIter iter;
    gpointer value;
    g_hash_table_iter_init (&iter, b->hosts);
    while (g_hash_table_iter_next (&iter, NULL, &value))
      {
        kd_hv_host_set_callbacks (((KdBrokerHost *) value)->hv, NULL, NULL, NULL);
        kd_hv_host_set_graphics_callback (((KdBrokerHost *) value)->hv, NULL, NULL);
      }
  }
  g_thread_pool_free (b->workers, FALSE, TRUE);
  while (g_atomic_int_get (&b->jobs_outstanding) > 0)
    {
      /* Jobs still waiting for a host's turn run here, in order. */
      GHashTableIter iter;
      gpointer value;
      gboolean ran = FALSE;
      g_hash_table_iter_init (&iter, b->host_slots);
      while (!ran && g_hash_table_iter_next (&iter, NULL, &value))
        {
          KdJob *next = g_queue_pop_head (&((KdHostSlots *) value)->waiting);
          if (next != NULL)
            {
              kd_job_start (b, next);
              ran = TRUE;
            }
        }
      if (!ran)
        g_main_context_iteration (NULL, TRUE);
    }
  g_hash_table_destroy (b->host_slots);
  g_hash_table_destroy (b->hosts);
  g_hash_table_destroy (b->busy);
  kd_broker_displays_fini (b);
  kd_broker_consoles_fini (b);
  g_hash_table_destroy (b->rr_cursors);
  g_hash_table_destroy (b->pool_problems);
  g_hash_table_destroy (b->copy_waiters);
  g_hash_table_destroy (b->drain_notes);
  g_hash_table_destroy (b->no_live);
  g_hash_table_destroy (b->importing);
  g_ptr_array_unref (b->report.orphans);
  g_ptr_array_unref (b->report.problems);
  g_ptr_array_unref (b->reconcile_waiters);
  g_free (b);
}

KdStore *
kd_broker_get_store (KdBroker *b)
{
  return b->store;
}

KdConfig *
kd_broker_get_config (KdBroker *b)
{
  return b->config;
}

/**
 * kd_broker_event:
 * Records one entry of the audit trail. A failure to store it must not
 * fail the operation it describes, so it is only logged at debug level.
 */
void
kd_broker_event (KdBroker *b, const char *object_type, const char *object_name,
                 const char *actor, const char *action, const char *from_state,
                 const char *to_state, const char *fmt, ...)
{
  g_autoptr(GError) error = NULL;
  KdEventRow row = { 0 };
  g_autofree char *message = NULL;
  va_list ap;

  va_start (ap, fmt);
  message = g_strdup_vprintf (fmt, ap);
  va_end (ap);

  row.time = kd_time_now ();
  row.object_type = (char *) object_type;
  row.object_name = (char *) object_name;
  row.actor = (char *) (actor ? actor : "system");
  row.action = (char *) action;
  row.from_state = (char *) from_state;
  row.to_state = (char *) to_state;
  row.message = message;
  if (!kd_store_event_insert (b->store, &row, &error))
    g_debug ("cannot record event '%s': %s", message, error->message);
  else if (b->event_listener)
    b->event_listener (b, &row, b->event_listener_data);
  g_debug ("event: %s %s: %s", object_type, object_name ? object_name : "", message);
}

/**
 * kd_broker_desktop_event:
 * An event about a desktop, carrying its pool and user so the trail can
 * be filtered by either.
 */
void
kd_broker_desktop_event (KdBroker *b, const KdDesktopRow *desk, const char *actor,
                         const char *action, const char *from_state, const char *to_state,
                         const char *fmt, ...)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdPoolRow) pool = desk->pool_id ? kd_store_pool_get (b->store, desk->pool_id, NULL) : NULL;
  g_autoptr(KdUserRow) user = desk->user_id ? kd_store_user_get (b->store, desk->user_id, NULL) : NULL;
  g_autofree char *message = NULL;
  KdEventRow row = { 0 };
  va_list ap;

  va_start (ap, fmt);
  message = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  row.time = kd_time_now ();
  row.object_type = (char *) "desktop";
  row.object_name = desk->name;
  row.actor = (char *) (actor ? actor : "system");
  row.action = (char *) action;
  row.from_state = (char *) from_state;
  row.to_state = (char *) to_state;
  row.message = message;
  row.pool = pool ? pool->name : NULL;
  row.user = user ? user->name : NULL;
  if (!kd_store_event_insert (b->store, &row, &error))
    g_debug ("cannot record event '%s': %s", message, error->message);
  else if (b->event_listener)
    b->event_listener (b, &row, b->event_listener_data);
  g_debug ("event: desktop %s: %s", desk->name, message);
}

/**
 * kd_broker_set_event_listener:
 * One listener (the API's live stream); %NULL removes it.
 */
void
kd_broker_set_event_listener (KdBroker *b, KdBrokerEventFunc func, gpointer user_data)
{
  b->event_listener = func;
  b->event_listener_data = user_data;
}

char *
kd_broker_domain_name (KdBroker *b, const char *desktop_name)
{
  return g_strdup_printf ("%s-%s", b->config->domain_prefix, desktop_name);
}

gboolean
kd_broker_host_is_up (KdBrokerHost *h)
{
  return h != NULL && g_str_equal (h->state, "up");
}

/* ------------------------------------------------------------------ */
/* hosts */

static void kd_broker_host_connect (KdBroker *b, KdBrokerHost *h);

KdBrokerHost *
kd_broker_host_lookup (KdBroker *b, const char *name, GError **error)
{
  KdBrokerHost *h = name ? g_hash_table_lookup (b->hosts, name) : NULL;

  if (h == NULL)
    g_set_error (error, KD_ERROR, KD_ERROR_NOT_FOUND, "no host named '%s'", name ? name : "");
  return h;
}

KdBrokerHost *
kd_broker_host_by_id (KdBroker *b, gint64 id)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, b->hosts);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (((KdBrokerHost *) value)->row->id == id)
      return value;
  return NULL;
}

static gint
kd_broker_host_cmp (gconstpointer a, gconstpointer b)
{
  const KdBrokerHost *ha = *(KdBrokerHost **) a;
  const KdBrokerHost *hb = *(KdBrokerHost **) b;
  return strcmp (ha->row->name, hb->row->name);
}

/**
 * kd_broker_host_list:
 * Returns: (transfer container): the hosts sorted by name.
 */
GPtrArray *
kd_broker_host_list (KdBroker *b)
{
  GPtrArray *out = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, b->hosts);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (out, value);
  g_ptr_array_sort (out, kd_broker_host_cmp);
  return out;
}

gint64
kd_broker_host_desktop_count (KdBroker *b, KdBrokerHost *h)
{
  g_autoptr(GPtrArray) list = kd_store_desktop_list_by_host (b->store, h->row->id, NULL);
  return list ? (gint64) list->len : 0;
}

static KdHvHost *
kd_broker_new_hv (KdBroker *b, const char *name, const char *uri)
{
  KdHvHostOptions opts = {
    .keepalive_interval = b->config->keepalive_interval,
    .keepalive_count = b->config->keepalive_count,
    .storage_pool = b->config->storage_pool,
    .storage_pool_path = b->config->storage_pool_path,
  };
  return kd_hv_host_new (name, uri, &opts);
}

/* A connection attempt: connect, make the pool, read capacity. */
typedef struct {
  KdHvHost     *hv;
  char         *name;
  char         *uri;
  char         *graphics_listen;
  char         *console_access;
  KdHostSettings settings;     /* host add: placement settings (labels below) */
  char         *labels;
  GPtrArray    *gpus;          /* host add: canonical GStrv per GPU, checked on the host */
  GPtrArray    *gpu_rows;
  gboolean      gpus_refused;  /* connected, but a GPU failed its check */
  char         *actor;
  KdHvCapacity  capacity;
  GError       *error;
  GTask        *task;          /* host add: the caller's task */
} KdConnectJob;

static void
kd_connect_job_free (KdConnectJob *j)
{
  g_clear_pointer (&j->hv, kd_hv_host_unref);
  g_free (j->name);
  g_free (j->uri);
  g_free (j->graphics_listen);
  g_free (j->console_access);
  g_free (j->labels);
  g_clear_pointer (&j->gpus, g_ptr_array_unref);
  g_clear_pointer (&j->gpu_rows, g_ptr_array_unref);
  g_free (j->actor);
  kd_hv_capacity_clear (&j->capacity);
  g_clear_error (&j->error);
  g_clear_object (&j->task);
  g_free (j);
}

static void
kd_connect_job_run (gpointer data, GCancellable *cancellable)
{
  KdConnectJob *j = data;

  if (!kd_hv_host_connect (j->hv, &j->error) ||
      !kd_hv_host_ensure_pool (j->hv, &j->error) ||
      !kd_hv_host_read_capacity (j->hv, &j->capacity, &j->error) ||
      (j->gpus != NULL && (j->gpus_refused = (j->gpu_rows = kd_broker_gpus_check (j->hv, j->gpus,
                                                                                 &j->error)) == NULL)))
    {
      /* Close a half-open connection in this thread: closing is an RPC. */
      kd_hv_host_disconnect (j->hv);
    }
}

/* The host is down: what its desktops are is not known until it returns
 * (then the reconciler compares again). They are not given out and not
 * deleted meanwhile. Operations in flight set their own state. */
static void
kd_broker_host_desktops_unknown (KdBroker *b, KdBrokerHost *h)
{
  g_autoptr(GPtrArray) desktops = kd_store_desktop_list_by_host (b->store, h->row->id, NULL);

  for (guint i = 0; desktops != NULL && i < desktops->len; i++)
    {
      KdDesktopRow *d = desktops->pdata[i];
      g_autofree char *reason = NULL;

      if (kd_broker_desktop_is_busy (b, d->id) || g_str_equal (d->state, KD_DESKTOP_UNKNOWN) ||
          !kd_desktop_transition_allowed (d->state, KD_DESKTOP_UNKNOWN))
        continue;
      reason = g_strdup_printf ("host '%s' is down", h->row->name);
      kd_broker_desktop_set_state (b, d, KD_DESKTOP_UNKNOWN, reason, NULL, "host-down");
    }
}

static void
kd_broker_host_closed (KdHvHost *hv, const char *reason, gpointer user_data)
{
  KdBroker *b = user_data;
  KdBrokerHost *h = g_hash_table_lookup (b->hosts, kd_hv_host_get_name (hv));

  if (h == NULL || h->hv != hv)
    return;
  kd_broker_event (b, "host", h->row->name, NULL, "state", h->state, "down",
                   "host '%s' connection lost: %s", h->row->name, reason);
  h->state = "down";
  g_free (h->last_error);
  h->last_error = g_strdup_printf ("connection lost: %s", reason);
  kd_broker_host_desktops_unknown (b, h);
  kd_broker_host_connect (b, h);
}

typedef struct {
  KdBroker *broker;
  char     *name;
} KdReconnect;

static void
kd_reconnect_free (KdReconnect *r)
{
  g_free (r->name);
  g_free (r);
}

static gboolean
kd_broker_reconnect_timeout (gpointer data)
{
  KdReconnect *r = data;
  KdBrokerHost *h = g_hash_table_lookup (r->broker->hosts, r->name);

  if (h != NULL)
    {
      h->reconnect_id = 0;
      kd_broker_host_connect (r->broker, h);
    }
  return G_SOURCE_REMOVE;
}

static void
kd_broker_host_schedule_reconnect (KdBroker *b, KdBrokerHost *h)
{
  KdReconnect *r;

  if (h->reconnect_id)
    return;
  if (h->backoff <= 0)
    h->backoff = b->config->reconnect_min;
  r = g_new0 (KdReconnect, 1);
  r->broker = b;
  r->name = g_strdup (h->row->name);
  h->reconnect_id = g_timeout_add_seconds_full (G_PRIORITY_DEFAULT, (guint) h->backoff,
                                                kd_broker_reconnect_timeout, r,
                                                (GDestroyNotify) kd_reconnect_free);
  g_debug ("host '%s': reconnecting in %" G_GINT64_FORMAT " s", h->row->name, h->backoff);
  h->backoff = MIN (h->backoff * 2, b->config->reconnect_max);
}

static void
kd_broker_host_connected (KdBroker *b, gpointer data)
{
  KdConnectJob *j = data;
  KdBrokerHost *h = g_hash_table_lookup (b->hosts, j->name);

  if (h == NULL || h->hv != j->hv)
    return;                     /* removed meanwhile */
  h->connecting = FALSE;
  if (j->error)
    {
      if (!g_str_equal (h->state, "down") || g_strcmp0 (h->last_error, j->error->message) != 0)
        kd_broker_event (b, "host", h->row->name, NULL, "state", h->state, "down",
                         "host '%s' is unreachable: %s", h->row->name, j->error->message);
      h->state = "down";
      g_free (h->last_error);
      h->last_error = g_strdup (j->error->message);
      kd_broker_host_desktops_unknown (b, h);
      kd_broker_host_schedule_reconnect (b, h);
      return;
    }
  kd_broker_event (b, "host", h->row->name, NULL, "state", h->state, "up",
                   "host '%s' is up (%s)", h->row->name, j->capacity.domain_type);
  h->state = "up";
  g_clear_pointer (&h->last_error, g_free);
  kd_hv_capacity_clear (&h->capacity);
  h->capacity = j->capacity;
  memset (&j->capacity, 0, sizeof j->capacity);
  h->have_capacity = TRUE;
  h->backoff = 0;
  h->up_since = kd_time_now ();
  kd_broker_reconcile_schedule (b);
}

static void
kd_broker_host_connect (KdBroker *b, KdBrokerHost *h)
{
  KdConnectJob *j;

  if (h->connecting)
    return;
  if (h->reconnect_id)
    {
      g_source_remove (h->reconnect_id);
      h->reconnect_id = 0;
    }
  h->connecting = TRUE;
  if (!g_str_equal (h->state, "down"))
    h->state = "connecting";
  j = g_new0 (KdConnectJob, 1);
  j->hv = kd_hv_host_ref (h->hv);
  j->name = g_strdup (h->row->name);
  kd_broker_run_job (b, kd_connect_job_run, kd_broker_host_connected, j,
                     (GDestroyNotify) kd_connect_job_free);
}

static KdBrokerHost *
kd_broker_host_insert (KdBroker *b, KdHostRow *row, KdHvHost *hv)
{
  KdBrokerHost *h = g_new0 (KdBrokerHost, 1);

  h->row = row;
  h->hv = hv;
  h->state = "connecting";
  kd_hv_host_set_callbacks (hv, kd_broker_host_closed, kd_broker_domain_event, b);
  kd_hv_host_set_graphics_callback (hv, kd_broker_graphics_event, b);
  g_hash_table_insert (b->hosts, g_strdup (row->name), h);
  return h;
}

static void kd_disconnect_run (gpointer data, GCancellable *cancellable);
static void kd_disconnect_done (KdBroker *b, gpointer data);

/* host add ----------------------------------------------------------- */

/* graphics_listen is an IP address (or NULL); console_access one of
 * auto/fd/tcp, and "fd" only for a libvirtd on this machine. */
static gboolean
kd_broker_host_check_display (const KdHostRow *spec, GError **error)
{
  static const char *const access[] = { "auto", "fd", "tcp", NULL };

  if (spec->graphics_listen != NULL)
    {
      g_autoptr(GInetAddress) a = NULL;

      if (strlen (spec->graphics_listen) < 64)
        a = g_inet_address_new_from_string (spec->graphics_listen);
      if (a == NULL)
        {
          g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                       "graphics_listen '%.64s' is not an IP address (e.g. 127.0.0.1, or 0.0.0.0 "
                       "for every address of the host)", spec->graphics_listen);
          return FALSE;
        }
    }
  if (spec->console_access != NULL && !g_strv_contains (access, spec->console_access))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "console_access '%.40s' is not one of auto, fd, tcp", spec->console_access);
      return FALSE;
    }
  if (spec->console_access != NULL && g_str_equal (spec->console_access, "fd") && spec->uri != NULL)
    {
      g_autoptr(KdHvHost) probe = kd_hv_host_new ("probe", spec->uri, NULL);
      if (!kd_hv_host_is_local (probe))
        {
          g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                       "console_access 'fd' needs a libvirtd on this machine; '%.200s' is not "
                       "(use tcp or auto)", spec->uri);
          return FALSE;
        }
    }
  return TRUE;
}

static void
kd_broker_host_added (KdBroker *b, gpointer data)
{
  KdConnectJob *j = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdHostRow) row = NULL;
  KdBrokerHost *h;

  if (j->error)
    {
      /* hv's message already names the host and its URI. */
      g_task_return_new_error (j->task, KD_ERROR, j->gpus_refused ? KD_ERROR_INVALID : KD_ERROR_UNAVAILABLE,
                               "%s; nothing was stored",
                               j->error->message);
      return;
    }
  row = g_new0 (KdHostRow, 1);
  row->name = g_strdup (j->name);
  row->uri = g_strdup (j->uri);
  row->graphics_listen = g_strdup (j->graphics_listen ? j->graphics_listen : "127.0.0.1");
  row->console_access = g_strdup (j->console_access ? j->console_access : "auto");
  row->maintenance = j->settings.has_maintenance && j->settings.maintenance;
  row->cpu_ratio = j->settings.cpu_ratio > 0 ? j->settings.cpu_ratio : 4.0;
  row->memory_ratio = j->settings.memory_ratio > 0 ? j->settings.memory_ratio : 1.0;
  row->disk_ratio = j->settings.disk_ratio > 0 ? j->settings.disk_ratio : 1.0;
  row->memory_reserved = j->settings.memory_reserved >= 0 ? j->settings.memory_reserved
                                                           : KD_BROKER_HOST_RESERVE_DEFAULT;
  if (row->memory_reserved >= j->capacity.memory_bytes && j->settings.memory_reserved < 0)
    row->memory_reserved = 0;  /* a tiny (simulated) host: the default would leave nothing */
  row->labels = g_strdup (j->labels ? j->labels : "");
  row->migration = g_strdup (j->settings.migration ? j->settings.migration : "live");
  if (!kd_broker_host_check_settings (row, j->capacity.memory_bytes, &error) ||
      !kd_store_host_insert (b->store, row, &error))
    {
      /* Lost a race with another add of the same name or URI; close the
       * connection in a worker (closing is an RPC). */
      kd_broker_run_job (b, kd_disconnect_run, kd_disconnect_done, kd_hv_host_ref (j->hv),
                         (GDestroyNotify) kd_hv_host_unref);
      g_task_return_error (j->task, g_steal_pointer (&error));
      return;
    }
  if (j->gpu_rows != NULL && !kd_store_host_gpus_set (b->store, row->id, j->gpu_rows, &error))
    {
      kd_store_host_delete (b->store, row->id, NULL);
      kd_broker_run_job (b, kd_disconnect_run, kd_disconnect_done, kd_hv_host_ref (j->hv),
                         (GDestroyNotify) kd_hv_host_unref);
      g_task_return_error (j->task, g_steal_pointer (&error));
      return;
    }
  h = kd_broker_host_insert (b, g_steal_pointer (&row), kd_hv_host_ref (j->hv));
  h->state = "up";
  h->capacity = j->capacity;
  memset (&j->capacity, 0, sizeof j->capacity);
  h->have_capacity = TRUE;
  h->up_since = kd_time_now ();
  kd_broker_event (b, "host", h->row->name, j->actor, "create", NULL, "up",
                   "host '%s' added (%s, %s)", h->row->name, h->row->uri,
                   h->capacity.domain_type);
  g_task_return_pointer (j->task, h, NULL);
}

/**
 * kd_broker_host_add_async:
 * @spec: name, uri, and optionally graphics_listen and console_access
 *
 * Connects to the URI first: a host that cannot be reached is not stored.
 */
void
kd_broker_host_add_async (KdBroker *b, const KdHostRow *spec, const KdHostSettings *settings,
                          const char *actor, GAsyncReadyCallback cb, gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  const char *name = spec->name, *uri = spec->uri;
  KdConnectJob *j;
  GHashTableIter iter;
  gpointer value;

  if (!kd_name_validate ("host", name, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  if (uri == NULL || *uri == '\0')
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_INVALID, "a libvirt URI is required");
      return;
    }
  if (strlen (uri) > 1024 || strchr (uri, ':') == NULL || !g_utf8_validate (uri, -1, NULL))
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_INVALID,
                               "'%.100s' is not a libvirt URI (e.g. qemu:///system)", uri);
      return;
    }
  if (g_hash_table_contains (b->hosts, name))
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_EXISTS,
                               "a host named '%s' already exists", name);
      return;
    }
  g_hash_table_iter_init (&iter, b->hosts);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (g_str_equal (((KdBrokerHost *) value)->row->uri, uri))
      {
        g_task_return_new_error (task, KD_ERROR, KD_ERROR_EXISTS,
                                 "host '%s' already has the URI '%s'",
                                 ((KdBrokerHost *) value)->row->name, uri);
        return;
      }

  if (!kd_broker_host_check_display (spec, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  j = g_new0 (KdConnectJob, 1);
  j->hv = kd_broker_new_hv (b, name, uri);
  j->name = g_strdup (name);
  j->uri = g_strdup (uri);
  j->graphics_listen = g_strdup (spec->graphics_listen);
  j->console_access = g_strdup (spec->console_access);
  if (settings != NULL)
    j->settings = *settings;
  else
    j->settings.memory_reserved = -1;
  j->settings.labels = NULL;
  j->settings.gpus = NULL;
  if (settings != NULL && settings->gpus != NULL)
    {
      j->gpus = kd_broker_gpus_parse (settings->gpus, &error);
      if (j->gpus == NULL)
        {
          kd_connect_job_free (j);
          g_task_return_error (task, g_steal_pointer (&error));
          return;
        }
    }
  j->labels = kd_broker_labels_normalize (settings ? (const char *const *) settings->labels : NULL,
                                          &error);
  if (j->labels == NULL)
    {
      kd_connect_job_free (j);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  j->actor = g_strdup (actor);
  j->task = g_steal_pointer (&task);
  kd_broker_run_job (b, kd_connect_job_run, kd_broker_host_added, j,
                     (GDestroyNotify) kd_connect_job_free);
}

KdBrokerHost *
kd_broker_host_add_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_pointer (G_TASK (res), error);
}

/* host remove -------------------------------------------------------- */

static void
kd_disconnect_run (gpointer data, GCancellable *cancellable)
{
  kd_hv_host_disconnect (data);
}

static void
kd_disconnect_done (KdBroker *b, gpointer data)
{
}

void
kd_broker_host_remove_async (KdBroker *b, const char *name, const char *actor,
                             GAsyncReadyCallback cb, gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) desktops = NULL;
  g_autoptr(GPtrArray) volumes = NULL;
  KdBrokerHost *h = kd_broker_host_lookup (b, name, &error);
  KdHvHost *hv;

  if (h == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  desktops = kd_store_desktop_list_by_host (b->store, h->row->id, NULL);
  if (desktops && desktops->len > 0)
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_BUSY,
                               "host '%s' still has %u desktop(s) (e.g. '%s'); delete them first",
                               name, desktops->len,
                               ((KdDesktopRow *) desktops->pdata[0])->name);
      return;
    }
  volumes = kd_store_image_volume_list (b->store, -1, NULL);
  for (guint i = 0; volumes && i < volumes->len; i++)
    {
      KdImageVolumeRow *v = volumes->pdata[i];
      if (v->host_id == h->row->id)
        {
          g_autoptr(KdImageRow) img = kd_store_image_get (b->store, v->image_id, NULL);
          g_task_return_new_error (task, KD_ERROR, KD_ERROR_BUSY,
                                   "host '%s' still holds image '%s'; delete the image first",
                                   name, img ? img->name : "?");
          return;
        }
    }
  if (!kd_store_host_delete (b->store, h->row->id, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  kd_broker_event (b, "host", name, actor, "delete", h->state, NULL, "host '%s' removed", name);
  hv = kd_hv_host_ref (h->hv);
  kd_hv_host_set_callbacks (hv, NULL, NULL, NULL);
  kd_hv_host_set_graphics_callback (hv, NULL, NULL);
  g_hash_table_remove (b->hosts, name);
  kd_broker_run_job (b, kd_disconnect_run, kd_disconnect_done, hv,
                     (GDestroyNotify) kd_hv_host_unref);
  g_task_return_boolean (task, TRUE);
}

gboolean
kd_broker_host_remove_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_boolean (G_TASK (res), error);
}

/* ------------------------------------------------------------------ */
/* start */

static gboolean
kd_broker_reconcile_tick (gpointer data)
{
  kd_broker_reconcile_schedule (data);
  return G_SOURCE_CONTINUE;
}

/**
 * kd_broker_start:
 * Loads the hosts and connects them, repairs desktops a previous run left
 * in the middle of an operation, and starts the periodic reconciler.
 */
void
kd_broker_start (KdBroker *b, KdBrokerReconciledFunc reconciled, gpointer user_data)
{
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GError) error = NULL;

  b->reconciled = reconciled;
  b->reconciled_data = user_data;
  b->started = TRUE;

  kd_broker_desktops_recover (b);

  rows = kd_store_host_list (b->store, &error);
  if (rows == NULL)
    g_debug ("cannot list hosts: %s", error->message);
  for (guint i = 0; rows && i < rows->len; i++)
    {
      KdHostRow *src = rows->pdata[i];
      KdHostRow *row = g_new0 (KdHostRow, 1);
      KdBrokerHost *h;

      row->id = src->id;
      row->name = g_strdup (src->name);
      row->uri = g_strdup (src->uri);
      row->created_at = src->created_at;
      h = kd_broker_host_insert (b, row, kd_broker_new_hv (b, row->name, row->uri));
      kd_broker_host_connect (b, h);
    }
  b->reconcile_timer = g_timeout_add_seconds ((guint) b->config->reconcile_interval,
                                              kd_broker_reconcile_tick, b);
  kd_broker_pools_start (b);
  /* With no host there is nothing to wait for. */
  if (rows == NULL || rows->len == 0)
    kd_broker_reconcile_schedule (b);
}
