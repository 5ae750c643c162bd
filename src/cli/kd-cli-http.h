/*
 * kd-cli-http.h: the kvmdesk CLI's HTTP client (one libcurl easy handle)
 * and the reading of kvmdeskd's answers into JSON or one error sentence.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Errors of a call: the code is the HTTP status, or one of these below 100. */
#define KD_CLI_HTTP_ERROR (kd_cli_http_error_quark ())
GQuark kd_cli_http_error_quark (void);

enum {
  KD_CLI_HTTP_ERROR_CONNECT = 1,   /* the server could not be reached */
  KD_CLI_HTTP_ERROR_TRANSFER = 2,  /* the exchange broke off */
  KD_CLI_HTTP_ERROR_LOCAL = 3,     /* a local file could not be read */
  KD_CLI_HTTP_ERROR_ANSWER = 4,    /* a 2xx answer we cannot read */
};

/* Answers are JSON documents of a few kB; this bounds a broken server. */
#define KD_CLI_HTTP_MAX_ANSWER_BYTES (32 * 1024 * 1024)
#define KD_CLI_HTTP_CONNECT_TIMEOUT_S 10

typedef struct _KdCliHttp KdCliHttp;

/*
 * Called while an upload runs: @sent of @total bytes are on the wire.
 */
typedef void (*KdCliProgressFunc) (goffset  sent,
                                   goffset  total,
                                   gpointer user_data);

KdCliHttp *kd_cli_http_new       (const char *base_url);
void       kd_cli_http_free      (KdCliHttp  *http);
void       kd_cli_http_set_token (KdCliHttp  *http,
                                  const char *token);
/* @ca_cert: (nullable): a PEM file with the certificates to trust for
 * https:// instead of the system's (e.g. a self-signed kvmdeskd's). */
void        kd_cli_http_set_ca_cert  (KdCliHttp  *http,
                                      const char *ca_cert);
const char *kd_cli_http_get_base_url (KdCliHttp *http);
long        kd_cli_http_get_status   (KdCliHttp *http);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdCliHttp, kd_cli_http_free)

gboolean kd_cli_http_call   (KdCliHttp   *http,
                             const char  *method,
                             const char  *path,
                             JsonNode    *body,
                             JsonNode   **answer,
                             GError     **error);
gboolean kd_cli_http_upload (KdCliHttp          *http,
                             const char         *path,
                             const char         *filename,
                             KdCliProgressFunc   progress,
                             gpointer            user_data,
                             JsonNode          **answer,
                             GError            **error);

gboolean kd_cli_http_download (KdCliHttp   *http,
                               const char  *path,
                               GBytes     **out,
                               GError     **error);

gboolean kd_cli_http_read_answer (const char  *base_url,
                                  long         status,
                                  const char  *data,
                                  gsize        len,
                                  JsonNode   **answer,
                                  GError     **error);

char *kd_cli_path_escape (const char *segment);

G_END_DECLS
