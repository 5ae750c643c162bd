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
 * memory_reserved_mib and labels from @obj into @s (what is absent stays
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
  *labels = kd_api_names_list (obj, "labels", error);
  if (*error)
    return FALSE;
  if (*labels != NULL)
    {
      g_ptr_array_add (*labels, NULL);
      s->labels = (char **) (*labels)->pdata;
    }
  return TRUE;
}

/* PATCH /hosts/{name} */
void
kd_api_host_patch (KdApiRequest *req, const char *name)
{
  static const char *const allowed[] = { "maintenance", "cpu_ratio", "memory_ratio", "disk_ratio",
                                         "memory_reserved_mib", "labels", NULL };
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

/* Placement members of a host object. */
void
kd_api_json_host_placement (JsonBuilder *b, KdBroker *broker, KdBrokerHost *h)
{
  g_auto(GStrv) labels = kd_broker_labels_split (h->row->labels);
  KdBrokerHostUse use;

  kd_broker_host_use (broker, h, &use);
  json_builder_set_member_name (b, "maintenance");
  json_builder_add_boolean_value (b, h->row->maintenance);
  json_builder_set_member_name (b, "cpu_ratio");
  json_builder_add_double_value (b, h->row->cpu_ratio);
  json_builder_set_member_name (b, "memory_ratio");
  json_builder_add_double_value (b, h->row->memory_ratio);
  json_builder_set_member_name (b, "disk_ratio");
  json_builder_add_double_value (b, h->row->disk_ratio);
  json_builder_set_member_name (b, "memory_reserved_mib");
  json_builder_add_int_value (b, h->row->memory_reserved / KD_MIB);
  json_builder_set_member_name (b, "labels");
  json_builder_begin_array (b);
  for (guint i = 0; labels[i] != NULL; i++)
    json_builder_add_string_value (b, labels[i]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "use");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "vcpus");
  json_builder_add_int_value (b, use.vcpus);
  json_builder_set_member_name (b, "vcpus_limit");
  json_builder_add_int_value (b, use.vcpus_limit);
  json_builder_set_member_name (b, "memory_bytes");
  json_builder_add_int_value (b, use.memory_bytes);
  json_builder_set_member_name (b, "memory_limit");
  json_builder_add_int_value (b, use.memory_limit);
  json_builder_set_member_name (b, "disk_bytes");
  json_builder_add_int_value (b, use.disk_bytes);
  json_builder_set_member_name (b, "disk_limit");
  json_builder_add_int_value (b, use.disk_limit);
  json_builder_end_object (b);
}
