/*
 * kd-bench-client.c: the "browser" of bench/console (not installed).
 *
 * One client for every path, so that only the proxy differs: with --ws it
 * upgrades to a WebSocket (subprotocol "binary", no extension) and sends
 * masked binary frames as a browser does; without it, it speaks plain TCP
 * (the direct path). In both it does the client side of the RFB 3.8
 * security handshake (version, security type None, SecurityResult): with
 * kvmdesk's gateway that answers the gateway itself, with websockify and
 * directly kd-bench-backend — the bytes are the same. Then it sends the
 * backend's 16-byte bench command (see kd-bench-backend.c), or with --vnc
 * (a real VNC server: kvmdeskd's console) ClientInit and reads ServerInit.
 *
 * To keep the client from being the bottleneck, browser->server payload is
 * masked once and the same masked frame is sent again (a browser picks a
 * new key per frame; the proxy's unmasking work is the same either way).
 *
 * Modes (results as one JSON line on stdout):
 *   s2b BYTES               backend sends BYTES; we read them
 *   b2s BYTES MSG           we send BYTES in MSG-byte messages; backend acks
 *   rtt COUNT MSG           COUNT round trips of an MSG-byte message (echo)
 *   stall READ_MS STALL_MS  read a source for READ_MS, print "stalled",
 *                           read nothing for STALL_MS, print "resumed", exit
 *   many N BYTES_PER_100MS  N sessions, each sent BYTES every 100 ms; runs
 *                           until a line arrives on stdin, then reports
 *   flood SECONDS           (--vnc) RFB KeyEvents, one per message, as fast
 *                           as the path takes them
 * With --sync (single-session modes), it prints "ready" after the
 * handshake and waits for a line on stdin before it starts, and after the
 * result it waits for another line before it closes: the harness reads
 * the proxy's CPU time around exactly the transfer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RBUF_BYTES (512 * 1024)

typedef struct {
  int            fd;
  int            ws;
  unsigned char *rbuf;       /* received, not yet consumed (ws framing) */
  size_t         rpos, rlen;
  uint64_t       frame_left; /* payload bytes left in the current frame */
  int            closed;
  /* many mode */
  uint64_t       got;
} Conn;

static const char *opt_path = "/";
static const char *opt_host;
static const char *opt_origin;
static int opt_ws, opt_vnc, opt_sync;
static int port;

static void __attribute__ ((noreturn, format (printf, 1, 2)))
die (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "kd-bench-client: ");
  vfprintf (stderr, fmt, ap);
  fprintf (stderr, "\n");
  va_end (ap);
  exit (1);
}

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
write_all (int fd, const void *data, size_t len)
{
  const unsigned char *p = data;
  while (len > 0)
    {
      ssize_t n = send (fd, p, len, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        {
          struct pollfd pfd = { fd, POLLOUT, 0 };
          poll (&pfd, 1, 1000);
          continue;
        }
      if (n <= 0)
        die ("send: %s", strerror (errno));
      p += n;
      len -= n;
    }
}

/* Raw bytes from the socket into the connection's buffer; 0 at EOF. */
static ssize_t
fill (Conn *c)
{
  ssize_t n;

  if (c->rpos > 0 && c->rpos == c->rlen)
    c->rpos = c->rlen = 0;
  if (c->rlen == RBUF_BYTES)
    {
      memmove (c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
      c->rlen -= c->rpos;
      c->rpos = 0;
    }
  do
    n = recv (c->fd, c->rbuf + c->rlen, RBUF_BYTES - c->rlen, 0);
  while (n < 0 && errno == EINTR);
  if (n > 0)
    c->rlen += n;
  return n;
}

/* Parses frame headers while whole ones are buffered; returns 1 when a
 * data frame's payload is current, 0 when more raw bytes are needed. */
static int
next_frame (Conn *c)
{
  while (c->frame_left == 0)
    {
      size_t avail = c->rlen - c->rpos, hlen = 2;
      unsigned char *h = c->rbuf + c->rpos;
      uint64_t len;
      int opcode;

      if (avail < 2)
        return 0;
      len = h[1] & 0x7F;
      if (h[1] & 0x80)
        die ("a server frame is masked");
      if (len == 126)
        hlen = 4;
      else if (len == 127)
        hlen = 10;
      if (avail < hlen)
        return 0;
      if (len == 126)
        len = (uint64_t) h[2] << 8 | h[3];
      else if (len == 127)
        {
          len = 0;
          for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        }
      opcode = h[0] & 0x0F;
      if (opcode == 0x8)
        {
          c->closed = 1;
          return 0;
        }
      if (opcode >= 0x8)
        {
          /* control frame (ping/pong): skip it whole */
          if (avail < hlen + len)
            return 0;
          c->rpos += hlen + len;
          continue;
        }
      c->rpos += hlen;
      c->frame_left = len;
    }
  return 1;
}

/* Up to @max payload bytes, copied to @out unless it is NULL; blocking
 * until at least one byte; 0 when the peer closed. */
static size_t
conn_read (Conn *c, unsigned char *out, size_t max)
{
  for (;;)
    {
      size_t avail, n;

      if (!c->ws)
        {
          if (c->rpos == c->rlen)
            {
              ssize_t r = fill (c);
              if (r == 0)
                return 0;
              if (r < 0)
                die ("recv: %s", strerror (errno));
            }
          n = c->rlen - c->rpos < max ? c->rlen - c->rpos : max;
          if (out)
            memcpy (out, c->rbuf + c->rpos, n);
          c->rpos += n;
          return n;
        }
      if (next_frame (c))
        {
          avail = c->rlen - c->rpos;
          if (avail > 0)
            {
              n = avail < max ? avail : max;
              if (n > c->frame_left)
                n = c->frame_left;
              if (out)
                memcpy (out, c->rbuf + c->rpos, n);
              c->rpos += n;
              c->frame_left -= n;
              return n;
            }
        }
      if (c->closed)
        return 0;
      {
        ssize_t r = fill (c);
        if (r == 0)
          return 0;
        if (r < 0)
          die ("recv: %s", strerror (errno));
      }
    }
}

static void
read_exact (Conn *c, unsigned char *out, size_t n)
{
  while (n > 0)
    {
      size_t got = conn_read (c, out, n);
      if (got == 0)
        die ("the peer closed the connection during the handshake");
      out += got;
      n -= got;
    }
}

/* A masked binary frame carrying @len bytes of @payload, into @out
 * (14 + len bytes at most); returns its size. */
static size_t
make_frame (unsigned char *out, const unsigned char *payload, size_t len)
{
  size_t h = 0;
  unsigned char mask[4];
  uint32_t r = (uint32_t) random ();

  memcpy (mask, &r, 4);
  out[h++] = 0x82;
  if (len < 126)
    out[h++] = 0x80 | len;
  else if (len < 65536)
    {
      out[h++] = 0x80 | 126;
      out[h++] = len >> 8;
      out[h++] = len & 0xFF;
    }
  else
    {
      out[h++] = 0x80 | 127;
      for (int i = 7; i >= 0; i--)
        out[h++] = (uint64_t) len >> (8 * i) & 0xFF;
    }
  memcpy (out + h, mask, 4);
  h += 4;
  for (size_t i = 0; i < len; i++)
    out[h + i] = payload[i] ^ mask[i & 3];
  return h + len;
}

static void
conn_send (Conn *c, const void *payload, size_t len)
{
  unsigned char stack[256];
  unsigned char *f;
  size_t flen;

  if (!c->ws)
    {
      write_all (c->fd, payload, len);
      return;
    }
  f = len + 14 <= sizeof stack ? stack : malloc (len + 14);
  flen = make_frame (f, payload, len);
  write_all (c->fd, f, flen);
  if (f != stack)
    free (f);
}

static int
tcp_connect (void)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons (port) };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  for (int attempt = 0;; attempt++)
    {
      if (connect (fd, (struct sockaddr *) &sa, sizeof sa) == 0)
        break;
      if (attempt >= 50 || (errno != EAGAIN && errno != ECONNREFUSED && errno != ETIMEDOUT))
        die ("connect to port %d: %s", port, strerror (errno));
      close (fd);
      usleep (20000);
      fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    }
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void
send_command (Conn *c, char mode, uint64_t arg)
{
  unsigned char cmd[16] = { 'K', 'D', 'B', 'C', (unsigned char) mode };

  for (int i = 0; i < 8; i++)
    cmd[8 + i] = arg >> (8 * (7 - i)) & 0xFF;
  conn_send (c, cmd, 16);
}

/* Connects, upgrades (--ws), does the RFB security handshake and sends the
 * bench command unless @mode is 0 (or, --vnc, ClientInit and reads
 * ServerInit). */
static Conn *
conn_open (char mode, uint64_t arg)
{
  Conn *c = calloc (1, sizeof *c);
  unsigned char buf[64];
  struct timeval tv = { 30, 0 };

  c->rbuf = malloc (RBUF_BYTES);
  c->fd = tcp_connect ();
  c->ws = opt_ws;
  setsockopt (c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  if (c->ws)
    {
      char req[1024];
      unsigned char *end;
      int status = 0;

      snprintf (req, sizeof req,
                "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: binary\r\n%s%s%s\r\n",
                opt_path, opt_host ? opt_host : "127.0.0.1",
                opt_origin ? "Origin: " : "", opt_origin ? opt_origin : "", opt_origin ? "\r\n" : "");
      write_all (c->fd, req, strlen (req));
      for (;;)
        {
          c->rbuf[c->rlen] = 0;
          end = (unsigned char *) strstr ((char *) c->rbuf, "\r\n\r\n");
          if (end != NULL)
            break;
          if (c->rlen > 8192 || fill (c) <= 0)
            die ("no upgrade answer");
        }
      sscanf ((char *) c->rbuf, "HTTP/1.1 %d", &status);
      if (status != 101)
        die ("upgrade refused: %.200s", c->rbuf);
      c->rpos = end + 4 - c->rbuf;
    }

  /* RFB 3.8 security handshake, client side */
  read_exact (c, buf, 12);
  if (memcmp (buf, "RFB 003.00", 10) != 0)
    die ("not an RFB server: %.12s", buf);
  conn_send (c, "RFB 003.008\n", 12);
  read_exact (c, buf, 1);
  if (buf[0] == 0)
    die ("the server offers no security type");
  {
    unsigned n = buf[0], none = 0;
    unsigned char types[255];
    read_exact (c, types, n);
    for (unsigned i = 0; i < n; i++)
      none |= types[i] == 1;
    if (!none)
      die ("the server does not offer security None");
  }
  conn_send (c, "\x01", 1);
  read_exact (c, buf, 4);
  if (memcmp (buf, "\0\0\0\0", 4) != 0)
    die ("SecurityResult is not OK");

  if (opt_vnc)
    {
      uint32_t name_len;
      conn_send (c, "\x01", 1);   /* ClientInit, shared */
      read_exact (c, buf, 24);
      name_len = (uint32_t) buf[20] << 24 | buf[21] << 16 | buf[22] << 8 | buf[23];
      while (name_len > 0)
        {
          size_t n = name_len < sizeof buf ? name_len : sizeof buf;
          read_exact (c, buf, n);
          name_len -= n;
        }
    }
  else if (mode != 0)
    send_command (c, mode, arg);
  tv.tv_sec = 0;
  setsockopt (c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return c;
}

static void
sync_point (const char *say)
{
  char line[64];

  if (!opt_sync)
    return;
  printf ("%s\n", say);
  fflush (stdout);
  if (fgets (line, sizeof line, stdin) == NULL)
    exit (0);
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static void
mode_s2b (uint64_t bytes)
{
  Conn *c = conn_open ('S', bytes);
  uint64_t got = 0;
  double t0;

  sync_point ("ready");
  t0 = now_s ();
  while (got < bytes)
    {
      size_t n = conn_read (c, NULL, RBUF_BYTES);
      if (n == 0)
        die ("closed after %llu bytes", (unsigned long long) got);
      got += n;
    }
  printf ("{\"bytes\": %llu, \"seconds\": %.6f}\n", (unsigned long long) got, now_s () - t0);
  fflush (stdout);
  sync_point ("done");
}

static void
mode_b2s (uint64_t bytes, size_t msg)
{
  Conn *c = conn_open ('K', bytes);
  unsigned char *payload = malloc (msg), *frame = malloc (msg + 14);
  size_t flen;
  uint64_t sent = 0;
  unsigned char ack;
  double t0;

  for (size_t i = 0; i < msg; i++)
    payload[i] = (unsigned char) (i * 31 + 7);
  flen = c->ws ? make_frame (frame, payload, msg) : (memcpy (frame, payload, msg), msg);
  sync_point ("ready");
  t0 = now_s ();
  while (sent < bytes)
    {
      if (bytes - sent < msg)
        {
          conn_send (c, payload, bytes - sent);
          sent = bytes;
          break;
        }
      write_all (c->fd, frame, flen);
      sent += msg;
    }
  read_exact (c, &ack, 1);
  if (ack != 'A')
    die ("no acknowledgement from the backend");
  printf ("{\"bytes\": %llu, \"seconds\": %.6f}\n", (unsigned long long) sent, now_s () - t0);
  fflush (stdout);
  sync_point ("done");
}

static void
mode_rtt (int count, size_t msg)
{
  Conn *c = conn_open ('E', 0);
  unsigned char payload[256], back[256];
  double *lat = malloc (sizeof (double) * count);
  int warm = count / 10;

  if (msg > sizeof payload)
    die ("rtt messages are at most %zu bytes", sizeof payload);
  memset (payload, 'x', msg);
  sync_point ("ready");
  for (int i = -warm; i < count; i++)
    {
      double t0 = now_s ();
      conn_send (c, payload, msg);
      read_exact (c, back, msg);
      if (i >= 0)
        lat[i] = (now_s () - t0) * 1e6;
    }
  qsort (lat, count, sizeof (double), cmp_double);
  printf ("{\"count\": %d, \"p50_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f}\n",
          count, lat[count / 2], lat[(int) (count * 0.99)], lat[count - 1]);
  fflush (stdout);
  sync_point ("done");
}

static void
mode_stall (int read_ms, int stall_ms)
{
  Conn *c = conn_open ('S', 0);
  uint64_t got = 0;
  double t0 = now_s ();

  while (now_s () - t0 < read_ms / 1000.0)
    {
      size_t n = conn_read (c, NULL, RBUF_BYTES);
      if (n == 0)
        die ("closed while reading");
      got += n;
    }
  printf ("stalled %llu\n", (unsigned long long) got);
  fflush (stdout);
  usleep (stall_ms * 1000);
  printf ("resumed\n");
  fflush (stdout);
  /* read on briefly: the path must still flow after the stall */
  t0 = now_s ();
  got = 0;
  while (now_s () - t0 < 0.3)
    {
      size_t n = conn_read (c, NULL, RBUF_BYTES);
      if (n == 0)
        die ("closed after the stall");
      got += n;
    }
  printf ("{\"after_stall_bytes\": %llu}\n", (unsigned long long) got);
  fflush (stdout);
}

static void
mode_many (int n, uint64_t per_tick)
{
  Conn **conns = calloc (n, sizeof *conns);
  int ep = epoll_create1 (EPOLL_CLOEXEC);
  struct epoll_event ev, events[256];
  double t0, t_up, t_mark = 0;
  uint64_t total = 0, mark_total = 0;
  int closed = 0;

  for (int i = 0; i < n; i++)
    {
      /* the streams start once every session is open: a session opened
       * early is not left unread (a stalled browser) while the others open */
      conns[i] = conn_open (0, 0);
    }
  for (int i = 0; i < n; i++)
    {
      send_command (conns[i], 'R', per_tick);
      fcntl (conns[i]->fd, F_SETFL, fcntl (conns[i]->fd, F_GETFL) | O_NONBLOCK);
      ev.events = EPOLLIN;
      ev.data.ptr = conns[i];
      epoll_ctl (ep, EPOLL_CTL_ADD, conns[i]->fd, &ev);
    }
  t_up = now_s ();
  printf ("up %d\n", n);
  fflush (stdout);
  ev.events = EPOLLIN;
  ev.data.ptr = NULL;
  epoll_ctl (ep, EPOLL_CTL_ADD, 0, &ev);
  t0 = t_up;
  for (;;)
    {
      int k = epoll_wait (ep, events, 256, -1);
      int stop = 0;

      for (int j = 0; j < k; j++)
        {
          Conn *c = events[j].data.ptr;
          if (c == NULL)
            {
              char line[64];
              if (fgets (line, sizeof line, stdin) == NULL || strncmp (line, "stop", 4) == 0)
                stop = 1;
              else
                {
                  /* "mark": the measurement window starts */
                  t_mark = now_s ();
                  mark_total = total;
                }
              continue;
            }
          for (int round = 0; round < 4; round++)
            {
              ssize_t r = fill (c);
              if (r == 0 || (r < 0 && errno != EAGAIN))
                {
                  if (!c->closed)
                    closed++;
                  c->closed = 1;
                  epoll_ctl (ep, EPOLL_CTL_DEL, c->fd, NULL);
                  break;
                }
              if (r < 0)
                break;
              c->got += r;
              total += r;
              c->rpos = c->rlen = 0;
            }
        }
      if (stop)
        break;
    }
  {
    double t_end = now_s ();
    double window = t_mark > 0 ? t_end - t_mark : t_end - t0;
    uint64_t wbytes = t_mark > 0 ? total - mark_total : total;
    uint64_t minimum = UINT64_MAX;
    for (int i = 0; i < n; i++)
      if (conns[i]->got < minimum)
        minimum = conns[i]->got;
    printf ("{\"sessions\": %d, \"closed\": %d, \"window_seconds\": %.3f, \"window_bytes\": %llu, "
            "\"mbit_per_session\": %.3f, \"min_session_bytes\": %llu}\n",
            n, closed, window, (unsigned long long) wbytes,
            wbytes * 8 / 1e6 / window / n, (unsigned long long) minimum);
    fflush (stdout);
  }
}

/* RFB KeyEvent: type 4, down flag, padding, keysym (u32). */
static void
mode_flood (double seconds)
{
  Conn *c = conn_open (0, 0);
  enum { BATCH = 512 };
  unsigned char *batch = malloc (BATCH * 14);
  size_t blen = 0;
  uint64_t events = 0;
  double t0, t;

  for (int i = 0; i < BATCH; i++)
    {
      unsigned char key[8] = { 4, (unsigned char) (i & 1 ? 0 : 1), 0, 0, 0, 0, 0, 'x' };
      blen += c->ws ? make_frame (batch + blen, key, 8) : (memcpy (batch + blen, key, 8), 8);
    }
  fcntl (c->fd, F_SETFL, fcntl (c->fd, F_GETFL) | O_NONBLOCK);
  printf ("flooding\n");
  fflush (stdout);
  t0 = now_s ();
  while ((t = now_s ()) - t0 < seconds)
    {
      struct pollfd pfd = { c->fd, POLLOUT | POLLIN, 0 };
      poll (&pfd, 1, 100);
      if (pfd.revents & POLLIN)
        {
          ssize_t r = fill (c);   /* whatever QEMU says: dropped */
          if (r == 0)
            die ("the console closed during the flood");
          c->rpos = c->rlen = 0;
        }
      if (pfd.revents & POLLOUT)
        {
          ssize_t n = send (c->fd, batch, blen, MSG_NOSIGNAL);
          if (n < 0 && errno != EAGAIN && errno != EINTR)
            die ("send: %s", strerror (errno));
          if (n > 0)
            {
              /* finish the batch so frames stay whole */
              if ((size_t) n < blen)
                {
                  fcntl (c->fd, F_SETFL, fcntl (c->fd, F_GETFL) & ~O_NONBLOCK);
                  write_all (c->fd, batch + n, blen - n);
                  fcntl (c->fd, F_SETFL, fcntl (c->fd, F_GETFL) | O_NONBLOCK);
                }
              events += BATCH;
            }
        }
    }
  printf ("{\"key_events\": %llu, \"seconds\": %.3f, \"events_per_s\": %.0f}\n",
          (unsigned long long) events, now_s () - t0, events / (now_s () - t0));
  fflush (stdout);
}

int
main (int argc, char **argv)
{
  struct rlimit rl;
  int i = 1;

  if (getrlimit (RLIMIT_NOFILE, &rl) == 0)
    {
      rl.rlim_cur = rl.rlim_max;
      setrlimit (RLIMIT_NOFILE, &rl);
    }
  srandom (getpid ());
  for (; i < argc && strncmp (argv[i], "--", 2) == 0; i++)
    {
      if (strcmp (argv[i], "--ws") == 0)
        opt_ws = 1;
      else if (strcmp (argv[i], "--vnc") == 0)
        opt_vnc = 1;
      else if (strcmp (argv[i], "--sync") == 0)
        opt_sync = 1;
      else if (strcmp (argv[i], "--path") == 0 && i + 1 < argc)
        opt_path = argv[++i];
      else if (strcmp (argv[i], "--host") == 0 && i + 1 < argc)
        opt_host = argv[++i];
      else if (strcmp (argv[i], "--origin") == 0 && i + 1 < argc)
        opt_origin = argv[++i];
      else
        die ("unknown option %s", argv[i]);
    }
  if (argc - i < 2)
    die ("usage: kd-bench-client [--ws] [--vnc] [--sync] [--path P] [--host H] [--origin O] PORT MODE ARGS...");
  port = atoi (argv[i]);
  {
    const char *mode = argv[i + 1];
    char **a = argv + i + 2;
    int na = argc - i - 2;

    if (strcmp (mode, "s2b") == 0 && na == 1)
      mode_s2b (strtoull (a[0], NULL, 10));
    else if (strcmp (mode, "b2s") == 0 && na == 2)
      mode_b2s (strtoull (a[0], NULL, 10), strtoul (a[1], NULL, 10));
    else if (strcmp (mode, "rtt") == 0 && na == 2)
      mode_rtt (atoi (a[0]), strtoul (a[1], NULL, 10));
    else if (strcmp (mode, "stall") == 0 && na == 2)
      mode_stall (atoi (a[0]), atoi (a[1]));
    else if (strcmp (mode, "many") == 0 && na == 2)
      mode_many (atoi (a[0]), strtoull (a[1], NULL, 10));
    else if (strcmp (mode, "flood") == 0 && na == 1 && opt_vnc)
      mode_flood (atof (a[0]));
    else
      die ("bad mode or arguments: %s", mode);
  }
  return 0;
}
