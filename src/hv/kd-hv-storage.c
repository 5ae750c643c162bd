/*
 * kd-hv-storage.c: volumes in kvmdesk's storage pool, through the libvirt
 * storage API only (so it works the same on remote hosts): image upload
 * over a virStream, qcow2 overlays (linked clones), lookup, listing and
 * deletion. Volume XML is built with libxml2, never by concatenation.
 * Blocking calls, meant for worker threads; nothing logs.
 */
#include "hv/kd-hv-priv.h"

#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <glib/gstdio.h>

void
kd_hv_volume_free (KdHvVolume *vol)
{
  if (vol == NULL)
    return;
  g_free (vol->name);
  g_free (vol->path);
  g_free (vol->format);
  g_free (vol->backing_path);
  g_free (vol);
}

static gboolean
kd_hv_check_format (const char  *what,
                    const char  *format,
                    GError     **error)
{
  if (g_strcmp0 (format, "qcow2") != 0 && g_strcmp0 (format, "raw") != 0)
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "%s format '%s' is not supported (use qcow2 or raw)",
                   what, format != NULL ? format : "");
      return FALSE;
    }
  return TRUE;
}

/* <volume><name/><capacity/><allocation/><target><format/><permissions>
 * [<backingStore><path/><format/></backingStore>]</volume> */
static char *
kd_hv_volume_xml (const char *name,
                  gint64      capacity,
                  const char *format,
                  const char *backing_path,
                  const char *backing_format)
{
  g_autoptr(xmlDoc) doc = xmlNewDoc ((const xmlChar *) "1.0");
  xmlNode *root = xmlNewNode (NULL, (const xmlChar *) "volume");
  xmlNode *node, *target, *perms;
  g_autofree char *cap = g_strdup_printf ("%" G_GINT64_FORMAT, capacity);

  xmlDocSetRootElement (doc, root);
  xmlNewProp (root, (const xmlChar *) "type", (const xmlChar *) "file");
  xmlNewTextChild (root, NULL, (const xmlChar *) "name", (const xmlChar *) name);
  node = xmlNewTextChild (root, NULL, (const xmlChar *) "capacity", (const xmlChar *) cap);
  xmlNewProp (node, (const xmlChar *) "unit", (const xmlChar *) "bytes");
  node = xmlNewTextChild (root, NULL, (const xmlChar *) "allocation", (const xmlChar *) "0");
  xmlNewProp (node, (const xmlChar *) "unit", (const xmlChar *) "bytes");
  target = xmlNewChild (root, NULL, (const xmlChar *) "target", NULL);
  node = xmlNewChild (target, NULL, (const xmlChar *) "format", NULL);
  xmlNewProp (node, (const xmlChar *) "type", (const xmlChar *) format);
  /* qcow2 v3: zero clusters and lazy refcounts; libvirt defaults to 0.10. */
  if (g_str_equal (format, "qcow2"))
    xmlNewTextChild (target, NULL, (const xmlChar *) "compat", (const xmlChar *) "1.1");
  perms = xmlNewChild (target, NULL, (const xmlChar *) "permissions", NULL);
  xmlNewTextChild (perms, NULL, (const xmlChar *) "mode", (const xmlChar *) "0644");
  if (backing_path != NULL)
    {
      xmlNode *bs = xmlNewChild (root, NULL, (const xmlChar *) "backingStore", NULL);
      xmlNewTextChild (bs, NULL, (const xmlChar *) "path", (const xmlChar *) backing_path);
      node = xmlNewChild (bs, NULL, (const xmlChar *) "format", NULL);
      xmlNewProp (node, (const xmlChar *) "type", (const xmlChar *) backing_format);
    }
  return kd_hv_xml_dump (doc, NULL);
}

/* Opens kvmdesk's pool, refreshed; NOT_FOUND if it does not exist. */
static virStoragePoolPtr
kd_hv_open_pool (KdHvHost       *host,
                 virConnectPtr   conn,
                 gboolean        refresh,
                 GError        **error)
{
  g_autoptr(virStoragePool) pool = kd_hv_host_lookup_pool (host, conn, error);

  if (pool == NULL)
    return NULL;
  if (refresh && virStoragePoolRefresh (pool, 0) < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot refresh storage pool '%s'",
                                    kd_hv_host_get_pool_name (host));
      return NULL;
    }
  return g_steal_pointer (&pool);
}

static gboolean
kd_hv_volume_check_absent (KdHvHost          *host,
                           virConnectPtr      conn,
                           virStoragePoolPtr  pool,
                           const char        *volume,
                           GError           **error)
{
  g_autoptr(virStorageVol) vol = virStorageVolLookupByName (pool, volume);

  if (vol != NULL)
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_EXISTS,
                   "host '%s': volume '%s' already exists in storage pool '%s'",
                   kd_hv_host_get_name (host), volume, kd_hv_host_get_pool_name (host));
      return FALSE;
    }
  virResetLastError ();
  return TRUE;
}

static gboolean
kd_hv_volume_name_check (const char  *volume,
                         GError     **error)
{
  if (volume == NULL || *volume == '\0' || strchr (volume, '/') != NULL ||
      !g_utf8_validate (volume, -1, NULL))
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "volume name '%s' is invalid", volume != NULL ? volume : "");
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_hv_image_upload:
 *
 * Creates @volume in kvmdesk's pool with @info's format and streams the
 * bytes of @path into it in 1 MiB chunks, calling @progress after each.
 * @cancellable is checked between chunks. On failure the stream is
 * aborted and the partial volume deleted. On a simulated host the volume
 * is only created and *@out_simulated set. Blocking.
 */
gboolean
kd_hv_image_upload (KdHvHost             *host,
                    const char           *volume,
                    const char           *path,
                    const KdHvImageInfo  *info,
                    KdHvProgressFunc      progress,
                    gpointer              user_data,
                    GCancellable         *cancellable,
                    char                **out_volume_path,
                    gboolean             *out_simulated,
                    GError              **error)
{
  g_autoptr(virConnect) conn = NULL;
  g_autoptr(virStoragePool) pool = NULL;
  g_autoptr(virStorageVol) vol = NULL;
  g_autoptr(virStream) stream = NULL;
  g_autofree char *xml = NULL;
  g_autofree char *vol_path = NULL;
  g_autofree guint8 *buf = NULL;
  gboolean simulated;
  gint64 done = 0;
  int fd = -1;

  g_return_val_if_fail (info != NULL, FALSE);

  if (!kd_hv_volume_name_check (volume, error) ||
      !kd_hv_check_format ("image", info->format, error))
    return FALSE;
  if (info->virtual_size <= 0 || info->file_size <= 0)
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "image '%s' has no size; probe it first", path);
      return FALSE;
    }

  conn = kd_hv_host_get_connection (host, error);
  if (conn == NULL)
    return FALSE;
  simulated = kd_hv_host_is_simulated (host);

  if (!simulated)
    {
      fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY, 0);
      if (fd < 0)
        {
          int saved = errno;
          g_set_error (error, KD_HV_ERROR,
                       saved == ENOENT ? KD_HV_ERROR_NOT_FOUND : KD_HV_ERROR_FAILED,
                       "cannot read image '%s': %s", path, g_strerror (saved));
          return FALSE;
        }
    }

  pool = kd_hv_open_pool (host, conn, TRUE, error);
  if (pool == NULL || !kd_hv_volume_check_absent (host, conn, pool, volume, error))
    goto fail_noVol;

  /* A real upload goes into a raw volume exactly as long as the file: the
   * bytes are the image itself, and libvirt's refresh then reads its
   * format from them. Creating the volume as qcow2 first would make
   * libvirt write a fresh qcow2 file (196 KiB for small sizes) that a
   * smaller upload only partly overwrites, leaving stale bytes past the
   * end of the image. A simulated host has no content to probe, so it
   * gets the format and virtual size the real volume would report. */
  if (simulated)
    xml = kd_hv_volume_xml (volume, info->virtual_size, info->format, NULL, NULL);
  else
    xml = kd_hv_volume_xml (volume, info->file_size, "raw", NULL, NULL);
  vol = virStorageVolCreateXML (pool, xml, 0);
  if (vol == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot create volume '%s'", volume);
      goto fail_noVol;
    }

  if (!simulated)
    {
      stream = virStreamNew (conn, 0);
      if (stream == NULL ||
          virStorageVolUpload (vol, stream, 0, (unsigned long long) info->file_size, 0) < 0)
        {
          kd_hv_set_error_from_libvirt (error, host, conn,
                                        "cannot upload image into volume '%s'", volume);
          goto fail;
        }

      buf = g_malloc (KD_HV_UPLOAD_CHUNK_BYTES);
      while (done < info->file_size)
        {
          gsize want = MIN ((gint64) KD_HV_UPLOAD_CHUNK_BYTES, info->file_size - done);
          ssize_t got;
          gsize sent = 0;

          if (g_cancellable_set_error_if_cancelled (cancellable, error))
            {
              g_prefix_error (error, "host '%s': upload of volume '%s': ",
                              kd_hv_host_get_name (host), volume);
              goto fail_stream;
            }
          got = read (fd, buf, want);
          if (got < 0 && errno == EINTR)
            continue;
          if (got <= 0)
            {
              int saved = errno;
              g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                           "cannot read image '%s': %s", path,
                           got == 0 ? "the file became shorter during the upload"
                                    : g_strerror (saved));
              goto fail_stream;
            }
          while (sent < (gsize) got)
            {
              int n = virStreamSend (stream, (const char *) buf + sent, got - sent);
              if (n < 0)
                {
                  kd_hv_set_error_from_libvirt (error, host, conn,
                                                "upload into volume '%s' failed", volume);
                  goto fail_stream;
                }
              sent += n;
            }
          done += got;
          if (progress != NULL)
            progress (done, info->file_size, user_data);
        }
      if (virStreamFinish (stream) < 0)
        {
          kd_hv_set_error_from_libvirt (error, host, conn,
                                        "cannot finish upload into volume '%s'", volume);
          goto fail;
        }
      close (fd);
      fd = -1;
      virStoragePoolRefresh (pool, 0);
      virResetLastError ();
    }

  vol_path = virStorageVolGetPath (vol);
  if (vol_path == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot read path of volume '%s'", volume);
      goto fail;
    }
  if (out_volume_path != NULL)
    *out_volume_path = g_steal_pointer (&vol_path);
  if (out_simulated != NULL)
    *out_simulated = simulated;
  return TRUE;

fail_stream:
  virStreamAbort (stream);
  virResetLastError ();
fail:
  virStorageVolDelete (vol, 0);
  virResetLastError ();
fail_noVol:
  if (fd >= 0)
    close (fd);
  return FALSE;
}

/**
 * kd_hv_volume_download:
 * @path: a new file to write the volume's bytes to (0600)
 * @out_simulated: (out): TRUE on a simulated host: nothing was written
 *
 * Streams volume @volume of kvmdesk's pool into @path
 * (virStorageVolDownload), calling @progress after each chunk; returns
 * the byte count in *@out_size. On failure @path is removed. Blocking.
 */
gboolean
kd_hv_volume_download (KdHvHost          *host,
                       const char        *volume,
                       const char        *path,
                       KdHvProgressFunc   progress,
                       gpointer           user_data,
                       GCancellable      *cancellable,
                       gint64            *out_size,
                       gboolean          *out_simulated,
                       GError           **error)
{
  g_autoptr(virConnect) conn = NULL;
  g_autoptr(virStoragePool) pool = NULL;
  g_autoptr(virStorageVol) vol = NULL;
  g_autoptr(virStream) stream = NULL;
  g_autofree char *buf = NULL;
  virStorageVolInfo info;
  gint64 done = 0;
  int fd;

  if (!kd_hv_volume_name_check (volume, error))
    return FALSE;
  conn = kd_hv_host_get_connection (host, error);
  if (conn == NULL)
    return FALSE;
  pool = kd_hv_open_pool (host, conn, TRUE, error);
  if (pool == NULL)
    return FALSE;
  vol = virStorageVolLookupByName (pool, volume);
  if (vol == NULL || virStorageVolGetInfo (vol, &info) < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot find volume '%s'", volume);
      return FALSE;
    }
  *out_simulated = kd_hv_host_is_simulated (host);
  *out_size = 0;
  if (*out_simulated)
    return TRUE;
  fd = g_open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0)
    {
      int saved = errno;
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED, "cannot create '%s': %s", path,
                   g_strerror (saved));
      return FALSE;
    }
  stream = virStreamNew (conn, 0);
  if (stream == NULL || virStorageVolDownload (vol, stream, 0, 0, 0) < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot download volume '%s'", volume);
      goto fail;
    }
  buf = g_malloc (KD_HV_UPLOAD_CHUNK_BYTES);
  for (;;)
    {
      int n;
      gsize written = 0;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        {
          virStreamAbort (stream);
          goto fail;
        }
      n = virStreamRecv (stream, buf, KD_HV_UPLOAD_CHUNK_BYTES);
      if (n < 0)
        {
          kd_hv_set_error_from_libvirt (error, host, conn, "download of volume '%s' failed", volume);
          virStreamAbort (stream);
          goto fail;
        }
      if (n == 0)
        break;
      while (written < (gsize) n)
        {
          ssize_t w = write (fd, buf + written, n - written);
          if (w < 0 && errno == EINTR)
            continue;
          if (w < 0)
            {
              int saved = errno;
              g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED, "cannot write '%s': %s", path,
                           g_strerror (saved));
              virStreamAbort (stream);
              goto fail;
            }
          written += w;
        }
      done += n;
      if (progress != NULL)
        progress (done, (gint64) info.allocation, user_data);
    }
  if (virStreamFinish (stream) < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot finish the download of '%s'", volume);
      goto fail;
    }
  if (close (fd) < 0)
    {
      fd = -1;
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED, "cannot write '%s'", path);
      goto fail;
    }
  *out_size = done;
  return TRUE;

fail:
  virResetLastError ();
  if (fd >= 0)
    close (fd);
  g_unlink (path);
  return FALSE;
}

/* A transfer is a download then an upload of the same bytes: progress
 * runs over twice the volume's size. */
typedef struct {
  KdHvProgressFunc func;
  gpointer         data;
  gint64           base;    /* bytes already counted (the download) */
  gint64           total;   /* the volume's size, once known */
} KdTransferProgress;

static void
kd_transfer_progress (gint64 done, gint64 total, gpointer user_data)
{
  KdTransferProgress *t = user_data;
  gint64 size = t->total > 0 ? t->total : total;

  t->func (t->base + done, 2 * MAX (size, 1), t->data);
}

/**
 * kd_hv_volume_transfer:
 * @info: format and virtual size of the volume; its file size is set from
 *   what was downloaded
 *
 * Copies volume @volume from @src to a volume of the same name on @dst
 * through the spool file @spool (removed afterwards): a simulated source
 * gives a simulated copy. Blocking.
 */
gboolean
kd_hv_volume_transfer (KdHvHost          *src,
                       KdHvHost          *dst,
                       const char        *volume,
                       const char        *spool,
                       KdHvImageInfo     *info,
                       KdHvProgressFunc   progress,
                       gpointer           user_data,
                       GCancellable      *cancellable,
                       char             **out_path,
                       gboolean          *out_simulated,
                       GError           **error)
{
  KdTransferProgress phase = { progress, user_data, 0, 0 };
  gint64 size = 0;
  gboolean simulated_source = FALSE, ok;

  if (!kd_hv_volume_download (src, volume, spool, progress ? kd_transfer_progress : NULL, &phase,
                              cancellable, &size, &simulated_source, error))
    return FALSE;
  info->file_size = simulated_source ? MAX (info->virtual_size, 1) : size;
  phase.base = size;
  phase.total = size;
  ok = kd_hv_image_upload (dst, volume, spool, info, progress ? kd_transfer_progress : NULL, &phase,
                           cancellable, out_path, out_simulated, error);
  g_unlink (spool);
  return ok;
}

/**
 * kd_hv_overlay_create:
 *
 * Creates a qcow2 volume whose backing store is @backing_path: a linked
 * clone made by libvirt (qemu-img create -b), no copy. Blocking.
 */
gboolean
kd_hv_overlay_create (KdHvHost    *host,
                      const char  *volume,
                      const char  *backing_path,
                      const char  *backing_format,
                      gint64       capacity,
                      char       **out_volume_path,
                      GError     **error)
{
  g_autoptr(virConnect) conn = NULL;
  g_autoptr(virStoragePool) pool = NULL;
  g_autoptr(virStorageVol) vol = NULL;
  g_autofree char *xml = NULL;
  g_autofree char *vol_path = NULL;

  if (!kd_hv_volume_name_check (volume, error) ||
      !kd_hv_check_format ("backing image", backing_format, error))
    return FALSE;
  if (backing_path == NULL || !g_path_is_absolute (backing_path))
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "backing path '%s' of overlay '%s' is not absolute",
                   backing_path != NULL ? backing_path : "", volume);
      return FALSE;
    }
  if (capacity <= 0)
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "capacity of overlay '%s' must be positive, not %" G_GINT64_FORMAT,
                   volume, capacity);
      return FALSE;
    }

  conn = kd_hv_host_get_connection (host, error);
  if (conn == NULL)
    return FALSE;
  pool = kd_hv_open_pool (host, conn, FALSE, error);
  if (pool == NULL || !kd_hv_volume_check_absent (host, conn, pool, volume, error))
    return FALSE;

  xml = kd_hv_volume_xml (volume, capacity, "qcow2", backing_path, backing_format);
  vol = virStorageVolCreateXML (pool, xml, 0);
  if (vol == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn,
                                    "cannot create overlay '%s' on '%s'", volume, backing_path);
      return FALSE;
    }
  vol_path = virStorageVolGetPath (vol);
  if (vol_path == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot read path of volume '%s'", volume);
      virStorageVolDelete (vol, 0);
      virResetLastError ();
      return FALSE;
    }
  if (out_volume_path != NULL)
    *out_volume_path = g_steal_pointer (&vol_path);
  return TRUE;
}

/**
 * kd_hv_volume_clone:
 * Copies volume @source of kvmdesk's pool into a new volume @volume of the
 * same format and size (virStorageVolCreateXMLFrom: a full copy, made by
 * libvirt on the host). Used for an image's writable edit copy.
 */
gboolean
kd_hv_volume_clone (KdHvHost    *host,
                    const char  *source,
                    const char  *volume,
                    const char  *format,
                    gint64       capacity,
                    char       **out_volume_path,
                    GError     **error)
{
  g_autoptr(virConnect) conn = NULL;
  g_autoptr(virStoragePool) pool = NULL;
  g_autoptr(virStorageVol) src = NULL;
  g_autoptr(virStorageVol) vol = NULL;
  g_autofree char *xml = NULL;
  g_autofree char *vol_path = NULL;

  if (!kd_hv_volume_name_check (volume, error) ||
      !kd_hv_check_format ("image copy", format, error))
    return FALSE;
  conn = kd_hv_host_get_connection (host, error);
  if (conn == NULL)
    return FALSE;
  pool = kd_hv_open_pool (host, conn, FALSE, error);
  if (pool == NULL || !kd_hv_volume_check_absent (host, conn, pool, volume, error))
    return FALSE;
  src = virStorageVolLookupByName (pool, source);
  if (src == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot find volume '%s'", source);
      return FALSE;
    }
  xml = kd_hv_volume_xml (volume, capacity, format, NULL, NULL);
  vol = virStorageVolCreateXMLFrom (pool, xml, src, 0);
  if (vol == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot copy volume '%s' to '%s'",
                                    source, volume);
      return FALSE;
    }
  vol_path = virStorageVolGetPath (vol);
  if (vol_path == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot read path of volume '%s'", volume);
      virStorageVolDelete (vol, 0);
      virResetLastError ();
      return FALSE;
    }
  if (out_volume_path != NULL)
    *out_volume_path = g_steal_pointer (&vol_path);
  return TRUE;
}

/**
 * kd_hv_volume_delete:
 *
 * Deletes @volume from kvmdesk's pool (refreshing first so a file that
 * appeared behind libvirt's back is seen). Blocking.
 */
gboolean
kd_hv_volume_delete (KdHvHost    *host,
                     const char  *volume,
                     gboolean     missing_ok,
                     GError     **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virStoragePool) pool = NULL;
  g_autoptr(virStorageVol) vol = NULL;
  g_autoptr(GError) local = NULL;

  if (conn == NULL)
    return FALSE;
  pool = kd_hv_open_pool (host, conn, TRUE, &local);
  if (pool == NULL)
    {
      if (missing_ok && g_error_matches (local, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND))
        return TRUE;
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  vol = virStorageVolLookupByName (pool, volume);
  if (vol == NULL)
    {
      kd_hv_set_error_from_libvirt (&local, host, conn, "cannot find volume '%s'", volume);
      if (missing_ok && g_error_matches (local, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND))
        return TRUE;
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (virStorageVolDelete (vol, 0) < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot delete volume '%s'", volume);
      return FALSE;
    }
  return TRUE;
}

static KdHvVolume *
kd_hv_volume_from_handle (KdHvHost       *host,
                          virConnectPtr   conn,
                          virStorageVolPtr vol,
                          GError        **error)
{
  g_autoptr(KdHvVolume) ret = g_new0 (KdHvVolume, 1);
  g_autofree char *xml = NULL;
  g_autoptr(xmlDoc) doc = NULL;
  virStorageVolInfo info;

  ret->name = g_strdup (virStorageVolGetName (vol));
  xml = virStorageVolGetXMLDesc (vol, 0);
  if (xml == NULL || virStorageVolGetInfo (vol, &info) < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot describe volume '%s'", ret->name);
      return NULL;
    }
  doc = kd_hv_xml_parse (xml, "volume XML", error);
  if (doc == NULL)
    {
      g_prefix_error (error, "host '%s': volume '%s': ", kd_hv_host_get_name (host), ret->name);
      return NULL;
    }
  ret->path = kd_hv_xml_string (doc, "string(/volume/target/path)");
  ret->format = kd_hv_xml_string (doc, "string(/volume/target/format/@type)");
  ret->backing_path = kd_hv_xml_string (doc, "string(/volume/backingStore/path)");
  if (ret->format != NULL && *ret->format == '\0')
    g_clear_pointer (&ret->format, g_free);
  if (ret->backing_path != NULL && *ret->backing_path == '\0')
    g_clear_pointer (&ret->backing_path, g_free);
  ret->capacity = (gint64) info.capacity;
  ret->allocation = (gint64) info.allocation;
  return g_steal_pointer (&ret);
}

/**
 * kd_hv_volume_lookup:
 *
 * Returns: (transfer full): @volume of kvmdesk's pool after a refresh,
 * or %NULL with %KD_HV_ERROR_NOT_FOUND.
 */
KdHvVolume *
kd_hv_volume_lookup (KdHvHost    *host,
                     const char  *volume,
                     GError     **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virStoragePool) pool = NULL;
  g_autoptr(virStorageVol) vol = NULL;

  if (conn == NULL)
    return NULL;
  pool = kd_hv_open_pool (host, conn, TRUE, error);
  if (pool == NULL)
    return NULL;
  vol = virStorageVolLookupByName (pool, volume);
  if (vol == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot find volume '%s'", volume);
      return NULL;
    }
  return kd_hv_volume_from_handle (host, conn, vol, error);
}

/**
 * kd_hv_volume_list:
 *
 * Returns: (transfer full) (element-type KdHvVolume): every volume of
 * kvmdesk's pool after a refresh.
 */
GPtrArray *
kd_hv_volume_list (KdHvHost  *host,
                   GError   **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virStoragePool) pool = NULL;
  g_autoptr(GPtrArray) ret = NULL;
  virStorageVolPtr *vols = NULL;
  int n;

  if (conn == NULL)
    return NULL;
  pool = kd_hv_open_pool (host, conn, TRUE, error);
  if (pool == NULL)
    return NULL;
  n = virStoragePoolListAllVolumes (pool, &vols, 0);
  if (n < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot list volumes of storage pool '%s'",
                                    kd_hv_host_get_pool_name (host));
      return NULL;
    }
  ret = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_hv_volume_free);
  for (int i = 0; i < n; i++)
    {
      g_autoptr(GError) local = NULL;
      KdHvVolume *v = kd_hv_volume_from_handle (host, conn, vols[i], &local);

      /* A volume deleted between listing and describing is simply gone. */
      if (v != NULL)
        g_ptr_array_add (ret, v);
      else if (!g_error_matches (local, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          for (int j = i; j < n; j++)
            virStorageVolFree (vols[j]);
          free (vols);
          return NULL;
        }
      virStorageVolFree (vols[i]);
    }
  free (vols);
  return g_steal_pointer (&ret);
}
