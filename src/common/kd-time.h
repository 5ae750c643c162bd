/*
 * kd-time.h: wall-clock time as kvmdesk stores it (µs since the epoch)
 * and shows it (ISO 8601, UTC).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

gint64 kd_time_now (void);
char  *kd_time_format (gint64 usec);

G_END_DECLS
