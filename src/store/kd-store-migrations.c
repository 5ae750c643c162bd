/*
 * kd-store-migrations.c: kvmdesk's schema, as an ordered list of steps.
 *
 * The file's PRAGMA user_version says how many steps it has had. Opening
 * applies the missing ones, each in its own BEGIN IMMEDIATE transaction
 * that also bumps user_version, so a crash leaves the file at a whole
 * version. A step once released is never edited: change the schema by
 * appending a step. A file newer than this program is refused by the
 * caller (kd-store.c) before anything here runs.
 */
#include "kd-store-priv.h"

typedef struct {
  int         version;
  const char *description;
  const char *sql;
} KdMigration;

static const KdMigration migrations[] = {
  {
    1, "initial schema",
    "CREATE TABLE meta ("
    "  key   TEXT PRIMARY KEY NOT NULL,"
    "  value TEXT NOT NULL);"
    "CREATE TABLE users ("
    "  id            INTEGER PRIMARY KEY,"
    "  name          TEXT NOT NULL UNIQUE,"
    "  password_hash TEXT NOT NULL,"
    "  role          TEXT NOT NULL,"
    "  created_at    INTEGER NOT NULL);"
    "CREATE TABLE tokens ("
    "  id         INTEGER PRIMARY KEY,"
    "  token_hash TEXT NOT NULL UNIQUE,"
    "  user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL);"
    "CREATE TABLE hosts ("
    "  id         INTEGER PRIMARY KEY,"
    "  name       TEXT NOT NULL UNIQUE,"
    "  uri        TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE images ("
    "  id           INTEGER PRIMARY KEY,"
    "  name         TEXT NOT NULL UNIQUE,"
    "  format       TEXT NOT NULL,"
    "  virtual_size INTEGER NOT NULL DEFAULT 0,"
    "  file_size    INTEGER NOT NULL DEFAULT 0,"
    "  host_id      INTEGER REFERENCES hosts(id),"
    "  volume       TEXT,"
    "  path         TEXT,"
    "  created_at   INTEGER NOT NULL);"
    "CREATE TABLE templates ("
    "  id         INTEGER PRIMARY KEY,"
    "  name       TEXT NOT NULL UNIQUE,"
    "  vcpus      INTEGER NOT NULL,"
    "  memory_mib INTEGER NOT NULL,"
    "  disk_gib   INTEGER NOT NULL,"
    "  display    TEXT NOT NULL,"
    "  network    TEXT NOT NULL,"
    "  firmware   TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE desktops ("
    "  id             INTEGER PRIMARY KEY,"
    "  name           TEXT NOT NULL UNIQUE,"
    "  domain         TEXT NOT NULL UNIQUE,"
    "  uuid           TEXT,"
    "  host_id        INTEGER REFERENCES hosts(id),"
    "  image_id       INTEGER NOT NULL REFERENCES images(id),"
    "  template_id    INTEGER NOT NULL REFERENCES templates(id),"
    "  overlay_volume TEXT NOT NULL,"
    "  overlay_path   TEXT,"
    "  state          TEXT NOT NULL,"
    "  state_reason   TEXT,"
    "  created_at     INTEGER NOT NULL,"
    "  updated_at     INTEGER NOT NULL);"
  },
  {
    2, "image volumes per host, events, indexes",
    /* An image may live on many hosts: its volume moves to its own table. */
    "CREATE TABLE image_volumes ("
    "  id         INTEGER PRIMARY KEY,"
    "  image_id   INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
    "  host_id    INTEGER NOT NULL REFERENCES hosts(id),"
    "  volume     TEXT NOT NULL,"
    "  path       TEXT,"
    "  state      TEXT NOT NULL DEFAULT 'ready',"
    "  error      TEXT,"
    "  simulated  INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  UNIQUE (image_id, host_id),"
    "  UNIQUE (host_id, volume));"
    "INSERT INTO image_volumes (image_id, host_id, volume, path, state, created_at)"
    "  SELECT id, host_id, volume, path,"
    "         CASE WHEN path IS NULL THEN 'importing' ELSE 'ready' END, created_at"
    "  FROM images WHERE host_id IS NOT NULL AND volume IS NOT NULL;"
    /* SQLite cannot drop columns that have a REFERENCES clause: rebuild the
     * table (https://sqlite.org/lang_altertable.html, "otheralter"). */
    "CREATE TABLE images_v2 ("
    "  id           INTEGER PRIMARY KEY,"
    "  name         TEXT NOT NULL UNIQUE,"
    "  format       TEXT NOT NULL,"
    "  virtual_size INTEGER NOT NULL DEFAULT 0,"
    "  file_size    INTEGER NOT NULL DEFAULT 0,"
    "  created_at   INTEGER NOT NULL);"
    "INSERT INTO images_v2 (id, name, format, virtual_size, file_size, created_at)"
    "  SELECT id, name, format, virtual_size, file_size, created_at FROM images;"
    "DROP TABLE images;"
    "ALTER TABLE images_v2 RENAME TO images;"
    /* AUTOINCREMENT: ids are never reused, so "since id N" stays true. */
    "CREATE TABLE events ("
    "  id          INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time        INTEGER NOT NULL,"
    "  object_type TEXT NOT NULL,"
    "  object_name TEXT,"
    "  actor       TEXT NOT NULL,"
    "  action      TEXT NOT NULL,"
    "  from_state  TEXT,"
    "  to_state    TEXT,"
    "  message     TEXT);"
    "CREATE INDEX events_object ON events (object_type, object_name, id);"
    "CREATE INDEX image_volumes_host ON image_volumes (host_id);"
    "CREATE INDEX desktops_host ON desktops (host_id);"
    "CREATE INDEX desktops_image ON desktops (image_id);"
    "CREATE INDEX desktops_template ON desktops (template_id);"
    "CREATE INDEX tokens_user ON tokens (user_id);"
    "CREATE INDEX tokens_expires ON tokens (expires_at);"
  },
  {
    3, "groups, pools, entitlements, desktop sessions, event pool and user",
    "CREATE TABLE groups ("
    "  id         INTEGER PRIMARY KEY,"
    "  name       TEXT NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE user_groups ("
    "  user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (user_id, group_id));"
    "CREATE INDEX user_groups_group ON user_groups (group_id);"
    /* No cascade from images and templates: deleting one a pool still
     * uses is refused (IN_USE). */
    "CREATE TABLE pools ("
    "  id                 INTEGER PRIMARY KEY,"
    "  name               TEXT NOT NULL UNIQUE,"
    "  image_id           INTEGER NOT NULL REFERENCES images(id),"
    "  template_id        INTEGER NOT NULL REFERENCES templates(id),"
    "  mode               TEXT NOT NULL,"
    "  size               INTEGER NOT NULL DEFAULT 0,"
    "  warm               INTEGER NOT NULL DEFAULT 0,"
    "  idle_timeout       INTEGER NOT NULL DEFAULT 0,"
    "  disconnect_timeout INTEGER NOT NULL DEFAULT 0,"
    "  maintenance        INTEGER NOT NULL DEFAULT 0,"
    "  created_at         INTEGER NOT NULL,"
    "  updated_at         INTEGER NOT NULL);"
    "CREATE INDEX pools_image ON pools (image_id);"
    "CREATE INDEX pools_template ON pools (template_id);"
    "CREATE TABLE pool_users ("
    "  pool_id INTEGER NOT NULL REFERENCES pools(id) ON DELETE CASCADE,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (pool_id, user_id));"
    "CREATE INDEX pool_users_user ON pool_users (user_id);"
    "CREATE TABLE pool_groups ("
    "  pool_id  INTEGER NOT NULL REFERENCES pools(id) ON DELETE CASCADE,"
    "  group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (pool_id, group_id));"
    "CREATE INDEX pool_groups_group ON pool_groups (group_id);"
    /* A host named in a pool's list cannot be deleted (IN_USE). */
    "CREATE TABLE pool_hosts ("
    "  pool_id INTEGER NOT NULL REFERENCES pools(id) ON DELETE CASCADE,"
    "  host_id INTEGER NOT NULL REFERENCES hosts(id),"
    "  PRIMARY KEY (pool_id, host_id));"
    "CREATE INDEX pool_hosts_host ON pool_hosts (host_id);"
    /* ADD COLUMN with REFERENCES needs default NULL, which these have.
     * A pool with desktops cannot be deleted; a user's removal frees his
     * desktops. */
    "ALTER TABLE desktops ADD COLUMN pool_id INTEGER REFERENCES pools(id);"
    "ALTER TABLE desktops ADD COLUMN user_id INTEGER REFERENCES users(id) ON DELETE SET NULL;"
    "ALTER TABLE desktops ADD COLUMN assigned_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE desktops ADD COLUMN connected_since INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE desktops ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE desktops ADD COLUMN disconnected_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE desktops ADD COLUMN needs_reset INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX desktops_pool ON desktops (pool_id);"
    "CREATE INDEX desktops_user ON desktops (user_id);"
    /* Names, not ids: the audit trail outlives the pool and the user. */
    "ALTER TABLE events ADD COLUMN pool TEXT;"
    "ALTER TABLE events ADD COLUMN user TEXT;"
    "CREATE INDEX events_pool ON events (pool, id);"
    "CREATE INDEX events_user ON events (user, id);"
    "CREATE INDEX events_actor ON events (actor, id);"
  },
  {
    4, "image versions and edit sessions",
    /* Every image so far is its own version 1. The publisher of a version
     * 1 is the actor of the image's last import event, when there is one. */
    "CREATE TABLE image_versions ("
    "  id           INTEGER PRIMARY KEY,"
    "  image_id     INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
    "  version      INTEGER NOT NULL CHECK (version >= 1),"
    "  format       TEXT NOT NULL,"
    "  virtual_size INTEGER NOT NULL DEFAULT 0,"
    "  file_size    INTEGER NOT NULL DEFAULT 0,"
    "  note         TEXT,"
    "  actor        TEXT,"
    "  created_at   INTEGER NOT NULL,"
    "  UNIQUE (image_id, version));"
    "INSERT INTO image_versions (image_id, version, format, virtual_size, file_size, actor,"
    "                            created_at)"
    "  SELECT i.id, 1, i.format, i.virtual_size, i.file_size,"
    "         (SELECT e.actor FROM events e WHERE e.object_type = 'image'"
    "            AND e.object_name = i.name AND e.action = 'import'"
    "            ORDER BY e.id DESC LIMIT 1),"
    "         i.created_at"
    "  FROM images i;"
    "ALTER TABLE images ADD COLUMN current_version INTEGER NOT NULL DEFAULT 1;"
    /* A volume per version per host: UNIQUE (image_id, host_id) becomes
     * UNIQUE (image_id, version, host_id), which needs a rebuild. */
    "CREATE TABLE image_volumes_v4 ("
    "  id         INTEGER PRIMARY KEY,"
    "  image_id   INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
    "  version    INTEGER NOT NULL DEFAULT 1,"
    "  host_id    INTEGER NOT NULL REFERENCES hosts(id),"
    "  volume     TEXT NOT NULL,"
    "  path       TEXT,"
    "  state      TEXT NOT NULL DEFAULT 'ready',"
    "  error      TEXT,"
    "  simulated  INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  UNIQUE (image_id, version, host_id),"
    "  UNIQUE (host_id, volume));"
    "INSERT INTO image_volumes_v4 (id, image_id, version, host_id, volume, path, state, error,"
    "                              simulated, created_at)"
    "  SELECT id, image_id, 1, host_id, volume, path, state, error, simulated, created_at"
    "  FROM image_volumes;"
    "DROP TABLE image_volumes;"
    "ALTER TABLE image_volumes_v4 RENAME TO image_volumes;"
    "CREATE INDEX image_volumes_host ON image_volumes (host_id);"
    "ALTER TABLE desktops ADD COLUMN image_version INTEGER NOT NULL DEFAULT 1;"
    /* One edit per image. Its host cannot be deleted under it (IN_USE);
     * deleting its desktop leaves the edit without one. */
    "CREATE TABLE image_edits ("
    "  image_id   INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,"
    "  version    INTEGER NOT NULL,"
    "  host_id    INTEGER NOT NULL REFERENCES hosts(id),"
    "  volume     TEXT NOT NULL,"
    "  path       TEXT,"
    "  desktop_id INTEGER REFERENCES desktops(id) ON DELETE SET NULL,"
    "  actor      TEXT,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX image_edits_host ON image_edits (host_id);"
    "CREATE INDEX image_edits_desktop ON image_edits (desktop_id);"
  },
  {
    5, "consoles: host display access, pool console mode, RDP, console counters",
    "ALTER TABLE hosts ADD COLUMN graphics_listen TEXT NOT NULL DEFAULT '127.0.0.1';"
    "ALTER TABLE hosts ADD COLUMN console_access TEXT NOT NULL DEFAULT 'auto';"
    "ALTER TABLE templates ADD COLUMN rdp_port INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE pools ADD COLUMN console_mode TEXT NOT NULL DEFAULT 'takeover';"
    "ALTER TABLE desktops ADD COLUMN console_connections INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE desktops ADD COLUMN console_bytes_in INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE desktops ADD COLUMN console_bytes_out INTEGER NOT NULL DEFAULT 0;"
  },
  {
    6, "placement: host maintenance, overcommit, reserve, labels; pool placement",
    "ALTER TABLE hosts ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE hosts ADD COLUMN cpu_ratio REAL NOT NULL DEFAULT 4.0;"
    "ALTER TABLE hosts ADD COLUMN memory_ratio REAL NOT NULL DEFAULT 1.0;"
    "ALTER TABLE hosts ADD COLUMN disk_ratio REAL NOT NULL DEFAULT 1.0;"
    "ALTER TABLE hosts ADD COLUMN memory_reserved INTEGER NOT NULL DEFAULT 1073741824;"
    "ALTER TABLE hosts ADD COLUMN labels TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE pools ADD COLUMN placement TEXT NOT NULL DEFAULT 'spread';"
    "ALTER TABLE pools ADD COLUMN host_labels TEXT NOT NULL DEFAULT '';"
  },
  {
    7, "GPU passthrough: host GPUs and their desktops, template GPUs",
    "CREATE TABLE host_gpus ("
    "  id          INTEGER PRIMARY KEY,"
    "  host_id     INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,"
    "  addresses   TEXT NOT NULL,"
    "  product     TEXT,"
    "  driver      TEXT,"
    "  iommu_group INTEGER NOT NULL DEFAULT -1,"
    "  mdev_types  TEXT NOT NULL DEFAULT '',"
    "  desktop_id  INTEGER REFERENCES desktops(id) ON DELETE SET NULL,"
    "  UNIQUE (host_id, addresses));"
    "CREATE INDEX host_gpus_desktop ON host_gpus (desktop_id);"
    "ALTER TABLE templates ADD COLUMN gpus INTEGER NOT NULL DEFAULT 0;"
  },
  {
    8, "moving desktops: host draining, host migration mode",
    "ALTER TABLE hosts ADD COLUMN draining INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE hosts ADD COLUMN migration TEXT NOT NULL DEFAULT 'live';"
  },
  {
    9, "vGPUs: mediated device types of host GPUs, the vGPUs of desktops, template vGPU type",
    "CREATE TABLE host_gpu_mdev_types ("
    "  gpu_id      INTEGER NOT NULL REFERENCES host_gpus(id) ON DELETE CASCADE,"
    "  type_id     TEXT NOT NULL,"
    "  name        TEXT,"
    "  device_api  TEXT,"
    "  instances   INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (gpu_id, type_id));"
    "CREATE TABLE vgpus ("
    "  id          INTEGER PRIMARY KEY,"
    "  gpu_id      INTEGER NOT NULL REFERENCES host_gpus(id) ON DELETE CASCADE,"
    "  type_id     TEXT NOT NULL,"
    "  uuid        TEXT NOT NULL UNIQUE,"
    "  desktop_id  INTEGER NOT NULL REFERENCES desktops(id) ON DELETE CASCADE);"
    "CREATE INDEX vgpus_gpu ON vgpus (gpu_id);"
    "CREATE INDEX vgpus_desktop ON vgpus (desktop_id);"
    "ALTER TABLE templates ADD COLUMN gpu_mdev TEXT NOT NULL DEFAULT '';"
  },
};

/**
 * kd_store_latest_version:
 *
 * Returns: the newest schema version this program knows.
 */
int
kd_store_latest_version (void)
{
  return migrations[G_N_ELEMENTS (migrations) - 1].version;
}

/**
 * kd_store_read_user_version:
 * @db: an open connection
 * @path: the file's name, for messages
 * @out_version: (out): PRAGMA user_version
 *
 * This is the first read of a file, so it is where a file that is not a
 * database at all is found: that is %KD_STORE_ERROR_SCHEMA.
 *
 * Returns: %TRUE on success.
 */
gboolean
kd_store_read_user_version (sqlite3     *db,
                            const char  *path,
                            int         *out_version,
                            GError     **error)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = sqlite3_prepare_v2 (db, "PRAGMA user_version", -1, &st, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step (st);
  if (rc != SQLITE_ROW)
    {
      int code = sqlite3_errcode (db);
      if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
        g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_SCHEMA,
                     "'%s' is not a kvmdesk database: %s", path, sqlite3_errmsg (db));
      else
        g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
                     "cannot read the schema version of database '%s': %s",
                     path, sqlite3_errmsg (db));
      sqlite3_finalize (st);
      return FALSE;
    }
  *out_version = sqlite3_column_int (st, 0);
  sqlite3_finalize (st);
  return TRUE;
}

/* TRUE when PRAGMA foreign_key_check finds no dangling reference. */
static gboolean
foreign_keys_ok (sqlite3     *db,
                 const char  *path,
                 int          version,
                 GError     **error)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = sqlite3_prepare_v2 (db, "PRAGMA foreign_key_check", -1, &st, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_SCHEMA,
                   "cannot migrate database '%s' to schema version %d: "
                   "table '%s' row %lld refers to a missing row in '%s'",
                   path, version, (const char *) sqlite3_column_text (st, 0),
                   (long long) sqlite3_column_int64 (st, 1),
                   (const char *) sqlite3_column_text (st, 2));
      sqlite3_finalize (st);
      return FALSE;
    }
  if (rc != SQLITE_DONE)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
                   "cannot migrate database '%s' to schema version %d: %s",
                   path, version, sqlite3_errmsg (db));
      sqlite3_finalize (st);
      return FALSE;
    }
  sqlite3_finalize (st);
  return TRUE;
}

/* One step in one transaction. Another process may have migrated the file
 * between our read and our BEGIN IMMEDIATE: the version is read again
 * under the write lock. */
static gboolean
apply_migration (sqlite3            *db,
                 const char         *path,
                 const KdMigration  *m,
                 GError            **error)
{
  g_autofree char *set_version = NULL;
  int current = 0;

  if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
                   "cannot migrate database '%s' to schema version %d: %s",
                   path, m->version, sqlite3_errmsg (db));
      return FALSE;
    }
  if (!kd_store_read_user_version (db, path, &current, error))
    goto fail;
  if (current >= m->version)
    {
      sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
      return TRUE;
    }
  if (sqlite3_exec (db, m->sql, NULL, NULL, NULL) != SQLITE_OK)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
                   "cannot migrate database '%s' to schema version %d (%s): %s",
                   path, m->version, m->description, sqlite3_errmsg (db));
      goto fail;
    }
  if (!foreign_keys_ok (db, path, m->version, error))
    goto fail;
  /* PRAGMA takes no parameters; the value is our own integer. */
  set_version = g_strdup_printf ("PRAGMA user_version = %d", m->version);
  if (sqlite3_exec (db, set_version, NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
                   "cannot migrate database '%s' to schema version %d: %s",
                   path, m->version, sqlite3_errmsg (db));
      goto fail;
    }
  g_debug ("database '%s' migrated to schema version %d (%s)",
           path, m->version, m->description);
  return TRUE;

fail:
  if (!sqlite3_get_autocommit (db))
    sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  return FALSE;
}

/**
 * kd_store_migrate:
 * @db: an open connection with foreign key enforcement off
 * @path: the file's name, for messages
 * @out_version: (out): the file's schema version afterwards
 *
 * Brings the file to kd_store_latest_version(). A failed step is rolled
 * back whole; the steps before it stay applied.
 *
 * Returns: %TRUE on success.
 */
gboolean
kd_store_migrate (sqlite3     *db,
                  const char  *path,
                  int         *out_version,
                  GError     **error)
{
  int version = 0;

  if (!kd_store_read_user_version (db, path, &version, error))
    return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (migrations); i++)
    {
      if (migrations[i].version <= version)
        continue;
      if (!apply_migration (db, path, &migrations[i], error))
        return FALSE;
    }
  if (!kd_store_read_user_version (db, path, &version, error))
    return FALSE;
  *out_version = version;
  return TRUE;
}
