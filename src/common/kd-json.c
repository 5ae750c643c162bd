/*
 * kd-json.c: strict JSON body readers. Input comes from the network: no
 * assertion here may depend on it.
 */
#include "kd-json.h"
#include "kd-error.h"

#include <math.h>

/* json-glib hands strings out as C strings: a "\u0000" escape would cut
 * a value short ("a\u0000b" read as "a"). Such bodies are refused. */
static gboolean
kd_json_has_nul_escape (const char *data, gsize len)
{
  gboolean in_string = FALSE;

  for (gsize i = 0; i < len; i++)
    {
      if (!in_string)
        {
          if (data[i] == '"')
            in_string = TRUE;
          continue;
        }
      if (data[i] == '"')
        in_string = FALSE;
      else if (data[i] == '\\' && i + 1 < len)
        {
          if ((data[i + 1] == 'u' || data[i + 1] == 'U') && i + 5 < len && data[i + 2] == '0' && data[i + 3] == '0' &&
              data[i + 4] == '0' && data[i + 5] == '0')
            return TRUE;
          i++;              /* skip the escaped character */
        }
    }
  return FALSE;
}

/**
 * kd_json_parse_object:
 * Returns: (transfer full): the top-level object of @data, or %NULL with
 * %KD_ERROR_INVALID when @data is not a JSON object.
 */
JsonObject *
kd_json_parse_object (const char *data, gsize len, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new_immutable ();
  g_autoptr(GError) local = NULL;
  JsonNode *root;

  if (data == NULL || len == 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "a JSON object body is required");
      return NULL;
    }
  if (memchr (data, '\0', len) != NULL || kd_json_has_nul_escape (data, len))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "the request body contains a NUL character, which no field accepts");
      return NULL;
    }
  if (!g_utf8_validate (data, len, NULL))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "the request body is not valid UTF-8");
      return NULL;
    }
  if (!json_parser_load_from_data (parser, data, len, &local))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "the request body is not valid JSON: %s",
                   local->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "the request body must be a JSON object");
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

/**
 * kd_json_check_members:
 * @allowed: %NULL-terminated list of accepted member names
 *
 * Returns: %FALSE naming the first member not in @allowed (a typo in a
 * request must not be silently ignored).
 */
gboolean
kd_json_check_members (JsonObject *obj, const char *const *allowed, GError **error)
{
  JsonObjectIter iter;
  const char *name;
  JsonNode *node;

  json_object_iter_init (&iter, obj);
  while (json_object_iter_next (&iter, &name, &node))
    {
      if (!g_strv_contains (allowed, name))
        {
          g_autofree char *list = g_strjoinv (", ", (char **) allowed);
          g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                       "unknown field '%s' (accepted: %s)", name, list);
          return FALSE;
        }
    }
  return TRUE;
}

static JsonNode *
kd_json_member (JsonObject *obj, const char *member, gboolean required, GError **error)
{
  JsonNode *node = json_object_get_member (obj, member);

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    {
      if (required)
        g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "field '%s' is required", member);
      return NULL;
    }
  return node;
}

gboolean
kd_json_get_string (JsonObject *obj, const char *member, gboolean required,
                    const char **out, GError **error)
{
  g_autoptr(GError) local = NULL;
  JsonNode *node = kd_json_member (obj, member, required, &local);

  if (node == NULL)
    {
      if (local)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      return TRUE;
    }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "field '%s' must be a string", member);
      return FALSE;
    }
  *out = json_node_get_string (node);
  return TRUE;
}

gboolean
kd_json_get_int (JsonObject *obj, const char *member, gboolean required,
                 gint64 *out, GError **error)
{
  g_autoptr(GError) local = NULL;
  JsonNode *node = kd_json_member (obj, member, required, &local);

  if (node == NULL)
    {
      if (local)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      return TRUE;
    }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "field '%s' must be a whole number", member);
      return FALSE;
    }
  *out = json_node_get_int (node);
  return TRUE;
}

/* A number, whole or not (finite); *@out is left alone when absent. */
gboolean
kd_json_get_number (JsonObject *obj, const char *member, gboolean required,
                    double *out, GError **error)
{
  g_autoptr(GError) local = NULL;
  JsonNode *node = kd_json_member (obj, member, required, &local);
  GType type;

  if (node == NULL)
    {
      if (local)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      return TRUE;
    }
  type = JSON_NODE_HOLDS_VALUE (node) ? json_node_get_value_type (node) : G_TYPE_INVALID;
  if (type != G_TYPE_INT64 && type != G_TYPE_DOUBLE)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "field '%s' must be a number", member);
      return FALSE;
    }
  *out = type == G_TYPE_INT64 ? (double) json_node_get_int (node) : json_node_get_double (node);
  if (!isfinite (*out))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "field '%s' must be a finite number", member);
      return FALSE;
    }
  return TRUE;
}

gboolean
kd_json_get_bool (JsonObject *obj, const char *member, gboolean required,
                  gboolean *out, GError **error)
{
  g_autoptr(GError) local = NULL;
  JsonNode *node = kd_json_member (obj, member, required, &local);

  if (node == NULL)
    {
      if (local)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      return TRUE;
    }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "field '%s' must be true or false", member);
      return FALSE;
    }
  *out = json_node_get_boolean (node);
  return TRUE;
}

/**
 * kd_json_to_string:
 * Returns: (transfer full): compact JSON text of @node.
 */
char *
kd_json_to_string (JsonNode *node)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, node);
  return json_generator_to_data (gen, NULL);
}
