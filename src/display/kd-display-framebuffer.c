/*
 * kd-display-framebuffer.c: kvmdesk-display's framebuffer bookkeeping:
 * size checks, pixel-format conversion into 32-bit xRGB, and damage.
 *
 * Everything a peer sends is checked before a byte is touched: sizes
 * against the limits in the header, strides against widths, data lengths
 * against height * stride (without overflow), rectangles against the
 * frame. Refusals are errors; nothing is clipped silently except damage.
 */
#include <string.h>

#include "kd-display-framebuffer.h"

G_DEFINE_QUARK (kd-display-error-quark, kd_display_error)

/**
 * kd_display_pixman_bytes_per_pixel:
 * Returns: the bytes per pixel of a pixman format we can convert, 0 for
 * any other.
 */
guint
kd_display_pixman_bytes_per_pixel (guint32 format)
{
  switch (format)
    {
    case KD_PIXMAN_X8R8G8B8:
    case KD_PIXMAN_A8R8G8B8:
    case KD_PIXMAN_X8B8G8R8:
    case KD_PIXMAN_A8B8G8R8:
    case KD_PIXMAN_B8G8R8X8:
    case KD_PIXMAN_B8G8R8A8:
    case KD_PIXMAN_R8G8B8X8:
    case KD_PIXMAN_R8G8B8A8:
      return 4;
    case KD_PIXMAN_R8G8B8:
    case KD_PIXMAN_B8G8R8:
      return 3;
    case KD_PIXMAN_R5G6B5:
    case KD_PIXMAN_X1R5G5B5:
      return 2;
    default:
      return 0;
    }
}

const char *
kd_display_pixman_format_name (guint32 format)
{
  switch (format)
    {
    case KD_PIXMAN_X8R8G8B8: return "x8r8g8b8";
    case KD_PIXMAN_A8R8G8B8: return "a8r8g8b8";
    case KD_PIXMAN_X8B8G8R8: return "x8b8g8r8";
    case KD_PIXMAN_A8B8G8R8: return "a8b8g8r8";
    case KD_PIXMAN_B8G8R8X8: return "b8g8r8x8";
    case KD_PIXMAN_B8G8R8A8: return "b8g8r8a8";
    case KD_PIXMAN_R8G8B8X8: return "r8g8b8x8";
    case KD_PIXMAN_R8G8B8A8: return "r8g8b8a8";
    case KD_PIXMAN_R8G8B8:   return "r8g8b8";
    case KD_PIXMAN_B8G8R8:   return "b8g8r8";
    case KD_PIXMAN_R5G6B5:   return "r5g6b5";
    case KD_PIXMAN_X1R5G5B5: return "x1r5g5b5";
    default:                 return "unknown";
    }
}

/**
 * kd_display_check_image:
 * @data_len: bytes the peer sent (or that are mapped)
 *
 * Checks an image description from the peer: a known format, a size
 * within the limits, a stride that holds a row, and @data_len holding
 * (height - 1) * stride + width * bpp bytes. An empty image (0 wide or
 * high) is valid and needs no data.
 */
gboolean
kd_display_check_image (guint    width,
                        guint    height,
                        gsize    stride,
                        guint32  format,
                        gsize    data_len,
                        GError **error)
{
  guint bpp = kd_display_pixman_bytes_per_pixel (format);
  guint64 row, needed;

  if (bpp == 0)
    {
      g_set_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_UNSUPPORTED,
                   "pixel format 0x%08x is not supported", format);
      return FALSE;
    }
  if (width > KD_DISPLAY_MAX_WIDTH || height > KD_DISPLAY_MAX_HEIGHT
      || (guint64) width * height > KD_DISPLAY_MAX_PIXELS)
    {
      g_set_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                   "image size %ux%u is beyond the limit (%ux%u, %u pixels)",
                   width, height, KD_DISPLAY_MAX_WIDTH, KD_DISPLAY_MAX_HEIGHT,
                   KD_DISPLAY_MAX_PIXELS);
      return FALSE;
    }
  if (width == 0 || height == 0)
    return TRUE;
  row = (guint64) width * bpp;
  if (stride < row)
    {
      g_set_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                   "stride %" G_GSIZE_FORMAT " is shorter than a row of %u %s pixels",
                   stride, width, kd_display_pixman_format_name (format));
      return FALSE;
    }
  /* stride is a gsize from a guint: the product fits in 64 bits. */
  needed = (guint64) (height - 1) * stride + row;
  if ((guint64) data_len < needed)
    {
      g_set_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                   "image data of %" G_GSIZE_FORMAT " bytes is shorter than %ux%u "
                   "with stride %" G_GSIZE_FORMAT " (%" G_GUINT64_FORMAT " bytes)",
                   data_len, width, height, stride, needed);
      return FALSE;
    }
  return TRUE;
}

static inline guint32
load32 (const guint8 *p)
{
  guint32 v;
  memcpy (&v, p, sizeof v);
  return v;
}

static inline guint16
load16 (const guint8 *p)
{
  guint16 v;
  memcpy (&v, p, sizeof v);
  return v;
}

/**
 * kd_display_convert_row:
 * Converts @width pixels of @format at @src (host byte order, as pixman
 * stores them) into xRGB at @dst. The format must be supported (checked
 * by kd_display_check_image()).
 */
void
kd_display_convert_row (guint32      *dst,
                        const guint8 *src,
                        guint         width,
                        guint32       format)
{
  guint i;

  switch (format)
    {
    case KD_PIXMAN_X8R8G8B8:
    case KD_PIXMAN_A8R8G8B8:
      for (i = 0; i < width; i++)
        dst[i] = load32 (src + 4 * i) & 0x00ffffffu;
      break;
    case KD_PIXMAN_X8B8G8R8:
    case KD_PIXMAN_A8B8G8R8:
      for (i = 0; i < width; i++)
        {
          guint32 v = load32 (src + 4 * i);
          dst[i] = ((v & 0xffu) << 16) | (v & 0xff00u) | ((v >> 16) & 0xffu);
        }
      break;
    case KD_PIXMAN_B8G8R8X8:
    case KD_PIXMAN_B8G8R8A8:
      for (i = 0; i < width; i++)
        {
          guint32 v = load32 (src + 4 * i);
          dst[i] = ((v >> 8) & 0xffu) << 16 | ((v >> 16) & 0xffu) << 8 | (v >> 24);
        }
      break;
    case KD_PIXMAN_R8G8B8X8:
    case KD_PIXMAN_R8G8B8A8:
      for (i = 0; i < width; i++)
        dst[i] = load32 (src + 4 * i) >> 8;
      break;
    case KD_PIXMAN_R8G8B8:
      /* 24-bit value 0xRRGGBB, stored little-endian: B, G, R. */
      for (i = 0; i < width; i++)
        {
          const guint8 *p = src + 3 * i;
          dst[i] = (guint32) p[2] << 16 | (guint32) p[1] << 8 | p[0];
        }
      break;
    case KD_PIXMAN_B8G8R8:
      for (i = 0; i < width; i++)
        {
          const guint8 *p = src + 3 * i;
          dst[i] = (guint32) p[0] << 16 | (guint32) p[1] << 8 | p[2];
        }
      break;
    case KD_PIXMAN_R5G6B5:
      for (i = 0; i < width; i++)
        {
          guint16 v = load16 (src + 2 * i);
          guint32 r = (v >> 11) & 0x1f, g = (v >> 5) & 0x3f, b = v & 0x1f;
          r = (r << 3) | (r >> 2);
          g = (g << 2) | (g >> 4);
          b = (b << 3) | (b >> 2);
          dst[i] = r << 16 | g << 8 | b;
        }
      break;
    case KD_PIXMAN_X1R5G5B5:
      for (i = 0; i < width; i++)
        {
          guint16 v = load16 (src + 2 * i);
          guint32 r = (v >> 10) & 0x1f, g = (v >> 5) & 0x1f, b = v & 0x1f;
          r = (r << 3) | (r >> 2);
          g = (g << 3) | (g >> 2);
          b = (b << 3) | (b >> 2);
          dst[i] = r << 16 | g << 8 | b;
        }
      break;
    default:
      memset (dst, 0, (gsize) width * 4);
      break;
    }
}

void
kd_display_framebuffer_init (KdDisplayFramebuffer *fb)
{
  memset (fb, 0, sizeof *fb);
  fb->damage = g_array_new (FALSE, FALSE, sizeof (KdDisplayRect));
}

void
kd_display_framebuffer_clear (KdDisplayFramebuffer *fb)
{
  g_clear_pointer (&fb->pixels, g_free);
  g_clear_pointer (&fb->damage, g_array_unref);
  fb->width = fb->height = 0;
  fb->stride = 0;
}

/**
 * kd_display_framebuffer_resize:
 * Gives @fb a new size, black, all of it damaged (the damage of the old
 * size is dropped). On error @fb is unchanged.
 */
gboolean
kd_display_framebuffer_resize (KdDisplayFramebuffer *fb,
                               guint                 width,
                               guint                 height,
                               GError              **error)
{
  guint32 *pixels = NULL;

  if (width > KD_DISPLAY_MAX_WIDTH || height > KD_DISPLAY_MAX_HEIGHT
      || (guint64) width * height > KD_DISPLAY_MAX_PIXELS)
    {
      g_set_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                   "display size %ux%u is beyond the limit (%ux%u, %u pixels)",
                   width, height, KD_DISPLAY_MAX_WIDTH, KD_DISPLAY_MAX_HEIGHT,
                   KD_DISPLAY_MAX_PIXELS);
      return FALSE;
    }
  if (width > 0 && height > 0)
    {
      pixels = g_try_malloc0 ((gsize) width * height * 4);
      if (pixels == NULL)
        {
          g_set_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_FAILED,
                       "no memory for a %ux%u display", width, height);
          return FALSE;
        }
    }
  g_free (fb->pixels);
  fb->pixels = pixels;
  fb->width = width;
  fb->height = height;
  fb->stride = (gsize) width * 4;
  g_array_set_size (fb->damage, 0);
  kd_display_framebuffer_damage (fb, 0, 0, (int) width, (int) height);
  return TRUE;
}

void
kd_display_framebuffer_fill (KdDisplayFramebuffer *fb,
                             guint32               xrgb)
{
  gsize i, n = (gsize) fb->width * fb->height;

  for (i = 0; i < n; i++)
    fb->pixels[i] = xrgb;
  kd_display_framebuffer_damage (fb, 0, 0, (int) fb->width, (int) fb->height);
}

/**
 * kd_display_framebuffer_blit:
 * @data: the rectangle's pixels, row 0 first, @data_stride bytes apart
 *
 * Converts the rectangle into @fb at (@x, @y) and damages the rows that
 * changed. Refused
 * (and @fb unchanged) when the rectangle is not inside the frame or the
 * data does not hold it.
 */
gboolean
kd_display_framebuffer_blit (KdDisplayFramebuffer *fb,
                             int                   x,
                             int                   y,
                             int                   width,
                             int                   height,
                             const guint8         *data,
                             gsize                 data_len,
                             gsize                 data_stride,
                             guint32               format,
                             GError              **error)
{
  int row, first_changed = -1, last_changed = -1;
  guint32 *tmp;

  if (x < 0 || y < 0 || width < 0 || height < 0
      || (guint64) x + (guint64) width > fb->width
      || (guint64) y + (guint64) height > fb->height)
    {
      g_set_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                   "rectangle %dx%d at %d,%d is outside the %ux%u display",
                   width, height, x, y, fb->width, fb->height);
      return FALSE;
    }
  if (!kd_display_check_image ((guint) width, (guint) height, data_stride, format,
                               data_len, error))
    return FALSE;
  if (width == 0 || height == 0)
    return TRUE;
  /* QEMU resends regions that did not change (VGA text mode redraws the
   * cursor cell at every refresh): only rows that differ are damaged, so
   * an unchanged screen costs viewers nothing. */
  tmp = g_new (guint32, width);
  for (row = 0; row < height; row++)
    {
      guint32 *dst = fb->pixels + (gsize) (y + row) * fb->width + x;

      kd_display_convert_row (tmp, data + (gsize) row * data_stride, (guint) width, format);
      if (memcmp (dst, tmp, (gsize) width * 4) == 0)
        continue;
      memcpy (dst, tmp, (gsize) width * 4);
      if (first_changed < 0)
        first_changed = row;
      last_changed = row;
    }
  g_free (tmp);
  if (first_changed >= 0)
    kd_display_framebuffer_damage (fb, x, y + first_changed, width,
                                   last_changed - first_changed + 1);
  return TRUE;
}

static void
rect_union (KdDisplayRect *a, const KdDisplayRect *b)
{
  int x1 = MIN (a->x, b->x), y1 = MIN (a->y, b->y);
  int x2 = MAX (a->x + a->width, b->x + b->width);
  int y2 = MAX (a->y + a->height, b->y + b->height);

  a->x = x1;
  a->y = y1;
  a->width = x2 - x1;
  a->height = y2 - y1;
}

static gboolean
rect_contains (const KdDisplayRect *a, const KdDisplayRect *b)
{
  return b->x >= a->x && b->y >= a->y
         && b->x + b->width <= a->x + a->width
         && b->y + b->height <= a->y + a->height;
}

/**
 * kd_display_framebuffer_damage:
 * Adds a damaged rectangle, clipped to the frame. A rectangle inside one
 * already listed adds nothing; one that contains listed ones replaces
 * them; past KD_DISPLAY_DAMAGE_MAX_RECTS everything collapses into the
 * bounding box.
 */
void
kd_display_framebuffer_damage (KdDisplayFramebuffer *fb,
                               int                   x,
                               int                   y,
                               int                   width,
                               int                   height)
{
  KdDisplayRect r;
  gint64 x2 = (gint64) x + width, y2 = (gint64) y + height;
  guint i;

  x = MAX (x, 0);
  y = MAX (y, 0);
  x2 = MIN (x2, (gint64) fb->width);
  y2 = MIN (y2, (gint64) fb->height);
  if (x2 <= x || y2 <= y)
    return;
  r.x = x;
  r.y = y;
  r.width = (int) (x2 - x);
  r.height = (int) (y2 - y);

  for (i = 0; i < fb->damage->len; i++)
    if (rect_contains (&g_array_index (fb->damage, KdDisplayRect, i), &r))
      return;
  for (i = fb->damage->len; i > 0; i--)
    if (rect_contains (&r, &g_array_index (fb->damage, KdDisplayRect, i - 1)))
      g_array_remove_index_fast (fb->damage, i - 1);
  if (fb->damage->len >= KD_DISPLAY_DAMAGE_MAX_RECTS)
    {
      KdDisplayRect box = r;

      for (i = 0; i < fb->damage->len; i++)
        rect_union (&box, &g_array_index (fb->damage, KdDisplayRect, i));
      g_array_set_size (fb->damage, 0);
      r = box;
    }
  g_array_append_val (fb->damage, r);
}

/**
 * kd_display_framebuffer_take_damage:
 * Returns: (transfer full): the damaged rectangles since the last call
 * (maybe none); @fb starts a new empty list.
 */
GArray *
kd_display_framebuffer_take_damage (KdDisplayFramebuffer *fb)
{
  GArray *taken = fb->damage;

  fb->damage = g_array_new (FALSE, FALSE, sizeof (KdDisplayRect));
  return taken;
}
