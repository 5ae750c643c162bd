/*
 * kd-hv-migrate.c: moving a domain between two hosts.
 *
 * A live migration is driven by the broker, which holds a connection to
 * both hosts (virDomainMigrate3, not peer-to-peer: the hosts need no
 * libvirt credentials for each other, only QEMU's migration and NBD
 * ports between them). The desktop's disk is a qcow2 overlay on an image
 * that is already on the destination: the caller creates an empty overlay
 * of the same name there first, and libvirt copies only the top layer
 * (VIR_MIGRATE_NON_SHARED_INC: a drive-mirror of the overlay over NBD,
 * then memory). Disk paths may differ between the hosts' pools, so the
 * definition sent to the destination has its disk sources rewritten.
 */
#include "kd-hv-priv.h"

#include <string.h>

/**
 * kd_hv_domain_xml_move_disks:
 * @xml: a domain definition
 * @paths: (element-type utf8 utf8): old disk source file -> new one
 * @out_targets: (out) (optional) (transfer full): NULL-terminated target
 *   names ("vda") of the disks whose source was rewritten
 *
 * Pure: rewrites the `<source file>` of every file disk found in @paths;
 * other disks are kept as they are.
 *
 * Returns: (transfer full): the new XML, or %NULL when @xml does not
 * parse or a disk of @paths is not in it.
 */
char *
kd_hv_domain_xml_move_disks (const char   *xml,
                             GHashTable   *paths,
                             char       ***out_targets,
                             GError      **error)
{
  g_autoptr(xmlDoc) doc = kd_hv_xml_parse (xml, "domain XML", error);
  g_autoptr(xmlXPathContext) ctx = NULL;
  g_autoptr(xmlXPathObject) obj = NULL;
  g_autoptr(GPtrArray) targets = g_ptr_array_new_with_free_func (g_free);
  char *ret;

  if (doc == NULL)
    return NULL;
  ctx = xmlXPathNewContext (doc);
  obj = ctx ? xmlXPathEvalExpression ((const xmlChar *) "/domain/devices/disk[@type='file']/source[@file]", ctx)
            : NULL;
  for (int i = 0; obj != NULL && obj->nodesetval != NULL && i < obj->nodesetval->nodeNr; i++)
    {
      xmlNode *source = obj->nodesetval->nodeTab[i];
      g_autofree char *file = (char *) xmlGetProp (source, (const xmlChar *) "file");
      const char *to = g_hash_table_lookup (paths, file);

      if (to == NULL)
        continue;
      xmlSetProp (source, (const xmlChar *) "file", (const xmlChar *) to);
      for (xmlNode *n = source->parent->children; n != NULL; n = n->next)
        if (n->type == XML_ELEMENT_NODE && xmlStrEqual (n->name, (const xmlChar *) "target"))
          {
            xmlChar *dev = xmlGetProp (n, (const xmlChar *) "dev");
            if (dev != NULL)
              g_ptr_array_add (targets, g_strdup ((const char *) dev));
            xmlFree (dev);
          }
    }
  if (targets->len < g_hash_table_size (paths))
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND,
                   "the domain has %u of the %u disks to move", targets->len, g_hash_table_size (paths));
      return NULL;
    }
  ret = kd_hv_xml_dump (doc, error);
  if (ret != NULL && out_targets != NULL)
    {
      g_ptr_array_add (targets, NULL);
      *out_targets = (char **) g_ptr_array_free (g_steal_pointer (&targets), FALSE);
    }
  return ret;
}

/**
 * kd_hv_domain_xml_set_pci_hostdevs:
 * @addresses: NULL-terminated PCI addresses ("0000:01:00.0") of the GPU
 *   functions the domain gets on its new host
 *
 * Pure: @xml with every PCI `<hostdev>` replaced by ones for @addresses
 * (a GPU desktop moved to another host gets that host's GPU).
 *
 * Returns: (transfer full): the new XML, or %NULL when @xml does not parse.
 */
char *
kd_hv_domain_xml_set_pci_hostdevs (const char         *xml,
                                   const char *const  *addresses,
                                   GError            **error)
{
  g_autoptr(xmlDoc) doc = kd_hv_xml_parse (xml, "domain XML", error);
  g_autoptr(xmlXPathContext) ctx = NULL;
  g_autoptr(xmlXPathObject) devices = NULL, old = NULL;

  if (doc == NULL)
    return NULL;
  ctx = xmlXPathNewContext (doc);
  devices = ctx ? xmlXPathEvalExpression ((const xmlChar *) "/domain/devices", ctx) : NULL;
  if (devices == NULL || devices->nodesetval == NULL || devices->nodesetval->nodeNr != 1)
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED, "the domain XML has no <devices>");
      return NULL;
    }
  old = xmlXPathEvalExpression ((const xmlChar *) "/domain/devices/hostdev[@mode='subsystem' and @type='pci']",
                                ctx);
  for (int i = 0; old != NULL && old->nodesetval != NULL && i < old->nodesetval->nodeNr; i++)
    {
      xmlNode *n = old->nodesetval->nodeTab[i];
      xmlUnlinkNode (n);
      xmlFreeNode (n);
      old->nodesetval->nodeTab[i] = NULL;
    }
  kd_hv_xml_add_pci_hostdevs (devices->nodesetval->nodeTab[0], addresses);
  return kd_hv_xml_dump (doc, error);
}

/* ---- progress, read beside the blocking migrate call ---- */

typedef struct {
  virDomainPtr      dom;
  KdHvProgressFunc  progress;
  gpointer          user_data;
  GMutex            lock;
  GCond             cond;
  gboolean          stop;
} KdMigratePoll;

static gpointer
kd_migrate_poll_thread (gpointer data)
{
  KdMigratePoll *p = data;
  gint64 last_done = -1;

  g_mutex_lock (&p->lock);
  while (!p->stop)
    {
      gint64 until = g_get_monotonic_time () + KD_HV_MIGRATE_POLL_MS * G_TIME_SPAN_MILLISECOND;
      virTypedParameterPtr params = NULL;
      int n = 0, type = 0;
      unsigned long long total = 0, processed = 0;

      if (g_cond_wait_until (&p->cond, &p->lock, until) || p->stop)
        continue;   /* woken early (stop) or spurious: the loop decides */
      g_mutex_unlock (&p->lock);
      if (virDomainGetJobStats (p->dom, &type, &params, &n, 0) == 0)
        {
          if (type == VIR_DOMAIN_JOB_UNBOUNDED &&
              virTypedParamsGetULLong (params, n, VIR_DOMAIN_JOB_DATA_TOTAL, &total) > 0 &&
              virTypedParamsGetULLong (params, n, VIR_DOMAIN_JOB_DATA_PROCESSED, &processed) > 0 &&
              total > 0 && (gint64) processed != last_done)
            {
              last_done = processed;
              p->progress (MIN (processed, total), total, p->user_data);
            }
          virTypedParamsFree (params, n);
        }
      g_mutex_lock (&p->lock);
    }
  g_mutex_unlock (&p->lock);
  return NULL;
}

static void
kd_add_param (virTypedParameterPtr *params, int *n, int *max, const char *name, const char *value,
              gboolean *ok)
{
  if (value != NULL && virTypedParamsAddString (params, n, max, name, value) < 0)
    *ok = FALSE;
}

/**
 * kd_hv_domain_migrate:
 * @src: the host the domain runs on
 * @dst: the host it moves to; the overlays named in @paths (new paths)
 *   already exist there, empty, on the same backing image
 * @name: the domain
 * @paths: (element-type utf8 utf8): disk file on @src -> file on @dst
 * @migrate_uri: (nullable): where @src's QEMU reaches @dst's
 *   ("tcp://127.0.0.1"); %NULL lets libvirt use @dst's hostname
 * @listen_address: (nullable): where @dst's QEMU listens for it
 * @progress: (nullable): called from a helper thread with bytes done/total
 *   (memory and disk) about every second
 *
 * Blocking: a live migration with the overlay copied; on success the
 * domain is persistent on @dst and gone from @src (its overlay there is
 * left to the caller). On failure the domain keeps running on @src.
 *
 * Returns: %TRUE on success.
 */
gboolean
kd_hv_domain_migrate (KdHvHost          *src,
                      KdHvHost          *dst,
                      const char        *name,
                      GHashTable        *paths,
                      const char        *migrate_uri,
                      const char        *listen_address,
                      KdHvProgressFunc   progress,
                      gpointer           user_data,
                      GError           **error)
{
  g_autoptr(virConnect) sconn = kd_hv_host_get_connection (src, error);
  g_autoptr(virConnect) dconn = NULL;
  g_autoptr(virDomain) dom = NULL;
  g_autofree char *live = NULL, *persistent = NULL;
  g_autofree char *live_moved = NULL, *persistent_moved = NULL;
  g_auto(GStrv) targets = NULL;
  virTypedParameterPtr params = NULL;
  int n = 0, max = 0;
  gboolean ok = TRUE;
  virDomainPtr moved;
  KdMigratePoll poll = { 0 };
  GThread *poller = NULL;
  unsigned int flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE |
                       VIR_MIGRATE_NON_SHARED_INC | VIR_MIGRATE_ABORT_ON_ERROR |
                       VIR_MIGRATE_AUTO_CONVERGE;

  if (sconn == NULL || (dconn = kd_hv_host_get_connection (dst, error)) == NULL)
    return FALSE;
  if (kd_hv_host_is_simulated (src) || kd_hv_host_is_simulated (dst))
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_UNSUPPORTED,
                   "live migration needs real hosts (host '%s' or '%s' is simulated)",
                   kd_hv_host_get_name (src), kd_hv_host_get_name (dst));
      return FALSE;
    }
  dom = kd_hv_domain_lookup (src, sconn, name, error);
  if (dom == NULL)
    return FALSE;
  live = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_MIGRATABLE);
  persistent = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_INACTIVE |
                                         VIR_DOMAIN_XML_MIGRATABLE);
  if (live == NULL || persistent == NULL)
    {
      kd_hv_set_error_from_libvirt (error, src, sconn, "cannot read the definition of domain '%s'", name);
      return FALSE;
    }
  live_moved = kd_hv_domain_xml_move_disks (live, paths, &targets, error);
  persistent_moved = live_moved ? kd_hv_domain_xml_move_disks (persistent, paths, NULL, error) : NULL;
  if (persistent_moved == NULL)
    {
      g_prefix_error (error, "domain '%s': ", name);
      return FALSE;
    }
  kd_add_param (&params, &n, &max, VIR_MIGRATE_PARAM_DEST_XML, live_moved, &ok);
  kd_add_param (&params, &n, &max, VIR_MIGRATE_PARAM_PERSIST_XML, persistent_moved, &ok);
  kd_add_param (&params, &n, &max, VIR_MIGRATE_PARAM_URI, migrate_uri, &ok);
  kd_add_param (&params, &n, &max, VIR_MIGRATE_PARAM_LISTEN_ADDRESS, listen_address, &ok);
  for (guint i = 0; targets[i] != NULL; i++)
    kd_add_param (&params, &n, &max, VIR_MIGRATE_PARAM_MIGRATE_DISKS, targets[i], &ok);
  if (!ok)
    {
      virTypedParamsFree (params, n);
      kd_hv_set_error_from_libvirt (error, src, sconn, "cannot prepare the migration of domain '%s'", name);
      return FALSE;
    }

  if (progress != NULL)
    {
      poll.dom = dom;
      poll.progress = progress;
      poll.user_data = user_data;
      g_mutex_init (&poll.lock);
      g_cond_init (&poll.cond);
      poller = g_thread_new ("kd-migrate-poll", kd_migrate_poll_thread, &poll);
    }
  moved = virDomainMigrate3 (dom, dconn, params, n, flags);
  if (moved == NULL)
    kd_hv_set_error_from_libvirt (error, src, sconn, "cannot migrate domain '%s' to host '%s'", name,
                                  kd_hv_host_get_name (dst));
  if (poller != NULL)
    {
      g_mutex_lock (&poll.lock);
      poll.stop = TRUE;
      g_cond_signal (&poll.cond);
      g_mutex_unlock (&poll.lock);
      g_thread_join (poller);
      g_mutex_clear (&poll.lock);
      g_cond_clear (&poll.cond);
    }
  virTypedParamsFree (params, n);
  if (moved == NULL)
    return FALSE;
  virDomainFree (moved);
  return TRUE;
}
