/*
 * kd-display-client.h: a client of QEMU's D-Bus display (org.qemu.Display1)
 * on a peer-to-peer connection, kept apart from any remote-display
 * protocol: the VNC front end (kd-display-vnc.h) and a later RDP one use
 * it the same way.
 *
 * It attaches to console 0, registers itself as a listener, keeps the
 * console's framebuffer (KdDisplayFramebuffer: xRGB, damage), cursor
 * shape and position, and forwards keyboard and mouse input. Everything
 * runs on the thread-default main context of the caller of
 * kd_display_client_new_async(). Library code: returns errors, logs only
 * at debug level.
 */
#pragma once

#include <gio/gio.h>

#include "kd-display-framebuffer.h"

G_BEGIN_DECLS

typedef struct _KdDisplayClient KdDisplayClient;

/* The pointer shape QEMU defined: ARGB32 pixels (host order), width * height. */
typedef struct {
  guint    width;
  guint    height;
  int      hot_x;
  int      hot_y;
  guint32 *pixels;
  gboolean visible;   /* MouseSet's "on" */
  int      x;         /* MouseSet's position */
  int      y;
} KdDisplayCursor;

/* What QEMU sent so far (for logs, tests and benchmarks). */
typedef struct {
  guint64 scanouts;       /* Scanout calls taken */
  guint64 updates;        /* Update calls taken (unchanged ones included) */
  guint64 unchanged;      /* of those, dropped unread: equal to what the frame holds
                           * (counted in another thread, folded in by get_stats()) */
  guint64 map_scanouts;   /* ScanoutMap calls taken */
  guint64 map_updates;    /* UpdateMap calls taken */
  guint64 refused;        /* calls refused (bad sizes, DMABUF, ...) */
  guint64 bytes;          /* image bytes received in messages */
} KdDisplayClientStats;

/* Called on the main context; any may be NULL. */
typedef struct {
  /* The framebuffer changed size (a scanout of another size). */
  void (*resized)        (KdDisplayClient *client, gpointer user_data);
  /* New damage is waiting in the framebuffer (take it with
   * kd_display_framebuffer_take_damage()). */
  void (*damaged)        (KdDisplayClient *client, gpointer user_data);
  /* The cursor's shape, position or visibility changed. */
  void (*cursor_changed) (KdDisplayClient *client, gboolean shape_changed, gpointer user_data);
  /* The guest's mouse switched between absolute and relative. */
  void (*mouse_mode_changed) (KdDisplayClient *client, gboolean absolute, gpointer user_data);
  /* QEMU's connection is gone (the VM stopped); called once. */
  void (*closed)         (KdDisplayClient *client, const char *reason, gpointer user_data);
} KdDisplayClientCallbacks;

void              kd_display_client_new_async   (int                             fd,
                                                 const KdDisplayClientCallbacks *callbacks,
                                                 gpointer                        user_data,
                                                 GCancellable                   *cancellable,
                                                 GAsyncReadyCallback             callback,
                                                 gpointer                        callback_data);
KdDisplayClient  *kd_display_client_new_finish  (GAsyncResult  *result,
                                                 GError       **error);
void              kd_display_client_free        (KdDisplayClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdDisplayClient, kd_display_client_free)

const char       *kd_display_client_get_vm_name        (KdDisplayClient *client);
const char       *kd_display_client_get_vm_uuid        (KdDisplayClient *client);
const char       *kd_display_client_get_console_label  (KdDisplayClient *client);
const char       *kd_display_client_get_console_type   (KdDisplayClient *client);
/* The console's size from its properties, before any scanout arrived. */
void              kd_display_client_get_console_size   (KdDisplayClient *client,
                                                        guint           *width,
                                                        guint           *height);
KdDisplayFramebuffer *kd_display_client_get_framebuffer (KdDisplayClient *client);
const KdDisplayCursor *kd_display_client_get_cursor    (KdDisplayClient *client);
const KdDisplayClientStats *kd_display_client_get_stats (KdDisplayClient *client);
/* TRUE once a scanout has been received. */
gboolean          kd_display_client_has_frame          (KdDisplayClient *client);
gboolean          kd_display_client_mouse_is_absolute  (KdDisplayClient *client);

/* Input: sent without waiting for replies, in order. */
void              kd_display_client_key          (KdDisplayClient *client,
                                                  guint            qnum,
                                                  gboolean         down);
/* @button: 0 left, 1 middle, 2 right, 3 wheel up, 4 wheel down, 5 side, 6 extra */
void              kd_display_client_mouse_button (KdDisplayClient *client,
                                                  guint            button,
                                                  gboolean         down);
void              kd_display_client_mouse_abs    (KdDisplayClient *client,
                                                  guint            x,
                                                  guint            y);
void              kd_display_client_mouse_rel    (KdDisplayClient *client,
                                                  int              dx,
                                                  int              dy);

G_END_DECLS
