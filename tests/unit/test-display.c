/*
 * test-display.c: kvmdesk-display's D-Bus client and VNC helpers.
 *
 * - pure functions: image checks (every size from the wire), pixel-format
 *   conversion into xRGB, blits (bounds refused, frame unchanged), damage
 *   (clipping, merging, collapse), keysym -> QEMU key numbers, passwords
 *   (DES answer computed here independently with nettle, expiry, file);
 * - the client against a fake "QEMU" on a socketpair in this process: the
 *   fake serves VM/Console/Keyboard/Mouse with the generated skeletons,
 *   answers RegisterListener like QEMU (server of the listener connection)
 *   and calls the listener's methods through GDBus with hand-built frames:
 *   Scanout with padded strides, Updates in other formats, refusals
 *   (outside, short data, DMABUF), ScanoutMap/UpdateMap on a memfd, the
 *   Interfaces property, console size changes (QEMU 7.2 sends no Scanout
 *   then), cursor, input forwarding, IsAbsolute, and the connection closing.
 */
#define _GNU_SOURCE 1
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gunixfdlist.h>
#include <nettle/des.h>

#include "display/kd-display-client.h"
#include "display/kd-display-vnc.h"
#include "kd-qemu-display1.h"

/* ------------------------------------------------------------------ */
/* Pure functions */

static void
test_check_image (void)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (kd_display_check_image (4, 3, 16, KD_PIXMAN_X8R8G8B8, 48, NULL));
  /* the last row needs no padding */
  g_assert_true (kd_display_check_image (4, 3, 20, KD_PIXMAN_X8R8G8B8, 20 * 2 + 16, NULL));
  g_assert_false (kd_display_check_image (4, 3, 20, KD_PIXMAN_X8R8G8B8, 20 * 2 + 15, &error));
  g_assert_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (kd_display_check_image (4, 3, 15, KD_PIXMAN_X8R8G8B8, 1000, &error));
  g_assert_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (kd_display_check_image (4, 3, 16, 0x12345678, 1000, &error));
  g_assert_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_UNSUPPORTED);
  g_clear_error (&error);
  /* sizes that would overflow 32-bit arithmetic */
  g_assert_false (kd_display_check_image (G_MAXUINT, G_MAXUINT, G_MAXUINT, KD_PIXMAN_X8R8G8B8,
                                          G_MAXSIZE, &error));
  g_assert_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (kd_display_check_image (KD_DISPLAY_MAX_WIDTH, KD_DISPLAY_MAX_HEIGHT,
                                          KD_DISPLAY_MAX_WIDTH * 4, KD_PIXMAN_X8R8G8B8,
                                          G_MAXSIZE, &error));
  g_clear_error (&error);
  g_assert_true (kd_display_check_image (0, 0, 0, KD_PIXMAN_R5G6B5, 0, NULL));
}

static void
test_convert_formats (void)
{
  /* One pixel of R=0x12 G=0x34 B=0x56 in each format, as pixman stores it
   * (host-order words on this little-endian machine). */
  static const struct {
    guint32 format;
    guint8  bytes[4];
    guint32 want;
  } cases[] = {
    { KD_PIXMAN_X8R8G8B8, { 0x56, 0x34, 0x12, 0xff }, 0x123456 },
    { KD_PIXMAN_A8R8G8B8, { 0x56, 0x34, 0x12, 0x80 }, 0x123456 },
    { KD_PIXMAN_X8B8G8R8, { 0x12, 0x34, 0x56, 0x00 }, 0x123456 },
    { KD_PIXMAN_A8B8G8R8, { 0x12, 0x34, 0x56, 0x7f }, 0x123456 },
    { KD_PIXMAN_B8G8R8X8, { 0x00, 0x12, 0x34, 0x56 }, 0x123456 },
    { KD_PIXMAN_B8G8R8A8, { 0x99, 0x12, 0x34, 0x56 }, 0x123456 },
    { KD_PIXMAN_R8G8B8X8, { 0x00, 0x56, 0x34, 0x12 }, 0x123456 },
    { KD_PIXMAN_R8G8B8A8, { 0xaa, 0x56, 0x34, 0x12 }, 0x123456 },
    { KD_PIXMAN_R8G8B8,   { 0x56, 0x34, 0x12 },       0x123456 },
    { KD_PIXMAN_B8G8R8,   { 0x12, 0x34, 0x56 },       0x123456 },
    /* 16-bit: white and pure colours expand to full intensity */
    { KD_PIXMAN_R5G6B5,   { 0xff, 0xff },             0xffffff },
    { KD_PIXMAN_R5G6B5,   { 0x00, 0xf8 },             0xff0000 },
    { KD_PIXMAN_R5G6B5,   { 0xe0, 0x07 },             0x00ff00 },
    { KD_PIXMAN_X1R5G5B5, { 0x1f, 0x00 },             0x0000ff },
    { KD_PIXMAN_X1R5G5B5, { 0xe0, 0x03 },             0x00ff00 },
  };
  gsize i;

  g_assert_true (G_BYTE_ORDER == G_LITTLE_ENDIAN);
  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      guint32 out[2] = { 0xdeadbeef, 0xdeadbeef };

      kd_display_convert_row (out, cases[i].bytes, 1, cases[i].format);
      g_assert_cmphex (out[0], ==, cases[i].want);
      g_assert_cmphex (out[1], ==, 0xdeadbeef);   /* nothing written past the row */
    }
}

static void
test_blit_bounds (void)
{
  KdDisplayFramebuffer fb;
  g_autoptr(GError) error = NULL;
  guint8 src[2 * 8] = { 0 };
  g_autoptr(GArray) damage = NULL;
  guint i;

  kd_display_framebuffer_init (&fb);
  g_assert_true (kd_display_framebuffer_resize (&fb, 4, 3, NULL));
  g_array_unref (kd_display_framebuffer_take_damage (&fb));
  for (i = 0; i < 4; i++)
    src[4 * i] = 0x10 + i;        /* blue channel, x8r8g8b8 */
  memcpy (src + 8, src, 8);

  /* inside: two 2x2 blocks at (2,1) */
  g_assert_true (kd_display_framebuffer_blit (&fb, 2, 1, 2, 2, src, sizeof src, 8,
                                              KD_PIXMAN_X8R8G8B8, &error));
  g_assert_no_error (error);
  g_assert_cmphex (fb.pixels[1 * 4 + 2], ==, 0x10);
  g_assert_cmphex (fb.pixels[2 * 4 + 3], ==, 0x11);
  g_assert_cmphex (fb.pixels[0], ==, 0);
  damage = kd_display_framebuffer_take_damage (&fb);
  g_assert_cmpuint (damage->len, ==, 1);
  g_assert_cmpint (g_array_index (damage, KdDisplayRect, 0).x, ==, 2);
  g_assert_cmpint (g_array_index (damage, KdDisplayRect, 0).width, ==, 2);

  /* the same pixels again: nothing damaged; one changed row: that row */
  g_assert_true (kd_display_framebuffer_blit (&fb, 2, 1, 2, 2, src, sizeof src, 8,
                                              KD_PIXMAN_X8R8G8B8, NULL));
  g_array_unref (damage);
  damage = kd_display_framebuffer_take_damage (&fb);
  g_assert_cmpuint (damage->len, ==, 0);
  src[8] = 0x77;
  g_assert_true (kd_display_framebuffer_blit (&fb, 2, 1, 2, 2, src, sizeof src, 8,
                                              KD_PIXMAN_X8R8G8B8, NULL));
  g_assert_cmphex (fb.pixels[2 * 4 + 2], ==, 0x77);
  g_array_unref (damage);
  damage = kd_display_framebuffer_take_damage (&fb);
  g_assert_cmpuint (damage->len, ==, 1);
  g_assert_cmpint (g_array_index (damage, KdDisplayRect, 0).y, ==, 2);
  g_assert_cmpint (g_array_index (damage, KdDisplayRect, 0).height, ==, 1);

  /* outside, negative, overflowing: refused, nothing written, no damage */
  {
    static const int bad[][4] = {
      { 3, 1, 2, 2 }, { 0, 2, 1, 2 }, { -1, 0, 1, 1 }, { 0, -1, 1, 1 },
      { G_MAXINT, 0, 2, 1 }, { 0, 0, -1, 1 }, { 1, 1, G_MAXINT, 1 },
    };
    g_autofree guint32 *before = g_memdup2 (fb.pixels, 4 * 3 * 4);

    for (i = 0; i < G_N_ELEMENTS (bad); i++)
      {
        g_assert_false (kd_display_framebuffer_blit (&fb, bad[i][0], bad[i][1], bad[i][2],
                                                     bad[i][3], src, sizeof src, 8,
                                                     KD_PIXMAN_X8R8G8B8, &error));
        g_assert_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID);
        g_clear_error (&error);
      }
    /* data shorter than the rectangle */
    g_assert_false (kd_display_framebuffer_blit (&fb, 0, 0, 2, 2, src, 15, 8,
                                                 KD_PIXMAN_X8R8G8B8, &error));
    g_clear_error (&error);
    g_assert_cmpmem (before, 48, fb.pixels, 48);
    g_array_unref (damage);
    damage = kd_display_framebuffer_take_damage (&fb);
    g_assert_cmpuint (damage->len, ==, 0);
  }

  /* a frame beyond the limits is refused and the old one kept */
  g_assert_false (kd_display_framebuffer_resize (&fb, KD_DISPLAY_MAX_WIDTH + 1, 1, &error));
  g_assert_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID);
  g_assert_cmpuint (fb.width, ==, 4);
  kd_display_framebuffer_clear (&fb);
}

static void
test_damage (void)
{
  KdDisplayFramebuffer fb;
  g_autoptr(GArray) d = NULL;
  guint i;

  kd_display_framebuffer_init (&fb);
  g_assert_true (kd_display_framebuffer_resize (&fb, 100, 50, NULL));
  d = kd_display_framebuffer_take_damage (&fb);
  g_assert_cmpuint (d->len, ==, 1);            /* a resize damages everything */
  g_clear_pointer (&d, g_array_unref);

  kd_display_framebuffer_damage (&fb, 90, 40, 20, 20);     /* clipped */
  kd_display_framebuffer_damage (&fb, 95, 45, 2, 2);       /* inside: nothing new */
  kd_display_framebuffer_damage (&fb, -5, -5, 5, 5);       /* all outside */
  kd_display_framebuffer_damage (&fb, 0, 0, 0, 10);        /* empty */
  d = kd_display_framebuffer_take_damage (&fb);
  g_assert_cmpuint (d->len, ==, 1);
  g_assert_cmpint (g_array_index (d, KdDisplayRect, 0).width, ==, 10);
  g_assert_cmpint (g_array_index (d, KdDisplayRect, 0).height, ==, 10);
  g_clear_pointer (&d, g_array_unref);

  kd_display_framebuffer_damage (&fb, 10, 10, 2, 2);
  kd_display_framebuffer_damage (&fb, 20, 10, 2, 2);
  kd_display_framebuffer_damage (&fb, 0, 0, 50, 50);       /* swallows both */
  d = kd_display_framebuffer_take_damage (&fb);
  g_assert_cmpuint (d->len, ==, 1);
  g_clear_pointer (&d, g_array_unref);

  /* too many rectangles collapse into their bounding box */
  for (i = 0; i < KD_DISPLAY_DAMAGE_MAX_RECTS + 5; i++)
    kd_display_framebuffer_damage (&fb, (int) i, (int) (i % 50), 1, 1);
  d = kd_display_framebuffer_take_damage (&fb);
  g_assert_cmpuint (d->len, <=, KD_DISPLAY_DAMAGE_MAX_RECTS);
  {
    gboolean covers_last = FALSE;
    guint last = KD_DISPLAY_DAMAGE_MAX_RECTS + 4;

    for (i = 0; i < d->len; i++)
      {
        KdDisplayRect *r = &g_array_index (d, KdDisplayRect, i);
        covers_last |= r->x <= (int) last && r->x + r->width > (int) last;
      }
    g_assert_true (covers_last);
  }
  kd_display_framebuffer_clear (&fb);
}

static void
test_keymap (void)
{
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum ('a'), ==, 0x1e);
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum ('A'), ==, 0x1e);
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum ('z'), ==, 0x2c);
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum ('1'), ==, 0x02);
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum ('!'), ==, 0x02);
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum ('0'), ==, 0x0b);
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum (')'), ==, 0x0b);
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum ('?'), ==, 0x35);
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum ('|'), ==, 0x2b);
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum (' '), ==, 0x39);
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum (0xff0d), ==, 0x1c);   /* Return */
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum (0xff08), ==, 0x0e);   /* BackSpace */
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum (0xff52), ==, 0xc8);   /* Up: E0 48 */
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum (0xffff), ==, 0xd3);   /* Delete */
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum (0xffbe), ==, 0x3b);   /* F1 */
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum (0xffc9), ==, 0x58);   /* F12 */
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum (0xffe4), ==, 0x9d);   /* Control_R */
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum (0x20ac), ==, 0);      /* EuroSign */
  g_assert_cmpuint (kd_display_vnc_keysym_to_qnum (0), ==, 0);
}

/* VNC's DES: the password (8 bytes, zero padded) with each byte's bits
 * reversed is the key; the challenge is encrypted as two ECB blocks. */
static void
vnc_response (const char *password, const guint8 *challenge, guint8 *out)
{
  guint8 key[8] = { 0 };
  struct des_ctx ctx;
  gsize i;

  for (i = 0; i < 8 && password[i] != '\0'; i++)
    {
      guint8 b = (guint8) password[i], r = 0;
      int bit;

      for (bit = 0; bit < 8; bit++)
        if (b & (1 << bit))
          r |= 0x80 >> bit;
      key[i] = r;
    }
  des_set_key (&ctx, key);
  des_encrypt (&ctx, 16, out, challenge);
}

static void
test_passwords (void)
{
  g_autoptr(KdDisplayPasswords) p = kd_display_passwords_new ();
  g_autoptr(GError) error = NULL;
  guint8 challenge[16], response[16], mine[16];
  g_autofree char *path = NULL;
  int i, fd;

  for (i = 0; i < 16; i++)
    challenge[i] = (guint8) (i * 17 + 3);
  vnc_response ("secret1", challenge, response);
  kd_display_vnc_auth_response (challenge, "secret1", mine);
  g_assert_cmpmem (mine, 16, response, 16);

  g_assert_false (kd_display_passwords_check (p, challenge, response, 16, 1000));   /* none */
  g_assert_true (kd_display_passwords_add (p, "secret1", 2000, NULL));
  g_assert_true (kd_display_passwords_add (p, "other22", 0, NULL));
  g_assert_true (kd_display_passwords_check (p, challenge, response, 16, 1000));
  g_assert_true (kd_display_passwords_check (p, challenge, response, 16, 2000));
  g_assert_false (kd_display_passwords_check (p, challenge, response, 15, 1000));
  response[3] ^= 1;
  g_assert_false (kd_display_passwords_check (p, challenge, response, 16, 1000));
  response[3] ^= 1;
  /* expired: refused and forgotten */
  g_assert_false (kd_display_passwords_check (p, challenge, response, 16, 2001));
  g_assert_cmpuint (kd_display_passwords_count (p, 2001), ==, 1);
  g_assert_false (kd_display_passwords_check (p, challenge, response, 16, 1000));

  g_assert_false (kd_display_passwords_add (p, "", 0, &error));
  g_assert_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (kd_display_passwords_add (p, "ninechars", 0, &error));
  g_clear_error (&error);
  g_assert_false (kd_display_passwords_add (p, "a b", 0, &error));
  g_clear_error (&error);
  g_assert_false (kd_display_passwords_add (p, "ok", -1, &error));
  g_clear_error (&error);
  for (i = 0; i < (int) KD_DISPLAY_PASSWORDS_MAX + 3; i++)
    g_assert_true (kd_display_passwords_add (p, "x", 0, NULL));
  g_assert_cmpuint (kd_display_passwords_count (p, 0), ==, KD_DISPLAY_PASSWORDS_MAX);

  fd = g_file_open_tmp ("kd-display-pw-XXXXXX", &path, NULL);
  g_assert_cmpint (fd, >=, 0);
  close (fd);
  g_assert_true (g_file_set_contents (path, "# comment\n\nsecret1 0\nother22 99\n", -1, NULL));
  g_assert_true (kd_display_passwords_load_file (p, path, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (kd_display_passwords_count (p, 50), ==, 2);
  g_assert_true (kd_display_passwords_check (p, challenge, response, 16, 50));
  g_assert_true (g_file_set_contents (path, "secret1 soon\n", -1, NULL));
  g_assert_false (kd_display_passwords_load_file (p, path, &error));
  g_assert_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID);
  g_assert_cmpuint (kd_display_passwords_count (p, 50), ==, 2);   /* unchanged */
  unlink (path);
}

/* ------------------------------------------------------------------ */
/* The client against a fake QEMU */

typedef struct {
  GDBusConnection    *conn;            /* fake QEMU's end of the display socket */
  GDBusConnection    *listener_conn;   /* fake QEMU's end of the listener socket */
  KdDisplay1VM       *vm;
  KdDisplay1Console  *console;
  KdDisplay1Keyboard *keyboard;
  KdDisplay1Mouse    *mouse;
  char               *guid;
  GArray             *keys;            /* guint: +qnum pressed, -qnum released */
  GArray             *abs_moves;       /* guint pairs */
  GArray             *buttons;         /* int: +1+button pressed, -(1+button) released */
  GArray             *rel_moves;       /* int pairs */

  KdDisplayClient    *client;
  GError             *open_error;
  gboolean            opened;
  guint               resized;
  guint               damaged;
  guint               cursor_shapes;
  guint               cursor_moves;
  int                 mouse_mode;      /* -1 none, 0 relative, 1 absolute */
  char               *closed;
  gboolean            refuse_register; /* the fake refuses RegisterListener */
} Fixture;

static void
iterate_until (gboolean *flag)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (!*flag)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
}

static void
drain (void)
{
  /* Let in-flight messages on both sockets be dispatched. */
  gint64 until = g_get_monotonic_time () + 50 * 1000;

  while (g_get_monotonic_time () < until)
    g_main_context_iteration (NULL, FALSE);
}

static void
on_fake_listener_conn (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Fixture *f = user_data;
  g_autoptr(GError) error = NULL;

  f->listener_conn = g_dbus_connection_new_finish (result, &error);
  g_assert_no_error (error);
}

static gboolean
on_fake_register (KdDisplay1Console *console, GDBusMethodInvocation *invocation,
                  GUnixFDList *fd_list, GVariant *handle, Fixture *f)
{
  g_autoptr(GError) error = NULL;
  int fd = g_unix_fd_list_get (fd_list, g_variant_get_handle (handle), &error);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketConnection) stream = NULL;

  g_assert_no_error (error);
  if (f->refuse_register)
    {
      close (fd);
      g_dbus_method_invocation_return_dbus_error (invocation, "org.qemu.Display1.Error.Failed",
                                                  "no more listeners");
      return TRUE;
    }
  /* As QEMU does: reply, then be the server of the listener connection. */
  kd_display1_console_complete_register_listener (console, invocation, NULL);
  socket = g_socket_new_from_fd (fd, &error);
  g_assert_no_error (error);
  stream = g_socket_connection_factory_create_connection (socket);
  g_dbus_connection_new (G_IO_STREAM (stream), f->guid, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_SERVER,
                         NULL, NULL, on_fake_listener_conn, f);
  return TRUE;
}

static gboolean
on_fake_key (KdDisplay1Keyboard *kbd, GDBusMethodInvocation *invocation, guint qnum, Fixture *f)
{
  gint v = g_str_equal (g_dbus_method_invocation_get_method_name (invocation), "Press")
           ? (gint) qnum : -(gint) qnum;

  g_array_append_val (f->keys, v);
  g_dbus_method_invocation_return_value (invocation, NULL);
  return TRUE;
}

static gboolean
on_fake_abs (KdDisplay1Mouse *mouse, GDBusMethodInvocation *invocation, guint x, guint y, Fixture *f)
{
  g_array_append_val (f->abs_moves, x);
  g_array_append_val (f->abs_moves, y);
  g_dbus_method_invocation_return_value (invocation, NULL);
  return TRUE;
}

static gboolean
on_fake_rel (KdDisplay1Mouse *mouse, GDBusMethodInvocation *invocation, int dx, int dy, Fixture *f)
{
  g_array_append_val (f->rel_moves, dx);
  g_array_append_val (f->rel_moves, dy);
  g_dbus_method_invocation_return_value (invocation, NULL);
  return TRUE;
}

static gboolean
on_fake_button (KdDisplay1Mouse *mouse, GDBusMethodInvocation *invocation, guint button, Fixture *f)
{
  int v = (int) button + 1;

  if (g_str_equal (g_dbus_method_invocation_get_method_name (invocation), "Release"))
    v = -v;
  g_array_append_val (f->buttons, v);
  g_dbus_method_invocation_return_value (invocation, NULL);
  return TRUE;
}

static void
on_resized (KdDisplayClient *c, gpointer user_data)
{
  ((Fixture *) user_data)->resized++;
}

static void
on_damaged (KdDisplayClient *c, gpointer user_data)
{
  ((Fixture *) user_data)->damaged++;
}

static void
on_cursor (KdDisplayClient *c, gboolean shape, gpointer user_data)
{
  Fixture *f = user_data;

  if (shape)
    f->cursor_shapes++;
  else
    f->cursor_moves++;
}

static void
on_mouse_mode (KdDisplayClient *c, gboolean absolute, gpointer user_data)
{
  ((Fixture *) user_data)->mouse_mode = absolute;
}

static void
on_closed (KdDisplayClient *c, const char *reason, gpointer user_data)
{
  ((Fixture *) user_data)->closed = g_strdup (reason);
}

static void
on_opened (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Fixture *f = user_data;

  f->client = kd_display_client_new_finish (result, &f->open_error);
  f->opened = TRUE;
}

static void
on_fake_conn (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Fixture *f = user_data;
  g_autoptr(GError) error = NULL;

  f->conn = g_dbus_connection_new_finish (result, &error);
  g_assert_no_error (error);
  g_assert_true (g_dbus_interface_skeleton_export (G_DBUS_INTERFACE_SKELETON (f->vm), f->conn,
                                                   "/org/qemu/Display1/VM", NULL));
  g_assert_true (g_dbus_interface_skeleton_export (G_DBUS_INTERFACE_SKELETON (f->console), f->conn,
                                                   "/org/qemu/Display1/Console_0", NULL));
  g_assert_true (g_dbus_interface_skeleton_export (G_DBUS_INTERFACE_SKELETON (f->keyboard), f->conn,
                                                   "/org/qemu/Display1/Console_0", NULL));
  g_assert_true (g_dbus_interface_skeleton_export (G_DBUS_INTERFACE_SKELETON (f->mouse), f->conn,
                                                   "/org/qemu/Display1/Console_0", NULL));
  g_dbus_connection_start_message_processing (f->conn);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  static const guint32 ids[] = { 0 };
  KdDisplayClientCallbacks callbacks = {
    .resized = on_resized, .damaged = on_damaged, .cursor_changed = on_cursor,
    .mouse_mode_changed = on_mouse_mode, .closed = on_closed,
  };
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketConnection) stream = NULL;
  int pair[2];

  f->mouse_mode = -1;
  f->refuse_register = data != NULL;
  f->guid = g_dbus_generate_guid ();
  f->keys = g_array_new (FALSE, FALSE, sizeof (gint));
  f->abs_moves = g_array_new (FALSE, FALSE, sizeof (guint));
  f->buttons = g_array_new (FALSE, FALSE, sizeof (int));
  f->rel_moves = g_array_new (FALSE, FALSE, sizeof (int));
  f->vm = kd_display1_vm_skeleton_new ();
  kd_display1_vm_set_name (f->vm, "fake-vm");
  kd_display1_vm_set_uuid (f->vm, "00000000-0000-0000-0000-000000000001");
  kd_display1_vm_set_console_ids (f->vm, g_variant_new_fixed_array (G_VARIANT_TYPE_UINT32, ids, 1, 4));
  f->console = kd_display1_console_skeleton_new ();
  kd_display1_console_set_label (f->console, "VGA");
  kd_display1_console_set_type_ (f->console, "Graphic");
  kd_display1_console_set_width (f->console, 640);
  kd_display1_console_set_height (f->console, 480);
  g_signal_connect (f->console, "handle-register-listener", G_CALLBACK (on_fake_register), f);
  f->keyboard = kd_display1_keyboard_skeleton_new ();
  g_signal_connect (f->keyboard, "handle-press", G_CALLBACK (on_fake_key), f);
  g_signal_connect (f->keyboard, "handle-release", G_CALLBACK (on_fake_key), f);
  f->mouse = kd_display1_mouse_skeleton_new ();
  kd_display1_mouse_set_is_absolute (f->mouse, TRUE);
  g_signal_connect (f->mouse, "handle-set-abs-position", G_CALLBACK (on_fake_abs), f);
  g_signal_connect (f->mouse, "handle-rel-motion", G_CALLBACK (on_fake_rel), f);
  g_signal_connect (f->mouse, "handle-press", G_CALLBACK (on_fake_button), f);
  g_signal_connect (f->mouse, "handle-release", G_CALLBACK (on_fake_button), f);

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), ==, 0);
  socket = g_socket_new_from_fd (pair[0], NULL);
  stream = g_socket_connection_factory_create_connection (socket);
  g_dbus_connection_new (G_IO_STREAM (stream), f->guid,
                         G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_SERVER
                         | G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING,
                         NULL, NULL, on_fake_conn, f);
  kd_display_client_new_async (pair[1], &callbacks, f, NULL, on_opened, f);
  iterate_until (&f->opened);
  if (f->refuse_register)
    return;
  g_assert_no_error (f->open_error);
  while (f->listener_conn == NULL)
    g_main_context_iteration (NULL, TRUE);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->client, kd_display_client_free);
  drain ();
  g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (f->vm));
  g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (f->console));
  g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (f->keyboard));
  g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (f->mouse));
  g_clear_object (&f->vm);
  g_clear_object (&f->console);
  g_clear_object (&f->keyboard);
  g_clear_object (&f->mouse);
  g_clear_object (&f->listener_conn);
  g_clear_object (&f->conn);
  g_array_unref (f->keys);
  g_array_unref (f->abs_moves);
  g_array_unref (f->buttons);
  g_array_unref (f->rel_moves);
  g_free (f->guid);
  g_free (f->closed);
  g_clear_error (&f->open_error);
}

typedef struct {
  gboolean  done;
  GVariant *reply;
  GError   *error;
} CallResult;

static void
on_call_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CallResult *r = user_data;

  r->reply = g_dbus_connection_call_with_unix_fd_list_finish (G_DBUS_CONNECTION (source), NULL,
                                                              result, &r->error);
  r->done = TRUE;
}

/* Fake QEMU calls the listener; returns TRUE when it accepted. */
static gboolean
call_listener (Fixture *f, const char *iface, const char *method, GVariant *params,
               GUnixFDList *fds, char **error_name)
{
  CallResult r = { 0 };

  g_dbus_connection_call_with_unix_fd_list (f->listener_conn, NULL, "/org/qemu/Display1/Listener",
                                            iface, method, params, NULL, G_DBUS_CALL_FLAGS_NONE,
                                            5000, fds, NULL, on_call_done, &r);
  iterate_until (&r.done);
  if (r.reply != NULL)
    {
      g_variant_unref (r.reply);
      return TRUE;
    }
  if (error_name != NULL)
    *error_name = g_dbus_error_get_remote_error (r.error);
  g_error_free (r.error);
  return FALSE;
}

#define LISTENER "org.qemu.Display1.Listener"
#define LISTENER_MAP "org.qemu.Display1.Listener.Unix.Map"

static GVariant *
bytes_variant (const void *data, gsize len)
{
  return g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, data, len, 1);
}

static void
test_client_properties (Fixture *f, gconstpointer data)
{
  guint w, h;
  CallResult r = { 0 };
  g_autoptr(GVariant) value = NULL;
  g_autofree const char **ifaces = NULL;

  g_assert_cmpstr (kd_display_client_get_vm_name (f->client), ==, "fake-vm");
  g_assert_cmpstr (kd_display_client_get_vm_uuid (f->client), ==, "00000000-0000-0000-0000-000000000001");
  g_assert_cmpstr (kd_display_client_get_console_label (f->client), ==, "VGA");
  g_assert_cmpstr (kd_display_client_get_console_type (f->client), ==, "Graphic");
  kd_display_client_get_console_size (f->client, &w, &h);
  g_assert_cmpuint (w, ==, 640);
  g_assert_cmpuint (h, ==, 480);
  g_assert_false (kd_display_client_has_frame (f->client));
  g_assert_true (kd_display_client_mouse_is_absolute (f->client));

  /* The listener offers the shared-memory interface, as newer QEMU reads it. */
  g_dbus_connection_call_with_unix_fd_list (f->listener_conn, NULL, "/org/qemu/Display1/Listener",
                                            "org.freedesktop.DBus.Properties", "Get",
                                            g_variant_new ("(ss)", LISTENER, "Interfaces"),
                                            G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, 5000,
                                            NULL, NULL, on_call_done, &r);
  iterate_until (&r.done);
  g_assert_no_error (r.error);
  g_variant_get (r.reply, "(v)", &value);
  ifaces = g_variant_get_strv (value, NULL);
  g_assert_true (g_strv_contains (ifaces, LISTENER_MAP));
  g_variant_unref (r.reply);
}

static void
test_client_scanout_update (Fixture *f, gconstpointer data)
{
  KdDisplayFramebuffer *fb = kd_display_client_get_framebuffer (f->client);
  g_autofree char *err = NULL;
  guint8 frame[3 * 20];       /* 4x3 x8r8g8b8, stride 20 (4 bytes padding) */
  guint8 upd[2 * 3 * 2];      /* 2x2 b8g8r8 (24-bit), stride 6 */
  g_autoptr(GArray) damage = NULL;
  int x, y;

  memset (frame, 0xee, sizeof frame);
  for (y = 0; y < 3; y++)
    for (x = 0; x < 4; x++)
      {
        guint32 v = (guint32) (y * 16 + x) << 16 | 0x0000ab;
        memcpy (frame + y * 20 + x * 4, &v, 4);
      }
  g_assert_true (call_listener (f, LISTENER, "Scanout",
                                g_variant_new ("(uuuu@ay)", 4, 3, 20, KD_PIXMAN_X8R8G8B8,
                                               bytes_variant (frame, sizeof frame)), NULL, NULL));
  g_assert_true (kd_display_client_has_frame (f->client));
  g_assert_cmpuint (fb->width, ==, 4);
  g_assert_cmpuint (fb->height, ==, 3);
  g_assert_cmpuint (f->resized, ==, 1);
  g_assert_cmpuint (f->damaged, ==, 1);
  g_assert_cmphex (fb->pixels[2 * 4 + 3], ==, 0x2300ab);
  g_assert_cmphex (fb->pixels[0], ==, 0x0000ab);
  damage = kd_display_framebuffer_take_damage (fb);
  g_assert_cmpuint (damage->len, ==, 1);
  g_clear_pointer (&damage, g_array_unref);

  /* A 2x2 update at (1,1) in 24-bit b8g8r8 (bytes R, G, B). */
  for (x = 0; x < 4; x++)
    {
      upd[(x / 2) * 6 + (x % 2) * 3 + 0] = 0x11;
      upd[(x / 2) * 6 + (x % 2) * 3 + 1] = 0x22;
      upd[(x / 2) * 6 + (x % 2) * 3 + 2] = (guint8) (0x30 + x);
    }
  g_assert_true (call_listener (f, LISTENER, "Update",
                                g_variant_new ("(iiiiuu@ay)", 1, 1, 2, 2, 6, KD_PIXMAN_B8G8R8,
                                               bytes_variant (upd, sizeof upd)), NULL, NULL));
  g_assert_cmphex (fb->pixels[1 * 4 + 1], ==, 0x112230);
  g_assert_cmphex (fb->pixels[2 * 4 + 2], ==, 0x112233);
  g_assert_cmphex (fb->pixels[1 * 4 + 3], ==, 0x1300ab);   /* untouched */
  damage = kd_display_framebuffer_take_damage (fb);
  g_assert_cmpuint (damage->len, ==, 1);
  g_assert_cmpint (g_array_index (damage, KdDisplayRect, 0).x, ==, 1);
  g_assert_cmpint (g_array_index (damage, KdDisplayRect, 0).width, ==, 2);
  g_clear_pointer (&damage, g_array_unref);

  /* Refusals: short data, bad stride, unknown format, negative origin; the
   * frame stays as it was. */
  {
    g_autofree guint32 *before = g_memdup2 (fb->pixels, 4 * 4 * 3);
    const KdDisplayClientStats *stats = kd_display_client_get_stats (f->client);
    guint64 refused = stats->refused;

    g_assert_false (call_listener (f, LISTENER, "Update",
                                   g_variant_new ("(iiiiuu@ay)", 0, 0, 2, 2, 8, KD_PIXMAN_X8R8G8B8,
                                                  bytes_variant (upd, 15)), NULL, &err));
    g_assert_cmpstr (err, ==, "org.freedesktop.DBus.Error.InvalidArgs");
    g_clear_pointer (&err, g_free);
    g_assert_false (call_listener (f, LISTENER, "Update",
                                   g_variant_new ("(iiiiuu@ay)", 0, 0, 2, 1, 4, KD_PIXMAN_X8R8G8B8,
                                                  bytes_variant (upd, 12)), NULL, NULL));
    g_assert_false (call_listener (f, LISTENER, "Update",
                                   g_variant_new ("(iiiiuu@ay)", 0, 0, 1, 1, 4, 0x11111111u,
                                                  bytes_variant (upd, 4)), NULL, &err));
    g_assert_cmpstr (err, ==, "org.freedesktop.DBus.Error.NotSupported");
    g_clear_pointer (&err, g_free);
    g_assert_false (call_listener (f, LISTENER, "Update",
                                   g_variant_new ("(iiiiuu@ay)", -1, 0, 1, 1, 4, KD_PIXMAN_X8R8G8B8,
                                                  bytes_variant (upd, 4)), NULL, NULL));
    g_assert_false (call_listener (f, LISTENER, "Scanout",
                                   g_variant_new ("(uuuu@ay)", 4, 3, 16, KD_PIXMAN_X8R8G8B8,
                                                  bytes_variant (frame, 47)), NULL, NULL));
    g_assert_false (call_listener (f, LISTENER, "Scanout",
                                   g_variant_new ("(uuuu@ay)", G_MAXUINT32, 2, G_MAXUINT32,
                                                  KD_PIXMAN_X8R8G8B8, bytes_variant (frame, 8)),
                                   NULL, NULL));
    g_assert_cmpmem (before, 48, fb->pixels, 48);
    g_assert_cmpuint (fb->width, ==, 4);
    g_assert_cmpuint (stats->refused, ==, refused + 6);
  }

  /* DMABUF: refused cleanly. */
  {
    g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
    int memfd = memfd_create ("fake-dmabuf", MFD_CLOEXEC);

    g_unix_fd_list_append (fds, memfd, NULL);
    close (memfd);
    g_assert_false (call_listener (f, LISTENER, "ScanoutDMABUF",
                                   g_variant_new ("(huuuutb)", 0, 4, 3, 16, 0x34325258, 0, TRUE),
                                   fds, &err));
    g_assert_cmpstr (err, ==, "org.freedesktop.DBus.Error.NotSupported");
    g_clear_pointer (&err, g_free);
  }

  /* A new size (another scanout) is followed. */
  g_assert_true (call_listener (f, LISTENER, "Scanout",
                                g_variant_new ("(uuuu@ay)", 2, 1, 8, KD_PIXMAN_X8R8G8B8,
                                               bytes_variant (frame, 8)), NULL, NULL));
  g_assert_cmpuint (fb->width, ==, 2);
  g_assert_cmpuint (fb->height, ==, 1);
  g_assert_cmpuint (f->resized, ==, 2);

  /* Disable: black, same size. */
  g_assert_true (call_listener (f, LISTENER, "Disable", NULL, NULL, NULL));
  g_assert_cmphex (fb->pixels[0], ==, 0);
  g_assert_cmpuint (fb->width, ==, 2);
}

/* QEMU's Updates come with NO_REPLY_EXPECTED; one equal to what the frame
 * already holds from the same rectangle stops in the worker thread. */
static void
send_update_no_reply (Fixture *f, int x, int y, int width, int height, const guint32 *px)
{
  g_dbus_connection_call (f->listener_conn, NULL, "/org/qemu/Display1/Listener", LISTENER,
                          "Update",
                          g_variant_new ("(iiiiuu@ay)", x, y, width, height, (guint) width * 4,
                                         KD_PIXMAN_X8R8G8B8,
                                         bytes_variant (px, (gsize) width * height * 4)),
                          NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL, NULL);
}

/* A call with a reply after the ones before it: they have all been handled. */
static void
listener_sync (Fixture *f)
{
  static const guint32 c = 0x00c0c0c0;

  g_assert_true (call_listener (f, LISTENER, "Update",
                                g_variant_new ("(iiiiuu@ay)", 3, 2, 1, 1, 4, KD_PIXMAN_X8R8G8B8,
                                               bytes_variant (&c, 4)), NULL, NULL));
}

static void
test_client_unchanged_updates (Fixture *f, gconstpointer data)
{
  KdDisplayFramebuffer *fb = kd_display_client_get_framebuffer (f->client);
  const KdDisplayClientStats *stats;
  guint32 frame[4 * 3] = { 0 };
  const guint32 a[2] = { 0x00a1a1a1, 0x00a2a2a2 }, b[2] = { 0x00b1b1b1, 0x00b2b2b2 };
  guint64 updates;

  g_assert_true (call_listener (f, LISTENER, "Scanout",
                                g_variant_new ("(uuuu@ay)", 4, 3, 16, KD_PIXMAN_X8R8G8B8,
                                               bytes_variant (frame, sizeof frame)), NULL, NULL));
  send_update_no_reply (f, 1, 1, 2, 1, a);
  listener_sync (f);
  g_assert_cmphex (fb->pixels[1 * 4 + 2], ==, 0xa2a2a2);
  stats = kd_display_client_get_stats (f->client);
  g_assert_cmpuint (stats->unchanged, ==, 0);
  updates = stats->updates;

  /* The same again: dropped, counted. */
  send_update_no_reply (f, 1, 1, 2, 1, a);
  listener_sync (f);
  stats = kd_display_client_get_stats (f->client);
  g_assert_cmpuint (stats->unchanged, ==, 1);
  g_assert_cmpuint (stats->updates, ==, updates + 2);
  g_assert_cmphex (fb->pixels[1 * 4 + 1], ==, 0xa1a1a1);

  /* Something else there, then the first again: applied. */
  send_update_no_reply (f, 1, 1, 2, 1, b);
  listener_sync (f);
  g_assert_cmphex (fb->pixels[1 * 4 + 2], ==, 0xb2b2b2);
  send_update_no_reply (f, 1, 1, 2, 1, a);
  listener_sync (f);
  g_assert_cmphex (fb->pixels[1 * 4 + 2], ==, 0xa2a2a2);

  /* A smaller overlapping update in between counts too. */
  send_update_no_reply (f, 2, 1, 1, 1, b);
  listener_sync (f);
  send_update_no_reply (f, 1, 1, 2, 1, a);
  listener_sync (f);
  g_assert_cmphex (fb->pixels[1 * 4 + 2], ==, 0xa2a2a2);

  /* Disable blacks the frame: the same update afterwards is applied. */
  g_assert_true (call_listener (f, LISTENER, "Disable", NULL, NULL, NULL));
  g_assert_cmphex (fb->pixels[1 * 4 + 2], ==, 0);
  send_update_no_reply (f, 1, 1, 2, 1, a);
  listener_sync (f);
  g_assert_cmphex (fb->pixels[1 * 4 + 2], ==, 0xa2a2a2);

  /* A call that wants a reply is always handled. */
  g_assert_true (call_listener (f, LISTENER, "Update",
                                g_variant_new ("(iiiiuu@ay)", 1, 1, 2, 1, 8, KD_PIXMAN_X8R8G8B8,
                                               bytes_variant (a, sizeof a)), NULL, NULL));
  stats = kd_display_client_get_stats (f->client);
  g_assert_cmpuint (stats->unchanged, ==, 1);
  g_assert_cmpuint (stats->refused, ==, 0);
}

static void
test_client_console_size_change (Fixture *f, gconstpointer data)
{
  KdDisplayFramebuffer *fb = kd_display_client_get_framebuffer (f->client);
  guint32 frame[4 * 2], line[6];
  guint i;

  for (i = 0; i < G_N_ELEMENTS (frame); i++)
    frame[i] = 0x010101 * i;
  for (i = 0; i < G_N_ELEMENTS (line); i++)
    line[i] = 0xff0000;
  /* As in QEMU, the console's size is the scanout's. */
  kd_display1_console_set_width (f->console, 4);
  kd_display1_console_set_height (f->console, 2);
  {
    guint w = 0, h = 0;

    while (w != 4 || h != 2)
      {
        g_main_context_iteration (NULL, TRUE);
        kd_display_client_get_console_size (f->client, &w, &h);
      }
  }
  g_assert_true (call_listener (f, LISTENER, "Scanout",
                                g_variant_new ("(uuuu@ay)", 4, 2, 16, KD_PIXMAN_X8R8G8B8,
                                               bytes_variant (frame, sizeof frame)), NULL, NULL));
  /* QEMU 7.2 on a mode switch: no Scanout; an Update for the new size may
   * come before the console's new Width/Height. It is held, then applied. */
  g_assert_true (call_listener (f, LISTENER, "Update",
                                g_variant_new ("(iiiiuu@ay)", 0, 2, 6, 1, 24, KD_PIXMAN_X8R8G8B8,
                                               bytes_variant (line, sizeof line)), NULL, NULL));
  g_assert_cmpuint (fb->width, ==, 4);
  kd_display1_console_set_width (f->console, 6);
  kd_display1_console_set_height (f->console, 3);
  while (fb->width != 6)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (fb->height, ==, 3);
  g_assert_cmphex (fb->pixels[2 * 6 + 5], ==, 0xff0000);    /* the held update */
  g_assert_cmphex (fb->pixels[1 * 6 + 3], ==, 0x070707);    /* kept from the old frame */
  g_assert_cmphex (fb->pixels[0 * 6 + 5], ==, 0);           /* new area: black */
  g_assert_cmpuint (f->resized, ==, 2);
  g_assert_cmpuint (kd_display_client_get_stats (f->client)->updates, ==, 1);
}

static void
test_client_shared_map (Fixture *f, gconstpointer data)
{
  KdDisplayFramebuffer *fb = kd_display_client_get_framebuffer (f->client);
  const KdDisplayClientStats *stats = kd_display_client_get_stats (f->client);
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  g_autoptr(GUnixFDList) small = g_unix_fd_list_new ();
  int memfd = memfd_create ("fake-scanout", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  const gsize offset = 64, stride = 16, len = offset + 3 * stride;
  guint32 *px;
  guint8 *map;
  g_autofree char *err = NULL;
  int y;

  g_assert_cmpint (ftruncate (memfd, (off_t) len), ==, 0);
  map = mmap (NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  g_assert_true (map != MAP_FAILED);
  for (y = 0; y < 3; y++)
    {
      px = (guint32 *) (map + offset + y * stride);
      px[0] = px[1] = px[2] = 0x00100000u * (guint32) (y + 1);
    }
  g_unix_fd_list_append (fds, memfd, NULL);
  g_assert_true (call_listener (f, LISTENER_MAP, "ScanoutMap",
                                g_variant_new ("(huuuuu)", 0, (guint) offset, 3, 3, (guint) stride,
                                               KD_PIXMAN_X8R8G8B8), fds, NULL));
  g_assert_cmpuint (fb->width, ==, 3);
  g_assert_cmphex (fb->pixels[2 * 3 + 1], ==, 0x300000);
  g_assert_cmpuint (stats->map_scanouts, ==, 1);

  /* QEMU draws into the shared memory and says where. */
  px = (guint32 *) (map + offset + 1 * stride);
  px[2] = 0x00abcdef;
  g_assert_true (call_listener (f, LISTENER_MAP, "UpdateMap",
                                g_variant_new ("(iiii)", 2, 1, 1, 1), NULL, NULL));
  g_assert_cmphex (fb->pixels[1 * 3 + 2], ==, 0xabcdef);
  g_assert_false (call_listener (f, LISTENER_MAP, "UpdateMap",
                                 g_variant_new ("(iiii)", 2, 2, 2, 1), NULL, &err));
  g_assert_cmpstr (err, ==, "org.freedesktop.DBus.Error.InvalidArgs");
  g_clear_pointer (&err, g_free);

  /* A peer that shrinks the file under us: refused, no SIGBUS. */
  g_assert_cmpint (ftruncate (memfd, 8), ==, 0);
  g_assert_false (call_listener (f, LISTENER_MAP, "UpdateMap",
                                 g_variant_new ("(iiii)", 0, 2, 3, 1), NULL, NULL));

  /* A mapping that does not hold the frame it describes is refused. */
  g_unix_fd_list_append (small, memfd, NULL);
  g_assert_false (call_listener (f, LISTENER_MAP, "ScanoutMap",
                                 g_variant_new ("(huuuuu)", 0, 0, 3, 3, 16, KD_PIXMAN_X8R8G8B8),
                                 small, &err));
  g_assert_cmpstr (err, ==, "org.freedesktop.DBus.Error.InvalidArgs");
  g_assert_false (call_listener (f, LISTENER_MAP, "UpdateMap",
                                 g_variant_new ("(iiii)", 0, 0, 1, 1), NULL, NULL));
  munmap (map, len);
  close (memfd);
}

static void
test_client_cursor_and_input (Fixture *f, gconstpointer data)
{
  const KdDisplayCursor *cursor = kd_display_client_get_cursor (f->client);
  guint32 shape[2 * 2] = { 0xff000000, 0x00ffffff, 0xffff0000, 0x80808080 };

  g_assert_true (call_listener (f, LISTENER, "CursorDefine",
                                g_variant_new ("(iiii@ay)", 2, 2, 1, 5,
                                               bytes_variant (shape, sizeof shape)), NULL, NULL));
  g_assert_cmpuint (f->cursor_shapes, ==, 1);
  g_assert_cmpuint (cursor->width, ==, 2);
  g_assert_cmpint (cursor->hot_y, ==, 1);                  /* clamped into the shape */
  g_assert_cmphex (cursor->pixels[2], ==, 0xffff0000);
  g_assert_false (call_listener (f, LISTENER, "CursorDefine",
                                 g_variant_new ("(iiii@ay)", 2, 3, 0, 0,
                                                bytes_variant (shape, sizeof shape)), NULL, NULL));
  g_assert_false (call_listener (f, LISTENER, "CursorDefine",
                                 g_variant_new ("(iiii@ay)", 100000, 1, 0, 0,
                                                bytes_variant (shape, sizeof shape)), NULL, NULL));
  g_assert_true (call_listener (f, LISTENER, "MouseSet", g_variant_new ("(iii)", 7, 8, 1), NULL, NULL));
  g_assert_true (cursor->visible);
  g_assert_cmpint (cursor->x, ==, 7);
  g_assert_cmpuint (f->cursor_moves, ==, 1);

  kd_display_client_key (f->client, 0x1e, TRUE);
  kd_display_client_key (f->client, 0x1e, FALSE);
  kd_display_client_key (f->client, 0xc8, TRUE);
  kd_display_client_mouse_abs (f->client, 10, 20);
  kd_display_client_mouse_button (f->client, 2, TRUE);
  kd_display_client_mouse_button (f->client, 2, FALSE);
  while (f->keys->len < 3 || f->buttons->len < 2)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (g_array_index (f->keys, gint, 0), ==, 0x1e);
  g_assert_cmpint (g_array_index (f->keys, gint, 1), ==, -0x1e);
  g_assert_cmpint (g_array_index (f->keys, gint, 2), ==, 0xc8);
  g_assert_cmpuint (f->abs_moves->len, ==, 2);
  g_assert_cmpuint (g_array_index (f->abs_moves, guint, 1), ==, 20);
  g_assert_cmpint (g_array_index (f->buttons, int, 0), ==, 3);
  g_assert_cmpint (g_array_index (f->buttons, int, 1), ==, -3);

  /* The guest's mouse turns relative. */
  kd_display1_mouse_set_is_absolute (f->mouse, FALSE);
  while (f->mouse_mode != 0)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (kd_display_client_mouse_is_absolute (f->client));
  kd_display_client_mouse_rel (f->client, 4, -1);
  while (f->rel_moves->len < 2)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (g_array_index (f->rel_moves, int, 0), ==, 4);
  g_assert_cmpint (g_array_index (f->rel_moves, int, 1), ==, -1);
}

static void
test_client_closed (Fixture *f, gconstpointer data)
{
  g_assert_null (f->closed);
  g_dbus_connection_close_sync (f->conn, NULL, NULL);
  while (f->closed == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_nonnull (strstr (f->closed, "QEMU closed"));
  /* Input after the end is dropped quietly. */
  kd_display_client_key (f->client, 0x1e, TRUE);
}

static void
test_client_register_refused (Fixture *f, gconstpointer data)
{
  /* QEMU refuses the listener: the open fails with its words, and the
   * listener connection already under way is dropped cleanly. */
  g_assert_null (f->client);
  g_assert_nonnull (f->open_error);
  g_test_message ("open error: %s", f->open_error->message);
  g_assert_nonnull (strstr (f->open_error->message, "no more listeners"));
  g_assert_nonnull (strstr (f->open_error->message, "cannot register a display listener"));
  drain ();
}

static void
test_client_refused_peer (void)
{
  /* A peer that closes at once: the open fails with an error, no crash. */
  int pair[2];
  Fixture f = { 0 };

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), ==, 0);
  close (pair[0]);
  kd_display_client_new_async (pair[1], NULL, NULL, NULL, on_opened, &f);
  iterate_until (&f.opened);
  g_assert_null (f.client);
  g_assert_nonnull (f.open_error);
  g_clear_error (&f.open_error);
}


/* ------------------------------------------------------------------ */
/* The VNC front end over the client, with an RFB viewer written here */

typedef struct {
  Fixture         *f;
  KdDisplayVnc    *vnc;
  GSocket         *sock;
  GByteArray      *in;
} Viewer;

static void
on_vnc_resized (KdDisplayClient *c, gpointer user_data)
{
  Viewer *v = user_data;

  v->f->resized++;
  if (v->vnc != NULL)
    kd_display_vnc_resized (v->vnc);
}

static void
on_vnc_mouse_mode (KdDisplayClient *c, gboolean absolute, gpointer user_data)
{
  ((Viewer *) user_data)->f->mouse_mode = absolute;
}

static void
viewer_read (Viewer *v, guint8 *out, gsize n)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (v->in->len < n)
    {
      guint8 buf[65536];
      g_autoptr(GError) error = NULL;
      gssize got = g_socket_receive (v->sock, (char *) buf, sizeof buf, NULL, &error);

      if (got > 0)
        g_byte_array_append (v->in, buf, (guint) got);
      else if (got == 0)
        g_error ("the VNC server closed the connection");
      else
        {
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
          g_assert_cmpint (g_get_monotonic_time (), <, deadline);
          g_main_context_iteration (NULL, FALSE);
          g_usleep (1000);
        }
    }
  if (out != NULL)
    memcpy (out, v->in->data, n);
  g_byte_array_remove_range (v->in, 0, (guint) n);
}

static void
viewer_send (Viewer *v, const void *data, gsize n)
{
  g_assert_cmpint (g_socket_send (v->sock, data, n, NULL, NULL), ==, (gssize) n);
  drain ();
}

static GSocket *
viewer_connect (Viewer *v)
{
  g_autoptr(GSocketClient) sc = g_socket_client_new ();
  g_autoptr(GSocketConnectable) addr = g_network_address_new ("127.0.0.1", kd_display_vnc_get_port (v->vnc));
  GSocketConnection *conn = g_socket_client_connect (sc, addr, NULL, NULL);
  GSocket *sock;

  g_assert_nonnull (conn);
  sock = g_object_ref (g_socket_connection_get_socket (conn));
  g_object_set_data_full (G_OBJECT (sock), "conn", conn, g_object_unref);
  g_socket_set_blocking (sock, FALSE);
  return sock;
}

/* Version, security (VNC auth only), the DES answer; TRUE when accepted. */
static gboolean
viewer_auth (Viewer *v, const char *password)
{
  guint8 version[12], n, types[8], challenge[16], response[16], result[4];

  viewer_read (v, version, 12);
  g_assert_cmpmem (version, 4, "RFB ", 4);
  viewer_send (v, "RFB 003.008\n", 12);
  viewer_read (v, &n, 1);
  g_assert_cmpuint (n, ==, 1);
  viewer_read (v, types, n);
  g_assert_cmpuint (types[0], ==, 2);      /* VNC authentication, never None (1) */
  viewer_send (v, "\2", 1);
  viewer_read (v, challenge, 16);
  vnc_response (password, challenge, response);
  viewer_send (v, response, 16);
  viewer_read (v, result, 4);
  return result[3] == 0 && result[0] == 0;
}

static void
viewer_init (Viewer *v, guint16 *w, guint16 *h)
{
  guint8 init[24], name[64];
  guint32 name_len;
  static const guint8 encodings[] = {
    2, 0, 0, 3,
    0, 0, 0, 0,                 /* raw */
    0xff, 0xff, 0xff, 0x11,     /* -239 rich cursor */
    0xff, 0xff, 0xff, 0x21,     /* -223 NewFBSize */
  };

  viewer_send (v, "\1", 1);
  viewer_read (v, init, 24);
  *w = (guint16) (init[0] << 8 | init[1]);
  *h = (guint16) (init[2] << 8 | init[3]);
  g_assert_cmpuint (init[4], ==, 32);        /* bits per pixel */
  g_assert_cmpuint (init[14], ==, 16);       /* red shift: xRGB as the framebuffer */
  g_assert_cmpuint (init[16], ==, 0);        /* blue shift */
  name_len = (guint32) init[20] << 24 | init[21] << 16 | init[22] << 8 | init[23];
  g_assert_cmpuint (name_len, <, sizeof name);
  viewer_read (v, name, name_len);
  g_assert_cmpmem (name, name_len, "fake-vm", 7);
  viewer_send (v, encodings, sizeof encodings);
}

static void
viewer_request (Viewer *v, gboolean incremental, guint16 w, guint16 h)
{
  guint8 msg[10] = { 3, incremental, 0, 0, 0, 0, w >> 8, w & 0xff, h >> 8, h & 0xff };

  viewer_send (v, msg, sizeof msg);
}

typedef struct {
  guint16 x, y, w, h;
  gint32  encoding;
  guint8 *data;
} Rect;

/* Reads one FramebufferUpdate; returns its rectangles (data for raw ones). */
static GArray *
viewer_update (Viewer *v)
{
  GArray *rects = g_array_new (FALSE, TRUE, sizeof (Rect));
  guint8 head[4];
  guint i, n;

  viewer_read (v, head, 4);
  g_assert_cmpuint (head[0], ==, 0);
  n = (guint) head[2] << 8 | head[3];
  for (i = 0; i < n; i++)
    {
      guint8 rh[12];
      Rect r;
      gsize len = 0;

      viewer_read (v, rh, 12);
      r.x = (guint16) (rh[0] << 8 | rh[1]);
      r.y = (guint16) (rh[2] << 8 | rh[3]);
      r.w = (guint16) (rh[4] << 8 | rh[5]);
      r.h = (guint16) (rh[6] << 8 | rh[7]);
      r.encoding = (gint32) ((guint32) rh[8] << 24 | rh[9] << 16 | rh[10] << 8 | rh[11]);
      if (r.encoding == 0)
        len = (gsize) r.w * r.h * 4;
      else if (r.encoding == -239)
        len = (gsize) r.w * r.h * 4 + (gsize) ((r.w + 7) / 8) * r.h;
      else
        g_assert_cmpint (r.encoding, ==, -223);
      r.data = g_malloc0 (len + 1);
      viewer_read (v, r.data, len);
      g_array_append_val (rects, r);
    }
  return rects;
}

static void
rects_free (GArray *rects)
{
  guint i;

  for (i = 0; i < rects->len; i++)
    g_free (g_array_index (rects, Rect, i).data);
  g_array_unref (rects);
}

static void
send_scanout (Fixture *f, guint w, guint h, guint32 base)
{
  g_autofree guint32 *px = g_new (guint32, w * h);
  guint i;

  for (i = 0; i < w * h; i++)
    px[i] = base + i;
  g_assert_true (call_listener (f, LISTENER, "Scanout",
                                g_variant_new ("(uuuu@ay)", w, h, w * 4, KD_PIXMAN_X8R8G8B8,
                                               bytes_variant (px, w * h * 4)), NULL, NULL));
}

static void
test_vnc_viewer (Fixture *f, gconstpointer data)
{
  g_autoptr(KdDisplayPasswords) passwords = kd_display_passwords_new ();
  g_autoptr(GError) error = NULL;
  KdDisplayFramebuffer *fb;
  Viewer v = { f, NULL, NULL, g_byte_array_new () };
  guint16 w, h;
  GArray *rects;
  guint i;
  gboolean saw_cursor = FALSE, saw_size = FALSE;

  /* The fixture's client reports resizes to the test; route them to VNC too. */
  kd_display_client_free (f->client);
  f->client = NULL;
  g_clear_object (&f->listener_conn);
  {
    KdDisplayClientCallbacks cb = { .resized = on_vnc_resized, .mouse_mode_changed = on_vnc_mouse_mode };
    int pair[2];
    g_autoptr(GSocket) s = NULL;
    g_autoptr(GSocketConnection) stream = NULL;

    g_clear_object (&f->conn);
    g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), ==, 0);
    s = g_socket_new_from_fd (pair[0], NULL);
    stream = g_socket_connection_factory_create_connection (s);
    g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (f->vm));
    g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (f->console));
    g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (f->keyboard));
    g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (f->mouse));
    g_dbus_connection_new (G_IO_STREAM (stream), f->guid,
                           G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_SERVER
                           | G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING,
                           NULL, NULL, on_fake_conn, f);
    f->opened = FALSE;
    kd_display_client_new_async (pair[1], &cb, &v, NULL, on_opened, f);
    iterate_until (&f->opened);
    g_assert_no_error (f->open_error);
    while (f->listener_conn == NULL)
      g_main_context_iteration (NULL, TRUE);
  }
  fb = kd_display_client_get_framebuffer (f->client);
  send_scanout (f, 8, 4, 0x102030);

  g_assert_true (kd_display_passwords_add (passwords, "pw1", 0, NULL));
  g_assert_null (kd_display_vnc_new (f->client, passwords, "localhost:0", &error));
  g_assert_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID);
  g_clear_error (&error);
  v.vnc = kd_display_vnc_new (f->client, passwords, "127.0.0.1:0", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (kd_display_vnc_get_port (v.vnc), >, 0);

  /* A wrong password is refused. */
  v.sock = viewer_connect (&v);
  g_assert_false (viewer_auth (&v, "nope"));
  g_socket_close (v.sock, NULL);
  g_object_set_data (G_OBJECT (v.sock), "conn", NULL);
  g_clear_object (&v.sock);
  g_byte_array_set_size (v.in, 0);

  v.sock = viewer_connect (&v);
  g_assert_true (viewer_auth (&v, "pw1"));
  viewer_init (&v, &w, &h);
  g_assert_cmpuint (w, ==, 8);
  g_assert_cmpuint (h, ==, 4);
  viewer_request (&v, FALSE, w, h);
  rects = viewer_update (&v);
  for (i = 0; i < rects->len; i++)
    {
      Rect *r = &g_array_index (rects, Rect, i);
      guint row;

      if (r->encoding != 0)
        continue;
      for (row = 0; row < r->h; row++)
        g_assert_cmpmem (r->data + (gsize) row * r->w * 4, (gsize) r->w * 4,
                         fb->pixels + (gsize) (r->y + row) * fb->width + r->x, (gsize) r->w * 4);
    }
  rects_free (rects);

  /* Input: a key, absolute motion and a button. */
  {
    static const guint8 key_a[] = { 4, 1, 0, 0, 0, 0, 0, 'a' };
    static const guint8 ptr[] = { 5, 1, 0, 3, 0, 2 };

    viewer_send (&v, key_a, sizeof key_a);
    viewer_send (&v, ptr, sizeof ptr);
    while (f->keys->len < 1 || f->buttons->len < 1 || f->abs_moves->len < 2)
      g_main_context_iteration (NULL, TRUE);
    g_assert_cmpint (g_array_index (f->keys, gint, 0), ==, 0x1e);
    g_assert_cmpuint (g_array_index (f->abs_moves, guint, 0), ==, 3);
    g_assert_cmpuint (g_array_index (f->abs_moves, guint, 1), ==, 2);
    g_assert_cmpint (g_array_index (f->buttons, int, 0), ==, 1);
  }

  /* A cursor shape and a new size reach the viewer. */
  {
    guint32 shape[4] = { 0xff112233, 0x00000000, 0xffffffff, 0xff000000 };

    g_assert_true (call_listener (f, LISTENER, "CursorDefine",
                                  g_variant_new ("(iiii@ay)", 2, 2, 0, 0,
                                                 bytes_variant (shape, sizeof shape)), NULL, NULL));
    kd_display_vnc_cursor_changed (v.vnc, TRUE);
  }
  for (i = 0; !saw_cursor; i++)
    {
      guint j;

      g_assert_cmpuint (i, <, 5);
      viewer_request (&v, TRUE, w, h);
      rects = viewer_update (&v);
      for (j = 0; j < rects->len; j++)
        {
          Rect *r = &g_array_index (rects, Rect, j);

          if (r->encoding != -239)
            continue;
          saw_cursor = TRUE;
          g_assert_cmpuint (r->w, ==, 2);
          /* rich pixels, then the mask: opaque pixels 0, 2, 3 */
          g_assert_cmphex (r->data[0] | r->data[1] << 8 | r->data[2] << 16, ==, 0x112233);
          g_assert_cmphex (r->data[16], ==, 0x80);
          g_assert_cmphex (r->data[17], ==, 0xc0);
        }
      rects_free (rects);
    }

  /* The guest changes resolution: NewFBSize (libvncserver may send it at
   * once, on the request still pending). */
  send_scanout (f, 10, 5, 0x0);
  viewer_request (&v, TRUE, w, h);
  for (i = 0; !saw_size; i++)
    {
      guint j;

      g_assert_cmpuint (i, <, 5);
      rects = viewer_update (&v);
      for (j = 0; j < rects->len; j++)
        if (g_array_index (rects, Rect, j).encoding == -223)
          {
            saw_size = TRUE;
            w = g_array_index (rects, Rect, j).w;
            h = g_array_index (rects, Rect, j).h;
          }
      rects_free (rects);
    }
  g_assert_true (saw_cursor);
  g_assert_cmpuint (w, ==, 10);
  g_assert_cmpuint (h, ==, 5);

  /* Relative mouse: deltas between the viewer's positions. */
  kd_display1_mouse_set_is_absolute (f->mouse, FALSE);
  while (f->mouse_mode != 0)
    g_main_context_iteration (NULL, TRUE);
  {
    static const guint8 p1[] = { 5, 0, 0, 7, 0, 1 };

    viewer_send (&v, p1, sizeof p1);
    while (f->rel_moves->len < 2)
      g_main_context_iteration (NULL, TRUE);
    g_assert_cmpint (g_array_index (f->rel_moves, int, 0), ==, 4);
    g_assert_cmpint (g_array_index (f->rel_moves, int, 1), ==, -1);
    while (f->buttons->len < 2)          /* the left button was let go */
      g_main_context_iteration (NULL, TRUE);
    g_assert_cmpint (g_array_index (f->buttons, int, 1), ==, -1);
  }

  /* A viewer that leaves with keys down: they are released. */
  {
    static const guint8 key_b[] = { 4, 1, 0, 0, 0, 0, 0, 'b' };
    guint n = f->keys->len;

    viewer_send (&v, key_b, sizeof key_b);
    g_socket_close (v.sock, NULL);
    g_object_set_data (G_OBJECT (v.sock), "conn", NULL);
    g_clear_object (&v.sock);
    /* 'a' (pressed above, never released) and 'b' both come up. */
    while (f->keys->len < n + 3)
      g_main_context_iteration (NULL, TRUE);
    g_assert_cmpint (g_array_index (f->keys, gint, n), ==, 0x30);
    g_assert_cmpint (g_array_index (f->keys, gint, n + 1), ==, -0x1e);
    g_assert_cmpint (g_array_index (f->keys, gint, n + 2), ==, -0x30);
  }
  kd_display_vnc_free (v.vnc);
  g_byte_array_unref (v.in);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/display/image/checks", test_check_image);
  g_test_add_func ("/display/image/convert-formats", test_convert_formats);
  g_test_add_func ("/display/framebuffer/blit-bounds", test_blit_bounds);
  g_test_add_func ("/display/framebuffer/damage", test_damage);
  g_test_add_func ("/display/vnc/keymap", test_keymap);
  g_test_add_func ("/display/vnc/passwords", test_passwords);
  g_test_add ("/display/client/properties", Fixture, NULL, fixture_setup,
              test_client_properties, fixture_teardown);
  g_test_add ("/display/client/scanout-update", Fixture, NULL, fixture_setup,
              test_client_scanout_update, fixture_teardown);
  g_test_add ("/display/client/unchanged-updates", Fixture, NULL, fixture_setup,
              test_client_unchanged_updates, fixture_teardown);
  g_test_add ("/display/client/console-size-change", Fixture, NULL, fixture_setup,
              test_client_console_size_change, fixture_teardown);
  g_test_add ("/display/client/shared-map", Fixture, NULL, fixture_setup,
              test_client_shared_map, fixture_teardown);
  g_test_add ("/display/client/cursor-and-input", Fixture, NULL, fixture_setup,
              test_client_cursor_and_input, fixture_teardown);
  g_test_add ("/display/client/closed", Fixture, NULL, fixture_setup,
              test_client_closed, fixture_teardown);
  g_test_add_func ("/display/client/refused-peer", test_client_refused_peer);
  g_test_add ("/display/client/register-refused", Fixture, GINT_TO_POINTER (1), fixture_setup,
              test_client_register_refused, fixture_teardown);
  g_test_add ("/display/vnc/viewer", Fixture, NULL, fixture_setup,
              test_vnc_viewer, fixture_teardown);
  return g_test_run ();
}
