/*
 * kd-cli-format.c: the human side of the kvmdesk CLI's output.
 *
 * Everything printed here comes from the network, so every string is passed
 * through kd_cli_sanitize() (no terminal escape sequences from a server) and
 * a member that is missing or of an unexpected type prints as "-" instead of
 * failing: odd server output must never crash the client.
 */
#include "kd-cli-format.h"

#include <string.h>

/**
 * kd_cli_format_size:
 * @bytes: a size in bytes
 *
 * Returns: (transfer full): "512 B", "64 MiB", "1.5 GiB", "192 KiB": binary
 * units, one decimal only for values under 100 that are not whole. Negative
 * sizes print as "-".
 */
char *
kd_cli_format_size (gint64 bytes)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  double value = (double) bytes;
  guint unit = 0;

  if (bytes < 0)
    return g_strdup ("-");
  if (bytes < 1024)
    return g_strdup_printf ("%" G_GINT64_FORMAT " B", bytes);
  while (value >= 1024.0 && unit + 1 < G_N_ELEMENTS (units))
    {
      value /= 1024.0;
      unit++;
    }
  /* Whole values (the common case: sizes chosen by people) print without ".0". */
  if ((bytes & ((G_GINT64_CONSTANT (1) << (10 * unit)) - 1)) == 0)
    return g_strdup_printf ("%.0f %s", value, units[unit]);
  /* three digits are precise enough: "192 KiB", not "192.0 KiB" */
  if (value >= 99.95)
    return g_strdup_printf ("%.0f %s", value, units[unit]);
  return g_strdup_printf ("%.1f %s", value, units[unit]);
}

/**
 * kd_cli_sanitize:
 * @text: (nullable): text received from the server
 *
 * Returns: (transfer full): @text as valid UTF-8 with control characters
 * (C0, DEL, C1) replaced by '?', so that a name or message cannot move the
 * cursor or change the terminal. %NULL becomes "-".
 */
char *
kd_cli_sanitize (const char *text)
{
  g_autofree char *valid = NULL;
  GString *out;
  const char *p;

  if (text == NULL)
    return g_strdup ("-");
  valid = g_utf8_make_valid (text, -1);
  out = g_string_sized_new (strlen (valid));
  for (p = valid; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0))
        g_string_append_c (out, '?');
      else
        g_string_append_unichar (out, c);
    }
  return g_string_free (out, FALSE);
}

/**
 * kd_cli_json_lookup:
 * @node: (nullable): a JSON node
 * @path: member names separated by dots: "pool.available"
 *
 * Returns: (transfer none) (nullable): the node at @path, or %NULL when a
 * member is missing or a step is not an object.
 */
JsonNode *
kd_cli_json_lookup (JsonNode *node, const char *path)
{
  g_auto(GStrv) parts = g_strsplit (path, ".", -1);

  for (guint i = 0; parts[i] != NULL; i++)
    {
      if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
        return NULL;
      node = json_object_get_member (json_node_get_object (node), parts[i]);
    }
  return node;
}

static char *
scalar_text (JsonNode *node)
{
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return g_strdup ("-");
  if (JSON_NODE_HOLDS_VALUE (node))
    {
      GType type = json_node_get_value_type (node);

      if (type == G_TYPE_STRING)
        return kd_cli_sanitize (json_node_get_string (node));
      if (type == G_TYPE_INT64)
        return g_strdup_printf ("%" G_GINT64_FORMAT, json_node_get_int (node));
      if (type == G_TYPE_DOUBLE)
        return g_strdup_printf ("%g", json_node_get_double (node));
      if (type == G_TYPE_BOOLEAN)
        return g_strdup (json_node_get_boolean (node) ? "yes" : "no");
      return g_strdup ("?");
    }
  if (JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *array = json_node_get_array (node);
      GString *out = g_string_new (NULL);
      guint n = json_array_get_length (array);

      if (n == 0)
        return g_string_free (out, FALSE);
      for (guint i = 0; i < n; i++)
        {
          g_autofree char *item = scalar_text (json_array_get_element (array, i));

          if (i > 0)
            g_string_append (out, ",");
          g_string_append (out, item);
        }
      return g_string_free (out, FALSE);
    }
  return g_strdup ("{…}");
}

/**
 * kd_cli_json_text:
 * Returns: (transfer full): the member at @path as text for a person:
 * strings sanitized, numbers in decimal, booleans as yes/no, arrays of
 * scalars comma-separated, missing or null members as "-".
 */
char *
kd_cli_json_text (JsonNode *node, const char *path)
{
  return scalar_text (kd_cli_json_lookup (node, path));
}

/**
 * kd_cli_json_int:
 * Returns: %TRUE with *@out set when the member at @path is an integer
 * (a whole double is accepted too).
 */
gboolean
kd_cli_json_int (JsonNode *node, const char *path, gint64 *out)
{
  JsonNode *member = kd_cli_json_lookup (node, path);
  GType type;

  if (member == NULL || !JSON_NODE_HOLDS_VALUE (member))
    return FALSE;
  type = json_node_get_value_type (member);
  if (type == G_TYPE_INT64)
    {
      *out = json_node_get_int (member);
      return TRUE;
    }
  if (type == G_TYPE_DOUBLE)
    {
      double d = json_node_get_double (member);

      if (d >= -9.0e18 && d <= 9.0e18 && d == (double) (gint64) d)
        {
          *out = (gint64) d;
          return TRUE;
        }
    }
  return FALSE;
}

/**
 * kd_cli_json_size:
 * Returns: (transfer full): the integer member at @path (bytes) as a human
 * size, or its plain text when it is not an integer ("-" when missing).
 */
char *
kd_cli_json_size (JsonNode *node, const char *path)
{
  gint64 bytes;

  if (kd_cli_json_int (node, path, &bytes))
    return kd_cli_format_size (bytes);
  return kd_cli_json_text (node, path);
}

/**
 * kd_cli_json_pretty:
 * Returns: (transfer full): @node as indented JSON followed by a newline.
 */
char *
kd_cli_json_pretty (JsonNode *node)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autofree char *text = NULL;

  json_generator_set_pretty (gen, TRUE);
  json_generator_set_indent (gen, 2);
  json_generator_set_root (gen, node);
  text = json_generator_to_data (gen, NULL);
  return g_strconcat (text, "\n", NULL);
}

/* ---- tables -------------------------------------------------------------- */

struct _KdCliTable
{
  guint n_columns;
  GPtrArray *rows;   /* of GStrv, the first one the headers */
};

/**
 * kd_cli_table_new:
 * @headers: %NULL-terminated column titles
 */
KdCliTable *
kd_cli_table_new (const char *const *headers)
{
  KdCliTable *table = g_new0 (KdCliTable, 1);

  table->n_columns = g_strv_length ((char **) headers);
  table->rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  g_ptr_array_add (table->rows, g_strdupv ((char **) headers));
  return table;
}

/**
 * kd_cli_table_add_row_take:
 * @cells: (transfer full): %NULL-terminated cells; missing cells print as
 * "-", extra cells are dropped
 */
void
kd_cli_table_add_row_take (KdCliTable *table, char **cells)
{
  char **row = g_new0 (char *, table->n_columns + 1);
  guint n = cells != NULL ? g_strv_length (cells) : 0;

  for (guint i = 0; i < table->n_columns; i++)
    row[i] = i < n ? kd_cli_sanitize (cells[i]) : g_strdup ("-");
  g_strfreev (cells);
  g_ptr_array_add (table->rows, row);
}

/**
 * kd_cli_table_add_row:
 * @cells: %NULL-terminated cells, copied
 */
void
kd_cli_table_add_row (KdCliTable *table, const char *const *cells)
{
  kd_cli_table_add_row_take (table, g_strdupv ((char **) cells));
}

/**
 * kd_cli_table_render:
 * Returns: (transfer full): the table with columns aligned on character
 * width, two spaces apart, no trailing blanks.
 */
char *
kd_cli_table_render (KdCliTable *table)
{
  g_autofree gsize *widths = g_new0 (gsize, table->n_columns);
  GString *out = g_string_new (NULL);

  for (guint r = 0; r < table->rows->len; r++)
    {
      char **row = g_ptr_array_index (table->rows, r);

      for (guint c = 0; c < table->n_columns; c++)
        widths[c] = MAX (widths[c], (gsize) g_utf8_strlen (row[c], -1));
    }
  for (guint r = 0; r < table->rows->len; r++)
    {
      char **row = g_ptr_array_index (table->rows, r);
      gsize line_start = out->len;

      for (guint c = 0; c < table->n_columns; c++)
        {
          gsize w = g_utf8_strlen (row[c], -1);

          g_string_append (out, row[c]);
          if (c + 1 < table->n_columns)
            for (gsize pad = w; pad < widths[c] + 2; pad++)
              g_string_append_c (out, ' ');
        }
      /* A last column that is empty leaves blanks behind: trim them. */
      while (out->len > line_start && out->str[out->len - 1] == ' ')
        g_string_truncate (out, out->len - 1);
      g_string_append_c (out, '\n');
    }
  return g_string_free (out, FALSE);
}

void
kd_cli_table_free (KdCliTable *table)
{
  if (table == NULL)
    return;
  g_ptr_array_unref (table->rows);
  g_free (table);
}

/* ---- show: key: value ------------------------------------------------------ */

static gboolean
is_size_key (const char *key)
{
  static const char *const sizes[] = {
    "virtual_size", "file_size", "capacity", "allocation", "available", NULL
  };

  return g_str_has_suffix (key, "_bytes") || g_strv_contains (sizes, key);
}

static void
flatten (JsonNode *node, const char *prefix, const char *key, GPtrArray *keys, GPtrArray *values)
{
  if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
    {
      JsonObject *object = json_node_get_object (node);
      g_autoptr(GList) names = json_object_get_members (object);
      gboolean empty = TRUE;

      /* in the server's order: it puts name first */
      for (GList *l = names; l != NULL; l = l->next)
        {
          const char *name = l->data;
          JsonNode *member = json_object_get_member (object, name);
          g_autofree char *safe = kd_cli_sanitize (name);
          g_autofree char *path = prefix != NULL ? g_strconcat (prefix, ".", safe, NULL)
                                                 : g_strdup (safe);

          flatten (member, path, safe, keys, values);
          empty = FALSE;
        }
      if (empty && prefix != NULL)
        {
          g_ptr_array_add (keys, g_strdup (prefix));
          g_ptr_array_add (values, g_strdup ("-"));
        }
      return;
    }
  if (node != NULL && JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *array = json_node_get_array (node);
      guint n = json_array_get_length (array);
      gboolean scalars = TRUE;

      for (guint i = 0; i < n; i++)
        {
          JsonNode *e = json_array_get_element (array, i);

          if (JSON_NODE_HOLDS_OBJECT (e) || JSON_NODE_HOLDS_ARRAY (e))
            scalars = FALSE;
        }
      if (!scalars)
        {
          for (guint i = 0; i < n; i++)
            {
              g_autofree char *path = g_strdup_printf ("%s[%u]", prefix != NULL ? prefix : "", i);

              flatten (json_array_get_element (array, i), path, key, keys, values);
            }
          return;
        }
      g_ptr_array_add (keys, g_strdup (prefix != NULL ? prefix : "-"));
      g_ptr_array_add (values, n == 0 ? g_strdup ("-") : scalar_text (node));
      return;
    }

  g_ptr_array_add (keys, g_strdup (prefix != NULL ? prefix : "value"));
  if (key != NULL && is_size_key (key) && node != NULL && JSON_NODE_HOLDS_VALUE (node)
      && json_node_get_value_type (node) == G_TYPE_INT64)
    {
      g_autofree char *human = kd_cli_format_size (json_node_get_int (node));

      g_ptr_array_add (values, g_strdup_printf ("%s (%" G_GINT64_FORMAT " bytes)", human,
                                                json_node_get_int (node)));
    }
  else
    g_ptr_array_add (values, scalar_text (node));
}

/**
 * kd_cli_format_show:
 * @node: an object, as answered by GET /…/{name}
 *
 * Returns: (transfer full): one "key: value" line per leaf, nested objects
 * flattened with dots (pool.available), arrays of objects indexed
 * (volumes[0].host), sizes human-readable with the exact byte count.
 */
char *
kd_cli_format_show (JsonNode *node)
{
  g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func (g_free);
  GString *out = g_string_new (NULL);
  gsize width = 0;

  flatten (node, NULL, NULL, keys, values);
  for (guint i = 0; i < keys->len; i++)
    width = MAX (width, (gsize) g_utf8_strlen (g_ptr_array_index (keys, i), -1));
  for (guint i = 0; i < keys->len; i++)
    {
      const char *key = g_ptr_array_index (keys, i);
      const char *value = g_ptr_array_index (values, i);
      gsize w = g_utf8_strlen (key, -1);

      g_string_append (out, key);
      g_string_append_c (out, ':');
      for (gsize pad = w; pad < width + 1; pad++)
        g_string_append_c (out, ' ');
      g_string_append (out, value);
      g_string_append_c (out, '\n');
    }
  return g_string_free (out, FALSE);
}
