/*
 * kd-store.h: kvmdesk's database (SQLite, WAL, synchronous=NORMAL). The
 * only code that includes <sqlite3.h>. Used from the main thread only.
 * The database is the intent; libvirt is the reality.
 *
 * Schema versions are PRAGMA user_version; kd_store_open() applies every
 * migration newer than the file, each in its own transaction. Errors are
 * KD_STORE_ERROR; nothing here logs above debug level.
 *
 * Row structs are plain data owned by the caller (free with the _free
 * function). Insert functions fill in ->id and ->created_at.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define KD_STORE_ERROR (kd_store_error_quark ())
GQuark kd_store_error_quark (void);

typedef enum {
  KD_STORE_ERROR_FAILED,      /* SQLite failed; message has its words */
  KD_STORE_ERROR_NOT_FOUND,   /* no such row */
  KD_STORE_ERROR_EXISTS,      /* a UNIQUE constraint: the name is taken */
  KD_STORE_ERROR_IN_USE,      /* a foreign key still points at the row */
  KD_STORE_ERROR_SCHEMA,      /* file newer than this program, or corrupt */
} KdStoreError;

typedef struct _KdStore KdStore;

/* Opens (creating if needed) the database file and migrates it. */
KdStore *kd_store_open        (const char  *path,
                               GError     **error);
void     kd_store_free        (KdStore *store);
int      kd_store_schema_version (KdStore *store);
/* The newest schema version this program knows. */
int      kd_store_latest_version (void);
/* A random id created with the database: names this installation in
 * libvirt metadata so two installations on one host never mix. */
const char *kd_store_get_instance_id (KdStore *store);

gboolean kd_store_begin    (KdStore *store, GError **error);
gboolean kd_store_commit   (KdStore *store, GError **error);
void     kd_store_rollback (KdStore *store);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdStore, kd_store_free)

/* ---- users and tokens ------------------------------------------- */

typedef struct {
  gint64  id;
  char   *name;
  char   *password_hash;   /* argon2id, libsodium's string format */
  char   *role;            /* "admin" | "user" */
  gint64  created_at;      /* µs since the epoch */
} KdUserRow;

void       kd_user_row_free (KdUserRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdUserRow, kd_user_row_free)
gboolean   kd_store_user_insert      (KdStore *s, KdUserRow *row, GError **error);
KdUserRow *kd_store_user_get_by_name (KdStore *s, const char *name, GError **error);
KdUserRow *kd_store_user_get         (KdStore *s, gint64 id, GError **error);
GPtrArray *kd_store_user_list        (KdStore *s, GError **error);
gint64     kd_store_user_count       (KdStore *s, GError **error);
/* Deletes the user and, with it, his tokens. */
gboolean   kd_store_user_delete      (KdStore *s, gint64 id, GError **error);

typedef struct {
  gint64  id;
  char   *token_hash;      /* hex of a hash of the bearer token */
  gint64  user_id;
  gint64  created_at;
  gint64  expires_at;
} KdTokenRow;

void        kd_token_row_free (KdTokenRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdTokenRow, kd_token_row_free)
gboolean    kd_store_token_insert   (KdStore *s, KdTokenRow *row, GError **error);
KdTokenRow *kd_store_token_get_by_hash (KdStore *s, const char *token_hash, GError **error);
gboolean    kd_store_token_delete   (KdStore *s, const char *token_hash, GError **error);
/* Deletes tokens with expires_at <= @now. */
gboolean    kd_store_token_purge    (KdStore *s, gint64 now, GError **error);

/* ---- hosts ------------------------------------------------------- */

typedef struct {
  gint64  id;
  char   *name;
  char   *uri;
  gint64  created_at;
  /* schema v5 */
  char   *graphics_listen; /* where desktops' VNC/SPICE listen on the host ("127.0.0.1") */
  char   *console_access;  /* "auto" | "fd" | "tcp": how the gateway reaches a display */
  /* schema v6: placement */
  gboolean maintenance;    /* no new desktops */
  double  cpu_ratio;       /* overcommit: vCPUs per CPU */
  double  memory_ratio;
  double  disk_ratio;
  gint64  memory_reserved; /* bytes kept for the host itself */
  char   *labels;          /* comma-separated names, "" for none */
  /* schema v8: moving desktops */
  gboolean draining;       /* drained: its desktops keep moving off as they can */
  char   *migration;       /* "live" (running desktops migrate) | "cold"; NULL = "live" */
} KdHostRow;

void       kd_host_row_free (KdHostRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdHostRow, kd_host_row_free)
gboolean   kd_store_host_insert      (KdStore *s, KdHostRow *row, GError **error);
KdHostRow *kd_store_host_get_by_name (KdStore *s, const char *name, GError **error);
KdHostRow *kd_store_host_get         (KdStore *s, gint64 id, GError **error);
GPtrArray *kd_store_host_list        (KdStore *s, GError **error);
/* schema v6: writes the placement settings (maintenance … labels), v8's
 * draining and migration, and graphics_listen/console_access of row ->id. */
gboolean   kd_store_host_update      (KdStore *s, const KdHostRow *row, GError **error);
/* KD_STORE_ERROR_IN_USE while image volumes or desktops reference it. */
gboolean   kd_store_host_delete      (KdStore *s, gint64 id, GError **error);

/* ---- images and their volumes on hosts --------------------------- */

typedef struct {
  gint64  id;
  char   *name;
  char   *format;          /* "qcow2" | "raw" */
  gint64  virtual_size;    /* bytes */
  gint64  file_size;       /* bytes */
  gint64  created_at;
  /* schema v4: versions. format/virtual_size/file_size describe the
   * current version. */
  gint64  current_version; /* 1 for a new image */
} KdImageRow;

void        kd_image_row_free (KdImageRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdImageRow, kd_image_row_free)
gboolean    kd_store_image_insert      (KdStore *s, KdImageRow *row, GError **error);
KdImageRow *kd_store_image_get_by_name (KdStore *s, const char *name, GError **error);
KdImageRow *kd_store_image_get         (KdStore *s, gint64 id, GError **error);
GPtrArray  *kd_store_image_list        (KdStore *s, GError **error);
/* KD_STORE_ERROR_IN_USE while desktops reference it; deletes its
 * image_volume rows with it. */
gboolean    kd_store_image_delete      (KdStore *s, gint64 id, GError **error);

/* schema v4: image versions. kd_store_image_insert() also records
 * version 1 (from the row's format and sizes). */
typedef struct {
  gint64  id;
  gint64  image_id;
  gint64  version;         /* 1, 2, … */
  char   *format;
  gint64  virtual_size;
  gint64  file_size;
  char   *note;            /* what changed, may be NULL */
  char   *actor;           /* who published it */
  gint64  created_at;
} KdImageVersionRow;

void               kd_image_version_row_free (KdImageVersionRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdImageVersionRow, kd_image_version_row_free)
gboolean           kd_store_image_version_insert (KdStore *s, KdImageVersionRow *row, GError **error);
KdImageVersionRow *kd_store_image_version_get    (KdStore *s, gint64 image_id, gint64 version, GError **error);
/* Oldest first. */
GPtrArray         *kd_store_image_version_list   (KdStore *s, gint64 image_id, GError **error);
/* Writes current_version, format, virtual_size and file_size of row ->id. */
gboolean           kd_store_image_update         (KdStore *s, const KdImageRow *row, GError **error);

/* An edit session: a writable copy of the current version, booted in a
 * desktop of its own, that becomes the next version when published. At
 * most one per image. */
typedef struct {
  gint64  image_id;
  gint64  version;         /* the version it will become */
  gint64  host_id;
  char   *volume;          /* the writable copy */
  char   *path;
  gint64  desktop_id;      /* the editing desktop, 0 until made */
  char   *actor;
  gint64  created_at;
} KdImageEditRow;

void            kd_image_edit_row_free (KdImageEditRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdImageEditRow, kd_image_edit_row_free)
/* KD_STORE_ERROR_EXISTS when the image already has one. */
gboolean        kd_store_image_edit_insert (KdStore *s, KdImageEditRow *row, GError **error);
/* Writes path and desktop_id. */
gboolean        kd_store_image_edit_update (KdStore *s, const KdImageEditRow *row, GError **error);
/* NULL with KD_STORE_ERROR_NOT_FOUND when the image has none. */
KdImageEditRow *kd_store_image_edit_get    (KdStore *s, gint64 image_id, GError **error);
gboolean        kd_store_image_edit_delete (KdStore *s, gint64 image_id, GError **error);

typedef struct {
  gint64   id;
  gint64   image_id;
  gint64   host_id;
  char    *volume;         /* volume name in kvmdesk's pool */
  char    *path;           /* its path on the host, NULL while importing */
  char    *state;          /* "importing" | "ready" | "error" */
  char    *error;          /* why, when state is "error" */
  gboolean simulated;      /* test:// host: recorded without content */
  gint64   created_at;
  gint64   version;        /* schema v4: the image version it holds (0 on insert = 1) */
} KdImageVolumeRow;

void              kd_image_volume_row_free (KdImageVolumeRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdImageVolumeRow, kd_image_volume_row_free)
gboolean          kd_store_image_volume_insert (KdStore *s, KdImageVolumeRow *row, GError **error);
/* Updates path, state, error and simulated of row ->id. */
gboolean          kd_store_image_volume_update (KdStore *s, const KdImageVolumeRow *row, GError **error);
/* The volume of the image's CURRENT version on the host. */
KdImageVolumeRow *kd_store_image_volume_get    (KdStore *s, gint64 image_id, gint64 host_id, GError **error);
/* schema v4: the volume of one version on the host. */
KdImageVolumeRow *kd_store_image_volume_get_version (KdStore *s, gint64 image_id, gint64 version,
                                                     gint64 host_id, GError **error);
GPtrArray        *kd_store_image_volume_list   (KdStore *s, gint64 image_id /* -1: all */, GError **error);
gboolean          kd_store_image_volume_delete (KdStore *s, gint64 id, GError **error);

/* ---- host GPUs (schema v7) ------------------------------------------ */

typedef struct {
  gint64  id;
  gint64  host_id;
  char   *addresses;       /* "0000:01:00.0,0000:01:00.1": the functions of one GPU */
  char   *product;
  char   *driver;          /* bound when checked, may be NULL */
  gint64  iommu_group;
  char   *mdev_types;      /* comma-separated, "" for none */
  gint64  desktop_id;      /* 0: free */
  GPtrArray *mdevs;        /* schema v9: KdGpuMdevTypeRow, by type id; never NULL when listed */
} KdHostGpuRow;

/* schema v9: a mediated device type a GPU offers. */
typedef struct {
  char   *type_id;         /* "nvidia-63" */
  char   *name;            /* "GRID P4-1Q", may be NULL */
  char   *device_api;      /* "vfio-pci", may be NULL */
  gint64  instances;       /* how many kvmdesk may create (availableInstances when checked) */
} KdGpuMdevTypeRow;

void        kd_gpu_mdev_type_row_free (KdGpuMdevTypeRow *row);

void        kd_host_gpu_row_free (KdHostGpuRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdHostGpuRow, kd_host_gpu_row_free)
/* Every GPU of the host (@host_id -1: of every host), by id. */
GPtrArray  *kd_store_host_gpu_list (KdStore *s, gint64 host_id, GError **error);
/* Replaces the host's GPUs with @rows (KdHostGpuRow; ids filled in);
 * KD_STORE_ERROR_IN_USE while one of the host's GPUs (or a vGPU on one)
 * is given to a desktop. Each row's ->mdevs (may be NULL) is stored too. */
gboolean    kd_store_host_gpus_set (KdStore *s, gint64 host_id, GPtrArray *rows, GError **error);
/* Gives GPU @gpu_id to @desktop_id only if it is free (not given to a
 * desktop, no vGPU on it); IN_USE otherwise. */
gboolean    kd_store_host_gpu_assign (KdStore *s, gint64 gpu_id, gint64 desktop_id, GError **error);
gboolean    kd_store_host_gpu_free   (KdStore *s, gint64 gpu_id, GError **error);

/* ---- vGPUs: mediated devices of desktops (schema v9) --------------- */

typedef struct {
  gint64  id;
  gint64  gpu_id;
  gint64  host_id;         /* the GPU's host (read only) */
  char   *type_id;
  char   *uuid;            /* the mediated device's UUID, chosen by kvmdesk */
  gint64  desktop_id;
} KdVgpuRow;

void        kd_vgpu_row_free (KdVgpuRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdVgpuRow, kd_vgpu_row_free)
/* Every vGPU (@host_id -1) or those of one host, by id. */
GPtrArray  *kd_store_vgpu_list   (KdStore *s, gint64 host_id, GError **error);
/* Those of one desktop. */
GPtrArray  *kd_store_vgpu_list_by_desktop (KdStore *s, gint64 desktop_id, GError **error);
/* Records @row (->id filled in) only if its GPU is not passed through
 * whole, offers ->type_id with an instance free, and runs no vGPU of
 * another type; IN_USE otherwise. */
gboolean    kd_store_vgpu_insert (KdStore *s, KdVgpuRow *row, GError **error);
gboolean    kd_store_vgpu_delete (KdStore *s, gint64 id, GError **error);

/* ---- templates --------------------------------------------------- */

typedef struct {
  gint64  id;
  char   *name;
  gint64  vcpus;
  gint64  memory_mib;
  gint64  disk_gib;
  char   *display;         /* "vnc" | "spice" | "dbus" */
  char   *network;         /* "none" | "user" | NAME | "bridge:NAME" */
  char   *firmware;        /* "bios" | "uefi" */
  gint64  created_at;
  gint64  rdp_port;        /* schema v5: the guest's RDP port; 0 = no RDP server */
  gint64  gpus;            /* schema v7: whole GPUs passed through */
  char   *gpu_mdev;        /* schema v9: the vGPU (mediated device) type of each desktop, "" none */
} KdTemplateRow;

void           kd_template_row_free (KdTemplateRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdTemplateRow, kd_template_row_free)
gboolean       kd_store_template_insert      (KdStore *s, KdTemplateRow *row, GError **error);
KdTemplateRow *kd_store_template_get_by_name (KdStore *s, const char *name, GError **error);
KdTemplateRow *kd_store_template_get         (KdStore *s, gint64 id, GError **error);
GPtrArray     *kd_store_template_list        (KdStore *s, GError **error);
/* KD_STORE_ERROR_IN_USE while desktops reference it. */
gboolean       kd_store_template_delete      (KdStore *s, gint64 id, GError **error);

/* ---- desktops ---------------------------------------------------- */

typedef struct {
  gint64  id;
  char   *name;
  char   *domain;          /* libvirt domain name (unique) */
  char   *uuid;            /* libvirt UUID once defined, else NULL */
  gint64  host_id;         /* 0 while not placed on a host */
  gint64  image_id;
  gint64  template_id;
  char   *overlay_volume;  /* volume name of its disk */
  char   *overlay_path;    /* NULL until created */
  char   *state;           /* DESIGN.md lifecycle state */
  char   *state_reason;    /* why (error text for "error") */
  gint64  created_at;
  gint64  updated_at;
  /* schema v3: pools and sessions */
  gint64  pool_id;         /* 0: not in a pool */
  gint64  user_id;         /* 0: nobody holds it */
  gint64  assigned_at;     /* µs; 0 when not assigned */
  gint64  connected_since; /* µs; 0 while no client is connected */
  gint64  last_seen;       /* µs of the last heartbeat/console activity; 0 never */
  gint64  disconnected_at; /* µs the last client left; 0 if none yet */
  gboolean needs_reset;    /* a floating desktop released but not yet reset */
  gint64  image_version;   /* schema v4: the version its overlay is built on (0 on insert = 1) */
  /* schema v5: console counters, totals over the desktop's life; written
   * only by kd_store_desktop_add_console_stats() */
  gint64  console_connections;
  gint64  console_bytes_in;  /* from viewers to the desktop */
  gint64  console_bytes_out; /* from the desktop to viewers */
} KdDesktopRow;

void          kd_desktop_row_free (KdDesktopRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdDesktopRow, kd_desktop_row_free)
gboolean      kd_store_desktop_insert      (KdStore *s, KdDesktopRow *row, GError **error);
/* Writes every column but id and created_at; sets updated_at. */
gboolean      kd_store_desktop_update      (KdStore *s, KdDesktopRow *row, GError **error);
KdDesktopRow *kd_store_desktop_get_by_name (KdStore *s, const char *name, GError **error);
KdDesktopRow *kd_store_desktop_get         (KdStore *s, gint64 id, GError **error);
GPtrArray    *kd_store_desktop_list        (KdStore *s, GError **error);
GPtrArray    *kd_store_desktop_list_by_host (KdStore *s, gint64 host_id, GError **error);
gint64        kd_store_desktop_count_by_image (KdStore *s, gint64 image_id, GError **error);
gboolean      kd_store_desktop_delete      (KdStore *s, gint64 id, GError **error);
/* schema v3 */
GPtrArray    *kd_store_desktop_list_by_pool (KdStore *s, gint64 pool_id, GError **error);
GPtrArray    *kd_store_desktop_list_by_user (KdStore *s, gint64 user_id, GError **error);
/* Sets user_id and assigned_at only if nobody holds the desktop
 * (UPDATE … WHERE user_id IS NULL); otherwise KD_STORE_ERROR_IN_USE and
 * nothing changes. The guard against handing a desktop out twice. */
/* schema v5: adds to the console counters of the desktop. */
gboolean      kd_store_desktop_add_console_stats (KdStore *s, gint64 desktop_id, gint64 connections,
                                                  gint64 bytes_in, gint64 bytes_out,
                                                  GError **error);
gboolean      kd_store_desktop_assign      (KdStore *s, gint64 desktop_id, gint64 user_id,
                                            gint64 now, GError **error);

/* ---- groups (schema v3) ------------------------------------------ */

typedef struct {
  gint64  id;
  char   *name;
  gint64  created_at;
} KdGroupRow;

void        kd_group_row_free (KdGroupRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdGroupRow, kd_group_row_free)
gboolean    kd_store_group_insert      (KdStore *s, KdGroupRow *row, GError **error);
KdGroupRow *kd_store_group_get_by_name (KdStore *s, const char *name, GError **error);
KdGroupRow *kd_store_group_get         (KdStore *s, gint64 id, GError **error);
GPtrArray  *kd_store_group_list        (KdStore *s, GError **error);
/* Memberships and pool entitlements of the group go with it. */
gboolean    kd_store_group_delete      (KdStore *s, gint64 id, GError **error);

/* Writes name, password_hash and role of row ->id. */
gboolean    kd_store_user_update       (KdStore *s, const KdUserRow *row, GError **error);
/* Replaces the user's groups with @group_ids (gint64). */
gboolean    kd_store_user_set_groups   (KdStore *s, gint64 user_id, GArray *group_ids,
                                        GError **error);
/* The user's groups, by name; element type KdGroupRow. */
GPtrArray  *kd_store_user_get_groups   (KdStore *s, gint64 user_id, GError **error);
/* Deletes every token of the user (password change, removal). */
gboolean    kd_store_token_delete_for_user (KdStore *s, gint64 user_id, GError **error);
gboolean    kd_store_token_delete_for_user_except (KdStore *s, gint64 user_id,
                                                   const char *keep_hash, GError **error);

/* ---- pools (schema v3) ------------------------------------------- */

typedef struct {
  gint64   id;
  char    *name;
  gint64   image_id;
  gint64   template_id;
  char    *mode;               /* "floating" | "persistent" */
  gint64   size;               /* most desktops */
  gint64   warm;               /* prestarted, unassigned desktops kept ready */
  gint64   idle_timeout;       /* seconds; 0 = never */
  gint64   disconnect_timeout; /* seconds; 0 = never */
  gboolean maintenance;
  gint64   created_at;
  gint64   updated_at;
  char    *console_mode;       /* schema v5: "takeover" | "share" (NULL on insert = takeover) */
  char    *placement;          /* schema v6: "spread" | "pack" | "round-robin" (NULL = spread) */
  char    *host_labels;        /* schema v6: labels every host must carry, comma-separated */
} KdPoolRow;

void       kd_pool_row_free (KdPoolRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdPoolRow, kd_pool_row_free)
gboolean   kd_store_pool_insert      (KdStore *s, KdPoolRow *row, GError **error);
/* Writes every column but id and created_at; sets updated_at. */
gboolean   kd_store_pool_update      (KdStore *s, KdPoolRow *row, GError **error);
KdPoolRow *kd_store_pool_get_by_name (KdStore *s, const char *name, GError **error);
KdPoolRow *kd_store_pool_get         (KdStore *s, gint64 id, GError **error);
GPtrArray *kd_store_pool_list        (KdStore *s, GError **error);
/* KD_STORE_ERROR_IN_USE while desktops belong to it; its entitlements
 * and host list go with it. */
gboolean   kd_store_pool_delete      (KdStore *s, gint64 id, GError **error);
/* Replace the pool's entitled users / groups / allowed hosts (gint64 ids;
 * an empty host list means every host). */
gboolean   kd_store_pool_set_users   (KdStore *s, gint64 pool_id, GArray *user_ids, GError **error);
gboolean   kd_store_pool_set_groups  (KdStore *s, gint64 pool_id, GArray *group_ids, GError **error);
gboolean   kd_store_pool_set_hosts   (KdStore *s, gint64 pool_id, GArray *host_ids, GError **error);
/* Element type gint64, ascending. */
GArray    *kd_store_pool_get_users   (KdStore *s, gint64 pool_id, GError **error);
GArray    *kd_store_pool_get_groups  (KdStore *s, gint64 pool_id, GError **error);
GArray    *kd_store_pool_get_hosts   (KdStore *s, gint64 pool_id, GError **error);
/* TRUE when the user is entitled directly or through one of his groups. */
gboolean   kd_store_pool_is_entitled (KdStore *s, gint64 pool_id, gint64 user_id, GError **error);
/* The pools the user is entitled to, by name; element type KdPoolRow. */
GPtrArray *kd_store_pool_list_entitled (KdStore *s, gint64 user_id, GError **error);

/* ---- events (the audit trail) ------------------------------------ */

typedef struct {
  gint64  id;
  gint64  time;            /* µs since the epoch */
  char   *object_type;     /* "desktop" | "host" | "image" | "template" | "user" | "reconciler" */
  char   *object_name;
  char   *actor;           /* user name, or "system" */
  char   *action;          /* "create", "start", "state", "orphan", … */
  char   *from_state;      /* NULL unless a state transition */
  char   *to_state;
  char   *message;         /* a sentence */
  char   *pool;            /* schema v3: the desktop's pool then, or NULL */
  char   *user;            /* schema v3: the desktop's user then, or NULL */
} KdEventRow;

void       kd_event_row_free (KdEventRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdEventRow, kd_event_row_free)
gboolean   kd_store_event_insert (KdStore *s, KdEventRow *row, GError **error);
/* The most events one kd_store_event_list() call returns. */
#define KD_STORE_EVENT_LIST_MAX 1000

/* Newest first; @object_type/@object_name NULL for any; @since_id > 0
 * returns only events with a larger id; @limit <= 0 means 100, and at
 * most KD_STORE_EVENT_LIST_MAX are returned. */
GPtrArray *kd_store_event_list   (KdStore    *s,
                                  const char *object_type,
                                  const char *object_name,
                                  gint64      since_id,
                                  gint64      limit,
                                  GError    **error);

/* schema v3: every filter NULL/0 for "any"; same ordering and limits. */
typedef struct {
  const char *object_type;
  const char *object_name;
  const char *pool;
  const char *user;        /* events about or by this user (user or actor) */
  const char *desktop_user; /* only events of desktops this user held */
  gint64      since_id;
  gint64      limit;
} KdEventFilter;

GPtrArray *kd_store_event_query  (KdStore             *s,
                                  const KdEventFilter *filter,
                                  GError             **error);

G_END_DECLS
