/*
 * test-image-probe.c: kd_hv_image_probe() over files made in a temporary
 * directory: real qcow2 images from `qemu-img create` (when installed)
 * and crafted headers for every refused format, truncated and damaged
 * headers, empty and unreadable files.
 */
#include "hv/kd-hv-priv.h"

#include <glib/gstdio.h>
#include <string.h>

typedef struct {
  char *dir;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("kdhvtest-probe-XXXXXX", &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_autoptr(GDir) dir = g_dir_open (f->dir, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (f->dir, name, NULL);
      g_unlink (path);
    }
  g_rmdir (f->dir);
  g_free (f->dir);
}

static char *
write_file (Fixture      *f,
            const char   *name,
            const void   *data,
            gsize         len)
{
  g_autofree char *path = g_build_filename (f->dir, name, NULL);
  g_autoptr(GError) error = NULL;

  g_file_set_contents (path, data, len, &error);
  g_assert_no_error (error);
  return g_steal_pointer (&path);
}

static void
put_be32 (guint8 *p, guint32 v)
{
  p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static void
put_be64 (guint8 *p, guint64 v)
{
  put_be32 (p, v >> 32);
  put_be32 (p + 4, (guint32) v);
}

/* A minimal qcow2 v3 header: enough for the prober, not for QEMU. */
static void
craft_qcow2 (guint8 *buf, gsize len, guint32 version, guint64 size)
{
  memset (buf, 0, len);
  memcpy (buf, "QFI\xfb", 4);
  put_be32 (buf + 4, version);
  put_be32 (buf + 20, 16);          /* cluster bits */
  put_be64 (buf + 24, size);
  put_be32 (buf + 100, 104);        /* header length */
}

static gboolean
run_qemu_img (char **argv)
{
  g_autoptr(GError) error = NULL;
  int status = 0;

  if (!g_spawn_sync (NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                     NULL, NULL, NULL, NULL, &status, &error))
    return FALSE;
  return g_spawn_check_wait_status (status, NULL);
}

static void
expect_refused (const char *path,
                const char *words)
{
  g_autoptr(GError) error = NULL;
  KdHvImageInfo info = { 0, };

  g_assert_false (kd_hv_image_probe (path, &info, &error));
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_INVALID_IMAGE);
  if (strstr (error->message, words) == NULL)
    g_error ("message '%s' lacks '%s'", error->message, words);
  g_assert_nonnull (strstr (error->message, path));
  g_assert_null (info.format);
}

static void
test_raw (Fixture *f, gconstpointer data)
{
  g_autofree guint8 *zeros = g_malloc0 (1 << 20);
  g_autofree char *path = write_file (f, "disk.raw", zeros, 1 << 20);
  g_autoptr(GError) error = NULL;
  KdHvImageInfo info = { 0, };

  g_assert_true (kd_hv_image_probe (path, &info, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (info.format, ==, "raw");
  g_assert_cmpint (info.virtual_size, ==, 1 << 20);
  g_assert_cmpint (info.file_size, ==, 1 << 20);
  kd_hv_image_info_clear (&info);
  g_assert_null (info.format);
}

static void
test_qcow2_qemu_img (Fixture *f, gconstpointer data)
{
  g_autofree char *base = g_build_filename (f->dir, "base.qcow2", NULL);
  g_autofree char *v2 = g_build_filename (f->dir, "v2.qcow2", NULL);
  g_autofree char *overlay = g_build_filename (f->dir, "overlay.qcow2", NULL);
  g_autofree char *vmdk = g_build_filename (f->dir, "disk.vmdk", NULL);
  g_autofree char *vdi = g_build_filename (f->dir, "disk.vdi", NULL);
  g_autofree char *vhd = g_build_filename (f->dir, "disk.vhd", NULL);
  g_autofree char *vhdfixed = g_build_filename (f->dir, "fixed.vhd", NULL);
  g_autofree char *vhdx = g_build_filename (f->dir, "disk.vhdx", NULL);
  g_autofree char *qed = g_build_filename (f->dir, "disk.qed", NULL);
  g_autofree char *datafile = g_build_filename (f->dir, "ext.qcow2", NULL);
  g_autofree char *datafile_raw = g_build_filename (f->dir, "ext.raw", NULL);
  g_autoptr(GError) error = NULL;
  KdHvImageInfo info = { 0, };
  g_autofree char *qemu_img = g_find_program_in_path ("qemu-img");

  if (qemu_img == NULL)
    {
      g_test_skip ("qemu-img is not installed");
      return;
    }

  {
    char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", base, "64M", NULL };
    g_assert_true (run_qemu_img (argv));
  }
  g_assert_true (kd_hv_image_probe (base, &info, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (info.format, ==, "qcow2");
  g_assert_cmpint (info.virtual_size, ==, 64 << 20);
  g_assert_cmpint (info.file_size, >, 0);
  g_assert_cmpint (info.file_size, <, 64 << 20);
  kd_hv_image_info_clear (&info);

  {
    char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", v2, "1G", NULL };
    g_assert_true (run_qemu_img (argv));
  }
  g_assert_true (kd_hv_image_probe (v2, &info, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (info.format, ==, "qcow2");
  g_assert_cmpint (info.virtual_size, ==, G_GINT64_CONSTANT (1) << 30);
  kd_hv_image_info_clear (&info);

  {
    char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay, NULL };
    g_assert_true (run_qemu_img (argv));
  }
  {
    g_autofree char *words = g_strdup_printf ("image has a backing file '%s'", base);
    expect_refused (overlay, words);
  }

  {
    char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=ext.raw", datafile, "1M", NULL };
    g_autofree char *cwd = g_get_current_dir ();
    g_assert_cmpint (g_chdir (f->dir), ==, 0);
    g_assert_true (run_qemu_img (argv));
    g_assert_cmpint (g_chdir (cwd), ==, 0);
  }
  expect_refused (datafile, "external data file");

  {
    char *argv[] = { "qemu-img", "create", "-q", "-f", "vmdk", vmdk, "1M", NULL };
    g_assert_true (run_qemu_img (argv));
    expect_refused (vmdk, "VMDK");
  }
  {
    char *argv[] = { "qemu-img", "create", "-q", "-f", "vdi", vdi, "1M", NULL };
    g_assert_true (run_qemu_img (argv));
    expect_refused (vdi, "VDI");
  }
  {
    char *argv[] = { "qemu-img", "create", "-q", "-f", "vpc", vhd, "1M", NULL };
    g_assert_true (run_qemu_img (argv));
    expect_refused (vhd, "VHD");
  }
  {
    char *argv[] = { "qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed", vhdfixed, "1M", NULL };
    g_assert_true (run_qemu_img (argv));
    expect_refused (vhdfixed, "VHD");
  }
  {
    char *argv[] = { "qemu-img", "create", "-q", "-f", "vhdx", vhdx, "1M", NULL };
    g_assert_true (run_qemu_img (argv));
    expect_refused (vhdx, "VHDX");
  }
  {
    char *argv[] = { "qemu-img", "create", "-q", "-f", "qed", qed, "1M", NULL };
    g_assert_true (run_qemu_img (argv));
    expect_refused (qed, "QED");
  }
}

static void
test_crafted (Fixture *f, gconstpointer data)
{
  guint8 buf[512];
  g_autofree char *path = NULL;
  g_autoptr(GError) error = NULL;
  KdHvImageInfo info = { 0, };

  /* A crafted v3 header passes and reports the virtual size. */
  craft_qcow2 (buf, sizeof buf, 3, G_GINT64_CONSTANT (10) << 30);
  path = write_file (f, "ok.qcow2", buf, sizeof buf);
  g_assert_true (kd_hv_image_probe (path, &info, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (info.format, ==, "qcow2");
  g_assert_cmpint (info.virtual_size, ==, G_GINT64_CONSTANT (10) << 30);
  g_assert_cmpint (info.file_size, ==, sizeof buf);
  kd_hv_image_info_clear (&info);
  g_clear_pointer (&path, g_free);

  /* Backing file named in the header. */
  craft_qcow2 (buf, sizeof buf, 3, 1 << 20);
  put_be64 (buf + 8, 256);
  put_be32 (buf + 16, 9);
  memcpy (buf + 256, "/base.img", 9);
  path = write_file (f, "backing.qcow2", buf, sizeof buf);
  expect_refused (path, "image has a backing file '/base.img'; import a standalone image (qemu-img convert)");
  g_clear_pointer (&path, g_free);

  /* Backing offset beyond the end of the file: still refused, no crash. */
  put_be64 (buf + 8, G_GUINT64_CONSTANT (0xffffffffffffff00));
  put_be32 (buf + 16, 0xffffffff);
  path = write_file (f, "backing-far.qcow2", buf, sizeof buf);
  expect_refused (path, "image has a backing file");
  g_clear_pointer (&path, g_free);

  craft_qcow2 (buf, sizeof buf, 3, 1 << 20);
  put_be32 (buf + 32, 1);
  path = write_file (f, "aes.qcow2", buf, sizeof buf);
  expect_refused (path, "encrypted");
  g_clear_pointer (&path, g_free);

  craft_qcow2 (buf, sizeof buf, 3, 1 << 20);
  put_be64 (buf + 72, 1ULL << 2);
  path = write_file (f, "datafile.qcow2", buf, sizeof buf);
  expect_refused (path, "external data file");
  g_clear_pointer (&path, g_free);

  craft_qcow2 (buf, sizeof buf, 3, 1 << 20);
  put_be64 (buf + 72, 1ULL << 0);
  path = write_file (f, "dirty.qcow2", buf, sizeof buf);
  expect_refused (path, "dirty");
  g_clear_pointer (&path, g_free);

  craft_qcow2 (buf, sizeof buf, 3, 1 << 20);
  put_be64 (buf + 72, 1ULL << 40);
  path = write_file (f, "unknown.qcow2", buf, sizeof buf);
  expect_refused (path, "unknown qcow2 features");
  g_clear_pointer (&path, g_free);

  craft_qcow2 (buf, sizeof buf, 4, 1 << 20);
  path = write_file (f, "v4.qcow2", buf, sizeof buf);
  expect_refused (path, "qcow2 version 4 is not supported");
  g_clear_pointer (&path, g_free);

  craft_qcow2 (buf, sizeof buf, 1, 1 << 20);
  path = write_file (f, "v1.qcow", buf, sizeof buf);
  expect_refused (path, "qcow (version 1)");
  g_clear_pointer (&path, g_free);

  craft_qcow2 (buf, sizeof buf, 3, 0);
  path = write_file (f, "zero.qcow2", buf, sizeof buf);
  expect_refused (path, "virtual size 0 is invalid");
  g_clear_pointer (&path, g_free);

  /* Truncated headers: v2 needs 72 bytes, v3 104. */
  craft_qcow2 (buf, sizeof buf, 3, 1 << 20);
  path = write_file (f, "trunc3.qcow2", buf, 90);
  expect_refused (path, "qcow2 header is truncated (90 bytes)");
  g_clear_pointer (&path, g_free);
  craft_qcow2 (buf, sizeof buf, 2, 1 << 20);
  path = write_file (f, "trunc2.qcow2", buf, 20);
  expect_refused (path, "qcow2 header is truncated (20 bytes)");
  g_clear_pointer (&path, g_free);
}

static void
test_other_formats (Fixture *f, gconstpointer data)
{
  static const struct { const char *name; const char *magic; gsize len; const char *words; } table[] = {
    { "a.vmdk", "KDMV", 4, "VMDK" },
    { "b.vmdk", "# Disk DescriptorFile\nversion=1\n", 32, "VMDK" },
    { "c.vhd", "conectix", 8, "VHD" },
    { "d.vhdx", "vhdxfile", 8, "VHDX" },
    { "e.qed", "QED\0", 4, "QED" },
    { "f.luks", "LUKS\xba\xbe", 6, "LUKS" },
    { "g.hds", "WithoutFreeSpace", 16, "Parallels" },
    { "h.img", "Bochs Virtual HD Image", 22, "Bochs" },
  };
  guint8 buf[1024];

  for (gsize i = 0; i < G_N_ELEMENTS (table); i++)
    {
      g_autofree char *path = NULL;

      memset (buf, 0, sizeof buf);
      memcpy (buf, table[i].magic, table[i].len);
      path = write_file (f, table[i].name, buf, sizeof buf);
      expect_refused (path, table[i].words);
    }

  /* VDI: signature at offset 64. */
  {
    g_autofree char *path = NULL;
    memset (buf, 0, sizeof buf);
    buf[64] = 0x7f; buf[65] = 0x10; buf[66] = 0xda; buf[67] = 0xbe;
    path = write_file (f, "i.vdi", buf, sizeof buf);
    expect_refused (path, "VDI");
  }
  /* DMG: "koly" trailer. */
  {
    g_autofree char *path = NULL;
    memset (buf, 0, sizeof buf);
    memcpy (buf + sizeof buf - 512, "koly", 4);
    path = write_file (f, "j.dmg", buf, sizeof buf);
    expect_refused (path, "DMG");
  }
  /* An ISO 9660 image is raw. */
  {
    g_autofree guint8 *iso = g_malloc0 (34816);
    g_autofree char *path = NULL;
    g_autoptr(GError) error = NULL;
    KdHvImageInfo info = { 0, };

    memcpy (iso + 32769, "CD001", 5);
    path = write_file (f, "k.iso", iso, 34816);
    g_assert_true (kd_hv_image_probe (path, &info, &error));
    g_assert_no_error (error);
    g_assert_cmpstr (info.format, ==, "raw");
    g_assert_cmpint (info.virtual_size, ==, 34816);
    kd_hv_image_info_clear (&info);
  }
}

static void
test_unreadable (Fixture *f, gconstpointer data)
{
  g_autofree char *empty = write_file (f, "empty.img", "", 0);
  g_autofree char *missing = g_build_filename (f->dir, "missing.img", NULL);
  g_autoptr(GError) error = NULL;
  KdHvImageInfo info = { 0, };

  expect_refused (empty, "it is empty");
  expect_refused (f->dir, "not a regular file");

  g_assert_false (kd_hv_image_probe (missing, &info, &error));
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "cannot read image '"));
  g_assert_nonnull (strstr (error->message, "No such file or directory"));
  g_clear_error (&error);

  g_assert_false (kd_hv_image_probe ("", &info, &error));
  g_assert_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("/hv/image-probe/raw", test_raw);
  ADD ("/hv/image-probe/qcow2-qemu-img", test_qcow2_qemu_img);
  ADD ("/hv/image-probe/qcow2-crafted", test_crafted);
  ADD ("/hv/image-probe/other-formats", test_other_formats);
  ADD ("/hv/image-probe/unreadable", test_unreadable);
#undef ADD
  return g_test_run ();
}
