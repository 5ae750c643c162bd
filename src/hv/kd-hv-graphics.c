/*
 * kd-hv-graphics.c: a running desktop's displays seen from outside:
 * where its VNC/SPICE servers listen, one-time passwords set on them
 * through libvirt (virDomainUpdateDeviceFlags on the live graphics
 * device, existing viewers kept), and the guest's network address (for
 * RDP). Blocking calls for worker threads.
 */
#include "hv/kd-hv-priv.h"

#include "common/kd-error.h"

#include <string.h>

#include <libxml/xpath.h>

void
kd_hv_graphics_free (KdHvGraphics *g)
{
  if (g == NULL)
    return;
  g_free (g->type);
  g_free (g->listen);
  g_free (g);
}

static virDomainPtr
kd_hv_graphics_lookup (KdHvHost      *host,
                       virConnectPtr  conn,
                       const char    *name,
                       GError       **error)
{
  virDomainPtr dom = virDomainLookupByName (conn, name);

  if (dom == NULL)
    kd_hv_set_error_from_libvirt (error, host, conn, "cannot find domain '%s'", name);
  return dom;
}

/* The live <graphics type=@type> element of @xml, or NULL. */
static xmlNode *
kd_hv_graphics_find (xmlDoc     *doc,
                     const char *type)
{
  g_autoptr(xmlXPathContext) ctx = xmlXPathNewContext (doc);
  g_autoptr(xmlXPathObject) obj = NULL;
  g_autofree char *xpath = NULL;

  if (ctx == NULL)
    return NULL;
  /* @type is one of our own words, never from the wire. */
  xpath = g_strdup_printf ("/domain/devices/graphics[@type='%s']", type);
  obj = xmlXPathEvalExpression ((const xmlChar *) xpath, ctx);
  if (obj == NULL || obj->nodesetval == NULL || obj->nodesetval->nodeNr == 0)
    return NULL;
  return obj->nodesetval->nodeTab[0];
}

static char *
kd_hv_xml_attr (xmlNode    *node,
                const char *name)
{
  xmlChar *v = xmlGetProp (node, (const xmlChar *) name);
  char *copy = v != NULL ? g_strdup ((const char *) v) : NULL;

  xmlFree (v);
  return copy;
}

/* The running domain's XML with its <graphics type=@type>; errors name
 * the domain. */
static xmlDoc *
kd_hv_graphics_read (KdHvHost      *host,
                     virConnectPtr  conn,
                     virDomainPtr   dom,
                     const char    *name,
                     const char    *type,
                     unsigned int   flags,
                     xmlNode      **out_node,
                     GError       **error)
{
  g_autofree char *xml = NULL;
  g_autoptr(xmlDoc) doc = NULL;
  int active = virDomainIsActive (dom);

  if (active < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot read the state of domain '%s'", name);
      return NULL;
    }
  if (active == 0)
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "host '%s': domain '%s' is not running: its display has no address",
                   kd_hv_host_get_name (host), name);
      return NULL;
    }
  xml = virDomainGetXMLDesc (dom, flags);
  if (xml == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot read the XML of domain '%s'", name);
      return NULL;
    }
  doc = kd_hv_xml_parse (xml, "domain XML", error);
  if (doc == NULL)
    return NULL;
  *out_node = kd_hv_graphics_find (doc, type);
  if (*out_node == NULL)
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "host '%s': domain '%s' has no %s display", kd_hv_host_get_name (host), name, type);
      return NULL;
    }
  return g_steal_pointer (&doc);
}

/**
 * kd_hv_domain_graphics_get:
 * @type: "vnc" or "spice"
 *
 * Returns: (transfer full): where the running domain's @type display
 * listens (its actual port, also when libvirt chose it), or %NULL.
 */
KdHvGraphics *
kd_hv_domain_graphics_get (KdHvHost    *host,
                           const char  *name,
                           const char  *type,
                           GError     **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virDomain) dom = NULL;
  g_autoptr(xmlDoc) doc = NULL;
  g_autofree char *port = NULL;
  g_autofree char *tls_port = NULL;
  xmlNode *node = NULL;
  KdHvGraphics *g;

  if (conn == NULL)
    return NULL;
  dom = kd_hv_graphics_lookup (host, conn, name, error);
  if (dom == NULL)
    return NULL;
  doc = kd_hv_graphics_read (host, conn, dom, name, type, 0, &node, error);
  if (doc == NULL)
    return NULL;
  g = g_new0 (KdHvGraphics, 1);
  g->type = g_strdup (type);
  port = kd_hv_xml_attr (node, "port");
  tls_port = kd_hv_xml_attr (node, "tlsPort");
  g->listen = kd_hv_xml_attr (node, "listen");
  g->port = port ? g_ascii_strtoll (port, NULL, 10) : -1;
  g->tls_port = tls_port ? g_ascii_strtoll (tls_port, NULL, 10) : -1;
  if (g->port <= 0 || g->port > 65535)
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "host '%s': the %s display of domain '%s' has no TCP port", kd_hv_host_get_name (host),
                   type, name);
      kd_hv_graphics_free (g);
      return NULL;
    }
  return g;
}

/**
 * kd_hv_domain_graphics_set_password:
 * @type: "vnc" or "spice"
 * @password: the new password (VNC uses its first 8 bytes)
 * @valid_to: seconds since the epoch after which QEMU refuses it; 0 =
 *   no expiry
 *
 * Sets the password of the running domain's @type display, live only:
 * the persistent definition keeps its own. Viewers already connected
 * stay connected (connected='keep').
 */
gboolean
kd_hv_domain_graphics_set_password (KdHvHost    *host,
                                    const char  *name,
                                    const char  *type,
                                    const char  *password,
                                    gint64       valid_to,
                                    GError     **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virDomain) dom = NULL;
  g_autoptr(xmlDoc) doc = NULL;
  g_autoptr(xmlBuffer) buf = NULL;
  xmlNode *node = NULL;

  if (conn == NULL)
    return FALSE;
  dom = kd_hv_graphics_lookup (host, conn, name, error);
  if (dom == NULL)
    return FALSE;
  /* SECURE: the element must be complete for libvirt to match it. */
  doc = kd_hv_graphics_read (host, conn, dom, name, type, VIR_DOMAIN_XML_SECURE, &node, error);
  if (doc == NULL)
    return FALSE;
  if (!xmlHasProp (node, (const xmlChar *) "passwd"))
    {
      /* QEMU started this display with auth=none: it cannot take a
       * password until the domain starts again (kd_hv_domain_start()
       * gives every display one). */
      g_set_error (error, KD_ERROR, KD_ERROR_BUSY,
                   "host '%s': domain '%s' was started without a display password (by an older "
                   "kvmdesk): restart the desktop once to give its display one",
                   kd_hv_host_get_name (host), name);
      return FALSE;
    }
  xmlSetProp (node, (const xmlChar *) "passwd", (const xmlChar *) password);
  if (valid_to > 0)
    {
      g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc (valid_to);
      g_autofree char *s = t ? g_date_time_format (t, "%Y-%m-%dT%H:%M:%S") : NULL;

      if (s == NULL)
        {
          g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED, "an invalid password expiry");
          return FALSE;
        }
      xmlSetProp (node, (const xmlChar *) "passwdValidTo", (const xmlChar *) s);
    }
  else
    xmlUnsetProp (node, (const xmlChar *) "passwdValidTo");
  xmlSetProp (node, (const xmlChar *) "connected", (const xmlChar *) "keep");
  buf = xmlBufferCreate ();
  if (buf == NULL || xmlNodeDump (buf, doc, node, 0, 0) < 0)
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED, "cannot write a graphics device");
      return FALSE;
    }
  if (virDomainUpdateDeviceFlags (dom, (const char *) xmlBufferContent (buf), VIR_DOMAIN_AFFECT_LIVE) < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn,
                                    "cannot set a one-time password on the %s display of domain '%s'",
                                    type, name);
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_hv_domain_guest_address:
 *
 * Returns: (transfer full): the guest's first IPv4 address (else IPv6),
 * as its QEMU guest agent reports it, else as the DHCP leases of a
 * libvirt network know it; %NULL with an error naming both attempts.
 */
char *
kd_hv_domain_guest_address (KdHvHost    *host,
                            const char  *name,
                            GError     **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autoptr(virDomain) dom = NULL;
  static const struct { unsigned int source; const char *what; } sources[] = {
    { VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT, "guest agent" },
    { VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, "DHCP leases" },
  };
  g_autoptr(GString) why = g_string_new (NULL);

  if (conn == NULL)
    return NULL;
  dom = kd_hv_graphics_lookup (host, conn, name, error);
  if (dom == NULL)
    return NULL;
  for (gsize s = 0; s < G_N_ELEMENTS (sources); s++)
    {
      virDomainInterfacePtr *ifaces = NULL;
      char *v4 = NULL, *v6 = NULL;
      int n = virDomainInterfaceAddresses (dom, &ifaces, sources[s].source, 0);

      if (n < 0)
        {
          const char *msg = virGetLastErrorMessage ();
          g_string_append_printf (why, "%s%s: %s", why->len ? "; " : "", sources[s].what,
                                  msg ? msg : "failed");
          virResetLastError ();
          continue;
        }
      for (int i = 0; i < n; i++)
        {
          for (unsigned int a = 0; a < ifaces[i]->naddrs; a++)
            {
              virDomainIPAddressPtr ip = &ifaces[i]->addrs[a];
              if (ip->addr == NULL || g_str_has_prefix (ip->addr, "127.") || g_str_equal (ip->addr, "::1") ||
                  g_str_has_prefix (ip->addr, "fe80:"))
                continue;
              if (ip->type == VIR_IP_ADDR_TYPE_IPV4 && v4 == NULL)
                v4 = g_strdup (ip->addr);
              else if (ip->type == VIR_IP_ADDR_TYPE_IPV6 && v6 == NULL)
                v6 = g_strdup (ip->addr);
            }
          virDomainInterfaceFree (ifaces[i]);
        }
      free (ifaces);
      if (v4 != NULL || v6 != NULL)
        {
          if (v4 != NULL)
            {
              g_free (v6);
              return v4;
            }
          return v6;
        }
      g_string_append_printf (why, "%s%s: no address", why->len ? "; " : "", sources[s].what);
    }
  g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
               "host '%s': the network address of domain '%s' is not known (%s)",
               kd_hv_host_get_name (host), name, why->str);
  return NULL;
}
