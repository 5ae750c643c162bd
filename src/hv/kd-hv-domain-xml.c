/*
 * kd-hv-domain-xml.c: builds the libvirt domain XML of a desktop from a
 * KdHvDomainSpec. Pure: no libvirt calls, no I/O. The document is a
 * libxml2 tree, so every name, title and path is escaped by libxml2;
 * values are validated first and errors name the offending field.
 */
#include "hv/kd-hv-priv.h"

#include <libxml/xmlsave.h>
#include <string.h>

#define KD_HV_DOMAIN_NAME_MAX   200
#define KD_HV_TITLE_MAX         1024
#define KD_HV_VCPUS_MAX         4096
#define KD_HV_MEMORY_MIB_MAX    (G_GINT64_CONSTANT (16) * 1024 * 1024)  /* 16 TiB */

static gboolean
kd_invalid (GError    **error,
            const char *field,
            const char *format,
            ...) G_GNUC_PRINTF (3, 4);

static gboolean
kd_invalid (GError    **error,
            const char *field,
            const char *format,
            ...)
{
  g_autofree char *why = NULL;
  va_list args;

  va_start (args, format);
  why = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
               "invalid domain specification: %s %s", field, why);
  return FALSE;
}

/* Text that goes into XML must be UTF-8 without control characters:
 * libxml2 would write them as character references XML 1.0 forbids. */
static gboolean
kd_check_text (const char  *field,
               const char  *value,
               gboolean     required,
               gsize        max_len,
               GError     **error)
{
  if (value == NULL || *value == '\0')
    return required ? kd_invalid (error, field, "is required") : TRUE;
  if (strlen (value) > max_len)
    return kd_invalid (error, field, "is longer than %" G_GSIZE_FORMAT " bytes", max_len);
  if (!g_utf8_validate (value, -1, NULL))
    return kd_invalid (error, field, "is not valid UTF-8");
  for (const char *p = value; *p != '\0'; p++)
    if ((guchar) *p < 0x20 || *p == 0x7f)
      return kd_invalid (error, field, "contains a control character");
  return TRUE;
}

static gboolean
kd_one_of (const char *value,
           const char *const *allowed)
{
  for (gsize i = 0; allowed[i] != NULL; i++)
    if (g_strcmp0 (value, allowed[i]) == 0)
      return TRUE;
  return FALSE;
}

static gboolean
kd_hv_domain_spec_validate (const KdHvDomainSpec  *spec,
                            GError               **error)
{
  static const char *const types[] = { "kvm", "qemu", "test", NULL };
  static const char *const firmwares[] = { "bios", "uefi", NULL };
  static const char *const displays[] = { "vnc", "spice", "dbus", NULL };
  static const char *const formats[] = { "qcow2", "raw", NULL };

  if (!kd_check_text ("name", spec->name, TRUE, KD_HV_DOMAIN_NAME_MAX, error))
    return FALSE;
  if (strchr (spec->name, '/') != NULL)
    return kd_invalid (error, "name", "'%s' contains '/'", spec->name);
  if (spec->uuid != NULL && !g_uuid_string_is_valid (spec->uuid))
    return kd_invalid (error, "uuid", "'%s' is not a UUID", spec->uuid);
  if (!kd_check_text ("title", spec->title, FALSE, KD_HV_TITLE_MAX, error))
    return FALSE;
  if (!kd_one_of (spec->domain_type, types))
    return kd_invalid (error, "domain_type", "'%s' is not one of kvm, qemu, test",
                       spec->domain_type != NULL ? spec->domain_type : "");
  if (!kd_check_text ("arch", spec->arch, FALSE, 64, error) ||
      !kd_check_text ("machine", spec->machine, FALSE, 128, error))
    return FALSE;
  if (spec->vcpus <= 0 || spec->vcpus > KD_HV_VCPUS_MAX)
    return kd_invalid (error, "vcpus", "must be between 1 and %d, not %" G_GINT64_FORMAT,
                       KD_HV_VCPUS_MAX, spec->vcpus);
  if (spec->memory_mib <= 0 || spec->memory_mib > KD_HV_MEMORY_MIB_MAX)
    return kd_invalid (error, "memory_mib", "must be between 1 and %" G_GINT64_FORMAT
                       ", not %" G_GINT64_FORMAT, KD_HV_MEMORY_MIB_MAX, spec->memory_mib);
  if (!kd_check_text ("disk_path", spec->disk_path, TRUE, 4096, error))
    return FALSE;
  if (!g_path_is_absolute (spec->disk_path))
    return kd_invalid (error, "disk_path", "'%s' is not an absolute path", spec->disk_path);
  if (spec->disk_format != NULL && !kd_one_of (spec->disk_format, formats))
    return kd_invalid (error, "disk_format", "'%s' is not one of qcow2, raw", spec->disk_format);
  if (spec->firmware != NULL && !kd_one_of (spec->firmware, firmwares))
    return kd_invalid (error, "firmware", "'%s' is not one of bios, uefi", spec->firmware);
  if (spec->display != NULL && !kd_one_of (spec->display, displays))
    return kd_invalid (error, "display", "'%s' is not one of vnc, spice, dbus", spec->display);
  if (!kd_check_text ("graphics_passwd", spec->graphics_passwd, FALSE, 64, error))
    return FALSE;
  for (guint i = 0; spec->hostdevs != NULL && spec->hostdevs[i] != NULL; i++)
    {
      g_autofree char *canon = kd_hv_pci_address_parse (spec->hostdevs[i], NULL);
      if (canon == NULL || !g_str_equal (canon, spec->hostdevs[i]))
        return kd_invalid (error, "hostdevs", "'%s' is not a PCI address", spec->hostdevs[i]);
    }
  for (guint i = 0; spec->mdevs != NULL && spec->mdevs[i] != NULL; i++)
    if (!g_uuid_string_is_valid (spec->mdevs[i]))
      return kd_invalid (error, "mdevs", "'%.40s' is not a UUID", spec->mdevs[i]);
  if (!kd_check_text ("graphics_listen", spec->graphics_listen, FALSE, 255, error))
    return FALSE;
  if (!kd_check_text ("network", spec->network, FALSE, 255, error))
    return FALSE;
  if (spec->network != NULL && g_str_has_prefix (spec->network, "bridge:"))
    {
      const char *bridge = spec->network + strlen ("bridge:");
      if (*bridge == '\0')
        return kd_invalid (error, "network", "'%s' names no bridge", spec->network);
      /* A Linux interface name: at most 15 bytes (IFNAMSIZ - 1). */
      if (strlen (bridge) > 15 ||
          strspn (bridge, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")
          != strlen (bridge))
        return kd_invalid (error, "network", "'%s' is not a valid bridge interface name",
                           spec->network);
    }
  if (!kd_check_text ("instance_id", spec->instance_id, FALSE, 255, error) ||
      !kd_check_text ("desktop_id", spec->desktop_id, FALSE, 255, error) ||
      !kd_check_text ("desktop_name", spec->desktop_name, FALSE, KD_HV_TITLE_MAX, error))
    return FALSE;
  return TRUE;
}

static xmlNode *
kd_el (xmlNode    *parent,
       const char *name)
{
  return xmlNewChild (parent, NULL, (const xmlChar *) name, NULL);
}

/* Element with escaped text content. */
static xmlNode *
kd_text (xmlNode    *parent,
         const char *name,
         const char *text)
{
  return xmlNewTextChild (parent, NULL, (const xmlChar *) name, (const xmlChar *) text);
}

static void
kd_attr (xmlNode    *node,
         const char *name,
         const char *value)
{
  xmlNewProp (node, (const xmlChar *) name, (const xmlChar *) value);
}

static void
kd_hv_add_metadata (xmlNode              *root,
                    const KdHvDomainSpec *spec)
{
  xmlNode *metadata, *desktop;
  xmlNs *ns;

  if (spec->instance_id == NULL && spec->desktop_id == NULL && spec->desktop_name == NULL)
    return;
  metadata = kd_el (root, "metadata");
  desktop = xmlNewChild (metadata, NULL, (const xmlChar *) "desktop", NULL);
  ns = xmlNewNs (desktop, (const xmlChar *) KD_HV_METADATA_NS,
                 (const xmlChar *) KD_HV_METADATA_PREFIX);
  xmlSetNs (desktop, ns);
  if (spec->instance_id != NULL)
    xmlNewTextChild (desktop, ns, (const xmlChar *) "instance", (const xmlChar *) spec->instance_id);
  if (spec->desktop_id != NULL)
    xmlNewTextChild (desktop, ns, (const xmlChar *) "id", (const xmlChar *) spec->desktop_id);
  if (spec->desktop_name != NULL)
    xmlNewTextChild (desktop, ns, (const xmlChar *) "name", (const xmlChar *) spec->desktop_name);
}

static void
kd_hv_add_one_graphics (xmlNode              *devices,
                        const KdHvDomainSpec *spec,
                        const char           *type)
{
  const char *listen = spec->graphics_listen != NULL ? spec->graphics_listen : "127.0.0.1";
  xmlNode *g, *l;

  g = kd_el (devices, "graphics");
  kd_attr (g, "type", type);
  kd_attr (g, "port", "-1");
  kd_attr (g, "autoport", "yes");
  kd_attr (g, "listen", listen);
  if (spec->graphics_passwd != NULL)
    kd_attr (g, "passwd", spec->graphics_passwd);
  l = kd_el (g, "listen");
  kd_attr (l, "type", "address");
  kd_attr (l, "address", listen);
}

/* VNC is always the first display (index 0: what the console gateway
 * opens); a SPICE desktop has SPICE beside it for native viewers. */
static void
kd_hv_add_graphics (xmlNode              *devices,
                    const KdHvDomainSpec *spec)
{
  const char *display = spec->display != NULL ? spec->display : "vnc";
  xmlNode *g;

  if (g_str_equal (display, "dbus"))
    {
      g = kd_el (devices, "graphics");
      kd_attr (g, "type", display);
      kd_attr (g, "p2p", "yes");
      return;
    }
  kd_hv_add_one_graphics (devices, spec, "vnc");
  if (g_str_equal (display, "spice"))
    kd_hv_add_one_graphics (devices, spec, "spice");
}

/* <hostdev mode='subsystem' type='pci' managed='yes'> per function:
 * libvirt detaches it from its host driver while the desktop runs. */
/* <hostdev mode='subsystem' type='pci' managed='yes'> for each PCI
 * address ("0000:01:00.0"); addresses that do not parse are skipped (the
 * callers check them first). */
void
kd_hv_xml_add_pci_hostdevs (xmlNode            *devices,
                            const char *const  *addresses)
{
  for (guint i = 0; addresses != NULL && addresses[i] != NULL; i++)
    {
      unsigned int domain, bus, slot, function;
      xmlNode *h, *src, *addr;
      char buf[16];

      if (sscanf (addresses[i], "%x:%x:%x.%x", &domain, &bus, &slot, &function) != 4)
        continue;
      h = kd_el (devices, "hostdev");
      kd_attr (h, "mode", "subsystem");
      kd_attr (h, "type", "pci");
      kd_attr (h, "managed", "yes");
      src = kd_el (h, "source");
      addr = kd_el (src, "address");
      g_snprintf (buf, sizeof buf, "0x%04x", domain);
      kd_attr (addr, "domain", buf);
      g_snprintf (buf, sizeof buf, "0x%02x", bus);
      kd_attr (addr, "bus", buf);
      g_snprintf (buf, sizeof buf, "0x%02x", slot);
      kd_attr (addr, "slot", buf);
      g_snprintf (buf, sizeof buf, "0x%x", function);
      kd_attr (addr, "function", buf);
    }
}

static void
kd_hv_add_hostdevs (xmlNode              *devices,
                    const KdHvDomainSpec *spec)
{
  kd_hv_xml_add_pci_hostdevs (devices, spec->hostdevs);
  /* A vGPU: the mediated device exists before the domain starts (kvmdesk
   * creates it on the host), so libvirt must not manage it. */
  for (guint i = 0; spec->mdevs != NULL && spec->mdevs[i] != NULL; i++)
    {
      xmlNode *h = kd_el (devices, "hostdev"), *src, *addr;

      kd_attr (h, "mode", "subsystem");
      kd_attr (h, "type", "mdev");
      kd_attr (h, "model", "vfio-pci");
      kd_attr (h, "managed", "no");
      src = kd_el (h, "source");
      addr = kd_el (src, "address");
      kd_attr (addr, "uuid", spec->mdevs[i]);
    }
}

static void
kd_hv_add_network (xmlNode              *devices,
                   const KdHvDomainSpec *spec)
{
  const char *network = spec->network != NULL ? spec->network : "none";
  xmlNode *iface, *node;

  if (g_str_equal (network, "none"))
    return;
  iface = kd_el (devices, "interface");
  if (g_str_equal (network, "user"))
    kd_attr (iface, "type", "user");
  else if (g_str_has_prefix (network, "bridge:"))
    {
      kd_attr (iface, "type", "bridge");
      node = kd_el (iface, "source");
      kd_attr (node, "bridge", network + strlen ("bridge:"));
    }
  else
    {
      kd_attr (iface, "type", "network");
      node = kd_el (iface, "source");
      kd_attr (node, "network", network);
    }
  node = kd_el (iface, "model");
  kd_attr (node, "type", "virtio");
}

/**
 * kd_hv_domain_xml_build:
 * @spec: the desktop's machine
 *
 * Builds the domain XML: metadata in kvmdesk's namespace, a virtio disk,
 * the chosen network, a display listening on @spec->graphics_listen
 * only, VGA video, USB tablet and keyboard. Pure.
 *
 * Returns: (transfer full): the XML, or %NULL with %KD_HV_ERROR_FAILED
 * naming the invalid field.
 */
char *
kd_hv_domain_xml_build (const KdHvDomainSpec  *spec,
                        GError               **error)
{
  g_autoptr(xmlDoc) doc = NULL;
  g_autofree char *memory = NULL;
  g_autofree char *vcpus = NULL;
  xmlNode *root, *os, *node, *features, *devices, *disk;
  xmlBuffer *buffer;
  xmlSaveCtxt *save;
  gboolean is_test, is_kvm, uefi;
  char *ret;

  g_return_val_if_fail (spec != NULL, NULL);
  if (!kd_hv_domain_spec_validate (spec, error))
    return NULL;

  is_test = g_str_equal (spec->domain_type, "test");
  is_kvm = g_str_equal (spec->domain_type, "kvm");
  uefi = g_strcmp0 (spec->firmware, "uefi") == 0;

  doc = xmlNewDoc ((const xmlChar *) "1.0");
  root = xmlNewNode (NULL, (const xmlChar *) "domain");
  xmlDocSetRootElement (doc, root);
  kd_attr (root, "type", spec->domain_type);

  kd_text (root, "name", spec->name);
  if (spec->uuid != NULL)
    kd_text (root, "uuid", spec->uuid);
  if (spec->title != NULL && *spec->title != '\0')
    kd_text (root, "title", spec->title);
  kd_hv_add_metadata (root, spec);

  memory = g_strdup_printf ("%" G_GINT64_FORMAT, spec->memory_mib);
  node = kd_text (root, "memory", memory);
  kd_attr (node, "unit", "MiB");
  vcpus = g_strdup_printf ("%" G_GINT64_FORMAT, spec->vcpus);
  kd_text (root, "vcpu", vcpus);

  os = kd_el (root, "os");
  if (uefi)
    kd_attr (os, "firmware", "efi");
  node = kd_text (os, "type", "hvm");
  kd_attr (node, "arch", spec->arch != NULL ? spec->arch : "x86_64");
  if (spec->machine != NULL)
    kd_attr (node, "machine", spec->machine);
  node = kd_el (os, "boot");
  kd_attr (node, "dev", "hd");
  if (!is_test)
    {
      node = kd_el (os, "bootmenu");
      kd_attr (node, "enable", "no");
    }

  features = kd_el (root, "features");
  kd_el (features, "acpi");
  kd_el (features, "apic");

  if (is_kvm)
    {
      node = kd_el (root, "cpu");
      kd_attr (node, "mode", "host-model");
    }

  node = kd_el (root, "clock");
  kd_attr (node, "offset", "utc");
  kd_text (root, "on_poweroff", "destroy");
  kd_text (root, "on_reboot", "restart");
  kd_text (root, "on_crash", "destroy");

  devices = kd_el (root, "devices");
  disk = kd_el (devices, "disk");
  kd_attr (disk, "type", "file");
  kd_attr (disk, "device", "disk");
  node = kd_el (disk, "driver");
  kd_attr (node, "name", "qemu");
  kd_attr (node, "type", spec->disk_format != NULL ? spec->disk_format : "qcow2");
  node = kd_el (disk, "source");
  kd_attr (node, "file", spec->disk_path);
  node = kd_el (disk, "target");
  kd_attr (node, "dev", "vda");
  kd_attr (node, "bus", "virtio");

  kd_hv_add_network (devices, spec);
  kd_hv_add_graphics (devices, spec);
  kd_hv_add_hostdevs (devices, spec);

  if (!is_test)
    {
      if (g_strcmp0 (spec->display, "dbus") == 0)
        {
          node = kd_el (devices, "audio");
          kd_attr (node, "id", "1");
          kd_attr (node, "type", "dbus");
        }
      if (g_strcmp0 (spec->display, "spice") == 0)
        {
          xmlNode *channel = kd_el (devices, "channel");
          kd_attr (channel, "type", "spicevmc");
          node = kd_el (channel, "target");
          kd_attr (node, "type", "virtio");
          kd_attr (node, "name", "com.redhat.spice.0");
        }
      node = kd_el (kd_el (devices, "video"), "model");
      kd_attr (node, "type", "vga");
      node = kd_el (devices, "input");
      kd_attr (node, "type", "tablet");
      kd_attr (node, "bus", "usb");
      node = kd_el (devices, "input");
      kd_attr (node, "type", "keyboard");
      kd_attr (node, "bus", "usb");
      node = kd_el (devices, "memballoon");
      kd_attr (node, "model", "virtio");
    }

  buffer = xmlBufferCreate ();
  save = xmlSaveToBuffer (buffer, "UTF-8", XML_SAVE_FORMAT | XML_SAVE_NO_DECL);
  if (save == NULL || xmlSaveDoc (save, doc) < 0)
    {
      if (save != NULL)
        xmlSaveClose (save);
      xmlBufferFree (buffer);
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "cannot serialise the XML of domain '%s'", spec->name);
      return NULL;
    }
  xmlSaveClose (save);
  ret = g_strndup ((const char *) xmlBufferContent (buffer), xmlBufferLength (buffer));
  xmlBufferFree (buffer);
  return ret;
}
