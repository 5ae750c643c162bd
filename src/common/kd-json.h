/*
 * kd-json.h: strict readers for JSON request bodies. Every getter checks
 * the member's type and reports a sentence naming the member.
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

JsonObject *kd_json_parse_object (const char  *data,
                                  gsize        len,
                                  GError     **error);
gboolean kd_json_check_members (JsonObject  *obj,
                                const char  *const *allowed,
                                GError     **error);
gboolean kd_json_get_string (JsonObject  *obj,
                             const char  *member,
                             gboolean     required,
                             const char **out,
                             GError     **error);
gboolean kd_json_get_int    (JsonObject  *obj,
                             const char  *member,
                             gboolean     required,
                             gint64      *out,
                             GError     **error);
gboolean kd_json_get_number (JsonObject *obj, const char *member, gboolean required,
                             double *out, GError **error);
gboolean kd_json_get_bool   (JsonObject  *obj,
                             const char  *member,
                             gboolean     required,
                             gboolean    *out,
                             GError     **error);
char    *kd_json_to_string  (JsonNode *node);

G_END_DECLS
