/*
 * kd-api-tls-front.c: HTTPS in front of libmicrohttpd.
 *
 * kvmdeskd accepts TLS connections itself and drives GnuTLS without
 * blocking on the main loop (handshake, records, close), and after the
 * handshake hands libmicrohttpd one end of a socketpair with
 * MHD_add_connection(), giving it the client's real address (so its
 * per-address limits and our logs see the client). Connections are
 * limited in all (connection_limit) and per client address
 * (per_ip_connection_limit) from accept on, handshakes included, and a
 * handshake must end within connection_timeout (at most 10 s).
 * Bytes are pumped between the TLS session and the socketpair with one
 * bounded buffer per direction: a side that cannot take more stops the
 * reads from the other, and each wake-up moves at most one buffer.
 *
 * Why not MHD_USE_TLS: Debian 12's libmicrohttpd (0.9.75) forwards an
 * upgraded TLS connection (the console WebSocket) through an 8-byte
 * emergency buffer, because the 101 answer's write buffer still holds the
 * whole connection pool when the upgrade happens (fixed upstream in
 * 0.9.77). A 1.1 MB screen took 6 s instead of 0.1 s. Why not GIO's
 * GTlsServerConnection: glib-networking runs each handshake in a worker
 * thread, so clients that stall their handshakes occupy the shared pool
 * (60 of them delayed another client by 11 s). See docs/decisions.md.
 *
 * Upgraded connections need nothing special here: the socketpair is what
 * MHD hands to the console gateway, and this pump keeps carrying it.
 */
#define _GNU_SOURCE 1   /* accept4 */
#include "kd-api-priv.h"

#include "common/kd-error.h"

#include <errno.h>
#include <glib-unix.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KD_API_TLS_BUF_SIZE          (32 * 1024)  /* bytes per direction per connection */
#define KD_API_TLS_HANDSHAKE_SEC     10           /* seconds for a TLS handshake, at most */
#define KD_API_TLS_ACCEPT_BATCH      16           /* connections accepted per wake-up */
#define KD_API_TLS_ACCEPT_PAUSE_MS   100          /* no accept for this long when out of fds */
/* Appended to the system's GnuTLS priorities: TLS 1.2 and 1.3 only. */
#define KD_API_TLS_PRIORITY_APPEND   "-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

typedef struct _KdApiTlsLink KdApiTlsLink;

struct _KdApiTlsFront {
  KdApiServer                       *server;
  gnutls_certificate_credentials_t   creds;
  int                                listen_fd;
  GSource                           *accept_source;  /* NULL while paused */
  guint                              accept_pause;
  gint64                             accept_warned;  /* µs, monotonic */
  GHashTable                        *links;          /* KdApiTlsLink* set */
  GHashTable                        *per_address;    /* client IP text -> number of links */
  guint                              max_links;
  guint                              max_per_address;
  guint                              handshake_sec;
};

struct _KdApiTlsLink {
  KdApiTlsFront     *front;
  gnutls_session_t   sess;
  int                fd;              /* the client's TCP socket */
  int                plain_fd;        /* our end of the socketpair; -1 until MHD has it */
  char              *client;          /* IP text, key in front->per_address */
  struct sockaddr_storage addr;
  socklen_t          addr_len;
  gboolean           handshaken;
  guint              handshake_timer; /* also bounds the last flush after MHD closed */
  GSource           *fd_src;          /* watch on fd with fd_cond */
  GIOCondition       fd_cond;
  GSource           *plain_src;       /* watch on plain_fd with plain_cond */
  GIOCondition       plain_cond;
  guint              pending_idle;    /* GnuTLS holds decrypted bytes: read them soon */
  GIOCondition       recv_wants;      /* what the last record recv waited for */
  GIOCondition       send_wants;      /* what the last record send waited for */
  gboolean           tls_eof;         /* the client sent no more */
  gboolean           plain_eof;       /* MHD closed its end */
  gboolean           plain_shut;      /* told MHD the client sent no more */
  gsize              up_off, up_len;      /* client -> MHD */
  gsize              down_off, down_len;  /* MHD -> client */
  guint8             up[KD_API_TLS_BUF_SIZE];
  guint8             down[KD_API_TLS_BUF_SIZE];
};

static void     kd_api_tls_link_update (KdApiTlsLink *l);
static gboolean kd_api_tls_handshake_timeout (gpointer data);

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

/* Ends the link. @graceful: try once, without waiting, to send the
 * client a close_notify. */
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
  kd_api_tls_clear_source (&l->fd_src);
  kd_api_tls_clear_source (&l->plain_src);
  if (l->pending_idle)
    g_source_remove (l->pending_idle);
  if (l->handshake_timer)
    g_source_remove (l->handshake_timer);
  if (graceful && l->handshaken)
    gnutls_bye (l->sess, GNUTLS_SHUT_WR);
  gnutls_deinit (l->sess);
  close (l->fd);
  if (l->plain_fd >= 0)
    close (l->plain_fd);
  g_free (l->client);
  g_free (l);
}

static GIOCondition
kd_api_tls_direction (KdApiTlsLink *l)
{
  return gnutls_record_get_direction (l->sess) ? G_IO_OUT : G_IO_IN;
}

/* The handshake is done: give MHD its end of a socketpair. */
static gboolean
kd_api_tls_link_connect (KdApiTlsLink *l)
{
  KdApiServer *s = l->front->server;
  int sv[2];

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
    {
      g_warning ("cannot make a socketpair for a TLS connection: %s", g_strerror (errno));
      return FALSE;
    }
  /* MHD owns sv[1] from here on, also when it refuses it (limits). */
  if (MHD_add_connection (s->mhd, sv[1], (const struct sockaddr *) &l->addr, l->addr_len) != MHD_YES)
    {
      close (sv[0]);
      return FALSE;
    }
  l->plain_fd = sv[0];
  kd_api_server_kick (s);
  return TRUE;
}

/* Moves what it can without waiting, at most one buffer each way.
 * Returns FALSE when the link failed (and was freed). */
static gboolean
kd_api_tls_link_step (KdApiTlsLink *l)
{
  ssize_t n;

  if (!l->handshaken)
    {
      int r = gnutls_handshake (l->sess);

      if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
        return TRUE;
      if (r < 0)
        {
          g_debug ("TLS handshake with %s failed: %s", l->client, gnutls_strerror (r));
          kd_api_tls_link_free (l, FALSE);
          return FALSE;
        }
      l->handshaken = TRUE;
      g_source_remove (l->handshake_timer);
      l->handshake_timer = 0;
      if (!kd_api_tls_link_connect (l))
        {
          kd_api_tls_link_free (l, TRUE);
          return FALSE;
        }
    }

  /* client -> MHD */
  if (l->up_len == 0 && !l->tls_eof)
    {
      n = gnutls_record_recv (l->sess, l->up, sizeof l->up);
      if (n > 0)
        {
          l->up_off = 0;
          l->up_len = n;
          l->recv_wants = G_IO_IN;
        }
      else if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION)
        l->tls_eof = TRUE;
      else if (n == GNUTLS_E_AGAIN)
        l->recv_wants = kd_api_tls_direction (l);
      else if (n != GNUTLS_E_INTERRUPTED && gnutls_error_is_fatal (n))
        {
          g_debug ("TLS connection from %s: %s", l->client, gnutls_strerror (n));
          kd_api_tls_link_free (l, FALSE);
          return FALSE;
        }
    }
  if (l->up_len > 0)
    {
      n = send (l->plain_fd, l->up + l->up_off, l->up_len, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0)
        {
          l->up_off += n;
          l->up_len -= n;
        }
      else if (n < 0 && errno != EAGAIN && errno != EINTR)
        {
          kd_api_tls_link_free (l, TRUE);
          return FALSE;
        }
    }

  /* MHD -> client */
  if (l->down_len == 0 && !l->plain_eof)
    {
      n = recv (l->plain_fd, l->down, sizeof l->down, MSG_DONTWAIT);
      if (n > 0)
        {
          l->down_off = 0;
          l->down_len = n;
        }
      else if (n == 0 || (errno != EAGAIN && errno != EINTR))
        l->plain_eof = TRUE;
    }
  if (l->down_len > 0)
    {
      /* After GNUTLS_E_AGAIN the same data is offered again, as GnuTLS wants. */
      n = gnutls_record_send (l->sess, l->down + l->down_off, l->down_len);
      if (n > 0)
        {
          l->down_off += n;
          l->down_len -= n;
          l->send_wants = G_IO_OUT;
        }
      else if (n == GNUTLS_E_AGAIN)
        l->send_wants = kd_api_tls_direction (l);
      else if (n != GNUTLS_E_INTERRUPTED)
        {
          g_debug ("TLS connection from %s: %s", l->client, gnutls_strerror (n));
          kd_api_tls_link_free (l, FALSE);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
kd_api_tls_fd_cb (gint fd, GIOCondition cond, gpointer data)
{
  KdApiTlsLink *l = data;

  if (kd_api_tls_link_step (l))
    kd_api_tls_link_update (l);
  return G_SOURCE_CONTINUE;
}

static gboolean
kd_api_tls_pending_cb (gpointer data)
{
  KdApiTlsLink *l = data;

  l->pending_idle = 0;
  if (kd_api_tls_link_step (l))
    kd_api_tls_link_update (l);
  return G_SOURCE_REMOVE;
}

/* (Re)creates *@src to watch @fd for @cond (none: no watch). */
static void
kd_api_tls_watch (KdApiTlsLink *l, GSource **src, GIOCondition *have, int fd, GIOCondition cond)
{
  if (*src && *have == cond)
    return;
  kd_api_tls_clear_source (src);
  *have = cond;
  if (cond == 0)
    return;
  *src = g_unix_fd_source_new (fd, cond);
  g_source_set_callback (*src, (GSourceFunc) (GCallback) kd_api_tls_fd_cb, l, NULL);
  g_source_attach (*src, NULL);
}

/* Watches what the buffers allow: read a side only when the buffer toward
 * the other side is empty (back-pressure), write a side only when there
 * is something for it. Ends the link when MHD is done with it. */
static void
kd_api_tls_link_update (KdApiTlsLink *l)
{
  GIOCondition fd_cond = 0, plain_cond = 0;
  gboolean want_recv;

  if (!l->handshaken)
    {
      kd_api_tls_watch (l, &l->fd_src, &l->fd_cond, l->fd, kd_api_tls_direction (l));
      return;
    }
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
  /* MHD is done but the client does not take the rest: not for ever. */
  if (l->plain_eof && l->handshake_timer == 0)
    l->handshake_timer = g_timeout_add_seconds (l->front->handshake_sec,
                                                kd_api_tls_handshake_timeout, l);
  want_recv = l->up_len == 0 && !l->tls_eof;
  if (want_recv)
    fd_cond |= l->recv_wants;
  if (l->down_len > 0)
    fd_cond |= l->send_wants;
  if (l->up_len > 0)
    plain_cond |= G_IO_OUT;
  if (l->down_len == 0 && !l->plain_eof)
    plain_cond |= G_IO_IN;
  /* Records GnuTLS has already decrypted do not make the socket readable. */
  if (want_recv && l->pending_idle == 0 && gnutls_record_check_pending (l->sess) > 0)
    l->pending_idle = g_idle_add (kd_api_tls_pending_cb, l);
  kd_api_tls_watch (l, &l->fd_src, &l->fd_cond, l->fd, fd_cond);
  kd_api_tls_watch (l, &l->plain_src, &l->plain_cond, l->plain_fd, plain_cond);
}

static gboolean
kd_api_tls_handshake_timeout (gpointer data)
{
  KdApiTlsLink *l = data;

  l->handshake_timer = 0;
  g_debug ("TLS connection with %s timed out (%s)", l->client,
           l->handshaken ? "the client does not read" : "handshake");
  kd_api_tls_link_free (l, FALSE);
  return G_SOURCE_REMOVE;
}

static void
kd_api_tls_accept_one (KdApiTlsFront *f, int fd, const struct sockaddr_storage *addr, socklen_t len)
{
  g_autoptr(GSocketAddress) sa = g_socket_address_new_from_native ((gpointer) addr, len);
  g_autofree char *client = NULL;
  KdApiTlsLink *l;
  guint n;
  int r;

  if (sa != NULL && G_IS_INET_SOCKET_ADDRESS (sa))
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
  l = g_new0 (KdApiTlsLink, 1);
  if ((r = gnutls_init (&l->sess, GNUTLS_SERVER | GNUTLS_NONBLOCK)) < 0 ||
      (r = gnutls_set_default_priority_append (l->sess, KD_API_TLS_PRIORITY_APPEND, NULL, 0)) < 0 ||
      (r = gnutls_credentials_set (l->sess, GNUTLS_CRD_CERTIFICATE, f->creds)) < 0)
    {
      g_warning ("cannot serve a TLS connection: %s", gnutls_strerror (r));
      if (l->sess)
        gnutls_deinit (l->sess);
      g_free (l);
      close (fd);
      return;
    }
  gnutls_certificate_server_set_request (l->sess, GNUTLS_CERT_IGNORE);
  gnutls_transport_set_int (l->sess, fd);
  l->front = f;
  l->fd = fd;
  l->plain_fd = -1;
  l->recv_wants = G_IO_IN;
  l->send_wants = G_IO_OUT;
  memcpy (&l->addr, addr, len);
  l->addr_len = len;
  l->client = g_strdup (client);
  g_hash_table_add (f->links, l);
  g_hash_table_insert (f->per_address, g_steal_pointer (&client), GUINT_TO_POINTER (n + 1));
  l->handshake_timer = g_timeout_add_seconds (f->handshake_sec, kd_api_tls_handshake_timeout, l);
  if (kd_api_tls_link_step (l))
    kd_api_tls_link_update (l);
}

static gboolean kd_api_tls_accept_cb (gint fd, GIOCondition cond, gpointer data);

static void
kd_api_tls_watch_listen (KdApiTlsFront *f)
{
  f->accept_source = g_unix_fd_source_new (f->listen_fd, G_IO_IN);
  g_source_set_callback (f->accept_source, (GSourceFunc) (GCallback) kd_api_tls_accept_cb, f, NULL);
  g_source_attach (f->accept_source, NULL);
}

static gboolean
kd_api_tls_accept_resume (gpointer data)
{
  KdApiTlsFront *f = data;

  f->accept_pause = 0;
  kd_api_tls_watch_listen (f);
  return G_SOURCE_REMOVE;
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
        {
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            {
              gint64 now = g_get_monotonic_time ();

              /* The socket stays readable: wait instead of spinning, and
               * say so once a minute at most. */
              if (f->accept_warned == 0 || now - f->accept_warned > 60 * G_USEC_PER_SEC)
                {
                  g_warning ("cannot accept HTTPS connections: %s (retrying every %d ms)",
                             g_strerror (errno), KD_API_TLS_ACCEPT_PAUSE_MS);
                  f->accept_warned = now;
                }
              g_clear_pointer (&f->accept_source, g_source_unref);
              f->accept_pause = g_timeout_add (KD_API_TLS_ACCEPT_PAUSE_MS,
                                               kd_api_tls_accept_resume, f);
              return G_SOURCE_REMOVE;
            }
          break;
        }
      kd_api_tls_accept_one (f, c, &addr, len);
    }
  return G_SOURCE_CONTINUE;
}

/**
 * kd_api_tls_front_new:
 * @listen_fd: the bound, listening socket (owned from now on on success)
 * @cert_pem: the certificate (chain) checked by kd_api_tls_load()
 * @key_pem: its key
 *
 * Returns: the TLS front accepting on @listen_fd, or %NULL when GnuTLS
 * refuses the pair.
 */
KdApiTlsFront *
kd_api_tls_front_new (KdApiServer *server, int listen_fd, const char *cert_pem,
                      const char *key_pem, GError **error)
{
  gnutls_certificate_credentials_t creds = NULL;
  gnutls_datum_t c = { (unsigned char *) cert_pem, (unsigned int) strlen (cert_pem) };
  gnutls_datum_t k = { (unsigned char *) key_pem, (unsigned int) strlen (key_pem) };
  KdApiTlsFront *f;
  int r;

  if ((r = gnutls_certificate_allocate_credentials (&creds)) < 0 ||
      (r = gnutls_certificate_set_x509_key_mem (creds, &c, &k, GNUTLS_X509_FMT_PEM)) < 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "the TLS certificate '%s' and key '%s' cannot be used: %s",
                   server->config->tls_cert, server->config->tls_key, gnutls_strerror (r));
      if (creds)
        gnutls_certificate_free_credentials (creds);
      return NULL;
    }
  f = g_new0 (KdApiTlsFront, 1);
  f->server = server;
  f->creds = creds;
  f->listen_fd = listen_fd;
  f->links = g_hash_table_new (NULL, NULL);
  f->per_address = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  f->max_links = (guint) server->config->connection_limit;
  f->max_per_address = (guint) server->config->per_ip_connection_limit;
  f->handshake_sec = (guint) MIN (server->config->connection_timeout, KD_API_TLS_HANDSHAKE_SEC);
  kd_api_tls_watch_listen (f);
  return f;
}

void
kd_api_tls_front_free (KdApiTlsFront *f)
{
  GHashTableIter iter;
  gpointer key;

  if (f == NULL)
    return;
  kd_api_tls_clear_source (&f->accept_source);
  if (f->accept_pause)
    g_source_remove (f->accept_pause);
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
  gnutls_certificate_free_credentials (f->creds);
  g_free (f);
}
