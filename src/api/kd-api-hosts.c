/*
 * kd-api-hosts.c: the placement settings of hosts through the API:
 * read from POST /hosts and PATCH /hosts/{name} bodies, and shown with
 * what the desktops on each host use.
 */
#include "kd-api-priv.h"

#include "common/kd-error.h"
#include "common/kd-json.h"

#define KD_MIB (G_GINT64_CONSTANT (1) << 20)

/**
 * kd_api_host_settings:
 * Reads maintenance, cpu_ratio, memory_ratio, disk_ratio,
 * memory_reserved_mib, migration and labels from @obj into @s (what is absent stays
 * unchanged: 0 ratios, -1 reserve, NULL labels). *@labels owns the label
 * strings.
 */
gboolean
kd_api_host_settings (JsonObject *obj, KdHostSettings *s, GPtrArray **labels, GError **error)
{
  static const struct { const char *member; gsize offset; } ratios[] = {
    { "cpu_ratio", G_STRUCT_OFFSET (KdHostSettings, cpu_ratio) },
    { "memory_ratio", G_STRUCT_OFFSET (KdHostSettings, memory_ratio) },
    { "disk_ratio", G_STRUCT_OFFSET (KdHostSettings, disk_ratio) },
  };
  gint64 reserve_mib = -1;

  memset (s, 0, sizeof *s);
  s->memory_reserved = -1;
  if (json_object_has_member (obj, "maintenance") &&
      !JSON_NODE_HOLDS_NULL (json_object_get_member (obj, "maintenance")))
    {
      if (!kd_json_get_bool (obj, "maintenance", TRUE, &s->maintenance, error))
        return FALSE;
      s->has_maintenance = TRUE;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (ratios); i++)
    {
      double v = 0;
      if (!kd_json_get_number (obj, ratios[i].member, FALSE, &v, error))
        return FALSE;
      if (json_object_has_member (obj, ratios[i].member) && v <= 0)
        {
          g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "%s must be more than 0", ratios[i].member);
          return FALSE;
        }
      G_STRUCT_MEMBER (double, s, ratios[i].offset) = v;
    }
  if (!kd_json_get_int (obj, "memory_reserved_mib", FALSE, &reserve_mib, error))
    return FALSE;
  if (json_object_has_member (obj, "memory_reserved_mib"))
    {
      if (reserve_mib < 0 || reserve_mib > G_GINT64_CONSTANT (1) << 30)
        {
          g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                       "memory_reserved_mib must be from 0 to 1073741824");
          return FALSE;
        }
      s->memory_reserved = reserve_mib * KD_MIB;
    }
  if (json_object_has_member (obj, "migration"))
    {
      const char *m = NULL;
      if (!kd_json_get_string (obj, "migration", TRUE, &m, error))
        return FALSE;
      /* static strings: the settings outlive the request body */
      if (g_strcmp0 (m, "live") == 0)
        s->migration = "live";
      else if (g_strcmp0 (m, "cold") == 0)
        s->migration = "cold";
      else
        {
          g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "migration must be 'live' or 'cold'");
          return FALSE;
        }
    }
  *labels = kd_api_names_list (obj, "labels", error);
  if (*error)
    return FALSE;
  if (*labels != NULL)
    {
      g_ptr_array_add (*labels, NULL);
      s->labels = (char **) (*labels)->pdata;
    }
  /* Last: nothing after it can fail and leave it to free. */
  return kd_api_host_gpus (obj, "gpus", &s->gpus, error);
}

/**
 * kd_api_host_gpus:
 * Reads @member, an array of GPUs, each an array of PCI address strings
 * (or one string "A,B"), into GStrvs. Absent: *@out NULL.
 */
gboolean
kd_api_host_gpus (JsonObject *obj, const char *member, GPtrArray **out, GError **error)
{
  JsonNode *node = json_object_get_member (obj, member);
  g_autoptr(GPtrArray) gpus = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  JsonArray *arr;

  *out = NULL;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (node) || json_array_get_length (arr = json_node_get_array (node)) > 64)
    goto bad;
  for (guint i = 0; i < json_array_get_length (arr); i++)
    {
      JsonNode *g = json_array_get_element (arr, i);
      GPtrArray *fns = g_ptr_array_new_with_free_func (g_free);

      if (JSON_NODE_HOLDS_VALUE (g) && json_node_get_value_type (g) == G_TYPE_STRING)
        {
          g_auto(GStrv) parts = g_strsplit (json_node_get_string (g), ",", 9);
          for (guint k = 0; parts[k] != NULL; k++)
            g_ptr_array_add (fns, g_strdup (g_strstrip (parts[k])));
        }
      else if (JSON_NODE_HOLDS_ARRAY (g) && json_array_get_length (json_node_get_array (g)) <= 8)
        {
          JsonArray *a = json_node_get_array (g);
          for (guint k = 0; k < json_array_get_length (a); k++)
            {
              JsonNode *e = json_array_get_element (a, k);
              if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_STRING)
                {
                  g_ptr_array_unref (fns);
                  goto bad;
                }
              g_ptr_array_add (fns, g_strdup (json_node_get_string (e)));
            }
        }
      else
        {
          g_ptr_array_unref (fns);
          goto bad;
        }
      g_ptr_array_set_free_func (fns, NULL);
      g_ptr_array_add (fns, NULL);
      g_ptr_array_add (gpus, g_ptr_array_free (fns, FALSE));
    }
  *out = g_steal_pointer (&gpus);
  return TRUE;

bad:
  g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
               "field '%s' must be a list of GPUs, each a list of PCI addresses (at most 64 GPUs of 8 "
               "functions)", member);
  return FALSE;
}

static void
kd_api_host_gpus_set (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiRequest *req = data;
  g_autoptr(GError) error = NULL;
  KdBrokerHost *h = kd_broker_host_set_gpus_finish (req->server->broker, res, &error);

  if (h == NULL)
    kd_api_respond_error (req, error);
  else
    kd_api_respond_json (req, 200, kd_api_json_host (req->server->broker, h));
  kd_api_request_unref (req);
}

/* PUT /hosts/{name}/gpus {"gpus": [["0000:01:00.0", "0000:01:00.1"], …]} */
void
kd_api_host_put_gpus (KdApiRequest *req, const char *name)
{
  static const char *const allowed[] = { "gpus", NULL };
  g_autoptr(JsonObject) obj = kd_api_body_object (req);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) gpus = NULL;

  if (obj == NULL)
    return;
  if (!kd_json_check_members (obj, allowed, &error) || !kd_api_host_gpus (obj, "gpus", &gpus, &error))
    {
      kd_api_respond_error (req, error);
      return;
    }
  if (gpus == NULL)
    {
      kd_api_respond_errorf (req, 400, "invalid", "field 'gpus' is required ([] removes every GPU)");
      return;
    }
  kd_broker_host_set_gpus_async (req->server->broker, name, gpus, req->user, kd_api_host_gpus_set,
                                 kd_api_request_ref (req));
  kd_api_request_suspend (req);
}

/* POST /hosts/{name}/drain */
void
kd_api_host_drain (KdApiRequest *req, const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) steps = kd_broker_host_drain (req->server->broker, name, req->user, &error);
  g_autoptr(JsonBuilder) b = NULL;

  if (steps == NULL)
    {
      kd_api_respond_error (req, error);
      return;
    }
  b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "host");
  json_builder_add_string_value (b, name);
  json_builder_set_member_name (b, "desktops");
  json_builder_begin_array (b);
  for (guint i = 0; i < steps->len; i++)
    {
      KdDrainStep *s = steps->pdata[i];
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "name");
      json_builder_add_string_value (b, s->desktop);
      json_builder_set_member_name (b, "action");
      json_builder_add_string_value (b, s->action);
      json_builder_set_member_name (b, "reason");
      json_builder_add_string_value (b, s->reason);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  kd_api_respond_json (req, 200, json_builder_get_root (b));
}

/* PATCH /hosts/{name} */
void
kd_api_host_patch (KdApiRequest *req, const char *name)
{
  static const char *const allowed[] = { "maintenance", "cpu_ratio", "memory_ratio", "disk_ratio",
                                         "memory_reserved_mib", "labels", "migration", NULL };
  g_autoptr(JsonObject) obj = kd_api_body_object (req);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) labels = NULL;
  KdHostSettings settings;
  KdBrokerHost *h;

  if (obj == NULL)
    return;
  if (!kd_json_check_members (obj, allowed, &error) ||
      !kd_api_host_settings (obj, &settings, &labels, &error) ||
      (h = kd_broker_host_set (req->server->broker, name, &settings, req->user, &error)) == NULL)
    {
      kd_api_respond_error (req, error);
      return;
    }
  kd_api_respond_json (req, 200, kd_api_json_host (req->server->broker, h));
}
