/*
 * kd-hv-image.c: probing of image files before they are imported. Pure
 * file parsing, no libvirt: a golden image must be a standalone qcow2
 * (v2/v3, no backing file, no encryption, no external data file) or raw.
 * Formats we recognise but do not import (vmdk, vdi, vhd, vhdx, qed,
 * luks, …) are refused with the reason, so that an operator knows to
 * run `qemu-img convert`. Everything unrecognised is raw (ISO images
 * included). Reads at most a few KiB from the file.
 */
#include "hv/kd-hv-priv.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>

#define KD_HV_PROBE_HEADER_BYTES  4096
#define KD_HV_QCOW2_V2_HEADER_LEN 72
#define KD_HV_QCOW2_V3_HEADER_LEN 104
#define KD_HV_QCOW2_BACKING_MAX   1023   /* QEMU's own limit */
#define KD_HV_VHD_FOOTER_LEN      512

/* qcow2 incompatible feature bits (docs/interop/qcow2.txt). */
#define KD_HV_QCOW2_INCOMPAT_DIRTY        (1ULL << 0)
#define KD_HV_QCOW2_INCOMPAT_CORRUPT      (1ULL << 1)
#define KD_HV_QCOW2_INCOMPAT_DATA_FILE    (1ULL << 2)
#define KD_HV_QCOW2_INCOMPAT_COMPRESSION  (1ULL << 3)
#define KD_HV_QCOW2_INCOMPAT_EXTL2        (1ULL << 4)
#define KD_HV_QCOW2_INCOMPAT_KNOWN        ((1ULL << 5) - 1)

void
kd_hv_image_info_clear (KdHvImageInfo *info)
{
  g_clear_pointer (&info->format, g_free);
  info->virtual_size = 0;
  info->file_size = 0;
}

static guint32
kd_be32 (const guint8 *p)
{
  return ((guint32) p[0] << 24) | ((guint32) p[1] << 16) | ((guint32) p[2] << 8) | p[3];
}

static guint64
kd_be64 (const guint8 *p)
{
  return ((guint64) kd_be32 (p) << 32) | kd_be32 (p + 4);
}

static guint32
kd_le32 (const guint8 *p)
{
  return ((guint32) p[3] << 24) | ((guint32) p[2] << 16) | ((guint32) p[1] << 8) | p[0];
}

static gboolean
kd_has_prefix (const guint8 *buf,
               gsize         len,
               const char   *magic,
               gsize         magic_len)
{
  return len >= magic_len && memcmp (buf, magic, magic_len) == 0;
}

static gboolean
kd_read_at (int      fd,
            guint8  *buf,
            gsize    len,
            goffset  offset,
            gsize   *out_read)
{
  gsize done = 0;

  while (done < len)
    {
      ssize_t n = pread (fd, buf + done, len - done, offset + done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return FALSE;
      if (n == 0)
        break;
      done += n;
    }
  *out_read = done;
  return TRUE;
}

static gboolean
kd_refuse (GError    **error,
           const char *path,
           const char *format,
           ...) G_GNUC_PRINTF (3, 4);

static gboolean
kd_refuse (GError    **error,
           const char *path,
           const char *format,
           ...)
{
  g_autofree char *why = NULL;
  va_list args;

  va_start (args, format);
  why = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_INVALID_IMAGE,
               "image '%s' is refused: %s", path, why);
  return FALSE;
}

static gboolean
kd_hv_probe_qcow2 (int           fd,
                   const char   *path,
                   const guint8 *hdr,
                   gsize         len,
                   gint64        file_size,
                   gint64       *out_virtual_size,
                   GError      **error)
{
  guint32 version, crypt, cluster_bits;
  guint64 backing_offset, size;

  if (len < KD_HV_QCOW2_V2_HEADER_LEN)
    return kd_refuse (error, path, "its qcow2 header is truncated (%" G_GSIZE_FORMAT
                      " bytes)", len);
  version = kd_be32 (hdr + 4);
  if (version == 1)
    return kd_refuse (error, path, "it is a qcow (version 1) image; convert it to qcow2 "
                      "with qemu-img convert -O qcow2");
  if (version != 2 && version != 3)
    return kd_refuse (error, path, "qcow2 version %u is not supported", version);
  if (version == 3 && len < KD_HV_QCOW2_V3_HEADER_LEN)
    return kd_refuse (error, path, "its qcow2 header is truncated (%" G_GSIZE_FORMAT
                      " bytes)", len);

  backing_offset = kd_be64 (hdr + 8);
  if (backing_offset != 0)
    {
      guint32 backing_len = kd_be32 (hdr + 16);
      g_autofree guint8 *name = NULL;
      g_autofree char *shown = NULL;
      gsize got = 0;

      if (backing_len > KD_HV_QCOW2_BACKING_MAX)
        backing_len = KD_HV_QCOW2_BACKING_MAX;
      name = g_malloc0 (backing_len + 1);
      if (backing_offset > (guint64) G_MAXINT64 ||
          !kd_read_at (fd, name, backing_len, (goffset) backing_offset, &got))
        got = 0;
      shown = g_utf8_make_valid ((const char *) name, got);
      return kd_refuse (error, path, "image has a backing file '%s'; import a standalone "
                        "image (qemu-img convert)", shown);
    }

  cluster_bits = kd_be32 (hdr + 20);
  if (cluster_bits < 9 || cluster_bits > 21)
    return kd_refuse (error, path, "its qcow2 header is damaged (cluster bits %u)",
                      cluster_bits);

  crypt = kd_be32 (hdr + 32);
  if (crypt != 0)
    return kd_refuse (error, path, "it is encrypted (qcow2 encryption method %u)", crypt);

  if (version == 3)
    {
      guint64 incompat = kd_be64 (hdr + 72);

      if (incompat & KD_HV_QCOW2_INCOMPAT_DATA_FILE)
        return kd_refuse (error, path, "it uses an external data file; import a standalone "
                          "image (qemu-img convert)");
      if (incompat & KD_HV_QCOW2_INCOMPAT_CORRUPT)
        return kd_refuse (error, path, "it is marked corrupt; repair it with qemu-img check -r all");
      if (incompat & KD_HV_QCOW2_INCOMPAT_DIRTY)
        return kd_refuse (error, path, "it was not closed cleanly (dirty); run "
                          "qemu-img check -r all first");
      if (incompat & ~KD_HV_QCOW2_INCOMPAT_KNOWN)
        return kd_refuse (error, path, "it uses unknown qcow2 features (0x%" G_GINT64_MODIFIER "x)",
                          (guint64) (incompat & ~KD_HV_QCOW2_INCOMPAT_KNOWN));
    }

  size = kd_be64 (hdr + 24);
  if (size == 0 || size > (guint64) G_MAXINT64)
    return kd_refuse (error, path, "its qcow2 virtual size %" G_GUINT64_FORMAT
                      " is invalid", size);
  (void) file_size;
  *out_virtual_size = (gint64) size;
  return TRUE;
}

/**
 * kd_hv_image_probe:
 * @path: the image file
 * @out: (out caller-allocates): format and sizes on success
 *
 * Reads the header of @path and decides whether kvmdesk can import it.
 *
 * Returns: %TRUE for a standalone qcow2 or a raw image; otherwise %FALSE
 * with %KD_HV_ERROR_INVALID_IMAGE (refused format), %KD_HV_ERROR_NOT_FOUND
 * (no such file) or %KD_HV_ERROR_FAILED (cannot read it).
 */
gboolean
kd_hv_image_probe_labeled (const char     *path,
                           const char     *label,
                           KdHvImageInfo  *out,
                           GError        **error)
{
  guint8 hdr[KD_HV_PROBE_HEADER_BYTES];
  guint8 footer[KD_HV_VHD_FOOTER_LEN];
  struct stat st;
  gsize len = 0;
  gint64 virtual_size;
  const char *format = "raw";
  int fd;
  int saved;

  g_return_val_if_fail (out != NULL, FALSE);

  if (path == NULL || *path == '\0')
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED, "an image path is required");
      return FALSE;
    }

  fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY, 0);
  if (fd < 0)
    {
      saved = errno;
      g_set_error (error, KD_HV_ERROR,
                   saved == ENOENT ? KD_HV_ERROR_NOT_FOUND : KD_HV_ERROR_FAILED,
                   "cannot read image '%s': %s", label, g_strerror (saved));
      return FALSE;
    }
  if (fstat (fd, &st) < 0)
    {
      saved = errno;
      close (fd);
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "cannot read image '%s': %s", label, g_strerror (saved));
      return FALSE;
    }
  if (!S_ISREG (st.st_mode))
    {
      close (fd);
      return kd_refuse (error, label, "it is not a regular file");
    }
  if (st.st_size == 0)
    {
      close (fd);
      return kd_refuse (error, label, "it is empty");
    }
  if (!kd_read_at (fd, hdr, sizeof hdr, 0, &len))
    {
      saved = errno;
      close (fd);
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "cannot read image '%s': %s", label, g_strerror (saved));
      return FALSE;
    }
  virtual_size = st.st_size;

#define REFUSE(name) \
  do { close (fd); \
       return kd_refuse (error, label, "it is a %s image; convert it with " \
                         "qemu-img convert -O qcow2", name); } while (0)

  if (kd_has_prefix (hdr, len, "QFI\xfb", 4))
    {
      gboolean ok = kd_hv_probe_qcow2 (fd, label, hdr, len, st.st_size, &virtual_size, error);
      close (fd);
      if (!ok)
        return FALSE;
      format = "qcow2";
      goto done;
    }
  if (kd_has_prefix (hdr, len, "KDMV", 4) ||
      kd_has_prefix (hdr, len, "COWD", 4) ||
      kd_has_prefix (hdr, len, "# Disk DescriptorFile", 21))
    REFUSE ("VMDK");
  if (len >= 68 && kd_le32 (hdr + 64) == 0xbeda107f)
    REFUSE ("VDI (VirtualBox)");
  if (kd_has_prefix (hdr, len, "conectix", 8))
    REFUSE ("VHD");
  if (kd_has_prefix (hdr, len, "vhdxfile", 8))
    REFUSE ("VHDX");
  if (kd_has_prefix (hdr, len, "QED\0", 4))
    REFUSE ("QED");
  if (kd_has_prefix (hdr, len, "LUKS\xba\xbe", 6))
    {
      close (fd);
      return kd_refuse (error, label, "it is a LUKS-encrypted image");
    }
  if (kd_has_prefix (hdr, len, "WithoutFreeSpace", 16) ||
      kd_has_prefix (hdr, len, "WithouFreSpacExt", 16))
    REFUSE ("Parallels");
  if (kd_has_prefix (hdr, len, "Bochs Virtual HD Image", 22))
    REFUSE ("Bochs");
  if (kd_has_prefix (hdr, len, "#!/bin/sh\n#V2.0 Format", 22))
    REFUSE ("cloop");

  /* Fixed VHD images and DMG keep their signature in a trailer. */
  if (st.st_size >= KD_HV_VHD_FOOTER_LEN)
    {
      gsize got = 0;
      if (kd_read_at (fd, footer, sizeof footer, st.st_size - KD_HV_VHD_FOOTER_LEN, &got) &&
          got == sizeof footer)
        {
          if (memcmp (footer, "conectix", 8) == 0)
            REFUSE ("VHD");
          if (memcmp (footer, "koly", 4) == 0)
            REFUSE ("DMG (Apple disk image)");
        }
    }
#undef REFUSE
  close (fd);

done:
  kd_hv_image_info_clear (out);
  out->format = g_strdup (format);
  out->virtual_size = virtual_size;
  out->file_size = st.st_size;
  return TRUE;
}

/**
 * kd_hv_image_probe:
 * As kd_hv_image_probe_labeled(), naming the file by @path in messages.
 */
gboolean
kd_hv_image_probe (const char     *path,
                   KdHvImageInfo  *out,
                   GError        **error)
{
  return kd_hv_image_probe_labeled (path, path, out, error);
}
