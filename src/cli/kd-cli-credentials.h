/*
 * kd-cli-credentials.h: where the kvmdesk CLI keeps the API token of the
 * last login, and how it chooses the server URL and token of a call.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define KD_CLI_DEFAULT_URL "http://127.0.0.1:8080"

typedef struct {
  char *url;          /* normalized, as in use at login */
  char *user;
  char *token;        /* NULL after logout */
  char *expires_at;   /* as the server gave it, may be NULL */
} KdCliCredentials;

void               kd_cli_credentials_free (KdCliCredentials *creds);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdCliCredentials, kd_cli_credentials_free)

char             *kd_cli_credentials_path (void);
KdCliCredentials *kd_cli_credentials_load (const char  *path,
                                           GError     **error);
gboolean          kd_cli_credentials_save (const KdCliCredentials *creds,
                                           const char             *path,
                                           GError                **error);

char       *kd_cli_url_normalize (const char  *url,
                                  GError     **error);
char       *kd_cli_resolve_url   (const char              *flag_url,
                                  const char              *env_url,
                                  const KdCliCredentials  *stored,
                                  GError                 **error);
const char *kd_cli_resolve_token (const char             *env_token,
                                  const KdCliCredentials *stored,
                                  const char             *url);

G_END_DECLS
