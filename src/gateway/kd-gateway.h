/*
 * kd-gateway.h: the console gateway core. A browser's WebSocket (noVNC)
 * on one side, a desktop's VNC server (QEMU) on the other; the gateway
 * terminates the RFB security handshake toward QEMU itself (VNC passwords
 * never reach the browser) and offers the browser "None".
 *
 * This library knows no HTTP server and no libvirt: the caller (kvmdeskd)
 * does the HTTP upgrade, obtains the VNC socket, and hands both file
 * descriptors to a KdGatewaySession. It depends on src/common, GLib/GIO,
 * wslay (framing), nettle (DES for VNC auth) and libsodium (tickets).
 *
 * Errors are KD_GATEWAY_ERROR; nothing here logs above debug level.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define KD_GATEWAY_ERROR (kd_gateway_error_quark ())
GQuark kd_gateway_error_quark (void);

typedef enum {
  KD_GATEWAY_ERROR_FAILED,           /* something broke on our side */
  KD_GATEWAY_ERROR_TICKET_MALFORMED, /* not something we could have issued */
  KD_GATEWAY_ERROR_TICKET_UNKNOWN,   /* well-formed but never issued (forged) or purged */
  KD_GATEWAY_ERROR_TICKET_USED,      /* redeemed before */
  KD_GATEWAY_ERROR_TICKET_EXPIRED,   /* older than KD_GATEWAY_TICKET_TTL_SEC */
  KD_GATEWAY_ERROR_TOO_MANY_TICKETS, /* the store is full */
  KD_GATEWAY_ERROR_BAD_UPGRADE,      /* not a WebSocket upgrade we accept */
  KD_GATEWAY_ERROR_RFB_PROTOCOL,     /* a peer broke the RFB protocol */
  KD_GATEWAY_ERROR_RFB_UNSUPPORTED,  /* no security type or version in common */
  KD_GATEWAY_ERROR_RFB_AUTH_FAILED,  /* the VNC server refused us */
  KD_GATEWAY_ERROR_INVALID,          /* a value that cannot go into a viewer file */
} KdGatewayError;

/* ---- Tickets: random, one-time, bound to (user, desktop), short-lived ---- */

/* How long a ticket stays valid after it is issued, in seconds. */
#define KD_GATEWAY_TICKET_TTL_SEC 30
/* At most this many tickets (unredeemed, or redeemed and not yet expired)
 * are kept; issuing more fails until some expire. */
#define KD_GATEWAY_TICKET_MAX_LIVE 10000
/* Random bytes in a ticket (encoded as URL-safe base64 without padding). */
#define KD_GATEWAY_TICKET_RANDOM_BYTES 32

typedef struct _KdGatewayTickets KdGatewayTickets;

KdGatewayTickets *kd_gateway_tickets_new    (void);
void              kd_gateway_tickets_free   (KdGatewayTickets *tickets);
guint             kd_gateway_tickets_count  (KdGatewayTickets *tickets);
char             *kd_gateway_ticket_issue   (KdGatewayTickets *tickets,
                                             gint64            user_id,
                                             gint64            desktop_id,
                                             gint64            now_usec,
                                             GError          **error);
gboolean          kd_gateway_ticket_redeem  (KdGatewayTickets *tickets,
                                             const char       *ticket,
                                             gint64            now_usec,
                                             gint64           *out_user_id,
                                             gint64           *out_desktop_id,
                                             GError          **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdGatewayTickets, kd_gateway_tickets_free)

/* ---- WebSocket upgrade (RFC 6455) ---- */

/* The request headers that matter; NULL where absent. */
typedef struct {
  const char *method;      /* "GET" */
  const char *upgrade;     /* Upgrade */
  const char *connection;  /* Connection */
  const char *version;     /* Sec-WebSocket-Version */
  const char *key;         /* Sec-WebSocket-Key */
  const char *protocols;   /* Sec-WebSocket-Protocol, may be NULL */
} KdGatewayWsRequest;

char     *kd_gateway_ws_accept_key        (const char *key);
gboolean  kd_gateway_ws_validate_request  (const KdGatewayWsRequest *request,
                                           char                    **out_accept,
                                           char                    **out_protocol,
                                           GError                  **error);
gboolean  kd_gateway_origin_allowed       (const char *origin,
                                           const char *host_header,
                                           gboolean    tls);

/* ---- Sessions: one browser console ---- */

/* Defaults of KdGatewayLimits (sizes in bytes, times in milliseconds). */
#define KD_GATEWAY_MAX_MESSAGE_BYTES        (1024 * 1024)  /* inbound WS message; over it: close 1009 */
#define KD_GATEWAY_READ_BUDGET_BYTES        (256 * 1024)   /* read per wake-up, per side */
#define KD_GATEWAY_MAX_QUEUED_BROWSER_BYTES (512 * 1024)   /* queued toward the browser: a stalled browser costs at most this + one read */
#define KD_GATEWAY_MAX_QUEUED_VNC_BYTES     (256 * 1024)   /* queued toward VNC */
#define KD_GATEWAY_HANDSHAKE_TIMEOUT_MS     (15 * 1000)    /* both RFB handshakes done by then */
#define KD_GATEWAY_PING_INTERVAL_MS         (30 * 1000)    /* browser silent this long: ping */
#define KD_GATEWAY_IDLE_TIMEOUT_MS          (90 * 1000)    /* browser silent this long: closed */
#define KD_GATEWAY_CLOSE_TIMEOUT_MS         (5 * 1000)     /* wait for the close handshake */

typedef struct {
  gsize max_message_bytes;
  gsize read_budget_bytes;
  gsize max_queued_browser_bytes;
  gsize max_queued_vnc_bytes;
  guint handshake_timeout_ms;
  guint ping_interval_ms;
  guint idle_timeout_ms;
  guint close_timeout_ms;
} KdGatewayLimits;

void kd_gateway_limits_init_default (KdGatewayLimits *limits);

typedef struct {
  guint64 ws_bytes_in;       /* raw bytes read from the browser socket (frames) */
  guint64 ws_bytes_out;      /* raw bytes written to the browser socket */
  guint64 vnc_bytes_in;      /* bytes read from the VNC server */
  guint64 vnc_bytes_out;     /* bytes written to the VNC server */
  guint64 wakeups;           /* dispatches of the session's source */
  gsize   queued_browser;    /* payload bytes waiting to be sent to the browser now */
  gsize   queued_vnc;        /* bytes waiting to be sent to the VNC server now */
  gsize   max_queued_browser;/* the most queued_browser ever was */
  gsize   max_queued_vnc;    /* the most queued_vnc ever was */
  gboolean passthrough;      /* both RFB handshakes are done */
} KdGatewayCounters;

typedef struct _KdGatewaySession KdGatewaySession;

/* Called once, from the main context, when the session ends; the sockets
 * are closed by then. The session may be freed from inside. */
typedef void (*KdGatewayClosedFunc) (KdGatewaySession *session,
                                     const char       *reason,
                                     gpointer          user_data);

KdGatewaySession *kd_gateway_session_new          (int                    ws_fd,
                                                   int                    vnc_fd,
                                                   const char            *vnc_password,
                                                   const KdGatewayLimits *limits,
                                                   KdGatewayClosedFunc    closed,
                                                   gpointer               user_data);
void              kd_gateway_session_close        (KdGatewaySession *session,
                                                   const char       *reason);
void              kd_gateway_session_get_counters (KdGatewaySession  *session,
                                                   KdGatewayCounters *out);
gboolean          kd_gateway_session_is_closed    (KdGatewaySession *session);
void              kd_gateway_session_free         (KdGatewaySession *session);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdGatewaySession, kd_gateway_session_free)

/* ---- Native viewer files (kd-gateway-files.c) ---- */

typedef struct {
  const char *type;        /* "vnc" | "spice" */
  const char *host;
  gint64      port;
  gint64      tls_port;    /* <= 0: none */
  const char *password;
  const char *title;       /* may be NULL */
  gint64      expires_at;  /* µs; written as a comment; 0: none */
  gboolean    fullscreen;
  gboolean    kiosk;       /* fullscreen, and kiosk-mode=1 for kvmdesk-client */
} KdGatewayVvSpec;

char *kd_gateway_vv_build  (const KdGatewayVvSpec *spec, GError **error);
char *kd_gateway_rdp_build (const char *host, gint64 port, const char *username,
                            gboolean fullscreen, GError **error);

G_END_DECLS
