/*
 * kd-gateway-ws.c: the WebSocket upgrade as the gateway accepts it
 * (RFC 6455 section 4.2): request validation, the Sec-WebSocket-Accept
 * answer, the subprotocol choice ("binary", which noVNC asks for) and the
 * Origin check against the broker's own Host.
 *
 * No extension is ever negotiated (no permessage-deflate: VNC encodings are
 * already compressed and deflate cost 23x in throughput when measured).
 * The HTTP server itself (libmicrohttpd) is not known here; framing after
 * the upgrade is in kd-gateway-session.c.
 */
#include "gateway/kd-gateway.h"

#include <string.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_CHARS 24          /* base64 of 16 bytes */
#define WS_MAX_HEADER_CHARS 4096 /* any header longer than this is refused */

/**
 * kd_gateway_ws_accept_key:
 * @key: the client's Sec-WebSocket-Key
 *
 * Returns: (transfer full): base64 (SHA-1 (key + RFC 6455 GUID)).
 */
char *
kd_gateway_ws_accept_key (const char *key)
{
  g_autoptr(GChecksum) sha1 = g_checksum_new (G_CHECKSUM_SHA1);
  guint8 digest[20];
  gsize digest_len = sizeof digest;

  g_checksum_update (sha1, (const guchar *) key, strlen (key));
  g_checksum_update (sha1, (const guchar *) WS_GUID, strlen (WS_GUID));
  g_checksum_get_digest (sha1, digest, &digest_len);
  return g_base64_encode (digest, digest_len);
}

/* Does the comma-separated @list hold @token (case-insensitive)? */
static gboolean
header_has_token (const char *list, const char *token)
{
  g_auto(GStrv) parts = NULL;

  if (list == NULL || strlen (list) > WS_MAX_HEADER_CHARS)
    return FALSE;
  parts = g_strsplit (list, ",", -1);
  for (guint i = 0; parts[i] != NULL; i++)
    {
      g_strstrip (parts[i]);
      if (g_ascii_strcasecmp (parts[i], token) == 0)
        return TRUE;
    }
  return FALSE;
}

static gboolean
key_valid (const char *key)
{
  gsize i;

  if (key == NULL || strlen (key) != WS_KEY_CHARS)
    return FALSE;
  for (i = 0; i < 22; i++)
    if (!(g_ascii_isalnum (key[i]) || key[i] == '+' || key[i] == '/'))
      return FALSE;
  /* 16 bytes leave 4 unused bits in the last character: only A, Q, g, w */
  if (strchr ("AQgw", key[21]) == NULL)
    return FALSE;
  return key[22] == '=' && key[23] == '=';
}

/**
 * kd_gateway_ws_validate_request:
 * @request: the request's method and headers
 * @out_accept: (out) (optional): the Sec-WebSocket-Accept value to answer
 * @out_protocol: (out) (optional) (nullable): the subprotocol to answer
 *   ("binary" when offered), or %NULL to send no Sec-WebSocket-Protocol
 * @error: return location for a #GError
 *
 * Checks that the request is a WebSocket version 13 upgrade we accept.
 * The caller answers 101 with Upgrade, Connection, Sec-WebSocket-Accept,
 * the protocol if any, and never Sec-WebSocket-Extensions.
 *
 * Returns: %TRUE, or %FALSE with KD_GATEWAY_ERROR_BAD_UPGRADE.
 */
gboolean
kd_gateway_ws_validate_request (const KdGatewayWsRequest *request,
                                char                    **out_accept,
                                char                    **out_protocol,
                                GError                  **error)
{
  g_return_val_if_fail (request != NULL, FALSE);

  if (request->method == NULL || strcmp (request->method, "GET") != 0)
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_BAD_UPGRADE,
                   "a WebSocket upgrade must use GET, not '%.16s'",
                   request->method ? request->method : "");
      return FALSE;
    }
  if (!header_has_token (request->upgrade, "websocket"))
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_BAD_UPGRADE,
                   "the request does not ask for a WebSocket (Upgrade: '%.64s')",
                   request->upgrade ? request->upgrade : "");
      return FALSE;
    }
  if (!header_has_token (request->connection, "upgrade"))
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_BAD_UPGRADE,
                   "the request's Connection header lacks 'upgrade' ('%.64s')",
                   request->connection ? request->connection : "");
      return FALSE;
    }
  if (request->version == NULL || strcmp (request->version, "13") != 0)
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_BAD_UPGRADE,
                   "unsupported WebSocket version '%.16s' (only 13 is)",
                   request->version ? request->version : "");
      return FALSE;
    }
  if (!key_valid (request->key))
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_BAD_UPGRADE,
                   "the Sec-WebSocket-Key '%.32s' is not 16 bytes in base64",
                   request->key ? request->key : "");
      return FALSE;
    }

  if (out_accept != NULL)
    *out_accept = kd_gateway_ws_accept_key (request->key);
  if (out_protocol != NULL)
    *out_protocol = header_has_token (request->protocols, "binary") ? g_strdup ("binary") : NULL;
  return TRUE;
}

/* Splits "host[:port]" (IPv6 as "[addr]:port") into lower-case host and
 * the port, or the scheme's default port when absent. */
static gboolean
split_authority (const char *authority, gboolean tls, char **out_host, guint *out_port)
{
  const char *colon;
  g_autofree char *host = NULL;
  guint64 port = tls ? 443 : 80;

  if (authority == NULL || authority[0] == '\0' || strlen (authority) > 255)
    return FALSE;
  for (const char *p = authority; *p; p++)
    if (!g_ascii_isalnum (*p) && strchr ("-._:[]", *p) == NULL)
      return FALSE;

  if (authority[0] == '[')
    {
      const char *end = strchr (authority, ']');
      if (end == NULL)
        return FALSE;
      host = g_ascii_strdown (authority, end - authority + 1);
      colon = end[1] == ':' ? end + 1 : NULL;
      if (end[1] != '\0' && colon == NULL)
        return FALSE;
    }
  else
    {
      colon = strchr (authority, ':');
      if (colon != NULL && strchr (colon + 1, ':') != NULL)
        return FALSE;
      host = g_ascii_strdown (authority, colon ? colon - authority : -1);
    }
  if (host[0] == '\0')
    return FALSE;
  if (colon != NULL)
    {
      char *end = NULL;
      if (colon[1] == '\0' || !g_ascii_isdigit (colon[1]))
        return FALSE;
      port = g_ascii_strtoull (colon + 1, &end, 10);
      if (*end != '\0' || port == 0 || port > 65535)
        return FALSE;
    }
  *out_host = g_steal_pointer (&host);
  *out_port = (guint) port;
  return TRUE;
}

/**
 * kd_gateway_origin_allowed:
 * @origin: (nullable): the request's Origin header
 * @host_header: (nullable): the request's Host header
 * @tls: whether the broker serves this request over TLS
 *
 * A console WebSocket is accepted only from a page of the broker itself:
 * the Origin's scheme must be the one the broker serves (https with TLS,
 * http without) and its host and port those of the Host header (default
 * ports made explicit). A missing Origin, "null", a path or userinfo in
 * the Origin are refused.
 *
 * Returns: whether the Origin is the broker's own.
 */
gboolean
kd_gateway_origin_allowed (const char *origin, const char *host_header, gboolean tls)
{
  const char *scheme = tls ? "https://" : "http://";
  g_autofree char *origin_host = NULL;
  g_autofree char *own_host = NULL;
  guint origin_port = 0, own_port = 0;

  if (origin == NULL || host_header == NULL)
    return FALSE;
  if (g_ascii_strncasecmp (origin, scheme, strlen (scheme)) != 0)
    return FALSE;
  if (!split_authority (origin + strlen (scheme), tls, &origin_host, &origin_port))
    return FALSE;
  if (!split_authority (host_header, tls, &own_host, &own_port))
    return FALSE;
  return strcmp (origin_host, own_host) == 0 && origin_port == own_port;
}
