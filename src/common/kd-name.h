/*
 * kd-name.h: validation of the names operators give to hosts, images,
 * templates and desktops. libvirt refuses many characters in domain and
 * volume names, so every kvmdesk name is `[a-z0-9][a-z0-9-]{0,62}`.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define KD_NAME_MAX_LEN 63

gboolean kd_name_validate (const char  *kind,
                           const char  *name,
                           GError     **error);

gboolean kd_range_check_int64 (const char  *what,
                               gint64       value,
                               gint64       min,
                               gint64       max,
                               GError     **error);

G_END_DECLS
