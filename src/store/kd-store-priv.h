/*
 * kd-store-priv.h: what kd-store.c and kd-store-migrations.c share, and
 * what the store's own tests may look at. Not for other modules: they use
 * kd-store.h and never see SQLite.
 */
#pragma once

#include <sqlite3.h>

#include "kd-store.h"

G_BEGIN_DECLS

struct _KdStore {
  sqlite3    *db;
  char       *path;
  char       *instance_id;
  int         version;
  GHashTable *stmts;       /* SQL text (owned) -> sqlite3_stmt*, prepared once */
};

/* Applies every migration newer than the file's user_version, each in its
 * own BEGIN IMMEDIATE transaction that also sets user_version. Foreign key
 * enforcement must be off (tables are rebuilt); each step runs
 * foreign_key_check before it commits. @path is used in messages only. */
gboolean kd_store_migrate (sqlite3     *db,
                           const char  *path,
                           int         *out_version,
                           GError     **error);

/* Reads PRAGMA user_version. */
gboolean kd_store_read_user_version (sqlite3     *db,
                                     const char  *path,
                                     int         *out_version,
                                     GError     **error);

G_END_DECLS
