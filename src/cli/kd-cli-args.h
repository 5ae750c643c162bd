/*
 * kd-cli-args.h: the kvmdesk CLI's command table and argument parser.
 *
 * A command is "GROUP VERB" (desktop create) or a single word (login). Global
 * options (--url, --json, --help) are accepted anywhere; each command has
 * its own long options, given as "--name VALUE" or "--name=VALUE". An option
 * takes one value unless it is marked repeatable (--group a --group b); an
 * option may need another one (--timeout only with --wait).
 */
#pragma once

#include <stdio.h>
#include <glib.h>

G_BEGIN_DECLS

#define KD_CLI_EXIT_OK      0
#define KD_CLI_EXIT_FAILURE 1
#define KD_CLI_EXIT_USAGE   2

#define KD_CLI_ERROR (kd_cli_error_quark ())
GQuark kd_cli_error_quark (void);

typedef enum {
  KD_CLI_ERROR_USAGE,    /* the command line is wrong: exit 2 with usage */
  KD_CLI_ERROR_FAILED,   /* the command failed: exit 1 */
} KdCliErrorCode;

typedef struct _KdCli KdCli;
typedef struct _KdCliInvocation KdCliInvocation;

typedef struct {
  const char *name;       /* long name without "--" */
  const char *metavar;    /* NULL: a flag without value */
  gboolean    required;
  const char *help;
  gboolean    repeat;     /* may be given more than once: every value is kept */
  const char *needs;      /* NULL, or an option that must be given with this one */
  const char *const *choices;  /* NULL, or the only values accepted (NULL-terminated) */
} KdCliOption;

typedef gboolean (*KdCliRunFunc) (KdCli                 *cli,
                                  const KdCliInvocation *inv,
                                  GError               **error);

typedef struct {
  const char        *group;     /* "desktop", or NULL for a single-word command */
  const char        *verb;      /* "create", or the single word */
  const char        *args;      /* positional arguments for usage: "NAME URI" */
  guint              min_args;
  guint              max_args;
  const KdCliOption *options;   /* terminated by an entry with name NULL; may be NULL */
  const char        *summary;
  KdCliRunFunc       run;
} KdCliCommand;

struct _KdCliInvocation {
  const KdCliCommand *command;  /* NULL: no command resolved */
  const char *group;            /* the group named, even without a verb */
  gboolean help;
  gboolean json;
  char *url;                    /* --url, or NULL */
  char *ca_cert;                /* --ca-cert, or NULL */
  GPtrArray *args;              /* positional arguments (char *) */
  GHashTable *options;          /* name -> last value ("" for a flag) */
  GHashTable *lists;            /* name -> GPtrArray of every value, in order */
};

extern const KdCliCommand kd_cli_commands[];
extern const guint kd_cli_n_commands;

KdCliInvocation *kd_cli_invocation_new  (void);
void             kd_cli_invocation_free (KdCliInvocation *inv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (KdCliInvocation, kd_cli_invocation_free)

gboolean kd_cli_parse (const KdCliCommand *table,
                       guint               n_commands,
                       int                 argc,
                       char              **argv,
                       KdCliInvocation    *inv,
                       GError            **error);

const char *kd_cli_arg    (const KdCliInvocation *inv,
                           guint                  index);
const char *kd_cli_option (const KdCliInvocation *inv,
                           const char            *name);
const char *const *kd_cli_option_list (const KdCliInvocation *inv,
                                       const char            *name);
gboolean    kd_cli_option_choice (const KdCliInvocation *inv,
                                  const char            *name,
                                  const char *const     *choices,
                                  int                   *out,
                                  GError               **error);
gboolean    kd_cli_option_int (const KdCliInvocation *inv,
                               const char            *name,
                               gint64                 min,
                               gint64                 max,
                               gint64                *out,
                               GError               **error);
gboolean    kd_cli_arg_int    (const KdCliInvocation *inv,
                               guint                  index,
                               const char            *metavar,
                               gint64                 min,
                               gint64                 max,
                               gint64                *out,
                               GError               **error);

char *kd_cli_synopsis   (const KdCliCommand *command);
void  kd_cli_print_help (FILE               *out,
                         const KdCliCommand *table,
                         guint               n_commands,
                         const char         *group,
                         const KdCliCommand *command);
void  kd_cli_print_usage (FILE               *out,
                          const KdCliCommand *table,
                          guint               n_commands,
                          const char         *group,
                          const KdCliCommand *command);

G_END_DECLS
