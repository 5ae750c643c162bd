/*
 * kd-cli-commands.c: the kvmdesk commands, each one REST call (or two) and
 * its output, and the table that names them.
 *
 * Output rules: listings are aligned tables, shows are "key: value" lines,
 * actions print one line on stdout; with --json the server's answer is
 * printed pretty instead. Progress and waiting notes go to stderr. Nothing
 * here trusts the shape of an answer: missing members print as "-".
 */
#include "kd-cli-commands.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "kd-cli-format.h"

#define API "/api/v1"
#define KD_CLI_PASSWORD_MAX 1024

/* ---- helpers ------------------------------------------------------------- */

static gboolean
need_token (KdCli *cli, GError **error)
{
  if (cli->token != NULL)
    {
      kd_cli_http_set_token (cli->http, cli->token);
      return TRUE;
    }
  g_set_error (error, KD_CLI_HTTP_ERROR, 401, "not logged in to %s", cli->url);
  return FALSE;
}

static gboolean
call (KdCli *cli, const char *method, const char *path, JsonNode *body, JsonNode **answer,
      GError **error)
{
  g_autoptr(JsonNode) local = NULL;

  if (!need_token (cli, error))
    return FALSE;
  if (!kd_cli_http_call (cli->http, method, path, body, &local, error))
    return FALSE;
  if (answer != NULL)
    *answer = g_steal_pointer (&local);
  return TRUE;
}

static gboolean
expect_object (KdCli *cli, JsonNode *answer, GError **error)
{
  if (answer != NULL && JSON_NODE_HOLDS_OBJECT (answer))
    return TRUE;
  g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
               "unexpected answer from %s: expected a JSON object", cli->url);
  return FALSE;
}

static void
print_json (JsonNode *node)
{
  g_autofree char *text = NULL;

  if (node == NULL)
    return;
  text = kd_cli_json_pretty (node);
  fputs (text, stdout);
}

/* "name" from the answer, else what the user typed, sanitized. */
static char *
answer_name (JsonNode *answer, const char *fallback)
{
  JsonNode *n = kd_cli_json_lookup (answer, "name");

  if (n != NULL && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING)
    return kd_cli_sanitize (json_node_get_string (n));
  return kd_cli_sanitize (fallback);
}

static char *
escaped_path (const char *fmt_prefix, const char *name, const char *suffix)
{
  g_autofree char *escaped = kd_cli_path_escape (name);

  return g_strconcat (fmt_prefix, "/", escaped, suffix, NULL);
}

/* ---- tables and shows ------------------------------------------------------ */

typedef char *(*KdCliCellFunc) (JsonNode *item, const char *path);

typedef struct {
  const char   *header;
  const char   *path;
  KdCliCellFunc cell;
} KdCliColumn;

static char *
cell_mib (JsonNode *item, const char *path)
{
  gint64 v;

  if (kd_cli_json_int (item, path, &v) && v >= 0 && v <= G_MAXINT64 / (1024 * 1024))
    return kd_cli_format_size (v * 1024 * 1024);
  return kd_cli_json_text (item, path);
}

static char *
cell_gib (JsonNode *item, const char *path)
{
  gint64 v;

  if (kd_cli_json_int (item, path, &v) && v >= 0 && v <= G_MAXINT64 / (1024LL * 1024 * 1024))
    return kd_cli_format_size (v * 1024 * 1024 * 1024);
  return kd_cli_json_text (item, path);
}

/* Image volumes: "h1,h2(importing)" */
static char *
cell_volume_hosts (JsonNode *item, const char *path)
{
  JsonNode *volumes = kd_cli_json_lookup (item, path);
  GString *out = g_string_new (NULL);
  JsonArray *array;

  if (volumes == NULL || !JSON_NODE_HOLDS_ARRAY (volumes))
    return g_string_free (out, FALSE);
  array = json_node_get_array (volumes);
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode *v = json_array_get_element (array, i);
      g_autofree char *host = kd_cli_json_text (v, "host");
      g_autofree char *state = kd_cli_json_text (v, "state");

      if (out->len > 0)
        g_string_append_c (out, ',');
      g_string_append (out, host);
      if (!g_str_equal (state, "ready") && !g_str_equal (state, "-"))
        g_string_append_printf (out, "(%s)", state);
    }
  if (out->len == 0)
    g_string_append_c (out, '-');
  return g_string_free (out, FALSE);
}

static char *
cell_event_object (JsonNode *item, const char *path)
{
  g_autofree char *type = kd_cli_json_text (item, "object_type");
  g_autofree char *name = kd_cli_json_text (item, "object_name");

  return g_strdup_printf ("%s/%s", type, name);
}

static char *
cell_event_state (JsonNode *item, const char *path)
{
  g_autofree char *from = kd_cli_json_text (item, "from_state");
  g_autofree char *to = kd_cli_json_text (item, "to_state");

  if (g_str_equal (from, "-"))
    return g_strdup (to);   /* a first state, or no state change ("-") */
  return g_strdup_printf ("%s->%s", from, to);
}

static void
print_table (JsonArray *array, const KdCliColumn *columns, guint n_columns)
{
  g_autoptr(GPtrArray) headers = g_ptr_array_new ();
  g_autoptr(KdCliTable) table = NULL;
  g_autofree char *text = NULL;

  for (guint c = 0; c < n_columns; c++)
    g_ptr_array_add (headers, (gpointer) columns[c].header);
  g_ptr_array_add (headers, NULL);
  table = kd_cli_table_new ((const char *const *) headers->pdata);

  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode *item = json_array_get_element (array, i);
      char **cells = g_new0 (char *, n_columns + 1);

      for (guint c = 0; c < n_columns; c++)
        cells[c] = columns[c].cell (item, columns[c].path);
      kd_cli_table_add_row_take (table, cells);
    }
  text = kd_cli_table_render (table);
  fputs (text, stdout);
}

static gboolean
list_objects (KdCli *cli, const char *path, const char *plural,
              const KdCliColumn *columns, guint n_columns, GError **error)
{
  g_autoptr(JsonNode) answer = NULL;

  if (!call (cli, "GET", path, NULL, &answer, error))
    return FALSE;
  if (answer == NULL || !JSON_NODE_HOLDS_ARRAY (answer))
    {
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                   "unexpected answer from %s: expected a list of %s", cli->url, plural);
      return FALSE;
    }
  if (cli->json)
    {
      print_json (answer);
      return TRUE;
    }
  if (json_array_get_length (json_node_get_array (answer)) == 0)
    {
      printf ("no %s\n", plural);
      return TRUE;
    }
  print_table (json_node_get_array (answer), columns, n_columns);
  return TRUE;
}

static gboolean
show_object (KdCli *cli, const char *collection, const char *name, GError **error)
{
  g_autoptr(JsonNode) answer = NULL;
  g_autofree char *path = escaped_path (collection, name, "");
  g_autofree char *text = NULL;

  if (!call (cli, "GET", path, NULL, &answer, error) || !expect_object (cli, answer, error))
    return FALSE;
  if (cli->json)
    {
      print_json (answer);
      return TRUE;
    }
  text = kd_cli_format_show (answer);
  fputs (text, stdout);
  return TRUE;
}

static gboolean
delete_object (KdCli *cli, const char *collection, const char *kind, const char *name,
               const char *done, GError **error)
{
  g_autoptr(JsonNode) answer = NULL;
  g_autofree char *path = escaped_path (collection, name, "");
  g_autofree char *safe = kd_cli_sanitize (name);

  if (!call (cli, "DELETE", path, NULL, &answer, error))
    return FALSE;
  if (cli->json)
    print_json (answer);
  else
    printf ("%s '%s' %s\n", kind, safe, done);
  return TRUE;
}

/* ---- login, logout ------------------------------------------------------- */

static struct termios saved_termios;
static volatile sig_atomic_t termios_saved;

static void
restore_terminal (int sig)
{
  if (termios_saved)
    tcsetattr (STDIN_FILENO, TCSAFLUSH, &saved_termios);
  signal (sig, SIG_DFL);
  raise (sig);
}

/* Reads one line from @fd into @buf (without its newline). */
static gboolean
read_line (int fd, char *buf, gsize size, GError **error)
{
  gsize len = 0;

  for (;;)
    {
      char c;
      ssize_t n = read (fd, &c, 1);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int saved = errno;

          g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                       "cannot read the password: %s", g_strerror (saved));
          return FALSE;
        }
      if (n == 0 || c == '\n')
        break;
      if (len + 1 >= size)
        {
          g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                       "the password is longer than %u characters", (guint) size - 1);
          return FALSE;
        }
      buf[len++] = c;
    }
  if (len > 0 && buf[len - 1] == '\r')
    len--;
  buf[len] = '\0';
  return TRUE;
}

static gboolean
prompt_password (const char *user, const char *url, char *buf, gsize size, GError **error)
{
  struct termios noecho;
  gboolean ok;

  if (tcgetattr (STDIN_FILENO, &saved_termios) < 0)
    {
      int saved = errno;

      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                   "cannot prompt for the password: %s", g_strerror (saved));
      return FALSE;
    }
  termios_saved = 1;
  signal (SIGINT, restore_terminal);
  signal (SIGTERM, restore_terminal);
  signal (SIGHUP, restore_terminal);
  noecho = saved_termios;
  noecho.c_lflag &= ~(ECHO | ECHOE | ECHOK | ECHONL);
  fprintf (stderr, "Password for '%s' at %s: ", user, url);
  fflush (stderr);
  tcsetattr (STDIN_FILENO, TCSAFLUSH, &noecho);
  ok = read_line (STDIN_FILENO, buf, size, error);
  tcsetattr (STDIN_FILENO, TCSAFLUSH, &saved_termios);
  termios_saved = 0;
  signal (SIGINT, SIG_DFL);
  signal (SIGTERM, SIG_DFL);
  signal (SIGHUP, SIG_DFL);
  fputc ('\n', stderr);
  return ok;
}

static gboolean
run_login (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *user = kd_cli_arg (inv, 0);
  const char *env_password = g_getenv ("KVMDESK_PASSWORD");
  char password[KD_CLI_PASSWORD_MAX + 1];
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;
  g_autoptr(KdCliCredentials) creds = NULL;
  g_autofree char *safe_user = NULL;
  g_autofree char *role = NULL;
  g_autofree char *expires = NULL;
  JsonNode *token;
  gboolean ok;

  if (env_password != NULL)
    {
      if (strlen (env_password) > KD_CLI_PASSWORD_MAX)
        {
          g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                       "KVMDESK_PASSWORD is longer than %d characters", KD_CLI_PASSWORD_MAX);
          return FALSE;
        }
      g_strlcpy (password, env_password, sizeof password);
    }
  else if (kd_cli_option (inv, "password-stdin") != NULL)
    {
      if (!read_line (STDIN_FILENO, password, sizeof password, error))
        return FALSE;
    }
  else if (isatty (STDIN_FILENO))
    {
      if (!prompt_password (user, cli->url, password, sizeof password, error))
        return FALSE;
    }
  else
    {
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                   "no password: set KVMDESK_PASSWORD, use --password-stdin, "
                   "or run 'kvmdesk login' on a terminal");
      return FALSE;
    }
  if (password[0] == '\0')
    {
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED, "no password given");
      return FALSE;
    }

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "username");
  json_builder_add_string_value (builder, user);
  json_builder_set_member_name (builder, "password");
  json_builder_add_string_value (builder, password);
  json_builder_end_object (builder);
  body = json_builder_get_root (builder);
  memset (password, 0, sizeof password);

  kd_cli_http_set_token (cli->http, NULL);
  ok = kd_cli_http_call (cli->http, "POST", API "/login", body, &answer, error);
  /* the body holds the password: clear it before anything else */
  json_node_set_string (json_object_get_member (json_node_get_object (body), "password"), "");
  if (!ok)
    {
      /* "cannot reach …" says it all; a refusal by the server needs the user */
      if (error != NULL && *error != NULL && (*error)->domain == KD_CLI_HTTP_ERROR
          && (*error)->code >= 100)
        {
          g_autofree char *safe = kd_cli_sanitize (user);

          g_prefix_error (error, "login as '%s' failed: ", safe);
        }
      return FALSE;
    }
  if (!expect_object (cli, answer, error))
    return FALSE;
  token = kd_cli_json_lookup (answer, "token");
  if (token == NULL || !JSON_NODE_HOLDS_VALUE (token)
      || json_node_get_value_type (token) != G_TYPE_STRING
      || json_node_get_string (token)[0] == '\0')
    {
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                   "the login answer from %s holds no token", cli->url);
      return FALSE;
    }

  creds = g_new0 (KdCliCredentials, 1);
  creds->url = g_strdup (cli->url);
  creds->user = g_strdup (user);
  creds->token = g_strdup (json_node_get_string (token));
  {
    JsonNode *e = kd_cli_json_lookup (answer, "expires_at");

    if (e != NULL && JSON_NODE_HOLDS_VALUE (e) && json_node_get_value_type (e) == G_TYPE_STRING)
      creds->expires_at = g_strdup (json_node_get_string (e));
  }
  if (!kd_cli_credentials_save (creds, cli->credentials_path, error))
    return FALSE;

  if (cli->json)
    {
      print_json (answer);
      return TRUE;
    }
  safe_user = kd_cli_sanitize (user);
  role = kd_cli_json_text (answer, "role");
  expires = kd_cli_json_text (answer, "expires_at");
  printf ("logged in to %s as '%s' (%s), token valid until %s\n", cli->url, safe_user, role,
          expires);
  return TRUE;
}

static gboolean
run_logout (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  g_autoptr(GError) local = NULL;
  gboolean stored_token;

  if (!need_token (cli, error))
    return FALSE;
  stored_token = cli->stored != NULL && g_strcmp0 (cli->stored->token, cli->token) == 0;
  if (!kd_cli_http_call (cli->http, "POST", API "/logout", NULL, NULL, &local))
    {
      /* An expired or revoked token is as good as logged out; any other
       * failure keeps it, so that logout can be tried again. */
      if (!g_error_matches (local, KD_CLI_HTTP_ERROR, 401))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
    }
  if (stored_token)
    {
      g_free (cli->stored->token);
      cli->stored->token = NULL;
      g_clear_pointer (&cli->stored->expires_at, g_free);
      cli->token = NULL;
      if (!kd_cli_credentials_save (cli->stored, cli->credentials_path, error))
        return FALSE;
    }
  if (!cli->json)
    printf ("logged out of %s\n", cli->url);
  return TRUE;
}

/* ---- hosts --------------------------------------------------------------- */

static const KdCliColumn host_columns[] = {
  { "NAME", "name", kd_cli_json_text },
  { "STATE", "state", kd_cli_json_text },
  { "ACCEL", "accel", kd_cli_json_text },
  { "CPUS", "cpus", kd_cli_json_text },
  { "MEMORY", "memory_bytes", kd_cli_json_size },
  { "FREE-MEM", "free_memory_bytes", kd_cli_json_size },
  { "POOL-FREE", "pool.available", kd_cli_json_size },
  { "DESKTOPS", "desktops", kd_cli_json_text },
  { "URI", "uri", kd_cli_json_text },
};

static gboolean
run_host_add (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "name");
  json_builder_add_string_value (b, kd_cli_arg (inv, 0));
  json_builder_set_member_name (b, "uri");
  json_builder_add_string_value (b, kd_cli_arg (inv, 1));
  json_builder_end_object (b);
  body = json_builder_get_root (b);

  if (!call (cli, "POST", API "/hosts", body, &answer, error)
      || !expect_object (cli, answer, error))
    return FALSE;
  if (cli->json)
    print_json (answer);
  else
    {
      g_autofree char *name = answer_name (answer, kd_cli_arg (inv, 0));
      g_autofree char *state = kd_cli_json_text (answer, "state");
      g_autofree char *accel = kd_cli_json_text (answer, "accel");
      g_autofree char *cpus = kd_cli_json_text (answer, "cpus");
      g_autofree char *memory = kd_cli_json_size (answer, "memory_bytes");
      g_autofree char *pool = kd_cli_json_size (answer, "pool.available");

      printf ("host '%s' added (%s): %s, %s CPUs, %s memory, %s free in its pool\n",
              name, state, accel, cpus, memory, pool);
    }
  return TRUE;
}

static gboolean
run_host_list (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return list_objects (cli, API "/hosts", "hosts", host_columns, G_N_ELEMENTS (host_columns),
                       error);
}

static gboolean
run_host_show (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return show_object (cli, API "/hosts", kd_cli_arg (inv, 0), error);
}

static gboolean
run_host_remove (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return delete_object (cli, API "/hosts", "host", kd_cli_arg (inv, 0), "removed", error);
}

/* ---- images -------------------------------------------------------------- */

static const KdCliColumn image_columns[] = {
  { "NAME", "name", kd_cli_json_text },
  { "FORMAT", "format", kd_cli_json_text },
  { "VIRTUAL-SIZE", "virtual_size", kd_cli_json_size },
  { "FILE-SIZE", "file_size", kd_cli_json_size },
  { "HOSTS", "volumes", cell_volume_hosts },
  { "DESKTOPS", "desktops", kd_cli_json_text },
};

typedef struct {
  const char *name;      /* sanitized */
  const char *host;      /* sanitized, may be NULL */
  gboolean tty;
  int last_shown;        /* percent (tty) or decile*10 (not a tty) last printed, -1: none */
  gboolean line_open;    /* a \r line without its newline */
  gboolean storing;
} KdCliImportProgress;

static void
on_import_progress (goffset sent, goffset total, gpointer user_data)
{
  KdCliImportProgress *p = user_data;
  gboolean mib = total >= 1024 * 1024;
  goffset unit = mib ? 1024 * 1024 : 1024;
  int percent;

  if (p->storing)
    return;
  percent = total > 0 ? (int) (MIN (sent, total) * 100 / total) : 100;
  if (!p->tty)
    percent -= percent % 10;   /* at most one line per 10% */
  if (percent == p->last_shown)
    return;
  p->last_shown = percent;

  /* rounded alike, so that 100% reads "(3/3 MiB)" */
  fprintf (stderr, "%simporting %s: %d%% (%" G_GINT64_FORMAT "/%" G_GINT64_FORMAT " %s)%s",
           p->tty ? "\r" : "", p->name, percent,
           (gint64) ((MIN (sent, total) + unit / 2) / unit), (gint64) ((total + unit / 2) / unit),
           mib ? "MiB" : "KiB", p->tty ? "" : "\n");
  p->line_open = p->tty;
  if (percent >= 100)
    {
      /* The bytes are with the server; it now copies them into libvirt. */
      if (p->line_open)
        fputc ('\n', stderr);
      p->line_open = FALSE;
      if (p->host != NULL)
        fprintf (stderr, "storing on host '%s'…\n", p->host);
      else
        fprintf (stderr, "storing on host…\n");
      p->storing = TRUE;
    }
  fflush (stderr);
}

static gboolean
run_image_import (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *name = kd_cli_arg (inv, 0);
  const char *file = kd_cli_arg (inv, 1);
  const char *host = kd_cli_option (inv, "host");
  g_autofree char *path = NULL;
  g_autofree char *safe_name = kd_cli_sanitize (name);
  g_autofree char *safe_host = host != NULL ? kd_cli_sanitize (host) : NULL;
  g_autoptr(JsonNode) answer = NULL;
  KdCliImportProgress progress = { safe_name, safe_host, cli->stderr_tty, -1, FALSE, FALSE };
  gboolean ok;

  if (host != NULL)
    {
      g_autofree char *escaped = kd_cli_path_escape (host);

      path = escaped_path (API "/images", name, "?host=");
      path = g_strconcat (g_steal_pointer (&path), escaped, NULL);
    }
  else
    path = escaped_path (API "/images", name, "");

  if (!need_token (cli, error))
    return FALSE;
  ok = kd_cli_http_upload (cli->http, path, file, on_import_progress, &progress, &answer, error);
  if (progress.line_open)
    fputc ('\n', stderr);
  if (!ok)
    {
      g_prefix_error (error, "import of image '%s' failed: ", safe_name);
      return FALSE;
    }
  if (!expect_object (cli, answer, error))
    return FALSE;
  if (cli->json)
    print_json (answer);
  else
    {
      g_autofree char *format = kd_cli_json_text (answer, "format");
      g_autofree char *vsize = kd_cli_json_size (answer, "virtual_size");
      g_autofree char *fsize = kd_cli_json_size (answer, "file_size");
      g_autofree char *hosts = cell_volume_hosts (answer, "volumes");

      printf ("image '%s' imported: %s, %s virtual, %s file, on %s\n", safe_name, format, vsize,
              fsize, hosts);
    }
  return TRUE;
}

static gboolean
run_image_list (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return list_objects (cli, API "/images", "images", image_columns,
                       G_N_ELEMENTS (image_columns), error);
}

static gboolean
run_image_show (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return show_object (cli, API "/images", kd_cli_arg (inv, 0), error);
}

static gboolean
run_image_delete (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return delete_object (cli, API "/images", "image", kd_cli_arg (inv, 0), "deleted", error);
}

/* ---- templates ----------------------------------------------------------- */

static const KdCliColumn template_columns[] = {
  { "NAME", "name", kd_cli_json_text },
  { "VCPUS", "vcpus", kd_cli_json_text },
  { "MEMORY", "memory_mib", cell_mib },
  { "DISK", "disk_gib", cell_gib },
  { "DISPLAY", "display", kd_cli_json_text },
  { "NETWORK", "network", kd_cli_json_text },
  { "FIRMWARE", "firmware", kd_cli_json_text },
};

static gboolean
run_template_add (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  static const struct { const char *option; const char *member; } ints[] = {
    { "vcpus", "vcpus" }, { "memory", "memory_mib" }, { "disk", "disk_gib" },
  };
  static const char *const strings[] = { "display", "network", "firmware" };
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "name");
  json_builder_add_string_value (b, kd_cli_arg (inv, 0));
  /* Only what was given: the server owns the defaults and the ranges. */
  for (guint i = 0; i < G_N_ELEMENTS (ints); i++)
    {
      gint64 value;

      if (kd_cli_option (inv, ints[i].option) == NULL)
        continue;
      if (!kd_cli_option_int (inv, ints[i].option, 0, G_MAXINT32, &value, error))
        return FALSE;
      json_builder_set_member_name (b, ints[i].member);
      json_builder_add_int_value (b, value);
    }
  for (guint i = 0; i < G_N_ELEMENTS (strings); i++)
    {
      const char *value = kd_cli_option (inv, strings[i]);

      if (value == NULL)
        continue;
      json_builder_set_member_name (b, strings[i]);
      json_builder_add_string_value (b, value);
    }
  json_builder_end_object (b);
  body = json_builder_get_root (b);

  if (!call (cli, "POST", API "/templates", body, &answer, error)
      || !expect_object (cli, answer, error))
    return FALSE;
  if (cli->json)
    print_json (answer);
  else
    {
      g_autofree char *name = answer_name (answer, kd_cli_arg (inv, 0));
      g_autofree char *vcpus = kd_cli_json_text (answer, "vcpus");
      g_autofree char *memory = cell_mib (answer, "memory_mib");
      g_autofree char *disk = cell_gib (answer, "disk_gib");
      g_autofree char *display = kd_cli_json_text (answer, "display");
      g_autofree char *network = kd_cli_json_text (answer, "network");
      g_autofree char *firmware = kd_cli_json_text (answer, "firmware");

      printf ("template '%s' added: %s vCPUs, %s memory, %s disk, display %s, network %s, "
              "firmware %s\n", name, vcpus, memory, disk, display, network, firmware);
    }
  return TRUE;
}

static gboolean
run_template_list (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return list_objects (cli, API "/templates", "templates", template_columns,
                       G_N_ELEMENTS (template_columns), error);
}

static gboolean
run_template_show (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return show_object (cli, API "/templates", kd_cli_arg (inv, 0), error);
}

static gboolean
run_template_remove (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return delete_object (cli, API "/templates", "template", kd_cli_arg (inv, 0), "removed",
                        error);
}

/* ---- desktops ------------------------------------------------------------ */

static const KdCliColumn desktop_columns[] = {
  { "NAME", "name", kd_cli_json_text },
  { "STATE", "state", kd_cli_json_text },
  { "HOST", "host", kd_cli_json_text },
  { "IMAGE", "image", kd_cli_json_text },
  { "TEMPLATE", "template", kd_cli_json_text },
  { "DOMAIN", "domain", kd_cli_json_text },
};

static void
print_desktop_line (JsonNode *answer, const char *typed_name, const char *done)
{
  g_autofree char *name = answer_name (answer, typed_name);
  g_autofree char *state = kd_cli_json_text (answer, "state");
  g_autofree char *reason = kd_cli_json_text (answer, "state_reason");

  if (g_str_equal (state, "error") && !g_str_equal (reason, "-"))
    printf ("desktop '%s' %s (error: %s)\n", name, done, reason);
  else
    printf ("desktop '%s' %s (%s)\n", name, done, state);
}

static gboolean
run_desktop_create (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;
  const char *host = kd_cli_option (inv, "host");

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "name");
  json_builder_add_string_value (b, kd_cli_arg (inv, 0));
  json_builder_set_member_name (b, "image");
  json_builder_add_string_value (b, kd_cli_option (inv, "image"));
  json_builder_set_member_name (b, "template");
  json_builder_add_string_value (b, kd_cli_option (inv, "template"));
  if (host != NULL)
    {
      json_builder_set_member_name (b, "host");
      json_builder_add_string_value (b, host);
    }
  json_builder_set_member_name (b, "start");
  json_builder_add_boolean_value (b, kd_cli_option (inv, "start") != NULL);
  json_builder_end_object (b);
  body = json_builder_get_root (b);

  if (!call (cli, "POST", API "/desktops", body, &answer, error)
      || !expect_object (cli, answer, error))
    return FALSE;
  if (cli->json)
    print_json (answer);
  else
    {
      g_autofree char *on_host = kd_cli_json_text (answer, "host");
      g_autofree char *done = g_strdup_printf ("created on host '%s'", on_host);

      print_desktop_line (answer, kd_cli_arg (inv, 0), done);
    }
  return TRUE;
}

static gboolean
run_desktop_action (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  static const struct { const char *verb; const char *done; } actions[] = {
    { "start", "started" },
    { "shutdown", "shut down" },
    { "poweroff", "powered off" },
    { "reset", "reset" },
  };
  const char *verb = inv->command->verb;
  const char *name = kd_cli_arg (inv, 0);
  const char *done = verb;
  g_autofree char *suffix = g_strconcat ("/", verb, NULL);
  g_autofree char *path = escaped_path (API "/desktops", name, suffix);
  g_autoptr(JsonNode) answer = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (actions); i++)
    if (g_str_equal (actions[i].verb, verb))
      done = actions[i].done;

  if (g_str_equal (verb, "shutdown") && cli->stderr_tty && !cli->json)
    {
      g_autofree char *safe = kd_cli_sanitize (name);

      fprintf (stderr, "shutting down desktop '%s' (this can take a minute)…\n", safe);
    }
  if (!call (cli, "POST", path, NULL, &answer, error) || !expect_object (cli, answer, error))
    return FALSE;
  if (cli->json)
    print_json (answer);
  else
    print_desktop_line (answer, name, done);
  return TRUE;
}

static gboolean
run_desktop_delete (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return delete_object (cli, API "/desktops", "desktop", kd_cli_arg (inv, 0), "deleted", error);
}

static gboolean
run_desktop_show (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return show_object (cli, API "/desktops", kd_cli_arg (inv, 0), error);
}

static gboolean
run_desktop_list (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return list_objects (cli, API "/desktops", "desktops", desktop_columns,
                       G_N_ELEMENTS (desktop_columns), error);
}

/* ---- reconciler, events, version ----------------------------------------- */

static const KdCliColumn orphan_columns[] = {
  { "HOST", "host", kd_cli_json_text },
  { "KIND", "kind", kd_cli_json_text },
  { "NAME", "name", kd_cli_json_text },
  { "DETAIL", "detail", kd_cli_json_text },
};

static const KdCliColumn problem_columns[] = {
  { "HOST", "host", kd_cli_json_text },
  { "DESKTOP", "desktop", kd_cli_json_text },
  { "PROBLEM", "problem", kd_cli_json_text },
};

static void
print_report_section (JsonNode *answer, const char *member, const KdCliColumn *columns,
                      guint n_columns)
{
  JsonNode *list = kd_cli_json_lookup (answer, member);

  if (list == NULL || !JSON_NODE_HOLDS_ARRAY (list)
      || json_array_get_length (json_node_get_array (list)) == 0)
    {
      printf ("%s: none\n", member);
      return;
    }
  printf ("\n%s:\n", member);
  print_table (json_node_get_array (list), columns, n_columns);
}

static gboolean
run_reconcile (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  gboolean run = kd_cli_option (inv, "run") != NULL;
  g_autoptr(JsonNode) answer = NULL;
  g_autofree char *last_run = NULL;
  JsonNode *running;

  if (!call (cli, run ? "POST" : "GET", run ? API "/reconciler/run" : API "/reconciler", NULL,
             &answer, error)
      || !expect_object (cli, answer, error))
    return FALSE;
  if (cli->json)
    {
      print_json (answer);
      return TRUE;
    }
  last_run = kd_cli_json_text (answer, "last_run");
  running = kd_cli_json_lookup (answer, "running");
  printf ("last run: %s%s\n", g_str_equal (last_run, "-") ? "never" : last_run,
          running != NULL && JSON_NODE_HOLDS_VALUE (running)
          && json_node_get_value_type (running) == G_TYPE_BOOLEAN
          && json_node_get_boolean (running) ? " (running now)" : "");
  print_report_section (answer, "orphans", orphan_columns, G_N_ELEMENTS (orphan_columns));
  print_report_section (answer, "problems", problem_columns, G_N_ELEMENTS (problem_columns));
  return TRUE;
}

static const KdCliColumn event_columns[] = {
  { "ID", "id", kd_cli_json_text },
  { "TIME", "time", kd_cli_json_text },
  { "OBJECT", NULL, cell_event_object },
  { "ACTION", "action", kd_cli_json_text },
  { "STATE", NULL, cell_event_state },
  { "ACTOR", "actor", kd_cli_json_text },
  { "MESSAGE", "message", kd_cli_json_text },
};

static gboolean
run_events (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  static const struct { const char *option; const char *param; } params[] = {
    { "object-type", "object_type" }, { "object", "object_name" },
    { "since", "since" }, { "limit", "limit" },
  };
  GString *path = g_string_new (API "/events");
  g_autofree char *path_str = NULL;
  gint64 number;
  char sep = '?';

  if (!kd_cli_option_int (inv, "limit", 1, G_MAXINT32, &number, error)
      || !kd_cli_option_int (inv, "since", 0, G_MAXINT64, &number, error))
    {
      g_string_free (path, TRUE);
      return FALSE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (params); i++)
    {
      const char *value = kd_cli_option (inv, params[i].option);
      g_autofree char *escaped = NULL;

      if (value == NULL)
        continue;
      escaped = kd_cli_path_escape (value);
      g_string_append_printf (path, "%c%s=%s", sep, params[i].param, escaped);
      sep = '&';
    }
  path_str = g_string_free (path, FALSE);
  return list_objects (cli, path_str, "events", event_columns, G_N_ELEMENTS (event_columns),
                       error);
}

static gboolean
run_version (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  g_autoptr(JsonNode) health = NULL;
  g_autoptr(GError) local = NULL;

  if (!cli->json)
    {
      printf ("kvmdesk %s\n", KD_VERSION);
      fflush (stdout);
    }
  kd_cli_http_set_token (cli->http, NULL);
  if (!kd_cli_http_call (cli->http, "GET", "/healthz", NULL, &health, &local)
      || !expect_object (cli, health, &local))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (cli->json)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      g_autoptr(JsonNode) root = NULL;

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "client");
      json_builder_add_string_value (b, KD_VERSION);
      json_builder_set_member_name (b, "url");
      json_builder_add_string_value (b, cli->url);
      json_builder_set_member_name (b, "server");
      json_builder_add_value (b, json_node_copy (health));
      json_builder_end_object (b);
      root = json_builder_get_root (b);
      print_json (root);
    }
  else
    {
      g_autofree char *version = kd_cli_json_text (health, "version");
      g_autofree char *status = kd_cli_json_text (health, "status");

      printf ("kvmdeskd %s at %s (%s)\n", version, cli->url, status);
    }
  return TRUE;
}

/* ---- the table ------------------------------------------------------------- */

static const KdCliOption login_options[] = {
  { "password-stdin", NULL, FALSE, "read the password from the first line of standard input" },
  { NULL }
};
static const KdCliOption image_import_options[] = {
  { "host", "HOST", FALSE, "host to store the image on (optional with one host)" },
  { NULL }
};
static const KdCliOption template_add_options[] = {
  { "vcpus", "N", FALSE, "virtual CPUs (default 1)" },
  { "memory", "MIB", FALSE, "memory in MiB (default 1024)" },
  { "disk", "GIB", FALSE, "disk size in GiB, at least the image's (default 10)" },
  { "display", "vnc|spice|dbus", FALSE, "display protocol (default vnc)" },
  { "network", "none|user|NAME|bridge:NAME", FALSE,
    "network: none, user, a libvirt network or a bridge (default none)" },
  { "firmware", "bios|uefi", FALSE, "firmware (default bios)" },
  { NULL }
};
static const KdCliOption desktop_create_options[] = {
  { "image", "IMAGE", TRUE, "image the desktop's disk is a linked clone of" },
  { "template", "TEMPLATE", TRUE, "template: vCPUs, memory, disk, display, network" },
  { "host", "HOST", FALSE, "host to place it on (default: chosen by the scheduler)" },
  { "start", NULL, FALSE, "start it once created" },
  { NULL }
};
static const KdCliOption reconcile_options[] = {
  { "run", NULL, FALSE, "run the reconciler now instead of showing its last report" },
  { NULL }
};
static const KdCliOption events_options[] = {
  { "object-type", "TYPE", FALSE, "only events of this kind of object (desktop, host, …)" },
  { "object", "NAME", FALSE, "only events of the object with this name" },
  { "since", "ID", FALSE, "only events after the event with this id" },
  { "limit", "N", FALSE, "at most N events (newest first)" },
  { NULL }
};

const KdCliCommand kd_cli_commands[] = {
  { NULL, "login", "USER", 1, 1, login_options,
    "log in (password from $KVMDESK_PASSWORD or a prompt) and store the token", run_login },
  { NULL, "logout", "", 0, 0, NULL, "revoke the stored token", run_logout },
  { "host", "add", "NAME URI", 2, 2, NULL,
    "register a KVM host by its libvirt URI (qemu:///system, qemu+ssh://…)", run_host_add },
  { "host", "list", "", 0, 0, NULL, "list hosts with their capacity", run_host_list },
  { "host", "show", "NAME", 1, 1, NULL, "show one host", run_host_show },
  { "host", "remove", "NAME", 1, 1, NULL, "unregister a host without desktops or images",
    run_host_remove },
  { "image", "import", "NAME FILE", 2, 2, image_import_options,
    "upload a qcow2 or raw disk image to a host", run_image_import },
  { "image", "list", "", 0, 0, NULL, "list images", run_image_list },
  { "image", "show", "NAME", 1, 1, NULL, "show one image and its volumes", run_image_show },
  { "image", "delete", "NAME", 1, 1, NULL, "delete an image from every host",
    run_image_delete },
  { "template", "add", "NAME", 1, 1, template_add_options, "define a template (machine type)",
    run_template_add },
  { "template", "list", "", 0, 0, NULL, "list templates", run_template_list },
  { "template", "show", "NAME", 1, 1, NULL, "show one template", run_template_show },
  { "template", "remove", "NAME", 1, 1, NULL, "remove a template no desktop uses",
    run_template_remove },
  { "desktop", "create", "NAME", 1, 1, desktop_create_options,
    "create a desktop: a linked clone of an image, shaped by a template", run_desktop_create },
  { "desktop", "list", "", 0, 0, NULL, "list desktops", run_desktop_list },
  { "desktop", "show", "NAME", 1, 1, NULL, "show one desktop", run_desktop_show },
  { "desktop", "start", "NAME", 1, 1, NULL, "start a desktop", run_desktop_action },
  { "desktop", "shutdown", "NAME", 1, 1, NULL,
    "shut a desktop down (ACPI; forced off after the server's timeout)", run_desktop_action },
  { "desktop", "poweroff", "NAME", 1, 1, NULL, "power a desktop off at once",
    run_desktop_action },
  { "desktop", "reset", "NAME", 1, 1, NULL,
    "throw away the desktop's disk changes and recreate it from its image",
    run_desktop_action },
  { "desktop", "delete", "NAME", 1, 1, NULL, "delete a desktop, its domain and its disk",
    run_desktop_delete },
  { NULL, "reconcile", "", 0, 0, reconcile_options,
    "show the reconciler's report (orphans, problems), or --run it now", run_reconcile },
  { NULL, "events", "", 0, 0, events_options, "list recorded events, newest first",
    run_events },
  { NULL, "version", "", 0, 0, NULL, "print the client's and the server's version",
    run_version },
};

const guint kd_cli_n_commands = G_N_ELEMENTS (kd_cli_commands);
