/*
 * kd-api-priv.h: what the API's source files share: the per-request
 * context and response helpers.
 */
#pragma once

#include "kd-api.h"

#include <json-glib/json-glib.h>
#include <microhttpd.h>

/* Limits with their units. */
#define KD_API_MAX_PATH_SEGMENTS   8
#define KD_API_MAX_URL_LEN         2048        /* bytes */
#define KD_API_LOGIN_WINDOW_SEC    60
#define KD_API_MHD_MEMORY_LIMIT    (128 * 1024)  /* bytes per connection */
#define KD_API_SESSION_COOKIE      "kvmdesk_session"
#define KD_API_PASSWORD_MIN        8             /* bytes */

typedef struct _KdApiRequest KdApiRequest;
typedef struct _KdApiConsole KdApiConsole;
typedef struct _KdApiStreams KdApiStreams;   /* kd-api-stream.c */
typedef struct _KdApiTlsFront KdApiTlsFront; /* kd-api-tls-front.c */

struct _KdApiServer {
  KdBroker               *broker;
  KdConfig               *config;
  struct MHD_Daemon      *mhd;
  GSource                *epoll_source;
  guint                   timer_id;
  guint                   idle_id;
  char                   *address;
  gboolean                tls;            /* serving HTTPS */
  char                   *base_url;       /* "https://127.0.0.1:8443" */
  char                   *tls_cert_pem;   /* read at start, freed once the front has them */
  char                   *tls_key_pem;
  KdApiTlsFront          *tls_front;      /* accepts HTTPS, feeds MHD */
  char                   *upload_dir;
  char                   *dummy_hash;     /* verified for unknown users */
  struct _KdGatewayTickets *tickets;      /* console tickets */
  GHashTable             *consoles;       /* desktop id -> KdApiConsole* */
  GHashTable             *login_failures; /* key -> GArray of gint64 µs */
  GHashTable             *requests;       /* live KdApiRequest* set */
  KdApiStreams           *streams;        /* open event streams */
};

struct _KdApiRequest {
  KdApiServer            *server;
  struct MHD_Connection  *conn;
  char                   *method;
  char                   *path;
  char                  **segs;           /* path split on '/' */
  guint                   n_segs;
  char                   *client;         /* client address, for limits */
  /* body */
  GByteArray             *body;
  gboolean                body_overflow;
  /* image upload */
  gboolean                is_upload;
  int                     spool_fd;
  char                   *spool_path;
  gint64                  expected;
  gint64                  received;
  gboolean                upload_error;
  /* who */
  gint64                  user_id;
  char                   *user;
  char                   *role;
  char                   *token_hash;
  gboolean                is_admin;
  /* an answer ready to send after a suspension */
  struct MHD_Response    *response;
  guint                   status;
  gboolean                suspended;
  gboolean                cancelled;      /* client gone: drop the answer */
};

/* responses */
void kd_api_respond_json  (KdApiRequest *req, guint status, JsonNode *node);
void kd_api_respond_error (KdApiRequest *req, const GError *error);
void kd_api_respond_errorf (KdApiRequest *req, guint status, const char *code,
                            const char *fmt, ...) G_GNUC_PRINTF (4, 5);
void kd_api_respond_empty (KdApiRequest *req, guint status);
void kd_api_respond_json_with_cookie  (KdApiRequest *req, guint status, JsonNode *node,
                                       const char *set_cookie);
void kd_api_respond_empty_with_cookie (KdApiRequest *req, guint status, const char *set_cookie);
void kd_api_respond_list (KdApiRequest *req, JsonArray *array);
typedef JsonNode *(*KdApiRowView) (KdBroker *broker, gpointer row);
void kd_api_respond_rows (KdApiRequest *req, GPtrArray *rows, const GError *error, KdApiRowView view);
JsonObject *kd_api_body_object (KdApiRequest *req);
gboolean kd_api_require_admin (KdApiRequest *req);
/* Keeps the request open until an async operation answers. */
void kd_api_request_suspend (KdApiRequest *req);
KdApiRequest *kd_api_request_ref (KdApiRequest *req);
void kd_api_request_unref (KdApiRequest *req);
const char *kd_api_request_query (KdApiRequest *req, const char *key);

/* Runs MHD soon: after MHD_resume_connection() (kd-api-server.c). */
void kd_api_server_kick (KdApiServer *s);

/* live event stream (kd-api-stream.c) */
void kd_api_stream_init   (KdApiServer *server);
void kd_api_stream_fini   (KdApiServer *server);
void kd_api_events_stream (KdApiRequest *req);

/* the web dashboard's files (kd-api-static.c) */
void kd_api_static (KdApiRequest *req);

/* routing (kd-api-routes.c) */
void kd_api_route (KdApiRequest *req);
/* Called before the body is read; may answer at once (auth, uploads). */
gboolean kd_api_route_precheck (KdApiRequest *req);

/* HTTPS certificate and key, checked with GnuTLS (kd-api-tls.c) */
gboolean kd_api_tls_load (const char *cert_path, const char *key_path, char **out_cert,
                          char **out_key, char **out_warning, GError **error);

/* HTTPS in front of MHD (kd-api-tls-front.c) */
KdApiTlsFront *kd_api_tls_front_new (KdApiServer *server, int listen_fd, const char *cert_pem,
                                     const char *key_pem, GError **error);
void           kd_api_tls_front_free (KdApiTlsFront *front);

/* auth (kd-api-auth.c) */
char *kd_api_token_new  (char **out_hash);
char *kd_api_token_hash (const char *token);
char *kd_api_csrf_token (const char *token);

/* users, groups, pools (kd-api-users.c, kd-api-pools.c) */
void kd_api_me     (KdApiRequest *req);
void kd_api_users  (KdApiRequest *req);
void kd_api_groups (KdApiRequest *req);
void kd_api_pools  (KdApiRequest *req);
void kd_api_image_versions (KdApiRequest *req);

/* consoles (kd-api-console.c) */
void kd_api_consoles_init (KdApiServer *server);
void kd_api_consoles_fini (KdApiServer *server);
void kd_api_console_ticket (KdApiRequest *req, KdDesktopRow *desk);
void kd_api_console_upgrade (KdApiRequest *req);
/* Bytes a console moved so far; @handle is a browser viewer's handle. */
void kd_api_console_counters (gpointer handle, guint64 *bytes_in, guint64 *bytes_out);
/* GET /desktops/{name}/console.vv and console.rdp */
void kd_api_console_vv  (KdApiRequest *req, KdDesktopRow *desk);
void kd_api_console_rdp (KdApiRequest *req, KdDesktopRow *desk);
void kd_api_respond_raw (KdApiRequest *req, guint status, struct MHD_Response *resp);

/* hosts (kd-api-hosts.c) */
GPtrArray *kd_api_names_list (JsonObject *obj, const char *member, GError **error);
gboolean kd_api_host_settings (JsonObject *obj, KdHostSettings *s, GPtrArray **labels, GError **error);
void     kd_api_host_patch    (KdApiRequest *req, const char *name);
void     kd_api_host_put_gpus (KdApiRequest *req, const char *name);
void     kd_api_host_drain    (KdApiRequest *req, const char *name);
gboolean kd_api_host_gpus     (JsonObject *obj, const char *member, GPtrArray **out, GError **error);

/* JSON views (kd-api-json.c) */
JsonNode *kd_api_json_host     (KdBroker *broker, KdBrokerHost *host);
JsonNode *kd_api_json_image    (KdBroker *broker, KdImageRow *row);
JsonNode *kd_api_json_template (KdTemplateRow *row);
JsonNode *kd_api_json_desktop  (KdBroker *broker, KdDesktopRow *row);
JsonNode *kd_api_json_event    (KdEventRow *row);
JsonNode *kd_api_json_reconcile (const KdReconcileReport *report);
JsonNode *kd_api_json_user     (KdBroker *broker, KdUserRow *row);
JsonNode *kd_api_json_group    (KdBroker *broker, KdGroupRow *row);
JsonNode *kd_api_json_pool     (KdBroker *broker, KdPoolRow *row, gboolean full);
