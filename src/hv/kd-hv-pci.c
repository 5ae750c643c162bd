/*
 * kd-hv-pci.c: PCI devices for passthrough, as libvirt's node devices
 * describe them: driver, product, IOMMU group and its members, mediated
 * device types with their free instances. The XML parsing and the group
 * rule are pure (unit-tested on fixtures); one blocking call reads a
 * device from a host. Mediated devices (vGPUs) are created and destroyed
 * here too, through libvirt's node device API.
 */
#include "hv/kd-hv-priv.h"

#include <stdlib.h>
#include <string.h>

#include <libxml/xpath.h>

static char *kd_hv_node_device_name (const char *address);

/* Bounds on what a node device may claim. */
#define KD_HV_MDEV_TYPES_MAX      64
#define KD_HV_MDEV_TYPE_ID_MAX    64
#define KD_HV_MDEV_INSTANCES_MAX  1024

void
kd_hv_mdev_type_free (KdHvMdevType *type)
{
  if (type == NULL)
    return;
  g_free (type->id);
  g_free (type->name);
  g_free (type->device_api);
  g_free (type);
}

/**
 * kd_hv_mdev_type_is_valid:
 * @type: a mediated device type id
 *
 * Returns: %TRUE for what sysfs names types with (letters, digits, '-',
 * '_', '.'; 1 to 64 bytes), so that the id is safe in XML, logs and
 * messages.
 */
gboolean
kd_hv_mdev_type_is_valid (const char *type)
{
  gsize len = type ? strlen (type) : 0;

  return len > 0 && len <= KD_HV_MDEV_TYPE_ID_MAX &&
         strspn (type, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == len;
}

void
kd_hv_pci_device_clear (KdHvPciDevice *dev)
{
  g_clear_pointer (&dev->address, g_free);
  g_clear_pointer (&dev->driver, g_free);
  g_clear_pointer (&dev->product, g_free);
  g_clear_pointer (&dev->vendor, g_free);
  g_clear_pointer (&dev->group_members, g_strfreev);
  g_clear_pointer (&dev->mdev_types, g_strfreev);
  g_clear_pointer (&dev->mdevs, g_ptr_array_unref);
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
kd_xpath_addresses (xmlXPathContext *ctx, const char *xpath)
{
  g_autoptr(xmlXPathObject) obj = xmlXPathEvalExpression ((const xmlChar *) xpath, ctx);
  GPtrArray *out = g_ptr_array_new ();

  for (int i = 0; obj != NULL && obj->nodesetval != NULL && i < obj->nodesetval->nodeNr; i++)
    {
      xmlNode *n = obj->nodesetval->nodeTab[i];
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
    }
  g_ptr_array_add (out, NULL);
  return (char **) g_ptr_array_free (out, FALSE);
}

/* The <type> elements of the device's mdev_types capability: id, name,
 * deviceAPI, availableInstances. Types with an id kvmdesk would not
 * accept are left out. */
static GPtrArray *
kd_hv_mdev_types_parse (xmlXPathContext *ctx)
{
  g_autoptr(xmlXPathObject) obj =
    xmlXPathEvalExpression ((const xmlChar *) "/device/capability[@type='pci']/capability[@type='mdev_types']/type",
                            ctx);
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_hv_mdev_type_free);

  for (int i = 0; obj != NULL && obj->nodesetval != NULL && i < obj->nodesetval->nodeNr &&
                  out->len < KD_HV_MDEV_TYPES_MAX; i++)
    {
      xmlNode *n = obj->nodesetval->nodeTab[i];
      xmlChar *id = xmlGetProp (n, (const xmlChar *) "id");
      KdHvMdevType *t;

      if (id == NULL || !kd_hv_mdev_type_is_valid ((const char *) id))
        {
          xmlFree (id);
          continue;
        }
      t = g_new0 (KdHvMdevType, 1);
      t->id = g_strdup ((const char *) id);
      xmlFree (id);
      for (xmlNode *c = n->children; c != NULL; c = c->next)
        {
          xmlChar *v;
          if (c->type != XML_ELEMENT_NODE)
            continue;
          v = xmlNodeGetContent (c);
          if (v != NULL && g_str_equal ((const char *) c->name, "name"))
            t->name = g_strndup ((const char *) v, 128);
          else if (v != NULL && g_str_equal ((const char *) c->name, "deviceAPI"))
            t->device_api = g_strndup ((const char *) v, 64);
          else if (v != NULL && g_str_equal ((const char *) c->name, "availableInstances"))
            t->available = CLAMP (g_ascii_strtoll ((const char *) v, NULL, 10), 0, KD_HV_MDEV_INSTANCES_MAX);
          xmlFree (v);
        }
      g_ptr_array_add (out, t);
    }
  return out;
}

/**
 * kd_hv_pci_device_parse:
 * @xml: a node device's XML (virNodeDeviceGetXMLDesc)
 *
 * Fills @out from a PCI node device: canonical address, driver (may be
 * NULL when none is bound), product and vendor, IOMMU group number and
 * members (canonical addresses), mediated device types (ids in
 * ->mdev_types, in full with their free instances in ->mdevs).
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
  out->group_members = kd_xpath_addresses (ctx, "/device/capability[@type='pci']/iommuGroup/address");
  out->mdevs = kd_hv_mdev_types_parse (ctx);
  {
    GPtrArray *ids = g_ptr_array_new ();
    for (guint i = 0; i < out->mdevs->len; i++)
      g_ptr_array_add (ids, g_strdup (((KdHvMdevType *) out->mdevs->pdata[i])->id));
    g_ptr_array_add (ids, NULL);
    out->mdev_types = (char **) g_ptr_array_free (ids, FALSE);
  }
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
  name = kd_hv_node_device_name (address);
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

/* ---- mediated devices (vGPUs) ---- */

static char *
kd_hv_node_device_name (const char *address)
{
  char *name = g_strdup_printf ("pci_%s", address);
  g_strdelimit (name, ":.", '_');
  return name;
}

/**
 * kd_hv_mdev_xml_build:
 * @parent: the GPU's canonical PCI address
 * @type: a mediated device type id it offers
 * @uuid: the new device's UUID
 *
 * Returns: (transfer full): <device><parent>pci_…</parent><capability
 * type='mdev'><type id='…'/><uuid>…</uuid></capability></device>, or
 * %NULL with an error naming the bad value.
 */
char *
kd_hv_mdev_xml_build (const char *parent, const char *type, const char *uuid, GError **error)
{
  g_autofree char *canon = kd_hv_pci_address_parse (parent, error);
  g_autofree char *parent_name = NULL;
  g_autoptr(xmlDoc) doc = NULL;
  xmlNode *root, *cap, *node;

  if (canon == NULL)
    return NULL;
  if (!kd_hv_mdev_type_is_valid (type))
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED, "'%.40s' is not a mediated device type",
                   type ? type : "");
      return NULL;
    }
  if (uuid == NULL || !g_uuid_string_is_valid (uuid))
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED, "'%.40s' is not a UUID", uuid ? uuid : "");
      return NULL;
    }
  parent_name = kd_hv_node_device_name (canon);
  doc = xmlNewDoc ((const xmlChar *) "1.0");
  root = xmlNewNode (NULL, (const xmlChar *) "device");
  xmlDocSetRootElement (doc, root);
  xmlNewTextChild (root, NULL, (const xmlChar *) "parent", (const xmlChar *) parent_name);
  cap = xmlNewChild (root, NULL, (const xmlChar *) "capability", NULL);
  xmlNewProp (cap, (const xmlChar *) "type", (const xmlChar *) "mdev");
  node = xmlNewChild (cap, NULL, (const xmlChar *) "type", NULL);
  xmlNewProp (node, (const xmlChar *) "id", (const xmlChar *) type);
  xmlNewTextChild (cap, NULL, (const xmlChar *) "uuid", (const xmlChar *) uuid);
  return kd_hv_xml_dump (doc, NULL);
}

/**
 * kd_hv_mdev_create:
 *
 * Creates the mediated device through virNodeDeviceCreateXML (libvirt
 * hands it to mdevctl or sysfs). libvirt's test driver creates only
 * vHBAs ("Device is not a fibre channel HBA"), so on a simulated host
 * nothing is created and *@out_simulated says so. Blocking.
 */
gboolean
kd_hv_mdev_create (KdHvHost *host, const char *parent, const char *type, const char *uuid,
                   gboolean *out_simulated, GError **error)
{
  g_autofree char *xml = kd_hv_mdev_xml_build (parent, type, uuid, error);
  g_autoptr(virConnect) conn = NULL;
  virNodeDevicePtr dev;

  if (out_simulated != NULL)
    *out_simulated = FALSE;
  if (xml == NULL)
    return FALSE;
  if (kd_hv_host_is_simulated (host))
    {
      if (out_simulated != NULL)
        *out_simulated = TRUE;
      return TRUE;
    }
  conn = kd_hv_host_get_connection (host, error);
  if (conn == NULL)
    return FALSE;
  dev = virNodeDeviceCreateXML (conn, xml, 0);
  if (dev == NULL)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot create vGPU %s of type %s on %s",
                                    uuid, type, parent);
      return FALSE;
    }
  virNodeDeviceFree (dev);
  return TRUE;
}

/**
 * kd_hv_mdev_destroy:
 *
 * Finds the mediated device by its UUID among the host's node devices
 * (libvirt names it "mdev_UUID" or "mdev_UUID_PARENT", with '_' for '-')
 * and destroys it. Blocking.
 */
gboolean
kd_hv_mdev_destroy (KdHvHost *host, const char *uuid, GError **error)
{
  g_autoptr(virConnect) conn = NULL;
  g_autofree char *prefix = NULL;
  virNodeDevicePtr *devs = NULL;
  virNodeDevicePtr found = NULL;
  int n;
  gboolean ok = TRUE;

  if (uuid == NULL || !g_uuid_string_is_valid (uuid))
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED, "'%.40s' is not a UUID", uuid ? uuid : "");
      return FALSE;
    }
  if (kd_hv_host_is_simulated (host))
    return TRUE;   /* nothing was created there */
  conn = kd_hv_host_get_connection (host, error);
  if (conn == NULL)
    return FALSE;
  prefix = g_strdup_printf ("mdev_%s", uuid);
  g_strdelimit (prefix, "-", '_');
  n = virConnectListAllNodeDevices (conn, &devs, VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV);
  if (n < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot list mediated devices");
      return FALSE;
    }
  for (int i = 0; i < n; i++)
    {
      const char *name = virNodeDeviceGetName (devs[i]);
      if (found == NULL && name != NULL && g_ascii_strncasecmp (name, prefix, strlen (prefix)) == 0 &&
          (name[strlen (prefix)] == '\0' || name[strlen (prefix)] == '_'))
        found = devs[i];
      else
        virNodeDeviceFree (devs[i]);
    }
  free (devs);
  if (found == NULL)
    return TRUE;
  if (virNodeDeviceDestroy (found) < 0)
    {
      kd_hv_set_error_from_libvirt (error, host, conn, "cannot destroy vGPU %s", uuid);
      ok = FALSE;
    }
  virNodeDeviceFree (found);
  return ok;
}
