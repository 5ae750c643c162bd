/*
 * kd-config.c: defaults, INI parsing and validation of kvmdeskd's settings.
 * Unknown groups or keys are errors: a typo must not be silently ignored.
 */
#include "kd-config.h"
#include "kd-error.h"

#include <errno.h>
#include <stdlib.h>

typedef enum { KD_CFG_STRING, KD_CFG_INT } KdCfgType;

typedef struct {
  const char *group;
  const char *key;
  KdCfgType   type;
  gsize       offset;
  gint64      min, max;   /* for integers */
} KdCfgKey;

#define S(g, k, f) { g, k, KD_CFG_STRING, G_STRUCT_OFFSET (KdConfig, f), 0, 0 }
#define I(g, k, f, lo, hi) { g, k, KD_CFG_INT, G_STRUCT_OFFSET (KdConfig, f), lo, hi }

static const KdCfgKey kd_cfg_keys[] = {
  S ("daemon", "listen", listen),
  S ("daemon", "state_dir", state_dir),
  S ("daemon", "log_level", log_level),
  S ("daemon", "instance_name", instance_name),
  S ("daemon", "web_dir", web_dir),
  S ("daemon", "tls_cert", tls_cert),
  S ("daemon", "tls_key", tls_key),
  I ("api", "token_ttl", token_ttl, 60, 365 * 86400),
  I ("api", "max_body_size", max_body_size, 1024, 64 * 1024 * 1024),
  I ("api", "max_upload_size", max_upload_size, 1024 * 1024, G_GINT64_CONSTANT (16) << 40),
  I ("api", "connection_limit", connection_limit, 4, 65536),
  I ("api", "per_ip_connection_limit", per_ip_connection_limit, 1, 65536),
  I ("api", "connection_timeout", connection_timeout, 1, 3600),
  I ("api", "login_attempts", login_attempts, 1, 10000),
  I ("api", "stream_keepalive", stream_keepalive, 1, 3600),
  I ("libvirt", "keepalive_interval", keepalive_interval, 1, 600),
  I ("libvirt", "keepalive_count", keepalive_count, 1, 100),
  I ("libvirt", "reconnect_min", reconnect_min, 1, 3600),
  I ("libvirt", "reconnect_max", reconnect_max, 1, 86400),
  S ("libvirt", "storage_pool", storage_pool),
  S ("libvirt", "storage_pool_path", storage_pool_path),
  S ("libvirt", "domain_prefix", domain_prefix),
  I ("libvirt", "shutdown_timeout", shutdown_timeout, 1, 3600),
  I ("libvirt", "worker_threads", worker_threads, 1, 256),
  S ("display", "program", display_program),
  I ("reconciler", "interval", reconcile_interval, 1, 86400),
  I ("broker", "policy_interval", policy_interval, 1, 3600),
};

/**
 * kd_config_new_default:
 * Returns: (transfer full): settings with every default filled in.
 */
KdConfig *
kd_config_new_default (void)
{
  KdConfig *c = g_new0 (KdConfig, 1);

  c->listen = g_strdup ("127.0.0.1:8080");
  c->state_dir = g_strdup ("/var/lib/kvmdesk");
  c->log_level = g_strdup ("info");
  c->instance_name = g_strdup (g_get_host_name ());
  c->web_dir = g_strdup (KD_DATADIR "/web");
  c->token_ttl = 12 * 3600;
  c->max_body_size = 1024 * 1024;
  c->max_upload_size = G_GINT64_CONSTANT (256) << 30;
  c->connection_limit = 1024;
  c->per_ip_connection_limit = 64;
  c->connection_timeout = 120;
  c->login_attempts = 5;
  c->stream_keepalive = 15;
  c->keepalive_interval = 5;
  c->keepalive_count = 5;
  c->reconnect_min = 1;
  c->reconnect_max = 60;
  c->storage_pool = g_strdup ("kvmdesk");
  c->storage_pool_path = g_strdup ("/var/lib/kvmdesk/images");
  c->domain_prefix = g_strdup ("kd");
  c->shutdown_timeout = 60;
  c->worker_threads = 32;
  c->display_program = g_strdup ("");
  c->reconcile_interval = 60;
  c->policy_interval = 5;
  return c;
}

void
kd_config_free (KdConfig *c)
{
  if (c == NULL)
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (kd_cfg_keys); i++)
    if (kd_cfg_keys[i].type == KD_CFG_STRING)
      g_free (G_STRUCT_MEMBER (char *, c, kd_cfg_keys[i].offset));
  g_free (c);
}

static const KdCfgKey *
kd_cfg_lookup (const char *group, const char *key)
{
  for (gsize i = 0; i < G_N_ELEMENTS (kd_cfg_keys); i++)
    if (g_str_equal (kd_cfg_keys[i].group, group) && g_str_equal (kd_cfg_keys[i].key, key))
      return &kd_cfg_keys[i];
  return NULL;
}

static gboolean
kd_config_apply_keyfile (KdConfig *c, GKeyFile *kf, const char *source, GError **error)
{
  g_auto(GStrv) groups = g_key_file_get_groups (kf, NULL);

  for (gsize g = 0; groups[g] != NULL; g++)
    {
      g_auto(GStrv) keys = g_key_file_get_keys (kf, groups[g], NULL, NULL);
      for (gsize k = 0; keys != NULL && keys[k] != NULL; k++)
        {
          const KdCfgKey *spec = kd_cfg_lookup (groups[g], keys[k]);
          g_autofree char *raw = NULL;

          if (spec == NULL)
            {
              g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                           "%s: unknown setting '%s' in group [%s]", source, keys[k], groups[g]);
              return FALSE;
            }
          raw = g_key_file_get_string (kf, groups[g], keys[k], NULL);
          if (raw == NULL)
            raw = g_strdup ("");
          g_strstrip (raw);
          if (spec->type == KD_CFG_STRING)
            {
              char **slot = &G_STRUCT_MEMBER (char *, c, spec->offset);
              g_free (*slot);
              *slot = g_steal_pointer (&raw);
            }
          else
            {
              gint64 v;
              g_autoptr(GError) local = NULL;
              if (!g_ascii_string_to_signed (raw, 10, spec->min, spec->max, &v, &local))
                {
                  g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                               "%s: [%s] %s = '%s': expected a whole number between %"
                               G_GINT64_FORMAT " and %" G_GINT64_FORMAT,
                               source, spec->group, spec->key, raw, spec->min, spec->max);
                  return FALSE;
                }
              G_STRUCT_MEMBER (gint64, c, spec->offset) = v;
            }
        }
    }
  return TRUE;
}

/**
 * kd_config_load_data:
 * @config: settings to override
 * @data: INI text
 *
 * Returns: %TRUE if every key in @data is known and valid; on failure
 * @config is left unchanged.
 */
gboolean
kd_config_load_data (KdConfig *config, const char *data, GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autoptr(GError) local = NULL;
  g_autoptr(KdConfig) copy = kd_config_new_default ();

  if (!g_key_file_load_from_data (kf, data, -1, G_KEY_FILE_NONE, &local))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "configuration: %s", local->message);
      return FALSE;
    }
  /* Apply to a scratch copy first so a bad file changes nothing. */
  for (gsize i = 0; i < G_N_ELEMENTS (kd_cfg_keys); i++)
    {
      const KdCfgKey *s = &kd_cfg_keys[i];
      if (s->type == KD_CFG_STRING)
        {
          char **slot = &G_STRUCT_MEMBER (char *, copy, s->offset);
          g_free (*slot);
          *slot = g_strdup (G_STRUCT_MEMBER (char *, config, s->offset));
        }
      else
        G_STRUCT_MEMBER (gint64, copy, s->offset) = G_STRUCT_MEMBER (gint64, config, s->offset);
    }
  if (!kd_config_apply_keyfile (copy, kf, "configuration", error))
    return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (kd_cfg_keys); i++)
    {
      const KdCfgKey *s = &kd_cfg_keys[i];
      if (s->type == KD_CFG_STRING)
        {
          char **slot = &G_STRUCT_MEMBER (char *, config, s->offset);
          g_free (*slot);
          *slot = g_steal_pointer (&G_STRUCT_MEMBER (char *, copy, s->offset));
        }
      else
        G_STRUCT_MEMBER (gint64, config, s->offset) = G_STRUCT_MEMBER (gint64, copy, s->offset);
    }
  return TRUE;
}

/**
 * kd_config_load_file:
 * Returns: %TRUE on success; errors name the file.
 */
gboolean
kd_config_load_file (KdConfig *config, const char *path, GError **error)
{
  g_autofree char *data = NULL;
  g_autoptr(GError) local = NULL;

  if (!g_file_get_contents (path, &data, NULL, &local))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "cannot read configuration file '%s': %s", path, local->message);
      return FALSE;
    }
  if (!kd_config_load_data (config, data, error))
    {
      g_prefix_error (error, "%s: ", path);
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_config_parse_listen:
 * @listen: "ADDR:PORT" or "[V6ADDR]:PORT"
 */
gboolean
kd_config_parse_listen (const char *listen, char **out_addr, guint16 *out_port, GError **error)
{
  const char *colon;
  g_autofree char *addr = NULL;
  guint64 port;

  if (listen == NULL || (colon = strrchr (listen, ':')) == NULL || colon == listen)
    goto bad;
  if (listen[0] == '[')
    {
      if (colon[-1] != ']')
        goto bad;
      addr = g_strndup (listen + 1, colon - listen - 2);
    }
  else
    addr = g_strndup (listen, colon - listen);
  if (!g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &port, NULL))
    goto bad;
  if (!g_hostname_is_ip_address (addr))
    goto bad;
  if (out_addr)
    *out_addr = g_steal_pointer (&addr);
  if (out_port)
    *out_port = (guint16) port;
  return TRUE;

bad:
  g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
               "listen address '%s' is invalid: expected IP:PORT, e.g. 127.0.0.1:8080",
               listen ? listen : "");
  return FALSE;
}

/**
 * kd_config_tls_enabled:
 * Returns: whether both tls_cert and tls_key are set (kvmdeskd serves HTTPS).
 */
gboolean
kd_config_tls_enabled (const KdConfig *c)
{
  return c->tls_cert != NULL && *c->tls_cert != '\0' && c->tls_key != NULL && *c->tls_key != '\0';
}

/**
 * kd_config_validate:
 * Cross-field checks that single keys cannot express.
 */
gboolean
kd_config_validate (KdConfig *c, GError **error)
{
  static const char *levels[] = { "error", "warning", "info", "debug", NULL };

  if (!kd_config_parse_listen (c->listen, NULL, NULL, error))
    return FALSE;
  if (c->state_dir == NULL || !g_path_is_absolute (c->state_dir))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "state_dir '%s' must be an absolute path", c->state_dir ? c->state_dir : "");
      return FALSE;
    }
  if (!g_strv_contains (levels, c->log_level))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "log_level '%s' is invalid: use error, warning, info or debug", c->log_level);
      return FALSE;
    }
  if (c->storage_pool_path == NULL || !g_path_is_absolute (c->storage_pool_path))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "storage_pool_path '%s' must be an absolute path",
                   c->storage_pool_path ? c->storage_pool_path : "");
      return FALSE;
    }
  if (c->storage_pool == NULL || *c->storage_pool == '\0' || strchr (c->storage_pool, '/'))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "storage_pool '%s' is invalid", c->storage_pool ? c->storage_pool : "");
      return FALSE;
    }
  if (c->domain_prefix == NULL || *c->domain_prefix == '\0' || strlen (c->domain_prefix) > 20 ||
      strspn (c->domain_prefix, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen (c->domain_prefix))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "domain_prefix '%s' is invalid: 1 to 20 lower-case letters, digits or '-'",
                   c->domain_prefix ? c->domain_prefix : "");
      return FALSE;
    }
  if ((c->tls_cert == NULL || *c->tls_cert == '\0') != (c->tls_key == NULL || *c->tls_key == '\0'))
    {
      gboolean has_cert = c->tls_cert != NULL && *c->tls_cert != '\0';
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "%s '%s' is given without %s: HTTPS needs both the certificate and its key",
                   has_cert ? "tls_cert" : "tls_key", has_cert ? c->tls_cert : c->tls_key,
                   has_cert ? "tls_key" : "tls_cert");
      return FALSE;
    }
  if (c->reconnect_min > c->reconnect_max)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "reconnect_min (%" G_GINT64_FORMAT ") is larger than reconnect_max (%"
                   G_GINT64_FORMAT ")", c->reconnect_min, c->reconnect_max);
      return FALSE;
    }
  return TRUE;
}
