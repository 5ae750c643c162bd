/*
 * kd-hv-host.c: one libvirt connection per host. Opening, keepalive,
 * the close callback and domain lifecycle events (both marshalled to the
 * main context the host was created on), capacity reading and kvmdesk's
 * storage pool. Every function but the callbacks may run in any worker
 * thread; a mutex guards the connection pointer, and callers take their
 * own reference on it so that a concurrent disconnect never frees a
 * connection in use. Library code: errors are returned, never logged.
 */
#include "hv/kd-hv-priv.h"

#include <libvirt-glib/libvirt-glib.h>
#include <string.h>

struct _KdHvHost {
  gatomicrefcount      ref;
  char                *name;
  char                *uri;
  gint64               keepalive_interval;
  gint64               keepalive_count;
  char                *pool_name;
  char                *pool_path;
  GMainContext        *context;

  GMutex               lock;       /* guards everything below */
  virConnectPtr        conn;
  guint                generation; /* bumped on every connect */
  int                  lifecycle_id;
  int                  graphics_id;
  gboolean             close_cb_registered;
  gboolean             simulated;   /* the test driver */
  gboolean             in_process;  /* test:// (no daemon): no close callback */
  KdHvHostClosedFunc   closed_func;
  KdHvDomainEventFunc  event_func;
  gpointer             user_data;
  KdHvGraphicsEventFunc graphics_func;
  gpointer             graphics_data;
};

/*
 * libvirt callbacks get a "link" as opaque data rather than the host:
 * the host owns the connection, so a strong reference from the
 * connection's callbacks would be a cycle. The link is cleared when the
 * host's last reference goes, under kd_hv_link_lock, and the callback
 * takes a host reference under the same lock.
 */
typedef struct {
  gatomicrefcount  ref;
  KdHvHost        *host;      /* NULL once the host is finalised */
  guint            generation;
} KdHvHostLink;

static GMutex kd_hv_link_lock;

static void kd_hv_host_drop_connection_locked (KdHvHost       *host,
                                               virConnectPtr  *out_conn);

/**
 * kd_hv_init:
 *
 * Silences libvirt's default error printer and registers libvirt's event
 * loop on GLib's main context. Call once, on the main thread, before any
 * host connects. Further calls do nothing.
 */
static void
kd_hv_silent_error_func (void        *opaque,
                         virErrorPtr  err)
{
  /* libvirt errors are returned as GErrors; nothing to print. */
}

void
kd_hv_init (void)
{
  static gsize once = 0;

  if (g_once_init_enter (&once))
    {
      virSetErrorFunc (NULL, kd_hv_silent_error_func);
      gvir_event_register ();
      g_once_init_leave (&once, 1);
    }
}

const char *
kd_hv_domain_state_to_string (KdHvDomainState state)
{
  switch (state)
    {
    case KD_HV_DOMAIN_MISSING:  return "missing";
    case KD_HV_DOMAIN_SHUTOFF:  return "shutoff";
    case KD_HV_DOMAIN_RUNNING:  return "running";
    case KD_HV_DOMAIN_PAUSED:   return "paused";
    case KD_HV_DOMAIN_SHUTDOWN: return "shutdown";
    case KD_HV_DOMAIN_CRASHED:  return "crashed";
    case KD_HV_DOMAIN_OTHER:
    default:                    return "other";
    }
}

static KdHvHostLink *
kd_hv_host_link_new (KdHvHost *host,
                     guint     generation)
{
  KdHvHostLink *link = g_new0 (KdHvHostLink, 1);

  g_atomic_ref_count_init (&link->ref);
  link->host = host;
  link->generation = generation;
  return link;
}

static void
kd_hv_host_link_unref (void *data)
{
  KdHvHostLink *link = data;

  if (g_atomic_ref_count_dec (&link->ref))
    g_free (link);
}

/* Link registry: every live link of a host, so finalize can clear them. */
static GHashTable *kd_hv_links; /* KdHvHostLink* -> KdHvHost*; under kd_hv_link_lock */

static KdHvHostLink *
kd_hv_host_link_register (KdHvHost *host,
                          guint     generation)
{
  KdHvHostLink *link = kd_hv_host_link_new (host, generation);

  g_mutex_lock (&kd_hv_link_lock);
  if (kd_hv_links == NULL)
    kd_hv_links = g_hash_table_new (NULL, NULL);
  g_atomic_ref_count_inc (&link->ref); /* the registry's */
  g_hash_table_add (kd_hv_links, link);
  g_mutex_unlock (&kd_hv_link_lock);
  return link;
}

/* Detaches every link of @host; called with kd_hv_link_lock held. */
static void
kd_hv_host_links_clear_locked (KdHvHost *host)
{
  GHashTableIter iter;
  KdHvHostLink *link;

  if (kd_hv_links == NULL)
    return;
  g_hash_table_iter_init (&iter, kd_hv_links);
  while (g_hash_table_iter_next (&iter, (gpointer *) &link, NULL))
    if (link->host == host)
      {
        link->host = NULL;
        g_hash_table_iter_remove (&iter);
        kd_hv_host_link_unref (link);
      }
}

/* Returns: (transfer full) (nullable): the host, if still alive. */
static KdHvHost *
kd_hv_host_link_get (KdHvHostLink *link)
{
  KdHvHost *host = NULL;

  g_mutex_lock (&kd_hv_link_lock);
  if (link->host != NULL)
    {
      host = link->host;
      g_atomic_ref_count_inc (&host->ref);
    }
  g_mutex_unlock (&kd_hv_link_lock);
  return host;
}

/**
 * kd_hv_host_new:
 * @name: the host's kvmdesk name, used in every error message
 * @uri: its libvirt URI
 * @options: (nullable): keepalive and storage pool settings
 *
 * Creates a host object; no connection is made. Callbacks will be invoked
 * on the thread-default main context of the calling thread.
 *
 * Returns: (transfer full): the new host.
 */
KdHvHost *
kd_hv_host_new (const char            *name,
                const char            *uri,
                const KdHvHostOptions *options)
{
  KdHvHost *host;

  g_return_val_if_fail (name != NULL && uri != NULL, NULL);

  host = g_new0 (KdHvHost, 1);
  g_atomic_ref_count_init (&host->ref);
  host->name = g_strdup (name);
  host->uri = g_strdup (uri);
  host->keepalive_interval = options != NULL ? options->keepalive_interval : 5;
  host->keepalive_count = options != NULL ? options->keepalive_count : 5;
  host->pool_name = g_strdup (options != NULL && options->storage_pool != NULL
                              ? options->storage_pool : "kvmdesk");
  host->pool_path = g_strdup (options != NULL && options->storage_pool_path != NULL
                              ? options->storage_pool_path : "/var/lib/kvmdesk/images");
  host->context = g_main_context_ref_thread_default ();
  host->lifecycle_id = -1;
  host->graphics_id = -1;
  host->simulated = g_str_has_prefix (uri, "test:");
  host->in_process = host->simulated;
  g_mutex_init (&host->lock);
  return host;
}

KdHvHost *
kd_hv_host_ref (KdHvHost *host)
{
  g_return_val_if_fail (host != NULL, NULL);
  g_atomic_ref_count_inc (&host->ref);
  return host;
}

static void
kd_hv_host_free (KdHvHost *host)
{
  virConnectPtr conn = NULL;

  g_mutex_lock (&host->lock);
  kd_hv_host_drop_connection_locked (host, &conn);
  g_mutex_unlock (&host->lock);
  if (conn != NULL)
    virConnectClose (conn);

  g_main_context_unref (host->context);
  g_mutex_clear (&host->lock);
  g_free (host->name);
  g_free (host->uri);
  g_free (host->pool_name);
  g_free (host->pool_path);
  g_free (host);
}

void
kd_hv_host_unref (KdHvHost *host)
{
  gboolean last;

  if (host == NULL)
    return;

  /* Decrement under the link lock so a libvirt callback cannot revive a
   * host whose count already reached zero. */
  g_mutex_lock (&kd_hv_link_lock);
  last = g_atomic_ref_count_dec (&host->ref);
  if (last)
    kd_hv_host_links_clear_locked (host);
  g_mutex_unlock (&kd_hv_link_lock);

  if (last)
    kd_hv_host_free (host);
}

const char *
kd_hv_host_get_name (KdHvHost *host)
{
  return host->name;
}

const char *
kd_hv_host_get_uri (KdHvHost *host)
{
  return host->uri;
}

const char *
kd_hv_host_get_pool_name (KdHvHost *host)
{
  return host->pool_name;
}

/**
 * kd_hv_host_set_callbacks:
 * @closed: (nullable): called when libvirt reports the connection closed
 * @domain_event: (nullable): called for every domain lifecycle event
 *
 * Both are invoked on the main context captured by kd_hv_host_new().
 */
void
kd_hv_host_set_callbacks (KdHvHost            *host,
                          KdHvHostClosedFunc   closed,
                          KdHvDomainEventFunc  domain_event,
                          gpointer             user_data)
{
  g_mutex_lock (&host->lock);
  host->closed_func = closed;
  host->event_func = domain_event;
  host->user_data = user_data;
  g_mutex_unlock (&host->lock);
}

/* ---- callbacks, marshalled to the host's main context ---------------- */

typedef struct {
  KdHvHost        *host;
  guint            generation;
  gboolean         is_close;
  char            *reason;       /* close */
  char            *domain_name;  /* event */
  KdHvDomainState  state;
  char            *detail;
  /* graphics event */
  gboolean         is_graphics;
  KdHvGraphicsPhase phase;
  gboolean         remote_is_unix;
  char            *remote_node;
  char            *remote_service;
  char            *auth_scheme;
} KdHvHostDispatch;

static void
kd_hv_host_dispatch_free (gpointer data)
{
  KdHvHostDispatch *d = data;

  kd_hv_host_unref (d->host);
  g_free (d->reason);
  g_free (d->domain_name);
  g_free (d->detail);
  g_free (d->remote_node);
  g_free (d->remote_service);
  g_free (d->auth_scheme);
  g_free (d);
}

static gboolean
kd_hv_host_dispatch_cb (gpointer data)
{
  KdHvHostDispatch *d = data;
  KdHvHost *host = d->host;
  KdHvHostClosedFunc closed;
  KdHvDomainEventFunc event;
  KdHvGraphicsEventFunc graphics;
  gpointer user_data, graphics_data;
  virConnectPtr dead = NULL;

  g_mutex_lock (&host->lock);
  graphics = host->graphics_func;
  graphics_data = host->graphics_data;
  closed = host->closed_func;
  event = host->event_func;
  user_data = host->user_data;
  if (d->is_close && host->generation == d->generation)
    kd_hv_host_drop_connection_locked (host, &dead);
  else if (d->is_close)
    closed = NULL; /* a connection we already dropped ourselves */
  g_mutex_unlock (&host->lock);

  if (dead != NULL)
    virConnectClose (dead);

  if (d->is_graphics)
    {
      KdHvGraphicsEvent ev = {
        .domain_name = d->domain_name,
        .phase = d->phase,
        .remote_is_unix = d->remote_is_unix,
        .remote_node = d->remote_node,
        .remote_service = d->remote_service,
        .auth_scheme = d->auth_scheme,
      };
      if (graphics != NULL)
        graphics (host, &ev, graphics_data);
    }
  else if (d->is_close && closed != NULL)
    closed (host, d->reason, user_data);
  else if (!d->is_close && event != NULL)
    event (host, d->domain_name, d->state, d->detail, user_data);

  return G_SOURCE_REMOVE;
}

static void
kd_hv_host_dispatch (KdHvHostDispatch *d)
{
  /* Always through a source, never inline: the callee may take locks
   * the libvirt thread holds. */
  g_autoptr(GSource) source = g_idle_source_new ();

  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, kd_hv_host_dispatch_cb, d, kd_hv_host_dispatch_free);
  g_source_set_static_name (source, "[kvmdesk] libvirt host callback");
  g_source_attach (source, d->host->context);
}

static const char *
kd_hv_close_reason_to_string (int reason)
{
  switch (reason)
    {
    case VIR_CONNECT_CLOSE_REASON_ERROR:
      return "the connection failed with an error";
    case VIR_CONNECT_CLOSE_REASON_EOF:
      return "the daemon closed the connection";
    case VIR_CONNECT_CLOSE_REASON_KEEPALIVE:
      return "the host stopped answering keepalive messages";
    case VIR_CONNECT_CLOSE_REASON_CLIENT:
      return "the connection was closed by the client";
    default:
      return "the connection closed";
    }
}

static void
kd_hv_host_close_cb (virConnectPtr  conn,
                     int            reason,
                     void          *opaque)
{
  KdHvHostLink *link = opaque;
  KdHvHost *host = kd_hv_host_link_get (link);
  KdHvHostDispatch *d;

  if (host == NULL)
    return;
  d = g_new0 (KdHvHostDispatch, 1);
  d->host = host;
  d->generation = link->generation;
  d->is_close = TRUE;
  d->reason = g_strdup_printf ("host '%s': %s",
                               host->name, kd_hv_close_reason_to_string (reason));
  kd_hv_host_dispatch (d);
}

static KdHvDomainState
kd_hv_event_to_state (int         event,
                      int         detail,
                      const char **out_detail)
{
  switch (event)
    {
    case VIR_DOMAIN_EVENT_DEFINED:
      *out_detail = detail == VIR_DOMAIN_EVENT_DEFINED_UPDATED ? "defined/updated" : "defined";
      return KD_HV_DOMAIN_OTHER;
    case VIR_DOMAIN_EVENT_UNDEFINED:
      *out_detail = "undefined";
      return KD_HV_DOMAIN_MISSING;
    case VIR_DOMAIN_EVENT_STARTED:
      *out_detail = detail == VIR_DOMAIN_EVENT_STARTED_BOOTED ? "started/booted" : "started";
      return KD_HV_DOMAIN_RUNNING;
    case VIR_DOMAIN_EVENT_SUSPENDED:
      *out_detail = "suspended";
      return KD_HV_DOMAIN_PAUSED;
    case VIR_DOMAIN_EVENT_RESUMED:
      *out_detail = "resumed";
      return KD_HV_DOMAIN_RUNNING;
    case VIR_DOMAIN_EVENT_STOPPED:
      switch (detail)
        {
        case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: *out_detail = "stopped/shutdown"; break;
        case VIR_DOMAIN_EVENT_STOPPED_DESTROYED: *out_detail = "stopped/destroyed"; break;
        case VIR_DOMAIN_EVENT_STOPPED_CRASHED: *out_detail = "stopped/crashed"; break;
        case VIR_DOMAIN_EVENT_STOPPED_MIGRATED: *out_detail = "stopped/migrated"; break;
        case VIR_DOMAIN_EVENT_STOPPED_SAVED: *out_detail = "stopped/saved"; break;
        case VIR_DOMAIN_EVENT_STOPPED_FAILED: *out_detail = "stopped/failed"; break;
        default: *out_detail = "stopped"; break;
        }
      return detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED ? KD_HV_DOMAIN_CRASHED
                                                        : KD_HV_DOMAIN_SHUTOFF;
    case VIR_DOMAIN_EVENT_SHUTDOWN:
      *out_detail = "shutdown";
      return KD_HV_DOMAIN_SHUTDOWN;
    case VIR_DOMAIN_EVENT_PMSUSPENDED:
      *out_detail = "pmsuspended";
      return KD_HV_DOMAIN_PAUSED;
    case VIR_DOMAIN_EVENT_CRASHED:
      *out_detail = "crashed";
      return KD_HV_DOMAIN_CRASHED;
    default:
      *out_detail = "unknown";
      return KD_HV_DOMAIN_OTHER;
    }
}

static int
kd_hv_host_lifecycle_cb (virConnectPtr  conn,
                         virDomainPtr   dom,
                         int            event,
                         int            detail,
                         void          *opaque)
{
  KdHvHostLink *link = opaque;
  KdHvHost *host = kd_hv_host_link_get (link);
  KdHvHostDispatch *d;
  const char *detail_str = NULL;

  if (host == NULL)
    return 0;
  d = g_new0 (KdHvHostDispatch, 1);
  d->host = host;
  d->generation = link->generation;
  d->domain_name = g_strdup (virDomainGetName (dom));
  d->state = kd_hv_event_to_state (event, detail, &detail_str);
  d->detail = g_strdup (detail_str);
  kd_hv_host_dispatch (d);
  return 0;
}

static int
kd_hv_host_graphics_cb (virConnectPtr                    conn,
                        virDomainPtr                     dom,
                        int                              phase,
                        const virDomainEventGraphicsAddress *local,
                        const virDomainEventGraphicsAddress *remote,
                        const char                      *auth_scheme,
                        const virDomainEventGraphicsSubject *subject,
                        void                            *opaque)
{
  KdHvHostLink *link = opaque;
  KdHvHost *host = kd_hv_host_link_get (link);
  KdHvHostDispatch *d;

  if (host == NULL)
    return 0;
  d = g_new0 (KdHvHostDispatch, 1);
  d->host = host;
  d->generation = link->generation;
  d->is_graphics = TRUE;
  d->domain_name = g_strdup (virDomainGetName (dom));
  switch (phase)
    {
    case VIR_DOMAIN_EVENT_GRAPHICS_CONNECT:    d->phase = KD_HV_GRAPHICS_CONNECT; break;
    case VIR_DOMAIN_EVENT_GRAPHICS_INITIALIZE: d->phase = KD_HV_GRAPHICS_INITIALIZE; break;
    default:                                   d->phase = KD_HV_GRAPHICS_DISCONNECT; break;
    }
  if (remote != NULL)
    {
      d->remote_is_unix = remote->family == VIR_DOMAIN_EVENT_GRAPHICS_ADDRESS_UNIX;
      d->remote_node = g_strdup (remote->node);
      d->remote_service = g_strdup (remote->service);
    }
  d->auth_scheme = g_strdup (auth_scheme);
  kd_hv_host_dispatch (d);
  return 0;
}

/**
 * kd_hv_host_set_graphics_callback:
 * Graphics events (viewers connecting to and leaving VNC/SPICE displays)
 * of every domain go to @func on the host's main context.
 */
void
kd_hv_host_set_graphics_callback (KdHvHost              *host,
                                  KdHvGraphicsEventFunc  func,
                                  gpointer               user_data)
{
  g_mutex_lock (&host->lock);
  host->graphics_func = func;
  host->graphics_data = user_data;
  g_mutex_unlock (&host->lock);
}

/**
 * kd_hv_host_is_local:
 * A libvirtd on this machine, reached through a local socket: the
 * qemu:///system form, or qemu+unix:// without a host.
 */
gboolean
kd_hv_host_is_local (KdHvHost *host)
{
  g_autofree char *hostname = kd_hv_host_uri_hostname (host);
  const char *plus = strchr (host->uri, '+');
  const char *colon = strchr (host->uri, ':');

  if (hostname != NULL || host->simulated)
    return FALSE;
  if (plus == NULL || (colon != NULL && plus > colon))
    return TRUE;
  return g_str_has_prefix (plus, "+unix:");
}

char *
kd_hv_host_uri_hostname (KdHvHost *host)
{
  g_autoptr(GUri) uri = g_uri_parse (host->uri, G_URI_FLAGS_NON_DNS | G_URI_FLAGS_PARSE_RELAXED, NULL);
  const char *h = uri ? g_uri_get_host (uri) : NULL;

  if (h == NULL || *h == '\0')
    return NULL;
  return g_strdup (h);
}

/* ---- connection ------------------------------------------------------- */

/* Takes the connection out of @host and deregisters our callbacks; the
 * caller closes *@out_conn outside the lock. */
static void
kd_hv_host_drop_connection_locked (KdHvHost      *host,
                                   virConnectPtr *out_conn)
{
  virConnectPtr conn = host->conn;

  *out_conn = NULL;
  if (conn == NULL)
    return;
  if (host->lifecycle_id >= 0)
    virConnectDomainEventDeregisterAny (conn, host->lifecycle_id);
  if (host->graphics_id >= 0)
    virConnectDomainEventDeregisterAny (conn, host->graphics_id);
  host->graphics_id = -1;
  if (host->close_cb_registered)
    virConnectUnregisterCloseCallback (conn, kd_hv_host_close_cb);
  virResetLastError ();
  host->lifecycle_id = -1;
  host->close_cb_registered = FALSE;
  host->conn = NULL;
  /* Callbacks of this connection still in flight find no host. */
  g_mutex_lock (&kd_hv_link_lock);
  kd_hv_host_links_clear_locked (host);
  g_mutex_unlock (&kd_hv_link_lock);
  host->generation++;
  *out_conn = conn;
}

/**
 * kd_hv_host_connect:
 *
 * Opens the connection if it is not open (with libvirt's default
 * authentication), enables keepalive, and registers the close callback
 * and domain lifecycle events. Blocking.
 *
 * Returns: %TRUE when connected; %KD_HV_ERROR_UNAVAILABLE otherwise.
 */
gboolean
kd_hv_host_connect (KdHvHost  *host,
                    GError   **error)
{
  virConnectPtr conn;
  virConnectPtr stale = NULL;
  KdHvHostLink *link;
  const char *type;
  int ret;

  g_mutex_lock (&host->lock);
  if (host->conn != NULL && virConnectIsAlive (host->conn) == 1)
    {
      g_mutex_unlock (&host->lock);
      return TRUE;
    }
  kd_hv_host_drop_connection_locked (host, &stale);
  g_mutex_unlock (&host->lock);
  if (stale != NULL)
    virConnectClose (stale);

  conn = virConnectOpenAuth (host->uri, virConnectAuthPtrDefault, 0);
  if (conn == NULL)
    {
      virErrorPtr lv = virGetLastError ();
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_UNAVAILABLE,
                   "host '%s': cannot connect to '%s': %s", host->name, host->uri,
                   lv != NULL && lv->message != NULL ? lv->message : "unknown error");
      virResetLastError ();
      return FALSE;
    }

  /* Local drivers (test://) have no keepalive: ret < 0 with NO_SUPPORT
   * or ret == 1 (peer cannot do it) are both fine. */
  ret = virConnectSetKeepAlive (conn, (int) host->keepalive_interval,
                                (unsigned int) host->keepalive_count);
  if (ret < 0)
    {
      virErrorPtr lv = virGetLastError ();
      if (lv != NULL && lv->code != VIR_ERR_NO_SUPPORT &&
          lv->code != VIR_ERR_ARGUMENT_UNSUPPORTED && lv->code != VIR_ERR_INVALID_ARG)
        {
          kd_hv_set_error_from_libvirt (error, host, conn, "cannot enable keepalive");
          virConnectClose (conn);
          return FALSE;
        }
      virResetLastError ();
    }

  type = virConnectGetType (conn);

  g_mutex_lock (&host->lock);
  if (host->conn != NULL)
    {
      /* Another thread connected meanwhile: keep theirs. */
      g_mutex_unlock (&host->lock);
      virConnectClose (conn);
      return TRUE;
    }
  host->conn = conn;
  host->generation++;
  host->simulated = type != NULL && g_ascii_strcasecmp (type, "TEST") == 0;

  /* In-process drivers (test://) cannot close and report success without
   * keeping the callback, so its free function would never run: only
   * connections through a daemon (remote driver, test+unix:// included)
   * get one. */
  if (!host->in_process)
    {
      link = kd_hv_host_link_register (host, host->generation);
      if (virConnectRegisterCloseCallback (conn, kd_hv_host_close_cb, link,
                                           kd_hv_host_link_unref) == 0)
        host->close_cb_registered = TRUE;
      else
        kd_hv_host_link_unref (link);
      virResetLastError ();
    }

  link = kd_hv_host_link_register (host, host->generation);
  host->lifecycle_id =
    virConnectDomainEventRegisterAny (conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                      VIR_DOMAIN_EVENT_CALLBACK (kd_hv_host_lifecycle_cb),
                                      link, kd_hv_host_link_unref);
  if (host->lifecycle_id < 0)
    {
      kd_hv_host_link_unref (link);
      kd_hv_set_error_from_libvirt (error, host, conn,
                                    "cannot register for domain events");
      kd_hv_host_drop_connection_locked (host, &stale);
      g_mutex_unlock (&host->lock);
      if (stale != NULL)
        virConnectClose (stale);
      return FALSE;
    }
  /* Graphics events only where there are real displays; a failure to
   * register them costs native-viewer tracking, not the host. */
  if (!host->simulated)
    {
      link = kd_hv_host_link_register (host, host->generation);
      host->graphics_id =
        virConnectDomainEventRegisterAny (conn, NULL, VIR_DOMAIN_EVENT_ID_GRAPHICS,
                                          VIR_DOMAIN_EVENT_CALLBACK (kd_hv_host_graphics_cb),
                                          link, kd_hv_host_link_unref);
      if (host->graphics_id < 0)
        {
          kd_hv_host_link_unref (link);
          virResetLastError ();
        }
    }
  g_mutex_unlock (&host->lock);
  return TRUE;
}

/**
 * kd_hv_host_disconnect:
 *
 * Closes the connection; the closed callback is not invoked for it.
 */
void
kd_hv_host_disconnect (KdHvHost *host)
{
  virConnectPtr conn = NULL;

  g_mutex_lock (&host->lock);
  kd_hv_host_drop_connection_locked (host, &conn);
  g_mutex_unlock (&host->lock);
  if (conn != NULL)
    virConnectClose (conn);
}

gboolean
kd_hv_host_is_connected (KdHvHost *host)
{
  gboolean ret;

  g_mutex_lock (&host->lock);
  ret = host->conn != NULL && virConnectIsAlive (host->conn) == 1;
  g_mutex_unlock (&host->lock);
  return ret;
}

gboolean
kd_hv_host_is_simulated (KdHvHost *host)
{
  gboolean ret;

  g_mutex_lock (&host->lock);
  ret = host->simulated;
  g_mutex_unlock (&host->lock);
  return ret;
}

virConnectPtr
kd_hv_host_get_connection (KdHvHost  *host,
                           GError   **error)
{
  virConnectPtr conn = NULL;

  g_mutex_lock (&host->lock);
  if (host->conn != NULL && virConnectRef (host->conn) == 0)
    conn = host->conn;
  g_mutex_unlock (&host->lock);

  if (conn == NULL)
    g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_UNAVAILABLE,
                 "host '%s' is not connected", host->name);
  return conn;
}

/* ---- capacity ----------------------------------------------------------- */

void
kd_hv_capacity_clear (KdHvCapacity *cap)
{
  g_clear_pointer (&cap->arch, g_free);
  g_clear_pointer (&cap->domain_type, g_free);
  g_clear_pointer (&cap->accel_reason, g_free);
  g_clear_pointer (&cap->hostname, g_free);
  g_clear_pointer (&cap->hypervisor, g_free);
  g_clear_pointer (&cap->libvirt_version, g_free);
}

static char *
kd_hv_version_string (unsigned long v)
{
  return g_strdup_printf ("%lu.%lu.%lu", v / 1000000, (v / 1000) % 1000, v % 1000);
}

virStoragePoolPtr
kd_hv_host_lookup_pool (KdHvHost       *host,
                        virConnectPtr   conn,
                        GError        **error)
{
  virStoragePoolPtr pool = virStoragePoolLookupByName (conn, host->pool_name);

  if (pool == NULL)
    kd_hv_set_error_from_libvirt (error, host, conn,
                                  "cannot find storage pool '%s'", host->pool_name);
  return pool;
}

/**
 * kd_hv_host_read_capacity:
 * @out: (out caller-allocates): filled on success; clear it with
 *   kd_hv_capacity_clear()
 *
 * Reads node CPUs and memory, kvmdesk's pool space (-1 when the pool is
 * absent), versions, and whether KVM works (through domain capabilities
 * for virttype "kvm"; "qemu" with the reason otherwise). Blocking.
 */
gboolean
kd_hv_host_read_capacity (KdHvHost      *host,
                          KdHvCapacity  *out,
                          GError       **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virStoragePool) pool = NULL;
  g_autoptr(xmlDoc) caps_doc = NULL;
  g_autofree char *caps_xml = NULL;
  g_autofree char *hostname = NULL;
  KdHvCapacity cap = { 0, };
  virNodeInfo node;
  unsigned long long free_mem;
  unsigned long hv_version = 0, lib_version = 0;
  const char *type;

  if (conn == NULL)
    return FALSE;

  if (virNodeGetInfo (conn, &node) < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot read node information");
      return FALSE;
    }
  cap.cpus = node.cpus;
  cap.memory_bytes = (gint64) node.memory * 1024;

  free_mem = virNodeGetFreeMemory (conn);
  if (free_mem == 0)
    {
      int nparams = 0;
      virResetLastError ();
      if (virNodeGetMemoryStats (conn, VIR_NODE_MEMORY_STATS_ALL_CELLS, NULL, &nparams, 0) == 0 &&
          nparams > 0 && nparams < 64)
        {
          g_autofree virNodeMemoryStatsPtr params = g_new0 (virNodeMemoryStats, nparams);
          if (virNodeGetMemoryStats (conn, VIR_NODE_MEMORY_STATS_ALL_CELLS,
                                     params, &nparams, 0) == 0)
            for (int i = 0; i < nparams; i++)
              if (g_strcmp0 (params[i].field, VIR_NODE_MEMORY_STATS_FREE) == 0)
                free_mem = params[i].value * 1024;
        }
      virResetLastError ();
    }
  cap.free_memory_bytes = (gint64) free_mem;

  pool = virStoragePoolLookupByName (conn, host->pool_name);
  cap.pool_capacity = cap.pool_allocation = cap.pool_available = -1;
  if (pool != NULL)
    {
      virStoragePoolInfo pinfo;
      if (virStoragePoolGetInfo (pool, &pinfo) == 0 &&
          pinfo.state == VIR_STORAGE_POOL_RUNNING)
        {
          cap.pool_capacity = (gint64) pinfo.capacity;
          cap.pool_allocation = (gint64) pinfo.allocation;
          cap.pool_available = (gint64) pinfo.available;
        }
    }
  virResetLastError ();

  hostname = virConnectGetHostname (conn);
  cap.hostname = g_strdup (hostname != NULL ? hostname : host->name);
  virResetLastError ();

  type = virConnectGetType (conn);
  if (virConnectGetVersion (conn, &hv_version) == 0 && type != NULL)
    {
      g_autofree char *v = kd_hv_version_string (hv_version);
      cap.hypervisor = g_strdup_printf ("%s %s", type, v);
    }
  else
    cap.hypervisor = g_strdup (type != NULL ? type : "unknown");
  virResetLastError ();
  if (virConnectGetLibVersion (conn, &lib_version) == 0)
    cap.libvirt_version = kd_hv_version_string (lib_version);
  virResetLastError ();

  caps_xml = virConnectGetCapabilities (conn);
  if (caps_xml == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot read capabilities");
      kd_hv_capacity_clear (&cap);
      return FALSE;
    }
  caps_doc = kd_hv_xml_parse (caps_xml, "host capabilities", error);
  if (caps_doc == NULL)
    {
      g_prefix_error (error, "host '%s': ", host->name);
      kd_hv_capacity_clear (&cap);
      return FALSE;
    }
  cap.arch = kd_hv_xml_string (caps_doc, "string(/capabilities/host/cpu/arch)");
  if (cap.arch == NULL || *cap.arch == '\0')
    {
      g_free (cap.arch);
      cap.arch = g_strdup ("x86_64");
    }

  if (type != NULL && g_ascii_strcasecmp (type, "TEST") == 0)
    {
      cap.domain_type = g_strdup ("test");
      cap.uefi = FALSE;
    }
  else
    {
      g_autofree char *domcaps = NULL;
      g_autoptr(xmlDoc) domcaps_doc = NULL;

      domcaps = virConnectGetDomainCapabilities (conn, NULL, cap.arch, NULL, "kvm", 0);
      if (domcaps != NULL)
        cap.domain_type = g_strdup ("kvm");
      else
        {
          virErrorPtr lv = virGetLastError ();
          cap.accel_reason = g_strdup (lv != NULL && lv->message != NULL
                                       ? lv->message : "KVM is not available");
          virResetLastError ();
          cap.domain_type = g_strdup ("qemu");
          domcaps = virConnectGetDomainCapabilities (conn, NULL, cap.arch, NULL, "qemu", 0);
          virResetLastError ();
        }
      if (domcaps != NULL)
        domcaps_doc = kd_hv_xml_parse (domcaps, "domain capabilities", NULL);
      if (domcaps_doc != NULL)
        cap.uefi =
          kd_hv_xml_exists (domcaps_doc,
                            "/domainCapabilities/os/enum[@name='firmware']/value[text()='efi']") ||
          kd_hv_xml_exists (domcaps_doc,
                            "/domainCapabilities/os/loader/value[contains(text(),'OVMF')]");
    }

  kd_hv_capacity_clear (out);
  *out = cap;
  return TRUE;
}

/* ---- storage pool ------------------------------------------------------ */

static char *
kd_hv_pool_xml (const char *name,
                const char *path)
{
  g_autoptr(xmlDoc) doc = xmlNewDoc ((const xmlChar *) "1.0");
  xmlNode *root = xmlNewNode (NULL, (const xmlChar *) "pool");
  xmlNode *target, *perms;

  xmlDocSetRootElement (doc, root);
  xmlNewProp (root, (const xmlChar *) "type", (const xmlChar *) "dir");
  xmlNewTextChild (root, NULL, (const xmlChar *) "name", (const xmlChar *) name);
  target = xmlNewChild (root, NULL, (const xmlChar *) "target", NULL);
  xmlNewTextChild (target, NULL, (const xmlChar *) "path", (const xmlChar *) path);
  /* QEMU runs as libvirt-qemu and must traverse the directory. */
  perms = xmlNewChild (target, NULL, (const xmlChar *) "permissions", NULL);
  xmlNewTextChild (perms, NULL, (const xmlChar *) "mode", (const xmlChar *) "0755");
  return kd_hv_xml_dump (doc, NULL);
}

/**
 * kd_hv_host_ensure_pool:
 *
 * Makes kvmdesk's storage pool exist (a `dir` pool at storage_pool_path,
 * built with mode 0755), be active and autostarted, and refreshes it.
 * Blocking.
 */
gboolean
kd_hv_host_ensure_pool (KdHvHost  *host,
                        GError   **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virStoragePool) pool = NULL;
  int active;

  if (conn == NULL)
    return FALSE;

  pool = virStoragePoolLookupByName (conn, host->pool_name);
  if (pool == NULL)
    {
      virErrorPtr lv = virGetLastError ();
      g_autofree char *xml = NULL;

      if (lv != NULL && lv->code != VIR_ERR_NO_STORAGE_POOL)
        {
          kd_hv_set_error_from_libvirt (error, host, conn,
                                        "cannot look up storage pool '%s'", host->pool_name);
          return FALSE;
        }
      virResetLastError ();
      if (!g_path_is_absolute (host->pool_path))
        {
          g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                       "host '%s': storage pool path '%s' is not absolute",
                       host->name, host->pool_path);
          return FALSE;
        }
      xml = kd_hv_pool_xml (host->pool_name, host->pool_path);
      pool = virStoragePoolDefineXML (conn, xml, 0);
      if (pool == NULL)
        {
          kd_hv_set_error_from_libvirt (error, host, conn,
                                        "cannot define storage pool '%s' at '%s'",
                                        host->pool_name, host->pool_path);
          return FALSE;
        }
      if (virStoragePoolBuild (pool, 0) < 0)
        {
          kd_hv_set_error_from_libvirt (error, host, conn,
                                        "cannot build storage pool '%s' at '%s'",
                                        host->pool_name, host->pool_path);
          virStoragePoolUndefine (pool);
          virResetLastError ();
          return FALSE;
        }
    }

  active = virStoragePoolIsActive (pool);
  if (active < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn,
                                    "cannot read state of storage pool '%s'", host->pool_name);
      return FALSE;
    }
  if (active == 0 && virStoragePoolCreate (pool, 0) < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn,
                                    "cannot start storage pool '%s'", host->pool_name);
      return FALSE;
    }
  if (virStoragePoolSetAutostart (pool, 1) < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn,
                                    "cannot mark storage pool '%s' autostart", host->pool_name);
      return FALSE;
    }
  if (virStoragePoolRefresh (pool, 0) < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn,
                                    "cannot refresh storage pool '%s'", host->pool_name);
      return FALSE;
    }
  return TRUE;
}
