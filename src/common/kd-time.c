/*
 * kd-time.c: time helpers.
 */
#include "kd-time.h"

gint64
kd_time_now (void)
{
  return g_get_real_time ();
}

/**
 * kd_time_format:
 * Returns: (transfer full): "2026-11-23T10:00:00Z" for @usec, or %NULL for 0.
 */
char *
kd_time_format (gint64 usec)
{
  g_autoptr(GDateTime) dt = NULL;

  if (usec <= 0)
    return NULL;
  dt = g_date_time_new_from_unix_utc (usec / G_USEC_PER_SEC);
  if (dt == NULL)
    return NULL;
  return g_date_time_format (dt, "%Y-%m-%dT%H:%M:%SZ");
}
