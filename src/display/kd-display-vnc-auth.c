/*
 * kd-display-vnc-auth.c: the one-time VNC passwords kvmdesk-display
 * accepts. The broker hands them over stdin (or an operator's unit in a
 * file) with an expiry; several may be valid at once; an expired one is
 * dropped and refused. Checking computes VNC's DES response for every
 * valid password and compares in constant time.
 */
#include <string.h>

#include <rfb/rfb.h>

#include "kd-display-vnc.h"

typedef struct {
  char   secret[KD_DISPLAY_PASSWORD_MAX_LEN + 1];
  gint64 valid_until;   /* UNIX seconds; 0: no expiry */
} KdDisplayPassword;

struct _KdDisplayPasswords {
  GArray *list;         /* KdDisplayPassword */
};

KdDisplayPasswords *
kd_display_passwords_new (void)
{
  KdDisplayPasswords *passwords = g_new0 (KdDisplayPasswords, 1);

  passwords->list = g_array_new (FALSE, TRUE, sizeof (KdDisplayPassword));
  return passwords;
}

void
kd_display_passwords_clear (KdDisplayPasswords *passwords)
{
  memset (passwords->list->data, 0, passwords->list->len * sizeof (KdDisplayPassword));
  g_array_set_size (passwords->list, 0);
}

void
kd_display_passwords_free (KdDisplayPasswords *passwords)
{
  if (passwords == NULL)
    return;
  kd_display_passwords_clear (passwords);
  g_array_unref (passwords->list);
  g_free (passwords);
}

/**
 * kd_display_passwords_add:
 * @secret: 1 to 8 printable ASCII characters, no spaces
 * @valid_until: UNIX seconds after which it is refused; 0 for never
 */
gboolean
kd_display_passwords_add (KdDisplayPasswords *passwords,
                          const char         *secret,
                          gint64              valid_until,
                          GError            **error)
{
  KdDisplayPassword p = { { 0 }, valid_until };
  gsize len = strlen (secret), i;

  if (len == 0 || len > KD_DISPLAY_PASSWORD_MAX_LEN)
    {
      g_set_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                   "a VNC password has 1 to %d characters, not %" G_GSIZE_FORMAT,
                   KD_DISPLAY_PASSWORD_MAX_LEN, len);
      return FALSE;
    }
  for (i = 0; i < len; i++)
    if (secret[i] <= ' ' || secret[i] > '~')
      {
        g_set_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                     "a VNC password has printable ASCII characters without spaces only");
        return FALSE;
      }
  if (valid_until < 0)
    {
      g_set_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                   "a password's expiry is UNIX seconds, not %" G_GINT64_FORMAT, valid_until);
      return FALSE;
    }
  memcpy (p.secret, secret, len);
  if (passwords->list->len >= KD_DISPLAY_PASSWORDS_MAX)
    g_array_remove_index (passwords->list, 0);
  g_array_append_val (passwords->list, p);
  return TRUE;
}

static void
drop_expired (KdDisplayPasswords *passwords,
              gint64              now)
{
  guint i;

  for (i = passwords->list->len; i > 0; i--)
    {
      KdDisplayPassword *p = &g_array_index (passwords->list, KdDisplayPassword, i - 1);

      if (p->valid_until != 0 && p->valid_until < now)
        {
          memset (p, 0, sizeof *p);
          g_array_remove_index (passwords->list, i - 1);
        }
    }
}

guint
kd_display_passwords_count (KdDisplayPasswords *passwords,
                            gint64              now)
{
  drop_expired (passwords, now);
  return passwords->list->len;
}

void
kd_display_vnc_auth_response (const guint8 *challenge,
                              const char   *secret,
                              guint8       *response)
{
  char key[KD_DISPLAY_PASSWORD_MAX_LEN + 1] = { 0 };

  memcpy (response, challenge, CHALLENGESIZE);
  strncpy (key, secret, KD_DISPLAY_PASSWORD_MAX_LEN);
  rfbEncryptBytes (response, key);
  memset (key, 0, sizeof key);
}

/**
 * kd_display_passwords_check:
 * Returns: TRUE when @response answers @challenge for a password valid
 * at @now.
 */
gboolean
kd_display_passwords_check (KdDisplayPasswords *passwords,
                            const guint8       *challenge,
                            const guint8       *response,
                            gsize               response_len,
                            gint64              now)
{
  gboolean ok = FALSE;
  guint i;

  if (response_len != CHALLENGESIZE)
    return FALSE;
  drop_expired (passwords, now);
  for (i = 0; i < passwords->list->len; i++)
    {
      guint8 expected[CHALLENGESIZE];
      guint8 diff = 0;
      gsize j;

      kd_display_vnc_auth_response (challenge,
                                    g_array_index (passwords->list, KdDisplayPassword, i).secret,
                                    expected);
      for (j = 0; j < CHALLENGESIZE; j++)
        diff |= expected[j] ^ response[j];
      ok |= diff == 0;
    }
  return ok;
}

/**
 * kd_display_passwords_load_file:
 * Replaces the passwords with those of @path: one `SECRET [UNTIL]` a
 * line (UNTIL in UNIX seconds, absent or 0: no expiry); blank lines and
 * lines starting with '#' are skipped. On error nothing changes.
 */
gboolean
kd_display_passwords_load_file (KdDisplayPasswords *passwords,
                                const char         *path,
                                GError            **error)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(KdDisplayPasswords) loaded = kd_display_passwords_new ();
  gsize len = 0;
  guint i;

  if (!g_file_get_contents (path, &text, &len, error))
    return FALSE;
  lines = g_strsplit (text, "\n", -1);
  memset (text, 0, len);
  for (i = 0; lines[i] != NULL; i++)
    {
      g_auto(GStrv) words = NULL;
      gint64 until = 0;
      char *line = g_strstrip (lines[i]);

      if (*line == '\0' || *line == '#')
        continue;
      words = g_strsplit_set (line, " \t", -1);
      if (g_strv_length (words) > 2
          || (words[1] != NULL && !g_ascii_string_to_signed (words[1], 10, 0, G_MAXINT64, &until, NULL))
          || !kd_display_passwords_add (loaded, words[0], until, NULL))
        {
          g_set_error (error, KD_DISPLAY_ERROR, KD_DISPLAY_ERROR_INVALID,
                       "password file '%s', line %u: expected 'SECRET [UNTIL]' "
                       "(1 to 8 characters, UNIX seconds)", path, i + 1);
          return FALSE;
        }
    }
  kd_display_passwords_clear (passwords);
  g_array_append_vals (passwords->list, loaded->list->data, loaded->list->len);
  return TRUE;
}
