/*
 * kd-name.c: name and range validation shared by the API and the broker.
 * Pure functions: no I/O, no logging.
 */
#include "kd-name.h"
#include "kd-error.h"

/**
 * kd_name_validate:
 * @kind: what is named ("host", "image", …), used in the message
 * @name: (nullable): the name to check
 *
 * Returns: %TRUE if @name matches `[a-z0-9][a-z0-9-]{0,62}`; otherwise
 * %FALSE with a %KD_ERROR_INVALID error that says why.
 */
gboolean
kd_name_validate (const char  *kind,
                  const char  *name,
                  GError     **error)
{
  gsize len;

  if (name == NULL || *name == '\0')
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "a %s name is required", kind);
      return FALSE;
    }
  len = strlen (name);
  if (len > KD_NAME_MAX_LEN)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "%s name is %" G_GSIZE_FORMAT " characters long; at most %d are allowed",
                   kind, len, KD_NAME_MAX_LEN);
      return FALSE;
    }
  for (gsize i = 0; i < len; i++)
    {
      char c = name[i];
      gboolean ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    (c == '-' && i > 0);
      if (!ok)
        {
          g_autofree char *shown = g_utf8_make_valid (name, MIN (len, 80));
          g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                       "%s name '%s' is invalid: use lower-case letters, digits and '-', "
                       "starting with a letter or digit", kind, shown);
          return FALSE;
        }
    }
  return TRUE;
}

/**
 * kd_range_check_int64:
 * Returns: %TRUE if @min <= @value <= @max, else %FALSE with
 * %KD_ERROR_INVALID naming @what and the allowed range.
 */
gboolean
kd_range_check_int64 (const char  *what,
                      gint64       value,
                      gint64       min,
                      gint64       max,
                      GError     **error)
{
  if (value < min || value > max)
    {
      g_set_error (error, KD_ERROR, KD_ERROR_INVALID,
                   "%s must be between %" G_GINT64_FORMAT " and %" G_GINT64_FORMAT
                   ", not %" G_GINT64_FORMAT, what, min, max, value);
      return FALSE;
    }
  return TRUE;
}
