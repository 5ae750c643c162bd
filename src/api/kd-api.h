/*
 * kd-api.h: kvmdesk's REST API: an HTTP server (libmicrohttpd driven by
 * the GLib main loop), authentication, authorization, and the one place
 * where errors become HTTP statuses. Decides what a person sees.
 */
#pragma once

#include <gio/gio.h>

#include "broker/kd-broker.h"

G_BEGIN_DECLS

typedef struct _KdApiServer KdApiServer;

/* Binds the listen address and starts serving on the thread-default main
 * context. */
KdApiServer *kd_api_server_new  (KdBroker  *broker,
                                 KdConfig  *config,
                                 GError   **error);
void         kd_api_server_free (KdApiServer *server);
/* "127.0.0.1:8080": the address actually bound (port 0 resolved). */
const char  *kd_api_server_get_address (KdApiServer *server);
/* "https://127.0.0.1:8443" or "http://…": how clients reach the server. */
const char  *kd_api_server_get_base_url (KdApiServer *server);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdApiServer, kd_api_server_free)

/* Maps any kvmdesk GError to an HTTP status and an error code word. */
guint kd_api_error_status (const GError *error, const char **out_code);

/* ---- accounts (kd-api-auth.c) ---- */
gboolean kd_api_auth_init (GError **error);
/* argon2id hash in libsodium's string format; slow on purpose: call it
 * from a worker thread (or at start-up). */
char    *kd_api_password_hash   (const char *password, GError **error);
gboolean kd_api_password_verify (const char *hash, const char *password);
/* Creates user 'admin' when there is no user: with @password, or with a
 * generated one returned in *@out_generated (to print once). */
gboolean kd_api_ensure_admin (KdStore     *store,
                              const char  *password,
                              char       **out_generated,
                              GError     **error);

G_END_DECLS
