/*
 * kd-hv-pci.c: PCI devices for passthrough, as libvirt's node devices
 * describe them: driver, product, IOMMU group and its members, mediated
 * device types. The XML parsing and the group rule are pure (unit-tested
 * on fixtures); one blocking call reads a device from a host.
 */
#include "hv/kd-hv-priv.h"

#include <string.h>

#include <libxml/xpath.h>

void
kd_hv_pci_device_clear (KdHvPciDevice *dev)
{
  g_clear_pointer (&dev->address, g_free);
  g_clear_pointer (&dev->driver, g_free);
  g_clear_pointer (&dev->product, g_free);
  g_clear_pointer (&dev->vendor, g_free);
  g_clear_pointer (&dev->group_members, g_strfreev);
  g_clear_pointer (&dev->mdev_types, g_strfreev);
  dev->iommu_group = -1;
}

/**
 * kd_hv_pci_address_parse:
 * @text: "DDDD:BB:SS.F" (domain optional: "BB:SS.F" means domain 0)
 *
 * Returns: (transfer full): the address in canonical form
 * ("0000:01:00.0"), or %NULL with an error quoting @text.
 */
char *
kd_hv_pci_address_parse (const char *text, GError **error)
{
  unsigned int domain = 0, bus, slot, function;
  char tail;

  if (text != NULL && strlen (text) <= 16 &&
      (sscanf (text, "%4x:%2x:%2x.%1x%c", &domain, &bus, &slot, &function, &tail) == 4 ||
       (domain = 0, sscanf (text, "%2x:%2x.%1x%c", &bus, &slot, &function, &tail) == 3)) &&
      slot < 32 && function < 8 && strspn (text, "0123456789abcdefABCDEF:.") == strlen (text))
    return g_strdup_printf ("%04x:%02x:%02x.%x", domain, bus, slot, function);
  g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
               "'%.40s' is not a PCI address (domain:bus:slot.function, e.g. 0000:01:00.0)",
               text ? text : "");
  return NULL;
}

static char *
kd_xpath_string (xmlXPathContext *ctx, const char *xpath)
{
  g_autoptr(xmlXPathObject) obj = xmlXPathEvalExpression ((const xmlChar *) xpath, ctx);
  xmlChar *v;
  char *out;

  if (obj == NULL)
    return NULL;
  v = xmlXPathCastToString (obj);
  out = v != NULL && *v != '\0' ? g_strdup ((const char *) v) : NULL;
  xmlFree (v);
  return out;
}

static char **
kd_xpath_strings (xmlXPathContext *ctx, const char *xpath, gboolean addresses)
{
  g_autoptr(xmlXPathObject) obj = xmlXPathEvalExpression ((const xmlChar *) xpath, ctx);
  GPtrArray *out = g_ptr_array_new ();

  for (int i = 0; obj != NULL && obj->nodesetval != NULL && i < obj->nodesetval->nodeNr; i++)
    {
      xmlNode *n = obj->nodesetval->nodeTab[i];
      if (addresses)
        {
          xmlChar *d = xmlGetProp (n, (const xmlChar *) "domain");
          xmlChar *b = xmlGetProp (n, (const xmlChar *) "bus");
          xmlChar *s = xmlGetProp (n, (const xmlChar *) "slot");
          xmlChar *f = xmlGetProp (n, (const xmlChar *) "function");
          if (d && b && s && f)
            g_ptr_array_add (out, g_strdup_printf ("%04x:%02x:%02x.%x",
                                                   (unsigned) g_ascii_strtoull ((char *) d, NULL, 0),
                                                   (unsigned) g_ascii_strtoull ((char *) b, NULL, 0),
                                                   (unsigned) g_ascii_strtoull ((char *) s, NULL, 0),
                                                   (unsigned) g_ascii_strtoull ((char *) f, NULL, 0)));
          xmlFree (d);
          xmlFree (b);
          xmlFree (s);
          xmlFree (f);
        }
      else
        {
          xmlChar *id = xmlGetProp (n, (const xmlChar *) "id");
          if (id != NULL)
            g_ptr_array_add (out, g_strdup ((const char *) id));
          xmlFree (id);
        }
    }
  g_ptr_array_add (out, NULL);
  return (char **) g_ptr_array_free (out, FALSE);
}

/**
 * kd_hv_pci_device_parse:
 * @xml: a node device's XML (virNodeDeviceGetXMLDesc)
 *
 * Fills @out from a PCI node device: canonical address, driver (may be
 * NULL when none is bound), product and vendor, IOMMU group number and
 * members (canonical addresses), mediated device types.
 */
gboolean
kd_hv_pci_device_parse (const char *xml, KdHvPciDevice *out, GError **error)
{
  g_autoptr(xmlDoc) doc = kd_hv_xml_parse (xml, "node device XML", error);
  g_autoptr(xmlXPathContext) ctx = NULL;
  g_autofree char *domain = NULL, *bus = NULL, *slot = NULL, *function = NULL, *group = NULL;

  memset (out, 0, sizeof *out);
  out->iommu_group = -1;
  if (doc == NULL)
    return FALSE;
  ctx = xmlXPathNewContext (doc);
  domain = kd_xpath_string (ctx, "string(/device/capability[@type='pci']/domain)");
  bus = kd_xpath_string (ctx, "string(/device/capability[@type='pci']/bus)");
  slot = kd_xpath_string (ctx, "string(/device/capability[@type='pci']/slot)");
  function = kd_xpath_string (ctx, "string(/device/capability[@type='pci']/function)");
  if (bus == NULL || slot == NULL || function == NULL)
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED, "the node device is not a PCI device");
      return FALSE;
    }
  out->address = g_strdup_printf ("%04x:%02x:%02x.%x",
                                  (unsigned) (domain ? g_ascii_strtoull (domain, NULL, 0) : 0),
                                  (unsigned) g_ascii_strtoull (bus, NULL, 0),
                                  (unsigned) g_ascii_strtoull (slot, NULL, 0),
                                  (unsigned) g_ascii_strtoull (function, NULL, 0));
  out->driver = kd_xpath_string (ctx, "string(/device/driver/name)");
  out->product = kd_xpath_string (ctx, "string(/device/capability[@type='pci']/product)");
  out->vendor = kd_xpath_string (ctx, "string(/device/capability[@type='pci']/vendor)");
  group = kd_xpath_string (ctx, "string(/device/capability[@type='pci']/iommuGroup/@number)");
  out->iommu_group = group ? (gint64) g_ascii_strtoll (group, NULL, 10) : -1;
  out->group_members = kd_xpath_strings (ctx, "/device/capability[@type='pci']/iommuGroup/address", TRUE);
  out->mdev_types = kd_xpath_strings (ctx, "/device/capability[@type='pci']/capability[@type='mdev_types']/type",
                                      FALSE);
  return TRUE;
}

/**
 * kd_hv_gpu_check:
 * @functions: the GPU's devices (each parsed)
 * @passed: every PCI address the host passes through (all its GPUs)
 *
 * The rule for a GPU handed to one desktop: its functions share one IOMMU
 * group, and every device in that group is passed through too (the
 * kernel gives a group to one guest as a whole).
 */
gboolean
kd_hv_gpu_check (const KdHvPciDevice *functions, guint n, const char *const *passed, GError **error)
{
  for (guint i = 0; i < n; i++)
    {
      const KdHvPciDevice *f = &functions[i];

      if (f->iommu_group < 0)
        {
          g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                       "PCI device %s has no IOMMU group: is the IOMMU on (intel_iommu=on / amd_iommu=on)?",
                       f->address);
          return FALSE;
        }
      if (f->iommu_group != functions[0].iommu_group)
        {
          g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                       "PCI devices %s and %s are in different IOMMU groups (%" G_GINT64_FORMAT " and %"
                       G_GINT64_FORMAT "): list the functions of one GPU together",
                       functions[0].address, f->address, functions[0].iommu_group, f->iommu_group);
          return FALSE;
        }
      for (guint m = 0; f->group_members != NULL && f->group_members[m] != NULL; m++)
        if (!g_strv_contains (passed, f->group_members[m]))
          {
            g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                         "PCI device %s shares IOMMU group %" G_GINT64_FORMAT " with %s, which is not "
                         "passed through: add it to the GPU's functions, or move the card",
                         f->address, f->iommu_group, f->group_members[m]);
            return FALSE;
          }
    }
  return TRUE;
}

/**
 * kd_hv_pci_device_get:
 * @address: canonical PCI address
 *
 * Reads the PCI device from the host's node devices. Blocking.
 */
gboolean
kd_hv_pci_device_get (KdHvHost *host, const char *address, KdHvPciDevice *out, GError **error)
{
  g_autoptr(virConnect) conn = kd_hv_host_get_connection (host, error);
  g_autofree char *name = NULL;
  g_autofree char *xml = NULL;
  virNodeDevicePtr dev;

  memset (out, 0, sizeof *out);
  out->iommu_group = -1;
  if (conn == NULL)
    return FALSE;
  name = g_strdup_printf ("pci_%s", address);
  g_strdelimit (name, ":.", '_');
  dev = virNodeDeviceLookupByName (conn, name);
  if (dev == NULL)
    {
      virResetLastError ();
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_NOT_FOUND, "host '%s' has no PCI device %s",
                   kd_hv_host_get_name (host), address);
      return FALSE;
    }
  xml = virNodeDeviceGetXMLDesc (dev, 0);
  virNodeDeviceFree (dev);
  if (xml == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot read PCI device %s", address);
      return FALSE;
    }
  return kd_hv_pci_device_parse (xml, out, error);
}
