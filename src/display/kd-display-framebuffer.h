/*
 * kd-display-framebuffer.h: the framebuffer kvmdesk-display keeps for a
 * QEMU console, in one format for every front end (32-bit xRGB: a
 * guint32 0x00RRGGBB per pixel, host byte order, rows of width * 4
 * bytes), plus the damaged rectangles accumulated for the front end.
 *
 * Pure functions, no I/O: every size that comes from QEMU goes through
 * these checks, so a hostile or broken peer can never make us read or
 * write outside a buffer. Nothing here logs.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define KD_DISPLAY_ERROR (kd_display_error_quark ())
GQuark kd_display_error_quark (void);

typedef enum {
  KD_DISPLAY_ERROR_FAILED,       /* a system call or D-Bus call failed */
  KD_DISPLAY_ERROR_INVALID,      /* the peer sent sizes/data we refuse */
  KD_DISPLAY_ERROR_UNSUPPORTED,  /* e.g. a pixel format or a DMABUF */
  KD_DISPLAY_ERROR_CLOSED,       /* QEMU's connection is gone */
} KdDisplayError;

/* Limits on what a peer may ask of us. */
#define KD_DISPLAY_MAX_WIDTH        16384u       /* pixels */
#define KD_DISPLAY_MAX_HEIGHT       16384u       /* pixels */
#define KD_DISPLAY_MAX_PIXELS       (64u * 1024u * 1024u) /* per frame: 256 MiB */
#define KD_DISPLAY_MAX_CURSOR_SIZE  512u         /* pixels, each side */
/* Beyond this many damaged rectangles they collapse into their bounding box. */
#define KD_DISPLAY_DAMAGE_MAX_RECTS 64u

/* pixman format codes QEMU sends (pixman.h: bpp<<24 | type<<16 | a<<12 | r<<8 | g<<4 | b). */
#define KD_PIXMAN_X8R8G8B8 0x20020888u
#define KD_PIXMAN_A8R8G8B8 0x20028888u
#define KD_PIXMAN_X8B8G8R8 0x20030888u
#define KD_PIXMAN_A8B8G8R8 0x20038888u
#define KD_PIXMAN_B8G8R8X8 0x20080888u
#define KD_PIXMAN_B8G8R8A8 0x20088888u
#define KD_PIXMAN_R8G8B8X8 0x20090888u
#define KD_PIXMAN_R8G8B8A8 0x20098888u
#define KD_PIXMAN_R8G8B8   0x18020888u
#define KD_PIXMAN_B8G8R8   0x18030888u
#define KD_PIXMAN_R5G6B5   0x10020565u
#define KD_PIXMAN_X1R5G5B5 0x10020555u

typedef struct {
  int x, y, width, height;
} KdDisplayRect;

typedef struct {
  guint    width;
  guint    height;
  gsize    stride;     /* bytes per row: width * 4 */
  guint32 *pixels;     /* NULL while width or height is 0 */
  GArray  *damage;     /* KdDisplayRect, inside the frame, not yet taken */
} KdDisplayFramebuffer;

guint    kd_display_pixman_bytes_per_pixel (guint32 format);
const char *kd_display_pixman_format_name  (guint32 format);

void     kd_display_framebuffer_init     (KdDisplayFramebuffer *fb);
void     kd_display_framebuffer_clear    (KdDisplayFramebuffer *fb);
gboolean kd_display_framebuffer_resize   (KdDisplayFramebuffer *fb,
                                          guint                 width,
                                          guint                 height,
                                          GError              **error);
void     kd_display_framebuffer_fill     (KdDisplayFramebuffer *fb,
                                          guint32               xrgb);
gboolean kd_display_framebuffer_blit     (KdDisplayFramebuffer *fb,
                                          int                   x,
                                          int                   y,
                                          int                   width,
                                          int                   height,
                                          const guint8         *data,
                                          gsize                 data_len,
                                          gsize                 data_stride,
                                          guint32               format,
                                          GError              **error);
void     kd_display_framebuffer_damage   (KdDisplayFramebuffer *fb,
                                          int                   x,
                                          int                   y,
                                          int                   width,
                                          int                   height);
GArray  *kd_display_framebuffer_take_damage (KdDisplayFramebuffer *fb);

gboolean kd_display_check_image          (guint                 width,
                                          guint                 height,
                                          gsize                 stride,
                                          guint32               format,
                                          gsize                 data_len,
                                          GError              **error);
void     kd_display_convert_row          (guint32              *dst,
                                          const guint8         *src,
                                          guint                 width,
                                          guint32               format);

G_END_DECLS
