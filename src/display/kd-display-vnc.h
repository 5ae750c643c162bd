/*
 * kd-display-vnc.h: kvmdesk-display's VNC front end (libvncserver) over a
 * KdDisplayClient, and the one-time VNC passwords it accepts.
 *
 * VNC authentication only, never "None": with no valid password every
 * viewer is refused. libvncserver runs on the GLib main loop (its sockets
 * watched as GSource fds, no polling), so an idle display costs no CPU.
 */
#pragma once

#include <gio/gio.h>

#include "kd-display-client.h"

G_BEGIN_DECLS

/* VNC authentication uses at most 8 bytes of a password (DES key). */
#define KD_DISPLAY_PASSWORD_MAX_LEN 8
/* At most this many passwords are valid at once (oldest dropped first). */
#define KD_DISPLAY_PASSWORDS_MAX    64

typedef struct _KdDisplayPasswords KdDisplayPasswords;

KdDisplayPasswords *kd_display_passwords_new   (void);
void                kd_display_passwords_free  (KdDisplayPasswords *passwords);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdDisplayPasswords, kd_display_passwords_free)
gboolean            kd_display_passwords_add   (KdDisplayPasswords *passwords,
                                                const char         *secret,
                                                gint64              valid_until,
                                                GError            **error);
void                kd_display_passwords_clear (KdDisplayPasswords *passwords);
guint               kd_display_passwords_count (KdDisplayPasswords *passwords,
                                                gint64              now);
gboolean            kd_display_passwords_check (KdDisplayPasswords *passwords,
                                                const guint8       *challenge,
                                                const guint8       *response,
                                                gsize               response_len,
                                                gint64              now);
gboolean            kd_display_passwords_load_file (KdDisplayPasswords *passwords,
                                                    const char         *path,
                                                    GError            **error);
/* VNC's DES response to @challenge (16 bytes) for @secret, into @response. */
void                kd_display_vnc_auth_response (const guint8 *challenge,
                                                  const char   *secret,
                                                  guint8       *response);

guint kd_display_vnc_keysym_to_qnum (guint32 keysym);

typedef struct _KdDisplayVnc KdDisplayVnc;

gboolean      kd_display_vnc_parse_listen (const char      *listen,
                                           GSocketAddress **out,
                                           GError         **error);
KdDisplayVnc *kd_display_vnc_new      (KdDisplayClient    *client,
                                       KdDisplayPasswords *passwords,
                                       const char         *listen,
                                       GError            **error);
void          kd_display_vnc_free     (KdDisplayVnc *vnc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdDisplayVnc, kd_display_vnc_free)
guint16       kd_display_vnc_get_port (KdDisplayVnc *vnc);
guint         kd_display_vnc_get_n_viewers (KdDisplayVnc *vnc);

/* Forwarded from the client's callbacks by the program. */
void          kd_display_vnc_resized        (KdDisplayVnc *vnc);
void          kd_display_vnc_damaged        (KdDisplayVnc *vnc);
void          kd_display_vnc_cursor_changed (KdDisplayVnc *vnc,
                                             gboolean      shape_changed);

G_END_DECLS
