/*
 * test-hv-testdriver.c: src/hv against libvirt's in-process test driver
 * (test:///default): connection, capacity, kvmdesk's pool, simulated
 * image upload, overlays, domain definition with metadata, lifecycle,
 * listing, deletion, events, and the error codes callers rely on. Every
 * object is named kdhvtest-* and removed in teardown, even on failure.
 */
#include "hv/kd-hv-priv.h"

#include <glib/gstdio.h>

#define TEST_URI       "test:///default"
#define TEST_POOL      "kdhvtest-pool"
#define TEST_POOL_PATH "/kdhvtest-pool"
#define TEST_DOMAIN    "kdhvtest-dom1"
#define TEST_IMAGE_VOL "kdhvtest-image.qcow2"
#define TEST_OVERLAY   "kdhvtest-overlay.qcow2"
#define TEST_EVENT_TIMEOUT_MS 5000

typedef struct {
  KdHvHost *host;
  char     *tmpdir;
  GPtrArray *events;     /* "name:state" strings */
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  KdHvHostOptions opts = {
    .keepalive_interval = 5,
    .keepalive_count = 3,
    .storage_pool = TEST_POOL,
    .storage_pool_path = TEST_POOL_PATH,
  };
  g_autoptr(GError) error = NULL;

  f->host = kd_hv_host_new ("local", TEST_URI, &opts);
  f->events = g_ptr_array_new_with_free_func (g_free);
  f->tmpdir = g_dir_make_tmp ("kdhvtest-XXXXXX", &error);
  g_assert_no_error (error);
  kd_hv_host_connect (f->host, &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (f->host, NULL);

  if (conn != NULL)
    {
      g_autoptr(virStoragePool) pool = NULL;

      kd_hv_domain_delete (f->host, TEST_DOMAIN, TRUE, NULL);
      kd_hv_volume_delete (f->host, TEST_OVERLAY, TRUE, NULL);
      kd_hv_volume_delete (f->host, TEST_IMAGE_VOL, TRUE, NULL);
      pool = virStoragePoolLookupByName (conn, TEST_POOL);
      if (pool != NULL)
        {
          virStoragePoolDestroy (pool);
          virStoragePoolUndefine (pool);
        }
      virResetLastError ();
    }
  g_clear_pointer (&f->host, kd_hv_host_unref);
  g_ptr_array_unref (f->events);
  if (f->tmpdir != NULL)
    {
      g_autofree char *raw = g_build_filename (f->tmpdir, "disk.raw", NULL);
      g_unlink (raw);
      g_rmdir (f->tmpdir);
      g_free (f->tmpdir);
    }
}

static void
on_domain_event (KdHvHost        *host,
                 const char      *domain_name,
                 KdHvDomainState  state,
                 const char      *detail,
                 gpointer         user_data)
{
  Fixture *f = user_data;

  g_assert_true (host == f->host);
  g_assert_nonnull (detail);
  g_ptr_array_add (f->events, g_strdup_printf ("%s:%s", domain_name,
                                               kd_hv_domain_state_to_string (state)));
}

static gboolean
on_timeout (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the main context until @want was seen or the timeout passed. */
static gboolean
wait_for_event (Fixture    *f,
                const char *want)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add (TEST_EVENT_TIMEOUT_MS, on_timeout, &timed_out);

  for (;;)
    {
      for (guint i = 0; i < f->events->len; i++)
        if (g_str_equal (g_ptr_array_index (f->events, i), want))
          {
            g_source_remove (id);
            return TRUE;
          }
      if (timed_out)
        return FALSE;
      g_main_context_iteration (NULL, TRUE);
    }
}

static char *
make_raw_image (Fixture *f,
                gsize    size)
{
  g_autofree char *path = g_build_filename (f->tmpdir, "disk.raw", NULL);
  g_autofree char *zeros = g_malloc0 (size);
  g_autoptr(GError) error = NULL;

  g_file_set_contents (path, zeros, size, &error);
  g_assert_no_error (error);
  return g_steal_pointer (&path);
}

static char *
build_xml (const char *disk_path)
{
  KdHvDomainSpec spec = {
    .name = TEST_DOMAIN,
    .title = "kdhvtest desktop <1>",
    .domain_type = "test",
    .vcpus = 1,
    .memory_mib = 64,
    .disk_path = disk_path,
    .disk_format = "qcow2",
    .firmware = "bios",
    .display = "vnc",
    .network = "none",
    .instance_id = "kdhvtest-instance",
    .desktop_id = "kdhvtest-desktop-1",
    .desktop_name = "Alice's <desktop> & co",
  };
  g_autoptr(GError) error = NULL;
  char *xml = kd_hv_domain_xml_build (&spec, &error);

  g_assert_no_error (error);
  g_assert_nonnull (xml);
  return xml;
}

static void
test_connect (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  KdHvCapacity cap = { 0, };

  g_assert_true (kd_hv_host_is_connected (f->host));
  g_assert_true (kd_hv_host_is_simulated (f->host));
  g_assert_cmpstr (kd_hv_host_get_name (f->host), ==, "local");
  g_assert_cmpstr (kd_hv_host_get_uri (f->host), ==, TEST_URI);

  /* Connecting again is a no-op. */
  g_assert_true (kd_hv_host_connect (f->host, &error));
  g_assert_no_error (error);

  kd_hv_host_disconnect (f->host);
  g_assert_false (kd_hv_host_is_connected (f->host));
  g_assert_false (kd_hv_host_read_capacity (f->host, &cap, &error));
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_UNAVAILABLE);
  g_assert_cmpstr (error->message, ==, "host 'local' is not connected");
  g_clear_error (&error);

  g_assert_true (kd_hv_host_connect (f->host, &error));
  g_assert_no_error (error);
  g_assert_true (kd_hv_host_is_connected (f->host));
}

static void
test_connect_bad_uri (void)
{
  g_autoptr(KdHvHost) host = kd_hv_host_new ("nowhere", "test:///nonexistent/kdhvtest.xml", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_false (kd_hv_host_connect (host, &error));
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_UNAVAILABLE);
  g_assert_true (g_str_has_prefix (error->message, "host 'nowhere': cannot connect to "));
  g_assert_false (kd_hv_host_is_connected (host));
}

static void
test_capacity (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  KdHvCapacity cap = { 0, };

  g_assert_true (kd_hv_host_read_capacity (f->host, &cap, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (cap.domain_type, ==, "test");
  g_assert_null (cap.accel_reason);
  g_assert_false (cap.uefi);
  g_assert_cmpint (cap.cpus, >, 0);
  g_assert_cmpint (cap.memory_bytes, >, 0);
  g_assert_cmpint (cap.pool_capacity, ==, -1);
  g_assert_nonnull (cap.arch);
  g_assert_nonnull (cap.hostname);
  g_assert_true (g_str_has_prefix (cap.hypervisor, "TEST"));
  g_assert_nonnull (cap.libvirt_version);
  kd_hv_capacity_clear (&cap);

  g_assert_true (kd_hv_host_ensure_pool (f->host, &error));
  g_assert_no_error (error);
  g_assert_true (kd_hv_host_read_capacity (f->host, &cap, &error));
  g_assert_no_error (error);
  g_assert_cmpint (cap.pool_capacity, >, 0);
  g_assert_cmpint (cap.pool_available, >=, 0);
  kd_hv_capacity_clear (&cap);
}

static void
test_ensure_pool (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (f->host, &error);
  g_autoptr(virStoragePool) pool = NULL;
  g_autoptr(GPtrArray) vols = NULL;
  int autostart = 0;

  g_assert_no_error (error);
  g_assert_true (kd_hv_host_ensure_pool (f->host, &error));
  g_assert_no_error (error);
  /* Idempotent. */
  g_assert_true (kd_hv_host_ensure_pool (f->host, &error));
  g_assert_no_error (error);

  pool = virStoragePoolLookupByName (conn, TEST_POOL);
  g_assert_nonnull (pool);
  g_assert_cmpint (virStoragePoolIsActive (pool), ==, 1);
  g_assert_cmpint (virStoragePoolGetAutostart (pool, &autostart), ==, 0);
  g_assert_cmpint (autostart, ==, 1);

  /* An inactive pool is started again. */
  g_assert_cmpint (virStoragePoolDestroy (pool), ==, 0);
  g_assert_true (kd_hv_host_ensure_pool (f->host, &error));
  g_assert_no_error (error);
  g_assert_cmpint (virStoragePoolIsActive (pool), ==, 1);

  vols = kd_hv_volume_list (f->host, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (vols->len, ==, 0);
}

static void
test_volumes (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *raw = make_raw_image (f, 65536);
  g_autofree char *image_path = NULL;
  g_autofree char *overlay_path = NULL;
  g_autoptr(KdHvVolume) vol = NULL;
  g_autoptr(GPtrArray) vols = NULL;
  KdHvImageInfo info = { 0, };
  gboolean simulated = FALSE;

  g_assert_true (kd_hv_host_ensure_pool (f->host, &error));
  g_assert_no_error (error);
  g_assert_true (kd_hv_image_probe (raw, &info, &error));
  g_assert_no_error (error);

  g_assert_true (kd_hv_image_upload (f->host, TEST_IMAGE_VOL, raw, &info, NULL, NULL, NULL,
                                     &image_path, &simulated, &error));
  g_assert_no_error (error);
  g_assert_true (simulated);
  g_assert_nonnull (image_path);

  /* The name is taken now. */
  g_assert_false (kd_hv_image_upload (f->host, TEST_IMAGE_VOL, raw, &info, NULL, NULL, NULL,
                                      NULL, NULL, &error));
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_EXISTS);
  g_clear_error (&error);

  g_assert_true (kd_hv_overlay_create (f->host, TEST_OVERLAY, image_path, "raw",
                                       G_GINT64_CONSTANT (1) << 30, &overlay_path, &error));
  g_assert_no_error (error);
  g_assert_nonnull (overlay_path);
  g_assert_false (kd_hv_overlay_create (f->host, TEST_OVERLAY, image_path, "raw",
                                        G_GINT64_CONSTANT (1) << 30, NULL, &error));
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_EXISTS);
  g_clear_error (&error);

  vol = kd_hv_volume_lookup (f->host, TEST_OVERLAY, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (vol->name, ==, TEST_OVERLAY);
  g_assert_cmpstr (vol->path, ==, overlay_path);
  g_assert_cmpstr (vol->format, ==, "qcow2");
  g_assert_cmpstr (vol->backing_path, ==, image_path);
  g_assert_cmpint (vol->capacity, ==, G_GINT64_CONSTANT (1) << 30);

  vols = kd_hv_volume_list (f->host, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (vols->len, ==, 2);

  g_assert_null (kd_hv_volume_lookup (f->host, "kdhvtest-none", &error));
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_true (kd_hv_volume_delete (f->host, TEST_OVERLAY, FALSE, &error));
  g_assert_no_error (error);
  g_assert_false (kd_hv_volume_delete (f->host, TEST_OVERLAY, FALSE, &error));
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_true (kd_hv_volume_delete (f->host, TEST_OVERLAY, TRUE, &error));
  g_assert_no_error (error);
  kd_hv_image_info_clear (&info);
}

static void
test_lifecycle (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *xml = build_xml ("/kdhvtest-pool/kdhvtest-overlay.qcow2");
  g_autofree char *uuid = NULL;
  g_autoptr(GPtrArray) list = NULL;
  KdHvDomainInfo *found = NULL;
  gboolean forced = TRUE;

  kd_hv_host_set_callbacks (f->host, NULL, on_domain_event, f);

  g_assert_true (kd_hv_domain_define (f->host, xml, &uuid, &error));
  g_assert_no_error (error);
  g_assert_true (g_uuid_string_is_valid (uuid));
  g_assert_cmpint (kd_hv_domain_get_state (f->host, TEST_DOMAIN, &error), ==,
                   KD_HV_DOMAIN_SHUTOFF);
  g_assert_no_error (error);

  g_assert_true (kd_hv_domain_start (f->host, TEST_DOMAIN, &error));
  g_assert_no_error (error);
  g_assert_cmpint (kd_hv_domain_get_state (f->host, TEST_DOMAIN, &error), ==,
                   KD_HV_DOMAIN_RUNNING);
  g_assert_no_error (error);
  g_assert_true (wait_for_event (f, TEST_DOMAIN ":running"));

  list = kd_hv_domain_list_kvmdesk (f->host, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < list->len; i++)
    {
      KdHvDomainInfo *info = g_ptr_array_index (list, i);
      /* test:///default's own domain "test" carries no metadata. */
      g_assert_cmpstr (info->name, !=, "test");
      if (g_str_equal (info->name, TEST_DOMAIN))
        found = info;
    }
  g_assert_nonnull (found);
  g_assert_cmpstr (found->uuid, ==, uuid);
  g_assert_cmpint (found->state, ==, KD_HV_DOMAIN_RUNNING);
  g_assert_cmpstr (found->instance_id, ==, "kdhvtest-instance");
  g_assert_cmpstr (found->desktop_id, ==, "kdhvtest-desktop-1");
  g_assert_cmpstr (found->desktop_name, ==, "Alice's <desktop> & co");
  g_assert_cmpuint (found->disk_paths->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (found->disk_paths, 0), ==,
                   "/kdhvtest-pool/kdhvtest-overlay.qcow2");

  g_assert_true (kd_hv_domain_shutdown (f->host, TEST_DOMAIN, 2, &forced, NULL, &error));
  g_assert_no_error (error);
  g_assert_false (forced);
  g_assert_cmpint (kd_hv_domain_get_state (f->host, TEST_DOMAIN, NULL), ==, KD_HV_DOMAIN_SHUTOFF);
  g_assert_true (wait_for_event (f, TEST_DOMAIN ":shutoff"));
  /* Already off is success. */
  g_assert_true (kd_hv_domain_shutdown (f->host, TEST_DOMAIN, 2, &forced, NULL, &error));
  g_assert_no_error (error);

  g_assert_true (kd_hv_domain_start (f->host, TEST_DOMAIN, &error));
  g_assert_no_error (error);
  g_assert_true (kd_hv_domain_poweroff (f->host, TEST_DOMAIN, &error));
  g_assert_no_error (error);
  g_assert_cmpint (kd_hv_domain_get_state (f->host, TEST_DOMAIN, NULL), ==, KD_HV_DOMAIN_SHUTOFF);
  g_assert_true (kd_hv_domain_poweroff (f->host, TEST_DOMAIN, &error));
  g_assert_no_error (error);

  /* Delete a running domain: powered off, then undefined. */
  g_assert_true (kd_hv_domain_start (f->host, TEST_DOMAIN, &error));
  g_assert_no_error (error);
  g_assert_true (kd_hv_domain_delete (f->host, TEST_DOMAIN, FALSE, &error));
  g_assert_no_error (error);
  g_assert_cmpint (kd_hv_domain_get_state (f->host, TEST_DOMAIN, &error), ==,
                   KD_HV_DOMAIN_MISSING);
  g_assert_no_error (error);
  g_assert_true (wait_for_event (f, TEST_DOMAIN ":missing"));

  g_assert_false (kd_hv_domain_delete (f->host, TEST_DOMAIN, FALSE, &error));
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_true (kd_hv_domain_delete (f->host, TEST_DOMAIN, TRUE, &error));
  g_assert_no_error (error);
}

static void
test_define_exists (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *xml = build_xml ("/kdhvtest-pool/kdhvtest-overlay.qcow2");

  g_assert_true (kd_hv_domain_define (f->host, xml, NULL, &error));
  g_assert_no_error (error);
  g_assert_false (kd_hv_domain_define (f->host, xml, NULL, &error));
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "host 'local': domain '" TEST_DOMAIN "' already exists");
}

static void
test_start_missing (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (kd_hv_domain_start (f->host, "kdhvtest-missing", &error));
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "host 'local'"));
  g_assert_nonnull (strstr (error->message, "'kdhvtest-missing'"));
  g_clear_error (&error);

  g_assert_false (kd_hv_domain_poweroff (f->host, "kdhvtest-missing", &error));
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_cmpint (kd_hv_domain_get_state (f->host, "kdhvtest-missing", &error), ==,
                   KD_HV_DOMAIN_MISSING);
  g_assert_no_error (error);
}

static void
test_no_pool (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_assert_null (kd_hv_volume_list (f->host, &error));
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "'" TEST_POOL "'"));
  g_clear_error (&error);
  g_assert_true (kd_hv_volume_delete (f->host, TEST_OVERLAY, TRUE, &error));
  g_assert_no_error (error);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  kd_hv_init ();

#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("/hv/testdriver/connect", test_connect);
  g_test_add_func ("/hv/testdriver/connect-bad-uri", test_connect_bad_uri);
  ADD ("/hv/testdriver/capacity", test_capacity);
  ADD ("/hv/testdriver/ensure-pool", test_ensure_pool);
  ADD ("/hv/testdriver/volumes", test_volumes);
  ADD ("/hv/testdriver/lifecycle", test_lifecycle);
  ADD ("/hv/testdriver/define-exists", test_define_exists);
  ADD ("/hv/testdriver/start-missing", test_start_missing);
  ADD ("/hv/testdriver/no-pool", test_no_pool);
#undef ADD
  return g_test_run ();
}
