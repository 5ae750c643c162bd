/*
 * test-sched.c: every filter and weigher of the scheduler, its refusal
 * messages, round-robin placement lists, and placement at scale (1,000
 * hosts, 10,000 desktops: every desktop placed, no host over a limit).
 * How fast that is lives in bench/sched, not here.
 */
#include "sched/kd-sched.h"

#define GIB (G_GINT64_CONSTANT (1) << 30)

static KdSchedHost
host (const char *name, gint64 cpus, gint64 mem_gib, gint64 disk_gib)
{
  KdSchedHost h = {
    .name = name, .up = TRUE, .cpus = cpus, .memory_bytes = mem_gib * GIB,
    .disk_bytes = disk_gib * GIB, .has_image = TRUE,
  };
  return h;
}

static KdSchedRequest
desktop (gint64 vcpus, gint64 mem_gib, gint64 disk_gib)
{
  KdSchedRequest r = { .vcpus = vcpus, .memory_bytes = mem_gib * GIB, .disk_bytes = disk_gib * GIB };
  return r;
}

static void
assert_refused (const KdSchedHost *hosts, guint n, KdSchedRequest *req, const char *expected)
{
  g_autoptr(GError) error = NULL;
  gint chosen = kd_sched_place (hosts, n, req, &error);

  g_assert_cmpint (chosen, ==, -1);
  g_assert_error (error, KD_SCHED_ERROR, KD_SCHED_ERROR_NO_HOST);
  g_assert_cmpstr (error->message, ==, expected);
}

static void
test_filter_state (void)
{
  KdSchedHost hosts[] = { host ("hv1", 8, 16, 100), host ("hv2", 8, 16, 100) };
  KdSchedRequest req = desktop (1, 1, 10);

  hosts[0].up = FALSE;
  hosts[1].maintenance = TRUE;
  assert_refused (hosts, 2, &req, "no host can take the desktop: hv1: down; hv2: maintenance");
  hosts[1].maintenance = FALSE;
  g_assert_cmpint (kd_sched_place (hosts, 2, &req, NULL), ==, 1);
}

static void
test_filter_memory_with_reserve (void)
{
  KdSchedHost hosts[] = { host ("hv1", 8, 4, 100) };
  KdSchedRequest req = desktop (1, 1, 1);

  hosts[0].used_memory_bytes = 3 * GIB + GIB / 2;
  assert_refused (hosts, 1, &req,
                  "no host can take the desktop: hv1: memory 3.5/4.0 GiB used, needs 1.0");
  /* Exactly at the limit fits; the reserve counts against it. */
  hosts[0].used_memory_bytes = 3 * GIB;
  g_assert_cmpint (kd_sched_place (hosts, 1, &req, NULL), ==, 0);
  hosts[0].memory_reserved_bytes = GIB / 2;
  assert_refused (hosts, 1, &req,
                  "no host can take the desktop: hv1: memory 3.0/3.5 GiB used, needs 1.0");
  /* A memory ratio above 1 overcommits. */
  hosts[0].memory_ratio = 1.5;
  g_assert_cmpint (kd_sched_place (hosts, 1, &req, NULL), ==, 0);
}

static void
test_filter_cpu_ratio (void)
{
  KdSchedHost hosts[] = { host ("hv1", 4, 64, 1000) };
  KdSchedRequest req = desktop (4, 1, 1);
  guint n = 0;
  gint out[32];
  g_autoptr(GError) error = NULL;

  /* Default 4.0: 4 CPUs hold 16 vCPUs, four desktops of 4. */
  n = kd_sched_place_many (hosts, 1, &req, 10, out, &error);
  g_assert_cmpuint (n, ==, 4);
  g_assert_cmpstr (error->message, ==, "no host can take the desktop: hv1: vCPUs 16/16 used, needs 4");
  g_clear_error (&error);
  hosts[0].cpu_ratio = 1.0;
  hosts[0].used_vcpus = 0;
  hosts[0].desktops = 0;
  hosts[0].used_memory_bytes = 0;
  hosts[0].used_disk_bytes = 0;
  n = kd_sched_place_many (hosts, 1, &req, 10, out, &error);
  g_assert_cmpuint (n, ==, 1);
}

static void
test_filter_disk (void)
{
  KdSchedHost hosts[] = { host ("hv1", 64, 64, 50) };
  KdSchedRequest req = desktop (1, 1, 20);
  gint out[8];
  g_autoptr(GError) error = NULL;

  g_assert_cmpuint (kd_sched_place_many (hosts, 1, &req, 8, out, &error), ==, 2);
  g_assert_cmpstr (error->message, ==,
                   "no host can take the desktop: hv1: disk 40.0/50.0 GiB used, needs 20.0");
}

static void
test_filter_gpu (void)
{
  KdSchedHost hosts[] = { host ("hv1", 64, 64, 500), host ("hv2", 64, 64, 500) };
  KdSchedRequest req = desktop (1, 1, 1);
  gint out[8];
  g_autoptr(GError) error = NULL;

  req.gpus = 1;
  hosts[1].gpus_free = 2;
  g_assert_cmpuint (kd_sched_place_many (hosts, 2, &req, 3, out, &error), ==, 2);
  g_assert_cmpint (out[0], ==, 1);
  g_assert_cmpint (out[1], ==, 1);
  g_assert_cmpint (hosts[1].gpus_free, ==, 0);
  g_assert_cmpstr (error->message, ==,
                   "no host can take the desktop: hv1: 0 free GPUs, needs 1; hv2: 0 free GPUs, needs 1");
  /* Without a GPU in the request, GPU hosts are ordinary hosts. */
  req.gpus = 0;
  g_assert_cmpint (kd_sched_place (hosts, 2, &req, NULL), >=, 0);
}

/* vGPUs: placed only where a GPU offers the type with an instance free;
 * instances run out; the message names the type; a GPU runs one type at
 * a time; instances are packed onto the GPU already running the type. */
static void
test_filter_vgpu (void)
{
  static const KdSchedMdevType p4[] = { { "nvidia-63", 2 }, { "nvidia-64", 1 } };
  static const KdSchedMdevType other[] = { { "nvidia-11", 4 } };
  KdSchedGpu gpus1[] = { { .types = other, .n_types = 1 } };
  KdSchedGpu gpus2[] = { { .types = p4, .n_types = 2 }, { .types = p4, .n_types = 2 } };
  KdSchedHost hosts[] = { host ("hv1", 64, 64, 500), host ("hv2", 64, 64, 500), host ("hv3", 64, 64, 500) };
  KdSchedRequest req = desktop (1, 1, 1);
  gint out[8];
  g_autoptr(GError) error = NULL;

  hosts[0].gpus = gpus1;
  hosts[0].n_gpus = 1;
  hosts[1].gpus = gpus2;
  hosts[1].n_gpus = 2;
  req.vgpu_type = "nvidia-63";
  g_assert_cmpint (kd_sched_vgpu_pick (&hosts[1], "nvidia-63"), ==, 0);
  g_assert_cmpuint (kd_sched_place_many (hosts, 3, &req, 8, out, &error), ==, 4);
  for (guint i = 0; i < 4; i++)
    g_assert_cmpint (out[i], ==, 1);
  /* The first GPU filled before the second was started. */
  g_assert_cmpint (gpus2[0].vgpus, ==, 2);
  g_assert_cmpint (gpus2[1].vgpus, ==, 2);
  g_assert_cmpstr (error->message, ==,
                   "no host can take the desktop: hv1: no GPU offers vGPU type nvidia-63; "
                   "hv2: no free vGPU of type nvidia-63; hv3: no GPU offers vGPU type nvidia-63");
  g_clear_error (&error);

  /* One type per GPU: with nvidia-63 on GPU 0 only GPU 1 takes nvidia-64. */
  gpus2[0].vgpus = 1;
  gpus2[0].vgpu_type = "nvidia-63";
  gpus2[1].vgpus = 0;
  gpus2[1].vgpu_type = NULL;
  req.vgpu_type = "nvidia-64";
  g_assert_cmpint (kd_sched_vgpu_pick (&hosts[1], "nvidia-64"), ==, 1);
  kd_sched_commit (&hosts[1], &req);
  g_assert_cmpint (kd_sched_vgpu_pick (&hosts[1], "nvidia-64"), ==, -1);
  g_assert_cmpint (kd_sched_vgpu_pick (&hosts[1], "nvidia-63"), ==, 0);

  /* A whole-GPU request does not take a GPU that runs vGPUs, and a
   * vGPU never goes to a GPU passed through whole. */
  req.vgpu_type = NULL;
  req.gpus = 1;
  assert_refused (&hosts[1], 1, &req, "no host can take the desktop: hv2: 0 free GPUs, needs 1");
  gpus2[1].vgpus = 0;
  gpus2[1].vgpu_type = NULL;
  g_assert_cmpint (kd_sched_host_gpus_free (&hosts[1]), ==, 1);
  kd_sched_commit (&hosts[1], &req);
  g_assert_true (gpus2[1].taken);
  g_assert_cmpint (kd_sched_host_gpus_free (&hosts[1]), ==, 0);
  req.gpus = 0;
  req.vgpu_type = "nvidia-64";
  assert_refused (&hosts[1], 1, &req, "no host can take the desktop: hv2: no free vGPU of type nvidia-64");
  req.vgpu_type = "nvidia-63";
  g_assert_cmpint (kd_sched_place (&hosts[1], 1, &req, NULL), ==, 0);
}

static void
test_filter_labels_and_image (void)
{
  const char *const ssd[] = { "ssd", "rack-1", NULL };
  const char *const want[] = { "ssd", NULL };
  KdSchedHost hosts[] = { host ("hv1", 8, 16, 100), host ("hv2", 8, 16, 100), host ("hv3", 8, 16, 100) };
  KdSchedRequest req = desktop (1, 1, 1);

  req.labels = want;
  hosts[1].labels = ssd;
  hosts[1].has_image = FALSE;
  assert_refused (hosts, 3, &req,
                  "no host can take the desktop: hv1: no label 'ssd'; "
                  "hv2: does not hold the image and cannot import it; hv3: no label 'ssd'");
  hosts[1].image_importable = TRUE;
  g_assert_cmpint (kd_sched_place (hosts, 3, &req, NULL), ==, 1);
  /* A copy already on its way there counts as the image. */
  hosts[1].image_importable = FALSE;
  hosts[1].image_importing = TRUE;
  g_assert_cmpint (kd_sched_place (hosts, 3, &req, NULL), ==, 1);
}

static void
test_filter_allowed_hosts (void)
{
  const char *const allowed[] = { "hv3", "nonexistent", NULL };
  const char *const none[] = { "gone", NULL };
  KdSchedHost hosts[] = { host ("hv1", 8, 64, 100), host ("hv2", 8, 64, 100), host ("hv3", 8, 2, 100) };
  KdSchedRequest req = desktop (1, 4, 1);

  req.allowed_hosts = allowed;
  assert_refused (hosts, 3, &req,
                  "no host can take the desktop: hv3: memory 0.0/2.0 GiB used, needs 4.0; "
                  "2 other hosts are not in the pool's list");
  req.memory_bytes = GIB;
  g_assert_cmpint (kd_sched_place (hosts, 3, &req, NULL), ==, 2);
  req.allowed_hosts = none;
  assert_refused (hosts, 3, &req, "no host can take the desktop: none of the pool's hosts exists");
  assert_refused (NULL, 0, &req, "no host can take the desktop: there are no hosts");
  req.allowed_hosts = NULL;
  assert_refused (NULL, 0, &req, "no host can take the desktop: there are no hosts");
}

static void
test_weigh_spread (void)
{
  KdSchedHost hosts[] = { host ("hv1", 64, 16, 1000), host ("hv2", 64, 32, 1000),
                          host ("hv3", 64, 32, 1000) };
  KdSchedRequest req = desktop (1, 4, 1);
  gint out[6];

  hosts[2].desktops = 3;   /* same free memory as hv2, more desktops */
  g_assert_cmpuint (kd_sched_place_many (hosts, 3, &req, 6, out, NULL), ==, 6);
  /* most free memory first: hv2 (32, fewer desktops), hv3 (32), then the
   * three of them in turn as memory evens out */
  g_assert_cmpint (out[0], ==, 1);
  g_assert_cmpint (out[1], ==, 2);
  g_assert_cmpint (hosts[0].desktops + hosts[1].desktops + hosts[2].desktops, ==, 9);
  g_assert_cmpint (kd_sched_host_free_memory (&hosts[1]), ==, kd_sched_host_free_memory (&hosts[2]));
  g_assert_cmpint (kd_sched_host_free_memory (&hosts[1]), >=, kd_sched_host_free_memory (&hosts[0]) - 4 * GIB);
}

static void
test_weigh_pack (void)
{
  KdSchedHost hosts[] = { host ("hv1", 64, 16, 1000), host ("hv2", 64, 32, 1000) };
  KdSchedRequest req = desktop (1, 4, 1);
  gint out[12];
  guint n;

  req.weigher = KD_SCHED_PACK;
  n = kd_sched_place_many (hosts, 2, &req, 12, out, NULL);
  g_assert_cmpuint (n, ==, 12);
  /* the fullest host that fits first: hv1 is filled (4 desktops) before hv2 */
  for (guint i = 0; i < 4; i++)
    g_assert_cmpint (out[i], ==, 0);
  for (guint i = 4; i < 12; i++)
    g_assert_cmpint (out[i], ==, 1);
}

static void
test_round_robin (void)
{
  const char *const list[] = { "hv3", "hv1", "hv2", NULL };
  KdSchedHost hosts[] = { host ("hv1", 64, 64, 1000), host ("hv2", 64, 64, 1000),
                          host ("hv3", 64, 64, 1000) };
  KdSchedRequest req = desktop (1, 1, 1);
  gint out[7];

  req.allowed_hosts = list;
  req.round_robin = TRUE;
  g_assert_cmpuint (kd_sched_place_many (hosts, 3, &req, 7, out, NULL), ==, 7);
  g_assert_cmpint (out[0], ==, 2);
  g_assert_cmpint (out[1], ==, 0);
  g_assert_cmpint (out[2], ==, 1);
  g_assert_cmpint (out[3], ==, 2);
  g_assert_cmpint (out[6], ==, 2);
  /* A full host in the list is skipped, the turn goes on. */
  hosts[0].maintenance = TRUE;
  req.rr_next = 1;          /* hv1's turn */
  g_assert_cmpint (kd_sched_place (hosts, 3, &req, NULL), ==, 1);
  g_assert_cmpuint (req.rr_next, ==, 0);
}

static void
test_many_refusals_counted (void)
{
  KdSchedHost hosts[30];
  g_autofree char *names = NULL;
  KdSchedRequest req = desktop (1, 1, 1);
  g_autoptr(GError) error = NULL;
  char name[30][8];

  for (guint i = 0; i < 30; i++)
    {
      g_snprintf (name[i], sizeof name[i], "hv%02u", i);
      hosts[i] = host (name[i], 8, 16, 100);
      if (i % 3 == 0)
        hosts[i].maintenance = TRUE;
      else
        hosts[i].up = FALSE;
    }
  g_assert_cmpint (kd_sched_place (hosts, 30, &req, &error), ==, -1);
  g_assert_true (g_str_has_prefix (error->message, "no host can take the desktop: hv00: maintenance; hv01: down;"));
  g_assert_true (g_str_has_suffix (error->message, "hv19: down; and 10 more (7 down, 3 maintenance)"));
}

static void
test_invalid_request (void)
{
  KdSchedHost hosts[] = { host ("hv1", 8, 16, 100) };
  KdSchedRequest req = desktop (-1, 1, 1);
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (kd_sched_place (hosts, 1, &req, &error), ==, -1);
  g_assert_error (error, KD_SCHED_ERROR, KD_SCHED_ERROR_INVALID);
}

/* 1,000 hosts of 5 sizes, 10,000 desktops of 2 GiB: all placed (the
 * hosts hold 10,600), spread keeps hosts of one size within one desktop
 * of each other, and no host exceeds a limit. */
static void
test_scale (void)
{
  const guint n_hosts = 1000, n_desktops = 10000;
  g_autofree KdSchedHost *hosts = g_new0 (KdSchedHost, n_hosts);
  g_autofree gint *out = g_new (gint, n_desktops);
  g_autofree char *names = g_malloc (n_hosts * 8);
  KdSchedRequest req = desktop (2, 2, 20);
  g_autoptr(GError) error = NULL;
  gint64 min_d[5], max_d[5];

  for (guint i = 0; i < n_hosts; i++)
    {
      char *name = names + i * 8;
      g_snprintf (name, 8, "hv%04u", i);
      /* 16, 20, 22, 24, 24 GiB: 8, 10, 11, 12, 12 desktops of 2 GiB */
      hosts[i] = host (name, 64, (gint64[]) { 16, 20, 22, 24, 24 }[i % 5], 10000);
    }
  g_assert_cmpuint (kd_sched_place_many (hosts, n_hosts, &req, n_desktops, out, &error), ==, n_desktops);
  g_assert_no_error (error);
  for (guint k = 0; k < 5; k++)
    {
      min_d[k] = G_MAXINT64;
      max_d[k] = 0;
    }
  for (guint i = 0; i < n_hosts; i++)
    {
      g_assert_cmpint (hosts[i].used_memory_bytes, <=, hosts[i].memory_bytes);
      g_assert_cmpint (hosts[i].used_vcpus, <=, hosts[i].cpus * 4);
      min_d[i % 5] = MIN (min_d[i % 5], hosts[i].desktops);
      max_d[i % 5] = MAX (max_d[i % 5], hosts[i].desktops);
    }
  for (guint k = 0; k < 5; k++)
    g_assert_cmpint (max_d[k] - min_d[k], <=, 1);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sched/filter/up-and-maintenance", test_filter_state);
  g_test_add_func ("/sched/filter/memory-reserve-ratio", test_filter_memory_with_reserve);
  g_test_add_func ("/sched/filter/cpu-overcommit", test_filter_cpu_ratio);
  g_test_add_func ("/sched/filter/disk", test_filter_disk);
  g_test_add_func ("/sched/filter/gpu-exhausted", test_filter_gpu);
  g_test_add_func ("/sched/filter/vgpu-exhausted", test_filter_vgpu);
  g_test_add_func ("/sched/filter/labels-and-image", test_filter_labels_and_image);
  g_test_add_func ("/sched/filter/allowed-hosts", test_filter_allowed_hosts);
  g_test_add_func ("/sched/weigh/spread", test_weigh_spread);
  g_test_add_func ("/sched/weigh/pack", test_weigh_pack);
  g_test_add_func ("/sched/round-robin", test_round_robin);
  g_test_add_func ("/sched/refusal/many-hosts-counted", test_many_refusals_counted);
  g_test_add_func ("/sched/refusal/invalid-request", test_invalid_request);
  g_test_add_func ("/sched/scale/1000-hosts-10000-desktops", test_scale);
  return g_test_run ();
}
