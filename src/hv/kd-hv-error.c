/*
 * kd-hv-error.c: the KD_HV_ERROR domain, the conversion of libvirt's
 * thread-local last error into GErrors with context, and small libxml2
 * readers for the XML libvirt hands back. Nothing here logs or prints.
 */
#include "hv/kd-hv-priv.h"

#include <string.h>

G_DEFINE_QUARK (kd-hv-error-quark, kd_hv_error)

static KdHvError
kd_hv_error_code_from_libvirt (int         code,
                               const char *message,
                               gboolean    conn_dead)
{
  switch (code)
    {
    case VIR_ERR_NO_DOMAIN:
    case VIR_ERR_NO_STORAGE_VOL:
    case VIR_ERR_NO_STORAGE_POOL:
    case VIR_ERR_NO_DOMAIN_METADATA:
      return KD_HV_ERROR_NOT_FOUND;
    case VIR_ERR_DOM_EXIST:
    case VIR_ERR_STORAGE_VOL_EXIST:
    case VIR_ERR_STORAGE_POOL_BUILT:
      return KD_HV_ERROR_EXISTS;
    case VIR_ERR_NO_SUPPORT:
      return KD_HV_ERROR_UNSUPPORTED;
    case VIR_ERR_OPERATION_INVALID:
    case VIR_ERR_OPERATION_FAILED:
    case VIR_ERR_INTERNAL_ERROR:
      if (message != NULL && strstr (message, "already exists") != NULL)
        return KD_HV_ERROR_EXISTS;
      break;
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_INVALID_CONN:
      return KD_HV_ERROR_UNAVAILABLE;
    default:
      break;
    }

  if (conn_dead &&
      (code == VIR_ERR_SYSTEM_ERROR || code == VIR_ERR_RPC ||
       code == VIR_ERR_INTERNAL_ERROR || code == VIR_ERR_OPERATION_FAILED ||
       code == VIR_ERR_AUTH_FAILED || code == VIR_ERR_OPERATION_TIMEOUT))
    return KD_HV_ERROR_UNAVAILABLE;

  return KD_HV_ERROR_FAILED;
}

void
kd_hv_set_error_from_libvirt (GError       **error,
                              KdHvHost      *host,
                              virConnectPtr  conn,
                              const char    *format,
                              ...)
{
  /* Read libvirt's error first: every later libvirt call resets it. */
  virErrorPtr lv = virGetLastError ();
  int code = lv != NULL ? lv->code : VIR_ERR_INTERNAL_ERROR;
  g_autofree char *message = g_strdup (lv != NULL && lv->message != NULL
                                       ? lv->message : "unknown libvirt error");
  g_autofree char *context = NULL;
  gboolean conn_dead = FALSE;
  va_list args;

  if (conn != NULL)
    conn_dead = virConnectIsAlive (conn) != 1;
  virResetLastError ();

  va_start (args, format);
  context = g_strdup_vprintf (format, args);
  va_end (args);

  g_set_error (error, KD_HV_ERROR,
               kd_hv_error_code_from_libvirt (code, message, conn_dead),
               "host '%s': %s: %s",
               host != NULL ? kd_hv_host_get_name (host) : "?",
               context, message);
}

xmlDoc *
kd_hv_xml_parse (const char  *xml,
                 const char  *what,
                 GError     **error)
{
  xmlDoc *doc;
  size_t len = xml != NULL ? strlen (xml) : 0;

  if (len == 0 || len > KD_HV_XML_MAX_BYTES)
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "cannot parse %s: %s", what,
                   len == 0 ? "it is empty" : "it is too large");
      return NULL;
    }
  doc = xmlReadMemory (xml, (int) len, NULL, NULL,
                       XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (doc == NULL || xmlDocGetRootElement (doc) == NULL)
    {
      if (doc != NULL)
        xmlFreeDoc (doc);
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED,
                   "cannot parse %s: it is not well-formed XML", what);
      return NULL;
    }
  return doc;
}

/* The document written back as a string (for libvirt), or NULL. */
char *
kd_hv_xml_dump (xmlDoc  *doc,
                GError **error)
{
  xmlChar *out = NULL;
  int out_len = 0;
  char *ret;

  xmlDocDumpFormatMemory (doc, &out, &out_len, 1);
  if (out == NULL)
    {
      g_set_error (error, KD_HV_ERROR, KD_HV_ERROR_FAILED, "cannot write the XML document");
      return NULL;
    }
  ret = g_strndup ((const char *) out, out_len);
  xmlFree (out);
  return ret;
}

static xmlXPathObject *
kd_hv_xml_eval (xmlDoc     *doc,
                const char *xpath)
{
  g_autoptr(xmlXPathContext) ctx = xmlXPathNewContext (doc);

  if (ctx == NULL)
    return NULL;
  return xmlXPathEvalExpression ((const xmlChar *) xpath, ctx);
}

char *
kd_hv_xml_string (xmlDoc     *doc,
                  const char *xpath)
{
  g_autoptr(xmlXPathObject) obj = kd_hv_xml_eval (doc, xpath);
  xmlChar *value;
  char *ret;

  if (obj == NULL)
    return NULL;
  if (obj->type == XPATH_NODESET &&
      (obj->nodesetval == NULL || obj->nodesetval->nodeNr == 0))
    return NULL;
  value = xmlXPathCastToString (obj);
  if (value == NULL)
    return NULL;
  ret = g_strdup ((const char *) value);
  xmlFree (value);
  return ret;
}

gboolean
kd_hv_xml_exists (xmlDoc     *doc,
                  const char *xpath)
{
  g_autoptr(xmlXPathObject) obj = kd_hv_xml_eval (doc, xpath);

  if (obj == NULL)
    return FALSE;
  if (obj->type == XPATH_NODESET)
    return obj->nodesetval != NULL && obj->nodesetval->nodeNr > 0;
  return xmlXPathCastToBoolean (obj);
}
