/*
 * test-name.c: the names operators give to objects, and range checks.
 */
#include "common/kd-error.h"
#include "common/kd-name.h"

static void
test_valid (void)
{
  static const char *ok[] = { "a", "0", "desktop-1", "hv2", "a-b-c", "x123",
    "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc" /* 63 */ };
  for (gsize i = 0; i < G_N_ELEMENTS (ok); i++)
    {
      g_autoptr(GError) error = NULL;
      if (!kd_name_validate ("desktop", ok[i], &error))
        g_error ("'%s' refused: %s", ok[i], error->message);
    }
}

static void
test_invalid (void)
{
  static const struct { const char *name; const char *expect; } bad[] = {
    { "", "name is required" },
    { "-a", "invalid" },
    { "A", "invalid" },
    { "a_b", "invalid" },
    { "a b", "invalid" },
    { "a/b", "invalid" },
    { "a.b", "invalid" },
    { "ä", "invalid" },
    { "a\nb", "invalid" },
    { "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd" /* 64 */, "at most 63" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_assert_false (kd_name_validate ("desktop", bad[i].name, &error));
      g_assert_error (error, KD_ERROR, KD_ERROR_INVALID);
      if (strstr (error->message, bad[i].expect) == NULL)
        g_error ("'%s': message '%s' lacks '%s'", bad[i].name, error->message, bad[i].expect);
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
    }
  {
    g_autoptr(GError) error = NULL;
    g_assert_false (kd_name_validate ("host", NULL, &error));
    g_assert_nonnull (strstr (error->message, "a host name is required"));
  }
}

static void
test_invalid_utf8_message (void)
{
  g_autoptr(GError) error = NULL;
  /* Bytes from the wire that are not UTF-8 must not reach a JSON answer
   * as they are. */
  g_assert_false (kd_name_validate ("image", "a\xff\xfe", &error));
  g_assert_true (g_utf8_validate (error->message, -1, NULL));
}

static void
test_range (void)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (kd_range_check_int64 ("vcpus", 1, 1, 256, NULL));
  g_assert_true (kd_range_check_int64 ("vcpus", 256, 1, 256, NULL));
  g_assert_false (kd_range_check_int64 ("vcpus", 0, 1, 256, &error));
  g_assert_cmpstr (error->message, ==, "vcpus must be between 1 and 256, not 0");
  g_clear_error (&error);
  g_assert_false (kd_range_check_int64 ("vcpus", G_MAXINT64, 1, 256, &error));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/name/valid", test_valid);
  g_test_add_func ("/name/invalid", test_invalid);
  g_test_add_func ("/name/invalid-utf8-message", test_invalid_utf8_message);
  g_test_add_func ("/name/range", test_range);
  return g_test_run ();
}
