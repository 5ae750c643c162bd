/*
 * kd-display-vnc.c: kvmdesk-display's VNC server (libvncserver) over a
 * KdDisplayClient.
 *
 * libvncserver keeps no thread and no listening socket of its own here:
 * we accept TCP connections with GIO on the address we were given (port
 * 0: the kernel picks one) and hand each socket to rfbNewClient(); the
 * client sockets are watched as GSource fds and rfbProcessEvents(0) runs
 * only when one is readable or after new damage — nothing polls.
 *
 * The framebuffer libvncserver serves is the KdDisplayFramebuffer's own
 * pixel array (xRGB, server format red at bit 16), so a frame is never
 * copied twice. Input goes back through the client: keysyms become QEMU
 * key numbers (kd-display-vnc-keymap.c), pointer events absolute or
 * relative motion following the guest's mouse mode.
 *
 * Not here: where passwords come from, process lifetime.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <rfb/rfb.h>

#include "kd-display-vnc.h"

/* Placeholder size until QEMU's first scanout (and when it reports none). */
#define KD_DISPLAY_VNC_DEFAULT_WIDTH   640
#define KD_DISPLAY_VNC_DEFAULT_HEIGHT  480
/* Highest QEMU key number (0xE0-prefixed keys have bit 7 set). */
#define KD_DISPLAY_QNUM_MAX            0xff
/* Longest wait on one viewer's socket inside libvncserver, milliseconds. */
#define KD_DISPLAY_VNC_CLIENT_WAIT_MS  5000
/* RFB pointer-event button bits forwarded: left, middle, right, wheel up/down. */
#define KD_DISPLAY_VNC_BUTTONS         5

struct _KdDisplayVnc {
  KdDisplayClient    *client;     /* not owned */
  KdDisplayPasswords *passwords;  /* not owned */
  rfbScreenInfoPtr    screen;
  GSocketService     *service;
  guint16             port;
  guint32            *placeholder;  /* black, until QEMU's first scanout */
  guint               placeholder_width;
  guint               placeholder_height;
  GSource            *source;     /* watches the viewers' sockets */
  GHashTable         *fd_tags;    /* fd -> GSource unix-fd tag */
  guint               flush_id;   /* idle: push updates to viewers */
  char               *desktop_name;
  gboolean            cursor_hidden;  /* the guest hid its pointer (MouseSet) */
};

/* Per viewer (rfbClientRec.clientData). */
typedef struct {
  guint8 pressed[(KD_DISPLAY_QNUM_MAX + 1) / 8];
  int    button_mask;
  int    x, y;
  gboolean moved;
} KdDisplayViewer;

static void vnc_process (KdDisplayVnc *vnc);

/* libvncserver's own chatter goes to the debug log (never stdout). */
static void
on_rfb_log (const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_debug ("libvncserver: %s", g_strchomp (message));
}

/* ------------------------------------------------------------------ */
/* Main-loop integration */

static void
vnc_sync_fds (KdDisplayVnc *vnc)
{
  g_autoptr(GHashTable) live = g_hash_table_new (NULL, NULL);
  rfbClientIteratorPtr it = rfbGetClientIterator (vnc->screen);
  rfbClientPtr cl;
  GHashTableIter iter;
  gpointer key, tag;

  while ((cl = rfbClientIteratorNext (it)) != NULL)
    if (cl->sock >= 0)
      g_hash_table_add (live, GINT_TO_POINTER (cl->sock + 1));
  rfbReleaseClientIterator (it);

  g_hash_table_iter_init (&iter, vnc->fd_tags);
  while (g_hash_table_iter_next (&iter, &key, &tag))
    if (!g_hash_table_contains (live, key))
      {
        g_source_remove_unix_fd (vnc->source, tag);
        g_hash_table_iter_remove (&iter);
      }
  g_hash_table_iter_init (&iter, live);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (!g_hash_table_contains (vnc->fd_tags, key))
      g_hash_table_insert (vnc->fd_tags, key,
                           g_source_add_unix_fd (vnc->source, GPOINTER_TO_INT (key) - 1,
                                                 G_IO_IN | G_IO_HUP | G_IO_ERR));
}

static void
vnc_process (KdDisplayVnc *vnc)
{
  /* A zero timeout: libvncserver selects on its sockets without waiting,
   * reads what is there, answers update requests with the damage, and
   * drops viewers that went away. */
  rfbProcessEvents (vnc->screen, 0);
  vnc_sync_fds (vnc);
}

static gboolean
vnc_source_dispatch (GSource    *source,
                     GSourceFunc callback,
                     gpointer    user_data)
{
  return callback (user_data);
}

static GSourceFuncs vnc_source_funcs = {
  .dispatch = vnc_source_dispatch,
};

static gboolean
on_viewer_ready (gpointer user_data)
{
  vnc_process (user_data);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_flush (gpointer user_data)
{
  KdDisplayVnc *vnc = user_data;

  vnc->flush_id = 0;
  vnc_process (vnc);
  return G_SOURCE_REMOVE;
}

static void
vnc_schedule_flush (KdDisplayVnc *vnc)
{
  if (vnc->flush_id == 0)
    vnc->flush_id = g_idle_add (on_flush, vnc);
}

static gboolean
on_incoming (GSocketService    *service,
             GSocketConnection *connection,
             GObject           *source_object,
             KdDisplayVnc      *vnc)
{
  int fd = g_socket_get_fd (g_socket_connection_get_socket (connection));
  int dup_fd = fcntl (fd, F_DUPFD_CLOEXEC, 3);

  if (dup_fd < 0)
    {
      g_debug ("cannot take a viewer's socket: %s", g_strerror (errno));
      return TRUE;
    }
  /* libvncserver owns dup_fd from here; GIO closes its own copy. */
  if (rfbNewClient (vnc->screen, dup_fd) == NULL)
    g_debug ("libvncserver refused a viewer");
  vnc_sync_fds (vnc);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Viewers: authentication and input */

static rfbBool
on_check_password (rfbClientPtr cl,
                   const char  *response,
                   int          len)
{
  KdDisplayVnc *vnc = cl->screen->screenData;

  return kd_display_passwords_check (vnc->passwords, cl->authChallenge,
                                     (const guint8 *) response, len < 0 ? 0 : (gsize) len,
                                     g_get_real_time () / G_USEC_PER_SEC);
}

static void
on_viewer_gone (rfbClientPtr cl)
{
  KdDisplayVnc *vnc = cl->screen->screenData;
  KdDisplayViewer *viewer = cl->clientData;
  guint q, b;

  if (viewer == NULL)
    return;
  /* Keys and buttons held by a viewer that vanished must not stay down. */
  for (q = 0; q <= KD_DISPLAY_QNUM_MAX; q++)
    if (viewer->pressed[q / 8] & (1u << (q % 8)))
      kd_display_client_key (vnc->client, q, FALSE);
  for (b = 0; b < KD_DISPLAY_VNC_BUTTONS; b++)
    if (viewer->button_mask & (1 << b))
      kd_display_client_mouse_button (vnc->client, b, FALSE);
  g_free (viewer);
  cl->clientData = NULL;
}

static enum rfbNewClientAction
on_new_viewer (rfbClientPtr cl)
{
  cl->clientData = g_new0 (KdDisplayViewer, 1);
  cl->clientGoneHook = on_viewer_gone;
  return RFB_CLIENT_ACCEPT;
}

static void
on_key (rfbBool      down,
        rfbKeySym    keysym,
        rfbClientPtr cl)
{
  KdDisplayVnc *vnc = cl->screen->screenData;
  KdDisplayViewer *viewer = cl->clientData;
  guint qnum = kd_display_vnc_keysym_to_qnum (keysym);

  if (qnum == 0 || qnum > KD_DISPLAY_QNUM_MAX || viewer == NULL)
    return;
  if (down)
    viewer->pressed[qnum / 8] |= 1u << (qnum % 8);
  else
    viewer->pressed[qnum / 8] &= ~(1u << (qnum % 8));
  kd_display_client_key (vnc->client, qnum, down);
}

static void
on_pointer (int          mask,
            int          x,
            int          y,
            rfbClientPtr cl)
{
  KdDisplayVnc *vnc = cl->screen->screenData;
  KdDisplayViewer *viewer = cl->clientData;
  KdDisplayFramebuffer *fb = kd_display_client_get_framebuffer (vnc->client);
  int b;

  if (viewer == NULL)
    return;
  x = CLAMP (x, 0, MAX ((int) fb->width - 1, 0));
  y = CLAMP (y, 0, MAX ((int) fb->height - 1, 0));
  if (!viewer->moved || x != viewer->x || y != viewer->y)
    {
      if (kd_display_client_mouse_is_absolute (vnc->client))
        kd_display_client_mouse_abs (vnc->client, (guint) x, (guint) y);
      else if (viewer->moved)
        kd_display_client_mouse_rel (vnc->client, x - viewer->x, y - viewer->y);
      viewer->x = x;
      viewer->y = y;
      viewer->moved = TRUE;
    }
  for (b = 0; b < KD_DISPLAY_VNC_BUTTONS; b++)
    if ((mask ^ viewer->button_mask) & (1 << b))
      kd_display_client_mouse_button (vnc->client, (guint) b, (mask & (1 << b)) != 0);
  viewer->button_mask = mask & ((1 << KD_DISPLAY_VNC_BUTTONS) - 1);
  rfbDefaultPtrAddEvent (mask, x, y, cl);
}

/* ------------------------------------------------------------------ */
/* Framebuffer, damage, cursor */

static void
vnc_set_pixel_format (KdDisplayVnc *vnc)
{
  rfbPixelFormat *f = &vnc->screen->serverFormat;
  rfbClientIteratorPtr it;
  rfbClientPtr cl;

  /* xRGB in a host-order 32-bit word: what KdDisplayFramebuffer holds. */
  f->redShift = 16;
  f->greenShift = 8;
  f->blueShift = 0;
  f->redMax = f->greenMax = f->blueMax = 255;
  it = rfbGetClientIterator (vnc->screen);
  while ((cl = rfbClientIteratorNext (it)) != NULL)
    rfbSetTranslateFunction (cl);
  rfbReleaseClientIterator (it);
}

static void
vnc_current_buffer (KdDisplayVnc *vnc,
                    guint32     **pixels,
                    int          *width,
                    int          *height)
{
  KdDisplayFramebuffer *fb = kd_display_client_get_framebuffer (vnc->client);

  if (fb->pixels != NULL)
    {
      *pixels = fb->pixels;
      *width = (int) fb->width;
      *height = (int) fb->height;
      return;
    }
  if (vnc->placeholder == NULL)
    {
      guint w = 0, h = 0;

      kd_display_client_get_console_size (vnc->client, &w, &h);
      if (w == 0 || h == 0 || w > KD_DISPLAY_MAX_WIDTH || h > KD_DISPLAY_MAX_HEIGHT
          || (guint64) w * h > KD_DISPLAY_MAX_PIXELS)
        {
          w = KD_DISPLAY_VNC_DEFAULT_WIDTH;
          h = KD_DISPLAY_VNC_DEFAULT_HEIGHT;
        }
      vnc->placeholder = g_new0 (guint32, (gsize) w * h);
      vnc->placeholder_width = w;
      vnc->placeholder_height = h;
    }
  *pixels = vnc->placeholder;
  *width = (int) vnc->placeholder_width;
  *height = (int) vnc->placeholder_height;
}

/**
 * kd_display_vnc_resized:
 * The client's framebuffer was reallocated (maybe at another size):
 * libvncserver must serve the new array before it runs again; viewers
 * that support it get a NewFBSize.
 */
void
kd_display_vnc_resized (KdDisplayVnc *vnc)
{
  guint32 *pixels;
  int width, height;

  vnc_current_buffer (vnc, &pixels, &width, &height);
  if (width <= 0 || height <= 0)
    return;
  rfbNewFramebuffer (vnc->screen, (char *) pixels, width, height, 8, 3, 4);
  vnc_set_pixel_format (vnc);
  if (pixels != vnc->placeholder)
    g_clear_pointer (&vnc->placeholder, g_free);
  rfbMarkRectAsModified (vnc->screen, 0, 0, width, height);
  vnc_schedule_flush (vnc);
}

void
kd_display_vnc_damaged (KdDisplayVnc *vnc)
{
  KdDisplayFramebuffer *fb = kd_display_client_get_framebuffer (vnc->client);
  g_autoptr(GArray) damage = kd_display_framebuffer_take_damage (fb);
  guint i;

  if (fb->pixels != NULL && (char *) fb->pixels != vnc->screen->frameBuffer)
    kd_display_vnc_resized (vnc);
  for (i = 0; i < damage->len; i++)
    {
      KdDisplayRect *r = &g_array_index (damage, KdDisplayRect, i);

      rfbMarkRectAsModified (vnc->screen, r->x, r->y, r->x + r->width, r->y + r->height);
    }
  /* Without viewers there is nobody to send it to. */
  if (damage->len > 0 && g_hash_table_size (vnc->fd_tags) > 0)
    vnc_schedule_flush (vnc);
}

static rfbCursorPtr
vnc_cursor_new (guint width,
                guint height,
                int   hot_x,
                int   hot_y)
{
  rfbCursorPtr c = calloc (1, sizeof *c);
  gsize row = (width + 7) / 8;

  c->width = width;
  c->height = height;
  c->xhot = hot_x;
  c->yhot = hot_y;
  c->source = calloc (row * height, 1);
  c->mask = calloc (row * height, 1);
  c->richSource = calloc ((gsize) width * height, 4);
  c->cleanup = c->cleanupSource = c->cleanupMask = c->cleanupRichSource = TRUE;
  c->foreRed = c->foreGreen = c->foreBlue = 0;
  c->backRed = c->backGreen = c->backBlue = 0xffff;
  return c;
}

void
kd_display_vnc_cursor_changed (KdDisplayVnc *vnc,
                               gboolean      shape_changed)
{
  const KdDisplayCursor *cursor = kd_display_client_get_cursor (vnc->client);
  rfbCursorPtr c;
  gsize row;
  guint x, y;

  /* Viewers draw the pointer where they are: only its shape and whether
   * it shows matter (MouseSet comes at every guest pointer move). */
  if (cursor->pixels == NULL)
    return;
  if (!shape_changed && vnc->cursor_hidden == !cursor->visible)
    return;
  vnc->cursor_hidden = !cursor->visible;
  if (vnc->cursor_hidden)
    {
      c = vnc_cursor_new (1, 1, 0, 0);   /* hidden: one transparent pixel */
    }
  else if (cursor->width > 0 && cursor->height > 0)
    {
      c = vnc_cursor_new (cursor->width, cursor->height, cursor->hot_x, cursor->hot_y);
      row = (cursor->width + 7) / 8;
      for (y = 0; y < cursor->height; y++)
        for (x = 0; x < cursor->width; x++)
          {
            guint32 argb = cursor->pixels[(gsize) y * cursor->width + x];
            guint r = (argb >> 16) & 0xff, g = (argb >> 8) & 0xff, b = argb & 0xff;
            guint8 bit = 0x80 >> (x % 8);

            ((guint32 *) c->richSource)[(gsize) y * cursor->width + x] = argb & 0x00ffffffu;
            if ((argb >> 24) >= 0x80)
              c->mask[y * row + x / 8] |= bit;
            if (r + g + b < 3 * 0x80)
              c->source[y * row + x / 8] |= bit;   /* dark: foreground (black) */
          }
    }
  else
    return;
  rfbSetCursor (vnc->screen, c);
  vnc_schedule_flush (vnc);
}

/* ------------------------------------------------------------------ */
/* Life */

/**
 * kd_display_vnc_parse_listen:
 * @listen: "ADDRESS:PORT": a numeric IPv4 address or a bracketed IPv6 one
 * @out: (out) (optional): the socket address
 */
gboolean
kd_display_vnc_parse_listen (const char      *listen,
                             GSocketAddress **out,
                             GError         **error)
{
  g_autofree char *host = NULL;
  g_autoptr(GInetAddress) address = NULL;
  const char *colon = strrchr (listen, ':');
  guint64 port = 0;
  gsize host_len;

  if (colon == NULL
      || !g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &port, NULL))
    goto bad;
  host_len = (gsize) (colon - listen);
  if (host_len >= 2 && listen[0] == '[' && listen[host_len - 1] == ']')
    host = g_strndup (listen + 1, host_len - 2);
  else
    host = g_strndup (listen, host_len);
  address = g_inet_address_new_from_string (host);
  if (address == NULL)
    goto bad;
  if (out != NULL)
    *out = g_inet_socket_address_new (address, (guint16) port);
  return TRUE;

bad:
  g_set_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
               "listen address '%s' is not ADDRESS:PORT (a numeric IPv4 or [IPv6] "
               "address, a port from 0 to 65535)", listen);
  return FALSE;
}

/**
 * kd_display_vnc_new:
 * @client: the display to serve; must outlive the server
 * @passwords: the passwords viewers may use; must outlive the server
 * @listen: "ADDRESS:PORT" (port 0: any free port)
 *
 * Starts listening at once; kd_display_vnc_get_port() tells where.
 */
KdDisplayVnc *
kd_display_vnc_new (KdDisplayClient    *client,
                    KdDisplayPasswords *passwords,
                    const char         *listen,
                    GError            **error)
{
  g_autoptr(KdDisplayVnc) vnc = g_new0 (KdDisplayVnc, 1);
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketAddress) effective = NULL;
  char *argv[] = { (char *) "kvmdesk-display", NULL };
  int argc = 1;
  guint32 *pixels;
  int width, height;

  vnc->client = client;
  vnc->passwords = passwords;
  vnc->fd_tags = g_hash_table_new (NULL, NULL);
  if (!kd_display_vnc_parse_listen (listen, &address, error))
    return NULL;

  vnc->service = g_socket_service_new ();
  if (!g_socket_listener_add_address (G_SOCKET_LISTENER (vnc->service), address,
                                      G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                                      NULL, &effective, error))
    {
      g_prefix_error (error, "cannot listen on '%s': ", listen);
      return NULL;
    }
  vnc->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (effective));

  rfbLog = on_rfb_log;
  rfbErr = on_rfb_log;
  vnc_current_buffer (vnc, &pixels, &width, &height);
  vnc->screen = rfbGetScreen (&argc, argv, width, height, 8, 3, 4);
  if (vnc->screen == NULL)
    {
      g_set_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_FAILED,
                   "libvncserver cannot set up a %dx%d screen", width, height);
      return NULL;
    }
  vnc->screen->screenData = vnc;
  vnc->screen->frameBuffer = (char *) pixels;
  vnc->desktop_name = g_strdup (kd_display_client_get_vm_name (client) != NULL
                                ? kd_display_client_get_vm_name (client) : "kvmdesk");
  vnc->screen->desktopName = vnc->desktop_name;
  /* No sockets of libvncserver's own: we accept and call rfbNewClient(). */
  vnc->screen->autoPort = FALSE;
  vnc->screen->port = 0;
  vnc->screen->ipv6port = 0;
  vnc->screen->httpPort = 0;
  vnc->screen->http6Port = 0;
  vnc->screen->httpDir = NULL;
  /* VNC authentication always: a non-NULL authPasswdData makes
   * libvncserver offer it (and never "None"). */
  vnc->screen->authPasswdData = vnc;
  vnc->screen->passwordCheck = on_check_password;
  vnc->screen->alwaysShared = TRUE;
  /* No deferral of updates or pointer motion: libvncserver would need to
   * be called again later to flush them, and we only call it on events. */
  vnc->screen->deferUpdateTime = 0;
  vnc->screen->deferPtrUpdateTime = 0;
  vnc->screen->ignoreSIGPIPE = TRUE;
  /* libvncserver reads and writes whole messages, waiting for a slow
   * viewer meanwhile: bound how long one can stall the loop. */
  vnc->screen->maxClientWait = KD_DISPLAY_VNC_CLIENT_WAIT_MS;
  vnc->screen->kbdAddEvent = on_key;
  vnc->screen->ptrAddEvent = on_pointer;
  vnc->screen->newClientHook = on_new_viewer;
  vnc_set_pixel_format (vnc);
  rfbInitServer (vnc->screen);

  vnc->source = g_source_new (&vnc_source_funcs, sizeof (GSource));
  g_source_set_callback (vnc->source, on_viewer_ready, vnc, NULL);
  g_source_set_name (vnc->source, "kvmdesk-display VNC viewers");
  g_source_attach (vnc->source, NULL);

  g_signal_connect (vnc->service, "incoming", G_CALLBACK (on_incoming), vnc);
  g_socket_service_start (vnc->service);
  return g_steal_pointer (&vnc);
}

guint16
kd_display_vnc_get_port (KdDisplayVnc *vnc)
{
  return vnc->port;
}

guint
kd_display_vnc_get_n_viewers (KdDisplayVnc *vnc)
{
  return g_hash_table_size (vnc->fd_tags);
}

void
kd_display_vnc_free (KdDisplayVnc *vnc)
{
  if (vnc == NULL)
    return;
  if (vnc->flush_id != 0)
    g_source_remove (vnc->flush_id);
  if (vnc->service != NULL)
    {
      g_socket_service_stop (vnc->service);
      g_socket_listener_close (G_SOCKET_LISTENER (vnc->service));
      g_signal_handlers_disconnect_by_data (vnc->service, vnc);
    }
  if (vnc->screen != NULL)
    {
      rfbShutdownServer (vnc->screen, TRUE);
      rfbScreenCleanup (vnc->screen);
    }
  if (vnc->source != NULL)
    {
      g_source_destroy (vnc->source);
      g_source_unref (vnc->source);
    }
  g_clear_object (&vnc->service);
  g_clear_pointer (&vnc->fd_tags, g_hash_table_unref);
  g_free (vnc->placeholder);
  g_free (vnc->desktop_name);
  g_free (vnc);
}
