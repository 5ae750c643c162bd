/*
 * kd-broker.h: the orchestration of hosts, images, templates and desktops.
 *
 * The broker lives on the main loop and owns the in-memory state of every
 * host (connection, capacity). Reads are synchronous (the store is local);
 * anything that touches libvirt is an _async/_finish pair: the libvirt
 * calls run in worker threads, the database is written on the main loop
 * when they complete. Every state change is recorded as an event.
 *
 * Errors are KD_ERROR (validation, conflicts), KD_HV_ERROR (libvirt) or
 * KD_STORE_ERROR; the broker never logs above debug level.
 */
#pragma once

#include <gio/gio.h>

#include "common/kd-config.h"
#include "hv/kd-hv.h"
#include "store/kd-store.h"

G_BEGIN_DECLS

typedef struct _KdBroker KdBroker;

/* Desktop lifecycle states (DESIGN.md). */
#define KD_DESKTOP_PROVISIONING  "provisioning"
#define KD_DESKTOP_STOPPED       "stopped"
#define KD_DESKTOP_STARTING      "starting"
#define KD_DESKTOP_RUNNING       "running"
#define KD_DESKTOP_SHUTTING_DOWN "shutting-down"
#define KD_DESKTOP_RESETTING     "resetting"
#define KD_DESKTOP_DELETING      "deleting"
#define KD_DESKTOP_ERROR         "error"
#define KD_DESKTOP_UNKNOWN       "unknown"   /* its host is down: not given out, not deleted */

/* What the API shows of a host: its row plus live state. */
typedef struct {
  KdHostRow    *row;
  KdHvHost     *hv;
  const char   *state;        /* "connecting" | "up" | "down" */
  char         *last_error;
  KdHvCapacity  capacity;
  gboolean      have_capacity;
  gint64        backoff;      /* seconds before the next reconnect */
  guint         reconnect_id;
  gboolean      connecting;
  gint64        up_since;
} KdBrokerHost;

typedef struct {
  char    *host;
  char    *kind;               /* "domain" | "volume" */
  char    *name;
  char    *detail;
} KdOrphan;

typedef struct {
  char    *host;
  char    *desktop;            /* NULL for a problem of the host itself */
  char    *message;            /* a sentence */
} KdProblem;

typedef struct {
  gint64     last_run;         /* µs; 0 = never */
  gboolean   running;
  GPtrArray *orphans;          /* KdOrphan */
  GPtrArray *problems;         /* KdProblem */
} KdReconcileReport;

/* Called on the main loop after each reconciler pass with the orphans
 * that were not in the previous report (so main can log them once). */
typedef void (*KdBrokerReconciledFunc) (KdBroker  *broker,
                                        GPtrArray *new_orphans,
                                        GPtrArray *new_problems,
                                        gpointer   user_data);

KdBroker *kd_broker_new  (KdConfig *config, KdStore *store);
void      kd_broker_free (KdBroker *broker);
KdStore  *kd_broker_get_store  (KdBroker *broker);
KdConfig *kd_broker_get_config (KdBroker *broker);
/* Loads hosts from the store and connects them; starts the reconciler
 * (first pass once the hosts have answered, then every interval). */
void      kd_broker_start (KdBroker               *broker,
                           KdBrokerReconciledFunc  reconciled,
                           gpointer                user_data);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdBroker, kd_broker_free)

/* Called on the main loop after each event is stored (the live stream). */
typedef void (*KdBrokerEventFunc) (KdBroker         *broker,
                                   const KdEventRow *event,
                                   gpointer          user_data);
void kd_broker_set_event_listener (KdBroker          *broker,
                                   KdBrokerEventFunc  func,
                                   gpointer           user_data);

/* records an event (and ignores a failure to store it: logged at debug) */
void kd_broker_event (KdBroker   *broker,
                      const char *object_type,
                      const char *object_name,
                      const char *actor,
                      const char *action,
                      const char *from_state,
                      const char *to_state,
                      const char *fmt,
                      ...) G_GNUC_PRINTF (8, 9);

/* ---- hosts ---- */
/* Host settings a PATCH may change (kd-broker-placement.c): 0 ratios and a
 * negative reserve mean unchanged, NULL labels unchanged. */
typedef struct {
  gboolean  has_maintenance;
  gboolean  maintenance;       /* off also ends a drain */
  gboolean  draining;          /* with maintenance on: the host is drained */
  const char *migration;       /* "live" | "cold"; NULL unchanged */
  double    cpu_ratio, memory_ratio, disk_ratio;
  gint64    memory_reserved;   /* bytes; -1: unchanged */
  char    **labels;            /* NULL-terminated; empty vector clears */
  GPtrArray *gpus;             /* host add only: GStrv per GPU (PCI addresses); NULL: none */
} KdHostSettings;

KdBrokerHost *kd_broker_host_lookup (KdBroker *broker, const char *name, GError **error);
KdBrokerHost *kd_broker_host_by_id  (KdBroker *broker, gint64 id);
GPtrArray    *kd_broker_host_list   (KdBroker *broker);   /* borrowed KdBrokerHost*, by name */
gint64        kd_broker_host_desktop_count (KdBroker *broker, KdBrokerHost *host);
/* @spec: name and uri; graphics_listen and console_access may be NULL
 * (defaults 127.0.0.1 and auto). */
#define KD_BROKER_HOST_RESERVE_DEFAULT (G_GINT64_CONSTANT (1) << 30)  /* bytes kept for the host */
void          kd_broker_host_add_async (KdBroker *broker, const KdHostRow *spec,
                                        const KdHostSettings *settings, const char *actor,
                                        GAsyncReadyCallback cb, gpointer data);
KdBrokerHost *kd_broker_host_add_finish (KdBroker *broker, GAsyncResult *res, GError **error);
void          kd_broker_host_remove_async (KdBroker *broker, const char *name, const char *actor,
                                           GAsyncReadyCallback cb, gpointer data);
gboolean      kd_broker_host_remove_finish (KdBroker *broker, GAsyncResult *res, GError **error);


/* What the desktops placed on a host use, and its limits (capacity times
 * ratios, minus the reserve). */
typedef struct {
  gint64 vcpus, vcpus_limit;
  gint64 memory_bytes, memory_limit;
  gint64 disk_bytes, disk_limit;
  gint64 desktops;
} KdBrokerHostUse;

/* Replaces the host's passthrough GPUs (element-type GStrv: the PCI
 * addresses of each GPU's functions), checked on the host first. */
void          kd_broker_host_set_gpus_async (KdBroker *broker, const char *host, GPtrArray *gpus,
                                             const char *actor, GAsyncReadyCallback cb, gpointer data);
KdBrokerHost *kd_broker_host_set_gpus_finish (KdBroker *broker, GAsyncResult *res, GError **error);
/* Draining (kd-broker-drain.c): maintenance on, then per desktop what
 * happens; element type KdDrainStep. */
typedef struct {
  char *desktop;
  char *action;     /* "deleted" | "moves-on-release" | "stays" */
  char *reason;     /* a sentence */
} KdDrainStep;
void          kd_drain_step_free (KdDrainStep *step);
GPtrArray    *kd_broker_host_drain (KdBroker *broker, const char *name, const char *actor,
                                    GError **error);
KdBrokerHost *kd_broker_host_set (KdBroker *broker, const char *name, const KdHostSettings *settings,
                                  const char *actor, GError **error);
void          kd_broker_host_use (KdBroker *broker, KdBrokerHost *host, KdBrokerHostUse *out);
gboolean      kd_broker_host_check_settings (const KdHostRow *row, gint64 memory_bytes,
                                             GError **error);
/* Labels: validated, sorted, joined with ','; and split back. */
char         *kd_broker_labels_normalize (const char *const *labels, GError **error);
char        **kd_broker_labels_split (const char *joined);

/* ---- images ---- */
/* Checks that an upload may begin (valid, free name; known host). */
gboolean    kd_broker_image_check_new (KdBroker *broker, const char *name, const char *host,
                                       KdBrokerHost **out_host, GError **error);
/* Probes @path (a spooled upload the broker takes over and deletes) and
 * stores it on @host. */
void        kd_broker_image_import_async (KdBroker *broker, const char *name, const char *host,
                                          const char *path, const char *actor,
                                          GAsyncReadyCallback cb, gpointer data);
KdImageRow *kd_broker_image_import_finish (KdBroker *broker, GAsyncResult *res, GError **error);
void        kd_broker_image_delete_async (KdBroker *broker, const char *name, const char *actor,
                                          GAsyncReadyCallback cb, gpointer data);
gboolean    kd_broker_image_delete_finish (KdBroker *broker, GAsyncResult *res, GError **error);

/* image versions (kd-broker-versions.c) */
void          kd_broker_image_edit_async     (KdBroker *broker, const char *image, const char *host,
                                              const char *template_name, const char *actor,
                                              GAsyncReadyCallback cb, gpointer data);
/* Returns the editing desktop. */
KdDesktopRow *kd_broker_image_edit_finish    (KdBroker *broker, GAsyncResult *res, GError **error);
void          kd_broker_image_publish_async  (KdBroker *broker, const char *image, gboolean publish,
                                              const char *note, const char *actor,
                                              GAsyncReadyCallback cb, gpointer data);
KdImageRow   *kd_broker_image_publish_finish (KdBroker *broker, GAsyncResult *res, GError **error);
KdImageRow   *kd_broker_image_rollback       (KdBroker *broker, const char *image, gint64 version,
                                              const char *actor, GError **error);

/* Copies the image's current version to @host in advance (desktops placed
 * there need no copy first). Returns the image once it is there. */
void        kd_broker_image_copy_async  (KdBroker *broker, const char *image, const char *host,
                                         const char *actor, GAsyncReadyCallback cb, gpointer data);
KdImageRow *kd_broker_image_copy_finish (KdBroker *broker, GAsyncResult *res, GError **error);

/* ---- templates (store only, synchronous) ---- */
typedef struct {
  const char *name;
  gint64      vcpus;        /* 0: default */
  gint64      memory_mib;
  gint64      disk_gib;
  const char *display;      /* NULL: default */
  const char *network;
  const char *firmware;
  gint64      rdp_port;     /* 0: the guest runs no RDP server */
  gint64      gpus;         /* whole GPUs passed through (0-8) */
  const char *gpu_mdev;     /* a vGPU of this mediated device type; NULL/"": none (not with gpus) */
} KdTemplateSpec;

KdTemplateRow *kd_broker_template_add    (KdBroker *broker, const KdTemplateSpec *spec,
                                          const char *actor, GError **error);
gboolean       kd_broker_template_remove (KdBroker *broker, const char *name,
                                          const char *actor, GError **error);

/* ---- desktops ---- */
typedef enum {
  KD_DESKTOP_ACTION_START,
  KD_DESKTOP_ACTION_SHUTDOWN,
  KD_DESKTOP_ACTION_POWEROFF,
  KD_DESKTOP_ACTION_RESET,
  KD_DESKTOP_ACTION_DELETE,
  KD_DESKTOP_ACTION_REBOOT,
} KdDesktopAction;

gboolean      kd_desktop_action_from_string (const char *s, KdDesktopAction *out);

typedef struct {
  const char *name;
  const char *image;
  const char *template_name;
  const char *host;            /* NULL: any host holding the image */
  GArray     *allowed_hosts;   /* gint64 host ids, NULL/empty: all */
  gboolean    start;
  gint64      pool_id;         /* 0: none */
  gint64      user_id;         /* 0: nobody */
  const char *disk_volume;     /* use this existing volume as the disk (no overlay) */
  const char *disk_path;
} KdDesktopCreateSpec;

void          kd_broker_desktop_create_spec_async (KdBroker *broker, const KdDesktopCreateSpec *spec,
                                                   const char *actor,
                                                   GAsyncReadyCallback cb, gpointer data);
void          kd_broker_desktop_create_async (KdBroker *broker, const char *name,
                                              const char *image, const char *template_name,
                                              const char *host, gboolean start,
                                              const char *actor,
                                              GAsyncReadyCallback cb, gpointer data);
KdDesktopRow *kd_broker_desktop_create_finish (KdBroker *broker, GAsyncResult *res, GError **error);
void          kd_broker_desktop_action_async (KdBroker *broker, const char *name,
                                              KdDesktopAction action, const char *actor,
                                              GAsyncReadyCallback cb, gpointer data);
void          kd_broker_desktop_action_full_async (KdBroker *broker, const char *name,
                                                   KdDesktopAction action, int reset_power,
                                                   const char *actor,
                                                   GAsyncReadyCallback cb, gpointer data);
/* Returns the desktop after the action (NULL with no error after delete). */
KdDesktopRow *kd_broker_desktop_action_finish (KdBroker *broker, GAsyncResult *res, GError **error);
/* TRUE while an operation on the desktop is in flight. */
gboolean      kd_broker_desktop_is_busy (KdBroker *broker, gint64 desktop_id);
const char   *kd_broker_desktop_operation (KdBroker *broker, gint64 desktop_id);

/* ---- pools ---- */
typedef struct {
  const char *name;
  const char *image;
  const char *template_name;
  const char *mode;            /* NULL: floating */
  const char *console_mode;    /* "takeover" | "share"; NULL: unchanged (takeover when adding) */
  const char *placement;       /* "spread" | "pack" | "round-robin"; NULL: unchanged (spread) */
  char      **host_labels;     /* labels every host must carry; NULL: unchanged */
  gint64      size, warm, idle_timeout, disconnect_timeout;
  gboolean    maintenance;
  gboolean    has_size, has_warm, has_idle_timeout, has_disconnect_timeout, has_maintenance;
  GPtrArray  *users;           /* names; NULL: unchanged (none when adding) */
  GPtrArray  *groups;
  GPtrArray  *hosts;
} KdPoolSpec;

typedef struct {
  gint64 total, ready, assigned, connected, provisioning, error;
} KdPoolCounts;

KdPoolRow    *kd_broker_pool_add    (KdBroker *broker, const KdPoolSpec *spec, const char *actor,
                                     GError **error);
KdPoolRow    *kd_broker_pool_update (KdBroker *broker, const char *name, const KdPoolSpec *spec,
                                     const char *actor, GError **error);
void          kd_broker_pool_counts (KdBroker *broker, gint64 pool_id, KdPoolCounts *out);
void          kd_broker_pool_remove_async  (KdBroker *broker, const char *name, const char *actor,
                                            GAsyncReadyCallback cb, gpointer data);
gboolean      kd_broker_pool_remove_finish (KdBroker *broker, GAsyncResult *res, GError **error);
void          kd_broker_pool_get_desktop_async  (KdBroker *broker, const char *pool, gint64 user_id,
                                                 gboolean is_admin, const char *actor,
                                                 GAsyncReadyCallback cb, gpointer data);
KdDesktopRow *kd_broker_pool_get_desktop_finish (KdBroker *broker, GAsyncResult *res,
                                                 gboolean *out_assigned, GError **error);
void          kd_broker_desktop_release_async  (KdBroker *broker, const char *name, const char *actor,
                                                GAsyncReadyCallback cb, gpointer data);
KdDesktopRow *kd_broker_desktop_release_finish (KdBroker *broker, GAsyncResult *res, GError **error);
KdDesktopRow *kd_broker_desktop_heartbeat (KdBroker *broker, const char *name, gboolean connected,
                                           const char *actor, GError **error);
/* Marks every desktop the user holds for reset and forgets him (floating
 * and persistent alike: nobody else may inherit his data). */
void          kd_broker_user_forget (KdBroker *broker, gint64 user_id, const char *actor);

/* ---- consoles (kd-broker-consoles.c) ---- */
#define KD_BROKER_VNC_PASSWORD_LEN   8    /* VNC authentication uses 8 bytes */
#define KD_BROKER_SPICE_PASSWORD_LEN 20
#define KD_BROKER_GATEWAY_PASSWORD_SEC 30 /* a TCP console's password expires */
#define KD_BROKER_VIEWERS_MAX 8           /* viewers of one desktop in "share" mode */

/* A connection to a desktop's VNC display for the console gateway. */
typedef struct {
  int    fd;        /* non-blocking, CLOEXEC, speaking RFB; the caller takes it */
  char  *path;      /* "fd" (virDomainOpenGraphicsFD) | "tcp" */
  char  *password;  /* tcp: the one-time VNC password to answer QEMU with */
  char  *endpoint;  /* tcp: our side "addr:port", for telling our own connection
                     * from native viewers in graphics events */
} KdBrokerConsole;

void kd_broker_console_free (KdBrokerConsole *console);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdBrokerConsole, kd_broker_console_free)
/* "fd", "tcp" or "none" (simulated host): how the gateway reaches
 * desktops of @host. */
const char *kd_broker_host_console_path (KdBrokerHost *host);
void kd_broker_desktop_open_console_async  (KdBroker *broker, gint64 desktop_id,
                                            GAsyncReadyCallback cb, gpointer data);
KdBrokerConsole *kd_broker_desktop_open_console_finish (KdBroker *broker, GAsyncResult *res,
                                                        GError **error);
/* The caller is done with the connection before the session starts. */
void kd_broker_console_forget (KdBroker *broker, KdBrokerConsole *console);

/* Someone watching a desktop: a console through the gateway or a native
 * viewer seen in libvirt's graphics events. The first one makes the
 * desktop connected, the last one leaving disconnected; while any is
 * there the desktop counts as seen (no heartbeat timeout). */
typedef struct {
  guint64  id;
  gint64   desktop_id;
  char    *kind;        /* "browser" | "native" */
  char    *client;      /* address */
  char    *user;        /* NULL for native viewers */
  gint64   since;       /* µs */
  gpointer handle;      /* the owner's object (gateway console) */
} KdBrokerViewer;

guint64    kd_broker_viewer_add    (KdBroker *broker, gint64 desktop_id, const char *kind,
                                    const char *client, const char *user, gpointer handle);
void       kd_broker_viewer_remove (KdBroker *broker, guint64 viewer_id, gint64 bytes_in,
                                    gint64 bytes_out);
/* (element-type KdBrokerViewer) (transfer none): may be NULL. */
GPtrArray *kd_broker_viewer_list   (KdBroker *broker, gint64 desktop_id);
guint      kd_broker_viewer_count  (KdBroker *broker, gint64 desktop_id);
/* The pool's console mode for the desktop: "takeover" (default) or "share". */
const char *kd_broker_desktop_console_mode (KdBroker *broker, const KdDesktopRow *row);

/* The kvmdesk-display process of a desktop with display=dbus
 * (kd-broker-display.c). */
typedef struct _KdDisplayProc KdDisplayProc;
typedef struct {
  const char *state;       /* "starting" | "running" | "restarting" | "stopped" | "failed" */
  const char *pid;
  gint64      port;        /* its VNC port once running, else 0 */
  const char *listen;
  guint       restarts;
  const char *last_error;  /* its last sentence on stderr, or NULL */
} KdBrokerDisplayInfo;
const KdDisplayProc *kd_broker_display_get (KdBroker *broker, gint64 desktop_id);
void kd_broker_display_info (const KdDisplayProc *proc, KdBrokerDisplayInfo *out);

/* A native viewer's connection data (.vv): address, port and a password
 * valid @ttl_sec, set on the running domain. */
typedef struct {
  char   *type;        /* "vnc" | "spice" */
  char   *host;
  gint64  port;
  gint64  tls_port;    /* -1 when none */
  char   *password;
  gint64  expires_at;  /* µs */
  char   *title;
} KdBrokerViewerPass;

void kd_broker_viewer_pass_free (KdBrokerViewerPass *pass);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdBrokerViewerPass, kd_broker_viewer_pass_free)
void kd_broker_desktop_viewer_pass_async (KdBroker *broker, gint64 desktop_id, gint64 ttl_sec,
                                          const char *actor, GAsyncReadyCallback cb, gpointer data);
KdBrokerViewerPass *kd_broker_desktop_viewer_pass_finish (KdBroker *broker, GAsyncResult *res,
                                                          GError **error);
/* The guest's network address and the template's RDP port (.rdp). */
void  kd_broker_desktop_rdp_address_async (KdBroker *broker, gint64 desktop_id,
                                           GAsyncReadyCallback cb, gpointer data);
char *kd_broker_desktop_rdp_address_finish (KdBroker *broker, GAsyncResult *res,
                                            gint64 *out_port, GError **error);
/* Graphics events of a host's domains (set on every host). */
void kd_broker_graphics_event (KdHvHost *hv, const KdHvGraphicsEvent *event, gpointer user_data);

/* ---- reconciler ---- */
const KdReconcileReport *kd_broker_reconcile_report (KdBroker *broker);
void     kd_broker_reconcile_async  (KdBroker *broker, GAsyncReadyCallback cb, gpointer data);
gboolean kd_broker_reconcile_finish (KdBroker *broker, GAsyncResult *res, GError **error);

G_END_DECLS
