/*
 * test-json.c: the strict readers of JSON request bodies.
 */
#include "common/kd-error.h"
#include "common/kd-json.h"

static JsonObject *
parse (const char *text, GError **error)
{
  return kd_json_parse_object (text, strlen (text), error);
}

static void
test_refused_bodies (void)
{
  static const struct { const char *text; gsize len; const char *expect; } cases[] = {
    { "", 0, "body is required" },
    { "[1,2]", 5, "must be a JSON object" },
    { "\"x\"", 3, "must be a JSON object" },
    { "{\"a\":", 5, "not valid JSON" },
    { "{\"a\":\"\xff\"}", 9, "not valid UTF-8" },
    { "{\"name\":\"a\\u0000b\"}", 19, "NUL character" },
    /* json-glib also decodes an upper-case \U escape */
    { "{\"name\":\"a\\U0000b\"}", 19, "NUL character" },
    { "{\"a\":1}\0", 8, "NUL character" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(JsonObject) obj = kd_json_parse_object (cases[i].text, cases[i].len, &error);
      if (obj != NULL)
        g_error ("case %" G_GSIZE_FORMAT " was accepted", i);
      g_assert_error (error, KD_ERROR, KD_ERROR_INVALID);
      if (strstr (error->message, cases[i].expect) == NULL)
        g_error ("case %" G_GSIZE_FORMAT ": '%s' lacks '%s'", i, error->message, cases[i].expect);
    }
}

static void
test_escaped_backslash_is_not_nul (void)
{
  g_autoptr(GError) error = NULL;
  /* A literal backslash followed by the text u0000 is a fine value. */
  g_autoptr(JsonObject) obj = parse ("{\"a\":\"x\\\\u0000\"}", &error);
  const char *v = NULL;

  g_assert_no_error (error);
  g_assert_true (kd_json_get_string (obj, "a", TRUE, &v, &error));
  g_assert_cmpstr (v, ==, "x\\u0000");
}

static void
test_getters (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) obj = parse ("{\"s\":\"v\",\"i\":5,\"b\":true,\"n\":null,\"f\":1.5}", &error);
  const char *s = NULL;
  gint64 i = 0;
  gboolean b = FALSE;

  g_assert_no_error (error);
  g_assert_true (kd_json_get_string (obj, "s", TRUE, &s, &error));
  g_assert_cmpstr (s, ==, "v");
  g_assert_true (kd_json_get_int (obj, "i", TRUE, &i, &error));
  g_assert_cmpint (i, ==, 5);
  g_assert_true (kd_json_get_bool (obj, "b", TRUE, &b, &error));
  g_assert_true (b);
  /* Missing or null optional members leave the output alone. */
  s = "default";
  g_assert_true (kd_json_get_string (obj, "n", FALSE, &s, &error));
  g_assert_true (kd_json_get_string (obj, "missing", FALSE, &s, &error));
  g_assert_cmpstr (s, ==, "default");

  g_assert_false (kd_json_get_string (obj, "missing", TRUE, &s, &error));
  g_assert_cmpstr (error->message, ==, "field 'missing' is required");
  g_clear_error (&error);
  g_assert_false (kd_json_get_int (obj, "s", TRUE, &i, &error));
  g_assert_cmpstr (error->message, ==, "field 's' must be a whole number");
  g_clear_error (&error);
  g_assert_false (kd_json_get_int (obj, "f", TRUE, &i, &error));
  g_clear_error (&error);
  g_assert_false (kd_json_get_bool (obj, "i", TRUE, &b, &error));
  g_assert_cmpstr (error->message, ==, "field 'i' must be true or false");
  g_clear_error (&error);
  g_assert_false (kd_json_get_string (obj, "i", TRUE, &s, &error));
  g_assert_cmpstr (error->message, ==, "field 'i' must be a string");
}

static void
test_unknown_members (void)
{
  static const char *const allowed[] = { "name", "uri", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) ok = parse ("{\"name\":\"a\",\"uri\":\"b\"}", NULL);
  g_autoptr(JsonObject) bad = parse ("{\"name\":\"a\",\"url\":\"b\"}", NULL);

  g_assert_true (kd_json_check_members (ok, allowed, &error));
  g_assert_false (kd_json_check_members (bad, allowed, &error));
  g_assert_cmpstr (error->message, ==, "unknown field 'url' (accepted: name, uri)");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/json/refused-bodies", test_refused_bodies);
  g_test_add_func ("/json/escaped-backslash-is-not-nul", test_escaped_backslash_is_not_nul);
  g_test_add_func ("/json/getters", test_getters);
  g_test_add_func ("/json/unknown-members", test_unknown_members);
  return g_test_run ();
}
