/*
 * kd-store.c: kvmdesk's database: opening (file mode, pragmas, schema
 * check and migration), transactions, and typed CRUD for every table.
 *
 * Every value reaches SQLite through sqlite3_bind_*; SQL text is always a
 * constant of this file (statements are prepared once and cached). SQLite
 * errors become KD_STORE_ERROR with a sentence naming the object: UNIQUE
 * -> EXISTS, a foreign key on delete -> IN_USE, a foreign key on insert ->
 * NOT_FOUND (the referenced row is missing), anything else -> FAILED.
 * Library code: returns errors, logs at debug level at most.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "kd-store-priv.h"
#include "common/kd-time.h"

G_DEFINE_QUARK (kvmdesk-store-error-quark, kd_store_error)

#define KD_STORE_BUSY_TIMEOUT_MS 5000
#define KD_STORE_EVENT_LIST_DEFAULT 100

/* ---- statements ------------------------------------------------------ */

/* A cached statement borrowed for one use: released (reset, bindings
 * cleared) when it goes out of scope, never finalized. */
typedef sqlite3_stmt KdStmt;

static void
stmt_release (KdStmt *st)
{
  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdStmt, stmt_release)

static void
stmt_finalize (gpointer st)
{
  sqlite3_finalize (st);
}

static KdStmt *
stmt_get (KdStore     *s,
          const char  *sql,
          GError     **error)
{
  sqlite3_stmt *st = g_hash_table_lookup (s->stmts, sql);

  if (st != NULL)
    return st;
  if (sqlite3_prepare_v3 (s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
                   "database '%s': cannot prepare a statement: %s",
                   s->path, sqlite3_errmsg (s->db));
      return NULL;
    }
  g_hash_table_insert (s->stmts, g_strdup (sql), st);
  return st;
}

static void
bind_text (sqlite3_stmt *st, int idx, const char *value)
{
  if (value == NULL)
    sqlite3_bind_null (st, idx);
  else
    sqlite3_bind_text (st, idx, value, -1, SQLITE_TRANSIENT);
}

/* Row ids are > 0; 0 (or less) means "none" and is stored as NULL. */
static void
bind_id_or_null (sqlite3_stmt *st, int idx, gint64 id)
{
  if (id <= 0)
    sqlite3_bind_null (st, idx);
  else
    sqlite3_bind_int64 (st, idx, id);
}

static char *
col_text (sqlite3_stmt *st, int col)
{
  return g_strdup ((const char *) sqlite3_column_text (st, col));
}

/* ---- errors ---------------------------------------------------------- */

static gboolean
last_error_is (KdStore *s, int extended_code)
{
  return sqlite3_extended_errcode (s->db) == extended_code;
}

static void
set_failed (KdStore     *s,
            const char  *doing,
            GError     **error)
{
  g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
               "%s: %s", doing, sqlite3_errmsg (s->db));
}

static const char *
article (const char *kind)
{
  return kind[0] != '\0' && strchr ("aeio", kind[0]) != NULL ? "an" : "a";   /* "a user" */
}

/* After a failed INSERT or UPDATE of the @kind named @name. @refers_to
 * names what its foreign keys point at ("host, image or template"). */
static void
set_write_error (KdStore     *s,
                 const char  *kind,
                 const char  *name,
                 const char  *refers_to,
                 GError     **error)
{
  if (last_error_is (s, SQLITE_CONSTRAINT_UNIQUE) ||
      last_error_is (s, SQLITE_CONSTRAINT_PRIMARYKEY))
    g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS,
                 "%s %s named '%s' already exists", article (kind), kind, name ? name : "");
  else if (last_error_is (s, SQLITE_CONSTRAINT_FOREIGNKEY))
    g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                 "%s '%s' refers to %s %s that does not exist", kind, name ? name : "",
                 refers_to ? article (refers_to) : "a", refers_to ? refers_to : "row");
  else
    g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
                 "cannot write %s '%s': %s", kind, name ? name : "",
                 sqlite3_errmsg (s->db));
}

/* "SELECT COUNT(*) … WHERE x = ?1" for @id, or -1. */
static gint64
count_by_id (KdStore     *s,
             const char  *sql,
             gint64       id,
             GError     **error)
{
  g_autoptr(KdStmt) st = stmt_get (s, sql, error);

  if (st == NULL)
    return -1;
  sqlite3_bind_int64 (st, 1, id);
  if (sqlite3_step (st) != SQLITE_ROW)
    {
      set_failed (s, "cannot count rows", error);
      return -1;
    }
  return sqlite3_column_int64 (st, 0);
}

/* The name of row @id of @table, for messages; "#ID" if it has none. */
static char *
name_of (KdStore *s, const char *table, gint64 id)
{
  g_autofree char *sql = NULL;
  sqlite3_stmt *st = NULL;
  char *name = NULL;

  /* @table is one of this file's constants, never a value. */
  sql = g_strdup_printf ("SELECT name FROM %s WHERE id = ?1", table);
  if (sqlite3_prepare_v2 (s->db, sql, -1, &st, NULL) == SQLITE_OK)
    {
      sqlite3_bind_int64 (st, 1, id);
      if (sqlite3_step (st) == SQLITE_ROW)
        name = col_text (st, 0);
    }
  sqlite3_finalize (st);
  return name ? name : g_strdup_printf ("#%" G_GINT64_FORMAT, id);
}

/* FAILED with "@doing @kind 'NAME': SQLite's words", NAME being that of
 * row @id of @table. SQLite's message is read before name_of() runs a
 * statement of its own and replaces it. */
static void
set_failed_named (KdStore     *s,
                  const char  *doing,
                  const char  *kind,
                  const char  *table,
                  gint64       id,
                  GError     **error)
{
  g_autofree char *msg = g_strdup (sqlite3_errmsg (s->db));
  g_autofree char *name = name_of (s, table, id);

  g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
               "%s %s '%s': %s", doing, kind, name, msg);
}

static char *
plural (gint64 n, const char *one, const char *many)
{
  return g_strdup_printf ("%" G_GINT64_FORMAT " %s", n, n == 1 ? one : many);
}

/* What still refers to row @id of @table, as a phrase: "2 desktops and
 * 1 image volume". */
static char *
describe_users (KdStore *s, const char *table, gint64 id)
{
  g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func (g_free);
  gint64 n;

  if (g_str_equal (table, "hosts"))
    {
      n = count_by_id (s, "SELECT COUNT(*) FROM desktops WHERE host_id = ?1", id, NULL);
      if (n > 0)
        g_ptr_array_add (parts, plural (n, "desktop", "desktops"));
      n = count_by_id (s, "SELECT COUNT(*) FROM image_volumes WHERE host_id = ?1", id, NULL);
      if (n > 0)
        g_ptr_array_add (parts, plural (n, "image volume", "image volumes"));
      n = count_by_id (s, "SELECT COUNT(*) FROM pool_hosts WHERE host_id = ?1", id, NULL);
      if (n > 0)
        g_ptr_array_add (parts, plural (n, "pool's host list", "pools' host lists"));
      n = count_by_id (s, "SELECT COUNT(*) FROM image_edits WHERE host_id = ?1", id, NULL);
      if (n > 0)
        g_ptr_array_add (parts, plural (n, "image edit", "image edits"));
    }
  else if (g_str_equal (table, "images"))
    {
      n = count_by_id (s, "SELECT COUNT(*) FROM desktops WHERE image_id = ?1", id, NULL);
      if (n > 0)
        g_ptr_array_add (parts, plural (n, "desktop", "desktops"));
      n = count_by_id (s, "SELECT COUNT(*) FROM pools WHERE image_id = ?1", id, NULL);
      if (n > 0)
        g_ptr_array_add (parts, plural (n, "pool", "pools"));
    }
  else if (g_str_equal (table, "templates"))
    {
      n = count_by_id (s, "SELECT COUNT(*) FROM desktops WHERE template_id = ?1", id, NULL);
      if (n > 0)
        g_ptr_array_add (parts, plural (n, "desktop", "desktops"));
      n = count_by_id (s, "SELECT COUNT(*) FROM pools WHERE template_id = ?1", id, NULL);
      if (n > 0)
        g_ptr_array_add (parts, plural (n, "pool", "pools"));
    }
  else if (g_str_equal (table, "pools"))
    {
      n = count_by_id (s, "SELECT COUNT(*) FROM desktops WHERE pool_id = ?1", id, NULL);
      if (n > 0)
        g_ptr_array_add (parts, plural (n, "desktop", "desktops"));
    }
  if (parts->len == 0)
    return g_strdup ("other rows");
  g_ptr_array_add (parts, NULL);
  return g_strjoinv (" and ", (char **) parts->pdata);
}

/* ---- generic row access ---------------------------------------------- */

typedef gpointer (*RowReader) (sqlite3_stmt *st);

/* Runs @sql with ?1 bound to @name (or to @id when @name is NULL) and
 * reads one row: NULL with NOT_FOUND when there is none. */
static gpointer
get_row (KdStore     *s,
         const char  *sql,
         const char  *kind,
         const char  *name,
         gint64       id,
         RowReader    read,
         GError     **error)
{
  g_autoptr(KdStmt) st = stmt_get (s, sql, error);
  int rc;

  if (st == NULL)
    return NULL;
  if (name != NULL)
    bind_text (st, 1, name);
  else
    sqlite3_bind_int64 (st, 1, id);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    return read (st);
  if (rc != SQLITE_DONE)
    {
      g_autofree char *doing = g_strdup_printf ("cannot read %s", kind);
      set_failed (s, doing, error);
    }
  else if (name != NULL)
    g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                 "no %s named '%s'", kind, name);
  else
    g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                 "no %s with id %" G_GINT64_FORMAT, kind, id);
  return NULL;
}

/* Runs @sql, with ?1 bound to @id when @bind_id, and reads every row. */
static GPtrArray *
list_rows (KdStore        *s,
           const char     *sql,
           gboolean        bind_id,
           gint64          id,
           RowReader       read,
           GDestroyNotify  free_row,
           const char     *what,
           GError        **error)
{
  g_autoptr(KdStmt) st = stmt_get (s, sql, error);
  g_autoptr(GPtrArray) rows = NULL;
  int rc;

  if (st == NULL)
    return NULL;
  if (bind_id)
    sqlite3_bind_int64 (st, 1, id);
  rows = g_ptr_array_new_with_free_func (free_row);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    g_ptr_array_add (rows, read (st));
  if (rc != SQLITE_DONE)
    {
      g_autofree char *doing = g_strdup_printf ("cannot list %s", what);
      set_failed (s, doing, error);
      return NULL;
    }
  return g_steal_pointer (&rows);
}

/* Deletes row @id with @sql ("DELETE FROM table WHERE id = ?1"). */
static gboolean
delete_row (KdStore     *s,
            const char  *sql,
            const char  *table,
            const char  *kind,
            gint64       id,
            GError     **error)
{
  g_autoptr(KdStmt) st = stmt_get (s, sql, error);

  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, id);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      if (last_error_is (s, SQLITE_CONSTRAINT_FOREIGNKEY))
        {
          g_autofree char *name = name_of (s, table, id);
          g_autofree char *users = describe_users (s, table, id);
          g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE,
                       "%s '%s' is in use by %s", kind, name, users);
        }
      else
        set_failed_named (s, "cannot delete", kind, table, id, error);
      return FALSE;
    }
  if (sqlite3_changes (s->db) == 0)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "no %s with id %" G_GINT64_FORMAT, kind, id);
      return FALSE;
    }
  return TRUE;
}

/* ---- link tables (user_groups, pool_users, pool_groups, pool_hosts) --- */

/* A savepoint nests inside a caller's transaction and works without one,
 * so a link list is replaced whole or not at all either way. */
static gboolean
savepoint (KdStore *s, const char *sql, GError **error)
{
  if (sqlite3_exec (s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
    {
      set_failed (s, "cannot write a list", error);
      return FALSE;
    }
  return TRUE;
}

static void
savepoint_undo (KdStore *s)
{
  sqlite3_exec (s->db, "ROLLBACK TO kd_links", NULL, NULL, NULL);
  sqlite3_exec (s->db, "RELEASE kd_links", NULL, NULL, NULL);
}

typedef struct {
  const char *owner_kind;    /* "pool" */
  const char *owner_table;   /* "pools" */
  const char *owner_exists;  /* SELECT COUNT(*) … WHERE id = ?1 */
  const char *member_kind;   /* "user" */
  const char *members;       /* "users", for messages */
  const char *delete_sql;    /* DELETE … WHERE owner = ?1 */
  const char *insert_sql;    /* INSERT OR IGNORE … (owner, member) VALUES (?1, ?2) */
} KdLinkTable;

/* Replaces the members of @owner_id with @ids (gint64; %NULL: none). */
static gboolean
set_links (KdStore            *s,
           const KdLinkTable  *t,
           gint64              owner_id,
           GArray             *ids,
           GError            **error)
{
  gint64 n;

  n = count_by_id (s, t->owner_exists, owner_id, error);
  if (n < 0)
    return FALSE;
  if (n == 0)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "no %s with id %" G_GINT64_FORMAT, t->owner_kind, owner_id);
      return FALSE;
    }
  if (!savepoint (s, "SAVEPOINT kd_links", error))
    return FALSE;
  {
    g_autoptr(KdStmt) del = stmt_get (s, t->delete_sql, error);

    if (del == NULL)
      goto fail;
    sqlite3_bind_int64 (del, 1, owner_id);
    if (sqlite3_step (del) != SQLITE_DONE)
      {
        g_autofree char *doing = g_strdup_printf ("cannot set the %s of", t->members);
        set_failed_named (s, doing, t->owner_kind, t->owner_table, owner_id, error);
        goto fail;
      }
  }
  for (guint i = 0; ids != NULL && i < ids->len; i++)
    {
      g_autoptr(KdStmt) ins = stmt_get (s, t->insert_sql, error);
      gint64 member = g_array_index (ids, gint64, i);

      if (ins == NULL)
        goto fail;
      sqlite3_bind_int64 (ins, 1, owner_id);
      sqlite3_bind_int64 (ins, 2, member);
      if (sqlite3_step (ins) != SQLITE_DONE)
        {
          g_autofree char *doing = g_strdup_printf ("cannot set the %s of", t->members);

          if (last_error_is (s, SQLITE_CONSTRAINT_FOREIGNKEY))
            {
              g_autofree char *owner = name_of (s, t->owner_table, owner_id);
              g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                           "%s %s '%s': no %s with id %" G_GINT64_FORMAT,
                           doing, t->owner_kind, owner, t->member_kind, member);
            }
          else
            set_failed_named (s, doing, t->owner_kind, t->owner_table, owner_id, error);
          goto fail;
        }
    }
  if (!savepoint (s, "RELEASE kd_links", error))
    goto fail;
  return TRUE;

fail:
  savepoint_undo (s);
  return FALSE;
}

/* Runs @sql with ?1 bound to @id; returns column 0 of every row. */
static GArray *
list_ids (KdStore     *s,
          const char  *sql,
          gint64       id,
          const char  *what,
          GError     **error)
{
  g_autoptr(KdStmt) st = stmt_get (s, sql, error);
  g_autoptr(GArray) ids = NULL;
  int rc;

  if (st == NULL)
    return NULL;
  sqlite3_bind_int64 (st, 1, id);
  ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      gint64 v = sqlite3_column_int64 (st, 0);
      g_array_append_val (ids, v);
    }
  if (rc != SQLITE_DONE)
    {
      g_autofree char *doing = g_strdup_printf ("cannot list %s", what);
      set_failed (s, doing, error);
      return NULL;
    }
  return g_steal_pointer (&ids);
}

/* ---- opening --------------------------------------------------------- */

/* SQLite creates files with the umask's mode: create it first, 0600,
 * since it holds password hashes. SQLite gives its -wal and -shm files
 * the mode of the database file. */
static gboolean
create_private_file (const char  *path,
                     GError     **error)
{
  int fd = g_open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

  if (fd < 0)
    {
      int saved = errno;
      if (saved == EEXIST)
        return TRUE;
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
                   "cannot create database '%s': %s", path, g_strerror (saved));
      return FALSE;
    }
  close (fd);
  return TRUE;
}

static gboolean
exec_pragma (KdStore     *s,
             const char  *sql,
             GError     **error)
{
  if (sqlite3_exec (s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
                   "database '%s': '%s' failed: %s", s->path, sql, sqlite3_errmsg (s->db));
      return FALSE;
    }
  return TRUE;
}

/* A file with tables but user_version 0 belongs to some other program. */
static gboolean
check_foreign_file (KdStore     *s,
                    GError     **error)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = sqlite3_prepare_v2 (s->db, "SELECT COUNT(*) FROM sqlite_schema", -1, &st, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step (st);
  if (rc != SQLITE_ROW)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_SCHEMA,
                   "'%s' is not a kvmdesk database: %s", s->path, sqlite3_errmsg (s->db));
      sqlite3_finalize (st);
      return FALSE;
    }
  if (sqlite3_column_int64 (st, 0) > 0)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_SCHEMA,
                   "'%s' is not a kvmdesk database: it has tables but no schema version",
                   s->path);
      sqlite3_finalize (st);
      return FALSE;
    }
  sqlite3_finalize (st);
  return TRUE;
}

static gboolean
load_instance_id (KdStore     *s,
                  GError     **error)
{
  for (int attempt = 0; attempt < 2; attempt++)
    {
      g_autoptr(KdStmt) get = stmt_get (s, "SELECT value FROM meta WHERE key = 'instance_id'", error);
      g_autoptr(KdStmt) put = NULL;
      g_autofree char *uuid = NULL;
      g_auto(GStrv) parts = NULL;
      g_autofree char *id = NULL;
      int rc;

      if (get == NULL)
        return FALSE;
      rc = sqlite3_step (get);
      if (rc == SQLITE_ROW)
        {
          s->instance_id = col_text (get, 0);
          return TRUE;
        }
      if (rc != SQLITE_DONE)
        {
          set_failed (s, "cannot read the instance id", error);
          return FALSE;
        }
      stmt_release (get);
      /* First open of a new file: 32 hex digits. OR IGNORE: another
       * process may have written one meanwhile; read it again. */
      uuid = g_uuid_string_random ();
      parts = g_strsplit (uuid, "-", -1);
      id = g_strjoinv ("", parts);
      put = stmt_get (s, "INSERT OR IGNORE INTO meta (key, value) VALUES ('instance_id', ?1)", error);
      if (put == NULL)
        return FALSE;
      bind_text (put, 1, id);
      if (sqlite3_step (put) != SQLITE_DONE)
        {
          set_failed (s, "cannot store the instance id", error);
          return FALSE;
        }
    }
  g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
               "database '%s': cannot store the instance id", s->path);
  return FALSE;
}

/**
 * kd_store_open:
 * @path: the database file, created (mode 0600) if missing; ":memory:"
 *   gives a private in-memory database (tests)
 *
 * Opens the database, refuses a file whose schema is newer than this
 * program (%KD_STORE_ERROR_SCHEMA, before anything is written to it) or
 * that is not a kvmdesk database, and migrates an older one.
 *
 * Returns: (transfer full): the store, or %NULL with @error set.
 */
KdStore *
kd_store_open (const char  *path,
               GError     **error)
{
  g_autoptr(KdStore) s = NULL;
  gboolean memory;
  int version = 0;
  int rc;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  memory = g_str_equal (path, ":memory:");
  if (!memory && !create_private_file (path, error))
    return NULL;

  s = g_new0 (KdStore, 1);
  s->path = g_strdup (path);
  s->stmts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, stmt_finalize);
  rc = sqlite3_open_v2 (path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL);
  if (rc != SQLITE_OK)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
                   "cannot open database '%s': %s", path,
                   s->db ? sqlite3_errmsg (s->db) : sqlite3_errstr (rc));
      return NULL;
    }
  sqlite3_extended_result_codes (s->db, 1);
  sqlite3_busy_timeout (s->db, KD_STORE_BUSY_TIMEOUT_MS);

  /* Nothing may be written before the version is checked: even
   * journal_mode=WAL changes the file header. */
  if (!kd_store_read_user_version (s->db, path, &version, error))
    return NULL;
  if (version > kd_store_latest_version ())
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_SCHEMA,
                   "database '%s' has schema version %d; this kvmdesk knows up to %d: "
                   "upgrade kvmdesk", path, version, kd_store_latest_version ());
      return NULL;
    }
  if (version == 0 && !check_foreign_file (s, error))
    return NULL;

  if (!exec_pragma (s, "PRAGMA journal_mode = WAL", error) ||
      !exec_pragma (s, "PRAGMA synchronous = NORMAL", error) ||
      /* Off while migrations rebuild tables; each checks foreign keys. */
      !exec_pragma (s, "PRAGMA foreign_keys = OFF", error))
    return NULL;
  if (!kd_store_migrate (s->db, path, &s->version, error))
    return NULL;
  if (!exec_pragma (s, "PRAGMA foreign_keys = ON", error))
    return NULL;
  if (!load_instance_id (s, error))
    return NULL;

  g_debug ("database '%s' open, schema version %d, instance %s",
           path, s->version, s->instance_id);
  return g_steal_pointer (&s);
}

/**
 * kd_store_free:
 * @store: (nullable): a store
 *
 * Closes the database. An open transaction is rolled back.
 */
void
kd_store_free (KdStore *store)
{
  if (store == NULL)
    return;
  g_clear_pointer (&store->stmts, g_hash_table_unref);
  if (store->db != NULL)
    {
      if (!sqlite3_get_autocommit (store->db))
        sqlite3_exec (store->db, "ROLLBACK", NULL, NULL, NULL);
      sqlite3_close_v2 (store->db);
    }
  g_free (store->path);
  g_free (store->instance_id);
  g_free (store);
}

/**
 * kd_store_schema_version:
 * Returns: the schema version of the open file (after migration).
 */
int
kd_store_schema_version (KdStore *store)
{
  g_return_val_if_fail (store != NULL, 0);
  return store->version;
}

/**
 * kd_store_get_instance_id:
 * Returns: (transfer none): 32 lower-case hex digits, created with the
 * database and kept for its life.
 */
const char *
kd_store_get_instance_id (KdStore *store)
{
  g_return_val_if_fail (store != NULL, NULL);
  return store->instance_id;
}

/* ---- transactions ---------------------------------------------------- */

/**
 * kd_store_begin:
 *
 * Starts a write transaction (BEGIN IMMEDIATE: the write lock is taken
 * now, so a later statement cannot fail with SQLITE_BUSY). Transactions do
 * not nest.
 *
 * Returns: %TRUE on success.
 */
gboolean
kd_store_begin (KdStore  *s,
                GError  **error)
{
  g_return_val_if_fail (s != NULL, FALSE);

  if (!sqlite3_get_autocommit (s->db))
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
                   "database '%s': a transaction is already open", s->path);
      return FALSE;
    }
  if (sqlite3_exec (s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      set_failed (s, "cannot begin a transaction", error);
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_store_commit:
 *
 * Commits the open transaction. On failure the transaction may still be
 * open: call kd_store_rollback().
 *
 * Returns: %TRUE on success.
 */
gboolean
kd_store_commit (KdStore  *s,
                 GError  **error)
{
  g_return_val_if_fail (s != NULL, FALSE);

  if (sqlite3_get_autocommit (s->db))
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
                   "database '%s': no transaction is open", s->path);
      return FALSE;
    }
  if (sqlite3_exec (s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
    {
      set_failed (s, "cannot commit", error);
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_store_rollback:
 *
 * Rolls the open transaction back; does nothing when none is open.
 */
void
kd_store_rollback (KdStore *s)
{
  g_return_if_fail (s != NULL);

  if (!sqlite3_get_autocommit (s->db))
    sqlite3_exec (s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- users ----------------------------------------------------------- */

#define USER_COLS "id, name, password_hash, role, created_at"

void
kd_user_row_free (KdUserRow *row)
{
  if (row == NULL)
    return;
  g_free (row->name);
  g_free (row->password_hash);
  g_free (row->role);
  g_free (row);
}

static gpointer
read_user (sqlite3_stmt *st)
{
  KdUserRow *row = g_new0 (KdUserRow, 1);

  row->id = sqlite3_column_int64 (st, 0);
  row->name = col_text (st, 1);
  row->password_hash = col_text (st, 2);
  row->role = col_text (st, 3);
  row->created_at = sqlite3_column_int64 (st, 4);
  return row;
}

/**
 * kd_store_user_insert:
 * @row: the user; ->id and ->created_at are filled in on success
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_EXISTS if the name is taken.
 */
gboolean
kd_store_user_insert (KdStore    *s,
                      KdUserRow  *row,
                      GError    **error)
{
  g_autoptr(KdStmt) st = NULL;
  gint64 now = kd_time_now ();

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  st = stmt_get (s, "INSERT INTO users (name, password_hash, role, created_at) "
                    "VALUES (?1, ?2, ?3, ?4)", error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, row->name);
  bind_text (st, 2, row->password_hash);
  bind_text (st, 3, row->role);
  sqlite3_bind_int64 (st, 4, now);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_write_error (s, "user", row->name, NULL, error);
      return FALSE;
    }
  row->id = sqlite3_last_insert_rowid (s->db);
  row->created_at = now;
  return TRUE;
}

/**
 * kd_store_user_get_by_name:
 * Returns: (transfer full): the user, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdUserRow *
kd_store_user_get_by_name (KdStore     *s,
                           const char  *name,
                           GError     **error)
{
  g_return_val_if_fail (s != NULL && name != NULL, NULL);
  return get_row (s, "SELECT " USER_COLS " FROM users WHERE name = ?1",
                  "user", name, 0, read_user, error);
}

/**
 * kd_store_user_get:
 * Returns: (transfer full): the user, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdUserRow *
kd_store_user_get (KdStore  *s,
                   gint64    id,
                   GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return get_row (s, "SELECT " USER_COLS " FROM users WHERE id = ?1",
                  "user", NULL, id, read_user, error);
}

/**
 * kd_store_user_list:
 * Returns: (transfer container): #KdUserRow by name, or %NULL on error.
 */
GPtrArray *
kd_store_user_list (KdStore  *s,
                    GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_rows (s, "SELECT " USER_COLS " FROM users ORDER BY name",
                    FALSE, 0, read_user, (GDestroyNotify) kd_user_row_free, "users", error);
}

/**
 * kd_store_user_count:
 * Returns: the number of users, or -1 with @error set.
 */
gint64
kd_store_user_count (KdStore  *s,
                     GError  **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL, -1);
  st = stmt_get (s, "SELECT COUNT(*) FROM users", error);
  if (st == NULL)
    return -1;
  if (sqlite3_step (st) != SQLITE_ROW)
    {
      set_failed (s, "cannot count users", error);
      return -1;
    }
  return sqlite3_column_int64 (st, 0);
}

/**
 * kd_store_user_update:
 * @row: ->id says which; its name, password_hash and role are written
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if ->id names none;
 * %KD_STORE_ERROR_EXISTS if the new name is taken.
 */
gboolean
kd_store_user_update (KdStore          *s,
                      const KdUserRow  *row,
                      GError          **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  st = stmt_get (s, "UPDATE users SET name = ?2, password_hash = ?3, role = ?4 WHERE id = ?1",
                 error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, row->id);
  bind_text (st, 2, row->name);
  bind_text (st, 3, row->password_hash);
  bind_text (st, 4, row->role);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_write_error (s, "user", row->name, NULL, error);
      return FALSE;
    }
  if (sqlite3_changes (s->db) == 0)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "no user with id %" G_GINT64_FORMAT, row->id);
      return FALSE;
    }
  return TRUE;
}

static const KdLinkTable user_groups_links = {
  "user", "users", "SELECT COUNT(*) FROM users WHERE id = ?1", "group", "groups",
  "DELETE FROM user_groups WHERE user_id = ?1",
  "INSERT OR IGNORE INTO user_groups (user_id, group_id) VALUES (?1, ?2)",
};

/**
 * kd_store_user_set_groups:
 * @group_ids: (element-type gint64) (nullable): the user's groups from now
 *   on; duplicates are ignored, %NULL or empty leaves him in none
 *
 * Replaces the user's group memberships, all or nothing.
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if the user or one
 * of the groups does not exist (and nothing changed).
 */
gboolean
kd_store_user_set_groups (KdStore  *s,
                          gint64    user_id,
                          GArray   *group_ids,
                          GError  **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return set_links (s, &user_groups_links, user_id, group_ids, error);
}

static gpointer read_group (sqlite3_stmt *st);

/**
 * kd_store_user_get_groups:
 * Returns: (transfer container): the #KdGroupRow user @user_id belongs to,
 * by name (empty for a user that does not exist); %NULL on error.
 */
GPtrArray *
kd_store_user_get_groups (KdStore  *s,
                          gint64    user_id,
                          GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_rows (s, "SELECT g.id, g.name, g.created_at FROM groups g "
                       "JOIN user_groups ug ON ug.group_id = g.id "
                       "WHERE ug.user_id = ?1 ORDER BY g.name",
                    TRUE, user_id, read_group, (GDestroyNotify) kd_group_row_free,
                    "groups", error);
}

/**
 * kd_store_user_delete:
 *
 * Deletes user @id with his tokens, group memberships and pool
 * entitlements; desktops he held are left with no user (->user_id 0).
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if there is no such user.
 */
gboolean
kd_store_user_delete (KdStore  *s,
                      gint64    id,
                      GError  **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return delete_row (s, "DELETE FROM users WHERE id = ?1", "users", "user", id, error);
}

/* ---- tokens ---------------------------------------------------------- */

#define TOKEN_COLS "id, token_hash, user_id, created_at, expires_at"

void
kd_token_row_free (KdTokenRow *row)
{
  if (row == NULL)
    return;
  g_free (row->token_hash);
  g_free (row);
}

static gpointer
read_token (sqlite3_stmt *st)
{
  KdTokenRow *row = g_new0 (KdTokenRow, 1);

  row->id = sqlite3_column_int64 (st, 0);
  row->token_hash = col_text (st, 1);
  row->user_id = sqlite3_column_int64 (st, 2);
  row->created_at = sqlite3_column_int64 (st, 3);
  row->expires_at = sqlite3_column_int64 (st, 4);
  return row;
}

/**
 * kd_store_token_insert:
 * @row: the token; ->id and ->created_at are filled in on success
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if ->user_id names
 * no user, %KD_STORE_ERROR_EXISTS if the hash is already stored.
 */
gboolean
kd_store_token_insert (KdStore     *s,
                       KdTokenRow  *row,
                       GError     **error)
{
  g_autoptr(KdStmt) st = NULL;
  gint64 now = kd_time_now ();

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  st = stmt_get (s, "INSERT INTO tokens (token_hash, user_id, created_at, expires_at) "
                    "VALUES (?1, ?2, ?3, ?4)", error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, row->token_hash);
  sqlite3_bind_int64 (st, 2, row->user_id);
  sqlite3_bind_int64 (st, 3, now);
  sqlite3_bind_int64 (st, 4, row->expires_at);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      /* Never put a token's hash in a message. */
      if (last_error_is (s, SQLITE_CONSTRAINT_UNIQUE))
        g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS,
                     "this token is already stored");
      else if (last_error_is (s, SQLITE_CONSTRAINT_FOREIGNKEY))
        g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                     "no user with id %" G_GINT64_FORMAT, row->user_id);
      else
        set_failed (s, "cannot store a token", error);
      return FALSE;
    }
  row->id = sqlite3_last_insert_rowid (s->db);
  row->created_at = now;
  return TRUE;
}

/**
 * kd_store_token_get_by_hash:
 *
 * Expired tokens are returned too: the caller compares ->expires_at.
 *
 * Returns: (transfer full): the token, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdTokenRow *
kd_store_token_get_by_hash (KdStore     *s,
                            const char  *token_hash,
                            GError     **error)
{
  g_autoptr(KdStmt) st = NULL;
  int rc;

  g_return_val_if_fail (s != NULL && token_hash != NULL, NULL);

  st = stmt_get (s, "SELECT " TOKEN_COLS " FROM tokens WHERE token_hash = ?1", error);
  if (st == NULL)
    return NULL;
  bind_text (st, 1, token_hash);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    return read_token (st);
  if (rc == SQLITE_DONE)
    g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND, "no such token");
  else
    set_failed (s, "cannot read a token", error);
  return NULL;
}

/**
 * kd_store_token_delete:
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if no token has that hash.
 */
gboolean
kd_store_token_delete (KdStore     *s,
                       const char  *token_hash,
                       GError     **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL && token_hash != NULL, FALSE);

  st = stmt_get (s, "DELETE FROM tokens WHERE token_hash = ?1", error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, token_hash);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_failed (s, "cannot delete a token", error);
      return FALSE;
    }
  if (sqlite3_changes (s->db) == 0)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND, "no such token");
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_store_token_purge:
 * @now: µs since the epoch
 *
 * Deletes every token with expires_at <= @now.
 *
 * Returns: %TRUE on success (also when nothing expired).
 */
gboolean
kd_store_token_purge (KdStore  *s,
                      gint64    now,
                      GError  **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL, FALSE);

  st = stmt_get (s, "DELETE FROM tokens WHERE expires_at <= ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, now);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_failed (s, "cannot purge expired tokens", error);
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_store_token_delete_for_user:
 *
 * Deletes every token of user @user_id (password change, removal).
 *
 * Returns: %TRUE on success, also when he had none.
 */
gboolean
kd_store_token_delete_for_user (KdStore  *s,
                                gint64    user_id,
                                GError  **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL, FALSE);

  st = stmt_get (s, "DELETE FROM tokens WHERE user_id = ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, user_id);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_failed_named (s, "cannot delete the tokens of", "user", "users", user_id, error);
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_store_token_delete_for_user_except:
 * Deletes every token of the user but the one whose hash is @keep_hash.
 */
gboolean
kd_store_token_delete_for_user_except (KdStore    *s,
                                       gint64      user_id,
                                       const char *keep_hash,
                                       GError    **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL, FALSE);

  st = stmt_get (s, "DELETE FROM tokens WHERE user_id = ?1 AND token_hash <> ?2", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, user_id);
  bind_text (st, 2, keep_hash ? keep_hash : "");
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_failed_named (s, "cannot delete the tokens of", "user", "users", user_id, error);
      return FALSE;
    }
  return TRUE;
}

/* ---- groups ---------------------------------------------------------- */

#define GROUP_COLS "id, name, created_at"

void
kd_group_row_free (KdGroupRow *row)
{
  if (row == NULL)
    return;
  g_free (row->name);
  g_free (row);
}

static gpointer
read_group (sqlite3_stmt *st)
{
  KdGroupRow *row = g_new0 (KdGroupRow, 1);

  row->id = sqlite3_column_int64 (st, 0);
  row->name = col_text (st, 1);
  row->created_at = sqlite3_column_int64 (st, 2);
  return row;
}

/**
 * kd_store_group_insert:
 * @row: the group; ->id and ->created_at are filled in on success
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_EXISTS if the name is taken.
 */
gboolean
kd_store_group_insert (KdStore     *s,
                       KdGroupRow  *row,
                       GError     **error)
{
  g_autoptr(KdStmt) st = NULL;
  gint64 now = kd_time_now ();

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  st = stmt_get (s, "INSERT INTO groups (name, created_at) VALUES (?1, ?2)", error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, row->name);
  sqlite3_bind_int64 (st, 2, now);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_write_error (s, "group", row->name, NULL, error);
      return FALSE;
    }
  row->id = sqlite3_last_insert_rowid (s->db);
  row->created_at = now;
  return TRUE;
}

/**
 * kd_store_group_get_by_name:
 * Returns: (transfer full): the group, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdGroupRow *
kd_store_group_get_by_name (KdStore     *s,
                            const char  *name,
                            GError     **error)
{
  g_return_val_if_fail (s != NULL && name != NULL, NULL);
  return get_row (s, "SELECT " GROUP_COLS " FROM groups WHERE name = ?1",
                  "group", name, 0, read_group, error);
}

/**
 * kd_store_group_get:
 * Returns: (transfer full): the group, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdGroupRow *
kd_store_group_get (KdStore  *s,
                    gint64    id,
                    GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return get_row (s, "SELECT " GROUP_COLS " FROM groups WHERE id = ?1",
                  "group", NULL, id, read_group, error);
}

/**
 * kd_store_group_list:
 * Returns: (transfer container): #KdGroupRow by name, or %NULL on error.
 */
GPtrArray *
kd_store_group_list (KdStore  *s,
                     GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_rows (s, "SELECT " GROUP_COLS " FROM groups ORDER BY name",
                    FALSE, 0, read_group, (GDestroyNotify) kd_group_row_free, "groups", error);
}

/**
 * kd_store_group_delete:
 *
 * Deletes group @id with its memberships and pool entitlements (users
 * entitled only through it lose the pool).
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if there is none.
 */
gboolean
kd_store_group_delete (KdStore  *s,
                       gint64    id,
                       GError  **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return delete_row (s, "DELETE FROM groups WHERE id = ?1", "groups", "group", id, error);
}

/* ---- hosts ----------------------------------------------------------- */

#define HOST_COLS "id, name, uri, created_at, graphics_listen, console_access, maintenance, " \
                  "cpu_ratio, memory_ratio, disk_ratio, memory_reserved, labels, draining, migration"

void
kd_host_row_free (KdHostRow *row)
{
  if (row == NULL)
    return;
  g_free (row->name);
  g_free (row->uri);
  g_free (row->graphics_listen);
  g_free (row->console_access);
  g_free (row->labels);
  g_free (row->migration);
  g_free (row);
}

static gpointer
read_host (sqlite3_stmt *st)
{
  KdHostRow *row = g_new0 (KdHostRow, 1);

  row->id = sqlite3_column_int64 (st, 0);
  row->name = col_text (st, 1);
  row->uri = col_text (st, 2);
  row->created_at = sqlite3_column_int64 (st, 3);
  row->graphics_listen = col_text (st, 4);
  row->console_access = col_text (st, 5);
  row->maintenance = sqlite3_column_int (st, 6) != 0;
  row->cpu_ratio = sqlite3_column_double (st, 7);
  row->memory_ratio = sqlite3_column_double (st, 8);
  row->disk_ratio = sqlite3_column_double (st, 9);
  row->memory_reserved = sqlite3_column_int64 (st, 10);
  row->labels = col_text (st, 11);
  row->draining = sqlite3_column_int (st, 12) != 0;
  row->migration = col_text (st, 13);
  return row;
}

/* Binds maintenance … labels to ?6 … ?11, draining and migration to ?12
 * and ?13; 0 ratios store the defaults. */
static void
bind_host_placement (sqlite3_stmt *st, const KdHostRow *row)
{
  sqlite3_bind_int (st, 6, row->maintenance ? 1 : 0);
  sqlite3_bind_double (st, 7, row->cpu_ratio > 0 ? row->cpu_ratio : 4.0);
  sqlite3_bind_double (st, 8, row->memory_ratio > 0 ? row->memory_ratio : 1.0);
  sqlite3_bind_double (st, 9, row->disk_ratio > 0 ? row->disk_ratio : 1.0);
  sqlite3_bind_int64 (st, 10, row->memory_reserved >= 0 ? row->memory_reserved : 0);
  bind_text (st, 11, row->labels ? row->labels : "");
  sqlite3_bind_int (st, 12, row->draining ? 1 : 0);
  bind_text (st, 13, row->migration ? row->migration : "live");
}

/**
 * kd_store_host_update:
 * Writes the placement settings, graphics_listen and console_access of
 * row ->id (name and URI never change).
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if ->id names none.
 */
gboolean
kd_store_host_update (KdStore          *s,
                      const KdHostRow  *row,
                      GError          **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  st = stmt_get (s, "UPDATE hosts SET graphics_listen = ?4, console_access = ?5, maintenance = ?6, "
                    "cpu_ratio = ?7, memory_ratio = ?8, disk_ratio = ?9, memory_reserved = ?10, "
                    "labels = ?11, draining = ?12, migration = ?13 WHERE id = ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, row->id);
  bind_text (st, 4, row->graphics_listen ? row->graphics_listen : "127.0.0.1");
  bind_text (st, 5, row->console_access ? row->console_access : "auto");
  bind_host_placement (st, row);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_write_error (s, "host", row->name, NULL, error);
      return FALSE;
    }
  if (sqlite3_changes (s->db) == 0)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "no host with id %" G_GINT64_FORMAT, row->id);
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_store_host_insert:
 * @row: the host; ->id and ->created_at are filled in on success
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_EXISTS if the name is taken.
 */
gboolean
kd_store_host_insert (KdStore    *s,
                      KdHostRow  *row,
                      GError    **error)
{
  g_autoptr(KdStmt) st = NULL;
  gint64 now = kd_time_now ();

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  st = stmt_get (s, "INSERT INTO hosts (name, uri, created_at, graphics_listen, console_access, "
                    "maintenance, cpu_ratio, memory_ratio, disk_ratio, memory_reserved, labels, "
                    "draining, migration) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)", error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, row->name);
  bind_text (st, 2, row->uri);
  sqlite3_bind_int64 (st, 3, now);
  bind_text (st, 4, row->graphics_listen ? row->graphics_listen : "127.0.0.1");
  bind_text (st, 5, row->console_access ? row->console_access : "auto");
  bind_host_placement (st, row);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_write_error (s, "host", row->name, NULL, error);
      return FALSE;
    }
  row->id = sqlite3_last_insert_rowid (s->db);
  row->created_at = now;
  return TRUE;
}

/**
 * kd_store_host_get_by_name:
 * Returns: (transfer full): the host, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdHostRow *
kd_store_host_get_by_name (KdStore     *s,
                           const char  *name,
                           GError     **error)
{
  g_return_val_if_fail (s != NULL && name != NULL, NULL);
  return get_row (s, "SELECT " HOST_COLS " FROM hosts WHERE name = ?1",
                  "host", name, 0, read_host, error);
}

/**
 * kd_store_host_get:
 * Returns: (transfer full): the host, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdHostRow *
kd_store_host_get (KdStore  *s,
                   gint64    id,
                   GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return get_row (s, "SELECT " HOST_COLS " FROM hosts WHERE id = ?1",
                  "host", NULL, id, read_host, error);
}

/**
 * kd_store_host_list:
 * Returns: (transfer container): #KdHostRow by name, or %NULL on error.
 */
GPtrArray *
kd_store_host_list (KdStore  *s,
                    GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_rows (s, "SELECT " HOST_COLS " FROM hosts ORDER BY name",
                    FALSE, 0, read_host, (GDestroyNotify) kd_host_row_free, "hosts", error);
}

/**
 * kd_store_host_delete:
 * Returns: %TRUE on success; %KD_STORE_ERROR_IN_USE while desktops, image
 * volumes, image edits or pools' host lists refer to it;
 * %KD_STORE_ERROR_NOT_FOUND if there is none.
 */
gboolean
kd_store_host_delete (KdStore  *s,
                      gint64    id,
                      GError  **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return delete_row (s, "DELETE FROM hosts WHERE id = ?1", "hosts", "host", id, error);
}

/* ---- images ---------------------------------------------------------- */

#define IMAGE_COLS "id, name, format, virtual_size, file_size, created_at, current_version"

void
kd_image_row_free (KdImageRow *row)
{
  if (row == NULL)
    return;
  g_free (row->name);
  g_free (row->format);
  g_free (row);
}

static gpointer
read_image (sqlite3_stmt *st)
{
  KdImageRow *row = g_new0 (KdImageRow, 1);

  row->id = sqlite3_column_int64 (st, 0);
  row->name = col_text (st, 1);
  row->format = col_text (st, 2);
  row->virtual_size = sqlite3_column_int64 (st, 3);
  row->file_size = sqlite3_column_int64 (st, 4);
  row->created_at = sqlite3_column_int64 (st, 5);
  row->current_version = sqlite3_column_int64 (st, 6);
  return row;
}

/* Inserts the images row of @row at @now; returns its id, or 0. */
static gint64
insert_image_row (KdStore           *s,
                  const KdImageRow  *row,
                  gint64             current_version,
                  gint64             now,
                  GError           **error)
{
  g_autoptr(KdStmt) st = NULL;

  st = stmt_get (s, "INSERT INTO images (name, format, virtual_size, file_size, created_at, "
                    "current_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", error);
  if (st == NULL)
    return 0;
  bind_text (st, 1, row->name);
  bind_text (st, 2, row->format);
  sqlite3_bind_int64 (st, 3, row->virtual_size);
  sqlite3_bind_int64 (st, 4, row->file_size);
  sqlite3_bind_int64 (st, 5, now);
  sqlite3_bind_int64 (st, 6, current_version);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_write_error (s, "image", row->name, NULL, error);
      return 0;
    }
  return sqlite3_last_insert_rowid (s->db);
}

static gboolean insert_image_version_row (KdStore *s, KdImageVersionRow *row, gint64 now,
                                          GError **error);

/**
 * kd_store_image_insert:
 * @row: the image; ->id and ->created_at are filled in on success.
 *   ->current_version 0 means 1 (and is set to 1).
 *
 * Records the image and its first version (version ->current_version,
 * with the row's format and sizes, no note and no actor) together: both
 * or neither. Inside a caller's transaction the two are part of it.
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_EXISTS if the name is taken.
 */
gboolean
kd_store_image_insert (KdStore     *s,
                       KdImageRow  *row,
                       GError     **error)
{
  gint64 now = kd_time_now ();
  gint64 version;
  gint64 id;
  KdImageVersionRow first = { 0 };

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  version = row->current_version > 0 ? row->current_version : 1;
  /* A savepoint works both inside a caller's transaction and without
   * one (then it is a transaction of its own). */
  if (sqlite3_exec (s->db, "SAVEPOINT kd_image_insert", NULL, NULL, NULL) != SQLITE_OK)
    {
      set_failed (s, "cannot write an image", error);
      return FALSE;
    }
  id = insert_image_row (s, row, version, now, error);
  if (id == 0)
    goto fail;
  first.image_id = id;
  first.version = version;
  first.format = row->format;
  first.virtual_size = row->virtual_size;
  first.file_size = row->file_size;
  if (!insert_image_version_row (s, &first, now, error))
    goto fail;
  if (sqlite3_exec (s->db, "RELEASE kd_image_insert", NULL, NULL, NULL) != SQLITE_OK)
    {
      set_failed (s, "cannot write an image", error);
      goto fail;
    }
  row->id = id;
  row->created_at = now;
  row->current_version = version;
  return TRUE;

fail:
  sqlite3_exec (s->db, "ROLLBACK TO kd_image_insert", NULL, NULL, NULL);
  sqlite3_exec (s->db, "RELEASE kd_image_insert", NULL, NULL, NULL);
  return FALSE;
}

/**
 * kd_store_image_update:
 * @row: ->id says which; its current_version, format, virtual_size and
 *   file_size are written
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if ->id names no
 * image or the image has no version ->current_version.
 */
gboolean
kd_store_image_update (KdStore           *s,
                       const KdImageRow  *row,
                       GError           **error)
{
  g_autoptr(KdStmt) st = NULL;
  gint64 n;

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  /* The current version must be one the image has. */
  st = stmt_get (s, "UPDATE images SET current_version = ?2, format = ?3, virtual_size = ?4, "
                    "file_size = ?5 WHERE id = ?1 AND EXISTS (SELECT 1 FROM image_versions "
                    "WHERE image_id = ?1 AND version = ?2)", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, row->id);
  sqlite3_bind_int64 (st, 2, row->current_version);
  bind_text (st, 3, row->format);
  sqlite3_bind_int64 (st, 4, row->virtual_size);
  sqlite3_bind_int64 (st, 5, row->file_size);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_failed_named (s, "cannot update", "image", "images", row->id, error);
      return FALSE;
    }
  if (sqlite3_changes (s->db) > 0)
    return TRUE;
  n = count_by_id (s, "SELECT COUNT(*) FROM images WHERE id = ?1", row->id, error);
  if (n < 0)
    return FALSE;
  if (n == 0)
    g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                 "no image with id %" G_GINT64_FORMAT, row->id);
  else
    {
      g_autofree char *name = name_of (s, "images", row->id);
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "image '%s' has no version %" G_GINT64_FORMAT, name, row->current_version);
    }
  return FALSE;
}

/**
 * kd_store_image_get_by_name:
 * Returns: (transfer full): the image, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdImageRow *
kd_store_image_get_by_name (KdStore     *s,
                            const char  *name,
                            GError     **error)
{
  g_return_val_if_fail (s != NULL && name != NULL, NULL);
  return get_row (s, "SELECT " IMAGE_COLS " FROM images WHERE name = ?1",
                  "image", name, 0, read_image, error);
}

/**
 * kd_store_image_get:
 * Returns: (transfer full): the image, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdImageRow *
kd_store_image_get (KdStore  *s,
                    gint64    id,
                    GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return get_row (s, "SELECT " IMAGE_COLS " FROM images WHERE id = ?1",
                  "image", NULL, id, read_image, error);
}

/**
 * kd_store_image_list:
 * Returns: (transfer container): #KdImageRow by name, or %NULL on error.
 */
GPtrArray *
kd_store_image_list (KdStore  *s,
                     GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_rows (s, "SELECT " IMAGE_COLS " FROM images ORDER BY name",
                    FALSE, 0, read_image, (GDestroyNotify) kd_image_row_free, "images", error);
}

/**
 * kd_store_image_delete:
 *
 * Deletes image @id with its versions, image volume rows and edit
 * session (not the volumes on the hosts: that is the caller's work, done
 * first).
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_IN_USE while desktops or
 * pools refer to it; %KD_STORE_ERROR_NOT_FOUND if there is none.
 */
gboolean
kd_store_image_delete (KdStore  *s,
                       gint64    id,
                       GError  **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return delete_row (s, "DELETE FROM images WHERE id = ?1", "images", "image", id, error);
}

/* ---- image versions -------------------------------------------------- */

#define IMAGE_VERSION_COLS "id, image_id, version, format, virtual_size, file_size, note, " \
                           "actor, created_at"

void
kd_image_version_row_free (KdImageVersionRow *row)
{
  if (row == NULL)
    return;
  g_free (row->format);
  g_free (row->note);
  g_free (row->actor);
  g_free (row);
}

static gpointer
read_image_version (sqlite3_stmt *st)
{
  KdImageVersionRow *row = g_new0 (KdImageVersionRow, 1);

  row->id = sqlite3_column_int64 (st, 0);
  row->image_id = sqlite3_column_int64 (st, 1);
  row->version = sqlite3_column_int64 (st, 2);
  row->format = col_text (st, 3);
  row->virtual_size = sqlite3_column_int64 (st, 4);
  row->file_size = sqlite3_column_int64 (st, 5);
  row->note = col_text (st, 6);
  row->actor = col_text (st, 7);
  row->created_at = sqlite3_column_int64 (st, 8);
  return row;
}

/* Inserts @row at @now and fills in ->id and ->created_at. */
static gboolean
insert_image_version_row (KdStore            *s,
                          KdImageVersionRow  *row,
                          gint64              now,
                          GError            **error)
{
  g_autoptr(KdStmt) st = NULL;

  st = stmt_get (s, "INSERT INTO image_versions (image_id, version, format, virtual_size, "
                    "file_size, note, actor, created_at) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, row->image_id);
  sqlite3_bind_int64 (st, 2, row->version);
  bind_text (st, 3, row->format);
  sqlite3_bind_int64 (st, 4, row->virtual_size);
  sqlite3_bind_int64 (st, 5, row->file_size);
  bind_text (st, 6, row->note);
  bind_text (st, 7, row->actor);
  sqlite3_bind_int64 (st, 8, now);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      if (last_error_is (s, SQLITE_CONSTRAINT_UNIQUE))
        {
          g_autofree char *image = name_of (s, "images", row->image_id);
          g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS,
                       "image '%s' already has version %" G_GINT64_FORMAT, image, row->version);
        }
      else if (last_error_is (s, SQLITE_CONSTRAINT_FOREIGNKEY))
        g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                     "no image with id %" G_GINT64_FORMAT, row->image_id);
      else if (last_error_is (s, SQLITE_CONSTRAINT_CHECK))
        g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
                     "image version %" G_GINT64_FORMAT " is not valid: versions start at 1",
                     row->version);
      else
        set_failed_named (s, "cannot write a version of", "image", "images", row->image_id, error);
      return FALSE;
    }
  row->id = sqlite3_last_insert_rowid (s->db);
  row->created_at = now;
  return TRUE;
}

/**
 * kd_store_image_version_insert:
 * @row: the version; ->id and ->created_at are filled in on success
 *
 * Records a version; it does not make it the image's current one (that
 * is kd_store_image_update()).
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_EXISTS if the image already
 * has that version; %KD_STORE_ERROR_NOT_FOUND if the image does not exist.
 */
gboolean
kd_store_image_version_insert (KdStore            *s,
                               KdImageVersionRow  *row,
                               GError            **error)
{
  g_return_val_if_fail (s != NULL && row != NULL, FALSE);
  return insert_image_version_row (s, row, kd_time_now (), error);
}

/**
 * kd_store_image_version_get:
 * Returns: (transfer full): version @version of image @image_id, or %NULL
 * with %KD_STORE_ERROR_NOT_FOUND.
 */
KdImageVersionRow *
kd_store_image_version_get (KdStore  *s,
                            gint64    image_id,
                            gint64    version,
                            GError  **error)
{
  g_autoptr(KdStmt) st = NULL;
  int rc;

  g_return_val_if_fail (s != NULL, NULL);

  st = stmt_get (s, "SELECT " IMAGE_VERSION_COLS " FROM image_versions "
                    "WHERE image_id = ?1 AND version = ?2", error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_int64 (st, 1, image_id);
  sqlite3_bind_int64 (st, 2, version);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    return read_image_version (st);
  if (rc == SQLITE_DONE)
    {
      g_autofree char *image = name_of (s, "images", image_id);
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "image '%s' has no version %" G_GINT64_FORMAT, image, version);
    }
  else
    set_failed (s, "cannot read an image version", error);
  return NULL;
}

/**
 * kd_store_image_version_list:
 * Returns: (transfer container): the #KdImageVersionRow of image
 * @image_id, oldest first (empty for an image that does not exist);
 * %NULL on error.
 */
GPtrArray *
kd_store_image_version_list (KdStore  *s,
                             gint64    image_id,
                             GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_rows (s, "SELECT " IMAGE_VERSION_COLS " FROM image_versions "
                       "WHERE image_id = ?1 ORDER BY version",
                    TRUE, image_id, read_image_version,
                    (GDestroyNotify) kd_image_version_row_free, "image versions", error);
}

/* ---- image edit sessions ---------------------------------------------- */

#define IMAGE_EDIT_COLS "image_id, version, host_id, volume, path, desktop_id, actor, created_at"

void
kd_image_edit_row_free (KdImageEditRow *row)
{
  if (row == NULL)
    return;
  g_free (row->volume);
  g_free (row->path);
  g_free (row->actor);
  g_free (row);
}

static gpointer
read_image_edit (sqlite3_stmt *st)
{
  KdImageEditRow *row = g_new0 (KdImageEditRow, 1);

  row->image_id = sqlite3_column_int64 (st, 0);
  row->version = sqlite3_column_int64 (st, 1);
  row->host_id = sqlite3_column_int64 (st, 2);
  row->volume = col_text (st, 3);
  row->path = col_text (st, 4);
  row->desktop_id = sqlite3_column_int64 (st, 5);   /* NULL reads as 0 */
  row->actor = col_text (st, 6);
  row->created_at = sqlite3_column_int64 (st, 7);
  return row;
}

/* After a failed write of the edit of image @image_id. */
static void
set_image_edit_write_error (KdStore     *s,
                            gint64       image_id,
                            GError     **error)
{
  g_autofree char *msg = g_strdup (sqlite3_errmsg (s->db));
  gboolean exists = last_error_is (s, SQLITE_CONSTRAINT_PRIMARYKEY) ||
                    last_error_is (s, SQLITE_CONSTRAINT_UNIQUE);
  gboolean missing = last_error_is (s, SQLITE_CONSTRAINT_FOREIGNKEY);
  g_autofree char *image = name_of (s, "images", image_id);

  if (exists)
    g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS,
                 "image '%s' is already being edited", image);
  else if (missing)
    g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                 "the edit of image '%s' refers to an image, host or desktop that does not exist",
                 image);
  else
    g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_FAILED,
                 "cannot write the edit of image '%s': %s", image, msg);
}

/**
 * kd_store_image_edit_insert:
 * @row: the edit session; ->created_at is filled in on success.
 *   ->desktop_id 0 stores "none yet".
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_EXISTS if the image already
 * has an edit; %KD_STORE_ERROR_NOT_FOUND if the image, host or desktop
 * does not exist.
 */
gboolean
kd_store_image_edit_insert (KdStore         *s,
                            KdImageEditRow  *row,
                            GError         **error)
{
  g_autoptr(KdStmt) st = NULL;
  gint64 now = kd_time_now ();

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  st = stmt_get (s, "INSERT INTO image_edits (image_id, version, host_id, volume, path, "
                    "desktop_id, actor, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                 error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, row->image_id);
  sqlite3_bind_int64 (st, 2, row->version);
  sqlite3_bind_int64 (st, 3, row->host_id);
  bind_text (st, 4, row->volume);
  bind_text (st, 5, row->path);
  bind_id_or_null (st, 6, row->desktop_id);
  bind_text (st, 7, row->actor);
  sqlite3_bind_int64 (st, 8, now);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_image_edit_write_error (s, row->image_id, error);
      return FALSE;
    }
  row->created_at = now;
  return TRUE;
}

/**
 * kd_store_image_edit_update:
 * @row: ->image_id says which; its path and desktop_id (0: none) are written
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if the image has
 * no edit or the desktop does not exist.
 */
gboolean
kd_store_image_edit_update (KdStore               *s,
                            const KdImageEditRow  *row,
                            GError               **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  st = stmt_get (s, "UPDATE image_edits SET path = ?2, desktop_id = ?3 WHERE image_id = ?1",
                 error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, row->image_id);
  bind_text (st, 2, row->path);
  bind_id_or_null (st, 3, row->desktop_id);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_image_edit_write_error (s, row->image_id, error);
      return FALSE;
    }
  if (sqlite3_changes (s->db) == 0)
    {
      g_autofree char *image = name_of (s, "images", row->image_id);
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "image '%s' is not being edited", image);
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_store_image_edit_get:
 * Returns: (transfer full): the edit of image @image_id, or %NULL with
 * %KD_STORE_ERROR_NOT_FOUND when it has none.
 */
KdImageEditRow *
kd_store_image_edit_get (KdStore  *s,
                         gint64    image_id,
                         GError  **error)
{
  g_autoptr(KdStmt) st = NULL;
  int rc;

  g_return_val_if_fail (s != NULL, NULL);

  st = stmt_get (s, "SELECT " IMAGE_EDIT_COLS " FROM image_edits WHERE image_id = ?1", error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_int64 (st, 1, image_id);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    return read_image_edit (st);
  if (rc == SQLITE_DONE)
    {
      g_autofree char *image = name_of (s, "images", image_id);
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "image '%s' is not being edited", image);
    }
  else
    set_failed (s, "cannot read an image edit", error);
  return NULL;
}

/**
 * kd_store_image_edit_delete:
 *
 * Forgets the edit of image @image_id (not its volume or desktop: those
 * are the caller's).
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if it has none.
 */
gboolean
kd_store_image_edit_delete (KdStore  *s,
                            gint64    image_id,
                            GError  **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL, FALSE);

  st = stmt_get (s, "DELETE FROM image_edits WHERE image_id = ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, image_id);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_failed_named (s, "cannot delete the edit of", "image", "images", image_id, error);
      return FALSE;
    }
  if (sqlite3_changes (s->db) == 0)
    {
      g_autofree char *image = name_of (s, "images", image_id);
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "image '%s' is not being edited", image);
      return FALSE;
    }
  return TRUE;
}

/* ---- image volumes --------------------------------------------------- */

#define IMAGE_VOLUME_COLS "v.id, v.image_id, v.host_id, v.volume, v.path, v.state, v.error, " \
                          "v.simulated, v.created_at, v.version"

void
kd_image_volume_row_free (KdImageVolumeRow *row)
{
  if (row == NULL)
    return;
  g_free (row->volume);
  g_free (row->path);
  g_free (row->state);
  g_free (row->error);
  g_free (row);
}

static gpointer
read_image_volume (sqlite3_stmt *st)
{
  KdImageVolumeRow *row = g_new0 (KdImageVolumeRow, 1);

  row->id = sqlite3_column_int64 (st, 0);
  row->image_id = sqlite3_column_int64 (st, 1);
  row->host_id = sqlite3_column_int64 (st, 2);
  row->volume = col_text (st, 3);
  row->path = col_text (st, 4);
  row->state = col_text (st, 5);
  row->error = col_text (st, 6);
  row->simulated = sqlite3_column_int (st, 7) != 0;
  row->created_at = sqlite3_column_int64 (st, 8);
  row->version = sqlite3_column_int64 (st, 9);
  return row;
}

/**
 * kd_store_image_volume_insert:
 * @row: the volume; ->id and ->created_at are filled in on success.
 *   ->state %NULL means "importing"; ->version 0 means 1 (and is set).
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_EXISTS if that version of
 * the image already has a volume on that host or the host already has a
 * volume of that name; %KD_STORE_ERROR_NOT_FOUND if the image or host
 * does not exist.
 */
gboolean
kd_store_image_volume_insert (KdStore           *s,
                              KdImageVolumeRow  *row,
                              GError           **error)
{
  g_autoptr(KdStmt) st = NULL;
  gint64 now = kd_time_now ();
  const char *state;
  gint64 version;

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  state = row->state ? row->state : "importing";
  version = row->version > 0 ? row->version : 1;
  st = stmt_get (s, "INSERT INTO image_volumes (image_id, host_id, volume, path, state, error, "
                    "simulated, created_at, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                 error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, row->image_id);
  sqlite3_bind_int64 (st, 2, row->host_id);
  bind_text (st, 3, row->volume);
  bind_text (st, 4, row->path);
  bind_text (st, 5, state);
  bind_text (st, 6, row->error);
  sqlite3_bind_int (st, 7, row->simulated ? 1 : 0);
  sqlite3_bind_int64 (st, 8, now);
  sqlite3_bind_int64 (st, 9, version);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      if (last_error_is (s, SQLITE_CONSTRAINT_UNIQUE))
        {
          /* Two UNIQUE constraints; SQLite names the columns. Read the
           * message before name_of() runs other statements. */
          gboolean volume_taken = strstr (sqlite3_errmsg (s->db), "image_volumes.volume") != NULL;
          g_autofree char *image = name_of (s, "images", row->image_id);
          g_autofree char *host = name_of (s, "hosts", row->host_id);

          if (volume_taken)
            g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS,
                         "a volume named '%s' already exists on host '%s'",
                         row->volume ? row->volume : "", host);
          else
            g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS,
                         "image '%s' version %" G_GINT64_FORMAT
                         " already has a volume on host '%s'", image, version, host);
        }
      else
        set_write_error (s, "image volume", row->volume, "image or host", error);
      return FALSE;
    }
  if (row->state == NULL)
    row->state = g_strdup (state);
  row->version = version;
  row->id = sqlite3_last_insert_rowid (s->db);
  row->created_at = now;
  return TRUE;
}

/**
 * kd_store_image_volume_update:
 * @row: ->id says which; its path, state, error and simulated are written
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if ->id names none.
 */
gboolean
kd_store_image_volume_update (KdStore                 *s,
                              const KdImageVolumeRow  *row,
                              GError                 **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  st = stmt_get (s, "UPDATE image_volumes SET path = ?2, state = ?3, error = ?4, simulated = ?5 "
                    "WHERE id = ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, row->id);
  bind_text (st, 2, row->path);
  bind_text (st, 3, row->state ? row->state : "importing");
  bind_text (st, 4, row->error);
  sqlite3_bind_int (st, 5, row->simulated ? 1 : 0);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_write_error (s, "image volume", row->volume, "image or host", error);
      return FALSE;
    }
  if (sqlite3_changes (s->db) == 0)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "no image volume with id %" G_GINT64_FORMAT, row->id);
      return FALSE;
    }
  return TRUE;
}

/* Reads the volume of version @version (0: the image's current one) of
 * image @image_id on host @host_id. */
static KdImageVolumeRow *
get_image_volume (KdStore  *s,
                  gint64    image_id,
                  gint64    version,
                  gint64    host_id,
                  GError  **error)
{
  g_autoptr(KdStmt) st = NULL;
  int rc;

  st = stmt_get (s, "SELECT " IMAGE_VOLUME_COLS " FROM image_volumes v "
                    "WHERE v.image_id = ?1 AND v.host_id = ?2 AND v.version = "
                    "CASE WHEN ?3 > 0 THEN ?3 "
                    "ELSE (SELECT current_version FROM images WHERE id = ?1) END", error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_int64 (st, 1, image_id);
  sqlite3_bind_int64 (st, 2, host_id);
  sqlite3_bind_int64 (st, 3, version);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    return read_image_volume (st);
  if (rc != SQLITE_DONE)
    {
      set_failed (s, "cannot read an image volume", error);
      return NULL;
    }
  {
    g_autoptr(KdImageRow) image = kd_store_image_get (s, image_id, NULL);
    g_autofree char *host = name_of (s, "hosts", host_id);

    if (image == NULL)
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "no image with id %" G_GINT64_FORMAT, image_id);
    else
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "image '%s' version %" G_GINT64_FORMAT " has no volume on host '%s'",
                   image->name, version > 0 ? version : image->current_version, host);
  }
  return NULL;
}

/**
 * kd_store_image_volume_get:
 * Returns: (transfer full): the volume of the current version of image
 * @image_id on host @host_id, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdImageVolumeRow *
kd_store_image_volume_get (KdStore  *s,
                           gint64    image_id,
                           gint64    host_id,
                           GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return get_image_volume (s, image_id, 0, host_id, error);
}

/**
 * kd_store_image_volume_get_version:
 * @version: an image version, >= 1
 *
 * Returns: (transfer full): the volume of version @version of image
 * @image_id on host @host_id, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdImageVolumeRow *
kd_store_image_volume_get_version (KdStore  *s,
                                   gint64    image_id,
                                   gint64    version,
                                   gint64    host_id,
                                   GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);

  if (version < 1)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "image version %" G_GINT64_FORMAT " does not exist: versions start at 1",
                   version);
      return NULL;
    }
  return get_image_volume (s, image_id, version, host_id, error);
}

/**
 * kd_store_image_volume_list:
 * @image_id: an image, or -1 for the volumes of every image
 *
 * Returns: (transfer container): #KdImageVolumeRow of every version,
 * ordered by image name, version, then host name; %NULL on error.
 */
GPtrArray *
kd_store_image_volume_list (KdStore  *s,
                            gint64    image_id,
                            GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);

  if (image_id < 0)
    return list_rows (s, "SELECT " IMAGE_VOLUME_COLS " FROM image_volumes v "
                         "JOIN images i ON i.id = v.image_id JOIN hosts h ON h.id = v.host_id "
                         "ORDER BY i.name, v.version, h.name",
                      FALSE, 0, read_image_volume, (GDestroyNotify) kd_image_volume_row_free,
                      "image volumes", error);
  return list_rows (s, "SELECT " IMAGE_VOLUME_COLS " FROM image_volumes v "
                       "JOIN hosts h ON h.id = v.host_id WHERE v.image_id = ?1 "
                       "ORDER BY v.version, h.name",
                    TRUE, image_id, read_image_volume, (GDestroyNotify) kd_image_volume_row_free,
                    "image volumes", error);
}

/**
 * kd_store_image_volume_delete:
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if @id names none.
 */
gboolean
kd_store_image_volume_delete (KdStore  *s,
                              gint64    id,
                              GError  **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return delete_row (s, "DELETE FROM image_volumes WHERE id = ?1",
                     "image_volumes", "image volume", id, error);
}

/* ---- host GPUs -------------------------------------------------------- */

#define HOST_GPU_COLS "id, host_id, addresses, product, driver, iommu_group, mdev_types, desktop_id"

void
kd_host_gpu_row_free (KdHostGpuRow *row)
{
  if (row == NULL)
    return;
  g_free (row->addresses);
  g_free (row->product);
  g_free (row->driver);
  g_free (row->mdev_types);
  g_clear_pointer (&row->mdevs, g_ptr_array_unref);
  g_free (row);
}

void
kd_gpu_mdev_type_row_free (KdGpuMdevTypeRow *row)
{
  if (row == NULL)
    return;
  g_free (row->type_id);
  g_free (row->name);
  g_free (row->device_api);
  g_free (row);
}

typedef struct {
  gint64            gpu_id;
  KdGpuMdevTypeRow *type;
} KdMdevTypeRead;

static gpointer
read_mdev_type (sqlite3_stmt *st)
{
  KdMdevTypeRead *r = g_new0 (KdMdevTypeRead, 1);

  r->gpu_id = sqlite3_column_int64 (st, 0);
  r->type = g_new0 (KdGpuMdevTypeRow, 1);
  r->type->type_id = col_text (st, 1);
  r->type->name = col_text (st, 2);
  r->type->device_api = col_text (st, 3);
  r->type->instances = sqlite3_column_int64 (st, 4);
  return r;
}

/* Fills ->mdevs of every GPU in @gpus. */
static gboolean
attach_mdev_types (KdStore *s, GPtrArray *gpus, gint64 host_id, GError **error)
{
  g_autoptr(GPtrArray) types = NULL;
  g_autoptr(GHashTable) by_id = g_hash_table_new (g_int64_hash, g_int64_equal);

  if (host_id < 0)
    types = list_rows (s, "SELECT gpu_id, type_id, name, device_api, instances FROM host_gpu_mdev_types "
                          "ORDER BY gpu_id, type_id", FALSE, 0, read_mdev_type, g_free, "GPU vGPU types", error);
  else
    types = list_rows (s, "SELECT t.gpu_id, t.type_id, t.name, t.device_api, t.instances "
                          "FROM host_gpu_mdev_types t JOIN host_gpus g ON g.id = t.gpu_id "
                          "WHERE g.host_id = ?1 ORDER BY t.gpu_id, t.type_id", TRUE, host_id,
                       read_mdev_type, g_free, "GPU vGPU types", error);
  if (types == NULL)
    return FALSE;
  for (guint i = 0; i < gpus->len; i++)
    {
      KdHostGpuRow *g = gpus->pdata[i];
      g->mdevs = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_gpu_mdev_type_row_free);
      g_hash_table_insert (by_id, &g->id, g);
    }
  for (guint i = 0; i < types->len; i++)
    {
      KdMdevTypeRead *r = types->pdata[i];
      KdHostGpuRow *g = g_hash_table_lookup (by_id, &r->gpu_id);
      if (g != NULL)
        g_ptr_array_add (g->mdevs, g_steal_pointer (&r->type));
      else
        kd_gpu_mdev_type_row_free (g_steal_pointer (&r->type));
    }
  return TRUE;
}

static gpointer
read_host_gpu (sqlite3_stmt *st)
{
  KdHostGpuRow *row = g_new0 (KdHostGpuRow, 1);

  row->id = sqlite3_column_int64 (st, 0);
  row->host_id = sqlite3_column_int64 (st, 1);
  row->addresses = col_text (st, 2);
  row->product = col_text (st, 3);
  row->driver = col_text (st, 4);
  row->iommu_group = sqlite3_column_int64 (st, 5);
  row->mdev_types = col_text (st, 6);
  row->desktop_id = sqlite3_column_int64 (st, 7);
  return row;
}

GPtrArray *
kd_store_host_gpu_list (KdStore *s, gint64 host_id, GError **error)
{
  g_autoptr(GPtrArray) gpus = NULL;

  g_return_val_if_fail (s != NULL, NULL);
  if (host_id < 0)
    gpus = list_rows (s, "SELECT " HOST_GPU_COLS " FROM host_gpus ORDER BY host_id, id", FALSE, 0,
                      read_host_gpu, (GDestroyNotify) kd_host_gpu_row_free, "host GPUs", error);
  else
    gpus = list_rows (s, "SELECT " HOST_GPU_COLS " FROM host_gpus WHERE host_id = ?1 ORDER BY id", TRUE,
                      host_id, read_host_gpu, (GDestroyNotify) kd_host_gpu_row_free, "host GPUs", error);
  if (gpus == NULL || !attach_mdev_types (s, gpus, host_id, error))
    return NULL;
  return g_steal_pointer (&gpus);
}

/**
 * kd_store_host_gpus_set:
 * Replaces the host's GPU list in one transaction; refused (IN_USE) while
 * any of its GPUs is given to a desktop.
 */
gboolean
kd_store_host_gpus_set (KdStore *s, gint64 host_id, GPtrArray *rows, GError **error)
{
  gint64 busy;

  g_return_val_if_fail (s != NULL && rows != NULL, FALSE);

  busy = count_by_id (s, "SELECT COUNT(*) FROM host_gpus g WHERE g.host_id = ?1 AND (g.desktop_id IS NOT NULL "
                         "OR EXISTS (SELECT 1 FROM vgpus v WHERE v.gpu_id = g.id))",
                      host_id, error);
  if (busy < 0)
    return FALSE;
  if (busy > 0)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE,
                   "%" G_GINT64_FORMAT " of the host's GPUs %s given to desktops: delete them first",
                   busy, busy == 1 ? "is" : "are");
      return FALSE;
    }
  if (!kd_store_begin (s, error))
    return FALSE;
  {
    g_autoptr(KdStmt) del = stmt_get (s, "DELETE FROM host_gpus WHERE host_id = ?1", error);
    if (del == NULL)
      goto fail;
    sqlite3_bind_int64 (del, 1, host_id);
    if (sqlite3_step (del) != SQLITE_DONE)
      {
        set_failed_named (s, "cannot change the GPUs of", "host", "hosts", host_id, error);
        goto fail;
      }
  }
  for (guint i = 0; i < rows->len; i++)
    {
      KdHostGpuRow *row = rows->pdata[i];
      g_autoptr(KdStmt) st = stmt_get (s, "INSERT INTO host_gpus (host_id, addresses, product, driver, "
                                          "iommu_group, mdev_types) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                       error);
      if (st == NULL)
        goto fail;
      sqlite3_bind_int64 (st, 1, host_id);
      bind_text (st, 2, row->addresses);
      bind_text (st, 3, row->product);
      bind_text (st, 4, row->driver);
      sqlite3_bind_int64 (st, 5, row->iommu_group);
      bind_text (st, 6, row->mdev_types ? row->mdev_types : "");
      if (sqlite3_step (st) != SQLITE_DONE)
        {
          set_write_error (s, "GPU", row->addresses, "host", error);
          goto fail;
        }
      row->id = sqlite3_last_insert_rowid (s->db);
      row->host_id = host_id;
      for (guint k = 0; row->mdevs != NULL && k < row->mdevs->len; k++)
        {
          KdGpuMdevTypeRow *t = row->mdevs->pdata[k];
          g_autoptr(KdStmt) ti = stmt_get (s, "INSERT INTO host_gpu_mdev_types (gpu_id, type_id, name, "
                                              "device_api, instances) VALUES (?1, ?2, ?3, ?4, ?5)", error);
          if (ti == NULL)
            goto fail;
          sqlite3_bind_int64 (ti, 1, row->id);
          bind_text (ti, 2, t->type_id);
          bind_text (ti, 3, t->name);
          bind_text (ti, 4, t->device_api);
          sqlite3_bind_int64 (ti, 5, t->instances);
          if (sqlite3_step (ti) != SQLITE_DONE)
            {
              set_write_error (s, "vGPU type", t->type_id, "GPU", error);
              goto fail;
            }
        }
    }
  return kd_store_commit (s, error);

fail:
  kd_store_rollback (s);
  return FALSE;
}

gboolean
kd_store_host_gpu_assign (KdStore *s, gint64 gpu_id, gint64 desktop_id, GError **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL, FALSE);
  st = stmt_get (s, "UPDATE host_gpus SET desktop_id = ?2 WHERE id = ?1 AND desktop_id IS NULL "
                    "AND NOT EXISTS (SELECT 1 FROM vgpus WHERE gpu_id = ?1)", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, gpu_id);
  sqlite3_bind_int64 (st, 2, desktop_id);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_failed_named (s, "cannot assign the GPU to", "desktop", "desktops", desktop_id, error);
      return FALSE;
    }
  if (sqlite3_changes (s->db) == 0)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE, "GPU %" G_GINT64_FORMAT " is taken", gpu_id);
      return FALSE;
    }
  return TRUE;
}

gboolean
kd_store_host_gpu_free (KdStore *s, gint64 gpu_id, GError **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL, FALSE);
  st = stmt_get (s, "UPDATE host_gpus SET desktop_id = NULL WHERE id = ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, gpu_id);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_failed_named (s, "cannot free", "GPU", "host_gpus", gpu_id, error);
      return FALSE;
    }
  return TRUE;
}

/* ---- vGPUs ----------------------------------------------------------- */

#define VGPU_SELECT "SELECT v.id, v.gpu_id, g.host_id, v.type_id, v.uuid, v.desktop_id " \
                    "FROM vgpus v JOIN host_gpus g ON g.id = v.gpu_id "

void
kd_vgpu_row_free (KdVgpuRow *row)
{
  if (row == NULL)
    return;
  g_free (row->type_id);
  g_free (row->uuid);
  g_free (row);
}

static gpointer
read_vgpu (sqlite3_stmt *st)
{
  KdVgpuRow *row = g_new0 (KdVgpuRow, 1);

  row->id = sqlite3_column_int64 (st, 0);
  row->gpu_id = sqlite3_column_int64 (st, 1);
  row->host_id = sqlite3_column_int64 (st, 2);
  row->type_id = col_text (st, 3);
  row->uuid = col_text (st, 4);
  row->desktop_id = sqlite3_column_int64 (st, 5);
  return row;
}

GPtrArray *
kd_store_vgpu_list (KdStore *s, gint64 host_id, GError **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  if (host_id < 0)
    return list_rows (s, VGPU_SELECT "ORDER BY v.id", FALSE, 0, read_vgpu,
                      (GDestroyNotify) kd_vgpu_row_free, "vGPUs", error);
  return list_rows (s, VGPU_SELECT "WHERE g.host_id = ?1 ORDER BY v.id", TRUE, host_id, read_vgpu,
                    (GDestroyNotify) kd_vgpu_row_free, "vGPUs", error);
}

GPtrArray *
kd_store_vgpu_list_by_desktop (KdStore *s, gint64 desktop_id, GError **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_rows (s, VGPU_SELECT "WHERE v.desktop_id = ?1 ORDER BY v.id", TRUE, desktop_id, read_vgpu,
                    (GDestroyNotify) kd_vgpu_row_free, "vGPUs", error);
}

/**
 * kd_store_vgpu_insert:
 * The rules of a GPU shared as vGPUs are checked in the statement itself,
 * so that no caller can hand out more instances than the GPU has, a
 * vGPU of a GPU passed through whole, or two types on one GPU.
 */
gboolean
kd_store_vgpu_insert (KdStore *s, KdVgpuRow *row, GError **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);
  st = stmt_get (s, "INSERT INTO vgpus (gpu_id, type_id, uuid, desktop_id) "
                    "SELECT ?1, ?2, ?3, ?4 "
                    "WHERE EXISTS (SELECT 1 FROM host_gpus WHERE id = ?1 AND desktop_id IS NULL) "
                    "AND NOT EXISTS (SELECT 1 FROM vgpus WHERE gpu_id = ?1 AND type_id <> ?2) "
                    "AND (SELECT COUNT(*) FROM vgpus WHERE gpu_id = ?1) < "
                    "    COALESCE ((SELECT instances FROM host_gpu_mdev_types WHERE gpu_id = ?1 AND type_id = ?2), 0)",
                 error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, row->gpu_id);
  bind_text (st, 2, row->type_id);
  bind_text (st, 3, row->uuid);
  sqlite3_bind_int64 (st, 4, row->desktop_id);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_write_error (s, "vGPU", row->uuid, "desktop", error);
      return FALSE;
    }
  if (sqlite3_changes (s->db) == 0)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE,
                   "GPU %" G_GINT64_FORMAT " has no free vGPU of type %s", row->gpu_id, row->type_id);
      return FALSE;
    }
  row->id = sqlite3_last_insert_rowid (s->db);
  return TRUE;
}

gboolean
kd_store_vgpu_delete (KdStore *s, gint64 id, GError **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return delete_row (s, "DELETE FROM vgpus WHERE id = ?1", "vgpus", "vGPU", id, error);
}

/* ---- templates ------------------------------------------------------- */

#define TEMPLATE_COLS "id, name, vcpus, memory_mib, disk_gib, display, network, firmware, created_at, " \
                      "rdp_port, gpus, gpu_mdev"

void
kd_template_row_free (KdTemplateRow *row)
{
  if (row == NULL)
    return;
  g_free (row->name);
  g_free (row->display);
  g_free (row->network);
  g_free (row->firmware);
  g_free (row->gpu_mdev);
  g_free (row);
}

static gpointer
read_template (sqlite3_stmt *st)
{
  KdTemplateRow *row = g_new0 (KdTemplateRow, 1);

  row->id = sqlite3_column_int64 (st, 0);
  row->name = col_text (st, 1);
  row->vcpus = sqlite3_column_int64 (st, 2);
  row->memory_mib = sqlite3_column_int64 (st, 3);
  row->disk_gib = sqlite3_column_int64 (st, 4);
  row->display = col_text (st, 5);
  row->network = col_text (st, 6);
  row->firmware = col_text (st, 7);
  row->created_at = sqlite3_column_int64 (st, 8);
  row->rdp_port = sqlite3_column_int64 (st, 9);
  row->gpus = sqlite3_column_int64 (st, 10);
  row->gpu_mdev = col_text (st, 11);
  if (row->gpu_mdev == NULL)
    row->gpu_mdev = g_strdup ("");
  return row;
}

/**
 * kd_store_template_insert:
 * @row: the template; ->id and ->created_at are filled in on success
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_EXISTS if the name is taken.
 */
gboolean
kd_store_template_insert (KdStore        *s,
                          KdTemplateRow  *row,
                          GError        **error)
{
  g_autoptr(KdStmt) st = NULL;
  gint64 now = kd_time_now ();

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  st = stmt_get (s, "INSERT INTO templates (name, vcpus, memory_mib, disk_gib, display, network, "
                    "firmware, created_at, rdp_port, gpus, gpu_mdev) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                 error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, row->name);
  sqlite3_bind_int64 (st, 2, row->vcpus);
  sqlite3_bind_int64 (st, 3, row->memory_mib);
  sqlite3_bind_int64 (st, 4, row->disk_gib);
  bind_text (st, 5, row->display);
  bind_text (st, 6, row->network);
  bind_text (st, 7, row->firmware);
  sqlite3_bind_int64 (st, 8, now);
  sqlite3_bind_int64 (st, 9, row->rdp_port);
  sqlite3_bind_int64 (st, 10, row->gpus);
  bind_text (st, 11, row->gpu_mdev ? row->gpu_mdev : "");
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_write_error (s, "template", row->name, NULL, error);
      return FALSE;
    }
  row->id = sqlite3_last_insert_rowid (s->db);
  row->created_at = now;
  return TRUE;
}

/**
 * kd_store_template_get_by_name:
 * Returns: (transfer full): the template, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdTemplateRow *
kd_store_template_get_by_name (KdStore     *s,
                               const char  *name,
                               GError     **error)
{
  g_return_val_if_fail (s != NULL && name != NULL, NULL);
  return get_row (s, "SELECT " TEMPLATE_COLS " FROM templates WHERE name = ?1",
                  "template", name, 0, read_template, error);
}

/**
 * kd_store_template_get:
 * Returns: (transfer full): the template, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdTemplateRow *
kd_store_template_get (KdStore  *s,
                       gint64    id,
                       GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return get_row (s, "SELECT " TEMPLATE_COLS " FROM templates WHERE id = ?1",
                  "template", NULL, id, read_template, error);
}

/**
 * kd_store_template_list:
 * Returns: (transfer container): #KdTemplateRow by name, or %NULL on error.
 */
GPtrArray *
kd_store_template_list (KdStore  *s,
                        GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_rows (s, "SELECT " TEMPLATE_COLS " FROM templates ORDER BY name",
                    FALSE, 0, read_template, (GDestroyNotify) kd_template_row_free,
                    "templates", error);
}

/**
 * kd_store_template_delete:
 * Returns: %TRUE on success; %KD_STORE_ERROR_IN_USE while desktops or
 * pools refer to it; %KD_STORE_ERROR_NOT_FOUND if there is none.
 */
gboolean
kd_store_template_delete (KdStore  *s,
                          gint64    id,
                          GError  **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return delete_row (s, "DELETE FROM templates WHERE id = ?1", "templates", "template", id, error);
}

/* ---- desktops -------------------------------------------------------- */

#define DESKTOP_COLS "id, name, domain, uuid, host_id, image_id, template_id, overlay_volume, " \
                     "overlay_path, state, state_reason, created_at, updated_at, pool_id, " \
                     "user_id, assigned_at, connected_since, last_seen, disconnected_at, " \
                     "needs_reset, image_version, console_connections, console_bytes_in, " \
                     "console_bytes_out"

void
kd_desktop_row_free (KdDesktopRow *row)
{
  if (row == NULL)
    return;
  g_free (row->name);
  g_free (row->domain);
  g_free (row->uuid);
  g_free (row->overlay_volume);
  g_free (row->overlay_path);
  g_free (row->state);
  g_free (row->state_reason);
  g_free (row);
}

static gpointer
read_desktop (sqlite3_stmt *st)
{
  KdDesktopRow *row = g_new0 (KdDesktopRow, 1);

  row->id = sqlite3_column_int64 (st, 0);
  row->name = col_text (st, 1);
  row->domain = col_text (st, 2);
  row->uuid = col_text (st, 3);
  row->host_id = sqlite3_column_int64 (st, 4);
  row->image_id = sqlite3_column_int64 (st, 5);
  row->template_id = sqlite3_column_int64 (st, 6);
  row->overlay_volume = col_text (st, 7);
  row->overlay_path = col_text (st, 8);
  row->state = col_text (st, 9);
  row->state_reason = col_text (st, 10);
  row->created_at = sqlite3_column_int64 (st, 11);
  row->updated_at = sqlite3_column_int64 (st, 12);
  /* NULL reads as 0: "no pool", "nobody". */
  row->pool_id = sqlite3_column_int64 (st, 13);
  row->user_id = sqlite3_column_int64 (st, 14);
  row->assigned_at = sqlite3_column_int64 (st, 15);
  row->connected_since = sqlite3_column_int64 (st, 16);
  row->last_seen = sqlite3_column_int64 (st, 17);
  row->disconnected_at = sqlite3_column_int64 (st, 18);
  row->needs_reset = sqlite3_column_int (st, 19) != 0;
  row->image_version = sqlite3_column_int64 (st, 20);
  row->console_connections = sqlite3_column_int64 (st, 21);
  row->console_bytes_in = sqlite3_column_int64 (st, 22);
  row->console_bytes_out = sqlite3_column_int64 (st, 23);
  return row;
}

/* The desktop table has two UNIQUE columns: say which one clashed. */
static void
set_desktop_write_error (KdStore            *s,
                         const KdDesktopRow *row,
                         GError            **error)
{
  if (last_error_is (s, SQLITE_CONSTRAINT_UNIQUE) &&
      strstr (sqlite3_errmsg (s->db), "desktops.domain") != NULL)
    g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_EXISTS,
                 "a desktop with domain name '%s' already exists",
                 row->domain ? row->domain : "");
  else
    set_write_error (s, "desktop", row->name, "host, image, template, pool or user", error);
}

/* Binds the schema-3 columns, pool_id to needs_reset, and schema 4's
 * image_version (0 stores 1), from ?@first on. */
static void
bind_desktop_session (sqlite3_stmt       *st,
                      int                 first,
                      const KdDesktopRow *row)
{
  bind_id_or_null (st, first, row->pool_id);
  bind_id_or_null (st, first + 1, row->user_id);
  sqlite3_bind_int64 (st, first + 2, row->assigned_at);
  sqlite3_bind_int64 (st, first + 3, row->connected_since);
  sqlite3_bind_int64 (st, first + 4, row->last_seen);
  sqlite3_bind_int64 (st, first + 5, row->disconnected_at);
  sqlite3_bind_int (st, first + 6, row->needs_reset ? 1 : 0);
  sqlite3_bind_int64 (st, first + 7, row->image_version > 0 ? row->image_version : 1);
}

/**
 * kd_store_desktop_insert:
 * @row: the desktop; ->id, ->created_at and ->updated_at are filled in on
 *   success. ->host_id, ->pool_id and ->user_id 0 store "none".
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_EXISTS if the name or the
 * domain name is taken; %KD_STORE_ERROR_NOT_FOUND if the host, image,
 * template, pool or user does not exist.
 */
gboolean
kd_store_desktop_insert (KdStore       *s,
                         KdDesktopRow  *row,
                         GError       **error)
{
  g_autoptr(KdStmt) st = NULL;
  gint64 now = kd_time_now ();

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  st = stmt_get (s, "INSERT INTO desktops (name, domain, uuid, host_id, image_id, template_id, "
                    "overlay_volume, overlay_path, state, state_reason, created_at, updated_at, "
                    "pool_id, user_id, assigned_at, connected_since, last_seen, disconnected_at, "
                    "needs_reset, image_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                    "?10, ?11, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)", error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, row->name);
  bind_text (st, 2, row->domain);
  bind_text (st, 3, row->uuid);
  bind_id_or_null (st, 4, row->host_id);
  sqlite3_bind_int64 (st, 5, row->image_id);
  sqlite3_bind_int64 (st, 6, row->template_id);
  bind_text (st, 7, row->overlay_volume);
  bind_text (st, 8, row->overlay_path);
  bind_text (st, 9, row->state);
  bind_text (st, 10, row->state_reason);
  sqlite3_bind_int64 (st, 11, now);
  bind_desktop_session (st, 12, row);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_desktop_write_error (s, row, error);
      return FALSE;
    }
  row->id = sqlite3_last_insert_rowid (s->db);
  row->created_at = now;
  row->updated_at = now;
  if (row->image_version <= 0)
    row->image_version = 1;
  return TRUE;
}

/**
 * kd_store_desktop_update:
 * @row: ->id says which; every other column but created_at is written,
 *   and ->updated_at is set to now on success
 *
 * Writing ->user_id here bypasses the guard of kd_store_desktop_assign():
 * use it to release a desktop (->user_id 0), not to hand one out.
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if ->id names none
 * (or the host, image, template, pool or user it names does not exist);
 * %KD_STORE_ERROR_EXISTS if the new name or domain name is taken.
 */
gboolean
kd_store_desktop_update (KdStore       *s,
                         KdDesktopRow  *row,
                         GError       **error)
{
  g_autoptr(KdStmt) st = NULL;
  gint64 now = kd_time_now ();

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  st = stmt_get (s, "UPDATE desktops SET name = ?2, domain = ?3, uuid = ?4, host_id = ?5, "
                    "image_id = ?6, template_id = ?7, overlay_volume = ?8, overlay_path = ?9, "
                    "state = ?10, state_reason = ?11, updated_at = ?12, pool_id = ?13, "
                    "user_id = ?14, assigned_at = ?15, connected_since = ?16, last_seen = ?17, "
                    "disconnected_at = ?18, needs_reset = ?19, image_version = ?20 "
                    "WHERE id = ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, row->id);
  bind_text (st, 2, row->name);
  bind_text (st, 3, row->domain);
  bind_text (st, 4, row->uuid);
  bind_id_or_null (st, 5, row->host_id);
  sqlite3_bind_int64 (st, 6, row->image_id);
  sqlite3_bind_int64 (st, 7, row->template_id);
  bind_text (st, 8, row->overlay_volume);
  bind_text (st, 9, row->overlay_path);
  bind_text (st, 10, row->state);
  bind_text (st, 11, row->state_reason);
  sqlite3_bind_int64 (st, 12, now);
  bind_desktop_session (st, 13, row);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_desktop_write_error (s, row, error);
      return FALSE;
    }
  if (sqlite3_changes (s->db) == 0)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "no desktop with id %" G_GINT64_FORMAT, row->id);
      return FALSE;
    }
  row->updated_at = now;
  return TRUE;
}

/**
 * kd_store_desktop_get_by_name:
 * Returns: (transfer full): the desktop, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdDesktopRow *
kd_store_desktop_get_by_name (KdStore     *s,
                              const char  *name,
                              GError     **error)
{
  g_return_val_if_fail (s != NULL && name != NULL, NULL);
  return get_row (s, "SELECT " DESKTOP_COLS " FROM desktops WHERE name = ?1",
                  "desktop", name, 0, read_desktop, error);
}

/**
 * kd_store_desktop_get:
 * Returns: (transfer full): the desktop, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdDesktopRow *
kd_store_desktop_get (KdStore  *s,
                      gint64    id,
                      GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return get_row (s, "SELECT " DESKTOP_COLS " FROM desktops WHERE id = ?1",
                  "desktop", NULL, id, read_desktop, error);
}

/**
 * kd_store_desktop_list:
 * Returns: (transfer container): #KdDesktopRow by name, or %NULL on error.
 */
GPtrArray *
kd_store_desktop_list (KdStore  *s,
                       GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_rows (s, "SELECT " DESKTOP_COLS " FROM desktops ORDER BY name",
                    FALSE, 0, read_desktop, (GDestroyNotify) kd_desktop_row_free,
                    "desktops", error);
}

/**
 * kd_store_desktop_list_by_host:
 * Returns: (transfer container): the #KdDesktopRow placed on host
 * @host_id, by name; %NULL on error.
 */
GPtrArray *
kd_store_desktop_list_by_host (KdStore  *s,
                               gint64    host_id,
                               GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_rows (s, "SELECT " DESKTOP_COLS " FROM desktops WHERE host_id = ?1 ORDER BY name",
                    TRUE, host_id, read_desktop, (GDestroyNotify) kd_desktop_row_free,
                    "desktops", error);
}

/**
 * kd_store_desktop_list_by_pool:
 * Returns: (transfer container): the #KdDesktopRow of pool @pool_id, by
 * name; %NULL on error.
 */
GPtrArray *
kd_store_desktop_list_by_pool (KdStore  *s,
                               gint64    pool_id,
                               GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_rows (s, "SELECT " DESKTOP_COLS " FROM desktops WHERE pool_id = ?1 ORDER BY name",
                    TRUE, pool_id, read_desktop, (GDestroyNotify) kd_desktop_row_free,
                    "desktops", error);
}

/**
 * kd_store_desktop_list_by_user:
 * Returns: (transfer container): the #KdDesktopRow user @user_id holds, by
 * name; %NULL on error.
 */
GPtrArray *
kd_store_desktop_list_by_user (KdStore  *s,
                               gint64    user_id,
                               GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_rows (s, "SELECT " DESKTOP_COLS " FROM desktops WHERE user_id = ?1 ORDER BY name",
                    TRUE, user_id, read_desktop, (GDestroyNotify) kd_desktop_row_free,
                    "desktops", error);
}

/**
 * kd_store_desktop_add_console_stats:
 * Adds @connections, @bytes_in and @bytes_out to the desktop's console
 * counters in one statement (the rest of the row is untouched, so it
 * cannot undo a concurrent state change). A missing desktop is not an
 * error: it was deleted while a viewer was still attached.
 */
gboolean
kd_store_desktop_add_console_stats (KdStore  *s,
                                    gint64    desktop_id,
                                    gint64    connections,
                                    gint64    bytes_in,
                                    gint64    bytes_out,
                                    GError  **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL, FALSE);

  st = stmt_get (s, "UPDATE desktops SET console_connections = console_connections + ?2, "
                    "console_bytes_in = console_bytes_in + ?3, "
                    "console_bytes_out = console_bytes_out + ?4 WHERE id = ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, desktop_id);
  sqlite3_bind_int64 (st, 2, connections);
  sqlite3_bind_int64 (st, 3, bytes_in);
  sqlite3_bind_int64 (st, 4, bytes_out);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_failed_named (s, "cannot count the console of", "desktop", "desktops", desktop_id, error);
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_store_desktop_assign:
 * @desktop_id: the desktop
 * @user_id: who gets it
 * @now: µs since the epoch: its assigned_at and updated_at
 *
 * Hands the desktop to @user_id only if nobody holds it, in one statement
 * (UPDATE … WHERE user_id IS NULL), so two requests racing for one
 * desktop cannot both win. Nothing else of the row changes.
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_IN_USE if someone already
 * holds it (he keeps it); %KD_STORE_ERROR_NOT_FOUND if the desktop or the
 * user does not exist.
 */
gboolean
kd_store_desktop_assign (KdStore  *s,
                         gint64    desktop_id,
                         gint64    user_id,
                         gint64    now,
                         GError  **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL, FALSE);

  st = stmt_get (s, "UPDATE desktops SET user_id = ?2, assigned_at = ?3, updated_at = ?3 "
                    "WHERE id = ?1 AND user_id IS NULL", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, desktop_id);
  sqlite3_bind_int64 (st, 2, user_id);
  sqlite3_bind_int64 (st, 3, now);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      if (last_error_is (s, SQLITE_CONSTRAINT_FOREIGNKEY))
        {
          g_autofree char *name = name_of (s, "desktops", desktop_id);
          g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                       "cannot assign desktop '%s': no user with id %" G_GINT64_FORMAT,
                       name, user_id);
        }
      else
        set_failed_named (s, "cannot assign", "desktop", "desktops", desktop_id, error);
      return FALSE;
    }
  if (sqlite3_changes (s->db) == 0)
    {
      gint64 n = count_by_id (s, "SELECT COUNT(*) FROM desktops WHERE id = ?1", desktop_id, error);

      if (n < 0)
        return FALSE;
      if (n == 0)
        g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                     "no desktop with id %" G_GINT64_FORMAT, desktop_id);
      else
        {
          g_autofree char *name = name_of (s, "desktops", desktop_id);
          g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE,
                       "desktop '%s' is already assigned", name);
        }
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_store_desktop_count_by_image:
 * Returns: how many desktops use image @image_id, or -1 with @error set.
 */
gint64
kd_store_desktop_count_by_image (KdStore  *s,
                                 gint64    image_id,
                                 GError  **error)
{
  g_return_val_if_fail (s != NULL, -1);
  return count_by_id (s, "SELECT COUNT(*) FROM desktops WHERE image_id = ?1", image_id, error);
}

/**
 * kd_store_desktop_delete:
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if @id names none.
 */
gboolean
kd_store_desktop_delete (KdStore  *s,
                         gint64    id,
                         GError  **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return delete_row (s, "DELETE FROM desktops WHERE id = ?1", "desktops", "desktop", id, error);
}

/* ---- pools ----------------------------------------------------------- */

#define POOL_COLS "id, name, image_id, template_id, mode, size, warm, idle_timeout, " \
                  "disconnect_timeout, maintenance, created_at, updated_at, console_mode, " \
                  "placement, host_labels"

void
kd_pool_row_free (KdPoolRow *row)
{
  if (row == NULL)
    return;
  g_free (row->name);
  g_free (row->mode);
  g_free (row->console_mode);
  g_free (row->placement);
  g_free (row->host_labels);
  g_free (row);
}

static gpointer
read_pool (sqlite3_stmt *st)
{
  KdPoolRow *row = g_new0 (KdPoolRow, 1);

  row->id = sqlite3_column_int64 (st, 0);
  row->name = col_text (st, 1);
  row->image_id = sqlite3_column_int64 (st, 2);
  row->template_id = sqlite3_column_int64 (st, 3);
  row->mode = col_text (st, 4);
  row->size = sqlite3_column_int64 (st, 5);
  row->warm = sqlite3_column_int64 (st, 6);
  row->idle_timeout = sqlite3_column_int64 (st, 7);
  row->disconnect_timeout = sqlite3_column_int64 (st, 8);
  row->maintenance = sqlite3_column_int (st, 9) != 0;
  row->created_at = sqlite3_column_int64 (st, 10);
  row->updated_at = sqlite3_column_int64 (st, 11);
  row->console_mode = col_text (st, 12);
  row->placement = col_text (st, 13);
  row->host_labels = col_text (st, 14);
  return row;
}

/* Binds name … maintenance to ?2 … ?10, console_mode to ?12. */
static void
bind_pool (sqlite3_stmt    *st,
           const KdPoolRow *row)
{
  bind_text (st, 2, row->name);
  sqlite3_bind_int64 (st, 3, row->image_id);
  sqlite3_bind_int64 (st, 4, row->template_id);
  bind_text (st, 5, row->mode);
  sqlite3_bind_int64 (st, 6, row->size);
  sqlite3_bind_int64 (st, 7, row->warm);
  sqlite3_bind_int64 (st, 8, row->idle_timeout);
  sqlite3_bind_int64 (st, 9, row->disconnect_timeout);
  sqlite3_bind_int (st, 10, row->maintenance ? 1 : 0);
  bind_text (st, 12, row->console_mode ? row->console_mode : "takeover");
  bind_text (st, 13, row->placement ? row->placement : "spread");
  bind_text (st, 14, row->host_labels ? row->host_labels : "");
}

/* After a failed INSERT or UPDATE of a pool: say which reference is
 * missing. */
static void
set_pool_write_error (KdStore         *s,
                      const KdPoolRow *row,
                      GError         **error)
{
  const char *name = row->name ? row->name : "";

  if (last_error_is (s, SQLITE_CONSTRAINT_FOREIGNKEY))
    {
      if (count_by_id (s, "SELECT COUNT(*) FROM images WHERE id = ?1", row->image_id, NULL) == 0)
        g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                     "pool '%s': no image with id %" G_GINT64_FORMAT, name, row->image_id);
      else
        g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                     "pool '%s': no template with id %" G_GINT64_FORMAT, name, row->template_id);
    }
  else
    set_write_error (s, "pool", row->name, "image or template", error);
}

/**
 * kd_store_pool_insert:
 * @row: the pool; ->id, ->created_at and ->updated_at are filled in on
 *   success
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_EXISTS if the name is taken;
 * %KD_STORE_ERROR_NOT_FOUND if the image or template does not exist.
 */
gboolean
kd_store_pool_insert (KdStore    *s,
                      KdPoolRow  *row,
                      GError    **error)
{
  g_autoptr(KdStmt) st = NULL;
  gint64 now = kd_time_now ();

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  st = stmt_get (s, "INSERT INTO pools (name, image_id, template_id, mode, size, warm, "
                    "idle_timeout, disconnect_timeout, maintenance, created_at, updated_at, "
                    "console_mode, placement, host_labels) "
                    "VALUES (?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?1, ?1, ?12, ?13, ?14)",
                 error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, now);
  bind_pool (st, row);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_pool_write_error (s, row, error);
      return FALSE;
    }
  row->id = sqlite3_last_insert_rowid (s->db);
  row->created_at = now;
  row->updated_at = now;
  return TRUE;
}

/**
 * kd_store_pool_update:
 * @row: ->id says which; every other column but created_at is written,
 *   and ->updated_at is set to now on success
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if ->id names none
 * (or its image or template does not exist); %KD_STORE_ERROR_EXISTS if the
 * new name is taken.
 */
gboolean
kd_store_pool_update (KdStore    *s,
                      KdPoolRow  *row,
                      GError    **error)
{
  g_autoptr(KdStmt) st = NULL;
  gint64 now = kd_time_now ();

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  st = stmt_get (s, "UPDATE pools SET name = ?2, image_id = ?3, template_id = ?4, mode = ?5, "
                    "size = ?6, warm = ?7, idle_timeout = ?8, disconnect_timeout = ?9, "
                    "maintenance = ?10, updated_at = ?11, console_mode = ?12, placement = ?13, "
                    "host_labels = ?14 WHERE id = ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, row->id);
  bind_pool (st, row);
  sqlite3_bind_int64 (st, 11, now);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      set_pool_write_error (s, row, error);
      return FALSE;
    }
  if (sqlite3_changes (s->db) == 0)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "no pool with id %" G_GINT64_FORMAT, row->id);
      return FALSE;
    }
  row->updated_at = now;
  return TRUE;
}

/**
 * kd_store_pool_get_by_name:
 * Returns: (transfer full): the pool, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdPoolRow *
kd_store_pool_get_by_name (KdStore     *s,
                           const char  *name,
                           GError     **error)
{
  g_return_val_if_fail (s != NULL && name != NULL, NULL);
  return get_row (s, "SELECT " POOL_COLS " FROM pools WHERE name = ?1",
                  "pool", name, 0, read_pool, error);
}

/**
 * kd_store_pool_get:
 * Returns: (transfer full): the pool, or %NULL with %KD_STORE_ERROR_NOT_FOUND.
 */
KdPoolRow *
kd_store_pool_get (KdStore  *s,
                   gint64    id,
                   GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return get_row (s, "SELECT " POOL_COLS " FROM pools WHERE id = ?1",
                  "pool", NULL, id, read_pool, error);
}

/**
 * kd_store_pool_list:
 * Returns: (transfer container): #KdPoolRow by name, or %NULL on error.
 */
GPtrArray *
kd_store_pool_list (KdStore  *s,
                    GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_rows (s, "SELECT " POOL_COLS " FROM pools ORDER BY name",
                    FALSE, 0, read_pool, (GDestroyNotify) kd_pool_row_free, "pools", error);
}

/**
 * kd_store_pool_delete:
 *
 * Deletes pool @id with its entitlements and host list.
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_IN_USE while desktops belong
 * to it; %KD_STORE_ERROR_NOT_FOUND if there is none.
 */
gboolean
kd_store_pool_delete (KdStore  *s,
                      gint64    id,
                      GError  **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL, FALSE);

  st = stmt_get (s, "DELETE FROM pools WHERE id = ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, id);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      if (last_error_is (s, SQLITE_CONSTRAINT_FOREIGNKEY))
        {
          g_autofree char *name = name_of (s, "pools", id);
          gint64 n = count_by_id (s, "SELECT COUNT(*) FROM desktops WHERE pool_id = ?1", id, NULL);
          g_autofree char *what = plural (MAX (n, 0), "desktop", "desktops");

          g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_IN_USE,
                       "pool '%s' still has %s", name, what);
        }
      else
        set_failed_named (s, "cannot delete", "pool", "pools", id, error);
      return FALSE;
    }
  if (sqlite3_changes (s->db) == 0)
    {
      g_set_error (error, KD_STORE_ERROR, KD_STORE_ERROR_NOT_FOUND,
                   "no pool with id %" G_GINT64_FORMAT, id);
      return FALSE;
    }
  return TRUE;
}

static const KdLinkTable pool_users_links = {
  "pool", "pools", "SELECT COUNT(*) FROM pools WHERE id = ?1", "user", "users",
  "DELETE FROM pool_users WHERE pool_id = ?1",
  "INSERT OR IGNORE INTO pool_users (pool_id, user_id) VALUES (?1, ?2)",
};
static const KdLinkTable pool_groups_links = {
  "pool", "pools", "SELECT COUNT(*) FROM pools WHERE id = ?1", "group", "groups",
  "DELETE FROM pool_groups WHERE pool_id = ?1",
  "INSERT OR IGNORE INTO pool_groups (pool_id, group_id) VALUES (?1, ?2)",
};
static const KdLinkTable pool_hosts_links = {
  "pool", "pools", "SELECT COUNT(*) FROM pools WHERE id = ?1", "host", "hosts",
  "DELETE FROM pool_hosts WHERE pool_id = ?1",
  "INSERT OR IGNORE INTO pool_hosts (pool_id, host_id) VALUES (?1, ?2)",
};

/**
 * kd_store_pool_set_users:
 * @user_ids: (element-type gint64) (nullable): the users entitled directly
 *   from now on; duplicates are ignored
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if the pool or one
 * of the users does not exist (and nothing changed).
 */
gboolean
kd_store_pool_set_users (KdStore  *s,
                         gint64    pool_id,
                         GArray   *user_ids,
                         GError  **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return set_links (s, &pool_users_links, pool_id, user_ids, error);
}

/**
 * kd_store_pool_set_groups:
 * @group_ids: (element-type gint64) (nullable): the groups whose members
 *   are entitled from now on; duplicates are ignored
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if the pool or one
 * of the groups does not exist (and nothing changed).
 */
gboolean
kd_store_pool_set_groups (KdStore  *s,
                          gint64    pool_id,
                          GArray   *group_ids,
                          GError  **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return set_links (s, &pool_groups_links, pool_id, group_ids, error);
}

/**
 * kd_store_pool_set_hosts:
 * @host_ids: (element-type gint64) (nullable): the hosts the pool's
 *   desktops may be placed on; empty means every host
 *
 * A host in some pool's list cannot be deleted until it is taken out.
 *
 * Returns: %TRUE on success; %KD_STORE_ERROR_NOT_FOUND if the pool or one
 * of the hosts does not exist (and nothing changed).
 */
gboolean
kd_store_pool_set_hosts (KdStore  *s,
                         gint64    pool_id,
                         GArray   *host_ids,
                         GError  **error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  return set_links (s, &pool_hosts_links, pool_id, host_ids, error);
}

/**
 * kd_store_pool_get_users:
 * Returns: (transfer full) (element-type gint64): the ids of the users
 * entitled directly, ascending; %NULL on error.
 */
GArray *
kd_store_pool_get_users (KdStore  *s,
                         gint64    pool_id,
                         GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_ids (s, "SELECT user_id FROM pool_users WHERE pool_id = ?1 ORDER BY user_id",
                   pool_id, "the users of a pool", error);
}

/**
 * kd_store_pool_get_groups:
 * Returns: (transfer full) (element-type gint64): the ids of the entitled
 * groups, ascending; %NULL on error.
 */
GArray *
kd_store_pool_get_groups (KdStore  *s,
                          gint64    pool_id,
                          GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_ids (s, "SELECT group_id FROM pool_groups WHERE pool_id = ?1 ORDER BY group_id",
                   pool_id, "the groups of a pool", error);
}

/**
 * kd_store_pool_get_hosts:
 * Returns: (transfer full) (element-type gint64): the ids of the allowed
 * hosts, ascending (empty: every host); %NULL on error.
 */
GArray *
kd_store_pool_get_hosts (KdStore  *s,
                         gint64    pool_id,
                         GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_ids (s, "SELECT host_id FROM pool_hosts WHERE pool_id = ?1 ORDER BY host_id",
                   pool_id, "the hosts of a pool", error);
}

/**
 * kd_store_pool_is_entitled:
 *
 * Returns: %TRUE when user @user_id is entitled to pool @pool_id directly
 * or through one of his groups; %FALSE when not (also when either does
 * not exist), or with @error set when the database failed.
 */
gboolean
kd_store_pool_is_entitled (KdStore  *s,
                           gint64    pool_id,
                           gint64    user_id,
                           GError  **error)
{
  g_autoptr(KdStmt) st = NULL;

  g_return_val_if_fail (s != NULL, FALSE);

  st = stmt_get (s, "SELECT EXISTS (SELECT 1 FROM pool_users WHERE pool_id = ?1 AND user_id = ?2)"
                    " OR EXISTS (SELECT 1 FROM pool_groups pg"
                    " JOIN user_groups ug ON ug.group_id = pg.group_id"
                    " WHERE pg.pool_id = ?1 AND ug.user_id = ?2)", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, pool_id);
  sqlite3_bind_int64 (st, 2, user_id);
  if (sqlite3_step (st) != SQLITE_ROW)
    {
      set_failed (s, "cannot read pool entitlements", error);
      return FALSE;
    }
  return sqlite3_column_int (st, 0) != 0;
}

/**
 * kd_store_pool_list_entitled:
 * Returns: (transfer container): the #KdPoolRow user @user_id is entitled
 * to (directly or through a group), each once, by name; %NULL on error.
 */
GPtrArray *
kd_store_pool_list_entitled (KdStore  *s,
                             gint64    user_id,
                             GError  **error)
{
  g_return_val_if_fail (s != NULL, NULL);
  return list_rows (s, "SELECT " POOL_COLS " FROM pools WHERE id IN ("
                       "SELECT pool_id FROM pool_users WHERE user_id = ?1 UNION "
                       "SELECT pg.pool_id FROM pool_groups pg "
                       "JOIN user_groups ug ON ug.group_id = pg.group_id WHERE ug.user_id = ?1) "
                       "ORDER BY name",
                    TRUE, user_id, read_pool, (GDestroyNotify) kd_pool_row_free, "pools", error);
}

/* ---- events ---------------------------------------------------------- */

#define EVENT_COLS "id, time, object_type, object_name, actor, action, from_state, to_state, " \
                   "message, pool, user"

void
kd_event_row_free (KdEventRow *row)
{
  if (row == NULL)
    return;
  g_free (row->object_type);
  g_free (row->object_name);
  g_free (row->actor);
  g_free (row->action);
  g_free (row->from_state);
  g_free (row->to_state);
  g_free (row->message);
  g_free (row->pool);
  g_free (row->user);
  g_free (row);
}

static gpointer
read_event (sqlite3_stmt *st)
{
  KdEventRow *row = g_new0 (KdEventRow, 1);

  row->id = sqlite3_column_int64 (st, 0);
  row->time = sqlite3_column_int64 (st, 1);
  row->object_type = col_text (st, 2);
  row->object_name = col_text (st, 3);
  row->actor = col_text (st, 4);
  row->action = col_text (st, 5);
  row->from_state = col_text (st, 6);
  row->to_state = col_text (st, 7);
  row->message = col_text (st, 8);
  row->pool = col_text (st, 9);
  row->user = col_text (st, 10);
  return row;
}

/**
 * kd_store_event_insert:
 * @row: the event; ->id is filled in on success, ->time too when it was
 *   0, ->actor when it was %NULL ("system")
 *
 * Returns: %TRUE on success.
 */
gboolean
kd_store_event_insert (KdStore     *s,
                       KdEventRow  *row,
                       GError     **error)
{
  g_autoptr(KdStmt) st = NULL;
  gint64 time;
  const char *actor;

  g_return_val_if_fail (s != NULL && row != NULL, FALSE);

  time = row->time > 0 ? row->time : kd_time_now ();
  actor = row->actor ? row->actor : "system";
  st = stmt_get (s, "INSERT INTO events (time, object_type, object_name, actor, action, "
                    "from_state, to_state, message, pool, user) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, time);
  bind_text (st, 2, row->object_type);
  bind_text (st, 3, row->object_name);
  bind_text (st, 4, actor);
  bind_text (st, 5, row->action);
  bind_text (st, 6, row->from_state);
  bind_text (st, 7, row->to_state);
  bind_text (st, 8, row->message);
  bind_text (st, 9, row->pool);
  bind_text (st, 10, row->user);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      g_autofree char *doing = g_strdup_printf ("cannot record event '%s' of %s '%s'",
                                                row->action ? row->action : "",
                                                row->object_type ? row->object_type : "",
                                                row->object_name ? row->object_name : "");
      set_failed (s, doing, error);
      return FALSE;
    }
  row->id = sqlite3_last_insert_rowid (s->db);
  row->time = time;
  if (row->actor == NULL)
    row->actor = g_strdup (actor);
  return TRUE;
}

/**
 * kd_store_event_list:
 * @object_type: (nullable): only events about this kind of object
 * @object_name: (nullable): only events about objects of this name
 * @since_id: when > 0, only events with a larger id
 * @limit: at most this many (<= 0: 100; capped at %KD_STORE_EVENT_LIST_MAX)
 *
 * kd_store_event_query() with only these filters.
 *
 * Returns: (transfer container): #KdEventRow, newest first; %NULL on error.
 */
GPtrArray *
kd_store_event_list (KdStore     *s,
                     const char  *object_type,
                     const char  *object_name,
                     gint64       since_id,
                     gint64       limit,
                     GError     **error)
{
  KdEventFilter filter = {
    .object_type = object_type,
    .object_name = object_name,
    .since_id = since_id,
    .limit = limit,
  };

  g_return_val_if_fail (s != NULL, NULL);
  return kd_store_event_query (s, &filter, error);
}

/**
 * kd_store_event_query:
 * @filter: (nullable): which events; %NULL or zeroed for the newest of all.
 *   ->user matches events whose user or actor is that name.
 *
 * Every filter given must match. ->since_id > 0 returns only events with
 * a larger id; ->limit <= 0 means 100, and at most
 * %KD_STORE_EVENT_LIST_MAX are returned.
 *
 * Returns: (transfer container): #KdEventRow, newest first; %NULL on error.
 */
GPtrArray *
kd_store_event_query (KdStore              *s,
                      const KdEventFilter  *filter,
                      GError              **error)
{
  static const KdEventFilter any = { 0 };
  g_autoptr(GString) sql = NULL;
  g_autoptr(KdStmt) st = NULL;
  g_autoptr(GPtrArray) rows = NULL;
  gint64 limit;
  int rc;

  g_return_val_if_fail (s != NULL, NULL);

  if (filter == NULL)
    filter = &any;
  limit = filter->limit > 0 ? filter->limit : KD_STORE_EVENT_LIST_DEFAULT;
  limit = MIN (limit, KD_STORE_EVENT_LIST_MAX);

  /* Built from constant pieces only (at most 16 shapes, each prepared
   * once); values are always bound. */
  sql = g_string_new ("SELECT " EVENT_COLS " FROM events WHERE id > ?5");
  if (filter->object_type != NULL)
    g_string_append (sql, " AND object_type = ?1");
  if (filter->object_name != NULL)
    g_string_append (sql, " AND object_name = ?2");
  if (filter->pool != NULL)
    g_string_append (sql, " AND pool = ?3");
  if (filter->user != NULL)
    g_string_append (sql, " AND (user = ?4 OR actor = ?4)");
  if (filter->desktop_user != NULL)
    g_string_append (sql, " AND user = ?7");
  g_string_append (sql, " ORDER BY id DESC LIMIT ?6");

  st = stmt_get (s, sql->str, error);
  if (st == NULL)
    return NULL;
  if (filter->object_type != NULL)
    bind_text (st, 1, filter->object_type);
  if (filter->object_name != NULL)
    bind_text (st, 2, filter->object_name);
  if (filter->pool != NULL)
    bind_text (st, 3, filter->pool);
  if (filter->user != NULL)
    bind_text (st, 4, filter->user);
  sqlite3_bind_int64 (st, 5, MAX (filter->since_id, 0));
  sqlite3_bind_int64 (st, 6, limit);
  if (filter->desktop_user != NULL)
    bind_text (st, 7, filter->desktop_user);

  rows = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_event_row_free);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    g_ptr_array_add (rows, read_event (st));
  if (rc != SQLITE_DONE)
    {
      set_failed (s, "cannot list events", error);
      return NULL;
    }
  return g_steal_pointer (&rows);
}
