/*
 * kd-bench-backend.c: the VNC-like server bench/console proxies to (not
 * installed).
 *
 * It speaks the start of RFB 3.8 like QEMU does without a password:
 * "RFB 003.008\n", reads the client's version, offers security type None
 * only, reads the choice, answers SecurityResult OK. From then on it is
 * no VNC server but a byte source/sink driven by one 16-byte bench
 * command the client sends where RFB's ClientInit would be:
 *
 *   "KDBC" | mode (1 byte) | 3 zero bytes | argument (u64, big endian)
 *
 *   'S' source: send the argument's number of bytes (0: without end);
 *   'K' sink: read the argument's number of bytes, then send one byte 'A';
 *   'E' echo: send back every byte read;
 *   'R' rate: send the argument's number of bytes every 100 ms, read and
 *       drop whatever comes (the 1,000-sessions case).
 *
 * Through kvmdesk's gateway the gateway does this handshake with us and
 * its own with the client; through websockify and directly the client does
 * it with us. Either way the client sees the same bytes.
 *
 * Single-threaded, epoll, non-blocking: it must never be the bottleneck.
 * Usage: kd-bench-backend PORT; prints "listening PORT".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define BUF_BYTES        (256 * 1024)
#define TICK_MS          100
#define MAX_CREDIT_TICKS 10     /* a rate session owed more than 1 s of data drops the rest */
#define MAX_EVENTS       256

enum { ST_VERSION, ST_TYPE, ST_CMD, ST_RUN };

typedef struct Conn {
  int           fd;
  int           state;
  unsigned char in[16];
  size_t        in_len;
  char          mode;
  uint64_t      arg;
  uint64_t      done;       /* source: bytes sent; sink: bytes read */
  uint64_t      credit;     /* rate: bytes owed */
  unsigned char *echo;      /* echo: bytes read, not yet sent back */
  size_t        echo_len;
  int           want_out;
  struct Conn  *next_rate;
  struct Conn  *prev_rate;
} Conn;

static int ep;
static unsigned char src_buf[BUF_BYTES];
static unsigned char sink_buf[BUF_BYTES];
static Conn *rate_list;
static Conn *dead_list;      /* dropped during this batch of events; freed after it */

static void
set_out (Conn *c, int on)
{
  struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c };

  if (c->want_out == on)
    return;
  c->want_out = on;
  epoll_ctl (ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
drop (Conn *c)
{
  if (c->mode == 'R' && c->state == ST_RUN)
    {
      if (c->prev_rate)
        c->prev_rate->next_rate = c->next_rate;
      else
        rate_list = c->next_rate;
      if (c->next_rate)
        c->next_rate->prev_rate = c->prev_rate;
    }
  c->mode = 0;
  epoll_ctl (ep, EPOLL_CTL_DEL, c->fd, NULL);
  close (c->fd);
  c->fd = -1;
  c->next_rate = dead_list;
  dead_list = c;
}

/* Sends what the connection owes; returns -1 when it is gone. */
static int
pump_out (Conn *c)
{
  for (;;)
    {
      size_t want = 0;
      const unsigned char *from = src_buf;
      ssize_t n;

      if (c->mode == 'S')
        want = c->arg == 0 ? BUF_BYTES : (c->arg - c->done < BUF_BYTES ? c->arg - c->done : BUF_BYTES);
      else if (c->mode == 'R')
        want = c->credit < BUF_BYTES ? c->credit : BUF_BYTES;
      else if (c->mode == 'E')
        {
          want = c->echo_len;
          from = c->echo;
        }
      if (want == 0)
        {
          set_out (c, 0);
          return 0;
        }
      n = send (c->fd, from, want, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        {
          set_out (c, 1);
          return 0;
        }
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return -1;
      c->done += n;
      if (c->mode == 'R')
        c->credit -= n;
      if (c->mode == 'E')
        {
          memmove (c->echo, c->echo + n, c->echo_len - n);
          c->echo_len -= n;
        }
    }
}

static uint64_t
be64 (const unsigned char *p)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

/* Reads exactly what the handshake step needs; returns -1 when it fails. */
static int
handshake_in (Conn *c)
{
  size_t need = c->state == ST_VERSION ? 12 : c->state == ST_TYPE ? 1 : 16;
  ssize_t n = recv (c->fd, c->in + c->in_len, need - c->in_len, 0);

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return 0;
  if (n <= 0)
    return -1;
  c->in_len += n;
  if (c->in_len < need)
    return 0;
  c->in_len = 0;
  switch (c->state)
    {
    case ST_VERSION:
      if (memcmp (c->in, "RFB 003.00", 10) != 0)
        return -1;
      if (send (c->fd, "\x01\x01", 2, MSG_NOSIGNAL) != 2)   /* one type: None */
        return -1;
      c->state = ST_TYPE;
      return 0;
    case ST_TYPE:
      if (c->in[0] != 1)
        return -1;
      if (send (c->fd, "\0\0\0\0", 4, MSG_NOSIGNAL) != 4)   /* SecurityResult OK */
        return -1;
      c->state = ST_CMD;
      return 0;
    default:
      if (memcmp (c->in, "KDBC", 4) != 0 || strchr ("SKER", c->in[4]) == NULL || c->in[4] == 0)
        return -1;
      c->mode = c->in[4];
      c->arg = be64 (c->in + 8);
      c->state = ST_RUN;
      if (c->mode == 'E')
        c->echo = malloc (BUF_BYTES);
      if (c->mode == 'R')
        {
          c->next_rate = rate_list;
          if (rate_list)
            rate_list->prev_rate = c;
          rate_list = c;
        }
      return pump_out (c);
    }
}

static int
run_in (Conn *c)
{
  for (int round = 0; round < 4; round++)
    {
      unsigned char *to = sink_buf;
      size_t want = BUF_BYTES;
      ssize_t n;

      if (c->mode == 'E')
        {
          if (c->echo_len == BUF_BYTES)
            return 0;      /* the peer reads slowly; EPOLLOUT drains first */
          to = c->echo + c->echo_len;
          want = BUF_BYTES - c->echo_len;
        }
      else if (c->mode == 'K' && c->arg - c->done < want)
        want = c->arg - c->done;
      if (want == 0)
        return 0;
      n = recv (c->fd, to, want, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
      if (n <= 0)
        return -1;
      if (c->mode == 'E')
        {
          c->echo_len += n;
          if (pump_out (c) < 0)
            return -1;
        }
      else if (c->mode == 'K')
        {
          c->done += n;
          if (c->done == c->arg && send (c->fd, "A", 1, MSG_NOSIGNAL) != 1)
            return -1;
        }
    }
  return 0;
}

static void
tick (void)
{
  for (Conn *c = rate_list, *next; c != NULL; c = next)
    {
      next = c->next_rate;
      c->credit += c->arg;
      if (c->credit > MAX_CREDIT_TICKS * c->arg)
        c->credit = MAX_CREDIT_TICKS * c->arg;
      if (pump_out (c) < 0)
        drop (c);
    }
}

int
main (int argc, char **argv)
{
  struct sockaddr_in sa = { .sin_family = AF_INET };
  socklen_t sl = sizeof sa;
  struct rlimit rl;
  struct epoll_event ev, events[MAX_EVENTS];
  struct itimerspec its = { { 0, TICK_MS * 1000000L }, { 0, TICK_MS * 1000000L } };
  int lfd, tfd, one = 1;
  static int lfd_tag, tfd_tag;

  if (argc != 2)
    {
      fprintf (stderr, "usage: %s PORT\n", argv[0]);
      return 2;
    }
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0)
    {
      rl.rlim_cur = rl.rlim_max;
      setrlimit (RLIMIT_NOFILE, &rl);
    }
  for (size_t i = 0; i < sizeof src_buf; i++)
    src_buf[i] = (unsigned char) (i * 2654435761u >> 13);

  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  sa.sin_port = htons (atoi (argv[1]));
  lfd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  setsockopt (lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (lfd < 0 || bind (lfd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen (lfd, 4096) < 0
      || getsockname (lfd, (struct sockaddr *) &sa, &sl) < 0)
    {
      perror ("listen");
      return 1;
    }
  ep = epoll_create1 (EPOLL_CLOEXEC);
  tfd = timerfd_create (CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  timerfd_settime (tfd, 0, &its, NULL);
  ev.events = EPOLLIN;
  ev.data.ptr = &lfd_tag;
  epoll_ctl (ep, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.ptr = &tfd_tag;
  epoll_ctl (ep, EPOLL_CTL_ADD, tfd, &ev);
  printf ("listening %d\n", ntohs (sa.sin_port));
  fflush (stdout);

  for (;;)
    {
      int n = epoll_wait (ep, events, MAX_EVENTS, -1);

      for (int i = 0; i < n; i++)
        {
          Conn *c = events[i].data.ptr;

          if (c != (Conn *) &lfd_tag && c != (Conn *) &tfd_tag && c->fd < 0)
            continue;

          if (events[i].data.ptr == &lfd_tag)
            {
              int fd;
              while ((fd = accept4 (lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0)
                {
                  c = calloc (1, sizeof *c);
                  c->fd = fd;
                  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                  ev.events = EPOLLIN;
                  ev.data.ptr = c;
                  epoll_ctl (ep, EPOLL_CTL_ADD, fd, &ev);
                  if (send (fd, "RFB 003.008\n", 12, MSG_NOSIGNAL) != 12)
                    drop (c);
                }
              continue;
            }
          if (events[i].data.ptr == &tfd_tag)
            {
              uint64_t expirations;
              if (read (tfd, &expirations, sizeof expirations) > 0)
                tick ();
              continue;
            }
          if ((events[i].events & EPOLLOUT) && pump_out (c) < 0)
            {
              drop (c);
              continue;
            }
          if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            {
              int r = c->state == ST_RUN ? run_in (c) : handshake_in (c);
              if (r < 0)
                drop (c);
            }
        }
      while (dead_list != NULL)
        {
          Conn *c = dead_list;
          dead_list = c->next_rate;
          free (c->echo);
          free (c);
        }
    }
}
