/*
 * kvmdeskd: the kvmdesk broker daemon.
 *
 *   kvmdeskd --state-dir DIR --listen ADDR:PORT [--config FILE] [--web-dir DIR]
 *            [--tls-cert CERT.pem --tls-key KEY.pem]
 *
 * Reads its settings (defaults < config file < flags), opens the database
 * in the state directory, creates the first admin account, connects the
 * hosts, serves the REST API, and runs the reconciler. When it is ready it
 * writes the address it listens on to STATE_DIR/listen-address (useful
 * with port 0) and the URL to reach it, with its scheme (http or https), to
 * STATE_DIR/base-url. SIGTERM/SIGINT stop it cleanly.
 */
#include "api/kd-api.h"
#include "common/kd-error.h"

#include <errno.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <locale.h>
#include <stdio.h>
#include <unistd.h>

static GLogLevelFlags kd_log_max = G_LOG_LEVEL_INFO;

static GLogWriterOutput
kd_log_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
  const char *message = NULL, *domain = NULL;
  const char *tag;
  g_autofree char *ts = NULL;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();

  if ((level & G_LOG_LEVEL_MASK) > kd_log_max && !(level & G_LOG_FLAG_FATAL))
    return G_LOG_WRITER_HANDLED;
  for (gsize i = 0; i < n_fields; i++)
    {
      if (g_str_equal (fields[i].key, "MESSAGE"))
        message = fields[i].value;
      else if (g_str_equal (fields[i].key, "GLIB_DOMAIN"))
        domain = fields[i].value;
    }
  switch (level & G_LOG_LEVEL_MASK)
    {
    case G_LOG_LEVEL_ERROR: tag = "error"; break;
    case G_LOG_LEVEL_CRITICAL: tag = "critical"; break;
    case G_LOG_LEVEL_WARNING: tag = "warning"; break;
    case G_LOG_LEVEL_MESSAGE: tag = "notice"; break;
    case G_LOG_LEVEL_INFO: tag = "info"; break;
    default: tag = "debug"; break;
    }
  ts = g_date_time_format (now, "%Y-%m-%dT%H:%M:%S");
  fprintf (stderr, "%s %s %s: %s\n", ts, domain ? domain : "kvmdeskd", tag, message ? message : "");
  fflush (stderr);
  return G_LOG_WRITER_HANDLED;
}

static void
kd_set_log_level (const char *level)
{
  if (g_str_equal (level, "error"))
    kd_log_max = G_LOG_LEVEL_CRITICAL;
  else if (g_str_equal (level, "warning"))
    kd_log_max = G_LOG_LEVEL_WARNING;
  else if (g_str_equal (level, "debug"))
    kd_log_max = G_LOG_LEVEL_DEBUG;
  else
    kd_log_max = G_LOG_LEVEL_INFO;
}

static gboolean
kd_on_signal (gpointer data)
{
  g_message ("stopping");
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

static void
kd_on_reconciled (KdBroker *broker, GPtrArray *orphans, GPtrArray *problems, gpointer data)
{
  for (guint i = 0; i < orphans->len; i++)
    {
      KdOrphan *o = orphans->pdata[i];
      g_warning ("reconciler: host '%s': orphan %s '%s': %s", o->host, o->kind, o->name, o->detail);
    }
  for (guint i = 0; i < problems->len; i++)
    g_warning ("reconciler: %s", ((KdProblem *) problems->pdata[i])->message);
}

static gboolean
kd_write_state_file (const char *state_dir, const char *name, const char *value, GError **error)
{
  g_autofree char *path = g_build_filename (state_dir, name, NULL);
  g_autofree char *text = g_strdup_printf ("%s\n", value);

  return g_file_set_contents_full (path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0644, error);
}

static void
kd_remove_state_file (const char *state_dir, const char *name)
{
  g_autofree char *path = g_build_filename (state_dir, name, NULL);

  g_unlink (path);
}

int
main (int argc, char **argv)
{
  g_autofree char *opt_state = NULL;
  g_autofree char *opt_listen = NULL;
  g_autofree char *opt_config = NULL;
  g_autofree char *opt_log = NULL;
  g_autofree char *opt_web = NULL;
  g_autofree char *opt_tls_cert = NULL;
  g_autofree char *opt_tls_key = NULL;
  gboolean opt_version = FALSE;
  GOptionEntry entries[] = {
    { "state-dir", 's', 0, G_OPTION_ARG_FILENAME, &opt_state, "State directory (database, uploads)", "DIR" },
    { "listen", 'l', 0, G_OPTION_ARG_STRING, &opt_listen, "Address to serve the API on (port 0: any free port)", "ADDR:PORT" },
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config, "Configuration file (INI)", "FILE" },
    { "web-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_web, "Static files of the web dashboard", "DIR" },
    { "tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &opt_tls_cert, "Serve HTTPS with this PEM certificate (with --tls-key)", "FILE" },
    { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &opt_tls_key, "PEM private key of --tls-cert", "FILE" },
    { "log-level", 0, 0, G_OPTION_ARG_STRING, &opt_log, "error, warning, info or debug", "LEVEL" },
    { "version", 0, 0, G_OPTION_ARG_NONE, &opt_version, "Print the version and exit", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- the kvmdesk broker");
  g_autoptr(GError) error = NULL;
  g_autoptr(KdConfig) config = kd_config_new_default ();
  g_autoptr(KdStore) store = NULL;
  g_autoptr(KdBroker) broker = NULL;
  g_autoptr(KdApiServer) api = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_autofree char *db_path = NULL;
  g_autofree char *generated = NULL;
  g_autofree char *abs_state = NULL;

  setlocale (LC_ALL, "");
  g_log_set_writer_func (kd_log_writer, NULL, NULL);

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx, "Settings: defaults < --config FILE < flags. "
                                    "See kvmdeskd.conf.example for every setting.");
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      fprintf (stderr, "kvmdeskd: %s (try --help)\n", error->message);
      return 2;
    }
  if (opt_version)
    {
      printf ("kvmdeskd %s\n", KD_VERSION);
      return 0;
    }
  if (argc > 1)
    {
      fprintf (stderr, "kvmdeskd: unexpected argument '%s' (try --help)\n", argv[1]);
      return 2;
    }
  if (opt_config && !kd_config_load_file (config, opt_config, &error))
    {
      fprintf (stderr, "kvmdeskd: %s\n", error->message);
      return 1;
    }
  if (opt_state)
    {
      abs_state = g_canonicalize_filename (opt_state, NULL);
      g_free (config->state_dir);
      config->state_dir = g_strdup (abs_state);
    }
  if (opt_listen)
    {
      g_free (config->listen);
      config->listen = g_strdup (opt_listen);
    }
  if (opt_web)
    {
      g_free (config->web_dir);
      config->web_dir = g_canonicalize_filename (opt_web, NULL);
    }
  if (opt_tls_cert)
    {
      g_free (config->tls_cert);
      config->tls_cert = *opt_tls_cert ? g_canonicalize_filename (opt_tls_cert, NULL) : g_strdup ("");
    }
  if (opt_tls_key)
    {
      g_free (config->tls_key);
      config->tls_key = *opt_tls_key ? g_canonicalize_filename (opt_tls_key, NULL) : g_strdup ("");
    }
  if (opt_log)
    {
      g_free (config->log_level);
      config->log_level = g_strdup (opt_log);
    }
  if (!kd_config_validate (config, &error))
    {
      fprintf (stderr, "kvmdeskd: %s\n", error->message);
      return 1;
    }
  kd_set_log_level (config->log_level);

  if (g_mkdir_with_parents (config->state_dir, 0700) < 0)
    {
      fprintf (stderr, "kvmdeskd: cannot create state directory '%s': %s\n", config->state_dir,
               g_strerror (errno));
      return 1;
    }
  db_path = g_build_filename (config->state_dir, "kvmdesk.db", NULL);
  store = kd_store_open (db_path, &error);
  if (store == NULL)
    {
      fprintf (stderr, "kvmdeskd: %s\n", error->message);
      return 1;
    }
  if (!kd_api_auth_init (&error) ||
      !kd_api_ensure_admin (store, g_getenv ("KVMDESK_ADMIN_PASSWORD"), &generated, &error))
    {
      fprintf (stderr, "kvmdeskd: cannot create the admin account: %s\n", error->message);
      return 1;
    }
  if (generated)
    {
      printf ("kvmdeskd: created user 'admin' with password '%s' (shown only this once)\n", generated);
      fflush (stdout);
    }

  kd_hv_init ();
  loop = g_main_loop_new (NULL, FALSE);
  broker = kd_broker_new (config, store);
  api = kd_api_server_new (broker, config, &error);
  if (api == NULL)
    {
      fprintf (stderr, "kvmdeskd: %s\n", error->message);
      return 1;
    }
  kd_broker_start (broker, kd_on_reconciled, NULL);
  /* base-url first: a client that sees listen-address finds it there. */
  if (!kd_write_state_file (config->state_dir, "base-url", kd_api_server_get_base_url (api), &error) ||
      !kd_write_state_file (config->state_dir, "listen-address", kd_api_server_get_address (api), &error))
    {
      fprintf (stderr, "kvmdeskd: %s\n", error->message);
      return 1;
    }
  g_message ("kvmdeskd %s listening on %s (state in %s, instance %s)", KD_VERSION,
             kd_api_server_get_base_url (api), config->state_dir, kd_store_get_instance_id (store));
  {
    g_autofree char *index = g_build_filename (config->web_dir, "index.html", NULL);
    if (g_file_test (index, G_FILE_TEST_IS_REGULAR))
      g_message ("web dashboard: %s/ (files in %s)", kd_api_server_get_base_url (api),
                 config->web_dir);
    else
      g_message ("no web dashboard: '%s' is missing (set [daemon] web_dir or --web-dir)", index);
  }

  g_unix_signal_add (SIGTERM, kd_on_signal, loop);
  g_unix_signal_add (SIGINT, kd_on_signal, loop);
  g_main_loop_run (loop);

  g_clear_pointer (&api, kd_api_server_free);
  kd_remove_state_file (config->state_dir, "listen-address");
  kd_remove_state_file (config->state_dir, "base-url");
  return 0;
}
