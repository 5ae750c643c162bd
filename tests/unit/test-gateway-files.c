/*
 * test-gateway-files.c: .vv and .rdp files for native viewers.
 */
#include "gateway/kd-gateway.h"

static KdGatewayVvSpec
base_spec (void)
{
  KdGatewayVvSpec spec = {
    .type = "vnc", .host = "192.0.2.7", .port = 5901, .tls_port = -1,
    .password = "Ab3dEf7h", .title = "office-1", .expires_at = 0,
  };
  return spec;
}

static GKeyFile *
parse (const char *text)
{
  GKeyFile *kf = g_key_file_new ();
  g_autoptr(GError) error = NULL;

  g_assert_true (g_key_file_load_from_data (kf, text, -1, G_KEY_FILE_KEEP_COMMENTS, &error));
  g_assert_no_error (error);
  return kf;
}

static void
test_vv_vnc (void)
{
  KdGatewayVvSpec spec = base_spec ();
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  g_autoptr(GKeyFile) kf = NULL;
  g_auto(GStrv) groups = NULL;
  g_autofree char *pw = NULL;

  spec.expires_at = G_GINT64_CONSTANT (1795000000) * G_USEC_PER_SEC;
  text = kd_gateway_vv_build (&spec, &error);
  g_assert_no_error (error);
  kf = parse (text);
  groups = g_key_file_get_groups (kf, NULL);
  g_assert_cmpuint (g_strv_length (groups), ==, 1);
  g_assert_cmpstr (groups[0], ==, "virt-viewer");
  g_assert_cmpstr (g_key_file_get_string (kf, "virt-viewer", "type", NULL), ==, "vnc");
  g_assert_cmpstr (g_key_file_get_string (kf, "virt-viewer", "host", NULL), ==, "192.0.2.7");
  g_assert_cmpint (g_key_file_get_integer (kf, "virt-viewer", "port", NULL), ==, 5901);
  g_assert_false (g_key_file_has_key (kf, "virt-viewer", "tls-port", NULL));
  pw = g_key_file_get_string (kf, "virt-viewer", "password", NULL);
  g_assert_cmpstr (pw, ==, "Ab3dEf7h");
  g_assert_cmpint (g_key_file_get_integer (kf, "virt-viewer", "delete-this-file", NULL), ==, 1);
  g_assert_cmpint (g_key_file_get_integer (kf, "virt-viewer", "fullscreen", NULL), ==, 0);
  g_assert_false (g_key_file_has_key (kf, "virt-viewer", "kiosk-mode", NULL));
  g_assert_nonnull (strstr (text, "expires at 2026-11-18T"));
}

static void
test_vv_spice_kiosk (void)
{
  KdGatewayVvSpec spec = base_spec ();
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  g_autoptr(GKeyFile) kf = NULL;

  spec.type = "spice";
  spec.tls_port = 5902;
  spec.kiosk = TRUE;
  text = kd_gateway_vv_build (&spec, &error);
  g_assert_no_error (error);
  kf = parse (text);
  g_assert_cmpstr (g_key_file_get_string (kf, "virt-viewer", "type", NULL), ==, "spice");
  g_assert_cmpint (g_key_file_get_integer (kf, "virt-viewer", "tls-port", NULL), ==, 5902);
  g_assert_cmpint (g_key_file_get_integer (kf, "virt-viewer", "fullscreen", NULL), ==, 1);
  g_assert_cmpint (g_key_file_get_integer (kf, "virt-viewer", "kiosk-mode", NULL), ==, 1);
}

/* A title cannot smuggle in keys or groups: GKeyFile escapes it, and a
 * reader gets the same string back. */
static void
test_vv_title_escaped (void)
{
  KdGatewayVvSpec spec = base_spec ();
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  g_autoptr(GKeyFile) kf = NULL;
  const char *title = " [evil] password=x # \\ ; é";

  spec.title = title;
  text = kd_gateway_vv_build (&spec, &error);
  g_assert_no_error (error);
  kf = parse (text);
  g_assert_cmpstr (g_key_file_get_string (kf, "virt-viewer", "title", NULL), ==, title);
  g_assert_cmpstr (g_key_file_get_string (kf, "virt-viewer", "password", NULL), ==, "Ab3dEf7h");
}

static void
test_vv_refused (void)
{
  struct { const char *what; KdGatewayVvSpec spec; } cases[6];
  guint n = 0;

  cases[n].what = "newline in title"; cases[n].spec = base_spec (); cases[n++].spec.title = "a\nport=1";
  cases[n].what = "no host"; cases[n].spec = base_spec (); cases[n++].spec.host = NULL;
  cases[n].what = "no password"; cases[n].spec = base_spec (); cases[n++].spec.password = "";
  cases[n].what = "bad type"; cases[n].spec = base_spec (); cases[n++].spec.type = "rdp";
  cases[n].what = "port 0"; cases[n].spec = base_spec (); cases[n++].spec.port = 0;
  cases[n].what = "port too big"; cases[n].spec = base_spec (); cases[n++].spec.port = 65536;
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *text = kd_gateway_vv_build (&cases[i].spec, &error);

      g_test_message ("%s", cases[i].what);
      g_assert_null (text);
      g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_INVALID);
    }
}

static void
test_rdp (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *v4 = kd_gateway_rdp_build ("192.168.122.5", 3389, "alice", TRUE, &error);
  g_autofree char *v6 = NULL;
  g_autofree char *bad = NULL;

  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (v4, "full address:s:192.168.122.5:3389\r\n"));
  g_assert_nonnull (strstr (v4, "\r\nusername:s:alice\r\n"));
  g_assert_nonnull (strstr (v4, "\r\nscreen mode id:i:2\r\n"));
  g_assert_true (g_str_has_suffix (v4, "\r\n"));
  v6 = kd_gateway_rdp_build ("fd00::5", 3390, NULL, FALSE, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (v6, "full address:s:[fd00::5]:3390\r\n"));
  g_assert_null (strstr (v6, "username"));
  g_assert_nonnull (strstr (v6, "screen mode id:i:1"));
  bad = kd_gateway_rdp_build ("10.0.0.1", 3389, "bob\r\nalternate shell:s:cmd", FALSE, &error);
  g_assert_null (bad);
  g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_INVALID);
  g_clear_error (&error);
  bad = kd_gateway_rdp_build ("10.0.0.1", 0, NULL, FALSE, &error);
  g_assert_null (bad);
  g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_INVALID);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/gateway/files/vv-vnc", test_vv_vnc);
  g_test_add_func ("/gateway/files/vv-spice-kiosk", test_vv_spice_kiosk);
  g_test_add_func ("/gateway/files/vv-title-escaped", test_vv_title_escaped);
  g_test_add_func ("/gateway/files/vv-refused", test_vv_refused);
  g_test_add_func ("/gateway/files/rdp", test_rdp);
  return g_test_run ();
}
