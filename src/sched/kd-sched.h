/*
 * kd-sched.h: placement of desktops on hosts. Pure functions over a
 * snapshot of host capacity and use: no I/O, no clock, no libvirt; the
 * broker builds the snapshot and applies the answer.
 *
 * Filters (every one must pass): host up and not in maintenance; vCPUs,
 * memory and disk within the host's capacity times its overcommit ratio
 * (memory minus what is reserved for the host itself); a free GPU when
 * the request needs one, or a GPU with a free vGPU instance of the type
 * it asks for; in the pool's allowed hosts; carrying every
 * required label; holding the image or able to import it.
 *
 * Weighers: spread (most free memory first, then fewest desktops) or
 * pack (fill the fullest host that fits first); or an explicit placement
 * list used round-robin.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define KD_SCHED_ERROR (kd_sched_error_quark ())
GQuark kd_sched_error_quark (void);

typedef enum {
  KD_SCHED_ERROR_NO_HOST,   /* no host passes the filters; the message says why for each */
  KD_SCHED_ERROR_INVALID,   /* a request that cannot be placed anywhere (negative sizes) */
} KdSchedError;

/* Defaults of a host's overcommit ratios. */
#define KD_SCHED_CPU_RATIO_DEFAULT     4.0
#define KD_SCHED_MEMORY_RATIO_DEFAULT  1.0
#define KD_SCHED_DISK_RATIO_DEFAULT    1.0
/* At most this many hosts are named one by one in a refusal; the rest
 * are counted by reason. */
#define KD_SCHED_REFUSALS_NAMED        20

typedef enum {
  KD_SCHED_SPREAD,   /* most free memory first, then fewest desktops */
  KD_SCHED_PACK,     /* least free memory first (that still fits), then most desktops */
} KdSchedWeigher;

/* A mediated device type a GPU offers, and how many instances. */
typedef struct {
  const char *type_id;
  gint64      instances;
} KdSchedMdevType;

/* One GPU of a host. A GPU is either passed through whole to one desktop
 * or shared as vGPUs of one type at a time (what NVIDIA's time-sliced
 * vGPU requires; conservative for others), never both. */
typedef struct {
  gboolean               taken;      /* passed through whole to a desktop */
  const char            *vgpu_type;  /* type of the vGPUs on it; NULL when none */
  gint64                 vgpus;      /* vGPUs on it */
  const KdSchedMdevType *types;
  guint                  n_types;
} KdSchedGpu;

/* One host as the scheduler sees it. Sizes in bytes. */
typedef struct {
  const char         *name;
  gboolean            up;
  gboolean            maintenance;
  gint64              cpus;                  /* logical CPUs */
  gint64              memory_bytes;
  gint64              disk_bytes;            /* kvmdesk's storage pool capacity */
  double              cpu_ratio;             /* 0: KD_SCHED_CPU_RATIO_DEFAULT */
  double              memory_ratio;          /* 0: default */
  double              disk_ratio;            /* 0: default */
  gint64              memory_reserved_bytes; /* kept for the host itself */
  /* in use */
  gint64              used_vcpus;
  gint64              used_memory_bytes;
  gint64              used_disk_bytes;
  gint64              desktops;
  gint64              gpus_free;             /* whole GPUs free; used only when n_gpus is 0 */
  KdSchedGpu         *gpus;                  /* each GPU (commits change it); may be NULL */
  guint               n_gpus;
  const char *const  *labels;                /* NULL-terminated, may be NULL */
  gboolean            has_image;
  gboolean            image_importable;      /* can get it before the desktop starts */
  gboolean            image_importing;       /* a copy to it is under way: it will hold it */
} KdSchedHost;

/* What one desktop needs, and where it may go. */
typedef struct {
  gint64              vcpus;
  gint64              memory_bytes;
  gint64              disk_bytes;
  gint64              gpus;                  /* whole GPUs */
  const char         *vgpu_type;             /* one vGPU of this mediated device type; NULL: none */
  const char *const  *allowed_hosts;         /* NULL or empty: any host */
  const char *const  *labels;                /* every one required; may be NULL */
  KdSchedWeigher      weigher;
  gboolean            round_robin;           /* allowed_hosts is a placement list, used in turn */
  guint               rr_next;               /* in/out: the list position to try first */
} KdSchedRequest;

/* Why @host refuses @req, as a phrase ("memory 3.5/4.0 GiB used, needs
 * 1.0"), or NULL when it fits. */
char    *kd_sched_host_refusal (const KdSchedHost    *host,
                                const KdSchedRequest *req);
/* The GPU of @host a vGPU of @type goes to, or -1 when none has one
 * free: one already running that type first (most vGPUs first), so
 * that whole GPUs stay free. */
gint     kd_sched_vgpu_pick (const KdSchedHost *host,
                             const char        *type);
/* Whole GPUs of @host that are free (not passed through, no vGPUs). */
gint64   kd_sched_host_gpus_free (const KdSchedHost *host);
/* Free memory for desktops: capacity * ratio - reserved - used. */
gint64   kd_sched_host_free_memory (const KdSchedHost *host);

/* The index of the host chosen for one desktop, or -1 with
 * KD_SCHED_ERROR_NO_HOST naming each host and its reason. Does not
 * change @hosts (see kd_sched_commit()). Advances @req->rr_next. */
gint     kd_sched_place  (const KdSchedHost *hosts,
                          guint              n_hosts,
                          KdSchedRequest    *req,
                          GError           **error);
/* Counts one desktop of @req on @host. */
void     kd_sched_commit (KdSchedHost          *host,
                          const KdSchedRequest *req);
/* Places @count desktops one after the other, committing each;
 * @out_indexes (count entries) receives the hosts. Returns how many were
 * placed; when fewer than @count, @error says why (once for the request). */
guint    kd_sched_place_many (KdSchedHost    *hosts,
                              guint           n_hosts,
                              KdSchedRequest *req,
                              guint           count,
                              gint           *out_indexes,
                              GError        **error);

G_END_DECLS
