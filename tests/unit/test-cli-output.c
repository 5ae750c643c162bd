/*
 * test-cli-output.c: what the kvmdesk CLI prints from server answers:
 * sizes, tables, "key: value" shows, and the one sentence it makes of an
 * error answer. No network: answers are given as bytes.
 */
#include <string.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "cli/kd-cli-format.h"
#include "cli/kd-cli-http.h"

static JsonNode *
parse (const char *text)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;

  json_parser_load_from_data (parser, text, -1, &error);
  g_assert_no_error (error);
  return json_node_copy (json_parser_get_root (parser));
}

static void
test_size (void)
{
  static const struct { gint64 bytes; const char *text; } cases[] = {
    { 0, "0 B" },
    { 1023, "1023 B" },
    { 1024, "1 KiB" },
    { 1536, "1.5 KiB" },
    { 64LL << 20, "64 MiB" },
    { (3LL << 30) + (1LL << 29), "3.5 GiB" },
    { 10LL << 30, "10 GiB" },
    { 1234567, "1.2 MiB" },
    { 5LL << 40, "5 TiB" },
    { -1, "-" },
    { 196616, "192 KiB" },
    { 1023 * 1024 + 1, "1023 KiB" },
    { G_MAXINT64, "8.0 EiB" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *text = kd_cli_format_size (cases[i].bytes);

      g_assert_cmpstr (text, ==, cases[i].text);
    }
}

static void
test_sanitize (void)
{
  g_autofree char *a = kd_cli_sanitize ("evil\x1b[31mred\nline\tx");
  g_autofree char *b = kd_cli_sanitize ("caf\xc3\xa9 \xe2\x80\xa6");
  g_autofree char *c = kd_cli_sanitize ("bad\xff utf8");
  g_autofree char *d = kd_cli_sanitize (NULL);
  g_autofree char *e = kd_cli_sanitize ("c1\xc2\x9bx");

  g_assert_cmpstr (a, ==, "evil?[31mred?line?x");
  g_assert_cmpstr (b, ==, "caf\xc3\xa9 \xe2\x80\xa6");
  g_assert_true (g_utf8_validate (c, -1, NULL));
  g_assert_null (strchr (c, '\xff'));
  g_assert_cmpstr (d, ==, "-");
  g_assert_cmpstr (e, ==, "c1?x");
}

static void
test_lookup (void)
{
  g_autoptr(JsonNode) node = parse ("{\"name\": \"h1\", \"cpus\": 4, \"ok\": true, \"none\": null,"
                                    " \"pool\": {\"available\": 1073741824},"
                                    " \"tags\": [\"a\", \"b\"], \"f\": 2.0, \"s\": \"x\"}");
  g_autofree char *name = kd_cli_json_text (node, "name");
  g_autofree char *cpus = kd_cli_json_text (node, "cpus");
  g_autofree char *ok = kd_cli_json_text (node, "ok");
  g_autofree char *none = kd_cli_json_text (node, "none");
  g_autofree char *missing = kd_cli_json_text (node, "missing.deeper");
  g_autofree char *avail = kd_cli_json_size (node, "pool.available");
  g_autofree char *not_a_size = kd_cli_json_size (node, "s");
  g_autofree char *tags = kd_cli_json_text (node, "tags");
  g_autofree char *through_scalar = kd_cli_json_text (node, "name.x");
  gint64 v = 0;

  g_assert_cmpstr (name, ==, "h1");
  g_assert_cmpstr (cpus, ==, "4");
  g_assert_cmpstr (ok, ==, "yes");
  g_assert_cmpstr (none, ==, "-");
  g_assert_cmpstr (missing, ==, "-");
  g_assert_cmpstr (avail, ==, "1 GiB");
  g_assert_cmpstr (not_a_size, ==, "x");
  g_assert_cmpstr (tags, ==, "a,b");
  g_assert_cmpstr (through_scalar, ==, "-");
  g_assert_true (kd_cli_json_int (node, "f", &v));
  g_assert_cmpint (v, ==, 2);
  g_assert_false (kd_cli_json_int (node, "s", &v));
}

static void
test_table (void)
{
  static const char *const headers[] = { "NAME", "STATE", "URI", NULL };
  static const char *const row1[] = { "local", "up", "qemu:///system", NULL };
  static const char *const row2[] = { "h-two-long", "connecting", NULL };
  g_autoptr(KdCliTable) table = kd_cli_table_new (headers);
  g_autofree char *text = NULL;

  kd_cli_table_add_row (table, row1);
  kd_cli_table_add_row (table, row2);   /* a missing cell prints as "-" */
  text = kd_cli_table_render (table);
  g_assert_cmpstr (text, ==,
                   "NAME        STATE       URI\n"
                   "local       up          qemu:///system\n"
                   "h-two-long  connecting  -\n");
}

static void
test_show (void)
{
  g_autoptr(JsonNode) node = parse (
    "{\"name\": \"img\", \"virtual_size\": 67108864, \"created_at\": null,"
    " \"volumes\": [{\"host\": \"h1\", \"state\": \"ready\"}], \"tags\": [], \"empty\": {}}");
  g_autofree char *text = kd_cli_format_show (node);

  g_assert_cmpstr (text, ==,
                   "name:             img\n"
                   "virtual_size:     64 MiB (67108864 bytes)\n"
                   "created_at:       -\n"
                   "volumes[0].host:  h1\n"
                   "volumes[0].state: ready\n"
                   "tags:             -\n"
                   "empty:            -\n");
}

static void
test_answer_ok (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) answer = NULL;
  const char *body = "[{\"name\": \"d1\"}]";

  g_assert_true (kd_cli_http_read_answer ("http://x", 200, body, strlen (body), &answer, &error));
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_ARRAY (answer));
  g_clear_pointer (&answer, json_node_unref);

  /* 204: no body, no answer */
  g_assert_true (kd_cli_http_read_answer ("http://x", 204, "", 0, &answer, &error));
  g_assert_null (answer);
  g_assert_true (kd_cli_http_read_answer ("http://x", 204, "", 0, NULL, &error));
}

static void
test_answer_errors (void)
{
  static const struct { long status; const char *body; const char *message; } cases[] = {
    { 404, "{\"error\": \"desktop 'd9' does not exist\", \"code\": \"not_found\"}",
      "desktop 'd9' does not exist" },
    { 409, "{\"error\": \"host 'h1' has desktops\", \"code\": \"busy\"}",
      "host 'h1' has desktops" },
    { 502, "<html>Bad gateway</html>",
      "http://x:1 answered HTTP 502 Bad Gateway without an error message" },
    { 500, "", "http://x:1 answered HTTP 500 Internal Server Error without an error message" },
    { 418, "{\"error\": 5}", "http://x:1 answered HTTP 418 without an error message" },
    { 400, "[\"error\"]", "http://x:1 answered HTTP 400 Bad Request without an error message" },
    { 301, "", "http://x:1 answered with a redirection (HTTP 301): is this URL kvmdeskd?" },
    { 200, "<html>", "the answer from http://x:1 (HTTP 200) is not JSON: is this URL kvmdeskd?" },
    { 200, "  {\"a\": \"\xff\"}",
      "the answer from http://x:1 (HTTP 200) is JSON with invalid UTF-8 in it (a server bug)" },
    { 200, "\xff\xfe<html>", "the answer from http://x:1 (HTTP 200) is not JSON: is this URL kvmdeskd?" },
    /* json-glib's own words follow the ": " (checked as a prefix only) */
    { 200, "[1, 2", "the answer from http://x:1 (HTTP 200) is broken JSON (a server bug): " },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(JsonNode) answer = NULL;

      g_assert_false (kd_cli_http_read_answer ("http://x:1", cases[i].status, cases[i].body,
                                               strlen (cases[i].body), &answer, &error));
      g_assert_nonnull (error);
      g_assert_true (error->domain == KD_CLI_HTTP_ERROR);
      if (cases[i].status != 200)
        g_assert_cmpint (error->code, ==, cases[i].status);
      else
        g_assert_cmpint (error->code, ==, KD_CLI_HTTP_ERROR_ANSWER);
      if (g_str_has_suffix (cases[i].message, ": "))
        {
          g_assert_true (g_str_has_prefix (error->message, cases[i].message));
          g_assert_cmpuint (strlen (error->message), >, strlen (cases[i].message));
        }
      else
        g_assert_cmpstr (error->message, ==, cases[i].message);
      g_assert_null (answer);
    }
}

static void
test_path_escape (void)
{
  g_autofree char *a = kd_cli_path_escape ("d1");
  g_autofree char *b = kd_cli_path_escape ("a/b?c&d e");

  g_assert_cmpstr (a, ==, "d1");
  g_assert_cmpstr (b, ==, "a%2Fb%3Fc%26d%20e");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cli/format/size", test_size);
  g_test_add_func ("/cli/format/sanitize-control-chars", test_sanitize);
  g_test_add_func ("/cli/format/json-lookup-odd-members", test_lookup);
  g_test_add_func ("/cli/format/table-aligned", test_table);
  g_test_add_func ("/cli/format/show-flattened", test_show);
  g_test_add_func ("/cli/answer/ok-and-empty", test_answer_ok);
  g_test_add_func ("/cli/answer/error-sentences", test_answer_errors);
  g_test_add_func ("/cli/answer/path-escape", test_path_escape);
  return g_test_run ();
}
