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

/* desktop get --wait: poll period, default and largest --timeout */
#define KD_CLI_DESKTOP_POLL_INTERVAL_MS 1000
#define KD_CLI_DESKTOP_WAIT_DEFAULT_S   300
#define KD_CLI_DESKTOP_WAIT_MAX_S       86400

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

  if (g_str_equal (from, "-") || g_str_equal (from, to))
    return g_strdup (to);   /* a first state, or no state change */
  return g_strdup_printf ("%s->%s", from, to);
}

/* Names in an array member ("groups", "members"): "a,b", or "-" when none. */
static char *
cell_names (JsonNode *item, const char *path)
{
  g_autofree char *text = kd_cli_json_text (item, path);

  if (text[0] == '\0')
    return g_strdup ("-");
  return g_steal_pointer (&text);
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

/* Asks for a secret on the terminal without echo; @prompt is already sanitized. */
static gboolean
prompt_secret (const char *prompt, char *buf, gsize size, GError **error)
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
  fputs (prompt, stderr);
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
      g_autofree char *safe = kd_cli_sanitize (user);
      g_autofree char *prompt = g_strdup_printf ("Password for '%s' at %s: ", safe, cli->url);

      if (!prompt_secret (prompt, password, sizeof password, error))
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

static char *cell_on_off (JsonNode *item, const char *path);

static const KdCliColumn host_columns[] = {
  { "NAME", "name", kd_cli_json_text },
  { "STATE", "state", kd_cli_json_text },
  { "ACCEL", "accel", kd_cli_json_text },
  { "CPUS", "cpus", kd_cli_json_text },
  { "MEMORY", "memory_bytes", kd_cli_json_size },
  { "FREE-MEM", "free_memory_bytes", kd_cli_json_size },
  { "POOL-FREE", "pool.available", kd_cli_json_size },
  { "DESKTOPS", "desktops", kd_cli_json_text },
  { "MAINT", "maintenance", cell_on_off },
  { "URI", "uri", kd_cli_json_text },
};

static void add_string_array (JsonBuilder *b, const char *member, const char *const *values);

/*
 * The placement settings of a host from the command line, into @b (only
 * those given). --maintenance comes from @maintenance_arg when not NULL
 * (host maintenance NAME on|off).
 */
static gboolean
add_host_settings (const KdCliInvocation *inv, JsonBuilder *b, const char *maintenance_arg,
                   guint *n_fields, GError **error)
{
  static const struct { const char *option; const char *member; double min, max; } ratios[] = {
    { "cpu-ratio", "cpu_ratio", 0.1, 64 }, { "memory-ratio", "memory_ratio", 0.1, 4 },
    { "disk-ratio", "disk_ratio", 0.1, 100 },
  };
  const char *maintenance = maintenance_arg ? maintenance_arg : kd_cli_option (inv, "maintenance");
  const char *const *labels = kd_cli_option_list (inv, "label");

  for (guint i = 0; i < G_N_ELEMENTS (ratios); i++)
    {
      const char *text = kd_cli_option (inv, ratios[i].option);
      char *end = NULL;
      double v;

      if (text == NULL)
        continue;
      v = g_ascii_strtod (text, &end);
      if (end == text || *end != '\0' || !(v >= ratios[i].min && v <= ratios[i].max))
        {
          g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE, "--%s must be a number from %g to %g",
                       ratios[i].option, ratios[i].min, ratios[i].max);
          return FALSE;
        }
      json_builder_set_member_name (b, ratios[i].member);
      json_builder_add_double_value (b, v);
      (*n_fields)++;
    }
  if (kd_cli_option (inv, "memory-reserved") != NULL)
    {
      gint64 mib;
      if (!kd_cli_option_int (inv, "memory-reserved", 0, G_GINT64_CONSTANT (1) << 30, &mib, error))
        return FALSE;
      json_builder_set_member_name (b, "memory_reserved_mib");
      json_builder_add_int_value (b, mib);
      (*n_fields)++;
    }
  if (maintenance != NULL)
    {
      if (!g_str_equal (maintenance, "on") && !g_str_equal (maintenance, "off"))
        {
          g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE, "maintenance is on or off, not '%s'",
                       maintenance);
          return FALSE;
        }
      json_builder_set_member_name (b, "maintenance");
      json_builder_add_boolean_value (b, g_str_equal (maintenance, "on"));
      (*n_fields)++;
    }
  if (labels != NULL)
    {
      add_string_array (b, "labels", labels);
      (*n_fields)++;
    }
  if (kd_cli_option (inv, "migration") != NULL)
    {
      json_builder_set_member_name (b, "migration");
      json_builder_add_string_value (b, kd_cli_option (inv, "migration"));
      (*n_fields)++;
    }
  return TRUE;
}

/* --gpu A,B (repeatable): "gpus": ["A,B", …] (the server splits and checks). */
static gboolean
add_host_gpus (const KdCliInvocation *inv, JsonBuilder *b)
{
  const char *const *gpus = kd_cli_option_list (inv, "gpu");

  if (gpus == NULL)
    return FALSE;
  json_builder_set_member_name (b, "gpus");
  json_builder_begin_array (b);
  for (guint i = 0; gpus[i] != NULL; i++)
    if (*gpus[i] != '\0')
      json_builder_add_string_value (b, gpus[i]);
  json_builder_end_array (b);
  return TRUE;
}

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
  if (kd_cli_option (inv, "graphics-listen") != NULL)
    {
      json_builder_set_member_name (b, "graphics_listen");
      json_builder_add_string_value (b, kd_cli_option (inv, "graphics-listen"));
    }
  if (kd_cli_option (inv, "console-access") != NULL)
    {
      json_builder_set_member_name (b, "console_access");
      json_builder_add_string_value (b, kd_cli_option (inv, "console-access"));
    }
  {
    guint n_fields = 0;
    if (!add_host_settings (inv, b, NULL, &n_fields, error))
      return FALSE;
    add_host_gpus (inv, b);
  }
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

/* host set NAME [options] / host maintenance NAME on|off */
static gboolean
run_host_set (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *name = kd_cli_arg (inv, 0);
  gboolean maintenance_verb = g_str_equal (inv->command->verb, "maintenance");
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;
  g_autofree char *path = escaped_path (API "/hosts", name, "");
  guint n_fields = 0;

  json_builder_begin_object (b);
  if (!add_host_settings (inv, b, maintenance_verb ? kd_cli_arg (inv, 1) : NULL, &n_fields, error))
    return FALSE;
  json_builder_end_object (b);
  if (n_fields == 0 && kd_cli_option_list (inv, "gpu") == NULL)
    {
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                   "'host set' needs at least one change (--maintenance, --cpu-ratio, --label, --gpu, …)");
      return FALSE;
    }
  body = json_builder_get_root (b);
  if (n_fields > 0 &&
      (!call (cli, "PATCH", path, body, &answer, error) || !expect_object (cli, answer, error)))
    return FALSE;
  if (kd_cli_option_list (inv, "gpu") != NULL)
    {
      g_autoptr(JsonBuilder) gb = json_builder_new ();
      g_autoptr(JsonNode) gbody = NULL;
      g_autofree char *gpath = escaped_path (API "/hosts", name, "/gpus");

      json_builder_begin_object (gb);
      add_host_gpus (inv, gb);
      json_builder_end_object (gb);
      gbody = json_builder_get_root (gb);
      g_clear_pointer (&answer, json_node_unref);
      if (!call (cli, "PUT", gpath, gbody, &answer, error) || !expect_object (cli, answer, error))
        return FALSE;
    }
  if (cli->json)
    print_json (answer);
  else
    {
      g_autofree char *safe = kd_cli_sanitize (name);
      g_autofree char *maint = cell_on_off (answer, "maintenance");
      g_autofree char *vcpus = kd_cli_json_text (answer, "use.vcpus");
      g_autofree char *vcpus_limit = kd_cli_json_text (answer, "use.vcpus_limit");
      g_autofree char *mem = kd_cli_json_size (answer, "use.memory_bytes");
      g_autofree char *mem_limit = kd_cli_json_size (answer, "use.memory_limit");

      printf ("host '%s' changed: maintenance %s, vCPUs %s/%s, memory %s/%s\n", safe, maint, vcpus,
              vcpus_limit, mem, mem_limit);
    }
  return TRUE;
}

/* host drain NAME */
static gboolean
run_host_drain (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *name = kd_cli_arg (inv, 0);
  g_autofree char *path = escaped_path (API "/hosts", name, "/drain");
  g_autoptr(JsonNode) answer = NULL;
  JsonNode *list;

  if (!call (cli, "POST", path, NULL, &answer, error) || !expect_object (cli, answer, error))
    return FALSE;
  if (cli->json)
    {
      print_json (answer);
      return TRUE;
    }
  {
    g_autofree char *safe = kd_cli_sanitize (name);
    printf ("host '%s' is in maintenance and being drained\n", safe);
  }
  list = kd_cli_json_lookup (answer, "desktops");
  if (list != NULL && JSON_NODE_HOLDS_ARRAY (list))
    {
      JsonArray *arr = json_node_get_array (list);
      for (guint i = 0; i < json_array_get_length (arr); i++)
        {
          JsonNode *item = json_array_get_element (arr, i);
          g_autofree char *d = kd_cli_json_text (item, "name");
          g_autofree char *action = kd_cli_json_text (item, "action");
          g_autofree char *reason = kd_cli_json_text (item, "reason");
          printf ("  %-24s %-17s %s\n", d, action, reason);
        }
      if (json_array_get_length (arr) == 0)
        printf ("  no desktops on it\n");
    }
  return TRUE;
}

static gboolean
run_host_remove (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return delete_object (cli, API "/hosts", "host", kd_cli_arg (inv, 0), "removed", error);
}

/* ---- images -------------------------------------------------------------- */

static gboolean
run_image_copy (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *name = kd_cli_arg (inv, 0);
  g_autofree char *path = escaped_path (API "/images", name, "/copy");
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "host");
  json_builder_add_string_value (b, kd_cli_option (inv, "host"));
  json_builder_end_object (b);
  body = json_builder_get_root (b);
  if (!call (cli, "POST", path, body, &answer, error) || !expect_object (cli, answer, error))
    return FALSE;
  if (cli->json)
    print_json (answer);
  else
    {
      g_autofree char *safe = kd_cli_sanitize (name);
      g_autofree char *host = kd_cli_sanitize (kd_cli_option (inv, "host"));
      printf ("image '%s' copied to host '%s'\n", safe, host);
    }
  return TRUE;
}

/* An image's open edit session: "v3 in edit-NAME", or "-". */
static char *
cell_image_editing (JsonNode *item, const char *path)
{
  JsonNode *editing = kd_cli_json_lookup (item, path);
  g_autofree char *version = NULL;
  g_autofree char *desktop = NULL;

  if (editing == NULL || !JSON_NODE_HOLDS_OBJECT (editing))
    return g_strdup ("-");
  version = kd_cli_json_text (editing, "version");
  desktop = kd_cli_json_text (editing, "desktop");
  return g_strdup_printf ("v%s in %s", version, desktop);
}

static const KdCliColumn image_columns[] = {
  { "NAME", "name", kd_cli_json_text },
  { "CURRENT", "current_version", kd_cli_json_text },
  { "FORMAT", "format", kd_cli_json_text },
  { "VIRTUAL-SIZE", "virtual_size", kd_cli_json_size },
  { "FILE-SIZE", "file_size", kd_cli_json_size },
  { "HOSTS", "volumes", cell_volume_hosts },
  { "DESKTOPS", "desktops", kd_cli_json_text },
  { "EDITING", "editing", cell_image_editing },
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

/* ---- image versions: edit, publish, cancel, list, rollback --------------- */

/* A version number on the command line; the server knows which exist. */
#define KD_CLI_VERSION_MAX G_MAXINT32

static const KdCliColumn version_columns[] = {
  { "VERSION", "version", kd_cli_json_text },
  { "CURRENT", "current", kd_cli_json_text },
  { "FORMAT", "format", kd_cli_json_text },
  { "VIRTUAL-SIZE", "virtual_size", kd_cli_json_size },
  { "FILE-SIZE", "file_size", kd_cli_json_size },
  { "HOSTS", "hosts", cell_names },
  { "ACTOR", "actor", kd_cli_json_text },
  { "CREATED", "created_at", kd_cli_json_text },
  { "NOTE", "note", kd_cli_json_text },
};

/*
 * The URI of host @name, for telling how to reach a desktop: best effort,
 * NULL when it cannot be read (the line is then shorter, nothing fails).
 */
static char *
host_uri (KdCli *cli, const char *name)
{
  g_autoptr(JsonNode) answer = NULL;
  g_autofree char *path = NULL;
  JsonNode *uri;

  if (name == NULL || g_str_equal (name, "-"))
    return NULL;
  path = escaped_path (API "/hosts", name, "");
  if (!kd_cli_http_call (cli->http, "GET", path, NULL, &answer, NULL))
    return NULL;
  uri = kd_cli_json_lookup (answer, "uri");
  if (uri == NULL || !JSON_NODE_HOLDS_VALUE (uri)
      || json_node_get_value_type (uri) != G_TYPE_STRING)
    return NULL;
  return kd_cli_sanitize (json_node_get_string (uri));
}

/*
 * image edit NAME --template T [--host H]: a full copy of the current
 * version, booted in the editing desktop; prints that desktop and how to
 * reach it.
 */
static gboolean
run_image_edit (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *name = kd_cli_arg (inv, 0);
  const char *host = kd_cli_option (inv, "host");
  g_autofree char *path = escaped_path (API "/images", name, "/edit");
  g_autofree char *safe_image = kd_cli_sanitize (name);
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "template");
  json_builder_add_string_value (b, kd_cli_option (inv, "template"));
  if (host != NULL)
    {
      json_builder_set_member_name (b, "host");
      json_builder_add_string_value (b, host);
    }
  json_builder_end_object (b);
  body = json_builder_get_root (b);

  if (!cli->json && cli->stderr_tty)
    fprintf (stderr, "copying the current version of image '%s' (this can take a while)…\n",
             safe_image);
  if (!call (cli, "POST", path, body, &answer, error) || !expect_object (cli, answer, error))
    {
      g_prefix_error (error, "edit of image '%s' failed: ", safe_image);
      return FALSE;
    }
  if (cli->json)
    print_json (answer);
  else
    {
      g_autofree char *desktop = answer_name (answer, "-");
      g_autofree char *state = kd_cli_json_text (answer, "state");
      g_autofree char *on_host = kd_cli_json_text (answer, "host");
      g_autofree char *domain = kd_cli_json_text (answer, "domain");
      g_autofree char *uri = host_uri (cli, on_host);

      printf ("image '%s' is being edited in desktop '%s' (%s) on host '%s'\n", safe_image,
              desktop, state, on_host);
      if (uri != NULL && !g_str_equal (domain, "-"))
        printf ("reach it with: virt-viewer --connect '%s' '%s'\n", uri, domain);
      else if (!g_str_equal (domain, "-"))
        printf ("reach it through libvirt domain '%s' on host '%s'\n", domain, on_host);
      printf ("then: kvmdesk image publish '%s' [--note TEXT], or kvmdesk image cancel-edit '%s'\n",
              safe_image, safe_image);
    }
  return TRUE;
}

static gboolean
run_image_publish (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *name = kd_cli_arg (inv, 0);
  const char *note = kd_cli_option (inv, "note");
  g_autofree char *path = escaped_path (API "/images", name, "/publish");
  g_autofree char *safe_image = kd_cli_sanitize (name);
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;

  if (note != NULL)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "note");
      json_builder_add_string_value (b, note);
      json_builder_end_object (b);
      body = json_builder_get_root (b);
    }
  if (!cli->json && cli->stderr_tty)
    fprintf (stderr, "shutting down the editing desktop of image '%s' (this can take a minute)…\n",
             safe_image);
  if (!call (cli, "POST", path, body, &answer, error) || !expect_object (cli, answer, error))
    {
      g_prefix_error (error, "publish of image '%s' failed: ", safe_image);
      return FALSE;
    }
  if (cli->json)
    print_json (answer);
  else
    {
      g_autofree char *safe = answer_name (answer, name);
      g_autofree char *current = kd_cli_json_text (answer, "current_version");

      printf ("image '%s' published: version %s is current; pool desktops follow it\n", safe,
              current);
    }
  return TRUE;
}

static gboolean
run_image_cancel_edit (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *name = kd_cli_arg (inv, 0);
  g_autofree char *path = escaped_path (API "/images", name, "/edit/cancel");
  g_autofree char *safe_image = kd_cli_sanitize (name);
  g_autoptr(JsonNode) answer = NULL;

  if (!call (cli, "POST", path, NULL, &answer, error))
    {
      g_prefix_error (error, "cancelling the edit of image '%s' failed: ", safe_image);
      return FALSE;
    }
  if (cli->json)
    print_json (answer);   /* 204: nothing */
  else
    printf ("edit of image '%s' cancelled: its desktop and its copy are deleted\n", safe_image);
  return TRUE;
}

static gboolean
run_image_versions (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  g_autofree char *path = escaped_path (API "/images", kd_cli_arg (inv, 0), "/versions");

  return list_objects (cli, path, "versions", version_columns, G_N_ELEMENTS (version_columns),
                       error);
}

static gboolean
run_image_rollback (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *name = kd_cli_arg (inv, 0);
  g_autofree char *path = escaped_path (API "/images", name, "/rollback");
  g_autofree char *safe_image = kd_cli_sanitize (name);
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;
  gint64 version = 0;

  if (!kd_cli_arg_int (inv, 1, "VERSION", 1, KD_CLI_VERSION_MAX, &version, error))
    return FALSE;
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "version");
  json_builder_add_int_value (b, version);
  json_builder_end_object (b);
  body = json_builder_get_root (b);

  if (!call (cli, "POST", path, body, &answer, error) || !expect_object (cli, answer, error))
    {
      g_prefix_error (error, "rollback of image '%s' failed: ", safe_image);
      return FALSE;
    }
  if (cli->json)
    print_json (answer);
  else
    {
      g_autofree char *safe = answer_name (answer, name);
      g_autofree char *current = kd_cli_json_text (answer, "current_version");

      printf ("image '%s' rolled back: version %s is current again; pool desktops follow it\n",
              safe, current);
    }
  return TRUE;
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
    { "rdp-port", "rdp_port" }, { "gpus", "gpus" },
  };
  static const struct { const char *option; const char *member; } strings[] = {
    { "display", "display" }, { "network", "network" }, { "firmware", "firmware" }, { "vgpu", "gpu_mdev" },
  };
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
      const char *value = kd_cli_option (inv, strings[i].option);

      if (value == NULL)
        continue;
      json_builder_set_member_name (b, strings[i].member);
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

/* ---- users and groups ---------------------------------------------------- */

#define KD_CLI_PASSWORD_MIN 8

static void
add_string_array (JsonBuilder *b, const char *member, const char *const *values)
{
  json_builder_set_member_name (b, member);
  json_builder_begin_array (b);
  for (guint i = 0; values != NULL && values[i] != NULL; i++)
    json_builder_add_string_value (b, values[i]);
  json_builder_end_array (b);
}

/*
 * The new password of 'user add' and 'user passwd': $KVMDESK_NEW_PASSWORD,
 * else the first line of stdin with --password-stdin, else asked twice on
 * the terminal. The server checks it again; the length is checked here so
 * that a typo does not cost a round trip after two prompts.
 */
static gboolean
read_new_password (const KdCliInvocation *inv, const char *user, char *buf, gsize size,
                   GError **error)
{
  const char *env = g_getenv ("KVMDESK_NEW_PASSWORD");
  gsize len;

  if (env != NULL)
    {
      if (strlen (env) >= size)
        {
          g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                       "KVMDESK_NEW_PASSWORD is longer than %u bytes", (guint) size - 1);
          return FALSE;
        }
      g_strlcpy (buf, env, size);
    }
  else if (kd_cli_option (inv, "password-stdin") != NULL)
    {
      if (!read_line (STDIN_FILENO, buf, size, error))
        return FALSE;
    }
  else if (isatty (STDIN_FILENO))
    {
      g_autofree char *safe = kd_cli_sanitize (user);
      g_autofree char *prompt = g_strdup_printf ("New password for '%s': ", safe);
      char again[KD_CLI_PASSWORD_MAX + 1];
      gboolean same;

      if (!prompt_secret (prompt, buf, size, error))
        return FALSE;
      if (!prompt_secret ("Again: ", again, sizeof again, error))
        {
          memset (buf, 0, size);
          return FALSE;
        }
      same = g_str_equal (buf, again);
      memset (again, 0, sizeof again);
      if (!same)
        {
          memset (buf, 0, size);
          g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                       "the two passwords differ; nothing was changed");
          return FALSE;
        }
    }
  else
    {
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                   "no new password: set KVMDESK_NEW_PASSWORD, use --password-stdin, "
                   "or run the command on a terminal");
      return FALSE;
    }
  len = strlen (buf);
  if (len < KD_CLI_PASSWORD_MIN || len > KD_CLI_PASSWORD_MAX)
    {
      memset (buf, 0, size);
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                   "a password must be %d to %d bytes long, this one is %" G_GSIZE_FORMAT,
                   KD_CLI_PASSWORD_MIN, KD_CLI_PASSWORD_MAX, len);
      return FALSE;
    }
  return TRUE;
}

/* Sends @body, whose "password" member is wiped after the call whatever happens. */
static gboolean
call_with_password (KdCli *cli, const char *method, const char *path, JsonNode *body,
                    JsonNode **answer, GError **error)
{
  gboolean ok = call (cli, method, path, body, answer, error);

  json_node_set_string (json_object_get_member (json_node_get_object (body), "password"), "");
  return ok;
}

static const KdCliColumn user_columns[] = {
  { "NAME", "name", kd_cli_json_text },
  { "ROLE", "role", kd_cli_json_text },
  { "GROUPS", "groups", cell_names },
};

static const char *const role_choices[] = { "admin", "user", NULL };

static gboolean
run_user_add (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *name = kd_cli_arg (inv, 0);
  const char *const *groups = kd_cli_option_list (inv, "group");
  char password[KD_CLI_PASSWORD_MAX + 1];
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;
  int role = 1;

  if (!kd_cli_option_choice (inv, "role", role_choices, &role, error))
    return FALSE;
  if (!need_token (cli, error)
      || !read_new_password (inv, name, password, sizeof password, error))
    return FALSE;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "name");
  json_builder_add_string_value (b, name);
  json_builder_set_member_name (b, "password");
  json_builder_add_string_value (b, password);
  memset (password, 0, sizeof password);
  json_builder_set_member_name (b, "role");
  json_builder_add_string_value (b, role_choices[role]);
  add_string_array (b, "groups", groups);
  json_builder_end_object (b);
  body = json_builder_get_root (b);

  if (!call_with_password (cli, "POST", API "/users", body, &answer, error)
      || !expect_object (cli, answer, error))
    return FALSE;
  if (cli->json)
    print_json (answer);
  else
    {
      g_autofree char *safe = answer_name (answer, name);
      g_autofree char *role_text = kd_cli_json_text (answer, "role");
      g_autofree char *group_text = cell_names (answer, "groups");

      printf ("user '%s' added (%s), groups: %s\n", safe, role_text,
              g_str_equal (group_text, "-") ? "none" : group_text);
    }
  return TRUE;
}

static gboolean
run_user_list (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return list_objects (cli, API "/users", "users", user_columns, G_N_ELEMENTS (user_columns),
                       error);
}

static gboolean
run_user_show (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return show_object (cli, API "/users", kd_cli_arg (inv, 0), error);
}

static gboolean
run_user_remove (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return delete_object (cli, API "/users", "user", kd_cli_arg (inv, 0), "removed", error);
}

static gboolean
run_user_passwd (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *name = kd_cli_arg (inv, 0);
  char password[KD_CLI_PASSWORD_MAX + 1];
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;
  g_autofree char *path = escaped_path (API "/users", name, "/password");
  g_autofree char *safe = kd_cli_sanitize (name);

  if (!need_token (cli, error)
      || !read_new_password (inv, name, password, sizeof password, error))
    return FALSE;
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "password");
  json_builder_add_string_value (b, password);
  memset (password, 0, sizeof password);
  json_builder_end_object (b);
  body = json_builder_get_root (b);

  if (!call_with_password (cli, "POST", path, body, &answer, error))
    return FALSE;
  if (cli->json)
    print_json (answer);
  else
    printf ("password of user '%s' changed; his other sessions are logged out\n", safe);
  return TRUE;
}

static const KdCliColumn group_columns[] = {
  { "NAME", "name", kd_cli_json_text },
  { "MEMBERS", "members", cell_names },
};

static gboolean
run_group_add (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "name");
  json_builder_add_string_value (b, kd_cli_arg (inv, 0));
  json_builder_end_object (b);
  body = json_builder_get_root (b);

  if (!call (cli, "POST", API "/groups", body, &answer, error)
      || !expect_object (cli, answer, error))
    return FALSE;
  if (cli->json)
    print_json (answer);
  else
    {
      g_autofree char *safe = answer_name (answer, kd_cli_arg (inv, 0));

      printf ("group '%s' added\n", safe);
    }
  return TRUE;
}

static gboolean
run_group_list (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return list_objects (cli, API "/groups", "groups", group_columns,
                       G_N_ELEMENTS (group_columns), error);
}

static gboolean
run_group_remove (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return delete_object (cli, API "/groups", "group", kd_cli_arg (inv, 0), "removed", error);
}

/* ---- pools --------------------------------------------------------------- */

/* The limits of docs/api.md, checked here for a clear usage error. */
#define KD_CLI_POOL_SIZE_MAX 10000
#define KD_CLI_TIMEOUT_MAX_S 31536000

static char *
cell_on_off (JsonNode *item, const char *path)
{
  JsonNode *n = kd_cli_json_lookup (item, path);

  if (n != NULL && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_BOOLEAN)
    return g_strdup (json_node_get_boolean (n) ? "on" : "off");
  return kd_cli_json_text (item, path);
}

static const KdCliColumn pool_columns[] = {
  { "NAME", "name", kd_cli_json_text },
  { "MODE", "mode", kd_cli_json_text },
  { "IMAGE", "image", kd_cli_json_text },
  { "TEMPLATE", "template", kd_cli_json_text },
  { "SIZE", "size", kd_cli_json_text },
  { "WARM", "warm", kd_cli_json_text },
  { "READY", "desktops.ready", kd_cli_json_text },
  { "ASSIGNED", "desktops.assigned", kd_cli_json_text },
  { "CONNECTED", "desktops.connected", kd_cli_json_text },
  { "MAINTENANCE", "maintenance", cell_on_off },
};

static const char *const mode_choices[] = { "floating", "persistent", NULL };
static const char *const on_off_choices[] = { "on", "off", NULL };
static const char *const migration_choices[] = { "live", "cold", NULL };
static const char *const console_choices[] = { "takeover", "share", NULL };
static const char *const placement_choices[] = { "spread", "pack", "round-robin", NULL };

/*
 * The pool fields a command line may give, into @b: only those given, so
 * that a PATCH changes only them. Ranges are checked here; warm <= size
 * when both are given (the server checks against the stored size).
 */
static gboolean
add_pool_fields (const KdCliInvocation *inv, JsonBuilder *b, guint *n_fields, GError **error)
{
  static const struct { const char *option; const char *member; gint64 min, max; } ints[] = {
    { "size", "size", 1, KD_CLI_POOL_SIZE_MAX },
    { "warm", "warm", 0, KD_CLI_POOL_SIZE_MAX },
    { "idle-timeout", "idle_timeout", 0, KD_CLI_TIMEOUT_MAX_S },
    { "disconnect-timeout", "disconnect_timeout", 0, KD_CLI_TIMEOUT_MAX_S },
  };
  static const struct { const char *option; const char *member; } lists[] = {
    { "user", "users" }, { "group", "groups" }, { "host", "hosts" },
  };
  gint64 size = -1, warm = -1;
  int maintenance = -1;

  for (guint i = 0; i < G_N_ELEMENTS (ints); i++)
    {
      gint64 value = -1;

      if (kd_cli_option (inv, ints[i].option) == NULL)
        continue;
      if (!kd_cli_option_int (inv, ints[i].option, ints[i].min, ints[i].max, &value, error))
        return FALSE;
      if (g_str_equal (ints[i].option, "size"))
        size = value;
      else if (g_str_equal (ints[i].option, "warm"))
        warm = value;
      json_builder_set_member_name (b, ints[i].member);
      json_builder_add_int_value (b, value);
      (*n_fields)++;
    }
  if (size >= 0 && warm > size)
    {
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                   "--warm %" G_GINT64_FORMAT " is more than --size %" G_GINT64_FORMAT
                   ": a pool cannot keep more desktops warm than it holds", warm, size);
      return FALSE;
    }
  if (kd_cli_option (inv, "placement") != NULL)
    {
      int placement = -1;
      if (!kd_cli_option_choice (inv, "placement", placement_choices, &placement, error))
        return FALSE;
      json_builder_set_member_name (b, "placement");
      json_builder_add_string_value (b, placement_choices[placement]);
      (*n_fields)++;
    }
  if (kd_cli_option_list (inv, "host-label") != NULL)
    {
      add_string_array (b, "host_labels", kd_cli_option_list (inv, "host-label"));
      (*n_fields)++;
    }
  if (kd_cli_option (inv, "console") != NULL)
    {
      int console = -1;
      if (!kd_cli_option_choice (inv, "console", console_choices, &console, error))
        return FALSE;
      json_builder_set_member_name (b, "console_mode");
      json_builder_add_string_value (b, console_choices[console]);
      (*n_fields)++;
    }
  if (!kd_cli_option_choice (inv, "maintenance", on_off_choices, &maintenance, error))
    return FALSE;
  if (maintenance >= 0)
    {
      json_builder_set_member_name (b, "maintenance");
      json_builder_add_boolean_value (b, maintenance == 0);
      (*n_fields)++;
    }
  for (guint i = 0; i < G_N_ELEMENTS (lists); i++)
    {
      const char *const *values = kd_cli_option_list (inv, lists[i].option);

      if (values == NULL)
        continue;
      add_string_array (b, lists[i].member, values);
      (*n_fields)++;
    }
  return TRUE;
}

static void
print_pool_line (JsonNode *answer, const char *typed_name, const char *done)
{
  g_autofree char *name = answer_name (answer, typed_name);
  g_autofree char *mode = kd_cli_json_text (answer, "mode");
  g_autofree char *size = kd_cli_json_text (answer, "size");
  g_autofree char *warm = kd_cli_json_text (answer, "warm");
  g_autofree char *image = kd_cli_json_text (answer, "image");
  g_autofree char *template = kd_cli_json_text (answer, "template");
  g_autofree char *maintenance = cell_on_off (answer, "maintenance");

  printf ("pool '%s' %s: %s, size %s, %s warm, image '%s', template '%s'%s\n", name, done, mode,
          size, warm, image, template,
          g_str_equal (maintenance, "on") ? ", in maintenance" : "");
}

static gboolean
run_pool_add (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;
  guint n_fields = 0;
  int mode = 0;

  if (!kd_cli_option_choice (inv, "mode", mode_choices, &mode, error))
    return FALSE;
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "name");
  json_builder_add_string_value (b, kd_cli_arg (inv, 0));
  json_builder_set_member_name (b, "image");
  json_builder_add_string_value (b, kd_cli_option (inv, "image"));
  json_builder_set_member_name (b, "template");
  json_builder_add_string_value (b, kd_cli_option (inv, "template"));
  json_builder_set_member_name (b, "mode");
  json_builder_add_string_value (b, mode_choices[mode]);
  if (!add_pool_fields (inv, b, &n_fields, error))
    return FALSE;
  json_builder_end_object (b);
  body = json_builder_get_root (b);

  if (!call (cli, "POST", API "/pools", body, &answer, error)
      || !expect_object (cli, answer, error))
    return FALSE;
  if (cli->json)
    print_json (answer);
  else
    print_pool_line (answer, kd_cli_arg (inv, 0), "added");
  return TRUE;
}

static gboolean
run_pool_set (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *name = kd_cli_arg (inv, 0);
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;
  g_autofree char *path = escaped_path (API "/pools", name, "");
  guint n_fields = 0;

  json_builder_begin_object (b);
  if (!add_pool_fields (inv, b, &n_fields, error))
    return FALSE;
  json_builder_end_object (b);
  if (n_fields == 0)
    {
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                   "'pool set' needs at least one change (--size, --warm, --maintenance, …)");
      return FALSE;
    }
  body = json_builder_get_root (b);

  if (!call (cli, "PATCH", path, body, &answer, error) || !expect_object (cli, answer, error))
    return FALSE;
  if (cli->json)
    print_json (answer);
  else
    print_pool_line (answer, name, "changed");
  return TRUE;
}

static gboolean
run_pool_list (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return list_objects (cli, API "/pools", "pools", pool_columns, G_N_ELEMENTS (pool_columns),
                       error);
}

static gboolean
run_pool_show (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return show_object (cli, API "/pools", kd_cli_arg (inv, 0), error);
}

static gboolean
run_pool_remove (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  return delete_object (cli, API "/pools", "pool", kd_cli_arg (inv, 0), "removed", error);
}

/* ---- desktops ------------------------------------------------------------ */

/* "img1@v2"; a server without versions gives just "img1". */
static char *
cell_desktop_image (JsonNode *item, const char *path)
{
  g_autofree char *image = kd_cli_json_text (item, path);
  gint64 version;

  if (g_str_equal (image, "-") || !kd_cli_json_int (item, "image_version", &version))
    return g_steal_pointer (&image);
  return g_strdup_printf ("%s@v%" G_GINT64_FORMAT, image, version);
}

static const KdCliColumn desktop_columns[] = {
  { "NAME", "name", kd_cli_json_text },
  { "STATE", "state", kd_cli_json_text },
  { "POOL", "pool", kd_cli_json_text },
  { "USER", "user", kd_cli_json_text },
  { "HOST", "host", kd_cli_json_text },
  { "IMAGE", "image", cell_desktop_image },
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
    { "reboot", "rebooted" },
    { "release", "released" },
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

/* States in which a desktop is the caller's and can be used now. */
static gboolean
desktop_state_usable (const char *state)
{
  return g_str_equal (state, "assigned") || g_str_equal (state, "connected")
         || g_str_equal (state, "disconnected");
}

/*
 * desktop get POOL [--wait [--timeout S]]: asks the pool for the caller's
 * desktop, then (with --wait) polls it once a second until it can be used,
 * fails, or the timeout passes. State changes are noted on stderr.
 */
static gboolean
run_desktop_get (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *pool = kd_cli_arg (inv, 0);
  gboolean wait = kd_cli_option (inv, "wait") != NULL;
  gint64 timeout_s = KD_CLI_DESKTOP_WAIT_DEFAULT_S;
  g_autofree char *path = escaped_path (API "/pools", pool, "/desktop");
  g_autofree char *safe_pool = kd_cli_sanitize (pool);
  g_autoptr(JsonNode) answer = NULL;
  g_autofree char *name = NULL;
  g_autofree char *state = NULL;
  gboolean existing;
  gint64 deadline;

  if (!kd_cli_option_int (inv, "timeout", 1, KD_CLI_DESKTOP_WAIT_MAX_S, &timeout_s, error))
    return FALSE;
  if (!call (cli, "POST", path, NULL, &answer, error) || !expect_object (cli, answer, error))
    return FALSE;
  existing = kd_cli_http_get_status (cli->http) == 200;
  {
    JsonNode *n = kd_cli_json_lookup (answer, "name");

    if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING
        || json_node_get_string (n)[0] == '\0')
      {
        g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                     "the answer from %s names no desktop", cli->url);
        return FALSE;
      }
    name = g_strdup (json_node_get_string (n));
  }
  state = kd_cli_json_text (answer, "state");

  deadline = g_get_monotonic_time () + timeout_s * G_USEC_PER_SEC;
  while (wait && !desktop_state_usable (state) && !g_str_equal (state, "error"))
    {
      g_autofree char *desktop_path = escaped_path (API "/desktops", name, "");
      g_autofree char *safe_name = kd_cli_sanitize (name);
      g_autofree char *new_state = NULL;

      if (g_get_monotonic_time () >= deadline)
        {
          g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                       "desktop '%s' from pool '%s' is still '%s' after %" G_GINT64_FORMAT
                       " s (see --timeout)", safe_name, safe_pool, state, timeout_s);
          return FALSE;
        }
      if (!cli->json)
        {
          fprintf (stderr, "waiting for desktop '%s' (%s)…\n", safe_name, state);
          fflush (stderr);
        }
      do
        {
          g_usleep (KD_CLI_DESKTOP_POLL_INTERVAL_MS * 1000);
          g_clear_pointer (&answer, json_node_unref);
          if (!call (cli, "GET", desktop_path, NULL, &answer, error)
              || !expect_object (cli, answer, error))
            {
              g_prefix_error (error, "while waiting for desktop '%s': ", safe_name);
              return FALSE;
            }
          g_free (new_state);
          new_state = kd_cli_json_text (answer, "state");
        }
      while (g_str_equal (new_state, state) && g_get_monotonic_time () < deadline);
      g_free (state);
      state = g_steal_pointer (&new_state);
    }

  if (g_str_equal (state, "error"))
    {
      g_autofree char *safe_name = kd_cli_sanitize (name);
      g_autofree char *reason = kd_cli_json_text (answer, "state_reason");

      if (cli->json)
        print_json (answer);
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                   "desktop '%s' from pool '%s' failed: %s", safe_name, safe_pool,
                   g_str_equal (reason, "-") ? "no reason given" : reason);
      return FALSE;
    }
  if (cli->json)
    print_json (answer);
  else
    {
      g_autofree char *safe_name = kd_cli_sanitize (name);
      g_autofree char *host = kd_cli_json_text (answer, "host");

      if (existing)
        printf ("desktop '%s' from pool '%s' is already yours (%s) on host '%s'\n", safe_name,
                safe_pool, state, host);
      else
        printf ("desktop '%s' from pool '%s' is yours (%s) on host '%s'\n", safe_name,
                safe_pool, state, host);
      if (!wait && !desktop_state_usable (state))
        fprintf (stderr, "it is not ready yet: 'kvmdesk desktop get %s --wait' waits for it\n",
                 safe_pool);
    }
  return TRUE;
}

static gboolean
run_desktop_heartbeat (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *name = kd_cli_arg (inv, 0);
  gboolean connected = kd_cli_option (inv, "disconnected") == NULL;
  g_autofree char *path = escaped_path (API "/desktops", name, "/heartbeat");
  g_autofree char *safe = kd_cli_sanitize (name);
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) body = NULL;
  g_autoptr(JsonNode) answer = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "connected");
  json_builder_add_boolean_value (b, connected);
  json_builder_end_object (b);
  body = json_builder_get_root (b);

  if (!call (cli, "POST", path, body, &answer, error))
    return FALSE;
  if (cli->json)
    print_json (answer);
  else
    printf ("heartbeat for desktop '%s' sent (%s)\n", safe,
            connected ? "connected" : "disconnected");
  return TRUE;
}

/* desktop vv|rdp NAME: GET console.vv / console.rdp into a file. */
static gboolean
run_desktop_viewer_file (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  const char *name = kd_cli_arg (inv, 0);
  gboolean vv = g_str_equal (inv->command->verb, "vv");
  const char *output = kd_cli_option (inv, "output");
  g_autofree char *safe = kd_cli_sanitize (name);
  g_autofree char *default_output = g_strdup_printf ("%s.%s", name, vv ? "vv" : "rdp");
  g_autoptr(GString) suffix = g_string_new (vv ? "/console.vv" : "/console.rdp");
  g_autofree char *path = NULL;
  g_autoptr(GBytes) data = NULL;
  g_autoptr(GError) local = NULL;
  char sep = '?';
  gint64 ttl;

  if (kd_cli_option (inv, "ttl") != NULL)
    {
      if (!vv)
        {
          g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE, "--ttl is for .vv files only");
          return FALSE;
        }
      if (!kd_cli_option_int (inv, "ttl", 1, 3600, &ttl, error))
        return FALSE;
      g_string_append_printf (suffix, "%cttl=%" G_GINT64_FORMAT, sep, ttl);
      sep = '&';
    }
  if (kd_cli_option (inv, "fullscreen") != NULL)
    {
      g_string_append_printf (suffix, "%cfullscreen=1", sep);
      sep = '&';
    }
  if (kd_cli_option (inv, "kiosk") != NULL)
    {
      if (!vv)
        {
          g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE, "--kiosk is for .vv files only");
          return FALSE;
        }
      g_string_append_printf (suffix, "%ckiosk=1", sep);
    }
  if (!need_token (cli, error))
    return FALSE;
  path = escaped_path (API "/desktops", name, suffix->str);
  if (!kd_cli_http_download (cli->http, path, &data, error))
    return FALSE;
  if (output != NULL && g_str_equal (output, "-"))
    {
      gsize len;
      const char *bytes = g_bytes_get_data (data, &len);
      fwrite (bytes, 1, len, stdout);
      return TRUE;
    }
  if (output == NULL)
    output = default_output;
  {
    gsize len;
    const char *bytes = g_bytes_get_data (data, &len);
    /* 0600: a .vv file holds a password. */
    if (!g_file_set_contents_full (output, bytes, (gssize) len, G_FILE_SET_CONTENTS_CONSISTENT,
                                   0600, &local))
      {
        g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED, "cannot write '%s': %s", output,
                     local->message);
        return FALSE;
      }
  }
  if (cli->json)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      g_autoptr(JsonNode) root = NULL;
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "desktop");
      json_builder_add_string_value (b, name);
      json_builder_set_member_name (b, "file");
      json_builder_add_string_value (b, output);
      json_builder_end_object (b);
      root = json_builder_get_root (b);
      print_json (root);
    }
  else if (vv)
    printf ("wrote %s for desktop '%s': open it with remote-viewer %s (its password expires in "
            "%s seconds)\n", output, safe, output, kd_cli_option (inv, "ttl") ? kd_cli_option (inv, "ttl") : "120");
  else
    printf ("wrote %s for desktop '%s': open it with an RDP client (xfreerdp %s)\n", output, safe, output);
  return TRUE;
}

/* GET /me: the name of the caller, for "desktop mine". */
static char *
whoami (KdCli *cli, GError **error)
{
  g_autoptr(JsonNode) me = NULL;
  JsonNode *user;

  if (!call (cli, "GET", API "/me", NULL, &me, error) || !expect_object (cli, me, error))
    return NULL;
  user = kd_cli_json_lookup (me, "user");
  if (user == NULL)
    user = kd_cli_json_lookup (me, "name");   /* a user object, as some servers answer */
  if (user == NULL || !JSON_NODE_HOLDS_VALUE (user)
      || json_node_get_value_type (user) != G_TYPE_STRING)
    {
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                   "the answer of %s to GET /me names no user", cli->url);
      return NULL;
    }
  return g_strdup (json_node_get_string (user));
}

/*
 * desktop mine: the desktops assigned to the caller. A user's GET /desktops
 * holds only his; an admin's holds every desktop, so the list is filtered
 * on "user" for everyone.
 */
static gboolean
run_desktop_mine (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  g_autofree char *me = whoami (cli, error);
  g_autoptr(JsonNode) answer = NULL;
  g_autoptr(JsonArray) mine = NULL;
  JsonArray *all;

  if (me == NULL)
    return FALSE;
  if (!call (cli, "GET", API "/desktops", NULL, &answer, error))
    return FALSE;
  if (answer == NULL || !JSON_NODE_HOLDS_ARRAY (answer))
    {
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_FAILED,
                   "unexpected answer from %s: expected a list of desktops", cli->url);
      return FALSE;
    }
  all = json_node_get_array (answer);
  mine = json_array_new ();
  for (guint i = 0; i < json_array_get_length (all); i++)
    {
      JsonNode *d = json_array_get_element (all, i);
      JsonNode *user = kd_cli_json_lookup (d, "user");

      if (user != NULL && JSON_NODE_HOLDS_VALUE (user)
          && json_node_get_value_type (user) == G_TYPE_STRING
          && g_str_equal (json_node_get_string (user), me))
        json_array_add_element (mine, json_node_copy (d));
    }
  if (cli->json)
    {
      g_autoptr(JsonNode) root = json_node_new (JSON_NODE_ARRAY);

      json_node_set_array (root, mine);
      print_json (root);
      return TRUE;
    }
  if (json_array_get_length (mine) == 0)
    {
      g_autofree char *safe = kd_cli_sanitize (me);

      printf ("no desktops assigned to '%s' (get one with: kvmdesk desktop get POOL)\n", safe);
      return TRUE;
    }
  print_table (mine, desktop_columns, G_N_ELEMENTS (desktop_columns));
  return TRUE;
}

/* ---- me ------------------------------------------------------------------ */

static gboolean
run_me (KdCli *cli, const KdCliInvocation *inv, GError **error)
{
  g_autoptr(JsonNode) answer = NULL;
  g_autofree char *user = NULL;
  g_autofree char *role = NULL;
  g_autofree char *groups = NULL;

  if (!call (cli, "GET", API "/me", NULL, &answer, error) || !expect_object (cli, answer, error))
    return FALSE;
  if (cli->json)
    {
      print_json (answer);
      return TRUE;
    }
  user = kd_cli_json_text (answer, kd_cli_json_lookup (answer, "user") != NULL ? "user" : "name");
  role = kd_cli_json_text (answer, "role");
  groups = cell_names (answer, "groups");
  printf ("user:   %s\nrole:   %s\ngroups: %s\nserver: %s\n", user, role, groups, cli->url);
  return TRUE;
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
    { "desktop", "desktop" }, { "pool", "pool" }, { "user", "user" },
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
static const KdCliOption image_copy_options[] = {
  { "host", "HOST", TRUE, "the host to copy it to" },
  { NULL }
};
static const KdCliOption image_edit_options[] = {
  { "template", "TEMPLATE", TRUE, "template (machine shape) of the editing desktop" },
  { "host", "HOST", FALSE, "host to edit on (default: one holding the current version)" },
  { NULL }
};
static const KdCliOption image_publish_options[] = {
  { "note", "TEXT", FALSE, "what changed in this version (up to 1000 characters)" },
  { NULL }
};
#define HOST_SETTING_OPTIONS \
  { "cpu-ratio", "R", FALSE, "vCPUs per host CPU the scheduler allows (default 4.0)" }, \
  { "memory-ratio", "R", FALSE, "memory overcommit (default 1.0)" }, \
  { "disk-ratio", "R", FALSE, "disk overcommit of the storage pool (default 1.0)" }, \
  { "memory-reserved", "MIB", FALSE, "memory kept for the host itself (default 1024)" }, \
  { "migration", "live|cold", FALSE, "how a drain moves running desktops off it (default live)", \
    FALSE, NULL, migration_choices }, \
  { "label", "LABEL", FALSE, "a label pools can require (repeat; replaces the list)", TRUE }, \
  { "gpu", "ADDR[,ADDR…]", FALSE, \
    "a passthrough GPU: the PCI addresses of its functions (repeat; replaces the list; '' for none)", TRUE }
static const KdCliOption host_set_options[] = {
  { "maintenance", "on|off", FALSE, "on: no new desktops are placed here", FALSE, NULL,
    on_off_choices },
  HOST_SETTING_OPTIONS,
  { NULL }
};
static const KdCliOption host_add_options[] = {
  HOST_SETTING_OPTIONS,
  { "graphics-listen", "ADDR", FALSE,
    "address desktops' VNC/SPICE listen on (default 127.0.0.1; 0.0.0.0 for remote viewers)" },
  { "console-access", "auto|fd|tcp", FALSE,
    "how the browser console reaches displays: fd (local libvirtd), tcp (one-time password), "
    "auto (default)" },
  { NULL }
};
static const KdCliOption desktop_viewer_options[] = {
  { "output", "FILE", FALSE, "write the file here (default NAME.vv / NAME.rdp; - for stdout)" },
  { "ttl", "S", FALSE, ".vv: seconds the one-time password lets a viewer in (default 120)" },
  { "fullscreen", NULL, FALSE, "open the viewer full screen" },
  { "kiosk", NULL, FALSE, ".vv: full screen for kiosk clients (kiosk-mode=1)" },
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
  { "rdp-port", "PORT", FALSE, "the guest runs an RDP server on PORT (enables console.rdp)" },
  { "gpus", "N", FALSE, "whole passthrough GPUs per desktop (0-8; default 0)" },
  { "vgpu", "TYPE", FALSE, "a vGPU per desktop: a mediated device type a host GPU offers (e.g. nvidia-63)" },
  { NULL }
};
static const KdCliOption desktop_create_options[] = {
  { "image", "IMAGE", TRUE, "image the desktop's disk is a linked clone of" },
  { "template", "TEMPLATE", TRUE, "template: vCPUs, memory, disk, display, network" },
  { "host", "HOST", FALSE, "host to place it on (default: chosen by the scheduler)" },
  { "start", NULL, FALSE, "start it once created" },
  { NULL }
};
static const KdCliOption user_add_options[] = {
  { "role", "admin|user", FALSE, "role (default user)", FALSE, NULL, role_choices },
  { "group", "GROUP", FALSE, "a group he belongs to (repeat for more)", TRUE },
  { "password-stdin", NULL, FALSE,
    "read the password from the first line of standard input" },
  { NULL }
};
static const KdCliOption user_passwd_options[] = {
  { "password-stdin", NULL, FALSE,
    "read the new password from the first line of standard input" },
  { NULL }
};
#define POOL_COMMON_OPTIONS \
  { "idle-timeout", "S", FALSE, \
    "persistent: shut down after S seconds without a client (0: never)" }, \
  { "disconnect-timeout", "S", FALSE, \
    "floating: reset S seconds after the client left (0: never)" }, \
  { "console", "takeover|share", FALSE, \
    "a second console on a desktop ends the first (takeover, default) or joins it (share)", \
    FALSE, NULL, console_choices }, \
  { "placement", "spread|pack|round-robin", FALSE, \
    "where new desktops go: most free memory (spread, default), fill a host first (pack), " \
    "or the pool's --host list in turn (round-robin)", FALSE, NULL, placement_choices }, \
  { "host-label", "LABEL", FALSE, "a label every host of the pool must carry (repeat)", TRUE }
static const KdCliOption pool_add_options[] = {
  { "image", "IMAGE", TRUE, "image the pool's desktops are linked clones of" },
  { "template", "TEMPLATE", TRUE, "template of the pool's desktops" },
  { "mode", "floating|persistent", TRUE,
    "floating: reset when released; persistent: one desktop kept per user", FALSE, NULL,
    mode_choices },
  { "size", "N", TRUE, "most desktops in the pool (1-10000)" },
  { "warm", "N", FALSE, "desktops kept started and unassigned (default 0)" },
  { "group", "GROUP", FALSE, "a group entitled to the pool (repeat for more)", TRUE },
  { "user", "USER", FALSE, "a user entitled to the pool (repeat for more)", TRUE },
  { "host", "HOST", FALSE, "a host its desktops may run on (repeat; default any)", TRUE },
  POOL_COMMON_OPTIONS,
  { NULL }
};
static const KdCliOption pool_set_options[] = {
  { "size", "N", FALSE, "most desktops in the pool (1-10000)" },
  { "warm", "N", FALSE, "desktops kept started and unassigned" },
  POOL_COMMON_OPTIONS,
  { "maintenance", "on|off", FALSE, "on: no desktop is handed out", FALSE, NULL,
    on_off_choices },
  { "user", "USER", FALSE, "entitled users: the list given replaces it ('' empties it)", TRUE },
  { "group", "GROUP", FALSE, "entitled groups: the list given replaces it ('' empties it)",
    TRUE },
  { "host", "HOST", FALSE, "allowed hosts: the list given replaces it ('' means any)", TRUE },
  { NULL }
};
static const KdCliOption desktop_get_options[] = {
  { "wait", NULL, FALSE, "wait until the desktop is ready to use" },
  { "timeout", "S", FALSE, "with --wait: give up after S seconds (default 300)", FALSE,
    "wait" },
  { NULL }
};
static const KdCliOption desktop_heartbeat_options[] = {
  { "disconnected", NULL, FALSE, "report that the client is no longer connected" },
  { NULL }
};
static const KdCliOption reconcile_options[] = {
  { "run", NULL, FALSE, "run the reconciler now instead of showing its last report" },
  { NULL }
};
static const KdCliOption events_options[] = {
  { "object-type", "TYPE", FALSE, "only events of this kind of object (desktop, host, …)" },
  { "object", "NAME", FALSE, "only events of the object with this name" },
  { "desktop", "NAME", FALSE, "only events of this desktop" },
  { "pool", "NAME", FALSE, "only events of this pool and its desktops" },
  { "user", "NAME", FALSE, "only events concerning this user" },
  { "since", "ID", FALSE, "only events after the event with this id" },
  { "limit", "N", FALSE, "at most N events (newest first)" },
  { NULL }
};

const KdCliCommand kd_cli_commands[] = {
  { NULL, "login", "USER", 1, 1, login_options,
    "log in (password from $KVMDESK_PASSWORD or a prompt) and store the token", run_login },
  { NULL, "logout", "", 0, 0, NULL, "revoke the stored token", run_logout },
  { NULL, "me", "", 0, 0, NULL, "show who you are logged in as: user, role, groups", run_me },
  { "host", "add", "NAME URI", 2, 2, host_add_options,
    "register a KVM host by its libvirt URI (qemu:///system, qemu+ssh://…)", run_host_add },
  { "host", "list", "", 0, 0, NULL, "list hosts with their capacity", run_host_list },
  { "host", "show", "NAME", 1, 1, NULL, "show one host", run_host_show },
  { "host", "set", "NAME", 1, 1, host_set_options,
    "change a host's placement settings: maintenance, overcommit, reserve, labels", run_host_set },
  { "host", "drain", "NAME", 1, 1, NULL,
    "empty a host: maintenance on, spares rebuilt elsewhere, floating desktops follow on release",
    run_host_drain },
  { "host", "maintenance", "NAME on|off", 2, 2, NULL,
    "put a host in maintenance (no new desktops) or take it out", run_host_set },
  { "host", "remove", "NAME", 1, 1, NULL, "unregister a host without desktops or images",
    run_host_remove },
  { "image", "import", "NAME FILE", 2, 2, image_import_options,
    "upload a qcow2 or raw disk image to a host", run_image_import },
  { "image", "list", "", 0, 0, NULL, "list images", run_image_list },
  { "image", "show", "NAME", 1, 1, NULL, "show one image and its volumes", run_image_show },
  { "image", "delete", "NAME", 1, 1, NULL, "delete an image from every host",
    run_image_delete },
  { "image", "edit", "NAME", 1, 1, image_edit_options,
    "edit an image: boot a copy of its current version in desktop edit-NAME",
    run_image_edit },
  { "image", "publish", "NAME", 1, 1, image_publish_options,
    "publish the edited copy as the image's next, current version",
    run_image_publish },
  { "image", "cancel-edit", "NAME", 1, 1, NULL,
    "cancel an edit: delete the editing desktop and its copy", run_image_cancel_edit },
  { "image", "copy", "NAME", 1, 1, image_copy_options,
    "copy an image's current version to another host in advance", run_image_copy },
  { "image", "versions", "NAME", 1, 1, NULL, "list an image's versions, oldest first",
    run_image_versions },
  { "image", "rollback", "NAME VERSION", 2, 2, NULL,
    "make an older version current again (pool desktops follow it)", run_image_rollback },
  { "template", "add", "NAME", 1, 1, template_add_options, "define a template (machine type)",
    run_template_add },
  { "template", "list", "", 0, 0, NULL, "list templates", run_template_list },
  { "template", "show", "NAME", 1, 1, NULL, "show one template", run_template_show },
  { "template", "remove", "NAME", 1, 1, NULL, "remove a template no desktop uses",
    run_template_remove },
  { "user", "add", "NAME", 1, 1, user_add_options,
    "add a user (password from $KVMDESK_NEW_PASSWORD or asked twice)", run_user_add },
  { "user", "list", "", 0, 0, NULL, "list users", run_user_list },
  { "user", "show", "NAME", 1, 1, NULL, "show one user", run_user_show },
  { "user", "remove", "NAME", 1, 1, NULL, "remove a user; his desktops are released",
    run_user_remove },
  { "user", "passwd", "NAME", 1, 1, user_passwd_options,
    "set a user's password (his other sessions are logged out)", run_user_passwd },
  { "group", "add", "NAME", 1, 1, NULL, "add a group", run_group_add },
  { "group", "list", "", 0, 0, NULL, "list groups and their members", run_group_list },
  { "group", "remove", "NAME", 1, 1, NULL, "remove a group", run_group_remove },
  { "pool", "add", "NAME", 1, 1, pool_add_options,
    "create a pool of desktops: image + template + policy", run_pool_add },
  { "pool", "list", "", 0, 0, NULL, "list pools (a user sees those he is entitled to)",
    run_pool_list },
  { "pool", "show", "NAME", 1, 1, NULL, "show one pool", run_pool_show },
  { "pool", "set", "NAME", 1, 1, pool_set_options,
    "change a pool: only the options given", run_pool_set },
  { "pool", "remove", "NAME", 1, 1, NULL,
    "remove a pool without assigned desktops (its other desktops are deleted)",
    run_pool_remove },
  { "desktop", "create", "NAME", 1, 1, desktop_create_options,
    "create a desktop: a linked clone of an image, shaped by a template", run_desktop_create },
  { "desktop", "list", "", 0, 0, NULL, "list desktops", run_desktop_list },
  { "desktop", "mine", "", 0, 0, NULL, "list the desktops assigned to you",
    run_desktop_mine },
  { "desktop", "show", "NAME", 1, 1, NULL, "show one desktop", run_desktop_show },
  { "desktop", "get", "POOL", 1, 1, desktop_get_options,
    "get your desktop from a pool (yours if you have one, else a free one)", run_desktop_get },
  { "desktop", "release", "NAME", 1, 1, NULL,
    "give a desktop back (floating: reset and returned to its pool)", run_desktop_action },
  { "desktop", "start", "NAME", 1, 1, NULL, "start a desktop", run_desktop_action },
  { "desktop", "shutdown", "NAME", 1, 1, NULL,
    "shut a desktop down (ACPI; forced off after the server's timeout)", run_desktop_action },
  { "desktop", "reboot", "NAME", 1, 1, NULL, "reboot a desktop (ACPI)", run_desktop_action },
  { "desktop", "poweroff", "NAME", 1, 1, NULL, "power a desktop off at once",
    run_desktop_action },
  { "desktop", "reset", "NAME", 1, 1, NULL,
    "throw away the desktop's disk changes and recreate it from its image",
    run_desktop_action },
  { "desktop", "heartbeat", "NAME", 1, 1, desktop_heartbeat_options,
    "tell the server a client is (or is no longer) connected to a desktop",
    run_desktop_heartbeat },
  { "desktop", "delete", "NAME", 1, 1, NULL, "delete a desktop, its domain and its disk",
    run_desktop_delete },
  { "desktop", "vv", "NAME", 1, 1, desktop_viewer_options,
    "download a remote-viewer file (.vv) with a one-time password", run_desktop_viewer_file },
  { "desktop", "rdp", "NAME", 1, 1, desktop_viewer_options,
    "download an .rdp file pointing at the guest's RDP server", run_desktop_viewer_file },
  { NULL, "reconcile", "", 0, 0, reconcile_options,
    "show the reconciler's report (orphans, problems), or --run it now", run_reconcile },
  { NULL, "events", "", 0, 0, events_options, "list recorded events, newest first",
    run_events },
  { NULL, "version", "", 0, 0, NULL, "print the client's and the server's version",
    run_version },
};

const guint kd_cli_n_commands = G_N_ELEMENTS (kd_cli_commands);
