/*
 * kd-api-server.c: libmicrohttpd driven by the GLib main loop.
 *
 * MHD runs in external-loop epoll mode: its epoll fd is watched by a GLib
 * source and MHD_run() is called when it is readable or a timeout is due.
 * A handler that waits for libvirt suspends its connection; the answer is
 * stored on the request and the connection resumed, and MHD calls the
 * handler again, which queues the stored answer.
 *
 * Bodies are bounded: JSON by max_body_size, image uploads (spooled to a
 * file in the state directory) by max_upload_size; both are checked
 * against Content-Length before a byte is read.
 *
 * With tls_cert/tls_key, MHD gets no listen socket: kd-api-tls-front.c
 * accepts, does TLS (GnuTLS, non-blocking), and hands MHD plain
 * connections (MHD_add_connection).
 * A non-loopback address without TLS is warned about at start.
 */
#include "kd-api-priv.h"

#include "common/kd-error.h"
#include "gateway/kd-gateway.h"
#include "hv/kd-hv.h"
#include "store/kd-store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* errors */

/**
 * kd_api_error_status:
 * The one map from GError to HTTP.
 */
guint
kd_api_error_status (const GError *error, const char **out_code)
{
  guint status = MHD_HTTP_INTERNAL_SERVER_ERROR;
  const char *code = "failed";

  if (error == NULL)
    ;
  else if (error->domain == KD_ERROR)
    switch ((KdError) error->code)
      {
      case KD_ERROR_INVALID: status = 400; code = "invalid"; break;
      case KD_ERROR_NOT_FOUND: status = 404; code = "not_found"; break;
      case KD_ERROR_EXISTS: status = 409; code = "exists"; break;
      case KD_ERROR_BUSY: status = 409; code = "busy"; break;
      case KD_ERROR_TOO_LARGE: status = 413; code = "too_large"; break;
      case KD_ERROR_UNAUTHORIZED: status = 401; code = "unauthorized"; break;
      case KD_ERROR_FORBIDDEN: status = 403; code = "forbidden"; break;
      case KD_ERROR_RATE_LIMITED: status = 429; code = "rate_limited"; break;
      case KD_ERROR_UNAVAILABLE: status = 503; code = "unavailable"; break;
      case KD_ERROR_FAILED: default: break;
      }
  else if (error->domain == KD_STORE_ERROR)
    switch ((KdStoreError) error->code)
      {
      case KD_STORE_ERROR_NOT_FOUND: status = 404; code = "not_found"; break;
      case KD_STORE_ERROR_EXISTS: status = 409; code = "exists"; break;
      case KD_STORE_ERROR_IN_USE: status = 409; code = "busy"; break;
      default: break;
      }
  else if (error->domain == KD_GATEWAY_ERROR)
    switch ((KdGatewayError) error->code)
      {
      case KD_GATEWAY_ERROR_TICKET_MALFORMED:
      case KD_GATEWAY_ERROR_TICKET_UNKNOWN:
      case KD_GATEWAY_ERROR_TICKET_USED:
      case KD_GATEWAY_ERROR_TICKET_EXPIRED: status = 401; code = "unauthorized"; break;
      case KD_GATEWAY_ERROR_TOO_MANY_TICKETS: status = 429; code = "rate_limited"; break;
      case KD_GATEWAY_ERROR_BAD_UPGRADE: status = 400; code = "invalid"; break;
      case KD_GATEWAY_ERROR_INVALID: status = 502; code = "bad_gateway"; break;
      default: break;
      }
  else if (error->domain == KD_HV_ERROR)
    switch ((KdHvError) error->code)
      {
      case KD_HV_ERROR_INVALID_IMAGE: status = 400; code = "invalid"; break;
      case KD_HV_ERROR_EXISTS: status = 409; code = "exists"; break;
      case KD_HV_ERROR_NOT_FOUND: status = 409; code = "busy"; break;
      case KD_HV_ERROR_UNAVAILABLE: status = 503; code = "unavailable"; break;
      case KD_HV_ERROR_UNSUPPORTED: status = 400; code = "invalid"; break;
      default: break;
      }
  if (out_code)
    *out_code = code;
  return status;
}

/* ------------------------------------------------------------------ */
/* requests */

KdApiRequest *
kd_api_request_ref (KdApiRequest *req)
{
  g_atomic_rc_box_acquire (req);
  return req;
}

static void
kd_api_request_clear (KdApiRequest *req)
{
  g_free (req->method);
  g_free (req->path);
  g_strfreev (req->segs);
  g_free (req->client);
  if (req->body)
    g_byte_array_unref (req->body);
  if (req->spool_fd >= 0)
    close (req->spool_fd);
  if (req->spool_path)
    g_unlink (req->spool_path);
  g_free (req->spool_path);
  g_free (req->user);
  g_free (req->role);
  g_free (req->token_hash);
  if (req->response)
    MHD_destroy_response (req->response);
}

void
kd_api_request_unref (KdApiRequest *req)
{
  g_atomic_rc_box_release_full (req, (GDestroyNotify) kd_api_request_clear);
}

const char *
kd_api_request_query (KdApiRequest *req, const char *key)
{
  return MHD_lookup_connection_value (req->conn, MHD_GET_ARGUMENT_KIND, key);
}

void
kd_api_request_suspend (KdApiRequest *req)
{
  if (req->suspended)
    return;
  req->suspended = TRUE;
  kd_api_request_ref (req);
  MHD_suspend_connection (req->conn);
}

/* Stores (suspended) or queues (not suspended) an answer. */
static void kd_api_respond (KdApiRequest *req, guint status, struct MHD_Response *resp);

void
kd_api_respond_raw (KdApiRequest *req, guint status, struct MHD_Response *resp)
{
  kd_api_respond (req, status, resp);
}

static void
kd_api_respond (KdApiRequest *req, guint status, struct MHD_Response *resp)
{
  MHD_add_response_header (resp, "Cache-Control", "no-store");
  MHD_add_response_header (resp, "X-Content-Type-Options", "nosniff");
  if (req->cancelled)
    {
      MHD_destroy_response (resp);
      return;
    }
  if (req->suspended)
    {
      if (req->response)
        MHD_destroy_response (req->response);
      req->response = resp;
      req->status = status;
      req->suspended = FALSE;
      MHD_resume_connection (req->conn);
      kd_api_server_kick (req->server);
      kd_api_request_unref (req);
      return;
    }
  if (req->response)
    MHD_destroy_response (req->response);
  req->response = resp;
  req->status = status;
}

void
kd_api_respond_json (KdApiRequest *req, guint status, JsonNode *node)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  gsize len = 0;
  char *text;
  struct MHD_Response *resp;

  json_generator_set_root (gen, node);
  text = json_generator_to_data (gen, &len);
  json_node_unref (node);
  text = g_realloc (text, len + 2);
  text[len++] = '\n';
  resp = MHD_create_response_from_buffer (len, text, MHD_RESPMEM_MUST_FREE);
  MHD_add_response_header (resp, "Content-Type", "application/json");
  kd_api_respond (req, status, resp);
}

void
kd_api_respond_errorf (KdApiRequest *req, guint status, const char *code, const char *fmt, ...)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autofree char *msg = NULL;
  va_list ap;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (status == 500)
    g_warning ("%s %s: %s", req->method, req->path, msg);
  else
    g_info ("%s %s from %s: %u %s", req->method, req->path, req->client, status, msg);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "error");
  json_builder_add_string_value (b, msg);
  json_builder_set_member_name (b, "code");
  json_builder_add_string_value (b, code);
  json_builder_end_object (b);
  kd_api_respond_json (req, status, json_builder_get_root (b));
}

void
kd_api_respond_error (KdApiRequest *req, const GError *error)
{
  const char *code;
  guint status = kd_api_error_status (error, &code);

  kd_api_respond_errorf (req, status, code, "%s", error ? error->message : "unknown error");
}

void
kd_api_respond_json_with_cookie (KdApiRequest *req, guint status, JsonNode *node, const char *set_cookie)
{
  kd_api_respond_json (req, status, node);
  if (req->response)
    MHD_add_response_header (req->response, "Set-Cookie", set_cookie);
}

void
kd_api_respond_empty_with_cookie (KdApiRequest *req, guint status, const char *set_cookie)
{
  kd_api_respond_empty (req, status);
  if (req->response)
    MHD_add_response_header (req->response, "Set-Cookie", set_cookie);
}

void
kd_api_respond_empty (KdApiRequest *req, guint status)
{
  struct MHD_Response *resp = MHD_create_response_from_buffer (0, (void *) "", MHD_RESPMEM_PERSISTENT);
  kd_api_respond (req, status, resp);
}

/* ------------------------------------------------------------------ */
/* MHD callbacks */

static char *
kd_api_client_address (struct MHD_Connection *conn)
{
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info (conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  char buf[INET6_ADDRSTRLEN] = "?";

  if (ci && ci->client_addr)
    {
      const struct sockaddr *sa = ci->client_addr;
      if (sa->sa_family == AF_INET)
        inet_ntop (AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, buf, sizeof buf);
      else if (sa->sa_family == AF_INET6)
        inet_ntop (AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr, buf, sizeof buf);
    }
  return g_strdup (buf);
}

static gboolean
kd_api_split_path (KdApiRequest *req)
{
  g_auto(GStrv) parts = NULL;
  GPtrArray *segs = g_ptr_array_new ();

  if (req->path[0] != '/' || strlen (req->path) > KD_API_MAX_URL_LEN)
    {
      g_ptr_array_free (segs, TRUE);
      return FALSE;
    }
  parts = g_strsplit (req->path + 1, "/", KD_API_MAX_PATH_SEGMENTS + 2);
  for (guint i = 0; parts[i]; i++)
    {
      if (parts[i][0] == '\0' && parts[i + 1] == NULL && i > 0)
        break;                         /* trailing slash */
      g_ptr_array_add (segs, g_strdup (parts[i]));
    }
  req->n_segs = segs->len;
  g_ptr_array_add (segs, NULL);
  req->segs = (char **) g_ptr_array_free (segs, FALSE);
  return req->n_segs <= KD_API_MAX_PATH_SEGMENTS;
}

static enum MHD_Result
kd_api_queue (KdApiRequest *req)
{
  struct MHD_Response *resp = g_steal_pointer (&req->response);
  enum MHD_Result r = MHD_queue_response (req->conn, req->status, resp);
  MHD_destroy_response (resp);
  return r;
}

static enum MHD_Result
kd_api_access (void *cls, struct MHD_Connection *conn, const char *url, const char *method,
               const char *version, const char *upload_data, size_t *upload_data_size,
               void **con_cls)
{
  KdApiServer *s = cls;
  KdApiRequest *req = *con_cls;

  if (req == NULL)
    {
      req = g_atomic_rc_box_new0 (KdApiRequest);
      req->server = s;
      req->conn = conn;
      req->spool_fd = -1;
      req->method = g_strdup (method);
      req->path = g_utf8_make_valid (url, -1);
      req->client = kd_api_client_address (conn);
      *con_cls = req;
      g_hash_table_add (s->requests, req);
      if (!kd_api_split_path (req))
        kd_api_respond_errorf (req, 404, "not_found", "no such endpoint");
      else
        kd_api_route_precheck (req);
      if (req->response)
        return kd_api_queue (req);
      return MHD_YES;
    }

  if (req->response)              /* an answer came while suspended */
    return kd_api_queue (req);
  if (req->suspended)
    return MHD_YES;

  if (*upload_data_size > 0)
    {
      gsize n = *upload_data_size;
      *upload_data_size = 0;
      if (req->is_upload)
        {
          if (req->upload_error)
            return MHD_YES;
          req->received += n;
          if (req->received > req->expected)
            {
              req->upload_error = TRUE;
              return MHD_YES;
            }
          while (n > 0)
            {
              ssize_t w = write (req->spool_fd, upload_data, n);
              if (w < 0 && errno == EINTR)
                continue;
              if (w <= 0)
                {
                  g_warning ("cannot write upload to '%s': %s", req->spool_path, g_strerror (errno));
                  req->upload_error = TRUE;
                  break;
                }
              upload_data += w;
              n -= w;
            }
          return MHD_YES;
        }
      if (req->body == NULL)
        req->body = g_byte_array_new ();
      if (req->body_overflow || req->body->len + n > (gsize) s->config->max_body_size)
        {
          req->body_overflow = TRUE;
          return MHD_YES;
        }
      g_byte_array_append (req->body, (const guint8 *) upload_data, n);
      return MHD_YES;
    }

  /* The whole request is here. */
  if (req->body_overflow)
    kd_api_respond_errorf (req, 413, "too_large", "the request body is larger than %" G_GINT64_FORMAT
                           " bytes", s->config->max_body_size);
  else if (req->is_upload && req->upload_error)
    kd_api_respond_errorf (req, 400, "invalid",
                           "the upload could not be stored (sent %" G_GINT64_FORMAT
                           " bytes, announced %" G_GINT64_FORMAT ")", req->received, req->expected);
  else
    kd_api_route (req);
  if (req->response)
    return kd_api_queue (req);
  return MHD_YES;                   /* suspended: answered later */
}

static void
kd_api_completed (void *cls, struct MHD_Connection *conn, void **con_cls,
                  enum MHD_RequestTerminationCode toe)
{
  KdApiServer *s = cls;
  KdApiRequest *req = *con_cls;

  if (req == NULL)
    return;
  *con_cls = NULL;
  req->cancelled = TRUE;
  g_hash_table_remove (s->requests, req);
  kd_api_request_unref (req);
}

/* Decodes %XX in the URL and query, except %00 and %2F: a NUL would cut
 * a name short ("a%00b" must not act on "a") and a slash would change the
 * route, so both stay as text and fail the name checks. Decoding never
 * makes the text longer. */
static size_t
kd_api_unescape (void *cls, struct MHD_Connection *conn, char *s)
{
  char *r = s, *w = s;

  while (*r)
    {
      if (r[0] == '%' && g_ascii_isxdigit (r[1]) && g_ascii_isxdigit (r[2]))
        {
          int v = g_ascii_xdigit_value (r[1]) * 16 + g_ascii_xdigit_value (r[2]);
          /* NUL would cut a name short; '/' would change the route. */
          if (v != 0 && v != '/')
            {
              *w++ = (char) v;
              r += 3;
              continue;
            }
        }
      *w++ = *r++;
    }
  *w = '\0';
  return (size_t) (w - s);
}

static void
kd_api_mhd_log (void *cls, const char *fmt, va_list ap)
{
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  g_strchomp (msg);
  g_debug ("libmicrohttpd: %s", msg);
}

/* ------------------------------------------------------------------ */
/* main loop glue */

static void kd_api_server_update_timer (KdApiServer *s);

static void
kd_api_server_run (KdApiServer *s)
{
  MHD_run (s->mhd);
  kd_api_server_update_timer (s);
}

static gboolean
kd_api_server_timer_cb (gpointer data)
{
  KdApiServer *s = data;
  s->timer_id = 0;
  kd_api_server_run (s);
  return G_SOURCE_REMOVE;
}

static void
kd_api_server_update_timer (KdApiServer *s)
{
  MHD_UNSIGNED_LONG_LONG ms = 0;

  if (s->timer_id)
    {
      g_source_remove (s->timer_id);
      s->timer_id = 0;
    }
  if (MHD_get_timeout (s->mhd, &ms) == MHD_YES)
    s->timer_id = g_timeout_add ((guint) MIN (ms, 60000), kd_api_server_timer_cb, s);
}

static gboolean
kd_api_server_idle_cb (gpointer data)
{
  KdApiServer *s = data;
  s->idle_id = 0;
  kd_api_server_run (s);
  return G_SOURCE_REMOVE;
}

/* A resumed connection is processed by the next MHD_run(): make it soon. */
void
kd_api_server_kick (KdApiServer *s)
{
  if (s->idle_id == 0)
    s->idle_id = g_idle_add (kd_api_server_idle_cb, s);
}

static gboolean
kd_api_server_epoll_cb (gint fd, GIOCondition cond, gpointer data)
{
  kd_api_server_run (data);
  return G_SOURCE_CONTINUE;
}

/* Whether @addr (an IP address) is a loopback address: plain HTTP there
 * stays on this machine. */
static gboolean
kd_api_address_is_loopback (const char *addr)
{
  g_autoptr(GInetAddress) ia = g_inet_address_new_from_string (addr);

  return ia != NULL && g_inet_address_get_is_loopback (ia);
}

static int
kd_api_listen_socket (const char *addr, guint16 port, char **out_address, GError **error)
{
  struct sockaddr_storage ss = { 0 };
  socklen_t len;
  int fd, one = 1;
  char buf[INET6_ADDRSTRLEN];

  if (strchr (addr, ':'))
    {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons (port);
      inet_pton (AF_INET6, addr, &sin6->sin6_addr);
      len = sizeof *sin6;
    }
  else
    {
      struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
      sin->sin_family = AF_INET;
      sin->sin_port = htons (port);
      inet_pton (AF_INET, addr, &sin->sin_addr);
      len = sizeof *sin;
    }
  fd = socket (ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    goto fail;
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind (fd, (struct sockaddr *) &ss, len) < 0 || listen (fd, 128) < 0)
    goto fail;
  len = sizeof ss;
  getsockname (fd, (struct sockaddr *) &ss, &len);
  if (ss.ss_family == AF_INET6)
    {
      inet_ntop (AF_INET6, &((struct sockaddr_in6 *) &ss)->sin6_addr, buf, sizeof buf);
      *out_address = g_strdup_printf ("[%s]:%u", buf, ntohs (((struct sockaddr_in6 *) &ss)->sin6_port));
    }
  else
    {
      inet_ntop (AF_INET, &((struct sockaddr_in *) &ss)->sin_addr, buf, sizeof buf);
      *out_address = g_strdup_printf ("%s:%u", buf, ntohs (((struct sockaddr_in *) &ss)->sin_port));
    }
  return fd;

fail:
  {
    int saved = errno;
    if (fd >= 0)
      close (fd);
    g_set_error (error, KD_ERROR, KD_ERROR_FAILED, "cannot listen on %s:%u: %s",
                 addr, port, g_strerror (saved));
    return -1;
  }
}

/**
 * kd_api_server_new:
 * Binds the listen address of @config and serves the API on the main loop.
 */
KdApiServer *
kd_api_server_new (KdBroker *broker, KdConfig *config, GError **error)
{
  g_autoptr(KdApiServer) s = g_new0 (KdApiServer, 1);
  g_autofree char *addr = NULL;
  guint16 port;
  const union MHD_DaemonInfo *info;
  /* The listen socket for MHD, unless the TLS front accepts on it. */
  struct MHD_OptionItem listen_opts[] = {
    { MHD_OPTION_END, 0, NULL },
    { MHD_OPTION_END, 0, NULL },
  };
  int fd;

  s->broker = broker;
  s->config = config;
  s->login_failures = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                             (GDestroyNotify) g_array_unref);
  s->requests = g_hash_table_new (NULL, NULL);
  if (!kd_api_auth_init (error))
    return NULL;
  /* Unknown users cost as much as wrong passwords. */
  s->dummy_hash = kd_api_password_hash ("kvmdesk-dummy-password", error);
  if (s->dummy_hash == NULL)
    return NULL;
  s->upload_dir = g_build_filename (config->state_dir, "uploads", NULL);
  if (g_mkdir_with_parents (s->upload_dir, 0700) < 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_FAILED, "cannot create '%s': %s", s->upload_dir,
                   g_strerror (errno));
      return NULL;
    }
  if (!kd_config_parse_listen (config->listen, &addr, &port, error))
    return NULL;
  fd = kd_api_listen_socket (addr, port, &s->address, error);
  if (fd < 0)
    return NULL;

  if (kd_config_tls_enabled (config))
    {
      g_autofree char *warning = NULL;

      if (!kd_api_tls_load (config->tls_cert, config->tls_key, &s->tls_cert_pem,
                            &s->tls_key_pem, &warning, error))
        {
          close (fd);
          return NULL;
        }
      if (warning)
        g_warning ("%s", warning);
      s->tls = TRUE;
    }
  else if (!kd_api_address_is_loopback (addr))
    g_warning ("listening on %s without TLS: passwords and session cookies cross the network "
               "in clear text; set tls_cert and tls_key (docs/operator-guide.md, HTTPS)",
               s->address);
  s->base_url = g_strdup_printf ("%s://%s", s->tls ? "https" : "http", s->address);

  /* With TLS, kd-api-tls-front.c accepts on the socket and hands MHD
   * plain connections (MHD_add_connection); see the top of that file. */
  listen_opts[0].option = s->tls ? MHD_OPTION_END : MHD_OPTION_LISTEN_SOCKET;
  listen_opts[0].value = fd;
  s->mhd = MHD_start_daemon (MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE |
                             MHD_USE_ERROR_LOG | (s->tls ? MHD_USE_NO_LISTEN_SOCKET : 0),
                             0, NULL, NULL, kd_api_access, s,
                             MHD_OPTION_EXTERNAL_LOGGER, kd_api_mhd_log, s,
                             MHD_OPTION_ARRAY, listen_opts,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned int) config->connection_limit,
                             MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) config->per_ip_connection_limit,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) config->connection_timeout,
                             MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) KD_API_MHD_MEMORY_LIMIT,
                             MHD_OPTION_NOTIFY_COMPLETED, kd_api_completed, s,
                             MHD_OPTION_UNESCAPE_CALLBACK, kd_api_unescape, s,
                             MHD_OPTION_END);
  if (s->mhd == NULL)
    {
      close (fd);
      g_set_error (error, KD_ERROR, KD_ERROR_FAILED, "cannot start the HTTP server on %s",
                   s->address);
      return NULL;
    }
  info = MHD_get_daemon_info (s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
  if (info == NULL)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_FAILED, "libmicrohttpd has no epoll support");
      return NULL;
    }
  s->epoll_source = g_unix_fd_source_new (info->epoll_fd, G_IO_IN);
  g_source_set_callback (s->epoll_source, (GSourceFunc) (GCallback) kd_api_server_epoll_cb, s, NULL);
  g_source_attach (s->epoll_source, NULL);
  kd_api_server_update_timer (s);
  kd_api_stream_init (s);
  kd_api_consoles_init (s);
  if (s->tls)
    {
      s->tls_front = kd_api_tls_front_new (s, fd, s->tls_cert_pem, s->tls_key_pem, error);
      explicit_bzero (s->tls_key_pem, strlen (s->tls_key_pem));
      g_clear_pointer (&s->tls_key_pem, g_free);
      g_clear_pointer (&s->tls_cert_pem, g_free);
      if (s->tls_front == NULL)
        {
          close (fd);
          return NULL;
        }
    }
  return g_steal_pointer (&s);
}

void
kd_api_server_free (KdApiServer *s)
{
  if (s == NULL)
    return;
  if (s->epoll_source)
    {
      g_source_destroy (s->epoll_source);
      g_source_unref (s->epoll_source);
    }
  if (s->timer_id)
    g_source_remove (s->timer_id);
  if (s->idle_id)
    g_source_remove (s->idle_id);
  if (s->mhd)
    {
      /* Suspended requests must be resumed before MHD can stop. */
      GHashTableIter iter;
      gpointer key;
      g_clear_pointer (&s->tls_front, kd_api_tls_front_free);
      kd_api_consoles_fini (s);
      kd_api_stream_fini (s);
      g_hash_table_iter_init (&iter, s->requests);
      while (g_hash_table_iter_next (&iter, &key, NULL))
        {
          KdApiRequest *req = key;
          if (req->suspended)
            {
              req->suspended = FALSE;
              req->cancelled = TRUE;
              MHD_resume_connection (req->conn);
            }
        }
      MHD_stop_daemon (s->mhd);
    }
  g_hash_table_destroy (s->login_failures);
  g_hash_table_destroy (s->requests);
  g_free (s->address);
  g_free (s->base_url);
  g_free (s->tls_cert_pem);
  if (s->tls_key_pem)
    explicit_bzero (s->tls_key_pem, strlen (s->tls_key_pem));
  g_free (s->tls_key_pem);
  g_free (s->upload_dir);
  g_free (s->dummy_hash);
  g_free (s);
}

const char *
kd_api_server_get_address (KdApiServer *s)
{
  return s->address;
}

const char *
kd_api_server_get_base_url (KdApiServer *s)
{
  return s->base_url;
}
