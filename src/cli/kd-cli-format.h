/*
 * kd-cli-format.h: how the kvmdesk CLI shows what the server answers:
 * human sizes, aligned tables, "key: value" listings of flattened objects,
 * pretty JSON. Pure functions over json-glib nodes: no I/O, no network.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

char *kd_cli_format_size (gint64 bytes);
char *kd_cli_sanitize (const char *text);

JsonNode   *kd_cli_json_lookup (JsonNode   *node,
                                const char *path);
char       *kd_cli_json_text  (JsonNode   *node,
                               const char *path);
char       *kd_cli_json_size  (JsonNode   *node,
                               const char *path);
gboolean    kd_cli_json_int   (JsonNode   *node,
                               const char *path,
                               gint64     *out);
char       *kd_cli_json_pretty (JsonNode *node);

typedef struct _KdCliTable KdCliTable;

KdCliTable *kd_cli_table_new     (const char *const *headers);
void        kd_cli_table_add_row (KdCliTable        *table,
                                  const char *const *cells);
void        kd_cli_table_add_row_take (KdCliTable *table,
                                       char      **cells);
char       *kd_cli_table_render  (KdCliTable *table);
void        kd_cli_table_free    (KdCliTable *table);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdCliTable, kd_cli_table_free)

char *kd_cli_format_show (JsonNode *node);

G_END_DECLS
