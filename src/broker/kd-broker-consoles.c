/*
 * kd-broker-consoles.c: how people reach a desktop's display, and who is
 * watching it.
 *
 * - The console gateway's connection to a desktop: on a libvirtd of this
 *   machine through virDomainOpenGraphicsFD (no TCP port, no password);
 *   on a remote host over TCP to the display's listen address, with a
 *   one-time VNC password set on the running domain just before and
 *   expiring 30 s later.
 * - Native viewers (.vv): the display's address and a password with an
 *   expiry set on the domain; .rdp: the guest's address.
 * - Viewers: every console through the gateway and every native viewer
 *   libvirt's graphics events report. The first makes the desktop
 *   connected, the last to leave disconnected; counters per desktop.
 *
 * Every domain has only one password per display: a .vv password and a
 * TCP console's password replace each other. Both expire quickly, and
 * viewers already in stay (connected='keep').
 */
#include "kd-broker-priv.h"
#include "kd-broker-state.h"

#include "common/kd-error.h"
#include "common/kd-random.h"
#include "common/kd-time.h"

#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#define KD_CONSOLE_CONNECT_TIMEOUT_SEC 10

static void
kd_viewer_free (KdBrokerViewer *v)
{
  g_free (v->kind);
  g_free (v->client);
  g_free (v->user);
  g_free (v);
}

void
kd_broker_consoles_init (KdBroker *b)
{
  b->viewers = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                      (GDestroyNotify) g_ptr_array_unref);
  b->native = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  b->own_endpoints = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  b->next_viewer = 1;
}

void
kd_broker_consoles_fini (KdBroker *b)
{
  g_clear_pointer (&b->viewers, g_hash_table_destroy);
  g_clear_pointer (&b->native, g_hash_table_destroy);
  g_clear_pointer (&b->own_endpoints, g_hash_table_destroy);
}

void
kd_broker_console_free (KdBrokerConsole *c)
{
  if (c == NULL)
    return;
  if (c->fd >= 0)
    close (c->fd);
  g_free (c->path);
  if (c->password)
    memset (c->password, 0, strlen (c->password));
  g_free (c->password);
  g_free (c->endpoint);
  g_free (c);
}

void
kd_broker_viewer_pass_free (KdBrokerViewerPass *p)
{
  if (p == NULL)
    return;
  g_free (p->type);
  g_free (p->host);
  if (p->password)
    memset (p->password, 0, strlen (p->password));
  g_free (p->password);
  g_free (p->title);
  g_free (p);
}

const char *
kd_broker_host_console_path (KdBrokerHost *h)
{
  const char *access = h->row->console_access ? h->row->console_access : "auto";

  if (kd_hv_host_is_simulated (h->hv))
    return "none";
  if (g_str_equal (access, "fd") || g_str_equal (access, "tcp"))
    return access;
  return kd_hv_host_is_local (h->hv) ? "fd" : "tcp";
}

/* Where a viewer (or the gateway) reaches a display that listens on
 * @listen: that address, unless it is a wildcard; then the host's name
 * from its URI (127.0.0.1 for a local one). */
static char *
kd_broker_display_address (KdHvHost *hv, const char *listen)
{
  g_autoptr(GInetAddress) a = listen ? g_inet_address_new_from_string (listen) : NULL;

  if (a != NULL && !g_inet_address_get_is_any (a))
    return g_strdup (listen);
  {
    char *name = kd_hv_host_uri_hostname (hv);
    return name != NULL ? name : g_strdup ("127.0.0.1");
  }
}

/* Its template has display=dbus: kvmdesk-display serves it. */
gboolean
kd_broker_desktop_display_is_dbus (KdBroker *b, const KdDesktopRow *row)
{
  g_autoptr(KdTemplateRow) tpl = kd_store_template_get (b->store, row->template_id, NULL);
  return tpl != NULL && g_strcmp0 (tpl->display, "dbus") == 0;
}

static KdDesktopRow *
kd_broker_console_desktop (KdBroker *b, gint64 desktop_id, KdBrokerHost **out_host, GError **error)
{
  g_autoptr(KdDesktopRow) row = kd_store_desktop_get (b->store, desktop_id, error);
  KdBrokerHost *h;

  if (row == NULL)
    return NULL;
  if (!kd_desktop_state_is_up (row->state))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_BUSY, "desktop '%s' is %s, not running",
                   row->name, row->state);
      return NULL;
    }
  h = kd_broker_host_by_id (b, row->host_id);
  if (h == NULL || !kd_broker_host_is_up (h))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_UNAVAILABLE, "the host of desktop '%s' is %s",
                   row->name, h ? h->state : "gone");
      return NULL;
    }
  if (g_str_equal (kd_broker_host_console_path (h), "none"))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_UNAVAILABLE,
                   "desktop '%s' is on host '%s', a simulation (test://): it has no display",
                   row->name, h->row->name);
      return NULL;
    }
  *out_host = h;
  return g_steal_pointer (&row);
}

/* ------------------------------------------------------------------ */
/* the gateway's connection */

typedef struct {
  GTask           *task;
  KdHvHost        *hv;
  char            *domain;
  char            *listen;      /* the host's graphics_listen */
  char            *display_address; /* kvmdesk-display: where it listens (password given) */
  gint64           display_port;
  KdBrokerConsole *console;
  GError          *error;
} KdConsoleJob;

static void
kd_console_job_free (KdConsoleJob *j)
{
  g_clear_object (&j->task);
  g_clear_pointer (&j->hv, kd_hv_host_unref);
  g_free (j->domain);
  g_free (j->listen);
  g_free (j->display_address);
  kd_broker_console_free (j->console);
  g_clear_error (&j->error);
  g_free (j);
}

static char *
kd_endpoint_string (GSocketAddress *address)
{
  GInetSocketAddress *inet;
  g_autofree char *ip = NULL;

  if (!G_IS_INET_SOCKET_ADDRESS (address))
    return NULL;
  inet = G_INET_SOCKET_ADDRESS (address);
  ip = g_inet_address_to_string (g_inet_socket_address_get_address (inet));
  return g_strdup_printf ("%s|%u", ip, g_inet_socket_address_get_port (inet));
}

/* Worker thread: one-time password, then a TCP connection to the VNC
 * port (the gateway answers QEMU's challenge with the password). For a
 * kvmdesk-display the password was given to it on the main loop. */
static gboolean
kd_console_connect_tcp (KdConsoleJob *j)
{
  g_autoptr(KdHvGraphics) g = NULL;
  g_autoptr(GSocketClient) client = NULL;
  g_autoptr(GSocketConnection) conn = NULL;
  g_autoptr(GSocketAddress) local = NULL;
  g_autofree char *address = NULL;
  g_autofree char *password = j->console->password ? g_steal_pointer (&j->console->password)
                                                   : kd_random_password (KD_BROKER_VNC_PASSWORD_LEN);
  gint64 valid_to = kd_time_now () / G_USEC_PER_SEC + KD_BROKER_GATEWAY_PASSWORD_SEC;
  gint64 port;
  GSocket *socket;
  int fd, flags;

  if (j->display_address != NULL)
    {
      address = kd_broker_display_address (j->hv, j->display_address);
      port = j->display_port;
    }
  else
    {
      g = kd_hv_domain_graphics_get (j->hv, j->domain, "vnc", &j->error);
      if (g == NULL)
        return FALSE;
      if (!kd_hv_domain_graphics_set_password (j->hv, j->domain, "vnc", password, valid_to, &j->error))
        return FALSE;
      address = kd_broker_display_address (j->hv, g->listen ? g->listen : j->listen);
      port = g->port;
    }
  client = g_socket_client_new ();
  g_socket_client_set_timeout (client, KD_CONSOLE_CONNECT_TIMEOUT_SEC);
  conn = g_socket_client_connect_to_host (client, address, (guint16) port, NULL, &j->error);
  if (conn == NULL)
    {
      g_prefix_error (&j->error, "cannot reach the display of domain '%s' at %s port %" G_GINT64_FORMAT ": ",
                      j->domain, address, port);
      return FALSE;
    }
  socket = g_socket_connection_get_socket (conn);
  local = g_socket_get_local_address (socket, NULL);
  fd = fcntl (g_socket_get_fd (socket), F_DUPFD_CLOEXEC, 3);
  flags = fd >= 0 ? fcntl (fd, F_GETFL) : -1;
  if (flags < 0 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) < 0)
    {
      g_set_error (&j->error, KD_ERROR, KD_ERROR_FAILED, "cannot set up the display socket of '%s': %s",
                   j->domain, g_strerror (errno));
      if (fd >= 0)
        close (fd);
      return FALSE;
    }
  j->console->fd = fd;
  j->console->password = g_steal_pointer (&password);
  j->console->endpoint = local ? kd_endpoint_string (local) : NULL;
  /* The GSocketConnection closes its own descriptor; ours is a dup. */
  return TRUE;
}

static void
kd_console_run (gpointer data, GCancellable *c)
{
  KdConsoleJob *j = data;

  if (g_str_equal (j->console->path, "fd"))
    j->console->fd = kd_hv_domain_open_graphics (j->hv, j->domain, &j->error);
  else
    kd_console_connect_tcp (j);
}

static void
kd_console_done (KdBroker *b, gpointer data)
{
  KdConsoleJob *j = data;

  if (j->console->fd < 0)
    {
      g_task_return_error (j->task, j->error ? g_steal_pointer (&j->error)
                           : g_error_new (KD_ERROR, KD_ERROR_FAILED, "cannot open the display"));
      return;
    }
  if (j->console->endpoint != NULL)
    g_hash_table_add (b->own_endpoints, g_strdup (j->console->endpoint));
  g_task_return_pointer (j->task, g_steal_pointer (&j->console), (GDestroyNotify) kd_broker_console_free);
}

/**
 * kd_broker_desktop_open_console_async:
 * Opens a socket speaking RFB to the running desktop's VNC display, the
 * way its host allows (kd_broker_host_console_path()).
 */
void
kd_broker_desktop_open_console_async (KdBroker *b, gint64 desktop_id, GAsyncReadyCallback cb,
                                      gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = NULL;
  KdBrokerHost *h = NULL;
  KdConsoleJob *j;

  row = kd_broker_console_desktop (b, desktop_id, &h, &error);
  if (row == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  j = g_new0 (KdConsoleJob, 1);
  j->task = g_steal_pointer (&task);
  j->hv = kd_hv_host_ref (h->hv);
  j->domain = g_strdup (row->domain);
  j->listen = g_strdup (h->row->graphics_listen);
  j->console = g_new0 (KdBrokerConsole, 1);
  j->console->fd = -1;
  j->console->path = g_strdup (kd_broker_host_console_path (h));
  if (kd_broker_desktop_display_is_dbus (b, row))
    {
      /* kvmdesk-display serves it: TCP with a password given to it. */
      g_autofree char *password = kd_random_password (KD_BROKER_VNC_PASSWORD_LEN);
      gint64 until = kd_time_now () / G_USEC_PER_SEC + KD_BROKER_GATEWAY_PASSWORD_SEC;
      if (!kd_broker_display_password (b, row->id, password, until, &j->display_address,
                                       &j->display_port, &error))
        {
          g_task_return_error (j->task, g_steal_pointer (&error));
          kd_console_job_free (j);
          return;
        }
      g_free (j->console->path);
      j->console->path = g_strdup ("tcp");
      j->console->password = g_steal_pointer (&password);
    }
  kd_broker_run_host_job (b, h->row->name, kd_console_run, kd_console_done, j,
                          (GDestroyNotify) kd_console_job_free);
}

KdBrokerConsole *
kd_broker_desktop_open_console_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_pointer (G_TASK (res), error);
}

/**
 * kd_broker_console_forget:
 * The console's TCP connection is gone: its endpoint is no longer ours.
 */
void
kd_broker_console_forget (KdBroker *b, KdBrokerConsole *console)
{
  if (console != NULL && console->endpoint != NULL && b->own_endpoints != NULL)
    g_hash_table_remove (b->own_endpoints, console->endpoint);
}

/* ------------------------------------------------------------------ */
/* viewers */

static void
kd_viewer_heartbeat (KdBroker *b, gint64 desktop_id, gboolean connected, const char *actor)
{
  g_autoptr(KdDesktopRow) row = kd_store_desktop_get (b->store, desktop_id, NULL);
  g_autoptr(KdDesktopRow) after = NULL;

  /* An unassigned spare (an operator looking at it) has no session. */
  if (row == NULL || row->user_id == 0)
    return;
  after = kd_broker_desktop_heartbeat (b, row->name, connected, actor, NULL);
}

/**
 * kd_broker_viewer_add:
 * Returns: the viewer's id, for kd_broker_viewer_remove().
 */
guint64
kd_broker_viewer_add (KdBroker *b, gint64 desktop_id, const char *kind, const char *client,
                      const char *user, gpointer handle)
{
  GPtrArray *list = g_hash_table_lookup (b->viewers, &desktop_id);
  KdBrokerViewer *v = g_new0 (KdBrokerViewer, 1);
  g_autoptr(GError) error = NULL;

  v->id = b->next_viewer++;
  v->desktop_id = desktop_id;
  v->kind = g_strdup (kind);
  v->client = g_strdup (client);
  v->user = g_strdup (user);
  v->since = kd_time_now ();
  v->handle = handle;
  if (list == NULL)
    {
      gint64 *key = g_new (gint64, 1);
      *key = desktop_id;
      list = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_viewer_free);
      g_hash_table_insert (b->viewers, key, list);
    }
  g_ptr_array_add (list, v);
  if (!kd_store_desktop_add_console_stats (b->store, desktop_id, 1, 0, 0, &error))
    g_debug ("%s", error->message);
  if (list->len == 1)
    kd_viewer_heartbeat (b, desktop_id, TRUE, user);
  return v->id;
}

/**
 * kd_broker_viewer_remove:
 * Counts the bytes the viewer moved; the last one out disconnects the
 * desktop. An unknown id does nothing.
 */
void
kd_broker_viewer_remove (KdBroker *b, guint64 viewer_id, gint64 bytes_in, gint64 bytes_out)
{
  GHashTableIter iter;
  gpointer value;

  if (b->viewers == NULL)
    return;
  g_hash_table_iter_init (&iter, b->viewers);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      GPtrArray *list = value;
      for (guint i = 0; i < list->len; i++)
        {
          KdBrokerViewer *v = list->pdata[i];
          gint64 desktop_id;
          g_autofree char *user = NULL;
          g_autoptr(GError) error = NULL;

          if (v->id != viewer_id)
            continue;
          desktop_id = v->desktop_id;
          user = g_strdup (v->user);
          g_ptr_array_remove_index (list, i);
          if ((bytes_in > 0 || bytes_out > 0) &&
              !kd_store_desktop_add_console_stats (b->store, desktop_id, 0, bytes_in, bytes_out, &error))
            g_debug ("%s", error->message);
          if (list->len == 0)
            {
              g_hash_table_iter_remove (&iter);
              kd_viewer_heartbeat (b, desktop_id, FALSE, user);
            }
          return;
        }
    }
}

static gint64
kd_broker_viewer_desktop_of (KdBroker *b, guint64 viewer_id)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, b->viewers);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    for (guint i = 0; i < ((GPtrArray *) value)->len; i++)
      {
        KdBrokerViewer *v = ((GPtrArray *) value)->pdata[i];
        if (v->id == viewer_id)
          return v->desktop_id;
      }
  return 0;
}

GPtrArray *
kd_broker_viewer_list (KdBroker *b, gint64 desktop_id)
{
  return b->viewers ? g_hash_table_lookup (b->viewers, &desktop_id) : NULL;
}

guint
kd_broker_viewer_count (KdBroker *b, gint64 desktop_id)
{
  GPtrArray *list = kd_broker_viewer_list (b, desktop_id);
  return list ? list->len : 0;
}

const char *
kd_broker_desktop_console_mode (KdBroker *b, const KdDesktopRow *row)
{
  g_autoptr(KdPoolRow) pool = NULL;

  if (row->pool_id == 0)
    return "takeover";
  pool = kd_store_pool_get (b->store, row->pool_id, NULL);
  if (pool != NULL && pool->console_mode != NULL && g_str_equal (pool->console_mode, "share"))
    return "share";
  return "takeover";
}

/* ------------------------------------------------------------------ */
/* native viewers, from libvirt's graphics events */

static KdDesktopRow *
kd_broker_desktop_by_domain (KdBroker *b, KdBrokerHost *h, const char *domain)
{
  g_autoptr(GPtrArray) desktops = kd_store_desktop_list_by_host (b->store, h->row->id, NULL);

  for (guint i = 0; desktops && i < desktops->len; i++)
    {
      KdDesktopRow *row = desktops->pdata[i];
      if (g_str_equal (row->domain, domain))
        return g_ptr_array_steal_index (desktops, i);
    }
  return NULL;
}

void
kd_broker_graphics_event (KdHvHost *hv, const KdHvGraphicsEvent *ev, gpointer user_data)
{
  KdBroker *b = user_data;
  KdBrokerHost *h = g_hash_table_lookup (b->hosts, kd_hv_host_get_name (hv));
  g_autofree char *endpoint = NULL;
  g_autofree char *key = NULL;
  g_autofree char *client = NULL;
  g_autoptr(KdDesktopRow) row = NULL;
  guint64 *id;

  if (h == NULL || ev->domain_name == NULL || ev->remote_is_unix)
    return;   /* a socket handed over by libvirt: our own gateway */
  endpoint = g_strdup_printf ("%s|%s", ev->remote_node ? ev->remote_node : "",
                              ev->remote_service ? ev->remote_service : "");
  if (g_hash_table_contains (b->own_endpoints, endpoint))
    {
      if (ev->phase == KD_HV_GRAPHICS_DISCONNECT)
        g_hash_table_remove (b->own_endpoints, endpoint);
      return;
    }
  key = g_strdup_printf ("%s/%s/%s", h->row->name, ev->domain_name, endpoint);
  if (ev->phase == KD_HV_GRAPHICS_DISCONNECT)
    {
      id = g_hash_table_lookup (b->native, key);
      if (id == NULL)
        return;
      row = kd_store_desktop_get (b->store, kd_broker_viewer_desktop_of (b, *id), NULL);
      if (row != NULL)
        kd_broker_desktop_event (b, row, NULL, "viewer", row->state, row->state,
                                 "a viewer from %s left desktop '%s'", ev->remote_node, row->name);
      kd_broker_viewer_remove (b, *id, 0, 0);
      g_hash_table_remove (b->native, key);
      return;
    }
  if (ev->phase != KD_HV_GRAPHICS_INITIALIZE || g_hash_table_contains (b->native, key))
    return;
  row = kd_broker_desktop_by_domain (b, h, ev->domain_name);
  if (row == NULL)
    return;   /* not one of ours */
  client = g_strdup_printf ("%s:%s", ev->remote_node ? ev->remote_node : "?",
                            ev->remote_service ? ev->remote_service : "?");
  kd_broker_desktop_event (b, row, NULL, "viewer", row->state, row->state,
                           "a native viewer from %s connected to desktop '%s' (%s authentication)",
                           ev->remote_node ? ev->remote_node : "?", row->name,
                           ev->auth_scheme ? ev->auth_scheme : "unknown");
  id = g_new (guint64, 1);
  *id = kd_broker_viewer_add (b, row->id, "native", client, NULL, NULL);
  g_hash_table_insert (b->native, g_steal_pointer (&key), id);
}

/* ------------------------------------------------------------------ */
/* native viewer files */

typedef struct {
  GTask              *task;
  KdHvHost           *hv;
  char               *domain;
  char               *listen;
  gint64              ttl;
  KdBrokerViewerPass *pass;
  GError             *error;
} KdPassJob;

static void
kd_pass_job_free (KdPassJob *j)
{
  g_clear_object (&j->task);
  g_clear_pointer (&j->hv, kd_hv_host_unref);
  g_free (j->domain);
  g_free (j->listen);
  kd_broker_viewer_pass_free (j->pass);
  g_clear_error (&j->error);
  g_free (j);
}

static void
kd_pass_run (gpointer data, GCancellable *c)
{
  KdPassJob *j = data;
  KdBrokerViewerPass *p = j->pass;
  g_autoptr(KdHvGraphics) g = kd_hv_domain_graphics_get (j->hv, j->domain, p->type, &j->error);
  gboolean vnc = g_str_equal (p->type, "vnc");

  if (g == NULL)
    return;
  p->password = kd_random_password (vnc ? KD_BROKER_VNC_PASSWORD_LEN : KD_BROKER_SPICE_PASSWORD_LEN);
  p->expires_at = kd_time_now () + j->ttl * G_USEC_PER_SEC;
  if (!kd_hv_domain_graphics_set_password (j->hv, j->domain, p->type, p->password,
                                           p->expires_at / G_USEC_PER_SEC, &j->error))
    return;
  p->host = kd_broker_display_address (j->hv, g->listen ? g->listen : j->listen);
  p->port = g->port;
  p->tls_port = g->tls_port;
}

static void
kd_pass_done (KdBroker *b, gpointer data)
{
  KdPassJob *j = data;

  if (j->error != NULL)
    g_task_return_error (j->task, g_steal_pointer (&j->error));
  else
    g_task_return_pointer (j->task, g_steal_pointer (&j->pass),
                           (GDestroyNotify) kd_broker_viewer_pass_free);
}

/**
 * kd_broker_desktop_viewer_pass_async:
 * @ttl_sec: how long the password lets a viewer in (1..3600)
 *
 * Sets a fresh password on the running desktop's display (SPICE for
 * templates with display=spice, else VNC) and returns what a viewer
 * needs. Recorded as an event (without the password).
 */
void
kd_broker_desktop_viewer_pass_async (KdBroker *b, gint64 desktop_id, gint64 ttl_sec,
                                     const char *actor, GAsyncReadyCallback cb, gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = NULL;
  g_autoptr(KdTemplateRow) tpl = NULL;
  KdBrokerHost *h = NULL;
  KdPassJob *j;

  if (ttl_sec < 1 || ttl_sec > 3600)
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_INVALID,
                               "a viewer password lives 1 to 3600 seconds, not %" G_GINT64_FORMAT,
                               ttl_sec);
      return;
    }
  row = kd_broker_console_desktop (b, desktop_id, &h, &error);
  if (row == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  tpl = kd_store_template_get (b->store, row->template_id, NULL);
  if (tpl != NULL && g_strcmp0 (tpl->display, "dbus") == 0)
    {
      /* kvmdesk-display serves it over VNC: the password goes to it. */
      g_autoptr(KdBrokerViewerPass) pass = g_new0 (KdBrokerViewerPass, 1);
      g_autofree char *listen = NULL;
      pass->type = g_strdup ("vnc");
      pass->title = g_strdup (row->name);
      pass->tls_port = -1;
      pass->password = kd_random_password (KD_BROKER_VNC_PASSWORD_LEN);
      pass->expires_at = kd_time_now () + ttl_sec * G_USEC_PER_SEC;
      if (!kd_broker_display_password (b, row->id, pass->password, pass->expires_at / G_USEC_PER_SEC,
                                       &listen, &pass->port, &error))
        {
          g_task_return_error (task, g_steal_pointer (&error));
          return;
        }
      pass->host = kd_broker_display_address (h->hv, listen);
      kd_broker_desktop_event (b, row, actor, "viewer-pass", row->state, row->state,
                               "a viewer password for desktop '%s' (kvmdesk-display) was issued to %s, "
                               "valid %" G_GINT64_FORMAT " s", row->name, actor ? actor : "the system", ttl_sec);
      g_task_return_pointer (task, g_steal_pointer (&pass), (GDestroyNotify) kd_broker_viewer_pass_free);
      return;
    }
  kd_broker_desktop_event (b, row, actor, "viewer-pass", row->state, row->state,
                           "a viewer password for desktop '%s' was issued to %s, valid %" G_GINT64_FORMAT " s",
                           row->name, actor ? actor : "the system", ttl_sec);
  j = g_new0 (KdPassJob, 1);
  j->task = g_steal_pointer (&task);
  j->hv = kd_hv_host_ref (h->hv);
  j->domain = g_strdup (row->domain);
  j->listen = g_strdup (h->row->graphics_listen);
  j->ttl = ttl_sec;
  j->pass = g_new0 (KdBrokerViewerPass, 1);
  j->pass->type = g_strdup (tpl != NULL && tpl->display != NULL && g_str_equal (tpl->display, "spice")
                            ? "spice" : "vnc");
  j->pass->title = g_strdup (row->name);
  j->pass->tls_port = -1;
  kd_broker_run_host_job (b, h->row->name, kd_pass_run, kd_pass_done, j,
                          (GDestroyNotify) kd_pass_job_free);
}

KdBrokerViewerPass *
kd_broker_desktop_viewer_pass_finish (KdBroker *b, GAsyncResult *res, GError **error)
{
  return g_task_propagate_pointer (G_TASK (res), error);
}

typedef struct {
  GTask    *task;
  KdHvHost *hv;
  char     *domain;
  char     *address;
  GError   *error;
} KdAddressJob;

static void
kd_address_job_free (KdAddressJob *j)
{
  g_clear_object (&j->task);
  g_clear_pointer (&j->hv, kd_hv_host_unref);
  g_free (j->domain);
  g_free (j->address);
  g_clear_error (&j->error);
  g_free (j);
}

static void
kd_address_run (gpointer data, GCancellable *c)
{
  KdAddressJob *j = data;
  j->address = kd_hv_domain_guest_address (j->hv, j->domain, &j->error);
}

static void
kd_address_done (KdBroker *b, gpointer data)
{
  KdAddressJob *j = data;

  if (j->address == NULL)
    /* Not a fault of ours: the guest has no address (yet). */
    g_task_return_new_error (j->task, KD_ERROR, KD_ERROR_UNAVAILABLE,
                             "%s; an RDP client needs the guest on a network, with the QEMU guest "
                             "agent or a libvirt DHCP lease", j->error->message);
  else
    g_task_return_pointer (j->task, g_steal_pointer (&j->address), g_free);
}

/**
 * kd_broker_desktop_rdp_address_async:
 * For templates with an RDP port: the running guest's address.
 */
void
kd_broker_desktop_rdp_address_async (KdBroker *b, gint64 desktop_id, GAsyncReadyCallback cb,
                                     gpointer data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, cb, data);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = kd_store_desktop_get (b->store, desktop_id, &error);
  g_autoptr(KdTemplateRow) tpl = NULL;
  KdBrokerHost *h;
  KdAddressJob *j;

  if (row == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  tpl = kd_store_template_get (b->store, row->template_id, NULL);
  if (tpl == NULL || tpl->rdp_port <= 0)
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_UNAVAILABLE,
                               "desktop '%s' has no RDP server: its template '%s' sets no rdp_port",
                               row->name, tpl ? tpl->name : "?");
      return;
    }
  if (!kd_desktop_state_is_up (row->state))
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_BUSY, "desktop '%s' is %s, not running",
                               row->name, row->state);
      return;
    }
  h = kd_broker_host_by_id (b, row->host_id);
  if (h == NULL || !kd_broker_host_is_up (h))
    {
      g_task_return_new_error (task, KD_ERROR, KD_ERROR_UNAVAILABLE, "the host of desktop '%s' is %s",
                               row->name, h ? h->state : "gone");
      return;
    }
  g_task_set_task_data (task, g_memdup2 (&tpl->rdp_port, sizeof tpl->rdp_port), g_free);
  j = g_new0 (KdAddressJob, 1);
  j->task = g_steal_pointer (&task);
  j->hv = kd_hv_host_ref (h->hv);
  j->domain = g_strdup (row->domain);
  kd_broker_run_host_job (b, h->row->name, kd_address_run, kd_address_done, j,
                          (GDestroyNotify) kd_address_job_free);
}

char *
kd_broker_desktop_rdp_address_finish (KdBroker *b, GAsyncResult *res, gint64 *out_port,
                                      GError **error)
{
  gint64 *port = g_task_get_task_data (G_TASK (res));

  if (out_port != NULL)
    *out_port = port ? *port : 0;
  return g_task_propagate_pointer (G_TASK (res), error);
}
