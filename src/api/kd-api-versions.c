/*
 * kd-api-versions.c: the golden-image cycle over REST: edit sessions,
 * publishing, versions, rollback (admin only; routed from kd_api_images).
 */
#include "kd-api-priv.h"

#include "common/kd-error.h"
#include "common/kd-json.h"
#include "common/kd-time.h"

#define SEG(i)   (req->n_segs > (i) ? req->segs[i] : NULL)
#define IS(m)    (g_str_equal (req->method, (m)))

static void
kd_image_edited (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiRequest *req = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) desk = kd_broker_image_edit_finish (req->server->broker, res, &error);

  if (desk == NULL)
    kd_api_respond_error (req, error);
  else
    kd_api_respond_json (req, 201, kd_api_json_desktop (req->server->broker, desk));
  kd_api_request_unref (req);
}

static void
kd_image_published (GObject *src, GAsyncResult *res, gpointer data)
{
  KdApiRequest *req = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageRow) img = kd_broker_image_publish_finish (req->server->broker, res, &error);

  if (img == NULL)
    kd_api_respond_error (req, error);
  else if (g_strcmp0 (SEG (4), "edit") == 0)
    kd_api_respond_empty (req, 204);
  else
    kd_api_respond_json (req, 200, kd_api_json_image (req->server->broker, img));
  kd_api_request_unref (req);
}

static JsonNode *
kd_api_json_version (KdBroker *broker, KdImageRow *img, KdImageVersionRow *v)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(GPtrArray) vols = kd_store_image_volume_list (kd_broker_get_store (broker), img->id, NULL);
  g_autofree char *created = kd_time_format (v->created_at);

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "version");
  json_builder_add_int_value (b, v->version);
  json_builder_set_member_name (b, "current");
  json_builder_add_boolean_value (b, v->version == img->current_version);
  json_builder_set_member_name (b, "format");
  json_builder_add_string_value (b, v->format);
  json_builder_set_member_name (b, "virtual_size");
  json_builder_add_int_value (b, v->virtual_size);
  json_builder_set_member_name (b, "file_size");
  json_builder_add_int_value (b, v->file_size);
  json_builder_set_member_name (b, "note");
  if (v->note)
    json_builder_add_string_value (b, v->note);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "actor");
  if (v->actor)
    json_builder_add_string_value (b, v->actor);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "created_at");
  if (created)
    json_builder_add_string_value (b, created);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "hosts");
  json_builder_begin_array (b);
  for (guint i = 0; vols && i < vols->len; i++)
    {
      KdImageVolumeRow *vol = vols->pdata[i];
      KdBrokerHost *h = kd_broker_host_by_id (broker, vol->host_id);
      if (vol->version == v->version && h)
        json_builder_add_string_value (b, h->row->name);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

void
kd_api_image_versions (KdApiRequest *req)
{
  KdBroker *b = req->server->broker;
  KdStore *store = kd_broker_get_store (b);
  g_autoptr(GError) error = NULL;
  const char *what = SEG (4);

  if (req->n_segs == 5 && IS ("GET") && g_str_equal (what, "versions"))
    {
      g_autoptr(KdImageRow) img = kd_store_image_get_by_name (store, SEG (3), &error);
      g_autoptr(GPtrArray) versions = NULL;
      JsonArray *arr;

      if (img == NULL || (versions = kd_store_image_version_list (store, img->id, &error)) == NULL)
        {
          kd_api_respond_error (req, error);
          return;
        }
      arr = json_array_new ();
      for (guint i = 0; i < versions->len; i++)
        json_array_add_element (arr, kd_api_json_version (b, img, versions->pdata[i]));
      kd_api_respond_list (req, arr);
      return;
    }
  if (!IS ("POST"))
    {
      kd_api_respond_errorf (req, 405, "invalid", "%s is not allowed on '%s'", req->method, req->path);
      return;
    }
  if (req->n_segs == 5 && g_str_equal (what, "edit"))
    {
      static const char *const allowed[] = { "template", "host", NULL };
      g_autoptr(JsonObject) obj = kd_api_body_object (req);
      const char *tpl = NULL, *host = NULL;

      if (obj == NULL)
        return;
      if (!kd_json_check_members (obj, allowed, &error) ||
          !kd_json_get_string (obj, "template", TRUE, &tpl, &error) ||
          !kd_json_get_string (obj, "host", FALSE, &host, &error))
        {
          kd_api_respond_error (req, error);
          return;
        }
      kd_broker_image_edit_async (b, SEG (3), host, tpl, req->user, kd_image_edited,
                                  kd_api_request_ref (req));
      kd_api_request_suspend (req);
    }
  else if (req->n_segs == 6 && g_str_equal (what, "edit") && g_strcmp0 (SEG (5), "cancel") == 0)
    {
      kd_broker_image_publish_async (b, SEG (3), FALSE, NULL, req->user, kd_image_published,
                                     kd_api_request_ref (req));
      kd_api_request_suspend (req);
    }
  else if (req->n_segs == 5 && g_str_equal (what, "publish"))
    {
      static const char *const allowed[] = { "note", NULL };
      const char *note = NULL;
      g_autoptr(JsonObject) obj = NULL;

      /* The body is optional. */
      if (req->body != NULL && req->body->len > 0)
        {
          obj = kd_api_body_object (req);
          if (obj == NULL)
            return;
          if (!kd_json_check_members (obj, allowed, &error) ||
              !kd_json_get_string (obj, "note", FALSE, &note, &error))
            {
              kd_api_respond_error (req, error);
              return;
            }
          if (note && strlen (note) > 1000)
            {
              kd_api_respond_errorf (req, 400, "invalid", "the note is longer than 1000 characters");
              return;
            }
        }
      kd_broker_image_publish_async (b, SEG (3), TRUE, note, req->user, kd_image_published,
                                     kd_api_request_ref (req));
      kd_api_request_suspend (req);
    }
  else if (req->n_segs == 5 && g_str_equal (what, "rollback"))
    {
      static const char *const allowed[] = { "version", NULL };
      g_autoptr(JsonObject) obj = kd_api_body_object (req);
      g_autoptr(KdImageRow) img = NULL;
      gint64 version = 0;

      if (obj == NULL)
        return;
      if (!kd_json_check_members (obj, allowed, &error) ||
          !kd_json_get_int (obj, "version", TRUE, &version, &error) ||
          (img = kd_broker_image_rollback (b, SEG (3), version, req->user, &error)) == NULL)
        {
          kd_api_respond_error (req, error);
          return;
        }
      kd_api_respond_json (req, 200, kd_api_json_image (b, img));
    }
  else
    kd_api_respond_errorf (req, 404, "not_found",
                           "unknown image action '%.40s' (use edit, edit/cancel, publish, versions or rollback)",
                           what);
}
