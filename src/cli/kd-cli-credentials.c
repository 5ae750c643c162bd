/*
 * kd-cli-credentials.c: the CLI's credentials file and the choice of URL
 * and token.
 *
 * The file ($XDG_CONFIG_HOME/kvmdesk/credentials.json, else
 * ~/.config/kvmdesk/credentials.json) holds {url, user, token, expires_at}.
 * It holds a secret: the directory is made 0700, the file is written
 * atomically with mode 0600, and a token is only ever sent to the URL it was
 * issued by.
 */
#include "kd-cli-credentials.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <json-glib/json-glib.h>
#include <glib/gstdio.h>

#include "common/kd-error.h"

/* A credentials file is a few hundred bytes; anything far larger is not ours. */
#define KD_CLI_CREDENTIALS_MAX_BYTES (64 * 1024)

void
kd_cli_credentials_free (KdCliCredentials *creds)
{
  if (creds == NULL)
    return;
  g_free (creds->url);
  g_free (creds->user);
  if (creds->token != NULL)
    memset (creds->token, 0, strlen (creds->token));
  g_free (creds->token);
  g_free (creds->expires_at);
  g_free (creds);
}

/**
 * kd_cli_credentials_path:
 * Returns: (transfer full): the credentials file of the current user.
 */
char *
kd_cli_credentials_path (void)
{
  return g_build_filename (g_get_user_config_dir (), "kvmdesk", "credentials.json", NULL);
}

static char *
dup_member (JsonObject *obj, const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return g_strdup (json_node_get_string (node));
}

/**
 * kd_cli_credentials_load:
 * @path: the credentials file
 *
 * Returns: (transfer full) (nullable): the stored credentials; %NULL without
 * an error when the file does not exist, %NULL with an error when it cannot
 * be read or is not a credentials file.
 */
KdCliCredentials *
kd_cli_credentials_load (const char *path, GError **error)
{
  g_autofree char *data = NULL;
  g_autoptr(GError) local = NULL;
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(KdCliCredentials) creds = NULL;
  JsonNode *root;
  gsize len = 0;

  if (!g_file_get_contents (path, &data, &len, &local))
    {
      if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        return NULL;
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  if (len > KD_CLI_CREDENTIALS_MAX_BYTES)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "credentials file '%s' is larger than %d bytes", path,
                   KD_CLI_CREDENTIALS_MAX_BYTES);
      return NULL;
    }
  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, data, len, &local))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "credentials file '%s' is not valid JSON: %s", path, local->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "credentials file '%s' is not a JSON object", path);
      return NULL;
    }
  creds = g_new0 (KdCliCredentials, 1);
  creds->url = dup_member (json_node_get_object (root), "url");
  creds->user = dup_member (json_node_get_object (root), "user");
  creds->token = dup_member (json_node_get_object (root), "token");
  creds->expires_at = dup_member (json_node_get_object (root), "expires_at");
  if (creds->url == NULL)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "credentials file '%s' has no \"url\"", path);
      return NULL;
    }
  return g_steal_pointer (&creds);
}

/**
 * kd_cli_credentials_save:
 * @path: the credentials file; its directory is created with mode 0700
 *
 * Writes @creds atomically with mode 0600.
 */
gboolean
kd_cli_credentials_save (const KdCliCredentials *creds, const char *path, GError **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *text = NULL;
  gboolean ok;

  if (g_mkdir_with_parents (dir, 0700) < 0)
    {
      int saved = errno;

      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                   "cannot create directory '%s': %s", dir, g_strerror (saved));
      return FALSE;
    }
  /* The directory may predate us with a looser mode. */
  if (g_chmod (dir, 0700) < 0)
    {
      int saved = errno;

      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                   "cannot restrict directory '%s' to its owner: %s", dir, g_strerror (saved));
      return FALSE;
    }

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "url");
  json_builder_add_string_value (builder, creds->url);
  json_builder_set_member_name (builder, "user");
  json_builder_add_string_value (builder, creds->user);
  json_builder_set_member_name (builder, "token");
  if (creds->token != NULL)
    json_builder_add_string_value (builder, creds->token);
  else
    json_builder_add_null_value (builder);
  if (creds->expires_at != NULL)
    {
      json_builder_set_member_name (builder, "expires_at");
      json_builder_add_string_value (builder, creds->expires_at);
    }
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);

  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, root);
  text = json_generator_to_data (gen, NULL);
  ok = g_file_set_contents_full (path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
  memset (text, 0, strlen (text));
  if (!ok)
    g_prefix_error (error, "cannot store credentials: ");
  return ok;
}

/**
 * kd_cli_url_normalize:
 * @url: an address of kvmdeskd as a person typed it
 *
 * Returns: (transfer full): @url without trailing slashes or "/api/v1"
 * ("http://h:8080/api/v1/" -> "http://h:8080"), or %NULL with
 * %KD_ERROR_INVALID when it is not an http(s) URL with a host.
 */
char *
kd_cli_url_normalize (const char *url, GError **error)
{
  g_autofree char *text = g_strstrip (g_strdup (url != NULL ? url : ""));
  g_autoptr(GUri) uri = NULL;
  const char *scheme;
  gsize len;

  uri = g_uri_parse (text, G_URI_FLAGS_NONE, NULL);
  scheme = uri != NULL ? g_uri_get_scheme (uri) : NULL;
  if (uri == NULL || scheme == NULL
      || (g_ascii_strcasecmp (scheme, "http") != 0 && g_ascii_strcasecmp (scheme, "https") != 0)
      || g_uri_get_host (uri) == NULL || g_uri_get_host (uri)[0] == '\0'
      || g_uri_get_query (uri) != NULL || g_uri_get_fragment (uri) != NULL)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "'%s' is not a kvmdeskd URL (expected http://HOST:PORT or https://HOST:PORT)",
                   text);
      return NULL;
    }
  len = strlen (text);
  for (;;)
    {
      while (len > 0 && text[len - 1] == '/')
        len--;
      if (len >= 7 && strncmp (text + len - 7, "/api/v1", 7) == 0)
        len -= 7;
      else
        break;
    }
  text[len] = '\0';
  return g_steal_pointer (&text);
}

/**
 * kd_cli_resolve_url:
 * @flag_url: (nullable): --url
 * @env_url: (nullable): $KVMDESK_URL
 * @stored: (nullable): the credentials of the last login
 *
 * Returns: (transfer full): the normalized URL of this call, first of
 * --url, $KVMDESK_URL, the URL of the last login, KD_CLI_DEFAULT_URL.
 */
char *
kd_cli_resolve_url (const char *flag_url, const char *env_url, const KdCliCredentials *stored,
                    GError **error)
{
  if (flag_url != NULL)
    return kd_cli_url_normalize (flag_url, error);
  if (env_url != NULL && env_url[0] != '\0')
    {
      char *url = kd_cli_url_normalize (env_url, error);

      if (url == NULL)
        g_prefix_error (error, "KVMDESK_URL: ");
      return url;
    }
  if (stored != NULL && stored->url != NULL)
    {
      char *url = kd_cli_url_normalize (stored->url, NULL);

      if (url != NULL)
        return url;
    }
  return g_strdup (KD_CLI_DEFAULT_URL);
}

/**
 * kd_cli_resolve_token:
 * @env_token: (nullable): $KVMDESK_TOKEN
 * @stored: (nullable): the credentials of the last login
 * @url: the normalized URL in use
 *
 * Returns: (transfer none) (nullable): $KVMDESK_TOKEN, else the stored token
 * when it was issued by @url (a token never goes to another server).
 */
const char *
kd_cli_resolve_token (const char *env_token, const KdCliCredentials *stored, const char *url)
{
  g_autofree char *stored_url = NULL;

  if (env_token != NULL && env_token[0] != '\0')
    return env_token;
  if (stored == NULL || stored->token == NULL || stored->token[0] == '\0')
    return NULL;
  stored_url = kd_cli_url_normalize (stored->url, NULL);
  if (stored_url == NULL || g_ascii_strcasecmp (stored_url, url) != 0)
    return NULL;
  return stored->token;
}
