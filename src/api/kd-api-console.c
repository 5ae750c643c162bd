/*
 * kd-api-console.c: the browser console over the API.
 *
 * POST /desktops/{name}/console gives the owner (or an admin) a one-time
 * ticket valid 30 s. GET /console?ticket=T upgrades to a WebSocket: the
 * ticket and the Origin are checked before anything reaches QEMU, the
 * desktop's display is opened with virDomainOpenGraphicsFD (no TCP port),
 * and the gateway (src/gateway) terminates the RFB security handshake
 * and pumps bytes with bounded buffers. Each connection and disconnection
 * is fed to the desktop's session record; a second console on the same
 * desktop takes over from the first.
 */
#include "kd-api-priv.h"

#include "common/kd-error.h"
#include "common/kd-time.h"
#include "gateway/kd-gateway.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define SEG(i)   (req->n_segs > (i) ? req->segs[i] : NULL)

struct _KdApiConsole {
  KdApiServer                       *server;
  gint64                             desktop_id;
  char                              *desktop;
  char                              *user;
  int                                vnc_fd;
  char                              *accept;
  char                              *protocol;
  struct MHD_UpgradeResponseHandle  *urh;
  KdGatewaySession                  *session;
};

static void
kd_api_console_free (KdApiConsole *c)
{
  if (c->vnc_fd >= 0)
    close (c->vnc_fd);
  g_free (c->desktop);
  g_free (c->user);
  g_free (c->accept);
  g_free (c->protocol);
  g_free (c);
}

void
kd_api_consoles_init (KdApiServer *s)
{
  s->tickets = kd_gateway_tickets_new ();
  s->consoles = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
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
      KdApiConsole *c = value;
      g_info ("console of desktop '%s' for '%s' closed: kvmdeskd is stopping", c->desktop, c->user);
      kd_gateway_session_free (c->session);
      if (c->urh)
        MHD_upgrade_action (c->urh, MHD_UPGRADE_ACTION_CLOSE);
      kd_api_console_free (c);
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

static void
kd_api_console_closed (KdGatewaySession *session, const char *reason, gpointer data)
{
  KdApiConsole *c = data;
  KdApiServer *s = c->server;
  g_autoptr(KdDesktopRow) after = NULL;

  g_info ("console of desktop '%s' for '%s' closed: %s", c->desktop, c->user, reason);
  if (s->consoles && g_hash_table_lookup (s->consoles, &c->desktop_id) == c)
    {
      g_hash_table_remove (s->consoles, &c->desktop_id);
      after = kd_broker_desktop_heartbeat (s->broker, c->desktop, FALSE, c->user, NULL);
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
  KdApiConsole *old;
  g_autoptr(KdDesktopRow) after = NULL;
  gint64 *key;
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
  /* Another console on this desktop is taken over. */
  old = g_hash_table_lookup (s->consoles, &c->desktop_id);
  if (old != NULL)
    {
      g_hash_table_remove (s->consoles, &c->desktop_id);
      kd_gateway_session_close (old->session, "the console was taken over by another connection");
    }
  c->session = kd_gateway_session_new (fd, c->vnc_fd, NULL, NULL, kd_api_console_closed, c);
  c->vnc_fd = -1;
  key = g_new (gint64, 1);
  *key = c->desktop_id;
  g_hash_table_insert (s->consoles, key, c);
  g_info ("console of desktop '%s' opened for '%s'", c->desktop, c->user);
  after = kd_broker_desktop_heartbeat (s->broker, c->desktop, TRUE, c->user, NULL);
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

  c->vnc_fd = kd_broker_desktop_open_console_finish (req->server->broker, res, &error);
  if (c->vnc_fd < 0 || req->cancelled)
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
  c = g_new0 (KdApiConsole, 1);
  c->server = s;
  c->desktop_id = desk->id;
  c->desktop = g_strdup (desk->name);
  c->user = g_strdup (user->name);
  c->vnc_fd = -1;
  c->accept = g_steal_pointer (&accept);
  c->protocol = g_steal_pointer (&protocol);
  o = g_new0 (KdConsoleOpen, 1);
  o->req = kd_api_request_ref (req);
  o->console = c;
  kd_broker_desktop_open_console_async (s->broker, desk->id, kd_api_console_opened, o);
  kd_api_request_suspend (req);
}
