/*
 * kd-hv-priv.h: what the files of src/hv share and nobody else sees:
 * cleanup functions for libvirt and libxml2 handles (declared once,
 * here), the conversion of libvirt's last error into a GError, and the
 * host's connection accessor. Never include this outside src/hv and its
 * unit tests.
 */
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/tree.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "hv/kd-hv.h"

G_BEGIN_DECLS

G_DEFINE_AUTOPTR_CLEANUP_FUNC (virConnect, virConnectClose)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (virDomain, virDomainFree)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (virStoragePool, virStoragePoolFree)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (virStorageVol, virStorageVolFree)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (virStream, virStreamFree)

G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlDoc, xmlFreeDoc)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlXPathContext, xmlXPathFreeContext)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlXPathObject, xmlXPathFreeObject)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlBuffer, xmlBufferFree)

/* Bounds on what we accept back from libvirt or write into it. */
#define KD_HV_XML_MAX_BYTES        (16 * 1024 * 1024)  /* domain/volume/caps XML */
#define KD_HV_UPLOAD_CHUNK_BYTES   (1024 * 1024)       /* one virStreamSend */
#define KD_HV_SHUTDOWN_POLL_MS     250
#define KD_HV_MIGRATE_POLL_MS      1000                /* job stats during a migration */

/* Sets @error from libvirt's last error of this thread, prefixed with
 * "host 'NAME': " and the printf-style context, and mapped to a
 * KdHvError code. @conn (nullable) is asked whether it is still alive
 * to tell a dead host (UNAVAILABLE) from a refusal. */
void kd_hv_set_error_from_libvirt (GError       **error,
                                   KdHvHost      *host,
                                   virConnectPtr  conn,
                                   const char    *format,
                                   ...) G_GNUC_PRINTF (4, 5);

/* Returns: (transfer full): a new reference on the host's connection, or
 * NULL with KD_HV_ERROR_UNAVAILABLE "host 'NAME' is not connected". */
virConnectPtr kd_hv_host_get_connection (KdHvHost  *host,
                                         GError   **error);

const char *kd_hv_host_get_pool_name (KdHvHost *host);

/* Looks up kvmdesk's pool on @conn; NOT_FOUND with a sentence if absent. */
virStoragePoolPtr kd_hv_host_lookup_pool (KdHvHost       *host,
                                          virConnectPtr   conn,
                                          GError        **error);

/* The domain @name on @conn, or NULL with NOT_FOUND "cannot find domain". */
virDomainPtr kd_hv_domain_lookup (KdHvHost       *host,
                                  virConnectPtr   conn,
                                  const char     *name,
                                  GError        **error);

/* The domain XML builder's <hostdev> for PCI functions (kd-hv-domain-xml.c). */
void kd_hv_xml_add_pci_hostdevs (xmlNode *devices, const char *const *addresses);

/* libxml2 helpers shared by the readers of libvirt XML. */
xmlDoc *kd_hv_xml_parse   (const char  *xml,
                           const char  *what,
                           GError     **error);
/* Returns: (transfer full): @doc as a string, or NULL with an error. */
char   *kd_hv_xml_dump    (xmlDoc      *doc,
                           GError     **error);
/* Returns: (transfer full) (nullable): string value of @xpath in @doc. */
char   *kd_hv_xml_string  (xmlDoc      *doc,
                           const char  *xpath);
/* Returns TRUE when @xpath selects at least one node (or a true boolean). */
gboolean kd_hv_xml_exists (xmlDoc      *doc,
                           const char  *xpath);

G_END_DECLS
