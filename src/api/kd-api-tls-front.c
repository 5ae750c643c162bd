/*
 * kd-api-tls-front.c: HTTPS in front of libmicrohttpd.
 *
 * kvmdeskd accepts TLS connections itself (GIO's GTlsServerConnection, from
 * glib-networking on GnuTLS), and after the handshake hands libmicrohttpd
 * one end of a socketpair with MHD_add_connection(), giving it the client's
 * real address (so its per-address limits and our logs see the client).
 * Connections are limited in all (connection_limit) and per client address
 * (per_ip_connection_limit) from accept on, handshakes included, and a
 * handshake must end within connection_timeout (at most 10 s).
 * Bytes are pumped between the TLS stream and the socketpair with one
 * bounded buffer per direction: a side that cannot take more stops the
 * reads from the other, and each wake-up moves at most one buffer.
 *
 * Why not MHD_USE_TLS: Debian 12's libmicrohttpd (0.9.75) forwards an
 * upgraded TLS connection (the console WebSocket) through an 8-byte
 * emergency buffer, because the 101 answer's write buffer still holds the
 * whole connection pool when the upgrade happens (fixed upstream in
 * 0.9.77). A 1.1 MB screen took 6 s instead of 0.1 s. See
 * docs/decisions.md.
 *
 * Upgraded connections need nothing special here: the socketpair is what
 * MHD hands to the console gateway, and this pump keeps carrying it.
 */
#define _GNU_SOURCE 1   /* accept4 */
#include "kd-api-priv.h"

#include "common/kd-error.h"

#include <errno.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KD_API_TLS_BUF_SIZE          (32 * 1024)  /* bytes per direction per connection */
#define KD_API_TLS_HANDSHAKE_SEC     10           /* seconds for a TLS handshake, at most */
#define KD_API_TLS_CLOSE_SEC         2            /* seconds for a close_notify */
#define KD_API_TLS_ACCEPT_BATCH      16           /* connections accepted per wake-up */

typedef struct _KdApiTlsLink KdApiTlsLink;

struct _KdApiTlsFront {
  KdApiServer      *server;
  GTlsCertificate  *cert;
  int               listen_fd;
  GSource          *accept_source;
  GHashTable       *links;          /* KdApiTlsLink* set */
  GHashTable       *per_address;    /* client IP text -> number of its links */
  guint             max_links;
  guint             max_per_address;
  guint             handshake_sec;  /* connection_timeout, at most KD_API_TLS_HANDSHAKE_SEC */
};

struct _KdApiTlsLink {
  KdApiTlsFront          *front;
  GIOStream              *tls;
  GSocket                *sock;          /* under tls */
  GPollableInputStream   *tls_in;
  GPollableOutputStream  *tls_out;
  GCancellable           *cancel;
  int                     plain_fd;      /* our end of the socketpair; -1 before MHD has it */
  guint                   handshake_timer;
  GSource                *tls_in_src;
  GSource                *tls_out_src;
  GSource                *plain_in_src;
  GSource                *plain_out_src;
  gboolean                tls_eof;       /* the client sent no more */
  gboolean                plain_eof;     /* MHD closed its end */
  gboolean                plain_shut;    /* told MHD the client sent no more */
  char                   *client;        /* IP text, key in front->per_address */
  struct sockaddr_storage addr;
  socklen_t               addr_len;
  gsize                   up_off, up_len;     /* client -> MHD */
  gsize                   down_off, down_len; /* MHD -> client */
  guint8                  up[KD_API_TLS_BUF_SIZE];
  guint8                  down[KD_API_TLS_BUF_SIZE];
};

static void kd_api_tls_link_update (KdApiTlsLink *l);

static void
kd_api_tls_clear_source (GSource **src)
{
  if (*src)
    {
      g_source_destroy (*src);
      g_source_unref (*src);
      *src = NULL;
    }
}

typedef struct {
  GCancellable *cancel;
  guint         timer;
} KdApiTlsClosing;

static void
kd_api_tls_closed (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiTlsClosing *c = data;

  g_io_stream_close_finish (G_IO_STREAM (src), res, NULL);
  if (c->timer)
    g_source_remove (c->timer);
  g_object_unref (c->cancel);
  g_free (c);
  g_object_unref (src);
}

static gboolean
kd_api_tls_close_timeout (gpointer data)
{
  KdApiTlsClosing *c = data;

  c->timer = 0;
  g_cancellable_cancel (c->cancel);
  return G_SOURCE_REMOVE;
}

/* Ends the link. @graceful: send the client a close_notify first (bounded
 * by KD_API_TLS_CLOSE_SEC). */
static void
kd_api_tls_link_free (KdApiTlsLink *l, gboolean graceful)
{
  if (l->front)
    {
      guint n = GPOINTER_TO_UINT (g_hash_table_lookup (l->front->per_address, l->client));
      g_hash_table_remove (l->front->links, l);
      if (n <= 1)
        g_hash_table_remove (l->front->per_address, l->client);
      else
        g_hash_table_insert (l->front->per_address, g_strdup (l->client), GUINT_TO_POINTER (n - 1));
    }
  g_free (l->client);
  kd_api_tls_clear_source (&l->tls_in_src);
  kd_api_tls_clear_source (&l->tls_out_src);
  kd_api_tls_clear_source (&l->plain_in_src);
  kd_api_tls_clear_source (&l->plain_out_src);
  if (l->handshake_timer)
    g_source_remove (l->handshake_timer);
  g_cancellable_cancel (l->cancel);
  if (l->plain_fd >= 0)
    close (l->plain_fd);
  if (graceful)
    {
      KdApiTlsClosing *c = g_new0 (KdApiTlsClosing, 1);

      c->cancel = g_cancellable_new ();
      c->timer = g_timeout_add_seconds (KD_API_TLS_CLOSE_SEC, kd_api_tls_close_timeout, c);
      g_io_stream_close_async (l->tls, G_PRIORITY_DEFAULT, c->cancel, kd_api_tls_closed, c);
    }
  else
    {
      /* No close_notify: closing the socket under it cannot wait. */
      g_socket_close (l->sock, NULL);
      g_object_unref (l->tls);
    }
  g_object_unref (l->sock);
  g_object_unref (l->cancel);
  g_free (l);
}

static gboolean
kd_api_tls_is_would_block (const GError *e)
{
  return g_error_matches (e, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
}

/* Moves what it can without waiting: returns FALSE when the link failed
 * (and was freed). */
static gboolean
kd_api_tls_link_flush (KdApiTlsLink *l)
{
  g_autoptr(GError) e = NULL;

  if (l->up_len > 0)
    {
      ssize_t w = send (l->plain_fd, l->up + l->up_off, l->up_len, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0)
        {
          l->up_off += w;
          l->up_len -= w;
        }
      else if (w < 0 && errno != EAGAIN && errno != EINTR)
        {
          kd_api_tls_link_free (l, FALSE);
          return FALSE;
        }
    }
  if (l->down_len > 0)
    {
      gssize w = g_pollable_output_stream_write_nonblocking (l->tls_out, l->down + l->down_off,
                                                             l->down_len, NULL, &e);
      if (w > 0)
        {
          l->down_off += w;
          l->down_len -= w;
        }
      else if (w < 0 && !kd_api_tls_is_would_block (e))
        {
          g_debug ("TLS connection: %s", e->message);
          kd_api_tls_link_free (l, FALSE);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
kd_api_tls_in_cb (GObject *stream, gpointer data)
{
  KdApiTlsLink *l = data;
  g_autoptr(GError) e = NULL;
  gssize n;

  g_clear_pointer (&l->tls_in_src, g_source_unref);
  n = g_pollable_input_stream_read_nonblocking (l->tls_in, l->up, sizeof l->up, NULL, &e);
  if (n > 0)
    {
      l->up_off = 0;
      l->up_len = n;
    }
  else if (n == 0)
    l->tls_eof = TRUE;
  else if (!kd_api_tls_is_would_block (e))
    {
      g_debug ("TLS connection: %s", e->message);
      kd_api_tls_link_free (l, FALSE);
      return G_SOURCE_REMOVE;
    }
  if (kd_api_tls_link_flush (l))
    kd_api_tls_link_update (l);
  return G_SOURCE_REMOVE;
}

static gboolean
kd_api_tls_out_cb (GObject *stream, gpointer data)
{
  KdApiTlsLink *l = data;

  g_clear_pointer (&l->tls_out_src, g_source_unref);
  if (kd_api_tls_link_flush (l))
    kd_api_tls_link_update (l);
  return G_SOURCE_REMOVE;
}

static gboolean
kd_api_tls_plain_in_cb (gint fd, GIOCondition cond, gpointer data)
{
  KdApiTlsLink *l = data;
  ssize_t n;

  g_clear_pointer (&l->plain_in_src, g_source_unref);
  n = recv (l->plain_fd, l->down, sizeof l->down, MSG_DONTWAIT);
  if (n > 0)
    {
      l->down_off = 0;
      l->down_len = n;
    }
  else if (n == 0 || (errno != EAGAIN && errno != EINTR))
    l->plain_eof = TRUE;
  if (kd_api_tls_link_flush (l))
    kd_api_tls_link_update (l);
  return G_SOURCE_REMOVE;
}

static gboolean
kd_api_tls_plain_out_cb (gint fd, GIOCondition cond, gpointer data)
{
  KdApiTlsLink *l = data;

  g_clear_pointer (&l->plain_out_src, g_source_unref);
  if (kd_api_tls_link_flush (l))
    kd_api_tls_link_update (l);
  return G_SOURCE_REMOVE;
}

static GSource *
kd_api_tls_watch_fd (int fd, GIOCondition cond, GUnixFDSourceFunc cb, gpointer data)
{
  GSource *src = g_unix_fd_source_new (fd, cond | G_IO_HUP | G_IO_ERR);

  g_source_set_callback (src, (GSourceFunc) (GCallback) cb, data, NULL);
  g_source_attach (src, NULL);
  return src;
}

/* Watches what the buffers allow: read a side only when the buffer toward
 * the other side is empty (back-pressure), write a side only when there
 * is something for it. Ends the link when both directions are done. */
static void
kd_api_tls_link_update (KdApiTlsLink *l)
{
  if (l->tls_eof && l->up_len == 0 && !l->plain_shut)
    {
      shutdown (l->plain_fd, SHUT_WR);
      l->plain_shut = TRUE;
    }
  if (l->plain_eof && l->down_len == 0)
    {
      kd_api_tls_link_free (l, TRUE);
      return;
    }

  if (!l->tls_eof && l->up_len == 0)
    {
      if (l->tls_in_src == NULL)
        {
          l->tls_in_src = g_pollable_input_stream_create_source (l->tls_in, l->cancel);
          g_source_set_callback (l->tls_in_src, (GSourceFunc) (GCallback) kd_api_tls_in_cb, l, NULL);
          g_source_attach (l->tls_in_src, NULL);
        }
    }
  else
    kd_api_tls_clear_source (&l->tls_in_src);

  if (l->up_len > 0)
    {
      if (l->plain_out_src == NULL)
        l->plain_out_src = kd_api_tls_watch_fd (l->plain_fd, G_IO_OUT, kd_api_tls_plain_out_cb, l);
    }
  else
    kd_api_tls_clear_source (&l->plain_out_src);

  if (!l->plain_eof && l->down_len == 0)
    {
      if (l->plain_in_src == NULL)
        l->plain_in_src = kd_api_tls_watch_fd (l->plain_fd, G_IO_IN, kd_api_tls_plain_in_cb, l);
    }
  else
    kd_api_tls_clear_source (&l->plain_in_src);

  if (l->down_len > 0)
    {
      if (l->tls_out_src == NULL)
        {
          l->tls_out_src = g_pollable_output_stream_create_source (l->tls_out, l->cancel);
          g_source_set_callback (l->tls_out_src, (GSourceFunc) (GCallback) kd_api_tls_out_cb, l, NULL);
          g_source_attach (l->tls_out_src, NULL);
        }
    }
  else
    kd_api_tls_clear_source (&l->tls_out_src);
}

static void
kd_api_tls_handshaked (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiTlsLink *l = data;
  KdApiServer *s;
  g_autoptr(GError) e = NULL;
  int sv[2];

  if (!g_tls_connection_handshake_finish (G_TLS_CONNECTION (src), res, &e))
    {
      if (!g_error_matches (e, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_debug ("TLS handshake failed: %s", e->message);
          kd_api_tls_link_free (l, FALSE);
        }
      /* cancelled: the link is being freed by whoever cancelled */
      return;
    }
  g_source_remove (l->handshake_timer);
  l->handshake_timer = 0;
  s = l->front->server;
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
    {
      g_warning ("cannot make a socketpair for a TLS connection: %s", g_strerror (errno));
      kd_api_tls_link_free (l, FALSE);
      return;
    }
  /* MHD owns sv[1] from here on, also when it refuses it (limits). */
  if (MHD_add_connection (s->mhd, sv[1], (const struct sockaddr *) &l->addr, l->addr_len) != MHD_YES)
    {
      close (sv[0]);
      kd_api_tls_link_free (l, FALSE);
      return;
    }
  l->plain_fd = sv[0];
  l->tls_in = G_POLLABLE_INPUT_STREAM (g_io_stream_get_input_stream (l->tls));
  l->tls_out = G_POLLABLE_OUTPUT_STREAM (g_io_stream_get_output_stream (l->tls));
  kd_api_server_kick (s);
  kd_api_tls_link_update (l);
}

static gboolean
kd_api_tls_handshake_timeout (gpointer data)
{
  KdApiTlsLink *l = data;

  l->handshake_timer = 0;
  g_debug ("TLS handshake timed out");
  kd_api_tls_link_free (l, FALSE);
  return G_SOURCE_REMOVE;
}

static void
kd_api_tls_accept_one (KdApiTlsFront *f, int fd, const struct sockaddr_storage *addr, socklen_t len)
{
  g_autoptr(GError) e = NULL;
  g_autoptr(GSocket) sock = NULL;
  g_autoptr(GSocketConnection) conn = NULL;
  GIOStream *tls;
  KdApiTlsLink *l;

  g_autoptr(GSocketAddress) sa = g_socket_address_new_from_native ((gpointer) addr, len);
  g_autofree char *client = NULL;
  guint n;

  if (G_IS_INET_SOCKET_ADDRESS (sa))
    client = g_inet_address_to_string (g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (sa)));
  else
    client = g_strdup ("?");
  n = GPOINTER_TO_UINT (g_hash_table_lookup (f->per_address, client));
  if (g_hash_table_size (f->links) >= f->max_links || n >= f->max_per_address)
    {
      g_debug ("TLS connection from %s refused: %u connections in all, %u from it",
               client, g_hash_table_size (f->links), n);
      close (fd);
      return;
    }
  sock = g_socket_new_from_fd (fd, &e);
  if (sock == NULL)
    {
      close (fd);
      return;
    }
  conn = g_socket_connection_factory_create_connection (sock);
  tls = g_tls_server_connection_new (G_IO_STREAM (conn), f->cert, &e);
  if (tls == NULL)
    {
      g_warning ("cannot serve a TLS connection: %s", e->message);
      return;
    }
  g_tls_connection_set_require_close_notify (G_TLS_CONNECTION (tls), FALSE);
  l = g_new0 (KdApiTlsLink, 1);
  l->front = f;
  l->tls = tls;
  l->sock = g_object_ref (sock);
  l->plain_fd = -1;
  l->cancel = g_cancellable_new ();
  memcpy (&l->addr, addr, len);
  l->addr_len = len;
  l->client = g_strdup (client);
  g_hash_table_add (f->links, l);
  g_hash_table_insert (f->per_address, g_steal_pointer (&client), GUINT_TO_POINTER (n + 1));
  l->handshake_timer = g_timeout_add_seconds (f->handshake_sec, kd_api_tls_handshake_timeout, l);
  g_tls_connection_handshake_async (G_TLS_CONNECTION (tls), G_PRIORITY_DEFAULT, l->cancel,
                                    kd_api_tls_handshaked, l);
}

static gboolean
kd_api_tls_accept_cb (gint fd, GIOCondition cond, gpointer data)
{
  KdApiTlsFront *f = data;

  for (guint i = 0; i < KD_API_TLS_ACCEPT_BATCH; i++)
    {
      struct sockaddr_storage addr;
      socklen_t len = sizeof addr;
      int c = accept4 (f->listen_fd, (struct sockaddr *) &addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

      if (c < 0)
        break;
      kd_api_tls_accept_one (f, c, &addr, len);
    }
  return G_SOURCE_CONTINUE;
}

/**
 * kd_api_tls_front_new:
 * @listen_fd: the bound, listening socket (owned from now on)
 * @cert_pem: the certificate (chain) checked by kd_api_tls_load()
 * @key_pem: its key
 *
 * Returns: the TLS front accepting on @listen_fd, or %NULL when GLib has
 * no TLS backend or refuses the pair.
 */
KdApiTlsFront *
kd_api_tls_front_new (KdApiServer *server, int listen_fd, const char *cert_pem,
                      const char *key_pem, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *both = NULL;
  GTlsCertificate *cert;
  KdApiTlsFront *f;

  if (!g_tls_backend_supports_tls (g_tls_backend_get_default ()))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_FAILED,
                   "GLib has no TLS backend: install glib-networking to serve HTTPS");
      return NULL;
    }
  both = g_strconcat (cert_pem, "\n", key_pem, NULL);
  cert = g_tls_certificate_new_from_pem (both, -1, &local);
  explicit_bzero (both, strlen (both));
  if (cert == NULL)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "the TLS certificate '%s' and key '%s' cannot be used: %s",
                   server->config->tls_cert, server->config->tls_key, local->message);
      return NULL;
    }
  f = g_new0 (KdApiTlsFront, 1);
  f->server = server;
  f->cert = cert;
  f->listen_fd = listen_fd;
  f->links = g_hash_table_new (NULL, NULL);
  f->per_address = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  f->max_links = (guint) server->config->connection_limit;
  f->max_per_address = (guint) server->config->per_ip_connection_limit;
  f->handshake_sec = (guint) MIN (server->config->connection_timeout, KD_API_TLS_HANDSHAKE_SEC);
  f->accept_source = g_unix_fd_source_new (listen_fd, G_IO_IN);
  g_source_set_callback (f->accept_source, (GSourceFunc) (GCallback) kd_api_tls_accept_cb, f, NULL);
  g_source_attach (f->accept_source, NULL);
  return f;
}

void
kd_api_tls_front_free (KdApiTlsFront *f)
{
  GHashTableIter iter;
  gpointer key;

  if (f == NULL)
    return;
  g_source_destroy (f->accept_source);
  g_source_unref (f->accept_source);
  close (f->listen_fd);
  g_hash_table_iter_init (&iter, f->links);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      KdApiTlsLink *l = key;
      g_hash_table_iter_remove (&iter);
      l->front = NULL;
      kd_api_tls_link_free (l, FALSE);
    }
  g_hash_table_destroy (f->links);
  g_hash_table_destroy (f->per_address);
  g_object_unref (f->cert);
  g_free (f);
}
