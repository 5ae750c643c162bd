/*
 * kd-gateway-priv.h: pieces of the console gateway that the session uses
 * internally and the unit tests drive directly: the RFB security
 * handshake state machine. Not for other modules.
 */
#pragma once

#include "gateway/kd-gateway.h"

G_BEGIN_DECLS

/* Bounds on what a peer may send during the handshake. */
#define KD_GATEWAY_RFB_VERSION_BYTES    12          /* "RFB 003.008\n" */
#define KD_GATEWAY_RFB_MAX_REASON_BYTES (4 * 1024)  /* failure reason string */
#define KD_GATEWAY_RFB_MAX_PENDING      (8 * 1024)  /* unconsumed input while handshaking */

/*
 * KdGatewayRfb: fed bytes from both peers, produces bytes for both. Toward
 * the VNC server ("server") it is a client; toward the browser ("client")
 * a server offering only security type None. Once both sides are done
 * (kd_gateway_rfb_is_done()) any surplus input has been moved to the
 * other side's output and the caller passes everything through.
 */
typedef struct _KdGatewayRfb KdGatewayRfb;

KdGatewayRfb *kd_gateway_rfb_new          (const char *vnc_password);
void          kd_gateway_rfb_free         (KdGatewayRfb *rfb);
gboolean      kd_gateway_rfb_feed_server  (KdGatewayRfb  *rfb,
                                           const guint8  *data,
                                           gsize          len,
                                           GError       **error);
gboolean      kd_gateway_rfb_feed_client  (KdGatewayRfb  *rfb,
                                           const guint8  *data,
                                           gsize          len,
                                           GError       **error);
/* Output produced so far for each peer; NULL when there is none. */
GBytes       *kd_gateway_rfb_take_to_server (KdGatewayRfb *rfb);
GBytes       *kd_gateway_rfb_take_to_client (KdGatewayRfb *rfb);
gboolean      kd_gateway_rfb_is_done      (KdGatewayRfb *rfb);
gboolean      kd_gateway_rfb_server_done  (KdGatewayRfb *rfb);
/* Which security type was used toward the VNC server (0 until chosen). */
guint8        kd_gateway_rfb_server_security_type (KdGatewayRfb *rfb);
/* Which minor version the browser chose (3, 7 or 8; 0 until known). */
int           kd_gateway_rfb_client_minor (KdGatewayRfb *rfb);

/* VNC authentication's answer: DES (ECB) of the challenge with the
 * password's first 8 bytes, each bit-reversed, as the key. */
void          kd_gateway_rfb_vnc_auth_response (const char   *password,
                                                const guint8  challenge[16],
                                                guint8        response[16]);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdGatewayRfb, kd_gateway_rfb_free)

G_END_DECLS
