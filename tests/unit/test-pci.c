/*
 * test-pci.c: PCI passthrough devices from node device XML (fixtures in
 * tests/data/nodedev), address forms, and the IOMMU group rule for a GPU.
 */
#include "hv/kd-hv.h"

#include <string.h>

static void
load (const char *name, KdHvPciDevice *out)
{
  g_autofree char *path = g_build_filename (KD_TEST_DATA, "nodedev", name, NULL);
  g_autofree char *xml = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (g_file_get_contents (path, &xml, NULL, &error));
  g_assert_true (kd_hv_pci_device_parse (xml, out, &error));
  g_assert_no_error (error);
}

static void
test_parse (void)
{
  g_auto(KdHvPciDevice) video = { 0 };
  g_auto(KdHvPciDevice) bare = { 0 };
  const char *members[] = { "0000:01:00.0", "0000:01:00.1", NULL };
  const char *types[] = { "nvidia-222", "nvidia-223", NULL };

  load ("gpu-video.xml", &video);
  g_assert_cmpstr (video.address, ==, "0000:01:00.0");
  g_assert_cmpstr (video.driver, ==, "nvidia");
  g_assert_cmpstr (video.product, ==, "TU104GL [Tesla T4]");
  g_assert_cmpstr (video.vendor, ==, "NVIDIA Corporation");
  g_assert_cmpint (video.iommu_group, ==, 12);
  g_assert_cmpstrv (video.group_members, members);
  g_assert_cmpstrv (video.mdev_types, types);
  g_assert_cmpuint (video.mdevs->len, ==, 2);
  {
    KdHvMdevType *t = video.mdevs->pdata[1];
    g_assert_cmpstr (t->id, ==, "nvidia-223");
    g_assert_cmpstr (t->name, ==, "GRID T4-2B");
    g_assert_cmpstr (t->device_api, ==, "vfio-pci");
    g_assert_cmpint (t->available, ==, 8);
  }
  load ("no-iommu.xml", &bare);
  g_assert_cmpuint (bare.mdevs->len, ==, 0);
  g_assert_cmpint (bare.iommu_group, ==, -1);
  g_assert_null (bare.driver);
  g_assert_cmpuint (g_strv_length (bare.group_members), ==, 0);
}

static void
test_parse_refused (void)
{
  g_autofree char *path = g_build_filename (KD_TEST_DATA, "nodedev", "usb.xml", NULL);
  g_autofree char *xml = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(KdHvPciDevice) dev = { 0 };

  g_assert_true (g_file_get_contents (path, &xml, NULL, NULL));
  g_assert_false (kd_hv_pci_device_parse (xml, &dev, &error));
  g_assert_nonnull (strstr (error->message, "not a PCI device"));
  g_clear_error (&error);
  g_assert_false (kd_hv_pci_device_parse ("<device", &dev, &error));
  g_assert_nonnull (error);
}

/* Ids kvmdesk would not put in XML are left out; counts are bounded. */
static void
test_parse_mdev_odd (void)
{
  g_auto(KdHvPciDevice) dev = { 0 };
  const char *types[] = { "ok-type", "no-count", NULL };

  load ("gpu-mdev-odd.xml", &dev);
  g_assert_cmpstrv (dev.mdev_types, types);
  g_assert_cmpint (((KdHvMdevType *) dev.mdevs->pdata[0])->available, ==, 1024);
  g_assert_null (((KdHvMdevType *) dev.mdevs->pdata[0])->name);
  g_assert_cmpint (((KdHvMdevType *) dev.mdevs->pdata[1])->available, ==, 0);
}

static void
test_mdev_xml (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *xml = kd_hv_mdev_xml_build ("01:00.0", "nvidia-63",
                                               "8b4e5d36-1c2f-4a8e-9d7f-123456789abc", &error);

  g_assert_no_error (error);
  g_assert_cmpstr (xml, ==,
                   "<?xml version=\"1.0\"?>\n"
                   "<device>\n"
                   "  <parent>pci_0000_01_00_0</parent>\n"
                   "  <capability type=\"mdev\">\n"
                   "    <type id=\"nvidia-63\"/>\n"
                   "    <uuid>8b4e5d36-1c2f-4a8e-9d7f-123456789abc</uuid>\n"
                   "  </capability>\n"
                   "</device>\n");
  g_assert_null (kd_hv_mdev_xml_build ("0000:01:00.0", "x'/><evil", "8b4e5d36-1c2f-4a8e-9d7f-123456789abc",
                                       &error));
  g_assert_nonnull (strstr (error->message, "not a mediated device type"));
  g_clear_error (&error);
  g_assert_null (kd_hv_mdev_xml_build ("0000:01:00.0", "nvidia-63", "not-a-uuid", &error));
  g_assert_nonnull (strstr (error->message, "not a UUID"));
  g_clear_error (&error);
  g_assert_null (kd_hv_mdev_xml_build ("garbage", "nvidia-63", "8b4e5d36-1c2f-4a8e-9d7f-123456789abc", &error));
  g_assert_nonnull (error);
  g_assert_true (kd_hv_mdev_type_is_valid ("i915-GVTg_V5_4"));
  g_assert_false (kd_hv_mdev_type_is_valid (""));
  g_assert_false (kd_hv_mdev_type_is_valid ("a b"));
}

static void
test_address (void)
{
  static const struct { const char *in, *out; } ok[] = {
    { "0000:01:00.0", "0000:01:00.0" }, { "01:00.1", "0000:01:00.1" },
    { "0000:AF:1F.7", "0000:af:1f.7" }, { "1:2:3.4", "0001:02:03.4" },
  };
  static const char *const bad[] = { "", "0000:01:00", "0000:01:20.0", "0000:01:00.8", "gpu0",
                                     "0000:01:00.0 ", "0000:01:00.0\n", "00000:01:00.0", NULL };

  for (gsize i = 0; i < G_N_ELEMENTS (ok); i++)
    {
      g_autofree char *canon = kd_hv_pci_address_parse (ok[i].in, NULL);
      g_assert_cmpstr (canon, ==, ok[i].out);
    }
  for (gsize i = 0; bad[i] != NULL; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *canon = kd_hv_pci_address_parse (bad[i], &error);
      g_test_message ("'%s'", bad[i]);
      g_assert_null (canon);
      g_assert_nonnull (strstr (error->message, "is not a PCI address"));
    }
}

static void
test_gpu_group_rule (void)
{
  KdHvPciDevice fns[2] = { { 0 }, { 0 } };
  g_auto(KdHvPciDevice) shared = { 0 };
  g_auto(KdHvPciDevice) bare = { 0 };
  const char *both[] = { "0000:01:00.0", "0000:01:00.1", NULL };
  const char *video_only[] = { "0000:01:00.0", NULL };
  const char *shared_passed[] = { "0000:02:00.0", NULL };
  g_autoptr(GError) error = NULL;

  load ("gpu-video.xml", &fns[0]);
  load ("gpu-audio.xml", &fns[1]);
  /* Both functions passed through: fine. */
  g_assert_true (kd_hv_gpu_check (fns, 2, both, &error));
  g_assert_no_error (error);
  /* Only the video function: its audio sibling in group 12 would be left
   * to the host. */
  g_assert_false (kd_hv_gpu_check (fns, 1, video_only, &error));
  g_assert_cmpstr (error->message, ==,
                   "PCI device 0000:01:00.0 shares IOMMU group 12 with 0000:01:00.1, which is not "
                   "passed through: add it to the GPU's functions, or move the card");
  g_clear_error (&error);
  /* A group with a host device (an SMBus controller). */
  load ("gpu-shared-group.xml", &shared);
  g_assert_false (kd_hv_gpu_check (&shared, 1, shared_passed, &error));
  g_assert_nonnull (strstr (error->message, "0000:00:1f.3, which is not passed through"));
  g_clear_error (&error);
  /* Functions of two different groups are not one GPU. */
  {
    KdHvPciDevice mixed[2] = { fns[0], shared };
    const char *all[] = { "0000:01:00.0", "0000:01:00.1", "0000:02:00.0", "0000:00:1f.3", NULL };
    g_assert_false (kd_hv_gpu_check (mixed, 2, all, &error));
    g_assert_nonnull (strstr (error->message, "different IOMMU groups (12 and 3)"));
    g_clear_error (&error);
  }
  /* No IOMMU at all. */
  load ("no-iommu.xml", &bare);
  g_assert_false (kd_hv_gpu_check (&bare, 1, (const char *[]) { "0000:03:00.0", NULL }, &error));
  g_assert_nonnull (strstr (error->message, "has no IOMMU group"));
  kd_hv_pci_device_clear (&fns[0]);
  kd_hv_pci_device_clear (&fns[1]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/hv/pci/parse-node-device", test_parse);
  g_test_add_func ("/hv/pci/parse-refused", test_parse_refused);
  g_test_add_func ("/hv/pci/parse-mdev-types-bounded", test_parse_mdev_odd);
  g_test_add_func ("/hv/pci/mdev-create-xml", test_mdev_xml);
  g_test_add_func ("/hv/pci/address-forms", test_address);
  g_test_add_func ("/sched/gpu/iommu-group-rule", test_gpu_group_rule);
  return g_test_run ();
}
