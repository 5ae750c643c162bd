/*
 * kd-api-json.c: the JSON views of hosts, images, templates, desktops,
 * events and the reconciler report (docs/api.md describes each field).
 */
#include "kd-api-priv.h"

#include "common/kd-time.h"

static void
kd_json_add_time (JsonBuilder *b, const char *member, gint64 usec)
{
  g_autofree char *s = kd_time_format (usec);

  json_builder_set_member_name (b, member);
  if (s)
    json_builder_add_string_value (b, s);
  else
    json_builder_add_null_value (b);
}

static void
kd_json_add_str (JsonBuilder *b, const char *member, const char *value)
{
  json_builder_set_member_name (b, member);
  if (value)
    json_builder_add_string_value (b, value);
  else
    json_builder_add_null_value (b);
}

static void
kd_json_add_int (JsonBuilder *b, const char *member, gint64 value)
{
  json_builder_set_member_name (b, member);
  json_builder_add_int_value (b, value);
}

static void
kd_json_add_bool (JsonBuilder *b, const char *member, gboolean value)
{
  json_builder_set_member_name (b, member);
  json_builder_add_boolean_value (b, value);
}

static void
kd_json_add_strv (JsonBuilder *b, const char *member, char **values)
{
  json_builder_set_member_name (b, member);
  json_builder_begin_array (b);
  for (guint i = 0; values != NULL && values[i] != NULL; i++)
    json_builder_add_string_value (b, values[i]);
  json_builder_end_array (b);
}

static void
kd_json_add_double (JsonBuilder *b, const char *member, double value)
{
  json_builder_set_member_name (b, member);
  json_builder_add_double_value (b, value);
}

/* Placement members of a host: settings, GPUs, and what its desktops use. */
static void
kd_json_add_host_placement (JsonBuilder *b, KdBroker *broker, KdBrokerHost *h)
{
  KdStore *store = kd_broker_get_store (broker);
  g_auto(GStrv) labels = kd_broker_labels_split (h->row->labels);
  g_autoptr(GPtrArray) gpus = kd_store_host_gpu_list (store, h->row->id, NULL);
  g_autoptr(GPtrArray) vgpus = kd_store_vgpu_list (store, h->row->id, NULL);
  KdBrokerHostUse use;

  kd_broker_host_use (broker, h, &use);
  kd_json_add_bool (b, "maintenance", h->row->maintenance);
  kd_json_add_bool (b, "draining", h->row->draining);
  kd_json_add_str (b, "migration", h->row->migration ? h->row->migration : "live");
  kd_json_add_double (b, "cpu_ratio", h->row->cpu_ratio);
  kd_json_add_double (b, "memory_ratio", h->row->memory_ratio);
  kd_json_add_double (b, "disk_ratio", h->row->disk_ratio);
  kd_json_add_int (b, "memory_reserved_mib", h->row->memory_reserved / (1024 * 1024));
  kd_json_add_strv (b, "labels", labels);
  json_builder_set_member_name (b, "gpus");
  json_builder_begin_array (b);
  for (guint i = 0; gpus != NULL && i < gpus->len; i++)
    {
      KdHostGpuRow *g = gpus->pdata[i];
      g_auto(GStrv) fns = g_strsplit (g->addresses, ",", -1);
      g_auto(GStrv) types = kd_broker_labels_split (g->mdev_types);
      g_autoptr(KdDesktopRow) d = g->desktop_id ? kd_store_desktop_get (store, g->desktop_id, NULL) : NULL;

      json_builder_begin_object (b);
      kd_json_add_strv (b, "addresses", fns);
      kd_json_add_str (b, "product", g->product);
      kd_json_add_str (b, "driver", g->driver);
      kd_json_add_int (b, "iommu_group", g->iommu_group);
      kd_json_add_strv (b, "mdev_types", types);
      kd_json_add_str (b, "desktop", d ? d->name : NULL);
      /* Its vGPU types with instances and use, and the vGPUs on it. */
      json_builder_set_member_name (b, "mdevs");
      json_builder_begin_array (b);
      for (guint k = 0; g->mdevs != NULL && k < g->mdevs->len; k++)
        {
          KdGpuMdevTypeRow *t = g->mdevs->pdata[k];
          gint64 used = 0;
          for (guint v = 0; vgpus != NULL && v < vgpus->len; v++)
            {
              KdVgpuRow *vr = vgpus->pdata[v];
              used += vr->gpu_id == g->id && g_str_equal (vr->type_id, t->type_id);
            }
          json_builder_begin_object (b);
          kd_json_add_str (b, "type", t->type_id);
          kd_json_add_str (b, "name", t->name);
          kd_json_add_str (b, "device_api", t->device_api);
          kd_json_add_int (b, "instances", t->instances);
          kd_json_add_int (b, "used", used);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      json_builder_set_member_name (b, "vgpus");
      json_builder_begin_array (b);
      for (guint v = 0; vgpus != NULL && v < vgpus->len; v++)
        {
          KdVgpuRow *vr = vgpus->pdata[v];
          g_autoptr(KdDesktopRow) vd = NULL;
          if (vr->gpu_id != g->id)
            continue;
          vd = kd_store_desktop_get (store, vr->desktop_id, NULL);
          json_builder_begin_object (b);
          kd_json_add_str (b, "uuid", vr->uuid);
          kd_json_add_str (b, "type", vr->type_id);
          kd_json_add_str (b, "desktop", vd ? vd->name : NULL);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "use");
  json_builder_begin_object (b);
  kd_json_add_int (b, "vcpus", use.vcpus);
  kd_json_add_int (b, "vcpus_limit", use.vcpus_limit);
  kd_json_add_int (b, "memory_bytes", use.memory_bytes);
  kd_json_add_int (b, "memory_limit", use.memory_limit);
  kd_json_add_int (b, "disk_bytes", use.disk_bytes);
  kd_json_add_int (b, "disk_limit", use.disk_limit);
  json_builder_end_object (b);
}

JsonNode *
kd_api_json_host (KdBroker *broker, KdBrokerHost *h)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  const KdHvCapacity *c = &h->capacity;
  const char *accel = NULL;

  if (h->have_capacity && c->domain_type)
    accel = g_str_equal (c->domain_type, "qemu") ? "tcg" : c->domain_type;
  json_builder_begin_object (b);
  kd_json_add_str (b, "name", h->row->name);
  kd_json_add_str (b, "uri", h->row->uri);
  kd_json_add_str (b, "state", h->state);
  kd_json_add_bool (b, "simulated", kd_hv_host_is_simulated (h->hv) ||
                    g_str_has_prefix (h->row->uri, "test:"));
  kd_json_add_str (b, "accel", accel);
  kd_json_add_str (b, "accel_reason", h->have_capacity ? c->accel_reason : NULL);
  kd_json_add_str (b, "arch", h->have_capacity ? c->arch : NULL);
  kd_json_add_int (b, "cpus", h->have_capacity ? c->cpus : 0);
  kd_json_add_int (b, "memory_bytes", h->have_capacity ? c->memory_bytes : 0);
  kd_json_add_int (b, "free_memory_bytes", h->have_capacity ? c->free_memory_bytes : 0);
  kd_json_add_bool (b, "uefi", h->have_capacity && c->uefi);
  json_builder_set_member_name (b, "pool");
  json_builder_begin_object (b);
  kd_json_add_str (b, "name", kd_broker_get_config (broker)->storage_pool);
  kd_json_add_int (b, "capacity", h->have_capacity ? c->pool_capacity : -1);
  kd_json_add_int (b, "allocation", h->have_capacity ? c->pool_allocation : -1);
  kd_json_add_int (b, "available", h->have_capacity ? c->pool_available : -1);
  json_builder_end_object (b);
  kd_json_add_str (b, "hostname", h->have_capacity ? c->hostname : NULL);
  kd_json_add_str (b, "hypervisor", h->have_capacity ? c->hypervisor : NULL);
  kd_json_add_str (b, "libvirt_version", h->have_capacity ? c->libvirt_version : NULL);
  kd_json_add_str (b, "last_error", h->last_error);
  kd_json_add_str (b, "graphics_listen", h->row->graphics_listen);
  kd_json_add_str (b, "console_access", h->row->console_access);
  kd_json_add_str (b, "console_path", kd_broker_host_console_path (h));
  kd_json_add_host_placement (b, broker, h);
  kd_json_add_int (b, "desktops", kd_broker_host_desktop_count (broker, h));
  kd_json_add_time (b, "created_at", h->row->created_at);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

JsonNode *
kd_api_json_image (KdBroker *broker, KdImageRow *row)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  KdStore *store = kd_broker_get_store (broker);
  g_autoptr(GPtrArray) vols = kd_store_image_volume_list (store, row->id, NULL);

  json_builder_begin_object (b);
  kd_json_add_str (b, "name", row->name);
  kd_json_add_str (b, "format", row->format);
  kd_json_add_int (b, "virtual_size", row->virtual_size);
  kd_json_add_int (b, "file_size", row->file_size);
  kd_json_add_time (b, "created_at", row->created_at);
  kd_json_add_int (b, "desktops", kd_store_desktop_count_by_image (store, row->id, NULL));
  kd_json_add_int (b, "current_version", row->current_version ? row->current_version : 1);
  {
    g_autoptr(KdImageEditRow) edit = kd_store_image_edit_get (store, row->id, NULL);
    g_autoptr(KdDesktopRow) desk = edit && edit->desktop_id ? kd_store_desktop_get (store, edit->desktop_id, NULL) : NULL;
    json_builder_set_member_name (b, "editing");
    if (edit == NULL)
      json_builder_add_null_value (b);
    else
      {
        json_builder_begin_object (b);
        kd_json_add_int (b, "version", edit->version);
        kd_json_add_str (b, "desktop", desk ? desk->name : NULL);
        kd_json_add_str (b, "actor", edit->actor);
        kd_json_add_time (b, "since", edit->created_at);
        json_builder_end_object (b);
      }
  }
  json_builder_set_member_name (b, "volumes");
  json_builder_begin_array (b);
  for (guint i = 0; vols && i < vols->len; i++)
    {
      KdImageVolumeRow *v = vols->pdata[i];
      KdBrokerHost *h = kd_broker_host_by_id (broker, v->host_id);
      json_builder_begin_object (b);
      kd_json_add_str (b, "host", h ? h->row->name : NULL);
      kd_json_add_int (b, "version", v->version ? v->version : 1);
      kd_json_add_str (b, "volume", v->volume);
      kd_json_add_str (b, "path", v->path);
      kd_json_add_str (b, "state", v->state);
      kd_json_add_str (b, "error", v->error);
      kd_json_add_bool (b, "simulated", v->simulated);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

JsonNode *
kd_api_json_template (KdTemplateRow *row)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  kd_json_add_str (b, "name", row->name);
  kd_json_add_int (b, "vcpus", row->vcpus);
  kd_json_add_int (b, "memory_mib", row->memory_mib);
  kd_json_add_int (b, "disk_gib", row->disk_gib);
  kd_json_add_str (b, "display", row->display);
  kd_json_add_str (b, "network", row->network);
  kd_json_add_str (b, "firmware", row->firmware);
  kd_json_add_int (b, "rdp_port", row->rdp_port);
  kd_json_add_int (b, "gpus", row->gpus);
  kd_json_add_str (b, "gpu_mdev", row->gpu_mdev != NULL && *row->gpu_mdev != '\0' ? row->gpu_mdev : NULL);
  kd_json_add_time (b, "created_at", row->created_at);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

JsonNode *
kd_api_json_desktop (KdBroker *broker, KdDesktopRow *row)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  KdStore *store = kd_broker_get_store (broker);
  KdBrokerHost *h = kd_broker_host_by_id (broker, row->host_id);
  g_autoptr(KdImageRow) img = kd_store_image_get (store, row->image_id, NULL);
  g_autoptr(KdTemplateRow) tpl = kd_store_template_get (store, row->template_id, NULL);

  json_builder_begin_object (b);
  kd_json_add_str (b, "name", row->name);
  kd_json_add_str (b, "state", row->state);
  kd_json_add_str (b, "state_reason", row->state_reason);
  kd_json_add_str (b, "host", h ? h->row->name : NULL);
  kd_json_add_str (b, "image", img ? img->name : NULL);
  kd_json_add_str (b, "template", tpl ? tpl->name : NULL);
  kd_json_add_str (b, "domain", row->domain);
  kd_json_add_str (b, "uuid", row->uuid);
  json_builder_set_member_name (b, "overlay");
  json_builder_begin_object (b);
  kd_json_add_str (b, "volume", row->overlay_volume);
  kd_json_add_str (b, "path", row->overlay_path);
  json_builder_end_object (b);
  {
    g_autoptr(KdPoolRow) pool = row->pool_id ? kd_store_pool_get (store, row->pool_id, NULL) : NULL;
    g_autoptr(KdUserRow) user = row->user_id ? kd_store_user_get (store, row->user_id, NULL) : NULL;
    kd_json_add_str (b, "pool", pool ? pool->name : NULL);
    kd_json_add_str (b, "user", user ? user->name : NULL);
  }
  kd_json_add_time (b, "assigned_at", row->assigned_at);
  kd_json_add_int (b, "image_version", row->image_version ? row->image_version : 1);
  kd_json_add_bool (b, "needs_reset", row->needs_reset);
  json_builder_set_member_name (b, "session");
  json_builder_begin_object (b);
  kd_json_add_bool (b, "connected", row->connected_since > 0);
  kd_json_add_time (b, "connected_since", row->connected_since);
  kd_json_add_time (b, "last_seen", row->last_seen);
  kd_json_add_time (b, "disconnected_at", row->disconnected_at);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "console");
  json_builder_begin_object (b);
  {
    GPtrArray *viewers = kd_broker_viewer_list (broker, row->id);
    guint64 live_in = 0, live_out = 0;

    /* Totals: closed consoles (stored) plus the open ones so far. */
    for (guint i = 0; viewers != NULL && i < viewers->len; i++)
      {
        KdBrokerViewer *v = viewers->pdata[i];
        guint64 in = 0, out = 0;
        if (v->handle != NULL)
          kd_api_console_counters (v->handle, &in, &out);
        live_in += in;
        live_out += out;
      }
    kd_json_add_str (b, "mode", kd_broker_desktop_console_mode (broker, row));
    kd_json_add_int (b, "connections", row->console_connections);
    kd_json_add_int (b, "bytes_in", row->console_bytes_in + (gint64) live_in);
    kd_json_add_int (b, "bytes_out", row->console_bytes_out + (gint64) live_out);
    json_builder_set_member_name (b, "viewers");
    json_builder_begin_array (b);
    for (guint i = 0; viewers != NULL && i < viewers->len; i++)
      {
        KdBrokerViewer *v = viewers->pdata[i];
        guint64 in = 0, out = 0;
        json_builder_begin_object (b);
        kd_json_add_str (b, "kind", v->kind);
        kd_json_add_str (b, "client", v->client);
        kd_json_add_str (b, "user", v->user);
        kd_json_add_time (b, "since", v->since);
        if (v->handle != NULL)
          {
            kd_api_console_counters (v->handle, &in, &out);
            kd_json_add_int (b, "bytes_in", (gint64) in);
            kd_json_add_int (b, "bytes_out", (gint64) out);
          }
        json_builder_end_object (b);
      }
    json_builder_end_array (b);
  }
  json_builder_end_object (b);
  kd_json_add_bool (b, "busy", kd_broker_desktop_is_busy (broker, row->id));
  kd_json_add_str (b, "operation", kd_broker_desktop_operation (broker, row->id));
  {
    const KdDisplayProc *dp = kd_broker_display_get (broker, row->id);
    json_builder_set_member_name (b, "display_process");
    if (dp == NULL)
      json_builder_add_null_value (b);
    else
      {
        KdBrokerDisplayInfo info;
        kd_broker_display_info (dp, &info);
        json_builder_begin_object (b);
        kd_json_add_str (b, "state", info.state);
        kd_json_add_str (b, "pid", info.pid);
        kd_json_add_int (b, "port", info.port);
        kd_json_add_str (b, "listen", info.listen);
        kd_json_add_int (b, "restarts", info.restarts);
        kd_json_add_str (b, "last_error", info.last_error);
        json_builder_end_object (b);
      }
  }
  kd_json_add_time (b, "created_at", row->created_at);
  kd_json_add_time (b, "updated_at", row->updated_at);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

JsonNode *
kd_api_json_event (KdEventRow *row)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  kd_json_add_int (b, "id", row->id);
  kd_json_add_time (b, "time", row->time);
  kd_json_add_str (b, "object_type", row->object_type);
  kd_json_add_str (b, "object_name", row->object_name);
  kd_json_add_str (b, "actor", row->actor);
  kd_json_add_str (b, "action", row->action);
  kd_json_add_str (b, "from_state", row->from_state);
  kd_json_add_str (b, "to_state", row->to_state);
  kd_json_add_str (b, "message", row->message);
  kd_json_add_str (b, "pool", row->pool);
  kd_json_add_str (b, "user", row->user);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

JsonNode *
kd_api_json_reconcile (const KdReconcileReport *r)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  kd_json_add_time (b, "last_run", r->last_run);
  kd_json_add_bool (b, "running", r->running);
  json_builder_set_member_name (b, "orphans");
  json_builder_begin_array (b);
  for (guint i = 0; i < r->orphans->len; i++)
    {
      KdOrphan *o = r->orphans->pdata[i];
      json_builder_begin_object (b);
      kd_json_add_str (b, "host", o->host);
      kd_json_add_str (b, "kind", o->kind);
      kd_json_add_str (b, "name", o->name);
      kd_json_add_str (b, "detail", o->detail);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "problems");
  json_builder_begin_array (b);
  for (guint i = 0; i < r->problems->len; i++)
    {
      KdProblem *p = r->problems->pdata[i];
      json_builder_begin_object (b);
      kd_json_add_str (b, "host", p->host);
      kd_json_add_str (b, "desktop", p->desktop);
      kd_json_add_str (b, "problem", p->message);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

JsonNode *
kd_api_json_user (KdBroker *broker, KdUserRow *row)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(GPtrArray) groups = kd_store_user_get_groups (kd_broker_get_store (broker), row->id, NULL);

  json_builder_begin_object (b);
  kd_json_add_str (b, "name", row->name);
  kd_json_add_str (b, "role", row->role);
  json_builder_set_member_name (b, "groups");
  json_builder_begin_array (b);
  for (guint i = 0; groups && i < groups->len; i++)
    json_builder_add_string_value (b, ((KdGroupRow *) groups->pdata[i])->name);
  json_builder_end_array (b);
  kd_json_add_time (b, "created_at", row->created_at);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

JsonNode *
kd_api_json_group (KdBroker *broker, KdGroupRow *row)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  KdStore *store = kd_broker_get_store (broker);
  g_autoptr(GPtrArray) users = kd_store_user_list (store, NULL);

  json_builder_begin_object (b);
  kd_json_add_str (b, "name", row->name);
  json_builder_set_member_name (b, "members");
  json_builder_begin_array (b);
  for (guint i = 0; users && i < users->len; i++)
    {
      KdUserRow *u = users->pdata[i];
      g_autoptr(GPtrArray) groups = kd_store_user_get_groups (store, u->id, NULL);
      for (guint k = 0; groups && k < groups->len; k++)
        if (((KdGroupRow *) groups->pdata[k])->id == row->id)
          json_builder_add_string_value (b, u->name);
    }
  json_builder_end_array (b);
  kd_json_add_time (b, "created_at", row->created_at);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

static void
kd_json_add_names (JsonBuilder *b, KdBroker *broker, const char *member, GArray *ids, const char *kind)
{
  KdStore *store = kd_broker_get_store (broker);

  json_builder_set_member_name (b, member);
  json_builder_begin_array (b);
  for (guint i = 0; ids && i < ids->len; i++)
    {
      gint64 id = g_array_index (ids, gint64, i);
      if (g_str_equal (kind, "user"))
        {
          g_autoptr(KdUserRow) u = kd_store_user_get (store, id, NULL);
          if (u)
            json_builder_add_string_value (b, u->name);
        }
      else if (g_str_equal (kind, "group"))
        {
          g_autoptr(KdGroupRow) g = kd_store_group_get (store, id, NULL);
          if (g)
            json_builder_add_string_value (b, g->name);
        }
      else
        {
          KdBrokerHost *h = kd_broker_host_by_id (broker, id);
          if (h)
            json_builder_add_string_value (b, h->row->name);
        }
    }
  json_builder_end_array (b);
}

/**
 * kd_api_json_pool:
 * @full: with entitlements and hosts (for admins)
 */
JsonNode *
kd_api_json_pool (KdBroker *broker, KdPoolRow *row, gboolean full)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  KdStore *store = kd_broker_get_store (broker);
  g_autoptr(KdImageRow) img = kd_store_image_get (store, row->image_id, NULL);
  g_autoptr(KdTemplateRow) tpl = kd_store_template_get (store, row->template_id, NULL);
  KdPoolCounts c;

  kd_broker_pool_counts (broker, row->id, &c);
  json_builder_begin_object (b);
  kd_json_add_str (b, "name", row->name);
  kd_json_add_str (b, "mode", row->mode);
  kd_json_add_str (b, "image", img ? img->name : NULL);
  kd_json_add_str (b, "template", tpl ? tpl->name : NULL);
  kd_json_add_int (b, "size", row->size);
  kd_json_add_int (b, "warm", row->warm);
  kd_json_add_int (b, "idle_timeout", row->idle_timeout);
  kd_json_add_int (b, "disconnect_timeout", row->disconnect_timeout);
  kd_json_add_bool (b, "maintenance", row->maintenance);
  kd_json_add_str (b, "console_mode", row->console_mode ? row->console_mode : "takeover");
  kd_json_add_str (b, "placement", row->placement ? row->placement : "spread");
  {
    g_auto(GStrv) labels = kd_broker_labels_split (row->host_labels);
    kd_json_add_strv (b, "host_labels", labels);
  }
  if (full)
    {
      g_autoptr(GArray) users = kd_store_pool_get_users (store, row->id, NULL);
      g_autoptr(GArray) groups = kd_store_pool_get_groups (store, row->id, NULL);
      g_autoptr(GArray) hosts = kd_store_pool_get_hosts (store, row->id, NULL);
      kd_json_add_names (b, broker, "users", users, "user");
      kd_json_add_names (b, broker, "groups", groups, "group");
      kd_json_add_names (b, broker, "hosts", hosts, "host");
    }
  json_builder_set_member_name (b, "desktops");
  json_builder_begin_object (b);
  kd_json_add_int (b, "total", c.total);
  kd_json_add_int (b, "ready", c.ready);
  kd_json_add_int (b, "assigned", c.assigned);
  kd_json_add_int (b, "connected", c.connected);
  kd_json_add_int (b, "provisioning", c.provisioning);
  kd_json_add_int (b, "error", c.error);
  json_builder_end_object (b);
  kd_json_add_time (b, "created_at", row->created_at);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}
