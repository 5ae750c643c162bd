/*
 * kd-api-console.c: the browser console over the API.
 *
 * POST /desktops/{name}/console gives the owner (or an admin) a one-time
 * ticket valid 30 s. GET /console?ticket=T upgrades to a WebSocket: the
 * ticket and the Origin are checked before anything reaches QEMU, the
 * desktop's display is opened with virDomainOpenGraphicsFD (no TCP port),
 * and the gateway (src/gateway) terminates the RFB security handshake
 * and pumps bytes with bounded buffers. Each connection and disconnection
 * is fed to the desktop's session record (as a viewer of the broker);
 * a second console on the same desktop takes over from the first, or
 * joins it when the desktop's pool shares consoles (up to
 * KD_BROKER_VIEWERS_MAX).
 */
#include "kd-api-priv.h"

#include "common/kd-error.h"
#include "common/kd-time.h"
#include "gateway/kd-gateway.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define SEG(i)   (req->n_segs > (i) ? req->segs[i] : NULL)

struct _KdApiConsole {
  KdApiServer                       *server;
  gint64                             desktop_id;
  char                              *desktop;
  char                              *user;
  char                              *client;
  KdBrokerConsole                   *target;
  guint64                            viewer;
  gboolean                           share;
  char                              *accept;
  char                              *protocol;
  struct MHD_UpgradeResponseHandle  *urh;
  KdGatewaySession                  *session;
};

static void
kd_api_console_free (KdApiConsole *c)
{
  if (c->target != NULL)
    kd_broker_console_forget (c->server->broker, c->target);
  kd_broker_console_free (c->target);
  g_free (c->desktop);
  g_free (c->user);
  g_free (c->client);
  g_free (c->accept);
  g_free (c->protocol);
  g_free (c);
}

void
kd_api_consoles_init (KdApiServer *s)
{
  s->tickets = kd_gateway_tickets_new ();
  s->consoles = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                       (GDestroyNotify) g_ptr_array_unref);
}

void
kd_api_consoles_fini (KdApiServer *s)
{
  GHashTableIter iter;
  gpointer value;

  if (s->consoles == NULL)
    return;
  /* Stopping: end every console now. A close handshake would complete on
   * a main loop that no longer runs for this server. */
  g_hash_table_iter_init (&iter, s->consoles);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      GPtrArray *list = value;
      for (guint i = 0; i < list->len; i++)
        {
          KdApiConsole *c = list->pdata[i];
          g_info ("console of desktop '%s' for '%s' closed: kvmdeskd is stopping", c->desktop, c->user);
          kd_gateway_session_free (c->session);
          if (c->urh)
            MHD_upgrade_action (c->urh, MHD_UPGRADE_ACTION_CLOSE);
          kd_api_console_free (c);
        }
    }
  g_clear_pointer (&s->consoles, g_hash_table_destroy);
  g_clear_pointer (&s->tickets, kd_gateway_tickets_free);
}

/* A Host header fit to put in a URL: a name or address and a port. */
static gboolean
kd_api_console_host_ok (const char *host)
{
  gsize len = host ? strlen (host) : 0;

  return len > 0 && len <= 255 &&
         strspn (host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") == len;
}

/* POST /desktops/{name}/console: the caller may see the desktop. The url
 * is absolute, ws:// or wss:// as the broker serves, on the host the
 * client asked for (so that the Origin check passes from its pages). */
void
kd_api_console_ticket (KdApiRequest *req, KdDesktopRow *desk)
{
  KdApiServer *s = req->server;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autofree char *ticket = NULL;
  g_autofree char *url = NULL;
  g_autofree char *path = NULL;
  g_autofree char *expires = NULL;
  const char *host;
  gint64 now = kd_time_now ();

  ticket = kd_gateway_ticket_issue (s->tickets, req->user_id, desk->id, now, &error);
  if (ticket == NULL)
    {
      kd_api_respond_error (req, error);
      return;
    }
  host = MHD_lookup_connection_value (req->conn, MHD_HEADER_KIND, "Host");
  path = g_strdup_printf ("/api/v1/console?ticket=%s", ticket);
  url = g_strdup_printf ("%s://%s%s", s->tls ? "wss" : "ws",
                         kd_api_console_host_ok (host) ? host : s->address, path);
  expires = kd_time_format (now + KD_GATEWAY_TICKET_TTL_SEC * G_USEC_PER_SEC);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "ticket");
  json_builder_add_string_value (b, ticket);
  json_builder_set_member_name (b, "url");
  json_builder_add_string_value (b, url);
  json_builder_set_member_name (b, "path");
  json_builder_add_string_value (b, path);
  json_builder_set_member_name (b, "expires_at");
  json_builder_add_string_value (b, expires);
  json_builder_end_object (b);
  kd_api_respond_json (req, 200, json_builder_get_root (b));
}

/* Live counters of an open console (a viewer's handle). */
void
kd_api_console_counters (gpointer handle, guint64 *bytes_in, guint64 *bytes_out)
{
  KdApiConsole *c = handle;
  KdGatewayCounters counters = { 0 };

  if (c != NULL && c->session != NULL)
    kd_gateway_session_get_counters (c->session, &counters);
  *bytes_in = counters.ws_bytes_in;
  *bytes_out = counters.ws_bytes_out;
}

/* The consoles open on a desktop (NULL when none). */
static GPtrArray *
kd_api_consoles_of (KdApiServer *s, gint64 desktop_id)
{
  return s->consoles ? g_hash_table_lookup (s->consoles, &desktop_id) : NULL;
}

static void
kd_api_console_closed (KdGatewaySession *session, const char *reason, gpointer data)
{
  KdApiConsole *c = data;
  KdApiServer *s = c->server;
  GPtrArray *list = kd_api_consoles_of (s, c->desktop_id);
  KdGatewayCounters counters = { 0 };

  kd_gateway_session_get_counters (session, &counters);
  g_info ("console of desktop '%s' for '%s' closed: %s (%" G_GUINT64_FORMAT " bytes in, %"
          G_GUINT64_FORMAT " bytes out)", c->desktop, c->user, reason,
          (guint64) counters.ws_bytes_in, (guint64) counters.ws_bytes_out);
  if (list != NULL && g_ptr_array_remove (list, c))
    {
      if (list->len == 0)
        g_hash_table_remove (s->consoles, &c->desktop_id);
      kd_broker_viewer_remove (s->broker, c->viewer, (gint64) counters.ws_bytes_in,
                               (gint64) counters.ws_bytes_out);
    }
  if (c->urh)
    MHD_upgrade_action (c->urh, MHD_UPGRADE_ACTION_CLOSE);
  kd_api_server_kick (s);
  kd_gateway_session_free (session);
  kd_api_console_free (c);
}

static void
kd_api_console_upgraded (void *cls, struct MHD_Connection *connection, void *con_cls,
                         const char *extra_in, size_t extra_in_size, MHD_socket sock,
                         struct MHD_UpgradeResponseHandle *urh)
{
  KdApiConsole *c = cls;
  KdApiServer *s = c->server;
  GPtrArray *list;
  int fd, flags;

  c->urh = urh;
  /* The session owns its own descriptor; MHD closes the original. */
  fd = fcntl (sock, F_DUPFD_CLOEXEC, 3);
  flags = fd >= 0 ? fcntl (fd, F_GETFL) : -1;
  if (extra_in_size > 0 || fd < 0 || flags < 0 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) < 0)
    {
      g_info ("console of desktop '%s': %s", c->desktop,
              extra_in_size > 0 ? "the client sent data before the upgrade" : g_strerror (errno));
      if (fd >= 0)
        close (fd);
      MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
      kd_api_console_free (c);
      return;
    }
  list = kd_api_consoles_of (s, c->desktop_id);
  if (list == NULL)
    {
      gint64 *key = g_new (gint64, 1);
      *key = c->desktop_id;
      list = g_ptr_array_new ();
      g_hash_table_insert (s->consoles, key, list);
    }
  /* In takeover mode the consoles already open end: the newest wins. */
  while (!c->share && list->len > 0)
    {
      KdApiConsole *old = g_ptr_array_steal_index (list, 0);
      KdGatewayCounters counters = { 0 };

      kd_gateway_session_get_counters (old->session, &counters);
      kd_broker_viewer_remove (s->broker, old->viewer, (gint64) counters.ws_bytes_in,
                               (gint64) counters.ws_bytes_out);
      kd_gateway_session_close (old->session, "the console was taken over by another connection");
    }
  c->session = kd_gateway_session_new (fd, c->target->fd, c->target->password, NULL,
                                       kd_api_console_closed, c);
  c->target->fd = -1;
  g_ptr_array_add (list, c);
  g_info ("console of desktop '%s' opened for '%s' from %s (%s)", c->desktop, c->user, c->client,
          c->target->path);
  c->viewer = kd_broker_viewer_add (s->broker, c->desktop_id, "browser", c->client, c->user, c);
}

typedef struct {
  KdApiRequest *req;
  KdApiConsole *console;
} KdConsoleOpen;

static void
kd_api_console_opened (GObject *src, GAsyncResult *res, gpointer data)
{
  KdConsoleOpen *o = data;
  KdApiRequest *req = o->req;
  KdApiConsole *c = o->console;
  g_autoptr(GError) error = NULL;
  struct MHD_Response *resp;

  c->target = kd_broker_desktop_open_console_finish (req->server->broker, res, &error);
  if (c->target == NULL || req->cancelled)
    {
      if (error)
        kd_api_respond_error (req, error);
      kd_api_console_free (c);
      goto out;
    }
  resp = MHD_create_response_for_upgrade (kd_api_console_upgraded, c);
  MHD_add_response_header (resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
  MHD_add_response_header (resp, "Sec-WebSocket-Accept", c->accept);
  if (c->protocol)
    MHD_add_response_header (resp, "Sec-WebSocket-Protocol", c->protocol);
  kd_api_respond_raw (req, 101, resp);

out:
  kd_api_request_unref (req);
  g_free (o);
}

static const char *
kd_api_header (KdApiRequest *req, const char *name)
{
  return MHD_lookup_connection_value (req->conn, MHD_HEADER_KIND, name);
}

/**
 * kd_api_console_upgrade:
 * GET /api/v1/console?ticket=T. Refuses (before any byte reaches QEMU) a
 * bad upgrade, a foreign Origin, and a used, expired, forged or foreign
 * ticket.
 */
void
kd_api_console_upgrade (KdApiRequest *req)
{
  KdApiServer *s = req->server;
  KdStore *store = kd_broker_get_store (s->broker);
  g_autoptr(GError) error = NULL;
  g_autofree char *accept = NULL;
  g_autofree char *protocol = NULL;
  g_autoptr(KdDesktopRow) desk = NULL;
  g_autoptr(KdUserRow) user = NULL;
  KdGatewayWsRequest wr = {
    .method = req->method,
    .upgrade = kd_api_header (req, "Upgrade"),
    .connection = kd_api_header (req, "Connection"),
    .version = kd_api_header (req, "Sec-WebSocket-Version"),
    .key = kd_api_header (req, "Sec-WebSocket-Key"),
    .protocols = kd_api_header (req, "Sec-WebSocket-Protocol"),
  };
  const char *ticket = kd_api_request_query (req, "ticket");
  gint64 user_id = 0, desktop_id = 0;
  gboolean share;
  GPtrArray *list;
  KdConsoleOpen *o;
  KdApiConsole *c;

  if (!kd_gateway_ws_validate_request (&wr, &accept, &protocol, &error))
    {
      kd_api_respond_errorf (req, 400, "invalid", "%s", error->message);
      return;
    }
  if (!kd_gateway_origin_allowed (kd_api_header (req, "Origin"), kd_api_header (req, "Host"), s->tls))
    {
      g_message ("console from %s refused: Origin '%.200s' is not this broker", req->client,
                 kd_api_header (req, "Origin") ? kd_api_header (req, "Origin") : "(none)");
      kd_api_respond_errorf (req, 403, "forbidden", "the console must be opened from this broker's own pages");
      return;
    }
  if (ticket == NULL ||
      !kd_gateway_ticket_redeem (s->tickets, ticket, kd_time_now (), &user_id, &desktop_id, &error))
    {
      g_message ("console from %s refused: %s", req->client, error ? error->message : "no ticket");
      kd_api_respond_errorf (req, 401, "unauthorized", "%s",
                             error ? error->message : "a console ticket is required");
      return;
    }
  desk = kd_store_desktop_get (store, desktop_id, NULL);
  user = kd_store_user_get (store, user_id, NULL);
  if (desk == NULL || user == NULL ||
      (!g_str_equal (user->role, "admin") && desk->user_id != user_id))
    {
      kd_api_respond_errorf (req, 403, "forbidden", "this ticket no longer gives access to that desktop");
      return;
    }
  share = g_str_equal (kd_broker_desktop_console_mode (s->broker, desk), "share");
  list = kd_api_consoles_of (s, desk->id);
  if (share && list != NULL && list->len >= KD_BROKER_VIEWERS_MAX)
    {
      kd_api_respond_errorf (req, 409, "conflict",
                             "desktop '%s' already has %d consoles open, the most its pool shares",
                             desk->name, KD_BROKER_VIEWERS_MAX);
      return;
    }
  c = g_new0 (KdApiConsole, 1);
  c->server = s;
  c->desktop_id = desk->id;
  c->desktop = g_strdup (desk->name);
  c->user = g_strdup (user->name);
  c->client = g_strdup (req->client);
  c->share = share;
  c->accept = g_steal_pointer (&accept);
  c->protocol = g_steal_pointer (&protocol);
  o = g_new0 (KdConsoleOpen, 1);
  o->req = kd_api_request_ref (req);
  o->console = c;
  kd_broker_desktop_open_console_async (s->broker, desk->id, kd_api_console_opened, o);
  kd_api_request_suspend (req);
}

/* ------------------------------------------------------------------ */
/* native viewer files */

#define KD_API_VV_TTL_DEFAULT_SEC 120

/* ?name=0|1 (absent: FALSE). FALSE after answering 400. */
static gboolean
kd_api_query_flag (KdApiRequest *req, const char *name, gboolean *out)
{
  const char *v = kd_api_request_query (req, name);

  *out = FALSE;
  if (v == NULL || g_str_equal (v, "0") || g_str_equal (v, "false"))
    return TRUE;
  if (g_str_equal (v, "1") || g_str_equal (v, "true"))
    {
      *out = TRUE;
      return TRUE;
    }
  kd_api_respond_errorf (req, 400, "invalid", "query parameter '%s' must be 0 or 1", name);
  return FALSE;
}

static void
kd_api_respond_file (KdApiRequest *req, const char *text, const char *type, const char *filename)
{
  struct MHD_Response *resp = MHD_create_response_from_buffer (strlen (text), (void *) text,
                                                               MHD_RESPMEM_MUST_COPY);
  g_autofree char *disposition = g_strdup_printf ("attachment; filename=\"%s\"", filename);

  MHD_add_response_header (resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header (resp, "Content-Disposition", disposition);
  /* A password inside: never cached. */
  MHD_add_response_header (resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  kd_api_respond_raw (req, 200, resp);
}

typedef struct {
  KdApiRequest *req;
  char         *desktop;
  gboolean      fullscreen;
  gboolean      kiosk;
} KdViewerFileJob;

static void
kd_viewer_file_job_free (KdViewerFileJob *j)
{
  kd_api_request_unref (j->req);
  g_free (j->desktop);
  g_free (j);
}

static void
kd_api_vv_ready (GObject *src, GAsyncResult *res, gpointer data)
{
  KdViewerFileJob *j = data;
  KdApiRequest *req = j->req;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdBrokerViewerPass) pass = kd_broker_desktop_viewer_pass_finish (req->server->broker, res, &error);
  g_autofree char *text = NULL;
  g_autofree char *filename = NULL;

  if (req->cancelled)
    goto out;
  if (pass != NULL)
    {
      KdGatewayVvSpec spec = {
        .type = pass->type, .host = pass->host, .port = pass->port, .tls_port = pass->tls_port,
        .password = pass->password, .title = pass->title, .expires_at = pass->expires_at,
        .fullscreen = j->fullscreen, .kiosk = j->kiosk,
      };
      text = kd_gateway_vv_build (&spec, &error);
    }
  if (text == NULL)
    {
      kd_api_respond_error (req, error);
      goto out;
    }
  filename = g_strdup_printf ("%s.vv", j->desktop);
  kd_api_respond_file (req, text, "application/x-virt-viewer", filename);
  memset (text, 0, strlen (text));
out:
  kd_viewer_file_job_free (j);
}

/**
 * kd_api_console_vv:
 * GET /desktops/{name}/console.vv[?ttl=S&fullscreen=1&kiosk=1]: a
 * remote-viewer file with a password set on the display, valid S seconds
 * (default 120).
 */
void
kd_api_console_vv (KdApiRequest *req, KdDesktopRow *desk)
{
  gint64 ttl = KD_API_VV_TTL_DEFAULT_SEC;
  const char *ttl_s = kd_api_request_query (req, "ttl");
  KdViewerFileJob *j;
  gboolean fullscreen, kiosk;

  if (ttl_s != NULL && !g_ascii_string_to_signed (ttl_s, 10, 1, 3600, &ttl, NULL))
    {
      kd_api_respond_errorf (req, 400, "invalid", "ttl must be a number of seconds from 1 to 3600");
      return;
    }
  if (!kd_api_query_flag (req, "fullscreen", &fullscreen) || !kd_api_query_flag (req, "kiosk", &kiosk))
    return;
  j = g_new0 (KdViewerFileJob, 1);
  j->req = kd_api_request_ref (req);
  j->desktop = g_strdup (desk->name);
  j->fullscreen = fullscreen;
  j->kiosk = kiosk;
  kd_broker_desktop_viewer_pass_async (req->server->broker, desk->id, ttl, req->user, kd_api_vv_ready, j);
  kd_api_request_suspend (req);
}

static void
kd_api_rdp_ready (GObject *src, GAsyncResult *res, gpointer data)
{
  KdViewerFileJob *j = data;
  KdApiRequest *req = j->req;
  g_autoptr(GError) error = NULL;
  gint64 port = 0;
  g_autofree char *address = kd_broker_desktop_rdp_address_finish (req->server->broker, res, &port, &error);
  g_autofree char *text = NULL;
  g_autofree char *filename = NULL;

  if (req->cancelled)
    goto out;
  if (address != NULL)
    text = kd_gateway_rdp_build (address, port, req->user, j->fullscreen, &error);
  if (text == NULL)
    {
      kd_api_respond_error (req, error);
      goto out;
    }
  filename = g_strdup_printf ("%s.rdp", j->desktop);
  kd_api_respond_file (req, text, "application/x-rdp", filename);
out:
  kd_viewer_file_job_free (j);
}

/**
 * kd_api_console_rdp:
 * GET /desktops/{name}/console.rdp[?fullscreen=1]: an RDP file pointing
 * at the guest's address (for templates with an rdp_port).
 */
void
kd_api_console_rdp (KdApiRequest *req, KdDesktopRow *desk)
{
  KdViewerFileJob *j;
  gboolean fullscreen;

  if (!kd_api_query_flag (req, "fullscreen", &fullscreen))
    return;
  j = g_new0 (KdViewerFileJob, 1);
  j->req = kd_api_request_ref (req);
  j->desktop = g_strdup (desk->name);
  j->fullscreen = fullscreen;
  kd_broker_desktop_rdp_address_async (req->server->broker, desk->id, kd_api_rdp_ready, j);
  kd_api_request_suspend (req);
}
