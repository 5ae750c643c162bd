/*
 * kd-api-tls.c: the HTTPS certificate and key, checked before libmicrohttpd
 * sees them.
 *
 * libmicrohttpd only says "failed to setup x509 certificate/key" for every
 * problem, so the files are read and checked here with GnuTLS (the library
 * MHD itself uses) to give the operator one sentence naming the file: not
 * readable, not PEM, an encrypted key, a key that does not belong to the
 * certificate. An expired (or not yet valid) certificate is not an error,
 * since the operator may be replacing it, but is returned as a warning.
 *
 * Nothing here listens or logs: kd-api-server.c decides what happens.
 */
#include "kd-api-priv.h"

#include "common/kd-error.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>

#define KD_API_TLS_MAX_FILE  (1024 * 1024)   /* bytes of a PEM file */
#define KD_API_TLS_KEY_ID    64              /* bytes of a public key id */

static char *
kd_api_tls_read (const char *what, const char *path, gsize *out_len, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *data = NULL;
  gsize len = 0;

  if (!g_file_get_contents (path, &data, &len, &local))
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID, "cannot read the TLS %s '%s': %s",
                   what, path, local->message);
      return NULL;
    }
  if (len > KD_API_TLS_MAX_FILE || len == 0 || memchr (data, '\0', len) != NULL)
    {
      gboolean cert = g_str_equal (what, "certificate");
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "the TLS %s '%s' is not a PEM %s (it should contain '-----BEGIN %s-----')",
                   what, path, cert ? "certificate" : "private key",
                   cert ? "CERTIFICATE" : "PRIVATE KEY");
      if (data)
        explicit_bzero (data, len);
      return NULL;
    }
  *out_len = len;
  return g_steal_pointer (&data);
}

static char *
kd_api_tls_date (time_t t)
{
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc ((gint64) t);

  return dt ? g_date_time_format (dt, "%Y-%m-%d %H:%M UTC") : g_strdup ("?");
}

static void
kd_api_tls_free_key (char *key, gsize len)
{
  if (key)
    {
      explicit_bzero (key, len);
      g_free (key);
    }
}

/**
 * kd_api_tls_load:
 * @cert_path: PEM certificate, optionally followed by its chain
 * @key_path: PEM private key of the first certificate, not encrypted
 * @out_cert: (out) (transfer full): the certificate file's text
 * @out_key: (out) (transfer full): the key file's text (wipe it after use)
 * @out_warning: (out) (transfer full) (nullable): a sentence to show the
 *   operator (an expired certificate), or %NULL
 *
 * Returns: %TRUE when MHD will accept the pair; otherwise one sentence
 * naming the file.
 */
gboolean
kd_api_tls_load (const char *cert_path, const char *key_path, char **out_cert, char **out_key,
                 char **out_warning, GError **error)
{
  g_autofree char *cert = NULL;
  char *key = NULL;
  gsize cert_len = 0, key_len = 0;
  gnutls_x509_crt_t *crts = NULL;
  unsigned int n_crts = 0;
  gnutls_x509_privkey_t pk = NULL;
  gnutls_certificate_credentials_t creds = NULL;
  gnutls_datum_t d;
  guchar crt_id[KD_API_TLS_KEY_ID], key_id[KD_API_TLS_KEY_ID];
  size_t crt_id_len = sizeof crt_id, key_id_len = sizeof key_id;
  gboolean ok = FALSE;
  time_t now = time (NULL), not_after, not_before;
  int r;

  cert = kd_api_tls_read ("certificate", cert_path, &cert_len, error);
  if (cert == NULL)
    return FALSE;
  key = kd_api_tls_read ("key", key_path, &key_len, error);
  if (key == NULL)
    return FALSE;

  d.data = (unsigned char *) cert;
  d.size = (unsigned int) cert_len;
  if (strstr (cert, "-----BEGIN CERTIFICATE-----") == NULL ||
      gnutls_x509_crt_list_import2 (&crts, &n_crts, &d, GNUTLS_X509_FMT_PEM, 0) < 0 || n_crts == 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "the TLS certificate '%s' is not a PEM certificate "
                   "(it should contain '-----BEGIN CERTIFICATE-----')", cert_path);
      goto out;
    }

  if (strstr (key, "ENCRYPTED") != NULL)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "the TLS key '%s' is encrypted: kvmdeskd needs it without a passphrase "
                   "(decrypt it with 'openssl pkey -in KEY -out KEY.plain')", key_path);
      goto out;
    }
  d.data = (unsigned char *) key;
  d.size = (unsigned int) key_len;
  if (strstr (key, "PRIVATE KEY-----") == NULL ||
      gnutls_x509_privkey_init (&pk) < 0 ||
      gnutls_x509_privkey_import2 (pk, &d, GNUTLS_X509_FMT_PEM, NULL, 0) < 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "the TLS key '%s' is not a PEM private key "
                   "(it should contain '-----BEGIN PRIVATE KEY-----')", key_path);
      goto out;
    }

  if (gnutls_x509_crt_get_key_id (crts[0], 0, crt_id, &crt_id_len) < 0 ||
      gnutls_x509_privkey_get_key_id (pk, 0, key_id, &key_id_len) < 0 ||
      crt_id_len != key_id_len || memcmp (crt_id, key_id, crt_id_len) != 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "the TLS key '%s' does not belong to the certificate '%s'", key_path, cert_path);
      goto out;
    }

  /* What MHD will do with the pair: it must accept it too. */
  if (gnutls_certificate_allocate_credentials (&creds) < 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_FAILED, "GnuTLS cannot allocate credentials");
      goto out;
    }
  {
    gnutls_datum_t c = { (unsigned char *) cert, (unsigned int) cert_len };
    gnutls_datum_t k = { (unsigned char *) key, (unsigned int) key_len };
    r = gnutls_certificate_set_x509_key_mem (creds, &c, &k, GNUTLS_X509_FMT_PEM);
  }
  if (r < 0)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "the TLS certificate '%s' and key '%s' cannot be used: %s",
                   cert_path, key_path, gnutls_strerror (r));
      goto out;
    }

  not_after = gnutls_x509_crt_get_expiration_time (crts[0]);
  not_before = gnutls_x509_crt_get_activation_time (crts[0]);
  if (out_warning)
    {
      *out_warning = NULL;
      if (not_after != (time_t) -1 && not_after < now)
        {
          g_autofree char *when = kd_api_tls_date (not_after);
          *out_warning = g_strdup_printf ("the TLS certificate '%s' expired on %s: browsers and "
                                          "the CLI will refuse it until it is replaced",
                                          cert_path, when);
        }
      else if (not_before != (time_t) -1 && not_before > now)
        {
          g_autofree char *when = kd_api_tls_date (not_before);
          *out_warning = g_strdup_printf ("the TLS certificate '%s' is not valid before %s: "
                                          "browsers and the CLI will refuse it until then",
                                          cert_path, when);
        }
    }
  *out_cert = g_steal_pointer (&cert);
  *out_key = g_steal_pointer (&key);
  ok = TRUE;

out:
  if (creds)
    gnutls_certificate_free_credentials (creds);
  if (pk)
    gnutls_x509_privkey_deinit (pk);
  for (unsigned int i = 0; i < n_crts; i++)
    gnutls_x509_crt_deinit (crts[i]);
  gnutls_free (crts);
  kd_api_tls_free_key (key, key_len);
  return ok;
}
