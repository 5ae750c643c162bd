/*
 * kd-broker-display.c: kvmdesk-display processes. A desktop whose template
 * has display=dbus has no VNC server in QEMU: QEMU exports its display
 * over D-Bus and one kvmdesk-display process per running desktop serves it
 * as VNC (src/display). kvmdeskd starts that process when the desktop
 * comes up on a host whose libvirtd runs on this machine, restarts it
 * with backoff when it dies while the guest runs (the guest keeps running;
 * the user reconnects), stops it with the desktop, and gives it one-time
 * VNC passwords on its stdin for the console gateway and native viewers.
 *
 * The process contract (kvmdesk-display --help):
 *   argv   --connect URI --domain NAME --listen ADDR:0
 *   stdin  "password SECRET UNTIL\n" (UNIX seconds), "quit\n"; EOF ends it
 *   stdout one line "ready port=P width=W height=H" once it serves
 *   stderr sentences; the last one is shown as its last error
 */
#include "kd-broker-priv.h"
#include "kd-broker-state.h"

#include "common/kd-error.h"
#include "common/kd-random.h"
#include "common/kd-time.h"

#include <signal.h>
#include <string.h>

#define KD_DISPLAY_RESTART_MIN_SEC 1
#define KD_DISPLAY_RESTART_MAX_SEC 30
#define KD_DISPLAY_STOP_GRACE_SEC  3
#define KD_DISPLAY_LINE_MAX        1024

struct _KdDisplayProc {
  gint            refs;        /* the table's, and one per pending async call */
  gboolean        gone;        /* out of the table: callbacks do nothing */
  KdBroker       *broker;
  gint64          desktop_id;
  char           *desktop;
  char           *domain;
  char           *host;
  char           *uri;
  char           *listen;
  GSubprocess    *proc;
  GOutputStream  *control;
  GDataInputStream *out;
  GDataInputStream *err;
  GCancellable   *cancel;
  const char     *state;       /* "starting" | "running" | "restarting" | "stopped" | "failed" */
  gint64          port;
  gint64          width, height;
  char           *pid;
  char           *last_error;
  guint           restarts;
  guint           backoff;
  guint           restart_id;
  guint           kill_id;
  gboolean        wanted;      /* the desktop runs: keep a process */
};

static void kd_display_spawn (KdDisplayProc *p);

static KdDisplayProc *
kd_display_proc_ref (KdDisplayProc *p)
{
  p->refs++;
  return p;
}

static void
kd_display_proc_unref (KdDisplayProc *p)
{
  if (--p->refs > 0)
    return;
  g_clear_object (&p->cancel);
  g_clear_object (&p->proc);
  g_clear_object (&p->control);
  g_clear_object (&p->out);
  g_clear_object (&p->err);
  g_free (p->desktop);
  g_free (p->domain);
  g_free (p->host);
  g_free (p->uri);
  g_free (p->listen);
  g_free (p->pid);
  g_free (p->last_error);
  g_free (p);
}

/* Out of the table: its process is killed, its calls cancelled. */
static void
kd_display_proc_drop (KdDisplayProc *p)
{
  p->gone = TRUE;
  if (p->restart_id)
    g_source_remove (p->restart_id);
  if (p->kill_id)
    g_source_remove (p->kill_id);
  if (p->cancel)
    g_cancellable_cancel (p->cancel);
  if (p->proc != NULL)
    g_subprocess_force_exit (p->proc);
  kd_display_proc_unref (p);
}

void
kd_broker_displays_init (KdBroker *b)
{
  b->displays = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                       (GDestroyNotify) kd_display_proc_drop);
}

void
kd_broker_displays_fini (KdBroker *b)
{
  g_hash_table_destroy (b->displays);
}

/* The program: [display] program, else next to kvmdeskd (installed), else
 * in the build tree (src/daemon/kvmdeskd -> src/display/), else $PATH. */
static char *
kd_display_program (KdBroker *b)
{
  g_autofree char *self = NULL, *dir = NULL;
  const char *candidates[2];

  if (b->config->display_program != NULL && *b->config->display_program != '\0')
    return g_strdup (b->config->display_program);
  self = g_file_read_link ("/proc/self/exe", NULL);
  dir = self ? g_path_get_dirname (self) : NULL;
  if (dir != NULL)
    {
      g_autofree char *sibling = g_build_filename (dir, "kvmdesk-display", NULL);
      g_autofree char *tree = g_build_filename (dir, "..", "display", "kvmdesk-display", NULL);
      candidates[0] = sibling;
      candidates[1] = tree;
      for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
        if (g_file_test (candidates[i], G_FILE_TEST_IS_EXECUTABLE))
          return g_canonicalize_filename (candidates[i], NULL);
    }
  return g_find_program_in_path ("kvmdesk-display");
}

static void
kd_display_event (KdDisplayProc *p, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
kd_display_event (KdDisplayProc *p, const char *fmt, ...)
{
  g_autoptr(KdDesktopRow) row = kd_store_desktop_get (p->broker->store, p->desktop_id, NULL);
  g_autofree char *msg = NULL;
  va_list ap;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (row != NULL)
    kd_broker_desktop_event (p->broker, row, NULL, "display", row->state, row->state,
                             "desktop '%s': %s", row->name, msg);
}

static gboolean
kd_display_restart_cb (gpointer data)
{
  KdDisplayProc *p = data;

  p->restart_id = 0;
  if (p->wanted && !p->gone)
    kd_display_spawn (p);
  return G_SOURCE_REMOVE;
}

static void
kd_display_exited (GObject *src, GAsyncResult *res, gpointer data)
{
  GSubprocess *proc = G_SUBPROCESS (src);
  KdDisplayProc *p = data;
  g_autoptr(GError) error = NULL;
  g_autofree char *how = NULL;

  if (!g_subprocess_wait_finish (proc, res, &error) || p->gone || proc != p->proc)
    {
      kd_display_proc_unref (p);
      return;
    }
  kd_display_proc_unref (p);
  if (p->kill_id)
    {
      g_source_remove (p->kill_id);
      p->kill_id = 0;
    }
  how = g_subprocess_get_if_signaled (proc)
          ? g_strdup_printf ("killed by signal %d", g_subprocess_get_term_sig (proc))
          : g_strdup_printf ("exit status %d", g_subprocess_get_exit_status (proc));
  g_clear_object (&p->proc);
  g_clear_object (&p->control);
  p->port = 0;
  if (!p->wanted)
    {
      p->state = "stopped";
      return;
    }
  if (!g_subprocess_get_if_signaled (proc) && g_subprocess_get_exit_status (proc) == 0)
    {
      /* It ends by itself with 0 when the VM stopped: the desktop's own
       * state change follows. Should the desktop still run, the next
       * reconciler pass starts a new one. */
      p->state = "stopped";
      p->wanted = FALSE;
      g_debug ("kvmdesk-display of desktop '%s' ended: %s", p->desktop,
               p->last_error ? p->last_error : "exit status 0");
      return;
    }
  p->restarts++;
  p->state = "restarting";
  p->backoff = p->backoff == 0 ? KD_DISPLAY_RESTART_MIN_SEC : MIN (p->backoff * 2, KD_DISPLAY_RESTART_MAX_SEC);
  kd_display_event (p, "kvmdesk-display (pid %s) ended (%s%s%s) while the desktop runs; started again in %u s",
                    p->pid ? p->pid : "?", how, p->last_error ? ": " : "",
                    p->last_error ? p->last_error : "", p->backoff);
  p->restart_id = g_timeout_add_seconds (p->backoff, kd_display_restart_cb, p);
}

/* "ready port=P width=W height=H" */
static gboolean
kd_display_parse_ready (KdDisplayProc *p, const char *line)
{
  g_auto(GStrv) words = NULL;
  gint64 port = -1, w = 0, h = 0;

  if (!g_str_has_prefix (line, "ready "))
    return FALSE;
  words = g_strsplit (line + 6, " ", 8);
  for (guint i = 0; words[i] != NULL; i++)
    {
      gint64 *into = g_str_has_prefix (words[i], "port=") ? &port
                   : g_str_has_prefix (words[i], "width=") ? &w
                   : g_str_has_prefix (words[i], "height=") ? &h : NULL;
      const char *v = into ? strchr (words[i], '=') + 1 : NULL;
      if (into != NULL && !g_ascii_string_to_signed (v, 10, 0, 65535, into, NULL))
        return FALSE;
    }
  if (port <= 0)
    return FALSE;
  p->port = port;
  p->width = w;
  p->height = h;
  return TRUE;
}

static void kd_display_read_out (KdDisplayProc *p);
static void kd_display_read_err (KdDisplayProc *p);

static void
kd_display_out_line (GObject *src, GAsyncResult *res, gpointer data)
{
  KdDisplayProc *p = data;
  g_autoptr(GError) error = NULL;
  gsize len = 0;
  g_autofree char *line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (src), res,
                                                                    &len, &error);

  if (line == NULL || p->gone || G_DATA_INPUT_STREAM (src) != p->out)
    {
      kd_display_proc_unref (p);
      return;   /* EOF, cancelled or not UTF-8: nothing more to learn */
    }
  kd_display_proc_unref (p);   /* not gone: the table still holds it */
  if (p->state != NULL && g_str_equal (p->state, "starting") && kd_display_parse_ready (p, line))
    {
      p->state = "running";
      p->backoff = 0;
      g_clear_pointer (&p->last_error, g_free);
      kd_display_event (p, "kvmdesk-display (pid %s) serves its display on %s port %" G_GINT64_FORMAT
                        " (%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT ")", p->pid, p->listen, p->port,
                        p->width, p->height);
    }
  kd_display_read_out (p);
}

static void
kd_display_err_line (GObject *src, GAsyncResult *res, gpointer data)
{
  KdDisplayProc *p = data;
  g_autoptr(GError) error = NULL;
  gsize len = 0;
  g_autofree char *line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (src), res,
                                                                    &len, &error);

  if (line == NULL || p->gone || G_DATA_INPUT_STREAM (src) != p->err)
    {
      kd_display_proc_unref (p);
      return;
    }
  kd_display_proc_unref (p);
  g_strstrip (line);
  if (*line != '\0')
    {
      g_message ("kvmdesk-display of desktop '%s': %.*s", p->desktop, KD_DISPLAY_LINE_MAX, line);
      g_free (p->last_error);
      p->last_error = g_strndup (line, KD_DISPLAY_LINE_MAX);
    }
  kd_display_read_err (p);
}

static void
kd_display_read_out (KdDisplayProc *p)
{
  g_data_input_stream_read_line_async (p->out, G_PRIORITY_DEFAULT, p->cancel, kd_display_out_line,
                                       kd_display_proc_ref (p));
}

static void
kd_display_read_err (KdDisplayProc *p)
{
  g_data_input_stream_read_line_async (p->err, G_PRIORITY_DEFAULT, p->cancel, kd_display_err_line,
                                       kd_display_proc_ref (p));
}

/* One control line to the process, never blocking the main loop: a line
 * is shorter than PIPE_BUF, so a pipe takes it whole or not at all; a
 * process that stopped reading is an error, not a hang of kvmdeskd. */
static gboolean
kd_display_control_write (KdDisplayProc *p, const char *line, GError **error)
{
  gssize len = (gssize) strlen (line);
  gssize n;

  if (p->control == NULL)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_UNAVAILABLE, "its control pipe is closed");
      return FALSE;
    }
  n = g_pollable_output_stream_write_nonblocking (G_POLLABLE_OUTPUT_STREAM (p->control), line, len,
                                                  NULL, error);
  if (n == len)
    return TRUE;
  if (n >= 0 || (error != NULL && g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)))
    {
      g_clear_error (error);
      g_set_error (error, KD_ERROR, KD_ERROR_UNAVAILABLE, "it does not read its control pipe");
    }
  return FALSE;
}

/* It could not be started: said once per reason; the next reconciler
 * pass tries again. */
static void
kd_display_failed (KdDisplayProc *p, char *reason)
{
  if (g_strcmp0 (p->last_error, reason) != 0)
    kd_display_event (p, "%s", reason);
  g_free (p->last_error);
  p->last_error = reason;
  p->state = "failed";
  p->wanted = FALSE;
}

static void
kd_display_spawn (KdDisplayProc *p)
{
  g_autofree char *program = kd_display_program (p->broker);
  g_autoptr(GError) error = NULL;
  g_autofree char *listen = g_strdup_printf ("%s:0", p->listen);
  const char *argv[] = { program, "--connect", p->uri, "--domain", p->domain, "--listen", listen, NULL };

  if (p->cancel)
    g_cancellable_cancel (p->cancel);
  g_clear_object (&p->cancel);
  g_clear_object (&p->out);
  g_clear_object (&p->err);
  p->cancel = g_cancellable_new ();
  if (program == NULL)
    {
      kd_display_failed (p, g_strdup ("the kvmdesk-display program was not found (set [display] program)"));
      return;
    }
  p->proc = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                     G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  if (p->proc == NULL)
    {
      kd_display_failed (p, g_strdup_printf ("cannot start %s: %s", program, error->message));
      return;
    }
  g_free (p->pid);
  p->pid = g_strdup (g_subprocess_get_identifier (p->proc));
  p->state = "starting";
  p->port = 0;
  p->control = g_object_ref (g_subprocess_get_stdin_pipe (p->proc));
  p->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (p->proc));
  p->err = g_data_input_stream_new (g_subprocess_get_stderr_pipe (p->proc));
  g_filter_input_stream_set_close_base_stream (G_FILTER_INPUT_STREAM (p->out), TRUE);
  kd_display_read_out (p);
  kd_display_read_err (p);
  g_subprocess_wait_async (p->proc, p->cancel, kd_display_exited, kd_display_proc_ref (p));
}

static gboolean
kd_display_kill_cb (gpointer data)
{
  KdDisplayProc *p = data;

  p->kill_id = 0;
  if (p->proc != NULL)
    g_subprocess_send_signal (p->proc, SIGKILL);
  return G_SOURCE_REMOVE;
}

/* Ends the process: "quit", then SIGTERM; SIGKILL after a grace period. */
static void
kd_display_stop (KdDisplayProc *p)
{
  p->wanted = FALSE;
  if (p->restart_id)
    {
      g_source_remove (p->restart_id);
      p->restart_id = 0;
    }
  if (p->proc == NULL)
    {
      p->state = "stopped";
      return;
    }
  kd_display_control_write (p, "quit\n", NULL);
  g_clear_object (&p->control);
  g_subprocess_send_signal (p->proc, SIGTERM);
  if (p->kill_id == 0)
    p->kill_id = g_timeout_add_seconds (KD_DISPLAY_STOP_GRACE_SEC, kd_display_kill_cb, p);
}

static gboolean
kd_display_template_is_dbus (KdBroker *b, gint64 template_id)
{
  g_autoptr(KdTemplateRow) tpl = kd_store_template_get (b->store, template_id, NULL);
  return tpl != NULL && g_strcmp0 (tpl->display, "dbus") == 0;
}

/**
 * kd_broker_display_follow:
 * Called on every state change of a desktop (and by the reconciler): a
 * running D-Bus-display desktop on a local host gets its kvmdesk-display,
 * any other loses it.
 */
void
kd_broker_display_follow (KdBroker *b, const KdDesktopRow *row)
{
  KdDisplayProc *p = g_hash_table_lookup (b->displays, &row->id);
  KdBrokerHost *h = kd_broker_host_by_id (b, row->host_id);
  gboolean want = kd_desktop_state_is_up (row->state) && h != NULL && kd_broker_host_is_up (h) &&
                  !kd_hv_host_is_simulated (h->hv) && kd_hv_host_is_local (h->hv) &&
                  kd_display_template_is_dbus (b, row->template_id);

  if (p != NULL && want && g_strcmp0 (p->host, h->row->name) != 0)
    {
      /* moved to another host: a new process there */
      kd_display_stop (p);
      g_hash_table_remove (b->displays, &row->id);
      p = NULL;
    }
  if (!want)
    {
      if (p != NULL && p->wanted)
        kd_display_stop (p);
      return;
    }
  if (p == NULL)
    {
      gint64 *key = g_new (gint64, 1);
      *key = row->id;
      p = g_new0 (KdDisplayProc, 1);
      p->refs = 1;
      p->broker = b;
      p->desktop_id = row->id;
      p->desktop = g_strdup (row->name);
      p->domain = g_strdup (row->domain);
      p->host = g_strdup (h->row->name);
      p->uri = g_strdup (h->row->uri);
      p->listen = g_strdup (h->row->graphics_listen ? h->row->graphics_listen : "127.0.0.1");
      g_hash_table_insert (b->displays, key, p);
    }
  if (p->wanted)
    return;
  p->wanted = TRUE;
  if (p->proc == NULL && p->restart_id == 0)
    kd_display_spawn (p);
}

/**
 * kd_broker_display_forget:
 * The desktop is deleted: its process goes now.
 */
void
kd_broker_display_forget (KdBroker *b, gint64 desktop_id)
{
  KdDisplayProc *p = g_hash_table_lookup (b->displays, &desktop_id);

  if (p != NULL)
    {
      kd_display_stop (p);
      if (p->proc != NULL)
        g_subprocess_force_exit (p->proc);
      g_hash_table_remove (b->displays, &desktop_id);
    }
}

/**
 * kd_broker_display_get:
 * Returns: (nullable): the desktop's kvmdesk-display record (state, pid,
 * port, restarts, last error), or %NULL when it has none.
 */
const KdDisplayProc *
kd_broker_display_get (KdBroker *b, gint64 desktop_id)
{
  return g_hash_table_lookup (b->displays, &desktop_id);
}

void
kd_broker_display_info (const KdDisplayProc *p, KdBrokerDisplayInfo *out)
{
  out->state = p->state;
  out->pid = p->pid;
  out->port = p->port;
  out->listen = p->listen;
  out->restarts = p->restarts;
  out->last_error = p->last_error;
}

/**
 * kd_broker_display_password:
 * @until: UNIX seconds
 *
 * Gives the running process a one-time VNC password and says where it
 * listens. FALSE with KD_ERROR_UNAVAILABLE (naming its state and last
 * error) when it does not serve now.
 */
gboolean
kd_broker_display_password (KdBroker *b, gint64 desktop_id, const char *password, gint64 until,
                            char **out_address, gint64 *out_port, GError **error)
{
  KdDisplayProc *p = g_hash_table_lookup (b->displays, &desktop_id);
  g_autofree char *line = NULL;
  g_autoptr(GError) local = NULL;

  if (p == NULL || p->control == NULL || g_strcmp0 (p->state, "running") != 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_UNAVAILABLE,
                   "the display of this desktop (kvmdesk-display) is %s%s%s", p ? p->state : "not started",
                   p && p->last_error ? ": " : "", p && p->last_error ? p->last_error : "");
      return FALSE;
    }
  line = g_strdup_printf ("password %s %" G_GINT64_FORMAT "\n", password, until);
  if (!kd_display_control_write (p, line, &local))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_UNAVAILABLE,
                   "cannot reach the display of this desktop (kvmdesk-display): %s", local->message);
      return FALSE;
    }
  *out_address = g_strdup (p->listen);
  *out_port = p->port;
  return TRUE;
}

/**
 * kd_broker_displays_check:
 * Reconciler pass: every desktop's process follows its state again (a
 * kvmdeskd restart finds running D-Bus desktops without one).
 */
void
kd_broker_displays_check (KdBroker *b)
{
  g_autoptr(GPtrArray) desktops = kd_store_desktop_list (b->store, NULL);

  for (guint i = 0; desktops != NULL && i < desktops->len; i++)
    kd_broker_display_follow (b, desktops->pdata[i]);
}
