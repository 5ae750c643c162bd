/*
 * kd-bench-gateway.c: kvmdesk's console gateway as a stand-alone proxy, for
 * bench/console only (not installed).
 *
 * It does what kvmdeskd does once libmicrohttpd has handed over a console
 * socket (src/api/kd-api-console.c): the WebSocket upgrade is validated and
 * answered with the gateway library's own functions
 * (kd_gateway_ws_validate_request), the "VNC server" is a TCP connection to
 * the backend given on the command line, and a KdGatewaySession with the
 * default limits pumps the two on a GLib main loop. There is no HTTP
 * server, no ticket and no Origin check: the bench measures the pump.
 *
 * Usage: kd-bench-gateway LISTEN_PORT BACKEND_PORT (both on 127.0.0.1).
 * Prints "listening PORT" on stdout once it accepts (LISTEN_PORT 0 picks
 * one). SIGTERM/SIGINT end it.
 */
#define _GNU_SOURCE
#include "gateway/kd-gateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glib-unix.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BENCH_MAX_REQUEST_BYTES (8 * 1024)   /* the upgrade request's head */
#define BENCH_LISTEN_BACKLOG    4096

typedef struct {
  int         fd;
  guint       watch;
  GString    *head;
} BenchPending;

static int backend_port;
static guint live_sessions;

static void
raise_nofile (void)
{
  struct rlimit rl;

  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
    {
      rl.rlim_cur = rl.rlim_max;
      (void) setrlimit (RLIMIT_NOFILE, &rl);
    }
}

static int
connect_backend (void)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons (backend_port) };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;

  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (fd < 0)
    return -1;
  if (connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0)
    {
      close (fd);
      return -1;
    }
  (void) setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void
session_closed (KdGatewaySession *session, const char *reason, gpointer data)
{
  live_sessions--;
  g_debug ("session closed: %s", reason);
  kd_gateway_session_free (session);
}

/* The value of header @name in the request head @head, or NULL. */
static char *
header_value (const char *head, const char *name)
{
  g_auto(GStrv) lines = g_strsplit (head, "\r\n", -1);

  for (guint i = 1; lines[i] != NULL; i++)
    {
      char *colon = strchr (lines[i], ':');
      if (colon == NULL)
        continue;
      *colon = '\0';
      if (g_ascii_strcasecmp (g_strstrip (lines[i]), name) == 0)
        return g_strdup (g_strstrip (colon + 1));
    }
  return NULL;
}

static void
answer_error (int fd, const char *message)
{
  g_autofree char *resp = g_strdup_printf ("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                                           "Content-Length: %zu\r\n\r\n%s", strlen (message), message);
  (void) send (fd, resp, strlen (resp), MSG_NOSIGNAL);
}

/* The request head is complete: validate, answer 101, start a session. */
static void
upgrade (int fd, const char *head)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *method = g_strndup (head, strcspn (head, " \r\n"));
  g_autofree char *up = header_value (head, "Upgrade");
  g_autofree char *conn = header_value (head, "Connection");
  g_autofree char *version = header_value (head, "Sec-WebSocket-Version");
  g_autofree char *key = header_value (head, "Sec-WebSocket-Key");
  g_autofree char *protocols = header_value (head, "Sec-WebSocket-Protocol");
  g_autofree char *accept = NULL;
  g_autofree char *protocol = NULL;
  g_autofree char *resp = NULL;
  KdGatewayWsRequest wr = {
    .method = method, .upgrade = up, .connection = conn,
    .version = version, .key = key, .protocols = protocols,
  };
  int vnc_fd, one = 1;

  if (!kd_gateway_ws_validate_request (&wr, &accept, &protocol, &error))
    {
      answer_error (fd, error->message);
      close (fd);
      return;
    }
  vnc_fd = connect_backend ();
  if (vnc_fd < 0)
    {
      answer_error (fd, "the backend is not reachable");
      close (fd);
      return;
    }
  resp = g_strdup_printf ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                          accept, protocol ? "Sec-WebSocket-Protocol: " : "",
                          protocol ? protocol : "", protocol ? "\r\n" : "");
  /* The socket is still empty: the 101 fits in its buffer. */
  if (send (fd, resp, strlen (resp), MSG_NOSIGNAL) != (ssize_t) strlen (resp))
    {
      close (fd);
      close (vnc_fd);
      return;
    }
  (void) setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  live_sessions++;
  (void) kd_gateway_session_new (fd, vnc_fd, NULL, NULL, session_closed, NULL);
}

static gboolean
pending_readable (int fd, GIOCondition cond, gpointer data)
{
  BenchPending *p = data;
  char buf[2048];
  ssize_t n;
  const char *end;

  n = recv (fd, buf, sizeof buf, MSG_PEEK);
  if (n <= 0)
    {
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return G_SOURCE_CONTINUE;
      goto drop;
    }
  /* Consume only up to the end of the head: the first WebSocket frame
   * (the client may send it right after the request) stays for the session. */
  g_string_append_len (p->head, buf, n);
  end = strstr (p->head->str, "\r\n\r\n");
  if (end == NULL)
    {
      (void) recv (fd, buf, n, 0);
      if (p->head->len > BENCH_MAX_REQUEST_BYTES)
        goto drop;
      return G_SOURCE_CONTINUE;
    }
  {
    gsize head_len = end + 4 - p->head->str;
    gsize consume = n - (p->head->len - head_len);
    (void) recv (fd, buf, consume, 0);
    g_string_truncate (p->head, head_len);
  }
  upgrade (fd, p->head->str);
  g_string_free (p->head, TRUE);
  g_free (p);
  return G_SOURCE_REMOVE;

drop:
  close (fd);
  g_string_free (p->head, TRUE);
  g_free (p);
  return G_SOURCE_REMOVE;
}

static gboolean
listener_readable (int lfd, GIOCondition cond, gpointer data)
{
  for (int i = 0; i < 64; i++)
    {
      int fd = accept4 (lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      BenchPending *p;

      if (fd < 0)
        break;
      p = g_new0 (BenchPending, 1);
      p->fd = fd;
      p->head = g_string_new (NULL);
      p->watch = g_unix_fd_add (fd, G_IO_IN, pending_readable, p);
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
on_signal (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

int
main (int argc, char **argv)
{
  struct sockaddr_in sa = { .sin_family = AF_INET };
  socklen_t sl = sizeof sa;
  g_autoptr(GMainLoop) loop = NULL;
  int lfd, one = 1;

  if (argc != 3)
    {
      fprintf (stderr, "usage: %s LISTEN_PORT BACKEND_PORT\n", argv[0]);
      return 2;
    }
  raise_nofile ();
  backend_port = atoi (argv[2]);
  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  sa.sin_port = htons (atoi (argv[1]));
  lfd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  (void) setsockopt (lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (lfd < 0 || bind (lfd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen (lfd, BENCH_LISTEN_BACKLOG) < 0
      || getsockname (lfd, (struct sockaddr *) &sa, &sl) < 0)
    {
      fprintf (stderr, "cannot listen on 127.0.0.1:%s: %s\n", argv[1], g_strerror (errno));
      return 1;
    }
  loop = g_main_loop_new (NULL, FALSE);
  g_unix_fd_add (lfd, G_IO_IN, listener_readable, NULL);
  g_unix_signal_add (SIGTERM, on_signal, loop);
  g_unix_signal_add (SIGINT, on_signal, loop);
  printf ("listening %d\n", ntohs (sa.sin_port));
  fflush (stdout);
  g_main_loop_run (loop);
  close (lfd);
  return 0;
}
