/*
 * test-domain-xml.c: golden-file tests of the domain XML builder. Each
 * case is tests/data/domain-xml/<case>.json: {"spec": {...}} with the
 * KdHvDomainSpec fields, compared with <case>.xml; or {"spec": {...},
 * "error": "words"} for a spec that must be refused with a message
 * containing those words. KD_TEST_REGENERATE=1 rewrites the .xml files
 * (read the diff before committing it).
 */
#include "hv/kd-hv-priv.h"

#include <json-glib/json-glib.h>
#include <string.h>

static const char *const cases[] = {
  "vnc-none-bios",
  "user-net",
  "libvirt-network",
  "bridge",
  "uefi",
  "spice",
  "dbus",
  "tcg",
  "escaping",
  "uuid-machine",
  "test-driver",
  "gpu",
  "vgpu",
  "error-missing-name",
  "error-empty-name",
  "error-vcpus",
  "error-memory",
  "error-display",
  "error-firmware",
  "error-domain-type",
  "error-disk-path",
  "error-relative-disk",
  "error-bad-uuid",
  "error-hostdev",
  "error-mdev",
  "error-control-char",
  "error-empty-bridge",
  "error-bad-bridge",
};

static const char *
member_string (JsonObject *obj,
               const char *name)
{
  if (!json_object_has_member (obj, name) || json_object_get_null_member (obj, name))
    return NULL;
  return json_object_get_string_member (obj, name);
}

static gint64
member_int (JsonObject *obj,
            const char *name)
{
  if (!json_object_has_member (obj, name))
    return 0;
  return json_object_get_int_member (obj, name);
}

static void
spec_from_json (JsonObject     *obj,
                KdHvDomainSpec *spec)
{
  static const char *const known[] = {
    "name", "uuid", "title", "domain_type", "arch", "machine", "vcpus", "memory_mib",
    "disk_path", "disk_format", "firmware", "display", "graphics_listen", "graphics_passwd", "hostdevs", "mdevs", "network",
    "instance_id", "desktop_id", "desktop_name", NULL,
  };
  g_autoptr(GList) members = json_object_get_members (obj);

  /* A typo in a case file must fail, not silently test the default. */
  for (GList *l = members; l != NULL; l = l->next)
    g_assert_true (g_strv_contains (known, l->data));

  spec->name = member_string (obj, "name");
  spec->uuid = member_string (obj, "uuid");
  spec->title = member_string (obj, "title");
  spec->domain_type = member_string (obj, "domain_type");
  spec->arch = member_string (obj, "arch");
  spec->machine = member_string (obj, "machine");
  spec->vcpus = member_int (obj, "vcpus");
  spec->memory_mib = member_int (obj, "memory_mib");
  spec->disk_path = member_string (obj, "disk_path");
  spec->disk_format = member_string (obj, "disk_format");
  spec->firmware = member_string (obj, "firmware");
  spec->display = member_string (obj, "display");
  spec->graphics_listen = member_string (obj, "graphics_listen");
  spec->graphics_passwd = member_string (obj, "graphics_passwd");
  if (json_object_has_member (obj, "hostdevs"))
    {
      JsonArray *arr = json_object_get_array_member (obj, "hostdevs");
      const char **v = g_new0 (const char *, json_array_get_length (arr) + 1);
      for (guint i = 0; i < json_array_get_length (arr); i++)
        v[i] = json_array_get_string_element (arr, i);
      spec->hostdevs = v;   /* freed with the test process */
    }
  if (json_object_has_member (obj, "mdevs"))
    {
      JsonArray *arr = json_object_get_array_member (obj, "mdevs");
      const char **v = g_new0 (const char *, json_array_get_length (arr) + 1);
      for (guint i = 0; i < json_array_get_length (arr); i++)
        v[i] = json_array_get_string_element (arr, i);
      spec->mdevs = v;   /* freed with the test process */
    }
  spec->network = member_string (obj, "network");
  spec->instance_id = member_string (obj, "instance_id");
  spec->desktop_id = member_string (obj, "desktop_id");
  spec->desktop_name = member_string (obj, "desktop_name");
}

static void
test_case (gconstpointer data)
{
  const char *name = data;
  g_autofree char *json_path = g_strdup_printf ("%s/domain-xml/%s.json", KD_TEST_DATA, name);
  g_autofree char *xml_path = g_strdup_printf ("%s/domain-xml/%s.xml", KD_TEST_DATA, name);
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *xml = NULL;
  g_autofree char *expected = NULL;
  KdHvDomainSpec spec = { 0, };
  JsonObject *root;
  const char *want_error;

  json_parser_load_from_file (parser, json_path, &error);
  g_assert_no_error (error);
  root = json_node_get_object (json_parser_get_root (parser));
  g_assert_nonnull (root);
  g_assert_true (json_object_has_member (root, "spec"));
  spec_from_json (json_object_get_object_member (root, "spec"), &spec);
  want_error = member_string (root, "error");

  xml = kd_hv_domain_xml_build (&spec, &error);
  if (want_error != NULL)
    {
      g_assert_null (xml);
      g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED);
      if (strstr (error->message, want_error) == NULL)
        g_error ("case '%s': message '%s' lacks '%s'", name, error->message, want_error);
      return;
    }
  g_assert_no_error (error);
  g_assert_nonnull (xml);

  /* Whatever the builder writes must parse back as XML. */
  {
    g_autoptr(xmlDoc) doc = kd_hv_xml_parse (xml, "built XML", &error);
    g_assert_no_error (error);
    g_assert_nonnull (doc);
  }

  if (g_getenv ("KD_TEST_REGENERATE") != NULL)
    {
      g_file_set_contents (xml_path, xml, -1, &error);
      g_assert_no_error (error);
      g_test_message ("rewrote %s", xml_path);
      return;
    }
  g_file_get_contents (xml_path, &expected, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (xml, ==, expected);
}

/* Whatever a title holds, the metadata and title survive a round trip. */
static void
test_escaping_roundtrip (void)
{
  const char *nasty = "A&B <x> \"q\" 'a' ]]> &amp;";
  KdHvDomainSpec spec = {
    .name = "kd-esc", .domain_type = "kvm", .vcpus = 1, .memory_mib = 256,
    .disk_path = "/var/lib/kvmdesk/a&b.qcow2", .title = nasty,
    .desktop_name = nasty, .instance_id = "i", .desktop_id = "d",
  };
  g_autoptr(GError) error = NULL;
  g_autofree char *xml = kd_hv_domain_xml_build (&spec, &error);
  g_autoptr(xmlDoc) doc = NULL;
  g_autofree char *title = NULL;
  g_autofree char *dname = NULL;
  g_autofree char *disk = NULL;

  g_assert_no_error (error);
  doc = kd_hv_xml_parse (xml, "built XML", &error);
  g_assert_no_error (error);
  title = kd_hv_xml_string (doc, "string(/domain/title)");
  dname = kd_hv_xml_string (doc, "string(/domain/metadata/*[local-name()='desktop']/*[local-name()='name'])");
  disk = kd_hv_xml_string (doc, "string(/domain/devices/disk/source/@file)");
  g_assert_cmpstr (title, ==, nasty);
  g_assert_cmpstr (dname, ==, nasty);
  g_assert_cmpstr (disk, ==, "/var/lib/kvmdesk/a&b.qcow2");
  g_assert_true (kd_hv_xml_exists (doc, "/domain/metadata/*[namespace-uri()='" KD_HV_METADATA_NS "']"));
}

/* A move rewrites the overlay's path (escaped or not) and only that disk,
 * and names its target; a path the domain does not have is an error. */
static void
test_move_disks (void)
{
  const char *hostdevs[] = { "0000:01:00.0", "0000:01:00.1", NULL };
  KdHvDomainSpec spec = {
    .name = "kd-mv", .domain_type = "kvm", .vcpus = 1, .memory_mib = 256,
    .disk_path = "/pool-a/kd-a&b.qcow2", .instance_id = "i", .desktop_id = "d",
    .hostdevs = hostdevs,
  };
  g_autoptr(GError) error = NULL;
  g_autofree char *xml = kd_hv_domain_xml_build (&spec, &error);
  g_autoptr(GHashTable) paths = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GHashTable) missing = g_hash_table_new (g_str_hash, g_str_equal);
  g_auto(GStrv) targets = NULL;
  g_autofree char *moved = NULL, *none = NULL, *regpu = NULL, *nogpu = NULL;
  g_autoptr(xmlDoc) doc = NULL;
  g_autofree char *disk = NULL, *fn = NULL;
  const char *other[] = { "0000:02:00.0", NULL };

  g_assert_no_error (error);
  g_hash_table_insert (paths, "/pool-a/kd-a&b.qcow2", "/pool-b/kd-a&b.qcow2");
  moved = kd_hv_domain_xml_move_disks (xml, paths, &targets, &error);
  g_assert_no_error (error);
  g_assert_cmpstrv (targets, ((const char *[]) { "vda", NULL }));
  doc = kd_hv_xml_parse (moved, "moved", &error);
  g_assert_no_error (error);
  disk = kd_hv_xml_string (doc, "string(/domain/devices/disk/source/@file)");
  g_assert_cmpstr (disk, ==, "/pool-b/kd-a&b.qcow2");
  g_clear_pointer (&doc, xmlFreeDoc);

  g_hash_table_insert (missing, "/elsewhere.qcow2", "/x.qcow2");
  none = kd_hv_domain_xml_move_disks (xml, missing, NULL, &error);
  g_assert_null (none);
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (kd_hv_domain_xml_move_disks ("<domain", paths, NULL, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);

  /* The GPU of the new host replaces the old one's functions. */
  regpu = kd_hv_domain_xml_set_pci_hostdevs (xml, other, &error);
  g_assert_no_error (error);
  doc = kd_hv_xml_parse (regpu, "regpu", &error);
  g_assert_no_error (error);
  g_assert_cmpstr ((fn = kd_hv_xml_string (doc, "string(count(/domain/devices/hostdev))")), ==, "1");
  g_free (fn);
  fn = kd_hv_xml_string (doc, "string(/domain/devices/hostdev/source/address/@bus)");
  g_assert_cmpstr (fn, ==, "0x02");
  g_clear_pointer (&doc, xmlFreeDoc);
  nogpu = kd_hv_domain_xml_set_pci_hostdevs (xml, NULL, &error);
  g_assert_no_error (error);
  doc = kd_hv_xml_parse (nogpu, "nogpu", &error);
  g_assert_false (kd_hv_xml_exists (doc, "/domain/devices/hostdev"));
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/hv/domain-xml/%s", cases[i]);
      g_test_add_data_func (path, cases[i], test_case);
    }
  g_test_add_func ("/hv/domain-xml/escaping-roundtrip", test_escaping_roundtrip);
  g_test_add_func ("/hv/domain-xml/move-disks-and-gpus", test_move_disks);
  return g_test_run ();
}
