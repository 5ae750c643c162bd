/*
 * test-gateway-session.c: a console session between a scripted WebSocket
 * client (frames masked by hand here) and a scripted RFB server, over
 * socketpairs, on a private GMainContext iterated by the test. No sleeps:
 * the loop is iterated until a condition holds, with a bound so a broken
 * gateway fails the test instead of hanging it.
 */
#include "gateway/kd-gateway-priv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SPINS 20000

typedef struct {
  GMainContext     *context;
  KdGatewaySession *session;
  int               ws;        /* the browser's end */
  int               vnc;       /* the VNC server's end */
  GByteArray       *ws_in;     /* unparsed bytes from the gateway */
  char             *closed_reason;
  guint             closed_calls;
} Fixture;

typedef struct {
  guint8      opcode;
  gboolean    fin;
  GByteArray *payload;
} Frame;

static void
frame_free (Frame *f)
{
  g_byte_array_unref (f->payload);
  g_free (f);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Frame, frame_free)

static void
on_closed (KdGatewaySession *session, const char *reason, gpointer data)
{
  Fixture *fx = data;

  fx->closed_calls++;
  g_free (fx->closed_reason);
  fx->closed_reason = g_strdup (reason);
}

static void
set_nonblocking (int fd)
{
  g_assert_cmpint (fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK), ==, 0);
}

static void
fixture_setup (Fixture *fx, const KdGatewayLimits *limits, const char *password)
{
  int ws[2], vnc[2];

  memset (fx, 0, sizeof *fx);
  fx->context = g_main_context_new ();
  g_main_context_push_thread_default (fx->context);
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ws), ==, 0);
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, vnc), ==, 0);
  fx->ws = ws[1];
  fx->vnc = vnc[1];
  set_nonblocking (fx->ws);
  set_nonblocking (fx->vnc);
  fx->ws_in = g_byte_array_new ();
  fx->session = kd_gateway_session_new (ws[0], vnc[0], password, limits, on_closed, fx);
}

static void
fixture_teardown (Fixture *fx)
{
  kd_gateway_session_free (fx->session);
  close (fx->ws);
  close (fx->vnc);
  g_byte_array_unref (fx->ws_in);
  g_free (fx->closed_reason);
  g_main_context_pop_thread_default (fx->context);
  g_main_context_unref (fx->context);
}

static void
spin (Fixture *fx)
{
  g_main_context_iteration (fx->context, FALSE);
}

/* Reads what the gateway sent to the browser into ws_in. */
static void
pull_ws (Fixture *fx)
{
  guint8 buf[65536];
  ssize_t n;

  while ((n = read (fx->ws, buf, sizeof buf)) > 0)
    g_byte_array_append (fx->ws_in, buf, n);
}

/* Parses one frame from ws_in if complete; server frames are unmasked. */
static Frame *
parse_frame (Fixture *fx)
{
  const guint8 *p = fx->ws_in->data;
  gsize have = fx->ws_in->len, off = 2;
  guint64 len;
  Frame *f;

  if (have < 2)
    return NULL;
  g_assert_cmpuint (p[1] & 0x80, ==, 0);   /* a server never masks */
  g_assert_cmpuint (p[0] & 0x70, ==, 0);   /* no RSV bits: no extension */
  len = p[1] & 0x7f;
  if (len == 126)
    {
      if (have < 4)
        return NULL;
      len = (guint64) p[2] << 8 | p[3];
      off = 4;
    }
  else if (len == 127)
    {
      if (have < 10)
        return NULL;
      len = 0;
      for (int i = 0; i < 8; i++)
        len = len << 8 | p[2 + i];
      off = 10;
    }
  if (have < off + len)
    return NULL;
  f = g_new0 (Frame, 1);
  f->opcode = p[0] & 0x0f;
  f->fin = (p[0] & 0x80) != 0;
  f->payload = g_byte_array_new ();
  g_byte_array_append (f->payload, p + off, len);
  g_byte_array_remove_range (fx->ws_in, 0, off + len);
  return f;
}

static Frame *
next_frame (Fixture *fx)
{
  for (guint i = 0; i < MAX_SPINS; i++)
    {
      Frame *f;
      pull_ws (fx);
      if ((f = parse_frame (fx)) != NULL)
        return f;
      spin (fx);
    }
  g_error ("no frame from the gateway after %d iterations", MAX_SPINS);
  return NULL;
}

static void
write_all (Fixture *fx, int fd, const void *data, gsize len)
{
  const guint8 *p = data;
  guint spins = 0;

  while (len > 0)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0)
        {
          g_assert_cmpint (errno, ==, EAGAIN);
          g_assert_cmpuint (spins++, <, MAX_SPINS);
          spin (fx);
          continue;
        }
      p += n;
      len -= n;
    }
}

static GByteArray *
masked_frame (guint8 opcode, gboolean fin, const void *payload, gsize len)
{
  static const guint8 mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
  GByteArray *out = g_byte_array_new ();
  guint8 head[14];
  gsize hlen = 2;

  head[0] = (fin ? 0x80 : 0) | opcode;
  if (len < 126)
    head[1] = 0x80 | len;
  else if (len < 65536)
    {
      head[1] = 0x80 | 126;
      head[2] = len >> 8;
      head[3] = len;
      hlen = 4;
    }
  else
    {
      head[1] = 0x80 | 127;
      for (int i = 0; i < 8; i++)
        head[2 + i] = (guint64) len >> (56 - 8 * i);
      hlen = 10;
    }
  memcpy (head + hlen, mask, 4);
  hlen += 4;
  g_byte_array_append (out, head, hlen);
  for (gsize i = 0; i < len; i++)
    {
      guint8 b = ((const guint8 *) payload)[i] ^ mask[i % 4];
      g_byte_array_append (out, &b, 1);
    }
  return out;
}

static void
send_frame (Fixture *fx, guint8 opcode, gboolean fin, const void *payload, gsize len)
{
  g_autoptr(GByteArray) frame = masked_frame (opcode, fin, payload, len);

  write_all (fx, fx->ws, frame->data, frame->len);
}

#define SEND_BINARY(fx, lit) send_frame (fx, 0x2, TRUE, lit, sizeof (lit) - 1)

static void
expect_binary (Fixture *fx, const void *want, gsize len)
{
  g_autoptr(Frame) f = next_frame (fx);

  g_assert_cmpuint (f->opcode, ==, 0x2);
  g_assert_cmpmem (f->payload->data, f->payload->len, want, len);
}

#define EXPECT_BINARY(fx, lit) expect_binary (fx, lit, sizeof (lit) - 1)

/* Reads exactly @len bytes the gateway sent to the VNC server. */
static void
expect_vnc (Fixture *fx, const void *want, gsize len)
{
  g_autofree guint8 *got = g_malloc (len + 1);
  gsize have = 0;

  for (guint i = 0; have < len; i++)
    {
      ssize_t n = read (fx->vnc, got + have, len - have);
      g_assert_cmpuint (i, <, MAX_SPINS);
      if (n > 0)
        have += n;
      else
        spin (fx);
    }
  g_assert_cmpmem (got, len, want, len);
}

#define EXPECT_VNC(fx, lit) expect_vnc (fx, lit, sizeof (lit) - 1)
#define VNC_WRITE(fx, lit) write_all (fx, (fx)->vnc, lit, sizeof (lit) - 1)

static guint16
close_code (Frame *f)
{
  g_assert_cmpuint (f->opcode, ==, 0x8);
  g_assert_cmpuint (f->payload->len, >=, 2);
  return f->payload->data[0] << 8 | f->payload->data[1];
}

static void
wait_closed (Fixture *fx)
{
  for (guint i = 0; fx->closed_calls == 0; i++)
    {
      g_assert_cmpuint (i, <, MAX_SPINS);
      pull_ws (fx);
      spin (fx);
    }
  g_assert_cmpuint (fx->closed_calls, ==, 1);
  g_assert_true (kd_gateway_session_is_closed (fx->session));
}

/* Both handshakes: VNC server offers None, browser speaks 3.8. */
static void
handshake (Fixture *fx)
{
  KdGatewayCounters c;

  EXPECT_BINARY (fx, "RFB 003.008\n");
  SEND_BINARY (fx, "RFB 003.008\n");
  EXPECT_BINARY (fx, "\x01\x01");
  VNC_WRITE (fx, "RFB 003.008\n");
  EXPECT_VNC (fx, "RFB 003.008\n");
  VNC_WRITE (fx, "\x01\x01");
  EXPECT_VNC (fx, "\x01");
  SEND_BINARY (fx, "\x01");
  VNC_WRITE (fx, "\x00\x00\x00\x00");
  EXPECT_BINARY (fx, "\x00\x00\x00\x00");
  kd_gateway_session_get_counters (fx->session, &c);
  g_assert_true (c.passthrough);
}

static void
test_pump_both_ways (void)
{
  Fixture fx;
  KdGatewayCounters c;

  fixture_setup (&fx, NULL, NULL);
  handshake (&fx);

  SEND_BINARY (&fx, "\x01");                      /* ClientInit: shared */
  EXPECT_VNC (&fx, "\x01");
  VNC_WRITE (&fx, "SERVERINIT-and-a-framebuffer");
  EXPECT_BINARY (&fx, "SERVERINIT-and-a-framebuffer");

  /* a fragmented message with a ping in the middle */
  send_frame (&fx, 0x2, FALSE, "key", 3);
  send_frame (&fx, 0x9, TRUE, "are you there", 13);
  send_frame (&fx, 0x0, TRUE, "event", 5);
  EXPECT_VNC (&fx, "keyevent");
  {
    g_autoptr(Frame) pong = next_frame (&fx);
    g_assert_cmpuint (pong->opcode, ==, 0xA);
    g_assert_cmpmem (pong->payload->data, pong->payload->len, "are you there", 13);
  }

  kd_gateway_session_get_counters (fx.session, &c);
  g_assert_cmpuint (c.vnc_bytes_out, ==, 12 + 1 + 1 + 8);
  g_assert_cmpuint (c.vnc_bytes_in, ==, 12 + 2 + 4 + 28);

  /* the browser closes: the gateway answers and ends */
  send_frame (&fx, 0x8, TRUE, "\x03\xe8" "bye", 5);
  {
    g_autoptr(Frame) f = next_frame (&fx);
    g_assert_cmpuint (close_code (f), ==, 1000);
  }
  wait_closed (&fx);
  g_assert_nonnull (strstr (fx.closed_reason, "browser closed the console (code 1000)"));
  /* the VNC socket was closed too */
  {
    guint8 b;
    g_assert_cmpint (read (fx.vnc, &b, 1), ==, 0);
  }
  fixture_teardown (&fx);
}

static void
test_vnc_auth_through_session (void)
{
  Fixture fx;
  static const guint8 challenge[16] = "0123456789abcdef";
  guint8 want[16];

  fixture_setup (&fx, NULL, "pass");
  EXPECT_BINARY (&fx, "RFB 003.008\n");
  /* the browser is through first and waits for the desktop */
  SEND_BINARY (&fx, "RFB 003.008\n");
  EXPECT_BINARY (&fx, "\x01\x01");
  SEND_BINARY (&fx, "\x01");
  VNC_WRITE (&fx, "RFB 003.008\n" "\x01\x02");
  EXPECT_VNC (&fx, "RFB 003.008\n" "\x02");
  write_all (&fx, fx.vnc, challenge, 16);
  kd_gateway_rfb_vnc_auth_response ("pass", challenge, want);
  expect_vnc (&fx, want, 16);
  /* refused, with a reason */
  VNC_WRITE (&fx, "\x00\x00\x00\x01" "\x00\x00\x00\x06" "denied");
  {
    g_autoptr(Frame) result = next_frame (&fx);
    g_autoptr(Frame) close = NULL;
    g_assert_cmpuint (result->opcode, ==, 0x2);
    g_assert_cmpmem (result->payload->data, 4, "\x00\x00\x00\x01", 4);   /* SecurityResult failed */
    close = next_frame (&fx);
    g_assert_cmpuint (close_code (close), ==, 1011);
  }
  send_frame (&fx, 0x8, TRUE, "\x03\xe8", 2);
  wait_closed (&fx);
  g_assert_nonnull (strstr (fx.closed_reason, "'denied'"));
  fixture_teardown (&fx);
}

/* The browser stops reading: the gateway stops reading from VNC, its
 * queue stays under the limit, and the VNC server's writes block. */
static void
test_backpressure_to_browser (void)
{
  Fixture fx;
  KdGatewayLimits limits;
  KdGatewayCounters c;
  g_autofree guint8 *chunk = g_malloc0 (16384);
  guint64 written = 0, written_before = 0, in_before = 0;

  kd_gateway_limits_init_default (&limits);
  limits.max_queued_browser_bytes = 64 * 1024;
  limits.read_budget_bytes = 16 * 1024;
  fixture_setup (&fx, &limits, NULL);
  handshake (&fx);
  kd_gateway_session_get_counters (fx.session, &c);
  written = c.vnc_bytes_in;   /* count the handshake's bytes in */

  for (guint i = 0; i < 400; i++)
    {
      ssize_t n;
      while ((n = write (fx.vnc, chunk, 16384)) > 0)
        written += n;
      spin (&fx);
      kd_gateway_session_get_counters (fx.session, &c);
      g_assert_cmpuint (c.queued_browser, <=, limits.max_queued_browser_bytes);
      if (i == 300)
        {
          written_before = written;
          in_before = c.vnc_bytes_in;
        }
    }
  kd_gateway_session_get_counters (fx.session, &c);
  g_test_message ("written by VNC %" G_GUINT64_FORMAT ", read by gateway %" G_GUINT64_FORMAT
                  ", queued %" G_GSIZE_FORMAT ", most queued %" G_GSIZE_FORMAT,
                  written, c.vnc_bytes_in, c.queued_browser, c.max_queued_browser);
  /* stalled: in the last 100 iterations nothing moved */
  g_assert_cmpuint (written, ==, written_before);
  g_assert_cmpuint (c.vnc_bytes_in, ==, in_before);
  g_assert_cmpuint (c.max_queued_browser, <=, limits.max_queued_browser_bytes);
  g_assert_cmpuint (c.queued_browser, >, 0);
  g_assert_cmpuint (written, >, c.vnc_bytes_in);    /* the rest waits in the kernel, not in us */

  /* the browser reads again: bytes flow again */
  for (guint i = 0; i < MAX_SPINS; i++)
    {
      pull_ws (&fx);
      g_byte_array_set_size (fx.ws_in, 0);
      spin (&fx);
      kd_gateway_session_get_counters (fx.session, &c);
      if (c.vnc_bytes_in == written)
        break;
    }
  g_assert_cmpuint (c.vnc_bytes_in, ==, written);
  fixture_teardown (&fx);
}

static void
test_oversized_message (void)
{
  Fixture fx;
  KdGatewayLimits limits;
  g_autofree guint8 *big = g_malloc0 (2000);

  kd_gateway_limits_init_default (&limits);
  limits.max_message_bytes = 1024;
  fixture_setup (&fx, &limits, NULL);
  handshake (&fx);
  send_frame (&fx, 0x2, TRUE, big, 2000);
  {
    g_autoptr(Frame) f = next_frame (&fx);
    g_assert_cmpuint (close_code (f), ==, 1009);
  }
  wait_closed (&fx);
  g_assert_cmpstr (fx.closed_reason, ==, "the browser sent a message over the limit of 1024 bytes");
  fixture_teardown (&fx);
}

/* The same limit holds for a message split in frames each under it. */
static void
test_oversized_fragmented (void)
{
  Fixture fx;
  KdGatewayLimits limits;
  g_autofree guint8 *part = g_malloc0 (600);

  kd_gateway_limits_init_default (&limits);
  limits.max_message_bytes = 1024;
  fixture_setup (&fx, &limits, NULL);
  handshake (&fx);
  send_frame (&fx, 0x2, FALSE, part, 600);
  send_frame (&fx, 0x0, TRUE, part, 600);
  {
    g_autoptr(Frame) f = next_frame (&fx);
    g_assert_cmpuint (close_code (f), ==, 1009);
  }
  /* failing the connection: the gateway does not wait for an answer */
  wait_closed (&fx);
  g_assert_nonnull (strstr (fx.closed_reason, "over the limit of 1024 bytes"));
  fixture_teardown (&fx);
}

static gboolean
count_idle (gpointer data)
{
  (*(guint *) data)++;
  return G_SOURCE_CONTINUE;
}

/* A browser flooding input: each wake-up reads at most the budget, and
 * another source on the same loop keeps running. */
static void
test_input_flood_bounded (void)
{
  Fixture fx;
  KdGatewayLimits limits;
  KdGatewayCounters before, after;
  g_autofree guint8 *payload = g_malloc0 (32768);
  g_autoptr(GByteArray) frame = NULL;
  g_autoptr(GSource) idle = g_idle_source_new ();
  guint idle_runs = 0, wakeups_with_input = 0;
  guint64 sent = 0, drained = 0;
  gsize frame_off = 0;
  guint8 sink[65536];

  kd_gateway_limits_init_default (&limits);
  limits.read_budget_bytes = 4096;
  fixture_setup (&fx, &limits, NULL);
  handshake (&fx);

  g_source_set_priority (idle, G_PRIORITY_DEFAULT);
  g_source_set_callback (idle, count_idle, &idle_runs, NULL);
  g_source_attach (idle, fx.context);

  frame = masked_frame (0x2, TRUE, payload, 32768);
  for (guint i = 0; i < 300; i++)
    {
      ssize_t n;
      /* keep the browser->gateway socket full: an endless stream of
       * frames, written without iterating the loop */
      while ((n = write (fx.ws, frame->data + frame_off, frame->len - frame_off)) > 0)
        {
          sent += n;
          frame_off = (frame_off + n) % frame->len;
        }
      kd_gateway_session_get_counters (fx.session, &before);
      spin (&fx);
      kd_gateway_session_get_counters (fx.session, &after);
      g_assert_cmpuint (after.ws_bytes_in - before.ws_bytes_in, <=, limits.read_budget_bytes);
      if (after.ws_bytes_in > before.ws_bytes_in)
        wakeups_with_input++;
      /* the VNC server reads everything */
      while ((n = read (fx.vnc, sink, sizeof sink)) > 0)
        drained += n;
    }
  g_test_message ("sent %" G_GUINT64_FORMAT ", gateway read %" G_GUINT64_FORMAT
                  " in %u wake-ups, VNC got %" G_GUINT64_FORMAT ", idle ran %u times",
                  sent, after.ws_bytes_in, wakeups_with_input, drained, idle_runs);
  g_assert_cmpuint (wakeups_with_input, >, 100);
  g_assert_cmpuint (sent, >, after.ws_bytes_in + 4 * limits.read_budget_bytes);   /* input was waiting */
  g_assert_cmpuint (idle_runs, >, 100);     /* the loop was not starved */
  g_assert_cmpuint (after.max_queued_vnc, <=, limits.max_queued_vnc_bytes + 4096);
  g_source_destroy (idle);
  fixture_teardown (&fx);
}

/* The desktop stops reading: the gateway stops reading the browser and
 * holds at most max_queued_vnc_bytes (+ one 4 KiB wslay read). */
static void
test_backpressure_to_vnc (void)
{
  Fixture fx;
  KdGatewayLimits limits;
  KdGatewayCounters c;
  g_autofree guint8 *payload = g_malloc0 (16384);
  g_autoptr(GByteArray) frame = masked_frame (0x2, TRUE, payload, 16384);
  gsize frame_off = 0;
  guint64 in_at_300 = 0;

  kd_gateway_limits_init_default (&limits);
  limits.max_queued_vnc_bytes = 32 * 1024;
  fixture_setup (&fx, &limits, NULL);
  handshake (&fx);
  for (guint i = 0; i < 400; i++)
    {
      ssize_t n;
      while ((n = write (fx.ws, frame->data + frame_off, frame->len - frame_off)) > 0)
        frame_off = (frame_off + n) % frame->len;
      spin (&fx);
      kd_gateway_session_get_counters (fx.session, &c);
      g_assert_cmpuint (c.queued_vnc, <=, limits.max_queued_vnc_bytes + 4096);
      if (i == 300)
        in_at_300 = c.ws_bytes_in;
    }
  g_test_message ("gateway read %" G_GUINT64_FORMAT ", queued toward VNC %" G_GSIZE_FORMAT,
                  c.ws_bytes_in, c.queued_vnc);
  g_assert_cmpuint (c.ws_bytes_in, ==, in_at_300);   /* stalled, not buffering */
  g_assert_cmpuint (c.queued_vnc, >, 0);
  fixture_teardown (&fx);
}

/* The broker takes the console over: a close frame with our reason. */
static void
test_takeover_close (void)
{
  Fixture fx;

  fixture_setup (&fx, NULL, NULL);
  handshake (&fx);
  kd_gateway_session_close (fx.session, "the console was taken over by another connection");
  {
    g_autoptr(Frame) f = next_frame (&fx);
    g_assert_cmpuint (close_code (f), ==, 1000);
    g_assert_cmpmem (f->payload->data + 2, f->payload->len - 2,
                     "the console was taken over by another connection",
                     strlen ("the console was taken over by another connection"));
  }
  g_assert_cmpuint (fx.closed_calls, ==, 0);   /* waits for the browser's answer */
  send_frame (&fx, 0x8, TRUE, "\x03\xe8", 2);
  wait_closed (&fx);
  g_assert_cmpstr (fx.closed_reason, ==, "the console was taken over by another connection");
  fixture_teardown (&fx);
}

/* A console closed (taken over) while its browser reads nothing: the close
 * frame cannot get out behind the queued data; the session still ends
 * after close_timeout_ms, and waits for it without spinning. */
static void
test_close_stalled_browser (void)
{
  Fixture fx;
  KdGatewayLimits limits;
  KdGatewayCounters c;
  g_autofree guint8 *chunk = g_malloc0 (16384);
  guint64 wakeups;
  guint i;

  kd_gateway_limits_init_default (&limits);
  limits.max_queued_browser_bytes = 64 * 1024;
  limits.close_timeout_ms = 100;
  fixture_setup (&fx, &limits, NULL);
  handshake (&fx);
  for (i = 0; i < 300; i++)
    {
      while (write (fx.vnc, chunk, 16384) > 0)
        ;
      spin (&fx);
    }
  kd_gateway_session_get_counters (fx.session, &c);
  g_assert_cmpuint (c.queued_browser, >, 0);    /* the browser side is full */

  kd_gateway_session_close (fx.session, "the console was taken over by another connection");
  wakeups = c.wakeups;
  for (i = 0; fx.closed_calls == 0; i++)
    {
      g_assert_cmpuint (i, <, 200);
      g_main_context_iteration (fx.context, TRUE);   /* blocks until the timer */
    }
  kd_gateway_session_get_counters (fx.session, &c);
  g_test_message ("wake-ups while closing: %" G_GUINT64_FORMAT, c.wakeups - wakeups);
  g_assert_cmpuint (c.wakeups - wakeups, <, 20);
  g_assert_cmpstr (fx.closed_reason, ==, "the console was taken over by another connection");
  fixture_teardown (&fx);
}

/* The desktop goes away: what it sent still reaches the browser, then a close. */
static void
test_vnc_eof (void)
{
  Fixture fx;

  fixture_setup (&fx, NULL, NULL);
  handshake (&fx);
  VNC_WRITE (&fx, "last words");
  shutdown (fx.vnc, SHUT_RDWR);
  EXPECT_BINARY (&fx, "last words");
  {
    g_autoptr(Frame) f = next_frame (&fx);
    g_assert_cmpuint (close_code (f), ==, 1000);
  }
  send_frame (&fx, 0x8, TRUE, "\x03\xe8", 2);
  wait_closed (&fx);
  g_assert_nonnull (strstr (fx.closed_reason, "VNC server closed the connection"));
  fixture_teardown (&fx);
}

/* A browser that vanishes without a FIN (half-open) is detected by the
 * idle timeout; it is pinged first. Timeouts are small, not slept on. */
static void
test_idle_timeout (void)
{
  Fixture fx;
  KdGatewayLimits limits;
  gboolean pinged = FALSE;

  kd_gateway_limits_init_default (&limits);
  limits.ping_interval_ms = 20;
  limits.idle_timeout_ms = 60;
  fixture_setup (&fx, &limits, NULL);
  handshake (&fx);
  for (guint i = 0; fx.closed_calls == 0; i++)
    {
      Frame *f;
      g_assert_cmpuint (i, <, 1000);
      g_main_context_iteration (fx.context, TRUE);   /* blocks until the timer */
      pull_ws (&fx);
      while ((f = parse_frame (&fx)) != NULL)
        {
          pinged |= f->opcode == 0x9;
          frame_free (f);
        }
    }
  g_assert_true (pinged);
  g_assert_nonnull (strstr (fx.closed_reason, "sent nothing for 60 ms"));
  fixture_teardown (&fx);
}

static void
test_text_refused (void)
{
  Fixture fx;

  fixture_setup (&fx, NULL, NULL);
  handshake (&fx);
  send_frame (&fx, 0x1, TRUE, "hello", 5);
  {
    g_autoptr(Frame) f = next_frame (&fx);
    g_assert_cmpuint (close_code (f), ==, 1003);
  }
  wait_closed (&fx);
  g_assert_nonnull (strstr (fx.closed_reason, "binary WebSocket messages only"));
  fixture_teardown (&fx);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  signal (SIGPIPE, SIG_IGN);   /* a test writing to a closed peer fails, it is not killed */
  g_test_add_func ("/gateway/session/pump-both-ways", test_pump_both_ways);
  g_test_add_func ("/gateway/session/vnc-auth-refused", test_vnc_auth_through_session);
  g_test_add_func ("/gateway/session/backpressure-to-browser", test_backpressure_to_browser);
  g_test_add_func ("/gateway/session/oversized-message-1009", test_oversized_message);
  g_test_add_func ("/gateway/session/oversized-fragmented-1009", test_oversized_fragmented);
  g_test_add_func ("/gateway/session/input-flood-bounded", test_input_flood_bounded);
  g_test_add_func ("/gateway/session/backpressure-to-vnc", test_backpressure_to_vnc);
  g_test_add_func ("/gateway/session/takeover-close", test_takeover_close);
  g_test_add_func ("/gateway/session/close-stalled-browser", test_close_stalled_browser);
  g_test_add_func ("/gateway/session/vnc-eof", test_vnc_eof);
  g_test_add_func ("/gateway/session/idle-timeout", test_idle_timeout);
  g_test_add_func ("/gateway/session/text-refused", test_text_refused);
  return g_test_run ();
}
