/*
 * kvmdesk-display: serves one VM's QEMU D-Bus display over VNC, outside
 * QEMU. One process per desktop, started by kvmdeskd (or a host's unit).
 *
 *   kvmdesk-display (--connect URI --domain NAME | --dbus-fd N)
 *                   [--listen ADDR:PORT] [--password-file PATH]
 *
 * Contract with the broker:
 *   stdin   one command a line: "password SECRET UNTIL" (UNTIL: UNIX
 *           seconds, 0 for none; several may be valid at once) and
 *           "quit". EOF makes us exit 0. Not read with --password-file
 *           (then the file, "SECRET [UNTIL]" lines, is re-read on SIGHUP).
 *   stdout  exactly one line once the D-Bus display is attached, VNC
 *           listens and QEMU's first frame is in (or 2 s later without
 *           one): "ready port=PORT width=W height=H"; nothing else.
 *   stderr  one sentence per problem; exit 1 on errors, 2 on bad
 *           arguments, 0 when the VM stops (QEMU's connection closed),
 *           on "quit", EOF on stdin, SIGTERM or SIGINT.
 *
 * This file is the program's plumbing only: the D-Bus client is
 * kd-display-client.c, the VNC server kd-display-vnc.c, and libvirt is
 * reached only through src/hv.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gunixinputstream.h>
#include <glib-unix.h>

#include "display/kd-display-client.h"
#include "display/kd-display-vnc.h"
#include "hv/kd-hv.h"

/* Attaching to QEMU and listening must be done within this time. */
#define KD_DISPLAY_STARTUP_TIMEOUT_SEC 30
/* Once attached, how long the ready line waits for QEMU's first frame
 * (which gives the real size; the console's properties can be stale). */
#define KD_DISPLAY_FIRST_FRAME_WAIT_MS 2000
/* Longest control line accepted on stdin. */
#define KD_DISPLAY_CONTROL_LINE_MAX    1024

#define EXIT_BAD_ARGUMENTS 2

typedef struct {
  GMainLoop          *loop;
  int                 status;
  char               *listen;
  char               *password_file;
  KdDisplayPasswords *passwords;
  KdDisplayClient    *client;
  KdDisplayVnc       *vnc;
  GDataInputStream   *control;
  GCancellable       *cancellable;
  guint               startup_timeout_id;
  guint               first_frame_id;
  gboolean            announced;
  gint64              started_us;
} KdDisplayProgram;

static void
program_exit (KdDisplayProgram *prog,
              int               status,
              const char       *format,
              ...) G_GNUC_PRINTF (3, 4);

static void
program_exit (KdDisplayProgram *prog,
              int               status,
              const char       *format,
              ...)
{
  if (format != NULL)
    {
      va_list args;
      g_autofree char *message = NULL;

      va_start (args, format);
      message = g_strdup_vprintf (format, args);
      va_end (args);
      fprintf (stderr, "kvmdesk-display: %s\n", message);
      fflush (stderr);
    }
  if (!g_main_loop_is_running (prog->loop) && prog->status < 0)
    {
      prog->status = status;
      return;
    }
  if (prog->status < 0)
    prog->status = status;
  g_main_loop_quit (prog->loop);
}

/* ------------------------------------------------------------------ */
/* Control from the broker */

static void read_control_line (KdDisplayProgram *prog);

static void
handle_control_line (KdDisplayProgram *prog,
                     const char       *line)
{
  g_auto(GStrv) words = g_strsplit (line, " ", -1);
  guint n = g_strv_length (words);

  if (n == 1 && g_str_equal (words[0], "quit"))
    {
      program_exit (prog, 0, NULL);
      return;
    }
  if (n == 3 && g_str_equal (words[0], "password"))
    {
      g_autoptr(GError) error = NULL;
      gint64 until = 0;
      gint64 now = g_get_real_time () / G_USEC_PER_SEC;

      if (!g_ascii_string_to_signed (words[2], 10, 0, G_MAXINT64, &until, NULL))
        fprintf (stderr, "kvmdesk-display: password refused: its expiry '%s' is not UNIX seconds.\n",
                 words[2]);
      else if (until != 0 && until < now)
        fprintf (stderr, "kvmdesk-display: password refused: it expired at %" G_GINT64_FORMAT ".\n",
                 until);
      else if (!kd_display_passwords_add (prog->passwords, words[1], until, &error))
        fprintf (stderr, "kvmdesk-display: password refused: %s.\n", error->message);
      memset (words[1], 0, strlen (words[1]));
      return;
    }
  fprintf (stderr, "kvmdesk-display: unknown command on stdin (expected "
           "'password SECRET UNTIL' or 'quit').\n");
}

static void
on_control_line (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  KdDisplayProgram *prog = user_data;
  g_autoptr(GError) error = NULL;
  gsize len = 0;
  g_autofree char *line = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source),
                                                                result, &len, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (line == NULL)
    {
      if (error != NULL)
        program_exit (prog, 1, "stdin failed: %s.", error->message);
      else
        program_exit (prog, 0, "stdin closed (the broker went away): exiting.");
      return;
    }
  if (len > KD_DISPLAY_CONTROL_LINE_MAX)
    fprintf (stderr, "kvmdesk-display: a control line longer than %d bytes was ignored.\n",
             KD_DISPLAY_CONTROL_LINE_MAX);
  else
    handle_control_line (prog, g_strchomp (line));
  if (line != NULL)
    memset (line, 0, len);
  read_control_line (prog);
}

static void
read_control_line (KdDisplayProgram *prog)
{
  g_data_input_stream_read_line_async (prog->control, G_PRIORITY_DEFAULT, prog->cancellable,
                                       on_control_line, prog);
}

static gboolean
on_sighup (gpointer user_data)
{
  KdDisplayProgram *prog = user_data;
  g_autoptr(GError) error = NULL;

  if (prog->password_file != NULL
      && !kd_display_passwords_load_file (prog->passwords, prog->password_file, &error))
    fprintf (stderr, "kvmdesk-display: passwords not reloaded: %s.\n", error->message);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_sigterm (gpointer user_data)
{
  program_exit (user_data, 0, NULL);
  return G_SOURCE_CONTINUE;
}

/* ------------------------------------------------------------------ */
/* The display */

static void announce_ready (KdDisplayProgram *prog);

static void
on_resized (KdDisplayClient *client,
            gpointer         user_data)
{
  KdDisplayProgram *prog = user_data;

  if (prog->vnc != NULL)
    kd_display_vnc_resized (prog->vnc);
}

static void
on_damaged (KdDisplayClient *client,
            gpointer         user_data)
{
  KdDisplayProgram *prog = user_data;

  if (prog->vnc != NULL)
    kd_display_vnc_damaged (prog->vnc);
  if (prog->vnc != NULL && !prog->announced && kd_display_client_has_frame (client))
    announce_ready (prog);
}

static void
on_cursor_changed (KdDisplayClient *client,
                   gboolean         shape_changed,
                   gpointer         user_data)
{
  KdDisplayProgram *prog = user_data;

  if (prog->vnc != NULL)
    kd_display_vnc_cursor_changed (prog->vnc, shape_changed);
}

static void
on_closed (KdDisplayClient *client,
           const char      *reason,
           gpointer         user_data)
{
  program_exit (user_data, 0, "the VM stopped: %s.", reason);
}

/* The one line on stdout: when attached, listening, and with the first
 * frame (or after waiting KD_DISPLAY_FIRST_FRAME_WAIT_MS for it). */
static void
announce_ready (KdDisplayProgram *prog)
{
  KdDisplayFramebuffer *fb = kd_display_client_get_framebuffer (prog->client);
  guint width, height;

  if (prog->announced || prog->vnc == NULL)
    return;
  prog->announced = TRUE;
  g_clear_handle_id (&prog->first_frame_id, g_source_remove);
  if (fb->pixels != NULL)
    {
      width = fb->width;
      height = fb->height;
    }
  else
    kd_display_client_get_console_size (prog->client, &width, &height);
  g_debug ("ready after %" G_GINT64_FORMAT " ms, %s",
           (g_get_monotonic_time () - prog->started_us) / 1000,
           kd_display_client_has_frame (prog->client) ? "with a frame" : "no frame yet");
  fprintf (stdout, "ready port=%u width=%u height=%u\n",
           kd_display_vnc_get_port (prog->vnc), width, height);
  fflush (stdout);
}

static gboolean
on_first_frame_timeout (gpointer user_data)
{
  KdDisplayProgram *prog = user_data;

  prog->first_frame_id = 0;
  announce_ready (prog);
  return G_SOURCE_REMOVE;
}

static void
on_client_ready (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  KdDisplayProgram *prog = user_data;
  g_autoptr(GError) error = NULL;
  KdDisplayFramebuffer *fb;

  prog->client = kd_display_client_new_finish (result, &error);
  if (prog->client == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        program_exit (prog, 1, "%s.", error->message);
      return;
    }
  prog->vnc = kd_display_vnc_new (prog->client, prog->passwords, prog->listen, &error);
  if (prog->vnc == NULL)
    {
      program_exit (prog, 1, "%s.", error->message);
      return;
    }
  /* Whatever arrived before the server existed is in its first frame. */
  fb = kd_display_client_get_framebuffer (prog->client);
  g_array_unref (kd_display_framebuffer_take_damage (fb));
  if (kd_display_client_get_cursor (prog->client)->pixels != NULL)
    kd_display_vnc_cursor_changed (prog->vnc, TRUE);
  g_clear_handle_id (&prog->startup_timeout_id, g_source_remove);
  g_debug ("attached to VM '%s' (%s), console '%s' (%s) in %" G_GINT64_FORMAT " ms",
           kd_display_client_get_vm_name (prog->client),
           kd_display_client_get_vm_uuid (prog->client),
           kd_display_client_get_console_label (prog->client),
           kd_display_client_get_console_type (prog->client),
           (g_get_monotonic_time () - prog->started_us) / 1000);
  if (kd_display_client_has_frame (prog->client))
    announce_ready (prog);
  else
    prog->first_frame_id = g_timeout_add (KD_DISPLAY_FIRST_FRAME_WAIT_MS,
                                          on_first_frame_timeout, prog);
}

static gboolean
on_startup_timeout (gpointer user_data)
{
  KdDisplayProgram *prog = user_data;

  prog->startup_timeout_id = 0;
  g_cancellable_cancel (prog->cancellable);
  program_exit (prog, 1, "QEMU's D-Bus display did not answer within %d seconds.",
                KD_DISPLAY_STARTUP_TIMEOUT_SEC);
  return G_SOURCE_REMOVE;
}

static int
open_domain_display (const char *uri,
                     const char *domain,
                     GError    **error)
{
  g_autoptr(KdHvHost) host = NULL;
  int fd;

  kd_hv_init ();
  host = kd_hv_host_new ("display", uri, NULL);
  if (!kd_hv_host_connect (host, error))
    return -1;
  fd = kd_hv_domain_open_graphics (host, domain, error);
  kd_hv_host_disconnect (host);
  return fd;
}

static gboolean
check_dbus_fd (int      fd,
               GError **error)
{
  struct stat st;

  if (fd < 3 || fstat (fd, &st) < 0 || !S_ISSOCK (st.st_mode))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--dbus-fd %d is not an open socket", fd);
      return FALSE;
    }
  if (fcntl (fd, F_SETFD, FD_CLOEXEC) < 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--dbus-fd %d: %s", fd, g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *uri = NULL;
  g_autofree char *domain = NULL;
  g_autofree char *listen = NULL;
  g_autofree char *password_file = NULL;
  int dbus_fd = -1;
  GOptionEntry entries[] = {
    { "connect", 0, 0, G_OPTION_ARG_STRING, &uri, "libvirt URI of the VM's host", "URI" },
    { "domain", 0, 0, G_OPTION_ARG_STRING, &domain, "the VM (libvirt domain name)", "NAME" },
    { "dbus-fd", 0, 0, G_OPTION_ARG_INT, &dbus_fd, "an inherited p2p D-Bus socket to QEMU's display", "N" },
    { "listen", 0, 0, G_OPTION_ARG_STRING, &listen, "VNC address (default 127.0.0.1:0: a free port)", "ADDR:PORT" },
    { "password-file", 0, 0, G_OPTION_ARG_FILENAME, &password_file,
      "VNC passwords, 'SECRET [UNTIL]' lines, re-read on SIGHUP (stdin is then not read)", "PATH" },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("- serve a VM's QEMU D-Bus display over VNC");
  g_autoptr(GError) error = NULL;
  KdDisplayProgram prog = { 0 };
  KdDisplayClientCallbacks callbacks = {
    .resized = on_resized,
    .damaged = on_damaged,
    .cursor_changed = on_cursor_changed,
    .closed = on_closed,
  };
  int fd;

  /* stdout carries the 'ready' line: logs (G_MESSAGES_DEBUG) go to stderr. */
  g_log_writer_default_set_use_stderr (TRUE);
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_help_enabled (context, TRUE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      fprintf (stderr, "kvmdesk-display: %s.\n", error->message);
      return EXIT_BAD_ARGUMENTS;
    }
  if (argc > 1)
    {
      fprintf (stderr, "kvmdesk-display: unexpected argument '%s'.\n", argv[1]);
      return EXIT_BAD_ARGUMENTS;
    }
  if ((dbus_fd >= 0) == (uri != NULL || domain != NULL)
      || (dbus_fd < 0 && (uri == NULL || domain == NULL)))
    {
      fprintf (stderr, "kvmdesk-display: give either --connect URI --domain NAME or --dbus-fd N.\n");
      return EXIT_BAD_ARGUMENTS;
    }
  if (listen != NULL && !kd_display_vnc_parse_listen (listen, NULL, &error))
    {
      fprintf (stderr, "kvmdesk-display: %s.\n", error->message);
      return EXIT_BAD_ARGUMENTS;
    }
  if (dbus_fd >= 0 && !check_dbus_fd (dbus_fd, &error))
    {
      fprintf (stderr, "kvmdesk-display: %s.\n", error->message);
      return EXIT_BAD_ARGUMENTS;
    }

  signal (SIGPIPE, SIG_IGN);
  prog.status = -1;
  prog.started_us = g_get_monotonic_time ();
  prog.loop = g_main_loop_new (NULL, FALSE);
  prog.listen = listen != NULL ? g_steal_pointer (&listen) : g_strdup ("127.0.0.1:0");
  prog.password_file = g_steal_pointer (&password_file);
  prog.passwords = kd_display_passwords_new ();
  prog.cancellable = g_cancellable_new ();

  if (prog.password_file != NULL
      && !kd_display_passwords_load_file (prog.passwords, prog.password_file, &error))
    {
      fprintf (stderr, "kvmdesk-display: %s.\n", error->message);
      return 1;
    }

  if (dbus_fd >= 0)
    fd = dbus_fd;
  else
    {
      fd = open_domain_display (uri, domain, &error);
      if (fd < 0)
        {
          fprintf (stderr, "kvmdesk-display: %s.\n", error->message);
          return 1;
        }
    }

  g_unix_signal_add (SIGTERM, on_sigterm, &prog);
  g_unix_signal_add (SIGINT, on_sigterm, &prog);
  g_unix_signal_add (SIGHUP, on_sighup, &prog);
  if (prog.password_file == NULL)
    {
      g_autoptr(GInputStream) in = g_unix_input_stream_new (STDIN_FILENO, FALSE);

      prog.control = g_data_input_stream_new (in);
      g_data_input_stream_set_newline_type (prog.control, G_DATA_STREAM_NEWLINE_TYPE_LF);
      read_control_line (&prog);
    }
  prog.startup_timeout_id = g_timeout_add_seconds (KD_DISPLAY_STARTUP_TIMEOUT_SEC,
                                                   on_startup_timeout, &prog);
  kd_display_client_new_async (fd, &callbacks, &prog, prog.cancellable, on_client_ready, &prog);

  if (prog.status < 0)
    g_main_loop_run (prog.loop);

  g_cancellable_cancel (prog.cancellable);
  g_clear_handle_id (&prog.startup_timeout_id, g_source_remove);
  g_clear_handle_id (&prog.first_frame_id, g_source_remove);
  g_clear_pointer (&prog.vnc, kd_display_vnc_free);
  if (prog.client != NULL)
    {
      const KdDisplayClientStats *st = kd_display_client_get_stats (prog.client);

      g_debug ("QEMU sent %" G_GUINT64_FORMAT " scanouts, %" G_GUINT64_FORMAT " updates (%"
               G_GUINT64_FORMAT " unchanged, dropped unread), %" G_GUINT64_FORMAT
               " shared-memory scanouts and %" G_GUINT64_FORMAT " updates; %" G_GUINT64_FORMAT
               " refused; %" G_GUINT64_FORMAT " image bytes",
               st->scanouts, st->updates, st->unchanged, st->map_scanouts, st->map_updates,
               st->refused, st->bytes);
    }
  g_clear_pointer (&prog.client, kd_display_client_free);
  g_clear_object (&prog.control);
  g_clear_object (&prog.cancellable);
  kd_display_passwords_free (prog.passwords);
  g_free (prog.listen);
  g_free (prog.password_file);
  g_main_loop_unref (prog.loop);
  return prog.status < 0 ? 0 : prog.status;
}
