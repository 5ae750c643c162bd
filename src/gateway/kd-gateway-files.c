/*
 * kd-gateway-files.c: connection files for native viewers.
 *
 * .vv (virt-viewer/remote-viewer) files are GKeyFiles with one
 * [virt-viewer] group; remote-viewer reads them with GKeyFile too, so
 * writing them with GKeyFile escapes every value the way it is read back
 * (a title cannot add a line of its own). .rdp files are the
 * "name:type:value" lines mstsc and FreeRDP read, CRLF-terminated; their
 * values are refused when they hold a control character.
 */
#include "gateway/kd-gateway.h"

#include <string.h>

static gboolean
kd_files_check (const char *what, const char *value, gboolean required, GError **error)
{
  if (value == NULL || *value == '\0')
    {
      if (!required)
        return TRUE;
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_INVALID, "a viewer file needs a %s", what);
      return FALSE;
    }
  if (!g_utf8_validate (value, -1, NULL) || strlen (value) > 1024)
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_INVALID,
                   "the %s of a viewer file is not valid text", what);
      return FALSE;
    }
  for (const char *p = value; *p; p++)
    if ((guchar) *p < 0x20 || *p == 0x7f)
      {
        g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_INVALID,
                     "the %s of a viewer file holds a control character", what);
        return FALSE;
      }
  return TRUE;
}

/**
 * kd_gateway_vv_build:
 * Returns: (transfer full): the text of a .vv file, or %NULL with
 * KD_GATEWAY_ERROR_INVALID.
 */
char *
kd_gateway_vv_build (const KdGatewayVvSpec *spec, GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  const char *g = "virt-viewer";

  if (spec->type == NULL || (!g_str_equal (spec->type, "vnc") && !g_str_equal (spec->type, "spice")))
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_INVALID,
                   "a viewer file is for vnc or spice, not '%s'", spec->type ? spec->type : "");
      return NULL;
    }
  if (!kd_files_check ("host", spec->host, TRUE, error) ||
      !kd_files_check ("password", spec->password, TRUE, error) ||
      !kd_files_check ("title", spec->title, FALSE, error))
    return NULL;
  if (spec->port < 1 || spec->port > 65535 || spec->tls_port > 65535)
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_INVALID,
                   "a viewer file needs a port from 1 to 65535");
      return NULL;
    }
  g_key_file_set_string (kf, g, "type", spec->type);
  g_key_file_set_string (kf, g, "host", spec->host);
  g_key_file_set_integer (kf, g, "port", (int) spec->port);
  if (spec->tls_port > 0)
    g_key_file_set_integer (kf, g, "tls-port", (int) spec->tls_port);
  g_key_file_set_string (kf, g, "password", spec->password);
  if (spec->title != NULL && *spec->title != '\0')
    g_key_file_set_string (kf, g, "title", spec->title);
  /* The password is one-time: the file is useless once used. */
  g_key_file_set_integer (kf, g, "delete-this-file", 1);
  g_key_file_set_integer (kf, g, "fullscreen", spec->fullscreen || spec->kiosk ? 1 : 0);
  if (spec->kiosk)
    g_key_file_set_integer (kf, g, "kiosk-mode", 1);
  g_key_file_set_string (kf, g, "release-cursor", "shift+f12");
  g_key_file_set_string (kf, g, "secure-attention", "ctrl+alt+end");
  if (spec->expires_at > 0)
    {
      g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc (spec->expires_at / G_USEC_PER_SEC);
      g_autofree char *when = t ? g_date_time_format_iso8601 (t) : NULL;
      g_autofree char *comment = when ? g_strdup_printf (" kvmdesk: the password expires at %s", when) : NULL;
      if (comment != NULL)
        g_key_file_set_comment (kf, g, NULL, comment, NULL);
    }
  return g_key_file_to_data (kf, NULL, NULL);
}

/**
 * kd_gateway_rdp_build:
 * Returns: (transfer full): the text of a .rdp file for @host:@port.
 */
char *
kd_gateway_rdp_build (const char *host, gint64 port, const char *username, gboolean fullscreen,
                      GError **error)
{
  GString *out;

  if (!kd_files_check ("host", host, TRUE, error) || !kd_files_check ("user name", username, FALSE, error))
    return NULL;
  if (port < 1 || port > 65535)
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_INVALID,
                   "an RDP file needs a port from 1 to 65535");
      return NULL;
    }
  out = g_string_new (NULL);
  /* An IPv6 address goes in brackets before the port. */
  if (strchr (host, ':') != NULL)
    g_string_append_printf (out, "full address:s:[%s]:%" G_GINT64_FORMAT "\r\n", host, port);
  else
    g_string_append_printf (out, "full address:s:%s:%" G_GINT64_FORMAT "\r\n", host, port);
  if (username != NULL && *username != '\0')
    g_string_append_printf (out, "username:s:%s\r\n", username);
  g_string_append (out, "prompt for credentials:i:1\r\n");
  g_string_append_printf (out, "screen mode id:i:%d\r\n", fullscreen ? 2 : 1);
  g_string_append (out, "authentication level:i:2\r\n");
  return g_string_free (out, FALSE);
}
