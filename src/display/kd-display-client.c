/*
 * kd-display-client.c: the org.qemu.Display1 client of kvmdesk-display.
 *
 * Two peer-to-peer D-Bus connections, no bus:
 *   - the one we are given (from virDomainOpenGraphicsFD, or a test's
 *     fake QEMU): QEMU is the server, we authenticate as the client and
 *     call VM, Console, Keyboard and Mouse;
 *   - one we make (a socketpair) and hand to QEMU with
 *     Console.RegisterListener: QEMU is the D-Bus server there too (it
 *     authenticates as server, with a guid of its own), we authenticate
 *     as the client, and we export /org/qemu/Display1/Listener, which
 *     QEMU calls with frames.
 *
 * QEMU replies to RegisterListener and then sets up its end of the
 * listener connection synchronously (handshake, then a proxy reading our
 * properties), blocking its main loop meanwhile: our side authenticates
 * asynchronously, and message processing starts only once the listener
 * objects are exported, so its property read finds them.
 *
 * Shared-memory scanouts (Listener.Unix.Map) are offered through the
 * listener's Interfaces property; QEMU 8.0 and later use them when they
 * can, 7.2 ignores the property. DMABUF scanouts are refused: there is
 * no GPU here.
 *
 * Not here: any remote-display protocol, any policy about what to do
 * when the VM goes away (the caller decides).
 */
#define _GNU_SOURCE 1 /* pread */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gunixfdlist.h>

#include "kd-display-client.h"
#include "kd-qemu-display1.h"

#define KD_DISPLAY_VM_PATH        "/org/qemu/Display1/VM"
#define KD_DISPLAY_LISTENER_PATH  "/org/qemu/Display1/Listener"
#define KD_DISPLAY_MAP_INTERFACE  "org.qemu.Display1.Listener.Unix.Map"
#define KD_DBUS_ERROR_INVALID     "org.freedesktop.DBus.Error.InvalidArgs"
#define KD_DBUS_ERROR_UNSUPPORTED "org.freedesktop.DBus.Error.NotSupported"

typedef struct _KdDisplayListenerGate KdDisplayListenerGate;

struct _KdDisplayClient {
  KdDisplayClientCallbacks callbacks;
  gpointer                 user_data;

  GDBusConnection    *conn;           /* to QEMU, we are the client */
  GDBusConnection    *listener_conn;  /* QEMU calls us; still its server */
  KdDisplay1VM       *vm;
  KdDisplay1Console  *console;
  KdDisplay1Keyboard *keyboard;
  KdDisplay1Mouse    *mouse;
  KdDisplay1Listener *listener;
  KdDisplay1ListenerUnixMap *listener_map;
  char               *console_path;
  gulong              conn_closed_id;
  gulong              listener_closed_id;
  gulong              mouse_notify_id;
  gulong              console_size_ids[2];

  KdDisplayListenerGate *gate;         /* shared with the listener filter */
  guint                  gate_filter_id;
  guint64                unchanged_bytes_folded;  /* into stats.bytes */

  KdDisplayFramebuffer fb;
  gboolean             has_frame;
  KdDisplayCursor      cursor;
  KdDisplayClientStats stats;

  /* The current shared-memory scanout, when QEMU uses one. Read with
   * pread(), never mapped: a peer that shrinks the file under us must get
   * an error, not make us fault (SIGBUS). */
  int      map_fd;
  gsize    map_offset;   /* where the frame starts in the file */
  gsize    map_stride;
  guint32  map_format;

  /* Updates for a size the console has not announced yet (see
   * client_follow_console_size()), applied when it does. */
  GQueue   pending_updates;
  gsize    pending_bytes;

  gboolean closed;
  gboolean mouse_absolute;
};

/* Bytes read from a shared frame per pread() batch. */
#define KD_DISPLAY_MAP_CHUNK_BYTES (1u << 20)
/* Bounds on the updates held back while waiting for a new console size. */
#define KD_DISPLAY_PENDING_UPDATES_MAX       4096
#define KD_DISPLAY_PENDING_UPDATES_MAX_BYTES (64u * 1024u * 1024u)

typedef struct {
  int       x, y, width, height;
  guint     stride;
  guint32   format;
  GVariant *data;
} KdDisplayPendingUpdate;

static void
pending_update_free (KdDisplayPendingUpdate *update)
{
  g_variant_unref (update->data);
  g_free (update);
}

static void
client_drop_pending (KdDisplayClient *client)
{
  g_queue_clear_full (&client->pending_updates, (GDestroyNotify) pending_update_free);
  client->pending_bytes = 0;
}

/* ------------------------------------------------------------------ */
/* The listener gate: unchanged Updates stop in GDBus's worker thread
 *
 * QEMU 7.2 redraws the VGA text cursor cell at every refresh (~32 a
 * second) and sends each as an Update, with NO_REPLY_EXPECTED. Carrying
 * each to the main thread (a wake-up, the skeleton's dispatch, the blit's
 * comparison) was most of kvmdesk-display's CPU with nothing changing.
 * A filter on the listener connection, in the worker thread, drops an
 * Update when it is byte for byte one it passed on before for the same
 * rectangle and that one is known to be in the frame:
 *   - every frame-changing call it passes on (Scanout, Update, Disable,
 *     ScanoutMap, UpdateMap with their exact signatures, which the
 *     skeleton hands to our handlers) counts as in flight until its
 *     handler is done; nothing is dropped while any is in flight;
 *   - a passed-on Update forgets the remembered ones it overlaps, any
 *     other frame-changing call forgets all;
 *   - the main thread bumps the generation whenever the frame changes in
 *     another way (a new size from the console's properties) or an Update
 *     was not applied (refused, held back): remembered ones are then
 *     forgotten.
 * The console's size arrives on the other connection, so its order
 * against listener calls is not defined anyway; an Update dropped just
 * before such a resize is one the frame already held. Calls that expect
 * a reply always go through. */

/* Updates remembered, and the largest one remembered (bytes of data). */
#define KD_DISPLAY_GATE_ENTRIES        8
#define KD_DISPLAY_GATE_MAX_DATA_BYTES (256u * 1024u)

typedef struct {
  int       x, y, width, height;
  guint32   stride, format;
  GVariant *data;          /* NULL: unused */
} KdDisplayGateEntry;

struct _KdDisplayListenerGate {
  gint     ref;            /* atomic */
  gint     in_flight;      /* atomic: frame-changing calls passed on, not done */
  gint     generation;     /* atomic: bumped by the main thread */
  gint     seen_generation;  /* worker thread only, like entries[] */
  guint64  unchanged;      /* atomic adds: Updates dropped */
  guint64  unchanged_bytes;
  GMutex   count_lock;     /* guards the two counts above */
  KdDisplayGateEntry entries[KD_DISPLAY_GATE_ENTRIES];
  guint    next;           /* round robin over entries[] */
};

static void
gate_forget (KdDisplayListenerGate *gate,
             guint                  i)
{
  g_clear_pointer (&gate->entries[i].data, g_variant_unref);
}

static void
gate_forget_all (KdDisplayListenerGate *gate)
{
  guint i;

  for (i = 0; i < KD_DISPLAY_GATE_ENTRIES; i++)
    gate_forget (gate, i);
}

static KdDisplayListenerGate *
gate_new (void)
{
  KdDisplayListenerGate *gate = g_new0 (KdDisplayListenerGate, 1);

  gate->ref = 1;
  g_mutex_init (&gate->count_lock);
  return gate;
}

static KdDisplayListenerGate *
gate_ref (KdDisplayListenerGate *gate)
{
  g_atomic_int_inc (&gate->ref);
  return gate;
}

static void
gate_unref (gpointer data)
{
  KdDisplayListenerGate *gate = data;

  if (!g_atomic_int_dec_and_test (&gate->ref))
    return;
  gate_forget_all (gate);
  g_mutex_clear (&gate->count_lock);
  g_free (gate);
}

/* Main thread: the frame changed other than by a passed-on Update, or an
 * Update was not applied as it came. */
static void
client_gate_invalidate (KdDisplayClient *client)
{
  if (client->gate != NULL)
    g_atomic_int_inc (&client->gate->generation);
}

/* Main thread: a frame-changing call's handler is done. */
static void
client_gate_done (KdDisplayClient *client)
{
  if (client->gate != NULL)
    g_atomic_int_add (&client->gate->in_flight, -1);
}

static gboolean
rects_overlap (const KdDisplayGateEntry *e,
               int x, int y, int width, int height)
{
  return (gint64) e->x < (gint64) x + width && (gint64) x < (gint64) e->x + e->width
         && (gint64) e->y < (gint64) y + height && (gint64) y < (gint64) e->y + e->height;
}

/* Worker thread. An Update: dropped (TRUE) when unchanged, else
 * remembered. */
static gboolean
gate_update (KdDisplayListenerGate *gate,
             GDBusMessage          *message,
             gboolean               may_drop)
{
  g_autoptr(GVariant) data = NULL;
  GVariant *body = g_dbus_message_get_body (message);
  gint32 x, y, width, height;
  guint32 stride, format;
  gsize len = 0, i;
  const guint8 *bytes;
  int gen = g_atomic_int_get (&gate->generation);

  g_variant_get (body, "(iiiiuu@ay)", &x, &y, &width, &height, &stride, &format, &data);
  bytes = g_variant_get_fixed_array (data, &len, 1);
  if (gen != gate->seen_generation)
    {
      gate_forget_all (gate);
      gate->seen_generation = gen;
    }
  for (i = 0; i < KD_DISPLAY_GATE_ENTRIES; i++)
    {
      KdDisplayGateEntry *e = &gate->entries[i];
      gsize elen = 0;
      const guint8 *ebytes;

      if (e->data == NULL || !rects_overlap (e, x, y, width, height))
        continue;
      ebytes = g_variant_get_fixed_array (e->data, &elen, 1);
      if (may_drop && e->x == x && e->y == y && e->width == width && e->height == height
          && e->stride == stride && e->format == format && elen == len
          && memcmp (ebytes, bytes, len) == 0)
        {
          g_mutex_lock (&gate->count_lock);
          gate->unchanged++;
          gate->unchanged_bytes += len;
          g_mutex_unlock (&gate->count_lock);
          return TRUE;
        }
      gate_forget (gate, i);
    }
  if (len <= KD_DISPLAY_GATE_MAX_DATA_BYTES && width > 0 && height > 0)
    {
      KdDisplayGateEntry *e = NULL;

      for (i = 0; i < KD_DISPLAY_GATE_ENTRIES && e == NULL; i++)
        if (gate->entries[i].data == NULL)
          e = &gate->entries[i];
      if (e == NULL)
        {
          e = &gate->entries[gate->next];
          gate->next = (gate->next + 1) % KD_DISPLAY_GATE_ENTRIES;
          g_clear_pointer (&e->data, g_variant_unref);
        }
      e->x = x;
      e->y = y;
      e->width = width;
      e->height = height;
      e->stride = stride;
      e->format = format;
      e->data = g_steal_pointer (&data);
    }
  return FALSE;
}

/* GDBus's worker thread, for every message on the listener connection. */
static GDBusMessage *
gate_filter (GDBusConnection *connection,
             GDBusMessage    *message,
             gboolean         incoming,
             gpointer         user_data)
{
  static const struct { const char *member, *signature; } frame_calls[] = {
    { "Scanout", "uuuuay" }, { "Update", "iiiiuuay" }, { "Disable", "" },
    { "ScanoutMap", "huuuuu" }, { "UpdateMap", "iiii" },
  };
  KdDisplayListenerGate *gate = user_data;
  const char *iface, *member, *signature;
  gboolean update;
  guint i;

  if (!incoming || g_dbus_message_get_message_type (message) != G_DBUS_MESSAGE_TYPE_METHOD_CALL
      || g_strcmp0 (g_dbus_message_get_path (message), KD_DISPLAY_LISTENER_PATH) != 0)
    return message;
  iface = g_dbus_message_get_interface (message);
  member = g_dbus_message_get_member (message);
  signature = g_dbus_message_get_signature (message);
  if (g_strcmp0 (iface, "org.qemu.Display1.Listener") != 0
      && g_strcmp0 (iface, KD_DISPLAY_MAP_INTERFACE) != 0)
    return message;
  for (i = 0; i < G_N_ELEMENTS (frame_calls); i++)
    if (g_strcmp0 (member, frame_calls[i].member) == 0
        && g_strcmp0 (signature, frame_calls[i].signature) == 0
        && (g_str_equal (iface, KD_DISPLAY_MAP_INTERFACE)
            == g_str_has_suffix (frame_calls[i].member, "Map")))
      break;
  if (i == G_N_ELEMENTS (frame_calls))
    return message;   /* not a frame change (or the skeleton refuses it) */
  update = g_str_equal (member, "Update");
  if (update)
    {
      gboolean may_drop = g_atomic_int_get (&gate->in_flight) == 0
                          && (g_dbus_message_get_flags (message)
                              & G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED) != 0;

      if (gate_update (gate, message, may_drop))
        {
          g_object_unref (message);
          return NULL;
        }
    }
  else
    gate_forget_all (gate);
  g_atomic_int_inc (&gate->in_flight);
  return message;
}

/* ------------------------------------------------------------------ */
/* Shared memory */

static void
client_unmap (KdDisplayClient *client)
{
  if (client->map_fd >= 0)
    close (client->map_fd);
  client->map_fd = -1;
}

/* Copies a rectangle of the shared frame into the framebuffer, a chunk of
 * rows at a time. The rectangle must be inside the frame. */
static gboolean
client_blit_from_map (KdDisplayClient *client,
                      int              x,
                      int              y,
                      int              width,
                      int              height,
                      GError         **error)
{
  guint bpp = kd_display_pixman_bytes_per_pixel (client->map_format);
  gsize row_bytes = (gsize) width * bpp;
  gsize rows_per_chunk, row;
  g_autofree guint8 *buf = NULL;

  if (width <= 0 || height <= 0)
    return TRUE;
  rows_per_chunk = MAX (KD_DISPLAY_MAP_CHUNK_BYTES / row_bytes, 1);
  rows_per_chunk = MIN (rows_per_chunk, (gsize) height);
  buf = g_malloc (rows_per_chunk * row_bytes);
  for (row = 0; row < (gsize) height; row += rows_per_chunk)
    {
      gsize n = MIN (rows_per_chunk, (gsize) height - row), i;

      for (i = 0; i < n; i++)
        {
          guint64 off = client->map_offset + (guint64) (y + row + i) * client->map_stride
                        + (guint64) x * bpp;
          ssize_t got = pread (client->map_fd, buf + i * row_bytes, row_bytes, (off_t) off);

          if (got < 0 || (gsize) got != row_bytes)
            {
              g_set_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                           "the shared frame cannot be read at offset %" G_GUINT64_FORMAT
                           " (%s)", off, got < 0 ? g_strerror (errno) : "the file is shorter");
              return FALSE;
            }
        }
      if (!kd_display_framebuffer_blit (&client->fb, x, y + (int) row, width, (int) n,
                                        buf, n * row_bytes, row_bytes, client->map_format, error))
        return FALSE;
    }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Listener: QEMU calls these */

static void
client_emit_damaged (KdDisplayClient *client)
{
  if (client->fb.damage->len > 0 && client->callbacks.damaged != NULL)
    client->callbacks.damaged (client, client->user_data);
}

static gboolean
client_take_scanout (KdDisplayClient *client,
                     guint            width,
                     guint            height,
                     const guint8    *data,
                     gsize            data_len,
                     gsize            stride,
                     guint32          format,
                     GError         **error)
{
  if (!kd_display_check_image (width, height, stride, format, data_len, error))
    return FALSE;
  if (width != client->fb.width || height != client->fb.height || client->fb.pixels == NULL)
    {
      if (!kd_display_framebuffer_resize (&client->fb, width, height, error))
        return FALSE;
      /* Front ends point at fb.pixels: tell them before anything else runs. */
      if (client->callbacks.resized != NULL)
        client->callbacks.resized (client, client->user_data);
    }
  /* Cannot fail: the image was checked against this very size above. */
  if (!kd_display_framebuffer_blit (&client->fb, 0, 0, (int) width, (int) height,
                                    data, data_len, stride, format, error))
    return FALSE;
  client->has_frame = TRUE;
  return TRUE;
}

static void
return_error (GDBusMethodInvocation *invocation,
              GError                *error)
{
  const char *name = error->code == KD_DISPLAY_ERROR_UNSUPPORTED
                     ? KD_DBUS_ERROR_UNSUPPORTED : KD_DBUS_ERROR_INVALID;

  g_dbus_method_invocation_return_dbus_error (invocation, name, error->message);
}

static gboolean
on_scanout (KdDisplay1Listener    *listener,
            GDBusMethodInvocation *invocation,
            guint                  width,
            guint                  height,
            guint                  stride,
            guint                  format,
            GVariant              *data,
            KdDisplayClient       *client)
{
  g_autoptr(GError) error = NULL;
  gsize len = 0;
  const guint8 *bytes = g_variant_get_fixed_array (data, &len, 1);

  g_debug ("Scanout %ux%u stride %u format 0x%08x, %" G_GSIZE_FORMAT " bytes",
           width, height, stride, format, len);
  client_unmap (client);
  client_drop_pending (client);
  if (!client_take_scanout (client, width, height, bytes, len, stride, format, &error))
    {
      g_debug ("Scanout refused: %s", error->message);
      client->stats.refused++;
      client_gate_done (client);
      return_error (invocation, error);
      return TRUE;
    }
  client->stats.scanouts++;
  client->stats.bytes += len;
  client_gate_done (client);
  kd_display1_listener_complete_scanout (listener, invocation);
  client_emit_damaged (client);
  return TRUE;
}

/* QEMU 7.2 sends nothing to listeners when the guest switches to a
 * surface of another size (a new mode): the console's Width/Height
 * properties change, and Updates for the new size follow (a full-size
 * one becomes a Scanout). So the frame follows the console's size; the
 * part both sizes share is kept. Returns TRUE when the size changed. */
static gboolean
client_follow_console_size (KdDisplayClient *client)
{
  g_autoptr(GError) error = NULL;
  g_autofree guint32 *old = NULL;
  guint width, height, old_width, old_height, row;

  if (client->console == NULL)
    return FALSE;
  width = kd_display1_console_get_width (client->console);
  height = kd_display1_console_get_height (client->console);
  if (width == 0 || height == 0 || (width == client->fb.width && height == client->fb.height))
    return FALSE;
  old = g_steal_pointer (&client->fb.pixels);
  old_width = client->fb.width;
  old_height = client->fb.height;
  client->fb.pixels = NULL;
  if (!kd_display_framebuffer_resize (&client->fb, width, height, &error))
    {
      g_debug ("console size not followed: %s", error->message);
      client->fb.pixels = g_steal_pointer (&old);
      return FALSE;
    }
  if (old != NULL)
    for (row = 0; row < MIN (old_height, height); row++)
      memcpy (client->fb.pixels + (gsize) row * width, old + (gsize) row * old_width,
              (gsize) MIN (old_width, width) * 4);
  client_unmap (client);
  client->has_frame = TRUE;
  client_gate_invalidate (client);
  if (client->callbacks.resized != NULL)
    client->callbacks.resized (client, client->user_data);
  return TRUE;
}

static void
client_apply_pending (KdDisplayClient *client)
{
  KdDisplayPendingUpdate *u;

  while ((u = g_queue_pop_head (&client->pending_updates)) != NULL)
    {
      g_autoptr(GError) error = NULL;
      gsize len = 0;
      const guint8 *bytes = g_variant_get_fixed_array (u->data, &len, 1);

      if (!kd_display_framebuffer_blit (&client->fb, u->x, u->y, u->width, u->height,
                                        bytes, len, u->stride, u->format, &error))
        {
          g_debug ("held-back update dropped: %s", error->message);
          client->stats.refused++;
        }
      else
        client->stats.updates++;
      pending_update_free (u);
    }
  client->pending_bytes = 0;
  client_gate_invalidate (client);
}

static void
on_console_size (GObject         *object,
                 GParamSpec      *pspec,
                 KdDisplayClient *client)
{
  if (client->map_fd < 0 && client_follow_console_size (client))
    {
      client_apply_pending (client);
      client_emit_damaged (client);
    }
}

static gboolean
rect_fits (KdDisplayClient *client,
           int x, int y, int width, int height)
{
  return x >= 0 && y >= 0 && width >= 0 && height >= 0
         && (guint64) x + (guint64) width <= client->fb.width
         && (guint64) y + (guint64) height <= client->fb.height;
}

static gboolean
on_update (KdDisplay1Listener    *listener,
           GDBusMethodInvocation *invocation,
           int                    x,
           int                    y,
           int                    width,
           int                    height,
           guint                  stride,
           guint                  format,
           GVariant              *data,
           KdDisplayClient       *client)
{
  g_autoptr(GError) error = NULL;
  gsize len = 0;
  const guint8 *bytes = g_variant_get_fixed_array (data, &len, 1);

  /* Outside the frame: maybe the guest changed mode and the console's
   * new size is on its way (see client_follow_console_size()). */
  if ((!rect_fits (client, x, y, width, height) || !client->has_frame)
      && x >= 0 && y >= 0 && width > 0 && height > 0)
    {
      /* Follow the console's size only when the update fits it: QEMU 7.2
       * was seen reporting a stale size (640x480 while in 720x400 text). */
      if (client->console != NULL
          && (guint64) x + (guint64) width <= kd_display1_console_get_width (client->console)
          && (guint64) y + (guint64) height <= kd_display1_console_get_height (client->console))
        client_follow_console_size (client);
      if ((!rect_fits (client, x, y, width, height) || !client->has_frame)
          && (guint64) x + (guint64) width <= KD_DISPLAY_MAX_WIDTH
          && (guint64) y + (guint64) height <= KD_DISPLAY_MAX_HEIGHT
          && client->pending_updates.length < KD_DISPLAY_PENDING_UPDATES_MAX
          && client->pending_bytes + len <= KD_DISPLAY_PENDING_UPDATES_MAX_BYTES)
        {
          KdDisplayPendingUpdate *u = g_new0 (KdDisplayPendingUpdate, 1);

          u->x = x;
          u->y = y;
          u->width = width;
          u->height = height;
          u->stride = stride;
          u->format = format;
          u->data = g_variant_ref (data);
          g_queue_push_tail (&client->pending_updates, u);
          client->pending_bytes += len;
          client->stats.bytes += len;
          client_gate_invalidate (client);   /* not in the frame yet */
          client_gate_done (client);
          kd_display1_listener_complete_update (listener, invocation);
          return TRUE;
        }
    }
  if (!client->has_frame)
    g_set_error (&error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                 "an update came before any scanout");
  else
    kd_display_framebuffer_blit (&client->fb, x, y, width, height, bytes, len, stride,
                                 format, &error);
  if (error != NULL)
    {
      g_debug ("Update refused: %s", error->message);
      client->stats.refused++;
      client_gate_invalidate (client);
      client_gate_done (client);
      return_error (invocation, error);
      return TRUE;
    }
  client->stats.updates++;
  client->stats.bytes += len;
  client_gate_done (client);
  kd_display1_listener_complete_update (listener, invocation);
  client_emit_damaged (client);
  return TRUE;
}

static gboolean
on_scanout_dmabuf (KdDisplay1Listener    *listener,
                   GDBusMethodInvocation *invocation,
                   GUnixFDList           *fd_list,
                   GVariant              *handle,
                   guint                  width,
                   guint                  height,
                   guint                  stride,
                   guint                  fourcc,
                   guint64                modifier,
                   gboolean               y0_top,
                   KdDisplayClient       *client)
{
  /* The descriptor stays in the message's fd list and is closed with it. */
  client->stats.refused++;
  g_dbus_method_invocation_return_dbus_error (invocation, KD_DBUS_ERROR_UNSUPPORTED,
                                              "DMABUF scanouts are not supported (no GPU)");
  return TRUE;
}

static gboolean
on_update_dmabuf (KdDisplay1Listener    *listener,
                  GDBusMethodInvocation *invocation,
                  int x, int y, int width, int height,
                  KdDisplayClient       *client)
{
  client->stats.refused++;
  g_dbus_method_invocation_return_dbus_error (invocation, KD_DBUS_ERROR_UNSUPPORTED,
                                              "DMABUF scanouts are not supported (no GPU)");
  return TRUE;
}

static gboolean
on_disable (KdDisplay1Listener    *listener,
            GDBusMethodInvocation *invocation,
            KdDisplayClient       *client)
{
  client_unmap (client);
  client_drop_pending (client);
  if (client->fb.pixels != NULL)
    kd_display_framebuffer_fill (&client->fb, 0);
  client_gate_done (client);
  kd_display1_listener_complete_disable (listener, invocation);
  client_emit_damaged (client);
  return TRUE;
}

static gboolean
on_mouse_set (KdDisplay1Listener    *listener,
              GDBusMethodInvocation *invocation,
              int                    x,
              int                    y,
              int                    on,
              KdDisplayClient       *client)
{
  client->cursor.x = x;
  client->cursor.y = y;
  client->cursor.visible = on != 0;
  kd_display1_listener_complete_mouse_set (listener, invocation);
  if (client->callbacks.cursor_changed != NULL)
    client->callbacks.cursor_changed (client, FALSE, client->user_data);
  return TRUE;
}

static gboolean
on_cursor_define (KdDisplay1Listener    *listener,
                  GDBusMethodInvocation *invocation,
                  int                    width,
                  int                    height,
                  int                    hot_x,
                  int                    hot_y,
                  GVariant              *data,
                  KdDisplayClient       *client)
{
  gsize len = 0;
  const guint8 *bytes = g_variant_get_fixed_array (data, &len, 1);
  gsize needed;

  if (width < 0 || height < 0 || (guint) width > KD_DISPLAY_MAX_CURSOR_SIZE
      || (guint) height > KD_DISPLAY_MAX_CURSOR_SIZE)
    {
      client->stats.refused++;
      g_dbus_method_invocation_return_dbus_error (invocation, KD_DBUS_ERROR_INVALID,
                                                  "cursor size is beyond the limit");
      return TRUE;
    }
  needed = (gsize) width * (gsize) height * 4;
  if (len < needed)
    {
      client->stats.refused++;
      g_dbus_method_invocation_return_dbus_error (invocation, KD_DBUS_ERROR_INVALID,
                                                  "cursor data is shorter than its size");
      return TRUE;
    }
  g_free (client->cursor.pixels);
  client->cursor.pixels = needed > 0 ? g_memdup2 (bytes, needed) : NULL;
  client->cursor.width = (guint) width;
  client->cursor.height = (guint) height;
  client->cursor.hot_x = CLAMP (hot_x, 0, MAX (width - 1, 0));
  client->cursor.hot_y = CLAMP (hot_y, 0, MAX (height - 1, 0));
  kd_display1_listener_complete_cursor_define (listener, invocation);
  if (client->callbacks.cursor_changed != NULL)
    client->callbacks.cursor_changed (client, TRUE, client->user_data);
  return TRUE;
}

static gboolean
on_scanout_map (KdDisplay1ListenerUnixMap *map,
                GDBusMethodInvocation     *invocation,
                GUnixFDList               *fd_list,
                GVariant                  *handle,
                guint                      offset,
                guint                      width,
                guint                      height,
                guint                      stride,
                guint                      format,
                KdDisplayClient           *client)
{
  g_autoptr(GError) error = NULL;
  gint32 index = g_variant_get_handle (handle);
  guint bpp = kd_display_pixman_bytes_per_pixel (format);
  struct stat st;
  guint64 frame_len;
  int fd = -1;

  client_unmap (client);
  client_drop_pending (client);
  if (!kd_display_check_image (width, height, stride, format, G_MAXSIZE, &error))
    goto refuse;
  frame_len = width > 0 && height > 0 ? (guint64) (height - 1) * stride + (guint64) width * bpp : 0;
  if (fd_list == NULL || index < 0 || index >= g_unix_fd_list_get_length (fd_list))
    {
      g_set_error (&error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                   "ScanoutMap without a file descriptor");
      goto refuse;
    }
  fd = g_unix_fd_list_get (fd_list, index, &error);
  if (fd < 0)
    goto refuse;
  if (fstat (fd, &st) < 0 || st.st_size < 0
      || (guint64) st.st_size < (guint64) offset + frame_len || frame_len == 0)
    {
      g_set_error (&error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                   "the shared frame (%ux%u, stride %u, offset %u) does not fit its file",
                   width, height, stride, offset);
      goto refuse;
    }
  client->map_fd = fd;
  fd = -1;
  client->map_offset = offset;
  client->map_stride = stride;
  client->map_format = format;
  if (width != client->fb.width || height != client->fb.height || client->fb.pixels == NULL)
    {
      if (!kd_display_framebuffer_resize (&client->fb, width, height, &error))
        goto refuse;
      if (client->callbacks.resized != NULL)
        client->callbacks.resized (client, client->user_data);
    }
  if (!client_blit_from_map (client, 0, 0, (int) width, (int) height, &error))
    goto refuse;
  client->has_frame = TRUE;
  client->stats.map_scanouts++;
  client_gate_done (client);
  kd_display1_listener_unix_map_complete_scanout_map (map, invocation, NULL);
  client_emit_damaged (client);
  return TRUE;

refuse:
  if (fd >= 0)
    close (fd);
  client_unmap (client);
  g_debug ("ScanoutMap refused: %s", error->message);
  client->stats.refused++;
  client_gate_done (client);
  return_error (invocation, error);
  return TRUE;
}

static gboolean
on_update_map (KdDisplay1ListenerUnixMap *map,
               GDBusMethodInvocation     *invocation,
               int                        x,
               int                        y,
               int                        width,
               int                        height,
               KdDisplayClient           *client)
{
  g_autoptr(GError) error = NULL;

  if (client->map_fd < 0)
    g_set_error (&error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                 "UpdateMap without a shared scanout");
  else if (!rect_fits (client, x, y, width, height))
    g_set_error (&error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                 "rectangle %dx%d at %d,%d is outside the %ux%u display",
                 width, height, x, y, client->fb.width, client->fb.height);
  else
    client_blit_from_map (client, x, y, width, height, &error);
  if (error != NULL)
    {
      g_debug ("UpdateMap refused: %s", error->message);
      client->stats.refused++;
      client_gate_done (client);
      return_error (invocation, error);
      return TRUE;
    }
  client->stats.map_updates++;
  client_gate_done (client);
  kd_display1_listener_unix_map_complete_update_map (map, invocation);
  client_emit_damaged (client);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Connection life */

static void
client_close_with (KdDisplayClient *client,
                   const char      *reason)
{
  if (client->closed)
    return;
  client->closed = TRUE;
  if (client->callbacks.closed != NULL)
    client->callbacks.closed (client, reason, client->user_data);
}

static void
on_conn_closed (GDBusConnection *conn,
                gboolean         remote_peer_vanished,
                GError          *error,
                KdDisplayClient *client)
{
  client_close_with (client, "QEMU closed the D-Bus display connection");
}

static void
on_listener_closed (GDBusConnection *conn,
                    gboolean         remote_peer_vanished,
                    GError          *error,
                    KdDisplayClient *client)
{
  client_close_with (client, "QEMU closed the display listener connection");
}

static void
on_mouse_notify (GObject         *object,
                 GParamSpec      *pspec,
                 KdDisplayClient *client)
{
  gboolean absolute = kd_display1_mouse_get_is_absolute (client->mouse);

  if (absolute == client->mouse_absolute)
    return;
  client->mouse_absolute = absolute;
  if (client->callbacks.mouse_mode_changed != NULL)
    client->callbacks.mouse_mode_changed (client, absolute, client->user_data);
}

/* ------------------------------------------------------------------ */
/* Opening: connection -> VM -> console -> keyboard -> mouse -> listener */

typedef struct {
  KdDisplayClient *client;  /* owned until the task returns it */
  int              fd;      /* the peer socket until the connection owns it */
  guint            pending; /* listener connection + RegisterListener */
  gboolean         returned; /* the task has its result */
  gboolean         registered;  /* RegisterListener answered */
  GError          *listener_error; /* the listener connection failed before that */
} OpenData;

static void
open_data_free (OpenData *data)
{
  if (data->client != NULL)
    kd_display_client_free (data->client);
  if (data->fd >= 0)
    close (data->fd);
  g_clear_error (&data->listener_error);
  g_free (data);
}

/* Each step's callback owns one reference to the task; the two parallel
 * steps of open_listener() one each. The first failure is the result. */
static void
open_step_done (GTask *task)
{
  OpenData *data = g_task_get_task_data (task);

  if (--data->pending == 0 && !data->returned)
    {
      data->returned = TRUE;
      g_task_return_pointer (task, g_steal_pointer (&data->client),
                             (GDestroyNotify) kd_display_client_free);
    }
  g_object_unref (task);
}

static void
open_fail (GTask      *task,
           GError     *error,
           const char *what)
{
  OpenData *data = g_task_get_task_data (task);

  if (!data->returned)
    {
      data->returned = TRUE;
      g_prefix_error (&error, "%s: ", what);
      g_task_return_error (task, error);
    }
  else
    g_error_free (error);
  g_object_unref (task);
}

static void
on_registered (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  GTask *task = user_data;
  OpenData *data = g_task_get_task_data (task);
  GError *error = NULL;

  data->registered = TRUE;
  if (!kd_display1_console_call_register_listener_finish (KD_DISPLAY1_CONSOLE (source), NULL,
                                                          result, &error))
    {
      g_dbus_error_strip_remote_error (error);
      open_fail (task, error, "cannot register a display listener with QEMU");
      return;
    }
  if (data->listener_error != NULL)
    {
      open_fail (task, g_steal_pointer (&data->listener_error),
                 "cannot set up the display listener connection");
      return;
    }
  open_step_done (task);
}

static gboolean
export_listener (KdDisplayClient *client,
                 GError         **error)
{
  static const char *const interfaces[] = { KD_DISPLAY_MAP_INTERFACE, NULL };

  client->listener = kd_display1_listener_skeleton_new ();
  kd_display1_listener_set_interfaces (client->listener, interfaces);
  g_signal_connect (client->listener, "handle-scanout", G_CALLBACK (on_scanout), client);
  g_signal_connect (client->listener, "handle-update", G_CALLBACK (on_update), client);
  g_signal_connect (client->listener, "handle-scanout-dmabuf", G_CALLBACK (on_scanout_dmabuf), client);
  g_signal_connect (client->listener, "handle-update-dmabuf", G_CALLBACK (on_update_dmabuf), client);
  g_signal_connect (client->listener, "handle-disable", G_CALLBACK (on_disable), client);
  g_signal_connect (client->listener, "handle-mouse-set", G_CALLBACK (on_mouse_set), client);
  g_signal_connect (client->listener, "handle-cursor-define", G_CALLBACK (on_cursor_define), client);
  client->listener_map = kd_display1_listener_unix_map_skeleton_new ();
  g_signal_connect (client->listener_map, "handle-scanout-map", G_CALLBACK (on_scanout_map), client);
  g_signal_connect (client->listener_map, "handle-update-map", G_CALLBACK (on_update_map), client);

  if (!g_dbus_interface_skeleton_export (G_DBUS_INTERFACE_SKELETON (client->listener),
                                         client->listener_conn, KD_DISPLAY_LISTENER_PATH, error)
      || !g_dbus_interface_skeleton_export (G_DBUS_INTERFACE_SKELETON (client->listener_map),
                                            client->listener_conn, KD_DISPLAY_LISTENER_PATH, error))
    return FALSE;
  return TRUE;
}

static void
on_listener_conn (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  GTask *task = user_data;
  OpenData *data = g_task_get_task_data (task);
  KdDisplayClient *client = data->client;
  GError *error = NULL;

  client->listener_conn = g_dbus_connection_new_finish (result, &error);
  if (client->listener_conn == NULL && !data->registered)
    {
      /* QEMU closes the socket when it refuses the listener: its reply
       * says why, so it is the error to report. */
      data->listener_error = error;
      data->pending--;
      g_object_unref (task);
      return;
    }
  if (client->listener_conn == NULL)
    {
      open_fail (task, error, "cannot set up the display listener connection");
      return;
    }
  g_dbus_connection_set_exit_on_close (client->listener_conn, FALSE);
  client->gate = gate_new ();
  client->gate_filter_id = g_dbus_connection_add_filter (client->listener_conn, gate_filter,
                                                         gate_ref (client->gate), gate_unref);
  client->listener_closed_id = g_signal_connect (client->listener_conn, "closed",
                                                 G_CALLBACK (on_listener_closed), client);
  if (!export_listener (client, &error))
    {
      open_fail (task, error, "cannot export the display listener");
      return;
    }
  g_dbus_connection_start_message_processing (client->listener_conn);
  open_step_done (task);
}

static void
open_listener (GTask *task)
{
  OpenData *data = g_task_get_task_data (task);
  KdDisplayClient *client = data->client;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketConnection) stream = NULL;
  g_autoptr(GUnixFDList) fd_list = NULL;
  GError *error = NULL;
  int pair[2];

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
    {
      g_set_error (&error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_FAILED,
                   "cannot create a socket pair: %s", g_strerror (errno));
      open_fail (task, error, "cannot register a display listener");
      return;
    }
  socket = g_socket_new_from_fd (pair[0], &error);
  if (socket == NULL)
    {
      close (pair[0]);
      close (pair[1]);
      open_fail (task, error, "cannot register a display listener");
      return;
    }
  fd_list = g_unix_fd_list_new_from_array (&pair[1], 1); /* takes pair[1] */
  stream = g_socket_connection_factory_create_connection (socket);
  data->pending = 2;
  g_dbus_connection_new (G_IO_STREAM (stream), NULL,
                         G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT
                         | G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING,
                         NULL, g_task_get_cancellable (task), on_listener_conn, task);
  kd_display1_console_call_register_listener (client->console, g_variant_new_handle (0), fd_list,
                                              g_task_get_cancellable (task), on_registered,
                                              g_object_ref (task));
}

static void
on_mouse (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  GTask *task = user_data;
  OpenData *data = g_task_get_task_data (task);
  KdDisplayClient *client = data->client;
  GError *error = NULL;

  client->mouse = kd_display1_mouse_proxy_new_finish (result, &error);
  if (client->mouse == NULL)
    {
      open_fail (task, error, "cannot reach the console's mouse");
      return;
    }
  client->mouse_absolute = kd_display1_mouse_get_is_absolute (client->mouse);
  client->mouse_notify_id = g_signal_connect (client->mouse, "notify::is-absolute",
                                              G_CALLBACK (on_mouse_notify), client);
  open_listener (task);
}

static void
on_keyboard (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  GTask *task = user_data;
  OpenData *data = g_task_get_task_data (task);
  KdDisplayClient *client = data->client;
  GError *error = NULL;

  client->keyboard = kd_display1_keyboard_proxy_new_finish (result, &error);
  if (client->keyboard == NULL)
    {
      open_fail (task, error, "cannot reach the console's keyboard");
      return;
    }
  kd_display1_mouse_proxy_new (client->conn, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, NULL,
                               client->console_path, g_task_get_cancellable (task),
                               on_mouse, task);
}

static void
on_console (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  GTask *task = user_data;
  OpenData *data = g_task_get_task_data (task);
  KdDisplayClient *client = data->client;
  GError *error = NULL;
  const char *type;

  client->console = kd_display1_console_proxy_new_finish (result, &error);
  if (client->console == NULL)
    {
      open_fail (task, error, "cannot reach the VM's console");
      return;
    }
  client->console_size_ids[0] = g_signal_connect (client->console, "notify::width",
                                                  G_CALLBACK (on_console_size), client);
  client->console_size_ids[1] = g_signal_connect (client->console, "notify::height",
                                                  G_CALLBACK (on_console_size), client);
  type = kd_display1_console_get_type_ (client->console);
  if (type == NULL)
    {
      error = g_error_new (KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                           "console '%s' has no properties", client->console_path);
      open_fail (task, error, "cannot reach the VM's console");
      return;
    }
  kd_display1_keyboard_proxy_new (client->conn, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, NULL,
                                  client->console_path, g_task_get_cancellable (task),
                                  on_keyboard, task);
}

static void
on_vm (GObject      *source,
       GAsyncResult *result,
       gpointer      user_data)
{
  GTask *task = user_data;
  OpenData *data = g_task_get_task_data (task);
  KdDisplayClient *client = data->client;
  GError *error = NULL;
  GVariant *ids;
  guint32 console_id = 0;

  client->vm = kd_display1_vm_proxy_new_finish (result, &error);
  if (client->vm == NULL)
    {
      open_fail (task, error, "cannot reach the VM's display");
      return;
    }
  ids = kd_display1_vm_get_console_ids (client->vm);
  if (ids == NULL || g_variant_n_children (ids) == 0)
    {
      error = g_error_new (KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                           "the VM's display has no console");
      open_fail (task, error, "cannot reach the VM's display");
      return;
    }
  /* The first console is the primary head (Console_0 on every VM seen). */
  g_variant_get_child (ids, 0, "u", &console_id);
  client->console_path = g_strdup_printf ("/org/qemu/Display1/Console_%u", console_id);
  kd_display1_console_proxy_new (client->conn, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, NULL,
                                 client->console_path, g_task_get_cancellable (task),
                                 on_console, task);
}

static void
on_conn (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  GTask *task = user_data;
  OpenData *data = g_task_get_task_data (task);
  KdDisplayClient *client = data->client;
  GError *error = NULL;

  client->conn = g_dbus_connection_new_finish (result, &error);
  if (client->conn == NULL)
    {
      open_fail (task, error, "cannot speak D-Bus with QEMU");
      return;
    }
  g_dbus_connection_set_exit_on_close (client->conn, FALSE);
  client->conn_closed_id = g_signal_connect (client->conn, "closed",
                                             G_CALLBACK (on_conn_closed), client);
  kd_display1_vm_proxy_new (client->conn, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, NULL,
                            KD_DISPLAY_VM_PATH, g_task_get_cancellable (task), on_vm, task);
}

/**
 * kd_display_client_new_async:
 * @fd: a connected socket on which QEMU's D-Bus display waits for a
 *      client (p2p); taken over (closed on failure too)
 * @callbacks: copied; called on the current thread-default main context
 *
 * Authenticates to QEMU, reads the VM and its first console, and
 * registers a listener. Frames may arrive (and callbacks run) before
 * @callback is called.
 */
void
kd_display_client_new_async (int                             fd,
                             const KdDisplayClientCallbacks *callbacks,
                             gpointer                        user_data,
                             GCancellable                   *cancellable,
                             GAsyncReadyCallback             callback,
                             gpointer                        callback_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, callback_data);
  OpenData *data = g_new0 (OpenData, 1);
  KdDisplayClient *client = g_new0 (KdDisplayClient, 1);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketConnection) stream = NULL;
  GError *error = NULL;

  g_task_set_source_tag (task, kd_display_client_new_async);
  if (callbacks != NULL)
    client->callbacks = *callbacks;
  client->user_data = user_data;
  client->map_fd = -1;
  client->cursor.visible = TRUE;   /* until a MouseSet says otherwise */
  kd_display_framebuffer_init (&client->fb);
  data->client = client;
  data->fd = fd;
  g_task_set_task_data (task, data, (GDestroyNotify) open_data_free);

  socket = g_socket_new_from_fd (fd, &error);
  if (socket == NULL)
    {
      open_fail (task, error, "cannot use the display socket");
      return;
    }
  data->fd = -1; /* the socket owns it */
  stream = g_socket_connection_factory_create_connection (socket);
  g_dbus_connection_new (G_IO_STREAM (stream), NULL,
                         G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT,
                         NULL, cancellable, on_conn, task);
}

KdDisplayClient *
kd_display_client_new_finish (GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

void
kd_display_client_free (KdDisplayClient *client)
{
  if (client == NULL)
    return;
  if (client->conn_closed_id != 0)
    g_signal_handler_disconnect (client->conn, client->conn_closed_id);
  if (client->listener_closed_id != 0)
    g_signal_handler_disconnect (client->listener_conn, client->listener_closed_id);
  if (client->console_size_ids[0] != 0)
    g_signal_handler_disconnect (client->console, client->console_size_ids[0]);
  if (client->console_size_ids[1] != 0)
    g_signal_handler_disconnect (client->console, client->console_size_ids[1]);
  if (client->mouse_notify_id != 0)
    g_signal_handler_disconnect (client->mouse, client->mouse_notify_id);
  if (client->listener != NULL)
    {
      g_signal_handlers_disconnect_by_data (client->listener, client);
      g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (client->listener));
      g_object_unref (client->listener);
    }
  if (client->listener_map != NULL)
    {
      g_signal_handlers_disconnect_by_data (client->listener_map, client);
      g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (client->listener_map));
      g_object_unref (client->listener_map);
    }
  if (client->gate_filter_id != 0)
    g_dbus_connection_remove_filter (client->listener_conn, client->gate_filter_id);
  g_clear_pointer (&client->gate, gate_unref);
  if (client->listener_conn != NULL)
    {
      g_dbus_connection_close (client->listener_conn, NULL, NULL, NULL);
      g_object_unref (client->listener_conn);
    }
  g_clear_object (&client->mouse);
  g_clear_object (&client->keyboard);
  g_clear_object (&client->console);
  g_clear_object (&client->vm);
  if (client->conn != NULL)
    {
      g_dbus_connection_close (client->conn, NULL, NULL, NULL);
      g_object_unref (client->conn);
    }
  client_unmap (client);
  client_drop_pending (client);
  kd_display_framebuffer_clear (&client->fb);
  g_free (client->cursor.pixels);
  g_free (client->console_path);
  g_free (client);
}

/* ------------------------------------------------------------------ */
/* Accessors and input */

const char *
kd_display_client_get_vm_name (KdDisplayClient *client)
{
  return kd_display1_vm_get_name (client->vm);
}

const char *
kd_display_client_get_vm_uuid (KdDisplayClient *client)
{
  return kd_display1_vm_get_uuid (client->vm);
}

const char *
kd_display_client_get_console_label (KdDisplayClient *client)
{
  return kd_display1_console_get_label (client->console);
}

const char *
kd_display_client_get_console_type (KdDisplayClient *client)
{
  return kd_display1_console_get_type_ (client->console);
}

void
kd_display_client_get_console_size (KdDisplayClient *client,
                                    guint           *width,
                                    guint           *height)
{
  *width = kd_display1_console_get_width (client->console);
  *height = kd_display1_console_get_height (client->console);
}

KdDisplayFramebuffer *
kd_display_client_get_framebuffer (KdDisplayClient *client)
{
  return &client->fb;
}

const KdDisplayCursor *
kd_display_client_get_cursor (KdDisplayClient *client)
{
  return &client->cursor;
}

const KdDisplayClientStats *
kd_display_client_get_stats (KdDisplayClient *client)
{
  /* The gate's counts are folded in here (they grow in another thread). */
  if (client->gate != NULL)
    {
      g_mutex_lock (&client->gate->count_lock);
      client->stats.updates += client->gate->unchanged - client->stats.unchanged;
      client->stats.bytes += client->gate->unchanged_bytes - client->unchanged_bytes_folded;
      client->stats.unchanged = client->gate->unchanged;
      client->unchanged_bytes_folded = client->gate->unchanged_bytes;
      g_mutex_unlock (&client->gate->count_lock);
    }
  return &client->stats;
}

gboolean
kd_display_client_has_frame (KdDisplayClient *client)
{
  return client->has_frame;
}

gboolean
kd_display_client_mouse_is_absolute (KdDisplayClient *client)
{
  return client->mouse_absolute;
}

/* Input is fire-and-forget (no reply expected: a NULL callback), so a
 * slow QEMU never holds replies queued here; errors (a relative move on
 * an absolute mouse) are QEMU's to ignore. */
void
kd_display_client_key (KdDisplayClient *client,
                       guint            qnum,
                       gboolean         down)
{
  if (client->closed || client->keyboard == NULL)
    return;
  if (down)
    kd_display1_keyboard_call_press (client->keyboard, qnum, NULL, NULL, NULL);
  else
    kd_display1_keyboard_call_release (client->keyboard, qnum, NULL, NULL, NULL);
}

void
kd_display_client_mouse_button (KdDisplayClient *client,
                                guint            button,
                                gboolean         down)
{
  if (client->closed || client->mouse == NULL)
    return;
  if (down)
    kd_display1_mouse_call_press (client->mouse, button, NULL, NULL, NULL);
  else
    kd_display1_mouse_call_release (client->mouse, button, NULL, NULL, NULL);
}

void
kd_display_client_mouse_abs (KdDisplayClient *client,
                             guint            x,
                             guint            y)
{
  if (client->closed || client->mouse == NULL)
    return;
  kd_display1_mouse_call_set_abs_position (client->mouse, x, y, NULL, NULL, NULL);
}

void
kd_display_client_mouse_rel (KdDisplayClient *client,
                             int              dx,
                             int              dy)
{
  if (client->closed || client->mouse == NULL || (dx == 0 && dy == 0))
    return;
  kd_display1_mouse_call_rel_motion (client->mouse, dx, dy, NULL, NULL, NULL);
}
