/*
 * kd-hv-domain.c: desktops as libvirt domains, by name: define, start,
 * shutdown with a forced fallback, power off, delete, state, and the
 * listing of every domain that carries kvmdesk metadata (what the
 * reconciler compares with the database). Blocking calls for worker
 * threads; errors come back as GErrors with the host and domain named.
 */
#include "hv/kd-hv-priv.h"

#include "common/kd-random.h"

#include <libxml/xpath.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

void
kd_hv_domain_info_free (KdHvDomainInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->name);
  g_free (info->uuid);
  g_free (info->instance_id);
  g_free (info->desktop_id);
  g_free (info->desktop_name);
  g_clear_pointer (&info->disk_paths, g_ptr_array_unref);
  g_free (info);
}

static KdHvDomainState
kd_hv_state_from_libvirt (int state)
{
  switch (state)
    {
    case VIR_DOMAIN_RUNNING:     return KD_HV_DOMAIN_RUNNING;
    case VIR_DOMAIN_BLOCKED:     return KD_HV_DOMAIN_RUNNING;
    case VIR_DOMAIN_PAUSED:      return KD_HV_DOMAIN_PAUSED;
    case VIR_DOMAIN_SHUTDOWN:    return KD_HV_DOMAIN_SHUTDOWN;
    case VIR_DOMAIN_SHUTOFF:     return KD_HV_DOMAIN_SHUTOFF;
    case VIR_DOMAIN_CRASHED:     return KD_HV_DOMAIN_CRASHED;
    case VIR_DOMAIN_PMSUSPENDED: return KD_HV_DOMAIN_PAUSED;
    default:                     return KD_HV_DOMAIN_OTHER;
    }
}

virDomainPtr
kd_hv_domain_lookup (KdHvHost      *host,
                     virConnectPtr  conn,
                     const char    *name,
                     GError       **error)
{
  virDomainPtr dom;

  if (name == NULL || *name == '\0')
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED, "a domain name is required");
      return NULL;
    }
  dom = virDomainLookupByName (conn, name);
  if (dom == NULL)
    kd_hv_set_error_from_libvirt (error, host, conn, "cannot find domain '%s'", name);
  return dom;
}

/* Returns the libvirt state, or -1 with @error set. */
static int
kd_hv_domain_read_state (KdHvHost      *host,
                         virConnectPtr  conn,
                         virDomainPtr   dom,
                         GError       **error)
{
  int state = 0, reason = 0;

  if (virDomainGetState (dom, &state, &reason, 0) < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot read state of domain '%s'",
                                    virDomainGetName (dom));
      return -1;
    }
  return state;
}

/**
 * kd_hv_domain_define:
 * @xml: domain XML, as built by kd_hv_domain_xml_build()
 * @out_uuid: (out) (optional): libvirt's UUID string
 *
 * Defines a persistent domain, validated against libvirt's schema where
 * the driver supports it. A domain of that name already there is
 * %KD_HV_ERROR_EXISTS (never a silent redefinition).
 */
gboolean
kd_hv_domain_define (KdHvHost    *host,
                     const char  *xml,
                     char       **out_uuid,
                     GError     **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virDomain) existing = NULL;
  g_autoptr(virDomain) dom = NULL;
  g_autoptr(xmlDoc) doc = NULL;
  g_autofree char *name = NULL;
  char uuid[VIR_UUID_STRING_BUFLEN];

  if (conn == NULL)
    return FALSE;
  doc = kd_hv_xml_parse (xml, "domain XML", error);
  if (doc == NULL)
    return FALSE;
  name = kd_hv_xml_string (doc, "string(/domain/name)");
  if (name == NULL || *name == '\0')
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED, "domain XML has no name");
      return FALSE;
    }

  existing = virDomainLookupByName (conn, name);
  if (existing != NULL)
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_EXISTS,
                   "host '%s': domain '%s' already exists", kd_hv_host_get_name (host), name);
      return FALSE;
    }
  virResetLastError ();

  dom = virDomainDefineXMLFlags (conn, xml, VIR_DOMAIN_DEFINE_VALIDATE);
  if (dom == NULL)
    {
      virErrorPtr lv = virGetLastError ();
      if (lv != NULL && (lv->code == VIR_ERR_INVALID_ARG || lv->code == VIR_ERR_NO_SUPPORT))
        {
          virResetLastError ();
          dom = virDomainDefineXMLFlags (conn, xml, 0);
        }
    }
  if (dom == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot define domain '%s'", name);
      return FALSE;
    }
  if (out_uuid != NULL)
    {
      if (virDomainGetUUIDString (dom, uuid) < 0)
        {
          kd_hv_set_error_from_libvirt (error, host, conn, "cannot read UUID of domain '%s'", name);
          return FALSE;
        }
      *out_uuid = g_strdup (uuid);
    }
  return TRUE;
}

/* Domains defined by an older kvmdesk have displays without a password:
 * they get a secret one in their persistent definition before they
 * start, so that one-time passwords work and the port alone is not
 * enough. */
static gboolean
kd_hv_domain_ensure_display_password (KdHvHost      *host,
                                      virConnectPtr  conn,
                                      virDomainPtr   dom,
                                      const char    *name,
                                      GError       **error)
{
  g_autofree char *xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
  g_autoptr(xmlDoc) doc = NULL;
  g_autoptr(xmlXPathContext) ctx = NULL;
  g_autoptr(xmlXPathObject) obj = NULL;
  g_autofree char *secret = NULL;
  xmlChar *out = NULL;
  int out_len = 0, changed = 0;
  virDomainPtr redefined;

  if (xml == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot read the definition of domain '%s'", name);
      return FALSE;
    }
  doc = kd_hv_xml_parse (xml, "domain XML", error);
  if (doc == NULL || (ctx = xmlXPathNewContext (doc)) == NULL)
    return FALSE;
  obj = xmlXPathEvalExpression ((const xmlChar *) "/domain/devices/graphics[(@type='vnc' or @type='spice')"
                                " and not(@passwd)]", ctx);
  if (obj == NULL || obj->nodesetval == NULL || obj->nodesetval->nodeNr == 0)
    return TRUE;
  secret = kd_random_password (8);
  for (int i = 0; i < obj->nodesetval->nodeNr; i++, changed++)
    xmlSetProp (obj->nodesetval->nodeTab[i], (const xmlChar *) "passwd", (const xmlChar *) secret);
  xmlDocDumpMemory (doc, &out, &out_len);
  redefined = out != NULL ? virDomainDefineXML (conn, (const char *) out) : NULL;
  xmlFree (out);
  if (redefined == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn,
                                    "cannot give the display of domain '%s' a password", name);
      return FALSE;
    }
  virDomainFree (redefined);
  return changed > 0;
}

/**
 * kd_hv_domain_get_definition:
 * Returns: (transfer full): the persistent definition of the domain, with
 * its secrets (to define it on another host), or %NULL. Blocking.
 */
char *
kd_hv_domain_get_definition (KdHvHost    *host,
                             const char  *name,
                             GError     **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virDomain) dom = NULL;
  char *xml;

  if (conn == NULL)
    return NULL;
  dom = kd_hv_domain_lookup (host, conn, name, error);
  if (dom == NULL)
    return NULL;
  xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
  if (xml == NULL)
    kd_hv_set_error_from_libvirt (error, host, conn, "cannot read the definition of domain '%s'", name);
  return xml;
}

gboolean
kd_hv_domain_start (KdHvHost    *host,
                    const char  *name,
                    GError     **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virDomain) dom = NULL;

  if (conn == NULL)
    return FALSE;
  dom = kd_hv_domain_lookup (host, conn, name, error);
  if (dom == NULL)
    {
      g_prefix_error (error, "cannot start domain '%s': ", name);
      return FALSE;
    }
  if (!kd_hv_domain_ensure_display_password (host, conn, dom, name, error) || virDomainCreate (dom) < 0)
    {
      if (error == NULL || *error == NULL)
        kd_hv_set_error_from_libvirt (error, host, conn, "cannot start domain '%s'", name);
      return FALSE;
    }
  return TRUE;
}

/* Destroy, treating "domain is not running" as done. */
static gboolean
kd_hv_domain_destroy (KdHvHost      *host,
                      virConnectPtr  conn,
                      virDomainPtr   dom,
                      GError       **error)
{
  if (virDomainDestroy (dom) == 0)
    return TRUE;
  {
    virErrorPtr lv = virGetLastError ();
    if (lv != NULL && lv->code == VIR_ERR_OPERATION_INVALID &&
        virDomainIsActive (dom) == 0)
      {
        virResetLastError ();
        return TRUE;
      }
  }
  kd_hv_set_error_from_libvirt (error, host, conn, "cannot power off domain '%s'",
                                virDomainGetName (dom));
  return FALSE;
}

/**
 * kd_hv_domain_shutdown:
 * @timeout_sec: how long the guest may take to power off
 * @out_forced: (out) (optional): TRUE when it had to be destroyed
 *
 * Asks the guest to shut down (ACPI), polls every 250 ms, and powers the
 * domain off when @timeout_sec passes or @cancellable is cancelled.
 * Already shut off is success.
 */
gboolean
kd_hv_domain_shutdown (KdHvHost     *host,
                       const char   *name,
                       gint64        timeout_sec,
                       gboolean     *out_forced,
                       GCancellable *cancellable,
                       GError      **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virDomain) dom = NULL;
  gint64 deadline;
  int state;

  if (out_forced != NULL)
    *out_forced = FALSE;
  if (conn == NULL)
    return FALSE;
  dom = kd_hv_domain_lookup (host, conn, name, error);
  if (dom == NULL)
    return FALSE;

  state = kd_hv_domain_read_state (host, conn, dom, error);
  if (state < 0)
    return FALSE;
  if (state == VIR_DOMAIN_SHUTOFF)
    return TRUE;

  if (virDomainShutdown (dom) < 0)
    {
      virErrorPtr lv = virGetLastError ();
      if (lv != NULL && lv->code == VIR_ERR_OPERATION_INVALID &&
          virDomainIsActive (dom) == 0)
        {
          virResetLastError ();
          return TRUE;
        }
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot shut down domain '%s'", name);
      return FALSE;
    }

  deadline = g_get_monotonic_time () + MAX (timeout_sec, 0) * G_USEC_PER_SEC;
  for (;;)
    {
      state = kd_hv_domain_read_state (host, conn, dom, error);
      if (state < 0)
        return FALSE;
      if (state == VIR_DOMAIN_SHUTOFF)
        return TRUE;
      if (g_get_monotonic_time () >= deadline || g_cancellable_is_cancelled (cancellable))
        break;
      g_usleep (KD_HV_SHUTDOWN_POLL_MS * 1000);
    }

  if (!kd_hv_domain_destroy (host, conn, dom, error))
    return FALSE;
  if (out_forced != NULL)
    *out_forced = TRUE;
  return TRUE;
}

gboolean
kd_hv_domain_poweroff (KdHvHost    *host,
                       const char  *name,
                       GError     **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virDomain) dom = NULL;
  int active;

  if (conn == NULL)
    return FALSE;
  dom = kd_hv_domain_lookup (host, conn, name, error);
  if (dom == NULL)
    return FALSE;
  active = virDomainIsActive (dom);
  if (active < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot read state of domain '%s'", name);
      return FALSE;
    }
  if (active == 0)
    return TRUE;
  return kd_hv_domain_destroy (host, conn, dom, error);
}

/**
 * kd_hv_domain_reboot:
 * Asks the guest to reboot (ACPI); a guest that cannot be asked (no ACPI
 * support in the driver) gets a hard reset instead. A domain that is not
 * running is an error.
 */
gboolean
kd_hv_domain_reboot (KdHvHost    *host,
                     const char  *name,
                     GError     **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virDomain) dom = NULL;

  if (conn == NULL)
    return FALSE;
  dom = kd_hv_domain_lookup (host, conn, name, error);
  if (dom == NULL)
    return FALSE;
  if (virDomainIsActive (dom) != 1)
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "host '%s': domain '%s' is not running", kd_hv_host_get_name (host), name);
      return FALSE;
    }
  if (virDomainReboot (dom, VIR_DOMAIN_REBOOT_ACPI_POWER_BTN) == 0)
    return TRUE;
  if (virDomainReset (dom, 0) == 0)
    return TRUE;
  kd_hv_set_error_from_libvirt (error, host, conn, "cannot reboot domain '%s'", name);
  return FALSE;
}

/**
 * kd_hv_domain_open_graphics:
 * Returns: a socket already speaking the domain's display protocol (RFB
 * for VNC) from virDomainOpenGraphicsFD with VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH:
 * no TCP port, no password. Only for hosts whose libvirtd runs on this
 * machine (the fd is passed over the local socket). CLOEXEC and
 * non-blocking; the caller owns it. -1 with an error otherwise.
 */
int
kd_hv_domain_open_graphics (KdHvHost    *host,
                            const char  *name,
                            GError     **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virDomain) dom = NULL;
  int fd, flags;

  if (conn == NULL)
    return -1;
  dom = kd_hv_domain_lookup (host, conn, name, error);
  if (dom == NULL)
    return -1;
  fd = virDomainOpenGraphicsFD (dom, 0, VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH);
  if (fd < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot open the display of domain '%s'", name);
      return -1;
    }
  flags = fcntl (fd, F_GETFL);
  if (flags < 0 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl (fd, F_SETFD, FD_CLOEXEC) < 0)
    {
      int saved = errno;
      close (fd);
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "host '%s': cannot set up the display socket of domain '%s': %s",
                   kd_hv_host_get_name (host), name, g_strerror (saved));
      return -1;
    }
  return fd;
}

/**
 * kd_hv_domain_delete:
 * @missing_ok: a missing domain is success
 *
 * Powers the domain off if it runs and undefines it together with its
 * NVRAM, managed save image and snapshot/checkpoint metadata. Volumes
 * are not touched.
 */
gboolean
kd_hv_domain_delete (KdHvHost    *host,
                     const char  *name,
                     gboolean     missing_ok,
                     GError     **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virDomain) dom = NULL;
  g_autoptr(GError) local = NULL;
  int active;

  if (conn == NULL)
    return FALSE;
  dom = kd_hv_domain_lookup (host, conn, name, &local);
  if (dom == NULL)
    {
      if (missing_ok && g_error_matches (local, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND))
        return TRUE;
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  active = virDomainIsActive (dom);
  if (active < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot read state of domain '%s'", name);
      return FALSE;
    }
  if (active == 1 && !kd_hv_domain_destroy (host, conn, dom, error))
    return FALSE;

  if (virDomainUndefineFlags (dom, VIR_DOMAIN_UNDEFINE_NVRAM |
                                   VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                   VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                                   VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA) < 0)
    {
      virErrorPtr lv = virGetLastError ();
      /* Drivers without checkpoints/NVRAM refuse those flags. */
      if (lv != NULL && (lv->code == VIR_ERR_INVALID_ARG || lv->code == VIR_ERR_NO_SUPPORT))
        {
          virResetLastError ();
          if (virDomainUndefineFlags (dom, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                           VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA) == 0)
            return TRUE;
        }
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot undefine domain '%s'", name);
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_hv_domain_get_state:
 *
 * Returns: the domain's state; %KD_HV_DOMAIN_MISSING without an error
 * when there is no such domain; %KD_HV_DOMAIN_OTHER with @error set when
 * the state cannot be read.
 */
KdHvDomainState
kd_hv_domain_get_state (KdHvHost    *host,
                        const char  *name,
                        GError     **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virDomain) dom = NULL;
  g_autoptr(GError) local = NULL;
  int state;

  if (conn == NULL)
    return KD_HV_DOMAIN_OTHER;
  dom = kd_hv_domain_lookup (host, conn, name, &local);
  if (dom == NULL)
    {
      if (g_error_matches (local, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND))
        return KD_HV_DOMAIN_MISSING;
      g_propagate_error (error, g_steal_pointer (&local));
      return KD_HV_DOMAIN_OTHER;
    }
  state = kd_hv_domain_read_state (host, conn, dom, &local);
  if (state < 0)
    {
      if (g_error_matches (local, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND))
        return KD_HV_DOMAIN_MISSING;
      g_propagate_error (error, g_steal_pointer (&local));
      return KD_HV_DOMAIN_OTHER;
    }
  return kd_hv_state_from_libvirt (state);
}

/* Fills instance/desktop ids from the <kvmdesk:desktop> element.
 * Returns FALSE when the element is not kvmdesk's. */
static gboolean
kd_hv_parse_metadata (const char     *xml,
                      KdHvDomainInfo *info)
{
  g_autoptr(xmlDoc) doc = kd_hv_xml_parse (xml, "domain metadata", NULL);
  g_autoptr(xmlXPathContext) ctx = NULL;
  static const struct { const char *xpath; gsize offset; } fields[] = {
    /* libvirt hands the element back without its namespace prefix. */
    { "string(/*[local-name()='desktop']/*[local-name()='instance'])",
      G_STRUCT_OFFSET (KdHvDomainInfo, instance_id) },
    { "string(/*[local-name()='desktop']/*[local-name()='id'])",
      G_STRUCT_OFFSET (KdHvDomainInfo, desktop_id) },
    { "string(/*[local-name()='desktop']/*[local-name()='name'])",
      G_STRUCT_OFFSET (KdHvDomainInfo, desktop_name) },
  };

  if (doc == NULL)
    return FALSE;
  ctx = xmlXPathNewContext (doc);
  if (ctx == NULL)
    return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++)
    {
      g_autoptr(xmlXPathObject) obj =
        xmlXPathEvalExpression ((const xmlChar *) fields[i].xpath, ctx);
      xmlChar *value;

      if (obj == NULL)
        continue;
      value = xmlXPathCastToString (obj);
      if (value != NULL && *value != '\0')
        G_STRUCT_MEMBER (char *, info, fields[i].offset) = g_strdup ((const char *) value);
      xmlFree (value);
    }
  return TRUE;
}

static void
kd_hv_parse_disks (const char     *xml,
                   KdHvDomainInfo *info)
{
  g_autoptr(xmlDoc) doc = kd_hv_xml_parse (xml, "domain XML", NULL);
  g_autoptr(xmlXPathContext) ctx = NULL;
  g_autoptr(xmlXPathObject) obj = NULL;

  if (doc == NULL)
    return;
  ctx = xmlXPathNewContext (doc);
  if (ctx == NULL)
    return;
  obj = xmlXPathEvalExpression ((const xmlChar *)
                                "/domain/devices/disk/source/@file | "
                                "/domain/devices/disk/source/@dev", ctx);
  if (obj == NULL || obj->nodesetval == NULL)
    return;
  for (int i = 0; i < obj->nodesetval->nodeNr; i++)
    {
      xmlChar *value = xmlNodeGetContent (obj->nodesetval->nodeTab[i]);
      if (value != NULL && *value != '\0')
        g_ptr_array_add (info->disk_paths, g_strdup ((const char *) value));
      xmlFree (value);
    }
}

/**
 * kd_hv_domain_list_kvmdesk:
 *
 * Returns: (transfer full) (element-type KdHvDomainInfo): every domain
 * of the host that carries a <kvmdesk:desktop> metadata element, of any
 * kvmdesk instance, with its state and disk source paths.
 */
GPtrArray *
kd_hv_domain_list_kvmdesk (KdHvHost  *host,
                           GError   **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(GPtrArray) ret = NULL;
  virDomainPtr *doms = NULL;
  int n;

  if (conn == NULL)
    return NULL;
  n = virConnectListAllDomains (conn, &doms, 0);
  if (n < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot list domains");
      return NULL;
    }
  ret = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_hv_domain_info_free);
  for (int i = 0; i < n; i++)
    {
      g_autoptr(virDomain) dom = doms[i];
      g_autoptr(KdHvDomainInfo) info = NULL;
      g_autofree char *meta = NULL;
      g_autofree char *xml = NULL;
      char uuid[VIR_UUID_STRING_BUFLEN];
      int state = 0, reason = 0;

      meta = virDomainGetMetadata (dom, VIR_DOMAIN_METADATA_ELEMENT, KD_HV_METADATA_NS, 0);
      if (meta == NULL)
        {
          virErrorPtr lv = virGetLastError ();
          /* Not ours, or undefined while we were listing. */
          if (lv == NULL || lv->code == VIR_ERR_NO_DOMAIN_METADATA ||
              lv->code == VIR_ERR_NO_DOMAIN)
            {
              virResetLastError ();
              continue;
            }
          kd_hv_set_error_from_libvirt (error, host, conn,
                                        "cannot read metadata of domain '%s'",
                                        virDomainGetName (dom));
          for (int j = i + 1; j < n; j++)
            virDomainFree (doms[j]);
          free (doms);
          return NULL;
        }

      info = g_new0 (KdHvDomainInfo, 1);
      info->name = g_strdup (virDomainGetName (dom));
      info->disk_paths = g_ptr_array_new_with_free_func (g_free);
      if (!kd_hv_parse_metadata (meta, info))
        continue;
      if (virDomainGetUUIDString (dom, uuid) == 0)
        info->uuid = g_strdup (uuid);
      if (virDomainGetState (dom, &state, &reason, 0) == 0)
        info->state = kd_hv_state_from_libvirt (state);
      else
        info->state = KD_HV_DOMAIN_MISSING; /* went away meanwhile */
      xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE);
      if (xml != NULL)
        kd_hv_parse_disks (xml, info);
      virResetLastError ();
      if (info->state != KD_HV_DOMAIN_MISSING)
        g_ptr_array_add (ret, g_steal_pointer (&info));
    }
  free (doms);
  return g_steal_pointer (&ret);
}
