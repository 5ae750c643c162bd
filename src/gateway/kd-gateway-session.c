/*
 * kd-gateway-session.c: one browser console. Owns two non-blocking
 * sockets: the browser's WebSocket (after the HTTP 101 answer) and the
 * desktop's RFB stream. First both RFB security handshakes run (the
 * browser's inside WebSocket binary messages, see kd-gateway-rfb.c), then
 * bytes are pumped: VNC -> one binary message per read, WebSocket payload
 * -> VNC.
 *
 * Everything runs on the thread-default GMainContext at creation, in one
 * GSource watching both fds with a ready time for the timers. It must never
 * let one console starve the loop or grow without bound:
 *   - each wake-up reads at most read_budget_bytes from each side;
 *   - toward the browser at most max_queued_browser_bytes are queued: the
 *     VNC fd is not read while that is full (a stalled browser stalls QEMU,
 *     not our memory);
 *   - toward VNC at most max_queued_vnc_bytes (+ one 4 KiB wslay read):
 *     the WebSocket is not read while that is full;
 *   - an inbound message over max_message_bytes closes with 1009.
 * A browser silent for ping_interval_ms is pinged (browsers answer pings by
 * themselves); silent for idle_timeout_ms, it is gone (half-open) and the
 * session ends. Framing is wslay's; no extension is ever negotiated.
 * Library code: no logging above debug; the reason goes to @closed.
 */
#include "gateway/kd-gateway-priv.h"

#include <errno.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#define HANDSHAKE_READ_BYTES 4096   /* per read from VNC while handshaking */
#define VNC_READ_CHUNK_BYTES (256 * 1024) /* one WebSocket message at most */
#define WS_READ_CHUNK_BYTES  (64 * 1024)  /* one recv() from the browser */
#define WS_CLOSE_REASON_MAX 123     /* RFC 6455: control payload 125 - code */

struct _KdGatewaySession {
  int                    ws_fd;
  int                    vnc_fd;
  KdGatewayLimits        limits;
  GSource               *source;
  gpointer               ws_tag;
  gpointer               vnc_tag;
  GIOCondition           ws_events;     /* what the source polls now, per fd */
  GIOCondition           vnc_events;
  gint64                 ready_time;    /* what the source's ready time is now */
  wslay_event_context_ptr ws;
  KdGatewayRfb          *rfb;          /* NULL once both handshakes are done */
  GByteArray            *to_vnc;
  gsize                  to_vnc_off;
  gsize                  vnc_buf_size;  /* of one read from VNC */
  KdGatewayCounters      counters;

  gint64                 now;
  gint64                 started;
  gint64                 last_browser;  /* last byte from the browser */
  gboolean               ping_sent;     /* since last_browser */
  gsize                  ws_budget;     /* left in this wake-up */
  gboolean               ws_drained;    /* a short read in this wake-up: the socket is empty */
  guint8                *ws_in;         /* read from the browser socket, not yet given to wslay */
  gsize                  ws_in_size;
  gsize                  ws_in_pos;
  gsize                  ws_in_len;
  gboolean               frame_ctrl;    /* the frame being received is a control frame */
  guint64                msg_bytes;     /* of the data message being received */
  gboolean               discard;       /* drop inbound payload (failing or closing) */

  gboolean               vnc_eof;       /* the VNC side is finished (closed, failed, refused) */
  guint16                deferred_code; /* close once the queued messages are out */
  gboolean               closing;       /* we queued a close frame */
  gint64                 closing_since;
  gboolean               ws_fatal;      /* the WebSocket socket is unusable */
  gboolean               finished;
  char                  *reason;        /* the first reason recorded */

  KdGatewayClosedFunc    closed;
  gpointer               user_data;
};

typedef struct {
  GSource           parent;
  KdGatewaySession *session;
} SessionSource;

/**
 * kd_gateway_limits_init_default:
 * @limits: (out): filled with the KD_GATEWAY_* defaults
 */
void
kd_gateway_limits_init_default (KdGatewayLimits *limits)
{
  limits->max_message_bytes = KD_GATEWAY_MAX_MESSAGE_BYTES;
  limits->read_budget_bytes = KD_GATEWAY_READ_BUDGET_BYTES;
  limits->max_queued_browser_bytes = KD_GATEWAY_MAX_QUEUED_BROWSER_BYTES;
  limits->max_queued_vnc_bytes = KD_GATEWAY_MAX_QUEUED_VNC_BYTES;
  limits->handshake_timeout_ms = KD_GATEWAY_HANDSHAKE_TIMEOUT_MS;
  limits->ping_interval_ms = KD_GATEWAY_PING_INTERVAL_MS;
  limits->idle_timeout_ms = KD_GATEWAY_IDLE_TIMEOUT_MS;
  limits->close_timeout_ms = KD_GATEWAY_CLOSE_TIMEOUT_MS;
}

static void
set_reason (KdGatewaySession *self, const char *reason)
{
  if (self->reason == NULL)
    self->reason = g_strdup (reason);
}

static gsize
queued_vnc (KdGatewaySession *self)
{
  return self->to_vnc->len - self->to_vnc_off;
}

static gsize
queued_browser (KdGatewaySession *self)
{
  return wslay_event_get_queued_msg_length (self->ws);
}

static void
note_queues (KdGatewaySession *self)
{
  self->counters.max_queued_browser = MAX (self->counters.max_queued_browser, queued_browser (self));
  self->counters.max_queued_vnc = MAX (self->counters.max_queued_vnc, queued_vnc (self));
}

/* Queues a close frame (once) and stops taking browser payload. */
static void
begin_close (KdGatewaySession *self, guint16 code, const char *reason)
{
  gsize len;

  set_reason (self, reason);
  self->discard = TRUE;
  if (self->closing || !wslay_event_get_write_enabled (self->ws))
    return;
  self->closing = TRUE;
  self->closing_since = self->now;
  len = MIN (strlen (reason), WS_CLOSE_REASON_MAX);
  /* do not cut a UTF-8 sequence in half */
  while (len > 0 && len < strlen (reason) && ((guchar) reason[len] & 0xC0) == 0x80)
    len--;
  (void) wslay_event_queue_close (self->ws, code, (const guint8 *) reason, len);
}

/* Closes after what is queued for the browser has gone out: wslay sends
 * control frames ahead of queued messages. */
static void
close_after_drain (KdGatewaySession *self, guint16 code, const char *reason)
{
  set_reason (self, reason);
  self->discard = TRUE;
  if (self->deferred_code == 0)
    self->deferred_code = code;
}

static void
maybe_deferred_close (KdGatewaySession *self)
{
  if (self->deferred_code != 0 && !self->closing && wslay_event_get_queued_msg_count (self->ws) == 0)
    begin_close (self, self->deferred_code, self->reason);
}

/* wslay copies the message: @data is the caller's again on return. */
static void
queue_data_to_browser (KdGatewaySession *self, const guint8 *data, gsize len)
{
  struct wslay_event_msg msg = { WSLAY_BINARY_FRAME, data, len };

  (void) wslay_event_queue_msg (self->ws, &msg);   /* fails only once a close is queued */
  note_queues (self);
}

static void
queue_to_browser (KdGatewaySession *self, GBytes *bytes)
{
  gsize len;
  const guint8 *data;

  if (bytes == NULL)
    return;
  data = g_bytes_get_data (bytes, &len);
  queue_data_to_browser (self, data, len);
  g_bytes_unref (bytes);
}

static void
append_to_vnc (KdGatewaySession *self, const guint8 *data, gsize len)
{
  if (self->to_vnc_off > 0 && self->to_vnc_off == self->to_vnc->len)
    {
      g_byte_array_set_size (self->to_vnc, 0);
      self->to_vnc_off = 0;
    }
  g_byte_array_append (self->to_vnc, data, len);
  note_queues (self);
}

/* Moves the handshake's output to the sockets' queues; ends it when done. */
static void
pump_handshake (KdGatewaySession *self)
{
  g_autoptr(GBytes) to_srv = NULL;

  if (self->rfb == NULL)
    return;
  to_srv = kd_gateway_rfb_take_to_server (self->rfb);
  if (to_srv != NULL)
    append_to_vnc (self, g_bytes_get_data (to_srv, NULL), g_bytes_get_size (to_srv));
  queue_to_browser (self, kd_gateway_rfb_take_to_client (self->rfb));
  if (kd_gateway_rfb_is_done (self->rfb))
    {
      g_clear_pointer (&self->rfb, kd_gateway_rfb_free);
      self->counters.passthrough = TRUE;
    }
}

/* ---- wslay callbacks ---- */

static gsize
ws_in_pending (KdGatewaySession *self)
{
  return self->ws_in_len - self->ws_in_pos;
}

/* Hands wslay what was read and not yet taken. */
static gsize
take_ws_in (KdGatewaySession *self, uint8_t *buf, gsize len)
{
  gsize n = MIN (len, ws_in_pending (self));

  memcpy (buf, self->ws_in + self->ws_in_pos, n);
  self->ws_in_pos += n;
  return n;
}

/* wslay asks for at most 4 KiB at a time (its frame buffer): the socket is
 * read in one recv() of up to the wake-up's budget instead, and wslay is
 * served from that. Bytes read but not taken stay in ws_in while the queue
 * toward VNC is full; they count as read (the budget, the idle timer). */
static ssize_t
ws_recv_cb (wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user_data)
{
  KdGatewaySession *self = user_data;
  ssize_t n;
  gsize want;

  if (queued_vnc (self) >= self->limits.max_queued_vnc_bytes)
    {
      wslay_event_set_error (ctx, WSLAY_ERR_WOULDBLOCK);
      return -1;
    }
  if (ws_in_pending (self) > 0)
    return take_ws_in (self, buf, len);
  if (self->ws_budget == 0 || self->ws_drained)
    {
      wslay_event_set_error (ctx, WSLAY_ERR_WOULDBLOCK);
      return -1;
    }
  want = MIN (self->ws_in_size, self->ws_budget);
  do
    n = recv (self->ws_fd, self->ws_in, want, 0);
  while (n < 0 && errno == EINTR);

  if (n > 0)
    {
      self->ws_drained = (gsize) n < want;
      self->ws_budget -= n;
      self->ws_in_pos = 0;
      self->ws_in_len = n;
      self->counters.ws_bytes_in += n;
      self->last_browser = self->now;
      self->ping_sent = FALSE;
      return take_ws_in (self, buf, len);
    }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    {
      wslay_event_set_error (ctx, WSLAY_ERR_WOULDBLOCK);
      return -1;
    }
  if (n == 0)
    set_reason (self, "the browser closed the connection without a WebSocket close");
  else
    {
      g_autofree char *reason = g_strdup_printf ("reading from the browser failed: %s", g_strerror (errno));
      set_reason (self, reason);
    }
  self->ws_fatal = TRUE;
  wslay_event_set_error (ctx, WSLAY_ERR_CALLBACK_FAILURE);
  return -1;
}

static ssize_t
ws_send_cb (wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user_data)
{
  KdGatewaySession *self = user_data;
  ssize_t n;
  int sflags = MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0);

  do
    n = send (self->ws_fd, data, len, sflags);
  while (n < 0 && errno == EINTR);

  if (n >= 0)
    {
      self->counters.ws_bytes_out += n;
      return n;
    }
  if (errno == EAGAIN || errno == EWOULDBLOCK)
    {
      wslay_event_set_error (ctx, WSLAY_ERR_WOULDBLOCK);
      return -1;
    }
  {
    g_autofree char *reason = g_strdup_printf ("writing to the browser failed: %s", g_strerror (errno));
    set_reason (self, reason);
  }
  self->ws_fatal = TRUE;
  wslay_event_set_error (ctx, WSLAY_ERR_CALLBACK_FAILURE);
  return -1;
}

static void
ws_frame_start_cb (wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *arg, void *user_data)
{
  KdGatewaySession *self = user_data;

  self->frame_ctrl = (arg->opcode & 0x8) != 0;
  if (self->frame_ctrl || self->discard)
    return;
  if (arg->opcode == WSLAY_TEXT_FRAME)
    {
      begin_close (self, WSLAY_CODE_UNSUPPORTED_DATA, "the console takes binary WebSocket messages only");
      wslay_event_shutdown_read (ctx);
      return;
    }
  if (arg->opcode != WSLAY_CONTINUATION_FRAME)
    self->msg_bytes = 0;
  self->msg_bytes += arg->payload_length;
  if (self->msg_bytes > self->limits.max_message_bytes)
    {
      g_autofree char *reason = g_strdup_printf ("the browser sent a message over the limit of %" G_GSIZE_FORMAT " bytes",
                                                 self->limits.max_message_bytes);
      begin_close (self, WSLAY_CODE_MESSAGE_TOO_BIG, reason);
      wslay_event_shutdown_read (ctx);
    }
}

static void
ws_frame_chunk_cb (wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user_data)
{
  KdGatewaySession *self = user_data;
  g_autoptr(GError) error = NULL;

  if (self->frame_ctrl || self->discard || arg->data_length == 0)
    return;
  if (self->rfb == NULL)
    {
      append_to_vnc (self, arg->data, arg->data_length);
      return;
    }
  if (!kd_gateway_rfb_feed_client (self->rfb, arg->data, arg->data_length, &error))
    {
      queue_to_browser (self, kd_gateway_rfb_take_to_client (self->rfb));
      close_after_drain (self, WSLAY_CODE_POLICY_VIOLATION, error->message);
      return;
    }
  pump_handshake (self);
}

/* ---- the two sides ---- */

/* @new_wakeup: a new budget (else: only what is left of this wake-up's). */
static void
read_ws (KdGatewaySession *self, gboolean new_wakeup)
{
  int r;

  if (self->ws_fatal || !wslay_event_get_read_enabled (self->ws))
    return;
  if (new_wakeup)
    {
      self->ws_budget = self->limits.read_budget_bytes;
      self->ws_drained = FALSE;
    }
  r = wslay_event_recv (self->ws);
  if (r != 0)
    {
      self->ws_fatal = TRUE;
      if (r == WSLAY_ERR_NOMEM)
        set_reason (self, "out of memory receiving from the browser");
      set_reason (self, "receiving from the browser failed");
    }
  note_queues (self);
}

static void
vnc_closed_or_failed (KdGatewaySession *self, ssize_t n)
{
  g_autofree char *reason = NULL;

  self->vnc_eof = TRUE;
  if (n == 0)
    reason = g_strdup (self->rfb ? "the desktop's VNC server closed the connection during the handshake"
                                 : "the desktop's VNC server closed the connection");
  else
    reason = g_strdup_printf ("reading from the desktop's VNC server failed: %s", g_strerror (errno));
  set_reason (self, reason);
  close_after_drain (self, self->rfb ? WSLAY_CODE_INTERNAL_SERVER_ERROR : WSLAY_CODE_NORMAL_CLOSURE, reason);
}

/* One buffer per thread for reads from VNC: a read is queued (wslay copies
 * it) or fed to the handshake before the next read, so the consoles of a
 * main context share it, and an idle console keeps no buffer of its own. */
static GPrivate vnc_read_buf = G_PRIVATE_INIT (g_free);

static guint8 *
vnc_read_buffer (void)
{
  guint8 *buf = g_private_get (&vnc_read_buf);

  if (buf == NULL)
    {
      buf = g_malloc (VNC_READ_CHUNK_BYTES);
      g_private_set (&vnc_read_buf, buf);
    }
  return buf;
}

static void
read_vnc (KdGatewaySession *self)
{
  guint8 *buf = vnc_read_buffer ();
  gsize budget = self->limits.read_budget_bytes;

  while (budget > 0 && !self->vnc_eof && !self->closing && self->deferred_code == 0)
    {
      gsize want;
      ssize_t n;

      if (self->rfb != NULL)
        want = MIN (budget, HANDSHAKE_READ_BYTES);
      else
        {
          gsize queued = queued_browser (self);
          if (queued >= self->limits.max_queued_browser_bytes)
            break;
          want = MIN (budget, self->limits.max_queued_browser_bytes - queued);
        }
      want = MIN (want, self->vnc_buf_size);

      do
        n = recv (self->vnc_fd, buf, want, 0);
      while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (n <= 0)
        {
          vnc_closed_or_failed (self, n);
          break;
        }
      budget -= n;
      self->counters.vnc_bytes_in += n;

      if (self->rfb != NULL)
        {
          g_autoptr(GError) error = NULL;
          if (!kd_gateway_rfb_feed_server (self->rfb, buf, n, &error))
            {
              /* the browser may be told why, in RFB words, before the close */
              queue_to_browser (self, kd_gateway_rfb_take_to_client (self->rfb));
              self->vnc_eof = TRUE;
              close_after_drain (self, WSLAY_CODE_INTERNAL_SERVER_ERROR, error->message);
              break;
            }
          pump_handshake (self);
        }
      else
        queue_data_to_browser (self, buf, n);
      /* A short read emptied the socket: poll says when there is more,
       * without another recv() that would only say EAGAIN. */
      if ((gsize) n < want)
        break;
    }
}

static void
flush_vnc (KdGatewaySession *self)
{
  while (queued_vnc (self) > 0 && !self->vnc_eof)
    {
      ssize_t n;

      do
        n = send (self->vnc_fd, self->to_vnc->data + self->to_vnc_off, queued_vnc (self), MSG_NOSIGNAL);
      while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (n < 0)
        {
          g_autofree char *reason = g_strdup_printf ("writing to the desktop's VNC server failed: %s", g_strerror (errno));
          self->vnc_eof = TRUE;
          set_reason (self, reason);
          break;
        }
      self->to_vnc_off += n;
      self->counters.vnc_bytes_out += n;
    }
  if (self->to_vnc_off == self->to_vnc->len)
    {
      g_byte_array_set_size (self->to_vnc, 0);
      self->to_vnc_off = 0;
    }
  else if (self->to_vnc_off > self->to_vnc->len / 2)
    {
      g_byte_array_remove_range (self->to_vnc, 0, self->to_vnc_off);
      self->to_vnc_off = 0;
    }
}

static void
flush_ws (KdGatewaySession *self)
{
  if (self->ws_fatal || !wslay_event_want_write (self->ws))
    return;
  if (wslay_event_send (self->ws) != 0)
    {
      self->ws_fatal = TRUE;
      set_reason (self, "sending to the browser failed");
    }
}

/* ---- life cycle ---- */

static void
close_fds (KdGatewaySession *self)
{
  if (self->source != NULL)
    {
      g_source_destroy (self->source);
      g_clear_pointer (&self->source, g_source_unref);
    }
  if (self->ws_fd >= 0)
    close (self->ws_fd);
  if (self->vnc_fd >= 0)
    close (self->vnc_fd);
  self->ws_fd = self->vnc_fd = -1;
}

static void
finish (KdGatewaySession *self)
{
  g_autofree char *reason = NULL;

  if (self->finished)
    return;
  self->finished = TRUE;
  if (self->reason == NULL && wslay_event_get_close_received (self->ws))
    self->reason = g_strdup_printf ("the browser closed the console (code %u)",
                                    wslay_event_get_status_code_received (self->ws));
  if (self->reason == NULL && wslay_event_get_close_sent (self->ws)
      && wslay_event_get_status_code_sent (self->ws) == WSLAY_CODE_MESSAGE_TOO_BIG)
    self->reason = g_strdup_printf ("the browser sent a message over the limit of %" G_GSIZE_FORMAT " bytes",
                                    self->limits.max_message_bytes);
  if (self->reason == NULL && wslay_event_get_close_sent (self->ws))
    self->reason = g_strdup_printf ("the gateway closed the console: the browser broke the WebSocket protocol (code %u)",
                                    wslay_event_get_status_code_sent (self->ws));
  set_reason (self, "the console ended");
  reason = g_strdup (self->reason);
  close_fds (self);
  if (self->closed != NULL)
    self->closed (self, reason, self->user_data);   /* may free self */
}

static gboolean
should_finish (KdGatewaySession *self)
{
  if (self->ws_fatal)
    return TRUE;
  /* A browser that does not read never gets our close frame out (it waits
   * behind the queued data): the close handshake gets close_timeout_ms,
   * sent or not. */
  if (self->closing && self->now - self->closing_since >= (gint64) self->limits.close_timeout_ms * 1000)
    return TRUE;
  if (wslay_event_get_close_sent (self->ws))
    {
      /* our close went out: done when the browser answered, or when it
       * cannot (wslay stopped reading after a protocol error) */
      if (wslay_event_get_close_received (self->ws) || !wslay_event_get_read_enabled (self->ws))
        return TRUE;
      if (self->now - self->closing_since >= (gint64) self->limits.close_timeout_ms * 1000)
        return TRUE;
    }
  return FALSE;
}

static gint64
ms_after (gint64 t, guint ms)
{
  return t + (gint64) ms * 1000;
}

static void
check_timers (KdGatewaySession *self)
{
  gint64 now = self->now;

  if (self->closing)
    return;
  if (self->rfb != NULL && now >= ms_after (self->started, self->limits.handshake_timeout_ms))
    {
      g_autofree char *reason = g_strdup_printf ("the RFB handshake did not finish within %u ms",
                                                 self->limits.handshake_timeout_ms);
      begin_close (self, WSLAY_CODE_POLICY_VIOLATION, reason);
      return;
    }
  if (now >= ms_after (self->last_browser, self->limits.idle_timeout_ms))
    {
      g_autofree char *reason = g_strdup_printf ("the browser sent nothing for %u ms (connection lost)",
                                                 self->limits.idle_timeout_ms);
      set_reason (self, reason);
      self->ws_fatal = TRUE;   /* a half-open peer will not answer a close */
      return;
    }
  if (!self->ping_sent && now >= ms_after (self->last_browser, self->limits.ping_interval_ms))
    {
      struct wslay_event_msg ping = { WSLAY_PING, (const guint8 *) "kd", 2 };
      (void) wslay_event_queue_msg (self->ws, &ping);
      self->ping_sent = TRUE;
    }
}

static void
set_ready_time (KdGatewaySession *self, gint64 ready)
{
  if (ready != self->ready_time)
    g_source_set_ready_time (self->source, ready);
  self->ready_time = ready;
}

static void
update_watch (KdGatewaySession *self)
{
  GIOCondition ws_events = 0, vnc_events = 0;
  gint64 ready;

  if (!self->ws_fatal && wslay_event_get_read_enabled (self->ws)
      && queued_vnc (self) < self->limits.max_queued_vnc_bytes)
    ws_events |= G_IO_IN;
  if (!self->ws_fatal && wslay_event_want_write (self->ws))
    ws_events |= G_IO_OUT;
  if (!self->vnc_eof && !self->closing && self->deferred_code == 0
      && (self->rfb != NULL || queued_browser (self) < self->limits.max_queued_browser_bytes))
    vnc_events |= G_IO_IN;
  if (!self->vnc_eof && queued_vnc (self) > 0)
    vnc_events |= G_IO_OUT;
  /* Each change wakes the main context up (an eventfd write and one more
   * loop iteration): only real changes are made. */
  if (ws_events != self->ws_events)
    {
      g_source_modify_unix_fd (self->source, self->ws_tag, ws_events);
      self->ws_events = ws_events;
    }
  if (vnc_events != self->vnc_events)
    {
      g_source_modify_unix_fd (self->source, self->vnc_tag, vnc_events);
      self->vnc_events = vnc_events;
    }

  if (self->closing)
    ready = ms_after (self->closing_since, self->limits.close_timeout_ms);
  else
    {
      ready = ms_after (self->last_browser, self->ping_sent ? self->limits.idle_timeout_ms
                                                            : MIN (self->limits.ping_interval_ms,
                                                                   self->limits.idle_timeout_ms));
      if (self->rfb != NULL)
        ready = MIN (ready, ms_after (self->started, self->limits.handshake_timeout_ms));
    }
  /* The idle deadline moves with every message from the browser; the timer
   * is only moved earlier, or re-armed once it has fired (check_timers()
   * finds nothing due when it fires early). */
  if (self->ready_time < 0 || ready < self->ready_time || self->ready_time <= self->now)
    set_ready_time (self, ready);
}

static gboolean
session_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  KdGatewaySession *self = ((SessionSource *) source)->session;
  GIOCondition ws_rev = g_source_query_unix_fd (source, self->ws_tag);
  GIOCondition vnc_rev = g_source_query_unix_fd (source, self->vnc_tag);

  self->now = g_source_get_time (source);
  self->counters.wakeups++;

  if (ws_rev & (G_IO_IN | G_IO_HUP | G_IO_ERR))
    {
      read_ws (self, TRUE);
      if ((ws_rev & (G_IO_HUP | G_IO_ERR)) && !(ws_rev & G_IO_IN))
        {
          set_reason (self, "the browser's connection was lost");
          self->ws_fatal = TRUE;
        }
    }
  if (vnc_rev & (G_IO_IN | G_IO_HUP | G_IO_ERR))
    {
      read_vnc (self);
      if ((vnc_rev & (G_IO_HUP | G_IO_ERR)) && !(vnc_rev & G_IO_IN) && !self->vnc_eof)
        vnc_closed_or_failed (self, 0);
    }

  flush_vnc (self);
  /* Browser bytes already read wait for room toward VNC: now there may be
   * some (the socket need not be readable again for them). */
  if (ws_in_pending (self) > 0 && queued_vnc (self) < self->limits.max_queued_vnc_bytes)
    {
      read_ws (self, (ws_rev & (G_IO_IN | G_IO_HUP | G_IO_ERR)) == 0);
      flush_vnc (self);
    }
  maybe_deferred_close (self);
  check_timers (self);
  flush_ws (self);
  if (self->deferred_code != 0 && !self->closing)
    {
      maybe_deferred_close (self);
      flush_ws (self);
    }
  note_queues (self);

  if (should_finish (self))
    {
      finish (self);   /* may free self */
      return G_SOURCE_REMOVE;
    }
  update_watch (self);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs session_source_funcs = {
  NULL, NULL, session_dispatch, NULL, NULL, NULL,
};

/**
 * kd_gateway_session_new:
 * @ws_fd: the browser's socket after the HTTP 101 answer (ownership taken)
 * @vnc_fd: a socket connected to the desktop's VNC server (ownership taken)
 * @vnc_password: (nullable): the desktop's VNC password if it needs one
 * @limits: (nullable): limits, or %NULL for the KD_GATEWAY_* defaults
 * @closed: called once when the session ends, with a reason sentence
 * @user_data: for @closed
 *
 * Starts a console on the thread-default main context: both RFB handshakes,
 * then the pump. The fds are made non-blocking.
 *
 * Returns: (transfer full): the session; free it with
 *   kd_gateway_session_free() (from @closed at the latest, or after).
 */
KdGatewaySession *
kd_gateway_session_new (int                    ws_fd,
                        int                    vnc_fd,
                        const char            *vnc_password,
                        const KdGatewayLimits *limits,
                        KdGatewayClosedFunc    closed,
                        gpointer               user_data)
{
  KdGatewaySession *self = g_new0 (KdGatewaySession, 1);
  static const struct wslay_event_callbacks callbacks = {
    ws_recv_cb, ws_send_cb, NULL,
    ws_frame_start_cb, ws_frame_chunk_cb, NULL, NULL,
  };

  self->ws_fd = ws_fd;
  self->vnc_fd = vnc_fd;
  if (limits != NULL)
    self->limits = *limits;
  else
    kd_gateway_limits_init_default (&self->limits);
  self->limits.read_budget_bytes = MAX (self->limits.read_budget_bytes, 1);
  self->closed = closed;
  self->user_data = user_data;
  self->to_vnc = g_byte_array_new ();
  self->vnc_buf_size = MIN (MAX (self->limits.read_budget_bytes, HANDSHAKE_READ_BYTES), VNC_READ_CHUNK_BYTES);
  self->ws_in_size = MIN (MAX (self->limits.read_budget_bytes, HANDSHAKE_READ_BYTES), WS_READ_CHUNK_BYTES);
  self->ws_in = g_malloc (self->ws_in_size);
  self->rfb = kd_gateway_rfb_new (vnc_password);

  (void) g_unix_set_fd_nonblocking (ws_fd, TRUE, NULL);
  (void) g_unix_set_fd_nonblocking (vnc_fd, TRUE, NULL);

  if (wslay_event_context_server_init (&self->ws, &callbacks, self) != 0)
    g_error ("out of memory creating a WebSocket context");
  wslay_event_config_set_no_buffering (self->ws, 1);
  wslay_event_config_set_max_recv_msg_length (self->ws, self->limits.max_message_bytes);

  self->source = g_source_new (&session_source_funcs, sizeof (SessionSource));
  ((SessionSource *) self->source)->session = self;
  g_source_set_static_name (self->source, "kd-gateway-session");
  /* GLib blocks a non-recursive source around its dispatch by taking its
   * fds out of the poll set and putting them back: four eventfd writes and
   * an extra loop iteration per wake-up, measured at 4 writes per 64 KiB
   * read. Nothing here iterates the main context from a dispatch, so the
   * source never actually recurses. */
  g_source_set_can_recurse (self->source, TRUE);
  self->ws_tag = g_source_add_unix_fd (self->source, ws_fd, G_IO_IN);
  self->vnc_tag = g_source_add_unix_fd (self->source, vnc_fd, G_IO_IN);
  self->ws_events = self->vnc_events = G_IO_IN;
  self->ready_time = -1;
  g_source_attach (self->source, g_main_context_get_thread_default ());

  self->now = self->started = self->last_browser = g_source_get_time (self->source);
  pump_handshake (self);   /* our RFB version to the browser */
  update_watch (self);
  return self;
}

/**
 * kd_gateway_session_close:
 * @session: a session
 * @reason: why, e.g. "the console was taken over by another connection";
 *   sent to the browser in the close frame (first 123 bytes)
 *
 * Starts the WebSocket close handshake; @closed follows from the main
 * loop (at the latest after close_timeout_ms). Does nothing once closing.
 */
void
kd_gateway_session_close (KdGatewaySession *session, const char *reason)
{
  g_return_if_fail (session != NULL);

  if (session->finished || session->closing)
    return;
  session->now = g_source_get_time (session->source);
  begin_close (session, WSLAY_CODE_NORMAL_CLOSURE, reason ? reason : "the console was closed");
  update_watch (session);
  set_ready_time (session, 0);   /* dispatch soon: send it */
}

/**
 * kd_gateway_session_get_counters:
 * @session: a session
 * @out: (out): the byte counters and queue sizes now
 */
void
kd_gateway_session_get_counters (KdGatewaySession *session, KdGatewayCounters *out)
{
  g_return_if_fail (session != NULL && out != NULL);

  *out = session->counters;
  out->queued_browser = queued_browser (session);
  out->queued_vnc = queued_vnc (session);
}

gboolean
kd_gateway_session_is_closed (KdGatewaySession *session)
{
  return session->finished;
}

/**
 * kd_gateway_session_free:
 * @session: (nullable): a session
 *
 * Frees the session; if it is still running its sockets are closed
 * without a close handshake and @closed is not called.
 */
void
kd_gateway_session_free (KdGatewaySession *session)
{
  if (session == NULL)
    return;
  close_fds (session);
  wslay_event_context_free (session->ws);
  kd_gateway_rfb_free (session->rfb);
  g_byte_array_unref (session->to_vnc);
  g_free (session->ws_in);
  g_free (session->reason);
  g_free (session);
}
