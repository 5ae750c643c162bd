/*
 * test-migrations.c: kd_store_open() on files it did not create: schema-1,
 * 2 and 3 files (tests/data/store/v1.sql, v2.sql, v3.sql) are upgraded
 * with every row kept and the new columns at their defaults (schema 4:
 * every image its own version 1, volumes and desktops on version 1),
 * a newer file and a file that is not a kvmdesk database are refused and
 * left byte for byte as they were, and a step that cannot complete is
 * rolled back whole.
 */
#include <string.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include "store/kd-store.h"

typedef struct {
  char *dir;
  char *path;
} Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("kd-test-migrations-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, "kvmdesk.db", NULL);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  const char *suffixes[] = { "", "-wal", "-shm", "-journal" };

  for (gsize i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *p = g_strconcat (f->path, suffixes[i], NULL);
      g_unlink (p);
    }
  g_assert_cmpint (g_rmdir (f->dir), ==, 0);
  g_free (f->path);
  g_free (f->dir);
}

static char *
data_path (const char *name)
{
  const char *dir = g_getenv ("KD_TEST_DATA");

  return g_build_filename (dir ? dir : KD_TEST_DATA, "store", name, NULL);
}

/* Runs @sql on @path with plain SQLite, as an older kvmdesk would have. */
static void
run_sql (const char *path, const char *sql)
{
  sqlite3 *db = NULL;
  char *msg = NULL;

  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  if (sqlite3_exec (db, sql, NULL, NULL, &msg) != SQLITE_OK)
    g_error ("SQL on '%s' failed: %s", path, msg);
  g_assert_cmpint (sqlite3_close (db), ==, SQLITE_OK);
}

/* Builds @path from tests/data/store/@name, an older kvmdesk's file. */
static void
load_fixture (const char *path, const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *fixture = data_path (name);
  g_autofree char *sql = NULL;

  g_file_get_contents (fixture, &sql, NULL, &error);
  g_assert_no_error (error);
  run_sql (path, sql);
}

static void
load_v1 (const char *path)
{
  load_fixture (path, "v1.sql");
}

/* One integer from a query on a closed store's file. */
static gint64
query_int (const char *path, const char *sql)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  gint64 value;

  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &st, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (st), ==, SQLITE_ROW);
  value = sqlite3_column_int64 (st, 0);
  sqlite3_finalize (st);
  sqlite3_close (db);
  return value;
}

static void
test_v1_upgrade (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdStore) s = NULL;
  g_autoptr(KdImageRow) deb = NULL;
  g_autoptr(KdImageRow) importing = NULL;
  g_autoptr(KdImageRow) unplaced = NULL;
  g_autoptr(KdImageVolumeRow) vol = NULL;
  g_autoptr(KdImageVolumeRow) vol2 = NULL;
  g_autoptr(GPtrArray) vols = NULL;
  g_autoptr(GPtrArray) hosts = NULL;
  g_autoptr(KdDesktopRow) desktop = NULL;
  g_autoptr(KdTemplateRow) template = NULL;
  g_autoptr(KdUserRow) user = NULL;
  g_autoptr(KdTokenRow) token = NULL;
  g_autoptr(GPtrArray) events = NULL;

  load_v1 (f->path);
  g_assert_cmpint (query_int (f->path, "PRAGMA user_version"), ==, 1);

  s = kd_store_open (f->path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (s);
  g_assert_cmpint (kd_store_schema_version (s), ==, kd_store_latest_version ());
  g_assert_cmpstr (kd_store_get_instance_id (s), ==, "0123456789abcdef0123456789abcdef");

  hosts = kd_store_host_list (s, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (hosts->len, ==, 2);
  g_assert_cmpstr (((KdHostRow *) hosts->pdata[1])->uri, ==, "qemu+ssh://root@hv2/system");

  deb = kd_store_image_get_by_name (s, "debian", &error);
  g_assert_no_error (error);
  g_assert_cmpint (deb->id, ==, 1);
  g_assert_cmpstr (deb->format, ==, "qcow2");
  g_assert_cmpint (deb->virtual_size, ==, G_GINT64_CONSTANT (10737418240));
  g_assert_cmpint (deb->file_size, ==, G_GINT64_CONSTANT (2147483648));
  g_assert_cmpint (deb->created_at, ==, G_GINT64_CONSTANT (1700000000000004));

  /* The image's volume moved to image_volumes. */
  vol = kd_store_image_volume_get (s, deb->id, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (vol->volume, ==, "kvmdesk-image-debian.qcow2");
  g_assert_cmpstr (vol->path, ==, "/var/lib/kvmdesk/pool/kvmdesk-image-debian.qcow2");
  g_assert_cmpstr (vol->state, ==, "ready");
  g_assert_false (vol->simulated);

  importing = kd_store_image_get_by_name (s, "importing", &error);
  g_assert_no_error (error);
  vol2 = kd_store_image_volume_get (s, importing->id, 2, &error);
  g_assert_no_error (error);
  g_assert_null (vol2->path);
  g_assert_cmpstr (vol2->state, ==, "importing");

  unplaced = kd_store_image_get_by_name (s, "unplaced", &error);
  g_assert_no_error (error);
  vols = kd_store_image_volume_list (s, unplaced->id, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (vols->len, ==, 0);
  g_clear_pointer (&vols, g_ptr_array_unref);
  vols = kd_store_image_volume_list (s, -1, &error);
  g_assert_cmpuint (vols->len, ==, 2);

  template = kd_store_template_get_by_name (s, "small", &error);
  g_assert_no_error (error);
  g_assert_cmpint (template->memory_mib, ==, 2048);

  desktop = kd_store_desktop_get_by_name (s, "d1", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (desktop->domain, ==, "kvmdesk-0123456789ab-d1");
  g_assert_cmpstr (desktop->uuid, ==, "6f0c2c1e-8a4b-4f64-9d7e-0d3f1f6f1a01");
  g_assert_cmpint (desktop->image_id, ==, deb->id);
  g_assert_cmpstr (desktop->state, ==, "running");
  g_assert_cmpint (desktop->updated_at, ==, G_GINT64_CONSTANT (1700000000000009));

  user = kd_store_user_get_by_name (s, "admin", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (user->role, ==, "admin");
  token = kd_store_token_get_by_hash (s, "aa11", &error);
  g_assert_no_error (error);
  g_assert_cmpint (token->user_id, ==, user->id);

  /* The desktops' foreign key follows the rebuilt images table. */
  g_assert_false (kd_store_image_delete (s, deb->id, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_clear_error (&error);
  /* And image_volumes cascades from it. */
  g_assert_true (kd_store_image_delete (s, importing->id, &error));
  g_assert_no_error (error);
  g_clear_pointer (&vols, g_ptr_array_unref);
  vols = kd_store_image_volume_list (s, -1, &error);
  g_assert_cmpuint (vols->len, ==, 1);

  /* The v2 tables work. */
  events = kd_store_event_list (s, NULL, NULL, 0, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (events->len, ==, 0);

  g_clear_pointer (&s, kd_store_free);
  g_assert_cmpint (query_int (f->path, "PRAGMA user_version"), ==, kd_store_latest_version ());
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM pragma_table_info('images') "
                                       "WHERE name IN ('host_id', 'volume', 'path')"), ==, 0);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM sqlite_schema "
                                       "WHERE name = 'images_v2'"), ==, 0);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM pragma_foreign_key_check"), ==, 0);
  g_assert_cmpint (query_int (f->path, "SELECT integrity_check = 'ok' FROM pragma_integrity_check"), ==, 1);

  /* Opening again migrates nothing and keeps everything. */
  s = kd_store_open (f->path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (kd_store_schema_version (s), ==, kd_store_latest_version ());
  g_assert_cmpstr (kd_store_get_instance_id (s), ==, "0123456789abcdef0123456789abcdef");
}

/* A v2 file (events, image volumes, desktops without sessions) becomes
 * the latest: rows intact, new desktop columns at 0/NULL, new events
 * without pool or user, and the new constraints in force. */
static void
test_v2_upgrade (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdStore) s = NULL;
  g_autoptr(KdDesktopRow) d1 = NULL;
  g_autoptr(KdDesktopRow) d2 = NULL;
  g_autoptr(KdDesktopRow) held = NULL;
  g_autoptr(KdDesktopRow) freed = NULL;
  g_autoptr(KdUserRow) bob = NULL;
  g_autoptr(KdTokenRow) token = NULL;
  g_autoptr(KdImageVolumeRow) vol = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GPtrArray) by_bob = NULL;
  g_autoptr(GPtrArray) pools = NULL;
  g_autoptr(GPtrArray) groups = NULL;
  g_autoptr(GPtrArray) versions = NULL;
  KdEventFilter bob_filter = { .user = "bob" };
  KdEventRow fresh = { .object_type = (char *) "desktop", .object_name = (char *) "d1",
                       .actor = (char *) "system", .action = (char *) "assign",
                       .pool = (char *) "office", .user = (char *) "bob" };
  KdPoolRow pool = { .name = (char *) "office", .mode = (char *) "floating", .size = 2 };
  KdEventRow *e;

  load_fixture (f->path, "v2.sql");
  g_assert_cmpint (query_int (f->path, "PRAGMA user_version"), ==, 2);

  s = kd_store_open (f->path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (s);
  g_assert_cmpint (kd_store_schema_version (s), ==, kd_store_latest_version ());
  g_assert_cmpint (kd_store_latest_version (), >=, 3);
  g_assert_cmpstr (kd_store_get_instance_id (s), ==, "fedcba9876543210fedcba9876543210");

  d1 = kd_store_desktop_get_by_name (s, "d1", &error);
  g_assert_no_error (error);
  g_assert_cmpint (d1->id, ==, 1);
  g_assert_cmpstr (d1->domain, ==, "kvmdesk-fedcba987654-d1");
  g_assert_cmpstr (d1->uuid, ==, "6f0c2c1e-8a4b-4f64-9d7e-0d3f1f6f1a02");
  g_assert_cmpint (d1->host_id, ==, 1);
  g_assert_cmpstr (d1->overlay_path, ==, "/var/lib/kvmdesk/pool/kvmdesk-d1.qcow2");
  g_assert_cmpstr (d1->state, ==, "running");
  g_assert_cmpint (d1->created_at, ==, G_GINT64_CONSTANT (1710000000000007));
  g_assert_cmpint (d1->updated_at, ==, G_GINT64_CONSTANT (1710000000000008));
  g_assert_cmpint (d1->pool_id, ==, 0);
  g_assert_cmpint (d1->user_id, ==, 0);
  g_assert_cmpint (d1->assigned_at, ==, 0);
  g_assert_cmpint (d1->connected_since, ==, 0);
  g_assert_cmpint (d1->last_seen, ==, 0);
  g_assert_cmpint (d1->disconnected_at, ==, 0);
  g_assert_false (d1->needs_reset);
  g_assert_cmpint (d1->image_version, ==, 1);

  d2 = kd_store_desktop_get_by_name (s, "d2", &error);
  g_assert_no_error (error);
  g_assert_cmpint (d2->host_id, ==, 0);
  g_assert_null (d2->uuid);
  g_assert_cmpstr (d2->state, ==, "error");
  g_assert_cmpstr (d2->state_reason, ==, "no host has room");
  g_assert_cmpint (d2->pool_id, ==, 0);
  g_assert_cmpint (d2->user_id, ==, 0);
  g_assert_false (d2->needs_reset);

  vol = kd_store_image_volume_get (s, 1, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (vol->volume, ==, "kvmdesk-image-debian.qcow2");
  g_assert_cmpint (vol->version, ==, 1);
  versions = kd_store_image_version_list (s, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (versions->len, ==, 1);
  g_assert_cmpstr (((KdImageVersionRow *) versions->pdata[0])->format, ==, "qcow2");
  bob = kd_store_user_get_by_name (s, "bob", &error);
  g_assert_no_error (error);
  g_assert_cmpint (bob->id, ==, 2);
  token = kd_store_token_get_by_hash (s, "bb22", &error);
  g_assert_no_error (error);
  g_assert_cmpint (token->user_id, ==, bob->id);
  groups = kd_store_user_get_groups (s, bob->id, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (groups->len, ==, 0);

  /* Old events: kept, with no pool or user; "bob" finds the one he did. */
  events = kd_store_event_list (s, NULL, NULL, 0, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (events->len, ==, 3);
  e = events->pdata[0];
  g_assert_cmpint (e->id, ==, 7);
  g_assert_cmpstr (e->actor, ==, "bob");
  g_assert_cmpstr (e->message, ==, "no host has room");
  g_assert_null (e->pool);
  g_assert_null (e->user);
  e = events->pdata[2];
  g_assert_cmpstr (e->message, ==, "desktop 'd1' created");
  g_assert_cmpstr (e->to_state, ==, "provisioning");

  /* New ones continue after the highest id ever used (AUTOINCREMENT). */
  g_assert_true (kd_store_event_insert (s, &fresh, &error));
  g_assert_no_error (error);
  g_assert_cmpint (fresh.id, ==, 8);
  by_bob = kd_store_event_query (s, &bob_filter, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (by_bob->len, ==, 2);
  g_assert_cmpint (((KdEventRow *) by_bob->pdata[0])->id, ==, 8);
  g_assert_cmpstr (((KdEventRow *) by_bob->pdata[0])->pool, ==, "office");
  g_assert_cmpint (((KdEventRow *) by_bob->pdata[1])->id, ==, 7);

  /* The new tables and foreign keys work on the upgraded file. */
  pool.image_id = d1->image_id;
  pool.template_id = d1->template_id;
  g_assert_true (kd_store_pool_insert (s, &pool, &error));
  g_assert_no_error (error);
  pools = kd_store_pool_list (s, &error);
  g_assert_cmpuint (pools->len, ==, 1);
  d1->pool_id = pool.id;
  g_assert_true (kd_store_desktop_update (s, d1, &error));
  g_assert_true (kd_store_desktop_assign (s, d1->id, bob->id, 1234, &error));
  g_assert_no_error (error);
  held = kd_store_desktop_get (s, d1->id, &error);
  g_assert_cmpint (held->user_id, ==, bob->id);
  g_assert_cmpint (held->pool_id, ==, pool.id);
  g_assert_false (kd_store_pool_delete (s, pool.id, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_clear_error (&error);
  g_assert_true (kd_store_user_delete (s, bob->id, &error));
  g_assert_no_error (error);
  freed = kd_store_desktop_get (s, d1->id, &error);
  g_assert_cmpint (freed->user_id, ==, 0);

  g_clear_pointer (&s, kd_store_free);
  g_assert_cmpint (query_int (f->path, "PRAGMA user_version"), ==, kd_store_latest_version ());
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM desktops WHERE pool_id IS NULL"), ==, 1);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM desktops WHERE user_id IS NULL"), ==, 2);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM pragma_foreign_key_check"), ==, 0);
  g_assert_cmpint (query_int (f->path, "SELECT integrity_check = 'ok' FROM pragma_integrity_check"), ==, 1);

  s = kd_store_open (f->path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (kd_store_schema_version (s), ==, kd_store_latest_version ());
}

/* A v3 file (pools, sessions, a volume per image and host) becomes the
 * latest: each image gets a version 1 row from its own columns, every
 * volume and desktop is on version 1, and the volumes' uniqueness is now
 * per version, with foreign keys and cascades as before. */
static void
test_v3_upgrade (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdStore) s = NULL;
  g_autoptr(KdImageRow) deb = NULL;
  g_autoptr(KdImageRow) alp = NULL;
  g_autoptr(GPtrArray) deb_versions = NULL;
  g_autoptr(GPtrArray) alp_versions = NULL;
  g_autoptr(GPtrArray) vols = NULL;
  g_autoptr(KdImageVolumeRow) on_hv1 = NULL;
  g_autoptr(KdImageVolumeRow) alp_vol = NULL;
  g_autoptr(KdImageVolumeRow) v2_on_hv1 = NULL;
  g_autoptr(KdImageVolumeRow) current = NULL;
  g_autoptr(KdDesktopRow) office1 = NULL;
  g_autoptr(KdDesktopRow) d2 = NULL;
  g_autoptr(KdPoolRow) pool = NULL;
  g_autoptr(GArray) pool_groups = NULL;
  g_autoptr(GPtrArray) events = NULL;
  KdImageVersionRow *v;
  KdImageVersionRow second = { .version = 2, .format = (char *) "qcow2",
                               .virtual_size = 20, .file_size = 10,
                               .actor = (char *) "admin" };
  KdImageVolumeRow dup = { .host_id = 1, .volume = (char *) "kvmdesk-image-debian-v1b" };
  KdImageVolumeRow next = { .host_id = 1, .version = 2,
                            .volume = (char *) "kvmdesk-image-debian-v2.qcow2" };
  KdEventRow fresh = { .object_type = (char *) "image", .object_name = (char *) "debian",
                       .actor = (char *) "admin", .action = (char *) "publish" };

  load_fixture (f->path, "v3.sql");
  g_assert_cmpint (query_int (f->path, "PRAGMA user_version"), ==, 3);

  s = kd_store_open (f->path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (s);
  g_assert_cmpint (kd_store_schema_version (s), ==, kd_store_latest_version ());
  g_assert_cmpint (kd_store_latest_version (), >=, 4);
  g_assert_cmpstr (kd_store_get_instance_id (s), ==, "abcdefabcdef0123456789abcdef0123");

  /* Images: current version 1, and a version 1 row copied from them. */
  deb = kd_store_image_get_by_name (s, "debian", &error);
  g_assert_no_error (error);
  g_assert_cmpint (deb->id, ==, 1);
  g_assert_cmpint (deb->current_version, ==, 1);
  g_assert_cmpint (deb->virtual_size, ==, G_GINT64_CONSTANT (10737418240));
  deb_versions = kd_store_image_version_list (s, deb->id, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (deb_versions->len, ==, 1);
  v = deb_versions->pdata[0];
  g_assert_cmpint (v->image_id, ==, deb->id);
  g_assert_cmpint (v->version, ==, 1);
  g_assert_cmpstr (v->format, ==, "qcow2");
  g_assert_cmpint (v->virtual_size, ==, G_GINT64_CONSTANT (10737418240));
  g_assert_cmpint (v->file_size, ==, G_GINT64_CONSTANT (2147483648));
  g_assert_null (v->note);
  /* The actor of the image's latest import event. */
  g_assert_cmpstr (v->actor, ==, "admin");
  g_assert_cmpint (v->created_at, ==, G_GINT64_CONSTANT (1720000000000005));

  alp = kd_store_image_get_by_name (s, "alpine", &error);
  g_assert_no_error (error);
  g_assert_cmpint (alp->current_version, ==, 1);
  alp_versions = kd_store_image_version_list (s, alp->id, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (alp_versions->len, ==, 1);
  v = alp_versions->pdata[0];
  g_assert_cmpstr (v->format, ==, "raw");
  g_assert_cmpint (v->file_size, ==, G_GINT64_CONSTANT (1073741824));
  g_assert_null (v->actor);

  /* Volumes: all kept, every field intact, all of version 1. */
  vols = kd_store_image_volume_list (s, -1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (vols->len, ==, 3);
  for (guint i = 0; i < vols->len; i++)
    g_assert_cmpint (((KdImageVolumeRow *) vols->pdata[i])->version, ==, 1);
  on_hv1 = kd_store_image_volume_get (s, deb->id, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (on_hv1->id, ==, 1);
  g_assert_cmpstr (on_hv1->path, ==, "/var/lib/kvmdesk/pool/kvmdesk-image-debian.qcow2");
  g_assert_cmpstr (on_hv1->state, ==, "ready");
  g_assert_cmpint (on_hv1->created_at, ==, G_GINT64_CONSTANT (1720000000000007));
  alp_vol = kd_store_image_volume_get_version (s, alp->id, 1, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (alp_vol->id, ==, 3);
  g_assert_cmpstr (alp_vol->state, ==, "error");
  g_assert_cmpstr (alp_vol->error, ==, "disk full");
  g_assert_true (alp_vol->simulated);

  /* Desktops: on version 1, sessions intact. */
  office1 = kd_store_desktop_get_by_name (s, "office-1", &error);
  g_assert_no_error (error);
  g_assert_cmpint (office1->image_version, ==, 1);
  g_assert_cmpint (office1->pool_id, ==, 1);
  g_assert_cmpint (office1->user_id, ==, 2);
  g_assert_cmpint (office1->last_seen, ==, G_GINT64_CONSTANT (1720000000000017));
  d2 = kd_store_desktop_get_by_name (s, "d2", &error);
  g_assert_no_error (error);
  g_assert_cmpint (d2->image_version, ==, 1);
  g_assert_cmpint (d2->image_id, ==, alp->id);
  g_assert_true (d2->needs_reset);
  pool = kd_store_pool_get_by_name (s, "office", &error);
  g_assert_no_error (error);
  g_assert_cmpint (pool->idle_timeout, ==, 600);
  pool_groups = kd_store_pool_get_groups (s, pool->id, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (pool_groups->len, ==, 1);

  /* The rebuilt volume table: one volume per version per host. */
  dup.image_id = deb->id;
  g_assert_false (kd_store_image_volume_insert (s, &dup, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS);
  g_clear_error (&error);
  second.image_id = deb->id;
  g_assert_true (kd_store_image_version_insert (s, &second, &error));
  g_assert_no_error (error);
  next.image_id = deb->id;
  g_assert_true (kd_store_image_volume_insert (s, &next, &error));
  g_assert_no_error (error);
  g_free (next.state);
  v2_on_hv1 = kd_store_image_volume_get_version (s, deb->id, 2, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (v2_on_hv1->volume, ==, "kvmdesk-image-debian-v2.qcow2");
  deb->current_version = 2;
  g_assert_true (kd_store_image_update (s, deb, &error));
  g_assert_no_error (error);
  current = kd_store_image_volume_get (s, deb->id, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (current->id, ==, v2_on_hv1->id);

  /* Old foreign keys hold: the host is in use, the image too (a pool and
   * a desktop); the events table goes on after its highest id. */
  g_assert_false (kd_store_host_delete (s, 2, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_clear_error (&error);
  g_assert_false (kd_store_image_delete (s, deb->id, &error));
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE);
  g_clear_error (&error);
  g_assert_true (kd_store_event_insert (s, &fresh, &error));
  g_assert_no_error (error);
  g_assert_cmpint (fresh.id, ==, 4);

  /* And the volumes still cascade from their image. */
  g_assert_true (kd_store_desktop_delete (s, d2->id, &error));
  g_assert_true (kd_store_image_delete (s, alp->id, &error));
  g_assert_no_error (error);
  g_clear_pointer (&vols, g_ptr_array_unref);
  vols = kd_store_image_volume_list (s, -1, &error);
  g_assert_cmpuint (vols->len, ==, 3);

  g_clear_pointer (&s, kd_store_free);
  g_assert_cmpint (query_int (f->path, "PRAGMA user_version"), ==, kd_store_latest_version ());
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM image_versions WHERE image_id = 2"), ==, 0);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM sqlite_schema "
                                       "WHERE name = 'image_volumes_v4'"), ==, 0);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM sqlite_schema "
                                       "WHERE name = 'image_volumes_host'"), ==, 1);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM pragma_foreign_key_check"), ==, 0);
  g_assert_cmpint (query_int (f->path, "SELECT integrity_check = 'ok' FROM pragma_integrity_check"), ==, 1);

  s = kd_store_open (f->path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (kd_store_schema_version (s), ==, kd_store_latest_version ());
}

/* A fresh file and one upgraded from @data (a fixture's name) end with
 * the same columns and the same indexes. */
static void
test_fresh_matches_upgraded (Fixture *f, gconstpointer data)
{
  const char *fixture = data;
  g_autoptr(GError) error = NULL;
  g_autofree char *fresh = g_build_filename (f->dir, "fresh.db", NULL);
  g_autofree char *fresh_wal = g_strconcat (fresh, "-wal", NULL);
  g_autofree char *fresh_shm = g_strconcat (fresh, "-shm", NULL);
  const char *sql =
    "SELECT (SELECT group_concat(col, ',') FROM ("
    "  SELECT t.name || '.' || c.name || ':' || c.type || ':' || c.\"notnull\" AS col"
    "  FROM sqlite_schema t JOIN pragma_table_info(t.name) c"
    "  WHERE t.type = 'table' ORDER BY t.name, c.cid))"
    " || ';' || (SELECT group_concat(name, ',') FROM ("
    "  SELECT name FROM sqlite_schema WHERE type = 'index' ORDER BY name))";
  g_autofree char *a = NULL;
  g_autofree char *b = NULL;
  KdStore *s;

  load_fixture (f->path, fixture);
  s = kd_store_open (f->path, &error);
  g_assert_no_error (error);
  kd_store_free (s);
  s = kd_store_open (fresh, &error);
  g_assert_no_error (error);
  kd_store_free (s);

  for (int i = 0; i < 2; i++)
    {
      sqlite3 *db = NULL;
      sqlite3_stmt *st = NULL;
      g_assert_cmpint (sqlite3_open (i == 0 ? f->path : fresh, &db), ==, SQLITE_OK);
      g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &st, NULL), ==, SQLITE_OK);
      g_assert_cmpint (sqlite3_step (st), ==, SQLITE_ROW);
      *(i == 0 ? &a : &b) = g_strdup ((const char *) sqlite3_column_text (st, 0));
      sqlite3_finalize (st);
      sqlite3_close (db);
    }
  g_assert_nonnull (strstr (a, "image_volumes.volume"));
  g_assert_nonnull (strstr (a, "desktops.needs_reset:INTEGER:1"));
  g_assert_nonnull (strstr (a, "events.user:TEXT:0"));
  g_assert_nonnull (strstr (a, "pool_hosts.host_id"));
  g_assert_nonnull (strstr (a, "events_user"));
  g_assert_nonnull (strstr (a, "image_versions.note:TEXT:0"));
  g_assert_nonnull (strstr (a, "image_volumes.version:INTEGER:1"));
  g_assert_nonnull (strstr (a, "images.current_version:INTEGER:1"));
  g_assert_nonnull (strstr (a, "desktops.image_version:INTEGER:1"));
  g_assert_nonnull (strstr (a, "image_edits.desktop_id"));
  g_assert_nonnull (strstr (a, "image_edits_host"));
  g_assert_cmpstr (a, ==, b);
  g_unlink (fresh);
  g_unlink (fresh_wal);
  g_unlink (fresh_shm);
}

static void
assert_refused_unchanged (const char *path, const char *expected_message_part)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdStore) s = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autofree char *wal = g_strconcat (path, "-wal", NULL);
  gsize before_len = 0, after_len = 0;

  g_file_get_contents (path, &before, &before_len, &error);
  g_assert_no_error (error);

  s = kd_store_open (path, &error);
  g_assert_null (s);
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_SCHEMA);
  if (strstr (error->message, expected_message_part) == NULL)
    g_error ("message \"%s\" lacks \"%s\"", error->message, expected_message_part);
  g_clear_error (&error);

  g_file_get_contents (path, &after, &after_len, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (before, before_len, after, after_len);
  g_assert_false (g_file_test (wal, G_FILE_TEST_EXISTS));
}

static void
test_newer_refused (Fixture *f, gconstpointer data)
{
  g_autofree char *expected = NULL;

  run_sql (f->path, "CREATE TABLE future (x); INSERT INTO future VALUES (1); "
                    "PRAGMA user_version = 999;");
  expected = g_strdup_printf ("database '%s' has schema version 999; this kvmdesk knows up to %d: "
                              "upgrade kvmdesk", f->path, kd_store_latest_version ());
  assert_refused_unchanged (f->path, expected);
  g_assert_cmpint (query_int (f->path, "PRAGMA user_version"), ==, 999);
}

static void
test_not_sqlite (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *expected = g_strdup_printf ("'%s' is not a kvmdesk database", f->path);
  guint8 garbage[4096];

  for (gsize i = 0; i < sizeof garbage; i++)
    garbage[i] = (guint8) (i * 37 + 11);
  g_file_set_contents (f->path, (const char *) garbage, sizeof garbage, &error);
  g_assert_no_error (error);
  assert_refused_unchanged (f->path, expected);
}

static void
test_other_sqlite (Fixture *f, gconstpointer data)
{
  g_autofree char *expected = g_strdup_printf ("'%s' is not a kvmdesk database: it has tables",
                                               f->path);

  run_sql (f->path, "CREATE TABLE photos (id INTEGER PRIMARY KEY, file TEXT);");
  assert_refused_unchanged (f->path, expected);
}

/* A v1 file with an image on a host that is gone cannot become v2
 * (image_volumes.host_id must point at a host): the step is rolled back
 * whole and the file stays at version 1 with its images intact. */
static void
test_failed_step_rolls_back (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdStore) s = NULL;

  load_v1 (f->path);
  /* sqlite3_open leaves foreign keys off, as a damaged file might be. */
  run_sql (f->path, "UPDATE images SET host_id = 42 WHERE name = 'importing';");

  s = kd_store_open (f->path, &error);
  g_assert_null (s);
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_SCHEMA);
  g_assert_nonnull (strstr (error->message, "schema version 2"));
  g_assert_nonnull (strstr (error->message, "image_volumes"));

  g_assert_cmpint (query_int (f->path, "PRAGMA user_version"), ==, 1);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM images WHERE volume IS NOT NULL"), ==, 2);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM sqlite_schema "
                                       "WHERE name IN ('image_volumes', 'images_v2', 'events')"), ==, 0);
}

/* A v2 file with a desktop on a host that is gone cannot become v3 (each
 * step checks every foreign key): step 3 is rolled back whole, new tables
 * and added columns included, and the file stays at version 2. */
static void
test_failed_step3_rolls_back (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdStore) s = NULL;

  load_fixture (f->path, "v2.sql");
  run_sql (f->path, "UPDATE desktops SET host_id = 42 WHERE name = 'd1';");

  s = kd_store_open (f->path, &error);
  g_assert_null (s);
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_SCHEMA);
  g_assert_nonnull (strstr (error->message, "schema version 3"));
  g_assert_nonnull (strstr (error->message, "desktops"));

  g_assert_cmpint (query_int (f->path, "PRAGMA user_version"), ==, 2);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM sqlite_schema "
                                       "WHERE name IN ('groups', 'pools', 'user_groups', "
                                       "'pool_users', 'pool_groups', 'pool_hosts')"), ==, 0);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM pragma_table_info('desktops') "
                                       "WHERE name IN ('pool_id', 'user_id', 'needs_reset')"), ==, 0);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM pragma_table_info('events') "
                                       "WHERE name IN ('pool', 'user')"), ==, 0);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM desktops"), ==, 2);
}

/* A v3 file with a volume of an image that is gone cannot become v4:
 * step 4 is rolled back whole (no version table, the old volume table
 * with its old uniqueness, no new columns) and the file stays at 3. */
static void
test_failed_step4_rolls_back (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdStore) s = NULL;

  load_fixture (f->path, "v3.sql");
  run_sql (f->path, "UPDATE image_volumes SET image_id = 42 WHERE id = 3;");

  s = kd_store_open (f->path, &error);
  g_assert_null (s);
  g_assert_error (error, KD_STORE_ERROR, KD_STORE_ERROR_SCHEMA);
  g_assert_nonnull (strstr (error->message, "schema version 4"));
  g_assert_nonnull (strstr (error->message, "image_volumes"));

  g_assert_cmpint (query_int (f->path, "PRAGMA user_version"), ==, 3);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM sqlite_schema "
                                       "WHERE name IN ('image_versions', 'image_edits', "
                                       "'image_volumes_v4', 'image_edits_host')"), ==, 0);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM pragma_table_info('images') "
                                       "WHERE name = 'current_version'"), ==, 0);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM pragma_table_info('desktops') "
                                       "WHERE name = 'image_version'"), ==, 0);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM pragma_table_info('image_volumes') "
                                       "WHERE name = 'version'"), ==, 0);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM image_volumes"), ==, 3);
  g_assert_cmpint (query_int (f->path, "SELECT COUNT(*) FROM sqlite_schema "
                                       "WHERE name = 'image_volumes_host'"), ==, 1);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_set_up, fn, fixture_tear_down)
  ADD ("/store/migrations/v1-to-latest", test_v1_upgrade);
  ADD ("/store/migrations/v2-to-latest", test_v2_upgrade);
  ADD ("/store/migrations/v3-to-latest", test_v3_upgrade);
  g_test_add ("/store/migrations/fresh-matches-upgraded", Fixture, "v1.sql",
              fixture_set_up, test_fresh_matches_upgraded, fixture_tear_down);
  g_test_add ("/store/migrations/fresh-matches-upgraded-v2", Fixture, "v2.sql",
              fixture_set_up, test_fresh_matches_upgraded, fixture_tear_down);
  g_test_add ("/store/migrations/fresh-matches-upgraded-v3", Fixture, "v3.sql",
              fixture_set_up, test_fresh_matches_upgraded, fixture_tear_down);
  ADD ("/store/migrations/newer-refused-unchanged", test_newer_refused);
  ADD ("/store/migrations/not-sqlite", test_not_sqlite);
  ADD ("/store/migrations/other-sqlite-file", test_other_sqlite);
  ADD ("/store/migrations/failed-step-rolls-back", test_failed_step_rolls_back);
  ADD ("/store/migrations/failed-step3-rolls-back", test_failed_step3_rolls_back);
  ADD ("/store/migrations/failed-step4-rolls-back", test_failed_step4_rolls_back);
#undef ADD

  return g_test_run ();
}
