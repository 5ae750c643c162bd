/*
 * kd-api-users.c: accounts and groups (admin), /me, and password changes
 * (admin, or a user for himself). Password hashing is slow on purpose and
 * runs in a worker thread.
 */
#include "kd-api-priv.h"

#include "common/kd-error.h"
#include "common/kd-json.h"
#include "common/kd-name.h"

#define SEG(i)   (req->n_segs > (i) ? req->segs[i] : NULL)
#define IS(m)    (g_str_equal (req->method, (m)))

static JsonNode *
kd_api_view_user (KdBroker *broker, gpointer row)
{
  return kd_api_json_user (broker, row);
}

static JsonNode *
kd_api_view_group (KdBroker *broker, gpointer row)
{
  return kd_api_json_group (broker, row);
}

void
kd_api_me (KdApiRequest *req)
{
  g_autoptr(KdUserRow) user = kd_store_user_get (kd_broker_get_store (req->server->broker),
                                                 req->user_id, NULL);
  g_autoptr(GError) error = NULL;

  if (user == NULL)
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_NOT_FOUND, "no user named '%s'", req->user);
      kd_api_respond_error (req, error);
      return;
    }
  {
    g_autoptr(JsonBuilder) b = json_builder_new ();
    g_autoptr(GPtrArray) groups = kd_store_user_get_groups (kd_broker_get_store (req->server->broker),
                                                            user->id, NULL);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "user");
    json_builder_add_string_value (b, user->name);
    json_builder_set_member_name (b, "role");
    json_builder_add_string_value (b, user->role);
    json_builder_set_member_name (b, "groups");
    json_builder_begin_array (b);
    for (guint i = 0; groups && i < groups->len; i++)
      json_builder_add_string_value (b, ((KdGroupRow *) groups->pdata[i])->name);
    json_builder_end_array (b);
    json_builder_end_object (b);
    kd_api_respond_json (req, 200, json_builder_get_root (b));
  }
}

static gboolean
kd_api_check_password (const char *password, GError **error)
{
  if (strlen (password) < KD_API_PASSWORD_MIN)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "the password must have at least %d characters",
                   KD_API_PASSWORD_MIN);
      return FALSE;
    }
  return TRUE;
}

/* Reads a JSON array of names; NULL with no error when absent. */
static GPtrArray *
kd_api_name_list (JsonObject *obj, const char *member, GError **error)
{
  JsonNode *node = json_object_get_member (obj, member);
  GPtrArray *out;
  JsonArray *arr;

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return NULL;
  if (!JSON_NODE_HOLDS_ARRAY (node))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "field '%s' must be a list of names", member);
      return NULL;
    }
  arr = json_node_get_array (node);
  if (json_array_get_length (arr) > 10000)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "field '%s' has too many names", member);
      return NULL;
    }
  out = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < json_array_get_length (arr); i++)
    {
      JsonNode *e = json_array_get_element (arr, i);
      if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_STRING)
        {
          g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "field '%s' must be a list of names", member);
          g_ptr_array_unref (out);
          return NULL;
        }
      g_ptr_array_add (out, g_strdup (json_node_get_string (e)));
    }
  return out;
}

/**
 * kd_api_names_list:
 * Shared with kd-api-pools.c.
 */
GPtrArray *
kd_api_names_list (JsonObject *obj, const char *member, GError **error)
{
  return kd_api_name_list (obj, member, error);
}

/* ------------------------------------------------------------------ */
/* user creation and password change: hash in a thread */

typedef struct {
  KdApiRequest *req;
  char         *name;
  char         *password;
  char         *role;
  GArray       *group_ids;
  gint64        user_id;     /* password change */
  char         *hash;
  GError       *error;
} KdUserJob;

static void
kd_user_job_free (KdUserJob *j)
{
  g_free (j->name);
  if (j->password)
    memset (j->password, 0, strlen (j->password));
  g_free (j->password);
  g_free (j->role);
  if (j->group_ids)
    g_array_unref (j->group_ids);
  g_free (j->hash);
  g_clear_error (&j->error);
  g_free (j);
}

static void
kd_user_hash_thread (GTask *task, gpointer source, gpointer data, GCancellable *c)
{
  KdUserJob *j = data;
  j->hash = kd_api_password_hash (j->password, &j->error);
  g_task_return_boolean (task, TRUE);
}

static void
kd_user_created (GObject *src, GAsyncResult *res, gpointer data)
{
  KdUserJob *j = g_task_get_task_data (G_TASK (res));
  KdApiRequest *req = j->req;
  KdBroker *b = req->server->broker;
  KdStore *store = kd_broker_get_store (b);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdUserRow) row = NULL;

  if (j->hash == NULL)
    {
      kd_api_respond_error (req, j->error);
      kd_api_request_unref (req);
      return;
    }
  row = g_new0 (KdUserRow, 1);
  row->name = g_strdup (j->name);
  row->password_hash = g_strdup (j->hash);
  row->role = g_strdup (j->role);
  if (!kd_store_begin (store, &error))
    goto fail;
  if (!kd_store_user_insert (store, row, &error) ||
      !kd_store_user_set_groups (store, row->id, j->group_ids, &error) ||
      !kd_store_commit (store, &error))
    {
      kd_store_rollback (store);
      goto fail;
    }
  kd_broker_event (b, "user", row->name, req->user, "create", NULL, NULL,
                   "user '%s' added with role %s", row->name, row->role);
  kd_api_respond_json (req, 201, kd_api_json_user (b, row));
  kd_api_request_unref (req);
  return;

fail:
  kd_api_respond_error (req, error);
  kd_api_request_unref (req);
}

static void
kd_user_password_set (GObject *src, GAsyncResult *res, gpointer data)
{
  KdUserJob *j = g_task_get_task_data (G_TASK (res));
  KdApiRequest *req = j->req;
  KdBroker *b = req->server->broker;
  KdStore *store = kd_broker_get_store (b);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdUserRow) row = NULL;

  if (j->hash == NULL)
    {
      kd_api_respond_error (req, j->error);
      kd_api_request_unref (req);
      return;
    }
  row = kd_store_user_get (store, j->user_id, &error);
  if (row == NULL)
    goto fail;
  g_free (row->password_hash);
  row->password_hash = g_strdup (j->hash);
  /* Every other session ends; the one that asked goes on. */
  if (!kd_store_user_update (store, row, &error) ||
      !kd_store_token_delete_for_user_except (store, row->id,
                                              j->user_id == req->user_id ? req->token_hash : NULL,
                                              &error))
    goto fail;
  kd_broker_event (b, "user", row->name, req->user, "password", NULL, NULL,
                   "password of user '%s' changed; their other sessions were ended", row->name);
  kd_api_respond_empty (req, 204);
  kd_api_request_unref (req);
  return;

fail:
  kd_api_respond_error (req, error);
  kd_api_request_unref (req);
}

static void
kd_api_user_add (KdApiRequest *req)
{
  static const char *const allowed[] = { "name", "password", "role", "groups", NULL };
  KdStore *store = kd_broker_get_store (req->server->broker);
  g_autoptr(JsonObject) obj = kd_api_body_object (req);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) groups = NULL;
  g_autoptr(KdUserRow) existing = NULL;
  g_autoptr(GTask) task = NULL;
  const char *name = NULL, *password = NULL, *role = "user";
  KdUserJob *j;

  if (obj == NULL)
    return;
  if (!kd_json_check_members (obj, allowed, &error) ||
      !kd_json_get_string (obj, "name", TRUE, &name, &error) ||
      !kd_json_get_string (obj, "password", TRUE, &password, &error) ||
      !kd_json_get_string (obj, "role", FALSE, &role, &error) ||
      !kd_name_validate ("user", name, &error) ||
      !kd_api_check_password (password, &error))
    goto fail;
  if (!g_str_equal (role, "admin") && !g_str_equal (role, "user"))
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_INVALID, "role '%.40s' is invalid: use admin or user", role);
      goto fail;
    }
  groups = kd_api_name_list (obj, "groups", &error);
  if (error)
    goto fail;
  existing = kd_store_user_get_by_name (store, name, NULL);
  if (existing)
    {
      g_set_error (&error, KD_ERROR, KD_ERROR_EXISTS, "a user named '%s' already exists", name);
      goto fail;
    }
  j = g_new0 (KdUserJob, 1);
  j->group_ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  for (guint i = 0; groups && i < groups->len; i++)
    {
      g_autoptr(KdGroupRow) g = kd_store_group_get_by_name (store, groups->pdata[i], NULL);
      if (g == NULL)
        {
          g_set_error (&error, KD_ERROR, KD_ERROR_NOT_FOUND, "no group named '%.80s'",
                       (char *) groups->pdata[i]);
          kd_user_job_free (j);
          goto fail;
        }
      g_array_append_val (j->group_ids, g->id);
    }
  j->req = kd_api_request_ref (req);
  j->name = g_strdup (name);
  j->password = g_strdup (password);
  j->role = g_strdup (role);
  task = g_task_new (NULL, NULL, kd_user_created, NULL);
  g_task_set_task_data (task, j, (GDestroyNotify) kd_user_job_free);
  g_task_run_in_thread (task, kd_user_hash_thread);
  kd_api_request_suspend (req);
  return;

fail:
  kd_api_respond_error (req, error);
}

static void
kd_api_user_password (KdApiRequest *req, KdUserRow *user)
{
  static const char *const allowed[] = { "password", NULL };
  g_autoptr(JsonObject) obj = kd_api_body_object (req);
  g_autoptr(GError) error = NULL;
  g_autoptr(GTask) task = NULL;
  const char *password = NULL;
  KdUserJob *j;

  if (obj == NULL)
    return;
  if (!kd_json_check_members (obj, allowed, &error) ||
      !kd_json_get_string (obj, "password", TRUE, &password, &error) ||
      !kd_api_check_password (password, &error))
    {
      kd_api_respond_error (req, error);
      return;
    }
  j = g_new0 (KdUserJob, 1);
  j->req = kd_api_request_ref (req);
  j->password = g_strdup (password);
  j->user_id = user->id;
  task = g_task_new (NULL, NULL, kd_user_password_set, NULL);
  g_task_set_task_data (task, j, (GDestroyNotify) kd_user_job_free);
  g_task_run_in_thread (task, kd_user_hash_thread);
  kd_api_request_suspend (req);
}

static gint64
kd_api_admin_count (KdStore *store)
{
  g_autoptr(GPtrArray) users = kd_store_user_list (store, NULL);
  gint64 n = 0;

  for (guint i = 0; users && i < users->len; i++)
    if (g_str_equal (((KdUserRow *) users->pdata[i])->role, "admin"))
      n++;
  return n;
}

void
kd_api_users (KdApiRequest *req)
{
  KdBroker *b = req->server->broker;
  KdStore *store = kd_broker_get_store (b);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdUserRow) user = NULL;

  /* A user may change his own password; everything else is an admin's. */
  if (req->n_segs == 5 && IS ("POST") && (g_strcmp0 (SEG (4), "password") == 0) &&
      g_strcmp0 (SEG (3), req->user) == 0)
    {
      user = kd_store_user_get (store, req->user_id, &error);
      if (user == NULL)
        kd_api_respond_error (req, error);
      else
        kd_api_user_password (req, user);
      return;
    }
  if (!kd_api_require_admin (req))
    return;
  if (req->n_segs == 3 && IS ("GET"))
    {
      g_autoptr(GPtrArray) rows = kd_store_user_list (store, &error);
      kd_api_respond_rows (req, rows, error, kd_api_view_user);
      return;
    }
  if (req->n_segs == 3 && IS ("POST"))
    {
      kd_api_user_add (req);
      return;
    }
  if (req->n_segs < 4 || req->n_segs > 5)
    {
      kd_api_respond_errorf (req, 404, "not_found", "no such endpoint '%s %.200s'", req->method, req->path);
      return;
    }
  user = kd_store_user_get_by_name (store, SEG (3), &error);
  if (user == NULL)
    {
      kd_api_respond_error (req, error);
      return;
    }
  if (req->n_segs == 4 && IS ("GET"))
    kd_api_respond_json (req, 200, kd_api_json_user (b, user));
  else if (req->n_segs == 4 && IS ("DELETE"))
    {
      if (g_str_equal (user->role, "admin") && kd_api_admin_count (store) <= 1)
        {
          kd_api_respond_errorf (req, 409, "busy", "user '%s' is the last administrator and cannot be removed",
                                 user->name);
          return;
        }
      /* Nobody inherits his desktops dirty. */
      kd_broker_user_forget (b, user->id, req->user);
      if (!kd_store_user_delete (store, user->id, &error))
        {
          kd_api_respond_error (req, error);
          return;
        }
      kd_broker_event (b, "user", user->name, req->user, "delete", NULL, NULL,
                       "user '%s' removed; their sessions ended and their desktops will be reset",
                       user->name);
      kd_api_respond_empty (req, 204);
    }
  else if (req->n_segs == 5 && IS ("POST") && (g_strcmp0 (SEG (4), "password") == 0))
    kd_api_user_password (req, user);
  else
    kd_api_respond_errorf (req, 405, "invalid", "%s is not allowed on '%s'", req->method, req->path);
}

void
kd_api_groups (KdApiRequest *req)
{
  KdBroker *b = req->server->broker;
  KdStore *store = kd_broker_get_store (b);
  g_autoptr(GError) error = NULL;

  if (!kd_api_require_admin (req))
    return;
  if (req->n_segs == 3 && IS ("GET"))
    {
      g_autoptr(GPtrArray) rows = kd_store_group_list (store, &error);
      kd_api_respond_rows (req, rows, error, kd_api_view_group);
    }
  else if (req->n_segs == 3 && IS ("POST"))
    {
      static const char *const allowed[] = { "name", NULL };
      g_autoptr(JsonObject) obj = kd_api_body_object (req);
      g_autoptr(KdGroupRow) row = NULL;
      const char *name = NULL;

      if (obj == NULL)
        return;
      if (!kd_json_check_members (obj, allowed, &error) ||
          !kd_json_get_string (obj, "name", TRUE, &name, &error) ||
          !kd_name_validate ("group", name, &error))
        {
          kd_api_respond_error (req, error);
          return;
        }
      row = g_new0 (KdGroupRow, 1);
      row->name = g_strdup (name);
      if (!kd_store_group_insert (store, row, &error))
        {
          kd_api_respond_error (req, error);
          return;
        }
      kd_broker_event (b, "group", name, req->user, "create", NULL, NULL, "group '%s' added", name);
      kd_api_respond_json (req, 201, kd_api_json_group (b, row));
    }
  else if (req->n_segs == 4 && (IS ("GET") || IS ("DELETE")))
    {
      g_autoptr(KdGroupRow) row = kd_store_group_get_by_name (store, SEG (3), &error);
      if (row == NULL)
        kd_api_respond_error (req, error);
      else if (IS ("GET"))
        kd_api_respond_json (req, 200, kd_api_json_group (b, row));
      else if (!kd_store_group_delete (store, row->id, &error))
        kd_api_respond_error (req, error);
      else
        {
          kd_broker_event (b, "group", row->name, req->user, "delete", NULL, NULL,
                           "group '%s' removed with its memberships and pool entitlements", row->name);
          kd_api_respond_empty (req, 204);
        }
    }
  else
    kd_api_respond_errorf (req, 405, "invalid", "%s is not allowed on '%s'", req->method, req->path);
}
