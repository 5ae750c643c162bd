/*
 * kd-config.h: kvmdeskd's settings. Defaults live here; an INI file
 * (GKeyFile) overrides them; command-line flags override the file.
 * data/kvmdeskd.conf.example documents every key with its default.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  /* [daemon] */
  char   *listen;                 /* "ADDR:PORT"; port 0 picks a free one */
  char   *state_dir;
  char   *log_level;              /* error|warning|info|debug */
  char   *instance_name;          /* shown in the API; default: host name */
  char   *web_dir;                /* static files of the dashboard */
  char   *tls_cert;               /* PEM certificate (chain) file; NULL/"": plain HTTP */
  char   *tls_key;                /* PEM private key file of tls_cert */

  /* [api] */
  gint64  token_ttl;              /* seconds */
  gint64  max_body_size;          /* bytes of a JSON request body */
  gint64  max_upload_size;        /* bytes of an uploaded image */
  gint64  connection_limit;       /* HTTP connections in all */
  gint64  per_ip_connection_limit;
  gint64  connection_timeout;     /* seconds an idle HTTP connection lives */
  gint64  login_attempts;         /* failed logins per account per minute */
  gint64  stream_keepalive;       /* seconds between keepalives on event streams */

  /* [libvirt] */
  gint64  keepalive_interval;     /* seconds */
  gint64  keepalive_count;
  gint64  reconnect_min;          /* seconds, doubled after each failure */
  gint64  reconnect_max;
  char   *storage_pool;           /* name of kvmdesk's pool on every host */
  char   *storage_pool_path;      /* its directory when kvmdesk creates it */
  char   *domain_prefix;          /* libvirt domain name = PREFIX-DESKTOP */
  gint64  shutdown_timeout;       /* seconds of ACPI shutdown before force */
  gint64  worker_threads;         /* threads running libvirt calls */

  /* [display] */
  char   *display_program;        /* kvmdesk-display; "" finds it next to kvmdeskd */

  /* [reconciler] */
  gint64  reconcile_interval;     /* seconds */

  /* [broker] */
  gint64  policy_interval;        /* seconds between pool/timeout checks */
} KdConfig;

KdConfig *kd_config_new_default (void);
gboolean  kd_config_load_file   (KdConfig    *config,
                                 const char  *path,
                                 GError     **error);
gboolean  kd_config_load_data   (KdConfig    *config,
                                 const char  *data,
                                 GError     **error);
gboolean  kd_config_validate    (KdConfig    *config,
                                 GError     **error);
gboolean  kd_config_parse_listen (const char  *listen,
                                  char       **out_addr,
                                  guint16     *out_port,
                                  GError     **error);
gboolean  kd_config_tls_enabled (const KdConfig *config);
void      kd_config_free        (KdConfig *config);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdConfig, kd_config_free)

G_END_DECLS
