/*
 * kd-api-routes.c: the REST endpoints of docs/api.md: authentication,
 * authorization, body parsing, and the calls into the broker.
 *
 * kd_api_route_precheck() runs when the request line and headers are in,
 * before any body is read: it authenticates, and refuses oversized bodies
 * and doomed uploads at once. kd_api_route() runs with the whole body.
 */
#include "kd-api-priv.h"

#include "common/kd-error.h"
#include "common/kd-json.h"
#include "common/kd-time.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>
#include <sodium.h>

#define SEG(i)   (req->n_segs > (i) ? req->segs[i] : NULL)
#define IS(m)    (g_str_equal (req->method, (m)))

static gboolean
kd_api_is_login (KdApiRequest *req)
{
  return req->n_segs == 3 && g_str_equal (req->segs[0], "api") && g_str_equal (req->segs[1], "v1") &&
         g_str_equal (req->segs[2], "login");
}

/* The console's WebSocket: its one-time ticket is the credential. */
static gboolean
kd_api_is_console (KdApiRequest *req)
{
  return req->n_segs == 3 && g_str_equal (req->segs[0], "api") && g_str_equal (req->segs[1], "v1") &&
         g_str_equal (req->segs[2], "console");
}

static gboolean
kd_api_is_image_upload (KdApiRequest *req)
{
  return IS ("PUT") && req->n_segs == 4 && g_str_equal (req->segs[0], "api") &&
         g_str_equal (req->segs[1], "v1") && g_str_equal (req->segs[2], "images");
}

/* ------------------------------------------------------------------ */
/* authentication */

/* The session cookie's value, if the request carries one. */
static const char *
kd_api_session_cookie (KdApiRequest *req)
{
  return MHD_lookup_connection_value (req->conn, MHD_COOKIE_KIND, KD_API_SESSION_COOKIE);
}

static gboolean
kd_api_authenticate (KdApiRequest *req)
{
  KdStore *store = kd_broker_get_store (req->server->broker);
  const char *auth = MHD_lookup_connection_value (req->conn, MHD_HEADER_KIND, "Authorization");
  const char *cookie = kd_api_session_cookie (req);
  const char *token = NULL;
  g_autoptr(KdTokenRow) tok = NULL;
  g_autoptr(KdUserRow) user = NULL;
  g_autofree char *hash = NULL;
  gboolean by_cookie = FALSE;

  if (auth != NULL && g_str_has_prefix (auth, "Bearer ") && strlen (auth) <= 512)
    token = auth + strlen ("Bearer ");
  else if (auth == NULL && cookie != NULL && strlen (cookie) <= 512)
    {
      token = cookie;
      by_cookie = TRUE;
    }
  if (token == NULL)
    {
      kd_api_respond_errorf (req, 401, "unauthorized",
                             "authentication required: log in and send 'Authorization: Bearer TOKEN'");
      return FALSE;
    }
  hash = kd_api_token_hash (token);
  tok = kd_store_token_get_by_hash (store, hash, NULL);
  if (tok == NULL || tok->expires_at <= kd_time_now ())
    {
      kd_api_respond_errorf (req, 401, "unauthorized",
                             tok ? "the session has expired: log in again"
                                 : "the token is not valid: log in again");
      return FALSE;
    }
  user = kd_store_user_get (store, tok->user_id, NULL);
  if (user == NULL)
    {
      kd_api_respond_errorf (req, 401, "unauthorized", "the token's user no longer exists");
      return FALSE;
    }
  /* A browser sends the cookie on any request a page makes: a change
   * must also prove the page read the CSRF token from our answer. */
  if (by_cookie && !IS ("GET") && !IS ("HEAD"))
    {
      const char *sent = MHD_lookup_connection_value (req->conn, MHD_HEADER_KIND, "X-CSRF-Token");
      g_autofree char *want = kd_api_csrf_token (token);
      if (sent == NULL || strlen (sent) != strlen (want) ||
          sodium_memcmp (sent, want, strlen (want)) != 0)
        {
          kd_api_respond_errorf (req, 403, "forbidden",
                                 "a cookie session must send its X-CSRF-Token header with changes");
          return FALSE;
        }
    }
  req->user_id = user->id;
  req->user = g_strdup (user->name);
  req->role = g_strdup (user->role);
  req->token_hash = g_steal_pointer (&hash);
  req->is_admin = g_str_equal (user->role, "admin");
  return TRUE;
}

/**
 * kd_api_require_admin:
 * Returns: TRUE for an admin; otherwise answers 403.
 */
gboolean
kd_api_require_admin (KdApiRequest *req)
{
  if (req->is_admin)
    return TRUE;
  kd_api_respond_errorf (req, 403, "forbidden", "user '%s' is not an administrator", req->user);
  return FALSE;
}

/* Failed logins in the last window, per key ("user:NAME", "addr:IP"). */
static guint
kd_api_failures (KdApiServer *s, const char *key, gint64 now, gint64 *out_retry)
{
  GArray *a = g_hash_table_lookup (s->login_failures, key);
  gint64 window = (gint64) KD_API_LOGIN_WINDOW_SEC * G_USEC_PER_SEC;

  if (a == NULL)
    return 0;
  while (a->len > 0 && g_array_index (a, gint64, 0) <= now - window)
    g_array_remove_index (a, 0);
  if (a->len > 0 && out_retry)
    *out_retry = MAX (*out_retry, (g_array_index (a, gint64, 0) + window - now) / G_USEC_PER_SEC + 1);
  return a->len;
}

static void
kd_api_failure_add (KdApiServer *s, const char *key, gint64 now)
{
  GArray *a = g_hash_table_lookup (s->login_failures, key);

  if (a == NULL)
    {
      a = g_array_new (FALSE, FALSE, sizeof (gint64));
      g_hash_table_insert (s->login_failures, g_strdup (key), a);
    }
  if (a->len < 10000)
    g_array_append_val (a, now);
}

typedef struct {
  KdApiRequest *req;
  char         *hash;
  char         *password;
  char         *username;
  gint64        user_id;
  gboolean      known;
  gboolean      ok;
} KdLoginJob;

static void
kd_login_job_free (KdLoginJob *j)
{
  g_free (j->hash);
  if (j->password)
    memset (j->password, 0, strlen (j->password));
  g_free (j->password);
  g_free (j->username);
  g_free (j);
}

static void
kd_login_verify (GTask *task, gpointer source, gpointer data, GCancellable *c)
{
  KdLoginJob *j = data;
  j->ok = kd_api_password_verify (j->hash, j->password) && j->known;
  g_task_return_boolean (task, TRUE);
}

static void
kd_login_verified (GObject *source, GAsyncResult *res, gpointer data)
{
  KdLoginJob *j = g_task_get_task_data (G_TASK (res));
  KdApiRequest *req = j->req;
  KdApiServer *s = req->server;
  KdStore *store = kd_broker_get_store (s->broker);
  g_autofree char *ukey = g_strdup_printf ("user:%s", j->username);
  g_autofree char *akey = g_strdup_printf ("addr:%s", req->client);
  g_autoptr(JsonBuilder) b = NULL;
  g_autoptr(KdTokenRow) tok = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *token = NULL;
  g_autofree char *expires = NULL;
  gint64 now = kd_time_now ();

  if (!j->ok)
    {
      kd_api_failure_add (s, ukey, now);
      kd_api_failure_add (s, akey, now);
      g_message ("failed login for '%s' from %s", j->username, req->client);
      kd_broker_event (s->broker, "user", j->username, j->username, "login-failed", NULL, NULL,
                       "failed login for '%s' from %s", j->username, req->client);
      kd_api_respond_errorf (req, 401, "unauthorized", "invalid user name or password");
      kd_api_request_unref (req);
      return;
    }
  g_hash_table_remove (s->login_failures, ukey);
  kd_store_token_purge (store, now, NULL);
  tok = g_new0 (KdTokenRow, 1);
  token = kd_api_token_new (&tok->token_hash);
  tok->user_id = j->user_id;
  tok->expires_at = now + s->config->token_ttl * G_USEC_PER_SEC;
  if (!kd_store_token_insert (store, tok, &error))
    {
      kd_api_respond_error (req, error);
      kd_api_request_unref (req);
      return;
    }
  {
    g_autoptr(KdUserRow) user = kd_store_user_get (store, j->user_id, NULL);
    expires = kd_time_format (tok->expires_at);
    b = json_builder_new ();
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "token");
    json_builder_add_string_value (b, token);
    json_builder_set_member_name (b, "expires_at");
    json_builder_add_string_value (b, expires);
    json_builder_set_member_name (b, "user");
    json_builder_add_string_value (b, j->username);
    json_builder_set_member_name (b, "role");
    json_builder_add_string_value (b, user ? user->role : "user");
    json_builder_set_member_name (b, "csrf_token");
    {
      g_autofree char *csrf = kd_api_csrf_token (token);
      json_builder_add_string_value (b, csrf);
    }
    json_builder_end_object (b);
  }
  g_info ("user '%s' logged in from %s", j->username, req->client);
  {
    g_autofree char *cookie = g_strdup_printf ("%s=%s; Path=/; HttpOnly; SameSite=Strict%s; Max-Age=%"
                                               G_GINT64_FORMAT, KD_API_SESSION_COOKIE, token,
                                               s->tls ? "; Secure" : "", s->config->token_ttl);
    kd_api_respond_json_with_cookie (req, 200, json_builder_get_root (b), cookie);
  }
  kd_api_request_unref (req);
}

static void
kd_api_login (KdApiRequest *req, JsonObject *obj)
{
  static const char *const allowed[] = { "username", "password", NULL };
  KdApiServer *s = req->server;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdUserRow) user = NULL;
  g_autofree char *ukey = NULL;
  g_autofree char *akey = NULL;
  const char *username = NULL, *password = NULL;
  gint64 now = kd_time_now (), retry = 0;
  g_autoptr(GTask) task = NULL;
  KdLoginJob *j;

  if (!kd_json_check_members (obj, allowed, &error) ||
      !kd_json_get_string (obj, "username", TRUE, &username, &error) ||
      !kd_json_get_string (obj, "password", TRUE, &password, &error))
    {
      kd_api_respond_error (req, error);
      return;
    }
  if (strlen (username) > 256)
    {
      kd_api_respond_errorf (req, 400, "invalid", "the user name is too long");
      return;
    }
  ukey = g_strdup_printf ("user:%s", username);
  akey = g_strdup_printf ("addr:%s", req->client);
  if (kd_api_failures (s, ukey, now, &retry) >= (guint) s->config->login_attempts ||
      kd_api_failures (s, akey, now, &retry) >= (guint) s->config->login_attempts * 4)
    {
      g_message ("login for '%s' from %s refused: too many failed attempts", username, req->client);
      kd_api_respond_errorf (req, 429, "rate_limited",
                             "too many failed logins for '%s'; try again in %" G_GINT64_FORMAT
                             " seconds", username, retry);
      return;
    }
  user = kd_store_user_get_by_name (kd_broker_get_store (s->broker), username, NULL);
  j = g_new0 (KdLoginJob, 1);
  j->req = kd_api_request_ref (req);
  j->username = g_strdup (username);
  j->password = g_strdup (password);
  j->known = user != NULL;
  j->user_id = user ? user->id : 0;
  j->hash = g_strdup (user ? user->password_hash : s->dummy_hash);
  task = g_task_new (NULL, NULL, kd_login_verified, NULL);
  g_task_set_task_data (task, j, (GDestroyNotify) kd_login_job_free);
  g_task_run_in_thread (task, kd_login_verify);
  kd_api_request_suspend (req);
}

static void
kd_api_logout (KdApiRequest *req)
{
  kd_store_token_delete (kd_broker_get_store (req->server->broker), req->token_hash, NULL);
  kd_broker_event (req->server->broker, "user", req->user, req->user, "logout", NULL, NULL,
                   "user '%s' logged out", req->user);
  kd_api_respond_empty_with_cookie (req, 204, req->server->tls
                                    ? KD_API_SESSION_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=0"
                                    : KD_API_SESSION_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
}

/* ------------------------------------------------------------------ */
/* precheck: before the body */

static gboolean
kd_api_content_length (KdApiRequest *req, gint64 *out)
{
  const char *cl = MHD_lookup_connection_value (req->conn, MHD_HEADER_KIND, "Content-Length");
  guint64 v;

  if (cl == NULL || !g_ascii_string_to_unsigned (cl, 10, 0, G_MAXINT64, &v, NULL))
    return FALSE;
  *out = (gint64) v;
  return TRUE;
}

gboolean
kd_api_route_precheck (KdApiRequest *req)
{
  KdApiServer *s = req->server;
  gint64 len = -1;
  gboolean have_len = kd_api_content_length (req, &len);

  if (req->n_segs >= 2 && g_str_equal (req->segs[0], "api") && g_str_equal (req->segs[1], "v1") &&
      !kd_api_is_login (req) && !kd_api_is_console (req))
    {
      if (!kd_api_authenticate (req))
        return FALSE;
      if (kd_api_is_image_upload (req) && !kd_api_require_admin (req))
        return FALSE;
    }

  if (kd_api_is_image_upload (req))
    {
      g_autoptr(GError) error = NULL;
      const char *host = kd_api_request_query (req, "host");
      g_autofree char *tmpl = NULL;

      if (!have_len)
        {
          kd_api_respond_errorf (req, 411, "invalid",
                                 "an image upload needs a Content-Length header");
          return FALSE;
        }
      if (len > s->config->max_upload_size)
        {
          kd_api_respond_errorf (req, 413, "too_large",
                                 "the image is %" G_GINT64_FORMAT " bytes, more than the %"
                                 G_GINT64_FORMAT " bytes max_upload_size allows", len,
                                 s->config->max_upload_size);
          return FALSE;
        }
      if (len == 0)
        {
          kd_api_respond_errorf (req, 400, "invalid", "the uploaded image is empty");
          return FALSE;
        }
      if (!kd_broker_image_check_new (s->broker, req->segs[3], host, NULL, &error))
        {
          kd_api_respond_error (req, error);
          return FALSE;
        }
      tmpl = g_build_filename (s->upload_dir, "upload-XXXXXX", NULL);
      req->spool_fd = g_mkstemp_full (tmpl, O_RDWR | O_CLOEXEC, 0600);
      if (req->spool_fd < 0)
        {
          kd_api_respond_errorf (req, 500, "failed", "cannot create a spool file in '%s': %s",
                                 s->upload_dir, g_strerror (errno));
          return FALSE;
        }
      req->spool_path = g_steal_pointer (&tmpl);
      req->is_upload = TRUE;
      req->expected = len;
      return TRUE;
    }

  if (have_len && len > s->config->max_body_size)
    {
      kd_api_respond_errorf (req, 413, "too_large",
                             "the request body is %" G_GINT64_FORMAT " bytes, more than %"
                             G_GINT64_FORMAT " allowed", len, s->config->max_body_size);
      return FALSE;
    }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* helpers */

JsonObject *
kd_api_body_object (KdApiRequest *req)
{
  g_autoptr(GError) error = NULL;
  JsonObject *obj = kd_json_parse_object (req->body ? (const char *) req->body->data : NULL,
                                          req->body ? req->body->len : 0, &error);
  if (obj == NULL)
    kd_api_respond_error (req, error);
  return obj;
}

void
kd_api_respond_list (KdApiRequest *req, JsonArray *array)
{
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);
  json_node_take_array (node, array);
  kd_api_respond_json (req, 200, node);
}

/* Answers a listing from the store: @rows, or @error when it is NULL. */
void
kd_api_respond_rows (KdApiRequest *req, GPtrArray *rows, const GError *error, KdApiRowView view)
{
  JsonArray *arr;

  if (rows == NULL)
    {
      kd_api_respond_error (req, error);
      return;
    }
  arr = json_array_new ();
  for (guint i = 0; i < rows->len; i++)
    json_array_add_element (arr, view (req->server->broker, rows->pdata[i]));
  kd_api_respond_list (req, arr);
}

static JsonNode *
kd_api_view_template (KdBroker *broker, gpointer row)
{
  return kd_api_json_template (row);
}

static JsonNode *
kd_api_view_image (KdBroker *broker, gpointer row)
{
  return kd_api_json_image (broker, row);
}

static JsonNode *
kd_api_view_desktop (KdBroker *broker, gpointer row)
{
  return kd_api_json_desktop (broker, row);
}

static JsonNode *
kd_api_view_event (KdBroker *broker, gpointer row)
{
  return kd_api_json_event (row);
}

/* ------------------------------------------------------------------ */
/* hosts */

static void
kd_host_added (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiRequest *req = data;
  g_autoptr(GError) error = NULL;
  KdBrokerHost *h = kd_broker_host_add_finish (req->server->broker, res, &error);

  if (h == NULL)
    kd_api_respond_error (req, error);
  else
    kd_api_respond_json (req, 201, kd_api_json_host (req->server->broker, h));
  kd_api_request_unref (req);
}

static void
kd_host_removed (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiRequest *req = data;
  g_autoptr(GError) error = NULL;

  if (!kd_broker_host_remove_finish (req->server->broker, res, &error))
    kd_api_respond_error (req, error);
  else
    kd_api_respond_empty (req, 204);
  kd_api_request_unref (req);
}

static void
kd_api_hosts (KdApiRequest *req)
{
  KdBroker *b = req->server->broker;
  g_autoptr(GError) error = NULL;

  if (!kd_api_require_admin (req))
    return;
  if (req->n_segs == 3 && IS ("GET"))
    {
      g_autoptr(GPtrArray) hosts = kd_broker_host_list (b);
      JsonArray *arr = json_array_new ();
      for (guint i = 0; i < hosts->len; i++)
        json_array_add_element (arr, kd_api_json_host (b, hosts->pdata[i]));
      kd_api_respond_list (req, arr);
    }
  else if (req->n_segs == 3 && IS ("POST"))
    {
      static const char *const allowed[] = { "name", "uri", "graphics_listen", "console_access",
                                             "maintenance", "cpu_ratio", "memory_ratio", "disk_ratio",
                                             "memory_reserved_mib", "labels", "gpus", "migration", NULL };
      g_autoptr(JsonObject) obj = kd_api_body_object (req);
      g_autoptr(GPtrArray) labels = NULL;
      const char *name = NULL, *uri = NULL, *listen = NULL, *access = NULL;
      KdHostRow spec = { 0 };
      KdHostSettings settings;
      if (obj == NULL)
        return;
      if (!kd_json_check_members (obj, allowed, &error) ||
          !kd_json_get_string (obj, "name", TRUE, &name, &error) ||
          !kd_json_get_string (obj, "uri", TRUE, &uri, &error) ||
          !kd_json_get_string (obj, "graphics_listen", FALSE, &listen, &error) ||
          !kd_json_get_string (obj, "console_access", FALSE, &access, &error) ||
          !kd_api_host_settings (obj, &settings, &labels, &error))
        {
          kd_api_respond_error (req, error);
          return;
        }
      spec.name = (char *) name;
      spec.uri = (char *) uri;
      spec.graphics_listen = (char *) listen;
      spec.console_access = (char *) access;
      kd_broker_host_add_async (b, &spec, &settings, req->user, kd_host_added, kd_api_request_ref (req));
      g_clear_pointer (&settings.gpus, g_ptr_array_unref);
      kd_api_request_suspend (req);
    }
  else if (req->n_segs == 4 && IS ("GET"))
    {
      KdBrokerHost *h = kd_broker_host_lookup (b, SEG (3), &error);
      if (h == NULL)
        kd_api_respond_error (req, error);
      else
        kd_api_respond_json (req, 200, kd_api_json_host (b, h));
    }
  else if (req->n_segs == 4 && IS ("PATCH"))
    kd_api_host_patch (req, SEG (3));
  else if (req->n_segs == 5 && IS ("PUT") && g_strcmp0 (SEG (4), "gpus") == 0)
    kd_api_host_put_gpus (req, SEG (3));
  else if (req->n_segs == 5 && IS ("POST") && g_strcmp0 (SEG (4), "drain") == 0)
    kd_api_host_drain (req, SEG (3));
  else if (req->n_segs == 4 && IS ("DELETE"))
    {
      kd_broker_host_remove_async (b, SEG (3), req->user, kd_host_removed, kd_api_request_ref (req));
      kd_api_request_suspend (req);
    }
  else
    kd_api_respond_errorf (req, 405, "invalid", "%s is not allowed on '%s'", req->method, req->path);
}

/* ------------------------------------------------------------------ */
/* images */

static void
kd_image_imported (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiRequest *req = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageRow) img = kd_broker_image_import_finish (req->server->broker, res, &error);

  if (img == NULL)
    kd_api_respond_error (req, error);
  else
    kd_api_respond_json (req, 201, kd_api_json_image (req->server->broker, img));
  kd_api_request_unref (req);
}

static void
kd_image_copied (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiRequest *req = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageRow) img = kd_broker_image_copy_finish (req->server->broker, res, &error);

  if (img == NULL)
    kd_api_respond_error (req, error);
  else
    kd_api_respond_json (req, 200, kd_api_json_image (req->server->broker, img));
  kd_api_request_unref (req);
}

static void
kd_image_deleted (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiRequest *req = data;
  g_autoptr(GError) error = NULL;

  if (!kd_broker_image_delete_finish (req->server->broker, res, &error))
    kd_api_respond_error (req, error);
  else
    kd_api_respond_empty (req, 204);
  kd_api_request_unref (req);
}

static void
kd_api_images (KdApiRequest *req)
{
  KdBroker *b = req->server->broker;
  KdStore *store = kd_broker_get_store (b);
  g_autoptr(GError) error = NULL;

  if (!kd_api_require_admin (req))
    return;
  if (req->n_segs == 3 && IS ("GET"))
    {
      g_autoptr(GPtrArray) rows = kd_store_image_list (store, &error);
      kd_api_respond_rows (req, rows, error, kd_api_view_image);
    }
  else if (req->n_segs == 4 && IS ("GET"))
    {
      g_autoptr(KdImageRow) row = kd_store_image_get_by_name (store, SEG (3), &error);
      if (row == NULL)
        kd_api_respond_error (req, error);
      else
        kd_api_respond_json (req, 200, kd_api_json_image (b, row));
    }
  else if (req->n_segs == 4 && IS ("PUT") && req->is_upload)
    {
      if (fsync (req->spool_fd) < 0 || close (req->spool_fd) < 0)
        {
          req->spool_fd = -1;
          kd_api_respond_errorf (req, 500, "failed", "cannot store the upload: %s", g_strerror (errno));
          return;
        }
      req->spool_fd = -1;
      if (req->received != req->expected)
        {
          kd_api_respond_errorf (req, 400, "invalid", "the upload ended after %" G_GINT64_FORMAT
                                 " of %" G_GINT64_FORMAT " bytes", req->received, req->expected);
          return;
        }
      /* The broker takes the spool file over and deletes it. */
      kd_broker_image_import_async (b, SEG (3), kd_api_request_query (req, "host"),
                                    req->spool_path, req->user, kd_image_imported,
                                    kd_api_request_ref (req));
      g_clear_pointer (&req->spool_path, g_free);
      kd_api_request_suspend (req);
    }
  else if (req->n_segs == 4 && IS ("DELETE"))
    {
      kd_broker_image_delete_async (b, SEG (3), req->user, kd_image_deleted, kd_api_request_ref (req));
      kd_api_request_suspend (req);
    }
  else if (req->n_segs == 5 && IS ("POST") && g_strcmp0 (SEG (4), "copy") == 0)
    {
      static const char *const allowed[] = { "host", NULL };
      g_autoptr(JsonObject) obj = NULL;
      const char *host = NULL;

      if (!kd_api_require_admin (req) || (obj = kd_api_body_object (req)) == NULL)
        return;
      if (!kd_json_check_members (obj, allowed, &error) ||
          !kd_json_get_string (obj, "host", TRUE, &host, &error))
        {
          kd_api_respond_error (req, error);
          return;
        }
      kd_broker_image_copy_async (b, SEG (3), host, req->user, kd_image_copied, kd_api_request_ref (req));
      kd_api_request_suspend (req);
    }
  else if (req->n_segs >= 5)
    kd_api_image_versions (req);
  else
    kd_api_respond_errorf (req, 405, "invalid", "%s is not allowed on '%s'", req->method, req->path);
}

/* ------------------------------------------------------------------ */
/* templates */

static void
kd_api_templates (KdApiRequest *req)
{
  KdBroker *b = req->server->broker;
  KdStore *store = kd_broker_get_store (b);
  g_autoptr(GError) error = NULL;

  if (!kd_api_require_admin (req))
    return;
  if (req->n_segs == 3 && IS ("GET"))
    {
      g_autoptr(GPtrArray) rows = kd_store_template_list (store, &error);
      kd_api_respond_rows (req, rows, error, kd_api_view_template);
    }
  else if (req->n_segs == 3 && IS ("POST"))
    {
      static const char *const allowed[] = { "name", "vcpus", "memory_mib", "disk_gib", "display",
                                             "network", "firmware", "rdp_port", "gpus", "gpu_mdev", NULL };
      g_autoptr(JsonObject) obj = kd_api_body_object (req);
      g_autoptr(KdTemplateRow) row = NULL;
      KdTemplateSpec spec = { 0 };
      gint64 vcpus = 1, memory = 1024, disk = 10, rdp_port = 0, gpus = 0;

      if (obj == NULL)
        return;
      if (!kd_json_check_members (obj, allowed, &error) ||
          !kd_json_get_string (obj, "name", TRUE, &spec.name, &error) ||
          !kd_json_get_int (obj, "vcpus", FALSE, &vcpus, &error) ||
          !kd_json_get_int (obj, "memory_mib", FALSE, &memory, &error) ||
          !kd_json_get_int (obj, "disk_gib", FALSE, &disk, &error) ||
          !kd_json_get_string (obj, "display", FALSE, &spec.display, &error) ||
          !kd_json_get_string (obj, "network", FALSE, &spec.network, &error) ||
          !kd_json_get_string (obj, "firmware", FALSE, &spec.firmware, &error) ||
          !kd_json_get_int (obj, "rdp_port", FALSE, &rdp_port, &error) ||
          !kd_json_get_int (obj, "gpus", FALSE, &gpus, &error) ||
          !kd_json_get_string (obj, "gpu_mdev", FALSE, &spec.gpu_mdev, &error))
        {
          kd_api_respond_error (req, error);
          return;
        }
      /* 0 means "default" inside the broker; from the wire it is an error. */
      if (vcpus == 0 || memory == 0 || disk == 0)
        {
          kd_api_respond_errorf (req, 400, "invalid", "%s must not be 0",
                                 vcpus == 0 ? "vcpus" : memory == 0 ? "memory_mib" : "disk_gib");
          return;
        }
      spec.vcpus = vcpus;
      spec.memory_mib = memory;
      spec.disk_gib = disk;
      spec.rdp_port = rdp_port;
      spec.gpus = gpus;
      row = kd_broker_template_add (b, &spec, req->user, &error);
      if (row == NULL)
        kd_api_respond_error (req, error);
      else
        kd_api_respond_json (req, 201, kd_api_json_template (row));
    }
  else if (req->n_segs == 4 && IS ("GET"))
    {
      g_autoptr(KdTemplateRow) row = kd_store_template_get_by_name (store, SEG (3), &error);
      if (row == NULL)
        kd_api_respond_error (req, error);
      else
        kd_api_respond_json (req, 200, kd_api_json_template (row));
    }
  else if (req->n_segs == 4 && IS ("DELETE"))
    {
      if (!kd_broker_template_remove (b, SEG (3), req->user, &error))
        kd_api_respond_error (req, error);
      else
        kd_api_respond_empty (req, 204);
    }
  else
    kd_api_respond_errorf (req, 405, "invalid", "%s is not allowed on '%s'", req->method, req->path);
}

/* ------------------------------------------------------------------ */
/* desktops */

static void
kd_desktop_created (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiRequest *req = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = kd_broker_desktop_create_finish (req->server->broker, res, &error);

  if (row == NULL)
    kd_api_respond_error (req, error);
  else
    kd_api_respond_json (req, 201, kd_api_json_desktop (req->server->broker, row));
  kd_api_request_unref (req);
}

static void
kd_desktop_acted (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiRequest *req = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = kd_broker_desktop_action_finish (req->server->broker, res, &error);

  if (error)
    kd_api_respond_error (req, error);
  else if (row == NULL)
    kd_api_respond_empty (req, 204);
  else
    kd_api_respond_json (req, 200, kd_api_json_desktop (req->server->broker, row));
  kd_api_request_unref (req);
}

/* Loads a desktop the caller may see: an admin any, a user his own.
 * Anything else is "not found" (and the attempt is recorded). */
static KdDesktopRow *
kd_api_load_desktop (KdApiRequest *req, const char *name)
{
  KdBroker *b = req->server->broker;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = kd_store_desktop_get_by_name (kd_broker_get_store (b), name, &error);

  if (row != NULL && !req->is_admin && row->user_id != req->user_id)
    {
      kd_broker_event (b, "desktop", name, req->user, "denied", NULL, NULL,
                       "user '%s' tried %s %s on a desktop that is not theirs", req->user,
                       req->method, req->path);
      g_message ("user '%s' from %s: %s %s refused: not their desktop", req->user, req->client,
                 req->method, req->path);
      g_clear_pointer (&row, kd_desktop_row_free);
      g_clear_error (&error);
      g_set_error (&error, KD_ERROR, KD_ERROR_NOT_FOUND, "no desktop named '%s'", name);
    }
  if (row == NULL)
    kd_api_respond_error (req, error);
  return g_steal_pointer (&row);
}

static void
kd_desktop_released (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiRequest *req = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = kd_broker_desktop_release_finish (req->server->broker, res, &error);

  if (row == NULL)
    kd_api_respond_error (req, error);
  else
    kd_api_respond_json (req, 200, kd_api_json_desktop (req->server->broker, row));
  kd_api_request_unref (req);
}

static void
kd_api_desktops (KdApiRequest *req)
{
  KdBroker *b = req->server->broker;
  KdStore *store = kd_broker_get_store (b);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) row = NULL;
  KdDesktopAction action;

  if (req->n_segs == 3 && IS ("GET"))
    {
      g_autoptr(GPtrArray) rows = req->is_admin ? kd_store_desktop_list (store, &error)
                                                : kd_store_desktop_list_by_user (store, req->user_id, &error);
      kd_api_respond_rows (req, rows, error, kd_api_view_desktop);
      return;
    }
  if (req->n_segs == 3 && IS ("POST"))
    {
      static const char *const allowed[] = { "name", "image", "template", "host", "start", NULL };
      g_autoptr(JsonObject) obj = NULL;
      const char *name = NULL, *image = NULL, *tpl = NULL, *host = NULL;
      gboolean start = FALSE;

      if (!kd_api_require_admin (req) || (obj = kd_api_body_object (req)) == NULL)
        return;
      if (!kd_json_check_members (obj, allowed, &error) ||
          !kd_json_get_string (obj, "name", TRUE, &name, &error) ||
          !kd_json_get_string (obj, "image", TRUE, &image, &error) ||
          !kd_json_get_string (obj, "template", TRUE, &tpl, &error) ||
          !kd_json_get_string (obj, "host", FALSE, &host, &error) ||
          !kd_json_get_bool (obj, "start", FALSE, &start, &error))
        {
          kd_api_respond_error (req, error);
          return;
        }
      kd_broker_desktop_create_async (b, name, image, tpl, host, start, req->user,
                                      kd_desktop_created, kd_api_request_ref (req));
      kd_api_request_suspend (req);
      return;
    }
  if (req->n_segs < 4 || req->n_segs > 5)
    {
      kd_api_respond_errorf (req, 404, "not_found", "no such endpoint '%s %.200s'", req->method, req->path);
      return;
    }
  if (req->n_segs == 4 && !IS ("GET") && !IS ("DELETE"))
    {
      kd_api_respond_errorf (req, 405, "invalid", "%s is not allowed on '%s'", req->method, req->path);
      return;
    }
  if (req->n_segs == 5 &&
      ((g_strcmp0 (SEG (4), "console.vv") == 0 || g_strcmp0 (SEG (4), "console.rdp") == 0)
       ? !IS ("GET") : !IS ("POST")))
    {
      kd_api_respond_errorf (req, 405, "invalid", "%s is not allowed on '%s'", req->method, req->path);
      return;
    }
  row = kd_api_load_desktop (req, SEG (3));
  if (row == NULL)
    return;

  if (req->n_segs == 4 && IS ("GET"))
    kd_api_respond_json (req, 200, kd_api_json_desktop (b, row));
  else if (req->n_segs == 4 && IS ("DELETE"))
    {
      if (!kd_api_require_admin (req))
        return;
      kd_broker_desktop_action_async (b, SEG (3), KD_DESKTOP_ACTION_DELETE, req->user,
                                      kd_desktop_acted, kd_api_request_ref (req));
      kd_api_request_suspend (req);
    }
  else if ((g_strcmp0 (SEG (4), "console") == 0))
    kd_api_console_ticket (req, row);
  else if ((g_strcmp0 (SEG (4), "console.vv") == 0))
    kd_api_console_vv (req, row);
  else if ((g_strcmp0 (SEG (4), "console.rdp") == 0))
    kd_api_console_rdp (req, row);
  else if ((g_strcmp0 (SEG (4), "release") == 0))
    {
      kd_broker_desktop_release_async (b, SEG (3), req->user, kd_desktop_released,
                                       kd_api_request_ref (req));
      kd_api_request_suspend (req);
    }
  else if ((g_strcmp0 (SEG (4), "heartbeat") == 0))
    {
      static const char *const allowed[] = { "connected", NULL };
      g_autoptr(JsonObject) obj = kd_api_body_object (req);
      g_autoptr(KdDesktopRow) after = NULL;
      gboolean connected = TRUE;

      if (obj == NULL)
        return;
      if (!kd_json_check_members (obj, allowed, &error) ||
          !kd_json_get_bool (obj, "connected", TRUE, &connected, &error) ||
          (after = kd_broker_desktop_heartbeat (b, SEG (3), connected, req->user, &error)) == NULL)
        {
          kd_api_respond_error (req, error);
          return;
        }
      kd_api_respond_json (req, 200, kd_api_json_desktop (b, after));
    }
  else if (kd_desktop_action_from_string (SEG (4), &action) && action != KD_DESKTOP_ACTION_DELETE)
    {
      /* Users may power their own desktops; reset is an admin's. */
      if (action == KD_DESKTOP_ACTION_RESET && !kd_api_require_admin (req))
        return;
      kd_broker_desktop_action_async (b, SEG (3), action, req->user, kd_desktop_acted,
                                      kd_api_request_ref (req));
      kd_api_request_suspend (req);
    }
  else
    kd_api_respond_errorf (req, 404, "not_found",
                           "unknown desktop action '%.40s' (use start, shutdown, reboot, poweroff, "
                           "reset, release or heartbeat)", SEG (4));
}

/* ------------------------------------------------------------------ */
/* reconciler and events */

static void
kd_reconciled (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiRequest *req = data;

  kd_broker_reconcile_finish (req->server->broker, res, NULL);
  kd_api_respond_json (req, 200, kd_api_json_reconcile (kd_broker_reconcile_report (req->server->broker)));
  kd_api_request_unref (req);
}

static void
kd_api_reconciler (KdApiRequest *req)
{
  KdBroker *b = req->server->broker;

  if (!kd_api_require_admin (req))
    return;
  if (req->n_segs == 3 && IS ("GET"))
    kd_api_respond_json (req, 200, kd_api_json_reconcile (kd_broker_reconcile_report (b)));
  else if (req->n_segs == 4 && IS ("POST") && g_strcmp0 (SEG (3), "run") == 0)
    {
      kd_broker_reconcile_async (b, kd_reconciled, kd_api_request_ref (req));
      kd_api_request_suspend (req);
    }
  else
    kd_api_respond_errorf (req, 404, "not_found", "no such endpoint '%s %s'", req->method, req->path);
}

static gboolean
kd_api_query_int (KdApiRequest *req, const char *key, gint64 min, gint64 max, gint64 *out)
{
  const char *v = kd_api_request_query (req, key);
  gint64 n;

  if (v == NULL)
    return TRUE;
  if (!g_ascii_string_to_signed (v, 10, min, max, &n, NULL))
    {
      kd_api_respond_errorf (req, 400, "invalid", "query parameter '%s' must be a number between %"
                             G_GINT64_FORMAT " and %" G_GINT64_FORMAT, key, min, max);
      return FALSE;
    }
  *out = n;
  return TRUE;
}

static void
kd_api_events (KdApiRequest *req)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  gint64 since = 0, limit = 100;

  if (!IS ("GET") || req->n_segs != 3)
    {
      kd_api_respond_errorf (req, 405, "invalid", "%s is not allowed on '%s'", req->method, req->path);
      return;
    }
  if (!kd_api_query_int (req, "since", 0, G_MAXINT64, &since) ||
      !kd_api_query_int (req, "limit", 1, 10000, &limit))
    return;
  {
    KdEventFilter f = {
      .object_type = kd_api_request_query (req, "object_type"),
      .object_name = kd_api_request_query (req, "object_name"),
      .pool = kd_api_request_query (req, "pool"),
      .user = kd_api_request_query (req, "user"),
      .since_id = since,
      .limit = limit,
    };
    if (kd_api_request_query (req, "desktop"))
      {
        f.object_type = "desktop";
        f.object_name = kd_api_request_query (req, "desktop");
      }
    /* A user reads only the trail of his own desktops and account. */
    if (!req->is_admin)
      f.desktop_user = req->user;
    rows = kd_store_event_query (kd_broker_get_store (req->server->broker), &f, &error);
  }
  kd_api_respond_rows (req, rows, error, kd_api_view_event);
}

/* ------------------------------------------------------------------ */

static void
kd_api_healthz (KdApiRequest *req)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "status");
  json_builder_add_string_value (b, "ok");
  json_builder_set_member_name (b, "version");
  json_builder_add_string_value (b, KD_VERSION);
  json_builder_end_object (b);
  kd_api_respond_json (req, 200, json_builder_get_root (b));
}

/**
 * kd_api_route:
 * Dispatches a complete request (authenticated by the precheck).
 */
void
kd_api_route (KdApiRequest *req)
{
  const char *what;

  if (req->n_segs == 1 && g_str_equal (req->segs[0], "healthz") && IS ("GET"))
    {
      kd_api_healthz (req);
      return;
    }
  if (req->n_segs == 0 || (!g_str_equal (req->segs[0], "api") && !g_str_equal (req->segs[0], "healthz")))
    {
      kd_api_static (req);              /* the web dashboard */
      return;
    }
  if (req->n_segs < 3 || !g_str_equal (req->segs[0], "api") || !g_str_equal (req->segs[1], "v1"))
    {
      kd_api_respond_errorf (req, 404, "not_found", "no such endpoint '%s %.200s'", req->method, req->path);
      return;
    }
  what = req->segs[2];
  if (g_str_equal (what, "login") && req->n_segs == 3 && IS ("POST"))
    {
      g_autoptr(JsonObject) obj = kd_api_body_object (req);
      if (obj)
        kd_api_login (req, obj);
    }
  else if (g_str_equal (what, "logout") && req->n_segs == 3 && IS ("POST"))
    kd_api_logout (req);
  else if (g_str_equal (what, "hosts"))
    kd_api_hosts (req);
  else if (g_str_equal (what, "images"))
    kd_api_images (req);
  else if (g_str_equal (what, "templates"))
    kd_api_templates (req);
  else if (g_str_equal (what, "desktops"))
    kd_api_desktops (req);
  else if (g_str_equal (what, "reconciler"))
    kd_api_reconciler (req);
  else if (kd_api_is_console (req))
    kd_api_console_upgrade (req);
  else if (g_str_equal (what, "me") && req->n_segs == 3 && IS ("GET"))
    kd_api_me (req);
  else if (g_str_equal (what, "users"))
    kd_api_users (req);
  else if (g_str_equal (what, "groups"))
    kd_api_groups (req);
  else if (g_str_equal (what, "pools"))
    kd_api_pools (req);
  else if (g_str_equal (what, "events") && req->n_segs == 4 && g_str_equal (req->segs[3], "stream"))
    kd_api_events_stream (req);
  else if (g_str_equal (what, "events"))
    kd_api_events (req);
  else
    kd_api_respond_errorf (req, 404, "not_found", "no such endpoint '%s %.200s'", req->method, req->path);
}
