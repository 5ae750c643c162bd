/*
 * test-store.c: src/store against real SQLite files in a temporary
 * directory: CRUD for every table, the error each constraint maps to,
 * cascades, event filters, transactions, and re-opening.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

#include "store/kd-store.h"

typedef struct {
  char    *dir;
  char    *path;
  KdStore *store;
} Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("kd-test-store-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, "kvmdesk.db", NULL);
  f->store = kd_store_open (f->path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->store);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  const char *suffixes[] = { "", "-wal", "-shm", "-journal" };

  g_clear_pointer (&f->store, kd_store_free);
  for (gsize i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *p = g_strconcat (f->path, suffixes[i], NULL);
      g_unlink (p);
    }
  g_assert_cmpint (g_rmdir (f->dir), ==, 0);
  g_free (f->path);
  g_free (f->dir);
}

/* ---- helpers that insert one row and check success ------------------- */

static gint64
add_host (KdStore *s, const char *name)
{
  g_autoptr(GError) error = NULL;
  KdHostRow row = { .name = (char *) name, .uri = (char *) "test:///default" };

  g_assert_true (kd_store_host_insert (s, &row, &error));
  g_assert_no_error (error);
  g_assert_cmpint (row.id, >, 0);
  return row.id;
}

static gint64
add_image (KdStore *s, const char *name)
{
  g_autoptr(GError) error = NULL;
  KdImageRow row = { .name = (char *) name, .format = (char *) "qcow2",
                     .virtual_size = 1 << 30, .file_size = 1 << 20 };

  g_assert_true (kd_store_image_insert (s, &row, &error));
  g_assert_no_error (error);
  return row.id;
}

static gint64
add_template (KdStore *s, const char *name)
{
  g_autoptr(GError) error = NULL;
  KdTemplateRow row = { .name = (char *) name, .vcpus = 2, .memory_mib = 2048, .disk_gib = 20,
                        .display = (char *) "vnc", .network = (char *) "user",
                        .firmware = (char *) "bios" };

  g_assert_true (kd_store_template_insert (s, &row, &error));
  g_assert_no_error (error);
  return row.id;
}

static gint64
add_volume (KdStore *s, gint64 image_id, gint64 host_id, const char *volume)
{
  g_autoptr(GError) error = NULL;
  KdImageVolumeRow row = { .image_id = image_id, .host_id = host_id, .volume = (char *) volume };

  g_assert_true (kd_store_image_volume_insert (s, &row, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (row.state, ==, "importing");
  g_free (row.state);
  return row.id;
}

static gint64
add_desktop (KdStore *s, const char *name, gint64 host_id, gint64 image_id, gint64 template_id)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *domain = g_strdup_printf ("kvmdesk-test-%s", name);
  g_autofree char *volume = g_strdup_printf ("kvmdesk-test-%s.qcow2", name);
  KdDesktopRow row = { .name = (char *) name, .domain = domain, .host_id = host_id,
                       .image_id = image_id, .template_id = template_id,
                       .overlay_volume = volume, .state = (char *) "provisioning" };

  g_assert_true (kd_store_desktop_insert (s, &row, &error));
  g_assert_no_error (error);
  g_assert_cmpint (row.id, >, 0);
  g_assert_cmpint (row.created_at, >, 0);
  g_assert_cmpint (row.updated_at, ==, row.created_at);
  return row.id;
}

/* ---- open ------------------------------------------------------------ */

static void
test_open_new (Fixture *f, gconstpointer data)
{
  const char *id = kd_store_get_instance_id (f->store);
  GStatBuf st;

  g_assert_cmpint (kd_store_schema_version (f->store), ==, kd_store_latest_version ());
  g_assert_cmpint (kd_store_latest_version (), >=, 2);
  g_assert_cmpint (g_stat (f->path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);

  /* WAL mode: a write goes to the -wal file, which has the database's mode. */
  add_host (f->store, "hv1");
  {
    g_autofree char *wal = g_strconcat (f->path, "-wal", NULL);
    g_assert_cmpint (g_stat (wal, &st), ==, 0);
    g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  }

  g_assert_nonnull (id);
  g_assert_cmpuint (strlen (id), ==, 32);
  for (const char *p = id; *p; p++)
    g_assert_true (g_ascii_isxdigit (*p) && !g_ascii_isupper (*p));
}

static void
test_open_reopen (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *instance = g_strdup (kd_store_get_instance_id (f->store));
  g_autoptr(KdHostRow) host = NULL;
  g_autoptr(KdStore) other = NULL;

  add_host (f->store, "hv1");
  g_clear_pointer (&f->store, kd_store_free);

  f->store = kd_store_open (f->path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (kd_store_get_instance_id (f->store), ==, instance);
  host = kd_store_host_get_by_name (f->store, "hv1", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (host->uri, ==, "test:///default");

  /* A second file is another installation. */
  {
    g_autofree char *path2 = g_build_filename (f->dir, "other.db", NULL);
    g_autofree char *wal = g_strconcat (path2, "-wal", NULL);
    g_autofree char *shm = g_strconcat (path2, "-shm", NULL);
    other = kd_store_open (path2, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (kd_store_get_instance_id (other), !=, instance);
    g_clear_pointer (&other, kd_store_free);
    g_unlink (path2);
    g_unlink (wal);
    g_unlink (shm);
  }
}

static void
test_open_memory (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdStore) s = kd_store_open (":memory:", &error);

  g_assert_no_error (error);
  g_assert_cmpint (kd_store_schema_version (s), ==, kd_store_latest_version ());
  add_host (s, "hv1");
}

static void
test_open_missing_dir (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdStore) s = kd_store_open ("/nonexistent-kd-dir/kvmdesk.db", &error);

  g_assert_null (s);
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "'/nonexistent-kd-dir/kvmdesk.db'"));
}

/* ---- users and tokens ------------------------------------------------ */

static void
test_users_crud (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  KdUserRow bob = { .name = (char *) "bob", .password_hash = (char *) "$argon2id$x",
                    .role = (char *) "user" };
  KdUserRow alice = { .name = (char *) "alice", .password_hash = (char *) "$argon2id$y",
                      .role = (char *) "admin" };
  KdUserRow again = { .name = (char *) "bob", .password_hash = (char *) "z", .role = (char *) "user" };
  g_autoptr(KdUserRow) got = NULL;
  g_autoptr(KdUserRow) by_id = NULL;
  g_autoptr(GPtrArray) list = NULL;

  g_assert_cmpint (kd_store_user_count (f->store, &error), ==, 0);
  g_assert_true (kd_store_user_insert (f->store, &bob, &error));
  g_assert_true (kd_store_user_insert (f->store, &alice, &error));
  g_assert_no_error (error);
  g_assert_cmpint (bob.created_at, >, 0);
  g_assert_cmpint (kd_store_user_count (f->store, &error), ==, 2);

  got = kd_store_user_get_by_name (f->store, "alice", &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->id, ==, alice.id);
  g_assert_cmpstr (got->password_hash, ==, "$argon2id$y");
  g_assert_cmpstr (got->role, ==, "admin");
  g_assert_cmpint (got->created_at, ==, alice.created_at);

  by_id = kd_store_user_get (f->store, bob.id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (by_id->name, ==, "bob");

  list = kd_store_user_list (f->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  g_assert_cmpstr (((KdUserRow *) list->pdata[0])->name, ==, "alice");
  g_assert_cmpstr (((KdUserRow *) list->pdata[1])->name, ==, "bob");

  g_assert_false (kd_store_user_insert (f->store, &again, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "a user named 'bob' already exists");
  g_assert_cmpint (again.id, ==, 0);
  g_clear_error (&error);

  g_assert_true (kd_store_user_delete (f->store, bob.id, &error));
  g_assert_no_error (error);
  g_assert_false (kd_store_user_delete (f->store, bob.id, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (kd_store_user_get_by_name (f->store, "bob", &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no user named 'bob'");
}

static void
test_tokens (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  KdUserRow user = { .name = (char *) "bob", .password_hash = (char *) "h", .role = (char *) "user" };
  KdTokenRow old = { .token_hash = (char *) "aa01", .expires_at = 1000 };
  KdTokenRow edge = { .token_hash = (char *) "aa02", .expires_at = 2000 };
  KdTokenRow fresh = { .token_hash = (char *) "aa03", .expires_at = 3000 };
  KdTokenRow orphan = { .token_hash = (char *) "aa04", .user_id = 9999, .expires_at = 3000 };
  g_autoptr(KdTokenRow) got = NULL;
  g_autoptr(KdTokenRow) gone = NULL;

  g_assert_true (kd_store_user_insert (f->store, &user, &error));
  old.user_id = edge.user_id = fresh.user_id = user.id;
  g_assert_true (kd_store_token_insert (f->store, &old, &error));
  g_assert_true (kd_store_token_insert (f->store, &edge, &error));
  g_assert_true (kd_store_token_insert (f->store, &fresh, &error));
  g_assert_no_error (error);
  g_assert_cmpint (fresh.created_at, >, 0);

  g_assert_false (kd_store_token_insert (f->store, &fresh, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_null (strstr (error->message, "aa03"));   /* no secrets in messages */
  g_clear_error (&error);
  g_assert_false (kd_store_token_insert (f->store, &orphan, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  got = kd_store_token_get_by_hash (f->store, "aa02", &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->user_id, ==, user.id);
  g_assert_cmpint (got->expires_at, ==, 2000);

  /* Purge takes expires_at <= now. */
  g_assert_true (kd_store_token_purge (f->store, 2000, &error));
  g_assert_no_error (error);
  g_assert_null (kd_store_token_get_by_hash (f->store, "aa01", &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (kd_store_token_get_by_hash (f->store, "aa02", &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_clear_pointer (&got, kd_token_row_free);
  got = kd_store_token_get_by_hash (f->store, "aa03", &error);
  g_assert_no_error (error);

  g_assert_true (kd_store_token_delete (f->store, "aa03", &error));
  g_assert_false (kd_store_token_delete (f->store, "aa03", &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Deleting the user deletes his tokens. */
  g_assert_true (kd_store_token_insert (f->store, &fresh, &error));
  g_assert_true (kd_store_user_delete (f->store, user.id, &error));
  g_assert_no_error (error);
  gone = kd_store_token_get_by_hash (f->store, "aa03", &error);
  g_assert_null (gone);
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
}

/* ---- hosts ----------------------------------------------------------- */

static void
test_hosts_crud (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(KdHostRow) got = NULL;
  gint64 b = add_host (f->store, "hv-b");
  gint64 a = add_host (f->store, "hv-a");
  /* Values are bound, never pasted into SQL. */
  gint64 odd = add_host (f->store, "x'); DROP TABLE hosts; --");

  list = kd_store_host_list (f->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 3);
  g_assert_cmpstr (((KdHostRow *) list->pdata[0])->name, ==, "hv-a");
  g_assert_cmpstr (((KdHostRow *) list->pdata[1])->name, ==, "hv-b");

  got = kd_store_host_get (f->store, a, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got->name, ==, "hv-a");
  g_assert_cmpstr (got->uri, ==, "test:///default");
  g_assert_cmpint (got->created_at, >, 0);

  g_assert_true (kd_store_host_delete (f->store, b, &error));
  g_assert_true (kd_store_host_delete (f->store, odd, &error));
  g_assert_no_error (error);
  g_assert_false (kd_store_host_delete (f->store, b, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_null (kd_store_host_get_by_name (f->store, "hv-b", &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no host named 'hv-b'");
  g_clear_error (&error);
  g_assert_null (kd_store_host_get (f->store, 4242, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_clear_pointer (&list, g_ptr_array_unref);
  list = kd_store_host_list (f->store, &error);
  g_assert_cmpuint (list->len, ==, 1);
}

static void
test_hosts_unique_name (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  KdHostRow dup = { .name = (char *) "hv1", .uri = (char *) "qemu:///system" };

  add_host (f->store, "hv1");
  g_assert_false (kd_store_host_insert (f->store, &dup, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "a host named 'hv1' already exists");
  g_assert_cmpint (dup.id, ==, 0);
  g_assert_cmpint (dup.created_at, ==, 0);
}

static void
test_hosts_in_use (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gint64 hv1 = add_host (f->store, "hv1");
  gint64 hv2 = add_host (f->store, "hv2");
  gint64 image = add_image (f->store, "debian");
  gint64 template = add_template (f->store, "small");
  gint64 desktop = add_desktop (f->store, "d1", hv1, image, template);
  gint64 volume = add_volume (f->store, image, hv2, "kvmdesk-image-debian");

  g_assert_false (kd_store_host_delete (f->store, hv1, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_assert_cmpstr (error->message, ==, "host 'hv1' is in use by 1 desktop");
  g_clear_error (&error);

  g_assert_false (kd_store_host_delete (f->store, hv2, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_assert_nonnull (strstr (error->message, "host 'hv2'"));
  g_assert_nonnull (strstr (error->message, "1 image volume"));
  g_clear_error (&error);

  g_assert_true (kd_store_desktop_delete (f->store, desktop, &error));
  g_assert_true (kd_store_image_volume_delete (f->store, volume, &error));
  g_assert_true (kd_store_host_delete (f->store, hv1, &error));
  g_assert_true (kd_store_host_delete (f->store, hv2, &error));
  g_assert_no_error (error);
}

/* ---- images and volumes ---------------------------------------------- */

static void
test_images_crud (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(KdImageRow) got = NULL;
  KdImageRow dup = { .name = (char *) "win", .format = (char *) "raw" };
  gint64 win = add_image (f->store, "win");
  gint64 deb = add_image (f->store, "debian");

  list = kd_store_image_list (f->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  g_assert_cmpstr (((KdImageRow *) list->pdata[0])->name, ==, "debian");

  got = kd_store_image_get_by_name (f->store, "win", &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->id, ==, win);
  g_assert_cmpstr (got->format, ==, "qcow2");
  g_assert_cmpint (got->virtual_size, ==, 1 << 30);
  g_assert_cmpint (got->file_size, ==, 1 << 20);

  g_assert_false (kd_store_image_insert (f->store, &dup, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "an image named 'win' already exists");
  g_clear_error (&error);

  g_assert_true (kd_store_image_delete (f->store, deb, &error));
  g_assert_no_error (error);
  g_assert_false (kd_store_image_delete (f->store, deb, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (kd_store_image_get (f->store, deb, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
}

static void
test_images_in_use (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gint64 host = add_host (f->store, "hv1");
  gint64 image = add_image (f->store, "debian");
  gint64 template = add_template (f->store, "small");
  gint64 d1 = add_desktop (f->store, "d1", host, image, template);
  gint64 d2 = add_desktop (f->store, "d2", host, image, template);

  g_assert_cmpint (kd_store_desktop_count_by_image (f->store, image, &error), ==, 2);
  g_assert_false (kd_store_image_delete (f->store, image, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_assert_cmpstr (error->message, ==, "image 'debian' is in use by 2 desktops");
  g_clear_error (&error);

  g_assert_true (kd_store_desktop_delete (f->store, d1, &error));
  g_assert_true (kd_store_desktop_delete (f->store, d2, &error));
  g_assert_cmpint (kd_store_desktop_count_by_image (f->store, image, &error), ==, 0);
  g_assert_true (kd_store_image_delete (f->store, image, &error));
  g_assert_no_error (error);
}

static void
test_image_volumes_crud (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageVolumeRow) got = NULL;
  g_autoptr(KdImageVolumeRow) updated = NULL;
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(GPtrArray) of_deb = NULL;
  gint64 hv_b = add_host (f->store, "hv-b");
  gint64 hv_a = add_host (f->store, "hv-a");
  gint64 deb = add_image (f->store, "debian");
  gint64 alp = add_image (f->store, "alpine");
  gint64 v1 = add_volume (f->store, deb, hv_b, "kvmdesk-debian");
  KdImageVolumeRow twice = { .image_id = deb, .host_id = hv_b, .volume = (char *) "other" };
  KdImageVolumeRow same_name = { .image_id = alp, .host_id = hv_b, .volume = (char *) "kvmdesk-debian" };
  KdImageVolumeRow no_host = { .image_id = alp, .host_id = 777, .volume = (char *) "x" };

  add_volume (f->store, deb, hv_a, "kvmdesk-debian");
  add_volume (f->store, alp, hv_a, "kvmdesk-alpine");

  got = kd_store_image_volume_get (f->store, deb, hv_b, &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->id, ==, v1);
  g_assert_cmpstr (got->volume, ==, "kvmdesk-debian");
  g_assert_null (got->path);
  g_assert_cmpstr (got->state, ==, "importing");
  g_assert_false (got->simulated);

  g_free (got->path);
  got->path = g_strdup ("/pool/kvmdesk-debian");
  g_free (got->state);
  got->state = g_strdup ("ready");
  got->simulated = TRUE;
  g_assert_true (kd_store_image_volume_update (f->store, got, &error));
  g_assert_no_error (error);
  updated = kd_store_image_volume_get (f->store, deb, hv_b, &error);
  g_assert_cmpstr (updated->path, ==, "/pool/kvmdesk-debian");
  g_assert_cmpstr (updated->state, ==, "ready");
  g_assert_true (updated->simulated);
  g_assert_null (updated->error);

  g_assert_false (kd_store_image_volume_insert (f->store, &twice, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "image 'debian' already has a volume on host 'hv-b'");
  g_clear_error (&error);
  g_assert_false (kd_store_image_volume_insert (f->store, &same_name, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "a volume named 'kvmdesk-debian' already exists on host 'hv-b'");
  g_clear_error (&error);
  g_assert_false (kd_store_image_volume_insert (f->store, &no_host, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  all = kd_store_image_volume_list (f->store, -1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (all->len, ==, 3);
  /* by image name, then host name */
  g_assert_cmpint (((KdImageVolumeRow *) all->pdata[0])->image_id, ==, alp);
  g_assert_cmpint (((KdImageVolumeRow *) all->pdata[1])->host_id, ==, hv_a);
  g_assert_cmpint (((KdImageVolumeRow *) all->pdata[2])->host_id, ==, hv_b);
  of_deb = kd_store_image_volume_list (f->store, deb, &error);
  g_assert_cmpuint (of_deb->len, ==, 2);

  g_assert_true (kd_store_image_volume_delete (f->store, v1, &error));
  g_assert_false (kd_store_image_volume_delete (f->store, v1, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (kd_store_image_volume_update (f->store, got, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (kd_store_image_volume_get (f->store, deb, hv_b, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "image 'debian' has no volume on host 'hv-b'");
}

static void
test_images_delete_cascades_volumes (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) left = NULL;
  gint64 hv1 = add_host (f->store, "hv1");
  gint64 hv2 = add_host (f->store, "hv2");
  gint64 deb = add_image (f->store, "debian");
  gint64 alp = add_image (f->store, "alpine");

  add_volume (f->store, deb, hv1, "kvmdesk-debian");
  add_volume (f->store, deb, hv2, "kvmdesk-debian");
  add_volume (f->store, alp, hv1, "kvmdesk-alpine");

  g_assert_true (kd_store_image_delete (f->store, deb, &error));
  g_assert_no_error (error);
  left = kd_store_image_volume_list (f->store, -1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (left->len, ==, 1);
  g_assert_cmpint (((KdImageVolumeRow *) left->pdata[0])->image_id, ==, alp);

  /* hv2 held only debian's volume: it is free now; hv1 still holds alpine. */
  g_assert_true (kd_store_host_delete (f->store, hv2, &error));
  g_assert_no_error (error);
  g_assert_false (kd_store_host_delete (f->store, hv1, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
}

/* ---- templates ------------------------------------------------------- */

static void
test_templates_crud (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdTemplateRow) got = NULL;
  g_autoptr(GPtrArray) list = NULL;
  KdTemplateRow dup = { .name = (char *) "small", .vcpus = 1, .memory_mib = 1, .disk_gib = 1,
                        .display = (char *) "vnc", .network = (char *) "none",
                        .firmware = (char *) "uefi" };
  gint64 small = add_template (f->store, "small");
  gint64 big = add_template (f->store, "big");
  gint64 host = add_host (f->store, "hv1");
  gint64 image = add_image (f->store, "debian");
  gint64 desktop = add_desktop (f->store, "d1", host, image, small);

  got = kd_store_template_get_by_name (f->store, "small", &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->id, ==, small);
  g_assert_cmpint (got->vcpus, ==, 2);
  g_assert_cmpint (got->memory_mib, ==, 2048);
  g_assert_cmpint (got->disk_gib, ==, 20);
  g_assert_cmpstr (got->display, ==, "vnc");
  g_assert_cmpstr (got->network, ==, "user");
  g_assert_cmpstr (got->firmware, ==, "bios");

  list = kd_store_template_list (f->store, &error);
  g_assert_cmpuint (list->len, ==, 2);
  g_assert_cmpstr (((KdTemplateRow *) list->pdata[0])->name, ==, "big");

  g_assert_false (kd_store_template_insert (f->store, &dup, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "a template named 'small' already exists");
  g_clear_error (&error);

  g_assert_false (kd_store_template_delete (f->store, small, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_assert_cmpstr (error->message, ==, "template 'small' is in use by 1 desktop");
  g_clear_error (&error);

  g_assert_true (kd_store_template_delete (f->store, big, &error));
  g_assert_true (kd_store_desktop_delete (f->store, desktop, &error));
  g_assert_true (kd_store_template_delete (f->store, small, &error));
  g_assert_no_error (error);
  g_assert_null (kd_store_template_get (f->store, small, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
}

/* ---- desktops -------------------------------------------------------- */

static void
test_desktops_crud (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) got = NULL;
  g_autoptr(KdDesktopRow) again = NULL;
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(GPtrArray) on_hv1 = NULL;
  gint64 hv1 = add_host (f->store, "hv1");
  gint64 hv2 = add_host (f->store, "hv2");
  gint64 image = add_image (f->store, "debian");
  gint64 template = add_template (f->store, "small");
  gint64 d2 = add_desktop (f->store, "d2", hv1, image, template);
  gint64 d1 = add_desktop (f->store, "d1", hv2, image, template);
  gint64 unplaced = add_desktop (f->store, "d3", 0, image, template);
  KdDesktopRow dup_name = { .name = (char *) "d1", .domain = (char *) "fresh", .host_id = hv1,
                            .image_id = image, .template_id = template,
                            .overlay_volume = (char *) "v", .state = (char *) "stopped" };
  KdDesktopRow dup_domain = { .name = (char *) "d9", .domain = (char *) "kvmdesk-test-d1",
                              .host_id = hv1, .image_id = image, .template_id = template,
                              .overlay_volume = (char *) "v", .state = (char *) "stopped" };
  KdDesktopRow bad_ref = { .name = (char *) "d8", .domain = (char *) "kvmdesk-test-d8",
                           .host_id = hv1, .image_id = 999, .template_id = template,
                           .overlay_volume = (char *) "v", .state = (char *) "stopped" };
  gint64 created;

  got = kd_store_desktop_get_by_name (f->store, "d2", &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->id, ==, d2);
  g_assert_cmpstr (got->domain, ==, "kvmdesk-test-d2");
  g_assert_null (got->uuid);
  g_assert_cmpint (got->host_id, ==, hv1);
  g_assert_cmpint (got->image_id, ==, image);
  g_assert_cmpint (got->template_id, ==, template);
  g_assert_cmpstr (got->overlay_volume, ==, "kvmdesk-test-d2.qcow2");
  g_assert_null (got->overlay_path);
  g_assert_cmpstr (got->state, ==, "provisioning");
  g_assert_null (got->state_reason);

  /* Update writes every column but id and created_at. */
  created = got->created_at;
  got->uuid = g_strdup ("6f0c2c1e-8a4b-4f64-9d7e-0d3f1f6f1a01");
  got->overlay_path = g_strdup ("/pool/kvmdesk-test-d2.qcow2");
  g_free (got->state);
  got->state = g_strdup ("error");
  got->state_reason = g_strdup ("internal error: no space");
  got->host_id = hv2;
  got->created_at = 1;
  g_usleep (1000);   /* updated_at must move past created_at */
  g_assert_true (kd_store_desktop_update (f->store, got, &error));
  g_assert_no_error (error);
  again = kd_store_desktop_get (f->store, d2, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (again->uuid, ==, "6f0c2c1e-8a4b-4f64-9d7e-0d3f1f6f1a01");
  g_assert_cmpstr (again->overlay_path, ==, "/pool/kvmdesk-test-d2.qcow2");
  g_assert_cmpstr (again->state, ==, "error");
  g_assert_cmpstr (again->state_reason, ==, "internal error: no space");
  g_assert_cmpint (again->host_id, ==, hv2);
  g_assert_cmpint (again->created_at, ==, created);
  g_assert_cmpint (again->updated_at, >, created);
  g_assert_cmpint (again->updated_at, ==, got->updated_at);

  all = kd_store_desktop_list (f->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (all->len, ==, 3);
  g_assert_cmpstr (((KdDesktopRow *) all->pdata[0])->name, ==, "d1");
  g_assert_cmpstr (((KdDesktopRow *) all->pdata[2])->name, ==, "d3");
  g_assert_cmpint (((KdDesktopRow *) all->pdata[2])->host_id, ==, 0);
  on_hv1 = kd_store_desktop_list_by_host (f->store, hv1, &error);
  g_assert_cmpuint (on_hv1->len, ==, 0);
  g_clear_pointer (&on_hv1, g_ptr_array_unref);
  on_hv1 = kd_store_desktop_list_by_host (f->store, hv2, &error);
  g_assert_cmpuint (on_hv1->len, ==, 2);
  g_assert_cmpint (((KdDesktopRow *) on_hv1->pdata[0])->id, ==, d1);

  g_assert_false (kd_store_desktop_insert (f->store, &dup_name, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "a desktop named 'd1' already exists");
  g_clear_error (&error);
  g_assert_false (kd_store_desktop_insert (f->store, &dup_domain, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "a desktop with domain name 'kvmdesk-test-d1' already exists");
  g_clear_error (&error);
  g_assert_false (kd_store_desktop_insert (f->store, &bad_ref, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpint (bad_ref.id, ==, 0);
  g_clear_error (&error);

  /* Renaming onto a taken name. */
  g_free (again->name);
  again->name = g_strdup ("d1");
  g_assert_false (kd_store_desktop_update (f->store, again, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_clear_error (&error);

  g_assert_true (kd_store_desktop_delete (f->store, unplaced, &error));
  g_assert_no_error (error);
  g_assert_false (kd_store_desktop_delete (f->store, unplaced, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  again->id = unplaced;
  g_assert_false (kd_store_desktop_update (f->store, again, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (kd_store_desktop_get_by_name (f->store, "d3", &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no desktop named 'd3'");
}

/* ---- events ---------------------------------------------------------- */

static gint64
add_event (KdStore *s, const char *type, const char *name, const char *action)
{
  g_autoptr(GError) error = NULL;
  KdEventRow row = { .object_type = (char *) type, .object_name = (char *) name,
                     .action = (char *) action, .message = (char *) "something happened" };

  g_assert_true (kd_store_event_insert (s, &row, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (row.actor, ==, "system");
  g_assert_cmpint (row.time, >, 0);
  g_free (row.actor);
  return row.id;
}

static void
test_events_filters (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(GPtrArray) desktops = NULL;
  g_autoptr(GPtrArray) d1 = NULL;
  g_autoptr(GPtrArray) named = NULL;
  g_autoptr(GPtrArray) since = NULL;
  g_autoptr(GPtrArray) limited = NULL;
  KdEventRow state = { .time = 1234, .object_type = (char *) "desktop", .object_name = (char *) "d1",
                       .actor = (char *) "alice", .action = (char *) "state",
                       .from_state = (char *) "stopped", .to_state = (char *) "starting",
                       .message = (char *) "desktop 'd1' is starting" };
  KdEventRow *e;
  gint64 first = add_event (f->store, "host", "hv1", "create");
  gint64 second = add_event (f->store, "desktop", "d1", "create");

  add_event (f->store, "desktop", "d2", "create");
  g_assert_true (kd_store_event_insert (f->store, &state, &error));
  g_assert_no_error (error);
  add_event (f->store, "image", "d1", "create");   /* same name, other type */

  all = kd_store_event_list (f->store, NULL, NULL, 0, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (all->len, ==, 5);
  for (guint i = 1; i < all->len; i++)
    g_assert_cmpint (((KdEventRow *) all->pdata[i - 1])->id, >, ((KdEventRow *) all->pdata[i])->id);
  g_assert_cmpint (((KdEventRow *) all->pdata[4])->id, ==, first);

  e = all->pdata[1];
  g_assert_cmpint (e->id, ==, state.id);
  g_assert_cmpint (e->time, ==, 1234);
  g_assert_cmpstr (e->actor, ==, "alice");
  g_assert_cmpstr (e->from_state, ==, "stopped");
  g_assert_cmpstr (e->to_state, ==, "starting");
  g_assert_cmpstr (e->message, ==, "desktop 'd1' is starting");

  desktops = kd_store_event_list (f->store, "desktop", NULL, 0, 0, &error);
  g_assert_cmpuint (desktops->len, ==, 3);
  d1 = kd_store_event_list (f->store, "desktop", "d1", 0, 0, &error);
  g_assert_cmpuint (d1->len, ==, 2);
  g_assert_cmpint (((KdEventRow *) d1->pdata[0])->id, ==, state.id);
  g_assert_cmpint (((KdEventRow *) d1->pdata[1])->id, ==, second);
  named = kd_store_event_list (f->store, NULL, "d1", 0, 0, &error);
  g_assert_cmpuint (named->len, ==, 3);

  since = kd_store_event_list (f->store, NULL, NULL, second, 0, &error);
  g_assert_cmpuint (since->len, ==, 3);
  for (guint i = 0; i < since->len; i++)
    g_assert_cmpint (((KdEventRow *) since->pdata[i])->id, >, second);

  limited = kd_store_event_list (f->store, "desktop", NULL, 0, 2, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (limited->len, ==, 2);
  g_assert_cmpint (((KdEventRow *) limited->pdata[0])->id, ==, state.id);
}

static void
test_events_default_limit (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) dflt = NULL;
  g_autoptr(GPtrArray) capped = NULL;

  g_assert_true (kd_store_begin (f->store, &error));
  for (int i = 0; i < KD_STORE_EVENT_LIST_MAX + 5; i++)
    add_event (f->store, "desktop", "d1", "state");
  g_assert_true (kd_store_commit (f->store, &error));
  g_assert_no_error (error);

  dflt = kd_store_event_list (f->store, NULL, NULL, 0, -1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (dflt->len, ==, 100);
  capped = kd_store_event_list (f->store, NULL, NULL, 0, G_MAXINT64, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (capped->len, ==, KD_STORE_EVENT_LIST_MAX);
}

/* ---- transactions ---------------------------------------------------- */

static void
test_transactions_rollback (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) hosts = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(KdHostRow) kept = NULL;

  g_assert_true (kd_store_begin (f->store, &error));
  g_assert_no_error (error);
  g_assert_false (kd_store_begin (f->store, &error));   /* no nesting */
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED);
  g_clear_error (&error);
  add_host (f->store, "hv1");
  add_image (f->store, "debian");
  add_event (f->store, "host", "hv1", "create");
  kd_store_rollback (f->store);
  kd_store_rollback (f->store);   /* none open: harmless */

  hosts = kd_store_host_list (f->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (hosts->len, ==, 0);
  g_assert_null (kd_store_image_get_by_name (f->store, "debian", &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  events = kd_store_event_list (f->store, NULL, NULL, 0, 0, &error);
  g_assert_cmpuint (events->len, ==, 0);

  g_assert_false (kd_store_commit (f->store, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED);
  g_clear_error (&error);

  g_assert_true (kd_store_begin (f->store, &error));
  add_host (f->store, "hv2");
  g_assert_true (kd_store_commit (f->store, &error));
  g_assert_no_error (error);
  kept = kd_store_host_get_by_name (f->store, "hv2", &error);
  g_assert_no_error (error);
  g_assert_nonnull (kept);
}

/* A failed statement inside a transaction does not end it: the caller can
 * still roll back everything. */
static void
test_transactions_error_inside (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) hosts = NULL;
  KdHostRow dup = { .name = (char *) "hv1", .uri = (char *) "x" };

  g_assert_true (kd_store_begin (f->store, &error));
  add_host (f->store, "hv1");
  g_assert_false (kd_store_host_insert (f->store, &dup, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  kd_store_rollback (f->store);
  g_clear_error (&error);
  hosts = kd_store_host_list (f->store, &error);
  g_assert_cmpuint (hosts->len, ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_set_up, fn, fixture_tear_down)
  ADD ("/store/open/new-file", test_open_new);
  ADD ("/store/open/reopen-keeps-data", test_open_reopen);
  g_test_add_func ("/store/open/memory", test_open_memory);
  g_test_add_func ("/store/open/missing-directory", test_open_missing_dir);
  ADD ("/store/users/crud", test_users_crud);
  ADD ("/store/tokens/crud-purge-cascade", test_tokens);
  ADD ("/store/hosts/crud", test_hosts_crud);
  ADD ("/store/hosts/unique-name", test_hosts_unique_name);
  ADD ("/store/hosts/in-use", test_hosts_in_use);
  ADD ("/store/images/crud", test_images_crud);
  ADD ("/store/images/in-use", test_images_in_use);
  ADD ("/store/images/delete-cascades-volumes", test_images_delete_cascades_volumes);
  ADD ("/store/image-volumes/crud", test_image_volumes_crud);
  ADD ("/store/templates/crud-in-use", test_templates_crud);
  ADD ("/store/desktops/crud", test_desktops_crud);
  ADD ("/store/events/filters", test_events_filters);
  ADD ("/store/events/default-limit", test_events_default_limit);
  ADD ("/store/transactions/rollback", test_transactions_rollback);
  ADD ("/store/transactions/error-inside", test_transactions_error_inside);
#undef ADD

  return g_test_run ();
}
