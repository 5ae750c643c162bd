/*
 * kd-api-auth.c: passwords (argon2id through libsodium), bearer tokens
 * (random, stored only as a keyed hash), and the first admin account.
 */
#include "kd-api-priv.h"

#include "common/kd-error.h"
#include "common/kd-time.h"

#include <sodium.h>

#define KD_TOKEN_BYTES        32
#define KD_GENERATED_PW_BYTES 12
#define KD_PASSWORD_MAX       1024   /* bytes; longer input is refused */

gboolean
kd_api_auth_init (GError **error)
{
  if (sodium_init () < 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_FAILED, "libsodium could not be initialised");
      return FALSE;
    }
  return TRUE;
}

/**
 * kd_api_password_hash:
 * Returns: (transfer full): an argon2id hash string, or %NULL.
 */
char *
kd_api_password_hash (const char *password, GError **error)
{
  char out[crypto_pwhash_STRBYTES];

  if (password == NULL || *password == '\0')
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "the password must not be empty");
      return NULL;
    }
  if (strlen (password) > KD_PASSWORD_MAX)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "the password is longer than %d bytes",
                   KD_PASSWORD_MAX);
      return NULL;
    }
  if (crypto_pwhash_str_alg (out, password, strlen (password),
                             crypto_pwhash_OPSLIMIT_INTERACTIVE,
                             crypto_pwhash_MEMLIMIT_INTERACTIVE,
                             crypto_pwhash_ALG_ARGON2ID13) != 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_FAILED, "out of memory while hashing a password");
      return NULL;
    }
  return g_strdup (out);
}

gboolean
kd_api_password_verify (const char *hash, const char *password)
{
  if (hash == NULL || password == NULL || strlen (password) > KD_PASSWORD_MAX)
    return FALSE;
  return crypto_pwhash_str_verify (hash, password, strlen (password)) == 0;
}

/**
 * kd_api_token_new:
 * @out_hash: (out): what the store keeps
 * Returns: (transfer full): the bearer token given to the client.
 */
char *
kd_api_token_new (char **out_hash)
{
  guchar raw[KD_TOKEN_BYTES];
  char b64[sodium_base64_ENCODED_LEN (KD_TOKEN_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];

  randombytes_buf (raw, sizeof raw);
  sodium_bin2base64 (b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero (raw, sizeof raw);
  *out_hash = kd_api_token_hash (b64);
  return g_strdup (b64);
}

/**
 * kd_api_token_hash:
 * Returns: (transfer full): hex BLAKE2b of @token; tokens are only ever
 * looked up by this hash, so a copy of the database holds no usable token.
 */
char *
kd_api_token_hash (const char *token)
{
  guchar h[32];
  char hex[sizeof h * 2 + 1];

  crypto_generichash (h, sizeof h, (const guchar *) token, strlen (token), NULL, 0);
  sodium_bin2hex (hex, sizeof hex, h, sizeof h);
  return g_strdup (hex);
}

/**
 * kd_api_csrf_token:
 * Returns: (transfer full): the CSRF token that goes with a session
 * token: a keyed hash of it, so nothing more needs storing and a page
 * that cannot read our answers cannot know it.
 */
char *
kd_api_csrf_token (const char *token)
{
  static const char label[] = "kvmdesk-csrf-v1";
  guchar key[crypto_generichash_KEYBYTES];
  guchar h[24];
  char hex[sizeof h * 2 + 1];

  crypto_generichash (key, sizeof key, (const guchar *) token, strlen (token), NULL, 0);
  crypto_generichash (h, sizeof h, (const guchar *) label, sizeof label - 1, key, sizeof key);
  sodium_bin2hex (hex, sizeof hex, h, sizeof h);
  return g_strdup (hex);
}

static char *
kd_api_generate_password (void)
{
  guchar raw[KD_GENERATED_PW_BYTES];
  char b64[sodium_base64_ENCODED_LEN (KD_GENERATED_PW_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];

  randombytes_buf (raw, sizeof raw);
  sodium_bin2base64 (b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return g_strdup (b64);
}

gboolean
kd_api_ensure_admin (KdStore *store, const char *password, char **out_generated, GError **error)
{
  g_autofree char *generated = NULL;
  g_autofree char *hash = NULL;
  g_autoptr(KdUserRow) row = NULL;
  gint64 n = kd_store_user_count (store, error);

  if (n < 0)
    return FALSE;
  if (n > 0)
    return TRUE;
  if (password == NULL || *password == '\0')
    password = generated = kd_api_generate_password ();
  hash = kd_api_password_hash (password, error);
  if (hash == NULL)
    return FALSE;
  row = g_new0 (KdUserRow, 1);
  row->name = g_strdup ("admin");
  row->password_hash = g_steal_pointer (&hash);
  row->role = g_strdup ("admin");
  if (!kd_store_user_insert (store, row, error))
    return FALSE;
  if (out_generated)
    *out_generated = g_steal_pointer (&generated);
  return TRUE;
}
