/*
 * test-config.c: kvmdeskd's settings: defaults, the example file, and
 * every kind of bad configuration (which must change nothing).
 */
#include "common/kd-config.h"
#include "common/kd-error.h"

static void
test_defaults_valid (void)
{
  g_autoptr(KdConfig) c = kd_config_new_default ();
  g_autoptr(GError) error = NULL;

  g_assert_true (kd_config_validate (c, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (c->listen, ==, "127.0.0.1:8080");
  g_assert_cmpint (c->shutdown_timeout, ==, 60);
}

/* The example file documents every setting with its default: loading it
 * must change nothing, and it must mention every key. */
static void
test_example_matches_defaults (void)
{
  g_autofree char *path = g_build_filename (KD_TEST_DATA, "..", "..", "data",
                                            "kvmdeskd.conf.example", NULL);
  g_autoptr(KdConfig) d = kd_config_new_default ();
  g_autoptr(KdConfig) c = kd_config_new_default ();
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  static const char *keys[] = {
    "listen", "state_dir", "log_level", "instance_name", "web_dir", "token_ttl",
    "max_body_size", "max_upload_size", "connection_limit", "per_ip_connection_limit",
    "connection_timeout", "login_attempts", "keepalive_interval", "keepalive_count",
    "reconnect_min", "reconnect_max", "storage_pool", "storage_pool_path", "domain_prefix",
    "shutdown_timeout", "worker_threads", "interval", "policy_interval", "stream_keepalive",
    "tls_cert", "tls_key",
  };

  g_assert_true (kd_config_load_file (c, path, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (c->listen, ==, d->listen);
  g_assert_cmpstr (c->state_dir, ==, d->state_dir);
  g_assert_cmpstr (c->log_level, ==, d->log_level);
  g_assert_cmpint (c->token_ttl, ==, d->token_ttl);
  g_assert_cmpint (c->max_body_size, ==, d->max_body_size);
  g_assert_cmpint (c->max_upload_size, ==, d->max_upload_size);
  g_assert_cmpint (c->connection_limit, ==, d->connection_limit);
  g_assert_cmpint (c->per_ip_connection_limit, ==, d->per_ip_connection_limit);
  g_assert_cmpint (c->connection_timeout, ==, d->connection_timeout);
  g_assert_cmpint (c->login_attempts, ==, d->login_attempts);
  g_assert_cmpint (c->keepalive_interval, ==, d->keepalive_interval);
  g_assert_cmpint (c->keepalive_count, ==, d->keepalive_count);
  g_assert_cmpint (c->reconnect_min, ==, d->reconnect_min);
  g_assert_cmpint (c->reconnect_max, ==, d->reconnect_max);
  g_assert_cmpstr (c->storage_pool, ==, d->storage_pool);
  g_assert_cmpstr (c->storage_pool_path, ==, d->storage_pool_path);
  g_assert_cmpstr (c->domain_prefix, ==, d->domain_prefix);
  g_assert_cmpint (c->shutdown_timeout, ==, d->shutdown_timeout);
  g_assert_cmpint (c->worker_threads, ==, d->worker_threads);
  g_assert_cmpint (c->reconcile_interval, ==, d->reconcile_interval);
  g_assert_cmpint (c->policy_interval, ==, d->policy_interval);
  g_assert_cmpint (c->stream_keepalive, ==, d->stream_keepalive);

  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++)
    {
      g_autofree char *needle = g_strdup_printf ("%s =", keys[i]);
      if (strstr (text, needle) == NULL)
        g_error ("the example file does not document '%s'", keys[i]);
    }
}

static void
test_overrides (void)
{
  g_autoptr(KdConfig) c = kd_config_new_default ();
  g_autoptr(GError) error = NULL;

  g_assert_true (kd_config_load_data (c, "[libvirt]\nshutdown_timeout = 5\ndomain_prefix = x1\n"
                                      "[daemon]\nlisten = 127.0.0.1:0\n", &error));
  g_assert_no_error (error);
  g_assert_cmpint (c->shutdown_timeout, ==, 5);
  g_assert_cmpstr (c->domain_prefix, ==, "x1");
  g_assert_true (kd_config_validate (c, &error));
  g_assert_false (kd_config_tls_enabled (c));

  g_assert_true (kd_config_load_data (c, "[daemon]\ntls_cert = /a/cert.pem\ntls_key = /a/key.pem\n",
                                      &error));
  g_assert_true (kd_config_validate (c, &error));
  g_assert_no_error (error);
  g_assert_true (kd_config_tls_enabled (c));
}

typedef struct {
  const char *text;
  const char *expect;    /* part of the message */
} BadCase;

static void
test_bad_files (void)
{
  static const BadCase cases[] = {
    { "[daemon]\nlisten_addr = 1.2.3.4:5\n", "unknown setting 'listen_addr'" },
    { "[demon]\nlisten = 127.0.0.1:1\n", "unknown setting 'listen' in group [demon]" },
    { "[libvirt]\nshutdown_timeout = soon\n", "shutdown_timeout = 'soon'" },
    { "[libvirt]\nshutdown_timeout = 0\n", "between 1 and 3600" },
    { "[api]\nmax_body_size = 99999999999999\n", "max_body_size" },
    { "not an ini file", "configuration" },
    { "[libvirt\nx=1", "configuration" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(KdConfig) c = kd_config_new_default ();
      g_autoptr(GError) error = NULL;

      g_assert_false (kd_config_load_data (c, cases[i].text, &error));
      g_assert_error (error, KD_ERROR, KD_ERROR_INVALID);
      if (strstr (error->message, cases[i].expect) == NULL)
        g_error ("case %" G_GSIZE_FORMAT ": message '%s' lacks '%s'", i, error->message, cases[i].expect);
      /* A bad file changes nothing. */
      g_assert_cmpint (c->shutdown_timeout, ==, 60);
      g_assert_cmpstr (c->listen, ==, "127.0.0.1:8080");
    }
}

static void
test_bad_values (void)
{
  static const struct { const char *text; const char *expect; } cases[] = {
    { "[daemon]\nlisten = localhost:80\n", "listen address 'localhost:80'" },
    { "[daemon]\nlisten = 127.0.0.1\n", "listen address" },
    { "[daemon]\nlisten = 127.0.0.1:70000\n", "listen address" },
    { "[daemon]\nstate_dir = relative/dir\n", "absolute path" },
    { "[daemon]\nlog_level = loud\n", "log_level 'loud'" },
    { "[libvirt]\ndomain_prefix = Bad_Prefix\n", "domain_prefix" },
    { "[libvirt]\nstorage_pool = a/b\n", "storage_pool 'a/b'" },
    { "[libvirt]\nreconnect_min = 30\nreconnect_max = 10\n", "reconnect_min" },
    { "[daemon]\ntls_cert = /etc/kvmdesk/cert.pem\n",
      "tls_cert '/etc/kvmdesk/cert.pem' is given without tls_key" },
    { "[daemon]\ntls_key = /etc/kvmdesk/key.pem\n",
      "tls_key '/etc/kvmdesk/key.pem' is given without tls_cert" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(KdConfig) c = kd_config_new_default ();
      g_autoptr(GError) error = NULL;

      g_assert_true (kd_config_load_data (c, cases[i].text, &error));
      g_assert_false (kd_config_validate (c, &error));
      g_assert_error (error, KD_ERROR, KD_ERROR_INVALID);
      if (strstr (error->message, cases[i].expect) == NULL)
        g_error ("case %" G_GSIZE_FORMAT ": message '%s' lacks '%s'", i, error->message, cases[i].expect);
    }
}

static void
test_parse_listen (void)
{
  g_autofree char *addr = NULL;
  g_autofree char *addr6 = NULL;
  guint16 port = 1;

  g_assert_true (kd_config_parse_listen ("127.0.0.1:0", &addr, &port, NULL));
  g_assert_cmpstr (addr, ==, "127.0.0.1");
  g_assert_cmpuint (port, ==, 0);
  g_assert_true (kd_config_parse_listen ("[::1]:8443", &addr6, &port, NULL));
  g_assert_cmpstr (addr6, ==, "::1");
  g_assert_cmpuint (port, ==, 8443);
  g_assert_false (kd_config_parse_listen (":80", NULL, NULL, NULL));
  g_assert_false (kd_config_parse_listen ("[::1:80", NULL, NULL, NULL));
  g_assert_false (kd_config_parse_listen ("", NULL, NULL, NULL));
  g_assert_false (kd_config_parse_listen (NULL, NULL, NULL, NULL));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/config/defaults-valid", test_defaults_valid);
  g_test_add_func ("/config/example-matches-defaults", test_example_matches_defaults);
  g_test_add_func ("/config/overrides", test_overrides);
  g_test_add_func ("/config/bad-file-changes-nothing", test_bad_files);
  g_test_add_func ("/config/bad-values", test_bad_values);
  g_test_add_func ("/config/parse-listen", test_parse_listen);
  return g_test_run ();
}
