/*
 * kd-api-stream.c: GET /api/v1/events/stream, the live event stream
 * (Server-Sent Events) the dashboard listens to.
 *
 * The broker calls kd_api_stream_on_event() on the main loop after every
 * stored event; each open stream that may see it (same authorization and
 * filters as GET /events) gets the formatted record appended to its own
 * queue, and its connection is resumed if it was waiting. The content
 * reader hands MHD what is queued; with nothing queued it suspends the
 * connection instead of returning 0 (which would spin the main loop in
 * external-select mode). A GLib timer queues a keepalive comment and
 * re-checks the stream's token.
 *
 * Memory is bounded: a client that leaves more than
 * KD_API_STREAM_QUEUE_MAX_EVENTS records or KD_API_STREAM_QUEUE_MAX_BYTES
 * unread is disconnected, its queue freed at once. A replay (?since= or
 * Last-Event-ID) sends at most KD_API_STREAM_REPLAY_MAX stored events and
 * says so with a "gap" event when older ones were left out.
 *
 * This file must not block: no libvirt, only small reads of the store.
 */
#include "kd-api-priv.h"

#include "common/kd-json.h"
#include "common/kd-time.h"
#include "store/kd-store.h"

#include <string.h>
#include <sys/socket.h>

/* Limits with their units. */
#define KD_API_STREAM_QUEUE_MAX_EVENTS  512           /* records per client */
#define KD_API_STREAM_QUEUE_MAX_BYTES   (1024 * 1024) /* bytes per client */
#define KD_API_STREAM_REPLAY_MAX        256           /* stored events replayed */
#define KD_API_STREAM_BLOCK_SIZE        4096          /* bytes per reader call */
#define KD_API_STREAM_KEEPALIVE_SEC     15
#define KD_API_STREAM_RETRY_MS          3000          /* client reconnect delay */
#define KD_API_STREAM_SNDBUF            (64 * 1024)   /* kernel send buffer, bytes */

struct _KdApiStreams {
  KdApiServer *server;
  GQueue       clients;          /* KdApiStreamClient* */
  guint        keepalive_id;
  guint        keepalive_sec;
};

typedef struct {
  KdApiStreams          *streams;   /* NULL once the server stopped */
  GList                  link;      /* in streams->clients */
  struct MHD_Connection *conn;
  char                  *client;    /* address, for logs */
  char                  *user;
  char                  *token_hash;
  gboolean               is_admin;
  /* filters, as GET /events */
  char                  *object_type;
  char                  *object_name;
  char                  *pool;
  char                  *filter_user;
  /* what waits to be sent */
  GQueue                 chunks;    /* GBytes* */
  gsize                  head_offset;
  gsize                  queued_bytes;
  gboolean               suspended;
  gboolean               overflow;  /* disconnect at the next read */
  gboolean               ended;     /* end the stream once the queue is sent */
} KdApiStreamClient;

static void
kd_api_stream_client_clear_queue (KdApiStreamClient *c)
{
  g_queue_clear_full (&c->chunks, (GDestroyNotify) g_bytes_unref);
  c->head_offset = 0;
  c->queued_bytes = 0;
}

/* MHD's free callback: the response is gone, so is the client. */
static void
kd_api_stream_client_free (void *cls)
{
  KdApiStreamClient *c = cls;

  g_debug ("event stream of '%s' from %s closed", c->user, c->client);
  if (c->streams)
    g_queue_unlink (&c->streams->clients, &c->link);
  kd_api_stream_client_clear_queue (c);
  g_free (c->client);
  g_free (c->user);
  g_free (c->token_hash);
  g_free (c->object_type);
  g_free (c->object_name);
  g_free (c->pool);
  g_free (c->filter_user);
  g_free (c);
}

/* Lets MHD call the reader again if it was waiting for data. */
static void
kd_api_stream_client_wake (KdApiStreamClient *c)
{
  if (!c->suspended || c->streams == NULL)
    return;
  c->suspended = FALSE;
  MHD_resume_connection (c->conn);
  kd_api_server_kick (c->streams->server);
}

/* A client that does not read is blocked in a write: MHD would not call
 * the reader again until its connection times out. Shutting the socket
 * down (MHD keeps and closes the descriptor) makes MHD see the error and
 * close the connection now. */
static void
kd_api_stream_client_hang_up (KdApiStreamClient *c)
{
  const union MHD_ConnectionInfo *ci =
    MHD_get_connection_info (c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);

  if (ci != NULL && ci->connect_fd >= 0)
    shutdown (ci->connect_fd, SHUT_RDWR);
  if (c->streams)
    kd_api_server_kick (c->streams->server);
}

static void
kd_api_stream_client_push (KdApiStreamClient *c, GBytes *chunk)
{
  gsize len = g_bytes_get_size (chunk);

  if (c->overflow || c->ended)
    return;
  if (c->chunks.length >= KD_API_STREAM_QUEUE_MAX_EVENTS ||
      c->queued_bytes + len > KD_API_STREAM_QUEUE_MAX_BYTES)
    {
      g_info ("event stream of '%s' from %s disconnected: the client left %u records (%"
              G_GSIZE_FORMAT " bytes) unread", c->user, c->client, c->chunks.length,
              c->queued_bytes);
      c->overflow = TRUE;
      kd_api_stream_client_clear_queue (c);
      if (c->suspended)
        kd_api_stream_client_wake (c);   /* the reader ends it */
      else
        kd_api_stream_client_hang_up (c);
      return;
    }
  g_queue_push_tail (&c->chunks, g_bytes_ref (chunk));
  c->queued_bytes += len;
  kd_api_stream_client_wake (c);
}

static ssize_t
kd_api_stream_read (void *cls, uint64_t pos, char *buf, size_t max)
{
  KdApiStreamClient *c = cls;
  size_t n = 0;

  if (c->overflow)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  while (n < max && !g_queue_is_empty (&c->chunks))
    {
      GBytes *head = g_queue_peek_head (&c->chunks);
      gsize size = 0;
      const guint8 *data = g_bytes_get_data (head, &size);
      size_t take = MIN (max - n, size - c->head_offset);

      memcpy (buf + n, data + c->head_offset, take);
      n += take;
      c->head_offset += take;
      c->queued_bytes -= take;
      if (c->head_offset == size)
        {
          g_bytes_unref (g_queue_pop_head (&c->chunks));
          c->head_offset = 0;
        }
    }
  if (n > 0)
    return (ssize_t) n;
  if (c->ended || c->streams == NULL)
    return MHD_CONTENT_READER_END_OF_STREAM;
  /* Nothing to send: wait for the next event or keepalive (returning 0
   * without suspending would make MHD ask again at once, forever). */
  c->suspended = TRUE;
  MHD_suspend_connection (c->conn);
  return 0;
}

/* Same rules as GET /events (kd_store_event_query). */
static gboolean
kd_api_stream_client_wants (KdApiStreamClient *c, const KdEventRow *ev)
{
  if (!c->is_admin && g_strcmp0 (ev->user, c->user) != 0)
    return FALSE;
  if (c->object_type && g_strcmp0 (ev->object_type, c->object_type) != 0)
    return FALSE;
  if (c->object_name && g_strcmp0 (ev->object_name, c->object_name) != 0)
    return FALSE;
  if (c->pool && g_strcmp0 (ev->pool, c->pool) != 0)
    return FALSE;
  if (c->filter_user && g_strcmp0 (ev->user, c->filter_user) != 0 &&
      g_strcmp0 (ev->actor, c->filter_user) != 0)
    return FALSE;
  return TRUE;
}

/* "id: 7\nevent: desktop\ndata: {…}\n\n": the data line is the event as
 * GET /events shows it, on one line (JSON escapes newlines). */
static GBytes *
kd_api_stream_format (const KdEventRow *ev)
{
  g_autoptr(JsonNode) node = kd_api_json_event ((KdEventRow *) ev);
  g_autofree char *json = kd_json_to_string (node);
  g_autofree char *type = g_strdup (ev->object_type ? ev->object_type : "event");
  GString *s;

  /* A field value must not end the line early. */
  g_strcanon (type, G_CSET_a_2_z G_CSET_A_2_Z G_CSET_DIGITS "-_", '_');
  s = g_string_sized_new (strlen (json) + 64);
  g_string_append_printf (s, "id: %" G_GINT64_FORMAT "\nevent: %s\ndata: %s\n\n", ev->id, type, json);
  return g_string_free_to_bytes (s);
}

static void
kd_api_stream_on_event (KdBroker *broker, const KdEventRow *ev, gpointer data)
{
  KdApiStreams *st = data;
  g_autoptr(GBytes) chunk = NULL;
  GList *l, *next;

  for (l = st->clients.head; l; l = next)
    {
      KdApiStreamClient *c = l->data;
      next = l->next;
      if (!kd_api_stream_client_wants (c, ev))
        continue;
      if (chunk == NULL)
        chunk = kd_api_stream_format (ev);
      kd_api_stream_client_push (c, chunk);
    }
}

static gboolean
kd_api_stream_keepalive_cb (gpointer data)
{
  KdApiStreams *st = data;
  KdStore *store = kd_broker_get_store (st->server->broker);
  g_autoptr(GBytes) ping = g_bytes_new_static (": keepalive\n\n", strlen (": keepalive\n\n"));
  gint64 now = kd_time_now ();

  for (GList *l = st->clients.head; l; l = l->next)
    {
      KdApiStreamClient *c = l->data;
      g_autoptr(KdTokenRow) tok = NULL;

      if (c->overflow || c->ended)
        continue;
      /* A stream lives no longer than its session. */
      tok = kd_store_token_get_by_hash (store, c->token_hash, NULL);
      if (tok == NULL || tok->expires_at <= now)
        {
          g_info ("event stream of '%s' from %s ended: its session %s", c->user, c->client,
                  tok ? "expired" : "was closed");
          c->ended = TRUE;
          kd_api_stream_client_wake (c);
          continue;
        }
      /* Data still waiting says enough; a client that reads nothing must
       * not collect keepalives. */
      if (g_queue_is_empty (&c->chunks))
        kd_api_stream_client_push (c, ping);
    }
  return G_SOURCE_CONTINUE;
}

/* Replays stored events after @since, oldest first: the newest of them
 * that fit in KD_API_STREAM_REPLAY_MAX records and half the queue's byte
 * bound (so live events still fit), after a "gap" event naming the first
 * id sent when older ones were left out. */
static gboolean
kd_api_stream_replay (KdApiRequest *req, KdApiStreamClient *c, gint64 since, GError **error)
{
  KdStore *store = kd_broker_get_store (req->server->broker);
  g_autoptr(GPtrArray) rows = NULL;
  g_autoptr(GPtrArray) chunks = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  KdEventFilter f = {
    .object_type = c->object_type,
    .object_name = c->object_name,
    .pool = c->pool,
    .user = c->filter_user,
    .desktop_user = c->is_admin ? NULL : c->user,
    .since_id = since,
    .limit = KD_API_STREAM_REPLAY_MAX + 1,
  };
  gsize bytes = 0;
  guint n = 0;

  rows = kd_store_event_query (store, &f, error);
  if (rows == NULL)
    return FALSE;
  /* The store answers newest first. */
  for (; n < rows->len && n < KD_API_STREAM_REPLAY_MAX; n++)
    {
      GBytes *chunk = kd_api_stream_format (rows->pdata[n]);
      if (bytes + g_bytes_get_size (chunk) > KD_API_STREAM_QUEUE_MAX_BYTES / 2)
        {
          g_bytes_unref (chunk);
          break;
        }
      bytes += g_bytes_get_size (chunk);
      g_ptr_array_add (chunks, chunk);
    }
  if (n < rows->len)
    {
      const KdEventRow *first = n > 0 ? rows->pdata[n - 1] : NULL;
      g_autofree char *text = g_strdup_printf ("event: gap\ndata: {\"since\":%" G_GINT64_FORMAT
                                               ",\"first_id\":%" G_GINT64_FORMAT "}\n\n",
                                               since, first ? first->id : (gint64) 0);
      g_autoptr(GBytes) gap = g_bytes_new (text, strlen (text));
      kd_api_stream_client_push (c, gap);
    }
  for (guint i = chunks->len; i-- > 0;)
    kd_api_stream_client_push (c, chunks->pdata[i]);
  return TRUE;
}

/* Reads an event id from a query parameter or header; answers 400 if bad. */
static gboolean
kd_api_stream_parse_id (KdApiRequest *req, const char *what, const char *text, gint64 *out)
{
  gint64 n;

  if (text == NULL)
    return TRUE;
  if (!g_ascii_string_to_signed (text, 10, 0, G_MAXINT64, &n, NULL))
    {
      kd_api_respond_errorf (req, 400, "invalid", "%s '%.40s' is not an event id (a number of 0 or more)",
                             what, text);
      return FALSE;
    }
  *out = n;
  return TRUE;
}

/**
 * kd_api_events_stream:
 * @req: a complete, authenticated request for /api/v1/events/stream
 *
 * Answers with an endless text/event-stream: stored events after
 * `Last-Event-ID` (or `?since=`) first, then every new event the caller
 * may see, filtered like GET /events.
 */
void
kd_api_events_stream (KdApiRequest *req)
{
  KdApiStreams *st = req->server->streams;
  g_autoptr(GError) error = NULL;
  KdApiStreamClient *c;
  struct MHD_Response *resp;
  const char *last_id = MHD_lookup_connection_value (req->conn, MHD_HEADER_KIND, "Last-Event-ID");
  const char *since_text = kd_api_request_query (req, "since");
  gint64 since = -1;

  if (!g_str_equal (req->method, "GET"))
    {
      kd_api_respond_errorf (req, 405, "invalid", "%s is not allowed on '%s'", req->method, req->path);
      return;
    }
  if (st == NULL)
    {
      kd_api_respond_errorf (req, 503, "unavailable", "the event stream is not running");
      return;
    }
  /* A reconnecting browser sends the last id it saw with the original
   * URL: the header wins over ?since=. */
  if (last_id != NULL && *last_id != '\0')
    {
      if (!kd_api_stream_parse_id (req, "Last-Event-ID", last_id, &since))
        return;
    }
  else if (!kd_api_stream_parse_id (req, "query parameter 'since'", since_text, &since))
    return;

  c = g_new0 (KdApiStreamClient, 1);
  c->link.data = c;
  c->conn = req->conn;
  c->client = g_strdup (req->client);
  c->user = g_strdup (req->user);
  c->token_hash = g_strdup (req->token_hash);
  c->is_admin = req->is_admin;
  c->object_type = g_strdup (kd_api_request_query (req, "object_type"));
  c->object_name = g_strdup (kd_api_request_query (req, "object_name"));
  c->pool = g_strdup (kd_api_request_query (req, "pool"));
  c->filter_user = g_strdup (kd_api_request_query (req, "user"));
  if (kd_api_request_query (req, "desktop"))
    {
      g_free (c->object_type);
      g_free (c->object_name);
      c->object_type = g_strdup ("desktop");
      c->object_name = g_strdup (kd_api_request_query (req, "desktop"));
    }

  {
    g_autofree char *retry = g_strdup_printf ("retry: %d\n\n", KD_API_STREAM_RETRY_MS);
    g_autoptr(GBytes) chunk = g_bytes_new (retry, strlen (retry));
    kd_api_stream_client_push (c, chunk);
  }
  if (since >= 0 && !kd_api_stream_replay (req, c, since, &error))
    {
      kd_api_stream_client_free (c);
      kd_api_respond_error (req, error);
      return;
    }

  resp = MHD_create_response_from_callback (MHD_SIZE_UNKNOWN, KD_API_STREAM_BLOCK_SIZE,
                                            kd_api_stream_read, c, kd_api_stream_client_free);
  if (resp == NULL)
    {
      kd_api_stream_client_free (c);
      kd_api_respond_errorf (req, 500, "failed", "cannot create the event stream response");
      return;
    }
  MHD_add_response_header (resp, "Content-Type", "text/event-stream; charset=utf-8");
  MHD_add_response_header (resp, "Cache-Control", "no-store");
  MHD_add_response_header (resp, "X-Accel-Buffering", "no");
  MHD_add_response_header (resp, "X-Content-Type-Options", "nosniff");
  /* Without a fixed size the kernel grows a slow reader's send buffer to
   * megabytes (tcp_wmem) before our own bound is reached. */
  {
    const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info (req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int size = KD_API_STREAM_SNDBUF;
    if (ci != NULL && ci->connect_fd >= 0)
      setsockopt (ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  c->streams = st;
  g_queue_push_tail_link (&st->clients, &c->link);
  g_debug ("event stream of '%s' from %s opened (replay after %" G_GINT64_FORMAT ")",
           c->user, c->client, since);
  /* Not suspended: kd_api_access() queues it when we return. */
  if (req->response)
    MHD_destroy_response (req->response);
  req->response = resp;
  req->status = MHD_HTTP_OK;
}

/**
 * kd_api_stream_init:
 * @server: the API server being built
 *
 * Starts listening to the broker's events and the keepalive timer. The
 * keepalive interval is the stream_keepalive setting.
 */
void
kd_api_stream_init (KdApiServer *server)
{
  KdApiStreams *st = g_new0 (KdApiStreams, 1);
  guint64 sec = (guint64) server->config->stream_keepalive;

  st->server = server;
  st->keepalive_sec = (guint) sec;
  g_queue_init (&st->clients);
  st->keepalive_id = g_timeout_add_seconds (st->keepalive_sec, kd_api_stream_keepalive_cb, st);
  server->streams = st;
  kd_broker_set_event_listener (server->broker, kd_api_stream_on_event, st);
}

/**
 * kd_api_stream_fini:
 * @server: the API server being freed, before MHD_stop_daemon()
 *
 * Stops listening, ends every stream and resumes the waiting ones (MHD
 * must not be stopped with suspended connections). The clients are freed
 * by MHD as it closes their connections.
 */
void
kd_api_stream_fini (KdApiServer *server)
{
  KdApiStreams *st = server->streams;
  GList *l;

  if (st == NULL)
    return;
  kd_broker_set_event_listener (server->broker, NULL, NULL);
  if (st->keepalive_id)
    g_source_remove (st->keepalive_id);
  while ((l = g_queue_pop_head_link (&st->clients)) != NULL)
    {
      KdApiStreamClient *c = l->data;
      c->ended = TRUE;
      if (c->suspended)
        {
          c->suspended = FALSE;
          MHD_resume_connection (c->conn);
        }
      c->streams = NULL;
    }
  g_free (st);
  server->streams = NULL;
}
