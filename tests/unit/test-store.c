/*
 * test-store.c: src/store against real SQLite files in a temporary
 * directory: CRUD for every table, the error each constraint maps to,
 * cascades, event filters, transactions, and re-opening; schema 3's
 * groups, pools, entitlements, desktop assignment and event queries;
 * schema 4's image versions, edit sessions and volumes per version.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

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
  /* v8: a new host is not draining and migrates live */
  g_assert_false (got->draining);
  g_assert_cmpstr (got->migration, ==, "live");
  got->draining = TRUE;
  g_free (got->migration);
  got->migration = g_strdup ("cold");
  g_assert_true (kd_store_host_update (f->store, got, &error));
  g_clear_pointer (&got, kd_host_row_free);
  got = kd_store_host_get (f->store, a, &error);
  g_assert_no_error (error);
  g_assert_true (got->draining);
  g_assert_cmpstr (got->migration, ==, "cold");

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
  g_assert_cmpstr (error->message, ==, "image 'debian' version 1 already has a volume on host 'hv-b'");
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
  g_assert_cmpstr (error->message, ==, "image 'debian' version 1 has no volume on host 'hv-b'");
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

/* ---- schema v3: groups, pools, entitlements, sessions ---------------- */

static gint64
add_user (KdStore *s, const char *name)
{
  g_autoptr(GError) error = NULL;
  KdUserRow row = { .name = (char *) name, .password_hash = (char *) "$argon2id$h",
                    .role = (char *) "user" };

  g_assert_true (kd_store_user_insert (s, &row, &error));
  g_assert_no_error (error);
  return row.id;
}

static gint64
add_group (KdStore *s, const char *name)
{
  g_autoptr(GError) error = NULL;
  KdGroupRow row = { .name = (char *) name };

  g_assert_true (kd_store_group_insert (s, &row, &error));
  g_assert_no_error (error);
  g_assert_cmpint (row.id, >, 0);
  g_assert_cmpint (row.created_at, >, 0);
  return row.id;
}

static gint64
add_pool (KdStore *s, const char *name, gint64 image_id, gint64 template_id)
{
  g_autoptr(GError) error = NULL;
  KdPoolRow row = { .name = (char *) name, .image_id = image_id, .template_id = template_id,
                    .mode = (char *) "floating", .size = 4, .warm = 1 };

  g_assert_true (kd_store_pool_insert (s, &row, &error));
  g_assert_no_error (error);
  g_assert_cmpint (row.id, >, 0);
  return row.id;
}

/* A GArray of gint64 from a list ended by 0. */
static GArray *
ids_of (gint64 first, ...)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (gint64));
  va_list ap;

  va_start (ap, first);
  for (gint64 id = first; id != 0; id = va_arg (ap, gint64))
    g_array_append_val (a, id);
  va_end (ap);
  return a;
}

static void
assert_ids (GArray *a, gint64 first, ...)
{
  va_list ap;
  guint i = 0;

  g_assert_nonnull (a);
  va_start (ap, first);
  for (gint64 id = first; id != 0; id = va_arg (ap, gint64), i++)
    {
      g_assert_cmpuint (i, <, a->len);
      g_assert_cmpint (g_array_index (a, gint64, i), ==, id);
    }
  va_end (ap);
  g_assert_cmpuint (i, ==, a->len);
}

static void
test_groups_crud (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  KdGroupRow again = { .name = (char *) "ops" };
  g_autoptr(KdGroupRow) got = NULL;
  g_autoptr(KdGroupRow) by_id = NULL;
  g_autoptr(GPtrArray) list = NULL;
  gint64 ops = add_group (f->store, "ops");
  gint64 eng = add_group (f->store, "engineering");

  got = kd_store_group_get_by_name (f->store, "ops", &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->id, ==, ops);
  g_assert_cmpstr (got->name, ==, "ops");
  g_assert_cmpint (got->created_at, >, 0);
  by_id = kd_store_group_get (f->store, eng, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (by_id->name, ==, "engineering");

  list = kd_store_group_list (f->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  g_assert_cmpstr (((KdGroupRow *) list->pdata[0])->name, ==, "engineering");
  g_assert_cmpstr (((KdGroupRow *) list->pdata[1])->name, ==, "ops");

  g_assert_false (kd_store_group_insert (f->store, &again, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "a group named 'ops' already exists");
  g_assert_cmpint (again.id, ==, 0);
  g_clear_error (&error);

  g_assert_true (kd_store_group_delete (f->store, ops, &error));
  g_assert_no_error (error);
  g_assert_false (kd_store_group_delete (f->store, ops, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (kd_store_group_get_by_name (f->store, "ops", &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no group named 'ops'");
}

static void
test_users_update (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gint64 bob = add_user (f->store, "bob");
  KdUserRow change = { .id = bob, .name = (char *) "robert", .password_hash = (char *) "$new",
                       .role = (char *) "admin" };
  KdUserRow clash = { .id = bob, .name = (char *) "alice", .password_hash = (char *) "$x",
                      .role = (char *) "user" };
  KdUserRow ghost = { .id = 9999, .name = (char *) "ghost", .password_hash = (char *) "$x",
                      .role = (char *) "user" };
  g_autoptr(KdUserRow) got = NULL;
  g_autoptr(KdUserRow) still = NULL;

  add_user (f->store, "alice");
  g_assert_true (kd_store_user_update (f->store, &change, &error));
  g_assert_no_error (error);
  got = kd_store_user_get (f->store, bob, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got->name, ==, "robert");
  g_assert_cmpstr (got->password_hash, ==, "$new");
  g_assert_cmpstr (got->role, ==, "admin");

  g_assert_false (kd_store_user_update (f->store, &clash, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "a user named 'alice' already exists");
  g_clear_error (&error);
  still = kd_store_user_get (f->store, bob, &error);
  g_assert_cmpstr (still->name, ==, "robert");

  g_assert_false (kd_store_user_update (f->store, &ghost, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no user with id 9999");
}

static void
test_users_groups (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gint64 bob = add_user (f->store, "bob");
  gint64 ops = add_group (f->store, "ops");
  gint64 eng = add_group (f->store, "engineering");
  g_autoptr(GArray) both = ids_of (ops, eng, ops, (gint64) 0);   /* duplicate ignored */
  g_autoptr(GArray) only_ops = ids_of (ops, (gint64) 0);
  g_autoptr(GArray) with_ghost = ids_of (eng, (gint64) 4242, (gint64) 0);
  g_autoptr(GPtrArray) groups = NULL;

  groups = kd_store_user_get_groups (f->store, bob, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (groups->len, ==, 0);
  g_clear_pointer (&groups, g_ptr_array_unref);

  g_assert_true (kd_store_user_set_groups (f->store, bob, both, &error));
  g_assert_no_error (error);
  groups = kd_store_user_get_groups (f->store, bob, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (groups->len, ==, 2);
  g_assert_cmpstr (((KdGroupRow *) groups->pdata[0])->name, ==, "engineering");
  g_assert_cmpint (((KdGroupRow *) groups->pdata[0])->id, ==, eng);
  g_assert_cmpstr (((KdGroupRow *) groups->pdata[1])->name, ==, "ops");
  g_clear_pointer (&groups, g_ptr_array_unref);

  /* Replaced, not added to. */
  g_assert_true (kd_store_user_set_groups (f->store, bob, only_ops, &error));
  groups = kd_store_user_get_groups (f->store, bob, &error);
  g_assert_cmpuint (groups->len, ==, 1);
  g_assert_cmpstr (((KdGroupRow *) groups->pdata[0])->name, ==, "ops");
  g_clear_pointer (&groups, g_ptr_array_unref);

  /* A missing group: refused whole, the old list stays. */
  g_assert_false (kd_store_user_set_groups (f->store, bob, with_ghost, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "cannot set the groups of user 'bob': no group with id 4242");
  g_clear_error (&error);
  groups = kd_store_user_get_groups (f->store, bob, &error);
  g_assert_cmpuint (groups->len, ==, 1);
  g_assert_cmpstr (((KdGroupRow *) groups->pdata[0])->name, ==, "ops");
  g_clear_pointer (&groups, g_ptr_array_unref);

  g_assert_false (kd_store_user_set_groups (f->store, 777, only_ops, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no user with id 777");
  g_clear_error (&error);

  /* NULL: in no group. */
  g_assert_true (kd_store_user_set_groups (f->store, bob, NULL, &error));
  g_assert_no_error (error);
  groups = kd_store_user_get_groups (f->store, bob, &error);
  g_assert_cmpuint (groups->len, ==, 0);
}

static void
test_tokens_delete_for_user (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gint64 bob = add_user (f->store, "bob");
  gint64 alice = add_user (f->store, "alice");
  KdTokenRow b1 = { .token_hash = (char *) "bb01", .user_id = bob, .expires_at = G_MAXINT64 };
  KdTokenRow b2 = { .token_hash = (char *) "bb02", .user_id = bob, .expires_at = G_MAXINT64 };
  KdTokenRow a1 = { .token_hash = (char *) "aa01", .user_id = alice, .expires_at = G_MAXINT64 };
  g_autoptr(KdTokenRow) kept = NULL;
  g_autoptr(KdTokenRow) gone = NULL;

  g_assert_true (kd_store_token_insert (f->store, &b1, &error));
  g_assert_true (kd_store_token_insert (f->store, &b2, &error));
  g_assert_true (kd_store_token_insert (f->store, &a1, &error));
  g_assert_no_error (error);

  g_assert_true (kd_store_token_delete_for_user (f->store, bob, &error));
  g_assert_no_error (error);
  gone = kd_store_token_get_by_hash (f->store, "bb01", &error);
  g_assert_null (gone);
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  gone = kd_store_token_get_by_hash (f->store, "bb02", &error);
  g_assert_null (gone);
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  kept = kd_store_token_get_by_hash (f->store, "aa01", &error);
  g_assert_no_error (error);
  g_assert_cmpint (kept->user_id, ==, alice);

  /* Nothing left to delete is not an error. */
  g_assert_true (kd_store_token_delete_for_user (f->store, bob, &error));
  g_assert_no_error (error);
}

static void
test_pools_crud (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gint64 image = add_image (f->store, "debian");
  gint64 image2 = add_image (f->store, "fedora");
  gint64 tpl = add_template (f->store, "small");
  KdPoolRow row = { .name = (char *) "office", .image_id = image, .template_id = tpl,
                    .mode = (char *) "persistent", .size = 10, .warm = 2, .idle_timeout = 3600,
                    .disconnect_timeout = 600, .maintenance = TRUE };
  KdPoolRow again = { .name = (char *) "office", .image_id = image, .template_id = tpl,
                      .mode = (char *) "floating" };
  KdPoolRow no_image = { .name = (char *) "bad", .image_id = 999, .template_id = tpl,
                         .mode = (char *) "floating" };
  KdPoolRow no_template = { .name = (char *) "bad", .image_id = image, .template_id = 998,
                            .mode = (char *) "floating" };
  KdPoolRow ghost = { .id = 12345, .name = (char *) "ghost", .image_id = image,
                      .template_id = tpl, .mode = (char *) "floating" };
  g_autoptr(KdPoolRow) got = NULL;
  g_autoptr(KdPoolRow) by_id = NULL;
  g_autoptr(KdPoolRow) updated = NULL;
  g_autoptr(GPtrArray) list = NULL;
  gint64 created_at;

  g_assert_true (kd_store_pool_insert (f->store, &row, &error));
  g_assert_no_error (error);
  g_assert_cmpint (row.id, >, 0);
  g_assert_cmpint (row.created_at, >, 0);
  g_assert_cmpint (row.updated_at, ==, row.created_at);
  created_at = row.created_at;
  add_pool (f->store, "lab", image, tpl);

  got = kd_store_pool_get_by_name (f->store, "office", &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->id, ==, row.id);
  g_assert_cmpint (got->image_id, ==, image);
  g_assert_cmpint (got->template_id, ==, tpl);
  g_assert_cmpstr (got->mode, ==, "persistent");
  g_assert_cmpint (got->size, ==, 10);
  g_assert_cmpint (got->warm, ==, 2);
  g_assert_cmpint (got->idle_timeout, ==, 3600);
  g_assert_cmpint (got->disconnect_timeout, ==, 600);
  g_assert_true (got->maintenance);
  g_assert_cmpint (got->created_at, ==, created_at);

  list = kd_store_pool_list (f->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  g_assert_cmpstr (((KdPoolRow *) list->pdata[0])->name, ==, "lab");
  g_assert_cmpstr (((KdPoolRow *) list->pdata[1])->name, ==, "office");
  g_assert_false (((KdPoolRow *) list->pdata[0])->maintenance);

  g_assert_false (kd_store_pool_insert (f->store, &again, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "a pool named 'office' already exists");
  g_clear_error (&error);
  g_assert_false (kd_store_pool_insert (f->store, &no_image, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "pool 'bad': no image with id 999");
  g_clear_error (&error);
  g_assert_false (kd_store_pool_insert (f->store, &no_template, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "pool 'bad': no template with id 998");
  g_clear_error (&error);

  /* Update writes every column but created_at. */
  g_free (got->name);
  got->name = g_strdup ("office2");
  g_free (got->mode);
  got->mode = g_strdup ("floating");
  got->image_id = image2;
  got->size = 3;
  got->warm = 0;
  got->idle_timeout = 0;
  got->disconnect_timeout = 30;
  got->maintenance = FALSE;
  got->created_at = 1;   /* ignored */
  g_assert_true (kd_store_pool_update (f->store, got, &error));
  g_assert_no_error (error);
  g_assert_cmpint (got->updated_at, >=, created_at);
  by_id = kd_store_pool_get (f->store, row.id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (by_id->name, ==, "office2");
  g_assert_cmpstr (by_id->mode, ==, "floating");
  g_assert_cmpint (by_id->image_id, ==, image2);
  g_assert_cmpint (by_id->size, ==, 3);
  g_assert_cmpint (by_id->warm, ==, 0);
  g_assert_cmpint (by_id->disconnect_timeout, ==, 30);
  g_assert_false (by_id->maintenance);
  g_assert_cmpint (by_id->created_at, ==, created_at);
  g_assert_cmpint (by_id->updated_at, ==, got->updated_at);

  g_free (by_id->name);
  by_id->name = g_strdup ("lab");
  g_assert_false (kd_store_pool_update (f->store, by_id, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "a pool named 'lab' already exists");
  g_clear_error (&error);
  g_free (by_id->name);
  by_id->name = g_strdup ("office2");
  by_id->template_id = 555;
  g_assert_false (kd_store_pool_update (f->store, by_id, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "pool 'office2': no template with id 555");
  g_clear_error (&error);
  g_assert_false (kd_store_pool_update (f->store, &ghost, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no pool with id 12345");
  g_clear_error (&error);

  updated = kd_store_pool_get (f->store, row.id, &error);
  g_assert_cmpint (updated->template_id, ==, tpl);

  g_assert_true (kd_store_pool_delete (f->store, row.id, &error));
  g_assert_no_error (error);
  g_assert_false (kd_store_pool_delete (f->store, row.id, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (kd_store_pool_get_by_name (f->store, "office2", &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no pool named 'office2'");
}

static void
set_desktop_pool (KdStore *s, gint64 desktop_id, gint64 pool_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) d = kd_store_desktop_get (s, desktop_id, &error);

  g_assert_no_error (error);
  d->pool_id = pool_id;
  g_assert_true (kd_store_desktop_update (s, d, &error));
  g_assert_no_error (error);
}

static void
test_pools_in_use (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gint64 hv1 = add_host (f->store, "hv1");
  gint64 hv2 = add_host (f->store, "hv2");
  gint64 image = add_image (f->store, "debian");
  gint64 tpl = add_template (f->store, "small");
  gint64 pool = add_pool (f->store, "office", image, tpl);
  gint64 bob = add_user (f->store, "bob");
  gint64 ops = add_group (f->store, "ops");
  gint64 d1 = add_desktop (f->store, "d1", 0, image, tpl);
  gint64 d2 = add_desktop (f->store, "d2", 0, image, tpl);
  g_autoptr(GArray) hosts = ids_of (hv1, (gint64) 0);
  g_autoptr(GArray) users = ids_of (bob, (gint64) 0);
  g_autoptr(GArray) groups = ids_of (ops, (gint64) 0);
  g_autoptr(GArray) got = NULL;

  set_desktop_pool (f->store, d1, pool);
  set_desktop_pool (f->store, d2, pool);
  g_assert_true (kd_store_pool_set_hosts (f->store, pool, hosts, &error));
  g_assert_true (kd_store_pool_set_users (f->store, pool, users, &error));
  g_assert_true (kd_store_pool_set_groups (f->store, pool, groups, &error));
  g_assert_no_error (error);

  g_assert_false (kd_store_pool_delete (f->store, pool, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_assert_cmpstr (error->message, ==, "pool 'office' still has 2 desktops");
  g_clear_error (&error);

  /* The image and template are held by the pool as well as the desktops. */
  g_assert_false (kd_store_image_delete (f->store, image, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_assert_cmpstr (error->message, ==, "image 'debian' is in use by 2 desktops and 1 pool");
  g_clear_error (&error);
  g_assert_false (kd_store_template_delete (f->store, tpl, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_assert_cmpstr (error->message, ==, "template 'small' is in use by 2 desktops and 1 pool");
  g_clear_error (&error);

  /* A host in a pool's list cannot go; one outside it can. */
  g_assert_false (kd_store_host_delete (f->store, hv1, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_assert_cmpstr (error->message, ==, "host 'hv1' is in use by 1 pool's host list");
  g_clear_error (&error);
  g_assert_true (kd_store_host_delete (f->store, hv2, &error));
  g_assert_no_error (error);

  g_assert_true (kd_store_desktop_delete (f->store, d1, &error));
  g_assert_false (kd_store_pool_delete (f->store, pool, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_assert_cmpstr (error->message, ==, "pool 'office' still has 1 desktop");
  g_clear_error (&error);
  g_assert_true (kd_store_desktop_delete (f->store, d2, &error));
  g_assert_true (kd_store_pool_delete (f->store, pool, &error));
  g_assert_no_error (error);

  /* Its entitlements and host list went with it. */
  got = kd_store_pool_get_hosts (f->store, pool, &error);
  assert_ids (got, (gint64) 0);
  g_clear_pointer (&got, g_array_unref);
  got = kd_store_pool_get_users (f->store, pool, &error);
  assert_ids (got, (gint64) 0);
  g_clear_pointer (&got, g_array_unref);
  got = kd_store_pool_get_groups (f->store, pool, &error);
  assert_ids (got, (gint64) 0);
  g_assert_no_error (error);
  g_assert_true (kd_store_host_delete (f->store, hv1, &error));
  g_assert_true (kd_store_image_delete (f->store, image, &error));
  g_assert_true (kd_store_template_delete (f->store, tpl, &error));
  g_assert_no_error (error);
}

static void
test_pools_entitlements (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gint64 image = add_image (f->store, "debian");
  gint64 tpl = add_template (f->store, "small");
  gint64 office = add_pool (f->store, "office", image, tpl);
  gint64 lab = add_pool (f->store, "lab", image, tpl);
  gint64 closed = add_pool (f->store, "closed", image, tpl);
  gint64 bob = add_user (f->store, "bob");
  gint64 alice = add_user (f->store, "alice");
  gint64 carol = add_user (f->store, "carol");
  gint64 ops = add_group (f->store, "ops");
  gint64 eng = add_group (f->store, "eng");
  gint64 hv1 = add_host (f->store, "hv1");
  gint64 hv2 = add_host (f->store, "hv2");
  g_autoptr(GArray) office_users = ids_of (carol, bob, bob, (gint64) 0);
  g_autoptr(GArray) office_groups = ids_of (ops, (gint64) 0);
  g_autoptr(GArray) lab_groups = ids_of (eng, ops, (gint64) 0);
  g_autoptr(GArray) hosts = ids_of (hv2, hv1, (gint64) 0);
  g_autoptr(GArray) ghost_user = ids_of (alice, (gint64) 31337, (gint64) 0);
  g_autoptr(GArray) ghost_host = ids_of ((gint64) 4040, (gint64) 0);
  g_autoptr(GArray) bob_groups = ids_of (ops, (gint64) 0);
  g_autoptr(GArray) got = NULL;
  g_autoptr(GPtrArray) pools = NULL;

  g_assert_true (kd_store_pool_set_users (f->store, office, office_users, &error));
  g_assert_true (kd_store_pool_set_groups (f->store, office, office_groups, &error));
  g_assert_true (kd_store_pool_set_groups (f->store, lab, lab_groups, &error));
  g_assert_true (kd_store_pool_set_hosts (f->store, office, hosts, &error));
  g_assert_true (kd_store_user_set_groups (f->store, bob, bob_groups, &error));
  g_assert_no_error (error);

  got = kd_store_pool_get_users (f->store, office, &error);
  g_assert_no_error (error);
  assert_ids (got, bob, carol, (gint64) 0);
  g_clear_pointer (&got, g_array_unref);
  got = kd_store_pool_get_groups (f->store, lab, &error);
  assert_ids (got, ops, eng, (gint64) 0);
  g_clear_pointer (&got, g_array_unref);
  got = kd_store_pool_get_hosts (f->store, office, &error);
  assert_ids (got, hv1, hv2, (gint64) 0);
  g_clear_pointer (&got, g_array_unref);
  got = kd_store_pool_get_hosts (f->store, lab, &error);   /* none: every host */
  assert_ids (got, (gint64) 0);
  g_clear_pointer (&got, g_array_unref);

  /* Direct, through a group, both, neither. */
  g_assert_true (kd_store_pool_is_entitled (f->store, office, carol, &error));
  g_assert_true (kd_store_pool_is_entitled (f->store, office, bob, &error));
  g_assert_true (kd_store_pool_is_entitled (f->store, lab, bob, &error));
  g_assert_false (kd_store_pool_is_entitled (f->store, lab, carol, &error));
  g_assert_false (kd_store_pool_is_entitled (f->store, closed, bob, &error));
  g_assert_false (kd_store_pool_is_entitled (f->store, office, alice, &error));
  g_assert_false (kd_store_pool_is_entitled (f->store, 999, bob, &error));
  g_assert_no_error (error);

  /* bob: office directly and through ops, lab through ops: each once, by name. */
  pools = kd_store_pool_list_entitled (f->store, bob, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (pools->len, ==, 2);
  g_assert_cmpstr (((KdPoolRow *) pools->pdata[0])->name, ==, "lab");
  g_assert_cmpstr (((KdPoolRow *) pools->pdata[1])->name, ==, "office");
  g_clear_pointer (&pools, g_ptr_array_unref);
  pools = kd_store_pool_list_entitled (f->store, alice, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (pools->len, ==, 0);
  g_clear_pointer (&pools, g_ptr_array_unref);

  /* A missing member refuses the whole list; the old one stays. */
  g_assert_false (kd_store_pool_set_users (f->store, office, ghost_user, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "cannot set the users of pool 'office': no user with id 31337");
  g_clear_error (&error);
  g_assert_false (kd_store_pool_is_entitled (f->store, office, alice, &error));
  got = kd_store_pool_get_users (f->store, office, &error);
  assert_ids (got, bob, carol, (gint64) 0);
  g_clear_pointer (&got, g_array_unref);
  g_assert_false (kd_store_pool_set_hosts (f->store, office, ghost_host, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "cannot set the hosts of pool 'office': no host with id 4040");
  g_clear_error (&error);
  got = kd_store_pool_get_hosts (f->store, office, &error);
  assert_ids (got, hv1, hv2, (gint64) 0);
  g_clear_pointer (&got, g_array_unref);
  g_assert_false (kd_store_pool_set_groups (f->store, 999, NULL, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no pool with id 999");
  g_clear_error (&error);

  /* Inside a caller's transaction the change is the caller's to undo. */
  g_assert_true (kd_store_begin (f->store, &error));
  g_assert_true (kd_store_pool_set_users (f->store, office, NULL, &error));
  g_assert_no_error (error);
  g_assert_false (kd_store_pool_is_entitled (f->store, office, carol, &error));
  kd_store_rollback (f->store);
  g_assert_true (kd_store_pool_is_entitled (f->store, office, carol, &error));
  /* A failed set inside a transaction leaves the transaction usable. */
  g_assert_true (kd_store_begin (f->store, &error));
  g_assert_false (kd_store_pool_set_users (f->store, office, ghost_user, &error));
  g_clear_error (&error);
  g_assert_true (kd_store_pool_set_hosts (f->store, office, NULL, &error));
  g_assert_true (kd_store_commit (f->store, &error));
  g_assert_no_error (error);
  got = kd_store_pool_get_hosts (f->store, office, &error);
  assert_ids (got, (gint64) 0);
  g_clear_pointer (&got, g_array_unref);
  got = kd_store_pool_get_users (f->store, office, &error);
  assert_ids (got, bob, carol, (gint64) 0);
}

static void
test_groups_delete_cascades (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gint64 image = add_image (f->store, "debian");
  gint64 tpl = add_template (f->store, "small");
  gint64 pool = add_pool (f->store, "office", image, tpl);
  gint64 bob = add_user (f->store, "bob");
  gint64 ops = add_group (f->store, "ops");
  gint64 eng = add_group (f->store, "eng");
  g_autoptr(GArray) groups = ids_of (ops, eng, (gint64) 0);
  g_autoptr(GArray) pool_groups = ids_of (ops, (gint64) 0);
  g_autoptr(GArray) got = NULL;
  g_autoptr(GPtrArray) mine = NULL;
  g_autoptr(GPtrArray) entitled = NULL;

  g_assert_true (kd_store_user_set_groups (f->store, bob, groups, &error));
  g_assert_true (kd_store_pool_set_groups (f->store, pool, pool_groups, &error));
  g_assert_true (kd_store_pool_is_entitled (f->store, pool, bob, &error));
  g_assert_no_error (error);

  g_assert_true (kd_store_group_delete (f->store, ops, &error));
  g_assert_no_error (error);
  g_assert_false (kd_store_pool_is_entitled (f->store, pool, bob, &error));
  g_assert_no_error (error);
  got = kd_store_pool_get_groups (f->store, pool, &error);
  assert_ids (got, (gint64) 0);
  mine = kd_store_user_get_groups (f->store, bob, &error);
  g_assert_cmpuint (mine->len, ==, 1);
  g_assert_cmpstr (((KdGroupRow *) mine->pdata[0])->name, ==, "eng");
  entitled = kd_store_pool_list_entitled (f->store, bob, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (entitled->len, ==, 0);
  /* The user himself stays. */
  g_assert_true (kd_store_user_delete (f->store, bob, &error));
  g_assert_no_error (error);
}

static void
test_users_delete_frees_desktops (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gint64 image = add_image (f->store, "debian");
  gint64 tpl = add_template (f->store, "small");
  gint64 pool = add_pool (f->store, "office", image, tpl);
  gint64 bob = add_user (f->store, "bob");
  gint64 ops = add_group (f->store, "ops");
  gint64 d1 = add_desktop (f->store, "d1", 0, image, tpl);
  g_autoptr(GArray) groups = ids_of (ops, (gint64) 0);
  g_autoptr(GArray) users = ids_of (bob, (gint64) 0);
  KdTokenRow token = { .token_hash = (char *) "cc01", .user_id = bob, .expires_at = G_MAXINT64 };
  g_autoptr(KdDesktopRow) freed = NULL;
  g_autoptr(KdTokenRow) gone = NULL;
  g_autoptr(GPtrArray) held = NULL;
  g_autoptr(GArray) entitled = NULL;
  g_autoptr(GPtrArray) members = NULL;

  set_desktop_pool (f->store, d1, pool);
  g_assert_true (kd_store_desktop_assign (f->store, d1, bob, 5000, &error));
  g_assert_true (kd_store_token_insert (f->store, &token, &error));
  g_assert_true (kd_store_user_set_groups (f->store, bob, groups, &error));
  g_assert_true (kd_store_pool_set_users (f->store, pool, users, &error));
  g_assert_no_error (error);

  g_assert_true (kd_store_user_delete (f->store, bob, &error));
  g_assert_no_error (error);

  freed = kd_store_desktop_get (f->store, d1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (freed->user_id, ==, 0);
  g_assert_cmpint (freed->pool_id, ==, pool);
  held = kd_store_desktop_list_by_user (f->store, bob, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (held->len, ==, 0);
  gone = kd_store_token_get_by_hash (f->store, "cc01", &error);
  g_assert_null (gone);
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  entitled = kd_store_pool_get_users (f->store, pool, &error);
  assert_ids (entitled, (gint64) 0);
  members = kd_store_user_get_groups (f->store, bob, &error);
  g_assert_cmpuint (members->len, ==, 0);
  g_assert_no_error (error);

  /* Freed, so someone else can have it. */
  g_assert_true (kd_store_desktop_assign (f->store, d1, add_user (f->store, "alice"), 6000, &error));
  g_assert_no_error (error);
}

static void
test_desktops_assign (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gint64 image = add_image (f->store, "debian");
  gint64 tpl = add_template (f->store, "small");
  gint64 bob = add_user (f->store, "bob");
  gint64 alice = add_user (f->store, "alice");
  gint64 d1 = add_desktop (f->store, "d1", 0, image, tpl);
  g_autoptr(KdDesktopRow) got = NULL;
  g_autoptr(KdDesktopRow) still = NULL;
  g_autoptr(KdDesktopRow) again = NULL;

  g_assert_true (kd_store_desktop_assign (f->store, d1, bob, 1000, &error));
  g_assert_no_error (error);
  got = kd_store_desktop_get (f->store, d1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->user_id, ==, bob);
  g_assert_cmpint (got->assigned_at, ==, 1000);
  g_assert_cmpint (got->updated_at, ==, 1000);
  g_assert_cmpstr (got->state, ==, "provisioning");   /* nothing else changed */

  /* Twice: the first holder keeps it. */
  g_assert_false (kd_store_desktop_assign (f->store, d1, alice, 2000, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_assert_cmpstr (error->message, ==, "desktop 'd1' is already assigned");
  g_clear_error (&error);
  g_assert_false (kd_store_desktop_assign (f->store, d1, bob, 3000, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_clear_error (&error);
  still = kd_store_desktop_get (f->store, d1, &error);
  g_assert_cmpint (still->user_id, ==, bob);
  g_assert_cmpint (still->assigned_at, ==, 1000);

  g_assert_false (kd_store_desktop_assign (f->store, 9999, bob, 1000, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no desktop with id 9999");
  g_clear_error (&error);

  /* Released through update; a user who does not exist is refused. */
  still->user_id = 0;
  still->assigned_at = 0;
  g_assert_true (kd_store_desktop_update (f->store, still, &error));
  g_assert_no_error (error);
  g_assert_false (kd_store_desktop_assign (f->store, d1, 777, 4000, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "cannot assign desktop 'd1': no user with id 777");
  g_clear_error (&error);
  g_assert_false (kd_store_desktop_assign (f->store, d1, 0, 4000, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_true (kd_store_desktop_assign (f->store, d1, alice, 5000, &error));
  g_assert_no_error (error);
  again = kd_store_desktop_get (f->store, d1, &error);
  g_assert_cmpint (again->user_id, ==, alice);
  g_assert_cmpint (again->assigned_at, ==, 5000);
}

static void
test_desktops_session_fields (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gint64 image = add_image (f->store, "debian");
  gint64 tpl = add_template (f->store, "small");
  gint64 office = add_pool (f->store, "office", image, tpl);
  gint64 lab = add_pool (f->store, "lab", image, tpl);
  gint64 bob = add_user (f->store, "bob");
  gint64 alice = add_user (f->store, "alice");
  KdDesktopRow row = { .name = (char *) "d2", .domain = (char *) "kvmdesk-test-d2",
                       .image_id = image, .template_id = tpl,
                       .overlay_volume = (char *) "kvmdesk-test-d2.qcow2",
                       .state = (char *) "connected", .pool_id = office, .user_id = bob,
                       .assigned_at = 11, .connected_since = 12, .last_seen = 13,
                       .disconnected_at = 14, .needs_reset = TRUE };
  KdDesktopRow bad_pool = { .name = (char *) "d9", .domain = (char *) "kvmdesk-test-d9",
                            .image_id = image, .template_id = tpl,
                            .overlay_volume = (char *) "kvmdesk-test-d9.qcow2",
                            .state = (char *) "stopped", .pool_id = 4444 };
  g_autoptr(KdDesktopRow) plain = NULL;
  g_autoptr(KdDesktopRow) got = NULL;
  g_autoptr(KdDesktopRow) moved = NULL;
  g_autoptr(GPtrArray) in_office = NULL;
  g_autoptr(GPtrArray) in_lab = NULL;
  g_autoptr(GPtrArray) bobs = NULL;
  g_autoptr(GPtrArray) alices = NULL;
  gint64 d1 = add_desktop (f->store, "d1", 0, image, tpl);
  gint64 d3 = add_desktop (f->store, "d3", 0, image, tpl);

  /* Not in a pool, held by nobody: all zero. */
  plain = kd_store_desktop_get (f->store, d1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (plain->pool_id, ==, 0);
  g_assert_cmpint (plain->user_id, ==, 0);
  g_assert_cmpint (plain->assigned_at, ==, 0);
  g_assert_cmpint (plain->connected_since, ==, 0);
  g_assert_cmpint (plain->last_seen, ==, 0);
  g_assert_cmpint (plain->disconnected_at, ==, 0);
  g_assert_false (plain->needs_reset);

  g_assert_true (kd_store_desktop_insert (f->store, &row, &error));
  g_assert_no_error (error);
  got = kd_store_desktop_get_by_name (f->store, "d2", &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->pool_id, ==, office);
  g_assert_cmpint (got->user_id, ==, bob);
  g_assert_cmpint (got->assigned_at, ==, 11);
  g_assert_cmpint (got->connected_since, ==, 12);
  g_assert_cmpint (got->last_seen, ==, 13);
  g_assert_cmpint (got->disconnected_at, ==, 14);
  g_assert_true (got->needs_reset);

  g_assert_false (kd_store_desktop_insert (f->store, &bad_pool, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==,
                   "desktop 'd9' refers to a host, image, template, pool or user that does not exist");
  g_clear_error (&error);

  /* Update writes them all, and 0 back to NULL. */
  got->pool_id = lab;
  got->user_id = 0;
  got->assigned_at = 0;
  got->connected_since = 0;
  got->last_seen = 21;
  got->disconnected_at = 22;
  got->needs_reset = FALSE;
  g_assert_true (kd_store_desktop_update (f->store, got, &error));
  g_assert_no_error (error);
  moved = kd_store_desktop_get (f->store, got->id, &error);
  g_assert_cmpint (moved->pool_id, ==, lab);
  g_assert_cmpint (moved->user_id, ==, 0);
  g_assert_cmpint (moved->assigned_at, ==, 0);
  g_assert_cmpint (moved->last_seen, ==, 21);
  g_assert_cmpint (moved->disconnected_at, ==, 22);
  g_assert_false (moved->needs_reset);

  set_desktop_pool (f->store, d3, lab);
  set_desktop_pool (f->store, d1, office);
  g_assert_true (kd_store_desktop_assign (f->store, d3, alice, 30, &error));
  g_assert_true (kd_store_desktop_assign (f->store, d1, alice, 31, &error));
  g_assert_true (kd_store_desktop_assign (f->store, got->id, bob, 32, &error));
  g_assert_no_error (error);

  in_lab = kd_store_desktop_list_by_pool (f->store, lab, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (in_lab->len, ==, 2);
  g_assert_cmpstr (((KdDesktopRow *) in_lab->pdata[0])->name, ==, "d2");
  g_assert_cmpstr (((KdDesktopRow *) in_lab->pdata[1])->name, ==, "d3");
  in_office = kd_store_desktop_list_by_pool (f->store, office, &error);
  g_assert_cmpuint (in_office->len, ==, 1);
  g_assert_cmpstr (((KdDesktopRow *) in_office->pdata[0])->name, ==, "d1");

  alices = kd_store_desktop_list_by_user (f->store, alice, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (alices->len, ==, 2);
  g_assert_cmpstr (((KdDesktopRow *) alices->pdata[0])->name, ==, "d1");
  g_assert_cmpstr (((KdDesktopRow *) alices->pdata[1])->name, ==, "d3");
  bobs = kd_store_desktop_list_by_user (f->store, bob, &error);
  g_assert_cmpuint (bobs->len, ==, 1);
  g_assert_cmpstr (((KdDesktopRow *) bobs->pdata[0])->name, ==, "d2");
  g_assert_cmpint (((KdDesktopRow *) bobs->pdata[0])->assigned_at, ==, 32);
}

static gint64
add_pool_event (KdStore *s, const char *name, const char *actor, const char *pool,
                const char *user)
{
  g_autoptr(GError) error = NULL;
  KdEventRow row = { .object_type = (char *) "desktop", .object_name = (char *) name,
                     .actor = (char *) actor, .action = (char *) "state",
                     .pool = (char *) pool, .user = (char *) user };

  g_assert_true (kd_store_event_insert (s, &row, &error));
  g_assert_no_error (error);
  return row.id;
}

static void
test_events_query (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(GPtrArray) office = NULL;
  g_autoptr(GPtrArray) bob = NULL;
  g_autoptr(GPtrArray) bob_office = NULL;
  g_autoptr(GPtrArray) bob_d2 = NULL;
  g_autoptr(GPtrArray) since = NULL;
  g_autoptr(GPtrArray) limited = NULL;
  g_autoptr(GPtrArray) nobody = NULL;
  KdEventFilter f_office = { .pool = "office" };
  KdEventFilter f_bob = { .user = "bob" };
  KdEventFilter f_bob_office = { .user = "bob", .pool = "office" };
  KdEventFilter f_bob_d2 = { .user = "bob", .object_type = "desktop", .object_name = "d2" };
  KdEventFilter f_since = { .user = "bob", .since_id = 0, .limit = 0 };
  KdEventFilter f_limit = { .pool = "office", .limit = 1 };
  KdEventFilter f_nobody = { .user = "mallory" };
  gint64 e1 = add_pool_event (f->store, "d1", "system", "office", "bob");   /* about bob */
  gint64 e2 = add_pool_event (f->store, "d2", "bob", "lab", NULL);          /* by bob */
  gint64 e3 = add_pool_event (f->store, "d3", "admin", "office", "alice");
  gint64 e4 = add_pool_event (f->store, "d4", "admin", NULL, NULL);
  gint64 e5 = add_pool_event (f->store, "d2", "system", "lab", "bob");
  KdEventRow *e;

  all = kd_store_event_query (f->store, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (all->len, ==, 5);
  g_assert_cmpint (((KdEventRow *) all->pdata[0])->id, ==, e5);
  e = all->pdata[4];
  g_assert_cmpint (e->id, ==, e1);
  g_assert_cmpstr (e->pool, ==, "office");
  g_assert_cmpstr (e->user, ==, "bob");
  e = all->pdata[1];
  g_assert_cmpint (e->id, ==, e4);
  g_assert_null (e->pool);
  g_assert_null (e->user);

  office = kd_store_event_query (f->store, &f_office, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (office->len, ==, 2);
  g_assert_cmpint (((KdEventRow *) office->pdata[0])->id, ==, e3);
  g_assert_cmpint (((KdEventRow *) office->pdata[1])->id, ==, e1);

  /* User matches the event's user or its actor. */
  bob = kd_store_event_query (f->store, &f_bob, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (bob->len, ==, 3);
  g_assert_cmpint (((KdEventRow *) bob->pdata[0])->id, ==, e5);
  g_assert_cmpint (((KdEventRow *) bob->pdata[1])->id, ==, e2);
  g_assert_cmpint (((KdEventRow *) bob->pdata[2])->id, ==, e1);

  bob_office = kd_store_event_query (f->store, &f_bob_office, &error);
  g_assert_cmpuint (bob_office->len, ==, 1);
  g_assert_cmpint (((KdEventRow *) bob_office->pdata[0])->id, ==, e1);
  bob_d2 = kd_store_event_query (f->store, &f_bob_d2, &error);
  g_assert_cmpuint (bob_d2->len, ==, 2);

  f_since.since_id = e2;
  since = kd_store_event_query (f->store, &f_since, &error);
  g_assert_cmpuint (since->len, ==, 1);
  g_assert_cmpint (((KdEventRow *) since->pdata[0])->id, ==, e5);

  limited = kd_store_event_query (f->store, &f_limit, &error);
  g_assert_cmpuint (limited->len, ==, 1);
  g_assert_cmpint (((KdEventRow *) limited->pdata[0])->id, ==, e3);

  nobody = kd_store_event_query (f->store, &f_nobody, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (nobody->len, ==, 0);
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

/* ---- schema 4: image versions, edits, volumes per version ------------- */

static void
test_image_versions (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageRow) image = NULL;
  g_autoptr(KdImageVersionRow) first = NULL;
  g_autoptr(KdImageVersionRow) got = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(GPtrArray) none = NULL;
  gint64 deb = add_image (f->store, "debian");
  gint64 alp = add_image (f->store, "alpine");
  KdImageVersionRow v3 = { .image_id = deb, .version = 3, .format = (char *) "raw",
                           .virtual_size = 30, .file_size = 3, .actor = (char *) "carol" };
  KdImageVersionRow v2 = { .image_id = deb, .version = 2, .format = (char *) "qcow2",
                           .virtual_size = 20, .file_size = 2, .note = (char *) "security updates",
                           .actor = (char *) "alice" };
  KdImageVersionRow again = { .image_id = deb, .version = 2, .format = (char *) "qcow2" };
  KdImageVersionRow orphan = { .image_id = 999, .version = 1, .format = (char *) "qcow2" };
  KdImageVersionRow zero = { .image_id = alp, .version = 0, .format = (char *) "qcow2" };

  /* kd_store_image_insert() recorded version 1 from the row. */
  image = kd_store_image_get (f->store, deb, &error);
  g_assert_no_error (error);
  g_assert_cmpint (image->current_version, ==, 1);
  first = kd_store_image_version_get (f->store, deb, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (first->image_id, ==, deb);
  g_assert_cmpint (first->version, ==, 1);
  g_assert_cmpstr (first->format, ==, "qcow2");
  g_assert_cmpint (first->virtual_size, ==, 1 << 30);
  g_assert_cmpint (first->file_size, ==, 1 << 20);
  g_assert_null (first->note);
  g_assert_null (first->actor);
  g_assert_cmpint (first->created_at, ==, image->created_at);

  /* Inserted out of order, listed oldest first. */
  g_assert_true (kd_store_image_version_insert (f->store, &v3, &error));
  g_assert_no_error (error);
  g_assert_true (kd_store_image_version_insert (f->store, &v2, &error));
  g_assert_no_error (error);
  g_assert_cmpint (v2.id, >, v3.id);
  g_assert_cmpint (v2.created_at, >, 0);
  got = kd_store_image_version_get (f->store, deb, 2, &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->id, ==, v2.id);
  g_assert_cmpstr (got->note, ==, "security updates");
  g_assert_cmpstr (got->actor, ==, "alice");
  g_assert_cmpint (got->virtual_size, ==, 20);
  g_assert_cmpint (got->created_at, ==, v2.created_at);
  list = kd_store_image_version_list (f->store, deb, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 3);
  for (guint i = 0; i < list->len; i++)
    g_assert_cmpint (((KdImageVersionRow *) list->pdata[i])->version, ==, i + 1);
  g_assert_cmpstr (((KdImageVersionRow *) list->pdata[2])->format, ==, "raw");

  /* (image, version) is unique; other images are untouched. */
  g_assert_false (kd_store_image_version_insert (f->store, &again, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "image 'debian' already has version 2");
  g_clear_error (&error);
  g_assert_false (kd_store_image_version_insert (f->store, &orphan, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (kd_store_image_version_insert (f->store, &zero, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "versions start at 1"));
  g_clear_error (&error);
  g_assert_null (kd_store_image_version_get (f->store, alp, 2, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "image 'alpine' has no version 2");
  g_clear_error (&error);
  g_clear_pointer (&list, g_ptr_array_unref);
  list = kd_store_image_version_list (f->store, alp, &error);
  g_assert_cmpuint (list->len, ==, 1);
  none = kd_store_image_version_list (f->store, 999, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (none->len, ==, 0);
}

static void
test_images_update (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageRow) image = NULL;
  g_autoptr(KdImageRow) after = NULL;
  g_autoptr(KdImageRow) unchanged = NULL;
  gint64 deb = add_image (f->store, "debian");
  KdImageVersionRow v2 = { .image_id = deb, .version = 2, .format = (char *) "raw",
                           .virtual_size = 5 << 20, .file_size = 5 << 20 };
  KdImageRow ghost = { .id = 999, .current_version = 1, .format = (char *) "raw" };

  g_assert_true (kd_store_image_version_insert (f->store, &v2, &error));
  g_assert_no_error (error);
  image = kd_store_image_get (f->store, deb, &error);
  image->current_version = 2;
  g_free (image->format);
  image->format = g_strdup ("raw");
  image->virtual_size = 5 << 20;
  image->file_size = 5 << 20;
  g_assert_true (kd_store_image_update (f->store, image, &error));
  g_assert_no_error (error);
  after = kd_store_image_get_by_name (f->store, "debian", &error);
  g_assert_no_error (error);
  g_assert_cmpint (after->current_version, ==, 2);
  g_assert_cmpstr (after->format, ==, "raw");
  g_assert_cmpint (after->virtual_size, ==, 5 << 20);
  g_assert_cmpint (after->file_size, ==, 5 << 20);
  g_assert_cmpint (after->created_at, ==, image->created_at);

  /* Only a version the image has can be current; nothing changes. */
  image->current_version = 7;
  image->virtual_size = 1;
  g_assert_false (kd_store_image_update (f->store, image, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "image 'debian' has no version 7");
  g_clear_error (&error);
  unchanged = kd_store_image_get (f->store, deb, &error);
  g_assert_cmpint (unchanged->current_version, ==, 2);
  g_assert_cmpint (unchanged->virtual_size, ==, 5 << 20);

  g_assert_false (kd_store_image_update (f->store, &ghost, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no image with id 999");
}

/* Makes every write of a version with format 'boom' fail, behind the
 * store's back, so that an image insert fails half way. */
static void
refuse_boom_versions (const char *path)
{
  sqlite3 *db = NULL;

  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "CREATE TRIGGER test_refuse_boom BEFORE INSERT ON "
                                     "image_versions WHEN NEW.format = 'boom' "
                                     "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
                                 NULL, NULL, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_close (db), ==, SQLITE_OK);
}

/* An image and its version 1 are written together or not at all, with
 * and without a transaction of the caller's. */
static void
test_images_insert_atomic (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) images = NULL;
  g_autoptr(GPtrArray) hosts = NULL;
  g_autoptr(GPtrArray) versions = NULL;
  g_autoptr(KdImageVersionRow) third = NULL;
  KdImageRow boom = { .name = (char *) "boom", .format = (char *) "boom" };
  KdImageRow later = { .name = (char *) "later", .format = (char *) "qcow2",
                       .current_version = 3 };
  gint64 deb;

  refuse_boom_versions (f->path);

  g_assert_false (kd_store_image_insert (f->store, &boom, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "refused by the test"));
  g_clear_error (&error);
  g_assert_cmpint (boom.id, ==, 0);
  images = kd_store_image_list (f->store, &error);
  g_assert_cmpuint (images->len, ==, 0);

  /* Inside a caller's transaction: only the image is undone, the
   * caller's other work stays and commits. */
  g_assert_true (kd_store_begin (f->store, &error));
  add_host (f->store, "hv1");
  deb = add_image (f->store, "debian");
  g_assert_false (kd_store_image_insert (f->store, &boom, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED);
  g_clear_error (&error);
  g_assert_true (kd_store_commit (f->store, &error));
  g_assert_no_error (error);
  g_clear_pointer (&images, g_ptr_array_unref);
  images = kd_store_image_list (f->store, &error);
  g_assert_cmpuint (images->len, ==, 1);
  g_assert_cmpint (((KdImageRow *) images->pdata[0])->id, ==, deb);
  hosts = kd_store_host_list (f->store, &error);
  g_assert_cmpuint (hosts->len, ==, 1);
  versions = kd_store_image_version_list (f->store, deb, &error);
  g_assert_cmpuint (versions->len, ==, 1);

  /* A caller's rollback takes both back. */
  g_assert_true (kd_store_begin (f->store, &error));
  add_image (f->store, "alpine");
  kd_store_rollback (f->store);
  g_assert_null (kd_store_image_get_by_name (f->store, "alpine", &error));
  g_clear_error (&error);
  g_clear_pointer (&versions, g_ptr_array_unref);
  versions = kd_store_image_version_list (f->store, deb + 1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (versions->len, ==, 0);

  /* A first version other than 1 is recorded as given. */
  g_assert_true (kd_store_image_insert (f->store, &later, &error));
  g_assert_no_error (error);
  g_assert_cmpint (later.current_version, ==, 3);
  third = kd_store_image_version_get (f->store, later.id, 3, &error);
  g_assert_no_error (error);
}

static void
test_image_volumes_versions (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageVolumeRow) current = NULL;
  g_autoptr(KdImageVolumeRow) now_current = NULL;
  g_autoptr(KdImageVolumeRow) old = NULL;
  g_autoptr(KdImageVolumeRow) updated = NULL;
  g_autoptr(KdImageRow) image = NULL;
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(GPtrArray) of_deb = NULL;
  gint64 hv_b = add_host (f->store, "hv-b");
  gint64 hv_a = add_host (f->store, "hv-a");
  gint64 deb = add_image (f->store, "debian");
  gint64 alp = add_image (f->store, "alpine");
  gint64 deb1_b = add_volume (f->store, deb, hv_b, "kvmdesk-debian-1");
  KdImageVersionRow v2 = { .image_id = deb, .version = 2, .format = (char *) "qcow2" };
  KdImageVolumeRow deb2_b = { .image_id = deb, .version = 2, .host_id = hv_b,
                              .volume = (char *) "kvmdesk-debian-2" };
  KdImageVolumeRow deb2_b_again = { .image_id = deb, .version = 2, .host_id = hv_b,
                                    .volume = (char *) "kvmdesk-debian-2b" };
  KdImageVolumeRow deb2_a = { .image_id = deb, .version = 2, .host_id = hv_a,
                              .volume = (char *) "kvmdesk-debian-2" };

  add_volume (f->store, alp, hv_a, "kvmdesk-alpine-1");
  add_volume (f->store, deb, hv_a, "kvmdesk-debian-1");

  /* Version 0 on insert stored 1. */
  current = kd_store_image_volume_get (f->store, deb, hv_b, &error);
  g_assert_no_error (error);
  g_assert_cmpint (current->id, ==, deb1_b);
  g_assert_cmpint (current->version, ==, 1);

  /* A second version on the same host is a second volume... */
  g_assert_true (kd_store_image_version_insert (f->store, &v2, &error));
  g_assert_true (kd_store_image_volume_insert (f->store, &deb2_b, &error));
  g_assert_no_error (error);
  g_assert_cmpint (deb2_b.version, ==, 2);
  g_free (deb2_b.state);
  g_assert_true (kd_store_image_volume_insert (f->store, &deb2_a, &error));
  g_assert_no_error (error);
  g_free (deb2_a.state);
  /* ...but one version has one volume per host. */
  g_assert_false (kd_store_image_volume_insert (f->store, &deb2_b_again, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "image 'debian' version 2 already has a volume on host 'hv-b'");
  g_clear_error (&error);

  /* Until the image's current version changes, get returns version 1. */
  g_clear_pointer (&current, kd_image_volume_row_free);
  current = kd_store_image_volume_get (f->store, deb, hv_b, &error);
  g_assert_cmpint (current->id, ==, deb1_b);
  image = kd_store_image_get (f->store, deb, &error);
  image->current_version = 2;
  g_assert_true (kd_store_image_update (f->store, image, &error));
  g_assert_no_error (error);
  now_current = kd_store_image_volume_get (f->store, deb, hv_b, &error);
  g_assert_no_error (error);
  g_assert_cmpint (now_current->id, ==, deb2_b.id);
  g_assert_cmpint (now_current->version, ==, 2);
  g_assert_cmpstr (now_current->volume, ==, "kvmdesk-debian-2");
  old = kd_store_image_volume_get_version (f->store, deb, 1, hv_b, &error);
  g_assert_no_error (error);
  g_assert_cmpint (old->id, ==, deb1_b);

  /* Updating a volume of any version still works. */
  g_free (now_current->state);
  now_current->state = g_strdup ("ready");
  now_current->path = g_strdup ("/pool/kvmdesk-debian-2");
  g_assert_true (kd_store_image_volume_update (f->store, now_current, &error));
  g_assert_no_error (error);
  updated = kd_store_image_volume_get_version (f->store, deb, 2, hv_b, &error);
  g_assert_cmpstr (updated->state, ==, "ready");
  g_assert_cmpstr (updated->path, ==, "/pool/kvmdesk-debian-2");
  g_assert_cmpint (updated->version, ==, 2);

  /* Missing volumes say which version. */
  g_assert_null (kd_store_image_volume_get_version (f->store, deb, 3, hv_a, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "image 'debian' version 3 has no volume on host 'hv-a'");
  g_clear_error (&error);
  g_assert_null (kd_store_image_volume_get_version (f->store, deb, 0, hv_a, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (kd_store_image_volume_get (f->store, alp, hv_b, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "image 'alpine' version 1 has no volume on host 'hv-b'");
  g_clear_error (&error);
  g_assert_null (kd_store_image_volume_get (f->store, 999, hv_b, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no image with id 999");
  g_clear_error (&error);

  /* Every version, by image name, version, host name. */
  all = kd_store_image_volume_list (f->store, -1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (all->len, ==, 5);
  {
    struct { gint64 image, version, host; } want[] = {
      { alp, 1, hv_a }, { deb, 1, hv_a }, { deb, 1, hv_b }, { deb, 2, hv_a }, { deb, 2, hv_b },
    };
    for (gsize i = 0; i < G_N_ELEMENTS (want); i++)
      {
        KdImageVolumeRow *r = all->pdata[i];
        g_assert_cmpint (r->image_id, ==, want[i].image);
        g_assert_cmpint (r->version, ==, want[i].version);
        g_assert_cmpint (r->host_id, ==, want[i].host);
      }
  }
  of_deb = kd_store_image_volume_list (f->store, deb, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (of_deb->len, ==, 4);
  g_assert_cmpint (((KdImageVolumeRow *) of_deb->pdata[0])->version, ==, 1);
  g_assert_cmpint (((KdImageVolumeRow *) of_deb->pdata[0])->host_id, ==, hv_a);
  g_assert_cmpint (((KdImageVolumeRow *) of_deb->pdata[3])->version, ==, 2);
  g_assert_cmpint (((KdImageVolumeRow *) of_deb->pdata[3])->host_id, ==, hv_b);
}

static void
test_image_edits (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageEditRow) got = NULL;
  g_autoptr(KdImageEditRow) updated = NULL;
  g_autoptr(KdImageEditRow) orphaned = NULL;
  gint64 hv1 = add_host (f->store, "hv1");
  gint64 hv2 = add_host (f->store, "hv2");
  gint64 deb = add_image (f->store, "debian");
  gint64 alp = add_image (f->store, "alpine");
  gint64 small = add_template (f->store, "small");
  gint64 editor = add_desktop (f->store, "edit-debian", hv1, deb, small);
  KdImageEditRow edit = { .image_id = deb, .version = 2, .host_id = hv1,
                          .volume = (char *) "kvmdesk-edit-debian-2", .actor = (char *) "alice" };
  KdImageEditRow second = { .image_id = deb, .version = 2, .host_id = hv2,
                            .volume = (char *) "kvmdesk-edit-debian-2b", .actor = (char *) "bob" };
  KdImageEditRow no_host = { .image_id = alp, .version = 2, .host_id = 999,
                             .volume = (char *) "x" };
  KdImageEditRow no_image = { .image_id = 999, .version = 2, .host_id = hv1,
                              .volume = (char *) "x" };
  KdImageEditRow not_edited = { .image_id = alp };

  g_assert_null (kd_store_image_edit_get (f->store, deb, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "image 'debian' is not being edited");
  g_clear_error (&error);

  g_assert_true (kd_store_image_edit_insert (f->store, &edit, &error));
  g_assert_no_error (error);
  g_assert_cmpint (edit.created_at, >, 0);
  got = kd_store_image_edit_get (f->store, deb, &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->image_id, ==, deb);
  g_assert_cmpint (got->version, ==, 2);
  g_assert_cmpint (got->host_id, ==, hv1);
  g_assert_cmpstr (got->volume, ==, "kvmdesk-edit-debian-2");
  g_assert_null (got->path);
  g_assert_cmpint (got->desktop_id, ==, 0);
  g_assert_cmpstr (got->actor, ==, "alice");
  g_assert_cmpint (got->created_at, ==, edit.created_at);

  /* At most one edit per image. */
  g_assert_false (kd_store_image_edit_insert (f->store, &second, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_assert_cmpstr (error->message, ==, "image 'debian' is already being edited");
  g_clear_error (&error);
  g_assert_false (kd_store_image_edit_insert (f->store, &no_host, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (kd_store_image_edit_insert (f->store, &no_image, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Update writes path and desktop only. */
  g_free (got->path);
  got->path = g_strdup ("/pool/kvmdesk-edit-debian-2");
  got->desktop_id = editor;
  got->version = 9;
  g_assert_true (kd_store_image_edit_update (f->store, got, &error));
  g_assert_no_error (error);
  updated = kd_store_image_edit_get (f->store, deb, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (updated->path, ==, "/pool/kvmdesk-edit-debian-2");
  g_assert_cmpint (updated->desktop_id, ==, editor);
  g_assert_cmpint (updated->version, ==, 2);
  g_assert_false (kd_store_image_edit_update (f->store, &not_edited, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  got->desktop_id = 999;
  g_assert_false (kd_store_image_edit_update (f->store, got, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Its host cannot go; its desktop can, leaving the edit without one. */
  g_assert_true (kd_store_desktop_delete (f->store, editor, &error));
  g_assert_no_error (error);
  g_assert_false (kd_store_host_delete (f->store, hv1, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_assert_cmpstr (error->message, ==, "host 'hv1' is in use by 1 image edit");
  g_clear_error (&error);
  orphaned = kd_store_image_edit_get (f->store, deb, &error);
  g_assert_no_error (error);
  g_assert_cmpint (orphaned->desktop_id, ==, 0);

  g_assert_true (kd_store_image_edit_delete (f->store, deb, &error));
  g_assert_no_error (error);
  g_assert_false (kd_store_image_edit_delete (f->store, deb, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (kd_store_image_edit_get (f->store, deb, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Once the edit is gone, a new one may start, and the host is free. */
  g_assert_true (kd_store_image_edit_insert (f->store, &second, &error));
  g_assert_no_error (error);
  g_assert_true (kd_store_host_delete (f->store, hv1, &error));
  g_assert_no_error (error);
}

static void
test_images_delete_cascades_versions_and_edits (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) versions = NULL;
  g_autoptr(GPtrArray) kept = NULL;
  g_autoptr(GPtrArray) volumes = NULL;
  g_autoptr(KdImageEditRow) other_edit = NULL;
  gint64 hv1 = add_host (f->store, "hv1");
  gint64 deb = add_image (f->store, "debian");
  gint64 alp = add_image (f->store, "alpine");
  KdImageVersionRow v2 = { .image_id = deb, .version = 2, .format = (char *) "qcow2" };
  KdImageVolumeRow vol2 = { .image_id = deb, .version = 2, .host_id = hv1,
                            .volume = (char *) "kvmdesk-debian-2" };
  KdImageEditRow edit = { .image_id = deb, .version = 3, .host_id = hv1,
                          .volume = (char *) "kvmdesk-edit-debian-3" };
  KdImageEditRow alp_edit = { .image_id = alp, .version = 2, .host_id = hv1,
                              .volume = (char *) "kvmdesk-edit-alpine-2" };

  add_volume (f->store, deb, hv1, "kvmdesk-debian-1");
  g_assert_true (kd_store_image_version_insert (f->store, &v2, &error));
  g_assert_true (kd_store_image_volume_insert (f->store, &vol2, &error));
  g_free (vol2.state);
  g_assert_true (kd_store_image_edit_insert (f->store, &edit, &error));
  g_assert_true (kd_store_image_edit_insert (f->store, &alp_edit, &error));
  g_assert_no_error (error);

  g_assert_true (kd_store_image_delete (f->store, deb, &error));
  g_assert_no_error (error);
  versions = kd_store_image_version_list (f->store, deb, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (versions->len, ==, 0);
  volumes = kd_store_image_volume_list (f->store, -1, &error);
  g_assert_cmpuint (volumes->len, ==, 0);
  g_assert_null (kd_store_image_edit_get (f->store, deb, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* The other image keeps its version and its edit. */
  kept = kd_store_image_version_list (f->store, alp, &error);
  g_assert_cmpuint (kept->len, ==, 1);
  other_edit = kd_store_image_edit_get (f->store, alp, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (other_edit->volume, ==, "kvmdesk-edit-alpine-2");
}

static void
test_desktops_image_version (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdDesktopRow) d1 = NULL;
  g_autoptr(KdDesktopRow) d2 = NULL;
  g_autoptr(KdDesktopRow) d1_after = NULL;
  g_autoptr(GPtrArray) list = NULL;
  gint64 host = add_host (f->store, "hv1");
  gint64 image = add_image (f->store, "debian");
  gint64 template = add_template (f->store, "small");
  gint64 id1 = add_desktop (f->store, "d1", host, image, template);
  KdDesktopRow on_v3 = { .name = (char *) "d2", .domain = (char *) "kvmdesk-test-d2",
                         .image_id = image, .template_id = template, .image_version = 3,
                         .overlay_volume = (char *) "kvmdesk-test-d2.qcow2",
                         .state = (char *) "stopped" };

  /* 0 on insert stores 1. */
  d1 = kd_store_desktop_get (f->store, id1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (d1->image_version, ==, 1);

  g_assert_true (kd_store_desktop_insert (f->store, &on_v3, &error));
  g_assert_no_error (error);
  d2 = kd_store_desktop_get_by_name (f->store, "d2", &error);
  g_assert_no_error (error);
  g_assert_cmpint (d2->image_version, ==, 3);

  d1->image_version = 2;
  g_assert_true (kd_store_desktop_update (f->store, d1, &error));
  g_assert_no_error (error);
  d1_after = kd_store_desktop_get_by_name (f->store, "d1", &error);
  g_assert_cmpint (d1_after->image_version, ==, 2);

  list = kd_store_desktop_list (f->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  g_assert_cmpint (((KdDesktopRow *) list->pdata[0])->image_version, ==, 2);
  g_assert_cmpint (((KdDesktopRow *) list->pdata[1])->image_version, ==, 3);
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
  ADD ("/store/groups/crud", test_groups_crud);
  ADD ("/store/groups/delete-removes-memberships-and-entitlements", test_groups_delete_cascades);
  ADD ("/store/users/update", test_users_update);
  ADD ("/store/users/set-get-groups", test_users_groups);
  ADD ("/store/users/delete-frees-desktops-and-tokens", test_users_delete_frees_desktops);
  ADD ("/store/tokens/delete-for-user", test_tokens_delete_for_user);
  ADD ("/store/pools/crud", test_pools_crud);
  ADD ("/store/pools/in-use", test_pools_in_use);
  ADD ("/store/pools/entitlements", test_pools_entitlements);
  ADD ("/store/desktops/assign-once", test_desktops_assign);
  ADD ("/store/desktops/session-fields-and-lists", test_desktops_session_fields);
  ADD ("/store/events/query", test_events_query);
  ADD ("/store/transactions/rollback", test_transactions_rollback);
  ADD ("/store/transactions/error-inside", test_transactions_error_inside);
  ADD ("/store/image-versions/insert-get-list", test_image_versions);
  ADD ("/store/images/update-current-version", test_images_update);
  ADD ("/store/images/insert-records-version-1-atomically", test_images_insert_atomic);
  ADD ("/store/image-volumes/per-version-per-host", test_image_volumes_versions);
  ADD ("/store/image-edits/crud-one-per-image", test_image_edits);
  ADD ("/store/images/delete-cascades-versions-and-edits", test_images_delete_cascades_versions_and_edits);
  ADD ("/store/desktops/image-version", test_desktops_image_version);
#undef ADD

  return g_test_run ();
}
