/*
 * kd-broker-priv.h: the broker's internals shared by its source files.
 */
#pragma once

#include "kd-broker.h"
#include "sched/kd-sched.h"

struct _KdBroker {
  KdConfig              *config;
  KdStore               *store;
  GThreadPool           *workers;      /* runs every libvirt call */
  GHashTable            *host_slots;   /* host name -> KdHostSlots */
  gint                   jobs_outstanding; /* pushed, completion not yet run */
  gboolean               closing;
  GHashTable            *hosts;        /* name -> KdBrokerHost* (owned) */
  GHashTable            *busy;         /* desktop id (gint64*) -> action name */
  GHashTable            *importing;    /* image name -> NULL while uploading */
  KdReconcileReport      report;
  GPtrArray             *reconcile_waiters; /* GTask* */
  guint                  reconcile_timer;
  gboolean               reconcile_again;
  KdBrokerReconciledFunc reconciled;
  gpointer               reconciled_data;
  gboolean               started;
  KdBrokerEventFunc      event_listener;
  gpointer               event_listener_data;
  guint                  pools_timer;
  guint                  pools_kick_id;
  /* kd-broker-consoles.c */
  GHashTable            *viewers;      /* desktop id (gint64*) -> GPtrArray of KdBrokerViewer */
  GHashTable            *native;       /* "host/domain/addr/port" -> viewer id (guint64*) */
  GHashTable            *own_endpoints; /* "addr:port" of our TCP consoles */
  guint64                next_viewer;
  /* kd-broker-placement.c */
  GHashTable            *rr_cursors;   /* pool id (gint64*) -> guint* round-robin position */
  GHashTable            *pool_problems; /* pool id (gint64*) -> last placement refusal */
  GHashTable            *copy_waiters;  /* image volume id (gint64*) -> GPtrArray of creates
                                         * waiting for that copy */
  /* kd-broker-display.c */
  GHashTable            *displays;     /* desktop id (gint64*) -> KdDisplayProc */
  /* kd-broker-drain.c */
  GHashTable            *drain_notes;  /* desktop id (gint64*) -> last drain decision told */
  GHashTable            *no_live;      /* desktop ids whose live migration failed */
};

/* kvmdesk-display processes (kd-broker-display.c). */
void     kd_broker_displays_init (KdBroker *broker);
void     kd_broker_displays_fini (KdBroker *broker);
void     kd_broker_display_follow (KdBroker *broker, const KdDesktopRow *row);
void     kd_broker_display_forget (KdBroker *broker, gint64 desktop_id);
void     kd_broker_displays_check (KdBroker *broker);
gboolean kd_broker_desktop_display_is_dbus (KdBroker *broker, const KdDesktopRow *row);
gboolean kd_broker_display_password (KdBroker *broker, gint64 desktop_id, const char *password,
                                     gint64 until, char **out_address, gint64 *out_port,
                                     GError **error);

/* Goes on with the hosts still draining (kd-broker-drain.c). */
void kd_broker_drain_continue (KdBroker *broker);

/* GPUs (kd-broker-gpus.c) */
GPtrArray  *kd_broker_gpus_parse (GPtrArray *specs, GError **error);
GPtrArray  *kd_broker_gpus_check (KdHvHost *hv, GPtrArray *gpus, GError **error);
GHashTable *kd_broker_gpus_free_by_host (KdBroker *broker);
char      **kd_broker_gpus_take (KdBroker *broker, gint64 host_id, gint64 desktop_id, gint64 count,
                                 GError **error);
void        kd_broker_gpus_release (KdBroker *broker, gint64 desktop_id);
void        kd_broker_gpus_release_on_host (KdBroker *broker, gint64 desktop_id, gint64 host_id);

/* The GPUs of every host as the scheduler sees them (kd-broker-gpus.c). */
typedef struct {
  GPtrArray       *rows;     /* KdHostGpuRow, by host then id */
  KdSchedGpu      *gpus;     /* one per row; strings borrowed from the rows */
  KdSchedMdevType *types;    /* every row's types, in a row */
} KdBrokerGpuSnapshot;

KdBrokerGpuSnapshot *kd_broker_gpu_snapshot_new  (KdBroker *broker, gint64 host_id /* -1: all */);
void                 kd_broker_gpu_snapshot_free (KdBrokerGpuSnapshot *snap);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdBrokerGpuSnapshot, kd_broker_gpu_snapshot_free)
/* The GPUs of one host in @snap (they are contiguous). */
void        kd_broker_gpu_snapshot_host (KdBrokerGpuSnapshot *snap, gint64 host_id,
                                         KdSchedGpu **out_gpus, guint *out_n);
/* Gives desktop @desktop_id a vGPU of @type on host @host_id: recorded
 * with a new UUID. Returns: (transfer full): the KdVgpuRow, with the
 * GPU's PCI address in *@out_parent, or %NULL with KD_ERROR_UNAVAILABLE. */
KdVgpuRow  *kd_broker_vgpu_take (KdBroker *broker, gint64 host_id, gint64 desktop_id, const char *type,
                                 char **out_parent, GError **error);

/* A copy of an image's current version to the chosen host, first. */
typedef struct {
  KdBrokerHost *source;     /* borrowed: a host that holds it */
  char         *volume;     /* its volume name there (and on the chosen host) */
  gint64        wait_volume_id; /* instead: a copy to the chosen host is under way */
} KdImageCopy;

void kd_image_copy_clear (KdImageCopy *copy);
/* The copy @volume_id is over: creates waiting for it go on (or fail). */
void kd_create_release_waiters (KdBroker *broker, gint64 volume_id, const char *path,
                                const GError *error);
gint64 kd_broker_image_copy_settle (KdBroker *broker, gint64 image_id, gint64 vol_id,
                                    const char *path, gboolean simulated, const GError *error);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (KdImageCopy, kd_image_copy_clear)
/* Chooses the host for a new desktop: *@out_vol is its image volume, or
 * NULL with @out_copy filled when the image must be copied there first. */
KdBrokerHost *kd_broker_place (KdBroker *broker, KdImageRow *img, KdTemplateRow *tpl, KdPoolRow *pool,
                               GArray *allowed, KdImageVolumeRow **out_vol, KdImageCopy *out_copy,
                               GError **error);

void kd_broker_consoles_init (KdBroker *broker);
void kd_broker_consoles_fini (KdBroker *broker);

/* Runs @func(job) in a worker thread; @done runs on the main loop with
 * the same job. Used for every blocking libvirt call. */
typedef void (*KdJobFunc) (gpointer job, GCancellable *cancellable);
typedef void (*KdJobDone) (KdBroker *broker, gpointer job);
#define KD_BROKER_HOST_CALLS_MAX 4    /* libvirt calls in flight per host */
void kd_broker_run_host_job (KdBroker *broker, const char *host, KdJobFunc func, KdJobDone done,
                             gpointer job, GDestroyNotify job_free);
void kd_broker_run_job (KdBroker       *broker,
                        KdJobFunc       func,
                        KdJobDone       done,
                        gpointer        job,
                        GDestroyNotify  job_free);

/* Converts a store error into the shared KD_ERROR domain where a person
 * should see a 404/409 (the API maps both domains anyway). */
gboolean kd_broker_host_is_up (KdBrokerHost *host);
char    *kd_broker_domain_name (KdBroker *broker, const char *desktop_name);
void     kd_broker_desktop_set_state (KdBroker *broker, KdDesktopRow *row, const char *state,
                                      const char *reason, const char *actor, const char *action);
void     kd_broker_domain_event (KdHvHost *hv, const char *domain_name, KdHvDomainState state,
                                 const char *detail, gpointer user_data);
void     kd_broker_reconcile_schedule (KdBroker *broker);
const char *kd_broker_desktop_up_state (const KdDesktopRow *row);
void     kd_broker_desktop_event (KdBroker *broker, const KdDesktopRow *row, const char *actor,
                                  const char *action, const char *from_state, const char *to_state,
                                  const char *fmt, ...) G_GNUC_PRINTF (7, 8);
void     kd_broker_pools_start (KdBroker *broker);
void     kd_broker_pools_kick (KdBroker *broker);
gboolean kd_broker_desktop_is_edit (KdBroker *broker, const KdDesktopRow *row);
void     kd_broker_busy_set (KdBroker *broker, gint64 desktop_id, const char *what);
void     kd_broker_busy_clear (KdBroker *broker, gint64 desktop_id);
void     kd_broker_pools_reset_one (KdBroker *broker, const char *name, gboolean boot);
void     kd_broker_desktops_recover (KdBroker *broker);
void     kd_orphan_free (KdOrphan *orphan);
void     kd_problem_free (KdProblem *problem);
