/*
 * kd-api-pools.c: pools (admin manages; users see the pools they are
 * entitled to) and getting a desktop from a pool.
 */
#include "kd-api-priv.h"

#include "common/kd-error.h"
#include "common/kd-json.h"

#define SEG(i)   (req->n_segs > (i) ? req->segs[i] : NULL)
#define IS(m)    (g_str_equal (req->method, (m)))

GPtrArray *kd_api_names_list (JsonObject *obj, const char *member, GError **error);

typedef struct {
  GPtrArray *users, *groups, *hosts;
} KdPoolLists;

static void
kd_pool_lists_clear (KdPoolLists *l)
{
  g_clear_pointer (&l->users, g_ptr_array_unref);
  g_clear_pointer (&l->groups, g_ptr_array_unref);
  g_clear_pointer (&l->hosts, g_ptr_array_unref);
}

/* Reads a pool body into @spec; @adding requires name, image, template. */
static gboolean
kd_api_pool_spec (JsonObject *obj, gboolean adding, KdPoolSpec *spec, KdPoolLists *lists,
                  GError **error)
{
  static const char *const add_allowed[] = { "name", "image", "template", "mode", "size", "warm",
    "idle_timeout", "disconnect_timeout", "users", "groups", "hosts", "maintenance", "console_mode",
    NULL };
  static const char *const patch_allowed[] = { "size", "warm", "idle_timeout", "disconnect_timeout",
    "users", "groups", "hosts", "maintenance", "console_mode", NULL };
  struct { const char *member; gint64 *value; gboolean *has; } ints[] = {
    { "size", &spec->size, &spec->has_size },
    { "warm", &spec->warm, &spec->has_warm },
    { "idle_timeout", &spec->idle_timeout, &spec->has_idle_timeout },
    { "disconnect_timeout", &spec->disconnect_timeout, &spec->has_disconnect_timeout },
  };

  if (!kd_json_check_members (obj, adding ? add_allowed : patch_allowed, error))
    return FALSE;
  if (adding &&
      (!kd_json_get_string (obj, "name", TRUE, &spec->name, error) ||
       !kd_json_get_string (obj, "image", TRUE, &spec->image, error) ||
       !kd_json_get_string (obj, "template", TRUE, &spec->template_name, error) ||
       !kd_json_get_string (obj, "mode", FALSE, &spec->mode, error)))
    return FALSE;
  if (!kd_json_get_string (obj, "console_mode", FALSE, &spec->console_mode, error))
    return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (ints); i++)
    {
      JsonNode *n = json_object_get_member (obj, ints[i].member);
      if (n == NULL || JSON_NODE_HOLDS_NULL (n))
        continue;
      if (!kd_json_get_int (obj, ints[i].member, TRUE, ints[i].value, error))
        return FALSE;
      *ints[i].has = TRUE;
    }
  if (json_object_has_member (obj, "maintenance") &&
      !JSON_NODE_HOLDS_NULL (json_object_get_member (obj, "maintenance")))
    {
      if (!kd_json_get_bool (obj, "maintenance", TRUE, &spec->maintenance, error))
        return FALSE;
      spec->has_maintenance = TRUE;
    }
  lists->users = kd_api_names_list (obj, "users", error);
  if (*error)
    return FALSE;
  lists->groups = kd_api_names_list (obj, "groups", error);
  if (*error)
    return FALSE;
  lists->hosts = kd_api_names_list (obj, "hosts", error);
  if (*error)
    return FALSE;
  spec->users = lists->users;
  spec->groups = lists->groups;
  spec->hosts = lists->hosts;
  return TRUE;
}

static JsonNode *
kd_api_view_pool_full (KdBroker *broker, gpointer row)
{
  return kd_api_json_pool (broker, row, TRUE);
}

static JsonNode *
kd_api_view_pool_user (KdBroker *broker, gpointer row)
{
  return kd_api_json_pool (broker, row, FALSE);
}

static void
kd_pool_removed (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiRequest *req = data;
  g_autoptr(GError) error = NULL;

  if (!kd_broker_pool_remove_finish (req->server->broker, res, &error))
    kd_api_respond_error (req, error);
  else
    kd_api_respond_empty (req, 204);
  kd_api_request_unref (req);
}

static void
kd_pool_desktop_got (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiRequest *req = data;
  g_autoptr(GError) error = NULL;
  gboolean assigned = FALSE;
  g_autoptr(KdDesktopRow) row = kd_broker_pool_get_desktop_finish (req->server->broker, res,
                                                                   &assigned, &error);

  if (row == NULL)
    kd_api_respond_error (req, error);
  else
    kd_api_respond_json (req, assigned ? 201 : 200, kd_api_json_desktop (req->server->broker, row));
  kd_api_request_unref (req);
}

/* A pool the caller may see, or NULL having answered 404. */
static KdPoolRow *
kd_api_load_pool (KdApiRequest *req, const char *name)
{
  KdStore *store = kd_broker_get_store (req->server->broker);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdPoolRow) pool = kd_store_pool_get_by_name (store, name, &error);

  if (pool != NULL && !req->is_admin && !kd_store_pool_is_entitled (store, pool->id, req->user_id, NULL))
    {
      kd_broker_event (req->server->broker, "pool", name, req->user, "denied", NULL, NULL,
                       "user '%s' tried %s %s on a pool they are not entitled to", req->user,
                       req->method, req->path);
      g_clear_pointer (&pool, kd_pool_row_free);
      g_clear_error (&error);
      g_set_error (&error, KD_ERROR, KD_ERROR_NOT_FOUND, "no pool named '%s'", name);
    }
  if (pool == NULL)
    kd_api_respond_error (req, error);
  return g_steal_pointer (&pool);
}

void
kd_api_pools (KdApiRequest *req)
{
  KdBroker *b = req->server->broker;
  KdStore *store = kd_broker_get_store (b);
  g_autoptr(GError) error = NULL;
  g_autoptr(KdPoolRow) pool = NULL;

  if (req->n_segs == 3 && IS ("GET"))
    {
      g_autoptr(GPtrArray) rows = req->is_admin ? kd_store_pool_list (store, &error)
                                                : kd_store_pool_list_entitled (store, req->user_id, &error);
      kd_api_respond_rows (req, rows, error, req->is_admin ? kd_api_view_pool_full : kd_api_view_pool_user);
      return;
    }
  if (req->n_segs == 3 && IS ("POST"))
    {
      g_autoptr(JsonObject) obj = NULL;
      KdPoolSpec spec = { 0 };
      KdPoolLists lists = { 0 };

      if (!kd_api_require_admin (req) || (obj = kd_api_body_object (req)) == NULL)
        return;
      if (kd_api_pool_spec (obj, TRUE, &spec, &lists, &error))
        pool = kd_broker_pool_add (b, &spec, req->user, &error);
      kd_pool_lists_clear (&lists);
      if (pool == NULL)
        kd_api_respond_error (req, error);
      else
        kd_api_respond_json (req, 201, kd_api_json_pool (b, pool, TRUE));
      return;
    }
  if (req->n_segs == 5 && IS ("POST") && (g_strcmp0 (SEG (4), "desktop") == 0))
    {
      pool = kd_api_load_pool (req, SEG (3));
      if (pool == NULL)
        return;
      kd_broker_pool_get_desktop_async (b, pool->name, req->user_id, req->is_admin, req->user,
                                        kd_pool_desktop_got, kd_api_request_ref (req));
      kd_api_request_suspend (req);
      return;
    }
  if (req->n_segs != 4)
    {
      kd_api_respond_errorf (req, 404, "not_found", "no such endpoint '%s %.200s'", req->method, req->path);
      return;
    }
  if (IS ("GET"))
    {
      pool = kd_api_load_pool (req, SEG (3));
      if (pool)
        kd_api_respond_json (req, 200, kd_api_json_pool (b, pool, req->is_admin));
      return;
    }
  if (!kd_api_require_admin (req))
    return;
  if (IS ("PATCH"))
    {
      g_autoptr(JsonObject) obj = kd_api_body_object (req);
      KdPoolSpec spec = { 0 };
      KdPoolLists lists = { 0 };

      if (obj == NULL)
        return;
      if (kd_api_pool_spec (obj, FALSE, &spec, &lists, &error))
        pool = kd_broker_pool_update (b, SEG (3), &spec, req->user, &error);
      kd_pool_lists_clear (&lists);
      if (pool == NULL)
        kd_api_respond_error (req, error);
      else
        kd_api_respond_json (req, 200, kd_api_json_pool (b, pool, TRUE));
    }
  else if (IS ("DELETE"))
    {
      kd_broker_pool_remove_async (b, SEG (3), req->user, kd_pool_removed, kd_api_request_ref (req));
      kd_api_request_suspend (req);
    }
  else
    kd_api_respond_errorf (req, 405, "invalid", "%s is not allowed on '%s'", req->method, req->path);
}
