/*
 * kd-hv.h: kvmdesk's hypervisor layer. The only code that includes
 * <libvirt/libvirt.h>. Everything here either is pure (XML builder, image
 * probing) or is a blocking libvirt RPC meant to run in a worker thread:
 * the broker never calls these from the main loop. libvirt errors become
 * GErrors (KD_HV_ERROR) inside the calling thread; nothing here logs above
 * debug level.
 *
 * Call kd_hv_init() once on the main thread before any connection: it
 * silences libvirt's default error printer and registers libvirt's event
 * loop on the GLib main context (libvirt-glib), so keepalive, close
 * callbacks and domain events are dispatched on the main loop.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define KD_HV_ERROR (kd_hv_error_quark ())
GQuark kd_hv_error_quark (void);

typedef enum {
  KD_HV_ERROR_FAILED,        /* libvirt said no; message carries its words */
  KD_HV_ERROR_UNAVAILABLE,   /* the host cannot be reached / not connected */
  KD_HV_ERROR_NOT_FOUND,     /* no such domain / volume / pool */
  KD_HV_ERROR_EXISTS,        /* a domain / volume with that name exists */
  KD_HV_ERROR_UNSUPPORTED,   /* the driver cannot do it (e.g. test://) */
  KD_HV_ERROR_INVALID_IMAGE, /* the image file is refused; message says why */
} KdHvError;

/* The XML namespace of kvmdesk's <metadata> element in domain XML. */
#define KD_HV_METADATA_NS     "https://kvmdesk.org/xmlns/desktop/1"
#define KD_HV_METADATA_PREFIX "kvmdesk"

void kd_hv_init (void);

/* ------------------------------------------------------------------ */
/* Hosts: one libvirt connection each. Thread-safe: every function may be
 * called from any worker thread; callbacks are invoked on the main
 * context that was the thread-default when the host was created.       */

typedef struct _KdHvHost KdHvHost;

typedef struct {
  gint64      keepalive_interval;   /* seconds */
  gint64      keepalive_count;
  const char *storage_pool;         /* kvmdesk's pool name on the host */
  const char *storage_pool_path;    /* directory used when creating it */
} KdHvHostOptions;

typedef enum {
  KD_HV_DOMAIN_MISSING = 0,   /* no such domain */
  KD_HV_DOMAIN_SHUTOFF,
  KD_HV_DOMAIN_RUNNING,
  KD_HV_DOMAIN_PAUSED,
  KD_HV_DOMAIN_SHUTDOWN,      /* being shut down */
  KD_HV_DOMAIN_CRASHED,
  KD_HV_DOMAIN_OTHER,
} KdHvDomainState;

const char *kd_hv_domain_state_to_string (KdHvDomainState state);

/* Called on the main context when libvirt reports the connection closed
 * (keepalive timeout, daemon gone). @reason is a sentence. */
typedef void (*KdHvHostClosedFunc) (KdHvHost   *host,
                                    const char *reason,
                                    gpointer    user_data);

/* Called on the main context for lifecycle events of every domain on the
 * host (kvmdesk's or not; filter by name). @detail is libvirt's event. */
typedef void (*KdHvDomainEventFunc) (KdHvHost        *host,
                                     const char      *domain_name,
                                     KdHvDomainState  state,
                                     const char      *detail,
                                     gpointer         user_data);

/* A viewer's connection to a domain's VNC/SPICE display changed
 * (libvirt's graphics event). */
typedef enum {
  KD_HV_GRAPHICS_CONNECT,      /* TCP connected, not authenticated yet */
  KD_HV_GRAPHICS_INITIALIZE,   /* authenticated: a viewer is in */
  KD_HV_GRAPHICS_DISCONNECT,
} KdHvGraphicsPhase;

typedef struct {
  const char        *domain_name;
  KdHvGraphicsPhase  phase;
  gboolean           remote_is_unix; /* a client through a socket FD, e.g. our gateway */
  const char        *remote_node;    /* client address */
  const char        *remote_service; /* client port */
  const char        *auth_scheme;    /* "none", "vnc", ... */
} KdHvGraphicsEvent;

typedef void (*KdHvGraphicsEventFunc) (KdHvHost                *host,
                                       const KdHvGraphicsEvent *event,
                                       gpointer                 user_data);

KdHvHost   *kd_hv_host_new       (const char             *name,
                                  const char             *uri,
                                  const KdHvHostOptions  *options);
KdHvHost   *kd_hv_host_ref       (KdHvHost *host);
void        kd_hv_host_unref     (KdHvHost *host);
const char *kd_hv_host_get_name  (KdHvHost *host);
const char *kd_hv_host_get_uri   (KdHvHost *host);
void        kd_hv_host_set_callbacks (KdHvHost            *host,
                                      KdHvHostClosedFunc   closed,
                                      KdHvDomainEventFunc  domain_event,
                                      gpointer             user_data);
/* Blocking: opens the connection (no-op when open), enables keepalive,
 * registers the close callback and domain lifecycle events. */
gboolean    kd_hv_host_connect   (KdHvHost  *host,
                                  GError   **error);
/* Blocking: closes the connection; no callback is invoked for it. */
void        kd_hv_host_disconnect (KdHvHost *host);
gboolean    kd_hv_host_is_connected (KdHvHost *host);
/* TRUE for libvirt's test:// driver: no real guests, no volume upload. */
gboolean    kd_hv_host_is_simulated (KdHvHost *host);
/* TRUE when the URI names a libvirtd on this machine reached through a
 * local socket (no host part; unix transport): sockets can be passed. */
gboolean    kd_hv_host_is_local (KdHvHost *host);
/* The host part of the URI ("hv2" of qemu+ssh://root@hv2/system), or
 * NULL for a local one. */
char       *kd_hv_host_uri_hostname (KdHvHost *host);
/* Called on the main context for graphics events; set before connecting. */
void        kd_hv_host_set_graphics_callback (KdHvHost              *host,
                                              KdHvGraphicsEventFunc  func,
                                              gpointer               user_data);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdHvHost, kd_hv_host_unref)

typedef struct {
  gint64  cpus;              /* logical CPUs */
  gint64  memory_bytes;
  gint64  free_memory_bytes;
  gint64  pool_capacity;     /* kvmdesk's storage pool, bytes; -1 if absent */
  gint64  pool_allocation;
  gint64  pool_available;
  char   *arch;              /* "x86_64" */
  char   *domain_type;       /* "kvm" when KVM works, else "qemu"; "test" */
  char   *accel_reason;      /* why TCG was chosen, or NULL */
  gboolean uefi;             /* OVMF usable (firmware='efi') */
  char   *hostname;
  char   *hypervisor;        /* "QEMU 7.2.0", … */
  char   *libvirt_version;   /* "9.0.0" */
} KdHvCapacity;

void     kd_hv_capacity_clear (KdHvCapacity *cap);
/* Blocking: node info, free memory, pool, and KVM detection through
 * domain capabilities (virConnectGetDomainCapabilities with virttype
 * "kvm"; falls back to "qemu" and says why). */
gboolean kd_hv_host_read_capacity (KdHvHost      *host,
                                   KdHvCapacity  *out,
                                   GError       **error);

/* Blocking: makes kvmdesk's storage pool exist, active, autostarted and
 * refreshed (a `dir` pool at storage_pool_path if it must be created). */
gboolean kd_hv_host_ensure_pool (KdHvHost  *host,
                                 GError   **error);

/* ------------------------------------------------------------------ */
/* Images: probing is pure file parsing (no libvirt). */

typedef struct {
  char   *format;          /* "qcow2" or "raw" */
  gint64  virtual_size;    /* bytes the guest sees */
  gint64  file_size;       /* bytes on disk */
} KdHvImageInfo;

void     kd_hv_image_info_clear (KdHvImageInfo *info);
/* Reads the header of @path: accepts qcow2 (v2/v3, no backing file, not
 * encrypted, no external data file) and raw; refuses every other format
 * it recognises (vmdk, vdi, vhd, vhdx, qed, luks, iso9660 is accepted as
 * raw) with KD_HV_ERROR_INVALID_IMAGE and a sentence naming the reason. */
gboolean kd_hv_image_probe (const char     *path,
                            KdHvImageInfo  *out,
                            GError        **error);
/* The same, naming the image @label in messages (an upload's spool file
 * is not what the person who uploaded it knows it by). */
gboolean kd_hv_image_probe_labeled (const char     *path,
                                    const char     *label,
                                    KdHvImageInfo  *out,
                                    GError        **error);

typedef void (*KdHvProgressFunc) (gint64   done,
                                  gint64   total,
                                  gpointer user_data);

/* Blocking: streams volume @volume into the new file @path
 * (virStorageVolDownload); on a simulated host writes nothing and sets
 * *@out_simulated. */
gboolean kd_hv_volume_download (KdHvHost          *host,
                                const char        *volume,
                                const char        *path,
                                KdHvProgressFunc   progress,
                                gpointer           user_data,
                                GCancellable      *cancellable,
                                gint64            *out_size,
                                gboolean          *out_simulated,
                                GError           **error);

/* Blocking: volume @volume of @src into a volume of the same name on @dst,
 * through @spool (download, then upload; simulated stays simulated). */
gboolean kd_hv_volume_transfer (KdHvHost          *src,
                                KdHvHost          *dst,
                                const char        *volume,
                                const char        *spool,
                                KdHvImageInfo     *info,
                                KdHvProgressFunc   progress,   /* bytes over twice the size */
                                gpointer           user_data,
                                GCancellable      *cancellable,
                                char          **out_path,
                                gboolean       *out_simulated,
                                GError        **error);

/* Blocking: creates volume @volume in kvmdesk's pool with @info's format
 * and size and streams @path into it (virStorageVolUpload + virStream),
 * calling @progress from the worker thread. On a simulated (test://) host
 * the volume is created without content and *@out_simulated is TRUE.
 * A volume of that name already there is KD_HV_ERROR_EXISTS. On failure
 * the partial volume is deleted. */
gboolean kd_hv_image_upload (KdHvHost             *host,
                             const char           *volume,
                             const char           *path,
                             const KdHvImageInfo  *info,
                             KdHvProgressFunc      progress,
                             gpointer              user_data,
                             GCancellable         *cancellable,
                             char                **out_volume_path,
                             gboolean             *out_simulated,
                             GError              **error);

/* Blocking: creates a qcow2 overlay @volume in kvmdesk's pool whose
 * backing store is @backing_path (format @backing_format), virtual size
 * @capacity bytes, through virStorageVolCreateXML: a linked clone, no
 * copy. KD_HV_ERROR_EXISTS when the name is taken. */
gboolean kd_hv_overlay_create (KdHvHost    *host,
                               const char  *volume,
                               const char  *backing_path,
                               const char  *backing_format,
                               gint64       capacity,
                               char       **out_volume_path,
                               GError     **error);

/* Blocking: a full copy of volume @source as @volume (same pool),
 * through virStorageVolCreateXMLFrom. */
gboolean kd_hv_volume_clone (KdHvHost    *host,
                             const char  *source,
                             const char  *volume,
                             const char  *format,
                             gint64       capacity,
                             char       **out_volume_path,
                             GError     **error);

/* Blocking: deletes a volume of kvmdesk's pool; a missing one is not an
 * error when @missing_ok. */
gboolean kd_hv_volume_delete (KdHvHost    *host,
                              const char  *volume,
                              gboolean     missing_ok,
                              GError     **error);

typedef struct {
  char   *name;
  char   *path;
  char   *format;            /* from libvirt's volume XML, may be NULL */
  char   *backing_path;      /* NULL when none */
  gint64  capacity;
  gint64  allocation;
} KdHvVolume;

void       kd_hv_volume_free (KdHvVolume *vol);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdHvVolume, kd_hv_volume_free)
/* Blocking: one volume of kvmdesk's pool (after a pool refresh). */
KdHvVolume *kd_hv_volume_lookup (KdHvHost    *host,
                                 const char  *volume,
                                 GError     **error);
/* Blocking: every volume of kvmdesk's pool; element type KdHvVolume. */
GPtrArray  *kd_hv_volume_list (KdHvHost  *host,
                               GError   **error);

/* ------------------------------------------------------------------ */
/* PCI passthrough (kd-hv-pci.c) */

/* One mediated device type a PCI device offers (vGPU). */
typedef struct {
  char   *id;             /* "nvidia-63" */
  char   *name;           /* "GRID P4-1Q", may be NULL */
  char   *device_api;     /* "vfio-pci", may be NULL */
  gint64  available;      /* availableInstances when read */
} KdHvMdevType;

void     kd_hv_mdev_type_free (KdHvMdevType *type);

typedef struct {
  char   *address;        /* "0000:01:00.0" */
  char   *driver;         /* bound driver, NULL when none */
  char   *product;
  char   *vendor;
  gint64  iommu_group;    /* -1: none (IOMMU off) */
  char  **group_members;  /* addresses in its IOMMU group, itself included */
  char  **mdev_types;     /* mediated device types it offers (vGPU): their ids */
  GPtrArray *mdevs;       /* the same in full (KdHvMdevType), in the same order */
} KdHvPciDevice;

void     kd_hv_pci_device_clear (KdHvPciDevice *dev);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (KdHvPciDevice, kd_hv_pci_device_clear)
char    *kd_hv_pci_address_parse (const char *text, GError **error);
gboolean kd_hv_pci_device_parse  (const char *xml, KdHvPciDevice *out, GError **error);
gboolean kd_hv_gpu_check         (const KdHvPciDevice *functions, guint n,
                                  const char *const *passed, GError **error);
/* Blocking: the node device of @address on the host. */
gboolean kd_hv_pci_device_get    (KdHvHost *host, const char *address, KdHvPciDevice *out,
                                  GError **error);
/* A mediated device type id as sysfs names them ("nvidia-63", "i915-GVTg_V5_4"). */
gboolean kd_hv_mdev_type_is_valid (const char *type);
/* The node device XML that creates mdev @uuid of @type on PCI device @parent. Pure. */
char    *kd_hv_mdev_xml_build    (const char *parent, const char *type, const char *uuid,
                                  GError **error);
/* Blocking: creates mdev @uuid of @type on PCI device @parent (canonical
 * address). A simulated (test://) host cannot make one (its driver
 * creates only vHBAs): nothing is done and *@out_simulated is set. */
gboolean kd_hv_mdev_create       (KdHvHost *host, const char *parent, const char *type,
                                  const char *uuid, gboolean *out_simulated, GError **error);
/* Blocking: destroys mdev @uuid; one that is not there is not an error. */
gboolean kd_hv_mdev_destroy      (KdHvHost *host, const char *uuid, GError **error);

/* ------------------------------------------------------------------ */
/* Domain XML: pure, built with libxml2 (values always escaped). */

typedef struct {
  const char *name;            /* libvirt domain name */
  const char *uuid;            /* NULL: libvirt chooses */
  const char *title;           /* shown by virsh list --title; may be NULL */
  const char *domain_type;     /* "kvm" | "qemu" | "test" */
  const char *arch;            /* default "x86_64" */
  const char *machine;         /* NULL: libvirt's default */
  gint64      vcpus;
  gint64      memory_mib;
  const char *disk_path;       /* the desktop's overlay */
  const char *disk_format;     /* "qcow2" */
  const char *firmware;        /* "bios" | "uefi" */
  const char *display;         /* "vnc" | "spice" | "dbus" */
  const char *graphics_listen; /* "127.0.0.1" */
  const char *graphics_passwd; /* NULL: none; a secret nobody is told, so that
                                * reaching the port is not enough */
  const char *const *hostdevs; /* PCI addresses passed through (a GPU's functions), may be NULL */
  const char *const *mdevs;    /* UUIDs of mediated devices (vGPUs) it gets, may be NULL */
  const char *network;         /* "none" | "user" | NAME | "bridge:NAME" */
  /* <metadata><kvmdesk:desktop xmlns:kvmdesk=NS> */
  const char *instance_id;     /* the kvmdesk installation */
  const char *desktop_id;
  const char *desktop_name;
} KdHvDomainSpec;

/* Returns: (transfer full): domain XML, or NULL with KD_HV_ERROR_FAILED
 * naming the missing/invalid field. */
char *kd_hv_domain_xml_build (const KdHvDomainSpec  *spec,
                              GError               **error);

/* ------------------------------------------------------------------ */
/* Domains, by name. All blocking. */

/* Defines (persistent) the domain; KD_HV_ERROR_EXISTS when the name is
 * taken. *@out_uuid receives libvirt's UUID string. */
gboolean kd_hv_domain_define   (KdHvHost    *host,
                                const char  *xml,
                                char       **out_uuid,
                                GError     **error);
gboolean kd_hv_domain_start    (KdHvHost    *host,
                                const char  *name,
                                GError     **error);
/* ACPI shutdown; polls the state every 250 ms; after @timeout_sec forces
 * it off (*@out_forced = TRUE). Already shut off is success. */
gboolean kd_hv_domain_shutdown (KdHvHost     *host,
                                const char   *name,
                                gint64        timeout_sec,
                                gboolean     *out_forced,
                                GCancellable *cancellable,
                                GError      **error);
/* Forced power off; already shut off is success. */
gboolean kd_hv_domain_poweroff (KdHvHost    *host,
                                const char  *name,
                                GError     **error);
/* A socket speaking the domain's display protocol (virDomainOpenGraphicsFD,
 * no auth; libvirtd on this machine only); -1 on error. */
int      kd_hv_domain_open_graphics (KdHvHost    *host,
                                     const char  *name,
                                     GError     **error);
/* Where a running domain's display listens. */
typedef struct {
  char   *type;      /* "vnc" | "spice" */
  char   *listen;    /* the listen address in its XML, may be NULL */
  gint64  port;
  gint64  tls_port;  /* SPICE; -1 when none */
} KdHvGraphics;

void          kd_hv_graphics_free (KdHvGraphics *g);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdHvGraphics, kd_hv_graphics_free)
KdHvGraphics *kd_hv_domain_graphics_get (KdHvHost    *host,
                                         const char  *name,
                                         const char  *type,
                                         GError     **error);
/* Live only; @valid_to in seconds since the epoch (0: no expiry);
 * connected viewers stay. */
gboolean      kd_hv_domain_graphics_set_password (KdHvHost    *host,
                                                  const char  *name,
                                                  const char  *type,
                                                  const char  *password,
                                                  gint64       valid_to,
                                                  GError     **error);
/* The guest's address from its agent, else from DHCP leases. */
char         *kd_hv_domain_guest_address (KdHvHost    *host,
                                          const char  *name,
                                          GError     **error);

/* The persistent definition with its secrets (to define it elsewhere). */
char    *kd_hv_domain_get_definition (KdHvHost    *host,
                                      const char  *name,
                                      GError     **error);
/* Pure: @xml with the source files of its disks rewritten through @paths
 * (old -> new); *@out_targets gets their target names ("vda"). */
char    *kd_hv_domain_xml_move_disks (const char   *xml,
                                      GHashTable   *paths,
                                      char       ***out_targets,
                                      GError      **error);
/* Pure: @xml with its PCI <hostdev>s replaced by ones for @addresses. */
char    *kd_hv_domain_xml_set_pci_hostdevs (const char         *xml,
                                            const char *const  *addresses,
                                            GError            **error);
/* Live migration of running domain @name from @src to @dst with its
 * overlays copied (they exist, empty, on @dst at the new paths of @paths);
 * persistent on @dst and undefined on @src when it succeeds. @progress
 * is called from a helper thread (bytes done, total). See kd-hv-migrate.c. */
gboolean kd_hv_domain_migrate (KdHvHost          *src,
                               KdHvHost          *dst,
                               const char        *name,
                               GHashTable        *paths,
                               const char        *migrate_uri,
                               const char        *listen_address,
                               KdHvProgressFunc   progress,
                               gpointer           user_data,
                               GError           **error);
/* ACPI reboot, else a hard reset; the domain must be running. */
gboolean kd_hv_domain_reboot   (KdHvHost    *host,
                                const char  *name,
                                GError     **error);
/* Powers off if needed and undefines (with NVRAM); when @missing_ok a
 * missing domain is success. */
gboolean kd_hv_domain_delete   (KdHvHost    *host,
                                const char  *name,
                                gboolean     missing_ok,
                                GError     **error);
KdHvDomainState kd_hv_domain_get_state (KdHvHost    *host,
                                        const char  *name,
                                        GError     **error);

typedef struct {
  char            *name;
  char            *uuid;
  KdHvDomainState  state;
  char            *instance_id;  /* from kvmdesk metadata */
  char            *desktop_id;
  char            *desktop_name;
  GPtrArray       *disk_paths;   /* char*: source files of its disks */
} KdHvDomainInfo;

void kd_hv_domain_info_free (KdHvDomainInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdHvDomainInfo, kd_hv_domain_info_free)
/* Every domain on the host that carries kvmdesk metadata (any instance);
 * element type KdHvDomainInfo. */
GPtrArray *kd_hv_domain_list_kvmdesk (KdHvHost  *host,
                                      GError   **error);

G_END_DECLS
